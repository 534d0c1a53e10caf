//! The read routes of the actix-web scope through actix-web's `test` utilities: a record, a
//! wait, a listing, the stats, and `/events` read frame by frame. Every 4xx answer is checked
//! for its JSON `{"error": "..."}` body, and bad input for never reaching the hub.
#![cfg(feature = "web")]

mod support;
#[macro_use]
mod web_support;

use std::pin::Pin;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::test;
use actix_web::web::Bytes;
use chrono::{TimeZone, Utc};
use resulthub::web::{WebBackend, WebOptions};
use resulthub::{HubConfig, HubHandle, ResultBackend, TaskStatus};
use serde_json::{Value, json};
use support::{rec, within};
use web_support::{app, assert_bad, delete, get, post, send, writable};

use TaskStatus::{Failed, Pending, Running, Success};

// ---------------------------------------------------------------------------------------------
// GET /tasks/{id}
// ---------------------------------------------------------------------------------------------

// GET /tasks/{id}

over_both!(get_answers_the_record_in_flowrras_layout_or_404);
async fn get_answers_the_record_in_flowrras_layout_or_404<B: WebBackend + Clone>(hub: B) {
    let stored = rec("t1", Success)
        .with_task_name("add")
        .with_result(json!(5))
        .with_submitted_at(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap());
    hub.store("t1", stored.clone()).await.unwrap();
    let app = app(&hub, WebOptions::default()).await;

    let (status, body) = send(&app, get("/hub/tasks/t1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::to_value(&stored).unwrap());
    assert_eq!(body["submitted_at"], "2024-01-02T03:04:05");
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "task_id",
            "status",
            "task_name",
            "result",
            "error",
            "submitted_at",
            "started_at",
            "finished_at",
            "retries",
            "args",
            "kwargs"
        ]
    );

    let (status, body) = send(&app, get("/hub/tasks/missing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("missing"));
}

over_both!(ids_are_percent_decoded);
async fn ids_are_percent_decoded<B: WebBackend + Clone>(hub: B) {
    hub.store("a b/c", rec("a b/c", Running)).await.unwrap();
    let app = app(&hub, WebOptions::default()).await;
    let (status, body) = send(&app, get("/hub/tasks/a%20b%2Fc")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["task_id"], "a b/c");
}

#[actix_rt::test]
async fn ids_that_are_not_utf8_once_decoded_are_400() {
    let hub = HubHandle::start(HubConfig::default());
    // Lossy decoding would make `%FF` this task's id.
    hub.store("\u{FFFD}", rec("\u{FFFD}", Success))
        .await
        .unwrap();
    let app = app(&hub, writable()).await;
    for uri in [
        "/hub/tasks/%FF",
        "/hub/tasks/a%C3",
        "/hub/tasks/%FF/wait?timeout=0",
    ] {
        assert_bad(&app, get(uri), "not UTF-8").await;
    }
    assert_bad(&app, delete("/hub/tasks/%FE%FF"), "not UTF-8").await;
    assert_bad(
        &app,
        post("/hub/tasks/%FF", json!({"status": "pending"})),
        "not UTF-8",
    )
    .await;
    assert_eq!(hub.stats().await.unwrap().results, 1);
    // U+FFFD sent as UTF-8 is an ordinary id.
    let (status, body) = send(&app, get("/hub/tasks/%EF%BF%BD")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["task_id"], "\u{FFFD}");
}

#[actix_rt::test]
async fn ids_over_512_bytes_are_refused_on_every_route() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, writable()).await;
    let long = "x".repeat(513);
    let exact = "y".repeat(512);
    assert_bad(&app, get(&format!("/hub/tasks/{long}")), "513 bytes").await;
    assert_bad(
        &app,
        get(&format!("/hub/tasks/{long}/wait?timeout=0")),
        "513",
    )
    .await;
    assert_bad(&app, delete(&format!("/hub/tasks/{long}")), "513").await;
    assert_bad(
        &app,
        post(&format!("/hub/tasks/{long}"), json!({"status": "pending"})),
        "513",
    )
    .await;
    assert_bad(&app, get(&format!("/hub/events?task_id={long}")), "513").await;
    // At the limit it is an ordinary id.
    let (status, _) = send(&app, get(&format!("/hub/tasks/{exact}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let stats = hub.stats().await.unwrap();
    assert_eq!((stats.results, stats.waiters, stats.subscribers), (0, 0, 0));
}

#[actix_rt::test]
async fn the_hubs_lower_id_limit_wins() {
    let hub = HubHandle::start(HubConfig::default().with_max_task_id_len(8));
    let app = app(&hub, WebOptions::default()).await;
    assert_bad(&app, get("/hub/tasks/123456789"), "limit of 8").await;
    let (status, _) = send(&app, get("/hub/tasks/12345678")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------
// GET /tasks/{id}/wait
// ---------------------------------------------------------------------------------------------

// GET /tasks/{id}/wait

over_both!(wait_answers_a_terminal_record_at_once_and_a_later_one_when_stored);
async fn wait_answers_a_terminal_record_at_once_and_a_later_one_when_stored<
    B: WebBackend + Clone,
>(
    hub: B,
) {
    hub.store("done", rec("done", Success)).await.unwrap();
    let app = app(&hub, WebOptions::default()).await;
    let (status, body) = send(&app, get("/hub/tasks/done/wait?timeout=0")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("success"))
    );

    // The store comes after the request, whichever runs first: either it wakes the waiter
    // or the waiter finds it terminal.
    let worker = async {
        hub.store("later", rec("later", Running)).await.unwrap();
        hub.store("later", rec("later", Failed).with_error("boom"))
            .await
            .unwrap();
    };
    let ((status, body), ()) =
        futures::join!(send(&app, get("/hub/tasks/later/wait?timeout=30")), worker);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["status"].as_str(), body["error"].as_str()),
        (Some("failed"), Some("boom"))
    );
    assert_eq!(hub.stats().await.unwrap().waiters, 0);
}

over_both!(wait_times_out_with_408_and_leaves_no_waiter);
async fn wait_times_out_with_408_and_leaves_no_waiter<B: WebBackend + Clone>(hub: B) {
    hub.store("slow", rec("slow", Running)).await.unwrap();
    let app = app(&hub, WebOptions::default()).await;
    for timeout in ["0", "0.05"] {
        let (status, body) = send(
            &app,
            get(&format!("/hub/tasks/slow/wait?timeout={timeout}")),
        )
        .await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert!(
            body["error"].as_str().unwrap().contains("timed out"),
            "{body}"
        );
    }
    assert_eq!(hub.stats().await.unwrap().waiters, 0);
}

#[actix_rt::test]
async fn a_larger_or_missing_timeout_waits_max_wait() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(
        &hub,
        WebOptions::default().with_max_wait(Duration::from_millis(50)),
    )
    .await;
    // Without the cap these would wait a day, or 60 s, and `send`'s bound would fail them.
    for uri in [
        "/hub/tasks/t/wait?timeout=86400",
        "/hub/tasks/t/wait",
        "/hub/tasks/t/wait?timeout=1e300",
    ] {
        let (status, _) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{uri}");
    }
}

#[actix_rt::test]
async fn bad_timeouts_are_400_and_never_wait() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, WebOptions::default()).await;
    for (timeout, needle) in [
        ("-1", "negative"),
        ("-0.5", "negative"),
        ("abc", "number of seconds"),
        ("", "number of seconds"),
        ("inf", "number of seconds"),
        ("NaN", "number of seconds"),
        ("1s", "number of seconds"),
    ] {
        assert_bad(
            &app,
            get(&format!("/hub/tasks/t/wait?timeout={timeout}")),
            needle,
        )
        .await;
    }
    assert_eq!(hub.stats().await.unwrap().waiters, 0);
}

