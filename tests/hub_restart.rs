//! A hub that dies (`testing::StopHub`, feature `fault-injection`): its waiters, calls queued
//! behind the death and every later call hear `Unavailable` at once; a supervised or registry
//! hub restarts with its records, order, waiters and counters.
#![cfg(feature = "fault-injection")]

mod support;

use std::time::Duration;

use actix::{Supervisor, SystemService};
use resulthub::testing::{Stall, StopHub};
use resulthub::{HubConfig, HubHandle, ResultBackend, ResultHub, TaskResult, TaskStatus};
use serde_json::json;
use support::{
    Subject, TIMEOUT, assert_consistent, assert_every_call_unavailable, assert_unavailable,
    assert_waiters_unavailable, join, pending_waiters, rec, snapshot, within,
};

use TaskStatus::{Failed, Pending, Running, Success};

// ---------------------------------------------------------------------------------------------
// A hub that dies
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
async fn stopped_unsupervised_started_hub_answers_unavailable() {
    let hub = HubHandle::start(HubConfig::default());
    let handles = pending_waiters(&hub, 3).await;
    hub.addr().do_send(StopHub);
    // The waiters failing is the signal that the hub is gone.
    assert_waiters_unavailable("waiter pending when the hub died", handles).await;
    assert_every_call_unavailable(&hub).await;
    assert_every_call_unavailable(&hub.clone()).await;
}

#[actix_rt::test]
async fn stopped_hub_started_by_hand_answers_unavailable() {
    use actix::Actor;
    let hub = HubHandle::from_addr(ResultHub::new(HubConfig::default()).start());
    let handles = pending_waiters(&hub, 2).await;
    within("send(StopHub)", hub.addr().send(StopHub))
        .await
        .expect("StopHub answered");
    assert_waiters_unavailable("waiter pending when the hub died", handles).await;
    assert_every_call_unavailable(&hub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_queued_behind_a_hub_death_are_answered_unavailable() {
    // Acknowledged stores: a pipelined store queued before the death has already returned Ok,
    // which is what `HubConfig::pipeline_stores` trades (its wait_for is still Unavailable).
    let hub = HubHandle::spawn(HubConfig::default().with_pipeline_stores(false));
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

/// Stops the hub once and checks it came back with its records, order and waiters. `round`
/// prefixes every id, so that the check can run again on the same hub.
async fn assert_restart_keeps_state(hub: HubHandle, round: &str) {
    let id = |name: &str| format!("{round}-{name}");
    let subject = Subject::hub(hub.clone());
    let before = within("stats", hub.stats()).await.expect("stats").results;
    let kept = TaskResult::new(id("kept"), TaskStatus::Success)
        .with_task_name("tasks.keep")
        .with_submitted_at(chrono::DateTime::from_timestamp(100, 0).unwrap());
    for name in ["first", "second"] {
        let record = TaskResult::new(id(name), TaskStatus::Failed);
        within("store", hub.store(&id(name), record))
            .await
            .expect("store");
    }
    within("store", hub.store(&id("kept"), kept.clone()))
        .await
        .expect("store");
    let waiter = subject.spawn_wait(id("later"), None);
    let timed = subject.spawn_wait(id("later"), Some(Duration::from_secs(30)));
    subject.await_waiters(2).await;

    hub.addr().do_send(StopHub);

    // Queued after StopHub in the same mailbox, so answered by the restarted hub.
    assert_eq!(
        within("get after restart", hub.get(&id("kept")))
            .await
            .expect("get after restart"),
        Some(kept)
    );
    let after = within("stats", hub.stats()).await.expect("stats");
    assert_eq!(after.waiters, 2, "waiters lost in the restart");
    assert_eq!(after.results, before + 3, "records lost in the restart");
    // First-store order survives: a new id sorts after the old ones, a re-store keeps its place.
    for name in ["third", "first"] {
        let record = TaskResult::new(id(name), TaskStatus::Failed);
        within("store", hub.store(&id(name), record))
            .await
            .expect("store after restart");
    }
    let ids: Vec<String> = within("list", hub.list_by_status(TaskStatus::Failed, None, 0))
        .await
        .expect("list after restart")
        .into_iter()
        .map(|r| r.task_id)
        .filter(|task_id| task_id.starts_with(round))
        .collect();
    assert_eq!(ids, [id("first"), id("second"), id("third")]);

    let later =
        TaskResult::new(id("later"), TaskStatus::Success).with_result(json!("after restart"));
    within("store", hub.store(&id("later"), later.clone()))
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
    subject.await_waiters(0).await;
}

#[actix_rt::test]
async fn supervised_hub_restarts_keeping_records_and_waiters() {
    let addr = actix::Supervisor::start(|_| ResultHub::new(HubConfig::default()));
    let hub = HubHandle::from_addr(addr);
    assert_restart_keeps_state(hub.clone(), "one").await;
    // And it can restart again.
    assert_restart_keeps_state(hub.clone(), "two").await;
    within("shutdown()", hub.shutdown()).await;
    assert_every_call_unavailable(&hub).await;
}

#[actix_rt::test]
async fn registry_hub_restarts_keeping_records_and_waiters() {
    // A SystemService runs under a Supervisor, so StopHub restarts it too.
    let hub = HubHandle::from_addr(ResultHub::from_registry());
    assert_restart_keeps_state(hub.clone(), "registry").await;
    within("shutdown()", hub.shutdown()).await;
}
