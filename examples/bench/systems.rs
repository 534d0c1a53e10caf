//! The systems under test, each run the way its users would run it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use resulthub::{HubConfig, HubHandle, InMemoryBackend, ResultBackend};

use crate::naive::NaiveBackend;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// The hub started on the caller's own arbiter, as in an actix app.
    HubArbiter,
    /// The hub on its own thread, called from a multi-thread tokio runtime.
    HubThread,
    /// `InMemoryBackend` on a multi-thread tokio runtime.
    Memory,
    /// A `Mutex<HashMap>` + `Notify` baseline on a multi-thread tokio runtime.
    Naive,
}

pub const RUST_SYSTEMS: [System; 4] = [
    System::HubArbiter,
    System::HubThread,
    System::Memory,
    System::Naive,
];

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::HubArbiter => "hub (caller's arbiter)",
            System::HubThread => "hub (own thread)",
            System::Memory => "InMemoryBackend",
            System::Naive => "Mutex<HashMap>+Notify",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            System::HubArbiter => "hub-arbiter",
            System::HubThread => "hub-thread",
            System::Memory => "memory",
            System::Naive => "naive",
        }
    }

    pub fn from_key(key: &str) -> Option<System> {
        RUST_SYSTEMS.into_iter().find(|system| system.key() == key)
    }

    /// Runs `body` against a fresh instance of this system, on the runtime its users would use,
    /// and shuts it down afterwards.
    pub fn run<T>(self, body: impl FnOnce(Subject) -> Pin<Box<dyn Future<Output = T>>>) -> T {
        match self {
            System::HubArbiter => actix_rt::System::new().block_on(async move {
                let hub = HubHandle::start(HubConfig::default());
                let out = body(Subject::hub(hub.clone())).await;
                hub.shutdown().await;
                out
            }),
            System::HubThread => multi_thread().block_on(async move {
                let hub = HubHandle::spawn(HubConfig::default());
                let out = body(Subject::hub(hub.clone())).await;
                hub.shutdown().await;
                out
            }),
            System::Memory => multi_thread().block_on(async move {
                let memory = Arc::new(InMemoryBackend::new());
                let counted = Arc::clone(&memory);
                body(Subject {
                    backend: memory,
                    hub: None,
                    waiters: Arc::new(move || counted.stats().waiters),
                })
                .await
            }),
            System::Naive => multi_thread().block_on(async move {
                let naive = Arc::new(NaiveBackend::default());
                let counted = Arc::clone(&naive);
                body(Subject {
                    backend: naive,
                    hub: None,
                    waiters: Arc::new(move || counted.waiters()),
                })
                .await
            }),
        }
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A backend under test, with a way to count its live waiters.
#[derive(Clone)]
pub struct Subject {
    pub backend: Arc<dyn ResultBackend>,
    /// Set for the hub, whose count is a message away.
    pub hub: Option<HubHandle>,
    pub waiters: Arc<dyn Fn() -> usize + Send + Sync>,
}

impl Subject {
    fn hub(hub: HubHandle) -> Subject {
        Subject {
            backend: Arc::new(hub.clone()),
            hub: Some(hub),
            waiters: Arc::new(|| 0),
        }
    }

    /// Waits until `n` waiters are registered; a bench that cannot get there must not hang.
    pub async fn await_waiters(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while self.waiter_count().await < n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} waiters registered after 120 s",
                self.waiter_count().await
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    pub async fn waiter_count(&self) -> usize {
        match &self.hub {
            Some(hub) => hub.stats().await.map(|stats| stats.waiters).unwrap_or(0),
            None => (self.waiters)(),
        }
    }
}
