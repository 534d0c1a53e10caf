//! Timestamps on the wire, as Python's `datetime.isoformat()` writes a naive time.
//!
//! flowrra writes naive times (`datetime.now()`: its workers' local clock, UTC on most
//! servers), and its listing crashes on a mix of naive and offset-aware times, so we write the
//! naive form too. We read and write naive times in UTC unless a [`NaiveTimes`] scope says
//! otherwise, and convert the offset forms other writers produce (`Z`, `+HH:MM`, `+HHMM`).
//! Like Python's `fromisoformat`, we also read a space instead of the `T`, a time without
//! seconds, and a date alone (midnight).
//!
//! The zone is a thread-local scope rather than a parameter because serde's field functions
//! take none; a scope covers one synchronous encode or decode, so it never crosses an await.

use std::cell::Cell;

use chrono::{DateTime, FixedOffset, Local, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// The zone of timestamps written without an offset (`2024-01-02T03:04:05`), as flowrra
/// writes `datetime.now()`: how such a time is read, and how records are written for readers
/// that expect it.
///
/// Records keep every time in UTC ([`DateTime<Utc>`]); this only says what a naive time on the
/// wire means. Set it where records cross to flowrra: `RedisBackendBuilder::naive_times`
/// (feature `redis`) and the [`jsonl`](crate::jsonl) functions ending in `_with`. Times written with an offset (`Z`,
/// `+02:00`) are read as such whatever this says.
///
/// # Examples
///
/// flowrra workers on hosts set to India Standard Time (UTC+05:30) wrote this record:
///
/// ```
/// use chrono::{FixedOffset, TimeZone, Utc};
/// use resulthub::{jsonl, NaiveTimes};
///
/// let line = br#"{"task_id": "t", "status": "success", "submitted_at": "2026-01-02T17:30:00"}"#;
/// let ist = NaiveTimes::Offset(FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap());
/// let records = jsonl::read_records_with(&line[..], ist).unwrap();
/// assert_eq!(records[0].submitted_at, Some(Utc.with_ymd_and_hms(2026, 1, 2, 12, 0, 0).unwrap()));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum NaiveTimes {
    /// Naive times are UTC: flowrra on hosts whose clock is set to UTC, as most servers are.
    #[default]
    Utc,
    /// Naive times are at this fixed offset from UTC.
    Offset(FixedOffset),
    /// Naive times are in this process's local time zone (`TZ`, else the system's), daylight
    /// saving included: for flowrra workers on hosts in the same zone as this process. A wall
    /// time that a clock change skips is read at the offset before the change; one that occurs
    /// twice is read as the earlier.
    Local,
}

thread_local! {
    static NAIVE_TIMES: Cell<NaiveTimes> = const { Cell::new(NaiveTimes::Utc) };
}

/// Runs `work` with naive timestamps read and written in `zone`, on this thread.
pub(crate) fn with_naive_times<R>(zone: NaiveTimes, work: impl FnOnce() -> R) -> R {
    struct Restore(NaiveTimes);
    impl Drop for Restore {
        fn drop(&mut self) {
            NAIVE_TIMES.with(|current| current.set(self.0));
        }
    }
    let _restore = Restore(NAIVE_TIMES.with(|current| current.replace(zone)));
    work()
}

impl NaiveTimes {
    fn current() -> NaiveTimes {
        NAIVE_TIMES.with(Cell::get)
    }

    /// The wall time in this zone of the instant `at`; `None` past the range of dates (an
    /// instant within hours of year 262143 and an offset that crosses it).
    fn wall_time(self, at: &DateTime<Utc>) -> Option<NaiveDateTime> {
        let utc = at.naive_utc();
        let offset: FixedOffset = match self {
            NaiveTimes::Utc => return Some(utc),
            NaiveTimes::Offset(offset) => offset,
            NaiveTimes::Local => Local.offset_from_utc_datetime(&utc).fix(),
        };
        utc.checked_add_offset(offset)
    }

