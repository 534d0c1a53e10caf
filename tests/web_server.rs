//! The scope behind a real server, for what only real connections show: a client that hangs
//! up leaves neither a waiter (`/wait`) nor a subscription (`/events`) behind. No timing is
//! asserted: each test waits, within a bound, for the hub's own counts to go back to zero.
#![cfg(feature = "web")]

mod support;
mod web_support;

use std::time::Duration;

use resulthub::web::WebOptions;
use resulthub::{HubConfig, HubHandle, HubStats, ResultBackend, TaskResult, TaskStatus};
use support::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web_support::TestServer;

/// Polls the hub's stats until `done` holds; `within` bounds it.
async fn until(hub: &HubHandle, what: &str, done: impl Fn(&HubStats) -> bool) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_client_that_hangs_up_is_unsubscribed() {
    let hub = HubHandle::spawn(HubConfig::default());
    let options = WebOptions {
        heartbeat: Duration::from_millis(20),
        ..WebOptions::default()
    };
    let server = TestServer::start(hub.clone(), options);
    let mut stream = request(&server, "events").await;
    let mut head = vec![0; 1024];
    let read = within("the response head", stream.read(&mut head))
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
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
    let mut answer = vec![0; 4096];
    let read = within("the answer", stream.read(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
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
