//! How a hub starts, stops, dies and restarts, and the limits and counts it reports.

mod conformance;

use std::sync::Arc;
use std::time::Duration;

use actix::SystemService;
use conformance::{Subject, TIMEOUT, await_waiters, guard, join, spawn_wait};
#[cfg(feature = "fault-injection")]
use resulthub::testing::StopHub;
use resulthub::{
    BackendError, HubConfig, HubHandle, HubStats, InMemoryBackend, ResultBackend, ResultHub,
    TaskResult, TaskStatus,
};
use serde_json::json;

#[track_caller]
fn assert_unavailable<T: std::fmt::Debug>(what: &str, out: Result<T, BackendError>) {
    assert!(
        matches!(out, Err(BackendError::Unavailable { .. })),
        "{what}: expected Unavailable, got {out:?}"
    );
}

/// Every operation of a stopped hub answers Unavailable, promptly.
async fn assert_every_call_unavailable(hub: &HubHandle) {
    let record = TaskResult::new("after", TaskStatus::Success);
    assert_unavailable("store", guard("store", hub.store("after", record)).await);
    assert_unavailable("get", guard("get", hub.get("after")).await);
    assert_unavailable(
        "wait_for(None)",
        guard("wait_for", hub.wait_for("after", None)).await,
    );
    assert_unavailable(
        "wait_for(Some(0))",
        guard("wait_for", hub.wait_for("after", Some(Duration::ZERO))).await,
    );
    assert_unavailable(
        "wait_for(Some(30s))",
        guard(
            "wait_for",
            hub.wait_for("after", Some(Duration::from_secs(30))),
        )
        .await,
    );
    assert_unavailable("delete", guard("delete", hub.delete("after")).await);
    assert_unavailable("clear", guard("clear", hub.clear()).await);
    for status in TaskStatus::ALL {
        assert_unavailable(
            "list_by_status",
            guard("list", hub.list_by_status(status, None, 0)).await,
        );
    }
    assert_unavailable("stats", guard("stats", hub.stats()).await);
}

async fn stats(hub: &HubHandle) -> HubStats {
    guard("stats()", hub.stats()).await.expect("stats")
}

