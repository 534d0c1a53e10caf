//! A hub started on an arbiter stops when its last handle is dropped, even after callers
//! waited on it (a hub keeping a sender to its own mailbox would live forever).

use std::time::Duration;

use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};

#[actix_rt::test]
async fn a_started_hub_stops_with_its_last_handle_after_a_wait() {
    let hub = HubHandle::start(HubConfig::default());
    let addr = hub.addr().downgrade();
    let waiter = tokio::spawn({
        let hub = hub.clone();
        async move { hub.wait_for("t", Some(Duration::from_secs(10))).await }
    });
    while hub.stats().await.expect("stats").waiters == 0 {
        tokio::task::yield_now().await;
    }
    hub.store("t", TaskResult::new("t", TaskStatus::Success))
        .await
        .expect("store");
    let record = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("woken in time")
        .expect("the waiter task")
        .expect("the record");
    assert!(record.is_success());
    drop(hub);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while addr.upgrade().is_some_and(|addr| addr.connected()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the hub is still running with no handle left"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
