//! The conformance suite against `InMemoryBackend`.

mod conformance;

use conformance::Subject;
use resulthub::{HubConfig, InMemoryBackend};

macro_rules! memory_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let subject = Subject::memory(InMemoryBackend::new());
                conformance::$case(&subject).await;
            }
        )*
    };
}

conformance_cases!(memory_tests);

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