// ---------------------------------------------------------------------------------------------
// GET /tasks
// ---------------------------------------------------------------------------------------------

// GET /tasks

async fn seeded() -> HubHandle {
    seed(HubHandle::start(HubConfig::default())).await
}

/// Seven successes a second apart and a failure, stored in `hub`.
async fn seed<B: WebBackend>(hub: B) -> B {
    for n in 0..7 {
        let id = format!("s{n}");
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, n).unwrap();
        hub.store(&id, rec(&id, Success).with_submitted_at(at))
            .await
            .unwrap();
    }
    hub.store("f", rec("f", Failed)).await.unwrap();
    hub
}

over_both!(list_answers_a_page_newest_first_with_the_total);
async fn list_answers_a_page_newest_first_with_the_total<B: WebBackend + Clone>(hub: B) {
    let hub = seed(hub).await;
    let app = app(&hub, WebOptions::default()).await;
    let (status, body) = send(&app, get("/hub/tasks?status=success&limit=3&offset=1")).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s5", "s4", "s3"]);
    assert_eq!(
        (
            &body["status"],
            &body["limit"],
            &body["offset"],
            &body["total"]
        ),
        (&json!("success"), &json!(3), &json!(1), &json!(7))
    );
    assert_eq!(body["items"][0]["status"], "success");
}

