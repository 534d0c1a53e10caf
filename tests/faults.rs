//! The hub under faults: a handler that panics midway (feature `fault-injection`), a hub that
//! dies or is shut down, a supervised hub that restarts, and shutdown racing stores.
#![cfg(feature = "fault-injection")]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use actix::Supervisor;
use chrono::{DateTime, TimeZone, Utc};
use resulthub::testing::{InjectFault, Stall, StopHub};
use resulthub::{
    BackendError, HubConfig, HubHandle, ResultBackend, ResultHub, TaskResult, TaskStatus,
};
use serde_json::json;
use support::{Subject, TIMEOUT, join, within};

use TaskStatus::{Failed, Pending, Retrying, Running, Success};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn rec(id: &str, status: TaskStatus) -> TaskResult {
    TaskResult::new(id, status)
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap()
}

async fn inject(hub: &HubHandle, operation: &'static str) {
    within("InjectFault", hub.addr().send(InjectFault { operation }))
        .await
        .expect("the hub takes the InjectFault message");
}

/// A `get` the hub itself answers: the public message, which a handle's read does not need.
async fn get_through_the_hub(
    hub: &HubHandle,
    id: &str,
) -> Result<Option<TaskResult>, BackendError> {
    within("Get", hub.addr().send(resulthub::messages::Get::new(id)))
        .await
        .expect("the hub takes the Get message")
}

async fn snapshot(hub: &HubHandle) -> Vec<TaskResult> {
    within("snapshot", hub.snapshot()).await.expect("snapshot")
}

/// Records in every status, with ties and missing submission times, plus a waiter on `p`.
async fn populate(s: &Subject) -> tokio::task::JoinHandle<Result<TaskResult, BackendError>> {
    s.put(
        rec("p", Pending)
            .with_task_name("job")
            .with_submitted_at(at(3)),
    )
    .await;
    s.put(rec("r", Running).with_submitted_at(at(2))).await;
    s.put(rec("s1", Success).with_submitted_at(at(1))).await;
    s.put(rec("s2", Success).with_submitted_at(at(1))).await;
    s.put(rec("s0", Success)).await;
    s.put(rec("f", Failed).with_error("boom")).await;
    s.put(rec("y", Retrying).with_submitted_at(at(5))).await;
    let waiter = s.spawn_wait("p", Some(TIMEOUT));
    s.await_waiters(1).await;
    waiter
}

/// The listing of `status` as the contract defines it over `records` (given in first-store
/// order, as a snapshot returns them): newest `submitted_at` first, none last, ties in order.
fn expected_listing(records: &[TaskResult], status: TaskStatus) -> Vec<TaskResult> {
    let mut matching: Vec<(usize, &TaskResult)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == status)
        .collect();
    matching.sort_by(|(ia, a), (ib, b)| {
        let by_time = match (a.submitted_at, b.submitted_at) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_time.then(ia.cmp(ib))
    });
    matching.into_iter().map(|(_, r)| r.clone()).collect()
}

/// The hub's derived structures agree with its records: every listing is exactly what the
/// records imply, `get` returns each record, and stats count them.
async fn assert_consistent(s: &Subject, why: &str) {
    let hub = s.hub_handle().expect("a hub");
    let records = snapshot(hub).await;
    for status in TaskStatus::ALL {
        assert_eq!(
            s.list(status).await,
            expected_listing(&records, status),
            "{why}: listing of {status} disagrees with the records"
        );
    }
    for record in &records {
        assert_eq!(
            s.get(&record.task_id).await.as_ref(),
            Some(record),
            "{why}: get"
        );
    }
    let stats = s.stats().await;
    assert_eq!(stats.results, records.len(), "{why}: {stats:?}");
    for status in TaskStatus::ALL {
        let held = records.iter().filter(|r| r.status == status).count();
        assert_eq!(stats.by_status.get(status), held, "{why}: {status} count");
    }
}

