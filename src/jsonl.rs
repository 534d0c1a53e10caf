//! Records as JSON lines: one flowrra-layout record per line, for persisting a
//! [`snapshot`](crate::HubHandle::snapshot) and feeding it back to
//! [`restore`](crate::HubHandle::restore).
//!
//! # Examples
//!
//! ```
//! use resulthub::{jsonl, TaskResult, TaskStatus};
//!
//! let records = vec![
//!     TaskResult::new("a", TaskStatus::Success).with_result(1),
//!     TaskResult::new("b", TaskStatus::Pending),
//! ];
//! let mut file = Vec::new();
//! jsonl::write_records(&mut file, &records).unwrap();
//! assert_eq!(String::from_utf8_lossy(&file).lines().count(), 2);
//! assert_eq!(jsonl::read_records(&file[..]).unwrap(), records);
//! ```

use std::io::{BufRead, Write};

use crate::{BackendError, TaskResult};

/// Writes each record as one line of JSON, in order.
///
/// # Errors
///
/// [`BackendError::Storage`] if the writer fails; [`BackendError::Codec`] if a record cannot
/// be encoded.
pub fn write_records<W: Write>(mut writer: W, records: &[TaskResult]) -> Result<(), BackendError> {
    for record in records {
        serde_json::to_writer(&mut writer, record).map_err(|error| {
            if error.is_io() {
                BackendError::Storage(Box::new(error))
            } else {
                BackendError::Codec(error)
            }
        })?;
        writer
            .write_all(b"\n")
            .map_err(|error| BackendError::Storage(Box::new(error)))?;
    }
    writer
        .flush()
        .map_err(|error| BackendError::Storage(Box::new(error)))
}

/// Reads records written one per line, in order; blank lines are skipped.
///
/// # Errors
///
/// [`BackendError::Storage`] if the reader fails; [`BackendError::Codec`] for the first line
/// that is not a record (nothing is returned then).
pub fn read_records<R: BufRead>(reader: R) -> Result<Vec<TaskResult>, BackendError> {
    let mut records = Vec::new();
    // Split on bytes, not `lines()`: a line that is not UTF-8 is bad data (`Codec`), not a
    // failing reader.
    for line in reader.split(b'\n') {
        let line = line.map_err(|error| BackendError::Storage(Box::new(error)))?;
        if std::str::from_utf8(&line).is_ok_and(|text| text.trim().is_empty()) {
            continue;
        }
        records.push(serde_json::from_slice(&line).map_err(BackendError::Codec)?);
    }
    Ok(records)
}
