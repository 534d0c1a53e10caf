//! Serde interoperability with the Python task queue flowrra (0.1.8).
//!
//! `TaskResult` must serialize exactly as flowrra's `TaskResult.to_dict` (as stored by its
//! `RedisBackend` with `json.dumps(result.to_dict)`) and read back what flowrra writes. The
//! fixtures under `tests/fixtures/` were produced by the real flowrra package; see
//! `tests/fixtures/README.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use resulthub::{TaskResult, TaskStatus};
use serde_json::{Map, Value, json};

/// One `json.dumps(r.to_dict)` line per record, naive datetimes.
const RECORDS: &str = include_str!("fixtures/flowrra_records.jsonl");
/// The same, from offset-aware datetimes (`+00:00`, `+02:00`, `-05:30` suffixes).
const AWARE_RECORDS: &str = include_str!("fixtures/flowrra_records_aware.jsonl");

/// flowrra's `to_dict` key order.
const KEYS: [&str; 11] = [
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

const TIMESTAMP_KEYS: [&str; 3] = ["submitted_at", "started_at", "finished_at"];

const UNICODE_ID: &str = "t-unicode-\u{e9}\u{4e2d}\u{1F680}";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .collect()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
        + Duration::microseconds(i64::from(micros))
}

fn kwargs(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn parse(text: &str) -> TaskResult {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("failed to parse {text}: {e}"))
}

/// Parses without letting a panic escape: `Ok(result)` if serde returned, `Err` if it panicked.
fn parse_no_panic(text: &str) -> Result<Result<TaskResult, serde_json::Error>, String> {
    catch_unwind(AssertUnwindSafe(|| {
        serde_json::from_str::<TaskResult>(text)
    }))
    .map_err(|_| format!("deserializing panicked on {text}"))
}

fn parse_err(text: &str) -> serde_json::Error {
    match parse_no_panic(text) {
        Ok(Ok(record)) => panic!("expected an error for {text}, got {record:?}"),
        Ok(Err(err)) => err,
        Err(panic) => panic!("{panic}"),
    }
}

