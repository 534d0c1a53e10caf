//! `RedisBackend` beyond the shared suite: options, the wire layout, other writers' records,
//! one pub/sub connection for all waiters, and a server that dies, comes back or freezes.

#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis_server::RedisServer;
use resulthub::{
    BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus, TerminalPolicy,
};
use serde_json::json;

/// Bound on any await that could hang.
const TIMEOUT: Duration = Duration::from_secs(20);

async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("hung: {what} did not finish within {TIMEOUT:?}"),
    }
}

async fn connect(server: &RedisServer) -> RedisBackend {
    within("connect", RedisBackend::connect(&server.url()))
        .await
        .expect("connect")
}

/// Polls `check` until it holds, for at most [`TIMEOUT`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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
// Options
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_options_are_invalid_input_before_connecting() {
    // No server is needed: nothing may be connected.
    let url = "redis://127.0.0.1:1/0";
    let cases: Vec<(&str, resulthub::RedisBackendBuilder)> = vec![
        (
            "ttl under a second",
            RedisBackend::builder(url).ttl(Duration::from_millis(999)),
        ),
        ("zero ttl", RedisBackend::builder(url).ttl(Duration::ZERO)),
        (
            "fractional ttl",
            RedisBackend::builder(url).ttl(Duration::from_millis(1500)),
        ),
        ("empty prefix", RedisBackend::builder(url).prefix("")),
        ("no connections", RedisBackend::builder(url).pool_size(0)),
        (
            "no store attempts",
            RedisBackend::builder(url).max_store_attempts(0),
        ),
        (
            "zero response timeout",
            RedisBackend::builder(url).response_timeout(Duration::ZERO),
        ),
        (
            "backoff max under min",
            RedisBackend::builder(url)
                .reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1)),
        ),
        ("malformed url", RedisBackend::builder("http://nowhere")),
    ];
    for (what, builder) in cases {
        match within(what, builder.build()).await {
            Err(BackendError::InvalidInput { reason, .. }) => assert!(!reason.is_empty(), "{what}"),
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn unreachable_server_is_unavailable_promptly() {
    // A port nothing listens on: bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let outcome = within(
        "connect to a closed port",
        RedisBackend::builder(&format!("redis://127.0.0.1:{port}/0"))
            .connect_timeout(Duration::from_secs(1))
            .build(),
    )
    .await;
    assert!(
        matches!(outcome, Err(BackendError::Unavailable { .. })),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The wire layout
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn records_live_at_flowrra_keys_as_record_json() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
    let record = success("wire-1").with_task_name("add");
    backend
        .store("wire-1", record.clone())
        .await
        .expect("store");
    let raw = server.command_text(&["GET", "flowrra:task:wire-1"]);
    assert_eq!(raw, serde_json::to_string(&record).expect("encode"));
    assert_eq!(server.command_text(&["TTL", "flowrra:task:wire-1"]), "-1");

    let custom = RedisBackend::builder(&server.url())
        .prefix("billing")
        .build()
        .await
        .expect("connect");
    custom
        .store("wire-1", success("wire-1"))
        .await
        .expect("store");
    assert_eq!(server.command_text(&["EXISTS", "billing:task:wire-1"]), "1");
    // Each prefix sees its own record.
    assert_eq!(
        backend.get("wire-1").await.expect("get"),
        Some(record),
        "the default prefix's record was touched"
    );
}

#[tokio::test]
async fn terminal_stores_publish_done_once_on_the_completion_channel() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
    let mut connection = server.connection();
    let mut subscriber = connection.as_pubsub();
    subscriber
        .subscribe("flowrra:complete:pub-1")
        .expect("subscribe");
    for status in [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Retrying,
        TaskStatus::Success,
        TaskStatus::Running,
        TaskStatus::Failed,
    ] {
        backend
            .store("pub-1", TaskResult::new("pub-1", status))
            .await
            .expect("store");
    }
    assert_eq!(
        redis_server::received(&mut subscriber),
        ["flowrra:complete:pub-1 done", "flowrra:complete:pub-1 done"],
        "one `done` per terminal store, none for the others"
    );
}

#[tokio::test]
async fn ttl_is_set_on_every_write_and_expires_records() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(&server.url())
        .ttl(Duration::from_secs(100))
        .build()
        .await
        .expect("connect");
    backend
        .store("ttl-1", TaskResult::new("ttl-1", TaskStatus::Pending))
        .await
        .expect("store");
    let ttl: i64 = server
        .command_text(&["TTL", "flowrra:task:ttl-1"])
        .parse()
        .expect("ttl");
    assert!((1..=100).contains(&ttl), "ttl {ttl}");
    server.command_text(&["EXPIRE", "flowrra:task:ttl-1", "5"]);
    backend
        .store("ttl-1", success("ttl-1"))
        .await
        .expect("store");
    let ttl: i64 = server
        .command_text(&["TTL", "flowrra:task:ttl-1"])
        .parse()
        .expect("ttl");
    assert!(ttl > 5, "the second write did not set the TTL again: {ttl}");

    let short = RedisBackend::builder(&server.url())
        .ttl(Duration::from_secs(1))
        .build()
        .await
        .expect("connect");
    short.store("ttl-2", success("ttl-2")).await.expect("store");
    assert!(short.get("ttl-2").await.expect("get").is_some());
    // Expiry is the server's: poll for it rather than sleeping a guess.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while short.get("ttl-2").await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ttl-2 never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        short
            .list_by_status(TaskStatus::Success, None, 0)
            .await
            .expect("list")
            .iter()
            .all(|r| r.task_id != "ttl-2")
    );
}

