//! One pub/sub connection per backend, while it has waiters: a dispatcher task holds a single
//! pattern subscription to every completion channel of the prefix and wakes the local waiters
//! of the id announced.
//!
//! A wake-up only says "read the key again": the waiter reads the record itself, and never
//! trusts a message over the stored record. A completion announced while the link was down is
//! caught on reconnection, when the dispatcher reads every waited key (batched) and wakes the
//! waiters of the tasks that finished.
//!
//! The dispatcher lives only while there are waiters: once the table has been empty for the
//! linger, it retires and its connection closes, so an idle backend receives no completion
//! traffic. Retiring and registering decide under the table's lock: a waiter registered while
//! the table says a dispatcher runs is served by it (it cannot retire while the table holds a
//! waiter), and a waiter that finds none starts one and waits for its subscription before its
//! first read.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::cluster::Subscriber;
use super::keys::Keys;
use super::pool::Pool;
use crate::{BackendError, Limit};

/// The state of the pub/sub link, as waiters see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// No dispatcher has run yet, or it is (re)connecting for the first time since.
    Connecting,
    /// Subscribed: every completion published from now on reaches the waiters.
    Up,
    /// The link failed; the dispatcher retries after a backoff.
    Down(LinkFailure),
}

/// Why the pub/sub link is down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkFailure {
    pub(crate) reason: String,
    /// The server answered with an error (e.g. an ACL refusing `PSUBSCRIBE`), rather than
    /// being unreachable: retrying will not help a waiter.
    pub(crate) refused: bool,
}

impl LinkFailure {
    fn unreachable(reason: String) -> Self {
        LinkFailure {
            reason,
            refused: false,
        }
    }

    fn from_error(context: &str, error: &redis::RedisError) -> Self {
        LinkFailure {
            reason: format!("{context}: {error}"),
            refused: !super::errors::is_connection_error(error),
        }
    }
}

/// How the dispatcher connects and checks its link.
#[derive(Clone, Debug)]
pub(crate) struct LinkSettings {
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) health_check_interval: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    /// How long the dispatcher outlives the last waiter.
    pub(crate) linger: Duration,
}

/// One waiting `wait_for` call.
#[derive(Debug, Default)]
struct Slot {
    wake: Notify,
}

/// The local waiters, by task id, and whether a dispatcher serves them; one lock, so that
/// registering and retiring cannot cross.
#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Vec<Arc<Slot>>>,
    /// Waiters in `by_id`, for the bound and for `count` without a walk.
    count: usize,
    /// Registrations ever made: a linger that saw it move has seen a waiter come (and go).
    arrivals: u64,
    /// Event feeds that keep the dispatcher (and its subscription) alive without waiting for
    /// an id: `RedisBackend`'s events while someone is subscribed to them.
    listeners: usize,
    /// A dispatcher runs and has not decided to retire.
    running: bool,
    dispatcher: Option<JoinHandle<()>>,
}

/// The local waiters, by task id, and the dispatcher that wakes them.
#[derive(Debug)]
pub(crate) struct Waiters {
    table: Mutex<Table>,
    link: watch::Sender<Link>,
    max_waiters: Option<usize>,
    /// Told when the last waiter leaves.
    emptied: Notify,
    stop: Notify,
    reconnect_now: Notify,
    pool: Arc<Pool>,
    runtime: Handle,
    keys: Keys,
    subscriber: Subscriber,
    settings: LinkSettings,
    /// Told every completion announced, besides the waiters of its id: the event feed, while
    /// it runs.
    completion_hook: Mutex<Option<CompletionHook>>,
    /// The running dispatcher has been without its subscription since its last one (or its
    /// first attempt failed): the next subscription is announced as
    /// [`Announcement::Resubscribed`].
    lost: AtomicBool,
}

/// What the dispatcher tells the completion hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Announcement<'a> {
    /// A completion was announced for this id.
    Completed(&'a str),
    /// The subscription was made again after a time without it (a lost link, or a first
    /// attempt that failed): what was announced meanwhile was not received. Told in order
    /// with the completions, however fast the link came back.
    Resubscribed,
}

/// Called with each [`Announcement`] of the dispatcher; must not wait.
pub(crate) struct CompletionHook(pub(crate) Box<dyn Fn(Announcement<'_>) + Send + Sync>);

impl std::fmt::Debug for CompletionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompletionHook")
    }
}

