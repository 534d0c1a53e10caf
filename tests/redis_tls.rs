//! `RedisBackend` over TLS (feature `redis-tls`), against a `redis-server` that speaks only TLS,
//! with a CA and certificates made at test time: the operations, mutual TLS, what a wrong CA, a
//! wrong name or a plain-TCP server give, the insecure mode and its warning, and the TLS options
//! refused before anything connects.

#![cfg(feature = "redis-tls")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;
#[path = "support/tls_pki.rs"]
mod tls_pki;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis_server::{RedisServer, TlsServer};
use resulthub::{BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;
use support::{eventually, within, within_for};
use tls_pki::{Identity, Pki};

/// `tracing` warnings about insecure connections, counted by [`count_insecure_warnings`].
static INSECURE_WARNINGS: AtomicUsize = AtomicUsize::new(0);

/// Installs (once per test process) a subscriber that counts the `resulthub.redis.tls_insecure`
/// warnings, from every thread.
fn count_insecure_warnings() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(WarningCounter)
            .expect("no other global subscriber in this test binary");
    });
}

struct WarningCounter;

impl tracing::Subscriber for WarningCounter {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0 == "resulthub.redis.tls_insecure" {
            INSECURE_WARNINGS.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Bound on a build expected to fail: far longer than a failed handshake takes, far shorter
/// than [`LONG_CONNECT_TIMEOUT`], so an error that arrives within it did not come from that
/// timeout.
const FAILURE_BOUND: Duration = Duration::from_secs(60);
const LONG_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

fn server_config(pki: &Pki, server: &Identity, auth_clients: bool) -> TlsServer {
    TlsServer {
        cert_pem: server.cert_pem.clone(),
        key_pem: server.key_pem.clone(),
        ca_pem: pki.ca.cert_pem(),
        auth_clients,
        trust_pem: pki.ca.cert_pem(),
        client_cert_pem: pki.client.cert_pem.clone(),
        client_key_pem: pki.client.key_pem.clone(),
    }
}

fn success(id: &str) -> TaskResult {
    TaskResult::new(id, TaskStatus::Success).with_result(json!({"n": 1}))
}

/// The reason of an `Unavailable` error, or a panic naming what came instead.
fn unavailable(what: &str, outcome: Result<RedisBackend, BackendError>) -> String {
    match outcome {
        Err(BackendError::Unavailable { reason }) => reason,
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
}

fn invalid(what: &str, outcome: Result<RedisBackend, BackendError>) -> String {
    match outcome {
        Err(BackendError::InvalidInput { reason, .. }) => reason,
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

/// How many pattern subscriptions the server has.
fn patterns(server: &RedisServer) -> usize {
    server
        .command_text(&["PUBSUB", "NUMPAT"])
        .parse()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_get_wait_for_and_list_over_tls() {
    let pki = Pki::new();
    let Some(server) = RedisServer::start_tls(server_config(&pki, &pki.server, false)) else {
        return;
    };
    let backend = within(
        "connect over TLS",
        RedisBackend::builder(&server.url())
            .tls_root_certificate(pki.ca.cert_pem())
            .build(),
    )
    .await
    .expect("connect over TLS");

    within(
        "store running",
        backend.store("t-1", TaskResult::new("t-1", TaskStatus::Running)),
    )
    .await
    .expect("store");
    let waiter = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend
                .wait_for("t-1", Some(Duration::from_secs(120)))
                .await
        })
    };
    // The waiter is subscribed (over the TLS pub/sub connection) before the task finishes, so
    // only a `done` delivered through that connection can end its wait before the timeout.
    eventually("the waiter subscribes", || {
        backend.local_waiters() == 1 && patterns(&server) == 1
    })
    .await;
    within("store success", backend.store("t-1", success("t-1")))
        .await
        .expect("store");
    let done = within("the waiter wakes", waiter)
        .await
        .expect("join")
        .expect("wait_for");
    assert_eq!(done.status, TaskStatus::Success);

    let read = within("get", backend.get("t-1")).await.expect("get");
    assert_eq!(read.map(|record| record.status), Some(TaskStatus::Success));
    within("store another", backend.store("t-2", success("t-2")))
        .await
        .expect("store");
    let listed: Vec<String> = within("list", backend.list_by_status(TaskStatus::Success, None, 0))
        .await
        .expect("list")
        .into_iter()
        .map(|record| record.task_id)
        .collect();
    assert_eq!(listed, ["t-1", "t-2"]);
    // What the backend wrote is what any client of the server reads.
    assert!(
        server
            .command_text(&["GET", "flowrra:task:t-1"])
            .contains("\"success\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let Some(server) = RedisServer::start_tls(server_config(&pki, &pki.server, true)) else {
        return;
    };
    let without = within_for(
        FAILURE_BOUND,
        "connect without a client certificate",
        RedisBackend::builder(&server.url())
            .tls_root_certificate(pki.ca.cert_pem())
            .connect_timeout(LONG_CONNECT_TIMEOUT)
            .build(),
    )
    .await;
    let reason = unavailable("no client certificate", without);
    // TLS 1.3: the server's `certificate_required` alert; TLS 1.2 would end the handshake.
    assert!(reason.contains("TLS connection to"), "{reason}");
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");

    let backend = within(
        "connect with a client certificate",
        RedisBackend::builder(&server.url())
            .tls_root_certificate(pki.ca.cert_pem())
            .tls_client_certificate(pki.client.cert_pem.clone(), pki.client.key_pem.clone())
            .build(),
    )
    .await
    .expect("connect with a client certificate");
    within("store", backend.store("m-1", success("m-1")))
        .await
        .expect("store");
    let done = within(
        "wait_for",
        backend.wait_for("m-1", Some(Duration::from_secs(60))),
    )
    .await
    .expect("wait_for");
    assert_eq!(done.task_id, "m-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_is_unavailable_naming_the_certificate() {
    let pki = Pki::new();
    let Some(server) = RedisServer::start_tls(server_config(&pki, &pki.server, false)) else {
        return;
    };
    let outcome = within_for(
        FAILURE_BOUND,
        "connect trusting another CA",
        RedisBackend::builder(&server.url())
            .tls_root_certificate(pki.other_ca.cert_pem())
            .connect_timeout(LONG_CONNECT_TIMEOUT)
            .build(),
    )
    .await;
    let reason = unavailable("wrong CA", outcome);
    assert!(reason.contains("TLS connection to"), "{reason}");
    assert!(reason.contains("invalid peer certificate"), "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_the_certificate_does_not_cover_is_unavailable() {
    let pki = Pki::new();
    // Valid for `localhost` (which the helper's own connections use), not for 127.0.0.1.
    let named = pki.ca.server(&["localhost"]);
    let Some(server) = RedisServer::start_tls(server_config(&pki, &named, false)) else {
        return;
    };
    let outcome = within_for(
        FAILURE_BOUND,
        "connect by an address the certificate does not name",
        RedisBackend::builder(&format!("rediss://127.0.0.1:{}/0", server.port()))
            .tls_root_certificate(pki.ca.cert_pem())
            .connect_timeout(LONG_CONNECT_TIMEOUT)
            .build(),
    )
    .await;
    let reason = unavailable("wrong name", outcome);
    assert!(reason.contains("invalid peer certificate"), "{reason}");
    assert!(reason.contains("not valid for name"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tcp_server_is_unavailable_within_the_connect_timeout() {
    let pki = Pki::new();
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}/0", server.port());
    let outcome = within_for(
        FAILURE_BOUND,
        "connect over TLS to a plain server",
        RedisBackend::builder(&url)
            .tls_root_certificate(pki.ca.cert_pem())
            .connect_timeout(Duration::from_secs(2))
            .build(),
    )
    .await;
    let reason = unavailable("plain server", outcome);
    assert!(reason.contains("TLS connection to"), "{reason}");
    assert!(reason.contains("without TLS"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_insecure_connects_to_an_untrusted_server_and_warns_at_every_connection() {
    count_insecure_warnings();
    let pki = Pki::new();
    let Some(mut server) = RedisServer::start_tls(server_config(&pki, &pki.server, false)) else {
        return;
    };
    // The default roots do not trust the test CA: without tls_insecure this server is refused.
    let trusted = within_for(
        FAILURE_BOUND,
        "connect with the default roots",
        RedisBackend::builder(&server.url())
            .connect_timeout(LONG_CONNECT_TIMEOUT)
            .build(),
    )
    .await;
    let reason = unavailable("default roots", trusted);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert_eq!(INSECURE_WARNINGS.load(Ordering::SeqCst), 0);

    let backend = within(
        "connect insecurely",
        RedisBackend::builder(&server.url()).tls_insecure().build(),
    )
    .await
    .expect("an insecure connection to an untrusted server");
    // The command connection.
    assert!(INSECURE_WARNINGS.load(Ordering::SeqCst) >= 1);
    within("store", backend.store("i-1", success("i-1")))
        .await
        .expect("store");
    assert_eq!(
        within("get", backend.get("i-1"))
            .await
            .expect("get")
            .map(|record| record.status),
        Some(TaskStatus::Success)
    );

    // The pub/sub connection, with a waiter that stays through a server restart.
    let waiter = {
        let backend = backend.clone();
        tokio::spawn(async move {
            backend
                .wait_for("i-2", Some(Duration::from_secs(120)))
                .await
        })
    };
    eventually("the waiter subscribes", || patterns(&server) == 1).await;
    let before_restart = INSECURE_WARNINGS.load(Ordering::SeqCst);
    assert!(before_restart >= 2, "{before_restart} warnings");

    server.restart();
    // The pub/sub connection is made again, and warns again.
    eventually("the waiter subscribes again", || patterns(&server) == 1).await;
    eventually("a warning for the reconnection", || {
        INSECURE_WARNINGS.load(Ordering::SeqCst) > before_restart
    })
    .await;
    within("store after the restart", async {
        // The command connection's first call after an outage may fail while it reconnects.
        loop {
            match backend.store("i-2", success("i-2")).await {
                Ok(()) => break,
                Err(BackendError::Unavailable { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("store after the restart: {other:?}"),
            }
        }
    })
    .await;
    let done = within("the waiter wakes", waiter)
        .await
        .expect("join")
        .expect("wait_for");
    assert_eq!(done.task_id, "i-2");
}

#[tokio::test]
async fn tls_options_on_a_plain_url_are_refused_before_connecting() {
    let pki = Pki::new();
    // Nothing listens on port 1: a connection attempt would be `Unavailable`, not this.
    let url = "redis://127.0.0.1:1/0";
    let cases = [
        (
            "tls_root_certificate",
            RedisBackend::builder(url).tls_root_certificate(pki.ca.cert_pem()),
        ),
        (
            "tls_client_certificate",
            RedisBackend::builder(url)
                .tls_client_certificate(pki.client.cert_pem.clone(), pki.client.key_pem.clone()),
        ),
        ("tls_insecure", RedisBackend::builder(url).tls_insecure()),
    ];
    for (option, builder) in cases {
        let reason = invalid(option, within(option, builder.build()).await);
        assert!(reason.contains(option), "{option}: {reason}");
        assert!(reason.contains("rediss://"), "{option}: {reason}");
        // The URL may carry a password: it is not echoed.
        assert!(!reason.contains("127.0.0.1"), "{option}: {reason}");
    }
}

#[tokio::test]
async fn bad_tls_material_is_refused_before_connecting() {
    let pki = Pki::new();
    let other = pki.other_ca.client();
    // Nothing listens on port 1: a connection attempt would be `Unavailable`, not this.
    let url = "rediss://127.0.0.1:1/0";
    let cases = [
        (
            "a root PEM without a certificate",
            RedisBackend::builder(url).tls_root_certificate("not a certificate"),
            "no CERTIFICATE",
        ),
        (
            "a root PEM whose certificate is not DER",
            RedisBackend::builder(url).tls_root_certificate(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            ),
            "tls_root_certificate",
        ),
        (
            "a good root, then a bad one",
            RedisBackend::builder(url)
                .tls_root_certificate(pki.ca.cert_pem())
                .tls_root_certificate(""),
            "call 2",
        ),
        (
            "a client chain without a certificate",
            RedisBackend::builder(url).tls_client_certificate("", pki.client.key_pem.clone()),
            "tls_client_certificate",
        ),
        (
            "a client key PEM without a key",
            RedisBackend::builder(url)
                .tls_client_certificate(pki.client.cert_pem.clone(), pki.client.cert_pem.clone()),
            "private key",
        ),
        (
            "a client key of another certificate",
            RedisBackend::builder(url)
                .tls_client_certificate(pki.client.cert_pem.clone(), other.key_pem.clone()),
            "cannot be used",
        ),
        (
            "a CA with tls_insecure",
            RedisBackend::builder(url)
                .tls_root_certificate(pki.ca.cert_pem())
                .tls_insecure(),
            "tls_insecure",
        ),
        (
            "a CA with #insecure in the URL",
            RedisBackend::builder("rediss://127.0.0.1:1/0#insecure")
                .tls_root_certificate(pki.ca.cert_pem()),
            "tls_insecure",
        ),
    ];
    for (what, builder, says) in cases {
        let reason = invalid(what, within(what, builder.build()).await);
        assert!(reason.contains(says), "{what}: {reason}");
    }
}

#[test]
fn a_builder_debug_shows_no_key() {
    let pki = Pki::new();
    let builder = RedisBackend::builder("rediss://localhost:6380/0")
        .tls_root_certificate(pki.ca.cert_pem())
        .tls_client_certificate(pki.client.cert_pem.clone(), pki.client.key_pem.clone());
    let shown = format!("{builder:?}");
    let key_body = pki
        .client
        .key_pem
        .lines()
        .nth(1)
        .expect("a line of the key");
    assert!(!shown.contains(key_body), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains("client_certificate: true"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_without_tls_is_unavailable_naming_it() {
    // What Redis without TLS answers when the ClientHello holds a line end: a plain error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        // The connection manager tries twice; a few more are harmless.
        for stream in listener.incoming().take(4) {
            let Ok(mut stream) = stream else { continue };
            let mut hello = [0u8; 512];
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(b"-ERR unknown command\r\n");
        }
    });
    let pki = Pki::new();
    let outcome = within_for(
        FAILURE_BOUND,
        "connect over TLS to a plain-text server",
        RedisBackend::builder(&format!("rediss://127.0.0.1:{port}/0"))
            .tls_root_certificate(pki.ca.cert_pem())
            .connect_timeout(LONG_CONNECT_TIMEOUT)
            .build(),
    )
    .await;
    let reason = unavailable("plain-text answer", outcome);
    assert!(reason.contains("TLS connection to"), "{reason}");
    assert!(reason.contains("without TLS"), "{reason}");
}
