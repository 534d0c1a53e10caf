//! The conformance suite against `RedisBackend` over TLS (feature `redis-tls`), each case on its
//! own `redis-server` that speaks only TLS and requires a client certificate (mutual TLS), with
//! a CA and certificates made for the case.

#![cfg(feature = "redis-tls")]

mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/tls_pki.rs"]
mod tls_pki;

use conformance::Subject;
use redis_server::{RedisServer, TlsServer};
use resulthub::RedisBackend;
use tls_pki::Pki;

/// A TLS-only server requiring client certificates, with the certificates a backend needs.
fn start() -> Option<(RedisServer, Pki)> {
    let pki = Pki::new();
    let server = RedisServer::start_tls(TlsServer {
        cert_pem: pki.server.cert_pem.clone(),
        key_pem: pki.server.key_pem.clone(),
        ca_pem: pki.ca.cert_pem(),
        auth_clients: true,
        trust_pem: pki.ca.cert_pem(),
        client_cert_pem: pki.client.cert_pem.clone(),
        client_key_pem: pki.client.key_pem.clone(),
    })?;
    Some((server, pki))
}

async fn backend(server: &RedisServer, pki: &Pki, prefix: &str) -> RedisBackend {
    RedisBackend::builder(&server.url())
        .prefix(prefix)
        .tls_root_certificate(pki.ca.cert_pem())
        .tls_client_certificate(pki.client.cert_pem.clone(), pki.client.key_pem.clone())
        // As tests/conformance_redis.rs: the bulk cases pipeline 20,000 commands at once on a
        // shared 2-core machine, here with TLS on top.
        .response_timeout(std::time::Duration::from_secs(30))
        .build()
        .await
        .expect("connect to the test's redis-server over TLS")
}

macro_rules! redis_tls_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some((server, pki)) = start() else { return };
                let subject = Subject::redis(backend(&server, &pki, "flowrra").await);
                conformance::$case(&subject).await;
            }
        )*
    };
}

conformance_cases!(redis_tls_tests);

#[tokio::test(flavor = "current_thread")]
async fn run_all_on_current_thread_runtime() {
    let Some((server, pki)) = start() else {
        return;
    };
    conformance::run_all(&Subject::redis(backend(&server, &pki, "flowrra").await)).await;
}
