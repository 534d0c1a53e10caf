//! The conformance suite every `ResultBackend` of this crate must pass.
//!
//! Each `tests/*.rs` file is its own crate: include this with `mod conformance;` and generate
//! one test per case with `conformance_cases!(your_macro)`, or call `run_all`.
//!
//! Cases are backend-agnostic: they only use the trait plus a live-waiter counter, and they
//! never sleep to let things settle; where a waiter must be registered before a store, they
//! poll the waiter count, which is a deterministic signal.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, join_all};
use resulthub::{
    BackendError, Cursor, HubHandle, InMemoryBackend, Limit, ResultBackend, TaskResult, TaskStatus,
};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

/// Bound on any single await that could hang.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for the bulk cases (thousands of tasks), whose waits use 30 s timeouts themselves.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(60);
/// The default `max_task_id_len`; every subject here runs with the default config.
pub const MAX_ID_LEN: usize = 1024;

/// How many live `wait_for` registrations the backend holds.
pub type WaitersFn = Box<dyn Fn() -> BoxFuture<'static, usize> + Send + Sync>;

/// How a backend orders records of equal (or missing) `submitted_at` in listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TieOrder {
    /// By first store of the id, as flowrra's in-memory backend (the hub, `InMemoryBackend`).
    FirstStore,
    /// By task id ascending: Redis keeps no first-store order (`RedisBackend`).
    TaskId,
}

/// The backend under test.
pub struct Subject {
    pub backend: Arc<dyn ResultBackend>,
    pub waiters: WaitersFn,
    pub tie_order: TieOrder,
    /// Whether `list_page` pages by position (a page starts after the last record of the one
    /// before, whatever changed meanwhile) rather than by offset (the trait's default).
    pub pages_by_position: bool,
}

impl Subject {
    pub fn memory(backend: InMemoryBackend) -> Self {
        let backend = Arc::new(backend);
        let counted = Arc::clone(&backend);
        Subject {
            backend,
            waiters: Box::new(move || {
                let n = counted.stats().waiters;
                Box::pin(async move { n })
            }),
            tie_order: TieOrder::FirstStore,
            pages_by_position: true,
        }
    }

    pub fn hub(handle: HubHandle) -> Self {
        let counted = handle.clone();
        Subject {
            backend: Arc::new(handle),
            waiters: Box::new(move || {
                let hub = counted.clone();
                Box::pin(async move {
                    match hub.stats().await {
                        Ok(stats) => stats.waiters,
                        Err(e) => panic!("stats() failed on a live hub: {e:?}"),
                    }
                })
            }),
            tie_order: TieOrder::FirstStore,
            pages_by_position: true,
        }
    }

    #[cfg(feature = "redis")]
    pub fn redis(backend: resulthub::RedisBackend) -> Self {
        let counted = backend.clone();
        Subject {
            backend: Arc::new(backend),
            waiters: Box::new(move || {
                let n = counted.local_waiters();
                Box::pin(async move { n })
            }),
            tie_order: TieOrder::TaskId,
            pages_by_position: false,
        }
    }

    /// The order `s` lists a group of tied records in, given their first-store order.
    pub fn tied<'a>(&self, first_stored: &[&'a str]) -> Vec<&'a str> {
        let mut ids = first_stored.to_vec();
        if self.tie_order == TieOrder::TaskId {
            ids.sort_unstable();
        }
        ids
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Awaits `fut` for at most `limit`, panicking with `what` if it does not finish.
pub async fn guard_for<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("hung: {what} did not finish within {limit:?}"),
    }
}

/// Awaits `fut` for at most [`TIMEOUT`].
pub async fn guard<F: Future>(what: &str, fut: F) -> F::Output {
    guard_for(TIMEOUT, what, fut).await
}

pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("a valid timestamp")
}

