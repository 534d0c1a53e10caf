//! Operation metrics: after a known sequence of calls, each backend counts exactly those calls
//! by kind and outcome, and its latency histograms hold as many operations as the counts.

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::sync::Arc;
use std::time::Duration;

use resulthub::operations::{OperationKind as Kind, Outcome};
use resulthub::{
    HubConfig, HubHandle, InMemoryBackend, OperationMetrics, ResultBackend, TaskResult, TaskStatus,
};
use support::{rec, within};

/// Makes a known sequence of calls, with every outcome a caller can provoke without a fault,
/// and returns what it expects counted.
async fn known_sequence(backend: &dyn ResultBackend) -> Vec<(Kind, Outcome, u64)> {
    let too_long = "x".repeat(2_000);
    within("stores", async {
        backend
            .store("t1", rec("t1", TaskStatus::Pending))
            .await
            .unwrap();
        backend
            .store("t1", rec("t1", TaskStatus::Success))
            .await
            .unwrap();
        assert!(
            backend
                .store("", rec("", TaskStatus::Success))
                .await
                .is_err()
        );
        let outcomes = backend
            .store_many(vec![
                rec("a", TaskStatus::Success),
                rec("", TaskStatus::Success),
                rec("b", TaskStatus::Running),
            ])
            .await;
        assert!(outcomes[0].is_ok() && outcomes[1].is_err() && outcomes[2].is_ok());
        backend.store_many(vec![rec("c", TaskStatus::Failed)]).await[0]
            .as_ref()
            .unwrap();
    })
    .await;
    within("reads", async {
        assert!(backend.get("t1").await.unwrap().is_some());
        assert!(
            backend.get("missing").await.unwrap().is_none(),
            "not found is ok"
        );
        assert!(backend.get(&too_long).await.is_err());
        assert_eq!(backend.get_many(&["t1", "missing"]).await.unwrap().len(), 2);
        assert!(backend.get_many(&[]).await.is_err());
    })
    .await;
    within("waits", async {
        backend
            .wait_for("t1", Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(
            backend
                .wait_for("never", Some(Duration::ZERO))
                .await
                .is_err()
        );
        let waited = backend
            .wait_for("never", Some(Duration::from_millis(60)))
            .await;
        assert!(matches!(
            waited,
            Err(resulthub::BackendError::Timeout { .. })
        ));
        // A caller that gives up on its own: the call's future is dropped unanswered.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), backend.wait_for("never", None)).await;
        assert!(gave_up.is_err());
    })
    .await;
    within("listings", async {
        let listed = backend
            .list_by_status(TaskStatus::Success, None, 0)
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            backend
                .list_page(TaskStatus::Success, 0, None)
                .await
                .is_err()
        );
        let page = backend
            .list_page(TaskStatus::Success, 10, None)
            .await
            .unwrap();
        assert_eq!(page.records.len(), 2);
    })
    .await;
    within("deletes", async {
        assert!(backend.delete("t1").await.unwrap());
        assert!(
            !backend.delete("t1").await.unwrap(),
            "nothing to delete is ok"
        );
        assert_eq!(backend.clear().await.unwrap(), 3);
    })
    .await;
    vec![
        (Kind::Store, Outcome::Ok, 2),
        (Kind::Store, Outcome::InvalidInput, 1),
        (Kind::StoreMany, Outcome::Ok, 1),
        (Kind::StoreMany, Outcome::InvalidInput, 1),
        (Kind::Get, Outcome::Ok, 2),
        (Kind::Get, Outcome::InvalidInput, 1),
        (Kind::GetMany, Outcome::Ok, 1),
        (Kind::GetMany, Outcome::InvalidInput, 1),
        (Kind::WaitFor, Outcome::Ok, 1),
        (Kind::WaitFor, Outcome::Timeout, 2),
        (Kind::WaitFor, Outcome::Cancelled, 1),
        (Kind::Delete, Outcome::Ok, 2),
        (Kind::Clear, Outcome::Ok, 1),
        (Kind::ListByStatus, Outcome::Ok, 1),
        (Kind::ListPage, Outcome::Ok, 1),
        (Kind::ListPage, Outcome::InvalidInput, 1),
    ]
}

