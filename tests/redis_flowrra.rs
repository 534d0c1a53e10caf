//! Interop with Python flowrra 0.1.8 on one Redis, both directions, in a virtualenv this test
//! makes (target/interop-venv: flowrra 0.1.8 and redis-py from PyPI).
//!
//! Skipped loudly without Python or redis-server, unless `RESULTHUB_REQUIRE_REDIS=1`.

#![cfg(feature = "redis")]

#[path = "support/flowrra.rs"]
mod flowrra;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use flowrra::{peer, peer_in_zone, python};
use redis_server::RedisServer;
use resulthub::{RedisBackend, ResultBackend, TaskResult, TaskStatus};
use serde_json::{Value, json};

/// A record as Python's `to_dict` printed it, read the way resulthub reads Redis.
fn from_python(value: &Value) -> TaskResult {
    serde_json::from_value(value.clone()).expect("a flowrra record decodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stores_and_rust_gets_and_waits() {
    let (Some(server), Some(python)) = (RedisServer::start(), python()) else {
        return;
    };
    let backend = RedisBackend::connect(&server.url()).await.expect("connect");
    // Waiting before Python stores: the completion must arrive through pub/sub.
    let waiter = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend
                .wait_for("py-1", Some(Duration::from_secs(60)))
                .await
        })
    };
    // Subscribed and past its first read: the record can only reach it through pub/sub.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while server.command_text(&["PUBSUB", "NUMPAT"]) != "1"
        || !server
            .command_text(&["INFO", "commandstats"])
            .contains("cmdstat_get:")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the waiter never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let url = server.url();
    let stored = tokio::task::spawn_blocking(move || peer(&python, &["store", &url, "py-1"]))
        .await
        .expect("peer");
    let expected = from_python(&stored);
    assert_eq!(expected.status, TaskStatus::Success);
    assert_eq!(
        expected.submitted_at,
        Some(
            Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
                + chrono::Duration::microseconds(123_456)
        )
    );

    let woken = tokio::time::timeout(Duration::from_secs(60), waiter)
        .await
        .expect("the waiter woke")
        .expect("task")
        .expect("wait_for");
    assert_eq!(woken, expected);
    assert_eq!(
        backend.get("py-1").await.expect("get"),
        Some(expected.clone())
    );
    assert_eq!(
        backend
            .list_by_status(TaskStatus::Success, None, 0)
            .await
            .expect("list"),
        [expected]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_stores_and_python_gets_lists_and_waits() {
    let (Some(server), Some(python)) = (RedisServer::start(), python()) else {
        return;
    };
    let backend = RedisBackend::connect(&server.url()).await.expect("connect");
    let at = |s: i64| {
        Utc.timestamp_opt(1_764_158_400 + s, 123_000)
            .single()
            .unwrap()
    };
    let mut kwargs = serde_json::Map::new();
    kwargs.insert("zeta".into(), json!(1));
    kwargs.insert("alpha".into(), json!([]));
    let records = vec![
        TaskResult::new("rs-pending", TaskStatus::Pending)
            .with_task_name("rs.job")
            .with_submitted_at(at(0))
            .with_args(vec![json!(1), json!("two"), json!(null)])
            .with_kwargs(kwargs),
        TaskResult::new("rs-running", TaskStatus::Running).with_started_at(at(1)),
        TaskResult::new("rs-retrying", TaskStatus::Retrying)
            .with_error("boom")
            .with_retries(2),
        TaskResult::new("rs-success", TaskStatus::Success)
            .with_task_name("rs.job")
            .with_result(json!({"nested": {"list": [1.5, -2, "h\u{e9}llo \u{2713}"], "empty": {}}}))
            .with_submitted_at(at(5))
            .with_started_at(at(6))
            .with_finished_at(at(7)),
        TaskResult::new("rs-old-success", TaskStatus::Success).with_submitted_at(at(-100)),
        TaskResult::new("rs-failed", TaskStatus::Failed).with_error("ValueError: bad"),
    ];
    for record in &records {
        backend
            .store(&record.task_id, record.clone())
            .await
            .expect("store");
    }
    let url = server.url();
    let mut args = vec!["read".to_owned(), url];
    args.extend(records.iter().map(|r| r.task_id.clone()));
    let read = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        peer(&python, &args)
    })
    .await
    .expect("peer");

    for record in &records {
        let seen = &read["get"][&record.task_id];
        assert_eq!(
            &from_python(seen),
            record,
            "python's get of {}",
            record.task_id
        );
    }
    assert_eq!(read["lists"]["pending"], json!(["rs-pending"]));
    assert_eq!(read["lists"]["running"], json!(["rs-running"]));
    assert_eq!(read["lists"]["retrying"], json!(["rs-retrying"]));
    assert_eq!(read["lists"]["failed"], json!(["rs-failed"]));
    assert_eq!(
        read["lists"]["success"],
        json!(["rs-success", "rs-old-success"])
    );
    for id in ["rs-success", "rs-old-success", "rs-failed"] {
        let waited = &read["waited"][id];
        assert_eq!(waited["task_id"], json!(id), "python's wait_for of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_waits_and_rust_completes() {
    let (Some(server), Some(python)) = (RedisServer::start(), python()) else {
        return;
    };
    let backend = RedisBackend::connect(&server.url()).await.expect("connect");
    backend
        .store("py-wait", TaskResult::new("py-wait", TaskStatus::Running))
        .await
        .expect("store");
    let url = server.url();
    let waiting =
        tokio::task::spawn_blocking(move || peer(&python, &["wait", &url, "py-wait", "60"]));
    // flowrra subscribes after its first read; store once it listens, or it would miss it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reply = server.command_text(&["PUBSUB", "NUMSUB", "flowrra:complete:py-wait"]);
        if reply.lines().nth(1) == Some("1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "python never subscribed: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = TaskResult::new("py-wait", TaskStatus::Failed).with_error("it broke");
    backend.store("py-wait", done.clone()).await.expect("store");
    let seen = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("python's wait_for returned")
        .expect("peer");
    assert_eq!(from_python(&seen), done);
}

/// flowrra writes `datetime.now()`: its host's local wall time. With the hosts' zone set by
/// `naive_times`, a flowrra worker under a non-UTC `TZ` and this backend agree on every
/// instant, both ways; read as UTC, the same record is off by the zone's offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_local_times_of_a_flowrra_host_off_utc_are_read_and_written_in_its_zone() {
    let (Some(server), Some(python)) = (RedisServer::start(), python()) else {
        return;
    };
    // India Standard Time, written the POSIX way so that no time zone database is needed.
    const TZ: &str = "IST-5:30";
    let ist = chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap();
    let url = server.url();
    let in_zone = RedisBackend::builder(&url)
        .naive_times(resulthub::NaiveTimes::Offset(ist))
        .build()
        .await
        .expect("connect");
    let as_utc = RedisBackend::connect(&url).await.expect("connect");

    let stored = {
        let (python, url) = (python.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            peer_in_zone(&python, TZ, &["store-now", &url, "tz-py"])
        })
        .await
        .expect("peer")
    };
    let unix = |value: &Value| {
        let seconds = value.as_f64().expect("Unix seconds");
        Utc.timestamp_micros((seconds * 1e6) as i64).unwrap()
    };
    let (before, after) = (unix(&stored["before"]), unix(&stored["after"]));
    let read = in_zone.get("tz-py").await.expect("get").expect("stored");
    let submitted = read.submitted_at.expect("a submitted_at");
    assert!(
        before - chrono::Duration::seconds(1) <= submitted
            && submitted <= after + chrono::Duration::seconds(1),
        "{submitted} is not between {before} and {after}"
    );
    let misread = as_utc.get("tz-py").await.expect("get").expect("stored");
    assert_eq!(
        misread.submitted_at.expect("a submitted_at") - submitted,
        chrono::Duration::minutes(330),
        "read as UTC, IST wall time is 5 h 30 late"
    );

    // Written in the zone, flowrra on such a host reads the same instant.
    let now = Utc::now();
    in_zone
        .store(
            "tz-rs",
            TaskResult::new("tz-rs", TaskStatus::Success).with_submitted_at(now),
        )
        .await
        .expect("store");
    let times =
        tokio::task::spawn_blocking(move || peer_in_zone(&python, TZ, &["times", &url, "tz-rs"]))
            .await
            .expect("peer");
    let seen = unix(&times["submitted_at"]);
    assert!(
        (seen - now).num_milliseconds().abs() < 2,
        "flowrra read {seen}, stored {now}"
    );
}

