//! Helpers shared by `limits.rs`, `faults.rs`, `snapshot.rs`, `model.rs`, `soak.rs` and
//! `load.rs`: a bound on every await, one way to open either backend behind
//! `Arc<dyn ResultBackend>` with a stats closure, and the process's resident memory.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use resulthub::{
    BackendError, HubConfig, HubHandle, HubStats, InMemoryBackend, ResultBackend, TaskResult,
    TaskStatus,
};

/// Bound on any single await that could hang.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `fut` for at most [`TIMEOUT`], panicking with `what` if it does not finish.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(TIMEOUT, what, fut).await
}

/// Awaits `fut` for at most `limit`, panicking with `what` if it does not finish.
pub async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("hung: {what} did not finish within {limit:?}"),
    }
}

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `ResultHub` on its own thread (`HubHandle::spawn`).
    Hub,
    /// `InMemoryBackend::with_config`.
    Memory,
}

/// A stats reader for either backend.
pub type StatsFn = Arc<dyn Fn() -> BoxFuture<'static, HubStats> + Send + Sync>;

/// A backend under test: the trait object, how to read its stats, and the hub to shut down.
#[derive(Clone)]
pub struct Subject {
    pub kind: Kind,
    pub backend: Arc<dyn ResultBackend>,
    stats: StatsFn,
    hub: Option<HubHandle>,
}

impl Subject {
    pub fn open(kind: Kind, config: HubConfig) -> Subject {
        match kind {
            Kind::Hub => Subject::hub(HubHandle::spawn(config)),
            Kind::Memory => Subject::memory(InMemoryBackend::with_config(config)),
        }
    }

    pub fn hub(handle: HubHandle) -> Subject {
        let counted = handle.clone();
        Subject {
            kind: Kind::Hub,
            backend: Arc::new(handle.clone()),
            stats: Arc::new(move || {
                let hub = counted.clone();
                Box::pin(async move {
                    match hub.stats().await {
                        Ok(stats) => stats,
                        Err(error) => panic!("stats() failed on a live hub: {error:?}"),
                    }
                })
            }),
            hub: Some(handle),
        }
    }

    pub fn memory(backend: InMemoryBackend) -> Subject {
        let backend = Arc::new(backend);
        let counted = Arc::clone(&backend);
        Subject {
            kind: Kind::Memory,
            backend,
            stats: Arc::new(move || {
                let stats = counted.stats();
                Box::pin(async move { stats })
            }),
            hub: None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Hub => "hub",
            Kind::Memory => "memory",
        }
    }

    pub fn hub_handle(&self) -> Option<&HubHandle> {
        self.hub.as_ref()
    }

    pub async fn stats(&self) -> HubStats {
        within("stats()", (self.stats)()).await
    }

    /// Polls the live waiter count until it is `expected`: the deterministic signal that a
    /// spawned `wait_for` has registered (or a dropped one has been forgotten).
    pub async fn await_waiters(&self, expected: usize) {
        let poll = async {
            loop {
                if self.stats().await.waiters == expected {
                    return;
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        match tokio::time::timeout(TIMEOUT, poll).await {
            Ok(()) => {}
            Err(_) => panic!(
                "{}: waiters never reached {expected} within {TIMEOUT:?} (now {})",
                self.name(),
                self.stats().await.waiters
            ),
        }
    }

    pub async fn store(&self, record: TaskResult) -> Result<(), BackendError> {
        let id = record.task_id.clone();
        within("store", self.backend.store(&id, record)).await
    }

    /// Stores and panics on an error.
    pub async fn put(&self, record: TaskResult) {
        let id = record.task_id.clone();
        if let Err(error) = self.store(record).await {
            panic!("{}: store({id:?}) failed: {error:?}", self.name());
        }
    }

    pub async fn get(&self, id: &str) -> Option<TaskResult> {
        match within("get", self.backend.get(id)).await {
            Ok(record) => record,
            Err(error) => panic!("{}: get({id:?}) failed: {error:?}", self.name()),
        }
    }

    pub async fn list(&self, status: TaskStatus) -> Vec<TaskResult> {
        match within(
            "list_by_status",
            self.backend.list_by_status(status, None, 0),
        )
        .await
        {
            Ok(records) => records,
            Err(error) => panic!(
                "{}: list_by_status({status}) failed: {error:?}",
                self.name()
            ),
        }
    }

    /// The ids of every status's listing, in listing order.
    pub async fn all_listed_ids(&self) -> Vec<(TaskStatus, Vec<String>)> {
        let mut out = Vec::new();
        for status in TaskStatus::ALL {
            let ids = self
                .list(status)
                .await
                .into_iter()
                .map(|record| record.task_id)
                .collect();
            out.push((status, ids));
        }
        out
    }

    /// Spawns `wait_for(id, timeout)` on the current runtime.
    pub fn spawn_wait(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> tokio::task::JoinHandle<Result<TaskResult, BackendError>> {
        let backend = Arc::clone(&self.backend);
        let id = id.to_owned();
        tokio::spawn(async move { backend.wait_for(&id, timeout).await })
    }

    /// Shuts the hub down (a no-op for the in-memory backend).
    pub async fn finish(&self) {
        if let Some(hub) = &self.hub {
            within("shutdown()", hub.shutdown()).await;
        }
    }
}

/// Joins a spawned task under [`TIMEOUT`].
pub async fn join<T>(what: &str, handle: tokio::task::JoinHandle<T>) -> T {
    match within(what, handle).await {
        Ok(out) => out,
        Err(error) => panic!("{what}: task failed: {error}"),
    }
}

/// The process's resident set size in bytes, from `/proc/self/statm` (pages of 4096 bytes).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .expect("statm has a resident field")
        .parse()
        .expect("resident pages is a number");
    resident * 4096
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The largest RSS allowed after a run that started at `baseline`: +64 MiB or +25%,
/// whichever is larger.
pub fn rss_allowance(baseline: u64) -> u64 {
    baseline + (64 * 1024 * 1024).max(baseline / 4)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    /// glibc: returns free memory at the top of the heap and in the middle of arenas to the OS.
    fn malloc_trim(pad: usize) -> std::os::raw::c_int;
}

/// The resident set size after asking the allocator to give free memory back: what the process
/// still uses, as opposed to what glibc keeps cached after it was freed.
pub fn trimmed_rss_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory glibc holds free; it has no preconditions.
    unsafe {
        malloc_trim(0);
    }
    rss_bytes()
}