#[track_caller]
fn assert_internal<T: std::fmt::Debug>(operation: &str, out: Result<T, BackendError>) {
    match out {
        Err(BackendError::Internal { reason }) => assert!(
            reason.contains(operation),
            "Internal for {operation} should name it: {reason:?}"
        ),
        other => panic!("{operation} with an injected fault: expected Internal, got {other:?}"),
    }
}

#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(what: &str, out: Result<T, BackendError>) {
    assert!(
        matches!(out, Err(BackendError::Unavailable { .. })),
        "{what}: expected Unavailable, got {out:?}"
    );
}

/// Every operation answers `Unavailable`, each within the timeout.
async fn assert_every_call_unavailable(hub: &HubHandle) {
    let b: &dyn ResultBackend = hub;
    assert_unavailable(
        "store",
        within("store", b.store("z", rec("z", Success))).await,
    );
    assert_unavailable("get", within("get", b.get("p")).await);
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        assert_unavailable(
            "wait_for",
            within("wait_for", b.wait_for("z", timeout)).await,
        );
    }
    assert_unavailable("delete", within("delete", b.delete("p")).await);
    assert_unavailable("clear", within("clear", b.clear()).await);
    assert_unavailable(
        "list_by_status",
        within("list", b.list_by_status(Pending, None, 0)).await,
    );
    assert_unavailable("stats", within("stats", hub.stats()).await);
    assert_unavailable("snapshot", within("snapshot", hub.snapshot()).await);
    assert_unavailable(
        "restore",
        within("restore", hub.restore(vec![rec("z", Success)])).await,
    );
}

// ---------------------------------------------------------------------------------------------
// Injected faults
// ---------------------------------------------------------------------------------------------

/// A hub whose stores wait to be applied, so that a store that trips a fault can be answered
/// with `Internal`; a pipelined store has returned by then (see the test below).
fn acked() -> HubConfig {
    HubConfig::default().with_pipeline_stores(false)
}

#[tokio::test]
async fn a_pipelined_store_that_panics_is_logged_and_the_hub_keeps_serving() {
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    let waiter = populate(&s).await;
    let before = snapshot(&hub).await;
    inject(&hub, "store").await;
    // The caller was told Ok when the store was queued; the panic comes after.
    within("store", hub.store("r", rec("r", Success).with_result(1)))
        .await
        .expect("a pipelined store returns once queued");
    assert_consistent(&s, "after a pipelined store fault").await;
    let r = s.get("r").await.expect("r is still held");
    let old = before.iter().find(|x| x.task_id == "r").unwrap();
    assert_eq!(
        &r, old,
        "the panicking store was not applied, and nothing half-applied"
    );
    // The hub goes on: the next store of the same id lands, and waiters still wake.
    s.put(rec("r", Success).with_result(2)).await;
    assert_eq!(s.get("r").await.unwrap().result, json!(2));
    assert_consistent(&s, "after the next store").await;
    s.put(rec("p", Success)).await;
    assert_eq!(join("waiter", waiter).await.unwrap().status, Success);
    s.finish().await;
}

