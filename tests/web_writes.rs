//! The write routes of the actix-web scope (`POST /tasks`, `DELETE /tasks/{id}`) through
//! actix-web's `test` utilities: on and off, every bad record, body limits and types. Every 4xx
//! answer is checked for its JSON `{"error": "..."}` body, and bad input for never reaching the
//! hub.
#![cfg(feature = "web")]

mod support;
#[macro_use]
mod web_support;

use actix_web::http::{StatusCode, header};
use actix_web::test;
use actix_web::web::Bytes;
use futures::StreamExt;
use resulthub::web::{MAX_BODY_BYTES, WebBackend, WebOptions};
use resulthub::{HubConfig, HubHandle, ResultBackend, TaskStatus};
use serde_json::{Value, json};
use support::{rec, within};
use web_support::{TOKEN, app, assert_bad, bearer, delete, post, send, with_token, writable};

use TaskStatus::{Running, Success};

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

// Writes

over_both!(writes_are_403_when_not_allowed_and_change_nothing);
async fn writes_are_403_when_not_allowed_and_change_nothing<B: WebBackend + Clone>(hub: B) {
    hub.store("t", rec("t", Running)).await.unwrap();
    let app = app(&hub, WebOptions::default()).await;
    let (status, body) = send(&app, post("/hub/tasks/t", json!({"status": "success"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("allow_writes"));
    let (status, _) = send(&app, delete("/hub/tasks/t")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&app, delete("/hub/tasks/missing")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(hub.get("t").await.unwrap().map(|r| r.status), Some(Running));
}

over_both!(post_stores_and_answers_201_with_the_stored_record);
async fn post_stores_and_answers_201_with_the_stored_record<B: WebBackend + Clone>(hub: B) {
    let app = app(&hub, writable()).await;
    // task_id left out: the path's is taken.
    let (status, body) = send(
        &app,
        post(
            "/hub/tasks/job-1",
            json!({"status": "pending", "task_name": "resize", "args": [1, 2]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["task_id"].as_str(), body["status"].as_str()),
        (Some("job-1"), Some("pending"))
    );

    // The same id in the body is fine; the answer shows the task fields it inherited.
    let (status, body) = send(
        &app,
        post(
            "/hub/tasks/job-1",
            json!({"task_id": "job-1", "status": "success", "result": 3}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["task_name"], "resize");
    assert_eq!(body["args"], json!([1, 2]));
    assert_eq!(body["result"], 3);
    let stored = hub.get("job-1").await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(&stored).unwrap(), body);
}

#[actix_rt::test]
async fn posts_answer_is_its_own_store_even_when_another_writer_follows_at_once() {
    // Stores wait for the hub, so the route's store and its answer are two steps apart.
    let hub = HubHandle::start(HubConfig::default().with_pipeline_stores(false));
    let app = app(&hub, writable()).await;
    let mut events = hub.subscribe().await.unwrap();
    // The other writer stores as soon as it sees the POST's store applied. It is polled
    // first (futures::join! polls in order), so its store is queued before the route's next
    // step: a `get` after the store would read the other writer's record.
    let other_writer = async {
        let event = within("the POST's store", events.next()).await;
        assert!(
            matches!(event, Some(resulthub::HubEvent::Task(_))),
            "{event:?}"
        );
        hub.store("race", rec("race", Success).with_result("other"))
            .await
            .unwrap();
    };
    let post = send(
        &app,
        post(
            "/hub/tasks/race",
            json!({"status": "running", "task_name": "mine"}),
        ),
    );
    let ((), (status, body)) = futures::join!(other_writer, post);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (&body["status"], &body["task_name"], &body["result"]),
        (&json!("running"), &json!("mine"), &Value::Null),
        "the 201 shows the POST's own store"
    );
    // The other writer's store came after, and kept the task name.
    let now = hub.get("race").await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.task_name.as_deref()),
        (Success, Some("mine"))
    );
}

over_both!(every_bad_record_is_400_and_stores_nothing);
async fn every_bad_record_is_400_and_stores_nothing<B: WebBackend + Clone>(hub: B) {
    let app = app(&hub, writable()).await;
    let raw = |body: &str| {
        test::TestRequest::post()
            .uri("/hub/tasks/t")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body.to_owned())
    };
    assert_bad(
        &app,
        post(
            "/hub/tasks/t",
            json!({"task_id": "other", "status": "success"}),
        ),
        "differs",
    )
    .await;
    assert_bad(
        &app,
        post("/hub/tasks/t", json!({"task_id": 7, "status": "success"})),
        "must be a string",
    )
    .await;
    assert_bad(
        &app,
        post("/hub/tasks/t", json!({"status": "done"})),
        "not a task record",
    )
    .await;
    assert_bad(
        &app,
        post("/hub/tasks/t", json!({"task_name": "x"})),
        "not a task record",
    )
    .await;
    assert_bad(&app, post("/hub/tasks/t", json!([1, 2])), "JSON object").await;
    assert_bad(&app, raw("{\"status\": "), "not JSON").await;
    assert_bad(&app, raw(""), "not JSON").await;
    assert_bad(
        &app,
        post(
            "/hub/tasks/t",
            json!({"status": "success", "submitted_at": "yesterday"}),
        ),
        "not a task record",
    )
    .await;
    // Nested deeper than the hub keeps: refused by the hub's own check, still a 400.
    let mut deep = json!(1);
    for _ in 0..110 {
        deep = json!([deep]);
    }
    assert_bad(
        &app,
        post("/hub/tasks/t", json!({"status": "success", "result": deep})),
        "nests",
    )
    .await;
    assert_eq!(hub.stats().await.unwrap().results, 0);
}

#[actix_rt::test]
async fn a_body_over_one_mebibyte_is_413() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, writable()).await;
    let big = "x".repeat(MAX_BODY_BYTES);
    let (status, body) = send(
        &app,
        post("/hub/tasks/t", json!({"status": "success", "result": big})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("bytes"));
    // Just under the limit is accepted.
    let fits = "x".repeat(MAX_BODY_BYTES - 100);
    let (status, _) = send(
        &app,
        post("/hub/tasks/t", json!({"status": "success", "result": fits})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[actix_rt::test]
async fn a_post_not_declared_as_json_is_415_and_stores_nothing() {
    let hub = HubHandle::start(HubConfig::default());
    let open = app(&hub, writable()).await;
    let body = r#"{"status": "success"}"#;
    let typed = |content_type: Option<&str>| {
        let request = test::TestRequest::post()
            .uri("/hub/tasks/t")
            .set_payload(body.to_owned());
        match content_type {
            Some(value) => request.insert_header((header::CONTENT_TYPE, value.to_owned())),
            None => request,
        }
    };
    // What a cross-origin page can send without a CORS preflight, and no type at all.
    for content_type in [
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let (status, body) = send(&open, typed(content_type)).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().contains("application/json"),
            "{body}"
        );
    }
    assert_eq!(hub.stats().await.unwrap().results, 0);
    // Parameters and the type's case do not matter.
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
    ] {
        let (status, body) = send(&open, typed(Some(content_type))).await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}: {body}");
    }
    // The order of checks: 401, then 403, then the id (400), then the type (415).
    let locked = app(&hub, with_token(false)).await;
    let plain = || typed(Some("text/plain"));
    assert_eq!(send(&locked, plain()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&locked, bearer(plain(), TOKEN)).await.0,
        StatusCode::FORBIDDEN
    );
    let long = format!("/hub/tasks/{}", "x".repeat(513));
    let (status, _) = send(&open, plain().uri(&long)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[actix_rt::test]
async fn a_streamed_body_without_a_length_is_413_past_one_mebibyte() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::StreamExt;

    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, writable()).await;
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 64; // 4 MiB in all
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let body = futures::stream::iter(0..CHUNKS).map(move |n| {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut chunk = vec![b' '; CHUNK];
        if n == 0 {
            chunk[..1].copy_from_slice(b"[");
        }
        Ok::<_, actix_http::error::PayloadError>(Bytes::from(chunk))
    });
    let request = test::TestRequest::post()
        .uri("/hub/tasks/t")
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .to_request();
    assert!(request.head().headers.get(header::CONTENT_LENGTH).is_none());
    let payload: actix_http::BoxedPayloadStream = Box::pin(body);
    let (request, _) = request.replace_payload(actix_http::Payload::from(payload));
    let response = within("the response", test::call_service(&app, request)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let answer: Value = test::read_body_json(response).await;
    assert!(
        answer["error"].as_str().unwrap().contains("bytes"),
        "{answer}"
    );
    // Refused once past the limit, not read to the end.
    let pulled = pulled.load(Ordering::SeqCst);
    assert!(pulled <= MAX_BODY_BYTES / CHUNK + 1, "{pulled} chunks read");
    assert_eq!(hub.stats().await.unwrap().results, 0);
}

over_both!(delete_is_204_then_404);
async fn delete_is_204_then_404<B: WebBackend + Clone>(hub: B) {
    hub.store("t", rec("t", Success)).await.unwrap();
    let app = app(&hub, writable()).await;
    let (status, body) = send(&app, delete("/hub/tasks/t")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (status, _) = send(&app, delete("/hub/tasks/t")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(hub.get("t").await.unwrap(), None);
}
