//! `RedisBackend` beyond the shared suite, against a live server: its options, the keys and
//! channel it writes in flowrra's layout, other writers' records, the errors a server returns,
//! callers outside Tokio, and the order of one caller's stores.

#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::time::Duration;

use redis_server::RedisServer;
use resulthub::{
    BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus, TerminalPolicy,
};
use serde_json::json;
use support::{TIMEOUT, connect_redis, within, within_long};

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
        match within_long(what, builder.build()).await {
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
    let backend = connect_redis(&server.url()).await;
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
    let backend = connect_redis(&server.url()).await;
    let mut completions = redis_server::Completions::subscribe(&server, "flowrra:complete:pub-*");
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
        completions.published(),
        [
            "pmessage flowrra:complete:pub-* flowrra:complete:pub-1 done",
            "pmessage flowrra:complete:pub-* flowrra:complete:pub-1 done"
        ],
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
    let backend = connect_redis(&server.url()).await;
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
        let waited = within_long(
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
    let backend = connect_redis(&server.url()).await;
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
// Server errors and callers outside Tokio
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_error_the_server_returns_is_storage() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect_redis(&server.url()).await;
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
// Store order
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_store_never_lands_after_a_later_store_of_its_id() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = connect_redis(&server.url()).await;
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
