//! How the hub holds a record: its fields packed, the JSON values kept as JSON text.
//!
//! A `TaskResult` is 288 bytes inline, and a small JSON object in it (`{"sum": 3}`) is an
//! `IndexMap` of a few hundred bytes more. The hub holds records for a long time and reads
//! them far less often than it holds them, so it keeps each JSON value as its compact text and
//! parses it back on read; the id lives once, as the key of the record map.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::validate::ByteCounter;
use crate::{BackendError, TaskResult, TaskStatus};

/// A record without its id, in as few bytes as its content allows. Every text is an
/// `Arc<str>`: versions of a record share what they inherit, and a copy of the record (the
/// hub's, while the read view still holds the caller's) allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CompactRecord {
    pub(crate) status: TaskStatus,
    retries: u32,
    task_name: Option<Arc<str>>,
    error: Option<Arc<str>>,
    pub(crate) submitted_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// `None` for `null`.
    result: Option<Arc<str>>,
    /// `None` for no arguments. Shared with later versions of the record, which inherit it.
    args: Option<Arc<str>>,
    /// `None` for no keyword arguments. Shared like `args`.
    kwargs: Option<Arc<str>>,
}

impl CompactRecord {
    /// Packs a record; its `task_id` is the caller's to keep.
    pub(crate) fn pack(record: TaskResult) -> CompactRecord {
        CompactRecord {
            status: record.status,
            retries: record.retries,
            task_name: record.task_name.map(Arc::from),
            error: record.error.as_deref().map(Arc::from),
            submitted_at: record.submitted_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            result: (!record.result.is_null()).then(|| to_text(&record.result)),
            args: (!record.args.is_empty()).then(|| to_text(&record.args)),
            kwargs: (!record.kwargs.is_empty()).then(|| to_text(&record.kwargs)),
        }
    }

    /// Unpacks the record stored under `task_id`.
    ///
    /// # Errors
    ///
    /// [`BackendError::Codec`] if a JSON value no longer parses, which would be a bug: the
    /// text was written by `pack`.
    pub(crate) fn unpack(&self, task_id: &str) -> Result<TaskResult, BackendError> {
        Ok(TaskResult {
            task_id: task_id.to_owned(),
            status: self.status,
            task_name: self.task_name.as_deref().map(str::to_owned),
            result: match &self.result {
                Some(text) => from_text(text)?,
                None => Value::Null,
            },
            error: self.error.as_deref().map(str::to_owned),
            submitted_at: self.submitted_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            retries: self.retries,
            args: match &self.args {
                Some(text) => from_text(text)?,
                None => Vec::new(),
            },
            kwargs: match &self.kwargs {
                Some(text) => from_text::<Map<String, Value>>(text)?,
                None => Map::new(),
            },
        })
    }

    /// Shares the task name with an equal one already held, so that a million records of a
    /// few task types hold a few names. `names` stops growing at `MAX_INTERNED_NAMES` names of
    /// at most `MAX_INTERNED_LEN` bytes; `clear` drops the ones no record uses.
    pub(crate) fn intern_task_name(&mut self, names: &mut HashSet<Arc<str>>) {
        const MAX_INTERNED_NAMES: usize = 4096;
        const MAX_INTERNED_LEN: usize = 256;
        let Some(name) = &mut self.task_name else {
            return;
        };
        if name.len() > MAX_INTERNED_LEN {
            return;
        }
        match names.get(&**name) {
            Some(held) => *name = Arc::clone(held),
            None if names.len() < MAX_INTERNED_NAMES => {
                names.insert(Arc::clone(name));
            }
            None => {}
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.status.is_terminal()
    }

    /// Keeps the task fields (`submitted_at`, `task_name`, `args`, `kwargs`) of `previous`
    /// where this record leaves them unset, as `TaskResult::inherit_task_fields` does. The
    /// fields are shared, so this copies pointers, not text.
    pub(crate) fn inherit_task_fields(&mut self, previous: &CompactRecord) {
        if self.submitted_at.is_none() {
            self.submitted_at = previous.submitted_at;
        }
        if self.task_name.is_none() {
            self.task_name.clone_from(&previous.task_name);
        }
        if self.args.is_none() {
            self.args.clone_from(&previous.args);
        }
        if self.kwargs.is_none() {
            self.kwargs.clone_from(&previous.kwargs);
        }
    }

    /// The length of the record's flowrra JSON under `task_id`, computed without encoding it.
    pub(crate) fn json_len(&self, task_id: &str) -> usize {
        fn string_len(text: &str) -> usize {
            let mut counter = ByteCounter::default();
            // Writing a string into a counter cannot fail.
            let _ = serde_json::to_writer(&mut counter, text);
            counter.bytes()
        }
        fn time_len(at: &Option<DateTime<Utc>>) -> usize {
            at.map_or(4, |at| crate::timestamp::format(&at).len() + 2)
        }
        let fixed = r#"{"task_id":,"status":,"task_name":,"result":,"error":,"submitted_at":,"started_at":,"finished_at":,"retries":,"args":,"kwargs":}"#.len();
        fixed
            + string_len(task_id)
            + self.status.as_str().len()
            + 2
            + self.task_name.as_deref().map_or(4, string_len)
            + self.result.as_deref().map_or(4, str::len)
            + self.error.as_deref().map_or(4, string_len)
            + time_len(&self.submitted_at)
            + time_len(&self.started_at)
            + time_len(&self.finished_at)
            + self.retries.to_string().len()
            + self.args.as_deref().map_or(2, str::len)
            + self.kwargs.as_deref().map_or(2, str::len)
    }
}

fn to_text<T: serde::Serialize + ?Sized>(value: &T) -> Arc<str> {
    // Encoding a `serde_json::Value` (or a Vec or Map of them) cannot fail: every key is a
    // string and every number finite.
    let text = serde_json::to_string(value).unwrap_or_else(|_| String::from("null"));
    Arc::from(text.as_str())
}

fn from_text<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, BackendError> {
    serde_json::from_str(text).map_err(BackendError::Codec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> TaskResult {
        let mut kwargs = Map::new();
        kwargs.insert("z".into(), json!(1));
        kwargs.insert("a".into(), json!({"nested": [1.5, "x"]}));
        TaskResult::new("id-é\"", TaskStatus::Failed)
            .with_task_name("name")
            .with_result(json!({"sum": 3, "list": [1, 2.25e-300]}))
            .with_error("boom \n")
            .with_submitted_at(Utc::now())
            .with_started_at(Utc::now())
            .with_finished_at(Utc::now())
            .with_retries(7)
            .with_args(vec![json!(1), json!("two")])
            .with_kwargs(kwargs)
    }

    #[test]
    fn pack_then_unpack_gives_the_record_back() {
        for record in [full(), TaskResult::new("t", TaskStatus::Pending)] {
            let packed = CompactRecord::pack(record.clone());
            assert_eq!(packed.unpack(&record.task_id).unwrap(), record);
        }
    }

    #[test]
    fn json_len_is_the_length_of_the_encoding() {
        for record in [full(), TaskResult::new("t", TaskStatus::Pending)] {
            let encoded = serde_json::to_string(&record).unwrap();
            let packed = CompactRecord::pack(record.clone());
            assert_eq!(packed.json_len(&record.task_id), encoded.len(), "{encoded}");
        }
    }
}
