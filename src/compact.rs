//! How the hub holds a record: its fields packed, its JSON values as a compact tree.
//!
//! A `TaskResult` is 288 bytes inline, and a small JSON object in it (`{"sum": 3}`) is an
//! `IndexMap` of a few hundred bytes more. The hub holds records far longer than it reads them,
//! so it keeps each JSON value as a [`Packed`] tree: arrays and objects as boxed slices, strings
//! moved in as they came. Packing and unpacking walk the value once and never write or parse
//! JSON text, so they stay cheap on the caller's thread; the id lives once, as the map key.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};

use crate::{BackendError, HubConfig, TaskResult, TaskStatus, validate};

/// A record without its id, in as few bytes as its content allows. The task fields a later
/// store inherits (`task_name`, `args`, `kwargs`) are shared: inheriting copies pointers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CompactRecord {
    pub(crate) status: TaskStatus,
    retries: u32,
    task_name: Option<Arc<str>>,
    error: Option<Box<str>>,
    pub(crate) submitted_at: Option<DateTime<Utc>>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    result: Packed,
    /// `None` for no arguments.
    args: Option<Arc<[Packed]>>,
    /// `None` for no keyword arguments; in the order they were given.
    kwargs: Option<Arc<[Entry]>>,
}

// The task fields, as bits of what `inherit_task_fields` took.
const SUBMITTED_AT: u8 = 1;
const TASK_NAME: u8 = 2;
const ARGS: u8 = 4;
const KWARGS: u8 = 8;

/// A JSON value in 24 bytes a node, without the hash tables of `serde_json::Map`.
#[derive(Clone, Debug, PartialEq)]
enum Packed {
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    Array(Box<[Packed]>),
    Object(Box<[Entry]>),
}

/// One key and value of a packed JSON object.
type Entry = (Box<str>, Packed);

impl Packed {
    fn pack(value: Value) -> Packed {
        match value {
            Value::Null => Packed::Null,
            Value::Bool(b) => Packed::Bool(b),
            Value::Number(n) => Packed::Number(n),
            Value::String(s) => Packed::String(s.into_boxed_str()),
            Value::Array(items) => Packed::Array(items.into_iter().map(Packed::pack).collect()),
            Value::Object(map) => Packed::Object(pack_map(map)),
        }
    }

    fn unpack(&self) -> Value {
        match self {
            Packed::Null => Value::Null,
            Packed::Bool(b) => Value::Bool(*b),
            Packed::Number(n) => Value::Number(n.clone()),
            Packed::String(s) => Value::String(s.to_string()),
            Packed::Array(items) => Value::Array(items.iter().map(Packed::unpack).collect()),
            Packed::Object(entries) => Value::Object(unpack_map(entries)),
        }
    }
}

fn pack_map(map: Map<String, Value>) -> Box<[Entry]> {
    map.into_iter()
        .map(|(key, value)| (key.into_boxed_str(), Packed::pack(value)))
        .collect()
}

fn unpack_map(entries: &[Entry]) -> Map<String, Value> {
    entries
        .iter()
        .map(|(key, value)| (key.to_string(), value.unpack()))
        .collect()
}

impl CompactRecord {
    /// Packs a record; its `task_id` is the caller's to keep.
    pub(crate) fn pack(record: TaskResult) -> CompactRecord {
        CompactRecord {
            status: record.status,
            retries: record.retries,
            task_name: record.task_name.map(Arc::from),
            error: record.error.map(String::into_boxed_str),
            submitted_at: record.submitted_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            result: Packed::pack(record.result),
            args: (!record.args.is_empty())
                .then(|| record.args.into_iter().map(Packed::pack).collect()),
            kwargs: (!record.kwargs.is_empty()).then(|| Arc::from(pack_map(record.kwargs))),
        }
    }

