//! The hub: an actix actor that owns every record and waiter.
//!
//! One actor owning all state means one order of events that every caller observes, and
//! waiters that are fulfilled in the same step as the store that completes them, so a wake-up
//! can never be lost between a check and a registration.
//!
//! ```text
//!  HubHandle ──push(Op)──▶ Shared::queue ──(first push rings)──▶ Doorbell ──▶ ResultHub
//!     │                    (one FIFO for every handle)          (mailbox)      drains in order
//!     │ get: read ◀── Shared::records (one map, written by the hub only) ◀── HubState::store
//!     └─ await oneshot ◀──────────────── answer, or a waiter's terminal record ◀─┘
//! ```

pub(crate) mod handlers;
pub mod messages;
pub(crate) mod ops;
pub(crate) mod pending;
pub(crate) mod records;
pub(crate) mod shared;
pub(crate) mod state;
pub(crate) mod thread;

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Supervised,
    SystemService, WrapFuture,
};

use crate::{BackendError, HubConfig};
use ops::{Op, Queued, StoreAnswer};
use shared::{Applied, Shared};
use state::HubState;

/// How many queued operations the hub applies before it lets other actors and tasks on its
/// thread run.
const TURN: usize = 512;

/// The result hub: an actix [`Actor`] that owns all records, the per-status listing index and
/// the waiters.
///
/// Start it with [`Actor::start`], under [`actix::Supervisor`], or as a system service
/// ([`SystemService::from_registry`]), then talk to it through a
/// [`HubHandle`](crate::HubHandle), which implements [`ResultBackend`](crate::ResultBackend), or
/// with the [`messages`](crate::messages). From code without an actix System,
/// [`HubHandle::spawn`](crate::HubHandle::spawn) runs one on its own thread.
///
/// A supervised hub keeps its records and waiters across a restart: actix keeps the actor
/// value and replays queued messages.
///
/// # Examples
///
/// ```
/// use actix::{Supervisor, SystemService};
/// use resulthub::{HubConfig, HubHandle, ResultBackend, ResultHub, TaskResult, TaskStatus};
///
/// # actix_rt::System::new().block_on(async {
/// // Supervised, with explicit limits:
/// let addr = Supervisor::start(|_| ResultHub::new(HubConfig::default()));
/// let hub = HubHandle::from_addr(addr);
/// hub.store("t1", TaskResult::new("t1", TaskStatus::Pending)).await.unwrap();
///
/// // Or the one shared instance of this actix System:
/// let shared = HubHandle::from_addr(ResultHub::from_registry());
/// assert_eq!(shared.get("t1").await.unwrap(), None);
/// # });
/// ```
pub struct ResultHub {
    /// `None` once shut down: every operation is then answered with `Unavailable`.
    state: Option<HubState>,
    shared: Arc<Shared>,
    /// Operations taken from the queue and not applied yet (a turn ended first).
    backlog: VecDeque<Queued>,
    /// Set by `HubHandle::spawn`: the hub's thread runs nothing else, and ends with it.
    pub(crate) stops_its_system: bool,
}

impl ResultHub {
    /// A hub with these limits, ready for [`Actor::start`] or [`actix::Supervisor::start`].
    pub fn new(config: HubConfig) -> Self {
        let shared = Arc::new(Shared::new(config));
        ResultHub {
            state: Some(HubState::new(Arc::clone(&shared))),
            shared,
            backlog: VecDeque::new(),
            stops_its_system: false,
        }
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Applies queued operations in order, at most a turn's worth, then lets the thread's other
    /// work run and comes back for the rest.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        let mut budget = TURN;
        let mut counts = Applied::default();
        loop {
            if self.backlog.is_empty() {
                let found = self.shared.take(&mut self.backlog, counts);
                counts = Applied::default();
                if !found {
                    return;
                }
            }
            if budget == 0 {
                break;
            }
            if let Some(op) = self.backlog.pop_front() {
                counts.count(&op);
                self.apply(op, ctx);
                budget -= 1;
            }
        }
        // Counted now, so that stores waiting for room go on while other work runs.
        self.shared.count_applied(counts);
        ctx.spawn(
            tokio::task::yield_now()
                .into_actor(self)
                .map(|(), hub, ctx| hub.drain(ctx)),
        );
    }

