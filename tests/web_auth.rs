//! Who may call what on the actix-web scope, through actix-web's `test` utilities: the bearer
//! token (in a header, or in the query for the page and `/events`), 401 before 403, 405 and 404
//! as JSON errors, and the page with and without its trailing slash.
#![cfg(feature = "web")]

mod support;
#[macro_use]
mod web_support;

use actix_web::http::{Method, StatusCode, header};
use actix_web::test;
use resulthub::web::{WebBackend, WebOptions};
use resulthub::{HubConfig, HubHandle, TaskStatus};
use serde_json::json;
use support::rec;
use web_support::{TOKEN, app, bearer, delete, get, post, send, with_token, writable};

use TaskStatus::Success;

// ---------------------------------------------------------------------------------------------
// The token
// ---------------------------------------------------------------------------------------------

// The token

over_both!(with_a_token_every_route_is_401_without_it);
async fn with_a_token_every_route_is_401_without_it<B: WebBackend + Clone>(hub: B) {
    hub.store("t", rec("t", Success)).await.unwrap();
    let app = app(&hub, with_token(true)).await;
    let routes = || {
        vec![
            get("/hub/"),
            get("/hub/tasks/t"),
            get("/hub/tasks/t/wait?timeout=0"),
            get("/hub/tasks?status=success"),
            get("/hub/stats"),
            get("/hub/events"),
            post("/hub/tasks/t", json!({"status": "success"})),
            delete("/hub/tasks/t"),
        ]
    };
    for request in routes() {
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
    for request in routes() {
        let (status, body) = send(&app, bearer(request, "wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body["error"].as_str().unwrap().contains("wrong token"));
    }
    // The right token opens every route; the writes come last so the reads find the record.
    let mut statuses = Vec::new();
    for request in routes() {
        let response = test::call_service(&app, bearer(request, TOKEN).to_request()).await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 201, 204]);
    // "bearer" in any case.
    let request =
        get("/hub/stats").insert_header((header::AUTHORIZATION, format!("bearer {TOKEN}")));
    assert_eq!(send(&app, request).await.0, StatusCode::OK);
}

#[actix_rt::test]
async fn the_page_and_events_also_take_the_token_in_the_query() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, with_token(false)).await;
    for uri in [
        format!("/hub/?token={TOKEN}"),
        format!("/hub/events?token={TOKEN}"),
    ] {
        let response = test::call_service(&app, get(&uri).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
    }
    // Not the other routes: a token in a URL ends up in logs.
    let (status, _) = send(&app, get(&format!("/hub/stats?token={TOKEN}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, get("/hub/?token=wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[actix_rt::test]
async fn unauthorized_comes_before_forbidden_and_bad_input() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, with_token(false)).await;
    let (status, _) = send(&app, delete("/hub/tasks/t")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, post("/hub/tasks/t", json!({"status": "nope"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, get("/hub/tasks?status=nope&limit=-1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, get("/hub/events?status=nope")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // With the token, the next check speaks.
    let (status, _) = send(&app, bearer(delete("/hub/tasks/t"), TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(&app, bearer(get("/hub/events?status=nope"), TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// The page, methods and unknown paths
// ---------------------------------------------------------------------------------------------

// The page, methods

#[actix_rt::test]
async fn the_page_is_served_with_and_without_the_trailing_slash() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, WebOptions::default()).await;
    for uri in ["/hub/", "/hub"] {
        let response = test::call_service(&app, get(uri).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap();
        assert!(csp.to_str().unwrap().contains("default-src 'none'"));
        assert!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let body = test::read_body(response).await;
        let page = String::from_utf8(body.to_vec()).unwrap();
        assert!(page.contains("<title>"));
        // Nothing from another origin.
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}

#[actix_rt::test]
async fn other_methods_are_405_with_a_json_error() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, writable()).await;
    for (method, uri) in [
        (Method::PUT, "/hub/tasks/t"),
        (Method::POST, "/hub/tasks"),
        (Method::DELETE, "/hub/stats"),
        (Method::POST, "/hub/events"),
        (Method::POST, "/hub/tasks/t/wait"),
        (Method::POST, "/hub/"),
    ] {
        let (status, body) = send(
            &app,
            test::TestRequest::default().method(method.clone()).uri(uri),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(body["error"].as_str().unwrap().contains(method.as_str()));
    }
}

#[actix_rt::test]
async fn unmatched_paths_are_a_json_404_after_the_token() {
    let hub = HubHandle::start(HubConfig::default());
    let paths = ["/hub/nope", "/hub/tasks/", "/hub/tasks/a/b", "/hub/stats/x"];
    let open = app(&hub, WebOptions::default()).await;
    for path in paths {
        // `send` checks the JSON `{"error": ...}` body.
        let (status, body) = send(&open, get(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(path), "{body}");
    }
    let locked = app(&hub, with_token(true)).await;
    for path in paths {
        let (status, _) = send(&locked, get(path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = send(&locked, bearer(get(path), TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[actix_rt::test]
async fn with_a_token_a_wrong_method_is_401_before_405() {
    let hub = HubHandle::start(HubConfig::default());
    let locked = app(&hub, with_token(true)).await;
    for (method, uri) in [
        (Method::PUT, "/hub/tasks/x"),
        (Method::POST, "/hub/stats"),
        (Method::DELETE, "/hub/"),
        (Method::POST, "/hub/events"),
    ] {
        let request = || test::TestRequest::default().method(method.clone()).uri(uri);
        let (status, _) = send(&locked, request()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        let (status, _) = send(&locked, bearer(request(), "wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        let (status, _) = send(&locked, bearer(request(), TOKEN)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
    }
}
