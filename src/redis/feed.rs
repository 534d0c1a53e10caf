//! [`RedisBackend`]'s events: what this process stores and deletes through the backend, and
//! the completions any process announces on `{prefix}:complete:{id}` (flowrra's workers
//! included), each read back and sent as a `stored` event carrying the record.
//!
//! The completions come through the waiters' dispatcher, which holds the backend's one pattern
//! subscription: while someone is subscribed to events the feed holds the dispatcher open (a
//! [`Listening`]), and lets go once the last subscriber has been gone for the linger, so an
//! idle backend receives no completion traffic. The events themselves go through the same
//! [`EventBus`] as the hub's: ids, a buffer of the latest events for subscribers that resume,
//! `Lagged` for one that falls behind.
//!
//! What the feed cannot see it says: a time without the subscription (the link was lost, or
//! nobody was subscribed and the feed stopped) is a gap, sent as `Lagged { missed: 0 }` to
//! live subscribers when the link is back, and kept in the buffer for resuming ones.
//!
//! A terminal store of this process is seen twice, as its own store and as the completion it
//! announced; the feed remembers a hash of the last record it sent per id and drops a
//! completion whose record reads the same.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::waiters::{Announcement, CompletionHook, Link, Listening};
use super::{Inner, RedisBackend};
use crate::compact::CompactRecord;
use crate::events::{Backlog, EventBus};
use crate::{
    BackendError, EventFilter, EventId, EventKind, EventStream, HubConfig, TaskResult, TaskStatus,
    validate,
};

/// Completions queued for the feed's reads; past it, one is dropped and a gap reported.
const QUEUE: usize = 4096;

/// Completions read with one `MGET`.
const BATCH: usize = 256;

/// Ids whose last record sent is remembered, to drop the echo of this process's own terminal
/// stores; past it the memory starts over (an echo may then come through as a repeat).
const REMEMBERED: usize = 16_384;

/// The events of one backend, shared by its clones.
#[derive(Debug)]
pub(super) struct Feed {
    state: Mutex<State>,
    /// Hashes records for `sent`, outside the lock.
    hasher: RandomState,
    /// Told when the last subscriber leaves.
    idle: Arc<Notify>,
}

#[derive(Debug)]
struct State {
    bus: EventBus,
    /// A hash of the last record sent, per id.
    sent: HashMap<String, u64>,
    /// Live subscriptions.
    subscribers: usize,
    /// The completion reader runs (and holds the dispatcher).
    running: bool,
    reader: Option<AbortOnDropHandle<()>>,
}

impl Feed {
    pub(super) fn new(config: &HubConfig) -> Self {
        Feed {
            state: Mutex::new(State {
                bus: EventBus::new(config),
                sent: HashMap::new(),
                subscribers: 0,
                running: false,
                reader: None,
            }),
            hasher: RandomState::new(),
            idle: Arc::new(Notify::new()),
        }
    }

    /// Live event subscriptions.
    pub(super) fn subscribers(&self) -> usize {
        self.lock().subscribers
    }

    /// Whether an event would be sent (or kept for a subscriber that resumes): callers skip
    /// the work of one otherwise.
    pub(super) fn active(&self) -> bool {
        self.lock().bus.active()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing here panics while holding the lock; should it, the state is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Feed {
    /// Sends `record` as stored, unless it is the record last sent for its id. The record is
    /// hashed and packed outside the lock, which every store and the reader take: only the
    /// comparison, the memory of it and the event's emission are under it.
    fn stored(&self, task_id: &str, bytes: &[u8], record: impl FnOnce() -> TaskResult) {
        let hash = self.hasher.hash_one(bytes);
        {
            let state = self.lock();
            if !state.bus.active() || state.sent.get(task_id) == Some(&hash) {
                return;
            }
        }
        let record = Arc::new(CompactRecord::pack(record()));
        let task_id_arc: Arc<str> = Arc::from(task_id);
        let mut state = self.lock();
        // Decided again: another thread may have sent the same record meanwhile.
        if !state.bus.active() || state.sent.get(task_id) == Some(&hash) {
            return;
        }
        if state.sent.len() >= REMEMBERED {
            state.sent.clear();
        }
        state.sent.insert(task_id.to_owned(), hash);
        state.bus.emit(
            EventKind::Stored,
            &task_id_arc,
            &record,
            &crate::Clock::system(),
        );
    }
}

/// A subscription's hold on the feed: the reader stops (after the linger) once none is left.
struct Subscriber(Weak<Inner>);

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            let mut state = inner.feed.lock();
            state.subscribers -= 1;
            if state.subscribers == 0 {
                inner.feed.idle.notify_one();
            }
        }
    }
}

