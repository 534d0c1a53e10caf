//! How a hub starts and stops. `spawn` works from sync code, other threads and runtimes, a
//! plain executor or an actix System; `start` only inside a System; the registry hands out one
//! hub; a timed wait needs Tokio's timer. `shutdown` answers pending waiters and every later
//! call with `Unavailable`, from any clone and any runtime, even when its caller stops awaiting
//! it, and applies every store sent before it (or acknowledged before a racing one).

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use actix::SystemService;
use resulthub::{
    BackendError, HubConfig, HubHandle, InMemoryBackend, ResultBackend, ResultHub, TaskResult,
    TaskStatus,
};
use serde_json::json;
use support::{
    Subject, TIMEOUT, assert_every_call_unavailable, assert_unavailable,
    assert_waiters_unavailable, join, pending_waiters, rec, within,
};

// ---------------------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn registry_hub_works_through_from_addr() {
    let hub = HubHandle::from_addr(ResultHub::from_registry());
    let record = TaskResult::new("r", TaskStatus::Success).with_result(json!("registry"));
    within("store", hub.store("r", record.clone()))
        .await
        .expect("store");
    // The registry hands out the same hub to everyone in the System.
    let again = HubHandle::from_addr(ResultHub::from_registry());
    assert_eq!(
        within("get", again.get("r")).await.expect("get"),
        Some(record.clone())
    );
    assert_eq!(
        within("wait_for", again.wait_for("r", Some(Duration::ZERO)))
            .await
            .expect("wait_for"),
        record
    );
    let handles = pending_waiters(&hub, 2).await;
    within("shutdown()", hub.shutdown()).await;
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
        let waiter = subject.spawn_wait("sync", Some(Duration::from_secs(30)));
        subject.await_waiters(1).await;
        let record = TaskResult::new("sync", TaskStatus::Success).with_result(json!("ok"));
        within("store", hub.store("sync", record.clone()))
            .await
            .expect("store");
        assert_eq!(join("waiter", waiter).await.expect("woken"), record);
        within("shutdown()", hub.shutdown()).await;
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
                        within("store", hub.store(&id, record.clone()))
                            .await
                            .expect("store");
                        assert_eq!(
                            within("get", hub.get(&id)).await.expect("get"),
                            Some(record)
                        );
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
        assert_eq!(
            within("stats", hub.stats())
                .await
                .expect("stats")
                .by_status
                .success,
            200
        );
        within("shutdown()", hub.shutdown()).await;
    });
}

#[actix_rt::test]
async fn spawn_works_inside_an_actix_system() {
    let hub = HubHandle::spawn(HubConfig::default());
    let record = TaskResult::new("a", TaskStatus::Failed).with_error("e");
    within("store", hub.store("a", record.clone()))
        .await
        .expect("store");
    assert_eq!(
        within("get", hub.get("a")).await.expect("get"),
        Some(record)
    );
    within("shutdown()", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
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

// ---------------------------------------------------------------------------------------------
// Shutdown answers waiters and every later call
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_pending_waiters_with_unavailable() {
    let hub = HubHandle::spawn(HubConfig::default());
    let handles = pending_waiters(&hub, 5).await;
    within("shutdown()", hub.shutdown()).await;
    // Each join is bounded by TIMEOUT: "promptly", not after their own 60 s timeouts.
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_after_shutdown_is_unavailable() {
    let hub = HubHandle::spawn(HubConfig::default());
    within(
        "store",
        hub.store("kept", TaskResult::new("kept", TaskStatus::Success)),
    )
    .await
    .expect("store");
    within("shutdown()", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
    // Even for a record that was terminal before the shutdown.
    assert_unavailable(
        "wait_for a stored terminal record",
        within("wait_for", hub.wait_for("kept", Some(Duration::ZERO))).await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_idempotent_and_seen_by_every_clone() {
    let hub = HubHandle::spawn(HubConfig::default());
    let other = hub.clone();
    let third = hub.clone();
    within("first shutdown()", hub.shutdown()).await;
    within("second shutdown()", hub.shutdown()).await;
    within("shutdown() on a clone", other.shutdown()).await;
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
    within("store", hub.store("t", record.clone()))
        .await
        .expect("store");
    assert_eq!(
        within("get", hub.get("t")).await.expect("get"),
        Some(record)
    );
    let handles = pending_waiters(&hub, 3).await;
    within("shutdown()", hub.shutdown()).await;
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
}

#[actix_rt::test]
async fn shutdown_of_started_hub_answers_waiters_and_later_calls() {
    let hub = HubHandle::start(HubConfig::default());
    let handles = pending_waiters(&hub, 4).await;
    within("shutdown()", hub.shutdown()).await;
    within("second shutdown()", hub.clone().shutdown()).await;
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
}

#[actix_rt::test]
async fn shutdown_stops_a_supervised_hub_for_good() {
    let addr = actix::Supervisor::start(|_| ResultHub::new(HubConfig::default()));
    let hub = HubHandle::from_addr(addr);
    let handles = pending_waiters(&hub, 2).await;
    within("shutdown()", hub.shutdown()).await;
    assert_waiters_unavailable("waiter pending at shutdown", handles).await;
    assert_every_call_unavailable(&hub).await;
}

// ---------------------------------------------------------------------------------------------
// A shutdown its caller stops awaiting
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
    within(
        "store",
        hub.store("a", TaskResult::new("a", TaskStatus::Running)),
    )
    .await
    .expect("store");
    let subject = Subject::hub(hub.clone());
    let waiter = subject.spawn_wait("a", None);
    subject.await_waiters(1).await;
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

// ---------------------------------------------------------------------------------------------
// Shutdown applies what was sent before it
// ---------------------------------------------------------------------------------------------

fn task(n: usize) -> String {
    format!("job-{n}")
}

fn done(n: usize) -> TaskResult {
    rec(&task(n), TaskStatus::Success).with_result(n)
}

type StoreFuture = Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_applies_every_store_sent_before_it() {
    const N: usize = 1000;
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    let waiters: Vec<_> = (0..N).map(|n| s.spawn_wait(task(n), None)).collect();
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
    let waiters: Vec<_> = (0..N).map(|n| s.spawn_wait(task(n), None)).collect();
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

/// A raw `Shutdown` message (actix code holding the `Addr`) closes the hub in two steps: a store
/// that returned Ok before the hub marked itself closed is still applied, so its waiter gets
/// the record, not `Unavailable`.
#[actix_rt::test]
async fn a_raw_shutdown_message_applies_every_store_that_returned_ok() {
    let hub = HubHandle::start(HubConfig::default());
    let waiter = Subject::hub(hub.clone()).spawn_wait("late", None);
    Subject::hub(hub.clone()).await_waiters(1).await;
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
        within("get after", hub.get("late")).await,
        Err(BackendError::Unavailable { .. })
    ));
}