impl Waiters {
    pub(crate) fn new(
        subscriber: Subscriber,
        keys: Keys,
        settings: LinkSettings,
        max_waiters: Option<usize>,
        pool: Arc<Pool>,
        runtime: Handle,
    ) -> Arc<Self> {
        Arc::new(Waiters {
            table: Mutex::new(Table::default()),
            link: watch::Sender::new(Link::Connecting),
            max_waiters,
            emptied: Notify::new(),
            stop: Notify::new(),
            reconnect_now: Notify::new(),
            pool,
            runtime,
            keys,
            subscriber,
            settings,
            completion_hook: Mutex::new(None),
            lost: AtomicBool::new(false),
        })
    }

    /// Keeps the dispatcher running, subscribed, until the [`Listening`] is dropped (then it
    /// retires after the linger if no waiter is left either).
    pub(crate) fn listen(self: &Arc<Self>) -> Listening {
        let mut table = lock(&self.table);
        table.listeners += 1;
        table.arrivals += 1;
        self.ensure_dispatcher(&mut table);
        Listening {
            waiters: Arc::clone(self),
        }
    }

    /// Sets (or, with `None`, removes) the function told every completion received.
    pub(crate) fn set_completion_hook(&self, hook: Option<CompletionHook>) {
        *lock(&self.completion_hook) = hook;
    }

    /// The link's state, to follow its changes.
    pub(crate) fn watch_link(&self) -> watch::Receiver<Link> {
        self.link.subscribe()
    }

    /// How long the dispatcher outlives the last waiter or listener.
    pub(crate) fn linger(&self) -> Duration {
        self.settings.linger
    }

    /// How long a connection may take to be made.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.settings.connect_timeout
    }

    fn announce(&self, announcement: Announcement<'_>) {
        if let Some(hook) = lock(&self.completion_hook).as_ref() {
            (hook.0)(announcement);
        }
    }

    /// Registers a waiter on `task_id` and makes sure a dispatcher runs. The waiter is
    /// registered before it reads the key, so no completion can fall between the two.
    ///
    /// At `max_waiters` nothing is registered: `Overloaded`, naming the limit.
    pub(crate) fn register(self: &Arc<Self>, task_id: &str) -> Result<Registration, BackendError> {
        let slot = Arc::new(Slot::default());
        let mut table = lock(&self.table);
        if let Some(max) = self.max_waiters {
            if table.count >= max {
                let count = table.count;
                return Err(BackendError::overloaded(
                    Limit::MaxWaiters,
                    max,
                    count,
                    format!("{count} waiters, at max_waiters ({max})"),
                ));
            }
        }
        table
            .by_id
            .entry(task_id.to_owned())
            .or_default()
            .push(Arc::clone(&slot));
        table.count += 1;
        table.arrivals += 1;
        self.ensure_dispatcher(&mut table);
        Ok(Registration {
            waiters: Arc::clone(self),
            task_id: task_id.to_owned(),
            slot,
        })
    }

    /// How many waiters are registered.
    pub(crate) fn count(&self) -> usize {
        lock(&self.table).count
    }

    /// The link as it is now.
    pub(crate) fn link(&self) -> Link {
        self.link.borrow().clone()
    }

    /// Ends the dispatcher: the backend is gone.
    pub(crate) fn stop(&self) {
        self.stop.notify_one();
    }

    /// Cuts the dispatcher's pause between reconnections short: a waiter needs the link, and
    /// the server answered it.
    pub(crate) fn reconnect_now(&self) {
        self.reconnect_now.notify_one();
    }

    /// Starts the dispatcher, on the runtime the backend was built on (where its connections
    /// live), unless one runs. Under the table's lock: a dispatcher that decided to retire has
    /// cleared `running` under it, so it is never counted on.
    fn ensure_dispatcher(self: &Arc<Self>, table: &mut Table) {
        let alive = table
            .dispatcher
            .as_ref()
            .is_some_and(|task| !task.is_finished());
        if table.running && alive {
            return;
        }
        table.running = true;
        // A new dispatcher's first subscription is not a resubscription.
        self.lost.store(false, Ordering::Relaxed);
        // A waiter must see the new dispatcher's subscription, not an old link's state.
        self.link.send_replace(Link::Connecting);
        // The task holds the registry weakly: dropping the last backend ends it.
        let weak = Arc::downgrade(self);
        table.dispatcher = Some(self.runtime.spawn(async move { dispatch(weak).await }));
    }

    /// Resolves once the table has stayed empty for the linger, having marked the dispatcher
    /// retired (under the lock, so a waiter arriving after it starts a new one). A waiter that
    /// came during the linger starts it over once the table is empty again.
    async fn retired(&self) {
        loop {
            let arrivals = loop {
                let mut emptied = pin!(self.emptied.notified());
                // Registered before the check: a waiter leaving after it is seen.
                emptied.as_mut().enable();
                {
                    let table = lock(&self.table);
                    if table.count == 0 && table.listeners == 0 {
                        break table.arrivals;
                    }
                }
                emptied.await;
            };
            tokio::time::sleep(self.settings.linger).await;
            let mut table = lock(&self.table);
            if table.count == 0 && table.listeners == 0 && table.arrivals == arrivals {
                table.running = false;
                self.link.send_replace(Link::Connecting);
                return;
            }
        }
    }

    fn wake(&self, task_id: &str) {
        if let Some(slots) = lock(&self.table).by_id.get(task_id) {
            for slot in slots {
                slot.wake.notify_one();
            }
        }
    }

    /// After a reconnection: wakes the waiters whose task finished while the link was down.
    /// One `MGET` per batch of waited ids rather than one `GET` per waiter, so that a server
    /// just back is not hit by every waiter at once. A batch that cannot be read wakes all its
    /// waiters, whose own reads then decide.
    async fn recheck(&self) {
        let ids: Vec<String> = lock(&self.table).by_id.keys().cloned().collect();
        for batch in ids.chunks(RECHECK_BATCH) {
            let keys: Vec<String> = batch.iter().map(|id| self.keys.task(id)).collect();
            match self.pool.mget(&keys).await {
                Ok(values) => {
                    for (id, value) in batch.iter().zip(values) {
                        if value.as_deref().is_some_and(may_be_finished) {
                            self.wake(id);
                        }
                    }
                }
                Err(_) => {
                    for id in batch {
                        self.wake(id);
                    }
                }
            }
        }
    }

    fn unregister(&self, task_id: &str, slot: &Arc<Slot>) {
        let mut table = lock(&self.table);
        let Some(slots) = table.by_id.get_mut(task_id) else {
            return;
        };
        let before = slots.len();
        slots.retain(|other| !Arc::ptr_eq(other, slot));
        let removed = before - slots.len();
        if slots.is_empty() {
            table.by_id.remove(task_id);
        }
        table.count -= removed;
        if table.count == 0 && table.listeners == 0 {
            self.emptied.notify_waiters();
        }
    }
}

