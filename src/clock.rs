//! The time source for expiry: the real clock, or a manual one that tests advance by hand.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a hub or [`InMemoryBackend`](crate::InMemoryBackend) reads the time for
/// `result_ttl` and `pending_ttl`.
///
/// [`Clock::system`] (the default) is the monotonic clock, `std::time::Instant`: Tokio's
/// paused test time (`tokio::time::pause`) does not move it. A [`ManualClock`] stands still
/// until advanced, so expiry can be tested without sleeping.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resulthub::{Clock, HubConfig, ManualClock};
///
/// let manual = ManualClock::new();
/// let config = HubConfig::default()
///     .with_result_ttl(Some(Duration::from_secs(60)))
///     .with_clock(Clock::from(manual.clone()));
/// let before = config.clock.now();
/// manual.advance(Duration::from_secs(61));
/// assert_eq!(config.clock.now() - before, Duration::from_secs(61));
/// ```
#[derive(Clone, Default)]
pub struct Clock(Option<ManualClock>);

impl Clock {
    /// The system's monotonic clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(manual) => manual.now(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Clock {
        Clock(Some(manual))
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system()"),
            Some(manual) => manual.fmt(f),
        }
    }
}

impl PartialEq for Clock {
    /// Two clocks are equal if both are the system clock or both are the same manual clock.
    fn eq(&self, other: &Clock) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(&a.inner, &b.inner),
            _ => false,
        }
    }
}

impl Eq for Clock {}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    start: Instant,
    elapsed_nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the moment of its creation.
    pub fn new() -> ManualClock {
        ManualClock {
            inner: Arc::new(ManualInner {
                start: Instant::now(),
                elapsed_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .elapsed_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(nanos))
            });
    }

    /// The current time of this clock.
    pub fn now(&self) -> Instant {
        let elapsed = Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::Acquire));
        self.inner
            .start
            .checked_add(elapsed)
            .unwrap_or(self.inner.start)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::Acquire));
        f.debug_struct("ManualClock")
            .field("elapsed", &elapsed)
            .finish()
    }
}