/// `next` leads through every record once, in order, and a page after a cursor starts after
/// the last record of the page before, whatever was stored or deleted meanwhile.
#[actix_rt::test]
async fn list_pages_by_cursor() {
    let hub = seeded().await;
    let app = app(&hub, WebOptions::default()).await;
    let mut seen = Vec::new();
    let mut uri = "/hub/tasks?status=success&limit=3".to_owned();
    for round in 0.. {
        assert!(round < 10, "the cursor never ran out");
        let (status, body) = send(&app, get(&uri)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["total"], 7);
        for item in body["items"].as_array().unwrap() {
            seen.push(item["task_id"].as_str().unwrap().to_owned());
        }
        if round == 0 {
            // Newer than every record, and a record of the page already read gone.
            let newest = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
            hub.store("new", rec("new", Success).with_submitted_at(newest))
                .await
                .unwrap();
            assert!(hub.delete("s6").await.unwrap());
        }
        match body["next"].as_str() {
            Some(next) => {
                uri = format!("/hub/tasks?status=success&limit=3&cursor={next}");
            }
            None => break,
        }
    }
    assert_eq!(seen, ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]);
    // No `next` on an offset page or an empty one.
    let (_, body) = send(&app, get("/hub/tasks?status=success&limit=2&offset=1")).await;
    assert_eq!(body["next"], Value::Null);
    let (_, body) = send(&app, get("/hub/tasks?status=success&limit=0")).await;
    assert_eq!(body["next"], Value::Null);
}

