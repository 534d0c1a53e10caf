//! The routes over a `RedisBackend`, for what only Redis has: events from other processes
//! (another backend on the same prefix stands for one), the completion subscription held only
//! while someone listens, resumptions across a gap in the feed and past the buffer, offset
//! paging behind the cursor, readiness that follows the server, and `/metrics` from the
//! prefix's counts. The
//! routes both backends share are tested over both in `web_reads.rs`, `web_writes.rs`,
//! `web_auth.rs`, `web_hardening.rs` and `web_server.rs`.
//!
//! Skipped without `redis-server`, unless `RESULTHUB_REQUIRE_REDIS=1`.
#![cfg(all(feature = "web", feature = "redis"))]

mod support;
mod web_support;

use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::test;
use chrono::{TimeZone, Utc};
use resulthub::web::WebOptions;
use resulthub::{RedisBackend, ResultBackend, TaskStatus};
use serde_json::{Value, json};
use support::{eventually, rec, within};
use web_support::redis_server::RedisServer;
use web_support::{Redis, app, get, send};

/// An SSE frame: its `id:` (if any), event name and data.
type Frame = (Option<String>, String, String);

/// An `/events` body, read frame by frame.
struct Frames {
    body: BoxBody,
    text: String,
}

impl Frames {
    async fn open<S>(app: &S, request: test::TestRequest) -> Frames
    where
        S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
    {
        let response = within("/events", test::call_service(app, request.to_request())).await;
        assert_eq!(response.status(), StatusCode::OK);
        Frames {
            body: response.into_body(),
            text: String::new(),
        }
    }

    /// The next event frame (comments skipped); `None` when the stream ends.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let frame: String = self.text.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|line| line.strip_prefix(name).map(str::to_owned))
                };
                if let (Some(name), Some(data)) = (field("event: "), field("data: ")) {
                    return Some((field("id: "), name, data));
                }
            }
            let body = &mut self.body;
            let chunk = within(
                "the next chunk of /events",
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx)),
            )
            .await?;
            self.text
                .push_str(std::str::from_utf8(&chunk.expect("a chunk")).unwrap());
        }
    }

    /// The next frame, which must be a `task` event: its id and data.
    async fn task(&mut self) -> (String, Value) {
        let (id, name, data) = self.next().await.expect("a frame");
        assert_eq!(name, "task", "{data}");
        (id.expect("an id"), serde_json::from_str(&data).unwrap())
    }
}

fn events_after(last_event_id: &str) -> test::TestRequest {
    get("/hub/events").insert_header(("last-event-id", last_event_id.to_owned()))
}

/// Pattern subscriptions the server holds (`PUBSUB NUMPAT`).
fn patterns(server: &RedisServer) -> String {
    server.command_text(&["PUBSUB", "NUMPAT"])
}

/// A backend whose completion subscription outlives its last user by only 50 ms.
async fn short_lingering(server: &RedisServer) -> RedisBackend {
    within(
        "connect",
        RedisBackend::builder(&server.url())
            .stats_interval(Duration::from_millis(1))
            .subscription_linger(Duration::from_millis(50))
            .build(),
    )
    .await
    .expect("connect")
}

#[actix_rt::test]
async fn another_process_completion_reaches_events_with_its_record() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let other = Redis::connect(&redis.server).await;
    // No subscriber yet: nothing listens to completions.
    assert_eq!(patterns(&redis.server), "0");
    let app = app(&redis.backend, WebOptions::default()).await;
    let mut frames = Frames::open(&app, get("/hub/events")).await;
    assert_eq!(patterns(&redis.server), "1");

    // Another process's RUNNING store announces nothing (flowrra's layout); its SUCCESS does,
    // and the event carries the record as stored, task fields merged.
    other
        .store(
            "x1",
            rec("x1", TaskStatus::Running).with_task_name("resize"),
        )
        .await
        .unwrap();
    other
        .store("x1", rec("x1", TaskStatus::Success).with_result(json!(42)))
        .await
        .unwrap();
    let (_, event) = frames.task().await;
    assert_eq!(
        (&event["kind"], &event["task_id"], &event["status"]),
        (&json!("stored"), &json!("x1"), &json!("success"))
    );
    assert_eq!(
        (&event["record"]["task_name"], &event["record"]["result"]),
        (&json!("resize"), &json!(42))
    );
    let expected = redis.backend.get("x1").await.unwrap().unwrap();
    assert_eq!(event["record"], serde_json::to_value(&expected).unwrap());

    // This process's own stores are events too, a terminal one once (not again when its
    // announcement comes back), and a delete says what it removed.
    redis
        .backend
        .store("own", rec("own", TaskStatus::Pending))
        .await
        .unwrap();
    redis
        .backend
        .store("own", rec("own", TaskStatus::Failed).with_error("boom"))
        .await
        .unwrap();
    assert!(redis.backend.delete("own").await.unwrap());
    other
        .store("x2", rec("x2", TaskStatus::Failed))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let (_, event) = frames.task().await;
        seen.push(format!(
            "{} {} {}",
            event["kind"].as_str().unwrap(),
            event["task_id"].as_str().unwrap(),
            event["status"].as_str().unwrap()
        ));
    }
    assert_eq!(
        seen,
        [
            "stored own pending",
            "stored own failed",
            "deleted own failed",
            "stored x2 failed"
        ]
    );
}

