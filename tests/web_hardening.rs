//! The HTTP surface against hostile pages and for operators: the `Host` allow-list (DNS
//! rebinding), writes that need a token or a host list, `nosniff` on every answer, `Allow` on
//! 405, `HEAD` wherever `GET` is served, `Retry-After` on 503, `/healthz` and `/readyz`, and a
//! dashboard CSP that names its script and style by hash.
#![cfg(feature = "web")]

mod support;
#[macro_use]
mod web_support;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::test;
use base64::Engine as _;
use resulthub::web::{WebBackend, WebOptions};
use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use sha2::{Digest, Sha256};
use support::within;
use web_support::app;

async fn call<S>(app: &S, request: test::TestRequest) -> ServiceResponse
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    within(
        "the response",
        test::call_service(app, request.to_request()),
    )
    .await
}

fn header_of(response: &ServiceResponse, name: header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().expect("text").to_owned())
}

async fn hub_with_a_record() -> HubHandle {
    let hub = HubHandle::start(HubConfig::default());
    hub.store("t1", TaskResult::new("t1", TaskStatus::Success))
        .await
        .expect("store");
    hub
}

#[actix_rt::test]
async fn a_host_outside_the_allow_list_is_refused_before_anything_else() {
    let hub = hub_with_a_record().await;
    let app = app(&hub, WebOptions::default()).await;
    for host in [
        "localhost",
        "localhost:8080",
        "LOCALHOST.:80",
        "127.0.0.1:9",
        "[::1]:8080",
    ] {
        let response = call(
            &app,
            test::TestRequest::get()
                .uri("/hub/tasks/t1")
                .insert_header((header::HOST, host)),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "Host: {host}");
    }
    // A page whose own name was rebound to this server's address brings its own name.
    for path in [
        "/hub/tasks/t1",
        "/hub/",
        "/hub/stats",
        "/hub/events",
        "/hub/nowhere",
    ] {
        let response = call(
            &app,
            test::TestRequest::get()
                .uri(path)
                .insert_header((header::HOST, "attacker.example:8080")),
        )
        .await;
        assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST, "{path}");
        let body: serde_json::Value = test::read_body_json(response).await;
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|message| message.contains("attacker.example")),
            "{body}"
        );
    }

    let named = app_named(&hub, ["results.internal"]).await;
    let allowed = call(
        &named,
        test::TestRequest::get()
            .uri("/hub/tasks/t1")
            .insert_header((header::HOST, "Results.Internal:443")),
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    let loopback_no_longer = call(
        &named,
        test::TestRequest::get()
            .uri("/hub/tasks/t1")
            .insert_header((header::HOST, "localhost")),
    )
    .await;
    assert_eq!(loopback_no_longer.status(), StatusCode::MISDIRECTED_REQUEST);

    let any = app_named(&hub, ["*"]).await;
    let anything = call(
        &any,
        test::TestRequest::get()
            .uri("/hub/tasks/t1")
            .insert_header((header::HOST, "whatever.example")),
    )
    .await;
    assert_eq!(anything.status(), StatusCode::OK);
    hub.shutdown().await;
}

async fn app_named<const N: usize>(
    hub: &HubHandle,
    hosts: [&str; N],
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    app(hub, WebOptions::default().with_allowed_hosts(hosts)).await
}

#[actix_rt::test]
async fn writes_without_a_token_need_a_host_list() {
    let hub = HubHandle::start(HubConfig::default());
    let post = || {
        test::TestRequest::post()
            .uri("/hub/tasks/w1")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(r#"{"status": "success"}"#)
    };
    let open = app(
        &hub,
        WebOptions::default()
            .with_allow_writes(true)
            .with_allowed_hosts(["*"]),
    )
    .await;
    let refused = call(&open, post()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        hub.get("w1").await.expect("get"),
        None,
        "nothing was stored"
    );

    let tokened = app(
        &hub,
        WebOptions::default()
            .with_allow_writes(true)
            .with_allowed_hosts(["*"])
            .with_token(Some("t0ken".to_owned())),
    )
    .await;
    let stored = call(
        &tokened,
        post().insert_header((header::AUTHORIZATION, "Bearer t0ken")),
    )
    .await;
    assert_eq!(stored.status(), StatusCode::CREATED);

    let listed = app(&hub, WebOptions::default().with_allow_writes(true)).await;
    let stored = call(&listed, post()).await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    hub.shutdown().await;
}

#[actix_rt::test]
async fn every_answer_says_nosniff() {
    let hub = hub_with_a_record().await;
    let app = app(&hub, WebOptions::default().with_max_event_clients(0)).await;
    for (method, path) in [
        (Method::GET, "/hub/"),
        (Method::GET, "/hub/tasks/t1"),
        (Method::GET, "/hub/tasks?status=success"),
        (Method::GET, "/hub/stats"),
        (Method::GET, "/hub/healthz"),
        (Method::GET, "/hub/tasks/missing"),
        (Method::GET, "/hub/nowhere"),
        (Method::PUT, "/hub/stats"),
        (Method::GET, "/hub/events"),
        (Method::POST, "/hub/tasks/t1"),
    ] {
        let response = call(
            &app,
            test::TestRequest::default()
                .method(method.clone())
                .uri(path),
        )
        .await;
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS).as_deref(),
            Some("nosniff"),
            "{method} {path} answered {}",
            response.status()
        );
    }
    hub.shutdown().await;
}

