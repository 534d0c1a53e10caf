//! Expiry under `HubConfig`'s `result_ttl` and `pending_ttl`, against both backends: the hub
//! (on its own thread, `HubHandle::spawn`) and `InMemoryBackend::with_config`, each through
//! `Arc<dyn ResultBackend>` plus a stats reader. Time is a `ManualClock`: nothing here sleeps
//! to let time pass.

mod support;

use std::time::Duration;

use resulthub::{BackendError, HubConfig, Limit, ManualClock, TaskResult, TaskStatus};
use serde_json::json;
use support::{
    Kind, Subject, assert_holds, assert_overloaded, at, clocked, join, on_hub, on_memory, rec,
    secs, within,
};

use TaskStatus::{Failed, Pending, Retrying, Running, Success};

backend_tests!([
    result_ttl_expires_a_terminal_record_exactly_that_long_after_its_latest_store,
    pending_ttl_expires_a_non_terminal_record_exactly_that_long_after_its_latest_store,
    a_records_clock_restarts_at_each_store,
    a_record_takes_the_ttl_of_its_latest_status,
    expired_records_vanish_from_pages_at_once,
    an_expired_id_stored_again_is_new_and_inherits_nothing,
    expiry_does_not_end_a_waiter,
    an_expired_terminal_record_no_longer_answers_wait_for_at_once,
    expired_records_hold_no_room_under_max_results,
    an_expired_terminal_record_is_counted_as_expired_not_evicted,
]
    hub: #[tokio::test] on_hub,
    memory: #[tokio::test] on_memory,
);

// ---------------------------------------------------------------------------------------------
// TTLs
// ---------------------------------------------------------------------------------------------

async fn result_ttl_expires_a_terminal_record_exactly_that_long_after_its_latest_store(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(&clock, HubConfig::default().with_result_ttl(Some(secs(10)))),
    );
    s.put(rec("done", Success)).await;
    s.put(rec("failed", Failed)).await;
    s.put(rec("open", Pending)).await;
    clock.advance(secs(10) - Duration::from_nanos(1));
    assert_holds(&s, &["done", "failed", "open"], &[]).await;
    assert_eq!(s.stats().await.expired, 0, "{}", s.name());

    clock.advance(Duration::from_nanos(1));
    // Checked at once, listings first: no sweep has had a chance to run.
    assert!(s.list(Success).await.is_empty(), "{}", s.name());
    assert!(s.list(Failed).await.is_empty(), "{}", s.name());
    let stats = s.stats().await;
    assert_eq!(stats.results, 1, "{}: {stats:?}", s.name());
    assert_eq!(stats.by_status.get(Success), 0, "{}", s.name());
    assert_eq!(stats.by_status.get(Failed), 0, "{}", s.name());
    assert_eq!(stats.expired, 2, "{}: {stats:?}", s.name());
    assert_holds(&s, &["open"], &["done", "failed"]).await;

    // Without a pending_ttl, a non-terminal record stays however long.
    clock.advance(Duration::from_secs(1_000_000));
    assert_holds(&s, &["open"], &["done", "failed"]).await;
    assert_eq!(s.stats().await.expired, 2, "{}", s.name());
    s.finish().await;
}

async fn pending_ttl_expires_a_non_terminal_record_exactly_that_long_after_its_latest_store(
    kind: Kind,
) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default().with_pending_ttl(Some(secs(30))),
        ),
    );
    for (id, status) in [
        ("p", Pending),
        ("r", Running),
        ("y", Retrying),
        ("s", Success),
    ] {
        s.put(rec(id, status)).await;
    }
    clock.advance(secs(30) - Duration::from_nanos(1));
    assert_holds(&s, &["p", "r", "y", "s"], &[]).await;

    clock.advance(Duration::from_nanos(1));
    for status in [Pending, Running, Retrying] {
        assert!(s.list(status).await.is_empty(), "{}: {status}", s.name());
    }
    let stats = s.stats().await;
    assert_eq!(
        (stats.results, stats.expired),
        (1, 3),
        "{}: {stats:?}",
        s.name()
    );
    assert_holds(&s, &["s"], &["p", "r", "y"]).await;
    // Without a result_ttl, a terminal record stays however long.
    clock.advance(Duration::from_secs(1_000_000));
    assert_holds(&s, &["s"], &["p", "r", "y"]).await;
    s.finish().await;
}

