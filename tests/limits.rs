//! The limits and terminal policy of `HubConfig`, and the counts `stats` reports, against both
//! backends: the hub (on its own thread, `HubHandle::spawn`) and `InMemoryBackend::with_config`,
//! each through `Arc<dyn ResultBackend>` plus a stats reader. Expiry is in `expiry.rs`.

mod support;

use std::time::Duration;

use resulthub::{
    BackendError, HubConfig, HubStats, Limit, ManualClock, TaskResult, TaskStatus, TerminalPolicy,
};
use serde_json::json;
use support::{
    Kind, Subject, assert_holds, assert_overloaded, at, clocked, join, on_hub, on_memory, rec,
    secs, within, within_long,
};

use TaskStatus::{Failed, Pending, Retrying, Running, Success};

backend_tests!([
    max_results_evicts_the_terminal_record_whose_latest_store_is_oldest,
    re_storing_an_existing_id_at_max_results_never_evicts,
    max_results_with_only_non_terminal_records_refuses_a_new_id_and_changes_nothing,
    max_waiters_refuses_waits_past_the_limit_and_registers_nothing,
    wait_for_a_terminal_record_answers_even_at_max_waiters,
    max_waiters_of_zero_refuses_every_wait,
    unlimited_max_waiters_accepts_many,
    an_over_long_task_id_is_refused_by_every_operation_naming_the_limit_and_size,
    task_id_length_is_counted_in_bytes,
    a_record_over_max_record_bytes_is_refused_naming_the_limit_and_size,
    max_record_bytes_measures_the_record_with_sticky_fields_merged,
    keep_first_refuses_every_store_after_a_terminal_record_and_keeps_it,
    keep_first_allows_a_new_record_once_the_terminal_one_is_deleted_or_expired,
    a_refused_store_neither_refreshes_the_eviction_order_nor_restarts_the_ttl,
    overwrite_replaces_terminal_records,
    stats_count_records_per_status,
]
    hub: #[tokio::test] on_hub,
    memory: #[tokio::test] on_memory,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------
/// Asserts `out` is `InvalidInput` whose message contains every needle.
#[track_caller]
fn assert_invalid_naming<T: std::fmt::Debug>(
    what: &str,
    out: Result<T, BackendError>,
    needles: &[&str],
) {
    match out {
        Err(BackendError::InvalidInput { reason, .. }) => {
            for needle in needles {
                assert!(
                    reason.contains(needle),
                    "{what}: InvalidInput reason {reason:?} should name {needle:?}"
                );
            }
        }
        other => panic!("{what}: expected InvalidInput naming {needles:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(
    what: &str,
    out: Result<T, BackendError>,
    id: &str,
    status: TaskStatus,
) {
    match out {
        Err(error @ BackendError::Conflict { .. }) => {
            let message = error.to_string();
            let BackendError::Conflict {
                task_id,
                status: held,
            } = error
            else {
                unreachable!()
            };
            assert_eq!(task_id, id, "{what}: Conflict names the task");
            assert_eq!(held, status, "{what}: Conflict names the held status");
            assert!(
                message.contains(id) && message.contains(status.as_str()),
                "{what}: message {message:?} should name {id} and {status}"
            );
        }
        other => panic!("{what}: expected Conflict for {id} ({status}), got {other:?}"),
    }
}

/// The JSON size the limit measures.
fn json_len(record: &TaskResult) -> usize {
    serde_json::to_vec(record).unwrap().len()
}

// ---------------------------------------------------------------------------------------------
// max_results
// ---------------------------------------------------------------------------------------------

async fn max_results_evicts_the_terminal_record_whose_latest_store_is_oldest(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_results(Some(3)));
    s.put(rec("a", Success)).await;
    s.put(rec("b", Success)).await;
    s.put(rec("c", Pending)).await;
    // Re-storing `a` makes its latest store the newest: `b` is now the oldest terminal record,
    // though `a` was stored first.
    s.put(rec("a", Failed).with_error("again")).await;
    s.put(rec("d", Success)).await;
    assert_holds(&s, &["a", "c", "d"], &["b"]).await;
    assert_eq!(s.stats().await.evicted, 1, "{}", s.name());

    // Next oldest terminal by latest store: `a` (its re-store came before `d`). The pending
    // `c`, stored before both, is never a victim.
    s.put(rec("e", Running)).await;
    assert_holds(&s, &["c", "d", "e"], &["a", "b"]).await;
    let stats = s.stats().await;
    assert_eq!(stats.evicted, 2, "{}: {stats:?}", s.name());
    assert_eq!(stats.by_status.get(Pending), 1);
    assert_eq!(stats.by_status.get(Running), 1);
    assert_eq!(stats.by_status.get(Success), 1);
    s.finish().await;
}

async fn re_storing_an_existing_id_at_max_results_never_evicts(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_results(Some(2)));
    s.put(rec("a", Success)).await;
    s.put(rec("b", Pending)).await;
    for status in [Running, Success, Retrying, Failed, Pending, Success] {
        s.put(rec("a", status)).await;
        s.put(rec("b", status)).await;
        assert_holds(&s, &["a", "b"], &[]).await;
    }
    assert_eq!(s.stats().await.evicted, 0, "{}", s.name());
    s.finish().await;
}

async fn max_results_with_only_non_terminal_records_refuses_a_new_id_and_changes_nothing(
    kind: Kind,
) {
    let s = Subject::open(kind, HubConfig::default().with_max_results(Some(2)));
    s.put(rec("a", Pending).with_task_name("first")).await;
    s.put(rec("b", Running)).await;
    let waiter = s.spawn_wait("c", Some(support::TIMEOUT));
    s.await_waiters(1).await;

    let before = s.stats().await;
    let listed = s.all_listed_ids().await;
    let out = s.store(rec("c", Success).with_result("refused")).await;
    assert_overloaded(
        &format!("{}: store of a new id when full", s.name()),
        out,
        Limit::MaxResults,
        2,
    );
    // Nothing changed: no record, no eviction, the waiter still waits.
    assert_eq!(s.get("c").await, None, "{}", s.name());
    assert_eq!(s.all_listed_ids().await, listed, "{}", s.name());
    assert_eq!(s.stats().await, before, "{}", s.name());
    assert!(
        !waiter.is_finished(),
        "{}: a refused store woke a waiter",
        s.name()
    );

    // Existing ids may still be stored.
    s.put(rec("a", Retrying)).await;
    assert_eq!(
        s.get("a").await.unwrap().task_name.as_deref(),
        Some("first"),
        "{}",
        s.name()
    );
    // Once a record is terminal there is room again: `b` is evicted for `c`.
    s.put(rec("b", Success)).await;
    s.put(rec("c", Success).with_result("stored")).await;
    let woken = join("waiter on c", waiter).await.expect("woken");
    assert_eq!(woken.result, json!("stored"));
    assert_holds(&s, &["a", "c"], &["b"]).await;
    let stats = s.stats().await;
    assert_eq!((stats.evicted, stats.waiters), (1, 0), "{}", s.name());
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// max_waiters
// ---------------------------------------------------------------------------------------------

async fn max_waiters_refuses_waits_past_the_limit_and_registers_nothing(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_waiters(Some(2)));
    let first = s.spawn_wait("a", None);
    let second = s.spawn_wait("a", Some(support::TIMEOUT));
    s.await_waiters(2).await;
    for timeout in [None, Some(Duration::ZERO), Some(secs(30))] {
        let out = within(
            "wait_for past max_waiters",
            s.backend.wait_for("b", timeout),
        )
        .await;
        assert_overloaded(
            &format!("{}: third waiter, {timeout:?}", s.name()),
            out,
            Limit::MaxWaiters,
            2,
        );
    }
    assert_eq!(s.stats().await.waiters, 2, "{}", s.name());
    s.put(rec("a", Failed)).await;
    join("first", first).await.expect("woken");
    join("second", second).await.expect("woken");
    s.await_waiters(0).await;
    // With room again, a wait registers (and times out).
    let out = within("wait_for", s.backend.wait_for("b", Some(Duration::ZERO))).await;
    assert!(
        matches!(out, Err(BackendError::Timeout { .. })),
        "{}: {out:?}",
        s.name()
    );
    s.finish().await;
}

/// With every waiter place taken, `wait_for` on a terminal record still answers at once, whatever
/// the timeout: answering from the record is not waiting, and takes no waiter place.
async fn wait_for_a_terminal_record_answers_even_at_max_waiters(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_waiters(Some(1)));
    s.put(rec("done", Success)).await;
    let holder = s.spawn_wait("open", None);
    s.await_waiters(1).await;
    for timeout in [None, Some(Duration::ZERO), Some(secs(30))] {
        let out = within("wait_for", s.backend.wait_for("done", timeout)).await;
        assert!(
            matches!(&out, Ok(record) if *record == rec("done", Success)),
            "{}: wait_for a terminal record at max_waiters, {timeout:?}: expected the record, got {out:?}",
            s.name()
        );
        assert_eq!(s.waiters().await, 1, "{}: {timeout:?}", s.name());
    }
    holder.abort();
    s.await_waiters(0).await;
    s.finish().await;
}

