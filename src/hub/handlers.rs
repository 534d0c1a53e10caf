//! The actor's message handlers: each routes to one `HubState` operation.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::Instant;

use actix::{ActorContext, AsyncContext, Context, Handler, ResponseFuture};
use tokio::sync::oneshot;

use super::state::{HubState, Keyed, Registration, SharedRecord};
use super::{HubShared, ResultHub};
use crate::compact::CompactRecord;
use crate::events::EventStream;
use crate::messages::{
    Await, Awaited, CancelWait, Clear, Delete, Drain, Dump, Envelope, Fetch, FinalStop, Get,
    Introduce, ListByStatus, Load, Page, PendingWait, Put, Restore, Shutdown, Snapshot, Stats,
    Store, Subscribe, WaitFor, WaitOutcome,
};
use crate::{BackendError, HubStats, TaskResult, validate};

impl ResultHub {
    /// Runs one state change, turning a panic into an error for this caller only: the state's
    /// derived structures are rebuilt and the hub keeps serving, where an unguarded panic
    /// would kill the actor for good.
    pub(super) fn with_state<T>(
        &mut self,
        operation: &'static str,
        change: impl FnOnce(&mut HubState) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let state = self.state.as_mut().ok_or_else(BackendError::hub_stopped)?;
        match panic::catch_unwind(AssertUnwindSafe(|| change(state))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let reason = panic_message(payload.as_ref());
                tracing::error!(
                    name: "hub.panic",
                    operation,
                    reason = %reason,
                    "a hub handler panicked; state repaired, the hub keeps serving"
                );
                state.repair();
                Err(BackendError::Internal {
                    reason: format!("the hub's {operation} handler panicked: {reason}"),
                })
            }
        }
    }

    fn register(
        &mut self,
        task_id: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Awaited, BackendError> {
        tracing::debug!(name: "hub.wait_for", task_id = %task_id);
        match self.with_state("wait_for", |state| state.register_waiter(task_id))? {
            Registration::Ready(record) => Ok(Awaited::Ready(record)),
            Registration::Waiting {
                task_id,
                waiter_id,
                receiver,
            } => {
                // Shared by the waiters, but held weakly here: a hub holding a sender to its own
                // mailbox would never stop when its last handle is dropped.
                let cancel = self.cancel.upgrade().unwrap_or_else(|| {
                    let cancel = Arc::new(ctx.address().recipient());
                    self.cancel = Arc::downgrade(&cancel);
                    cancel
                });
                Ok(Awaited::Waiting(PendingWait::new(
                    task_id, waiter_id, receiver, cancel,
                )))
            }
        }
    }

    fn put(
        &mut self,
        task_id: &str,
        record: CompactRecord,
        at: Option<Instant>,
        ticket: Option<u64>,
    ) -> Result<SharedRecord, BackendError> {
        let status = record.status;
        let outcome = self.with_state("store", |state| state.store(task_id, record, at, ticket));
        tracing::debug!(name: "hub.store", task_id = %task_id, status = ?status, ok = outcome.is_ok());
        outcome
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn unpack_all(records: Vec<Keyed>) -> Result<Vec<TaskResult>, BackendError> {
    records
        .into_iter()
        .map(|(id, record)| record.unpack(&id))
        .collect()
}

/// Each operation in an [`Envelope`] is handled as the bare message, its reply sent to the
/// envelope's oneshot. The caller may have given up; for a `PendingWait` reply, dropping it
/// here cancels the waiter it stands for.
macro_rules! handle_enveloped {
    ($($message:ty),* $(,)?) => {$(
        impl Handler<Envelope<$message>> for ResultHub {
            type Result = ();

            fn handle(&mut self, envelope: Envelope<$message>, ctx: &mut Context<Self>) {
                let reply = <Self as Handler<$message>>::handle(self, envelope.message, ctx);
                if envelope.unseen {
                    if let Some(view) = &self.shared.view {
                        view.seen();
                    }
                }
                let _ = envelope.reply.send(reply);
            }
        }
    )*};
}

handle_enveloped!(
    Store,
    Get,
    WaitFor,
    Delete,
    Clear,
    ListByStatus,
    Stats,
    Snapshot,
    Restore,
    Put,
    Fetch,
    Await,
    Page,
    Dump,
    Load,
    Introduce,
    Subscribe,
);

// The public messages, for actix code holding an `Addr`: records are packed and unpacked here.

impl Handler<Store> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, msg: Store, _: &mut Context<Self>) -> Self::Result {
        let config = &self.shared.config;
        validate::store(&msg.task_id, &msg.result, config)?;
        self.put(&msg.task_id, CompactRecord::pack(msg.result), None, None)
            .map(drop)
    }
}

impl Handler<Get> for ResultHub {
    type Result = Result<Option<TaskResult>, BackendError>;

    fn handle(&mut self, msg: Get, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.get", task_id = %msg.task_id);
        let record = self.with_state("get", |state| state.get(&msg.task_id))?;
        record.map(|record| record.unpack(&msg.task_id)).transpose()
    }
}

