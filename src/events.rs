//! Live events: one [`TaskEvent`] per change the hub applies, to every subscriber.
//!
//! The hub owns one [`tokio::sync::broadcast`] channel. Emitting is a constant-time push into
//! its ring buffer that never waits, so a subscriber that reads slowly (a dashboard on a bad
//! connection) cannot slow the hub, its workers or the other subscribers: when it falls more
//! than [`HubConfig::event_buffer`](crate::HubConfig::event_buffer) events behind, it loses the
//! oldest ones, and its stream says how many with a [`HubEvent::Lagged`] item before going on.
//! With no subscriber the hub builds no event at all.
//!
//! Subscribing is a message to the hub ([`HubHandle::subscribe`](crate::HubHandle::subscribe)),
//! so a subscription starts at a point in the hub's order: it sees every change applied after
//! that point, and none before. The filter ([`EventFilter`]) runs on the subscriber's side, as
//! does turning the hub's packed record back into a [`TaskResult`].
//!
//! Every event has an [`EventId`]. A subscriber that resumes
//! ([`HubHandle::subscribe_after`](crate::HubHandle::subscribe_after), and `/events` with
//! `Last-Event-ID`) first gets the events after its last one that the hub still holds: from its
//! first resumable subscription on, the hub keeps the latest `event_buffer` events.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::broadcast;

use crate::compact::CompactRecord;
use crate::{Clock, HubConfig, TaskResult, TaskStatus};

/// The largest [`HubConfig::event_buffer`](crate::HubConfig::event_buffer) a hub uses; a larger
/// value is taken as this one. The buffer is allocated in full when the first subscriber comes.
pub const MAX_EVENT_BUFFER: usize = 1 << 20;

/// What happened to a task's record.
///
/// On the wire (serde) a kind is its lowercase name: `"stored"`, `"deleted"`, `"expired"`,
/// `"cleared"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EventKind {
    /// A store (or a [`restore`](crate::HubHandle::restore)) was applied; the event carries the
    /// record as stored, task fields merged, as `get` would return it.
    Stored,
    /// A caller deleted the record.
    Deleted,
    /// The hub removed the record on its own: its `result_ttl` or `pending_ttl` passed, or
    /// `max_results` evicted it to make room for a new id (`HubStats::expired` and
    /// `HubStats::evicted` tell the two apart). An expired record's event comes when the hub
    /// removes it: at its next call or sweep.
    Expired,
    /// [`clear`](crate::ResultBackend::clear) removed the record: one event per record, in the
    /// order their ids were first stored.
    Cleared,
}

/// One change to one task's record, as the hub applied it.
///
/// Serialized (serde), it is
/// `{"kind": "stored", "task_id": "t1", "status": "success", "record": {..}, "at": "2024-01-02T03:04:05.000123"}`:
/// `record` is the record in flowrra's layout ([`TaskResult`]'s serde) for `stored`, and `null`
/// when the record was removed; `status` is the status of the record stored or removed; `at` is
/// when the hub applied the change, as a naive UTC time like the records' own timestamps.
///
/// # Examples
///
/// ```
/// use resulthub::{EventKind, HubConfig, HubEvent, HubHandle, ResultBackend, TaskResult, TaskStatus};
/// use futures_util::StreamExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resulthub::BackendError> {
/// let hub = HubHandle::spawn(HubConfig::default());
/// let mut events = hub.subscribe().await?;
/// hub.store("t1", TaskResult::new("t1", TaskStatus::Success)).await?;
/// hub.delete("t1").await?;
///
/// let Some(HubEvent::Task(stored)) = events.next().await else { unreachable!() };
/// assert_eq!((stored.kind, stored.status), (EventKind::Stored, TaskStatus::Success));
/// assert!(stored.record.is_some());
/// let Some(HubEvent::Task(deleted)) = events.next().await else { unreachable!() };
/// assert_eq!((deleted.kind, deleted.task_id.as_str()), (EventKind::Deleted, "t1"));
/// assert_eq!(deleted.record, None);
///
/// let json = serde_json::to_value(&deleted).unwrap();
/// assert_eq!(json["kind"], "deleted");
/// assert_eq!(json["status"], "success");
/// hub.shutdown().await;
/// assert!(events.next().await.is_none(), "the stream ends with the hub");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskEvent {
    /// What happened.
    pub kind: EventKind,
    /// The task whose record changed.
    pub task_id: String,
    /// The status of the record stored, or of the record removed.
    pub status: TaskStatus,
    /// The record as stored, for [`EventKind::Stored`]; `None` when it was removed.
    pub record: Option<TaskResult>,
    /// When the hub applied the change, by the hub's [`Clock`] (a `ManualClock` moves it too).
    #[serde(serialize_with = "serialize_at", deserialize_with = "deserialize_at")]
    pub at: DateTime<Utc>,
    /// Where the event stands in the hub's order: resume after it with
    /// [`HubHandle::subscribe_after`](crate::HubHandle::subscribe_after). Not serialized: on
    /// `/events` it is the frame's `id:`.
    #[serde(skip)]
    pub id: EventId,
}

