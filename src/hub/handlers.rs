//! The public [`messages`](crate::messages), for actix code holding an `Addr`: each applies
//! what is queued, then its own operation, the same [`Op`] a handle would queue, answered at
//! once.

use std::sync::Arc;

use actix::{Context, Handler};
use tokio::sync::oneshot;

use super::ResultHub;
use super::ops::{Keyed, Op, Reply, StoreAnswer};
use super::pending::PendingWait;
use crate::compact::CompactRecord;
use crate::events::EventStream;
use crate::messages::{
    Clear, Delete, Get, GetMany, ListByStatus, ListPage, Restore, Shutdown, Snapshot, Stats, Store,
    StoreMany, Subscribe, WaitFor, WaitOutcome,
};
use crate::{BackendError, Cursor, HubConfig, HubStats, Page, TaskResult, validate};

impl ResultHub {
    /// Applies the operation `make` builds behind everything queued, and returns its answer.
    fn answer_now<T>(
        &mut self,
        ctx: &mut Context<Self>,
        make: impl FnOnce(Reply<T>) -> Op,
    ) -> Result<T, BackendError> {
        self.drain_all(ctx);
        let (reply, mut answer) = oneshot::channel();
        self.apply(make(reply).into(), ctx);
        answer
            .try_recv()
            .unwrap_or_else(|_| Err(BackendError::hub_stopped()))
    }
}

impl ResultHub {
    fn store_now(
        &mut self,
        task_id: String,
        result: TaskResult,
        ctx: &mut Context<Self>,
    ) -> Result<(), BackendError> {
        validate::store(&task_id, &result, &self.shared.config)?;
        let record = Arc::new(CompactRecord::pack(result));
        let at = self.shared.store_time();
        self.answer_now(ctx, |reply| Op::Store {
            task_id: Arc::from(task_id),
            record,
            at,
            answer: StoreAnswer::Done(reply),
        })
    }

    fn get_now(
        &mut self,
        task_id: String,
        ctx: &mut Context<Self>,
    ) -> Result<Option<TaskResult>, BackendError> {
        let task_id: Arc<str> = Arc::from(task_id);
        let record = self.answer_now(ctx, |reply| Op::Get {
            task_id: Arc::clone(&task_id),
            reply,
        })?;
        Ok(record.map(|record| record.unpack(&task_id)))
    }
}

impl Handler<Store> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, msg: Store, ctx: &mut Context<Self>) -> Self::Result {
        self.store_now(msg.task_id, msg.result, ctx)
    }
}

impl Handler<StoreMany> for ResultHub {
    type Result = Vec<Result<(), BackendError>>;

    fn handle(&mut self, msg: StoreMany, ctx: &mut Context<Self>) -> Self::Result {
        msg.records
            .into_iter()
            .map(|record| self.store_now(record.task_id.clone(), record, ctx))
            .collect()
    }
}

impl Handler<Get> for ResultHub {
    type Result = Result<Option<TaskResult>, BackendError>;

    fn handle(&mut self, msg: Get, ctx: &mut Context<Self>) -> Self::Result {
        self.get_now(msg.task_id, ctx)
    }
}

impl Handler<GetMany> for ResultHub {
    type Result = Result<Vec<Option<TaskResult>>, BackendError>;

    fn handle(&mut self, msg: GetMany, ctx: &mut Context<Self>) -> Self::Result {
        let ids: Vec<&str> = msg.task_ids.iter().map(String::as_str).collect();
        crate::many::non_empty(&ids, "get_many")?;
        for task_id in &ids {
            validate::id_length(task_id, &self.shared.config)?;
        }
        msg.task_ids
            .into_iter()
            .map(|task_id| self.get_now(task_id, ctx))
            .collect()
    }
}

impl Handler<WaitFor> for ResultHub {
    type Result = Result<WaitOutcome, BackendError>;

    fn handle(&mut self, msg: WaitFor, ctx: &mut Context<Self>) -> Self::Result {
        self.drain_all(ctx);
        let task_id: Arc<str> = Arc::from(msg.task_id);
        let (reply, mut answer) = oneshot::channel();
        self.apply(
            Op::WaitFor {
                task_id: Arc::clone(&task_id),
                poll: false,
                reply,
            }
            .into(),
            ctx,
        );
        match answer.try_recv() {
            Ok(Ok(record)) => Ok(WaitOutcome::Ready(record.unpack(&task_id))),
            Ok(Err(error)) => Err(error),
            Err(oneshot::error::TryRecvError::Empty) => Ok(WaitOutcome::Waiting(PendingWait::new(
                task_id,
                answer,
                self.shared(),
            ))),
            Err(oneshot::error::TryRecvError::Closed) => Err(BackendError::hub_stopped()),
        }
    }
}