/// Arms a fault for `operation`, makes the call that trips it, and checks the hub answered
/// that caller with `Internal`, stayed consistent, and keeps serving every operation.
async fn assert_survives_fault(operation: &'static str) {
    let hub = HubHandle::spawn(acked());
    let s = Subject::hub(hub.clone());
    let waiter = populate(&s).await;
    let before = snapshot(&hub).await;

    inject(&hub, operation).await;
    match operation {
        // A handle's `get` reads the record map; the hub's own `get` serves the message.
        "get" => assert_internal(operation, get_through_the_hub(&hub, "r").await),
        "wait_for" => assert_internal(
            operation,
            within("wait_for", hub.wait_for("w", Some(TIMEOUT))).await,
        ),
        "delete" => assert_internal(operation, within("delete", hub.delete("r")).await),
        "clear" => assert_internal(operation, within("clear", hub.clear()).await),
        "list_by_status" => assert_internal(
            operation,
            within("list", hub.list_by_status(Success, None, 0)).await,
        ),
        "stats" => assert_internal(operation, within("stats", hub.stats()).await),
        "snapshot" => assert_internal(operation, within("snapshot", hub.snapshot()).await),
        "restore" => assert_internal(
            operation,
            within(
                "restore",
                hub.restore(vec![rec("n1", Success), rec("n2", Pending)]),
            )
            .await,
        ),
        other => unreachable!("no trigger for {other}"),
    }
    let why = format!("after a fault in {operation}");
    assert_consistent(&s, &why).await;
    // "May or may not have been applied", but all or nothing: the records are either as before
    // or as the call would have left them.
    let after = snapshot(&hub).await;
    let applied: Option<Vec<TaskResult>> = match operation {
        "delete" => Some(
            before
                .iter()
                .filter(|r| r.task_id != "r")
                .cloned()
                .collect(),
        ),
        "clear" => Some(Vec::new()),
        "restore" => {
            let mut all = before.clone();
            all.extend([rec("n1", Success), rec("n2", Pending)]);
            Some(all)
        }
        _ => None,
    };
    assert!(
        after == before || Some(&after) == applied.as_ref(),
        "{why}: the records are neither as before nor as the call would leave them: {after:#?}"
    );
    assert_eq!(s.stats().await.waiters, 1, "{why}: the waiter on p is kept");
    assert!(!waiter.is_finished(), "{why}: the waiter on p ended");

    // The fault fires once: the same operation works now.
    match operation {
        "get" => {
            within("get", hub.get("p")).await.expect("get");
        }
        "wait_for" => {
            let out = within("wait_for", hub.wait_for("w", Some(Duration::ZERO))).await;
            assert!(matches!(out, Err(BackendError::Timeout { .. })), "{out:?}");
        }
        "delete" => {
            within("delete", hub.delete("f")).await.expect("delete");
        }
        "clear" => {
            within("clear", hub.clear()).await.expect("clear");
        }
        "list_by_status" => {
            within("list", hub.list_by_status(Success, None, 0))
                .await
                .expect("list");
        }
        "stats" => {
            within("stats", hub.stats()).await.expect("stats");
        }
        "snapshot" => {
            within("snapshot", hub.snapshot()).await.expect("snapshot");
        }
        "restore" => {
            let n = within("restore", hub.restore(vec![rec("n3", Running)]))
                .await
                .expect("restore");
            assert_eq!(n, 1);
        }
        _ => unreachable!(),
    }
    assert_consistent(&s, &format!("{why}, after the same call again")).await;

    // And the rest of the hub keeps serving: the waiter is still answered by a terminal store.
    s.put(rec("p", Success).with_result("done")).await;
    let woken = join("waiter on p", waiter)
        .await
        .expect("the waiter on p is woken");
    assert_eq!(woken.result, json!("done"), "{why}");
    s.put(rec("later", Running).with_submitted_at(at(9))).await;
    assert_consistent(&s, &format!("{why}, after later stores")).await;
    assert_eq!(s.stats().await.waiters, 0, "{why}");
    s.finish().await;
}

#[tokio::test]
async fn a_panicking_get_answers_internal_and_the_hub_keeps_serving() {
    assert_survives_fault("get").await;
}

#[tokio::test]
async fn a_panicking_wait_for_answers_internal_and_registers_nothing() {
    assert_survives_fault("wait_for").await;
}

#[tokio::test]
async fn a_panicking_delete_answers_internal_and_the_hub_keeps_serving() {
    assert_survives_fault("delete").await;
}

#[tokio::test]
async fn a_panicking_clear_answers_internal_and_the_hub_keeps_serving() {
    assert_survives_fault("clear").await;
}