async fn a_records_clock_restarts_at_each_store(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default()
                .with_result_ttl(Some(secs(10)))
                .with_pending_ttl(Some(secs(10))),
        ),
    );
    s.put(rec("a", Pending)).await;
    clock.advance(secs(8));
    s.put(rec("a", Running)).await;
    clock.advance(secs(8)); // 16 s after the first store, 8 s after the latest
    assert_holds(&s, &["a"], &[]).await;
    s.put(rec("a", Success)).await;
    clock.advance(secs(8));
    s.put(rec("a", Success).with_result("again")).await;
    clock.advance(secs(8)); // 32 s after the first store
    assert_holds(&s, &["a"], &[]).await;
    clock.advance(secs(2));
    assert_holds(&s, &[], &["a"]).await;
    assert_eq!(s.stats().await.expired, 1, "{}", s.name());
    s.finish().await;
}

async fn a_record_takes_the_ttl_of_its_latest_status(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default()
                .with_result_ttl(Some(secs(5)))
                .with_pending_ttl(Some(secs(100))),
        ),
    );
    // Pending (100 s) turning terminal (5 s).
    s.put(rec("to-terminal", Pending)).await;
    // Terminal (5 s) stored back as non-terminal (100 s) under Overwrite.
    s.put(rec("to-open", Success)).await;
    clock.advance(secs(4));
    s.put(rec("to-terminal", Success)).await;
    s.put(rec("to-open", Retrying)).await;
    clock.advance(secs(5));
    assert_holds(&s, &["to-open"], &["to-terminal"]).await;
    clock.advance(secs(94));
    assert_holds(&s, &["to-open"], &["to-terminal"]).await;
    clock.advance(secs(1));
    assert_holds(&s, &[], &["to-open", "to-terminal"]).await;
    assert_eq!(s.stats().await.expired, 2, "{}", s.name());
    s.finish().await;
}

async fn expired_records_vanish_from_pages_at_once(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(&clock, HubConfig::default().with_result_ttl(Some(secs(10)))),
    );
    // Same submitted_at: the listing order is first-store order a, b, c, d.
    for id in ["a", "b", "c", "d"] {
        s.put(rec(id, Success).with_submitted_at(at(0))).await;
        clock.advance(secs(1));
    }
    // a was stored 10 s ago, b 9 s ago.
    clock.advance(secs(6));
    let page = within("list", s.backend.list_by_status(Success, Some(1), 0))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["b"], "{}: first page after expiry", s.name());
    let page = within("list", s.backend.list_by_status(Success, Some(2), 1))
        .await
        .unwrap();
    assert_eq!(
        ids(&page),
        ["c", "d"],
        "{}: offset 1 after expiry",
        s.name()
    );
    clock.advance(secs(2));
    let page = within("list", s.backend.list_by_status(Success, None, 0))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["d"], "{}", s.name());
    let stats = s.stats().await;
    assert_eq!(
        (stats.results, stats.by_status.get(Success), stats.expired),
        (1, 1, 3),
        "{}: {stats:?}",
        s.name()
    );
    s.finish().await;
}

fn ids(records: &[TaskResult]) -> Vec<&str> {
    records.iter().map(|r| r.task_id.as_str()).collect()
}

async fn an_expired_id_stored_again_is_new_and_inherits_nothing(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default().with_pending_ttl(Some(secs(10))),
        ),
    );
    s.put(
        rec("a", Pending)
            .with_task_name("resize")
            .with_args(vec![json!(1)])
            .with_submitted_at(at(0)),
    )
    .await;
    clock.advance(secs(5));
    s.put(rec("b", Pending)).await;
    clock.advance(secs(6)); // a expired, b has 4 s left
    s.put(rec("a", Pending)).await;
    let a = s.get("a").await.unwrap();
    assert_eq!(a, rec("a", Pending), "{}: nothing inherited", s.name());
    // Without submitted_at both tie; a is a new id now, so it lists after b.
    assert_eq!(ids(&s.list(Pending).await), ["b", "a"], "{}", s.name());
    assert_eq!(s.stats().await.expired, 1, "{}", s.name());
    s.finish().await;
}

