//! Fuzz-style decoding: arbitrary bytes, arbitrary strings, and flowrra records mutated at the
//! byte level and field by field never panic the decoder. `serde_json::from_slice::<TaskResult>`
//! answers `Ok` or `Err`; `jsonl::read_records` answers `Codec` for a line that is not a
//! record; and any record that decodes is written back in a form that reads back the same.

use proptest::prelude::*;
use resulthub::{BackendError, TaskResult, jsonl};
use serde_json::Value;

/// Records written by the real flowrra (see `tests/fixtures/README.md`).
const RECORDS: &str = include_str!("fixtures/flowrra_records.jsonl");
const AWARE_RECORDS: &str = include_str!("fixtures/flowrra_records_aware.jsonl");

const FIELDS: [&str; 11] = [
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

fn fixture_lines() -> Vec<&'static str> {
    RECORDS
        .lines()
        .chain(AWARE_RECORDS.lines())
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// Values of every JSON type, and raw tokens that are not JSON or push a decoder's limits,
/// spliced in as a field's value text.
fn weird_values() -> Vec<String> {
    let mut values: Vec<String> = [
        // wrong types
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "\"\"",
        "\"text\"",
        "[]",
        "[1, \"a\", null]",
        "{}",
        "{\"k\": [1, {\"x\": null}]}",
        // not JSON
        "NaN",
        "-NaN",
        "Infinity",
        "-Infinity",
        "undefined",
        "None",
        "True",
        "'single'",
        "\"unterminated",
        "\"\\ud800\"",
        "\"\\udc00\\ud800\"",
        "\"\\u00\"",
        "\"\\x41\"",
        "01",
        "1.",
        ".5",
        "+1",
        "0x10",
        "1e",
        // huge and tiny numbers
        "1e400",
        "-1e400",
        "1e-400",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890123456789012345678901234567890",
        "0.000000000000000000000000000000000000000000000000000000000001",
        // statuses
        "\"success\"",
        "\"SUCCESS\"",
        "\"retrying\"",
        "\"succes\"",
        "\"success \"",
        // dates, good and bad
        "\"2024-01-02T03:04:05\"",
        "\"2024-01-02T03:04:05.123456789123\"",
        "\"2024-01-02T03:04:05Z\"",
        "\"2024-01-02T03:04:05+14:00\"",
        "\"2024-01-02T03:04:05-2359\"",
        "\"2024-01-02 03:04\"",
        "\"2024-01-02\"",
        "\"2024-13-45T25:61:61\"",
        "\"2024-02-30T00:00:00\"",
        "\"0000-00-00T00:00:00\"",
        "\"2016-12-31T23:59:60\"",
        "\"2016-12-31T23:59:60.999999999\"",
        "\"9999-12-31T23:59:59.999999\"",
        "\"+10000-01-01T00:00:00\"",
        "\"-0001-01-01T00:00:00\"",
        "\"+262143-12-31T23:59:59\"",
        "\"+262143-12-31T23:59:59-23:59\"",
        "\"-262143-01-01T00:00:00+23:59\"",
        "\"+999999999-01-01T00:00:00\"",
        "\"2024-01-02T03:04:05+99:99\"",
        "\"2024-01-02T03:04:05.\"",
        "\"T\"",
        "\"\\u0000\"",
        "1704164645",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    // Nesting around serde_json's recursion limit (128).
    for depth in [100, 127, 128, 129, 1_000] {
        values.push(format!("{}{}", "[".repeat(depth), "]".repeat(depth)));
        values.push(format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)));
        values.push("[".repeat(depth));
    }
    values
}

/// Values too big to try in every field of every fixture.
fn huge_values() -> Vec<String> {
    vec![
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
        format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)),
        format!("\"{}\"", "x".repeat(1 << 20)),
        format!("[{}0]", "0,".repeat(100_000)),
    ]
}

