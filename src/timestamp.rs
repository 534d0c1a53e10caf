//! Timestamps on the wire, as Python's `datetime.isoformat()` writes a naive time.
//!
//! flowrra stores naive UTC times, and its listing crashes on a mix of naive and offset-aware
//! times, so we write the naive form. We read it back as UTC, and also accept the `Z` and
//! `+HH:MM` forms other writers produce, converting them to UTC.

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `2024-01-02T03:04:05`, or `2024-01-02T03:04:05.000123` when there are microseconds.
pub(crate) fn format(at: &DateTime<Utc>) -> String {
    let naive = at.naive_utc();
    // chrono encodes a leap second as nanos >= 1e9; Python has no such thing, so clamp.
    let micros = (naive.nanosecond() / 1_000).min(999_999);
    let seconds = naive.format("%Y-%m-%dT%H:%M:%S");
    if micros == 0 {
        seconds.to_string()
    } else {
        format!("{seconds}.{micros:06}")
    }
}

/// Parses the naive form (taken as UTC, any fraction length) and RFC 3339 forms with an offset.
pub(crate) fn parse(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
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
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2024-13-02T03:04:05"), None);
    }
}
