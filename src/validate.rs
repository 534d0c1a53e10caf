//! Input checks shared by every backend, so that bad input is refused before anything changes.

use crate::{BackendError, HubConfig, TaskResult, TaskStatus, TerminalPolicy};

/// Refuses an id over the configured length. Used by every operation that takes an id.
pub(crate) fn id_length(task_id: &str, config: &HubConfig) -> Result<(), BackendError> {
    if task_id.len() > config.max_task_id_len {
        return Err(BackendError::invalid(format!(
            "task id is {} bytes, over max_task_id_len ({})",
            task_id.len(),
            config.max_task_id_len
        )));
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
    if result.task_id != task_id {
        return Err(BackendError::invalid(format!(
            "record task_id {:?} differs from the task id {:?} it is stored under",
            result.task_id, task_id
        )));
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
        Some(max) if len > max => Err(BackendError::invalid(format!(
            "record is {len} bytes as JSON, over max_record_bytes ({max})"
        ))),
        _ => Ok(()),
    }
}

/// An `io::Write` that only counts what it is given.
#[derive(Default)]
pub(crate) struct ByteCounter(usize);

impl ByteCounter {
    pub(crate) fn bytes(&self) -> usize {
        self.0
    }
}

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
