//! How a hub (or an [`InMemoryBackend`](crate::InMemoryBackend)) is bounded.

use std::time::Duration;

use crate::Clock;

/// Limits, expiry and overwrite policy for a [`ResultHub`](crate::ResultHub) and an
/// [`InMemoryBackend`](crate::InMemoryBackend).
///
/// A plain struct: set the fields you care about and take the rest from [`Default`]. The
/// defaults serve at least 100,000 live waiters and 1,000,000 records without refusing
/// anything, and, like flowrra, keep records until they are deleted: set `max_results` or the
/// TTLs to bound a long-lived hub.
///
/// A record's clock restarts at each store of it: `result_ttl` counts from the latest store of
/// a terminal record, `pending_ttl` from the latest store of a non-terminal one. Expired
/// records vanish from `get`, listings and counts at once; waiters are not ended by expiry (a
/// later terminal store still wakes them).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resulthub::{HubConfig, TerminalPolicy};
///
/// let config = HubConfig {
///     max_results: Some(100_000),
///     result_ttl: Some(Duration::from_secs(3600)),
///     pending_ttl: Some(Duration::from_secs(24 * 3600)),
///     terminal_policy: TerminalPolicy::KeepFirst,
///     ..HubConfig::default()
/// };
/// assert_eq!(config.max_task_id_len, 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// How many records to hold. When full, storing a new id evicts the terminal record whose
    /// latest store is oldest; if no record is terminal, the store fails with
    /// [`BackendError::Overloaded`](crate::BackendError::Overloaded) and changes nothing.
    /// `None` means no limit.
    ///
    /// Default: `None`.
    pub max_results: Option<usize>,
    /// How long a terminal (SUCCESS or FAILED) record lives after its latest store. `None`:
    /// until deleted.
    ///
    /// Default: `None`.
    pub result_ttl: Option<Duration>,
    /// How long a non-terminal record lives after its latest store, e.g. when its worker died.
    /// `None`: until deleted.
    ///
    /// Default: `None`.
    pub pending_ttl: Option<Duration>,
    /// How many `wait_for` calls may wait at once. Past it, `wait_for` fails with
    /// [`BackendError::Overloaded`](crate::BackendError::Overloaded) instead of growing.
    /// `None` means no limit.
    ///
    /// Default: `Some(1_000_000)`.
    pub max_waiters: Option<usize>,
    /// The longest task id accepted, in bytes. Every operation that takes an id answers a
    /// longer one with [`BackendError::InvalidInput`](crate::BackendError::InvalidInput).
    ///
    /// Default: 1024.
    pub max_task_id_len: usize,
    /// The largest record accepted, measured as its JSON encoding after the previous record's
    /// task fields are merged in. A larger one is refused with
    /// [`BackendError::InvalidInput`](crate::BackendError::InvalidInput). Measuring costs one
    /// encoding per store. `None` means no limit.
    ///
    /// Default: `None`.
    pub max_record_bytes: Option<usize>,
    /// What a store does to a record that is already terminal.
    ///
    /// Default: [`TerminalPolicy::Overwrite`].
    pub terminal_policy: TerminalPolicy,
    /// Whether a [`HubHandle`](crate::HubHandle)'s `store` may return once the store is
    /// queued, before the hub has applied it.
    ///
    /// Only used when the hub cannot refuse a store that passed the handle's own checks (id
    /// and record id): no `max_results`, no `max_record_bytes`, `TerminalPolicy::Overwrite`.
    /// Then a store's only outcome is to be applied, in order: the caller's later `get` sees
    /// it, `shutdown` applies it first, and a waiter is woken by it. A store returns at once
    /// while the hub is at most [`MAX_UNAPPLIED`](crate::MAX_UNAPPLIED) operations behind it
    /// ([`MAX_UNAPPLIED_WHILE_WAITING`](crate::MAX_UNAPPLIED_WHILE_WAITING) while the hub holds
    /// waiters); past that it waits for room (it is queued all the same), so the queue stays
    /// short.
    /// What a pipelined store gives up is hearing about the two things no check can foresee:
    /// the hub dying, or a bug (a handler panic), before it is applied; both are logged.
    /// Set it to `false` to have every store wait until the hub has applied it.
    ///
    /// Default: `true`.
    pub pipeline_stores: bool,
    /// Where expiry reads the time.
    ///
    /// Default: [`Clock::system`].
    pub clock: Clock,
    /// How many events each subscriber of [`HubHandle::subscribe`](crate::HubHandle::subscribe)
    /// may fall behind before it loses the oldest (and is told so with
    /// [`HubEvent::Lagged`](crate::HubEvent::Lagged)); the hub never waits for a subscriber.
    /// Tokio rounds it up to a power of two; 0 is taken as 1, and a value over
    /// [`MAX_EVENT_BUFFER`](crate::events::MAX_EVENT_BUFFER) as that. The buffer is shared by
    /// the subscribers and allocated at the first subscription.
    ///
    /// Default: 1024.
    pub event_buffer: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_results: None,
            result_ttl: None,
            pending_ttl: None,
            max_waiters: Some(1_000_000),
            max_task_id_len: 1024,
            max_record_bytes: None,
            terminal_policy: TerminalPolicy::Overwrite,
            pipeline_stores: true,
            clock: Clock::system(),
            event_buffer: 1024,
        }
    }
}

impl HubConfig {
    /// The TTL for a record of this terminality.
    pub(crate) fn ttl(&self, terminal: bool) -> Option<Duration> {
        if terminal {
            self.result_ttl
        } else {
            self.pending_ttl
        }
    }
}

/// What a store does to a record that is already terminal (SUCCESS or FAILED).
///
/// - [`Overwrite`](Self::Overwrite), flowrra's behaviour: the latest store wins. Use it when a
///   task may legitimately be re-run under the same id, or when workers report a correction.
/// - [`KeepFirst`](Self::KeepFirst), as Celery does for SUCCESS: the first terminal record
///   stays, and a later store for that id fails with
///   [`BackendError::Conflict`](crate::BackendError::Conflict). Use it when duplicate or late
///   deliveries are possible (at-least-once queues, retried workers) and a finished result must
///   never change under the callers that read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TerminalPolicy {
    /// A later store replaces a terminal record.
    #[default]
    Overwrite,
    /// A terminal record is final; later stores for its id are refused.
    KeepFirst,
}
