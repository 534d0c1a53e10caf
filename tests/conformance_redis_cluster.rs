//! The conformance suite against `RedisBackend` on a Redis Cluster (three masters, three
//! replicas) that the tests start: one cluster shared by this binary's tests, each case on a
//! prefix of its own.

#![cfg(feature = "redis")]

mod conformance;
#[path = "support/redis_cluster.rs"]
mod redis_cluster;

use std::sync::atomic::{AtomicUsize, Ordering};

use conformance::Subject;
use redis_cluster::RedisCluster;
use resulthub::RedisBackend;

/// A prefix no other test of this process uses.
fn unique_prefix(base: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{base}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn backend(cluster: &RedisCluster, prefix: &str) -> RedisBackend {
    RedisBackend::cluster_builder(cluster.seeds())
        .prefix(prefix)
        // The bulk cases start 13,000 stores and 10,000 waits at once on a shared 2-core
        // machine that runs six servers besides: the last of them is answered long after the
        // 5 s default.
        .response_timeout(std::time::Duration::from_secs(30))
        .build()
        .await
        .expect("connect to the test's redis cluster")
}

/// Runs a case on a backend of its own prefix on the shared cluster (skipped when there is
/// no redis-server).
async fn on_cluster(case: impl AsyncFnOnce(&Subject)) {
    let Some(cluster) = RedisCluster::shared() else {
        return;
    };
    case(&Subject::redis(
        backend(&cluster, &unique_prefix("flowrra")).await,
    ))
    .await;
}

conformance_cases!(backend_tests {
    cluster: #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    on_cluster,
});

// One backend through every case, under a prefix with glob characters beside another prefix's
// records: `clear` and listings must not see them, on any master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_under_a_custom_prefix_beside_other_records() {
    let Some(cluster) = RedisCluster::shared() else {
        return;
    };
    let other = backend(&cluster, &unique_prefix("flowrra")).await;
    let strangers: Vec<resulthub::TaskResult> = (0..30)
        .map(|n| resulthub::TaskResult::new(format!("x{n}"), resulthub::TaskStatus::Success))
        .collect();
    for stranger in &strangers {
        resulthub::ResultBackend::store(&other, &stranger.task_id, stranger.clone())
            .await
            .expect("store under another prefix");
    }
    conformance::run_all(&Subject::redis(
        backend(&cluster, &unique_prefix("app:*[1]")).await,
    ))
    .await;
    for stranger in &strangers {
        assert_eq!(
            resulthub::ResultBackend::get(&other, &stranger.task_id)
                .await
                .expect("get"),
            Some(stranger.clone())
        );
    }
}

// No whole-suite run on a current-thread runtime here, unlike tests/conformance_redis.rs: what
// it covers (calls and the backend's tasks on one thread) is the same code on a cluster, and
// on one thread the bulk case's 13,000 stores and 10,000 waits take about 40 s here (the
// cluster client's routing, and every finished store waking every caller that waits for
// earlier stores in `InFlight`), past the case's own 30 s waits.
