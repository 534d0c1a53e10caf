//! `RedisBackend` within bounds: a cap on waiters, listings that hold a page's worth of
//! records under a deadline, stores without a task each, and a pattern subscription that
//! exists only while there are waiters.

#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use redis_server::RedisServer;
use resulthub::{
    BackendError, Limit, RedisBackend, RedisBackendBuilder, ResultBackend, TaskResult, TaskStatus,
};
use serde_json::json;
use support::{eventually, within_long};

async fn build(builder: RedisBackendBuilder) -> RedisBackend {
    within_long("connect", builder.build())
        .await
        .expect("connect")
}

fn success(id: &str) -> TaskResult {
    TaskResult::new(id, TaskStatus::Success).with_result(json!({"n": 1}))
}

/// The server's pattern subscriptions, all clients together.
fn numpat(server: &RedisServer) -> usize {
    server
        .command_text(&["PUBSUB", "NUMPAT"])
        .parse()
        .expect("a count")
}

// ---------------------------------------------------------------------------------------------
// max_waiters
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_waiters_refuses_with_the_typed_error_and_leaves_nothing_behind() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = build(RedisBackend::builder(&server.url()).max_waiters(Some(3))).await;
    backend
        .store("finished", success("finished"))
        .await
        .expect("store");
    let waits: Vec<_> = ["a", "b", "b"]
        .into_iter()
        .map(|id| {
            let backend = backend.clone();
            tokio::spawn(async move { backend.wait_for(id, Some(Duration::from_secs(60))).await })
        })
        .collect();
    eventually("three waiters", || backend.local_waiters() == 3).await;

    let refused = within_long(
        "a wait past max_waiters",
        backend.wait_for("c", Some(Duration::from_secs(60))),
    )
    .await;
    match refused {
        Err(BackendError::Overloaded { exceeded, .. }) => assert_eq!(
            (exceeded.limit, exceeded.max, exceeded.actual),
            (Limit::MaxWaiters, 3, 3)
        ),
        other => panic!("expected Overloaded naming MaxWaiters, got {other:?}"),
    }
    assert_eq!(backend.local_waiters(), 3, "the refused wait left a waiter");
    // As the hub: a finished task is answered without taking a place.
    assert_eq!(
        within_long(
            "a finished task at the limit",
            backend.wait_for("finished", Some(Duration::from_secs(60)))
        )
        .await
        .expect("wait_for"),
        success("finished")
    );

    for id in ["a", "b"] {
        backend.store(id, success(id)).await.expect("store");
    }
    for wait in waits {
        let record = within_long("a waiter", wait).await.expect("task");
        assert!(record.expect("wait_for").is_success());
    }
    assert_eq!(backend.local_waiters(), 0);
    // The places are free again: a wait is let in (and times out).
    let later = within_long(
        "a wait once the table emptied",
        backend.wait_for("c", Some(Duration::from_millis(50))),
    )
    .await;
    assert!(
        matches!(later, Err(BackendError::Timeout { .. })),
        "{later:?}"
    );
    assert_eq!(backend.local_waiters(), 0);
}

