//! How a hub (or an [`InMemoryBackend`](crate::InMemoryBackend)) is bounded.

/// Limits for a [`ResultHub`](crate::ResultHub) and an
/// [`InMemoryBackend`](crate::InMemoryBackend).
///
/// A plain struct: set the fields you care about and take the rest from [`Default`]. The
/// defaults serve at least 100,000 live waiters and 1,000,000 records without refusing
/// anything.
///
/// # Examples
///
/// ```
/// use resulthub::HubConfig;
///
/// let config = HubConfig { max_waiters: Some(10_000), ..HubConfig::default() };
/// assert_eq!(config.max_task_id_len, 1024);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// The longest task id accepted, in bytes. Every operation that takes an id answers a
    /// longer one with [`BackendError::InvalidInput`](crate::BackendError::InvalidInput).
    ///
    /// Default: 1024.
    pub max_task_id_len: usize,
    /// How many `wait_for` calls may wait at once. Past it, `wait_for` fails with
    /// [`BackendError::Overloaded`](crate::BackendError::Overloaded) instead of growing.
    /// `None` means no limit.
    ///
    /// Default: `Some(1_000_000)`.
    pub max_waiters: Option<usize>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_task_id_len: 1024,
            max_waiters: Some(1_000_000),
        }
    }
}
