//! `HubHandle::spawn` runs the hub on a thread of its own, which ends on `shutdown` or when the
//! last handle is dropped. Alone in its binary, so that no other test's hub thread is counted.

use std::time::{Duration, Instant};

use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};

/// Threads of this process named like the hub's.
fn hub_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|task| {
                    std::fs::read_to_string(task.path().join("comm"))
                        .is_ok_and(|name| name.trim() == "resulthub")
                })
                .count()
        })
        .unwrap_or(0)
}

/// Polls until `hub_threads()` is `expected`, for at most 10 s.
fn await_hub_threads(expected: usize, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub_threads() != expected {
        assert!(
            Instant::now() < deadline,
            "{why}: {} hub threads, expected {expected}",
            hub_threads()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_hub_thread_ends_on_shutdown_and_when_the_last_handle_is_dropped() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    assert_eq!(hub_threads(), 0);

    // Shutdown ends and joins it.
    let hub = HubHandle::spawn(HubConfig::default());
    assert_eq!(hub_threads(), 1);
    runtime.block_on(async {
        hub.store("a", TaskResult::new("a", TaskStatus::Success))
            .await
            .expect("store");
        tokio::time::timeout(Duration::from_secs(10), hub.shutdown())
            .await
            .expect("shutdown returned");
    });
    assert_eq!(hub_threads(), 0, "shutdown joins the thread");

    // Dropping the last of several clones ends it; dropping the others does not.
    let hub = HubHandle::spawn(HubConfig::default());
    let clone = hub.clone();
    await_hub_threads(1, "spawned");
    drop(hub);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(hub_threads(), 1, "a clone still holds the hub");
    runtime.block_on(async {
        assert!(clone.get("a").await.expect("get").is_none());
    });
    drop(clone);
    await_hub_threads(0, "after the last handle was dropped");
}
