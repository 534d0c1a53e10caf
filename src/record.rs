//! The record a backend stores for one task, in flowrra's `to_dict` layout.

use chrono::{DateTime, Utc};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{BackendError, TaskStatus};

/// The state of one task as a worker reported it: its status, its result or error, when it
/// moved, and the call that started it.
///
/// Serialized with serde it is exactly flowrra's `TaskResult.to_dict()`: the keys `task_id`,
/// `status`, `task_name`, `result`, `error`, `submitted_at`, `started_at`, `finished_at`,
/// `retries`, `args`, `kwargs`, in that order, with timestamps as naive UTC ISO-8601 strings
/// (`2024-01-02T03:04:05.000123`, microsecond precision). On input it also accepts timestamps
/// with `Z` or an offset, `""` or `null` for no time, and missing `retries`, `args`, `kwargs`.
///
/// # Examples
///
/// ```
/// use resulthub::{TaskResult, TaskStatus};
/// use serde_json::json;
///
/// let record = TaskResult::new("task-1", TaskStatus::Success)
///     .with_task_name("add")
///     .with_args(vec![json!(2), json!(3)])
///     .with_result(json!(5));
/// assert!(record.is_terminal() && record.is_success());
///
/// let text = serde_json::to_string(&record).unwrap();
/// assert!(text.starts_with(r#"{"task_id":"task-1","status":"success","task_name":"add""#));
/// let back: TaskResult = serde_json::from_str(&text).unwrap();
/// assert_eq!(back, record);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskResult {
    /// The task's unique id.
    pub task_id: String,
    /// Where the task is in its lifecycle.
    pub status: TaskStatus,
    /// The registered name of the task function, if known.
    pub task_name: Option<String>,
    /// What the task returned; `Null` when it returned nothing or has not finished.
    pub result: Value,
    /// The error message of a failed attempt.
    pub error: Option<String>,
    /// When the task was submitted. Orders `list_by_status`, newest first.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub submitted_at: Option<DateTime<Utc>>,
    /// When the current attempt started.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the task finished.
    #[serde(serialize_with = "crate::timestamp::serialize")]
    pub finished_at: Option<DateTime<Utc>>,
    /// How many times the task has been retried.
    pub retries: u32,
    /// Positional arguments of the call.
    pub args: Vec<Value>,
    /// Keyword arguments of the call, in the order they were given.
    pub kwargs: Map<String, Value>,
}

impl TaskResult {
    /// A record with this id and status and everything else empty: no name, `Null` result, no
    /// error, no timestamps, zero retries, no arguments.
    pub fn new(task_id: impl Into<String>, status: TaskStatus) -> Self {
        TaskResult {
            task_id: task_id.into(),
            status,
            task_name: None,
            result: Value::Null,
            error: None,
            submitted_at: None,
            started_at: None,
            finished_at: None,
            retries: 0,
            args: Vec::new(),
            kwargs: Map::new(),
        }
    }

