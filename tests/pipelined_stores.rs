//! Pipelined stores: on the hub's own arbiter a store returns once queued, up to a bound
//! (smaller while the hub holds waiters); a store is queued when called, so a dropped future
//! still lands, in order; a `get` reads its caller's queued stores; the batch and paging
//! messages for actix code; and stores that must wait for the hub.

mod support;

use std::time::Duration;

use resulthub::{BackendError, HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;
use support::{TIMEOUT, within};

// ---------------------------------------------------------------------------------------------
// A store returns once queued, up to a bound
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
    within("the store past the bound", blocked)
        .await
        .expect("applied once the hub ran");
    // A later store of the same id through the same handle wins: order is kept.
    hub.store("p0", TaskResult::new("p0", TaskStatus::Success))
        .await
        .expect("store");
    let stats = within("stats", hub.stats()).await.expect("stats");
    assert_eq!(stats.results, bound + 1);
    assert_eq!(stats.by_status.success, 1);
    assert!(
        within("get", hub.get("p0"))
            .await
            .unwrap()
            .unwrap()
            .is_success()
    );
    within("shutdown", hub.shutdown()).await;
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
    within("waiter registered", async {
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
    within("the store past the bound", blocked)
        .await
        .expect("applied once the hub ran");
    let woken = within("waiter", waiter)
        .await
        .expect("joined")
        .expect("woken");
    assert!(woken.is_success());
    within("shutdown", hub.shutdown()).await;
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
        within("store", store).await.expect("applied");
        within("shutdown", hub.shutdown()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Dropped store futures
// ---------------------------------------------------------------------------------------------

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
    let unpolled = within("get", hub.get("unpolled")).await.expect("get");
    assert!(unpolled.is_some_and(|record| record.is_success()));
    let behind = within("wait_for", hub.wait_for("behind", Some(TIMEOUT)))
        .await
        .expect("stored though its future was dropped");
    assert_eq!(behind.status, TaskStatus::Failed);
    let stats = within("stats", hub.stats()).await.expect("stats");
    assert_eq!(stats.results, resulthub::MAX_UNAPPLIED + 2);
    within("shutdown", hub.shutdown()).await;
}

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
        let seen = within("get", hub.get(&id)).await.expect("get");
        let seen = seen.unwrap_or_else(|| panic!("dropped store of {id} was lost"));
        // Same caller, same handle: the later (pending) store must win.
        assert_eq!(
            (seen.status, &seen.result),
            (TaskStatus::Pending, &json!(i)),
            "{id}: a later store was overtaken by an earlier dropped one"
        );
    }
    assert_eq!(
        within("stats", hub.stats()).await.expect("stats").results,
        N
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_store_futures_are_not_lost_on_spawned_hub() {
    let hub = HubHandle::spawn(HubConfig::default());
    assert_dropped_stores_land(&hub).await;
    within("shutdown()", hub.shutdown()).await;
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_store_futures_are_not_lost_on_spawned_hub_current_thread() {
    let hub = HubHandle::spawn(HubConfig::default());
    assert_dropped_stores_land(&hub).await;
    within("shutdown()", hub.shutdown()).await;
}

#[actix_rt::test]
async fn dropped_store_futures_are_not_lost_on_started_hub() {
    let hub = HubHandle::start(HubConfig::default());
    assert_dropped_stores_land(&hub).await;
    within("shutdown()", hub.shutdown()).await;
}

// ---------------------------------------------------------------------------------------------
// Reading queued stores
// ---------------------------------------------------------------------------------------------

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
    let snapshot = within("snapshot", hub.snapshot()).await.expect("snapshot");
    assert_eq!(snapshot, vec![seen.clone()]);
    // A delete (acknowledged) is seen at once, and a store queued after it starts afresh.
    assert!(within("delete", hub.delete("v")).await.expect("delete"));
    let mut store = hub.store("v", TaskResult::new("v", TaskStatus::Success));
    assert!(futures::poll!(&mut store).is_ready());
    let after = within("get", hub.get("v"))
        .await
        .expect("get")
        .expect("record");
    assert_eq!(after, TaskResult::new("v", TaskStatus::Success));
    within("shutdown", hub.shutdown()).await;
    assert!(matches!(
        within("get after shutdown", hub.get("v")).await,
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
    within("store", hub.store("x", named)).await.expect("store");
    within("sync", hub.stats()).await.expect("applied");
    // Another caller's delete, queued but not handled (this task has not yielded).
    let mut delete = Box::pin(other.delete("x"));
    assert!(futures::poll!(&mut delete).is_pending());
    let mut store = hub.store("x", TaskResult::new("x", TaskStatus::Success));
    assert!(futures::poll!(&mut store).is_ready());
    let seen = within("get", hub.get("x"))
        .await
        .expect("get")
        .expect("the new record");
    assert_eq!(
        seen.task_name, None,
        "the delete came first: nothing to inherit"
    );
    assert!(within("delete", delete).await.expect("delete"));
    assert_eq!(
        within("get", hub.get("x")).await.expect("get"),
        Some(TaskResult::new("x", TaskStatus::Success))
    );
    within("shutdown", hub.shutdown()).await;
}

// ---------------------------------------------------------------------------------------------
// The messages actix code sends
// ---------------------------------------------------------------------------------------------

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
        let page = within("ListPage", hub.addr().send(message))
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
    let refused = within("ListPage", hub.addr().send(empty))
        .await
        .expect("delivered");
    assert!(
        matches!(refused, Err(BackendError::InvalidInput { .. })),
        "{refused:?}"
    );
    within("shutdown", hub.shutdown()).await;
}

/// Actix code stores and reads batches through `StoreMany` and `GetMany`, as `store_many` and
/// `get_many` do: one outcome per record, one entry per id, in order.
#[actix_rt::test]
async fn the_batch_messages_store_and_read_in_order() {
    use resulthub::messages::{GetMany, StoreMany};
    let hub = HubHandle::start(HubConfig::default().with_max_task_id_len(8));
    let outcomes = within(
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
    let read = within(
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
        let refused = within("GetMany", hub.addr().send(refused))
            .await
            .expect("delivered");
        assert!(
            matches!(refused, Err(BackendError::InvalidInput { .. })),
            "{refused:?}"
        );
    }
    within("shutdown", hub.shutdown()).await;
}

/// A batch on a hub that may refuse stores (here `KeepFirst`) hears each refusal on its own
/// record; a batch after shutdown is refused record by record, pipelined or not.
#[actix_rt::test]
async fn store_many_answers_each_record() {
    let keep_first =
        HubConfig::default().with_terminal_policy(resulthub::TerminalPolicy::KeepFirst);
    for config in [keep_first, HubConfig::default()] {
        let hub = HubHandle::start(config.clone());
        let outcomes = within(
            "store_many",
            hub.store_many(vec![
                TaskResult::new("a", TaskStatus::Success),
                TaskResult::new("a", TaskStatus::Failed),
                TaskResult::new("b", TaskStatus::Pending),
            ]),
        )
        .await;
        let a = within("get", hub.get("a")).await.unwrap().unwrap();
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
        within("shutdown", hub.shutdown()).await;
        let refused = within(
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
