//! The scope behind a real server, for what only real connections show: a client that hangs
//! up leaves neither a waiter (`/wait`) nor a subscription (`/events`) behind. No timing is
//! asserted: each test waits, within a bound, for the hub's own counts to go back to zero.
#![cfg(feature = "web")]

mod support;
#[macro_use]
mod web_support;

use std::time::Duration;

use resulthub::web::{WebBackend, WebOptions};
use resulthub::{HubConfig, HubHandle, HubStats, ResultBackend, TaskResult, TaskStatus};
use support::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web_support::TestServer;

/// Polls the hub's stats until `done` holds; `within` bounds it.
async fn until<B: WebBackend>(hub: &B, what: &str, done: impl Fn(&HubStats) -> bool) {
    within(what, async {
        loop {
            if done(&hub.stats().await.unwrap()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn request(server: &TestServer, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!("GET /hub/{path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads until the blank line that ends the response head (a single `read` may return part
/// of it), and returns what was read: the head, and whatever of the body came with it.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut read_so_far = Vec::new();
    within("the response head", async {
        while !read_so_far.windows(4).any(|window| window == b"\r\n\r\n") {
            let mut chunk = vec![0; 1024];
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(read > 0, "the connection closed within the response head");
            read_so_far.extend_from_slice(&chunk[..read]);
        }
    })
    .await;
    String::from_utf8_lossy(&read_so_far).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_whose_client_hangs_up_leaves_no_waiter() {
    let hub = HubHandle::spawn(HubConfig::default());
    let server = TestServer::start(hub.clone(), WebOptions::default());
    // 300 s: far beyond the test's bound, so only the hang-up can end the wait in time.
    let stream = request(&server, "tasks/t/wait?timeout=300").await;
    until(&hub, "the waiter registered", |stats| stats.waiters == 1).await;
    drop(stream);
    until(&hub, "the waiter gone after the hang-up", |stats| {
        stats.waiters == 0
    })
    .await;
    // And the task can still be waited for and stored normally.
    hub.store("t", TaskResult::new("t", TaskStatus::Success))
        .await
        .unwrap();
}

over_both!(an_events_client_that_hangs_up_is_unsubscribed);
async fn an_events_client_that_hangs_up_is_unsubscribed<B: WebBackend + Clone>(hub: B) {
    let options = WebOptions::default().with_heartbeat(Duration::from_millis(20));
    let server = TestServer::start(hub.clone(), options);
    let mut stream = request(&server, "events").await;
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    assert_eq!(hub.stats().await.unwrap().subscribers, 1);
    drop(stream);
    // The next heartbeat or event written to the closed socket drops the subscription.
    until(&hub, "the subscription gone after the hang-up", |stats| {
        stats.subscribers == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_gets_json_errors_and_records() {
    let hub = HubHandle::spawn(HubConfig::default());
    hub.store("t", TaskResult::new("t", TaskStatus::Running))
        .await
        .unwrap();
    let server = TestServer::start(hub.clone(), WebOptions::default());
    let mut stream = request(&server, "tasks?status=running&limit=x").await;
    let mut answer = read_head(&mut stream).await.into_bytes();
    // The body: its length is in the head.
    let length: usize = String::from_utf8_lossy(&answer)
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .and_then(|length| length.trim().parse().ok())
        .expect("a content-length");
    let body_start = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("the end of the head")
        + 4;
    while answer.len() < body_start + length {
        let mut chunk = vec![0; 4096];
        let read = within("the body", stream.read(&mut chunk)).await.unwrap();
        assert!(read > 0, "the connection closed before the body ended");
        answer.extend_from_slice(&chunk[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    assert!(
        answer.contains(r#"{"error":"`limit` must be a whole number"#),
        "{answer}"
    );
}