    /// Whether the task has finished: its status is terminal (SUCCESS or FAILED), as
    /// [`TaskStatus::is_terminal`] says.
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// Whether the task has finished; the same as [`is_terminal`](Self::is_terminal), the
    /// crate's one word for it.
    #[deprecated(
        since = "0.1.0",
        note = "use `is_terminal`, the same test under the crate's one name for finished"
    )]
    pub fn is_complete(&self) -> bool {
        self.is_terminal()
    }

    /// Whether the task finished successfully.
    pub fn is_success(&self) -> bool {
        self.status == TaskStatus::Success
    }

    /// Sets the task's name.
    #[must_use]
    pub fn with_task_name(mut self, name: impl Into<String>) -> Self {
        self.task_name = Some(name.into());
        self
    }

    /// Sets the task's return value.
    #[must_use]
    pub fn with_result(mut self, result: impl Into<Value>) -> Self {
        self.result = result.into();
        self
    }

    /// Sets the task's return value to `value` serialized as JSON, so that callers can read it
    /// back as their own type with [`result_as`](Self::result_as).
    ///
    /// # Examples
    ///
    /// A worker stores its own type; a caller waits for it and reads it back:
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// struct Thumbnail {
    ///     width: u32,
    ///     height: u32,
    ///     url: String,
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), resulthub::BackendError> {
    /// let hub = HubHandle::spawn(HubConfig::default());
    /// let made = Thumbnail { width: 64, height: 48, url: "s3://thumbs/7.png".into() };
    /// let record = TaskResult::new("thumb-7", TaskStatus::Success).with_result_of(&made)?;
    /// hub.store("thumb-7", record).await?;
    ///
    /// let done = hub.wait_for("thumb-7", Some(Duration::from_secs(5))).await?;
    /// let thumbnail: Thumbnail = done.result_as()?;
    /// assert_eq!(thumbnail, made);
    /// # hub.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`BackendError::Codec`] if `value` cannot be represented as JSON (a map with non-string
    /// keys, or a `Serialize` implementation that fails); the record is not changed.
    pub fn with_result_of<T: Serialize + ?Sized>(
        mut self,
        value: &T,
    ) -> Result<Self, BackendError> {
        self.result = serde_json::to_value(value).map_err(BackendError::Codec)?;
        Ok(self)
    }

    /// The task's return value read as `T` (see [`with_result_of`](Self::with_result_of)).
    ///
    /// # Errors
    ///
    /// [`BackendError::Codec`] if the result does not have the shape of `T`; its source names
    /// `T` and says what did not match.
    ///
    /// ```
    /// use resulthub::{BackendError, TaskResult, TaskStatus};
    ///
    /// let record = TaskResult::new("t", TaskStatus::Success).with_result("not a number");
    /// let Err(BackendError::Codec(error)) = record.result_as::<u64>() else { unreachable!() };
    /// assert!(error.to_string().contains("u64"));
    /// ```
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<T, BackendError> {
        T::deserialize(&self.result).map_err(|error| {
            BackendError::Codec(serde::de::Error::custom(format_args!(
                "the result of task {:?} is not a {}: {error}",
                self.task_id,
                std::any::type_name::<T>()
            )))
        })
    }

    /// Sets the error message.
    #[must_use]
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    /// Sets when the task was submitted.
    #[must_use]
    pub fn with_submitted_at(mut self, at: DateTime<Utc>) -> Self {
        self.submitted_at = Some(at);
        self
    }

    /// Sets when the current attempt started.
    #[must_use]
    pub fn with_started_at(mut self, at: DateTime<Utc>) -> Self {
        self.started_at = Some(at);
        self
    }

    /// Sets when the task finished.
    #[must_use]
    pub fn with_finished_at(mut self, at: DateTime<Utc>) -> Self {
        self.finished_at = Some(at);
        self
    }

    /// Sets the retry count.
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets the positional arguments.
    #[must_use]
    pub fn with_args(mut self, args: Vec<Value>) -> Self {
        self.args = args;
        self
    }

    /// Sets the keyword arguments.
    #[must_use]
    pub fn with_kwargs(mut self, kwargs: Map<String, Value>) -> Self {
        self.kwargs = kwargs;
        self
    }

    /// Keeps the fields that describe the task rather than the attempt (`submitted_at`,
    /// `task_name`, `args`, `kwargs`) from `previous` where this record leaves them unset.
    ///
    /// flowrra's workers write RUNNING and SUCCESS records without them; keeping them is what
    /// lets a finished task still sort by its submission time.
    pub(crate) fn inherit_task_fields(&mut self, previous: &TaskResult) {
        if self.submitted_at.is_none() {
            self.submitted_at = previous.submitted_at;
        }
        if self.task_name.is_none() {
            self.task_name.clone_from(&previous.task_name);
        }
        if self.args.is_empty() {
            self.args.clone_from(&previous.args);
        }
        if self.kwargs.is_empty() {
            self.kwargs.clone_from(&previous.kwargs);
        }
    }
}

/// The lenient input form: what flowrra and other writers may leave out or set to null.
#[derive(Deserialize)]
struct WireRecord {
    task_id: String,
    status: TaskStatus,
    #[serde(default)]
    task_name: Option<String>,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, deserialize_with = "crate::timestamp::deserialize")]
    submitted_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamp::deserialize")]
    started_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::timestamp::deserialize")]
    finished_at: Option<DateTime<Utc>>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Value>>,
    #[serde(default)]
    kwargs: Option<Map<String, Value>>,
}