#[tokio::test]
async fn a_panicking_list_by_status_answers_internal_and_the_hub_keeps_serving() {
    assert_survives_fault("list_by_status").await;
}

#[tokio::test]
async fn a_panicking_stats_answers_internal_and_the_hub_keeps_serving() {
    assert_survives_fault("stats").await;
}

#[tokio::test]
async fn a_panicking_snapshot_answers_internal_and_the_hub_keeps_serving() {
    assert_survives_fault("snapshot").await;
}

#[tokio::test]
async fn a_panicking_restore_answers_internal_and_restores_all_or_nothing() {
    assert_survives_fault("restore").await;
}

#[tokio::test]
async fn a_store_panicking_midway_answers_internal_and_leaves_a_consistent_index() {
    let hub = HubHandle::spawn(acked());
    let s = Subject::hub(hub.clone());
    let waiter = populate(&s).await;
    let before = snapshot(&hub).await;

    // A status change of an existing id: the panic strikes with the record unlinked from the
    // Running listing and not yet linked into Success.
    inject(&hub, "store").await;
    let out = s
        .store(rec("r", Success).with_result(1).with_submitted_at(at(7)))
        .await;
    assert_internal("store", out);
    assert_consistent(&s, "after a store fault").await;
    let r = s.get("r").await.expect("r is still held");
    let old = before.iter().find(|x| x.task_id == "r").unwrap();
    assert!(
        r == *old || (r.status == Success && r.result == json!(1)),
        "r is neither the old nor the new record: {r:?}"
    );
    // Everything else is untouched.
    let others = |records: &[TaskResult]| -> Vec<TaskResult> {
        records
            .iter()
            .filter(|x| x.task_id != "r")
            .cloned()
            .collect()
    };
    assert_eq!(others(&snapshot(&hub).await), others(&before));

    // The next store of the same id works and lands in the right listing.
    s.put(rec("r", Failed).with_error("second")).await;
    assert_consistent(&s, "after a later store of the same id").await;
    assert_eq!(s.list(Failed).await.len(), 2);
    assert!(
        s.list(Running).await.is_empty(),
        "r left the Running listing"
    );

    // A terminal store that panics: either it was applied and woke the waiter with the record
    // `get` returns, or it was not and the waiter still waits for the next one.
    inject(&hub, "store").await;
    assert_internal("store", s.store(rec("p", Success).with_result("x")).await);
    assert_consistent(&s, "after a terminal store fault").await;
    let p = s.get("p").await.expect("p is held");
    if p.status == Success {
        let woken = join("waiter", waiter).await.expect("woken");
        assert_eq!(woken, p, "the waiter got what get returns");
    } else {
        assert_eq!(s.stats().await.waiters, 1, "the waiter on p is kept");
        s.put(rec("p", Success).with_result("y")).await;
        let woken = join("waiter", waiter).await.expect("woken");
        assert_eq!(woken.result, json!("y"));
        assert_eq!(
            woken.task_name.as_deref(),
            Some("job"),
            "sticky fields kept"
        );
    }
    assert_eq!(s.stats().await.waiters, 0);
    s.finish().await;
}

#[tokio::test]
async fn a_store_fault_stays_armed_until_a_store_of_an_existing_id() {
    let hub = HubHandle::spawn(acked());
    let s = Subject::hub(hub.clone());
    inject(&hub, "store").await;
    // New ids take the path without the fault point.
    s.put(rec("a", Pending)).await;
    s.put(rec("b", Pending)).await;
    assert_internal("store", s.store(rec("a", Running)).await);
    s.put(rec("a", Running)).await;
    assert_consistent(&s, "after the fault").await;
    s.finish().await;
}