pub fn kwargs(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub async fn fresh(s: &Subject) {
    guard("clear()", s.backend.clear())
        .await
        .expect("clear() failed");
}

pub async fn store(s: &Subject, record: TaskResult) {
    let id = record.task_id.clone();
    let what = format!("store({id:?})");
    if let Err(e) = guard(&what, s.backend.store(&id, record)).await {
        panic!("{what} failed: {e:?}");
    }
}

pub async fn get(s: &Subject, id: &str) -> Option<TaskResult> {
    let what = format!("get({id:?})");
    match guard(&what, s.backend.get(id)).await {
        Ok(found) => found,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

pub async fn wait(
    s: &Subject,
    id: &str,
    timeout: Option<Duration>,
) -> Result<TaskResult, BackendError> {
    guard(
        &format!("wait_for({id:?}, {timeout:?})"),
        s.backend.wait_for(id, timeout),
    )
    .await
}

pub async fn delete(s: &Subject, id: &str) -> bool {
    let what = format!("delete({id:?})");
    match guard(&what, s.backend.delete(id)).await {
        Ok(existed) => existed,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

pub async fn clear(s: &Subject) -> usize {
    match guard("clear()", s.backend.clear()).await {
        Ok(n) => n,
        Err(e) => panic!("clear() failed: {e:?}"),
    }
}

pub async fn list(
    s: &Subject,
    status: TaskStatus,
    limit: Option<usize>,
    offset: usize,
) -> Vec<TaskResult> {
    let what = format!("list_by_status({status}, {limit:?}, {offset})");
    match guard(&what, s.backend.list_by_status(status, limit, offset)).await {
        Ok(records) => records,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

pub async fn list_ids(
    s: &Subject,
    status: TaskStatus,
    limit: Option<usize>,
    offset: usize,
) -> Vec<String> {
    list(s, status, limit, offset)
        .await
        .into_iter()
        .map(|r| r.task_id)
        .collect()
}

pub async fn assert_all_lists_empty(s: &Subject, why: &str) {
    for status in TaskStatus::ALL {
        let ids = list_ids(s, status, None, 0).await;
        assert!(ids.is_empty(), "{why}: list_by_status({status}) = {ids:?}");
    }
}

pub async fn waiters(s: &Subject) -> usize {
    guard("waiter count", (s.waiters)()).await
}

/// Polls the waiter count until it is `expected`: the deterministic way to know waiters are
/// registered (or gone) before acting.
pub async fn await_waiters(s: &Subject, expected: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let n = waiters(s).await;
        if n == expected {
            return;
        }
        if Instant::now() >= deadline {
            panic!("waiter count stayed at {n}, expected {expected}, for {TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub fn spawn_wait(
    s: &Subject,
    id: impl Into<String>,
    timeout: Option<Duration>,
) -> JoinHandle<Result<TaskResult, BackendError>> {
    let backend = Arc::clone(&s.backend);
    let id = id.into();
    tokio::spawn(async move { backend.wait_for(&id, timeout).await })
}

pub async fn join<T>(what: &str, handle: JoinHandle<T>) -> T {
    match guard(what, handle).await {
        Ok(out) => out,
        Err(e) => panic!("{what}: task failed: {e}"),
    }
}

/// Joins a waiter and insists it got a record.
pub async fn join_ok(
    what: &str,
    handle: JoinHandle<Result<TaskResult, BackendError>>,
) -> TaskResult {
    match join(what, handle).await {
        Ok(record) => record,
        Err(e) => panic!("{what}: wait_for failed: {e:?}"),
    }
}

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

fn full_record(id: &str, status: TaskStatus) -> TaskResult {
    TaskResult::new(id, status)
        .with_task_name("tasks.add")
        .with_result(json!({"sum": 5}))
        .with_submitted_at(at(1_700_000_000))
        .with_started_at(at(1_700_000_001))
        .with_finished_at(at(1_700_000_002))
        .with_retries(1)
        .with_args(vec![json!(2), json!(3)])
        .with_kwargs(kwargs(&[("scale", json!(1)), ("mode", json!("fast"))]))
}

// ---------------------------------------------------------------------------------------------
// The case list: one place, used by `run_all` and by every test file's generator macro.
// ---------------------------------------------------------------------------------------------

#[macro_export]
macro_rules! conformance_cases {
    ($callback:ident) => {
        $callback! {
            store_then_get_returns_the_record,
            get_missing_id_returns_none,
            store_replaces_the_record,
            wait_for_returns_at_once_when_already_terminal,
            wait_for_wakes_on_terminal_store,
            wait_for_times_out_without_terminal_store,
            wait_for_waits_when_record_went_back_to_non_terminal,
            delete_returns_true_for_existing_record,
            delete_returns_false_for_missing_record,
            clear_returns_number_removed,
            multiple_waiters_all_receive_the_record,
            list_orders_newest_submitted_first_and_missing_last,
            list_breaks_ties_by_first_store_order,
            list_restore_keeps_place,
            list_delete_or_clear_then_store_counts_as_new,
            list_orders_by_sticky_submitted_at,
            list_filters_by_status,
            list_offset_and_limit_edges,
            list_returns_records_equal_to_get,
            sticky_submitted_at_is_kept,
            sticky_task_name_is_kept,
            sticky_args_are_kept,
            sticky_kwargs_are_kept,
            explicit_new_task_fields_win,
            attempt_fields_are_replaced,
            deleted_or_cleared_record_leaves_no_sticky_fields,
            store_rejects_empty_id_without_change,
            store_rejects_mismatched_id_without_change,
            records_nested_too_deep_are_refused_without_change,
            wait_for_rejects_empty_id,
            long_id_is_rejected_by_every_id_operation,
            id_at_length_limit_is_accepted,
            non_terminal_stores_do_not_wake_waiters,
            wait_for_waits_for_never_stored_id,
            wait_for_accepts_duration_max,
            wait_for_zero_timeout,
            thousand_waiters_on_one_id_all_receive_the_record,
            ten_thousand_waiters_racing_their_stores_all_wake,
            timed_out_waiters_leave_nothing_behind,
            dropped_wait_futures_leave_nothing_behind,
            delete_and_clear_do_not_wake_waiters,
            waiters_receive_the_merged_record_equal_to_get,
            dropped_store_future_is_not_lost,
            each_caller_reads_its_own_writes,
            get_many_returns_one_entry_per_id_in_order,
            store_many_stores_in_order_and_a_bad_record_fails_alone,
            wait_for_all_returns_every_record_in_order,
            wait_for_all_times_out_naming_the_open_ids_and_leaves_nothing,
            dropped_wait_for_all_leaves_nothing_behind,
            wait_for_any_returns_the_first_terminal_record,
            batch_waits_with_a_zero_timeout_poll,
            list_page_walks_every_record_once_in_order,
            list_page_by_position_is_stable_while_records_change,
        }
    };
}

macro_rules! define_run_all {
    ($($case:ident),* $(,)?) => {
        /// Runs every case in order on one backend; each case starts with `clear()`.
        pub async fn run_all(s: &Subject) {
            $(
                eprintln!("conformance case: {}", stringify!($case));
                $case(s).await;
            )*
        }
    };
}

conformance_cases!(define_run_all);

// ---------------------------------------------------------------------------------------------
// flowrra's own backend tests
// ---------------------------------------------------------------------------------------------

pub async fn store_then_get_returns_the_record(s: &Subject) {
    fresh(s).await;
    let record = full_record("task-1", TaskStatus::Success);
    store(s, record.clone()).await;
    assert_eq!(get(s, "task-1").await, Some(record));
}

pub async fn get_missing_id_returns_none(s: &Subject) {
    fresh(s).await;
    assert_eq!(get(s, "nonexistent").await, None);
    store(s, TaskResult::new("present", TaskStatus::Pending)).await;
    assert_eq!(get(s, "nonexistent").await, None);
}

pub async fn store_replaces_the_record(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("task-1", TaskStatus::Pending)).await;
    let done = TaskResult::new("task-1", TaskStatus::Success)
        .with_result(json!("done"))
        .with_retries(2);
    store(s, done.clone()).await;
    assert_eq!(get(s, "task-1").await, Some(done));
    assert!(list_ids(s, TaskStatus::Pending, None, 0).await.is_empty());
    assert_eq!(list_ids(s, TaskStatus::Success, None, 0).await, ["task-1"]);
}

pub async fn wait_for_returns_at_once_when_already_terminal(s: &Subject) {
    fresh(s).await;
    let done = full_record("done", TaskStatus::Success);
    let failed = TaskResult::new("failed", TaskStatus::Failed).with_error("boom");
    store(s, done.clone()).await;
    store(s, failed.clone()).await;
    // No store follows: these can only succeed by answering from the stored record.
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        assert_eq!(wait(s, "done", timeout).await.expect("terminal"), done);
        assert_eq!(wait(s, "failed", timeout).await.expect("terminal"), failed);
    }
    await_waiters(s, 0).await;
}

pub async fn wait_for_wakes_on_terminal_store(s: &Subject) {
    fresh(s).await;
    for (id, status) in [("ok", TaskStatus::Success), ("ko", TaskStatus::Failed)] {
        store(s, TaskResult::new(id, TaskStatus::Running)).await;
        let waiter = spawn_wait(s, id, Some(Duration::from_secs(30)));
        await_waiters(s, 1).await;
        let record = TaskResult::new(id, status)
            .with_result(json!(id))
            .with_error("if failed");
        store(s, record.clone()).await;
        let got = join_ok("waiter", waiter).await;
        assert_eq!(got, record);
        assert_eq!(Some(got), get(s, id).await);
        await_waiters(s, 0).await;
    }
}

pub async fn wait_for_times_out_without_terminal_store(s: &Subject) {
    fresh(s).await;
    let limit = Duration::from_millis(100);
    let started = Instant::now();
    let out = wait(s, "nonexistent", Some(limit)).await;
    let waited = started.elapsed();
    assert_timeout("never-stored id", out, "nonexistent", limit);
    // Lower bound only (with slack for timer granularity): it really waited.
    assert!(
        waited >= Duration::from_millis(90),
        "gave up after {waited:?}"
    );

    store(s, TaskResult::new("running", TaskStatus::Running)).await;
    let limit = Duration::from_millis(50);
    assert_timeout(
        "running record",
        wait(s, "running", Some(limit)).await,
        "running",
        limit,
    );
    await_waiters(s, 0).await;
}

pub async fn wait_for_waits_when_record_went_back_to_non_terminal(s: &Subject) {
    fresh(s).await;
    store(
        s,
        TaskResult::new("again", TaskStatus::Success).with_result(json!(1)),
    )
    .await;
    store(s, TaskResult::new("again", TaskStatus::Retrying)).await;
    let limit = Duration::from_millis(30);
    assert_timeout(
        "retrying again",
        wait(s, "again", Some(limit)).await,
        "again",
        limit,
    );

    let waiter = spawn_wait(s, "again", None);
    await_waiters(s, 1).await;
    let second = TaskResult::new("again", TaskStatus::Success).with_result(json!(2));
    store(s, second.clone()).await;
    assert_eq!(join_ok("waiter", waiter).await, second);
}

pub async fn delete_returns_true_for_existing_record(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("task-1", TaskStatus::Success)).await;
    assert!(delete(s, "task-1").await);
    assert_eq!(get(s, "task-1").await, None);
    assert!(list_ids(s, TaskStatus::Success, None, 0).await.is_empty());
    assert!(!delete(s, "task-1").await, "second delete found a record");
    // The terminal record is gone, so there is nothing to answer from.
    let out = wait(s, "task-1", Some(Duration::ZERO)).await;
    assert_timeout("deleted record", out, "task-1", Duration::ZERO);
}

pub async fn delete_returns_false_for_missing_record(s: &Subject) {
    fresh(s).await;
    assert!(!delete(s, "nonexistent").await);
    store(s, TaskResult::new("other", TaskStatus::Pending)).await;
    assert!(!delete(s, "nonexistent").await);
    assert!(
        get(s, "other").await.is_some(),
        "delete of another id removed a record"
    );
}

pub async fn clear_returns_number_removed(s: &Subject) {
    fresh(s).await;
    assert_eq!(clear(s).await, 0);
    store(s, TaskResult::new("a", TaskStatus::Pending)).await;
    store(s, TaskResult::new("b", TaskStatus::Success)).await;
    store(s, TaskResult::new("c", TaskStatus::Failed)).await;
    // Re-storing an id must not count twice.
    store(s, TaskResult::new("a", TaskStatus::Running)).await;
    assert_eq!(clear(s).await, 3);
    for id in ["a", "b", "c"] {
        assert_eq!(get(s, id).await, None, "{id} survived clear()");
    }
    assert_all_lists_empty(s, "after clear()").await;
    assert_eq!(clear(s).await, 0);
}

pub async fn multiple_waiters_all_receive_the_record(s: &Subject) {
    fresh(s).await;
    let waiters_ = vec![
        spawn_wait(s, "shared", None),
        spawn_wait(s, "shared", Some(Duration::from_secs(30))),
        spawn_wait(s, "shared", Some(Duration::MAX)),
    ];
    await_waiters(s, 3).await;
    let record = TaskResult::new("shared", TaskStatus::Success).with_result(json!("shared-result"));
    store(s, record.clone()).await;
    for w in waiters_ {
        assert_eq!(join_ok("waiter", w).await, record);
    }
    await_waiters(s, 0).await;
}

// ---------------------------------------------------------------------------------------------
// Ordering and paging
// ---------------------------------------------------------------------------------------------

pub async fn list_orders_newest_submitted_first_and_missing_last(s: &Subject) {
    fresh(s).await;
    let p = TaskStatus::Pending;
    store(s, TaskResult::new("a", p).with_submitted_at(at(10))).await;
    store(s, TaskResult::new("b", p)).await;
    store(s, TaskResult::new("c", p).with_submitted_at(at(30))).await;
    store(s, TaskResult::new("d", p)).await;
    store(s, TaskResult::new("e", p).with_submitted_at(at(20))).await;
    // One microsecond apart still orders.
    let fine = at(20) + chrono::Duration::microseconds(1);
    store(s, TaskResult::new("f", p).with_submitted_at(fine)).await;
    assert_eq!(
        list_ids(s, p, None, 0).await,
        ["c", "f", "e", "a", "b", "d"]
    );
}

pub async fn list_breaks_ties_by_first_store_order(s: &Subject) {
    fresh(s).await;
    let st = TaskStatus::Success;
    // Ids chosen so that neither alphabetical nor reverse order matches store order.
    for id in ["tie-m", "tie-z", "tie-a", "tie-q"] {
        store(s, TaskResult::new(id, st).with_submitted_at(at(5))).await;
    }
    for id in ["none-z", "none-a", "none-m"] {
        store(s, TaskResult::new(id, st)).await;
    }
    store(s, TaskResult::new("newer", st).with_submitted_at(at(6))).await;
    let mut expected = vec!["newer"];
    expected.extend(s.tied(&["tie-m", "tie-z", "tie-a", "tie-q"]));
    expected.extend(s.tied(&["none-z", "none-a", "none-m"]));
    assert_eq!(list_ids(s, st, None, 0).await, expected);
}

pub async fn list_restore_keeps_place(s: &Subject) {
    fresh(s).await;
    let st = TaskStatus::Success;
    for id in ["r1", "r2", "r3"] {
        store(s, TaskResult::new(id, st).with_submitted_at(at(7))).await;
    }
    store(s, TaskResult::new("r1", st).with_result(json!("again"))).await;
    assert_eq!(list_ids(s, st, None, 0).await, ["r1", "r2", "r3"]);

    // Leaving the status and coming back is still the same id: same place.
    store(s, TaskResult::new("r2", TaskStatus::Running)).await;
    assert_eq!(list_ids(s, st, None, 0).await, ["r1", "r3"]);
    store(s, TaskResult::new("r2", st)).await;
    assert_eq!(list_ids(s, st, None, 0).await, ["r1", "r2", "r3"]);

    // Same for records without submitted_at.
    for id in ["n1", "n2", "n3"] {
        store(s, TaskResult::new(id, TaskStatus::Failed)).await;
    }
    store(
        s,
        TaskResult::new("n1", TaskStatus::Failed).with_error("again"),
    )
    .await;
    assert_eq!(
        list_ids(s, TaskStatus::Failed, None, 0).await,
        ["n1", "n2", "n3"]
    );

    // An explicit new submitted_at does move it, by time.
    store(s, TaskResult::new("r3", st).with_submitted_at(at(8))).await;
    assert_eq!(list_ids(s, st, None, 0).await, ["r3", "r1", "r2"]);
}

pub async fn list_delete_or_clear_then_store_counts_as_new(s: &Subject) {
    fresh(s).await;
    let st = TaskStatus::Pending;
    for id in ["n1", "n2", "n3"] {
        store(s, TaskResult::new(id, st).with_submitted_at(at(3))).await;
    }
    assert!(delete(s, "n1").await);
    store(s, TaskResult::new("n1", st).with_submitted_at(at(3))).await;
    assert_eq!(list_ids(s, st, None, 0).await, s.tied(&["n2", "n3", "n1"]));

    clear(s).await;
    store(s, TaskResult::new("c1", st)).await;
    store(s, TaskResult::new("c2", st)).await;
    clear(s).await;
    store(s, TaskResult::new("c2", st)).await;
    store(s, TaskResult::new("c1", st)).await;
    assert_eq!(list_ids(s, st, None, 0).await, s.tied(&["c2", "c1"]));
}

pub async fn list_orders_by_sticky_submitted_at(s: &Subject) {
    fresh(s).await;
    // flowrra's workers write the SUCCESS record without submitted_at; it must still sort.
    store(
        s,
        TaskResult::new("a", TaskStatus::Pending).with_submitted_at(at(10)),
    )
    .await;
    store(
        s,
        TaskResult::new("b", TaskStatus::Pending).with_submitted_at(at(20)),
    )
    .await;
    store(s, TaskResult::new("a", TaskStatus::Success)).await;
    store(
        s,
        TaskResult::new("c", TaskStatus::Success).with_submitted_at(at(15)),
    )
    .await;
    store(s, TaskResult::new("b", TaskStatus::Success)).await;
    store(s, TaskResult::new("d", TaskStatus::Success)).await;
    let listed = list(s, TaskStatus::Success, None, 0).await;
    let ids: Vec<&str> = listed.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "a", "d"]);
    assert_eq!(listed[0].submitted_at, Some(at(20)));
    assert_eq!(listed[2].submitted_at, Some(at(10)));
}

pub async fn list_filters_by_status(s: &Subject) {
    fresh(s).await;
    assert_all_lists_empty(s, "empty backend").await;
    for status in TaskStatus::ALL {
        let id = format!("only-{status}");
        store(s, TaskResult::new(id, status)).await;
    }
    for status in TaskStatus::ALL {
        assert_eq!(
            list_ids(s, status, None, 0).await,
            [format!("only-{status}")]
        );
    }
    store(s, TaskResult::new("only-pending", TaskStatus::Running)).await;
    assert!(list_ids(s, TaskStatus::Pending, None, 0).await.is_empty());
    // "only-pending" was stored first, so it keeps first place in its new status.
    assert_eq!(
        list_ids(s, TaskStatus::Running, None, 0).await,
        ["only-pending", "only-running"]
    );
}

pub async fn list_offset_and_limit_edges(s: &Subject) {
    fresh(s).await;
    let st = TaskStatus::Success;
    let ids = ["s0", "s1", "s2", "s3", "s4"];
    for (i, id) in ids.iter().enumerate() {
        let secs = 50 - 10 * i64::try_from(i).unwrap();
        store(s, TaskResult::new(*id, st).with_submitted_at(at(secs))).await;
    }
    store(s, TaskResult::new("elsewhere", TaskStatus::Failed)).await;

    let cases: &[(Option<usize>, usize, &[&str])] = &[
        (None, 0, &ids),
        (Some(usize::MAX), 0, &ids),
        (Some(5), 0, &ids),
        (Some(6), 0, &ids),
        (Some(0), 0, &[]),
        (Some(0), 2, &[]),
        (Some(2), 0, &["s0", "s1"]),
        (Some(2), 2, &["s2", "s3"]),
        (Some(2), 4, &["s4"]),
        (None, 3, &["s3", "s4"]),
        (Some(1), 4, &["s4"]),
        (None, 5, &[]),
        (Some(3), 5, &[]),
        (None, 100, &[]),
        (None, usize::MAX, &[]),
        (Some(usize::MAX), usize::MAX, &[]),
    ];
    for &(limit, offset, expected) in cases {
        assert_eq!(
            list_ids(s, st, limit, offset).await,
            expected,
            "limit {limit:?}, offset {offset}"
        );
    }
    assert!(
        list_ids(s, TaskStatus::Running, Some(3), 0)
            .await
            .is_empty()
    );
}

pub async fn list_returns_records_equal_to_get(s: &Subject) {
    fresh(s).await;
    store(s, full_record("x", TaskStatus::Pending)).await;
    store(
        s,
        TaskResult::new("x", TaskStatus::Failed).with_error("bad"),
    )
    .await;
    store(s, full_record("y", TaskStatus::Failed)).await;
    for record in list(s, TaskStatus::Failed, None, 0).await {
        assert_eq!(Some(record.clone()), get(s, &record.task_id).await);
    }
}

// ---------------------------------------------------------------------------------------------
// Sticky task fields
// ---------------------------------------------------------------------------------------------

pub async fn sticky_submitted_at_is_kept(s: &Subject) {
    fresh(s).await;
    store(
        s,
        TaskResult::new("t", TaskStatus::Pending).with_submitted_at(at(42)),
    )
    .await;
    store(
        s,
        TaskResult::new("t", TaskStatus::Running).with_started_at(at(43)),
    )
    .await;
    let running = get(s, "t").await.expect("stored");
    assert_eq!(running.submitted_at, Some(at(42)));
    assert_eq!(running.started_at, Some(at(43)));
    store(s, TaskResult::new("t", TaskStatus::Success)).await;
    assert_eq!(
        get(s, "t").await.expect("stored").submitted_at,
        Some(at(42))
    );
}

pub async fn sticky_task_name_is_kept(s: &Subject) {
    fresh(s).await;
    store(
        s,
        TaskResult::new("t", TaskStatus::Pending).with_task_name("tasks.add"),
    )
    .await;
    store(s, TaskResult::new("t", TaskStatus::Running)).await;
    assert_eq!(
        get(s, "t").await.expect("stored").task_name.as_deref(),
        Some("tasks.add")
    );
    store(s, TaskResult::new("t", TaskStatus::Failed).with_error("e")).await;
    let failed = get(s, "t").await.expect("stored");
    assert_eq!(failed.task_name.as_deref(), Some("tasks.add"));
    assert_eq!(failed.error.as_deref(), Some("e"));
}

pub async fn sticky_args_are_kept(s: &Subject) {
    fresh(s).await;
    let args = vec![json!(1), json!("two"), json!([3])];
    store(
        s,
        TaskResult::new("t", TaskStatus::Pending).with_args(args.clone()),
    )
    .await;
    store(s, TaskResult::new("t", TaskStatus::Running)).await;
    assert_eq!(get(s, "t").await.expect("stored").args, args);
    store(
        s,
        TaskResult::new("t", TaskStatus::Success).with_args(Vec::new()),
    )
    .await;
    assert_eq!(get(s, "t").await.expect("stored").args, args);
}

pub async fn sticky_kwargs_are_kept(s: &Subject) {
    fresh(s).await;
    // Not alphabetical: the kept map must keep its order too.
    let kw = kwargs(&[("zeta", json!(1)), ("alpha", json!({"x": null}))]);
    store(
        s,
        TaskResult::new("t", TaskStatus::Pending).with_kwargs(kw.clone()),
    )
    .await;
    store(
        s,
        TaskResult::new("t", TaskStatus::Retrying).with_retries(1),
    )
    .await;
    let kept = get(s, "t").await.expect("stored").kwargs;
    assert_eq!(kept, kw);
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
    store(
        s,
        TaskResult::new("t", TaskStatus::Success).with_kwargs(Map::new()),
    )
    .await;
    assert_eq!(get(s, "t").await.expect("stored").kwargs, kw);
}

pub async fn explicit_new_task_fields_win(s: &Subject) {
    fresh(s).await;
    store(s, full_record("t", TaskStatus::Pending)).await;
    let replacement = TaskResult::new("t", TaskStatus::Running)
        .with_submitted_at(at(99))
        .with_task_name("tasks.mul")
        .with_args(vec![json!(7)])
        .with_kwargs(kwargs(&[("other", json!(true))]));
    store(s, replacement.clone()).await;
    assert_eq!(get(s, "t").await, Some(replacement));

    // One field set, the others left unset: only that one changes.
    store(
        s,
        TaskResult::new("t", TaskStatus::Success).with_task_name("tasks.div"),
    )
    .await;
    let merged = get(s, "t").await.expect("stored");
    assert_eq!(merged.task_name.as_deref(), Some("tasks.div"));
    assert_eq!(merged.submitted_at, Some(at(99)));
    assert_eq!(merged.args, [json!(7)]);
    assert_eq!(merged.kwargs, kwargs(&[("other", json!(true))]));
}

pub async fn attempt_fields_are_replaced(s: &Subject) {
    fresh(s).await;
    store(s, full_record("t", TaskStatus::Failed).with_error("boom")).await;
    store(s, TaskResult::new("t", TaskStatus::Retrying)).await;
    let retrying = get(s, "t").await.expect("stored");
    // Only the four task fields are sticky; the attempt's fields follow the new record.
    assert_eq!(retrying.status, TaskStatus::Retrying);
    assert_eq!(retrying.result, Value::Null);
    assert_eq!(retrying.error, None);
    assert_eq!(retrying.started_at, None);
    assert_eq!(retrying.finished_at, None);
    assert_eq!(retrying.retries, 0);
    assert_eq!(retrying.task_name.as_deref(), Some("tasks.add"));
}

pub async fn deleted_or_cleared_record_leaves_no_sticky_fields(s: &Subject) {
    fresh(s).await;
    store(s, full_record("d", TaskStatus::Pending)).await;
    assert!(delete(s, "d").await);
    let bare = TaskResult::new("d", TaskStatus::Success);
    store(s, bare.clone()).await;
    assert_eq!(get(s, "d").await, Some(bare));

    store(s, full_record("c", TaskStatus::Pending)).await;
    clear(s).await;
    let bare = TaskResult::new("c", TaskStatus::Success);
    store(s, bare.clone()).await;
    assert_eq!(get(s, "c").await, Some(bare));
}

// ---------------------------------------------------------------------------------------------
// Invalid input
// ---------------------------------------------------------------------------------------------

pub async fn store_rejects_empty_id_without_change(s: &Subject) {
    fresh(s).await;
    let out = guard(
        "store empty",
        s.backend
            .store("", TaskResult::new("", TaskStatus::Success)),
    )
    .await;
    assert!(
        out.as_ref()
            .err()
            .is_some_and(|error| error.exceeded().is_none()),
        "an empty id is not over a limit: {out:?}"
    );
    assert_invalid("store(\"\") with empty record id", out);
    let out = guard(
        "store empty",
        s.backend
            .store("", TaskResult::new("x", TaskStatus::Success)),
    )
    .await;
    assert_invalid("store(\"\") with record id \"x\"", out);
    assert_eq!(get(s, "x").await, None);
    assert_all_lists_empty(s, "after refused stores").await;
    assert_eq!(clear(s).await, 0, "a refused store left a record");
}

pub async fn store_rejects_mismatched_id_without_change(s: &Subject) {
    fresh(s).await;
    let original = full_record("m1", TaskStatus::Pending);
    store(s, original.clone()).await;
    let w1 = spawn_wait(s, "m1", Some(Duration::from_secs(30)));
    let w2 = spawn_wait(s, "m2", Some(Duration::from_secs(30)));
    await_waiters(s, 2).await;

    let bad = TaskResult::new("m2", TaskStatus::Success).with_result(json!("bad"));
    let out = guard("mismatched store", s.backend.store("m1", bad)).await;
    assert_invalid("store(\"m1\", record of m2)", out);

    assert_eq!(get(s, "m1").await, Some(original));
    assert_eq!(get(s, "m2").await, None);
    assert!(list_ids(s, TaskStatus::Success, None, 0).await.is_empty());
    assert_eq!(list_ids(s, TaskStatus::Pending, None, 0).await, ["m1"]);

    // Had the refused store woken them, they would hold the "bad" record.
    let good1 = TaskResult::new("m1", TaskStatus::Success).with_result(json!("good1"));
    let good2 = TaskResult::new("m2", TaskStatus::Failed).with_result(json!("good2"));
    store(s, good1).await;
    store(s, good2.clone()).await;
    assert_eq!(join_ok("m1 waiter", w1).await.result, json!("good1"));
    assert_eq!(join_ok("m2 waiter", w2).await, good2);
}

pub async fn wait_for_rejects_empty_id(s: &Subject) {
    fresh(s).await;
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        assert_invalid(
            &format!("wait_for(\"\", {timeout:?})"),
            wait(s, "", timeout).await,
        );
    }
    await_waiters(s, 0).await;
}

pub async fn long_id_is_rejected_by_every_id_operation(s: &Subject) {
    fresh(s).await;
    let ascii = "x".repeat(MAX_ID_LEN + 1);
    // The limit is in bytes: 513 two-byte characters are 1026 bytes.
    let wide = "é".repeat(MAX_ID_LEN / 2 + 1);
    for id in [ascii, wide] {
        let n = id.len();
        let record = TaskResult::new(id.clone(), TaskStatus::Success);
        let over = |what: &str, error: Option<BackendError>| {
            assert_over_limit(what, error, Limit::MaxTaskIdLen, MAX_ID_LEN, n);
        };
        over(
            &format!("store of a {n}-byte id"),
            guard("store", s.backend.store(&id, record)).await.err(),
        );
        over(
            &format!("get of a {n}-byte id"),
            guard("get", s.backend.get(&id)).await.err(),
        );
        over(
            &format!("delete of a {n}-byte id"),
            guard("delete", s.backend.delete(&id)).await.err(),
        );
        for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
            over(
                &format!("wait_for of a {n}-byte id, {timeout:?}"),
                wait(s, &id, timeout).await.err(),
            );
        }
    }
    assert_all_lists_empty(s, "after refused long-id stores").await;
    await_waiters(s, 0).await;
}

pub async fn id_at_length_limit_is_accepted(s: &Subject) {
    fresh(s).await;
    for id in ["y".repeat(MAX_ID_LEN), "é".repeat(MAX_ID_LEN / 2)] {
        assert_eq!(id.len(), MAX_ID_LEN);
        let record = TaskResult::new(id.clone(), TaskStatus::Success);
        store(s, record.clone()).await;
        assert_eq!(get(s, &id).await, Some(record.clone()));
        assert_eq!(
            wait(s, &id, Some(Duration::ZERO)).await.expect("terminal"),
            record
        );
        assert!(delete(s, &id).await);
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

pub async fn non_terminal_stores_do_not_wake_waiters(s: &Subject) {
    fresh(s).await;
    let waiter = spawn_wait(s, "nt", None);
    await_waiters(s, 1).await;
    for status in [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Retrying,
    ] {
        store(
            s,
            TaskResult::new("nt", status).with_result(json!(status.as_str())),
        )
        .await;
    }
    assert_eq!(
        waiters(s).await,
        1,
        "a non-terminal store consumed the waiter"
    );
    let done = TaskResult::new("nt", TaskStatus::Success).with_result(json!("final"));
    store(s, done.clone()).await;
    // Had a non-terminal store woken it, it would hold that record instead.
    assert_eq!(join_ok("waiter", waiter).await, done);
}

pub async fn wait_for_waits_for_never_stored_id(s: &Subject) {
    fresh(s).await;
    let waiter = spawn_wait(s, "ghost", Some(Duration::from_secs(30)));
    await_waiters(s, 1).await;
    let record = TaskResult::new("ghost", TaskStatus::Failed).with_error("vanished");
    store(s, record.clone()).await;
    assert_eq!(join_ok("waiter", waiter).await, record);
}

pub async fn wait_for_accepts_duration_max(s: &Subject) {
    fresh(s).await;
    let done = TaskResult::new("done", TaskStatus::Success);
    store(s, done.clone()).await;
    assert_eq!(
        wait(s, "done", Some(Duration::MAX))
            .await
            .expect("terminal"),
        done
    );

    let waiter = spawn_wait(s, "later", Some(Duration::MAX));
    await_waiters(s, 1).await;
    let later = TaskResult::new("later", TaskStatus::Success).with_result(json!(1));
    store(s, later.clone()).await;
    assert_eq!(join_ok("Duration::MAX waiter", waiter).await, later);

    // Near-MAX too: adding it to "now" must saturate, not panic.
    let near = Duration::MAX - Duration::from_secs(1);
    let waiter = spawn_wait(s, "near", Some(near));
    await_waiters(s, 1).await;
    store(s, TaskResult::new("near", TaskStatus::Failed)).await;
    join_ok("near-MAX waiter", waiter).await;
    await_waiters(s, 0).await;
}

pub async fn wait_for_zero_timeout(s: &Subject) {
    fresh(s).await;
    let done = TaskResult::new("done", TaskStatus::Success).with_result(json!(0));
    let failed = TaskResult::new("failed", TaskStatus::Failed);
    store(s, done.clone()).await;
    store(s, failed.clone()).await;
    assert_eq!(
        wait(s, "done", Some(Duration::ZERO))
            .await
            .expect("terminal"),
        done
    );
    assert_eq!(
        wait(s, "failed", Some(Duration::ZERO))
            .await
            .expect("terminal"),
        failed
    );

    store(s, TaskResult::new("running", TaskStatus::Running)).await;
    let out = wait(s, "running", Some(Duration::ZERO)).await;
    assert_timeout("zero timeout, running", out, "running", Duration::ZERO);
    let out = wait(s, "missing", Some(Duration::ZERO)).await;
    assert_timeout("zero timeout, missing", out, "missing", Duration::ZERO);
    await_waiters(s, 0).await;
}

pub async fn thousand_waiters_on_one_id_all_receive_the_record(s: &Subject) {
    fresh(s).await;
    store(s, full_record("crowd", TaskStatus::Pending)).await;
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            let timeout = if i % 2 == 0 {
                None
            } else {
                Some(Duration::from_secs(30))
            };
            spawn_wait(s, "crowd", timeout)
        })
        .collect();
    await_waiters(s, 1000).await;
    store(
        s,
        TaskResult::new("crowd", TaskStatus::Success).with_result(json!("all")),
    )
    .await;
    let expected = get(s, "crowd").await.expect("stored");
    let results = guard_for(LONG_TIMEOUT, "1,000 waiters", join_all(handles)).await;
    for (i, r) in results.into_iter().enumerate() {
        let got = r
            .expect("waiter task")
            .unwrap_or_else(|e| panic!("waiter {i}: {e:?}"));
        assert_eq!(got, expected, "waiter {i}");
    }
    await_waiters(s, 0).await;
}

pub async fn ten_thousand_waiters_racing_their_stores_all_wake(s: &Subject) {
    fresh(s).await;
    const N: usize = 10_000;
    let mut waiting = Vec::with_capacity(N);
    let mut storing = Vec::with_capacity(N);
    for i in 0..N {
        let id = format!("race-{i}");
        let backend = Arc::clone(&s.backend);
        let record = TaskResult::new(id.clone(), TaskStatus::Success).with_result(json!(i));
        let store_task = async move {
            if i % 3 == 0 {
                backend
                    .store(&id, TaskResult::new(id.clone(), TaskStatus::Running))
                    .await?;
            }
            backend.store(&id, record).await
        };
        // Alternate which side is spawned first so both orders race.
        if i % 2 == 0 {
            storing.push(tokio::spawn(store_task));
            waiting.push(spawn_wait(
                s,
                format!("race-{i}"),
                Some(Duration::from_secs(30)),
            ));
        } else {
            waiting.push(spawn_wait(
                s,
                format!("race-{i}"),
                Some(Duration::from_secs(30)),
            ));
            storing.push(tokio::spawn(store_task));
        }
    }
    let stored = guard_for(LONG_TIMEOUT, "10,000 stores", join_all(storing)).await;
    for (i, r) in stored.into_iter().enumerate() {
        r.expect("store task")
            .unwrap_or_else(|e| panic!("store race-{i}: {e:?}"));
    }
    let woken = guard_for(LONG_TIMEOUT, "10,000 waiters", join_all(waiting)).await;
    for (i, r) in woken.into_iter().enumerate() {
        let got = r
            .expect("waiter task")
            .unwrap_or_else(|e| panic!("waiter race-{i} lost its wake-up: {e:?}"));
        assert_eq!(got.task_id, format!("race-{i}"));
        assert_eq!(got.status, TaskStatus::Success);
        assert_eq!(got.result, json!(i));
    }
    await_waiters(s, 0).await;
}

pub async fn timed_out_waiters_leave_nothing_behind(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("to-0", TaskStatus::Running)).await;
    let handles: Vec<_> = (0..50u64)
        .map(|i| {
            spawn_wait(
                s,
                format!("to-{}", i % 5),
                Some(Duration::from_millis(10 + i)),
            )
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let id = format!("to-{}", i % 5);
        let limit = Duration::from_millis(10 + i as u64);
        assert_timeout("short waiter", join("short waiter", h).await, &id, limit);
    }
    await_waiters(s, 0).await;
    // The ids stay usable, and a store finds no stale registration to trip over.
    store(s, TaskResult::new("to-0", TaskStatus::Success)).await;
    assert_eq!(waiters(s).await, 0);
    let waiter = spawn_wait(s, "to-1", Some(Duration::from_secs(30)));
    await_waiters(s, 1).await;
    store(s, TaskResult::new("to-1", TaskStatus::Success)).await;
    join_ok("fresh waiter on a timed-out id", waiter).await;
    await_waiters(s, 0).await;
}

pub async fn dropped_wait_futures_leave_nothing_behind(s: &Subject) {
    fresh(s).await;

    // Polled once, then dropped.
    {
        let mut fut = s.backend.wait_for("drop-a", None);
        assert!(
            futures::poll!(&mut fut).is_pending(),
            "nothing was stored yet"
        );
    }
    // A round trip, so that anything the dropped future sent has been seen.
    get(s, "drop-a").await;
    await_waiters(s, 0).await;

    // Cut off by an outer timeout.
    let out =
        tokio::time::timeout(Duration::from_millis(5), s.backend.wait_for("drop-b", None)).await;
    assert!(out.is_err(), "wait_for returned without a store: {out:?}");
    get(s, "drop-b").await;
    await_waiters(s, 0).await;

    // Registered for sure, then aborted.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let timeout = if i % 2 == 0 {
                None
            } else {
                Some(Duration::from_secs(30))
            };
            spawn_wait(s, format!("drop-c-{}", i % 4), timeout)
        })
        .collect();
    await_waiters(s, 20).await;
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let out = guard("aborted waiter", h).await;
        assert!(
            matches!(&out, Err(e) if e.is_cancelled()),
            "waiter finished though nothing was stored: {out:?}"
        );
    }
    await_waiters(s, 0).await;

    // Later stores to those ids find nothing to wake and leave nothing behind.
    for id in [
        "drop-a", "drop-b", "drop-c-0", "drop-c-1", "drop-c-2", "drop-c-3",
    ] {
        store(s, TaskResult::new(id, TaskStatus::Success)).await;
    }
    assert_eq!(waiters(s).await, 0);
}

