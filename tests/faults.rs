//! The hub under faults (feature `fault-injection`): a handler that panics midway answers its
//! caller `Internal`, leaves the hub consistent and serving, and readers never miss a record
//! while it repairs; a busy hub does not hold up a timed wait.
#![cfg(feature = "fault-injection")]

mod support;

use std::time::Duration;

use resulthub::testing::InjectFault;
use resulthub::{BackendError, HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;
use support::{Subject, TIMEOUT, assert_consistent, at, join, rec, snapshot, within};

use TaskStatus::{Failed, Pending, Retrying, Running, Success};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// A handler that panics
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
            snapshot(&hub).await;
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

// ---------------------------------------------------------------------------------------------
// A busy hub
// ---------------------------------------------------------------------------------------------

/// The timeout counts from the call, not from when a busy hub gets to the registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_times_out_from_the_call_while_the_hub_is_busy() {
    let hub = HubHandle::spawn(HubConfig::default());
    hub.addr()
        .do_send(resulthub::testing::Stall(Duration::from_secs(2)));
    let called = std::time::Instant::now();
    let out = within(
        "wait_for",
        hub.wait_for("never", Some(Duration::from_millis(100))),
    )
    .await;
    let took = called.elapsed();
    assert!(
        matches!(out, Err(BackendError::Timeout { .. })),
        "expected Timeout, got {out:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "a 100 ms wait took {took:?}: its timer waited for the stalled hub"
    );
    // Once the hub gets to it, the registration of the caller who left leaves nothing.
    assert_eq!(
        within("stats", hub.stats()).await.expect("stats").waiters,
        0
    );
    within("shutdown", hub.shutdown()).await;
}