over_both!(list_defaults_and_an_empty_page);
async fn list_defaults_and_an_empty_page<B: WebBackend + Clone>(hub: B) {
    let hub = seed(hub).await;
    let options = WebOptions::default().with_default_limit(2);
    let app = app(&hub, options).await;
    let (_, body) = send(&app, get("/hub/tasks?status=success")).await;
    assert_eq!(
        (body["limit"].as_u64(), body["offset"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(body["items"].as_array().unwrap().len(), 2);

    let (status, body) = send(&app, get("/hub/tasks?status=success&limit=0")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"], json!([]));
    assert_eq!(body["total"], 7);

    let (_, body) = send(&app, get("/hub/tasks?status=success&offset=100")).await;
    assert_eq!(
        (body["items"].clone(), body["total"].clone()),
        (json!([]), json!(7))
    );

    let (_, body) = send(&app, get("/hub/tasks?status=retrying")).await;
    assert_eq!(
        (body["items"].clone(), body["total"].clone()),
        (json!([]), json!(0))
    );

    // Unknown parameters are ignored, like a cache-buster's.
    let (status, _) = send(&app, get("/hub/tasks?status=failed&_=12345")).await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn every_bad_listing_is_400() {
    let hub = seeded().await;
    let app = app(&hub, WebOptions::default()).await;
    let cases = [
        ("/hub/tasks", "`status` is required"),
        ("/hub/tasks?limit=5", "`status` is required"),
        ("/hub/tasks?status=", "unknown status"),
        ("/hub/tasks?status=done", "unknown status \"done\""),
        ("/hub/tasks?status=SUCCESS", "unknown status"),
        ("/hub/tasks?status=success&limit=-1", "must not be negative"),
        ("/hub/tasks?status=success&limit=abc", "whole number"),
        ("/hub/tasks?status=success&limit=1.5", "whole number"),
        ("/hub/tasks?status=success&limit=", "whole number"),
        (
            "/hub/tasks?status=success&limit=501",
            "above the largest page of 500",
        ),
        (
            "/hub/tasks?status=success&limit=99999999999999999999999999",
            "above",
        ),
        (
            "/hub/tasks?status=success&offset=-1",
            "must not be negative",
        ),
        ("/hub/tasks?status=success&offset=abc", "whole number"),
        ("/hub/tasks?status=success&offset=2.5", "whole number"),
        (
            "/hub/tasks?status=success&offset=99999999999999999999999999",
            "too large",
        ),
        ("/hub/tasks?status=success&status=failed", "more than once"),
        ("/hub/tasks?status=success&cursor=", "`cursor` is empty"),
        (
            "/hub/tasks?status=success&cursor=o5",
            "not made by this backend",
        ),
        (
            "/hub/tasks?status=success&cursor=k-.1&offset=2",
            "`cursor` or `offset`, not both",
        ),
    ];
    for (uri, needle) in cases {
        assert_bad(&app, get(uri), needle).await;
    }
    // At the limit it is fine.
    let (status, _) = send(&app, get("/hub/tasks?status=success&limit=500")).await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// GET /stats
// ---------------------------------------------------------------------------------------------

// GET /stats

over_both!(stats_counts_per_status);
async fn stats_counts_per_status<B: WebBackend + Clone>(hub: B) {
    let hub = seed(hub).await;
    hub.store("p", rec("p", Pending)).await.unwrap();
    let app = app(&hub, WebOptions::default()).await;
    let (status, body) = send(&app, get("/hub/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"], 9);
    assert_eq!(body["waiters"], 0);
    assert_eq!(
        body["by_status"],
        json!({"pending": 1, "running": 0, "success": 7, "failed": 1, "retrying": 0})
    );
    // The paging bounds, for the page.
    assert_eq!(
        (&body["max_limit"], &body["default_limit"]),
        (&json!(500), &json!(50))
    );
    assert_eq!(body["allow_writes"], false);
    let app = self::app(&hub, WebOptions::default().with_max_limit(30)).await;
    let (_, body) = send(&app, get("/hub/stats")).await;
    assert_eq!(
        (&body["max_limit"], &body["default_limit"]),
        (&json!(30), &json!(30))
    );
    // Whether the page may offer deletes: writes on, and not open to any host without a token.
    for (options, allowed) in [
        (WebOptions::default().with_allow_writes(true), true),
        (
            WebOptions::default()
                .with_allow_writes(true)
                .with_allowed_hosts(["*"]),
            false,
        ),
    ] {
        let app = self::app(&hub, options).await;
        let (_, body) = send(&app, get("/hub/stats")).await;
        assert_eq!(body["allow_writes"], allowed);
    }
}

// ---------------------------------------------------------------------------------------------
// GET /events
// ---------------------------------------------------------------------------------------------

// GET /events

/// Reads SSE frames from a streaming body: (event name, data) pairs; comments are skipped.
struct Frames {
    body: BoxBody,
    buffer: String,
}

impl Frames {
    fn new(response: ServiceResponse) -> Frames {
        Frames {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = None;
                for line in frame.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(value.to_owned());
                    }
                }
                if let (Some(name), Some(data)) = (name, data) {
                    return Some((name, data));
                }
            }
            let body = &mut self.body;
            let chunk: Option<Bytes> = within(
                "the next chunk of /events",
                futures::future::poll_fn(|cx| Pin::new(&mut *body).poll_next(cx)),
            )
            .await
            .map(|chunk| chunk.expect("a readable body"));
            self.buffer.push_str(std::str::from_utf8(&chunk?).unwrap());
        }
    }
}

async fn open_events<S>(app: &S, uri: &str) -> Frames
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let response = test::call_service(app, get(uri).to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/event-stream"
    );
    // So that an app's Compress middleware does not buffer the stream.
    assert_eq!(
        response.headers().get(header::CONTENT_ENCODING).unwrap(),
        "identity"
    );
    Frames::new(response)
}

over_both!(events_stream_every_change_after_the_response_head);
async fn events_stream_every_change_after_the_response_head<B: WebBackend + Clone>(hub: B) {
    let app = app(&hub, WebOptions::default()).await;
    let mut frames = open_events(&app, "/hub/events").await;
    // Subscribed before the head came back: these are all seen.
    hub.store("e1", rec("e1", Running)).await.unwrap();
    hub.store("e1", rec("e1", Success).with_result("ok"))
        .await
        .unwrap();
    hub.delete("e1").await.unwrap();

    let (name, data) = frames.next().await.unwrap();
    assert_eq!(name, "task");
    let event: Value = serde_json::from_str(&data).unwrap();
    let keys: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["kind", "task_id", "status", "record", "at"]);
    assert_eq!(
        (&event["kind"], &event["task_id"], &event["status"]),
        (&json!("stored"), &json!("e1"), &json!("running"))
    );
    assert_eq!(event["record"]["task_id"], "e1");

    let (_, data) = frames.next().await.unwrap();
    let event: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (&event["status"], &event["record"]["result"]),
        (&json!("success"), &json!("ok"))
    );
    let (_, data) = frames.next().await.unwrap();
    let event: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (&event["kind"], &event["record"]),
        (&json!("deleted"), &Value::Null)
    );
    // Nothing more: a terminal store's own announcement is not sent again.
    hub.store("e2", rec("e2", Pending)).await.unwrap();
    let (_, data) = frames.next().await.unwrap();
    let event: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(
        (&event["task_id"], &event["status"]),
        (&json!("e2"), &json!("pending"))
    );
}

