//! `RedisBackend`'s waiters and connections: one pub/sub connection per backend for all its
//! waiters, a server that dies, comes back or freezes, a pub/sub link down while the server is
//! up, a command connection replaced after a timeout, and a server that refuses the
//! subscription.

#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::sync::Arc;
use std::time::Duration;

use redis_server::RedisServer;
use resulthub::{BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;
use support::{LONG_TIMEOUT, connect_redis, eventually, within_long};

/// The pub/sub connections the server has, from `CLIENT LIST`.
fn pubsub_clients(server: &RedisServer) -> usize {
    server
        .command_text(&["CLIENT", "LIST"])
        .lines()
        .filter(|line| {
            line.split(' ')
                .any(|field| field.starts_with("psub=") && field != "psub=0")
                || line
                    .split(' ')
                    .any(|field| field.starts_with("sub=") && field != "sub=0")
        })
        .count()
}

/// How many `GET`s the server has answered, from `INFO commandstats`.
fn get_calls(server: &RedisServer) -> u64 {
    let stats = server.command_text(&["INFO", "commandstats"]);
    stats
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a count"))
}

fn success(id: &str) -> TaskResult {
    TaskResult::new(id, TaskStatus::Success).with_result(json!({"n": 1}))
}

// ---------------------------------------------------------------------------------------------
// One pub/sub connection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_waiters_share_one_pubsub_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect_redis(&server.url()).await;
    let waits: Vec<_> = (0..10_000)
        .map(|i| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let id = format!("many-{}", i % 100);
                backend.wait_for(&id, Some(Duration::from_secs(60))).await
            })
        })
        .collect();
    eventually("10,000 waiters registered", || {
        backend.local_waiters() == 10_000
    })
    .await;
    eventually("subscribed", || pubsub_clients(&server) == 1).await;
    eventually("every waiter's first read", || get_calls(&server) >= 10_000).await;
    assert_eq!(
        pubsub_clients(&server),
        1,
        "{}",
        server.command_text(&["CLIENT", "LIST"])
    );
    // The backend's own connections: one for commands, one for pub/sub.
    let clients = server.command_text(&["CLIENT", "LIST"]).lines().count();
    assert!(
        clients <= 3,
        "{clients} connections (the test's own is one)"
    );
    for i in 0..100 {
        let id = format!("many-{i}");
        backend.store(&id, success(&id)).await.expect("store");
    }
    for wait in waits {
        let record = within_long("a waiter", wait)
            .await
            .expect("task")
            .expect("wait_for");
        assert!(record.is_success());
    }
    assert_eq!(backend.local_waiters(), 0);
}