async fn max_waiters_of_zero_refuses_every_wait(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_waiters(Some(0)));
    for timeout in [None, Some(secs(30))] {
        let out = within("wait_for", s.backend.wait_for("x", timeout)).await;
        assert_overloaded(
            &format!("{}: max_waiters Some(0), {timeout:?}", s.name()),
            out,
            Limit::MaxWaiters,
            0,
        );
    }
    assert_eq!(s.waiters().await, 0, "{}", s.name());
    s.finish().await;
}

/// Without a limit (`max_waiters: None`), thousands of waiters register and all wake.
async fn unlimited_max_waiters_accepts_many(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_waiters(None));
    let handles: Vec<_> = (0..2000)
        .map(|i| s.spawn_wait(format!("u-{}", i % 10), None))
        .collect();
    s.await_waiters(2000).await;
    for i in 0..10 {
        s.put(rec(&format!("u-{i}"), Success)).await;
    }
    let results = within_long("2,000 waiters", futures::future::join_all(handles)).await;
    for result in results {
        result.expect("waiter task").expect("woken");
    }
    s.await_waiters(0).await;
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// max_task_id_len and max_record_bytes
// ---------------------------------------------------------------------------------------------

async fn an_over_long_task_id_is_refused_by_every_operation_naming_the_limit_and_size(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_task_id_len(8));
    let long = "123456789";
    let name = s.name();
    let needles = ["max_task_id_len", "8", "9"];
    assert_invalid_naming(
        &format!("{name}: store"),
        s.store(rec(long, Success)).await,
        &needles,
    );
    assert_invalid_naming(
        &format!("{name}: get"),
        within("get", s.backend.get(long)).await,
        &needles,
    );
    assert_invalid_naming(
        &format!("{name}: delete"),
        within("delete", s.backend.delete(long)).await,
        &needles,
    );
    for timeout in [None, Some(Duration::ZERO), Some(secs(30))] {
        assert_invalid_naming(
            &format!("{name}: wait_for {timeout:?}"),
            within("wait_for", s.backend.wait_for(long, timeout)).await,
            &needles,
        );
    }
    let stats = s.stats().await;
    assert_eq!((stats.results, stats.waiters), (0, 0), "{name}: {stats:?}");
    // Exactly at the limit is fine.
    s.put(rec("12345678", Success)).await;
    assert!(s.get("12345678").await.is_some());
    assert!(
        within("delete", s.backend.delete("12345678"))
            .await
            .unwrap()
    );
    s.finish().await;
}