/// The place of an event in one hub's order, written `{hub}-{n}` (e.g. `9f2c41d07a3e55b1-42`):
/// the hub's random name, so that an id of another hub (or of this one before a restart) is
/// told apart, and the event's number.
///
/// # Examples
///
/// ```
/// use resulthub::EventId;
///
/// let id: EventId = "9f2c41d07a3e55b1-42".parse().unwrap();
/// assert_eq!(id.to_string(), "9f2c41d07a3e55b1-42");
/// assert!("42".parse::<EventId>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventId {
    hub: u64,
    number: u64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.hub, self.number)
    }
}

/// Why a text is not an [`EventId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an event id (`{{hub}}-{{n}}`, as an event's `id` gives it): {0:?}")]
pub struct ParseEventIdError(String);

impl FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseEventIdError(text.chars().take(64).collect());
        let (hub, number) = text.split_once('-').ok_or_else(invalid)?;
        if hub.len() != 16 || number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        Ok(EventId {
            hub: u64::from_str_radix(hub, 16).map_err(|_| invalid())?,
            number: number.parse().map_err(|_| invalid())?,
        })
    }
}

fn serialize_at<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::timestamp::format(at))
}

fn deserialize_at<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    crate::timestamp::deserialize(deserializer)?
        .ok_or_else(|| serde::de::Error::custom("an event needs a time in `at`"))
}

/// An item of an [`EventStream`].
// A stream item is moved out once; boxing the event would only add an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// A change, in the hub's order.
    Task(TaskEvent),
    /// This subscriber fell more than `event_buffer` events behind and lost the `missed`
    /// oldest ones (counted before the filter); the stream goes on with the oldest it still
    /// holds. A resumed subscription starts with one when the hub no longer holds every event
    /// after the one it resumed after.
    ///
    /// `missed` 0 says that an unknown number of changes, possibly none, went unseen: a
    /// `RedisBackend`'s events report so a time its completion feed
    /// was down (a lost pub/sub link, or nobody subscribed), as they cannot count what other
    /// processes stored meanwhile. Read the state afresh either way.
    Lagged {
        /// How many events were lost; 0 when that is unknown.
        missed: u64,
    },
}

/// Which events a subscriber wants; the default takes every event.
///
/// Both fields set: an event must match both. [`HubEvent::Lagged`] always passes.
///
/// # Examples
///
/// ```
/// use resulthub::{EventFilter, TaskStatus};
///
/// let failures = EventFilter::status(TaskStatus::Failed);
/// let one_task = EventFilter::task("job-7");
/// let everything = EventFilter::default();
/// assert_eq!(everything.status, None);
/// # let _ = (failures, one_task);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events whose [`TaskEvent::status`] is this one. Default: `None` (any).
    pub status: Option<TaskStatus>,
    /// Only events of this task. Default: `None` (any).
    pub task_id: Option<String>,
}

impl EventFilter {
    /// Events whose record has (or, removed, had) this status.
    pub fn status(status: TaskStatus) -> Self {
        EventFilter {
            status: Some(status),
            task_id: None,
        }
    }

    /// Events of one task.
    pub fn task(task_id: impl Into<String>) -> Self {
        EventFilter {
            status: None,
            task_id: Some(task_id.into()),
        }
    }

    fn matches(&self, event: &RawEvent) -> bool {
        // A gap concerns every task.
        event.gap
            || self.status.is_none_or(|status| status == event.status)
                && self
                    .task_id
                    .as_deref()
                    .is_none_or(|id| id == &*event.task_id)
    }
}

/// The events of one subscription, as a [`Stream`] of [`HubEvent`]s.
///
/// It ends when the hub stops (after the events it had already buffered). Dropping it
/// unsubscribes at once.
pub struct EventStream {
    // Never locked: `poll_next` has `&mut self` and uses `get_mut`. The mutex only makes the
    // stream `Sync` like every public type, without unsafe code.
    inner: Mutex<BoxStream<'static, HubEvent>>,
}

