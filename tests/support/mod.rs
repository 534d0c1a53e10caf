//! The test harness every test crate shares: a bound on every await ([`TIMEOUT`],
//! [`within`]), one type for a backend under test ([`Subject`]: the hub, `InMemoryBackend` and,
//! with the `redis` feature, `RedisBackend`, behind `Arc<dyn ResultBackend>`), one way to wait
//! for waiters to register ([`Subject::await_waiters`]), one macro that runs a list of cases on
//! each backend ([`backend_tests!`]), and the process's resident memory for the load tests.
//!
//! A test crate includes it with `mod support;`; the conformance suite (`tests/conformance/`)
//! includes it itself and re-exports it, so a crate declares one of the two, never both.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use resulthub::{
    BackendError, HubConfig, HubHandle, HubStats, InMemoryBackend, Limit, ResultBackend,
    TaskResult, TaskStatus,
};
use tokio::task::JoinHandle;

/// Bound on any single await that could hang.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for the bulk cases (thousands of tasks, waits with 30 s timeouts of their own) and for
/// calls that ride out a Redis server's restart or freeze.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Bounds on awaits
// ---------------------------------------------------------------------------------------------

/// Awaits `fut` for at most [`TIMEOUT`], panicking with `what` if it does not finish.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(TIMEOUT, what, fut).await
}

/// Awaits `fut` for at most [`LONG_TIMEOUT`], panicking with `what` if it does not finish.
pub async fn within_long<F: Future>(what: &str, fut: F) -> F::Output {
    within_for(LONG_TIMEOUT, what, fut).await
}

/// Awaits `fut` for at most `limit`, panicking with `what` if it does not finish.
pub async fn within_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("hung: {what} did not finish within {limit:?}"),
    }
}

/// Polls `check` until it holds, for at most [`LONG_TIMEOUT`]: for what only shows outside the
/// process (a server's counters, a subscription's count).
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG_TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {LONG_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Joins a spawned task under [`TIMEOUT`], panicking if it panicked.
pub async fn join<T>(what: &str, handle: JoinHandle<T>) -> T {
    match within(what, handle).await {
        Ok(out) => out,
        Err(error) => panic!("{what}: task failed: {error}"),
    }
}

/// Joins a spawned waiter (see [`Subject::spawn_wait`]) and insists it got a record.
pub async fn join_ok(
    what: &str,
    handle: JoinHandle<Result<TaskResult, BackendError>>,
) -> TaskResult {
    match join(what, handle).await {
        Ok(record) => record,
        Err(error) => panic!("{what}: wait_for failed: {error:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors a call must answer
// ---------------------------------------------------------------------------------------------

#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(what: &str, out: Result<T, BackendError>) {
    assert!(
        matches!(out, Err(BackendError::InvalidInput { .. })),
        "{what}: expected InvalidInput, got {out:?}"
    );
}

/// Insists on an `InvalidInput` or `Overloaded` that reports `limit` at `max`, exceeded with
/// `actual`, for a program to match on.
#[track_caller]
pub fn assert_over_limit(
    what: &str,
    error: Option<BackendError>,
    limit: Limit,
    max: usize,
    actual: usize,
) {
    let Some(error) = error else {
        panic!("{what}: expected a refusal over {limit:?}, got Ok");
    };
    assert!(
        matches!(
            error,
            BackendError::InvalidInput { .. } | BackendError::Overloaded { .. }
        ),
        "{what}: {error:?}"
    );
    let exceeded = error
        .exceeded()
        .unwrap_or_else(|| panic!("{what}: no limit in {error:?}"));
    assert_eq!(
        (exceeded.limit, exceeded.max, exceeded.actual),
        (limit, max, actual),
        "{what}"
    );
}

#[track_caller]
pub fn assert_timeout(
    what: &str,
    out: Result<TaskResult, BackendError>,
    id: &str,
    limit: Duration,
) {
    match out {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!(task_id, id, "{what}: Timeout names the wrong task");
            assert_eq!(timeout, limit, "{what}: Timeout reports the wrong duration");
        }
        other => panic!("{what}: expected Timeout, got {other:?}"),
    }
}

#[track_caller]
pub fn assert_unavailable<T: std::fmt::Debug>(what: &str, out: Result<T, BackendError>) {
    assert!(
        matches!(out, Err(BackendError::Unavailable { .. })),
        "{what}: expected Unavailable, got {out:?}"
    );
}

/// Every operation of a stopped hub answers `Unavailable`, each within [`TIMEOUT`]: the
/// trait's calls (`wait_for` with no, a zero and a long timeout; every status's listing), and
/// the handle's `stats`, `snapshot` and `restore`.
pub async fn assert_every_call_unavailable(hub: &HubHandle) {
    let b: &dyn ResultBackend = hub;
    let record = TaskResult::new("after", TaskStatus::Success);
    assert_unavailable(
        "store",
        within("store", b.store("after", record.clone())).await,
    );
    assert_unavailable("get", within("get", b.get("after")).await);
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        assert_unavailable(
            &format!("wait_for({timeout:?})"),
            within("wait_for", b.wait_for("after", timeout)).await,
        );
    }
    assert_unavailable("delete", within("delete", b.delete("after")).await);
    assert_unavailable("clear", within("clear", b.clear()).await);
    for status in TaskStatus::ALL {
        assert_unavailable(
            "list_by_status",
            within("list", b.list_by_status(status, None, 0)).await,
        );
    }
    assert_unavailable("stats", within("stats", hub.stats()).await);
    assert_unavailable("snapshot", within("snapshot", hub.snapshot()).await);
    assert_unavailable(
        "restore",
        within("restore", hub.restore(vec![record])).await,
    );
}

// ---------------------------------------------------------------------------------------------
// The backend under test
// ---------------------------------------------------------------------------------------------

/// Which backend a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A `ResultHub` behind a `HubHandle` (spawned, started, supervised or from the registry).
    Hub,
    /// `InMemoryBackend`.
    Memory,
    /// `RedisBackend`.
    Redis,
}