impl Handler<Delete> for ResultHub {
    type Result = Result<bool, BackendError>;

    fn handle(&mut self, msg: Delete, ctx: &mut Context<Self>) -> Self::Result {
        self.answer_now(ctx, |reply| Op::Delete {
            task_id: Arc::from(msg.task_id),
            reply,
        })
    }
}

impl Handler<Clear> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, _: Clear, ctx: &mut Context<Self>) -> Self::Result {
        self.answer_now(ctx, |reply| Op::Clear { reply })
    }
}

impl Handler<ListByStatus> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, msg: ListByStatus, ctx: &mut Context<Self>) -> Self::Result {
        let page = self.answer_now(ctx, |reply| Op::ListByStatus {
            status: msg.status,
            limit: msg.limit,
            offset: msg.offset,
            reply,
        })?;
        Ok(unpack_all(page))
    }
}

impl Handler<ListPage> for ResultHub {
    type Result = Result<Page, BackendError>;

    fn handle(&mut self, msg: ListPage, ctx: &mut Context<Self>) -> Self::Result {
        let after = crate::page::position(msg.limit, msg.after.as_ref())?;
        let (records, next) = self.answer_now(ctx, |reply| Op::ListPage {
            status: msg.status,
            limit: msg.limit,
            after,
            reply,
        })?;
        Ok(Page::new(unpack_all(records), next.map(Cursor::after_key)))
    }
}

impl Handler<Stats> for ResultHub {
    type Result = Result<HubStats, BackendError>;

    fn handle(&mut self, _: Stats, ctx: &mut Context<Self>) -> Self::Result {
        self.answer_now(ctx, |reply| Op::Stats { reply })
    }
}

impl Handler<Snapshot> for ResultHub {
    type Result = Result<Vec<TaskResult>, BackendError>;

    fn handle(&mut self, _: Snapshot, ctx: &mut Context<Self>) -> Self::Result {
        Ok(unpack_all(
            self.answer_now(ctx, |reply| Op::Snapshot { reply })?,
        ))
    }
}

impl Handler<Restore> for ResultHub {
    type Result = Result<usize, BackendError>;

    fn handle(&mut self, msg: Restore, ctx: &mut Context<Self>) -> Self::Result {
        let records = pack_checked(msg.records, Some(&self.shared.config))?;
        self.answer_now(ctx, |reply| Op::Restore { records, reply })
    }
}

impl Handler<Shutdown> for ResultHub {
    type Result = Result<(), BackendError>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.answer_now(ctx, |reply| Op::Shutdown {
            snapshot: false,
            reply,
        })
        .map(drop)
    }
}

impl Handler<Subscribe> for ResultHub {
    type Result = Result<EventStream, BackendError>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Context<Self>) -> Self::Result {
        let (_, receiver) = self.answer_now(ctx, |reply| Op::Subscribe {
            resumable: false,
            after: None,
            reply,
        })?;
        Ok(EventStream::new(receiver, msg.filter))
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<crate::testing::StopHub> for ResultHub {
    type Result = ();

    fn handle(&mut self, _: crate::testing::StopHub, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        // Stopping the hub's context on request.
        tracing::warn!("resulthub.hub.stop_for_test");
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

#[cfg(feature = "fault-injection")]
impl Handler<crate::testing::Stall> for ResultHub {
    type Result = ();

    fn handle(&mut self, msg: crate::testing::Stall, _: &mut Context<Self>) {
        // Blocks the hub's thread on purpose, as a long clear or snapshot would.
        std::thread::sleep(msg.0);
    }
}

/// Unpacks records the hub handed out, on the caller's thread.
pub(crate) fn unpack_all(records: Vec<Keyed>) -> Vec<TaskResult> {
    records
        .into_iter()
        .map(|(id, record)| record.unpack(&id))
        .collect()
}

/// Checks each record's id against its key and packs it: `restore`'s first step, done by the
/// handle on its own thread or by the hub for a raw `Restore`.
/// Without a configuration (a handle that has not met its hub yet), the hub checks the ids'
/// lengths itself.
pub(crate) fn pack_checked(
    records: Vec<TaskResult>,
    config: Option<&HubConfig>,
) -> Result<Vec<(Arc<str>, CompactRecord)>, BackendError> {
    records
        .into_iter()
        .enumerate()
        .map(|(position, record)| {
            let checked = match config {
                Some(config) => validate::store(&record.task_id, &record, config),
                None => validate::shape(&record.task_id, &record),
            };
            checked.map_err(|error| error.in_context(&format!("record {position}")))?;
            let task_id = Arc::from(record.task_id.as_str());
            Ok((task_id, CompactRecord::pack(record)))
        })
        .collect()
}