async fn expiry_does_not_end_a_waiter(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default()
                .with_pending_ttl(Some(secs(5)))
                .with_result_ttl(Some(secs(5))),
        ),
    );
    s.put(rec("job", Running).with_task_name("t")).await;
    let waiter = s.spawn_wait("job", Some(support::TIMEOUT));
    s.await_waiters(1).await;
    clock.advance(secs(6));
    assert_eq!(s.get("job").await, None, "{}", s.name());
    let stats = s.stats().await;
    assert_eq!(
        (stats.results, stats.waiters, stats.expired),
        (0, 1, 1),
        "{}: the record expired, the waiter stays: {stats:?}",
        s.name()
    );
    assert!(
        !waiter.is_finished(),
        "{}: expiry ended the waiter",
        s.name()
    );
    s.put(rec("job", Success).with_result(7)).await;
    let woken = join("waiter", waiter)
        .await
        .expect("woken by the later store");
    assert_eq!(woken, rec("job", Success).with_result(7), "{}", s.name());
    assert_eq!(s.get("job").await, Some(woken), "{}", s.name());
    assert_eq!(s.stats().await.waiters, 0, "{}", s.name());
    s.finish().await;
}

async fn an_expired_terminal_record_no_longer_answers_wait_for_at_once(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(&clock, HubConfig::default().with_result_ttl(Some(secs(5)))),
    );
    s.put(rec("done", Success)).await;
    let out = within("wait_for", s.backend.wait_for("done", Some(Duration::ZERO))).await;
    assert_eq!(out.unwrap(), rec("done", Success), "{}", s.name());
    clock.advance(secs(5));
    let out = within("wait_for", s.backend.wait_for("done", Some(Duration::ZERO))).await;
    assert!(
        matches!(out, Err(BackendError::Timeout { .. })),
        "{}: wait_for an expired record should wait (and time out), got {out:?}",
        s.name()
    );
    assert_eq!(s.stats().await.waiters, 0, "{}", s.name());
    s.finish().await;
}

async fn expired_records_hold_no_room_under_max_results(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default()
                .with_max_results(Some(2))
                .with_pending_ttl(Some(secs(5))),
        ),
    );
    s.put(rec("p1", Pending)).await;
    s.put(rec("p2", Running)).await;
    assert_overloaded(
        "full of non-terminal records",
        s.store(rec("x", Pending)).await,
        Limit::MaxResults,
        2,
    );
    clock.advance(secs(5));
    // Both records expired: the store must see an empty backend, not a full one.
    let out = s.store(rec("p3", Pending)).await;
    assert!(
        out.is_ok(),
        "{}: store after every record expired: expected Ok, got {out:?}",
        s.name()
    );
    assert_holds(&s, &["p3"], &["p1", "p2"]).await;
    let stats = s.stats().await;
    assert_eq!(
        (stats.expired, stats.evicted),
        (2, 0),
        "{}: {stats:?}",
        s.name()
    );
    s.finish().await;
}

async fn an_expired_terminal_record_is_counted_as_expired_not_evicted(kind: Kind) {
    let clock = ManualClock::new();
    let s = Subject::open(
        kind,
        clocked(
            &clock,
            HubConfig::default()
                .with_max_results(Some(1))
                .with_result_ttl(Some(secs(5))),
        ),
    );
    s.put(rec("a", Success)).await;
    clock.advance(secs(5));
    s.put(rec("b", Success)).await;
    assert_holds(&s, &["b"], &["a"]).await;
    let stats = s.stats().await;
    assert_eq!(
        (stats.expired, stats.evicted),
        (1, 0),
        "{}: a expired before b needed its room: {stats:?}",
        s.name()
    );
    s.finish().await;
}
