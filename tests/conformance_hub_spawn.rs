//! The conformance suite against a hub on its own thread (`HubHandle::spawn`), driven from
//! tokio runtimes of both flavours.

mod conformance;

use conformance::Subject;
use resulthub::{HubConfig, HubHandle};

/// Runs a case on a fresh spawned hub and shuts the hub down.
async fn on_spawned_hub(case: impl AsyncFnOnce(&Subject)) {
    let subject = Subject::hub(HubHandle::spawn(HubConfig::default()));
    case(&subject).await;
    subject.finish().await;
}

conformance_cases!(backend_tests {
    multi_thread: #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    on_spawned_hub,
    current_thread: #[tokio::test(flavor = "current_thread")]
    on_spawned_hub,
});

// One hub through every case: each case must clean up after the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_spawned_hub() {
    on_spawned_hub(conformance::run_all).await;
}
