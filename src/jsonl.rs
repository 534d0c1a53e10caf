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

use crate::timestamp::with_naive_times;
use crate::{BackendError, NaiveTimes, TaskResult};

/// Writes each record as one line of JSON, in order; times without an offset, in UTC.
///
/// # Errors
///
/// [`BackendError::Storage`] if the writer fails; [`BackendError::Codec`] if a record cannot
/// be encoded.
pub fn write_records<W: Write>(writer: W, records: &[TaskResult]) -> Result<(), BackendError> {
    write_records_with(writer, records, NaiveTimes::Utc)
}

/// Reads records written one per line, in order, a time without an offset read as UTC; blank
/// lines are skipped.
///
/// # Errors
///
/// [`BackendError::Storage`] if the reader fails; [`BackendError::Codec`] for the first line
/// that is not a record (nothing is returned then).
pub fn read_records<R: BufRead>(reader: R) -> Result<Vec<TaskResult>, BackendError> {
    read_records_with(reader, NaiveTimes::Utc)
}

/// As [`write_records`], with times written as wall times of `naive_times`: for files that
/// flowrra processes on hosts in that zone read.
///
/// # Errors
///
/// As [`write_records`].
pub fn write_records_with<W: Write>(
    mut writer: W,
    records: &[TaskResult],
    naive_times: NaiveTimes,
) -> Result<(), BackendError> {
    for record in records {
        with_naive_times(naive_times, || serde_json::to_writer(&mut writer, record)).map_err(
            |error| {
                if error.is_io() {
                    BackendError::Storage(Box::new(error))
                } else {
                    BackendError::Codec(error)
                }
            },
        )?;
        writer
            .write_all(b"\n")
            .map_err(|error| BackendError::Storage(Box::new(error)))?;
    }
    writer
        .flush()
        .map_err(|error| BackendError::Storage(Box::new(error)))
}

/// As [`read_records`], with a time without an offset read as a wall time of `naive_times`:
/// for files that flowrra processes on hosts in that zone wrote.
///
/// # Errors
///
/// As [`read_records`].
pub fn read_records_with<R: BufRead>(
    reader: R,
    naive_times: NaiveTimes,
) -> Result<Vec<TaskResult>, BackendError> {
    let mut records = Vec::new();
    // Split on bytes, not `lines()`: a line that is not UTF-8 is bad data (`Codec`), not a
    // failing reader.
    for line in reader.split(b'\n') {
        let line = line.map_err(|error| BackendError::Storage(Box::new(error)))?;
        if std::str::from_utf8(&line).is_ok_and(|text| text.trim().is_empty()) {
            continue;
        }
        let record = with_naive_times(naive_times, || serde_json::from_slice(&line));
        records.push(record.map_err(BackendError::Codec)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, TimeZone, Utc};

    use super::*;
    use crate::TaskStatus;

    #[test]
    fn naive_times_are_written_and_read_as_wall_times_of_the_zone_given() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 12, 0, 0).unwrap();
        let record = TaskResult::new("t", TaskStatus::Success).with_submitted_at(at);
        let west = NaiveTimes::Offset(FixedOffset::west_opt(5 * 3600).unwrap());
        let mut file = Vec::new();
        write_records_with(&mut file, std::slice::from_ref(&record), west).unwrap();
        assert!(String::from_utf8_lossy(&file).contains(r#""submitted_at":"2026-01-02T07:00:00""#));
        assert_eq!(
            read_records_with(&file[..], west).unwrap(),
            std::slice::from_ref(&record)
        );
        // Read as UTC, the same line is five hours early.
        let as_utc = read_records(&file[..]).unwrap();
        assert_eq!(
            as_utc[0].submitted_at,
            Some(at - chrono::Duration::hours(5))
        );
    }
}
