//! The conformance suite against a hub started in the test's own actix System
//! (`HubHandle::start`), plus a supervised and a registry hub.

mod conformance;

use actix::SystemService;
use conformance::Subject;
use resulthub::{HubConfig, HubHandle, ResultHub};

/// Runs a case on a fresh hub started in the test's System and shuts the hub down.
async fn on_started_hub(case: impl AsyncFnOnce(&Subject)) {
    let subject = Subject::hub(HubHandle::start(HubConfig::default()));
    case(&subject).await;
    subject.finish().await;
}

conformance_cases!(backend_tests {
    started: #[actix_rt::test]
    on_started_hub,
});

// One hub through every case: each case must clean up after the previous one.
#[actix_rt::test]
async fn run_all_on_one_started_hub() {
    on_started_hub(conformance::run_all).await;
}

#[actix_rt::test]
async fn run_all_on_a_supervised_hub() {
    let addr = actix::Supervisor::start(|_| ResultHub::new(HubConfig::default()));
    let subject = Subject::hub(HubHandle::from_addr(addr));
    conformance::run_all(&subject).await;
    subject.finish().await;
}

#[actix_rt::test]
async fn run_all_on_the_registry_hub() {
    let subject = Subject::hub(HubHandle::from_addr(ResultHub::from_registry()));
    conformance::run_all(&subject).await;
    subject.finish().await;
}