// ---------------------------------------------------------------------------------------------
// Other writers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn undecodable_records_are_codec_errors_and_skipped_in_listings() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
    backend.store("good", success("good")).await.expect("store");
    let bad = [
        (
            "nan",
            r#"{"task_id": "nan", "status": "success", "result": NaN}"#,
        ),
        (
            "bad-date",
            r#"{"task_id": "bad-date", "status": "success", "submitted_at": "yesterday"}"#,
        ),
        ("not-json", "{{{"),
        (
            "other-id",
            r#"{"task_id": "someone-else", "status": "success"}"#,
        ),
    ];
    for (id, text) in bad {
        server.command_text(&["SET", &format!("flowrra:task:{id}"), text]);
    }
    for (id, _) in bad {
        let got = backend.get(id).await;
        assert!(
            matches!(got, Err(BackendError::Codec(_))),
            "get {id}: {got:?}"
        );
        let waited = within(
            "wait on a bad record",
            backend.wait_for(id, Some(Duration::ZERO)),
        )
        .await;
        assert!(
            matches!(waited, Err(BackendError::Codec(_))),
            "wait_for {id}: {waited:?}"
        );
    }
    let listed = backend
        .list_by_status(TaskStatus::Success, None, 0)
        .await
        .expect("one bad record never breaks a listing");
    assert_eq!(listed, [success("good")]);
    // A store over a bad record replaces it.
    backend.store("nan", success("nan")).await.expect("store");
    assert_eq!(backend.get("nan").await.expect("get"), Some(success("nan")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_merge_never_overwrites_a_concurrent_write() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
    let old = TaskResult::new("cas", TaskStatus::Pending).with_task_name("old");
    let fresh = TaskResult::new("cas", TaskStatus::Pending).with_task_name("fresh");
    let fresh_json = serde_json::to_string(&fresh).expect("encode");
    let old_json = serde_json::to_string(&old).expect("encode");
    for round in 0..200 {
        server.command_text(&["SET", "flowrra:task:cas", &old_json]);
        // Another writer replaces the record while our store reads and merges.
        let other = {
            let fresh_json = fresh_json.clone();
            let writer = server.connection();
            tokio::task::spawn_blocking(move || {
                let mut writer = writer;
                redis::cmd("SET")
                    .arg("flowrra:task:cas")
                    .arg(&fresh_json)
                    .exec(&mut writer)
                    .expect("the other writer's SET");
            })
        };
        backend
            .store("cas", TaskResult::new("cas", TaskStatus::Running))
            .await
            .expect("store");
        other.await.expect("other writer");
        let stored = backend.get("cas").await.expect("get").expect("a record");
        assert_eq!(
            stored.task_name.as_deref(),
            Some("fresh"),
            "round {round}: a merge with a record that was no longer stored was written"
        );
    }
}

#[tokio::test]
async fn keep_first_refuses_to_replace_a_terminal_record() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = RedisBackend::builder(&server.url())
        .terminal_policy(TerminalPolicy::KeepFirst)
        .max_record_bytes(200)
        .build()
        .await
        .expect("connect");
    backend.store("kf", success("kf")).await.expect("store");
    let second = backend
        .store("kf", TaskResult::new("kf", TaskStatus::Failed))
        .await;
    assert!(
        matches!(
            second,
            Err(BackendError::Conflict {
                status: TaskStatus::Success,
                ..
            })
        ),
        "{second:?}"
    );
    let big = TaskResult::new("big", TaskStatus::Pending).with_result(json!("x".repeat(300)));
    assert!(matches!(
        backend.store("big", big).await,
        Err(BackendError::InvalidInput { .. })
    ));
    assert_eq!(backend.get("kf").await.expect("get"), Some(success("kf")));
    assert_eq!(backend.get("big").await.expect("get"), None);
}