fn object_keys(value: &Value) -> Vec<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// Python's `json.dumps` default output with its `", "` and `": "` separators made compact,
/// leaving string contents alone.
fn compact_python_json(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut after_separator = false;
    for c in line.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if after_separator {
            after_separator = false;
            if c == ' ' {
                continue;
            }
        }
        match c {
            '"' => in_string = true,
            ',' | ':' => after_separator = true,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Whether Python's `ensure_ascii` escaping and serde_json's agree on every string in `value`:
/// true when all characters are below U+007F (Python escapes DEL and everything above as
/// `\uXXXX`, serde_json writes them raw).
fn escapes_alike(value: &Value) -> bool {
    let ascii = |s: &str| s.chars().all(|c| (c as u32) < 0x7f);
    match value {
        Value::String(s) => ascii(s),
        Value::Array(items) => items.iter().all(escapes_alike),
        Value::Object(map) => map.iter().all(|(k, v)| ascii(k) && escapes_alike(v)),
        _ => true,
    }
}

/// The record each fixture line must parse to, by task id.
fn expected(task_id: &str) -> TaskResult {
    match task_id {
        "t-pending" => TaskResult::new("t-pending", TaskStatus::Pending)
            .with_task_name("add")
            .with_submitted_at(utc(2024, 1, 2, 3, 4, 5, 123_456))
            .with_args(vec![json!(2), json!(3)])
            .with_kwargs(kwargs(json!({"scale": 10, "label": "sum"}))),
        "t-running" => TaskResult::new("t-running", TaskStatus::Running)
            .with_task_name("fetch")
            .with_submitted_at(utc(2024, 1, 2, 3, 4, 5, 1))
            .with_started_at(utc(2024, 1, 2, 3, 4, 6, 654_321))
            .with_args(vec![json!("https://example.com/a?b=1&c=2")]),
        "t-success" => TaskResult::new("t-success", TaskStatus::Success)
            .with_task_name("report")
            .with_result(json!({
                "rows": [1, 2, 3],
                "meta": {"ok": true, "ratio": 2.5, "none": null},
                "tag": "x"
            }))
            .with_submitted_at(utc(2024, 2, 29, 23, 59, 59, 999_999))
            .with_started_at(utc(2024, 3, 1, 0, 0, 0, 500_000))
            .with_finished_at(utc(2024, 3, 1, 0, 0, 1, 250))
            .with_args(vec![json!([1, 2]), json!({"k": "v"})])
            .with_kwargs(kwargs(json!({"verbose": false}))),
        "t-failed" => TaskResult::new("t-failed", TaskStatus::Failed)
            .with_task_name("divide")
            .with_error("ZeroDivisionError: division by zero")
            .with_submitted_at(utc(2023, 12, 31, 23, 59, 59, 10))
            .with_started_at(utc(2024, 1, 1, 0, 0, 0, 100))
            .with_finished_at(utc(2024, 1, 1, 0, 0, 2, 999_000))
            .with_retries(3)
            .with_args(vec![json!(1), json!(0)]),
        "t-retrying" => TaskResult::new("t-retrying", TaskStatus::Retrying)
            .with_task_name("flaky")
            .with_error("ConnectionError: reset by peer")
            .with_submitted_at(utc(2024, 6, 15, 12, 0, 0, 42))
            .with_started_at(utc(2024, 6, 15, 12, 0, 1, 43))
            .with_retries(1),
        "t-kwargs-order" => TaskResult::new("t-kwargs-order", TaskStatus::Success)
            .with_task_name("configure")
            .with_finished_at(utc(2024, 5, 5, 5, 5, 5, 555_555))
            .with_kwargs(kwargs(json!({
                "zeta": 1,
                "alpha": 2,
                "mid": [3, 4],
                "beta": {"y": 1, "x": 2},
                "Alpha": null
            }))),
        UNICODE_ID => TaskResult::new(UNICODE_ID, TaskStatus::Failed)
            .with_task_name("na\u{ef}ve_t\u{e2}che")
            .with_result(json!({
                "\u{fc}ber": "gr\u{fc}\u{df}e \u{2603}",
                "emoji": "\u{1F600}"
            }))
            .with_error(
                "Traceback:\n\t\"quoted\" \\ back\\slash / slash \u{1} ctl \u{7f} del, a: b </script>",
            )
            .with_submitted_at(utc(2024, 7, 8, 9, 10, 11, 120_000))
            .with_retries(2)
            .with_args(vec![
                json!("caf\u{e9}"),
                json!("\u{65e5}\u{672c}\u{8a9e}"),
                json!("\u{1F389}"),
            ])
            .with_kwargs(kwargs(json!({"cl\u{e9}": "valeur", "\u{f1}": "\u{f1}o\u{f1}o"}))),
        "t-whole-seconds" => TaskResult::new("t-whole-seconds", TaskStatus::Success)
            .with_task_name("tick")
            .with_result(0)
            .with_submitted_at(utc(2024, 1, 2, 3, 4, 5, 0))
            .with_started_at(utc(2024, 1, 2, 3, 4, 5, 0))
            .with_finished_at(utc(2024, 1, 2, 3, 4, 6, 0)),
        "t-minimal" => TaskResult::new("t-minimal", TaskStatus::Pending),
        other => panic!("no expectation for fixture record {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures written by flowrra
// ---------------------------------------------------------------------------------------------

#[test]
fn fixture_covers_every_status_and_all_records() {
    let ids: Vec<String> = lines(RECORDS)
        .into_iter()
        .map(|line| parse(line).task_id)
        .collect();
    assert_eq!(
        ids,
        [
            "t-pending",
            "t-running",
            "t-success",
            "t-failed",
            "t-retrying",
            "t-kwargs-order",
            UNICODE_ID,
            "t-whole-seconds",
            "t-minimal",
        ]
    );
    let statuses: Vec<TaskStatus> = lines(RECORDS)
        .into_iter()
        .map(|l| parse(l).status)
        .collect();
    for status in TaskStatus::ALL {
        assert!(
            statuses.contains(&status),
            "no fixture with status {status}"
        );
    }
}

#[test]
fn every_fixture_line_parses_to_the_expected_record() {
    for line in lines(RECORDS) {
        let record = parse(line);
        assert_eq!(record, expected(&record.task_id), "line: {line}");
    }
}

#[test]
fn fixture_field_values_spot_checks() {
    let records: Vec<TaskResult> = lines(RECORDS).into_iter().map(parse).collect();
    let by_id = |id: &str| records.iter().find(|r| r.task_id == id).unwrap();

    let pending = by_id("t-pending");
    assert_eq!(pending.status, TaskStatus::Pending);
    assert_eq!(pending.task_name.as_deref(), Some("add"));
    assert_eq!(pending.result, Value::Null);
    assert_eq!(pending.error, None);
    assert_eq!(
        pending.submitted_at,
        Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap() + Duration::microseconds(123_456))
    );
    assert_eq!(pending.started_at, None);
    assert_eq!(pending.finished_at, None);
    assert_eq!(pending.args, vec![json!(2), json!(3)]);
    assert_eq!(
        pending.kwargs.keys().collect::<Vec<_>>(),
        ["scale", "label"]
    );
    assert_eq!(pending.kwargs["scale"], json!(10));
    assert!(!pending.is_terminal());

    let running = by_id("t-running");
    let started = running.started_at.unwrap();
    assert_eq!(started.timestamp_subsec_micros(), 654_321);
    assert_eq!(started.timestamp_subsec_nanos(), 654_321_000);
    assert_eq!(
        running.submitted_at.unwrap().timestamp_subsec_nanos(),
        1_000,
        "one microsecond, written as .000001"
    );

    let success = by_id("t-success");
    assert!(success.is_terminal() && success.is_success());
    assert_eq!(success.result["meta"]["ratio"], json!(2.5));
    assert_eq!(success.result["meta"]["none"], Value::Null);
    assert_eq!(success.result["rows"], json!([1, 2, 3]));
    assert_eq!(
        success.submitted_at,
        Some(
            NaiveDate::from_ymd_opt(2024, 2, 29)
                .unwrap()
                .and_hms_micro_opt(23, 59, 59, 999_999)
                .unwrap()
                .and_utc()
        )
    );
    assert_eq!(success.finished_at, Some(utc(2024, 3, 1, 0, 0, 1, 250)));

    let failed = by_id("t-failed");
    assert!(failed.is_terminal() && !failed.is_success());
    assert_eq!(failed.retries, 3);
    assert_eq!(
        failed.error.as_deref(),
        Some("ZeroDivisionError: division by zero")
    );
    assert_eq!(failed.result, Value::Null);

    let retrying = by_id("t-retrying");
    assert_eq!(retrying.status, TaskStatus::Retrying);
    assert!(!retrying.is_terminal());
    assert_eq!(retrying.retries, 1);
    assert!(retrying.args.is_empty() && retrying.kwargs.is_empty());

    let ordered = by_id("t-kwargs-order");
    assert_eq!(
        ordered.kwargs.keys().collect::<Vec<_>>(),
        ["zeta", "alpha", "mid", "beta", "Alpha"]
    );
    assert_eq!(
        ordered.kwargs["beta"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["y", "x"]
    );

    let unicode = by_id(UNICODE_ID);
    assert_eq!(unicode.task_name.as_deref(), Some("na\u{ef}ve_t\u{e2}che"));
    assert_eq!(unicode.result["emoji"], json!("\u{1F600}"));
    assert!(unicode.error.as_deref().unwrap().contains('\u{1}'));
    assert!(unicode.error.as_deref().unwrap().contains("\"quoted\""));
    assert_eq!(
        unicode.kwargs.keys().collect::<Vec<_>>(),
        ["cl\u{e9}", "\u{f1}"]
    );

    let whole = by_id("t-whole-seconds");
    assert_eq!(whole.submitted_at.unwrap().timestamp_subsec_nanos(), 0);
    assert_eq!(whole.result, json!(0));

    let minimal = by_id("t-minimal");
    assert_eq!(minimal, &TaskResult::new("t-minimal", TaskStatus::Pending));
}

#[test]
fn reserializing_fixture_lines_gives_the_same_json_keys_and_timestamps() {
    for line in lines(RECORDS) {
        let original: Value = serde_json::from_str(line).unwrap();
        let record = parse(line);
        let text = serde_json::to_string(&record).unwrap();
        let emitted: Value = serde_json::from_str(&text).unwrap();

        assert_eq!(emitted, original, "value differs for line {line}");
        // serde_json's Value equality ignores key order; check it separately.
        assert_eq!(object_keys(&emitted), KEYS, "key order of {text}");
        assert_eq!(
            object_keys(&emitted["kwargs"]),
            object_keys(&original["kwargs"]),
            "kwargs order of {text}"
        );
        for key in TIMESTAMP_KEYS {
            assert_eq!(
                emitted[key], original[key],
                "{key}: emitted {} vs flowrra {}",
                emitted[key], original[key]
            );
        }
        // to_value takes the same path as to_string.
        assert_eq!(serde_json::to_value(&record).unwrap(), original);
        // And the emitted text reads back to the same record.
        assert_eq!(parse(&text), record);
    }
}

#[test]
fn compact_output_is_byte_identical_to_flowrra_for_ascii_records() {
    let mut compared = Vec::new();
    for line in lines(RECORDS) {
        let original: Value = serde_json::from_str(line).unwrap();
        let record = parse(line);
        if !escapes_alike(&original) {
            continue;
        }
        let compact = compact_python_json(line);
        assert_eq!(serde_json::to_string(&record).unwrap(), compact);
        compared.push(record.task_id);
    }
    assert_eq!(compared.len(), 8, "compared {compared:?}");
    assert!(!compared.iter().any(|id| id == UNICODE_ID));
    // The compactor must not touch separators inside strings ("ZeroDivisionError: division").
    assert!(
        compact_python_json(r#"{"a": "x, y: z", "b": [1, 2]}"#) == r#"{"a":"x, y: z","b":[1,2]}"#
    );
}

#[test]
fn unicode_record_is_compared_as_values_and_serde_writes_utf8() {
    let line = lines(RECORDS)
        .into_iter()
        .find(|line| parse(line).task_id == UNICODE_ID)
        .unwrap();
    let record = parse(line);
    let text = serde_json::to_string(&record).unwrap();
    // Python escaped everything non-ASCII; serde_json writes raw UTF-8 (and a raw DEL).
    assert!(line.is_ascii());
    assert!(text.contains("caf\u{e9}") && text.contains('\u{1F680}') && text.contains('\u{7f}'));
    assert!(
        text.contains(r"\u0001"),
        "control characters stay escaped: {text}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        serde_json::from_str::<Value>(line).unwrap()
    );
}

#[test]
fn aware_fixture_lines_are_converted_to_naive_utc() {
    let records: Vec<TaskResult> = lines(AWARE_RECORDS).into_iter().map(parse).collect();
    assert_eq!(records.len(), 2);

    let at_utc = &records[0];
    assert_eq!(at_utc.task_id, "t-aware-utc");
    assert_eq!(at_utc.submitted_at, Some(utc(2024, 1, 2, 3, 4, 5, 123_456)));
    assert_eq!(at_utc.finished_at, Some(utc(2024, 1, 2, 3, 4, 6, 0)));
    let value = serde_json::to_value(at_utc).unwrap();
    assert_eq!(value["submitted_at"], json!("2024-01-02T03:04:05.123456"));
    assert_eq!(value["finished_at"], json!("2024-01-02T03:04:06"));

    let offset = &records[1];
    assert_eq!(offset.task_id, "t-aware-offset");
    // 05:04:05+02:00 and 21:34:05.000007-05:30 (the day before) are both 03:04:05 UTC.
    assert_eq!(offset.submitted_at, Some(utc(2024, 1, 2, 3, 4, 5, 0)));
    assert_eq!(offset.started_at, Some(utc(2024, 1, 2, 3, 4, 5, 7)));
    let value = serde_json::to_value(offset).unwrap();
    assert_eq!(value["submitted_at"], json!("2024-01-02T03:04:05"));
    assert_eq!(value["started_at"], json!("2024-01-02T03:04:05.000007"));
    assert_eq!(object_keys(&value), KEYS);
}

// ---------------------------------------------------------------------------------------------
// Timestamp output
// ---------------------------------------------------------------------------------------------

fn emitted_submitted_at(at: DateTime<Utc>) -> Value {
    let record = TaskResult::new("t", TaskStatus::Pending).with_submitted_at(at);
    serde_json::to_value(&record).unwrap()["submitted_at"].clone()
}

#[test]
fn timestamp_output_matches_python_isoformat() {
    let base = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let cases: [(i64, &str); 9] = [
        (0, "2024-01-02T03:04:05"),
        (999, "2024-01-02T03:04:05"), // below a microsecond: left out, as Python never has it
        (1_000, "2024-01-02T03:04:05.000001"),
        (1_999, "2024-01-02T03:04:05.000001"),
        (120_000_000, "2024-01-02T03:04:05.120000"),
        (500_000_000, "2024-01-02T03:04:05.500000"),
        (123_456_000, "2024-01-02T03:04:05.123456"),
        (123_456_789, "2024-01-02T03:04:05.123456"), // truncated, not rounded
        (999_999_999, "2024-01-02T03:04:05.999999"), // truncated, not rounded up to :06
    ];
    for (nanos, text) in cases {
        assert_eq!(
            emitted_submitted_at(base + Duration::nanoseconds(nanos)),
            json!(text),
            "{nanos} ns"
        );
    }
}

#[test]
fn timestamp_output_pads_years_and_has_no_offset() {
    let early = Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap();
    assert_eq!(emitted_submitted_at(early), json!("0999-01-01T00:00:00"));
    let late = utc(9999, 12, 31, 23, 59, 59, 999_999);
    assert_eq!(
        emitted_submitted_at(late),
        json!("9999-12-31T23:59:59.999999")
    );
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    assert_eq!(emitted_submitted_at(epoch), json!("1970-01-01T00:00:00"));

    let record = TaskResult::new("t", TaskStatus::Success)
        .with_submitted_at(utc(2024, 1, 2, 3, 4, 5, 6))
        .with_started_at(utc(2024, 1, 2, 3, 4, 5, 0))
        .with_finished_at(utc(2024, 1, 2, 3, 4, 5, 999_999));
    let value = serde_json::to_value(&record).unwrap();
    for key in TIMESTAMP_KEYS {
        let text = value[key].as_str().unwrap();
        assert!(
            !text.ends_with('Z') && !text.contains('+') && text.matches('-').count() == 2,
            "{key} has an offset: {text}"
        );
    }
}

#[test]
fn leap_second_is_clamped_to_the_last_microsecond() {
    let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
        .unwrap()
        .and_hms_nano_opt(23, 59, 59, 1_999_999_999)
        .unwrap()
        .and_utc();
    // Python has no second 60: `datetime.fromisoformat("2016-12-31T23:59:60.999999")` raises
    // "second must be in 0..59", so flowrra's from_dict would fail on it.
    assert_eq!(
        emitted_submitted_at(leap),
        json!("2016-12-31T23:59:59.999999")
    );
}

#[test]
fn leap_second_input_is_never_written_back_as_second_60() {
    // chrono accepts second 60 on input; whatever it is read as, what we write must be a time
    // Python can read.
    let mut bad = Vec::new();
    for input in [
        "2016-12-31T23:59:60",
        "2016-12-31T23:59:60.5",
        "2016-12-31T23:59:60.5Z",
    ] {
        let text = with_submitted_at(json!(input));
        if let Ok(Ok(record)) = parse_no_panic(&text) {
            let value = serde_json::to_value(&record).unwrap();
            let written = value["submitted_at"].as_str().unwrap().to_owned();
            if written.contains(":60") {
                bad.push(format!("{input} -> {written}"));
            }
        }
    }
    assert!(bad.is_empty(), "written back with second 60: {bad:?}");
}

#[test]
fn none_timestamps_and_empty_fields_are_written_like_flowrra() {
    let record = TaskResult::new("t-1", TaskStatus::Pending);
    assert_eq!(
        serde_json::to_string(&record).unwrap(),
        r#"{"task_id":"t-1","status":"pending","task_name":null,"result":null,"error":null,"submitted_at":null,"started_at":null,"finished_at":null,"retries":0,"args":[],"kwargs":{}}"#
    );
}

// ---------------------------------------------------------------------------------------------
// Timestamp input
// ---------------------------------------------------------------------------------------------

fn with_submitted_at(value: Value) -> String {
    json!({"task_id": "t", "status": "pending", "submitted_at": value}).to_string()
}

fn parsed_submitted_at(text: &str) -> Option<DateTime<Utc>> {
    parse(&with_submitted_at(json!(text))).submitted_at
}

#[test]
fn timestamp_input_forms() {
    let base = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    let cases: [(&str, DateTime<Utc>); 14] = [
        ("2024-01-02T03:04:05", base),
        ("2024-01-02T03:04:05Z", base),
        ("2024-01-02T03:04:05+00:00", base),
        ("2024-01-02T05:04:05+02:00", base),
        ("2024-01-01T21:34:05-05:30", base),
        ("2024-01-02T03:04:05.5", base + Duration::milliseconds(500)),
        (
            "2024-01-02T03:04:05.123",
            base + Duration::milliseconds(123),
        ),
        (
            "2024-01-02T03:04:05.000123",
            base + Duration::microseconds(123),
        ),
        (
            "2024-01-02T03:04:05.123456789",
            base + Duration::nanoseconds(123_456_789),
        ),
        ("2024-01-02T03:04:05.5Z", base + Duration::milliseconds(500)),
        (
            "2024-01-02T03:04:05.123Z",
            base + Duration::milliseconds(123),
        ),
        (
            "2024-01-02T05:04:05.123456+02:00",
            base + Duration::microseconds(123_456),
        ),
        (
            "2024-01-01T21:34:05.123456789-05:30",
            base + Duration::nanoseconds(123_456_789),
        ),
        ("2024-01-02T03:04:05.000000", base),
    ];
    for (text, at) in cases {
        assert_eq!(parsed_submitted_at(text), Some(at), "input {text}");
    }
}

#[test]
fn nine_digit_fraction_is_kept_on_input_and_truncated_on_output() {
    let record = parse(&with_submitted_at(json!("2024-01-02T03:04:05.999999999")));
    assert_eq!(
        record.submitted_at.unwrap().timestamp_subsec_nanos(),
        999_999_999
    );
    assert_eq!(
        serde_json::to_value(&record).unwrap()["submitted_at"],
        json!("2024-01-02T03:04:05.999999")
    );
}

#[test]
fn offset_input_is_written_back_as_naive_utc() {
    for (input, output) in [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05"),
        ("2024-01-02T05:04:05.25+02:00", "2024-01-02T03:04:05.250000"),
        (
            "2024-01-01T21:34:05.000001-05:30",
            "2024-01-02T03:04:05.000001",
        ),
        ("2024-01-02T03:04:05.1", "2024-01-02T03:04:05.100000"),
    ] {
        let record = parse(&with_submitted_at(json!(input)));
        assert_eq!(
            serde_json::to_value(&record).unwrap()["submitted_at"],
            json!(output),
            "input {input}"
        );
    }
}

#[test]
fn empty_and_null_timestamps_are_none() {
    for value in [json!(""), Value::Null] {
        let text = json!({
            "task_id": "t",
            "status": "running",
            "submitted_at": value,
            "started_at": value,
            "finished_at": value,
        })
        .to_string();
        let record = parse(&text);
        assert_eq!(record.submitted_at, None, "{text}");
        assert_eq!(record.started_at, None, "{text}");
        assert_eq!(record.finished_at, None, "{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient input
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_optional_fields_take_defaults() {
    let record = parse(r#"{"task_id": "t-1", "status": "success"}"#);
    assert_eq!(record, TaskResult::new("t-1", TaskStatus::Success));
    assert_eq!(record.retries, 0);
    assert!(record.args.is_empty());
    assert!(record.kwargs.is_empty());
    assert_eq!(record.result, Value::Null);
    assert_eq!(record.task_name, None);
    assert_eq!(record.error, None);

    // Only retries/args/kwargs missing; everything else present.
    let record = parse(
        r#"{"task_id": "t-2", "status": "failed", "task_name": "n", "result": 1, "error": "e",
            "submitted_at": "2024-01-02T03:04:05", "started_at": null, "finished_at": null}"#,
    );
    assert_eq!(record.retries, 0);
    assert!(record.args.is_empty() && record.kwargs.is_empty());
    assert_eq!(record.error.as_deref(), Some("e"));
    assert_eq!(record.submitted_at, Some(utc(2024, 1, 2, 3, 4, 5, 0)));
}

#[test]
fn null_kwargs_args_and_retries_are_empty() {
    let record = parse(r#"{"task_id": "t", "status": "pending", "kwargs": null}"#);
    assert!(record.kwargs.is_empty());
    let record = parse(r#"{"task_id": "t", "status": "pending", "args": null}"#);
    assert!(record.args.is_empty());
    let record = parse(r#"{"task_id": "t", "status": "pending", "retries": null}"#);
    assert_eq!(record.retries, 0);
    // Written back in full form.
    let value = serde_json::to_value(&record).unwrap();
    assert_eq!(value["args"], json!([]));
    assert_eq!(value["kwargs"], json!({}));
    assert_eq!(value["retries"], json!(0));
}

#[test]
fn unknown_keys_are_ignored_like_flowrra_from_dict() {
    let record = parse(r#"{"task_id": "t", "status": "pending", "extra": {"a": 1}, "retries": 4}"#);
    assert_eq!(record.retries, 4);
    assert_eq!(object_keys(&serde_json::to_value(&record).unwrap()), KEYS);
}

#[test]
fn kwargs_order_survives_a_round_trip() {
    let text =
        r#"{"task_id":"t","status":"pending","kwargs":{"z":1,"a":2,"m":3,"b":{"d":1,"c":2}}}"#;
    let record = parse(text);
    assert_eq!(
        record.kwargs.keys().collect::<Vec<_>>(),
        ["z", "a", "m", "b"]
    );
    let out = serde_json::to_string(&record).unwrap();
    assert!(
        out.ends_with(r#""kwargs":{"z":1,"a":2,"m":3,"b":{"d":1,"c":2}}}"#),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_is_a_serde_error_not_a_panic() {
    let cases = [
        // unknown or mistyped status
        r#"{"task_id": "t", "status": "done"}"#,
        r#"{"task_id": "t", "status": "SUCCESS"}"#,
        r#"{"task_id": "t", "status": ""}"#,
        r#"{"task_id": "t", "status": 1}"#,
        r#"{"task_id": "t", "status": null}"#,
        // bad dates
        r#"{"task_id": "t", "status": "pending", "submitted_at": "yesterday"}"#,
        r#"{"task_id": "t", "status": "pending", "submitted_at": "2024-13-02T03:04:05"}"#,
        r#"{"task_id": "t", "status": "pending", "started_at": "2024-01-02T25:04:05"}"#,
        r#"{"task_id": "t", "status": "pending", "finished_at": "2024-02-30T03:04:05"}"#,
        r#"{"task_id": "t", "status": "pending", "submitted_at": "2024-01-02T03:04:05+25:00"}"#,
        r#"{"task_id": "t", "status": "pending", "submitted_at": 1704164645}"#,
        r#"{"task_id": "t", "status": "pending", "submitted_at": ["2024-01-02T03:04:05"]}"#,
        // missing required keys
        r#"{"status": "pending"}"#,
        r#"{"task_id": "t"}"#,
        r#"{}"#,
        // wrong types
        r#"{"task_id": 5, "status": "pending"}"#,
        r#"{"task_id": null, "status": "pending"}"#,
        r#"{"task_id": "t", "status": "pending", "task_name": 5}"#,
        r#"{"task_id": "t", "status": "pending", "error": {"msg": "x"}}"#,
        r#"{"task_id": "t", "status": "pending", "retries": -1}"#,
        r#"{"task_id": "t", "status": "pending", "retries": "3"}"#,
        r#"{"task_id": "t", "status": "pending", "retries": 1.5}"#,
        r#"{"task_id": "t", "status": "pending", "retries": 4294967296}"#,
        r#"{"task_id": "t", "status": "pending", "args": {"a": 1}}"#,
        r#"{"task_id": "t", "status": "pending", "args": "ab"}"#,
        r#"{"task_id": "t", "status": "pending", "kwargs": [1, 2]}"#,
        // non-object JSON and broken JSON
        r#"[]"#,
        r#""t""#,
        r#"42"#,
        r#"null"#,
        r#"true"#,
        r#""#,
        r#"{"task_id": "t", "status": "pending""#,
        // Python's json.dumps writes NaN for float('nan'); it is not JSON.
        r#"{"task_id": "t", "status": "success", "result": NaN}"#,
    ];
    for text in cases {
        let err = parse_err(text);
        assert!(!err.to_string().is_empty(), "{text}");
    }
}

/// flowrra's `from_dict` indexes the data by key, so a JSON array is a `TypeError` there.
/// serde's derived `Deserialize` for a struct also accepts a sequence of the fields in order;
/// the record must not.
#[test]
fn array_in_field_order_is_rejected() {
    for text in [
        r#"["t", "pending"]"#,
        r#"["t", "success", "add", 5, null, null, null, null, 0, [], {}]"#,
    ] {
        parse_err(text);
    }
}

#[test]
fn bad_input_errors_name_the_problem() {
    let err = parse_err(r#"{"task_id": "t", "status": "done"}"#);
    assert!(err.is_data(), "{err}");
    assert!(err.to_string().contains("done"), "{err}");

    let err = parse_err(r#"{"task_id": "t", "status": "pending", "submitted_at": "yesterday"}"#);
    assert!(err.is_data(), "{err}");
    assert!(err.to_string().contains("yesterday"), "{err}");

    let err = parse_err(r#"{"status": "pending"}"#);
    assert!(err.is_data(), "{err}");
    assert!(err.to_string().contains("task_id"), "{err}");

    let err = parse_err("[]");
    assert!(err.is_data(), "{err}");

    // Also through serde_json::from_value, as a backend holding Values would call it.
    let from_value = catch_unwind(|| {
        serde_json::from_value::<TaskResult>(json!({"task_id": "t", "status": "nope"}))
    })
    .expect("from_value panicked");
    assert!(from_value.unwrap_err().to_string().contains("nope"));
    let from_value = catch_unwind(|| serde_json::from_value::<TaskResult>(json!("a string")))
        .expect("from_value panicked");
    assert!(from_value.is_err());
}

// ---------------------------------------------------------------------------------------------
// TaskStatus
// ---------------------------------------------------------------------------------------------

#[test]
fn task_status_wire_names_round_trip() {
    let names = ["pending", "running", "success", "failed", "retrying"];
    assert_eq!(TaskStatus::ALL.len(), names.len());
    for (status, name) in TaskStatus::ALL.into_iter().zip(names) {
        assert_eq!(status.to_string(), name);
        assert_eq!(status.as_str(), name);
        assert_eq!(name.parse::<TaskStatus>().unwrap(), status);
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(serde_json::to_value(status).unwrap(), json!(name));
        assert_eq!(
            serde_json::from_str::<TaskStatus>(&format!("\"{name}\"")).unwrap(),
            status
        );
        assert_eq!(
            serde_json::from_value::<TaskStatus>(json!(name)).unwrap(),
            status
        );
        // And inside a record.
        let record = TaskResult::new("t", status);
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(value["status"], json!(name));
        assert_eq!(
            serde_json::from_value::<TaskResult>(value).unwrap().status,
            status
        );
    }
}

#[test]
fn unknown_status_string_is_an_error_naming_it() {
    for bad in ["done", "SUCCESS", "Pending", " pending", "", "cancelled"] {
        let err = bad.parse::<TaskStatus>().unwrap_err();
        assert_eq!(err.input(), bad);
        assert!(
            err.to_string().contains(&format!("{bad:?}")),
            "message {err} does not name {bad:?}"
        );
        let serde_err = serde_json::from_value::<TaskStatus>(json!(bad)).unwrap_err();
        assert!(
            serde_err.to_string().contains(bad),
            "serde message {serde_err} does not name {bad:?}"
        );
    }
}