#[tokio::test]
async fn the_hub_survives_a_fault_in_every_operation_in_turn() {
    let hub = HubHandle::spawn(acked());
    let s = Subject::hub(hub.clone());
    let waiter = populate(&s).await;
    for round in 0..3 {
        for operation in [
            "store",
            "get",
            "wait_for",
            "delete",
            "list_by_status",
            "stats",
            "snapshot",
            "restore",
        ] {
            inject(&hub, operation).await;
            let call = async {
                match operation {
                    "store" => hub.store("r", rec("r", Retrying)).await,
                    "get" => get_through_the_hub(&hub, "r").await.map(drop),
                    "wait_for" => hub.wait_for("w", Some(TIMEOUT)).await.map(drop),
                    "delete" => hub.delete("nothing").await.map(drop),
                    "list_by_status" => hub.list_by_status(Pending, Some(1), 0).await.map(drop),
                    "stats" => hub.stats().await.map(drop),
                    "snapshot" => hub.snapshot().await.map(drop),
                    "restore" => hub.restore(vec![rec("n", Pending)]).await.map(drop),
                    _ => unreachable!(),
                }
            };
            let out: Result<(), BackendError> = within(operation, call).await;
            assert_internal(operation, out);
            assert_consistent(&s, &format!("round {round}, after {operation}")).await;
            s.put(rec(&format!("x{round}-{operation}"), Success)).await;
        }
    }
    assert_eq!(s.stats().await.waiters, 1);
    s.put(rec("p", Failed)).await;
    assert_eq!(join("waiter", waiter).await.unwrap().status, Failed);
    // A fault in clear last, as it would empty the hub.
    inject(&hub, "clear").await;
    assert_internal("clear", within("clear", hub.clear()).await);
    assert_consistent(&s, "after a clear fault").await;
    s.finish().await;
}