impl Inner {
    /// A store of this process was written.
    pub(super) fn announce_stored(&self, task_id: &str, record: &TaskResult, bytes: &[u8]) {
        self.feed.stored(task_id, bytes, || record.clone());
    }

    /// A delete of this process removed a record of `status`.
    pub(super) fn announce_deleted(&self, task_id: &str, status: TaskStatus) {
        if !self.feed.active() {
            return;
        }
        let removed = Arc::new(CompactRecord::pack(TaskResult::new(task_id, status)));
        let mut state = self.feed.lock();
        if !state.bus.active() {
            return;
        }
        state.sent.remove(task_id);
        state.bus.emit(
            EventKind::Deleted,
            &Arc::from(task_id),
            &removed,
            &crate::Clock::system(),
        );
    }

    /// A clear of this process ran (whole or in part): the records it removed are not sent
    /// one by one (Redis's `UNLINK` does not say which they were), so subscribers are told of
    /// a gap (`Lagged` with `missed` 0) and read the state afresh, as after a lost link.
    pub(super) fn announce_cleared(&self) {
        let mut state = self.feed.lock();
        state.sent.clear();
        state.bus.gap();
    }

    /// The status of the record a delete is about to remove, read only when an event would
    /// carry it; `None` when there is none (or it cannot be read: the delete goes on).
    pub(super) async fn status_before_delete(&self, task_id: &str) -> Option<TaskStatus> {
        if !self.feed.active() {
            return None;
        }
        let bytes = self.read(task_id).await.ok()??;
        super::stored_status(&bytes)
    }

    async fn subscribe_events(
        self: &Arc<Self>,
        filter: EventFilter,
        after: Option<EventId>,
        resumable: bool,
    ) -> Result<EventStream, BackendError> {
        if let Some(task_id) = &filter.task_id {
            validate::id_length(task_id, &self.limits)?;
        }
        let (backlog, receiver) = {
            let mut state = self.feed.lock();
            let subscribed = if resumable {
                state.bus.subscribe_after(after)
            } else {
                (Backlog::default(), state.bus.subscribe())
            };
            state.subscribers += 1;
            if !state.running {
                state.running = true;
                state.reader = Some(self.start_reader());
            }
            subscribed
        };
        let guard = Subscriber(Arc::downgrade(self));
        // Returned once the subscription is live (or the link is known to be down), so that
        // a completion published after this call returns is not missed for a link still
        // being made.
        let mut link = self.waiters.watch_link();
        let _ = tokio::time::timeout(
            self.waiters.connect_timeout(),
            link.wait_for(|state| *state != Link::Connecting),
        )
        .await;
        Ok(EventStream::resumed(backlog, receiver, filter).with_guard(guard))
    }

    /// Starts the completion reader, with the dispatcher held and the hook set. Under the
    /// feed's lock, so a reader that stops cannot remove a newer reader's hook.
    fn start_reader(self: &Arc<Self>) -> AbortOnDropHandle<()> {
        let (queue, completions) = mpsc::channel::<Queued>(QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        let hook = {
            let overflowed = Arc::clone(&overflowed);
            CompletionHook(Box::new(move |announcement: Announcement<'_>| {
                let queued = match announcement {
                    Announcement::Completed(task_id) => Queued::Completed(task_id.to_owned()),
                    Announcement::Resubscribed => Queued::Resubscribed,
                };
                // Never waits: the dispatcher's loop must keep up with the server. A dropped
                // resubscription is a gap all the same.
                if queue.try_send(queued).is_err() {
                    overflowed.store(true, Ordering::Relaxed);
                }
            }))
        };
        self.waiters.set_completion_hook(Some(hook));
        let reader = Reader {
            inner: Arc::downgrade(self),
            completions,
            overflowed,
            idle: Arc::clone(&self.feed.idle),
            linger: self.waiters.linger(),
            listening: self.waiters.listen(),
        };
        AbortOnDropHandle::new(self.runtime.spawn(reader.run()))
    }

