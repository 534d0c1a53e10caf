//! The web tests' helpers: requests to the hub's scope through actix-web's `test` utilities
//! (`web_reads.rs`, `web_writes.rs`, `web_auth.rs`), and a real actix-web server on a free
//! loopback port for the tests that need real connections (`web_server.rs`, `browser.rs`).
//! A crate that includes it also includes `tests/support/` (`mod support;`).
//!
//! The routes are served over a `HubHandle` or a `RedisBackend` alike: [`over_both!`] runs one
//! test case (an `async fn case<B: WebBackend + Clone>(backend: B)`) over each, the Redis one
//! on a `redis-server` of its own (skipped without one, unless `RESULTHUB_REQUIRE_REDIS=1`).

// Each test crate uses a different subset of the helpers.
#![allow(dead_code, unused_macros)]

#[path = "../support/redis_server.rs"]
pub mod redis_server;

use std::net::SocketAddr;
use std::thread::JoinHandle;

use actix_web::dev::{ServerHandle, Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpServer, test, web};
use resulthub::web::{WebBackend, WebOptions, configure};
use serde_json::Value;

use crate::support::within;

/// A server on its own thread and actix System; stopped and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `hub` (any backend) under `/hub` on `127.0.0.1`, one worker.
    pub fn start<B: WebBackend>(hub: B, options: WebOptions) -> TestServer {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            let routes = configure(hub, options);
            let server = HttpServer::new(move || {
                App::new().service(web::scope("/hub").configure(routes.clone()))
            })
            .workers(1)
            // What the crate's docs ask of a server: drop a request whose client hung up, so
            // that a `/wait` gives its waiter back at once.
            .h1_allow_half_closed(false)
            .disable_signals()
            .shutdown_timeout(1)
            .bind(("127.0.0.1", 0))
            .expect("bind a loopback port");
            let addr = server.addrs()[0];
            let server = server.run();
            ready_tx
                .send((addr, server.handle()))
                .expect("the test is waiting");
            system.block_on(server).expect("the server ran");
        });
        let (addr, handle) = ready_rx.recv().expect("the server thread started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/hub/` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/hub/{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not graceful: open SSE streams would hold a graceful stop for its whole timeout.
        let stop = self.handle.stop(false);
        futures::executor::block_on(stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests through actix-web's test utilities
// ---------------------------------------------------------------------------------------------

pub const TOKEN: &str = "s3cret-token";

pub async fn app<B: WebBackend + Clone>(
    hub: &B,
    options: WebOptions,
) -> impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error> {
    test::init_service(
        App::new().service(web::scope("/hub").configure(configure(hub.clone(), options))),
    )
    .await
}

pub fn writable() -> WebOptions {
    WebOptions::default().with_allow_writes(true)
}

pub fn with_token(allow_writes: bool) -> WebOptions {
    WebOptions::default()
        .with_allow_writes(allow_writes)
        .with_token(Some(TOKEN.to_owned()))
}

/// Sends a request and returns its status and JSON body (`Null` when empty). Every 4xx must
/// carry `{"error": "<non-empty>"}`.
pub async fn send<S>(app: &S, request: test::TestRequest) -> (StatusCode, Value)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let response = within(
        "the response",
        test::call_service(app, request.to_request()),
    )
    .await;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = test::read_body(response).await;
    let json = if body.is_empty() {
        Value::Null
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&body).expect("a JSON body")
    } else {
        Value::String(String::from_utf8_lossy(&body).into_owned())
    };
    if status.is_client_error() {
        assert!(
            content_type.starts_with("application/json"),
            "{status} without a JSON body"
        );
        let message = json["error"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "{status} without an error message: {json}"
        );
    }
    (status, json)
}

pub fn get(uri: &str) -> test::TestRequest {
    test::TestRequest::get().uri(uri)
}

pub fn post(uri: &str, body: Value) -> test::TestRequest {
    test::TestRequest::post().uri(uri).set_json(body)
}

pub fn delete(uri: &str) -> test::TestRequest {
    test::TestRequest::delete().uri(uri)
}

pub fn bearer(request: test::TestRequest, token: &str) -> test::TestRequest {
    request.insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
}

/// Asserts 400 and that the message mentions `needle`.
pub async fn assert_bad<S>(app: &S, request: test::TestRequest, needle: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let (status, body) = send(app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"].as_str().unwrap_or("");
    assert!(
        message.contains(needle),
        "{message:?} should mention {needle:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Over a hub and over Redis
// ---------------------------------------------------------------------------------------------

/// A `RedisBackend` on a `redis-server` of its own, which stops when this is dropped.
pub struct Redis {
    pub backend: resulthub::RedisBackend,
    pub server: redis_server::RedisServer,
}

impl Redis {
    /// A fresh server and a backend on it whose stats are never cached (a test reads them
    /// right after storing); `None` when there is no `redis-server` (after saying so).
    pub async fn start() -> Option<Redis> {
        let server = redis_server::RedisServer::start()?;
        let backend = Self::connect(&server).await;
        Some(Redis { backend, server })
    }

    /// Another backend on the same server and prefix: another process, as far as the first
    /// one can tell.
    pub async fn connect(server: &redis_server::RedisServer) -> resulthub::RedisBackend {
        within(
            "connect to redis",
            resulthub::RedisBackend::builder(&server.url())
                .stats_interval(std::time::Duration::from_millis(1))
                .build(),
        )
        .await
        .expect("connect to redis")
    }
}

/// Runs `case(backend)` as two tests, `case::hub` (over a `HubHandle`) and `case::redis` (over
/// a `RedisBackend` on a server of its own).
macro_rules! over_both {
    ($case:ident) => {
        mod $case {
            #[actix_rt::test]
            async fn hub() {
                super::$case(resulthub::HubHandle::start(resulthub::HubConfig::default())).await;
            }

            #[actix_rt::test]
            async fn redis() {
                let Some(redis) = crate::web_support::Redis::start().await else {
                    return;
                };
                super::$case(redis.backend.clone()).await;
                drop(redis);
            }
        }
    };
}