/// Accepts a map of the fields. A sequence of them, in `to_dict` order, only from binary
/// formats (MessagePack, bincode, ...), which write structs that way: in JSON an array is not a
/// record, as flowrra also refuses it.
struct RecordVisitor {
    human_readable: bool,
}

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = WireRecord;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a task record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<WireRecord, A::Error> {
        WireRecord::deserialize(MapAccessDeserializer::new(map))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<WireRecord, A::Error> {
        if self.human_readable {
            return Err(serde::de::Error::invalid_type(Unexpected::Seq, &self));
        }
        WireRecord::deserialize(SeqAccessDeserializer::new(seq))
    }
}

/// The fields in `to_dict` order, for formats that need them named up front.
const FIELDS: &[&str] = &[
    "task_id",
    "status",
    "task_name",
    "result",
    "error",
    "submitted_at",
    "started_at",
    "finished_at",
    "retries",
    "args",
    "kwargs",
];

impl<'de> Deserialize<'de> for TaskResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let human_readable = deserializer.is_human_readable();
        let wire = deserializer.deserialize_struct(
            "TaskResult",
            FIELDS,
            RecordVisitor { human_readable },
        )?;
        Ok(TaskResult {
            task_id: wire.task_id,
            status: wire.status,
            task_name: wire.task_name,
            result: wire.result,
            error: wire.error,
            submitted_at: wire.submitted_at,
            started_at: wire.started_at,
            finished_at: wire.finished_at,
            retries: wire.retries.unwrap_or(0),
            args: wire.args.unwrap_or_default(),
            kwargs: wire.kwargs.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    #[allow(deprecated)]
    fn is_complete_is_the_old_name_of_is_terminal() {
        for status in TaskStatus::ALL {
            let record = TaskResult::new("t", status);
            assert_eq!(record.is_complete(), record.is_terminal(), "{status}");
            assert_eq!(record.is_terminal(), status.is_terminal(), "{status}");
        }
    }

    #[test]
    fn typed_results_round_trip_and_refuse_what_json_cannot_hold() {
        let mut sizes = std::collections::BTreeMap::new();
        sizes.insert("small".to_owned(), vec![1_u32, 2]);
        let record = TaskResult::new("t", TaskStatus::Success)
            .with_result_of(&sizes)
            .expect("a map with string keys is JSON");
        assert_eq!(record.result, json!({"small": [1, 2]}));
        let back: std::collections::BTreeMap<String, Vec<u32>> =
            record.result_as().expect("same shape");
        assert_eq!(back, sizes);

        let mut by_pair = std::collections::HashMap::new();
        by_pair.insert((1_u8, 2_u8), 3_u8);
        let refused = TaskResult::new("t", TaskStatus::Success).with_result_of(&by_pair);
        assert!(
            matches!(refused, Err(BackendError::Codec(_))),
            "{refused:?}"
        );

        let mismatch = record.result_as::<Vec<String>>();
        match mismatch {
            Err(BackendError::Codec(error)) => {
                let message = error.to_string();
                assert!(
                    message.contains("alloc::vec::Vec<alloc::string::String>"),
                    "{message}"
                );
                assert!(message.contains("\"t\""), "{message}");
            }
            other => panic!("expected Codec, got {other:?}"),
        }
    }

    #[test]
    fn binary_formats_that_write_structs_as_arrays_read_records_back() {
        let record = TaskResult::new("t", TaskStatus::Failed)
            .with_error("boom")
            .with_args(vec![json!(1)])
            .with_submitted_at(Utc::now());
        let packed = rmp_serde::to_vec(&record).unwrap();
        let back: TaskResult = rmp_serde::from_slice(&packed).unwrap();
        // MessagePack keeps what JSON keeps: microseconds.
        assert_eq!(back.error, record.error);
        assert_eq!(back.args, record.args);
        assert_eq!(
            back.submitted_at.map(|at| at.timestamp_micros()),
            record.submitted_at.map(|at| at.timestamp_micros())
        );
    }

    #[test]
    fn json_arrays_are_not_records() {
        assert!(serde_json::from_str::<TaskResult>(r#"["t", "pending"]"#).is_err());
    }
}