    /// Reads the records of a batch of completions and sends each as stored.
    async fn read_completions(&self, task_ids: &[String]) {
        let mut command = redis::cmd("MGET");
        for task_id in task_ids {
            command.arg(self.keys.task(task_id));
        }
        let values: Vec<Option<Vec<u8>>> =
            match self.pool.query::<Vec<Option<Vec<u8>>>>(&command).await {
                Ok(values) if values.len() == task_ids.len() => values,
                Ok(_) | Err(_) => {
                    tracing::warn!(
                        completions = task_ids.len(),
                        "resulthub.redis.events_unread"
                    );
                    self.feed.lock().bus.gap();
                    return;
                }
            };
        for (task_id, bytes) in task_ids.iter().zip(values) {
            // Deleted since: its delete, if this process's, was sent as such.
            let Some(bytes) = bytes else { continue };
            let record = match self.decode(task_id, &bytes) {
                Ok(record) => record,
                Err(error) => {
                    tracing::warn!(task_id, %error, "resulthub.redis.event_undecodable");
                    continue;
                }
            };
            self.feed.stored(task_id, &bytes, || record);
        }
    }
}

/// The task that turns completions into events while anyone is subscribed.
struct Reader {
    inner: Weak<Inner>,
    completions: mpsc::Receiver<Queued>,
    overflowed: Arc<AtomicBool>,
    idle: Arc<Notify>,
    linger: std::time::Duration,
    /// Keeps the dispatcher subscribed for as long as the reader runs.
    #[allow(dead_code)]
    listening: Listening,
}

/// What the dispatcher's hook queues for the reader, in the order it happened.
#[derive(Debug)]
enum Queued {
    /// A completion announced for this id.
    Completed(String),
    /// The subscription was made again: what was announced without it was not received.
    Resubscribed,
}

/// Runs its closure when dropped armed: a reader that ends other than by its decision to stop
/// (a panic, the task aborted) still marks the feed stopped, so the next subscriber starts a
/// new one.
struct OnAbnormalExit<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnAbnormalExit<F> {
    /// The exit was the reader's own decision: nothing to do on drop.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnAbnormalExit<F> {
    fn drop(&mut self) {
        if let Some(on_exit) = self.0.take() {
            on_exit();
        }
    }
}

impl Reader {
    async fn run(mut self) {
        let inner = self.inner.clone();
        let mut exit = OnAbnormalExit(Some(move || {
            let Some(inner) = inner.upgrade() else { return };
            let mut state = inner.feed.lock();
            if !state.running {
                return;
            }
            // No newer reader can have started while this one was marked running: its hook
            // is this one's.
            state.running = false;
            inner.waiters.set_completion_hook(None);
            state.bus.gap();
            tracing::warn!("resulthub.redis.events_reader_ended");
        }));
        // Set when the last subscriber left: the reader stops at it if none came back.
        let mut stop_at: Option<Instant> = None;
        loop {
            let stopping = async {
                match stop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                first = self.completions.recv() => {
                    // The hook went with the backend.
                    let Some(first) = first else { return };
                    let mut batch = Vec::new();
                    let mut resubscribed = false;
                    let mut next = Some(first);
                    while let Some(queued) = next.take() {
                        match queued {
                            Queued::Completed(task_id) => batch.push(task_id),
                            // Sent after the completions received before it.
                            Queued::Resubscribed => {
                                resubscribed = true;
                                break;
                            }
                        }
                        if batch.len() < BATCH {
                            next = self.completions.try_recv().ok();
                        }
                    }
                    let Some(inner) = self.inner.upgrade() else { return };
                    if self.overflowed.swap(false, Ordering::Relaxed) {
                        inner.feed.lock().bus.gap();
                    }
                    if !batch.is_empty() {
                        inner.read_completions(&batch).await;
                    }
                    if resubscribed {
                        // Up again after a time without the subscription: what was announced
                        // meanwhile is only in the keys.
                        tracing::debug!("resulthub.redis.events_gap");
                        inner.feed.lock().bus.gap();
                    }
                }
                () = self.idle.notified() => {
                    stop_at = Some(Instant::now() + self.linger);
                }
                () = stopping => {
                    let Some(inner) = self.inner.upgrade() else { return };
                    let mut state = inner.feed.lock();
                    if state.subscribers > 0 {
                        stop_at = None;
                        continue;
                    }
                    // Decided under the lock: a subscriber that comes after starts a new
                    // reader, whose hook this one must not remove.
                    state.running = false;
                    inner.waiters.set_completion_hook(None);
                    // From here on, other processes' completions go unseen.
                    state.bus.gap();
                    exit.disarm();
                    tracing::debug!("resulthub.redis.events_idle");
                    return;
                }
            }
        }
    }
}

