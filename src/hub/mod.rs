//! The hub: an actix actor that owns every record and waiter.
//!
//! One actor owning all state means no locks, a single order of events that every caller
//! observes, and waiters that are fulfilled in the same step as the store that completes them,
//! so a wake-up can never be lost between a check and a registration.

mod handlers;
pub(crate) use handlers::pack_checked;
pub(crate) mod pending;
pub(crate) mod state;
pub(crate) mod view;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Recipient, Supervised, SystemService};
use tokio::sync::Semaphore;

use crate::messages::CancelWait;
use crate::{HubConfig, TerminalPolicy};
use state::HubState;
use view::View;

/// How many stores the handles of one hub may have sent without waiting for the hub to apply
/// them. Past it, a store is sent at once but waits for its own answer: the hub's queue, and
/// the time a store spends in it, stay bounded however fast the producers are. Measured (docs/benchmarks.md): 256 places
/// let a fast producer queue a few milliseconds of work ahead of the waiters it wakes (wake
/// p99 3-5 ms); 32 keep it under half a millisecond at the same throughput.
pub(crate) const MAX_UNACKED_STORES: usize = 32;

/// What a hub shares with its handles.
#[derive(Debug)]
pub(crate) struct HubShared {
    pub(crate) config: HubConfig,
    /// Set before the hub shuts down, so a store sent without waiting can tell whether it
    /// raced with the shutdown.
    closed: AtomicBool,
    /// Places for stores sent without waiting (`MAX_UNACKED_STORES`).
    pub(crate) unacked: Arc<Semaphore>,
    /// What `get` reads without a message, when stores are pipelined.
    pub(crate) view: Option<Arc<View>>,
}

impl HubShared {
    fn new(config: HubConfig) -> Self {
        let mut shared = HubShared {
            config,
            closed: AtomicBool::new(false),
            unacked: Arc::new(Semaphore::new(MAX_UNACKED_STORES)),
            view: None,
        };
        if shared.pipelines_stores() {
            shared.view = Some(Arc::new(View::default()));
        }
        shared
    }

    /// Whether a store that passed the handle's checks may return before the hub applied it:
    /// when asked for, and only if the hub cannot refuse it (no `max_results`, no
    /// `max_record_bytes`, `Overwrite`), so that an early `Ok` can never hide a refusal.
    pub(crate) fn pipelines_stores(&self) -> bool {
        self.config.pipeline_stores
            && self.config.terminal_policy == TerminalPolicy::Overwrite
            && self.config.max_results.is_none()
            && self.config.max_record_bytes.is_none()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn reopen(&self) {
        self.closed.store(false, Ordering::SeqCst);
    }
}

/// The result hub: an actix [`Actor`] that owns all records, the per-status listing index and
/// the waiters, and handles one message per operation (see [`messages`](crate::messages)).
///
/// Start it with [`Actor::start`], under [`actix::Supervisor`], or as a system service
/// ([`SystemService::from_registry`]), then talk to it through a
/// [`HubHandle`](crate::HubHandle), which implements [`ResultBackend`](crate::ResultBackend).
/// From code without an actix System, [`HubHandle::spawn`](crate::HubHandle::spawn) runs one on
/// its own thread.
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
    /// `None` once shut down: every message is then answered with `Unavailable`.
    state: Option<HubState>,
    shared: Arc<HubShared>,
    /// The recipient every `PendingWait` cancels through, made once rather than per waiter;
    /// weak, so that it keeps no sender to the hub's own mailbox alive.
    cancel: Weak<Recipient<CancelWait>>,
}

impl ResultHub {
    /// A hub with these limits, ready for [`Actor::start`] or [`actix::Supervisor::start`].
    pub fn new(config: HubConfig) -> Self {
        let shared = Arc::new(HubShared::new(config.clone()));
        ResultHub {
            state: Some(HubState::new(config, shared.view.clone())),
            shared,
            cancel: Weak::new(),
        }
    }

    pub(crate) fn shared(&self) -> Arc<HubShared> {
        Arc::clone(&self.shared)
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
        tracing::debug!(name: "hub.started", open = self.state.is_some());
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
        tracing::debug!(name: "hub.stopped", open = self.state.is_some());
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
        tracing::warn!(name: "hub.restarting", open = self.state.is_some(), "result hub restarting; state kept");
    }
}

impl SystemService for ResultHub {}