impl Handler<WaitFor> for ResultHub {
    type Result = Result<WaitOutcome, BackendError>;

    fn handle(&mut self, msg: WaitFor, ctx: &mut Context<Self>) -> Self::Result {
        match self.register(&msg.task_id, ctx)? {
            Awaited::Ready(record) => Ok(WaitOutcome::Ready(record.unpack(&msg.task_id)?)),
            Awaited::Waiting(pending) => Ok(WaitOutcome::Waiting(pending)),
        }
    }
}

impl Handler<ListByStatus> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, msg: ListByStatus, ctx: &mut Context<Self>) -> Self::Result {
        let page = Page {
            status: msg.status,
            limit: msg.limit,
            offset: msg.offset,
        };
        unpack_all(<Self as Handler<Page>>::handle(self, page, ctx)?)
    }
}

impl Handler<Snapshot> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, _: Snapshot, ctx: &mut Context<Self>) -> Self::Result {
        unpack_all(<Self as Handler<Dump>>::handle(self, Dump, ctx)?)
    }
}

impl Handler<Restore> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, msg: Restore, ctx: &mut Context<Self>) -> Self::Result {
        let records = pack_checked(msg.records, &self.shared)?;
        <Self as Handler<Load>>::handle(self, Load { records }, ctx)
    }
}

/// Checks each record's id against its key and packs it: `restore`'s first step, done by the
/// handle on its own thread or by the hub for a raw `Restore`.
pub(crate) fn pack_checked(
    records: Vec<TaskResult>,
    shared: &HubShared,
) -> Result<Vec<(String, CompactRecord)>, BackendError> {
    records
        .into_iter()
        .enumerate()
        .map(|(position, record)| {
            validate::store(&record.task_id, &record, &shared.config).map_err(
                |error| match error {
                    BackendError::InvalidInput { reason } => BackendError::InvalidInput {
                        reason: format!("record {position}: {reason}"),
                    },
                    other => other,
                },
            )?;
            let task_id = record.task_id.clone();
            Ok((task_id, CompactRecord::pack(record)))
        })
        .collect()
}

// The operations shared by both paths.

impl Handler<Delete> for ResultHub {
    type Result = Result<bool, BackendError>;

    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.delete", task_id = %msg.task_id);
        self.with_state("delete", |state| state.delete(&msg.task_id))
    }
}

impl Handler<Clear> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, _: Clear, _: &mut Context<Self>) -> Self::Result {
        let removed = self.with_state("clear", |state| Ok(state.clear()))?;
        tracing::debug!(name: "hub.clear", removed);
        Ok(removed)
    }
}

impl Handler<Stats> for ResultHub {
    type Result = Result<HubStats, BackendError>;

    fn handle(&mut self, _: Stats, _: &mut Context<Self>) -> Self::Result {
        self.with_state("stats", |state| Ok(state.stats()))
    }
}

impl Handler<Subscribe> for ResultHub {
    type Result = Result<EventStream, BackendError>;

    fn handle(&mut self, msg: Subscribe, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.subscribe", filter = ?msg.filter);
        let receiver = self.with_state("subscribe", |state| Ok(state.subscribe()))?;
        Ok(EventStream::new(receiver, msg.filter))
    }
}

impl Handler<CancelWait> for ResultHub {
    type Result = ();

    fn handle(&mut self, msg: CancelWait, _: &mut Context<Self>) {
        tracing::debug!(name: "hub.cancel_wait", task_id = %msg.task_id);
        let _ = self.with_state("cancel_wait", |state| {
            state.cancel_waiter(&msg.task_id, msg.waiter_id);
            Ok(())
        });
    }
}

impl ResultHub {
    /// The first step of a shutdown: mark the hub closed, so that a store seeing the mark waits
    /// for its answer, and queue the second step behind every store that did not see it.
    fn begin_close(
        &mut self,
        drain: bool,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<Vec<Keyed>, BackendError>> {
        let (reply, receiver) = oneshot::channel();
        if self.state.is_none() {
            let _ = reply.send(Err(BackendError::hub_stopped()));
            return receiver;
        }
        self.shared.close();
        ctx.address().do_send(FinalStop { drain, reply });
        receiver
    }

    fn close_for_good(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!(name: "hub.shutdown", open = self.state.is_some());
        self.shared.close();
        // Dropping the state drops every waiter's sender: pending waits end with Unavailable.
        self.state = None;
        self.cancel = Weak::new();
        if let Some(view) = &self.shared.view {
            view.clear_all();
        }
        // A supervisor restarts a stopped actor; with no state it stays inert and answers
        // Unavailable, which is what "stopped for good" means to its callers.
        ctx.stop();
    }
}

impl Handler<Shutdown> for ResultHub {
    type Result = ResponseFuture<Result<(), BackendError>>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let closed = self.begin_close(false, ctx);
        Box::pin(async move {
            match closed.await {
                Ok(outcome) => outcome.map(drop),
                Err(_) => Err(BackendError::hub_stopped()),
            }
        })
    }
}