impl RedisBackend {
    /// A stream of the changes this backend sees from now on: one
    /// [`TaskEvent`](crate::TaskEvent) per record this process stores or deletes through it
    /// (and its clones), and a `stored` event, carrying the record read after it, per
    /// completion any process announces on the prefix's `{prefix}:complete:{id}` channels
    /// (flowrra's workers and other resulthub processes included).
    ///
    /// What it cannot show: stores by other processes that announce nothing (in flowrra's
    /// layout only terminal stores are announced, so another process's PENDING, RUNNING and
    /// RETRYING stores are not seen), deletes and expiries by other processes or by Redis,
    /// and the records a [`clear`](crate::ResultBackend::clear) removes: a clear by this
    /// process is sent as a gap (`Lagged` with `missed` 0; the hub sends one `cleared` event
    /// per record instead). A completion's record is read when the
    /// announcement arrives, so a record changed again in between is sent as it is then. A
    /// time without the pub/sub subscription (the link was lost) is reported, not hidden: a
    /// [`HubEvent::Lagged`](crate::HubEvent) with `missed` 0 when the link is back.
    ///
    /// The completion subscription exists only while someone is subscribed (it shares the
    /// one pub/sub connection `wait_for` uses): completions are read for the
    /// [`subscription_linger`](crate::RedisBackendBuilder::subscription_linger) after the last
    /// subscriber leaves (one that comes back within it misses nothing), and the subscription
    /// ends one linger later, as it does after the last `wait_for`. Dropping the stream
    /// unsubscribes. Each subscriber has its own view of a buffer of
    /// [`HubConfig::event_buffer`]'s default size; one that falls further behind gets
    /// `Lagged` with the count it lost.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), resulthub::BackendError> {
    /// use futures_util::StreamExt;
    /// use resulthub::{HubEvent, RedisBackend, ResultBackend, TaskResult, TaskStatus};
    ///
    /// let backend = RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
    /// let mut events = backend.subscribe().await?;
    /// // Another process, Python's flowrra included, finishes a task...
    /// let other = RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
    /// other.store("t-1", TaskResult::new("t-1", TaskStatus::Success)).await?;
    /// // ...and this one sees it, with the record.
    /// if let Some(HubEvent::Task(event)) = events.next().await {
    ///     assert_eq!(event.task_id, "t-1");
    ///     assert!(event.record.is_some());
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for a backend that must ask the server.
    pub async fn subscribe(&self) -> Result<EventStream, BackendError> {
        self.subscribe_with(EventFilter::default()).await
    }

    /// [`subscribe`](Self::subscribe), keeping only the events `filter` matches.
    ///
    /// # Errors
    ///
    /// [`BackendError::InvalidInput`] for a filter's task id over the backend's
    /// `max_task_id_len`.
    pub async fn subscribe_with(&self, filter: EventFilter) -> Result<EventStream, BackendError> {
        let inner = Arc::clone(&self.inner);
        self.on_runtime(async move { inner.subscribe_events(filter, None, false).await })
            .await
    }

    /// [`subscribe_with`](Self::subscribe_with) for a subscriber that resumes after the event
    /// `after` (as [`HubHandle::subscribe_after`](crate::HubHandle::subscribe_after) does): the
    /// events after it that this backend still holds come first, with a
    /// [`HubEvent::Lagged`](crate::HubEvent) before them if it no longer holds them all, or if
    /// the feed had a gap since (see [`subscribe`](Self::subscribe)). From the first such
    /// subscription on, the backend holds its latest events, and builds an event for each
    /// store and delete of this process even while nobody listens.
    ///
    /// Ids are this process's: a subscriber that comes back to another replica gets every
    /// event that replica holds, after a `Lagged`.
    ///
    /// # Errors
    ///
    /// As [`subscribe_with`](Self::subscribe_with).
    pub async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<EventStream, BackendError> {
        let inner = Arc::clone(&self.inner);
        self.on_runtime(async move { inner.subscribe_events(filter, after, true).await })
            .await
    }