// ---------------------------------------------------------------------------------------------
// One pub/sub connection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_waiters_share_one_pubsub_connection() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
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
        let record = within("a waiter", wait)
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
    let backend = connect(&server).await;
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
    let backend = connect(&server).await;
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
        within("another waiter", other)
            .await
            .expect("task")
            .expect("wait_for");
    }
    assert_eq!(
        within("the stalled one", stalled).await.expect("wait_for"),
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
    let during = within("get during the outage", backend.get("outage")).await;
    assert!(
        matches!(during, Err(BackendError::Unavailable { .. })),
        "{during:?}"
    );
    let new_wait = within(
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

    let woken = within("the waiter after the outage", waiter)
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
    let get = within("get on a frozen server", backend.get("frozen")).await;
    assert!(
        matches!(get, Err(BackendError::Unavailable { .. })),
        "{get:?}"
    );
    let short = within(
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
    let woken = within("the long waiter after the thaw", long_wait)
        .await
        .expect("task");
    assert_eq!(woken.expect("wait_for"), success("frozen"));
}

// ---------------------------------------------------------------------------------------------
// Server errors and callers outside Tokio
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_error_the_server_returns_is_storage() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
    // Another program put a list where a record belongs.
    server.command_text(&["RPUSH", "flowrra:task:wrong", "x"]);
    let got = backend.get("wrong").await;
    assert!(matches!(got, Err(BackendError::Storage(_))), "{got:?}");
    let stored = backend.store("wrong", success("wrong")).await;
    assert!(
        matches!(stored, Err(BackendError::Storage(_))),
        "{stored:?}"
    );
    assert_eq!(server.command_text(&["TYPE", "flowrra:task:wrong"]), "list");
    // Listings read with MGET, which answers nil for a list: it is skipped, not fatal.
    assert!(
        backend
            .list_by_status(TaskStatus::Success, None, 0)
            .await
            .expect("list")
            .is_empty()
    );
}

#[test]
fn callers_outside_tokio_are_served_on_the_backends_runtime() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let backend = runtime
        .block_on(RedisBackend::connect(&server.url()))
        .expect("connect");
    // A plain thread with a non-Tokio executor.
    let outside = std::thread::spawn(move || {
        futures::executor::block_on(async {
            let waiter = backend.wait_for("outside", Some(Duration::from_secs(30)));
            let store = async {
                backend
                    .store("outside", success("outside"))
                    .await
                    .expect("store");
            };
            let (waited, ()) = futures::join!(waiter, store);
            assert_eq!(waited.expect("wait_for"), success("outside"));
            assert_eq!(
                backend.get("outside").await.expect("get"),
                Some(success("outside"))
            );
            assert!(backend.delete("outside").await.expect("delete"));
            assert_eq!(backend.clear().await.expect("clear"), 0);
            assert_eq!(backend.local_waiters(), 0);
        });
    });
    outside.join().expect("the outside thread");
}

// ---------------------------------------------------------------------------------------------
// Review fixes: store order, a link down while the server is up, a connection replaced
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_never_lands_after_a_later_store_of_its_id() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect(&server).await;
    for round in 0..100 {
        let id = format!("order-{round}");
        {
            let mut running =
                Box::pin(backend.store(&id, TaskResult::new(&id, TaskStatus::Running)));
            // Started, then dropped by its caller: it still runs, in the background.
            let _ = futures::poll!(&mut running);
        }
        backend.store(&id, success(&id)).await.expect("store");
        let stored = backend.get(&id).await.expect("get").expect("a record");
        assert_eq!(
            stored.status,
            TaskStatus::Success,
            "round {round}: the dropped RUNNING store landed after the SUCCESS store"
        );
    }
}

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
    let deadline = tokio::time::Instant::now() + TIMEOUT;
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
    let waited = within(
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
    let woken = within("the waiter", waiter).await.expect("task");
    assert_eq!(woken.expect("wait_for"), success("later"));
}

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
    let frozen = within("get on a frozen server", backend.get("x")).await;
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
        let record = within("a waiter on a finished task", wait)
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
        within("a waiter on a later task", wait)
            .await
            .expect("task")
            .expect("wait_for");
    }
    assert_eq!(backend.local_waiters(), 0);
}

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
        within(
            "a finished task",
            backend.wait_for("ok", Some(Duration::from_secs(60)))
        )
        .await
        .expect("wait_for"),
        success("ok")
    );
    let refused = within(
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
