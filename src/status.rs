//! The lifecycle states of a task and their wire names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a task is in its lifecycle: PENDING → RUNNING → SUCCESS or FAILED, with RETRYING in
/// between attempts.
///
/// On the wire (serde, [`Display`](fmt::Display), [`FromStr`]) a status is its lowercase name,
/// exactly as flowrra writes it.
///
/// # Examples
///
/// ```
/// use resulthub::TaskStatus;
///
/// let status: TaskStatus = "success".parse().unwrap();
/// assert_eq!(status, TaskStatus::Success);
/// assert!(status.is_terminal());
/// assert_eq!(TaskStatus::Retrying.to_string(), "retrying");
/// assert!("done".parse::<TaskStatus>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Submitted, not yet picked up by a worker.
    Pending,
    /// A worker is executing it.
    Running,
    /// Finished with a result. Terminal.
    Success,
    /// Finished with an error. Terminal.
    Failed,
    /// An attempt failed and another one is scheduled.
    Retrying,
}

impl TaskStatus {
    /// Every status, in declaration order.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Success,
        TaskStatus::Failed,
        TaskStatus::Retrying,
    ];

    /// Whether the task is finished: true for [`Success`](Self::Success) and
    /// [`Failed`](Self::Failed) only. A terminal store wakes the task's waiters.
    pub const fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failed)
    }

    /// The lowercase wire name (`"pending"`, ..., `"retrying"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Success => "success",
            TaskStatus::Failed => "failed",
            TaskStatus::Retrying => "retrying",
        }
    }

    /// Position in [`TaskStatus::ALL`], for per-status arrays.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = ParseStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseStatusError {
                input: s.to_owned(),
            })
    }
}

/// The error returned when a string is not one of the five status names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown task status {input:?}")]
pub struct ParseStatusError {
    input: String,
}

impl ParseStatusError {
    /// The string that was not recognised.
    pub fn input(&self) -> &str {
        &self.input
    }
}