/// A task a flowrra worker finishes reaches `RedisBackend::subscribe` as one `stored` event
/// carrying the record as Python wrote it; its PENDING and RUNNING stores, which flowrra does
/// not announce, do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flowrra_completion_is_an_event_with_its_record() {
    let (Some(server), Some(python)) = (RedisServer::start(), python()) else {
        return;
    };
    let backend = RedisBackend::connect(&server.url()).await.expect("connect");
    let mut events = backend.subscribe().await.expect("subscribe");
    let url = server.url();
    let stored = tokio::task::spawn_blocking(move || peer(&python, &["store", &url, "py-ev"]))
        .await
        .expect("peer");
    let event = tokio::time::timeout(
        Duration::from_secs(60),
        futures::StreamExt::next(&mut events),
    )
    .await
    .expect("an event within 60 s");
    let Some(resulthub::HubEvent::Task(event)) = event else {
        panic!("not a task event: {event:?}");
    };
    assert_eq!(
        (event.kind, event.task_id.as_str(), event.status),
        (resulthub::EventKind::Stored, "py-ev", TaskStatus::Success)
    );
    assert_eq!(event.record, Some(from_python(&stored)));
    assert_eq!(backend.stats().await.expect("stats").subscribers, 1);
    drop(events);
    assert_eq!(backend.stats().await.expect("stats").subscribers, 0);
}