#[tokio::test]
async fn dropping_the_backend_closes_its_pubsub_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect_redis(&server.url()).await;
    let outcome = backend
        .wait_for("nobody", Some(Duration::from_millis(50)))
        .await;
    assert!(
        matches!(outcome, Err(BackendError::Timeout { .. })),
        "{outcome:?}"
    );
    eventually("subscribed", || pubsub_clients(&server) == 1).await;
    drop(backend);
    eventually("the pub/sub connection closed", || {
        pubsub_clients(&server) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_waiter_does_not_hold_up_the_others() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect_redis(&server.url()).await;
    // Polled once (registered and subscribing), then never again.
    let mut stalled = Box::pin(backend.wait_for("stall", Some(Duration::from_secs(60))));
    let _ = futures::poll!(&mut stalled);
    let others: Vec<_> = (0..50)
        .map(|i| {
            let backend = backend.clone();
            let id = if i % 2 == 0 {
                "stall".to_owned()
            } else {
                format!("other-{i}")
            };
            tokio::spawn(async move { backend.wait_for(&id, Some(Duration::from_secs(60))).await })
        })
        .collect();
    eventually("51 waiters", || backend.local_waiters() == 51).await;
    backend
        .store("stall", success("stall"))
        .await
        .expect("store");
    for i in (1..50).step_by(2) {
        let id = format!("other-{i}");
        backend.store(&id, success(&id)).await.expect("store");
    }
    for other in others {
        within_long("another waiter", other)
            .await
            .expect("task")
            .expect("wait_for");
    }
    assert_eq!(
        within_long("the stalled one", stalled)
            .await
            .expect("wait_for"),
        success("stall")
    );
    assert_eq!(backend.local_waiters(), 0);
}

// ---------------------------------------------------------------------------------------------
// The server dies, comes back, or freezes
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_survives_a_restart_and_sees_a_completion_published_during_the_outage() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    // A long backoff leaves a wide window in which the completion is published unheard.
    let backend = Arc::new(
        RedisBackend::builder(&server.url())
            .reconnect_backoff(Duration::from_secs(5), Duration::from_secs(5))
            .response_timeout(Duration::from_secs(1))
            .build()
            .await
            .expect("connect"),
    );
    let waiter = {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            backend
                .wait_for("outage", Some(Duration::from_secs(60)))
                .await
        })
    };
    eventually("subscribed", || pubsub_clients(&server) == 1).await;
    eventually("the waiter's first read", || get_calls(&server) >= 1).await;

    server.kill();
    // Calls during the outage fail as Unavailable, never hang.
    let during = within_long("get during the outage", backend.get("outage")).await;
    assert!(
        matches!(during, Err(BackendError::Unavailable { .. })),
        "{during:?}"
    );
    let new_wait = within_long(
        "a wait started during the outage",
        backend.wait_for("other", Some(Duration::from_secs(60))),
    )
    .await;
    assert!(
        matches!(new_wait, Err(BackendError::Unavailable { .. })),
        "{new_wait:?}"
    );

    server.restart();
    // Stored and announced while our subscription is not back: nobody hears the `done`.
    let record = success("outage");
    server.command_text(&[
        "SET",
        "flowrra:task:outage",
        &serde_json::to_string(&record).expect("encode"),
    ]);
    server.command_text(&["PUBLISH", "flowrra:complete:outage", "done"]);
    assert_eq!(
        pubsub_clients(&server),
        0,
        "the subscription came back too early for this test"
    );
    assert!(
        !waiter.is_finished(),
        "the waiter gave up during the outage"
    );

    let woken = within_long("the waiter after the outage", waiter)
        .await
        .expect("task");
    assert_eq!(woken.expect("wait_for"), record);
    // Commands work again too.
    backend
        .store("after", success("after"))
        .await
        .expect("store after restart");
    assert_eq!(
        backend.get("after").await.expect("get"),
        Some(success("after"))
    );
    assert_eq!(backend.local_waiters(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_calls_in_time_and_the_backend_recovers() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(&server.url())
        .response_timeout(Duration::from_millis(300))
        .health_check_interval(Duration::from_millis(100))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .await
        .expect("connect");
    let long_wait = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend
                .wait_for("frozen", Some(Duration::from_secs(60)))
                .await
        })
    };
    eventually("subscribed", || pubsub_clients(&server) == 1).await;
    // The wait has made its first read (a wait that cannot is refused at once).
    eventually("the waiter's first read", || get_calls(&server) >= 1).await;

    server.pause();
    let started = std::time::Instant::now();
    let get = within_long("get on a frozen server", backend.get("frozen")).await;
    assert!(
        matches!(get, Err(BackendError::Unavailable { .. })),
        "{get:?}"
    );
    let short = within_long(
        "a short wait on a frozen server",
        backend.wait_for("frozen", Some(Duration::from_millis(200))),
    )
    .await;
    assert!(
        matches!(
            short,
            Err(BackendError::Unavailable { .. } | BackendError::Timeout { .. })
        ),
        "{short:?}"
    );
    // Generous: the point is that nothing waits for the server to thaw.
    assert!(started.elapsed() < Duration::from_secs(10));
    server.resume();

    backend
        .store("frozen", success("frozen"))
        .await
        .expect("store after thaw");
    let woken = within_long("the long waiter after the thaw", long_wait)
        .await
        .expect("task");
    assert_eq!(woken.expect("wait_for"), success("frozen"));
}

