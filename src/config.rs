//! How a hub (or an [`InMemoryBackend`](crate::InMemoryBackend)) is bounded.

use std::time::Duration;

use crate::Clock;

/// Limits, expiry and overwrite policy for a [`ResultHub`](crate::ResultHub) and an
/// [`InMemoryBackend`](crate::InMemoryBackend).
///
/// Start from [`Default`] and set the fields you care about with the chained `with_*` methods
/// (one per field, e.g. [`with_max_results`](Self::with_max_results)); the fields stay public to
/// read. The struct is `#[non_exhaustive]`, so fields can be added without breaking callers:
/// outside this crate it cannot be built as a struct literal. The defaults serve at least
/// 100,000 live waiters and 1,000,000 records without refusing anything, and, like flowrra,
/// keep records until they are deleted: set `max_results` or the TTLs to bound a long-lived
/// hub.
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
/// let config = HubConfig::default()
///     .with_max_results(Some(100_000))
///     .with_result_ttl(Some(Duration::from_secs(3600)))
///     .with_pending_ttl(Some(Duration::from_secs(24 * 3600)))
///     .with_terminal_policy(TerminalPolicy::KeepFirst);
/// assert_eq!(config.max_results, Some(100_000));
/// assert_eq!(config.max_task_id_len, 1024);
/// ```
///
/// # Loading from a file
///
/// With the cargo feature `serde`, `HubConfig` implements `serde::Deserialize`, so it loads
/// with the config library of your choice. Every field is optional (a missing one keeps its
/// default), an unknown one is an error, durations are written as humantime strings (`"30s"`,
/// `"5m"`, `"1h 30m"`), [`TerminalPolicy`] as `"overwrite"` or `"keep_first"`, and
/// [`clock`](Self::clock) is not read (it stays [`Clock::system`]). In a format with a null
/// (JSON's `null`), null sets an optional field to `None`; TOML has none, so there
/// [`max_waiters`](Self::max_waiters), the one optional field whose default is `Some`, can
/// only be given a number.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use std::time::Duration;
/// use resulthub::{HubConfig, TerminalPolicy};
///
/// let config: HubConfig = toml::from_str(
///     r#"
///     max_results = 100000
///     result_ttl = "1h"
///     pending_ttl = "1day"
///     terminal_policy = "keep_first"
///     "#,
/// )
/// .unwrap();
/// assert_eq!(
///     config,
///     HubConfig::default()
///         .with_max_results(Some(100_000))
///         .with_result_ttl(Some(Duration::from_secs(3600)))
///         .with_pending_ttl(Some(Duration::from_secs(24 * 3600)))
///         .with_terminal_policy(TerminalPolicy::KeepFirst)
/// );
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
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
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub result_ttl: Option<Duration>,
    /// How long a non-terminal record lives after its latest store, e.g. when its worker died.
    /// `None`: until deleted.
    ///
    /// Default: `None`.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
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
    /// Not read by the `serde` feature's `Deserialize` (a clock is not data): a loaded config
    /// keeps the default; set it afterwards with [`with_clock`](Self::with_clock).
    ///
    /// Default: [`Clock::system`].
    #[cfg_attr(feature = "serde", serde(skip))]
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
    /// Sets [`max_results`](Self::max_results): the most records held (`None`: no limit).
    ///
    /// ```
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_max_results(Some(10_000));
    /// assert_eq!(config.max_results, Some(10_000));
    /// ```
    #[must_use]
    pub fn with_max_results(mut self, max_results: Option<usize>) -> Self {
        self.max_results = max_results;
        self
    }

    /// Sets [`result_ttl`](Self::result_ttl): how long a terminal record lives after its latest
    /// store (`None`: until deleted).
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_result_ttl(Some(Duration::from_secs(3600)));
    /// assert_eq!(config.result_ttl, Some(Duration::from_secs(3600)));
    /// ```
    #[must_use]
    pub fn with_result_ttl(mut self, result_ttl: Option<Duration>) -> Self {
        self.result_ttl = result_ttl;
        self
    }

    /// Sets [`pending_ttl`](Self::pending_ttl): how long a non-terminal record lives after its
    /// latest store (`None`: until deleted).
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_pending_ttl(Some(Duration::from_secs(24 * 3600)));
    /// assert_eq!(config.pending_ttl, Some(Duration::from_secs(24 * 3600)));
    /// ```
    #[must_use]
    pub fn with_pending_ttl(mut self, pending_ttl: Option<Duration>) -> Self {
        self.pending_ttl = pending_ttl;
        self
    }

    /// Sets [`max_waiters`](Self::max_waiters): how many `wait_for` calls may wait at once (`None`:
    /// no limit).
    ///
    /// ```
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_max_waiters(None);
    /// assert_eq!(config.max_waiters, None);
    /// ```
    #[must_use]
    pub fn with_max_waiters(mut self, max_waiters: Option<usize>) -> Self {
        self.max_waiters = max_waiters;
        self
    }

    /// Sets [`max_task_id_len`](Self::max_task_id_len): the longest task id accepted, in bytes.
    ///
    /// ```
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_max_task_id_len(256);
    /// assert_eq!(config.max_task_id_len, 256);
    /// ```
    #[must_use]
    pub fn with_max_task_id_len(mut self, max_task_id_len: usize) -> Self {
        self.max_task_id_len = max_task_id_len;
        self
    }

    /// Sets [`max_record_bytes`](Self::max_record_bytes): the largest record accepted, measured as
    /// JSON (`None`: no limit).
    ///
    /// ```
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_max_record_bytes(Some(64 * 1024));
    /// assert_eq!(config.max_record_bytes, Some(64 * 1024));
    /// ```
    #[must_use]
    pub fn with_max_record_bytes(mut self, max_record_bytes: Option<usize>) -> Self {
        self.max_record_bytes = max_record_bytes;
        self
    }

    /// Sets [`terminal_policy`](Self::terminal_policy): what a store does to a record that is
    /// already terminal.
    ///
    /// ```
    /// use resulthub::{HubConfig, TerminalPolicy};
    ///
    /// let config = HubConfig::default().with_terminal_policy(TerminalPolicy::KeepFirst);
    /// assert_eq!(config.terminal_policy, TerminalPolicy::KeepFirst);
    /// ```
    #[must_use]
    pub fn with_terminal_policy(mut self, terminal_policy: TerminalPolicy) -> Self {
        self.terminal_policy = terminal_policy;
        self
    }

    /// Sets [`pipeline_stores`](Self::pipeline_stores): whether a handle's `store` may return once
    /// the store is queued, before the hub has applied it.
    ///
    /// ```
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_pipeline_stores(false);
    /// assert!(!config.pipeline_stores);
    /// ```
    #[must_use]
    pub fn with_pipeline_stores(mut self, pipeline_stores: bool) -> Self {
        self.pipeline_stores = pipeline_stores;
        self
    }

    /// Sets [`clock`](Self::clock): where expiry reads the time (a
    /// [`ManualClock`](crate::ManualClock) in tests).
    ///
    /// ```
    /// use resulthub::{Clock, HubConfig, ManualClock};
    ///
    /// let manual = ManualClock::new();
    /// let config = HubConfig::default().with_clock(Clock::from(manual.clone()));
    /// assert_eq!(config.clock, Clock::from(manual));
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets [`event_buffer`](Self::event_buffer): how many events each subscriber may fall behind
    /// before it loses the oldest.
    ///
    /// ```
    /// use resulthub::HubConfig;
    ///
    /// let config = HubConfig::default().with_event_buffer(4096);
    /// assert_eq!(config.event_buffer, 4096);
    /// ```
    #[must_use]
    pub fn with_event_buffer(mut self, event_buffer: usize) -> Self {
        self.event_buffer = event_buffer;
        self
    }

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
///
/// With the cargo feature `serde` it implements `serde::Deserialize`, written `"overwrite"` or
/// `"keep_first"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum TerminalPolicy {
    /// A later store replaces a terminal record.
    #[default]
    Overwrite,
    /// A terminal record is final; later stores for its id are refused.
    KeepFirst,
}
