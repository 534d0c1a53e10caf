//! The conformance suite against a hub started in the test's own actix System
//! (`HubHandle::start`), plus a supervised and a registry hub.

mod conformance;

use actix::SystemService;
use conformance::{Subject, guard};
use resulthub::{HubConfig, HubHandle, ResultHub};

macro_rules! start_tests {
    ($($case:ident),* $(,)?) => {
        $(
            #[actix_rt::test]
            async fn $case() {
                let hub = HubHandle::start(HubConfig::default());
                conformance::$case(&Subject::hub(hub.clone())).await;
                guard("shutdown()", hub.shutdown()).await;
            }
        )*
    };
}

conformance_cases!(start_tests);

// One hub through every case: each case must clean up after the previous one.
#[actix_rt::test]
async fn run_all_on_one_started_hub() {
    let hub = HubHandle::start(HubConfig::default());
    conformance::run_all(&Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[actix_rt::test]
async fn run_all_on_a_supervised_hub() {
    let addr = actix::Supervisor::start(|_| ResultHub::new(HubConfig::default()));
    let hub = HubHandle::from_addr(addr);
    conformance::run_all(&Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}

#[actix_rt::test]
async fn run_all_on_the_registry_hub() {
    let hub = HubHandle::from_addr(ResultHub::from_registry());
    conformance::run_all(&Subject::hub(hub.clone())).await;
    guard("shutdown()", hub.shutdown()).await;
}