pub async fn delete_and_clear_do_not_wake_waiters(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("dw", TaskStatus::Pending)).await;
    let waiter = spawn_wait(s, "dw", None);
    await_waiters(s, 1).await;
    assert!(delete(s, "dw").await);
    assert_eq!(waiters(s).await, 1, "delete() consumed the waiter");
    let done = TaskResult::new("dw", TaskStatus::Success).with_result(json!("after delete"));
    store(s, done.clone()).await;
    assert_eq!(join_ok("waiter across delete", waiter).await, done);
    await_waiters(s, 0).await;

    store(s, TaskResult::new("cw", TaskStatus::Running)).await;
    store(s, TaskResult::new("other", TaskStatus::Success)).await;
    let waiter = spawn_wait(s, "cw", Some(Duration::from_secs(30)));
    await_waiters(s, 1).await;
    assert_eq!(clear(s).await, 3);
    assert_eq!(waiters(s).await, 1, "clear() consumed the waiter");
    let done = TaskResult::new("cw", TaskStatus::Failed).with_error("after clear");
    store(s, done.clone()).await;
    assert_eq!(join_ok("waiter across clear", waiter).await, done);
    await_waiters(s, 0).await;
}

pub async fn waiters_receive_the_merged_record_equal_to_get(s: &Subject) {
    fresh(s).await;
    store(s, full_record("merge", TaskStatus::Pending)).await;
    let handles = vec![spawn_wait(s, "merge", None), spawn_wait(s, "merge", None)];
    await_waiters(s, 2).await;
    // A worker's SUCCESS record: no task fields.
    store(
        s,
        TaskResult::new("merge", TaskStatus::Success).with_result(json!(5)),
    )
    .await;
    let expected = get(s, "merge").await.expect("stored");
    assert_eq!(expected.task_name.as_deref(), Some("tasks.add"));
    assert_eq!(expected.submitted_at, Some(at(1_700_000_000)));
    assert_eq!(expected.args, [json!(2), json!(3)]);
    assert_eq!(expected.result, json!(5));
    for h in handles {
        assert_eq!(join_ok("waiter", h).await, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Cancellation and read-your-writes
// ---------------------------------------------------------------------------------------------

pub async fn dropped_store_future_is_not_lost(s: &Subject) {
    fresh(s).await;
    let waiter = spawn_wait(s, "ds-1", Some(Duration::from_secs(30)));
    await_waiters(s, 1).await;

    let first = TaskResult::new("ds-1", TaskStatus::Success).with_result(json!(1));
    {
        let mut fut = s.backend.store("ds-1", first.clone());
        // Polled once, then dropped whatever it answered.
        let _ = futures::poll!(&mut fut);
    }
    assert_eq!(get(s, "ds-1").await, Some(first.clone()));
    assert_eq!(
        join_ok("waiter woken by a dropped store", waiter).await,
        first
    );

    let second = TaskResult::new("ds-2", TaskStatus::Pending).with_task_name("n");
    let _ = tokio::time::timeout(Duration::ZERO, s.backend.store("ds-2", second.clone())).await;
    assert_eq!(get(s, "ds-2").await, Some(second));
}

pub async fn each_caller_reads_its_own_writes(s: &Subject) {
    fresh(s).await;
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let backend = Arc::clone(&s.backend);
            tokio::spawn(async move {
                let id = format!("rw-{i}");
                for status in [
                    TaskStatus::Pending,
                    TaskStatus::Running,
                    TaskStatus::Success,
                ] {
                    let record = TaskResult::new(id.clone(), status).with_result(json!(i));
                    backend.store(&id, record.clone()).await.expect("store");
                    let seen = backend.get(&id).await.expect("get");
                    assert_eq!(seen, Some(record), "{id} did not read its own write");
                }
            })
        })
        .collect();
    for r in guard_for(LONG_TIMEOUT, "200 writers", join_all(handles)).await {
        r.expect("writer task");
    }
    assert_eq!(list(s, TaskStatus::Success, None, 0).await.len(), 200);
}

// ---------------------------------------------------------------------------------------------
// Batches and waiting on many
// ---------------------------------------------------------------------------------------------

pub async fn get_many_returns_one_entry_per_id_in_order(s: &Subject) {
    fresh(s).await;
    store(s, full_record("gm-a", TaskStatus::Success)).await;
    store(s, TaskResult::new("gm-b", TaskStatus::Running)).await;
    let records = guard(
        "get_many",
        s.backend.get_many(&["gm-b", "gm-missing", "gm-a", "gm-b"]),
    )
    .await
    .expect("get_many");
    let ids: Vec<Option<&str>> = records
        .iter()
        .map(|record| record.as_ref().map(|r| r.task_id.as_str()))
        .collect();
    assert_eq!(ids, [Some("gm-b"), None, Some("gm-a"), Some("gm-b")]);
    assert_eq!(records[2], get(s, "gm-a").await, "equal to get");
    assert_invalid(
        "get_many of no ids",
        guard("get_many", s.backend.get_many(&[])).await,
    );
    let long = "x".repeat(MAX_ID_LEN + 1);
    assert_invalid(
        "get_many with a long id",
        guard("get_many", s.backend.get_many(&["gm-a", &long])).await,
    );
}

pub async fn store_many_stores_in_order_and_a_bad_record_fails_alone(s: &Subject) {
    fresh(s).await;
    let outcomes = guard(
        "store_many",
        s.backend.store_many(vec![
            full_record("sm-a", TaskStatus::Pending),
            TaskResult::new("", TaskStatus::Pending),
            TaskResult::new("sm-a", TaskStatus::Running),
            TaskResult::new("sm-b", TaskStatus::Success),
        ]),
    )
    .await;
    assert_eq!(outcomes.len(), 4);
    assert!(
        outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[3].is_ok(),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Err(BackendError::InvalidInput { .. })),
        "{outcomes:?}"
    );
    // In order: the later store of sm-a wins, and keeps the task fields of the first.
    let a = get(s, "sm-a").await.expect("stored");
    assert_eq!(a.status, TaskStatus::Running);
    assert_eq!(a.task_name.as_deref(), Some("tasks.add"));
    assert!(get(s, "sm-b").await.expect("stored").is_success());
    assert_eq!(
        list_ids(s, TaskStatus::Pending, None, 0).await,
        Vec::<String>::new()
    );
    assert!(
        guard("store_many of nothing", s.backend.store_many(Vec::new()))
            .await
            .is_empty()
    );
}