impl EventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<RawEvent>, filter: EventFilter) -> Self {
        Self::resumed(Backlog::default(), receiver, filter)
    }

    /// The backlog first (how many were lost, then what the hub held), then the live events.
    pub(crate) fn resumed(
        backlog: Backlog,
        receiver: broadcast::Receiver<RawEvent>,
        filter: EventFilter,
    ) -> Self {
        let lagged = (backlog.missed > 0 || backlog.gap).then_some(HubEvent::Lagged {
            missed: backlog.missed,
        });
        // Unpacked one at a time as the stream is read, not all before the first is sent.
        let held = {
            let filter = filter.clone();
            backlog
                .events
                .into_iter()
                .filter(move |event| filter.matches(event))
                .map(RawEvent::into_item)
        };
        let first = futures_util::stream::iter(lagged.into_iter().chain(held));
        let live =
            futures_util::stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if filter.matches(&event) => {
                            return Some((event.into_item(), (receiver, filter)));
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            return Some((HubEvent::Lagged { missed }, (receiver, filter)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
        EventStream {
            inner: Mutex::new(Box::pin(futures_util::StreamExt::chain(first, live))),
        }
    }
}

impl EventStream {
    /// A stream of the given events, for a `WebBackend` (feature `web`; or any backend) of
    /// your own: its events, with [`HubEvent::Lagged`] where it lost some (`missed`
    /// 0 when it cannot count them). Dropping the `EventStream` drops `events`, which is where a
    /// subscription is released.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use futures::StreamExt;
    /// use resulthub::{EventStream, HubEvent};
    ///
    /// let mut events = EventStream::from_stream(futures::stream::iter([
    ///     HubEvent::Lagged { missed: 0 },
    /// ]));
    /// assert!(matches!(events.next().await, Some(HubEvent::Lagged { missed: 0 })));
    /// assert!(events.next().await.is_none());
    /// # });
    /// ```
    pub fn from_stream(events: impl Stream<Item = HubEvent> + Send + 'static) -> Self {
        EventStream {
            inner: Mutex::new(Box::pin(events)),
        }
    }

    /// A stream that stays open and sends nothing: for a backend without events, whose
    /// `/events` clients then get only the keep-alive comments until they leave.
    pub fn pending() -> Self {
        Self::from_stream(futures_util::stream::pending())
    }

    /// The same stream, holding `guard` until it is dropped: a backend that must know when a
    /// subscription ends (to stop a feed nobody reads) hands out such a stream.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn with_guard<G: Send + 'static>(self, guard: G) -> Self {
        let inner = match self.inner.into_inner() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        let guarded = futures_util::StreamExt::map(inner, move |event| {
            // Moved into the closure, so it lives exactly as long as the stream.
            let _ = &guard;
            event
        });
        EventStream {
            inner: Mutex::new(Box::pin(guarded)),
        }
    }
}

impl Stream for EventStream {
    type Item = HubEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HubEvent>> {
        let inner = match self.get_mut().inner.get_mut() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// An event as the hub sends it: pointers only, so that emitting costs no copy and no JSON
/// work on the hub's thread; each subscriber unpacks the record itself.
#[derive(Clone, Debug)]
pub(crate) struct RawEvent {
    number: u64,
    hub: u64,
    kind: EventKind,
    task_id: Arc<str>,
    status: TaskStatus,
    record: Option<Arc<CompactRecord>>,
    at: DateTime<Utc>,
    /// Not a change but a gap: changes may have happened that this bus never saw (a Redis
    /// backend's completion feed was down); read as [`HubEvent::Lagged`] with `missed` 0.
    gap: bool,
}

impl RawEvent {
    fn into_item(self) -> HubEvent {
        if self.gap {
            HubEvent::Lagged { missed: 0 }
        } else {
            HubEvent::Task(self.unpack())
        }
    }

    fn unpack(self) -> TaskEvent {
        let record = self.record.map(|record| record.unpack(&self.task_id));
        TaskEvent {
            kind: self.kind,
            task_id: self.task_id.to_string(),
            status: self.status,
            record,
            at: self.at,
            id: EventId {
                hub: self.hub,
                number: self.number,
            },
        }
    }
}

/// What a resumed subscription gets before the live events: how many events after its last
/// one the hub no longer holds, and the ones it does, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    missed: u64,
    /// The subscriber may have missed events this bus cannot count (its id came from another
    /// hub or process): a `Lagged` comes first even when `missed` is 0.
    gap: bool,
    events: Vec<RawEvent>,
}

/// The hub's side of the events: the channel, made at the first subscription, and the
/// latest events for subscribers that resume, kept from the first that may.
#[derive(Debug)]
pub(crate) struct EventBus {
    sender: Option<broadcast::Sender<RawEvent>>,
    capacity: usize,
    /// With a manual clock, the wall time that corresponds to one of its instants, so that
    /// event times move with it; `None` with the system clock, which reads the wall clock.
    epoch: Option<(DateTime<Utc>, Instant)>,
    /// This bus's random name, the first part of its event ids.
    hub: u64,
    /// The number of the next event.
    next: u64,
    /// The latest `capacity` events, once a resumable subscription came (`None` before): then
    /// events are built even while nobody listens, for a client that reconnects.
    held: Option<VecDeque<RawEvent>>,
}

impl EventBus {
    pub(crate) fn new(config: &HubConfig) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let epoch = (config.clock != Clock::system()).then(|| (Utc::now(), config.clock.now()));
        EventBus {
            sender: None,
            capacity: config.event_buffer.clamp(1, MAX_EVENT_BUFFER),
            epoch,
            hub: RandomState::new().hash_one(std::process::id()),
            next: 0,
            held: None,
        }
    }

    pub(crate) fn subscribe(&mut self) -> broadcast::Receiver<RawEvent> {
        match &self.sender {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.capacity);
                self.sender = Some(sender);
                receiver
            }
        }
    }

    /// A subscription that may resume: the events after `after` that are held (all that are,
    /// for an id of another hub, or none given), and from now on the bus holds the latest
    /// events for later ones.
    pub(crate) fn subscribe_after(
        &mut self,
        after: Option<EventId>,
    ) -> (Backlog, broadcast::Receiver<RawEvent>) {
        let capacity = self.capacity;
        let held = self
            .held
            .get_or_insert_with(|| VecDeque::with_capacity(capacity.min(1024)));
        let oldest = held.front().map_or(self.next, |event| event.number);
        // A client may send any number: none may overflow.
        let first_wanted = after.map(|after| after.number.saturating_add(1));
        let backlog = match (after, first_wanted) {
            // Up to date: nothing before the live events.
            (Some(after), Some(first)) if after.hub == self.hub && first >= self.next => {
                Backlog::default()
            }
            (Some(after), Some(first)) if after.hub == self.hub => Backlog {
                missed: oldest.saturating_sub(first),
                gap: false,
                events: held
                    .iter()
                    .filter(|event| event.number > after.number)
                    .cloned()
                    .collect(),
            },
            // An id this bus did not give: the client has seen none of its events, and missed
            // an unknown number elsewhere (another replica's, a previous hub's): a `Lagged`
            // always, with the count this bus knows it lost (0 when it lost none: unknown).
            (Some(_), _) => Backlog {
                missed: oldest,
                gap: true,
                events: held.iter().cloned().collect(),
            },
            (None, _) => Backlog::default(),
        };
        (backlog, self.subscribe())
    }

    /// Live subscriptions; dropped ones are no longer counted.
    pub(crate) fn subscribers(&self) -> usize {
        self.sender
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Whether anyone listens, or may come back for what it missed: callers check it before
    /// building anything for an event.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.held.is_some() || self.subscribers() > 0
    }

    /// Sends one event (and holds it, once resumable subscriptions came); a no-op without
    /// either. Never waits: a full buffer overwrites its oldest event, which lagging
    /// subscribers then report as missed.
    pub(crate) fn emit(
        &mut self,
        kind: EventKind,
        task_id: &Arc<str>,
        record: &Arc<CompactRecord>,
        clock: &Clock,
    ) {
        if !self.active() {
            return;
        }
        let at = match self.epoch {
            None => Utc::now(),
            Some((wall, instant)) => {
                let elapsed = clock.now().saturating_duration_since(instant);
                chrono::Duration::from_std(elapsed)
                    .ok()
                    .and_then(|elapsed| wall.checked_add_signed(elapsed))
                    .unwrap_or(wall)
            }
        };
        let event = RawEvent {
            number: self.next,
            hub: self.hub,
            kind,
            task_id: Arc::clone(task_id),
            status: record.status,
            record: (kind == EventKind::Stored).then(|| Arc::clone(record)),
            at,
            gap: false,
        };
        self.push(event);
    }

    /// Marks a gap: changes may have happened since the last event that this bus did not see.
    /// Live subscribers read it as [`HubEvent::Lagged`] with `missed` 0, and so does a resumed
    /// subscription whose last event came before it. A no-op while nobody listens or may
    /// resume, like [`emit`](Self::emit).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn gap(&mut self) {
        if !self.active() {
            return;
        }
        let event = RawEvent {
            number: self.next,
            hub: self.hub,
            kind: EventKind::Stored,
            task_id: Arc::from(""),
            status: TaskStatus::Pending,
            record: None,
            at: Utc::now(),
            gap: true,
        };
        self.push(event);
    }

    fn push(&mut self, event: RawEvent) {
        self.next += 1;
        if let Some(held) = &mut self.held {
            if held.len() == self.capacity {
                held.pop_front();
            }
            held.push_back(event.clone());
        }
        if let Some(sender) = &self.sender {
            // An error only means nobody listens now: a resuming client reads what is held.
            let _ = sender.send(event);
        }
    }
}
