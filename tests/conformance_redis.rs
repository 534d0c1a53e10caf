//! The conformance suite against `RedisBackend`, each case on its own `redis-server`.

#![cfg(feature = "redis")]

mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use conformance::Subject;
use redis_server::RedisServer;
use resulthub::RedisBackend;

async fn backend(server: &RedisServer, prefix: &str) -> RedisBackend {
    RedisBackend::builder(&server.url())
        .prefix(prefix)
        // The bulk cases pipeline 20,000 commands at once, on one thread in the current-thread
        // case, on a shared 2-core machine: a reply can queue past the 5 s default.
        .response_timeout(std::time::Duration::from_secs(30))
        .build()
        .await
        .expect("connect to the test's redis-server")
}

/// Runs a case on a backend of its own `redis-server` (skipped when there is none).
async fn on_redis(case: impl AsyncFnOnce(&Subject)) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    case(&Subject::redis(backend(&server, "flowrra").await)).await;
}

conformance_cases!(backend_tests {
    redis: #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    on_redis,
});

// One backend through every case, under a prefix of its own beside another app's records:
// `clear` and listings must not see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_under_a_custom_prefix_beside_other_records() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let other = backend(&server, "flowrra").await;
    let stranger = resulthub::TaskResult::new("x", resulthub::TaskStatus::Success);
    resulthub::ResultBackend::store(&other, "x", stranger.clone())
        .await
        .expect("store under the default prefix");
    conformance::run_all(&Subject::redis(backend(&server, "app:*[1]").await)).await;
    assert_eq!(
        resulthub::ResultBackend::get(&other, "x")
            .await
            .expect("get"),
        Some(stranger)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn run_all_on_current_thread_runtime() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    conformance::run_all(&Subject::redis(backend(&server, "flowrra").await)).await;
}
