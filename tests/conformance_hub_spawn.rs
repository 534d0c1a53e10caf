//! The conformance suite against a hub on its own thread (`HubHandle::spawn`), driven from
//! tokio runtimes of both flavours.

mod conformance;

use conformance::{Subject, guard};
use resulthub::{HubConfig, HubHandle};

macro_rules! spawn_tests {
    ($($case:ident),* $(,)?) => {
        mod multi_thread {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let hub = HubHandle::spawn(HubConfig::default());
                    conformance::$case(&Subject::hub(hub.clone())).await;
                    guard("shutdown()", hub.shutdown()).await;
                }
            )*
        }

        mod current_thread {
            use super::*;
            $(
                #[tokio::test(flavor = "current_thread")]
                async fn $case() {
                    let hub = HubHandle::spawn(HubConfig::default());
                    conformance::$case(&Subject::hub(hub.clone())).await;
                    guard("shutdown()", hub.shutdown()).await;
                }
            )*
        }
    };
}

conformance_cases!(spawn_tests);

// One hub through every case: each case must clean up after the previous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_one_spawned_hub() {
    let hub = HubHandle::spawn(HubConfig::default());
    conformance::run_all(&Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}
