//! Compile-time guarantees: every public type crosses threads, every backend fits behind
//! `Arc<dyn ResultBackend>`, and every future the API returns is `Send`.

mod support;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use resulthub::messages::{
    Clear, Delete, Get, ListByStatus, PendingWait, Shutdown, Stats, Store, WaitFor, WaitOutcome,
};
use resulthub::{
    BackendError, BoxError, HubConfig, HubHandle, HubStats, InMemoryBackend, ParseStatusError,
    ResultBackend, ResultHub, StatusCounts, TaskResult, TaskStatus,
};
use support::within;

fn assert_send_sync<T: Send + Sync + 'static>() {}
fn assert_unpin<T: Unpin>() {}

/// Accepts only a `Send` future; dropping it unpolled is harmless.
fn require_send<F: Future + Send>(fut: F) {
    drop(fut);
}

fn into_dyn<B: ResultBackend + 'static>(backend: B) -> Arc<dyn ResultBackend> {
    Arc::new(backend)
}

#[test]
fn public_types_are_send_sync_and_unpin() {
    assert_send_sync::<TaskStatus>();
    assert_send_sync::<TaskResult>();
    assert_send_sync::<BackendError>();
    assert_send_sync::<HubConfig>();
    assert_send_sync::<HubStats>();
    assert_send_sync::<StatusCounts>();
    assert_send_sync::<HubHandle>();
    assert_send_sync::<InMemoryBackend>();
    assert_send_sync::<ResultHub>();
    assert_send_sync::<ParseStatusError>();
    assert_send_sync::<BoxError>();
    #[cfg(feature = "fault-injection")]
    assert_send_sync::<resulthub::testing::StopHub>();
    assert_send_sync::<Store>();
    assert_send_sync::<Get>();
    assert_send_sync::<WaitFor>();
    assert_send_sync::<WaitOutcome>();
    assert_send_sync::<PendingWait>();
    assert_send_sync::<Delete>();
    assert_send_sync::<Clear>();
    assert_send_sync::<ListByStatus>();
    assert_send_sync::<resulthub::messages::ListPage>();
    assert_send_sync::<resulthub::messages::GetMany>();
    assert_send_sync::<resulthub::messages::StoreMany>();
    assert_send_sync::<Stats>();
    assert_send_sync::<Shutdown>();
    assert_send_sync::<actix::Addr<ResultHub>>();
    assert_send_sync::<Arc<dyn ResultBackend>>();
    assert_send_sync::<Box<dyn ResultBackend>>();

    assert_unpin::<TaskResult>();
    assert_unpin::<HubHandle>();
    assert_unpin::<InMemoryBackend>();
    assert_unpin::<ResultHub>();
    // Awaited directly by callers of the raw messages.
    assert_unpin::<PendingWait>();
}

#[test]
fn backend_error_is_a_std_error_usable_with_boxed_errors() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<BackendError>();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(BackendError::Unsupported {
        operation: "delete",
    });
    assert!(boxed.to_string().contains("delete"));
}

#[test]
fn handle_is_clone_and_debug() {
    fn assert_clone_debug<T: Clone + Debug>() {}
    assert_clone_debug::<HubHandle>();
    assert_clone_debug::<HubConfig>();
    assert_clone_debug::<HubStats>();
    assert_clone_debug::<TaskResult>();
}

#[test]
fn memory_backend_fits_behind_arc_dyn() {
    let backend: Arc<dyn ResultBackend> = Arc::new(InMemoryBackend::new());
    let from_default = into_dyn(InMemoryBackend::default());
    let configured = into_dyn(InMemoryBackend::with_config(HubConfig::default()));
    for b in [backend, from_default, configured] {
        let found = futures::executor::block_on(b.get("x")).expect("get");
        assert_eq!(found, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_handle_fits_behind_arc_dyn() {
    let hub = HubHandle::spawn(HubConfig::default());
    let backend: Arc<dyn ResultBackend> = Arc::new(hub.clone());
    let generic = into_dyn(hub.clone());
    assert_eq!(backend.get("x").await.expect("get"), None);
    assert_eq!(generic.get("x").await.expect("get"), None);
    // A summary, not a dump of every record.
    let debug = format!("{hub:?}");
    assert!(debug.starts_with("HubHandle"), "{debug}");
    within("shutdown()", hub.shutdown()).await;
}

/// Every trait method's future, on a trait object.
fn dyn_futures_are_send(b: &dyn ResultBackend) {
    let record = TaskResult::new("x", TaskStatus::Success);
    require_send(b.store("x", record));
    require_send(b.get("x"));
    require_send(b.wait_for("x", None));
    require_send(b.wait_for("x", Some(Duration::from_secs(1))));
    require_send(b.delete("x"));
    require_send(b.clear());
    require_send(b.list_by_status(TaskStatus::Pending, Some(1), 0));
}

#[test]
fn memory_backend_futures_are_send() {
    let backend = InMemoryBackend::new();
    dyn_futures_are_send(&backend);
    // Through the concrete type as well.
    require_send(backend.get("x"));
    require_send(backend.wait_for("x", Some(Duration::ZERO)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_handle_futures_are_send() {
    let hub = HubHandle::spawn(HubConfig::default());
    dyn_futures_are_send(&hub);
    require_send(hub.get("x"));
    require_send(hub.stats());
    require_send(hub.shutdown());
    within("shutdown()", hub.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trait_object_calls_can_run_on_spawned_tasks() {
    let backend: Arc<dyn ResultBackend> = Arc::new(InMemoryBackend::new());
    // tokio::spawn needs a Send + 'static future holding the borrow across the await.
    let task = tokio::spawn({
        let backend = Arc::clone(&backend);
        async move {
            let id = String::from("spawned");
            backend
                .store(&id, TaskResult::new(id.clone(), TaskStatus::Success))
                .await?;
            backend.wait_for(&id, Some(Duration::ZERO)).await
        }
    });
    let record = task.await.expect("task").expect("wait_for");
    assert_eq!(record.task_id, "spawned");
}