    /// Stores `result` like [`store`](crate::ResultBackend::store) and answers the record as
    /// written: its task fields merged from the record it replaced. The merge and the write
    /// are one step (the write happens only over the record merged with), so no other
    /// writer's change comes between.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), resulthub::BackendError> {
    /// use resulthub::{RedisBackend, ResultBackend, TaskResult, TaskStatus};
    ///
    /// let backend = RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
    /// backend.store("t-1", TaskResult::new("t-1", TaskStatus::Running).with_task_name("add")).await?;
    /// let stored = backend.store_merged("t-1", TaskResult::new("t-1", TaskStatus::Success)).await?;
    /// assert_eq!(stored.task_name.as_deref(), Some("add"));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`store`](crate::ResultBackend::store).
    pub async fn store_merged(
        &self,
        task_id: &str,
        result: TaskResult,
    ) -> Result<TaskResult, BackendError> {
        // Counted and traced as a store: it is one, that also answers the record.
        let call = self.store_call(task_id, result.status.as_str());
        let stored = async move {
            self.inner
                .started_store(task_id, result)?
                .run_merged(self)
                .await
        };
        call.run(|| self.counters(), stored).await
    }

    /// Whether the server answers: one `PING` on the backend's connections.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when it cannot be reached within the response timeout.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let inner = Arc::clone(&self.inner);
        self.on_runtime(async move {
            inner
                .pool
                .query::<String>(&redis::cmd("PING"))
                .await
                .map(|_| ())
        })
        .await
    }

    /// The longest task id this backend accepts, in bytes
    /// ([`max_task_id_len`](crate::RedisBackendBuilder::max_task_id_len)).
    pub fn max_task_id_len(&self) -> usize {
        self.inner.limits.max_task_id_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> Feed {
        Feed::new(&HubConfig::default())
    }

    #[test]
    fn a_record_is_sent_once_per_id_however_often_it_is_seen() {
        let feed = feed();
        let mut built = 0;
        // Nobody listens: nothing is built.
        feed.stored("t", b"one", || {
            built += 1;
            TaskResult::new("t", TaskStatus::Success)
        });
        assert_eq!(built, 0);

        let mut receiver = feed.lock().bus.subscribe();
        for (task_id, bytes) in [("t", "one"), ("t", "one"), ("t", "two"), ("u", "one")] {
            feed.stored(task_id, bytes.as_bytes(), || {
                built += 1;
                TaskResult::new(task_id, TaskStatus::Success)
            });
        }
        // The echo of ("t", "one") was dropped; another record, or another id, was not.
        assert_eq!(built, 3);
        for _ in 0..3 {
            assert!(receiver.try_recv().is_ok());
        }
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn a_record_is_built_without_the_feed_locked() {
        let feed = feed();
        let _receiver = feed.lock().bus.subscribe();
        feed.stored("t", b"one", || {
            // Another store, or the reader, could take the lock now.
            assert!(feed.state.try_lock().is_ok(), "built under the feed's lock");
            TaskResult::new("t", TaskStatus::Success)
        });
        assert_eq!(feed.lock().sent.len(), 1);
    }

    #[tokio::test]
    async fn a_reader_that_panics_still_runs_its_exit() {
        let ran = Arc::new(AtomicBool::new(false));
        let task = {
            let ran = Arc::clone(&ran);
            tokio::spawn(async move {
                let _exit = OnAbnormalExit(Some(move || ran.store(true, Ordering::SeqCst)));
                tokio::task::yield_now().await;
                panic!("a bug in the reader");
            })
        };
        assert!(task.await.unwrap_err().is_panic());
        assert!(ran.load(Ordering::SeqCst));

        // Disarmed (the reader's own stop), it does not run.
        let ran = AtomicBool::new(false);
        let mut exit = OnAbnormalExit(Some(|| ran.store(true, Ordering::SeqCst)));
        exit.disarm();
        drop(exit);
        assert!(!ran.load(Ordering::SeqCst));
    }

    #[test]
    fn the_memory_of_sent_records_is_bounded() {
        let feed = feed();
        let _receiver = feed.lock().bus.subscribe();
        for n in 0..REMEMBERED + 10 {
            let id = n.to_string();
            feed.stored(&id, b"r", || TaskResult::new(&id, TaskStatus::Success));
        }
        assert!(feed.lock().sent.len() <= REMEMBERED);
    }
}