#[actix_rt::test]
async fn events_end_with_the_hub() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, WebOptions::default()).await;
    let mut frames = open_events(&app, "/hub/events").await;
    hub.store("e1", rec("e1", Running)).await.unwrap();
    assert_eq!(frames.next().await.unwrap().0, "task");
    hub.shutdown().await;
    assert_eq!(frames.next().await, None);
}

over_both!(events_filter_by_status_and_task);
async fn events_filter_by_status_and_task<B: WebBackend + Clone>(hub: B) {
    let app = app(&hub, WebOptions::default()).await;
    let mut failed = open_events(&app, "/hub/events?status=failed").await;
    let mut only_b = open_events(&app, "/hub/events?task_id=b").await;
    for (id, status) in [("a", Failed), ("b", Running), ("c", Failed)] {
        hub.store(id, rec(id, status)).await.unwrap();
    }
    let ids = |data: String| serde_json::from_str::<Value>(&data).unwrap()["task_id"].clone();
    assert_eq!(ids(failed.next().await.unwrap().1), "a");
    assert_eq!(ids(failed.next().await.unwrap().1), "c");
    assert_eq!(ids(only_b.next().await.unwrap().1), "b");
    assert_bad(&app, get("/hub/events?status=finished"), "unknown status").await;
}

#[actix_rt::test]
async fn a_slow_events_client_gets_a_lagged_event() {
    let hub = HubHandle::start(HubConfig::default().with_event_buffer(4));
    let app = app(&hub, WebOptions::default()).await;
    let mut frames = open_events(&app, "/hub/events").await;
    for n in 0..20 {
        let id = format!("t{n}");
        hub.store(&id, rec(&id, Pending)).await.unwrap();
    }
    // Applied before the stats answer; the client has read nothing yet.
    assert_eq!(hub.stats().await.unwrap().results, 20);
    assert_eq!(
        frames.next().await,
        Some(("lagged".to_owned(), r#"{"missed":16}"#.to_owned()))
    );
    let (name, data) = frames.next().await.unwrap();
    assert_eq!(name, "task");
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap()["task_id"],
        "t16"
    );
}

#[actix_rt::test]
async fn a_stopped_hub_answers_503_with_a_json_error() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, WebOptions::default()).await;
    hub.shutdown().await;
    for uri in [
        "/hub/tasks/t",
        "/hub/stats",
        "/hub/events",
        "/hub/tasks?status=success",
    ] {
        let (status, body) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(body["error"].as_str().unwrap().contains("unavailable"));
    }
}

over_both!(events_clients_past_the_limit_are_503_until_one_leaves);
async fn events_clients_past_the_limit_are_503_until_one_leaves<B: WebBackend + Clone>(hub: B) {
    let options = WebOptions::default().with_max_event_clients(2);
    let app = app(&hub, options).await;
    let first = open_events(&app, "/hub/events").await;
    let second = open_events(&app, "/hub/events").await;
    let (status, body) = send(&app, get("/hub/events")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max_event_clients"),
        "{body}"
    );
    // The refused request left no subscription behind.
    assert_eq!(hub.stats().await.unwrap().subscribers, 2);
    drop(first);
    let third = open_events(&app, "/hub/events").await;
    drop((second, third));
    let again = open_events(&app, "/hub/events").await;
    drop(again);
}