// ---------------------------------------------------------------------------------------------
// Listings
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_pages_of_a_large_prefix_match_a_full_sort() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = build(RedisBackend::builder(&server.url())).await;
    // More records than one SCAN step, with every part of the order in use: newest first,
    // shared times tied by id, records without a time last.
    let records: Vec<TaskResult> = (0..1_500)
        .map(|n| {
            let id = format!("r{n:04}");
            let status = if n % 4 == 0 {
                TaskStatus::Failed
            } else {
                TaskStatus::Success
            };
            let record = TaskResult::new(&id, status);
            if n % 7 == 0 {
                record
            } else {
                let at =
                    chrono::DateTime::from_timestamp(1_700_000_000 + (n % 113), 0).expect("a time");
                record.with_submitted_at(at)
            }
        })
        .collect();
    for chunk in records.chunks(250) {
        let stores: FuturesUnordered<_> = chunk
            .iter()
            .map(|record| backend.store(&record.task_id, record.clone()))
            .collect();
        for outcome in within_long("a chunk of stores", stores.collect::<Vec<_>>()).await {
            outcome.expect("store");
        }
    }
    let mut expected: Vec<TaskResult> = records
        .iter()
        .filter(|record| record.status == TaskStatus::Success)
        .cloned()
        .collect();
    expected.sort_by(|a, b| {
        let by_time = match (a.submitted_at, b.submitted_at) {
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_time.then_with(|| a.task_id.cmp(&b.task_id))
    });
    let all = within_long(
        "the full listing",
        backend.list_by_status(TaskStatus::Success, None, 0),
    )
    .await
    .expect("list");
    assert_eq!(all, expected);
    for (limit, offset) in [
        (1, 0),
        (10, 0),
        (10, 500),
        (25, 1_100),
        (10, 1_120),
        (5, 5_000),
    ] {
        let page = within_long(
            "a page",
            backend.list_by_status(TaskStatus::Success, Some(limit), offset),
        )
        .await
        .expect("list");
        let want: Vec<TaskResult> = expected.iter().skip(offset).take(limit).cloned().collect();
        assert_eq!(page, want, "limit {limit} offset {offset}");
    }
    // Cursor paging walks the same order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = within_long(
            "list_page",
            backend.list_page(TaskStatus::Success, 97, after.as_ref()),
        )
        .await
        .expect("list_page");
        paged.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_past_list_timeout_is_unavailable_and_the_next_one_works() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let refused = RedisBackend::builder(&server.url())
        .list_timeout(Duration::ZERO)
        .build()
        .await;
    assert!(
        matches!(refused, Err(BackendError::InvalidInput { .. })),
        "{refused:?}"
    );
    // Each command may wait far longer than the whole walk: only the walk's deadline can end
    // it within the test's bound.
    let backend = build(
        RedisBackend::builder(&server.url())
            .response_timeout(Duration::from_secs(60))
            .list_timeout(Duration::from_millis(300)),
    )
    .await;
    backend.store("x", success("x")).await.expect("store");

    server.pause();
    let frozen = within_long(
        "a listing on a frozen server",
        backend.list_by_status(TaskStatus::Success, Some(10), 0),
    )
    .await;
    let paged = within_long(
        "list_page on a frozen server",
        backend.list_page(TaskStatus::Success, 10, None),
    )
    .await;
    server.resume();
    match frozen {
        Err(BackendError::Unavailable { reason }) => {
            assert!(reason.contains("list_timeout"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        matches!(paged, Err(BackendError::Unavailable { .. })),
        "{paged:?}"
    );
    assert_eq!(
        within_long(
            "a listing after the thaw",
            backend.list_by_status(TaskStatus::Success, Some(10), 0)
        )
        .await
        .expect("list"),
        vec![success("x")]
    );
}

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "current_thread")]
async fn stores_run_in_the_callers_future_not_a_task_each() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = build(RedisBackend::builder(&server.url())).await;
    backend.store("warm", success("warm")).await.expect("store");
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let ids: Vec<String> = (0..200).map(|n| format!("s{n}")).collect();
    let mut stores: FuturesUnordered<_> = ids
        .iter()
        .map(|id| backend.store(id, success(id)))
        .collect();
    // Every store has started and is waiting on the server.
    assert!(futures::poll!(stores.next()).is_pending());
    let during = metrics.num_alive_tasks();
    assert!(
        during <= before + 2,
        "{} tasks alive while 200 stores ran, {before} before",
        during
    );
    let outcomes: Vec<_> = within_long("200 stores", stores.collect()).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let got = within_long("get_many", backend.get_many(&["s0", "s199"]))
        .await
        .expect("get_many");
    assert_eq!(got, vec![Some(success("s0")), Some(success("s199"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_dropped_midway_lands_whole_and_holds_up_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for pool_size in [1, 2] {
        let backend = build(RedisBackend::builder(&server.url()).pool_size(pool_size)).await;
        let mut announced = redis_server::Completions::subscribe(&server, "flowrra:complete:*");
        for round in 0..60 {
            let id = format!("drop-{pool_size}-{round}");
            let record = success(&id).with_result(json!({ "round": round }));
            let polls = round % 6;
            {
                let mut store = Box::pin(backend.store(&id, record.clone()));
                // Dropped after a different amount of progress each round: never started,
                // before its read, between its read and its script, or with its script sent.
                for _ in 0..polls {
                    if futures::poll!(&mut store).is_ready() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            let stored = within_long("get after a dropped store", backend.get(&id))
                .await
                .expect("get");
            let dones = announced
                .published()
                .into_iter()
                .filter(|message| message.ends_with(&format!("flowrra:complete:{id} done")))
                .count();
            if polls == 0 {
                // Never polled, never started.
                assert_eq!((stored, dones), (None, 0), "round {round}");
            } else {
                // Started: it goes on without its caller, and lands whole, announced once.
                assert_eq!(stored, Some(record.clone()), "round {round}");
                assert_eq!(dones, 1, "round {round}: announced {dones} times");
            }
            // The next store on the id is not held up, and the dropped one never lands after it.
            let next = TaskResult::new(&id, TaskStatus::Failed);
            within_long("the next store on the id", backend.store(&id, next.clone()))
                .await
                .expect("store");
            let last = within_long("get", backend.get(&id)).await.expect("get");
            assert_eq!(
                last.map(|record| record.status),
                Some(TaskStatus::Failed),
                "round {round}: the dropped store landed last"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The pattern subscription
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pattern_subscription_without_waiters() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend =
        build(RedisBackend::builder(&server.url()).subscription_linger(Duration::from_millis(100)))
            .await;
    backend.store("a", success("a")).await.expect("store");
    assert_eq!(numpat(&server), 0, "subscribed before any wait");

    let wait = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.wait_for("w", Some(Duration::from_secs(60))).await })
    };
    eventually("subscribed for the waiter", || numpat(&server) == 1).await;
    backend.store("w", success("w")).await.expect("store");
    let record = within_long("the waiter", wait).await.expect("task");
    assert_eq!(record.expect("wait_for"), success("w"));
    assert_eq!(backend.local_waiters(), 0);
    eventually("unsubscribed after the linger", || numpat(&server) == 0).await;
    let clients = server.command_text(&["CLIENT", "LIST"]);
    assert!(
        !clients.lines().any(|line| line.contains("psub=1")),
        "{clients}"
    );

    // A waiter after the linger subscribes again, and sees a completion another process
    // publishes as soon as the subscription exists.
    for round in 0..20 {
        let id = format!("again-{round}");
        let wait = {
            let backend = backend.clone();
            let id = id.clone();
            tokio::spawn(async move { backend.wait_for(&id, Some(Duration::from_secs(60))).await })
        };
        eventually("subscribed again", || numpat(&server) == 1).await;
        server.command_text(&[
            "SET",
            &format!("flowrra:task:{id}"),
            &serde_json::to_string(&success(&id)).expect("encode"),
        ]);
        server.command_text(&["PUBLISH", &format!("flowrra:complete:{id}"), "done"]);
        let record = within_long("a waiter after the linger", wait)
            .await
            .expect("task");
        assert_eq!(record.expect("wait_for"), success(&id));
        eventually("unsubscribed again", || numpat(&server) == 0).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_that_come_as_the_subscription_retires_miss_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // No linger: the dispatcher retires as soon as the last waiter leaves, so new waiters keep
    // arriving while it does.
    let backend =
        build(RedisBackend::builder(&server.url()).subscription_linger(Duration::ZERO)).await;
    let writer = build(RedisBackend::builder(&server.url())).await;
    for round in 0..200 {
        let id = format!("race-{round}");
        let wait = backend.wait_for(&id, Some(Duration::from_secs(60)));
        let store = async {
            if round % 2 == 0 {
                tokio::task::yield_now().await;
            }
            writer.store(&id, success(&id)).await
        };
        let (waited, stored) = within_long("a wait racing a retiring subscription", async {
            tokio::join!(wait, store)
        })
        .await;
        stored.expect("store");
        assert_eq!(waited.expect("wait_for"), success(&id), "round {round}");
    }
    assert_eq!(backend.local_waiters(), 0);
    eventually("unsubscribed at the end", || numpat(&server) == 0).await;
}

/// `stats` counts every record of the prefix by status, and walks the prefix at most once per
/// `stats_interval` however many callers ask at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_the_prefix_with_one_walk_per_interval() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend =
        build(RedisBackend::builder(&server.url()).stats_interval(Duration::from_secs(3600))).await;
    for (n, status) in [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Success,
        TaskStatus::Success,
        TaskStatus::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("st{n}");
        within_long("store", backend.store(&id, TaskResult::new(&id, status)))
            .await
            .expect("store");
    }
    // Another app's records, under another prefix, are not counted.
    server.command_text(&[
        "SET",
        "other:task:x",
        r#"{"task_id":"x","status":"success"}"#,
    ]);
    let scans = |server: &RedisServer| -> u64 {
        server
            .command_text(&["INFO", "commandstats"])
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_scan:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|calls| calls.parse().ok())
            .unwrap_or(0)
    };
    let before = scans(&server);
    let asked = futures::future::join_all((0..20).map(|_| backend.stats())).await;
    let first = asked[0].as_ref().expect("stats").clone();
    assert!(
        asked
            .iter()
            .all(|stats| stats.as_ref().ok() == Some(&first))
    );
    assert_eq!(first.results, 5);
    assert_eq!(first.by_status.get(TaskStatus::Success), 2);
    assert_eq!(first.by_status.get(TaskStatus::Failed), 1);
    assert_eq!(first.by_status.get(TaskStatus::Pending), 1);
    assert_eq!(scans(&server) - before, 1, "one walk for 20 callers");
    // Within the interval, a change is not seen: the count is the cached one.
    within_long("delete", backend.delete("st0"))
        .await
        .expect("delete");
    assert_eq!(
        within_long("stats", backend.stats())
            .await
            .expect("stats")
            .results,
        5
    );
    assert_eq!(scans(&server) - before, 1);

    // With no interval, every call walks again and sees the change.
    let fresh = build(RedisBackend::builder(&server.url()).stats_interval(Duration::ZERO)).await;
    assert_eq!(
        within_long("stats", fresh.stats())
            .await
            .expect("stats")
            .results,
        4
    );
}