    /// The instant of the wall time `naive` in this zone; `None` past the range of dates.
    fn instant(self, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
        let offset: FixedOffset = match self {
            NaiveTimes::Utc => return Some(naive.and_utc()),
            NaiveTimes::Offset(offset) => offset,
            NaiveTimes::Local => match Local.from_local_datetime(&naive).earliest() {
                Some(at) => return Some(at.with_timezone(&Utc)),
                // Skipped by a clock change: read at a neighbouring offset, which one
                // depending on the zone.
                None => Local.offset_from_utc_datetime(&naive).fix(),
            },
        };
        naive.checked_sub_offset(offset).map(|utc| utc.and_utc())
    }
}

/// `2024-01-02T03:04:05`, or `2024-01-02T03:04:05.000123` when there are microseconds, in UTC.
pub(crate) fn format(at: &DateTime<Utc>) -> String {
    format_naive(at.naive_utc())
}

/// [`format`] of the wall time in the current [`NaiveTimes`] scope (UTC outside one); `None`
/// when that wall time is past the range of dates.
fn format_in_scope(at: &DateTime<Utc>) -> Option<String> {
    NaiveTimes::current().wall_time(at).map(format_naive)
}

fn format_naive(mut naive: NaiveDateTime) -> String {
    // chrono encodes a leap second as nanos >= 1e9 (printed as second 60); Python has no such
    // thing, so clamp to the last microsecond of second 59.
    if naive.nanosecond() >= 1_000_000_000 {
        naive = naive.with_nanosecond(999_999_999).unwrap_or(naive);
    }
    let micros = naive.nanosecond() / 1_000;
    let seconds = naive.format("%Y-%m-%dT%H:%M:%S");
    if micros == 0 {
        seconds.to_string()
    } else {
        format!("{seconds}.{micros:06}")
    }
}

/// Parses the naive form (in the current [`NaiveTimes`] scope, UTC outside one; any fraction
/// length) and forms with an offset.
pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
    const WITH_OFFSET: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M%#z",
        "%Y-%m-%d %H:%M%#z",
    ];
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    let with_offset = WITH_OFFSET
        .iter()
        .find_map(|format| DateTime::parse_from_str(text, format).ok())
        .map(|at| at.with_timezone(&Utc));
    let zone = NaiveTimes::current();
    with_offset
        .or_else(|| {
            NAIVE
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                .and_then(|naive| zone.instant(naive))
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .and_then(|naive| zone.instant(naive))
        })
}