/// An event feed's hold on the dispatcher ([`Waiters::listen`]), let go on drop.
#[derive(Debug)]
pub(crate) struct Listening {
    waiters: Arc<Waiters>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let mut table = lock(&self.waiters.table);
        table.listeners -= 1;
        if table.count == 0 && table.listeners == 0 {
            self.waiters.emptied.notify_waiters();
        }
    }
}

/// A waiter's place in the registry, removed on drop: a `wait_for` that returned, timed out or
/// was dropped leaves nothing behind.
#[derive(Debug)]
pub(crate) struct Registration {
    waiters: Arc<Waiters>,
    task_id: String,
    slot: Arc<Slot>,
}

impl Registration {
    /// Resolves once the subscription is live (`Ok`), or the link failed (`Err` with why).
    /// A wait started while the link is down fails at once rather than waiting for a server
    /// that may not come back.
    pub(crate) async fn subscribed(&self) -> Result<(), LinkFailure> {
        let mut link = self.waiters.link.subscribe();
        let outcome = link
            .wait_for(|state| !matches!(state, Link::Connecting))
            .await
            .map(|state| state.clone());
        match outcome {
            Ok(Link::Up) => Ok(()),
            Ok(Link::Down(failure)) => Err(failure),
            Ok(Link::Connecting) | Err(_) => Err(LinkFailure::unreachable(
                "the subscription ended".to_owned(),
            )),
        }
    }

    /// Resolves once the subscription is live, however long the link stays down.
    pub(crate) async fn up(&self) {
        let mut link = self.waiters.link.subscribe();
        // The sender lives as long as the registry this registration holds.
        let _ = link.wait_for(|state| *state == Link::Up).await;
    }

    /// Resolves at the next completion announced for this id, or reconnection of the link.
    /// A wake-up sent while the waiter was busy reading is kept for the next call.
    pub(crate) async fn woken(&self) {
        self.slot.wake.notified().await;
    }