async fn task_id_length_is_counted_in_bytes(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default().with_max_task_id_len(8));
    // Five characters, ten bytes.
    let id = "ééééé";
    assert_invalid_naming(
        &format!("{}: store", s.name()),
        s.store(rec(id, Success)).await,
        &["max_task_id_len", "8", "10"],
    );
    assert_eq!(s.stats().await.results, 0, "{}", s.name());
    // Four characters, eight bytes.
    s.put(rec("éééé", Success)).await;
    s.finish().await;
}

async fn a_record_over_max_record_bytes_is_refused_naming_the_limit_and_size(kind: Kind) {
    let fits = rec("a", Success).with_result("x".repeat(100));
    let limit = json_len(&fits);
    let s = Subject::open(
        kind,
        HubConfig::default().with_max_record_bytes(Some(limit)),
    );
    let name = s.name();
    // Exactly at the limit is fine.
    s.put(fits.clone()).await;

    let waiter = s.spawn_wait("b", Some(support::TIMEOUT));
    s.await_waiters(1).await;
    let big = rec("b", Success).with_result("x".repeat(101));
    let size = json_len(&big);
    assert_eq!(size, limit + 1);
    let out = s.store(big).await;
    let exceeded = out.as_ref().err().and_then(BackendError::exceeded).copied();
    assert_eq!(
        exceeded.map(|e| (e.limit, e.max, e.actual)),
        Some((Limit::MaxRecordBytes, limit, size)),
        "{name}: {out:?}"
    );
    assert_invalid_naming(
        &format!("{name}: store over the limit"),
        out,
        &["max_record_bytes", &limit.to_string(), &size.to_string()],
    );
    // A bigger record for an id that exists is refused too, and the old record stays.
    assert_invalid_naming(
        &format!("{name}: re-store over the limit"),
        s.store(rec("a", Failed).with_error("e".repeat(500))).await,
        &["max_record_bytes", &limit.to_string()],
    );
    assert_eq!(s.get("a").await, Some(fits), "{name}");
    assert_eq!(s.get("b").await, None, "{name}");
    let stats = s.stats().await;
    assert_eq!((stats.results, stats.waiters), (1, 1), "{name}: {stats:?}");
    assert!(
        !waiter.is_finished(),
        "{name}: a refused store woke a waiter"
    );
    s.put(rec("b", Success).with_result("ok")).await;
    assert_eq!(join("waiter", waiter).await.unwrap().result, json!("ok"));
    s.finish().await;
}