/// How a backend orders records of equal (or missing) `submitted_at` in listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieOrder {
    /// By first store of the id, as flowrra's in-memory backend (the hub, `InMemoryBackend`).
    FirstStore,
    /// By task id ascending: Redis keeps no first-store order (`RedisBackend`).
    TaskId,
}

/// How many live `wait_for` registrations the backend holds.
type WaitersFn = Arc<dyn Fn() -> BoxFuture<'static, usize> + Send + Sync>;
/// The backend's stats, where it has them.
type StatsFn = Arc<dyn Fn() -> BoxFuture<'static, HubStats> + Send + Sync>;

/// A backend under test: the trait object, what kind it is, how to count its waiters and read
/// its stats, how it lists, and the hub to shut down.
#[derive(Clone)]
pub struct Subject {
    pub kind: Kind,
    pub backend: Arc<dyn ResultBackend>,
    pub tie_order: TieOrder,
    /// Whether `list_page` pages by position (a page starts after the last record of the one
    /// before, whatever changed meanwhile) rather than by offset (the trait's default).
    pub pages_by_position: bool,
    waiters: WaitersFn,
    stats: Option<StatsFn>,
    hub: Option<HubHandle>,
}

impl Subject {
    /// A fresh hub (`HubHandle::spawn`) or `InMemoryBackend` with `config`.
    pub fn open(kind: Kind, config: HubConfig) -> Subject {
        match kind {
            Kind::Hub => Subject::hub(HubHandle::spawn(config)),
            Kind::Memory => Subject::memory(InMemoryBackend::with_config(config)),
            Kind::Redis => panic!("a Redis subject needs a server: use Subject::redis"),
        }
    }

    pub fn hub(handle: HubHandle) -> Subject {
        let counted = handle.clone();
        let stats: StatsFn = Arc::new(move || {
            let hub = counted.clone();
            Box::pin(async move {
                match hub.stats().await {
                    Ok(stats) => stats,
                    Err(error) => panic!("stats() failed on a live hub: {error:?}"),
                }
            })
        });
        Subject {
            kind: Kind::Hub,
            backend: Arc::new(handle.clone()),
            tie_order: TieOrder::FirstStore,
            pages_by_position: true,
            waiters: waiters_from(Arc::clone(&stats)),
            stats: Some(stats),
            hub: Some(handle),
        }
    }

    pub fn memory(backend: InMemoryBackend) -> Subject {
        let backend = Arc::new(backend);
        let counted = Arc::clone(&backend);
        let stats: StatsFn = Arc::new(move || {
            let stats = counted.stats();
            Box::pin(async move { stats })
        });
        Subject {
            kind: Kind::Memory,
            backend,
            tie_order: TieOrder::FirstStore,
            pages_by_position: true,
            waiters: waiters_from(Arc::clone(&stats)),
            stats: Some(stats),
            hub: None,
        }
    }