#[actix_rt::test]
async fn a_method_not_served_is_405_naming_the_ones_that_are() {
    let hub = hub_with_a_record().await;
    let app = app(&hub, WebOptions::default()).await;
    for (method, path, allow) in [
        (Method::PUT, "/hub/tasks/t1", "GET, HEAD, POST, DELETE"),
        (Method::POST, "/hub/stats", "GET, HEAD"),
        (Method::DELETE, "/hub/tasks", "GET, HEAD"),
        (Method::PATCH, "/hub/tasks/t1/wait", "GET, HEAD"),
        (Method::POST, "/hub/events", "GET, HEAD"),
        (Method::POST, "/hub/", "GET, HEAD"),
        (Method::POST, "/hub/healthz", "GET, HEAD"),
    ] {
        let response = call(
            &app,
            test::TestRequest::default()
                .method(method.clone())
                .uri(path),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            header_of(&response, header::ALLOW).as_deref(),
            Some(allow),
            "{method} {path}"
        );
    }
    hub.shutdown().await;
}

over_both!(head_is_served_wherever_get_is_with_the_same_status_and_type_and_no_body);
/// `HEAD` through a real server (actix's test service keeps the body a connection would
/// drop): the status and type of a `GET`, and not one byte of body.
async fn head_is_served_wherever_get_is_with_the_same_status_and_type_and_no_body<
    B: WebBackend + Clone,
>(
    hub: B,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    hub.store("t1", TaskResult::new("t1", TaskStatus::Success))
        .await
        .expect("store");
    let server = web_support::TestServer::start(hub.clone(), WebOptions::default());
    let exchange = |method: &'static str, path: &'static str| {
        let addr = server.addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head =
                format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).await.expect("send");
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await.expect("read");
            let text = String::from_utf8_lossy(&response).into_owned();
            let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
            let status = head.lines().next().unwrap_or_default().to_owned();
            let content_type = head.lines().find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_owned)
            });
            (status, content_type, body.len())
        }
    };
    for path in [
        "/hub/",
        "/hub/tasks?status=success",
        "/hub/tasks/t1",
        "/hub/tasks/missing",
        "/hub/tasks/t1/wait?timeout=1",
        "/hub/stats",
        "/hub/healthz",
        "/hub/readyz",
    ] {
        let (head_status, head_type, head_body) = within("HEAD", exchange("HEAD", path)).await;
        let (get_status, get_type, get_body) = within("GET", exchange("GET", path)).await;
        assert_eq!(head_status, get_status, "HEAD {path}");
        assert_eq!(head_type, get_type, "HEAD {path}");
        assert_eq!(head_body, 0, "HEAD {path} sent a body");
        assert!(get_body > 0, "GET {path} sent no body");
    }
    // The stream's headers, without subscribing (a GET would stream until the client left).
    let (status, content_type, body) = within("HEAD", exchange("HEAD", "/hub/events")).await;
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    assert_eq!(body, 0);
    assert_eq!(hub.stats().await.expect("stats").subscribers, 0);
    drop(server);
}