// ---------------------------------------------------------------------------------------------
// A hub that dies or is shut down
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_spawned_hub_answers_pending_and_later_calls_with_unavailable_at_once() {
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    s.put(rec("p", Pending)).await;
    let forever = s.spawn_wait("p", None);
    let bounded = s.spawn_wait("q", Some(Duration::from_secs(3600)));
    s.await_waiters(2).await;
    within("StopHub", hub.addr().send(StopHub))
        .await
        .expect("StopHub delivered");
    assert_unavailable("waiter without timeout", join("waiter", forever).await);
    assert_unavailable("waiter with a long timeout", join("waiter", bounded).await);
    assert_every_call_unavailable(&hub).await;
    within("shutdown of a dead hub", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
}

#[actix_rt::test]
async fn a_dead_started_hub_answers_pending_and_later_calls_with_unavailable_at_once() {
    let hub = HubHandle::start(HubConfig::default());
    let s = Subject::hub(hub.clone());
    s.put(rec("p", Pending)).await;
    let waiter = s.spawn_wait("p", None);
    s.await_waiters(1).await;
    within("StopHub", hub.addr().send(StopHub))
        .await
        .expect("StopHub delivered");
    assert_unavailable("waiter", join("waiter", waiter).await);
    assert_every_call_unavailable(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_queued_behind_a_hub_death_are_answered_unavailable() {
    // Acknowledged stores: a pipelined store queued before the death has already returned Ok,
    // which is what `HubConfig::pipeline_stores` trades (its wait_for is still Unavailable).
    let hub = HubHandle::spawn(acked());
    let s = Subject::hub(hub.clone());
    s.put(rec("p", Pending)).await;
    // A round trip through the mailbox: the hub answers a public message only once its queue
    // is empty and it is idle, so no drain still under way can pick up the calls below.
    within("Get", hub.addr().send(resulthub::messages::Get::new("p")))
        .await
        .expect("delivered")
        .expect("answered");
    // Queue calls behind the stop without waiting for it to be handled: the stall keeps the
    // hub from getting to them (or to the stop) until every call is queued.
    hub.addr().do_send(Stall(Duration::from_millis(200)));
    hub.addr().do_send(StopHub);
    let queued: Vec<_> = (0..50)
        .map(|n| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let id = format!("q{n}");
                let stored = hub.store(&id, rec(&id, Success)).await;
                let waited = hub.wait_for(&id, None).await;
                (stored, waited)
            })
        })
        .collect();
    for handle in queued {
        let (stored, waited) = join("queued call", handle).await;
        assert_unavailable("queued store", stored);
        assert_unavailable("queued wait_for", waited);
    }
    within("shutdown", hub.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_pending_waiters_and_every_later_call_with_unavailable() {
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    s.put(rec("p", Running)).await;
    let waiter = s.spawn_wait("p", None);
    s.await_waiters(1).await;
    within("shutdown", hub.shutdown()).await;
    assert_unavailable("waiter", join("waiter", waiter).await);
    assert_every_call_unavailable(&hub).await;
    within("second shutdown", hub.shutdown()).await;
}

// ---------------------------------------------------------------------------------------------
// A supervised hub restarts with its state
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_supervised_hub_keeps_records_waiters_and_counters_across_restarts() {
    let config = HubConfig::default().with_max_results(Some(4));
    let addr = Supervisor::start(move |_| ResultHub::new(config));
    let hub = HubHandle::from_addr(addr);
    let s = Subject::hub(hub.clone());
    s.put(rec("old", Success)).await;
    s.put(rec("a", Success).with_result(1)).await;
    s.put(rec("b", Pending).with_task_name("kept")).await;
    s.put(rec("c", Running)).await;
    s.put(rec("d", Running)).await; // evicts `old`
    let waiter_b = s.spawn_wait("b", Some(TIMEOUT));
    let waiter_new = s.spawn_wait("new", None);
    let dropped = s.spawn_wait("c", None);
    s.await_waiters(3).await;
    let before = snapshot(&hub).await;
    let stats_before = s.stats().await;
    assert_eq!(stats_before.evicted, 1);

    for round in 0..2 {
        within("StopHub", hub.addr().send(StopHub))
            .await
            .expect("StopHub delivered");
        // Calls sent right after the stop are handled by the restarted hub.
        assert_eq!(snapshot(&hub).await, before, "round {round}: records kept");
        assert_eq!(s.stats().await, stats_before, "round {round}: counts kept");
        assert_consistent(&s, &format!("after restart {round}")).await;
        assert!(!waiter_b.is_finished() && !waiter_new.is_finished());
    }

    // A waiter dropped after the restart is forgotten by the restarted hub.
    dropped.abort();
    s.await_waiters(2).await;

    s.put(rec("b", Success).with_result("b done")).await;
    let woken = join("waiter on b", waiter_b)
        .await
        .expect("woken after restart");
    assert_eq!(woken.result, json!("b done"));
    assert_eq!(woken.task_name.as_deref(), Some("kept"));
    // Full, with terminal records to evict: `a` is the oldest.
    s.put(rec("new", Failed)).await;
    assert_eq!(
        join("waiter on new", waiter_new).await.unwrap().status,
        Failed
    );
    assert_eq!(s.get("a").await, None);
    let stats = s.stats().await;
    assert_eq!((stats.evicted, stats.waiters), (2, 0), "{stats:?}");

    // Shut down, it stays down through the supervisor's restart.
    within("shutdown", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown applies what was sent before it
// ---------------------------------------------------------------------------------------------

fn task(n: usize) -> String {
    format!("job-{n}")
}

fn done(n: usize) -> TaskResult {
    rec(&task(n), Success).with_result(n)
}

type StoreFuture = Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_applies_every_store_sent_before_it() {
    const N: usize = 1000;
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    let waiters: Vec<_> = (0..N).map(|n| s.spawn_wait(&task(n), None)).collect();
    s.await_waiters(N).await;

    // Send every store (one poll puts it in the hub's mailbox) without awaiting any reply.
    let mut stores: Vec<Option<StoreFuture>> = (0..N)
        .map(|n| {
            let hub = hub.clone();
            Some(Box::pin(async move { hub.store(&task(n), done(n)).await }) as StoreFuture)
        })
        .collect();
    let mut outcomes: Vec<Option<Result<(), BackendError>>> = (0..N).map(|_| None).collect();
    for (n, slot) in stores.iter_mut().enumerate() {
        let store = slot.as_mut().expect("not polled yet");
        if let Poll::Ready(out) = futures::poll!(store.as_mut()) {
            // The hub may answer before this poll returns; the future is done then.
            outcomes[n] = Some(out);
            *slot = None;
        }
    }
    within("shutdown", hub.shutdown()).await;

    for (n, (slot, early)) in stores.into_iter().zip(outcomes).enumerate() {
        let out = match (slot, early) {
            (Some(store), None) => within("store sent before shutdown", store).await,
            (None, Some(out)) => out,
            _ => unreachable!(),
        };
        assert!(out.is_ok(), "store {n} was sent before shutdown: {out:?}");
    }
    for (n, waiter) in waiters.into_iter().enumerate() {
        match join("waiter", waiter).await {
            Ok(record) => assert_eq!(record, done(n)),
            Err(error) => panic!("waiter {n}: its store was sent before shutdown: {error:?}"),
        }
    }
    assert_unavailable(
        "a store after shutdown",
        within("store", hub.store(&task(0), done(0))).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_acknowledged_before_a_racing_shutdown_has_woken_its_waiter() {
    const N: usize = 1000;
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    let waiters: Vec<_> = (0..N).map(|n| s.spawn_wait(&task(n), None)).collect();
    s.await_waiters(N).await;

    let stores: Vec<_> = (0..N)
        .map(|n| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.store(&task(n), done(n)).await })
        })
        .collect();
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    within("shutdown", hub.shutdown()).await;

    let (mut applied, mut refused) = (0, 0);
    for (n, (store, waiter)) in stores.into_iter().zip(waiters).enumerate() {
        let stored = join("store", store).await;
        let waited = join("waiter", waiter).await;
        match (&stored, &waited) {
            (Ok(()), Ok(record)) => {
                assert_eq!(*record, done(n));
                applied += 1;
            }
            (Err(BackendError::Unavailable { .. }), Err(BackendError::Unavailable { .. })) => {
                refused += 1;
            }
            _ => panic!("task {n}: store answered {stored:?} but its waiter got {waited:?}"),
        }
    }
    println!("stores applied before shutdown: {applied}, refused after it: {refused}");
}

/// The hub repairs its indexes after a handler panic without ever emptying the record map
/// that handles read: a reader on another thread sees every record throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_miss_a_record_while_the_hub_repairs() {
    let hub = HubHandle::spawn(HubConfig::default());
    let records: Vec<TaskResult> = (0..200_000)
        .map(|n| rec(&format!("bulk-{n}"), Success))
        .collect();
    within("restore", hub.restore(records))
        .await
        .expect("restore");
    within("store", hub.store("watched", rec("watched", Running)))
        .await
        .expect("store");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (hub, stop) = (hub.clone(), std::sync::Arc::clone(&stop));
        tokio::task::spawn_blocking(move || {
            let (mut reads, mut missed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match futures::executor::block_on(hub.get("watched")) {
                    Ok(Some(_)) => reads += 1,
                    _ => missed += 1,
                }
            }
            (reads, missed)
        })
    };
    for _ in 0..3 {
        inject(&hub, "list_by_status").await;
        assert_internal(
            "list_by_status",
            within("list", hub.list_by_status(Pending, Some(1), 0)).await,
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, missed) = join("reader", reader).await;
    assert!(reads > 0, "the reader never ran");
    assert_eq!(
        missed,
        0,
        "{missed} of {} reads missed the record",
        reads + missed
    );
    within("shutdown", hub.shutdown()).await;
}
