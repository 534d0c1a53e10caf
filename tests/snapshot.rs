//! `HubHandle::snapshot` and `HubHandle::restore`, and their round trip through
//! `jsonl::write_records` / `jsonl::read_records`.

mod support;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use resulthub::{
    BackendError, Clock, HubConfig, HubHandle, ManualClock, ResultBackend, TaskResult, TaskStatus,
    TerminalPolicy, jsonl,
};
use serde_json::{Map, Value, json};
use support::{Subject, TIMEOUT, join, rec, within};

use TaskStatus::{Failed, Pending, Retrying, Running, Success};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A whole second plus `micros`: what the JSON layout keeps exactly.
fn at(secs: i64, micros: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap()
        + chrono::Duration::microseconds(micros)
}

fn kwargs(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn open(config: HubConfig) -> Subject {
    Subject::hub(HubHandle::spawn(config))
}

fn handle(s: &Subject) -> &HubHandle {
    s.hub_handle().expect("a hub")
}

async fn snapshot(s: &Subject) -> Vec<TaskResult> {
    within("snapshot", handle(s).snapshot())
        .await
        .expect("snapshot")
}

async fn restore(s: &Subject, records: Vec<TaskResult>) -> Result<usize, BackendError> {
    within("restore", handle(s).restore(records)).await
}

fn ids(records: &[TaskResult]) -> Vec<&str> {
    records.iter().map(|r| r.task_id.as_str()).collect()
}

/// Every status's full listing.
async fn listings(s: &Subject) -> Vec<Vec<TaskResult>> {
    let mut out = Vec::new();
    for status in TaskStatus::ALL {
        out.push(s.list(status).await);
    }
    out
}

/// Records with every field set, in every status, with ties and missing submission times, stored
/// in an order unrelated to their ids, including sticky-field merges and a delete + re-store.
async fn populate(s: &Subject) {
    let tie = at(100, 250);
    s.put(
        rec("m", Pending)
            .with_task_name("resize")
            .with_submitted_at(tie)
            .with_args(vec![json!(1), json!({"k": [1, 2]})])
            .with_kwargs(kwargs(&[("zeta", json!(1)), ("alpha", json!(null))])),
    )
    .await;
    s.put(
        rec("c", Success)
            .with_submitted_at(tie)
            .with_result(json!({"x": 1.5})),
    )
    .await;
    s.put(rec("z", Success).with_submitted_at(tie)).await;
    s.put(rec("a", Success)).await;
    s.put(rec("q", Success)).await;
    s.put(
        rec("m", Running)
            .with_started_at(at(101, 7))
            .with_retries(2),
    )
    .await;
    s.put(
        rec("f", Failed)
            .with_error("Traceback:\n\t\"quoted\" \\ é 🚀")
            .with_submitted_at(at(50, 999_999))
            .with_finished_at(at(60, 1)),
    )
    .await;
    s.put(rec("y", Retrying).with_submitted_at(at(200, 0)))
        .await;
    s.put(rec("b", Success).with_submitted_at(at(300, 0))).await;
    assert!(within("delete", s.backend.delete("c")).await.unwrap());
    s.put(rec("c", Success).with_submitted_at(tie)).await;
}

// ---------------------------------------------------------------------------------------------
// snapshot
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn snapshot_returns_every_record_in_first_store_order() {
    let s = open(HubConfig::default());
    populate(&s).await;
    let records = snapshot(&s).await;
    // `c` was deleted and stored again: it counts from its new first store.
    assert_eq!(ids(&records), ["m", "z", "a", "q", "f", "y", "b", "c"]);
    for record in &records {
        assert_eq!(s.get(&record.task_id).await.as_ref(), Some(record));
    }
    let m = &records[0];
    assert_eq!(
        (m.status, m.task_name.as_deref(), m.retries),
        (Running, Some("resize"), 2),
        "the latest record, sticky fields merged"
    );
    s.finish().await;
}

#[tokio::test]
async fn snapshot_leaves_out_expired_records() {
    let clock = ManualClock::new();
    let s = open(
        HubConfig::default()
            .with_result_ttl(Some(Duration::from_secs(10)))
            .with_clock(Clock::from(clock.clone())),
    );
    s.put(rec("old", Success)).await;
    clock.advance(Duration::from_secs(5));
    s.put(rec("new", Success)).await;
    s.put(rec("open", Pending)).await;
    clock.advance(Duration::from_secs(5));
    assert_eq!(ids(&snapshot(&s).await), ["new", "open"]);
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// restore
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn restore_into_a_fresh_hub_keeps_every_field_and_the_listing_order() {
    let old = open(HubConfig::default());
    populate(&old).await;
    let saved = snapshot(&old).await;
    let old_listings = listings(&old).await;
    old.finish().await;

    let new = open(HubConfig::default());
    assert_eq!(restore(&new, saved.clone()).await.unwrap(), saved.len());
    assert_eq!(
        snapshot(&new).await,
        saved,
        "the same records, in the same order"
    );
    assert_eq!(
        listings(&new).await,
        old_listings,
        "every listing, ties included"
    );
    // The ties of the Success listing: equal submitted_at, first-store order.
    let success = new.list(Success).await;
    assert_eq!(ids(&success), ["b", "z", "c", "a", "q"]);
    for record in &saved {
        assert_eq!(new.get(&record.task_id).await.as_ref(), Some(record));
    }
    let stats = new.stats().await;
    assert_eq!(stats.results, saved.len());
    new.finish().await;
}

#[tokio::test]
async fn a_snapshot_survives_a_jsonl_round_trip() {
    let old = open(HubConfig::default());
    populate(&old).await;
    let saved = snapshot(&old).await;
    let old_listings = listings(&old).await;
    old.finish().await;

    let mut file = Vec::new();
    jsonl::write_records(&mut file, &saved).expect("write");
    assert_eq!(
        String::from_utf8(file.clone()).unwrap().lines().count(),
        saved.len(),
        "one line per record"
    );
    let read = jsonl::read_records(&file[..]).expect("read");
    assert_eq!(
        read, saved,
        "every field, kwargs order and microseconds included"
    );
    let m = read.iter().find(|r| r.task_id == "m").unwrap();
    assert_eq!(
        m.kwargs.keys().collect::<Vec<_>>(),
        ["zeta", "alpha"],
        "kwargs keep their order"
    );

    let new = open(HubConfig::default());
    assert_eq!(restore(&new, read).await.unwrap(), saved.len());
    assert_eq!(snapshot(&new).await, saved);
    assert_eq!(listings(&new).await, old_listings);
    new.finish().await;
}

#[tokio::test]
async fn restore_into_a_hub_with_records_merges_and_lists_after_what_it_held() {
    let s = open(HubConfig::default());
    let tie = at(10, 0);
    s.put(
        rec("held", Pending)
            .with_task_name("kept")
            .with_submitted_at(tie),
    )
    .await;
    s.put(rec("other", Success).with_submitted_at(tie)).await;
    let n = restore(
        &s,
        vec![
            rec("r1", Success).with_submitted_at(tie),
            // Stored as a store would: sticky fields from the record the hub holds.
            rec("held", Success).with_result(1),
            rec("r2", Success).with_submitted_at(tie),
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    let held = s.get("held").await.unwrap();
    assert_eq!(
        (held.task_name.as_deref(), held.submitted_at, held.result),
        (Some("kept"), Some(tie), json!(1))
    );
    // An id the hub held keeps its place (its first store); new ids follow, in given order.
    assert_eq!(ids(&s.list(Success).await), ["held", "other", "r1", "r2"]);
    assert_eq!(ids(&snapshot(&s).await), ["held", "other", "r1", "r2"]);
    s.finish().await;
}

#[tokio::test]
async fn restore_of_an_id_twice_applies_both_in_order() {
    let s = open(HubConfig::default());
    let n = restore(
        &s,
        vec![
            rec("a", Pending)
                .with_task_name("n")
                .with_submitted_at(at(1, 0)),
            rec("b", Success).with_submitted_at(at(1, 0)),
            rec("a", Success).with_result("done"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    let a = s.get("a").await.unwrap();
    assert_eq!(
        (a.status, a.task_name.as_deref(), a.result.clone()),
        (Success, Some("n"), json!("done"))
    );
    assert_eq!(ids(&s.list(Success).await), ["a", "b"]);
    assert_eq!(s.stats().await.results, 2);
    s.finish().await;
}

#[tokio::test]
async fn an_empty_restore_changes_nothing() {
    let s = open(HubConfig::default());
    s.put(rec("a", Pending)).await;
    assert_eq!(restore(&s, Vec::new()).await.unwrap(), 0);
    assert_eq!(ids(&snapshot(&s).await), ["a"]);
    s.finish().await;
}

/// Checks that `bad` is refused with an error `check` accepts and changes nothing: records,
/// listings, counts, and a waiter on an id the batch would have completed.
async fn assert_restore_refused(
    s: &Subject,
    bad: Vec<TaskResult>,
    check: impl FnOnce(&BackendError) -> bool,
    why: &str,
) {
    let waiter = s.spawn_wait("w", Some(TIMEOUT));
    let waiters = s.stats().await.waiters + 1;
    s.await_waiters(waiters).await;
    let before = (snapshot(s).await, listings(s).await, s.stats().await);
    let mut batch = vec![rec("w", Success), rec("fresh", Pending)];
    batch.extend(bad);
    match restore(s, batch).await {
        Err(error) => assert!(check(&error), "{why}: unexpected error {error:?}"),
        Ok(n) => panic!("{why}: restore should be refused, stored {n}"),
    }
    let after = (snapshot(s).await, listings(s).await, s.stats().await);
    assert_eq!(after, before, "{why}: nothing may change");
    assert!(
        !waiter.is_finished(),
        "{why}: a refused restore woke a waiter"
    );
    waiter.abort();
    s.await_waiters(waiters - 1).await;
}

fn invalid_naming(needles: &'static [&'static str]) -> impl Fn(&BackendError) -> bool {
    move |error| match error {
        BackendError::InvalidInput { reason, .. } => needles.iter().all(|n| reason.contains(n)),
        _ => false,
    }
}

#[tokio::test]
async fn restore_is_all_or_nothing_for_invalid_records() {
    let s = open(
        HubConfig::default()
            .with_max_task_id_len(8)
            .with_max_record_bytes(Some(400)),
    );
    s.put(rec("held", Running)).await;
    assert_restore_refused(
        &s,
        vec![rec("", Success)],
        invalid_naming(&["empty"]),
        "an empty task_id",
    )
    .await;
    assert_restore_refused(
        &s,
        vec![rec("123456789", Success)],
        invalid_naming(&["max_task_id_len", "8", "9"]),
        "an over-long task_id",
    )
    .await;
    assert_restore_refused(
        &s,
        vec![rec("big", Success).with_result("x".repeat(500))],
        invalid_naming(&["max_record_bytes", "400"]),
        "a record over max_record_bytes",
    )
    .await;
    // Over the limit only once merged with the record the hub holds.
    s.put(rec("wide", Pending).with_args(vec![json!("a".repeat(200))]))
        .await;
    assert_restore_refused(
        &s,
        vec![rec("wide", Success).with_result("b".repeat(100))],
        invalid_naming(&["max_record_bytes"]),
        "a record over max_record_bytes once merged",
    )
    .await;
    s.finish().await;
}

#[tokio::test]
async fn restore_is_all_or_nothing_under_max_results() {
    let s = open(HubConfig::default().with_max_results(Some(4)));
    s.put(rec("p1", Pending)).await;
    s.put(rec("p2", Running)).await;
    // Two new ids (w, fresh) fill it; one more cannot be made room for.
    assert_restore_refused(
        &s,
        vec![rec("extra", Pending)],
        |e| matches!(e, BackendError::Overloaded { .. }),
        "more new ids than max_results allows, nothing terminal to evict",
    )
    .await;
    // Room may not come from evicting records of the restore itself.
    assert_restore_refused(
        &s,
        vec![rec("t1", Success), rec("t2", Success)],
        |e| matches!(e, BackendError::Overloaded { .. }),
        "room only by evicting the restore's own records",
    )
    .await;
    s.finish().await;
}

#[tokio::test]
async fn restore_is_all_or_nothing_under_keep_first() {
    let s = open(HubConfig::default().with_terminal_policy(TerminalPolicy::KeepFirst));
    s.put(rec("done", Success).with_result(1)).await;
    assert_restore_refused(
        &s,
        vec![rec("done", Success).with_result(2)],
        |e| matches!(e, BackendError::Conflict { task_id, status: Success } if task_id == "done"),
        "a record the hub holds as terminal",
    )
    .await;
    assert_restore_refused(
        &s,
        vec![rec("twice", Failed), rec("twice", Success)],
        |e| matches!(e, BackendError::Conflict { task_id, status: Failed } if task_id == "twice"),
        "an id made terminal earlier in the same batch",
    )
    .await;
    assert_eq!(s.get("done").await.unwrap().result, json!(1));
    // Non-terminal then terminal within a batch is fine.
    assert_eq!(
        restore(&s, vec![rec("ok", Pending), rec("ok", Success)])
            .await
            .unwrap(),
        2
    );
    s.finish().await;
}

#[tokio::test]
async fn restore_makes_room_by_evicting_only_terminal_records_the_hub_held() {
    let s = open(HubConfig::default().with_max_results(Some(4)));
    s.put(rec("old1", Success)).await;
    s.put(rec("open", Pending)).await;
    s.put(rec("old2", Failed)).await;
    let n = restore(
        &s,
        vec![rec("n1", Success), rec("n2", Success), rec("n3", Pending)],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(ids(&snapshot(&s).await), ["open", "n1", "n2", "n3"]);
    assert_eq!(s.stats().await.evicted, 2);
    s.finish().await;
}

#[tokio::test]
async fn restore_counts_ttls_from_the_restore() {
    let clock = ManualClock::new();
    let config = HubConfig::default()
        .with_result_ttl(Some(Duration::from_secs(10)))
        .with_pending_ttl(Some(Duration::from_secs(20)))
        .with_clock(Clock::from(clock.clone()));
    let old = open(config.clone());
    old.put(rec("done", Success)).await;
    old.put(rec("open", Running)).await;
    clock.advance(Duration::from_secs(9));
    let saved = snapshot(&old).await;
    old.finish().await;

    let new = open(config);
    restore(&new, saved).await.unwrap();
    clock.advance(Duration::from_secs(9)); // 18 s after the first store, 9 s after the restore
    assert_eq!(ids(&snapshot(&new).await), ["done", "open"]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(ids(&snapshot(&new).await), ["open"]);
    assert_eq!(new.stats().await.expired, 1);
    clock.advance(Duration::from_secs(10));
    assert!(snapshot(&new).await.is_empty());
    new.finish().await;
}

#[tokio::test]
async fn waiters_on_restored_non_terminal_records_are_woken_by_a_later_terminal_store() {
    let s = open(HubConfig::default());
    restore(
        &s,
        vec![
            rec("a", Pending)
                .with_task_name("job")
                .with_args(vec![json!(3)]),
            rec("b", Running),
        ],
    )
    .await
    .unwrap();
    let waiter = s.spawn_wait("a", Some(TIMEOUT));
    s.await_waiters(1).await;
    s.put(rec("a", Success).with_result(9)).await;
    let woken = join("waiter", waiter).await.expect("woken");
    assert_eq!(woken, s.get("a").await.unwrap());
    assert_eq!(
        (woken.task_name.as_deref(), woken.args.clone()),
        (Some("job"), vec![json!(3)])
    );
    s.finish().await;
}

#[tokio::test]
async fn a_waiter_registered_before_restore_is_woken_by_a_restored_terminal_record() {
    let s = open(HubConfig::default());
    let done = s.spawn_wait("done", Some(TIMEOUT));
    let open_wait = s.spawn_wait("open", Some(TIMEOUT));
    s.await_waiters(2).await;
    restore(
        &s,
        vec![
            rec("open", Running),
            rec("done", Failed).with_error("restored"),
        ],
    )
    .await
    .unwrap();
    let woken = join("waiter on done", done)
        .await
        .expect("woken by restore");
    assert_eq!(woken, rec("done", Failed).with_error("restored"));
    s.await_waiters(1).await;
    assert!(
        !open_wait.is_finished(),
        "a non-terminal record wakes nobody"
    );
    s.put(rec("open", Success)).await;
    assert_eq!(
        join("waiter on open", open_wait).await.unwrap().status,
        Success
    );
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// jsonl
// ---------------------------------------------------------------------------------------------

#[test]
fn read_records_skips_blank_lines() {
    let records = vec![rec("a", Success).with_result(1), rec("b", Pending)];
    let mut file = Vec::new();
    jsonl::write_records(&mut file, &records).unwrap();
    let text = String::from_utf8(file).unwrap();
    let spaced = format!(
        "\n  \n{}\r\n\t\n{}\n\n",
        text.lines().next().unwrap(),
        text.lines().nth(1).unwrap()
    );
    assert_eq!(jsonl::read_records(spaced.as_bytes()).unwrap(), records);
}

#[test]
fn read_records_refuses_the_whole_file_for_one_bad_line() {
    let mut file = Vec::new();
    jsonl::write_records(&mut file, &[rec("a", Success), rec("b", Success)]).unwrap();
    let mut text = String::from_utf8(file).unwrap();
    text.push_str("{\"task_id\": \"c\", \"status\": \"done\"}\n");
    text.push_str("{\"task_id\": \"d\", \"status\": \"success\"}\n");
    let out = jsonl::read_records(text.as_bytes());
    assert!(
        matches!(out, Err(BackendError::Codec(_))),
        "expected Codec, got {out:?}"
    );
}

#[test]
fn write_records_writes_microseconds_and_reads_them_back() {
    let records = vec![
        rec("a", Success)
            .with_submitted_at(at(0, 1))
            .with_started_at(at(1, 999_999))
            .with_finished_at(at(2, 0)),
    ];
    let mut file = Vec::new();
    jsonl::write_records(&mut file, &records).unwrap();
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(
        text.contains("\"submitted_at\":\"2023-11-14T22:13:20.000001\""),
        "{text}"
    );
    assert_eq!(jsonl::read_records(&file[..]).unwrap(), records);
}

#[tokio::test]
async fn restore_never_evicts_a_held_record_it_stores_again() {
    let s = open(HubConfig::default().with_max_results(Some(3)));
    // `held` is the oldest terminal record; `spare` is the one the restore may evict.
    s.put(
        rec("held", Success)
            .with_task_name("kept")
            .with_submitted_at(at(1, 0)),
    )
    .await;
    s.put(rec("spare", Success)).await;
    s.put(rec("open", Pending)).await;
    let n = restore(
        &s,
        vec![rec("n1", Success), rec("held", Failed).with_error("again")],
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    let held = s.get("held").await.expect("held is restored");
    assert_eq!(
        (held.task_name.as_deref(), held.submitted_at),
        (Some("kept"), Some(at(1, 0))),
        "held is stored over the record the hub held, sticky fields merged: {held:?}"
    );
    assert_eq!(
        ids(&snapshot(&s).await),
        ["held", "open", "n1"],
        "held keeps its place"
    );
    let stats = s.stats().await;
    assert_eq!(stats.evicted, 1, "only `spare` made room: {stats:?}");
    s.finish().await;
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// A snapshot saved as JSON lines must restore the records it saved: a float result (any
    /// finite f64 a worker returned) must come back bit for bit.
    #[test]
    fn a_jsonl_round_trip_keeps_float_results_exactly(x in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
        let records = vec![rec("f", Success).with_result(x).with_args(vec![json!(x)])];
        let mut file = Vec::new();
        jsonl::write_records(&mut file, &records).unwrap();
        let read = jsonl::read_records(&file[..]).unwrap();
        proptest::prop_assert_eq!(
            read[0].result.as_f64().map(f64::to_bits),
            Some(x.to_bits()),
            "{} written as {}",
            x,
            String::from_utf8_lossy(&file)
        );
    }
}

#[test]
fn a_jsonl_round_trip_keeps_a_many_digit_float_result_exactly() {
    let x: f64 = "1.2345678901234567e59".parse().unwrap();
    let records = vec![rec("f", Success).with_result(x)];
    let mut file = Vec::new();
    jsonl::write_records(&mut file, &records).unwrap();
    let read = jsonl::read_records(&file[..]).unwrap();
    assert_eq!(
        read,
        records,
        "written as {}",
        String::from_utf8_lossy(&file)
    );
}

/// `shutdown_and_snapshot` takes the records in the same step as the shutdown: every store
/// that returned before it, pipelined ones included, is in what it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_snapshot_misses_no_store_that_returned_before_it() {
    let hub = HubHandle::spawn(HubConfig::default());
    for n in 0..1_000 {
        let id = format!("t{n}");
        within("store", hub.store(&id, rec(&id, Success)))
            .await
            .expect("store");
    }
    let records = within("shutdown_and_snapshot", hub.shutdown_and_snapshot())
        .await
        .expect("the records");
    assert_eq!(records.len(), 1_000);
    assert_eq!(records[0].task_id, "t0", "first-store order");
    assert_eq!(records[999].task_id, "t999");
    // The hub is gone afterwards, like after shutdown.
    assert!(matches!(
        within("get", hub.get("t0")).await,
        Err(BackendError::Unavailable { .. })
    ));
    assert!(matches!(
        within("again", hub.shutdown_and_snapshot()).await,
        Err(BackendError::Unavailable { .. })
    ));
}