/// Spawns `n` waiters on distinct ids (one of them stored as pending) and waits until the
/// hub holds them all.
async fn pending_waiters(
    hub: &HubHandle,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<TaskResult, BackendError>>> {
    guard(
        "store",
        hub.store("pending", TaskResult::new("pending", TaskStatus::Pending)),
    )
    .await
    .expect("store");
    let subject = Subject::hub(hub.clone());
    let handles = (0..n)
        .map(|i| {
            let id = if i == 0 {
                "pending".to_owned()
            } else {
                format!("w-{i}")
            };
            let timeout = if i % 2 == 0 {
                None
            } else {
                Some(Duration::from_secs(60))
            };
            spawn_wait(&subject, id, timeout)
        })
        .collect();
    await_waiters(&subject, n).await;
    handles
}

async fn assert_waiters_unavailable(
    what: &str,
    handles: Vec<tokio::task::JoinHandle<Result<TaskResult, BackendError>>>,
) {
    for h in handles {
        assert_unavailable(what, join(what, h).await);
    }
}

// ---------------------------------------------------------------------------------------------
// shutdown
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_pending_waiters_with_unavailable() {
    let hub = HubHandle::spawn(HubConfig::default());
    let handles = pending_waiters(&hub, 5).await;
    guard("shutdown()", hub.shutdown()).await;
    // Each join is bounded by TIMEOUT: "promptly", not after their own 60 s timeouts.
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_after_shutdown_is_unavailable() {
    let hub = HubHandle::spawn(HubConfig::default());
    guard(
        "store",
        hub.store("kept", TaskResult::new("kept", TaskStatus::Success)),
    )
    .await
    .expect("store");
    guard("shutdown()", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
    // Even for a record that was terminal before the shutdown.
    assert_unavailable(
        "wait_for a stored terminal record",
        guard("wait_for", hub.wait_for("kept", Some(Duration::ZERO))).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_idempotent_and_seen_by_every_clone() {
    let hub = HubHandle::spawn(HubConfig::default());
    let other = hub.clone();
    let third = hub.clone();
    guard("first shutdown()", hub.shutdown()).await;
    guard("second shutdown()", hub.shutdown()).await;
    guard("shutdown() on a clone", other.shutdown()).await;
    assert_every_call_unavailable(&other).await;
    assert_every_call_unavailable(&third).await;
    // A clone made after the shutdown is just as dead.
    assert_every_call_unavailable(&hub.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shutdowns_all_return() {
    let hub = HubHandle::spawn(HubConfig::default());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.shutdown().await })
        })
        .collect();
    for h in handles {
        join("concurrent shutdown()", h).await;
    }
    assert_every_call_unavailable(&hub).await;
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_of_spawned_hub_works_from_current_thread_runtime() {
    let hub = HubHandle::spawn(HubConfig::default());
    let record = TaskResult::new("t", TaskStatus::Success).with_result(json!(1));
    guard("store", hub.store("t", record.clone()))
        .await
        .expect("store");
    assert_eq!(guard("get", hub.get("t")).await.expect("get"), Some(record));
    let handles = pending_waiters(&hub, 3).await;
    guard("shutdown()", hub.shutdown()).await;
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
}

#[actix_rt::test]
async fn shutdown_of_started_hub_answers_waiters_and_later_calls() {
    let hub = HubHandle::start(HubConfig::default());
    let handles = pending_waiters(&hub, 4).await;
    guard("shutdown()", hub.shutdown()).await;
    guard("second shutdown()", hub.clone().shutdown()).await;
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
}

#[actix_rt::test]
async fn shutdown_stops_a_supervised_hub_for_good() {
    let addr = actix::Supervisor::start(|_| ResultHub::new(HubConfig::default()));
    let hub = HubHandle::from_addr(addr);
    let handles = pending_waiters(&hub, 2).await;
    guard("shutdown()", hub.shutdown()).await;
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
}

// ---------------------------------------------------------------------------------------------
// Death and restart (testing::StopHub)
// ---------------------------------------------------------------------------------------------

/// Polls a shutdown once, so that it is under way, and drops it, as a caller's timeout would.
async fn start_and_drop_a_shutdown(hub: &HubHandle) {
    let mut shutdown = std::pin::pin!(hub.shutdown());
    assert!(
        futures::poll!(shutdown.as_mut()).is_pending(),
        "a shutdown waits for the hub"
    );
}

/// A shutdown its caller stops awaiting happens in full: the hub stops (its actor is gone),
/// its waiters and every later call hear Unavailable.
async fn assert_dropped_shutdown_stops_the_hub(hub: HubHandle) {
    guard(
        "store",
        hub.store("a", TaskResult::new("a", TaskStatus::Running)),
    )
    .await
    .expect("store");
    let subject = Subject::hub(hub.clone());
    let waiter = spawn_wait(&subject, "a", None);
    await_waiters(&subject, 1).await;
    start_and_drop_a_shutdown(&hub).await;
    assert_unavailable("waiter", join("waiter", waiter).await);
    assert_every_call_unavailable(&hub).await;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while hub.addr().connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub's actor is still running after its shutdown"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_shutdown_still_stops_a_spawned_hub() {
    assert_dropped_shutdown_stops_the_hub(HubHandle::spawn(HubConfig::default())).await;
}

#[actix_rt::test]
async fn a_dropped_shutdown_still_stops_a_started_hub() {
    assert_dropped_shutdown_stops_the_hub(HubHandle::start(HubConfig::default())).await;
}

/// The timeout counts from the call, not from when a busy hub gets to the registration.
#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_times_out_from_the_call_while_the_hub_is_busy() {
    let hub = HubHandle::spawn(HubConfig::default());
    hub.addr()
        .do_send(resulthub::testing::Stall(Duration::from_secs(2)));
    let called = std::time::Instant::now();
    let out = guard(
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
    assert_eq!(stats(&hub).await.waiters, 0);
    guard("shutdown", hub.shutdown()).await;
}

#[cfg(feature = "fault-injection")]
#[actix_rt::test]
async fn stopped_unsupervised_started_hub_answers_unavailable() {
    let hub = HubHandle::start(HubConfig::default());
    let handles = pending_waiters(&hub, 3).await;
    hub.addr().do_send(StopHub);
    // The waiters failing is the signal that the hub is gone.
    assert_waiters_unavailable("waiter pending when the hub died", handles).await;
    assert_every_call_unavailable(&hub).await;
    assert_every_call_unavailable(&hub.clone()).await;
}

#[cfg(feature = "fault-injection")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_spawned_hub_answers_unavailable() {
    let hub = HubHandle::spawn(HubConfig::default());
    let handles = pending_waiters(&hub, 3).await;
    hub.addr().do_send(StopHub);
    assert_waiters_unavailable("waiter pending when the hub died", handles).await;
    assert_every_call_unavailable(&hub).await;
    // shutdown of a dead hub still returns.
    guard("shutdown() of a dead hub", hub.shutdown()).await;
}

#[cfg(feature = "fault-injection")]
#[actix_rt::test]
async fn stopped_hub_started_by_hand_answers_unavailable() {
    use actix::Actor;
    let hub = HubHandle::from_addr(ResultHub::new(HubConfig::default()).start());
    let handles = pending_waiters(&hub, 2).await;
    guard("send(StopHub)", hub.addr().send(StopHub))
        .await
        .expect("StopHub answered");
    assert_waiters_unavailable("waiter pending when the hub died", handles).await;
    assert_every_call_unavailable(&hub).await;
}

#[cfg(feature = "fault-injection")]
/// Stops the hub once and checks it came back with its records, order and waiters. `round`
/// prefixes every id, so that the check can run again on the same hub.
async fn assert_restart_keeps_state(hub: HubHandle, round: &str) {
    let id = |name: &str| format!("{round}-{name}");
    let subject = Subject::hub(hub.clone());
    let before = stats(&hub).await.results;
    let kept = TaskResult::new(id("kept"), TaskStatus::Success)
        .with_task_name("tasks.keep")
        .with_submitted_at(chrono::DateTime::from_timestamp(100, 0).unwrap());
    for name in ["first", "second"] {
        let record = TaskResult::new(id(name), TaskStatus::Failed);
        guard("store", hub.store(&id(name), record))
            .await
            .expect("store");
    }
    guard("store", hub.store(&id("kept"), kept.clone()))
        .await
        .expect("store");
    let waiter = spawn_wait(&subject, id("later"), None);
    let timed = spawn_wait(&subject, id("later"), Some(Duration::from_secs(30)));
    await_waiters(&subject, 2).await;

    hub.addr().do_send(StopHub);

    // Queued after StopHub in the same mailbox, so answered by the restarted hub.
    assert_eq!(
        guard("get after restart", hub.get(&id("kept")))
            .await
            .expect("get after restart"),
        Some(kept)
    );
    let after = stats(&hub).await;
    assert_eq!(after.waiters, 2, "waiters lost in the restart");
    assert_eq!(after.results, before + 3, "records lost in the restart");
    // First-store order survives: a new id sorts after the old ones, a re-store keeps its place.
    for name in ["third", "first"] {
        let record = TaskResult::new(id(name), TaskStatus::Failed);
        guard("store", hub.store(&id(name), record))
            .await
            .expect("store after restart");
    }
    let ids: Vec<String> = guard("list", hub.list_by_status(TaskStatus::Failed, None, 0))
        .await
        .expect("list after restart")
        .into_iter()
        .map(|r| r.task_id)
        .filter(|task_id| task_id.starts_with(round))
        .collect();
    assert_eq!(ids, [id("first"), id("second"), id("third")]);

    let later =
        TaskResult::new(id("later"), TaskStatus::Success).with_result(json!("after restart"));
    guard("store", hub.store(&id("later"), later.clone()))
        .await
        .expect("store after restart");
    assert_eq!(
        join("waiter across restart", waiter).await.expect("woken"),
        later
    );
    assert_eq!(
        join("timed waiter across restart", timed)
            .await
            .expect("woken"),
        later
    );
    await_waiters(&subject, 0).await;
}

#[cfg(feature = "fault-injection")]
#[actix_rt::test]
async fn supervised_hub_restarts_keeping_records_and_waiters() {
    let addr = actix::Supervisor::start(|_| ResultHub::new(HubConfig::default()));
    let hub = HubHandle::from_addr(addr);
    assert_restart_keeps_state(hub.clone(), "one").await;
    // And it can restart again.
    assert_restart_keeps_state(hub.clone(), "two").await;
    guard("shutdown()", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
}

#[cfg(feature = "fault-injection")]
#[actix_rt::test]
async fn registry_hub_restarts_keeping_records_and_waiters() {
    // A SystemService runs under a Supervisor, so StopHub restarts it too.
    let hub = HubHandle::from_addr(ResultHub::from_registry());
    assert_restart_keeps_state(hub.clone(), "registry").await;
    guard("shutdown()", hub.shutdown()).await;
}

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn registry_hub_works_through_from_addr() {
    let hub = HubHandle::from_addr(ResultHub::from_registry());
    let record = TaskResult::new("r", TaskStatus::Success).with_result(json!("registry"));
    guard("store", hub.store("r", record.clone()))
        .await
        .expect("store");
    // The registry hands out the same hub to everyone in the System.
    let again = HubHandle::from_addr(ResultHub::from_registry());
    assert_eq!(
        guard("get", again.get("r")).await.expect("get"),
        Some(record.clone())
    );
    assert_eq!(
        guard("wait_for", again.wait_for("r", Some(Duration::ZERO)))
            .await
            .expect("wait_for"),
        record
    );
    let handles = pending_waiters(&hub, 2).await;
    guard("shutdown()", hub.shutdown()).await;
    assert_waiters_unavailable("registry waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
    assert_every_call_unavailable(&again).await;
}

#[test]
fn start_outside_a_system_panics_pointing_to_spawn() {
    let out = std::panic::catch_unwind(|| HubHandle::start(HubConfig::default()));
    let payload = match out {
        Ok(hub) => panic!("start() outside an actix System returned {hub:?}"),
        Err(payload) => payload,
    };
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .expect("a string panic message");
    assert!(
        message.contains("spawn"),
        "panic message does not mention spawn: {message:?}"
    );
}

#[test]
fn spawn_works_from_plain_sync_code() {
    let hub = HubHandle::spawn(HubConfig::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let subject = Subject::hub(hub.clone());
        let waiter = spawn_wait(&subject, "sync", Some(Duration::from_secs(30)));
        await_waiters(&subject, 1).await;
        let record = TaskResult::new("sync", TaskStatus::Success).with_result(json!("ok"));
        guard("store", hub.store("sync", record.clone()))
            .await
            .expect("store");
        assert_eq!(join("waiter", waiter).await.expect("woken"), record);
        guard("shutdown()", hub.shutdown()).await;
        assert_every_call_unavailable(&hub).await;
    });
}

#[test]
fn spawned_hub_works_under_a_plain_executor() {
    // No Tokio runtime at all: only an executor polling the handle's futures. Tokio timers
    // are unavailable there, so the bound is a channel timeout around the whole run.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        let hub = HubHandle::spawn(HubConfig::default());
        futures::executor::block_on(async {
            let record = TaskResult::new("plain", TaskStatus::Success).with_result(json!(7));
            hub.store("plain", record.clone()).await.expect("store");
            assert_eq!(hub.get("plain").await.expect("get"), Some(record.clone()));
            assert_eq!(
                hub.wait_for("plain", None).await.expect("terminal record"),
                record
            );
            assert_eq!(hub.stats().await.expect("stats").results, 1);
            hub.shutdown().await;
            assert_unavailable("get after shutdown", hub.get("plain").await);
        });
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(TIMEOUT) {
        Ok(()) => runner.join().expect("runner thread"),
        // The sender is gone without a message: the runner panicked; surface its panic.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            runner.join().expect("runner thread");
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("hung: the hub under futures::executor::block_on did not finish in {TIMEOUT:?}")
        }
    }
}

#[test]
fn spawned_hub_serves_handles_used_from_other_threads_and_runtimes() {
    let hub = HubHandle::spawn(HubConfig::default());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async {
                    for i in 0..50 {
                        let id = format!("t{t}-{i}");
                        let record = TaskResult::new(id.clone(), TaskStatus::Success);
                        guard("store", hub.store(&id, record.clone()))
                            .await
                            .expect("store");
                        assert_eq!(guard("get", hub.get(&id)).await.expect("get"), Some(record));
                    }
                });
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        assert_eq!(stats(&hub).await.by_status.success, 200);
        guard("shutdown()", hub.shutdown()).await;
    });
}