    /// Applies everything queued, without yielding: before a message that came through the
    /// mailbox, so that it comes after every operation queued before it.
    fn drain_all(&mut self, ctx: &mut Context<Self>) {
        self.shared.schedule();
        let mut counts = Applied::default();
        loop {
            while let Some(op) = self.backlog.pop_front() {
                counts.count(&op);
                self.apply(op, ctx);
            }
            let found = self.shared.take(&mut self.backlog, counts);
            counts = Applied::default();
            if !found {
                return;
            }
        }
    }

    /// Runs one state change, turning a panic into an error for this caller only: the state's
    /// derived structures are rebuilt and the hub keeps serving, where an unguarded panic
    /// would kill the actor for good.
    fn with_state<T>(
        &mut self,
        operation: &'static str,
        change: impl FnOnce(&mut HubState) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let state = self.state.as_mut().ok_or_else(BackendError::hub_stopped)?;
        match panic::catch_unwind(AssertUnwindSafe(|| change(state))) {
            Ok(outcome) => outcome,
            Err(payload) => {
                let reason = panic_message(payload.as_ref());
                // The state is repaired below; the hub keeps serving.
                tracing::error!(operation, reason = %reason, "resulthub.hub.panic");
                state.repair();
                Err(BackendError::Internal {
                    reason: format!("the hub's {operation} handler panicked: {reason}"),
                })
            }
        }
    }

    /// Applies one operation and answers its caller, inside the caller's operation span when
    /// it carries one.
    pub(crate) fn apply(&mut self, Queued { op, span }: Queued, ctx: &mut Context<Self>) {
        match span {
            None => self.apply_op(op, ctx),
            Some(span) => {
                let mut op = Some(op);
                // The span's own subscriber, made the default while applying: on a hub thread
                // of its own, the thread's default may be another (or none), and the events
                // the hub emits for this operation belong where its span goes.
                span.with_subscriber(|(_, dispatch)| {
                    tracing::dispatcher::with_default(dispatch, || {
                        let _entered = span.enter();
                        if let Some(op) = op.take() {
                            self.apply_op(op, ctx);
                        }
                    })
                });
                if let Some(op) = op {
                    self.apply_op(op, ctx);
                }
            }
        }
        if let Some(state) = &self.state {
            self.shared.publish_waiters(state.waiter_count());
        }
    }