impl Handler<Drain> for ResultHub {
    type Result = ResponseFuture<Result<Vec<Keyed>, BackendError>>;

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        let drained = self.begin_close(true, ctx);
        Box::pin(async move {
            drained
                .await
                .unwrap_or_else(|_| Err(BackendError::hub_stopped()))
        })
    }
}

impl Handler<FinalStop> for ResultHub {
    type Result = ();

    fn handle(&mut self, msg: FinalStop, ctx: &mut Context<Self>) {
        let outcome = if msg.drain {
            self.with_state("snapshot", |state| Ok(state.snapshot()))
        } else {
            Ok(Vec::new())
        };
        if outcome.is_err() {
            // No snapshot, no shutdown: the records are still here for another try.
            self.shared.reopen();
        } else {
            self.close_for_good(ctx);
        }
        let _ = msg.reply.send(outcome);
    }
}

// The handle's messages: records stay packed; the handle packs and unpacks them.

impl Handler<Put> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, msg: Put, _: &mut Context<Self>) -> Self::Result {
        let record = Arc::unwrap_or_clone(msg.record);
        let outcome = self.put(&msg.task_id, record, msg.at, msg.ticket).map(drop);
        if let (Some(ticket), Some(view), Err(_)) = (msg.ticket, &self.shared.view, &outcome) {
            view.forget(&msg.task_id, ticket);
        }
        if let (Some(_), Err(BackendError::Unavailable { .. })) = (&msg.permit, &outcome) {
            // The hub stopped before this store. Every store that saw the hub open is applied
            // before it stops, so this caller saw it closing and awaited this very answer.
            tracing::debug!(task_id = %msg.task_id, "hub.store_after_stop");
        } else if let (Some(_), Err(error)) = (&msg.permit, &outcome) {
            // A pipelined store whose caller was already told Ok: only a bug gets here.
            tracing::error!(
                name: "hub.store_failed",
                task_id = %msg.task_id,
                %error,
                "a pipelined store failed after its caller had returned"
            );
        }
        // Applied: the store's place among the unacknowledged ones is free again.
        drop(msg.permit);
        outcome
    }
}

#[cfg(feature = "web")]
impl Handler<crate::messages::PutMerged> for ResultHub {
    type Result = Result<SharedRecord, BackendError>;

    fn handle(&mut self, msg: crate::messages::PutMerged, _: &mut Context<Self>) -> Self::Result {
        self.put(&msg.task_id, msg.record, msg.at, None)
    }
}

#[cfg(feature = "web")]
handle_enveloped!(crate::messages::PutMerged);

impl Handler<Fetch> for ResultHub {
    type Result = Result<Option<Arc<CompactRecord>>, BackendError>;

    fn handle(&mut self, msg: Fetch, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.get", task_id = %msg.task_id);
        self.with_state("get", |state| state.get(&msg.task_id))
    }
}

impl Handler<Await> for ResultHub {
    type Result = Result<Awaited, BackendError>;

    fn handle(&mut self, msg: Await, ctx: &mut Context<Self>) -> Self::Result {
        self.register(&msg.task_id, ctx)
    }
}

impl Handler<Page> for ResultHub {
    type Result = Result<Vec<Keyed>, BackendError>;

    fn handle(&mut self, msg: Page, _: &mut Context<Self>) -> Self::Result {
        tracing::debug!(name: "hub.list_by_status", status = ?msg.status, limit = ?msg.limit, offset = msg.offset);
        self.with_state("list_by_status", |state| {
            Ok(state.list_by_status(msg.status, msg.limit, msg.offset))
        })
    }
}

impl Handler<Dump> for ResultHub {
    type Result = Result<Vec<Keyed>, BackendError>;

    fn handle(&mut self, _: Dump, _: &mut Context<Self>) -> Self::Result {
        let records = self.with_state("snapshot", |state| Ok(state.snapshot()))?;
        tracing::debug!(name: "hub.snapshot", records = records.len());
        Ok(records)
    }
}

impl Handler<Load> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, msg: Load, _: &mut Context<Self>) -> Self::Result {
        let outcome = self.with_state("restore", |state| state.restore(msg.records));
        tracing::debug!(name: "hub.restore", ok = outcome.is_ok());
        outcome
    }
}

impl Handler<Introduce> for ResultHub {
    type Result = Result<Arc<HubShared>, BackendError>;

    fn handle(&mut self, _: Introduce, _: &mut Context<Self>) -> Self::Result {
        Ok(self.shared())
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::testing::StopHub> for ResultHub {
    type Result = ();

    fn handle(&mut self, _: crate::testing::StopHub, ctx: &mut Context<Self>) {
        tracing::warn!(name: "hub.stop_for_test", "stopping the hub's context on request");
        ctx.stop();
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::testing::InjectFault> for ResultHub {
    type Result = ();

    fn handle(&mut self, msg: crate::testing::InjectFault, _: &mut Context<Self>) {
        if let Some(state) = self.state.as_mut() {
            state.fault = Some(msg.operation);
        }
    }
}
