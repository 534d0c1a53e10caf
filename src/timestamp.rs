//! Timestamps on the wire, as Python's `datetime.isoformat()` writes a naive time.
//!
//! flowrra writes naive times (its workers' clock, UTC on most servers), and its listing crashes
//! on a mix of naive and offset-aware times, so we write the naive form, in UTC. We read a naive
//! time as UTC, and convert the offset forms other writers produce (`Z`, `+HH:MM`, `+HHMM`).
//! Like Python's `fromisoformat`, we also read a space instead of the `T`, a time without
//! seconds, and a date alone (midnight).

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `2024-01-02T03:04:05`, or `2024-01-02T03:04:05.000123` when there are microseconds.
pub(crate) fn format(at: &DateTime<Utc>) -> String {
    let mut naive = at.naive_utc();
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

/// Parses the naive form (taken as UTC, any fraction length) and forms with an offset.
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
    with_offset
        .or_else(|| {
            NAIVE
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                .map(|naive| naive.and_utc())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
                .map(|naive| naive.and_utc())
        })
}

pub(crate) fn serialize<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&format(at)),
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
}