#[actix_rt::test]
async fn health_answers_any_caller_and_readiness_follows_the_backend() {
    let hub = hub_with_a_record().await;
    let app = app(
        &hub,
        WebOptions::default().with_token(Some("t0ken".to_owned())),
    )
    .await;
    // Probes bring neither the token nor a listed host.
    for path in ["/hub/healthz", "/hub/readyz"] {
        let response = call(
            &app,
            test::TestRequest::get()
                .uri(path)
                .insert_header((header::HOST, "10.1.2.3:8080")),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let guarded = call(&app, test::TestRequest::get().uri("/hub/stats")).await;
    assert_eq!(guarded.status(), StatusCode::UNAUTHORIZED);

    hub.shutdown().await;
    let alive = call(&app, test::TestRequest::get().uri("/hub/healthz")).await;
    assert_eq!(alive.status(), StatusCode::OK);
    let not_ready = call(&app, test::TestRequest::get().uri("/hub/readyz")).await;
    assert_eq!(not_ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header_of(&not_ready, header::RETRY_AFTER).as_deref(),
        Some("1")
    );
}

#[actix_rt::test]
async fn every_503_says_when_to_retry() {
    let hub = hub_with_a_record().await;
    let app = app(&hub, WebOptions::default().with_max_event_clients(0)).await;
    let full = call(&app, test::TestRequest::get().uri("/hub/events")).await;
    assert_eq!(full.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header_of(&full, header::RETRY_AFTER).as_deref(), Some("1"));
    hub.shutdown().await;
    let stopped = call(&app, test::TestRequest::get().uri("/hub/tasks/t1")).await;
    assert_eq!(stopped.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header_of(&stopped, header::RETRY_AFTER).as_deref(),
        Some("1")
    );
}

/// The page runs no script and applies no style but its own: the policy names each by its
/// SHA-256 and allows nothing inline otherwise.
#[actix_rt::test]
async fn the_dashboard_policy_names_its_script_and_style_by_hash() {
    let hub = hub_with_a_record().await;
    let app = app(&hub, WebOptions::default()).await;
    let response = call(&app, test::TestRequest::get().uri("/hub/")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let policy = header_of(&response, header::CONTENT_SECURITY_POLICY).expect("a CSP");
    let page = String::from_utf8(test::read_body(response).await.to_vec()).expect("utf-8");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    for tag in ["script", "style"] {
        let text = page
            .split_once(&format!("<{tag}>"))
            .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
            .map(|(text, _)| text)
            .unwrap_or_else(|| panic!("the page has a <{tag}>"));
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text));
        assert!(
            policy.contains(&format!("{tag}-src 'sha256-{hash}'")),
            "{tag} hash {hash} not in {policy}"
        );
        assert_eq!(
            page.matches(&format!("<{tag}")).count(),
            1,
            "one <{tag}> element, the one hashed"
        );
    }
    // Inline attributes would need 'unsafe-inline' or 'unsafe-hashes'.
    assert!(!page.contains(" style=\""), "an inline style attribute");
    assert!(!page.contains(" onclick=\""), "an inline event handler");
    hub.shutdown().await;
}

/// Reads an `/events` body until it holds `frames` event frames (or ends), and returns the
/// frames as `(id, event, data)`; comments are skipped.
async fn read_frames(
    body: &mut actix_web::body::BoxBody,
    frames: usize,
) -> Vec<(Option<String>, String, String)> {
    use actix_web::body::MessageBody;
    let mut text = String::new();
    let parse = |text: &str| -> Vec<(Option<String>, String, String)> {
        text.split("\n\n")
            .filter_map(|frame| {
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|line| line.strip_prefix(name).map(str::to_owned))
                };
                Some((field("id: "), field("event: ")?, field("data: ")?))
            })
            .collect()
    };
    while parse(&text).len() < frames {
        let chunk = within(
            "the next chunk of /events",
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut *body).poll_next(cx)),
        )
        .await;
        match chunk {
            Some(chunk) => text.push_str(std::str::from_utf8(&chunk.expect("a chunk")).unwrap()),
            None => break,
        }
    }
    parse(&text)
}