    /// A `RedisBackend`: it has no stats; its waiters are the ones of this process.
    #[cfg(feature = "redis")]
    pub fn redis(backend: resulthub::RedisBackend) -> Subject {
        let counted = backend.clone();
        Subject {
            kind: Kind::Redis,
            backend: Arc::new(backend),
            tie_order: TieOrder::TaskId,
            pages_by_position: false,
            waiters: Arc::new(move || {
                let n = counted.local_waiters();
                Box::pin(async move { n })
            }),
            stats: None,
            hub: None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Hub => "hub",
            Kind::Memory => "memory",
            Kind::Redis => "redis",
        }
    }

    /// The hub behind the subject, if it is one.
    pub fn hub_handle(&self) -> Option<&HubHandle> {
        self.hub.as_ref()
    }

    /// The order the subject lists a group of tied records in, given their first-store order.
    pub fn tied<'a>(&self, first_stored: &[&'a str]) -> Vec<&'a str> {
        let mut ids = first_stored.to_vec();
        if self.tie_order == TieOrder::TaskId {
            ids.sort_unstable();
        }
        ids
    }

    /// The backend's stats; panics for a backend without them (Redis).
    pub async fn stats(&self) -> HubStats {
        let Some(stats) = &self.stats else {
            panic!("{}: this backend has no stats", self.name());
        };
        within("stats()", stats()).await
    }

    /// How many live `wait_for` registrations the backend holds.
    pub async fn waiters(&self) -> usize {
        within("waiter count", (self.waiters)()).await
    }

    /// Polls the live waiter count until it is `expected`, for at most [`TIMEOUT`]: the
    /// deterministic signal that a spawned `wait_for` has registered (or a dropped one has been
    /// forgotten).
    pub async fn await_waiters(&self, expected: usize) {
        self.await_waiters_within(TIMEOUT, expected).await;
    }

    /// [`Subject::await_waiters`] with a bound of its own, for hundreds of thousands of waiters.
    pub async fn await_waiters_within(&self, limit: Duration, expected: usize) {
        let poll = async {
            loop {
                if self.waiters().await == expected {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if tokio::time::timeout(limit, poll).await.is_err() {
            panic!(
                "{}: waiters never reached {expected} within {limit:?} (now {})",
                self.name(),
                self.waiters().await
            );
        }
    }

    /// Spawns `wait_for(id, timeout)` on the current runtime.
    pub fn spawn_wait(
        &self,
        id: impl Into<String>,
        timeout: Option<Duration>,
    ) -> JoinHandle<Result<TaskResult, BackendError>> {
        let backend = Arc::clone(&self.backend);
        let id = id.into();
        tokio::spawn(async move { backend.wait_for(&id, timeout).await })
    }

    /// Shuts the hub down (a no-op for the other backends).
    pub async fn finish(&self) {
        if let Some(hub) = &self.hub {
            within("shutdown()", hub.shutdown()).await;
        }
    }

    // -----------------------------------------------------------------------------------------
    // The trait's calls, each under `TIMEOUT`, panicking on an error where noted
    // -----------------------------------------------------------------------------------------

    /// `clear()`, to start a case from an empty backend.
    pub async fn fresh(&self) {
        self.clear().await;
    }

    /// Stores `record` under its own id and returns the outcome.
    pub async fn store(&self, record: TaskResult) -> Result<(), BackendError> {
        let id = record.task_id.clone();
        within(&format!("store({id:?})"), self.backend.store(&id, record)).await
    }

    /// Stores `record` under its own id and panics on an error.
    pub async fn put(&self, record: TaskResult) {
        let id = record.task_id.clone();
        if let Err(error) = self.store(record).await {
            panic!("{}: store({id:?}) failed: {error:?}", self.name());
        }
    }

    pub async fn get(&self, id: &str) -> Option<TaskResult> {
        match within(&format!("get({id:?})"), self.backend.get(id)).await {
            Ok(record) => record,
            Err(error) => panic!("{}: get({id:?}) failed: {error:?}", self.name()),
        }
    }

    pub async fn wait(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        within(
            &format!("wait_for({id:?}, {timeout:?})"),
            self.backend.wait_for(id, timeout),
        )
        .await
    }

    pub async fn delete(&self, id: &str) -> bool {
        match within(&format!("delete({id:?})"), self.backend.delete(id)).await {
            Ok(existed) => existed,
            Err(error) => panic!("{}: delete({id:?}) failed: {error:?}", self.name()),
        }
    }

    pub async fn clear(&self) -> usize {
        match within("clear()", self.backend.clear()).await {
            Ok(n) => n,
            Err(error) => panic!("{}: clear() failed: {error:?}", self.name()),
        }
    }

    pub async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Vec<TaskResult> {
        let what = format!("list_by_status({status}, {limit:?}, {offset})");
        match within(&what, self.backend.list_by_status(status, limit, offset)).await {
            Ok(records) => records,
            Err(error) => panic!("{}: {what} failed: {error:?}", self.name()),
        }
    }

    /// The ids of a listing, in listing order.
    pub async fn list_ids(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Vec<String> {
        self.list_by_status(status, limit, offset)
            .await
            .into_iter()
            .map(|record| record.task_id)
            .collect()
    }

    /// The whole listing of `status`.
    pub async fn list(&self, status: TaskStatus) -> Vec<TaskResult> {
        self.list_by_status(status, None, 0).await
    }

    /// The ids of every status's listing, in listing order.
    pub async fn all_listed_ids(&self) -> Vec<(TaskStatus, Vec<String>)> {
        let mut out = Vec::new();
        for status in TaskStatus::ALL {
            out.push((status, self.list_ids(status, None, 0).await));
        }
        out
    }

    /// Insists every status's listing is empty.
    pub async fn assert_all_lists_empty(&self, why: &str) {
        for status in TaskStatus::ALL {
            let ids = self.list_ids(status, None, 0).await;
            assert!(ids.is_empty(), "{why}: list_by_status({status}) = {ids:?}");
        }
    }
}

fn waiters_from(stats: StatsFn) -> WaitersFn {
    Arc::new(move || {
        let stats = stats();
        Box::pin(async move { stats.await.waiters })
    })
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// A record with only an id and a status.
pub fn rec(id: &str, status: TaskStatus) -> TaskResult {
    TaskResult::new(id, status)
}

/// `secs` seconds after 2023-11-14 22:13:20 UTC (Unix time 1,700,000,000).
pub fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("a valid timestamp")
}

/// `config` on the manual clock `clock`.
pub fn clocked(clock: &resulthub::ManualClock, config: HubConfig) -> HubConfig {
    config.with_clock(resulthub::Clock::from(clock.clone()))
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Asserts the backend holds exactly `present` (by get, listings and stats) and not `absent`.
pub async fn assert_holds(s: &Subject, present: &[&str], absent: &[&str]) {
    let name = s.name();
    // Listings first: an expired record must be gone before anything else touched it.
    let mut listed: Vec<String> = Vec::new();
    for (_, ids) in s.all_listed_ids().await {
        listed.extend(ids);
    }
    listed.sort();
    let mut expected: Vec<String> = present.iter().map(|id| (*id).to_owned()).collect();
    expected.sort();
    assert_eq!(listed, expected, "{name}: listed ids");
    let stats = s.stats().await;
    assert_eq!(
        stats.results,
        present.len(),
        "{name}: stats.results {stats:?}"
    );
    for id in present {
        assert!(s.get(id).await.is_some(), "{name}: {id} should be held");
    }
    for id in absent {
        assert_eq!(s.get(id).await, None, "{name}: {id} should be gone");
    }
}

/// Asserts `out` is `Overloaded` by `limit` at `max`, for a program to match on.
#[track_caller]
pub fn assert_overloaded<T: std::fmt::Debug>(
    what: &str,
    out: Result<T, BackendError>,
    limit: Limit,
    max: usize,
) {
    match out {
        Err(BackendError::Overloaded { exceeded, .. }) => {
            assert_eq!((exceeded.limit, exceeded.max), (limit, max), "{what}");
            assert!(exceeded.actual >= max, "{what}: {exceeded:?}");
        }
        other => panic!("{what}: expected Overloaded, got {other:?}"),
    }
}

/// Connects a `RedisBackend` with the default options, under [`TIMEOUT`].
#[cfg(feature = "redis")]
pub async fn connect_redis(url: &str) -> resulthub::RedisBackend {
    within("connect", resulthub::RedisBackend::connect(url))
        .await
        .expect("connect")
}

// ---------------------------------------------------------------------------------------------
// A hub's waiters
// ---------------------------------------------------------------------------------------------

/// The hub's records, in first-store order.
pub async fn snapshot(hub: &HubHandle) -> Vec<TaskResult> {
    within("snapshot", hub.snapshot()).await.expect("snapshot")
}

/// Spawns `n` waiters on distinct ids (one of them stored as pending), half without a timeout
/// and half with a long one, and waits until the hub holds them all.
pub async fn pending_waiters(
    hub: &HubHandle,
    n: usize,
) -> Vec<JoinHandle<Result<TaskResult, BackendError>>> {
    let subject = Subject::hub(hub.clone());
    subject.put(rec("pending", TaskStatus::Pending)).await;
    let handles = (0..n)
        .map(|i| {
            let id = if i == 0 {
                "pending".to_owned()
            } else {
                format!("w-{i}")
            };
            let timeout = if i % 2 == 0 {
                None
            } else {
                Some(Duration::from_secs(60))
            };
            subject.spawn_wait(id, timeout)
        })
        .collect();
    subject.await_waiters(n).await;
    handles
}

/// Joins every waiter and insists each heard `Unavailable`.
pub async fn assert_waiters_unavailable(
    what: &str,
    handles: Vec<JoinHandle<Result<TaskResult, BackendError>>>,
) {
    for handle in handles {
        assert_unavailable(what, join(what, handle).await);
    }
}

/// The listing of `status` as the contract defines it over `records` (given in first-store
/// order, as a snapshot returns them): newest `submitted_at` first, none last, ties in order.
pub fn expected_listing(records: &[TaskResult], status: TaskStatus) -> Vec<TaskResult> {
    let mut matching: Vec<(usize, &TaskResult)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == status)
        .collect();
    matching.sort_by(|(ia, a), (ib, b)| {
        let by_time = match (a.submitted_at, b.submitted_at) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_time.then(ia.cmp(ib))
    });
    matching.into_iter().map(|(_, r)| r.clone()).collect()
}

/// The hub's derived structures agree with its records: every listing is exactly what the
/// records imply, `get` returns each record, and stats count them.
pub async fn assert_consistent(s: &Subject, why: &str) {
    let hub = s.hub_handle().expect("a hub");
    let records = snapshot(hub).await;
    for status in TaskStatus::ALL {
        assert_eq!(
            s.list(status).await,
            expected_listing(&records, status),
            "{why}: listing of {status} disagrees with the records"
        );
    }
    for record in &records {
        assert_eq!(
            s.get(&record.task_id).await.as_ref(),
            Some(record),
            "{why}: get"
        );
    }
    let stats = s.stats().await;
    assert_eq!(stats.results, records.len(), "{why}: {stats:?}");
    for status in TaskStatus::ALL {
        let held = records.iter().filter(|r| r.status == status).count();
        assert_eq!(stats.by_status.get(status), held, "{why}: {status} count");
    }
}

// ---------------------------------------------------------------------------------------------
// One test per case and backend
// ---------------------------------------------------------------------------------------------

/// Runs a case that opens its own subject (`async fn case(kind: Kind)`) on the hub.
pub async fn on_hub(case: impl AsyncFnOnce(Kind)) {
    case(Kind::Hub).await;
}

/// Runs a case that opens its own subject (`async fn case(kind: Kind)`) on `InMemoryBackend`.
pub async fn on_memory(case: impl AsyncFnOnce(Kind)) {
    case(Kind::Memory).await;
}

/// One test per case and backend.
///
/// ```ignore
/// backend_tests!([case_a, case_b]
///     hub: #[tokio::test] on_hub,
///     memory: #[tokio::test] on_memory,
/// );
/// ```
///
/// makes a module per backend (`hub`, `memory`) holding one test per case, with the given test
/// attribute; each test calls the runner with the case (`on_hub(crate::case_a).await`). The
/// runner sets up the backend, runs the case on it and cleans up: [`on_hub`] and [`on_memory`]
/// for cases that take a [`Kind`], a function of the test file for cases that take a
/// `&Subject`. Cases in a module are named `[module::{case_a, case_b}]`; the conformance suite
/// gives its list with `conformance_cases!(backend_tests { ... })`.
#[macro_export]
macro_rules! backend_tests {
    ($cases:tt $($module:ident: #[$attr:meta] $run:path),+ $(,)?) => {
        $( $crate::backend_tests!(@module $module [$attr] [$run] $cases); )+
    };
    (@module $module:ident [$attr:meta] [$run:path] [$in:ident :: {$($case:ident),* $(,)?}]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$attr]
                async fn $case() {
                    $run($crate::$in::$case).await;
                }
            )*
        }
    };
    (@module $module:ident [$attr:meta] [$run:path] [$($case:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[$attr]
                async fn $case() {
                    $run($crate::$case).await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

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
