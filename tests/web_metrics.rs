//! `GET /metrics`: what the hub holds, the scope's HTTP requests and `/events` clients, in
//! Prometheus' text format.
#![cfg(feature = "web")]

mod support;
mod web_support;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::test;
use resulthub::web::WebOptions;
use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use support::within;
use web_support::app;

async fn scrape<S>(app: &S, token: Option<&str>) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut request = test::TestRequest::get().uri("/hub/metrics");
    if let Some(token) = token {
        request = request.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    }
    let response = within("/metrics", test::call_service(app, request.to_request())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .starts_with("application/openmetrics-text"),
    );
    String::from_utf8(test::read_body(response).await.to_vec()).unwrap()
}

/// The value of the sample whose name and labels are `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

#[actix_rt::test]
async fn metrics_count_records_waiters_evictions_and_requests() {
    let hub = HubHandle::start(HubConfig::default().with_max_results(Some(3)));
    let app = app(&hub, WebOptions::default()).await;
    for (id, status) in [
        ("a", TaskStatus::Success),
        ("b", TaskStatus::Success),
        ("c", TaskStatus::Failed),
        ("d", TaskStatus::Running),
        ("e", TaskStatus::Pending),
    ] {
        hub.store(id, TaskResult::new(id, status))
            .await
            .expect("store");
    }
    let waiter = {
        let hub = hub.clone();
        actix_rt::spawn(async move { hub.wait_for("w", None).await })
    };
    while hub.stats().await.expect("stats").waiters == 0 {
        actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for path in ["/hub/tasks/d", "/hub/tasks/missing", "/hub/tasks/missing"] {
        test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
    }
    test::call_service(
        &app,
        test::TestRequest::put().uri("/hub/stats").to_request(),
    )
    .await;

    let text = scrape(&app, None).await;
    // Five stored under max_results 3: the two oldest finished ones were evicted.
    let held: f64 = ["pending", "running", "success", "failed", "retrying"]
        .iter()
        .map(|status| sample(&text, &format!("resulthub_records{{status=\"{status}\"}}")).unwrap())
        .sum();
    assert_eq!(held, 3.0, "{text}");
    assert_eq!(
        sample(&text, "resulthub_evictions_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(sample(&text, "resulthub_waiters"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "resulthub_sse_clients"), Some(0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "resulthub_http_requests_total{route=\"/hub/tasks/{id}\",method=\"GET\",status=\"404\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "resulthub_http_requests_total{route=\"/hub/tasks/{id}\",method=\"GET\",status=\"200\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "resulthub_http_requests_total{route=\"/hub/stats\",method=\"PUT\",status=\"405\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "resulthub_http_request_duration_seconds_count{route=\"/hub/tasks/{id}\"}"
        ) == Some(3.0),
        "{text}"
    );
    // The hub's own operations, whoever called them: the five stores above and the three
    // reads of the routes (a missing record is an answer, not an error).
    assert_eq!(
        sample(
            &text,
            "resulthub_operations_total{op=\"store\",outcome=\"ok\"}"
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "resulthub_operations_total{op=\"get\",outcome=\"ok\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "resulthub_operation_duration_seconds_count{op=\"store\"}"
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "resulthub_operation_duration_seconds_bucket{le=\"+Inf\",op=\"get\"}"
        )
        .or_else(|| sample(
            &text,
            "resulthub_operation_duration_seconds_bucket{op=\"get\",le=\"+Inf\"}"
        )),
        Some(3.0),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("# EOF"),
        "one OpenMetrics document"
    );

    // Counters move by what happened since, not by the stats' totals again.
    let again = scrape(&app, None).await;
    assert_eq!(
        sample(&again, "resulthub_evictions_total"),
        Some(2.0),
        "{again}"
    );
    assert_eq!(
        sample(
            &again,
            "resulthub_http_requests_total{route=\"/hub/metrics\",method=\"GET\",status=\"200\"}"
        ),
        Some(1.0),
        "the first scrape is counted once it is answered: {again}"
    );
    waiter.abort();
    hub.shutdown().await;
}

#[actix_rt::test]
async fn metrics_need_the_token_but_not_a_listed_host() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(
        &hub,
        WebOptions::default().with_token(Some("t0ken".to_owned())),
    )
    .await;
    let refused = test::call_service(
        &app,
        test::TestRequest::get().uri("/hub/metrics").to_request(),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // A scraper reaches the server by its address.
    let response = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/hub/metrics")
            .insert_header((header::HOST, "10.0.0.9:8080"))
            .insert_header((header::AUTHORIZATION, "Bearer t0ken"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = scrape(&app, Some("t0ken")).await;
    assert!(
        sample(
            &text,
            "resulthub_http_requests_total{route=\"/hub/metrics\",method=\"GET\",status=\"401\"}"
        ) == Some(1.0),
        "{text}"
    );
    hub.shutdown().await;
}