    /// The link as it is now.
    pub(crate) fn link(&self) -> Link {
        self.waiters.link()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.waiters.unregister(&self.task_id, &self.slot);
    }
}

/// The dispatcher: connect, subscribe, wake everyone to re-read, fan completions out; on a lost
/// or silent link, back off and do it again. Ends when the backend is dropped, or retires when
/// the table has been empty for the linger (its connection closes with it).
async fn dispatch(weak: std::sync::Weak<Waiters>) {
    // Held for this life only: the backend's drop stops it, an empty table retires it.
    let Some(waiters) = weak.upgrade() else {
        return;
    };
    tokio::select! {
        () = links(&waiters) => {}
        () = waiters.retired() => tracing::debug!("resulthub.redis.pubsub_idle"),
        () = waiters.stop.notified() => {}
    }
}

/// Lives of the link, one after another, with a backoff in between; never ends by itself.
async fn links(waiters: &Arc<Waiters>) {
    let settings = &waiters.settings;
    let mut backoff = settings.backoff_min;
    let mut was_up = false;
    loop {
        let failure = serve(waiters, &mut backoff, &mut was_up).await;
        // Until the next subscription, completions announced go unreceived.
        waiters.lost.store(true, Ordering::Relaxed);
        tracing::warn!(reason = %failure.reason, retry_in = ?backoff, "resulthub.redis.pubsub_down");
        waiters.link.send_replace(Link::Down(failure));
        let pause = tokio::time::sleep(backoff);
        tokio::select! {
            () = pause => {}
            () = waiters.reconnect_now.notified() => {}
        }
        backoff = backoff.saturating_mul(2).min(settings.backoff_max);
    }
}

/// One life of the link. Returns why it ended.
async fn serve(waiters: &Arc<Waiters>, backoff: &mut Duration, was_up: &mut bool) -> LinkFailure {
    let settings = &waiters.settings;
    let connect = async {
        let mut pubsub = waiters
            .subscriber
            .pubsub(&waiters.pool, &waiters.runtime)
            .await?;
        pubsub.psubscribe(waiters.keys.complete_pattern()).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(error)) => return LinkFailure::from_error("pub/sub connection failed", &error),
        Err(_) => {
            return LinkFailure::unreachable(format!(
                "pub/sub connection not made within {:?}",
                settings.connect_timeout
            ));
        }
    };
    let (mut sink, mut messages) = pubsub.split();
    *backoff = settings.backoff_min;
    waiters.link.send_replace(Link::Up);
    if waiters.lost.swap(false, Ordering::Relaxed) {
        waiters.announce(Announcement::Resubscribed);
    }
    // Completions published while there was no subscription are only in the keys. Waiters
    // that came before this dispatcher's first subscription read once it is live anyway.
    if std::mem::replace(was_up, true) {
        // Apart from the message loop, which must not wait on it.
        let registry = Arc::downgrade(waiters);
        waiters.runtime.spawn(async move {
            if let Some(waiters) = registry.upgrade() {
                waiters.recheck().await;
            }
        });
    }
    tracing::debug!("resulthub.redis.pubsub_up");

    let mut health = tokio::time::interval(settings.health_check_interval);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    health.tick().await;
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => {
                    if let Some(task_id) = waiters.keys.completed_id(message.get_channel_name().as_bytes()) {
                        waiters.wake(task_id);
                        waiters.announce(Announcement::Completed(task_id));
                    }
                }
                None => return LinkFailure::unreachable("pub/sub connection lost".to_owned()),
            },
            _ = health.tick() => {
                let ping = tokio::time::timeout(settings.response_timeout, sink.ping::<redis::Value>());
                match ping.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        return LinkFailure::from_error("pub/sub health check failed", &error);
                    }
                    Err(_) => {
                        return LinkFailure::unreachable(format!(
                            "pub/sub connection silent for {:?}",
                            settings.response_timeout
                        ));
                    }
                }
            }
        }
    }
}

/// How many waited ids one `MGET` of a recheck reads.
const RECHECK_BATCH: usize = 512;

/// Whether a stored record may end a wait: terminal, or not readable as a record at all (the
/// waiter's own read then reports the `Codec` error).
fn may_be_finished(bytes: &[u8]) -> bool {
    super::stored_status(bytes).is_none_or(|status| status.is_terminal())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding the lock; should it, the map is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