// ---------------------------------------------------------------------------------------------
// The pub/sub link goes down while the server is up
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_is_answered_while_the_pubsub_link_is_still_down() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    // A backoff far longer than the test: only a waiter's call can bring the link back early.
    let backend = RedisBackend::builder(&server.url())
        .reconnect_backoff(Duration::from_secs(600), Duration::from_secs(600))
        .build()
        .await
        .expect("connect");
    let first = backend
        .wait_for("warm-up", Some(Duration::from_millis(10)))
        .await;
    assert!(
        matches!(first, Err(BackendError::Timeout { .. })),
        "{first:?}"
    );
    eventually("subscribed", || pubsub_clients(&server) == 1).await;
    server.restart();
    let record = success("finished");
    server.command_text(&[
        "SET",
        "flowrra:task:finished",
        &serde_json::to_string(&record).expect("encode"),
    ]);
    // Commands recover at once; the pub/sub link is in its backoff.
    let deadline = tokio::time::Instant::now() + LONG_TIMEOUT;
    let got = loop {
        match backend.get("finished").await {
            Ok(got) => break got,
            Err(BackendError::Unavailable { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("get after the restart: {error:?}"),
        }
    };
    assert_eq!(got, Some(record.clone()));
    let waited = within_long(
        "wait_for a finished task with the link down",
        backend.wait_for("finished", Some(Duration::ZERO)),
    )
    .await;
    assert_eq!(waited.expect("wait_for"), record);
    // An unfinished task's waiter brings the link back instead of waiting out the backoff.
    let waiter = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend
                .wait_for("later", Some(Duration::from_secs(60)))
                .await
        })
    };
    eventually("subscribed again", || pubsub_clients(&server) == 1).await;
    backend
        .store("later", success("later"))
        .await
        .expect("store");
    let woken = within_long("the waiter", waiter).await.expect("task");
    assert_eq!(woken.expect("wait_for"), success("later"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnection_rechecks_waited_keys_in_batches_not_one_read_per_waiter() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(&server.url())
        .reconnect_backoff(Duration::from_millis(200), Duration::from_millis(200))
        .build()
        .await
        .expect("connect");
    // 2,000 waiters on 20 tasks.
    let waits: Vec<_> = (0..2_000)
        .map(|i| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let id = format!("batch-{}", i % 20);
                backend.wait_for(&id, Some(Duration::from_secs(60))).await
            })
        })
        .collect();
    eventually("subscribed", || pubsub_clients(&server) == 1).await;
    eventually("every first read", || get_calls(&server) >= 2_000).await;

    server.restart();
    // Half the tasks finished while nobody listened.
    for i in 0..10 {
        let id = format!("batch-{i}");
        server.command_text(&[
            "SET",
            &format!("flowrra:task:{id}"),
            &serde_json::to_string(&success(&id)).expect("encode"),
        ]);
    }
    // Waiters on the finished tasks are woken by the recheck; the rest still wait.
    let (done, pending): (Vec<_>, Vec<_>) = waits
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 20 < 10);
    for (_, wait) in done {
        let record = within_long("a waiter on a finished task", wait)
            .await
            .expect("task")
            .expect("wait_for");
        assert!(record.is_success());
    }
    // The new server saw a handful of reads, not one per waiter.
    let gets = get_calls(&server);
    assert!(gets <= 1_000 + 20, "{gets} GETs after the reconnection");
    assert!(
        server
            .command_text(&["INFO", "commandstats"])
            .contains("cmdstat_mget:"),
        "the recheck did not batch"
    );
    for (_, wait) in &pending {
        assert!(
            !wait.is_finished(),
            "a waiter on an unfinished task returned"
        );
    }
    for i in 10..20 {
        let id = format!("batch-{i}");
        backend.store(&id, success(&id)).await.expect("store");
    }
    for (_, wait) in pending {
        within_long("a waiter on a later task", wait)
            .await
            .expect("task")
            .expect("wait_for");
    }
    assert_eq!(backend.local_waiters(), 0);
}

// ---------------------------------------------------------------------------------------------
// A command connection that timed out is replaced
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_connection_that_timed_out_is_replaced() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(&server.url())
        .response_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("connect");
    let ids = |server: &RedisServer| -> Vec<String> {
        server
            .command_text(&["CLIENT", "LIST"])
            .lines()
            .filter(|line| !line.contains("cmd=client|list"))
            .filter_map(|line| line.split(' ').next().map(str::to_owned))
            .collect()
    };
    let before = ids(&server);
    assert_eq!(before.len(), 1, "one command connection: {before:?}");
    server.pause();
    let frozen = within_long("get on a frozen server", backend.get("x")).await;
    assert!(
        matches!(frozen, Err(BackendError::Unavailable { .. })),
        "{frozen:?}"
    );
    server.resume();
    // A half-open connection would never answer again: the pool does not wait to find out.
    eventually("a new command connection", || {
        let now = ids(&server);
        now.len() == 1 && now != before
    })
    .await;
    backend.store("x", success("x")).await.expect("store");
    assert_eq!(backend.get("x").await.expect("get"), Some(success("x")));
}

// ---------------------------------------------------------------------------------------------
// A server that refuses the subscription
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_refuses_the_subscription_is_storage_not_a_hang() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // An ACL user that may read and write but not subscribe.
    let reply = server.command_text(&[
        "ACL",
        "SETUSER",
        "nosub",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-psubscribe",
        "-subscribe",
    ]);
    assert_eq!(reply, "OK");
    let url = format!("redis://nosub:pw@127.0.0.1:{}/0", server.port());
    let backend = RedisBackend::connect(&url).await.expect("connect");
    backend.store("ok", success("ok")).await.expect("store");
    // A finished task needs no subscription.
    assert_eq!(
        within_long(
            "a finished task",
            backend.wait_for("ok", Some(Duration::from_secs(60)))
        )
        .await
        .expect("wait_for"),
        success("ok")
    );
    let refused = within_long(
        "a wait the server will not let subscribe",
        backend.wait_for("never", Some(Duration::from_secs(60))),
    )
    .await;
    assert!(
        matches!(refused, Err(BackendError::Storage(_))),
        "{refused:?}"
    );
    assert_eq!(backend.local_waiters(), 0);
}