/// The counts are exactly the expected ones, and each kind's histogram holds its total.
fn assert_counted(name: &str, metrics: &OperationMetrics, expected: &[(Kind, Outcome, u64)]) {
    let counted: Vec<(Kind, Outcome, u64)> = metrics
        .counts
        .iter()
        .map(|row| (row.kind, row.outcome, row.count))
        .collect();
    assert_eq!(counted, expected, "{name}: counts by kind and outcome");
    for kind in Kind::ALL {
        let histogram = metrics.latency(kind).expect("a histogram for every kind");
        let total: u64 = expected
            .iter()
            .filter(|row| row.0 == kind)
            .map(|row| row.2)
            .sum();
        assert_eq!(histogram.count, total, "{name}: {kind} histogram count");
        let in_buckets: u64 = histogram.buckets.iter().map(|(_, count)| count).sum();
        assert_eq!(in_buckets, total, "{name}: {kind} buckets");
        assert_eq!(
            histogram.cumulative().last().map(|last| last.1),
            Some(total)
        );
    }
    // The 60 ms timeout and the 20 ms give-up waited at least that long.
    let waits = metrics.latency(Kind::WaitFor).unwrap();
    assert!(
        waits.sum_seconds >= 0.08,
        "{name}: wait_for sum {}",
        waits.sum_seconds
    );
    let slow: u64 = waits
        .buckets
        .iter()
        .filter(|(bound, _)| *bound > 0.05)
        .map(|(_, count)| count)
        .sum();
    assert!(
        slow >= 1,
        "{name}: the 60 ms timeout is in a bucket above 50 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_counts_a_known_sequence() {
    let backend = InMemoryBackend::new();
    let expected = known_sequence(&backend).await;
    assert_counted("memory", &backend.operations(), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_hub_counts_a_known_sequence_across_its_handles() {
    for config in [
        HubConfig::default(),
        HubConfig::default().with_pipeline_stores(false),
    ] {
        let hub = HubHandle::spawn(config);
        // Through a clone: the hub and every handle share one set.
        let expected = known_sequence(&hub.clone()).await;
        // What the hub answers outside the trait is not an operation.
        hub.stats().await.unwrap();
        assert_counted("hub (own thread)", &hub.operations(), &expected);
        hub.shutdown().await;
        assert_counted("hub after shutdown", &hub.operations(), &expected);
    }
}

#[actix_rt::test]
async fn hub_on_the_callers_arbiter_counts_a_known_sequence() {
    let hub = HubHandle::start(HubConfig::default());
    let expected = known_sequence(&hub).await;
    assert_counted("hub (caller's arbiter)", &hub.operations(), &expected);
    hub.shutdown().await;
}

#[actix_rt::test]
async fn a_from_addr_handle_counts_into_its_hub() {
    use actix::Actor;
    let addr = resulthub::ResultHub::new(HubConfig::default()).start();
    let first = HubHandle::from_addr(addr.clone());
    first
        .store("t1", rec("t1", TaskStatus::Success))
        .await
        .unwrap();
    let second = HubHandle::from_addr(addr);
    second.get("t1").await.unwrap();
    for handle in [&first, &second] {
        let metrics = handle.operations();
        assert_eq!(metrics.count(Kind::Store, Outcome::Ok), 1);
        assert_eq!(metrics.count(Kind::Get, Outcome::Ok), 1);
    }
    first.shutdown().await;
}

/// Reads a backend's metrics.
type Read = Box<dyn Fn() -> OperationMetrics>;

/// Many threads record at once: nothing is lost between the shards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_on_many_threads_are_all_counted() {
    let backends: Vec<(&str, Arc<dyn ResultBackend>, Read)> = {
        let hub = HubHandle::spawn(HubConfig::default());
        let memory = Arc::new(InMemoryBackend::new());
        let read_hub = hub.clone();
        let read_memory = Arc::clone(&memory);
        vec![
            (
                "hub",
                Arc::new(hub),
                Box::new(move || read_hub.operations()),
            ),
            ("memory", memory, Box::new(move || read_memory.operations())),
        ]
    };
    for (name, backend, read) in backends {
        let callers: Vec<_> = (0..8)
            .map(|caller| {
                let backend = Arc::clone(&backend);
                tokio::spawn(async move {
                    for n in 0..500 {
                        let id = format!("c{caller}-{n}");
                        backend
                            .store(&id, TaskResult::new(&id, TaskStatus::Success))
                            .await?;
                        backend.get(&id).await?;
                    }
                    Ok::<_, resulthub::BackendError>(())
                })
            })
            .collect();
        for caller in callers {
            within("a caller", caller).await.unwrap().unwrap();
        }
        let metrics = read();
        assert_eq!(metrics.count(Kind::Store, Outcome::Ok), 4_000, "{name}");
        assert_eq!(metrics.count(Kind::Get, Outcome::Ok), 4_000, "{name}");
        assert_eq!(metrics.latency(Kind::Store).unwrap().count, 4_000, "{name}");
    }
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counts_a_known_sequence() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = support::connect_redis(&server.url()).await;
    // Through a clone: clones share one set.
    let expected = known_sequence(&backend.clone()).await;
    assert_counted("redis", &backend.operations(), &expected);
}