    fn apply_op(&mut self, op: Op, ctx: &mut Context<Self>) {
        match op {
            Op::Store {
                task_id,
                record,
                at,
                answer,
            } => {
                let status = record.status;
                let (fold, reply) = match answer {
                    StoreAnswer::Pipelined(fold) => (Some(fold), None),
                    other => (None, Some(other)),
                };
                let pipelined = fold.is_some();
                let outcome =
                    self.with_state("store", |state| state.store(&task_id, record, at, fold));
                tracing::debug!(task_id = %task_id, status = %status, ok = outcome.is_ok(), "resulthub.hub.store");
                match (reply, outcome) {
                    (Some(StoreAnswer::Done(reply)), outcome) => {
                        let _ = reply.send(outcome.map(drop));
                    }
                    #[cfg(feature = "web")]
                    (Some(StoreAnswer::Merged(reply)), outcome) => {
                        let _ = reply.send(outcome);
                    }
                    (_, Err(error)) if pipelined => {
                        // A pipelined store failed after its caller had returned (was told Ok):
                        // only a bug (a panic) gets here.
                        tracing::error!(task_id = %task_id, %error, "resulthub.hub.store_failed");
                    }
                    _ => {}
                }
            }
            Op::Get { task_id, reply } => {
                tracing::debug!(task_id = %task_id, "resulthub.hub.get");
                let _ = reply.send(self.with_state("get", |state| state.get(&task_id)));
            }
            Op::WaitFor {
                task_id,
                poll,
                reply,
            } => {
                tracing::debug!(task_id = %task_id, "resulthub.hub.wait_for");
                match self.with_state("wait_for", |state| state.wait_for(&task_id)) {
                    Ok(None) if poll => {
                        let timeout = Duration::ZERO;
                        let task_id = task_id.to_string();
                        let _ = reply.send(Err(BackendError::Timeout { task_id, timeout }));
                    }
                    Ok(None) => {
                        if let Some(state) = &mut self.state {
                            state.add_waiter(task_id, reply);
                        }
                    }
                    answer => {
                        let _ = reply.send(
                            answer.and_then(|record| record.ok_or_else(BackendError::hub_stopped)),
                        );
                    }
                }
            }
            Op::CancelWait { task_id } => {
                tracing::debug!(task_id = %task_id, "resulthub.hub.cancel_wait");
                let _ = self.with_state("cancel_wait", |state| {
                    state.cancel_wait(&task_id);
                    Ok(())
                });
            }
            Op::Delete { task_id, reply } => {
                tracing::debug!(task_id = %task_id, "resulthub.hub.delete");
                let _ = reply.send(self.with_state("delete", |state| state.delete(&task_id)));
            }
            Op::Clear { reply } => {
                let removed = self.with_state("clear", |state| Ok(state.clear()));
                tracing::debug!(removed = ?removed, "resulthub.hub.clear");
                let _ = reply.send(removed);
            }
            Op::ListByStatus {
                status,
                limit,
                offset,
                reply,
            } => {
                tracing::debug!(status = %status, limit = ?limit, offset, "resulthub.hub.list_by_status");
                let page = self.with_state("list_by_status", |state| {
                    Ok(state.list_by_status(status, limit, offset))
                });
                let _ = reply.send(page);
            }
            Op::ListPage {
                status,
                limit,
                after,
                reply,
            } => {
                tracing::debug!(status = %status, limit, after = ?after, "resulthub.hub.list_page");
                let page = self.with_state("list_page", |state| {
                    Ok(state.list_page(status, limit, after))
                });
                let _ = reply.send(page);
            }
            Op::Stats { reply } => {
                tracing::debug!("resulthub.hub.stats");
                let _ = reply.send(self.with_state("stats", |state| Ok(state.stats())));
            }
            Op::Snapshot { reply } => {
                let records = self.with_state("snapshot", |state| Ok(state.snapshot()));
                tracing::debug!(ok = records.is_ok(), "resulthub.hub.snapshot");
                let _ = reply.send(records);
            }
            Op::Restore { records, reply } => {
                let outcome = self.with_state("restore", |state| state.restore(records));
                tracing::debug!(ok = outcome.is_ok(), "resulthub.hub.restore");
                let _ = reply.send(outcome);
            }
            Op::Subscribe {
                resumable,
                after,
                reply,
            } => {
                tracing::debug!(resumable, "resulthub.hub.subscribe");
                let _ = reply.send(
                    self.with_state("subscribe", |state| Ok(state.subscribe(resumable, after))),
                );
            }
            Op::Shutdown { snapshot, reply } => {
                let outcome = if snapshot {
                    self.with_state("snapshot", |state| Ok(state.snapshot()))
                } else if self.state.is_some() {
                    Ok(Vec::new())
                } else {
                    Err(BackendError::hub_stopped())
                };
                match &outcome {
                    // No snapshot, no shutdown: the records are still here for another try.
                    Err(BackendError::Internal { .. }) => self.shared.reopen(),
                    _ => self.close_for_good(ctx),
                }
                let _ = reply.send(outcome);
            }
        }
    }

