//! The conformance suite against `InMemoryBackend`.

mod conformance;

use conformance::Subject;
use resulthub::{HubConfig, InMemoryBackend};

async fn on_memory_backend(case: impl AsyncFnOnce(&Subject)) {
    case(&Subject::memory(InMemoryBackend::new())).await;
}

conformance_cases!(backend_tests {
    memory: #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    on_memory_backend,
});

// One backend through every case: each case must clean up after the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_default_backend() {
    conformance::run_all(&Subject::memory(InMemoryBackend::default())).await;
}

#[tokio::test(flavor = "current_thread")]
async fn run_all_on_current_thread_runtime() {
    let backend = InMemoryBackend::with_config(HubConfig::default());
    conformance::run_all(&Subject::memory(backend)).await;
}