async fn max_record_bytes_measures_the_record_with_sticky_fields_merged(kind: Kind) {
    let pending = rec("a", Pending)
        .with_task_name("render")
        .with_submitted_at(at(0))
        .with_args(vec![json!("p".repeat(300))]);
    let done = rec("a", Success).with_result("finished: twenty char");
    let mut merged = done.clone();
    merged.task_name = pending.task_name.clone();
    merged.submitted_at = pending.submitted_at;
    merged.args = pending.args.clone();
    let limit = json_len(&pending) + 5;
    assert!(json_len(&done) < limit, "the bare record fits");
    assert!(json_len(&merged) > limit, "the merged record does not");

    let s = Subject::open(
        kind,
        HubConfig::default().with_max_record_bytes(Some(limit)),
    );
    let name = s.name();
    s.put(pending.clone()).await;
    assert_invalid_naming(
        &format!("{name}: small record merged over the limit"),
        s.store(done.clone()).await,
        &[
            "max_record_bytes",
            &limit.to_string(),
            &json_len(&merged).to_string(),
        ],
    );
    assert_eq!(s.get("a").await, Some(pending), "{name}: the record stays");
    assert_eq!(s.stats().await.by_status.get(Success), 0, "{name}");
    // The same record for an id with no previous record fits.
    s.put(TaskResult {
        task_id: "b".into(),
        ..done
    })
    .await;
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// terminal_policy
// ---------------------------------------------------------------------------------------------

fn keep_first() -> HubConfig {
    HubConfig::default().with_terminal_policy(TerminalPolicy::KeepFirst)
}

async fn keep_first_refuses_every_store_after_a_terminal_record_and_keeps_it(kind: Kind) {
    let s = Subject::open(kind, keep_first());
    let name = s.name();
    s.put(
        rec("a", Pending)
            .with_task_name("add")
            .with_args(vec![json!(1)]),
    )
    .await;
    s.put(rec("a", Running)).await;
    s.put(rec("a", Success).with_result(1)).await;
    let first = s.get("a").await.unwrap();
    assert_eq!(first.task_name.as_deref(), Some("add"));
    for status in TaskStatus::ALL {
        assert_conflict(
            &format!("{name}: {status} after success"),
            s.store(rec("a", status).with_result(2)).await,
            "a",
            Success,
        );
    }
    s.put(rec("b", Failed).with_error("boom")).await;
    for status in TaskStatus::ALL {
        assert_conflict(
            &format!("{name}: {status} after failed"),
            s.store(rec("b", status)).await,
            "b",
            Failed,
        );
    }
    assert_eq!(s.get("a").await, Some(first.clone()), "{name}");
    assert_eq!(s.list(Success).await, [first], "{name}");
    let stats = s.stats().await;
    assert_eq!(
        (stats.results, stats.by_status.get(Failed)),
        (2, 1),
        "{name}: {stats:?}"
    );
    // wait_for still answers with the first record.
    let out = within("wait_for", s.backend.wait_for("a", Some(Duration::ZERO))).await;
    assert_eq!(out.unwrap().result, json!(1), "{name}");
    s.finish().await;
}

async fn keep_first_allows_a_new_record_once_the_terminal_one_is_deleted_or_expired(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(&clock, keep_first().with_result_ttl(Some(secs(5)))),
    );
    s.put(rec("a", Success)).await;
    s.put(rec("b", Success)).await;
    assert!(within("delete", s.backend.delete("a")).await.unwrap());
    s.put(rec("a", Failed)).await;
    clock.advance(secs(5));
    s.put(rec("b", Failed)).await;
    assert_eq!(s.get("b").await.unwrap().status, Failed, "{}", s.name());
    assert_eq!(s.get("a").await, None, "{}", s.name());
    s.finish().await;
}