/// A record line with `field` removed, set to the raw `value` text, or duplicated.
fn with_field(line: &str, field: &str, value: Option<&str>) -> String {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        panic!("fixture line is an object: {line}");
    };
    let mut parts: Vec<String> = Vec::new();
    for (key, current) in &object {
        let key_text = serde_json::to_string(key).unwrap();
        if key == field {
            if let Some(value) = value {
                parts.push(format!("{key_text}: {value}"));
            }
        } else {
            parts.push(format!("{key_text}: {current}"));
        }
    }
    if !object.contains_key(field) {
        if let Some(value) = value {
            parts.push(format!(
                "{}: {value}",
                serde_json::to_string(field).unwrap()
            ));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// Decodes `bytes`; for a record that decodes, checks the crate reads back what it writes: the
/// encoding decodes, re-encodes to the same bytes, and keeps every non-time field.
fn decode_and_check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(record) = serde_json::from_slice::<TaskResult>(bytes) else {
        return Ok(());
    };
    let written = serde_json::to_vec(&record).expect("a decoded record encodes");
    let reread: TaskResult = match serde_json::from_slice(&written) {
        Ok(reread) => reread,
        Err(error) => {
            return Err(TestCaseError::fail(format!(
                "the crate cannot read what it wrote ({error}): {}\nfrom input {}",
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&bytes[..bytes.len().min(400)])
            )));
        }
    };
    let rewritten = serde_json::to_vec(&reread).unwrap();
    // Floats are compared to 12 significant digits: serde_json's default float parser may
    // land one ulp off (pinned separately in `snapshot.rs`); everything else must be exact.
    let as_value = |bytes: &[u8]| fuzzy_floats(&serde_json::from_slice::<Value>(bytes).unwrap());
    prop_assert_eq!(
        as_value(&rewritten),
        as_value(&written),
        "re-encoding is stable"
    );
    let untimed = |r: &TaskResult| {
        let mut r = r.clone();
        r.submitted_at = None;
        r.started_at = None;
        r.finished_at = None;
        fuzzy_floats(&serde_json::to_value(r).unwrap())
    };
    prop_assert_eq!(untimed(&reread), untimed(&record));
    Ok(())
}