#[actix_rt::test]
async fn spawn_works_inside_an_actix_system() {
    let hub = HubHandle::spawn(HubConfig::default());
    let record = TaskResult::new("a", TaskStatus::Failed).with_error("e");
    guard("store", hub.store("a", record.clone()))
        .await
        .expect("store");
    assert_eq!(guard("get", hub.get("a")).await.expect("get"), Some(record));
    guard("shutdown()", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
}

// ---------------------------------------------------------------------------------------------
// Dropped store futures
// ---------------------------------------------------------------------------------------------

/// Hundreds of stores, each polled once and dropped, then read back through the same handle:
/// enough to fill a bounded mailbox, where a naive `send` would drop the message.
async fn assert_dropped_stores_land(hub: &HubHandle) {
    const N: usize = 500;
    for i in 0..N {
        let id = format!("ds-{i}");
        let mut fut = hub.store(&id, TaskResult::new(id.clone(), TaskStatus::Success));
        let _ = futures::poll!(&mut fut);
    }
    for i in 0..N {
        let id = format!("ds-{i}");
        let record = TaskResult::new(id.clone(), TaskStatus::Pending).with_result(json!(i));
        let _ = tokio::time::timeout(Duration::ZERO, hub.store(&id, record)).await;
    }
    for i in 0..N {
        let id = format!("ds-{i}");
        let seen = guard("get", hub.get(&id)).await.expect("get");
        let seen = seen.unwrap_or_else(|| panic!("dropped store of {id} was lost"));
        // Same caller, same handle: the later (pending) store must win.
        assert_eq!(
            (seen.status, &seen.result),
            (TaskStatus::Pending, &json!(i)),
            "{id}: a later store was overtaken by an earlier dropped one"
        );
    }
    assert_eq!(stats(hub).await.results, N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_store_futures_are_not_lost_on_spawned_hub() {
    let hub = HubHandle::spawn(HubConfig::default());
    assert_dropped_stores_land(&hub).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_store_futures_are_not_lost_on_spawned_hub_current_thread() {
    let hub = HubHandle::spawn(HubConfig::default());
    assert_dropped_stores_land(&hub).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[actix_rt::test]
async fn dropped_store_futures_are_not_lost_on_started_hub() {
    let hub = HubHandle::start(HubConfig::default());
    assert_dropped_stores_land(&hub).await;
    guard("shutdown()", hub.shutdown()).await;
}

// ---------------------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------------------

/// Walks a backend through stores, a status change, a delete and a clear, checking the
/// counts `stats` reports after each step.
async fn assert_stats_track_records<F, Fut>(backend: Arc<dyn ResultBackend>, stats: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = HubStats>,
{
    let check = |s: &HubStats, expect: [usize; 5], what: &str| {
        for (status, n) in TaskStatus::ALL.into_iter().zip(expect) {
            assert_eq!(s.by_status.get(status), n, "{what}: count of {status}");
        }
        let c = s.by_status;
        assert_eq!(
            [c.pending, c.running, c.success, c.failed, c.retrying],
            expect,
            "{what}: fields"
        );
        assert_eq!(s.results, expect.iter().sum::<usize>(), "{what}: results");
    };
    check(&stats().await, [0; 5], "empty");
    assert_eq!(stats().await.waiters, 0);

    let store = |id: &'static str, status| {
        let backend = Arc::clone(&backend);
        async move {
            guard("store", backend.store(id, TaskResult::new(id, status)))
                .await
                .expect("store");
        }
    };
    store("p1", TaskStatus::Pending).await;
    store("p2", TaskStatus::Pending).await;
    store("r", TaskStatus::Running).await;
    store("s", TaskStatus::Success).await;
    store("f", TaskStatus::Failed).await;
    store("y", TaskStatus::Retrying).await;
    check(&stats().await, [2, 1, 1, 1, 1], "one of each, two pending");

    store("p1", TaskStatus::Success).await;
    check(&stats().await, [1, 1, 2, 1, 1], "p1 moved to success");

    assert!(guard("delete", backend.delete("s")).await.expect("delete"));
    assert!(!guard("delete", backend.delete("s")).await.expect("delete"));
    check(&stats().await, [1, 1, 1, 1, 1], "s deleted");

    // A refused store counts nothing.
    let bad = TaskResult::new("other", TaskStatus::Failed);
    assert!(guard("bad store", backend.store("y", bad)).await.is_err());
    check(&stats().await, [1, 1, 1, 1, 1], "after a refused store");

    assert_eq!(guard("clear", backend.clear()).await.expect("clear"), 5);
    check(&stats().await, [0; 5], "cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_stats_count_records_per_status() {
    let hub = HubHandle::spawn(HubConfig::default());
    let counted = hub.clone();
    assert_stats_track_records(Arc::new(hub.clone()), || {
        let hub = counted.clone();
        async move { stats(&hub).await }
    })
    .await;
    guard("shutdown()", hub.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stats_count_records_per_status() {
    let backend = Arc::new(InMemoryBackend::new());
    let counted = Arc::clone(&backend);
    assert_stats_track_records(backend, || {
        let s = counted.stats();
        async move { s }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// max_waiters
// ---------------------------------------------------------------------------------------------

async fn assert_max_waiters_enforced(subject: Subject) {
    let backend = Arc::clone(&subject.backend);
    guard(
        "store",
        backend.store("done", TaskResult::new("done", TaskStatus::Success)),
    )
    .await
    .expect("store");
    let handles: Vec<_> = (0..3)
        .map(|i| spawn_wait(&subject, format!("full-{i}"), None))
        .collect();
    await_waiters(&subject, 3).await;

    for timeout in [None, Some(Duration::from_secs(30))] {
        let out = guard(
            "wait_for past max_waiters",
            backend.wait_for("one-more", timeout),
        )
        .await;
        assert!(
            matches!(out, Err(BackendError::Overloaded { .. })),
            "4th waiter with max_waiters 3, {timeout:?}: expected Overloaded, got {out:?}"
        );
    }
    // Refused waits register nothing.
    assert_eq!((subject.waiters)().await, 3);
    // Freeing a slot lets the next waiter in.
    guard(
        "store",
        backend.store("full-0", TaskResult::new("full-0", TaskStatus::Success)),
    )
    .await
    .expect("store");
    let mut handles = handles.into_iter();
    join("woken waiter", handles.next().unwrap())
        .await
        .expect("woken");
    await_waiters(&subject, 2).await;
    let next = spawn_wait(&subject, "one-more", None);
    await_waiters(&subject, 3).await;
    for id in ["full-1", "full-2", "one-more"] {
        guard(
            "store",
            backend.store(id, TaskResult::new(id, TaskStatus::Failed)),
        )
        .await
        .expect("store");
    }
    for h in handles.chain([next]) {
        join("waiter", h).await.expect("woken");
    }
    await_waiters(&subject, 0).await;
}

/// With every waiter slot taken, `wait_for` on a terminal record still answers at once:
/// answering from the record is not waiting, and the contract says a terminal record is
/// returned whatever the timeout.
async fn assert_terminal_wait_needs_no_slot(subject: Subject) {
    let backend = Arc::clone(&subject.backend);
    let done = TaskResult::new("done", TaskStatus::Success);
    guard("store", backend.store("done", done.clone()))
        .await
        .expect("store");
    let handles: Vec<_> = (0..3)
        .map(|i| spawn_wait(&subject, format!("full-{i}"), None))
        .collect();
    await_waiters(&subject, 3).await;
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        let out = guard("wait_for done", backend.wait_for("done", timeout)).await;
        match out {
            Ok(record) => assert_eq!(record, done),
            Err(e) => panic!("wait_for a terminal record while full, {timeout:?}: {e:?}"),
        }
    }
    assert_eq!((subject.waiters)().await, 3);
    for h in &handles {
        h.abort();
    }
    await_waiters(&subject, 0).await;
}

async fn assert_zero_max_waiters_refuses_every_wait(subject: Subject) {
    let out = guard("wait_for", subject.backend.wait_for("x", None)).await;
    assert!(
        matches!(out, Err(BackendError::Overloaded { .. })),
        "max_waiters Some(0): expected Overloaded, got {out:?}"
    );
    assert_eq!((subject.waiters)().await, 0);
}

fn limited(max_waiters: usize) -> HubConfig {
    HubConfig::default().with_max_waiters(Some(max_waiters))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_wait_for_past_max_waiters_is_overloaded() {
    let hub = HubHandle::spawn(limited(3));
    assert_max_waiters_enforced(Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;

    let hub = HubHandle::spawn(limited(0));
    assert_zero_max_waiters_refuses_every_wait(Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[actix_rt::test]
async fn started_hub_wait_for_past_max_waiters_is_overloaded() {
    let hub = HubHandle::start(limited(3));
    assert_max_waiters_enforced(Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_wait_for_past_max_waiters_is_overloaded() {
    assert_max_waiters_enforced(Subject::memory(InMemoryBackend::with_config(limited(3)))).await;
    assert_zero_max_waiters_refuses_every_wait(Subject::memory(InMemoryBackend::with_config(
        limited(0),
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_wait_for_terminal_record_needs_no_waiter_slot() {
    let hub = HubHandle::spawn(limited(3));
    assert_terminal_wait_needs_no_slot(Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_wait_for_terminal_record_needs_no_waiter_slot() {
    assert_terminal_wait_needs_no_slot(Subject::memory(InMemoryBackend::with_config(limited(3))))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_max_waiters_accepts_many() {
    let config = HubConfig::default().with_max_waiters(None);
    let hub = HubHandle::spawn(config.clone());
    for subject in [
        Subject::hub(hub.clone()),
        Subject::memory(InMemoryBackend::with_config(config.clone())),
    ] {
        let handles: Vec<_> = (0..2000)
            .map(|i| spawn_wait(&subject, format!("u-{}", i % 10), None))
            .collect();
        await_waiters(&subject, 2000).await;
        for i in 0..10 {
            let id = format!("u-{i}");
            guard(
                "store",
                subject
                    .backend
                    .store(&id, TaskResult::new(id.clone(), TaskStatus::Success)),
            )
            .await
            .expect("store");
        }
        let results = guard_all(handles).await;
        assert!(results.iter().all(Result::is_ok));
        await_waiters(&subject, 0).await;
    }
    guard("shutdown()", hub.shutdown()).await;
}

async fn guard_all(
    handles: Vec<tokio::task::JoinHandle<Result<TaskResult, BackendError>>>,
) -> Vec<Result<TaskResult, BackendError>> {
    conformance::guard_for(TIMEOUT * 3, "waiters", futures::future::join_all(handles))
        .await
        .into_iter()
        .map(|r| r.expect("waiter task"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Pipelined stores
// ---------------------------------------------------------------------------------------------

/// On the hub's own arbiter the hub cannot run until the caller yields, so the first
/// `MAX_UNAPPLIED` stores return at once (queued, not yet applied) and the next must wait for
/// the hub: the queue of unapplied work is bounded.
#[actix_rt::test]
async fn pipelined_stores_are_bounded_and_all_applied_in_order() {
    let hub = HubHandle::start(HubConfig::default());
    let bound = resulthub::MAX_UNAPPLIED;
    for n in 0..bound {
        let id = format!("p{n}");
        let mut store = hub.store(&id, TaskResult::new(&id, TaskStatus::Running));
        assert!(
            futures::poll!(&mut store).is_ready(),
            "store {n} should return once queued"
        );
    }
    let last = format!("p{bound}");
    let mut blocked = hub.store(&last, TaskResult::new(&last, TaskStatus::Running));
    assert!(
        futures::poll!(&mut blocked).is_pending(),
        "the store past the bound must wait for the hub"
    );
    guard("the store past the bound", blocked)
        .await
        .expect("applied once the hub ran");
    // A later store of the same id through the same handle wins: order is kept.
    hub.store("p0", TaskResult::new("p0", TaskStatus::Success))
        .await
        .expect("store");
    let stats = guard("stats", hub.stats()).await.expect("stats");
    assert_eq!(stats.results, bound + 1);
    assert_eq!(stats.by_status.success, 1);
    assert!(
        guard("get", hub.get("p0"))
            .await
            .unwrap()
            .unwrap()
            .is_success()
    );
    guard("shutdown", hub.shutdown()).await;
}

/// While the hub holds a waiter the bound is the smaller `MAX_UNAPPLIED_WHILE_WAITING`, so the
/// hub stays close to the store that will wake it.
#[actix_rt::test]
async fn pipelined_stores_wait_sooner_while_the_hub_holds_waiters() {
    let hub = HubHandle::start(HubConfig::default());
    let waiter = tokio::spawn({
        let hub = hub.clone();
        async move { hub.wait_for("awaited", Some(TIMEOUT)).await }
    });
    guard("waiter registered", async {
        while hub.stats().await.expect("stats").waiters == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let bound = resulthub::MAX_UNAPPLIED_WHILE_WAITING;
    assert!(bound < resulthub::MAX_UNAPPLIED);
    for n in 0..bound {
        let id = format!("w{n}");
        let mut store = hub.store(&id, TaskResult::new(&id, TaskStatus::Running));
        assert!(
            futures::poll!(&mut store).is_ready(),
            "store {n} should return once queued"
        );
    }
    let mut blocked = hub.store("awaited", TaskResult::new("awaited", TaskStatus::Success));
    assert!(
        futures::poll!(&mut blocked).is_pending(),
        "past the smaller bound a store must wait for the hub"
    );
    guard("the store past the bound", blocked)
        .await
        .expect("applied once the hub ran");
    let woken = guard("waiter", waiter)
        .await
        .expect("joined")
        .expect("woken");
    assert!(woken.is_success());
    guard("shutdown", hub.shutdown()).await;
}

/// Actix code pages by cursor through the `ListPage` message, as `list_page` does.
#[actix_rt::test]
async fn the_list_page_message_walks_a_status_by_cursor() {
    let hub = HubHandle::start(HubConfig::default());
    for n in 0..5 {
        let id = format!("m{n}");
        hub.store(&id, TaskResult::new(&id, TaskStatus::Success))
            .await
            .expect("store");
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let message = resulthub::messages::ListPage {
            status: TaskStatus::Success,
            limit: 2,
            after,
        };
        let page = guard("ListPage", hub.addr().send(message))
            .await
            .expect("delivered")
            .expect("a page");
        seen.extend(page.records.into_iter().map(|record| record.task_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4"]);
    let empty = resulthub::messages::ListPage {
        status: TaskStatus::Success,
        limit: 0,
        after: None,
    };
    let refused = guard("ListPage", hub.addr().send(empty))
        .await
        .expect("delivered");
    assert!(
        matches!(refused, Err(BackendError::InvalidInput { .. })),
        "{refused:?}"
    );
    guard("shutdown", hub.shutdown()).await;
}

/// Actix code stores and reads batches through `StoreMany` and `GetMany`, as `store_many` and
/// `get_many` do: one outcome per record, one entry per id, in order.
#[actix_rt::test]
async fn the_batch_messages_store_and_read_in_order() {
    use resulthub::messages::{GetMany, StoreMany};
    let hub = HubHandle::start(HubConfig::default().with_max_task_id_len(8));
    let outcomes = guard(
        "StoreMany",
        hub.addr().send(StoreMany::new(vec![
            TaskResult::new("b1", TaskStatus::Running),
            TaskResult::new("far-too-long", TaskStatus::Success),
            TaskResult::new("b1", TaskStatus::Success).with_result(1),
            TaskResult::new("b2", TaskStatus::Failed),
        ])),
    )
    .await
    .expect("delivered");
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[3].is_ok());
    assert!(
        matches!(outcomes[1], Err(BackendError::InvalidInput { .. })),
        "{outcomes:?}"
    );
    let read = guard(
        "GetMany",
        hub.addr().send(GetMany::new(["b2", "none", "b1"])),
    )
    .await
    .expect("delivered")
    .expect("read");
    let statuses: Vec<_> = read.iter().map(|r| r.as_ref().map(|r| r.status)).collect();
    assert_eq!(
        statuses,
        [Some(TaskStatus::Failed), None, Some(TaskStatus::Success)]
    );
    assert_eq!(read[2].as_ref().map(|r| r.result.clone()), Some(1.into()));
    let none: [&str; 0] = [];
    for refused in [GetMany::new(none), GetMany::new(["far-too-long"])] {
        let refused = guard("GetMany", hub.addr().send(refused))
            .await
            .expect("delivered");
        assert!(
            matches!(refused, Err(BackendError::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    guard("shutdown", hub.shutdown()).await;
}

/// A pipelined store is queued when `store` is called, as actix's `Addr::send` queues a
/// message: a future dropped before its first poll has stored all the same, and so has one
/// dropped while it waited for room.
#[actix_rt::test]
async fn a_pipelined_store_is_queued_when_called() {
    let hub = HubHandle::start(HubConfig::default());
    drop(hub.store("unpolled", TaskResult::new("unpolled", TaskStatus::Success)));
    for n in 0..resulthub::MAX_UNAPPLIED {
        let id = format!("fill{n}");
        drop(hub.store(&id, TaskResult::new(&id, TaskStatus::Running)));
    }
    let behind = hub.store("behind", TaskResult::new("behind", TaskStatus::Failed));
    drop(behind);
    let unpolled = guard("get", hub.get("unpolled")).await.expect("get");
    assert!(unpolled.is_some_and(|record| record.is_success()));
    let behind = guard("wait_for", hub.wait_for("behind", Some(TIMEOUT)))
        .await
        .expect("stored though its future was dropped");
    assert_eq!(behind.status, TaskStatus::Failed);
    let stats = guard("stats", hub.stats()).await.expect("stats");
    assert_eq!(stats.results, resulthub::MAX_UNAPPLIED + 2);
    guard("shutdown", hub.shutdown()).await;
}

/// A batch on a hub that may refuse stores (here `KeepFirst`) hears each refusal on its own
/// record; a batch after shutdown is refused record by record, pipelined or not.
#[actix_rt::test]
async fn store_many_answers_each_record() {
    let keep_first =
        HubConfig::default().with_terminal_policy(resulthub::TerminalPolicy::KeepFirst);
    for config in [keep_first, HubConfig::default()] {
        let hub = HubHandle::start(config.clone());
        let outcomes = guard(
            "store_many",
            hub.store_many(vec![
                TaskResult::new("a", TaskStatus::Success),
                TaskResult::new("a", TaskStatus::Failed),
                TaskResult::new("b", TaskStatus::Pending),
            ]),
        )
        .await;
        let a = guard("get", hub.get("a")).await.unwrap().unwrap();
        if config.terminal_policy == resulthub::TerminalPolicy::KeepFirst {
            assert!(
                matches!(
                    outcomes.as_slice(),
                    [Ok(()), Err(BackendError::Conflict { .. }), Ok(())]
                ),
                "{outcomes:?}"
            );
            assert!(a.is_success());
        } else {
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(a.status, TaskStatus::Failed);
        }
        guard("shutdown", hub.shutdown()).await;
        let refused = guard(
            "store_many after shutdown",
            hub.store_many(vec![
                TaskResult::new("c", TaskStatus::Success),
                TaskResult::new("d", TaskStatus::Success),
            ]),
        )
        .await;
        assert!(
            refused
                .iter()
                .all(|outcome| matches!(outcome, Err(BackendError::Unavailable { .. }))),
            "{config:?}: {refused:?}"
        );
    }
}

/// With `pipeline_stores: false`, or a limit the hub may refuse a store for, every store
/// waits for the hub: the first poll cannot complete on the hub's own arbiter.
#[actix_rt::test]
async fn stores_wait_for_the_hub_when_not_pipelined() {
    for config in [
        HubConfig::default().with_pipeline_stores(false),
        HubConfig::default().with_max_results(Some(10)),
        HubConfig::default().with_max_record_bytes(Some(10_000)),
        HubConfig::default().with_terminal_policy(resulthub::TerminalPolicy::KeepFirst),
    ] {
        let hub = HubHandle::start(config.clone());
        let mut store = hub.store("a", TaskResult::new("a", TaskStatus::Running));
        assert!(
            futures::poll!(&mut store).is_pending(),
            "{config:?}: a store must wait for the hub"
        );
        guard("store", store).await.expect("applied");
        guard("shutdown", hub.shutdown()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Runtimes without timers
// ---------------------------------------------------------------------------------------------

/// A timed `wait_for` needs Tokio's timer; on a runtime built without it, or under another
/// executor, it is `Unsupported` rather than a panic. Untimed waits, and polls (a zero
/// timeout), work everywhere.
#[test]
fn a_timed_wait_without_a_tokio_timer_is_unsupported_not_a_panic() {
    let hub = HubHandle::spawn(HubConfig::default());
    let memory = InMemoryBackend::new();
    let no_timers = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime without timers");
    for backend in [&hub as &dyn ResultBackend, &memory] {
        let timed = no_timers.block_on(backend.wait_for("never", Some(Duration::from_millis(5))));
        assert!(
            matches!(timed, Err(BackendError::Unsupported { .. })),
            "{timed:?}"
        );
        let elsewhere =
            futures::executor::block_on(backend.wait_for("never", Some(Duration::from_millis(5))));
        assert!(
            matches!(elsewhere, Err(BackendError::Unsupported { .. })),
            "{elsewhere:?}"
        );
        let polled = futures::executor::block_on(backend.wait_for("never", Some(Duration::ZERO)));
        assert!(
            matches!(polled, Err(BackendError::Timeout { .. })),
            "{polled:?}"
        );
        no_timers
            .block_on(backend.store("done", TaskResult::new("done", TaskStatus::Success)))
            .expect("store");
        let ready = no_timers.block_on(backend.wait_for("done", None));
        assert!(ready.expect("untimed").is_success());
    }
    futures::executor::block_on(hub.shutdown());
}

/// On the hub's own arbiter the hub cannot run until the caller yields: a `get` right after
/// pipelined stores is answered from the read view, on its first poll, with the stores folded
/// in exactly as the hub then applies them (task fields kept, the latest status).
#[actix_rt::test]
async fn get_reads_its_own_pipelined_stores_before_the_hub_applies_them() {
    let hub = HubHandle::start(HubConfig::default());
    let submitted = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let pending = TaskResult::new("v", TaskStatus::Pending)
        .with_task_name("job")
        .with_args(vec![json!(1)])
        .with_submitted_at(submitted);
    let running = TaskResult::new("v", TaskStatus::Running);
    for record in [pending, running] {
        let mut store = hub.store("v", record);
        assert!(futures::poll!(&mut store).is_ready(), "pipelined");
    }
    let mut get = hub.get("v");
    let seen = match futures::poll!(&mut get) {
        std::task::Poll::Ready(seen) => seen.expect("get").expect("the record"),
        std::task::Poll::Pending => panic!("get must not wait for the hub"),
    };
    assert_eq!(seen.status, TaskStatus::Running);
    assert_eq!(seen.task_name.as_deref(), Some("job"));
    assert_eq!(seen.args, vec![json!(1)]);
    assert_eq!(seen.submitted_at, Some(submitted));
    // What the hub holds once it ran is the same record.
    let snapshot = guard("snapshot", hub.snapshot()).await.expect("snapshot");
    assert_eq!(snapshot, vec![seen.clone()]);
    // A delete (acknowledged) is seen at once, and a store queued after it starts afresh.
    assert!(guard("delete", hub.delete("v")).await.expect("delete"));
    let mut store = hub.store("v", TaskResult::new("v", TaskStatus::Success));
    assert!(futures::poll!(&mut store).is_ready());
    let after = guard("get", hub.get("v"))
        .await
        .expect("get")
        .expect("record");
    assert_eq!(after, TaskResult::new("v", TaskStatus::Success));
    guard("shutdown", hub.shutdown()).await;
    assert!(matches!(
        guard("get after shutdown", hub.get("v")).await,
        Err(BackendError::Unavailable { .. })
    ));
}

/// A raw `Shutdown` message (actix code holding the `Addr`) closes the hub in two steps: a store
/// that returned Ok before the hub marked itself closed is still applied, so its waiter gets
/// the record, not `Unavailable`.
#[actix_rt::test]
async fn a_raw_shutdown_message_applies_every_store_that_returned_ok() {
    let hub = HubHandle::start(HubConfig::default());
    let waiter = spawn_wait(&Subject::hub(hub.clone()), "late", None);
    await_waiters(&Subject::hub(hub.clone()), 1).await;
    // Queued, not yet handled: the hub runs only when this task yields.
    hub.addr().do_send(resulthub::messages::Shutdown);
    let mut store = hub.store("late", TaskResult::new("late", TaskStatus::Success));
    let returned = futures::poll!(&mut store);
    assert!(
        matches!(returned, std::task::Poll::Ready(Ok(()))),
        "pipelined, before the hub saw the Shutdown: {returned:?}"
    );
    let woken = join("waiter", waiter).await;
    assert!(
        woken
            .expect("a store that returned Ok is applied")
            .is_success(),
        "woken by the store"
    );
    assert!(matches!(
        guard("get after", hub.get("late")).await,
        Err(BackendError::Unavailable { .. })
    ));
}

/// While a change the read view cannot follow (another caller's delete) is queued, `get`
/// asks the hub instead of folding queued stores over a record the hub is about to delete.
#[actix_rt::test]
async fn get_asks_the_hub_while_a_change_the_view_cannot_follow_is_queued() {
    let hub = HubHandle::start(HubConfig::default());
    let other = hub.clone();
    let named = TaskResult::new("x", TaskStatus::Pending).with_task_name("job");
    guard("store", hub.store("x", named)).await.expect("store");
    guard("sync", hub.stats()).await.expect("applied");
    // Another caller's delete, queued but not handled (this task has not yielded).
    let mut delete = Box::pin(other.delete("x"));
    assert!(futures::poll!(&mut delete).is_pending());
    let mut store = hub.store("x", TaskResult::new("x", TaskStatus::Success));
    assert!(futures::poll!(&mut store).is_ready());
    let seen = guard("get", hub.get("x"))
        .await
        .expect("get")
        .expect("the new record");
    assert_eq!(
        seen.task_name, None,
        "the delete came first: nothing to inherit"
    );
    assert!(guard("delete", delete).await.expect("delete"));
    assert_eq!(
        guard("get", hub.get("x")).await.expect("get"),
        Some(TaskResult::new("x", TaskStatus::Success))
    );
    guard("shutdown", hub.shutdown()).await;
}