pub(crate) fn serialize<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => match format_in_scope(at) {
            Some(text) => serializer.serialize_str(&text),
            None => Err(serde::ser::Error::custom(format!(
                "{at} has no wall time in the naive-time zone: it is past the range of dates"
            ))),
        },
        None => serializer.serialize_none(),
    }
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<std::borrow::Cow<'de, str>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.is_empty() => Ok(None),
        Some(text) => parse(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn writes_python_isoformat() {
        let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(format(&at), "2024-01-02T03:04:05");
        let at = at + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(format(&at), "2024-01-02T03:04:05.123456");
        let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap()
            + chrono::Duration::nanoseconds(999);
        // Below a microsecond the fraction is left out, as Python would never have it.
        assert_eq!(format(&at), "2024-01-02T03:04:05");
    }

    #[test]
    fn reads_naive_and_offset_forms() {
        let base = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        assert_eq!(parse("2024-01-02T03:04:05"), Some(base));
        assert_eq!(
            parse("2024-01-02T03:04:05.5"),
            Some(base + chrono::Duration::milliseconds(500))
        );
        assert_eq!(
            parse("2024-01-02T03:04:05.000123"),
            Some(base + chrono::Duration::microseconds(123))
        );
        assert_eq!(parse("2024-01-02T03:04:05Z"), Some(base));
        assert_eq!(parse("2024-01-02T05:04:05+02:00"), Some(base));
        assert_eq!(
            parse("2024-01-02T01:04:05.25-02:00"),
            Some(base + chrono::Duration::milliseconds(250))
        );
        assert_eq!(parse("2024-01-02 03:04:05"), Some(base));
        assert_eq!(parse("2024-01-02T05:04:05+0200"), Some(base));
        assert_eq!(
            parse("2024-01-02T03:04"),
            Some(base - chrono::Duration::seconds(5))
        );
        assert_eq!(
            parse("2024-01-02"),
            Some(base - chrono::Duration::seconds(3 * 3600 + 4 * 60 + 5))
        );
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2024-13-02T03:04:05"), None);
    }

    #[test]
    fn a_scope_reads_and_writes_naive_times_at_its_offset_and_ends_with_it() {
        let base = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        let ist = NaiveTimes::Offset(FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap());
        with_naive_times(ist, || {
            assert_eq!(format_in_scope(&base).unwrap(), "2024-01-02T08:34:05");
            assert_eq!(parse("2024-01-02T08:34:05"), Some(base));
            assert_eq!(
                parse("2024-01-02"),
                Some(
                    base.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
                        - chrono::Duration::minutes(330)
                )
            );
            // An offset written on the wire wins over the scope.
            assert_eq!(parse("2024-01-02T03:04:05Z"), Some(base));
            // Scopes nest, and the inner one ends with its work.
            with_naive_times(NaiveTimes::Utc, || {
                assert_eq!(format_in_scope(&base).unwrap(), "2024-01-02T03:04:05")
            });
            assert_eq!(format_in_scope(&base).unwrap(), "2024-01-02T08:34:05");
        });
        assert_eq!(format_in_scope(&base).unwrap(), "2024-01-02T03:04:05");
        assert_eq!(parse("2024-01-02T03:04:05"), Some(base));
    }

    #[test]
    fn a_scope_ends_when_its_work_panics() {
        let base = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap();
        let west = NaiveTimes::Offset(FixedOffset::west_opt(3600).unwrap());
        let outcome = std::panic::catch_unwind(|| with_naive_times(west, || panic!("in scope")));
        assert!(outcome.is_err());
        assert_eq!(format_in_scope(&base).unwrap(), "2024-01-02T03:04:05");
    }

    #[test]
    fn times_past_the_range_of_dates_are_refused_not_panicked_on() {
        let west = NaiveTimes::Offset(FixedOffset::west_opt(5 * 3600).unwrap());
        let east = NaiveTimes::Offset(FixedOffset::east_opt(5 * 3600).unwrap());
        // In range as UTC, out of it five hours later.
        assert!(parse("+262142-12-31T23:59:59").is_some());
        with_naive_times(west, || {
            assert_eq!(parse("+262142-12-31T23:59:59"), None);
        });
        with_naive_times(east, || {
            assert_eq!(parse("-262143-01-01T00:00:00"), None);
            assert_eq!(format_in_scope(&DateTime::<Utc>::MAX_UTC), None);
            let record = crate::TaskResult::new("t", crate::TaskStatus::Success)
                .with_submitted_at(DateTime::<Utc>::MAX_UTC);
            assert!(serde_json::to_string(&record).is_err());
        });
        with_naive_times(NaiveTimes::Local, || {
            let _ = format_in_scope(&DateTime::<Utc>::MAX_UTC);
            let _ = parse("+262142-12-31T23:59:59");
        });
    }

    #[test]
    fn local_time_round_trips_through_the_process_zone() {
        let at = Utc.with_ymd_and_hms(2024, 7, 1, 12, 0, 0).single().unwrap();
        with_naive_times(NaiveTimes::Local, || {
            let written = format_in_scope(&at).unwrap();
            assert_eq!(
                written,
                at.with_timezone(&Local)
                    .naive_local()
                    .format("%Y-%m-%dT%H:%M:%S")
                    .to_string()
            );
            assert_eq!(parse(&written), Some(at));
        });
    }
}