#[actix_rt::test]
async fn the_subscription_lasts_while_someone_listens() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = short_lingering(&server).await;
    let app = app(&backend, WebOptions::default()).await;
    let first = Frames::open(&app, get("/hub/events")).await;
    let second = Frames::open(&app, get("/hub/events?status=failed")).await;
    assert_eq!(patterns(&server), "1", "one subscription for every client");
    assert_eq!(backend.stats().await.unwrap().subscribers, 2);
    drop(first);
    assert_eq!(backend.stats().await.unwrap().subscribers, 1);
    drop(second);
    assert_eq!(backend.stats().await.unwrap().subscribers, 0);
    // Gone once the linger has passed: an idle backend receives no completion traffic.
    eventually("the pattern subscription gone", || patterns(&server) == "0").await;
    // And back for the next client.
    let _again = Frames::open(&app, get("/hub/events")).await;
    assert_eq!(patterns(&server), "1");
}

#[actix_rt::test]
async fn a_client_resumes_after_its_last_event_id_and_hears_of_a_gap() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = short_lingering(&server).await;
    let other = Redis::connect(&server).await;
    let app = app(&backend, WebOptions::default()).await;

    // Another client keeps the feed running while the first is away.
    let mut keeper = Frames::open(&app, get("/hub/events")).await;
    let mut frames = Frames::open(&app, get("/hub/events")).await;
    backend
        .store("a", rec("a", TaskStatus::Success))
        .await
        .unwrap();
    let (last, event) = frames.task().await;
    assert_eq!(event["task_id"], "a");
    drop(frames);

    // The completions went on being read: nothing is missed.
    other
        .store("b", rec("b", TaskStatus::Success))
        .await
        .unwrap();
    for expected in ["a", "b"] {
        assert_eq!(keeper.task().await.1["task_id"], expected);
    }
    backend
        .store("c", rec("c", TaskStatus::Running))
        .await
        .unwrap();
    let mut frames = Frames::open(&app, events_after(&last)).await;
    let (_, event) = frames.task().await;
    assert_eq!(event["task_id"], "b");
    let (last, event) = frames.task().await;
    assert_eq!(event["task_id"], "c");
    drop((frames, keeper));

    // Back after the feed stopped: what other processes did meanwhile was not seen, and the
    // client is told so before what this process did.
    eventually("the pattern subscription gone", || patterns(&server) == "0").await;
    other
        .store("unseen", rec("unseen", TaskStatus::Success))
        .await
        .unwrap();
    backend
        .store("d", rec("d", TaskStatus::Running))
        .await
        .unwrap();
    let mut frames = Frames::open(&app, events_after(&last)).await;
    assert_eq!(
        frames.next().await,
        Some((None, "lagged".to_owned(), r#"{"missed":0}"#.to_owned()))
    );
    let (_, event) = frames.task().await;
    assert_eq!(event["task_id"], "d");
}

#[actix_rt::test]
async fn a_lost_pubsub_link_is_reported_as_a_gap_when_it_is_back() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let app = app(&redis.backend, WebOptions::default()).await;
    let mut frames = Frames::open(&app, get("/hub/events")).await;
    // Keep the feed's reader busy reading completions back while the link goes: it must not
    // need to see the link down to report the gap (the link may be back before it looks).
    let busy = Redis::connect(&redis.server).await;
    for n in 0..200 {
        let id = format!("busy{n}");
        busy.store(&id, rec(&id, TaskStatus::Success))
            .await
            .unwrap();
    }
    // Cut the pub/sub connection only (the pool's stay): the link is lost and made again.
    redis
        .server
        .command_text(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    loop {
        let (_, name, data) = frames.next().await.expect("a frame");
        if name == "task" {
            continue;
        }
        assert_eq!(
            (name.as_str(), data.as_str()),
            ("lagged", r#"{"missed":0}"#)
        );
        break;
    }
    // And completions reach the client again.
    let other = Redis::connect(&redis.server).await;
    other
        .store("after", rec("after", TaskStatus::Success))
        .await
        .unwrap();
    let (_, event) = frames.task().await;
    assert_eq!(event["task_id"], "after");
}

#[actix_rt::test]
async fn listings_page_by_offset_behind_the_cursor() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    for n in 0..7 {
        let id = format!("s{n}");
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, n).unwrap();
        redis
            .backend
            .store(&id, rec(&id, TaskStatus::Success).with_submitted_at(at))
            .await
            .unwrap();
    }
    let app = app(&redis.backend, WebOptions::default()).await;
    let mut seen = Vec::new();
    let mut uri = "/hub/tasks?status=success&limit=3".to_owned();
    let mut cursors = Vec::new();
    for round in 0.. {
        assert!(round < 10, "the cursor never ran out");
        let (status, body) = send(&app, get(&uri)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 7);
        for item in body["items"].as_array().unwrap() {
            seen.push(item["task_id"].as_str().unwrap().to_owned());
        }
        match body["next"].as_str() {
            Some(next) => {
                cursors.push(next.to_owned());
                uri = format!("/hub/tasks?status=success&limit=3&cursor={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]);
    assert_eq!(cursors, ["o3", "o6"]);
    // A cursor of the hub's is refused, as one this backend did not make.
    let (status, body) = send(&app, get("/hub/tasks?status=success&limit=3&cursor=k1.2.3")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[actix_rt::test]
async fn readiness_follows_the_server() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let app = app(&redis.backend, WebOptions::default()).await;
    let (status, body) = send(&app, get("/hub/readyz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    redis.server.kill();
    let response = within(
        "/readyz",
        test::call_service(&app, get("/hub/readyz").to_request()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers().get(header::RETRY_AFTER).unwrap(),
        "1",
        "a 503 says when to retry"
    );
    let (status, _) = send(&app, get("/hub/healthz")).await;
    assert_eq!(status, StatusCode::OK, "the process is alive all the same");
}

#[actix_rt::test]
async fn metrics_count_the_prefix_records_and_the_events_clients() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let other = Redis::connect(&redis.server).await;
    for (id, status) in [
        ("a", TaskStatus::Success),
        ("b", TaskStatus::Success),
        ("c", TaskStatus::Failed),
        ("d", TaskStatus::Running),
    ] {
        other.store(id, rec(id, status)).await.unwrap();
    }
    let app = app(&redis.backend, WebOptions::default()).await;
    let _frames = Frames::open(&app, get("/hub/events")).await;
    for path in ["/hub/tasks/a", "/hub/tasks/b", "/hub/tasks/missing"] {
        test::call_service(&app, get(path).to_request()).await;
    }
    let response = within(
        "/metrics",
        test::call_service(&app, get("/hub/metrics").to_request()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    let sample = |series: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse::<f64>().ok())
    };
    assert_eq!(sample(r#"resulthub_records{status="success"}"#), Some(2.0));
    assert_eq!(sample(r#"resulthub_records{status="failed"}"#), Some(1.0));
    assert_eq!(sample(r#"resulthub_records{status="running"}"#), Some(1.0));
    assert_eq!(sample(r#"resulthub_records{status="pending"}"#), Some(0.0));
    assert_eq!(sample("resulthub_event_subscribers"), Some(1.0));
    assert_eq!(sample("resulthub_sse_clients"), Some(1.0));
    // This backend's operations: the three reads, not the other process's stores.
    assert_eq!(
        sample(r#"resulthub_operations_total{op="get",outcome="ok"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(r#"resulthub_operations_total{op="store",outcome="ok"}"#),
        None,
        "{text}"
    );
    assert_eq!(
        sample(r#"resulthub_operation_duration_seconds_count{op="get"}"#),
        Some(3.0),
        "{text}"
    );
}

#[actix_rt::test]
async fn a_resume_past_the_buffer_starts_with_the_count_it_lost() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let app = app(&redis.backend, WebOptions::default()).await;
    // Keeps the feed running throughout: no gap, only what the buffer cannot hold.
    let _keeper = Frames::open(&app, get("/hub/events")).await;
    let mut frames = Frames::open(&app, get("/hub/events")).await;
    redis
        .backend
        .store("first", rec("first", TaskStatus::Running))
        .await
        .unwrap();
    let (last, _) = frames.task().await;
    drop(frames);
    // The buffer holds the latest 1,024 events (the hub's default `event_buffer`).
    let records: Vec<_> = (0..1100)
        .map(|n| rec(&format!("many-{n}"), TaskStatus::Running))
        .collect();
    for outcome in redis.backend.store_many(records).await {
        outcome.unwrap();
    }
    let mut frames = Frames::open(&app, events_after(&last)).await;
    assert_eq!(
        frames.next().await.map(|(_, name, data)| (name, data)),
        Some(("lagged".to_owned(), r#"{"missed":76}"#.to_owned()))
    );
    for _ in 0..1024 {
        let (_, event) = frames.task().await;
        assert!(event["task_id"].as_str().unwrap().starts_with("many-"));
    }
}

#[actix_rt::test]
async fn a_client_back_with_another_replicas_event_id_is_told_of_a_gap() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    // The replica the client was on: it saw an event there.
    let before = app(&redis.backend, WebOptions::default()).await;
    let mut frames = Frames::open(&before, get("/hub/events")).await;
    redis
        .backend
        .store("seen", rec("seen", TaskStatus::Success))
        .await
        .unwrap();
    let (last, _) = frames.task().await;
    drop(frames);

    // A fresh replica (a rolling deploy) that holds no event yet: the client cannot know what
    // it missed in between, and is told so before anything else.
    let replica = Redis::connect(&redis.server).await;
    let after = app(&replica, WebOptions::default()).await;
    let mut frames = Frames::open(&after, events_after(&last)).await;
    replica
        .store("next", rec("next", TaskStatus::Success))
        .await
        .unwrap();
    assert_eq!(
        frames.next().await.map(|(_, name, data)| (name, data)),
        Some(("lagged".to_owned(), r#"{"missed":0}"#.to_owned()))
    );
    assert_eq!(frames.task().await.1["task_id"], "next");
}

#[actix_rt::test]
async fn a_listing_starts_at_most_at_max_offset() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    for n in 0..3 {
        let id = format!("m{n}");
        redis
            .backend
            .store(&id, rec(&id, TaskStatus::Success))
            .await
            .unwrap();
    }
    let wide = app(&redis.backend, WebOptions::default()).await;
    for uri in [
        "/hub/tasks?status=success&cursor=o18446744073709551615",
        "/hub/tasks?status=success&offset=18446744073709551615",
        "/hub/tasks?status=success&offset=10001",
    ] {
        let (status, body) = send(&wide, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.to_string().contains("max_offset"), "{uri}: {body}");
    }
    let (status, body) = send(&wide, get("/hub/tasks?status=success&offset=10000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"], json!([]));

    // A lower bound applies to the cursor a page gave as well.
    let narrow = app(&redis.backend, WebOptions::default().with_max_offset(1)).await;
    let (status, body) = send(&narrow, get("/hub/tasks?status=success&limit=1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let next = body["next"].as_str().expect("a next page").to_owned();
    let (status, body) = send(
        &narrow,
        get(&format!("/hub/tasks?status=success&limit=1&cursor={next}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let next = body["next"].as_str().expect("a next page").to_owned();
    let (status, body) = send(
        &narrow,
        get(&format!("/hub/tasks?status=success&limit=1&cursor={next}")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[actix_rt::test]
async fn a_clear_is_reported_as_a_gap() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    redis
        .backend
        .store("gone", rec("gone", TaskStatus::Success))
        .await
        .unwrap();
    let app = app(&redis.backend, WebOptions::default()).await;
    let mut frames = Frames::open(&app, get("/hub/events")).await;
    assert_eq!(redis.backend.clear().await.unwrap(), 1);
    assert_eq!(
        frames.next().await.map(|(_, name, data)| (name, data)),
        Some(("lagged".to_owned(), r#"{"missed":0}"#.to_owned()))
    );
}

#[actix_rt::test]
async fn a_waiter_and_an_events_client_share_one_subscription() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = short_lingering(&server).await;
    let app = app(&backend, WebOptions::default()).await;
    let frames = Frames::open(&app, get("/hub/events")).await;
    let waiter = {
        let backend = backend.clone();
        actix_rt::spawn(async move { backend.wait_for("w", Some(Duration::from_secs(30))).await })
    };
    within("the waiter registered", async {
        while backend.stats().await.unwrap().waiters == 0 {
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(backend.stats().await.unwrap().subscribers, 1);
    // An events client held well past twice the linger keeps the one subscription.
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(patterns(&server), "1", "one subscription for both");

    // The events client leaves: the waiter still holds it, past the linger.
    drop(frames);
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(patterns(&server), "1", "kept for the waiter");

    // The waiter leaves too: then it goes.
    let other = Redis::connect(&server).await;
    other
        .store("w", rec("w", TaskStatus::Success))
        .await
        .unwrap();
    let record = within("the waiter", waiter).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Success);
    eventually("the subscription gone", || patterns(&server) == "0").await;
}
