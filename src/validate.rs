//! Input checks shared by every backend, so that bad input is refused before anything changes.

use crate::{BackendError, HubConfig, Limit, TaskResult, TaskStatus, TerminalPolicy};

/// Refuses an id over the configured length. Used by every operation that takes an id.
pub(crate) fn id_length(task_id: &str, config: &HubConfig) -> Result<(), BackendError> {
    if task_id.len() > config.max_task_id_len {
        return Err(BackendError::too_large(
            Limit::MaxTaskIdLen,
            config.max_task_id_len,
            task_id.len(),
            format!(
                "task id is {} bytes, over max_task_id_len ({})",
                task_id.len(),
                config.max_task_id_len
            ),
        ));
    }
    Ok(())
}

/// Refuses an empty or over-long id: nothing can ever be stored under one, so waiting on it
/// would only hang.
pub(crate) fn waitable_id(task_id: &str, config: &HubConfig) -> Result<(), BackendError> {
    if task_id.is_empty() {
        return Err(BackendError::invalid("task id is empty"));
    }
    id_length(task_id, config)
}

/// Refuses a store that could not be read back under its id.
pub(crate) fn store(
    task_id: &str,
    result: &TaskResult,
    config: &HubConfig,
) -> Result<(), BackendError> {
    waitable_id(task_id, config)?;
    shape(task_id, result)
}

/// The checks of [`store`] that need no configuration: the record's own id and its nesting.
pub(crate) fn shape(task_id: &str, result: &TaskResult) -> Result<(), BackendError> {
    if result.task_id != task_id {
        return Err(BackendError::invalid(format!(
            "record task_id {:?} differs from the task id {:?} it is stored under",
            result.task_id, task_id
        )));
    }
    json_depth(result)
}

/// The deepest nesting of JSON values a record may hold. serde_json refuses to read more than
/// 128 levels, so a deeper value could be stored but never read back, here or by flowrra.
pub(crate) const MAX_JSON_DEPTH: usize = 100;

/// Refuses a record whose `result`, `args` or `kwargs` nest deeper than [`MAX_JSON_DEPTH`].
fn json_depth(record: &TaskResult) -> Result<(), BackendError> {
    // `args` and `kwargs` are a level themselves. An explicit stack: a value deep enough to
    // matter must not overflow ours either.
    let mut stack: Vec<(&serde_json::Value, usize)> = std::iter::once((&record.result, 1))
        .chain(record.args.iter().map(|value| (value, 2)))
        .chain(record.kwargs.values().map(|value| (value, 2)))
        .collect();
    while let Some((value, depth)) = stack.pop() {
        if depth > MAX_JSON_DEPTH {
            return Err(BackendError::too_large(
                Limit::MaxJsonDepth,
                MAX_JSON_DEPTH,
                depth,
                format!("record nests JSON values more than {MAX_JSON_DEPTH} levels deep"),
            ));
        }
        match value {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Refuses a record whose JSON encoding is over `max_record_bytes`. Counts the bytes without
/// keeping them.
pub(crate) fn record_size(record: &TaskResult, config: &HubConfig) -> Result<(), BackendError> {
    if config.max_record_bytes.is_none() {
        return Ok(());
    }
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, record).map_err(BackendError::Codec)?;
    record_bytes(counter.0, config)
}

/// Refuses a record whose JSON encoding, already measured, is over `max_record_bytes`.
pub(crate) fn record_bytes(len: usize, config: &HubConfig) -> Result<(), BackendError> {
    match config.max_record_bytes {
        Some(max) if len > max => Err(BackendError::too_large(
            Limit::MaxRecordBytes,
            max,
            len,
            format!("record is {len} bytes as JSON, over max_record_bytes ({max})"),
        )),
        _ => Ok(()),
    }
}

/// An `io::Write` that only counts what it is given.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Refuses a store over a terminal record when the hub keeps the first terminal record.
/// `previous` is the status of the record the store would replace, if any.
pub(crate) fn terminal_policy(
    task_id: &str,
    previous: Option<TaskStatus>,
    config: &HubConfig,
) -> Result<(), BackendError> {
    match previous {
        Some(status)
            if status.is_terminal() && config.terminal_policy == TerminalPolicy::KeepFirst =>
        {
            Err(BackendError::Conflict {
                task_id: task_id.to_owned(),
                status,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TaskStatus;
    use serde_json::{Value, json};

    fn nested(depth: usize) -> Value {
        (1..depth).fold(json!(1), |inner, _| json!([inner]))
    }

    #[test]
    fn values_nested_deeper_than_can_be_read_back_are_refused() {
        let config = HubConfig::default();
        let ok = TaskResult::new("t", TaskStatus::Success).with_result(nested(MAX_JSON_DEPTH));
        assert!(store("t", &ok, &config).is_ok());
        let text = serde_json::to_string(&ok).unwrap();
        assert!(
            serde_json::from_str::<TaskResult>(&text).is_ok(),
            "the limit reads back"
        );
        let deep =
            TaskResult::new("t", TaskStatus::Success).with_result(nested(MAX_JSON_DEPTH + 1));
        let error = store("t", &deep, &config).unwrap_err();
        assert!(error.to_string().contains("levels deep"), "{error}");
        let deep_arg =
            TaskResult::new("t", TaskStatus::Pending).with_args(vec![nested(MAX_JSON_DEPTH)]);
        assert!(store("t", &deep_arg, &config).is_err());
    }
}