async fn a_refused_store_neither_refreshes_the_eviction_order_nor_restarts_the_ttl(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            keep_first()
                .with_max_results(Some(2))
                .with_result_ttl(Some(secs(10))),
        ),
    );
    s.put(rec("a", Success)).await;
    s.put(rec("b", Success)).await;
    clock.advance(secs(8));
    assert_conflict(
        "refused re-store",
        s.store(rec("a", Success)).await,
        "a",
        Success,
    );
    // `a` is still the oldest terminal record: it is the one evicted.
    s.put(rec("c", Success)).await;
    assert_holds(&s, &["b", "c"], &["a"]).await;
    // And a refused store of `b` does not restart its clock.
    assert_conflict("refused", s.store(rec("b", Failed)).await, "b", Success);
    clock.advance(secs(2));
    assert_holds(&s, &["c"], &["a", "b"]).await;
    let stats = s.stats().await;
    assert_eq!(
        (stats.evicted, stats.expired),
        (1, 1),
        "{}: {stats:?}",
        s.name()
    );
    s.finish().await;
}

async fn overwrite_replaces_terminal_records(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default());
    assert_eq!(
        HubConfig::default().terminal_policy,
        TerminalPolicy::Overwrite
    );
    s.put(rec("a", Success).with_result(1).with_task_name("n"))
        .await;
    s.put(rec("a", Failed).with_error("late")).await;
    let a = s.get("a").await.unwrap();
    assert_eq!(
        (a.status, a.result.clone(), a.task_name.as_deref()),
        (Failed, json!(null), Some("n")),
        "{}",
        s.name()
    );
    s.put(rec("a", Running)).await;
    // Back to non-terminal: a wait waits for the next terminal store.
    let waiter = s.spawn_wait("a", Some(support::TIMEOUT));
    s.await_waiters(1).await;
    s.put(rec("a", Success).with_result(3)).await;
    assert_eq!(join("waiter", waiter).await.unwrap().result, json!(3));
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Counts
// ---------------------------------------------------------------------------------------------

/// Walks a backend through stores, a status change, a delete, a refused store and a clear,
/// checking the counts `stats` reports after each step.
async fn stats_count_records_per_status(kind: Kind) {
    let s = Subject::open(kind, HubConfig::default());
    let name = s.name();
    let check = |stats: &HubStats, expect: [usize; 5], what: &str| {
        for (status, n) in TaskStatus::ALL.into_iter().zip(expect) {
            assert_eq!(
                stats.by_status.get(status),
                n,
                "{name}: {what}: count of {status}"
            );
        }
        let c = stats.by_status;
        assert_eq!(
            [c.pending, c.running, c.success, c.failed, c.retrying],
            expect,
            "{name}: {what}: fields"
        );
        assert_eq!(
            stats.results,
            expect.iter().sum::<usize>(),
            "{name}: {what}: results"
        );
    };
    check(&s.stats().await, [0; 5], "empty");
    assert_eq!(s.stats().await.waiters, 0);

    for (id, status) in [
        ("p1", Pending),
        ("p2", Pending),
        ("r", Running),
        ("s", Success),
        ("f", Failed),
        ("y", Retrying),
    ] {
        s.put(rec(id, status)).await;
    }
    check(
        &s.stats().await,
        [2, 1, 1, 1, 1],
        "one of each, two pending",
    );

    s.put(rec("p1", Success)).await;
    check(&s.stats().await, [1, 1, 2, 1, 1], "p1 moved to success");

    assert!(s.delete("s").await);
    assert!(!s.delete("s").await);
    check(&s.stats().await, [1, 1, 1, 1, 1], "s deleted");

    // A refused store counts nothing.
    let bad = rec("other", Failed);
    assert!(
        within("bad store", s.backend.store("y", bad))
            .await
            .is_err()
    );
    check(&s.stats().await, [1, 1, 1, 1, 1], "after a refused store");

    assert_eq!(s.clear().await, 5);
    check(&s.stats().await, [0; 5], "cleared");
    s.finish().await;
}
