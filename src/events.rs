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

use std::fmt;
use std::pin::Pin;
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
    /// holds.
    Lagged {
        /// How many events were lost.
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
        self.status.is_none_or(|status| status == event.status)
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
        let stream =
            futures_util::stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if filter.matches(&event) => {
                            return Some((HubEvent::Task(event.unpack()), (receiver, filter)));
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
            inner: Mutex::new(Box::pin(stream)),
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
    kind: EventKind,
    task_id: Arc<str>,
    status: TaskStatus,
    record: Option<Arc<CompactRecord>>,
    at: DateTime<Utc>,
}

impl RawEvent {
    fn unpack(self) -> TaskEvent {
        let record = self.record.map(|record| record.unpack(&self.task_id));
        TaskEvent {
            kind: self.kind,
            task_id: self.task_id.to_string(),
            status: self.status,
            record,
            at: self.at,
        }
    }
}

/// The hub's side of the events: the channel, made at the first subscription.
#[derive(Debug)]
pub(crate) struct EventBus {
    sender: Option<broadcast::Sender<RawEvent>>,
    capacity: usize,
    /// With a manual clock, the wall time that corresponds to one of its instants, so that
    /// event times move with it; `None` with the system clock, which reads the wall clock.
    epoch: Option<(DateTime<Utc>, Instant)>,
}

impl EventBus {
    pub(crate) fn new(config: &HubConfig) -> Self {
        let epoch = (config.clock != Clock::system()).then(|| (Utc::now(), config.clock.now()));
        EventBus {
            sender: None,
            capacity: config.event_buffer.clamp(1, MAX_EVENT_BUFFER),
            epoch,
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

    /// Live subscriptions; dropped ones are no longer counted.
    pub(crate) fn subscribers(&self) -> usize {
        self.sender
            .as_ref()
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Whether anyone listens: callers check it before building anything for an event.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.subscribers() > 0
    }

    /// Sends one event; a no-op without subscribers. Never waits: a full buffer overwrites its
    /// oldest event, which lagging subscribers then report as missed.
    pub(crate) fn emit(
        &self,
        kind: EventKind,
        task_id: &Arc<str>,
        record: &Arc<CompactRecord>,
        clock: &Clock,
    ) {
        let Some(sender) = &self.sender else {
            return;
        };
        if sender.receiver_count() == 0 {
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
            kind,
            task_id: Arc::clone(task_id),
            status: record.status,
            record: (kind == EventKind::Stored).then(|| Arc::clone(record)),
            at,
        };
        // An error only means every subscriber left since the check: nobody to tell.
        let _ = sender.send(event);
    }
}