async fn open_events<S>(app: &S, request: test::TestRequest) -> actix_web::body::BoxBody
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let response = call(app, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

/// Every event frame has an `id:`; a client that comes back with `Last-Event-ID` gets what it
/// missed, once, then the live events.
#[actix_rt::test]
async fn events_resume_after_the_last_event_id() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, WebOptions::default()).await;
    let mut first = open_events(&app, test::TestRequest::get().uri("/hub/events")).await;
    hub.store("a", TaskResult::new("a", TaskStatus::Running))
        .await
        .expect("store");
    let seen = read_frames(&mut first, 1).await;
    let last = seen[0].0.clone().expect("an id on the task frame");
    drop(first);
    // Changes while the client is away.
    hub.store("a", TaskResult::new("a", TaskStatus::Success))
        .await
        .expect("store");
    hub.delete("a").await.expect("delete");
    let mut again = open_events(
        &app,
        test::TestRequest::get()
            .uri("/hub/events")
            .insert_header(("Last-Event-ID", last.as_str())),
    )
    .await;
    hub.store("b", TaskResult::new("b", TaskStatus::Pending))
        .await
        .expect("store");
    let resumed = read_frames(&mut again, 3).await;
    let kinds: Vec<(String, String)> = resumed
        .iter()
        .map(|(_, _, data)| {
            let event: serde_json::Value = serde_json::from_str(data).unwrap();
            (
                event["task_id"].as_str().unwrap().to_owned(),
                event["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("a".to_owned(), "stored".to_owned()),
            ("a".to_owned(), "deleted".to_owned()),
            ("b".to_owned(), "stored".to_owned()),
        ]
    );
    let ids: Vec<String> = resumed
        .iter()
        .map(|(id, _, _)| id.clone().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id != last), "{ids:?} repeats {last}");
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), 3, "{ids:?}");

    // An id this hub did not give: everything it holds, then live.
    let mut foreign = open_events(
        &app,
        test::TestRequest::get()
            .uri("/hub/events")
            .insert_header(("Last-Event-ID", "0000000000000001-7")),
    )
    .await;
    assert_eq!(read_frames(&mut foreign, 4).await.len(), 4);

    let malformed = call(
        &app,
        test::TestRequest::get()
            .uri("/hub/events")
            .insert_header(("Last-Event-ID", "yesterday")),
    )
    .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    // This hub's name with the largest number: ahead of everything, and no overflow.
    let (hub_name, _) = last.split_once('-').expect("{hub}-{n}");
    let beyond = format!("{hub_name}-{}", u64::MAX);
    let ahead = call(
        &app,
        test::TestRequest::get()
            .uri("/hub/events")
            .insert_header(("Last-Event-ID", beyond.as_str())),
    )
    .await;
    assert_eq!(ahead.status(), StatusCode::OK);
    hub.shutdown().await;
}

/// A client further behind than the hub holds hears how many it lost, then what is held.
#[actix_rt::test]
async fn a_resume_past_what_is_held_starts_with_lagged() {
    let hub = HubHandle::start(HubConfig::default().with_event_buffer(2));
    let app = app(&hub, WebOptions::default()).await;
    let mut first = open_events(&app, test::TestRequest::get().uri("/hub/events")).await;
    hub.store("x0", TaskResult::new("x0", TaskStatus::Success))
        .await
        .expect("store");
    let last = read_frames(&mut first, 1).await[0].0.clone().unwrap();
    drop(first);
    for n in 1..=5 {
        let id = format!("x{n}");
        hub.store(&id, TaskResult::new(&id, TaskStatus::Success))
            .await
            .expect("store");
    }
    let mut again = open_events(
        &app,
        test::TestRequest::get()
            .uri("/hub/events")
            .insert_header(("Last-Event-ID", last.as_str())),
    )
    .await;
    let frames = read_frames(&mut again, 3).await;
    assert_eq!(frames[0].1, "lagged");
    assert_eq!(frames[0].0, None, "a lagged frame has no id");
    let missed: serde_json::Value = serde_json::from_str(&frames[0].2).unwrap();
    assert_eq!(missed["missed"], 3, "x1..x3 are no longer held");
    let held: Vec<String> = frames[1..]
        .iter()
        .map(|(_, _, data)| {
            let event: serde_json::Value = serde_json::from_str(data).unwrap();
            event["task_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(held, ["x4", "x5"]);
    hub.shutdown().await;
}

#[actix_rt::test]
async fn one_address_cannot_take_every_events_place() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(&hub, WebOptions::default().with_max_event_clients_per_ip(2)).await;
    let from = |ip: &str| {
        test::TestRequest::get()
            .uri("/hub/events")
            .peer_addr(format!("{ip}:5000").parse().unwrap())
    };
    let one = open_events(&app, from("10.0.0.1")).await;
    let two = open_events(&app, from("10.0.0.1")).await;
    let refused = call(&app, from("10.0.0.1")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        header_of(&refused, header::RETRY_AFTER).as_deref(),
        Some("1")
    );
    let other = open_events(&app, from("10.0.0.2")).await;
    drop(one);
    // A place given back is taken again.
    let three = open_events(&app, from("10.0.0.1")).await;
    drop((two, other, three));
    hub.shutdown().await;
}

#[actix_rt::test]
async fn a_connection_ends_at_its_lifetime() {
    let hub = HubHandle::start(HubConfig::default());
    let app = app(
        &hub,
        WebOptions::default().with_max_event_lifetime(std::time::Duration::from_millis(50)),
    )
    .await;
    let mut body = open_events(&app, test::TestRequest::get().uri("/hub/events")).await;
    // No event comes: the body ends by itself, within the test's bound.
    assert!(read_frames(&mut body, 1).await.is_empty());
    let before = hub.stats().await.expect("stats").subscribers;
    drop(body);
    assert_eq!(before, 1, "the subscription lasts as long as the body");
    hub.shutdown().await;
}