    fn close_for_good(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!(open = self.state.is_some(), "resulthub.hub.shutdown");
        // Dropping the state drops every waiter's reply: pending waits end with Unavailable.
        self.state = None;
        self.shared.close();
        // A supervisor restarts a stopped actor; with no state it stays inert and answers
        // Unavailable, which is what "stopped for good" means to its callers.
        ctx.stop();
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

impl std::fmt::Debug for ResultHub {
    /// A summary: a hub may hold a million records.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("ResultHub");
        match &self.state {
            Some(state) => debug
                .field("records", &state.len())
                .field("waiters", &state.waiter_count()),
            None => debug.field("stopped", &true),
        };
        debug.finish_non_exhaustive()
    }
}

impl Default for ResultHub {
    /// A hub with [`HubConfig::default`]; this is what `from_registry` starts.
    fn default() -> Self {
        ResultHub::new(HubConfig::default())
    }
}

impl Actor for ResultHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::debug!(open = self.state.is_some(), "resulthub.hub.started");
        self.shared.hub_started(ctx.address().downgrade());
        // Whatever was queued before the hub ran (or while it restarted).
        self.drain(ctx);
        // Every operation drops expired records before it reads, so expiry is exact without
        // this; the sweep only gives the memory back when no operation comes.
        if let Some(period) = self
            .state
            .as_ref()
            .and_then(|state| sweep_period(state.config()))
        {
            ctx.run_interval(period, |hub, _| {
                let _ = hub.with_state("sweep", |state| {
                    state.expire_due();
                    Ok(())
                });
            });
        }
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        tracing::debug!(open = self.state.is_some(), "resulthub.hub.stopped");
        if self.stops_its_system {
            if let Some(system) = actix_rt::System::try_current() {
                system.stop();
            }
        }
    }
}

impl Drop for ResultHub {
    fn drop(&mut self) {
        // Nothing will apply what is queued: every caller still waiting hears Unavailable.
        self.shared.hub_gone();
    }
}

/// A quarter of the shortest TTL, between 10 ms and 1 s; `None` without TTLs.
fn sweep_period(config: &HubConfig) -> Option<Duration> {
    let shortest = match (config.result_ttl, config.pending_ttl) {
        (Some(a), Some(b)) => a.min(b),
        (Some(ttl), None) | (None, Some(ttl)) => ttl,
        (None, None) => return None,
    };
    Some((shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
}

impl Supervised for ResultHub {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // Its state is kept.
        tracing::warn!(open = self.state.is_some(), "resulthub.hub.restarting");
        // `started` drains what came meanwhile; no push needs to ring until then.
        self.shared.schedule();
    }
}

impl SystemService for ResultHub {}

/// Tells the hub that operations are queued.
#[derive(Debug)]
pub(crate) struct Doorbell;

impl Message for Doorbell {
    type Result = ();
}

impl Handler<Doorbell> for ResultHub {
    type Result = ();

    fn handle(&mut self, _: Doorbell, ctx: &mut Context<Self>) {
        self.drain(ctx);
    }
}

/// An operation sent through the mailbox, by a handle that does not know the hub's queue yet
/// ([`HubHandle::from_addr`](crate::HubHandle::from_addr)).
#[derive(Debug)]
pub(crate) struct Mailed(pub(crate) Queued);

impl Message for Mailed {
    type Result = ();
}

impl Handler<Mailed> for ResultHub {
    type Result = ();

    fn handle(&mut self, Mailed(queued): Mailed, ctx: &mut Context<Self>) {
        self.drain_all(ctx);
        self.apply(queued, ctx);
    }
}

/// Tells a handle made by `from_addr` where the hub's queue is.
#[derive(Debug)]
pub(crate) struct Introduce(pub(crate) Arc<OnceLock<Arc<Shared>>>);

impl Message for Introduce {
    type Result = ();
}

impl Handler<Introduce> for ResultHub {
    type Result = ();

    fn handle(&mut self, Introduce(cell): Introduce, _: &mut Context<Self>) {
        let _ = cell.set(self.shared());
    }
}
