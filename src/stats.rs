//! What a hub holds, counted.

use serde::Serialize;

use crate::TaskStatus;

/// A count of what a backend holds, as of when it answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HubStats {
    /// Records held.
    pub results: usize,
    /// Live `wait_for` calls: registrations the backend holds for callers still waiting.
    pub waiters: usize,
    /// Records held, per status.
    pub by_status: StatusCounts,
    /// Terminal records evicted to make room under `max_results`, since the start.
    pub evicted: u64,
    /// Records removed by `result_ttl` or `pending_ttl`, since the start.
    pub expired: u64,
    /// Live event subscriptions ([`HubHandle::subscribe`](crate::HubHandle::subscribe)); 0 for
    /// a backend without events.
    pub subscribers: usize,
}

/// A count per [`TaskStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StatusCounts {
    /// Records in [`TaskStatus::Pending`].
    pub pending: usize,
    /// Records in [`TaskStatus::Running`].
    pub running: usize,
    /// Records in [`TaskStatus::Success`].
    pub success: usize,
    /// Records in [`TaskStatus::Failed`].
    pub failed: usize,
    /// Records in [`TaskStatus::Retrying`].
    pub retrying: usize,
}

impl StatusCounts {
    /// The count for `status`.
    pub fn get(&self, status: TaskStatus) -> usize {
        match status {
            TaskStatus::Pending => self.pending,
            TaskStatus::Running => self.running,
            TaskStatus::Success => self.success,
            TaskStatus::Failed => self.failed,
            TaskStatus::Retrying => self.retrying,
        }
    }

    pub(crate) fn slot(&mut self, status: TaskStatus) -> &mut usize {
        match status {
            TaskStatus::Pending => &mut self.pending,
            TaskStatus::Running => &mut self.running,
            TaskStatus::Success => &mut self.success,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Retrying => &mut self.retrying,
        }
    }
}