/// `value` with every float replaced by its text to 12 significant digits.
fn fuzzy_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => Value::String(format!("{:.11e}", n.as_f64().unwrap())),
        Value::Array(items) => Value::Array(items.iter().map(fuzzy_floats).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fuzzy_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `read_records` over a good line followed by `line`: `Codec` exactly when `line` is not a
/// record (and not blank), both records otherwise.
fn check_jsonl_line(line: &str) -> Result<(), TestCaseError> {
    if line.contains('\n') || line.contains('\r') {
        return Ok(());
    }
    let good = fixture_lines()[0];
    let file = format!("{good}\n{line}\n");
    let out = jsonl::read_records(file.as_bytes());
    let blank = line.trim().is_empty();
    match serde_json::from_str::<TaskResult>(line) {
        _ if blank => prop_assert_eq!(out.map(|r| r.len()).ok(), Some(1), "blank line skipped"),
        Ok(record) => {
            let records = out.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(records.len(), 2);
            prop_assert_eq!(&records[1], &record);
        }
        Err(_) => prop_assert!(
            matches!(out, Err(BackendError::Codec(_))),
            "a bad line must be a Codec error, got {:?}",
            out.map(|r| r.len())
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deterministic sweeps
// ---------------------------------------------------------------------------------------------

#[test]
fn every_field_of_every_fixture_set_to_every_weird_value_decodes_or_errs_without_panicking() {
    let values = weird_values();
    let mut decoded = 0usize;
    let mut refused = 0usize;
    for line in fixture_lines() {
        for field in FIELDS {
            let removed = with_field(line, field, None);
            decode_and_check(removed.as_bytes()).unwrap();
            for value in &values {
                let text = with_field(line, field, Some(value));
                match serde_json::from_str::<TaskResult>(&text) {
                    Ok(_) => decoded += 1,
                    Err(_) => refused += 1,
                }
                if let Err(error) = decode_and_check(text.as_bytes()) {
                    panic!("{field} = {}: {error}", &value[..value.len().min(80)]);
                }
                if let Err(error) = check_jsonl_line(&text) {
                    panic!("jsonl, {field} = {value}: {error}");
                }
            }
        }
    }
    assert!(
        decoded > 0 && refused > 0,
        "{decoded} decoded, {refused} refused"
    );
}

#[test]
fn every_field_set_to_a_huge_value_decodes_or_errs_without_panicking() {
    let line = fixture_lines()[2];
    for field in FIELDS {
        for value in huge_values() {
            let text = with_field(line, field, Some(&value));
            if let Err(error) = decode_and_check(text.as_bytes()) {
                panic!("{field} = {}...: {error}", &value[..80]);
            }
        }
    }
}

#[test]
fn non_finite_and_out_of_range_numbers_are_errors() {
    let line = fixture_lines()[2];
    for (field, value) in [
        ("result", "NaN"),
        ("result", "Infinity"),
        ("result", "-Infinity"),
        ("result", "1e400"),
        ("retries", "4294967296"),
        ("retries", "-1"),
        ("retries", "1e3"),
    ] {
        let text = with_field(line, field, Some(value));
        assert!(
            serde_json::from_str::<TaskResult>(&text).is_err(),
            "{field} = {value} should be refused"
        );
    }
}

#[test]
fn nesting_past_the_recursion_limit_is_an_error_not_a_stack_overflow() {
    let line = fixture_lines()[0];
    for depth in [10_000, 1_000_000] {
        for field in ["result", "args", "kwargs"] {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let text = with_field(line, field, Some(&nested));
            assert!(serde_json::from_str::<TaskResult>(&text).is_err());
            let out = jsonl::read_records(text.as_bytes());
            assert!(
                matches!(out, Err(BackendError::Codec(_))),
                "{field}: {out:?}"
            );
        }
    }
}

#[test]
fn read_records_reports_a_line_of_invalid_utf8_as_a_codec_error() {
    let mut file = Vec::new();
    file.extend_from_slice(fixture_lines()[0].as_bytes());
    file.extend_from_slice(b"\n{\"task_id\": \"t\xff\xfe\", \"status\": \"pending\"}\n");
    let out = jsonl::read_records(&file[..]);
    assert!(
        matches!(out, Err(BackendError::Codec(_))),
        "a line that is not UTF-8 is a bad line, not a failing reader: got {out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { at: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Splice { at: usize, token: usize },
    Duplicate { from: usize, len: usize, at: usize },
}

/// Tokens that make interesting JSON when spliced anywhere.
const TOKENS: [&str; 16] = [
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "NaN",
    "1e999",
    "\"\\ud800\"",
    "-",
    ".",
    "\u{0}",
    "\u{1F680}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip {
            at: at.index(usize::MAX),
            mask
        }),
        at.clone().prop_map(|at| Mutation::Truncate {
            at: at.index(usize::MAX)
        }),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| {
            Mutation::Insert {
                at: at.index(usize::MAX),
                bytes,
            }
        }),
        (at.clone(), 1usize..20).prop_map(|(at, len)| Mutation::Delete {
            at: at.index(usize::MAX),
            len
        }),
        (at.clone(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Splice {
            at: at.index(usize::MAX),
            token
        }),
        (at.clone(), 1usize..30, at).prop_map(|(from, len, at)| Mutation::Duplicate {
            from: from.index(usize::MAX),
            len,
            at: at.index(usize::MAX),
        }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let n = bytes.len();
        let pos = |at: usize| if n == 0 { 0 } else { at % (n + 1) };
        match mutation {
            Mutation::Flip { at, mask } => {
                if n > 0 {
                    bytes[at % n] ^= mask;
                }
            }
            Mutation::Truncate { at } => bytes.truncate(pos(*at)),
            Mutation::Insert { at, bytes: new } => {
                let at = pos(*at);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let at = pos(*at);
                let end = (at + len).min(n);
                bytes.drain(at..end);
            }
            Mutation::Splice { at, token } => {
                let at = pos(*at);
                bytes.splice(at..at, TOKENS[*token].bytes());
            }
            Mutation::Duplicate { from, len, at } => {
                let from = pos(*from).min(n);
                let end = (from + len).min(n);
                let chunk = bytes[from..end].to_vec();
                let at = pos(*at);
                bytes.splice(at..at, chunk);
            }
        }
    }
    bytes
}

fn fixture() -> impl Strategy<Value = &'static str> {
    prop::sample::select(fixture_lines())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in any::<Vec<u8>>()) {
        decode_and_check(&bytes)?;
        match jsonl::read_records(&bytes[..]) {
            Ok(_) | Err(BackendError::Codec(_)) | Err(BackendError::Storage(_)) => {}
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn arbitrary_strings_never_panic_and_bad_lines_are_codec_errors(text in any::<String>()) {
        decode_and_check(text.as_bytes())?;
        check_jsonl_line(&text)?;
    }

    #[test]
    fn json_like_strings_never_panic(
        text in r#"\{("[a-z_]{0,12}"|[:,\[\]{}0-9.eE+\-]|null|true|NaN|"[^"\\]{0,8}"|\s){0,40}\}?"#,
    ) {
        decode_and_check(text.as_bytes())?;
        check_jsonl_line(&text)?;
    }

    #[test]
    fn mutated_flowrra_records_never_panic(
        line in fixture(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let bytes = mutate(line.as_bytes().to_vec(), &mutations);
        decode_and_check(&bytes)?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check_jsonl_line(text)?;
        }
    }

    #[test]
    fn flowrra_records_with_a_field_replaced_never_panic(
        line in fixture(),
        field in prop::sample::select(FIELDS.to_vec()),
        value in prop::sample::select(weird_values()),
        mutations in prop::collection::vec(mutation(), 0..3),
    ) {
        let text = with_field(line, field, Some(&value));
        let bytes = mutate(text.into_bytes(), &mutations);
        decode_and_check(&bytes)?;
        if let Ok(text) = std::str::from_utf8(&bytes) {
            check_jsonl_line(text)?;
        }
    }
}