pub async fn wait_for_all_returns_every_record_in_order(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("wa-c", TaskStatus::Success)).await;
    let backend = Arc::clone(&s.backend);
    let all = tokio::spawn(async move {
        backend
            .wait_for_all(&["wa-a", "wa-b", "wa-c"], Some(Duration::from_secs(30)))
            .await
    });
    await_waiters(s, 2).await;
    store(s, TaskResult::new("wa-b", TaskStatus::Success)).await;
    store(s, TaskResult::new("wa-a", TaskStatus::Running)).await;
    store(
        s,
        TaskResult::new("wa-a", TaskStatus::Failed).with_error("boom"),
    )
    .await;
    let records = join("wait_for_all", all).await.expect("all finished");
    let ids: Vec<&str> = records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["wa-a", "wa-b", "wa-c"]);
    assert_eq!(records[0].status, TaskStatus::Failed);
    await_waiters(s, 0).await;
    assert_invalid(
        "wait_for_all of no ids",
        guard("wait_for_all", s.backend.wait_for_all(&[], None)).await,
    );
    assert_invalid(
        "wait_for_all with an empty id",
        guard("wait_for_all", s.backend.wait_for_all(&["wa-a", ""], None)).await,
    );
    await_waiters(s, 0).await;
}

/// 10,000 ids, one of them finished: the batch times out naming the open ones (the first
/// ten, and how many more), and every wait it made is gone.
pub async fn wait_for_all_times_out_naming_the_open_ids_and_leaves_nothing(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("wt-done", TaskStatus::Success)).await;
    let ids: Vec<String> = (0..10_000).map(|i| format!("wt-{i}")).collect();
    let mut batch: Vec<&str> = vec!["wt-done"];
    batch.extend(ids.iter().map(String::as_str));
    // Long enough for a backend to look at every id once (Redis reads each key), in a debug
    // build on a busy machine.
    let limit = Duration::from_secs(3);
    let outcome = guard_for(
        LONG_TIMEOUT,
        "wait_for_all over 10,000 ids",
        s.backend.wait_for_all(&batch, Some(limit)),
    )
    .await;
    match outcome {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!(timeout, limit);
            assert!(task_id.starts_with("wt-0, wt-1,"), "{task_id}");
            assert!(!task_id.contains("wt-done"), "{task_id}");
            assert!(task_id.ends_with("and 9990 more"), "{task_id}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    await_waiters(s, 0).await;
}

pub async fn dropped_wait_for_all_leaves_nothing_behind(s: &Subject) {
    fresh(s).await;
    let backend = Arc::clone(&s.backend);
    let all = tokio::spawn(async move {
        let ids: Vec<String> = (0..10_000).map(|i| format!("wd-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        backend.wait_for_all(&ids, None).await
    });
    let deadline = Instant::now() + LONG_TIMEOUT;
    while waiters(s).await < 10_000 {
        assert!(
            Instant::now() < deadline,
            "the batch never registered its waits"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    all.abort();
    assert!(guard("aborted batch", all).await.is_err());
    await_waiters(s, 0).await;
    // The ids stay usable.
    let waiter = spawn_wait(s, "wd-1", Some(Duration::from_secs(30)));
    await_waiters(s, 1).await;
    store(s, TaskResult::new("wd-1", TaskStatus::Success)).await;
    join_ok("a fresh waiter on an id of the dropped batch", waiter).await;
}

pub async fn wait_for_any_returns_the_first_terminal_record(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("wy-b", TaskStatus::Success)).await;
    store(s, TaskResult::new("wy-c", TaskStatus::Failed)).await;
    let first = guard(
        "wait_for_any",
        s.backend
            .wait_for_any(&["wy-a", "wy-b", "wy-c"], Some(Duration::ZERO)),
    )
    .await
    .expect("two are terminal already");
    assert_eq!(
        first.task_id, "wy-b",
        "the first terminal one in the order given"
    );
    let untimed = guard(
        "wait_for_any",
        s.backend.wait_for_any(&["wy-a", "wy-c", "wy-b"], None),
    )
    .await
    .expect("terminal already");
    assert_eq!(untimed.task_id, "wy-c");
    await_waiters(s, 0).await;

    let backend = Arc::clone(&s.backend);
    let any = tokio::spawn(async move {
        backend
            .wait_for_any(&["wy-x", "wy-y", "wy-z"], Some(Duration::from_secs(30)))
            .await
    });
    await_waiters(s, 3).await;
    store(s, TaskResult::new("wy-y", TaskStatus::Running)).await;
    store(s, TaskResult::new("wy-z", TaskStatus::Success)).await;
    let won = join("wait_for_any", any).await.expect("one finished");
    assert_eq!(won.task_id, "wy-z");
    // The waits on the others are gone with the batch.
    await_waiters(s, 0).await;

    let limit = Duration::from_millis(50);
    match guard(
        "wait_for_any",
        s.backend.wait_for_any(&["wy-p", "wy-q"], Some(limit)),
    )
    .await
    {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!((task_id.as_str(), timeout), ("wy-p, wy-q", limit));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_invalid(
        "wait_for_any of no ids",
        guard("wait_for_any", s.backend.wait_for_any(&[], None)).await,
    );
    await_waiters(s, 0).await;
}

pub async fn batch_waits_with_a_zero_timeout_poll(s: &Subject) {
    fresh(s).await;
    store(s, TaskResult::new("wz-done", TaskStatus::Success)).await;
    store(s, TaskResult::new("wz-open", TaskStatus::Running)).await;
    let polled = guard(
        "wait_for_all",
        s.backend
            .wait_for_all(&["wz-done", "wz-open", "wz-never"], Some(Duration::ZERO)),
    )
    .await;
    match polled {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!(
                (task_id.as_str(), timeout),
                ("wz-open, wz-never", Duration::ZERO)
            );
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let done = guard(
        "wait_for_all",
        s.backend.wait_for_all(&["wz-done"], Some(Duration::ZERO)),
    )
    .await
    .expect("terminal already");
    assert_eq!(done.len(), 1);
    let any = guard(
        "wait_for_any",
        s.backend
            .wait_for_any(&["wz-open", "wz-done"], Some(Duration::ZERO)),
    )
    .await
    .expect("one is terminal");
    assert_eq!(any.task_id, "wz-done");
    await_waiters(s, 0).await;
}

/// JSON nested past 100 levels could be stored but not read back (serde_json and flowrra stop
/// at 128): every backend refuses it, with the limit for a program to match on.
pub async fn records_nested_too_deep_are_refused_without_change(s: &Subject) {
    fresh(s).await;
    let nested = |levels: usize| (1..levels).fold(json!(1), |inner, _| json!([inner]));
    store(
        s,
        TaskResult::new("deep-ok", TaskStatus::Success).with_result(nested(100)),
    )
    .await;
    assert_eq!(get(s, "deep-ok").await.expect("stored").result, nested(100));
    let refused = guard(
        "store of a result 101 levels deep",
        s.backend.store(
            "deep",
            TaskResult::new("deep", TaskStatus::Success).with_result(nested(101)),
        ),
    )
    .await;
    assert_over_limit("result", refused.err(), Limit::MaxJsonDepth, 100, 101);
    // An argument is a level below the record's `args`.
    let refused = guard(
        "store of an argument 100 levels deep",
        s.backend.store(
            "deep",
            TaskResult::new("deep", TaskStatus::Pending).with_args(vec![nested(100)]),
        ),
    )
    .await;
    assert_over_limit("args", refused.err(), Limit::MaxJsonDepth, 100, 101);
    assert_eq!(
        get(s, "deep").await,
        None,
        "a refused store changed nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Paging by cursor
// ---------------------------------------------------------------------------------------------

/// Every page of `status`, `limit` at a time, each cursor passed through its text form.
async fn all_pages(s: &Subject, status: TaskStatus, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = guard(
            "list_page",
            s.backend.list_page(status, limit, after.as_ref()),
        )
        .await
        .expect("list_page");
        assert!(page.records.len() <= limit);
        assert!(page.records.iter().all(|record| record.status == status));
        pages.push(page.records.into_iter().map(|r| r.task_id).collect());
        match page.next {
            Some(next) => after = Some(next.to_string().parse().expect("a cursor's text")),
            None => return pages,
        }
        assert!(pages.len() <= 100, "list_page never ended");
    }
}

pub async fn list_page_walks_every_record_once_in_order(s: &Subject) {
    fresh(s).await;
    let times = [Some(30), None, Some(10), Some(30), None, Some(20), Some(40)];
    for (i, time) in times.iter().enumerate() {
        let mut record = TaskResult::new(format!("lp-{i}"), TaskStatus::Success);
        if let Some(secs) = time {
            record = record.with_submitted_at(at(1_700_000_000 + secs));
        }
        store(s, record).await;
    }
    store(s, TaskResult::new("lp-running", TaskStatus::Running)).await;
    let listed = list_ids(s, TaskStatus::Success, None, 0).await;
    assert_eq!(listed.len(), 7);
    for limit in [1, 2, 3, 7, 100] {
        let pages = all_pages(s, TaskStatus::Success, limit).await;
        assert_eq!(
            pages.concat(),
            listed,
            "limit {limit}: every record once, in order"
        );
        assert_eq!(pages.len(), 7_usize.div_ceil(limit).max(1), "limit {limit}");
    }
    assert_eq!(
        all_pages(s, TaskStatus::Failed, 5).await,
        vec![Vec::<String>::new()]
    );
    assert_invalid(
        "a page of no records",
        guard(
            "list_page",
            s.backend.list_page(TaskStatus::Success, 0, None),
        )
        .await,
    );
    let foreign: Cursor = "not-a-cursor".parse().expect("any text parses");
    assert_invalid(
        "a cursor no backend made",
        guard(
            "list_page",
            s.backend.list_page(TaskStatus::Success, 2, Some(&foreign)),
        )
        .await,
    );
}

/// A page by position starts right after the last record of the page before: records added
/// before that position, or removed from the pages already read, shift nothing.
pub async fn list_page_by_position_is_stable_while_records_change(s: &Subject) {
    if !s.pages_by_position {
        return;
    }
    fresh(s).await;
    for i in 0..6 {
        let record = TaskResult::new(format!("ls-{i}"), TaskStatus::Success)
            .with_submitted_at(at(1_700_000_100 - i));
        store(s, record).await;
    }
    let first = guard(
        "list_page",
        s.backend.list_page(TaskStatus::Success, 3, None),
    )
    .await
    .expect("first page");
    let ids: Vec<&str> = first.records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["ls-0", "ls-1", "ls-2"]);
    // Newer than every record, and the page's own records gone: an offset would now skip.
    store(
        s,
        TaskResult::new("ls-new", TaskStatus::Success).with_submitted_at(at(1_800_000_000)),
    )
    .await;
    assert!(delete(s, "ls-0").await && delete(s, "ls-2").await);
    let second = guard(
        "list_page",
        s.backend
            .list_page(TaskStatus::Success, 3, first.next.as_ref()),
    )
    .await
    .expect("second page");
    let ids: Vec<&str> = second.records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["ls-3", "ls-4", "ls-5"]);
    assert_eq!(second.next, None);
}