    /// Unpacks the record stored under `task_id`.
    pub(crate) fn unpack(&self, task_id: &str) -> TaskResult {
        TaskResult {
            task_id: task_id.to_owned(),
            status: self.status,
            task_name: self.task_name.as_deref().map(str::to_owned),
            result: self.result.unpack(),
            error: self.error.as_deref().map(str::to_owned),
            submitted_at: self.submitted_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            retries: self.retries,
            args: self
                .args
                .as_deref()
                .map_or_else(Vec::new, |args| args.iter().map(Packed::unpack).collect()),
            kwargs: self.kwargs.as_deref().map_or_else(Map::new, unpack_map),
        }
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

    pub(crate) fn has_task_name(&self) -> bool {
        self.task_name.is_some()
    }

    pub(crate) fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// Keeps the task fields (`submitted_at`, `task_name`, `args`, `kwargs`) of `previous`
    /// where this record leaves them unset, as `TaskResult::inherit_task_fields` does, and
    /// returns which it took, for [`forget_inherited`](Self::forget_inherited). The fields are
    /// shared, so this copies pointers, not values.
    pub(crate) fn inherit_task_fields(&mut self, previous: &CompactRecord) -> u8 {
        let mut taken = 0;
        if self.submitted_at.is_none() && previous.submitted_at.is_some() {
            self.submitted_at = previous.submitted_at;
            taken |= SUBMITTED_AT;
        }
        if self.task_name.is_none() && previous.task_name.is_some() {
            self.task_name.clone_from(&previous.task_name);
            taken |= TASK_NAME;
        }
        if self.args.is_none() && previous.args.is_some() {
            self.args.clone_from(&previous.args);
            taken |= ARGS;
        }
        if self.kwargs.is_none() && previous.kwargs.is_some() {
            self.kwargs.clone_from(&previous.kwargs);
            taken |= KWARGS;
        }
        taken
    }

    /// Unsets the task fields an [`inherit_task_fields`](Self::inherit_task_fields) took.
    pub(crate) fn forget_inherited(&mut self, taken: u8) {
        if taken & SUBMITTED_AT != 0 {
            self.submitted_at = None;
        }
        if taken & TASK_NAME != 0 {
            self.task_name = None;
        }
        if taken & ARGS != 0 {
            self.args = None;
        }
        if taken & KWARGS != 0 {
            self.kwargs = None;
        }
    }

    /// Refuses the record if its flowrra JSON under `task_id` is over `max_record_bytes`.
    /// Unpacks it to measure: only hubs with that limit pay for it.
    pub(crate) fn check_size(&self, task_id: &str, config: &HubConfig) -> Result<(), BackendError> {
        if config.max_record_bytes.is_none() {
            return Ok(());
        }
        validate::record_size(&self.unpack(task_id), config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> TaskResult {
        let mut kwargs = Map::new();
        kwargs.insert("z".into(), json!(1));
        kwargs.insert(
            "a".into(),
            json!({"nested": [1.5, "x", null, true], "b": -3}),
        );
        TaskResult::new("id-é\"", TaskStatus::Failed)
            .with_task_name("name")
            .with_result(json!({"sum": 3, "list": [1, 2.25e-300, u64::MAX, i64::MIN]}))
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
            let back = packed.unpack(&record.task_id);
            assert_eq!(back, record);
            // Key order survives too, which `==` on maps does not check.
            assert_eq!(
                serde_json::to_string(&back).unwrap(),
                serde_json::to_string(&record).unwrap()
            );
        }
    }

    #[test]
    fn inherited_fields_are_shared_not_copied() {
        let first = CompactRecord::pack(full());
        let mut next = CompactRecord::pack(TaskResult::new("id-é\"", TaskStatus::Running));
        let taken = next.inherit_task_fields(&first);
        assert!(Arc::ptr_eq(
            next.args.as_ref().unwrap(),
            first.args.as_ref().unwrap()
        ));
        assert_eq!(next.unpack("x").task_name.as_deref(), Some("name"));
        next.forget_inherited(taken);
        assert_eq!(
            next,
            CompactRecord::pack(TaskResult::new("id-é\"", TaskStatus::Running))
        );
    }
}
