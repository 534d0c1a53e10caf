//! Model-based property tests: random sequences of operations run against a plain reference
//! model of the contract and against each backend (the hub on its own thread, and
//! `InMemoryBackend`); every answer, every listing page, the counts after each step and the
//! fate of every waiter must match the model exactly.
//!
//! The model is written from the contract, not from either implementation: a store replaces
//! the record but keeps the task fields (`submitted_at`, `task_name`, `args`, `kwargs`) it leaves
//! unset; listings order by `submitted_at` newest first, none last, ties in first-store order;
//! an id deleted, cleared, evicted or expired and stored again is new; a terminal store wakes
//! every waiter of the id with the merged record; `max_results` evicts the terminal record whose
//! latest store is oldest, or refuses a new id; TTLs count from the latest store and remove the
//! record at the deadline; `max_waiters` refuses waits that would wait; `KeepFirst` refuses
//! stores over a terminal record; `max_record_bytes` measures the merged record.

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use resulthub::{
    BackendError, Clock, HubConfig, ManualClock, ResultBackend, TaskResult, TaskStatus,
    TerminalPolicy,
};
use serde_json::{Map, json};
use support::{Kind, Subject, within};

const IDS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];

// ---------------------------------------------------------------------------------------------
// Operations and configurations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Store {
    id: usize,
    status: TaskStatus,
    submitted: Option<i64>,
    name: Option<&'static str>,
    args: Option<i64>,
    kwargs: Option<i64>,
    result: i64,
    error: Option<&'static str>,
}

impl Store {
    fn record(&self) -> TaskResult {
        let mut record = TaskResult::new(IDS[self.id], self.status).with_result(self.result);
        if let Some(secs) = self.submitted {
            record = record.with_submitted_at(at(secs));
        }
        if let Some(name) = self.name {
            record = record.with_task_name(name);
        }
        if let Some(n) = self.args {
            record = record.with_args(vec![json!(n)]);
        }
        if let Some(n) = self.kwargs {
            let mut kwargs = Map::new();
            kwargs.insert("k".to_owned(), json!(n));
            record = record.with_kwargs(kwargs);
        }
        if let Some(error) = self.error {
            record = record.with_error(error);
        }
        record
    }
}

#[derive(Clone, Debug)]
enum Op {
    Store(Store),
    Get(usize),
    /// `wait_for` with a zero or 1 ms timeout: answers at once from a terminal record, or times
    /// out (nothing else happens meanwhile).
    WaitNow {
        id: usize,
        tiny: bool,
    },
    /// Starts a `wait_for(id, None)` and keeps it pending.
    SpawnWaiter(usize),
    /// Drops the newest waiter the model says is still waiting.
    DropWaiter,
    Delete(usize),
    Clear,
    List {
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    },
    /// Moves the manual clock forward.
    Advance(u64),
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).single().unwrap()
}

fn status() -> impl Strategy<Value = TaskStatus> {
    prop::sample::select(TaskStatus::ALL.to_vec())
}

fn store() -> impl Strategy<Value = Store> {
    (
        0..IDS.len(),
        status(),
        prop::option::of(0i64..3),
        prop::option::of(prop::sample::select(vec!["add", "resize"])),
        prop::option::of(0i64..3),
        prop::option::of(0i64..3),
        0i64..4,
        prop::option::weighted(0.2, Just("boom")),
    )
        .prop_map(
            |(id, status, submitted, name, args, kwargs, result, error)| Store {
                id,
                status,
                submitted,
                name,
                args,
                kwargs,
                result,
                error,
            },
        )
}

fn op(with_time: bool) -> BoxedStrategy<Op> {
    let id = 0..IDS.len();
    let untimed = prop_oneof![
        40 => store().prop_map(Op::Store),
        8 => id.clone().prop_map(Op::Get),
        8 => (id.clone(), any::<bool>()).prop_map(|(id, tiny)| Op::WaitNow { id, tiny }),
        10 => id.clone().prop_map(Op::SpawnWaiter),
        5 => Just(Op::DropWaiter),
        7 => id.prop_map(Op::Delete),
        2 => Just(Op::Clear),
        12 => (status(), prop::option::of(0usize..4), 0usize..4)
            .prop_map(|(status, limit, offset)| Op::List { status, limit, offset }),
    ];
    if with_time {
        prop_oneof![
            92 => untimed,
            8 => (1u64..4).prop_map(Op::Advance),
        ]
        .boxed()
    } else {
        untimed.boxed()
    }
}

fn ops(with_time: bool) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(with_time), 1..40)
}

/// What the model needs of a `HubConfig`.
#[derive(Clone, Debug, Default)]
struct Limits {
    max_results: Option<usize>,
    result_ttl: Option<u64>,
    pending_ttl: Option<u64>,
    max_waiters: Option<usize>,
    keep_first: bool,
    max_record_bytes: Option<usize>,
}

impl Limits {
    fn config(&self, clock: &ManualClock) -> HubConfig {
        HubConfig::default()
            .with_max_results(self.max_results)
            .with_result_ttl(self.result_ttl.map(Duration::from_secs))
            .with_pending_ttl(self.pending_ttl.map(Duration::from_secs))
            .with_max_waiters(self.max_waiters)
            .with_max_record_bytes(self.max_record_bytes)
            .with_terminal_policy(if self.keep_first {
                TerminalPolicy::KeepFirst
            } else {
                TerminalPolicy::Overwrite
            })
            .with_clock(Clock::from(clock.clone()))
    }
}

/// The encoded size of the smallest record the ops make, to put `max_record_bytes` where some
/// records fit and some do not.
fn base_size() -> usize {
    serde_json::to_vec(&TaskResult::new(IDS[0], TaskStatus::Failed).with_result(0))
        .unwrap()
        .len()
}

fn limits(max_results: bool, ttls: bool) -> impl Strategy<Value = Limits> {
    let results = if max_results {
        prop::option::of(1usize..5).boxed()
    } else {
        Just(None).boxed()
    };
    let ttl = move || {
        if ttls {
            prop::option::of(2u64..7).boxed()
        } else {
            Just(None).boxed()
        }
    };
    (
        results,
        ttl(),
        ttl(),
        prop::option::of(0usize..3),
        any::<bool>(),
        prop::option::of(0usize..45),
    )
        .prop_map(
            |(max_results, result_ttl, pending_ttl, max_waiters, keep_first, extra)| Limits {
                max_results,
                result_ttl,
                pending_ttl,
                max_waiters,
                keep_first,
                max_record_bytes: extra.map(|extra| base_size() + extra),
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// An answer, as the model predicts it and as a backend gives it.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Record(Box<TaskResult>),
    Timeout,
    Overloaded,
    Invalid,
    Conflict(String, TaskStatus),
    Other(String),
}

fn outcome(out: Result<TaskResult, BackendError>) -> Outcome {
    match out {
        Ok(record) => Outcome::Record(Box::new(record)),
        Err(error) => error_outcome(error),
    }
}

fn error_outcome(error: BackendError) -> Outcome {
    match error {
        BackendError::Timeout { .. } => Outcome::Timeout,
        BackendError::Overloaded { .. } => Outcome::Overloaded,
        BackendError::InvalidInput { .. } => Outcome::Invalid,
        BackendError::Conflict { task_id, status } => Outcome::Conflict(task_id, status),
        other => Outcome::Other(format!("{other:?}")),
    }
}

struct Entry {
    record: TaskResult,
    seq: u64,
    stored: u64,
    /// In seconds of the manual clock.
    expires_at: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
enum WaiterState {
    Waiting,
    Resolved(Outcome),
    Dropped,
}

#[derive(Default)]
struct Model {
    limits: Limits,
    now: u64,
    records: BTreeMap<String, Entry>,
    next_seq: u64,
    next_store: u64,
    waiters: Vec<(String, WaiterState)>,
    evicted: u64,
    expired: u64,
}

impl Model {
    fn new(limits: Limits) -> Model {
        Model {
            limits,
            ..Model::default()
        }
    }

    fn waiting(&self) -> usize {
        self.waiters
            .iter()
            .filter(|(_, state)| *state == WaiterState::Waiting)
            .count()
    }

    fn advance(&mut self, secs: u64) {
        self.now += secs;
        let now = self.now;
        let before = self.records.len();
        self.records
            .retain(|_, entry| entry.expires_at.is_none_or(|at| at > now));
        self.expired += (before - self.records.len()) as u64;
    }

    fn store(&mut self, mut record: TaskResult) -> Result<(), Outcome> {
        let id = record.task_id.clone();
        if let Some(previous) = self.records.get(&id) {
            if self.limits.keep_first && previous.record.is_terminal() {
                return Err(Outcome::Conflict(id, previous.record.status));
            }
            let previous = &previous.record;
            if record.submitted_at.is_none() {
                record.submitted_at = previous.submitted_at;
            }
            if record.task_name.is_none() {
                record.task_name.clone_from(&previous.task_name);
            }
            if record.args.is_empty() {
                record.args.clone_from(&previous.args);
            }
            if record.kwargs.is_empty() {
                record.kwargs.clone_from(&previous.kwargs);
            }
        }
        if let Some(max) = self.limits.max_record_bytes {
            if serde_json::to_vec(&record).unwrap().len() > max {
                return Err(Outcome::Invalid);
            }
        }
        if !self.records.contains_key(&id) {
            if let Some(max) = self.limits.max_results {
                while self.records.len() >= max {
                    let victim = self
                        .records
                        .iter()
                        .filter(|(_, entry)| entry.record.is_terminal())
                        .min_by_key(|(_, entry)| entry.stored)
                        .map(|(id, _)| id.clone());
                    let Some(victim) = victim else {
                        return Err(Outcome::Overloaded);
                    };
                    self.records.remove(&victim);
                    self.evicted += 1;
                }
            }
        }
        let ttl = if record.is_terminal() {
            self.limits.result_ttl
        } else {
            self.limits.pending_ttl
        };
        let expires_at = ttl.map(|ttl| self.now + ttl);
        let stored = self.next_store;
        self.next_store += 1;
        if record.is_terminal() {
            for (waited, state) in &mut self.waiters {
                if *waited == id && *state == WaiterState::Waiting {
                    *state = WaiterState::Resolved(Outcome::Record(Box::new(record.clone())));
                }
            }
        }
        match self.records.get_mut(&id) {
            Some(entry) => {
                entry.record = record;
                entry.stored = stored;
                entry.expires_at = expires_at;
            }
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.records.insert(
                    id,
                    Entry {
                        record,
                        seq,
                        stored,
                        expires_at,
                    },
                );
            }
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Option<TaskResult> {
        self.records.get(id).map(|entry| entry.record.clone())
    }

    /// What a `wait_for` made now answers at once, or `None` if it waits.
    fn wait_answer(&self, id: &str) -> Option<Outcome> {
        match self.records.get(id) {
            Some(entry) if entry.record.is_terminal() => {
                Some(Outcome::Record(Box::new(entry.record.clone())))
            }
            _ if self
                .limits
                .max_waiters
                .is_some_and(|max| self.waiting() >= max) =>
            {
                Some(Outcome::Overloaded)
            }
            _ => None,
        }
    }

    fn list(&self, status: TaskStatus, limit: Option<usize>, offset: usize) -> Vec<TaskResult> {
        let mut matching: Vec<&Entry> = self
            .records
            .values()
            .filter(|entry| entry.record.status == status)
            .collect();
        matching.sort_by(|a, b| {
            let by_time = match (a.record.submitted_at, b.record.submitted_at) {
                (Some(x), Some(y)) => y.cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            by_time.then(a.seq.cmp(&b.seq))
        });
        matching
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|entry| entry.record.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case
// ---------------------------------------------------------------------------------------------

type WaitFuture = Pin<Box<dyn Future<Output = Result<TaskResult, BackendError>> + Send>>;

fn start_wait(backend: &Arc<dyn ResultBackend>, id: &str, timeout: Option<Duration>) -> WaitFuture {
    let backend = Arc::clone(backend);
    let id = id.to_owned();
    Box::pin(async move { backend.wait_for(&id, timeout).await })
}

/// Polls every live waiter once and checks it against the model: a waiting one must still be
/// pending, a resolved one must be ready with the predicted answer.
async fn check_waiters(
    futures: &mut [Option<WaitFuture>],
    model: &Model,
    context: &str,
) -> Result<(), TestCaseError> {
    for (index, slot) in futures.iter_mut().enumerate() {
        let Some(future) = slot else { continue };
        let (id, state) = &model.waiters[index];
        let polled = futures::poll!(future.as_mut());
        match (state, polled) {
            (WaiterState::Waiting, Poll::Pending) => {}
            (WaiterState::Resolved(expected), Poll::Ready(out)) => {
                prop_assert_eq!(
                    &outcome(out),
                    expected,
                    "{}: waiter {} on {}",
                    context,
                    index,
                    id
                );
                *slot = None;
            }
            (state, Poll::Ready(out)) => {
                return Err(TestCaseError::fail(format!(
                    "{context}: waiter {index} on {id} should be {state:?}, resolved to {out:?}"
                )));
            }
            (state, Poll::Pending) => {
                return Err(TestCaseError::fail(format!(
                    "{context}: waiter {index} on {id} should have resolved ({state:?}), still pending"
                )));
            }
        }
    }
    Ok(())
}

async fn check_stats(s: &Subject, model: &Model, context: &str) -> Result<(), TestCaseError> {
    let stats = s.stats().await;
    prop_assert_eq!(stats.results, model.records.len(), "{}: results", context);
    for status in TaskStatus::ALL {
        let held = model
            .records
            .values()
            .filter(|entry| entry.record.status == status)
            .count();
        prop_assert_eq!(stats.by_status.get(status), held, "{}: {}", context, status);
    }
    prop_assert_eq!(stats.waiters, model.waiting(), "{}: waiters", context);
    prop_assert_eq!(stats.evicted, model.evicted, "{}: evicted", context);
    prop_assert_eq!(stats.expired, model.expired, "{}: expired", context);
    Ok(())
}

async fn run_case(kind: Kind, limits: Limits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let s = Subject::open(kind, limits.config(&clock));
    let outcome = drive(&s, &clock, limits, &ops).await;
    s.finish().await;
    outcome
}

async fn drive(
    s: &Subject,
    clock: &ManualClock,
    limits: Limits,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let backend = Arc::clone(&s.backend);
    let mut model = Model::new(limits);
    let mut futures: Vec<Option<WaitFuture>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let context = format!("{} step {step} {op:?}", s.name());
        match op {
            Op::Store(store) => {
                let record = store.record();
                let id = record.task_id.clone();
                let out = within("store", backend.store(&id, record.clone()))
                    .await
                    .map_err(error_outcome);
                prop_assert_eq!(out, model.store(record), "{}", context);
            }
            Op::Get(id) => {
                let out = within("get", backend.get(IDS[*id])).await;
                prop_assert_eq!(out.ok().flatten(), model.get(IDS[*id]), "{}", context);
            }
            Op::WaitNow { id, tiny } => {
                let timeout = if *tiny {
                    Duration::from_millis(1)
                } else {
                    Duration::ZERO
                };
                let out = within("wait_for", backend.wait_for(IDS[*id], Some(timeout))).await;
                let expected = model.wait_answer(IDS[*id]).unwrap_or(Outcome::Timeout);
                prop_assert_eq!(outcome(out), expected, "{}", context);
            }
            Op::SpawnWaiter(id) => {
                let id = IDS[*id];
                let mut future = start_wait(&backend, id, None);
                let state = match model.wait_answer(id) {
                    Some(answer) => WaiterState::Resolved(answer),
                    None => WaiterState::Waiting,
                };
                model.waiters.push((id.to_owned(), state.clone()));
                // The first poll sends the request. A hub may not have answered yet even when
                // the answer is immediate: that is checked after the stats round trip below.
                match futures::poll!(future.as_mut()) {
                    Poll::Pending => futures.push(Some(future)),
                    Poll::Ready(out) => {
                        let out = outcome(out);
                        prop_assert_eq!(
                            WaiterState::Resolved(out),
                            state,
                            "{}: first poll",
                            context
                        );
                        futures.push(None);
                    }
                }
            }
            Op::DropWaiter => {
                let newest = model
                    .waiters
                    .iter()
                    .rposition(|(_, state)| *state == WaiterState::Waiting);
                if let Some(index) = newest {
                    model.waiters[index].1 = WaiterState::Dropped;
                    prop_assert!(futures[index].is_some(), "{}: waiting future kept", context);
                    futures[index] = None;
                }
            }
            Op::Delete(id) => {
                let out = within("delete", backend.delete(IDS[*id])).await;
                let expected = model.records.remove(IDS[*id]).is_some();
                prop_assert_eq!(out.ok(), Some(expected), "{}", context);
            }
            Op::Clear => {
                let out = within("clear", backend.clear()).await;
                let expected = model.records.len();
                model.records.clear();
                prop_assert_eq!(out.ok(), Some(expected), "{}", context);
            }
            Op::List {
                status,
                limit,
                offset,
            } => {
                let out = within(
                    "list_by_status",
                    backend.list_by_status(*status, *limit, *offset),
                )
                .await;
                prop_assert_eq!(
                    out.ok(),
                    Some(model.list(*status, *limit, *offset)),
                    "{}",
                    context
                );
            }
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(*secs));
                model.advance(*secs);
            }
        }
        // Time passing sends nothing to a backend; checking counts here would let the
        // in-memory backend's stats sweep drop expired records before the next operation
        // sees them, hiding whether that operation itself treats them as gone.
        if matches!(op, Op::Advance(_)) {
            continue;
        }
        // The stats round trip also guarantees a hub has handled everything sent before it,
        // so the waiters can be checked exactly.
        check_stats(s, &model, &context).await?;
        check_waiters(&mut futures, &model, &context).await?;
    }

    // At the end: every record and every full listing, then the waiters once more.
    let context = format!("{} at the end", s.name());
    for id in IDS {
        let out = within("get", backend.get(id)).await;
        prop_assert_eq!(out.ok().flatten(), model.get(id), "{}: get {}", context, id);
    }
    for status in TaskStatus::ALL {
        let out = within("list", backend.list_by_status(status, None, 0)).await;
        prop_assert_eq!(
            out.ok(),
            Some(model.list(status, None, 0)),
            "{}: {}",
            context,
            status
        );
    }
    check_stats(s, &model, &context).await?;
    check_waiters(&mut futures, &model, &context).await?;
    // Dropping the still-waiting futures leaves nothing registered.
    drop(futures);
    s.await_waiters(0).await;
    Ok(())
}

fn run(kind: Kind, limits: Limits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(run_case(kind, limits, ops))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Keep the tree clean; a failure prints its minimal case.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hub_matches_the_model_with_default_limits(ops in ops(false)) {
        run(Kind::Hub, Limits::default(), ops)?;
    }

    #[test]
    fn memory_matches_the_model_with_default_limits(ops in ops(false)) {
        run(Kind::Memory, Limits::default(), ops)?;
    }

    #[test]
    fn hub_matches_the_model_under_limits_without_ttls(
        limits in limits(true, false),
        ops in ops(false),
    ) {
        run(Kind::Hub, limits, ops)?;
    }

    #[test]
    fn memory_matches_the_model_under_limits_without_ttls(
        limits in limits(true, false),
        ops in ops(false),
    ) {
        run(Kind::Memory, limits, ops)?;
    }

    #[test]
    fn hub_matches_the_model_with_ttls_without_max_results(
        limits in limits(false, true),
        ops in ops(true),
    ) {
        run(Kind::Hub, limits, ops)?;
    }

    #[test]
    fn memory_matches_the_model_with_ttls_without_max_results(
        limits in limits(false, true),
        ops in ops(true),
    ) {
        run(Kind::Memory, limits, ops)?;
    }

    #[test]
    fn hub_matches_the_model_with_every_limit_and_ttls(
        limits in limits(true, true),
        ops in ops(true),
    ) {
        run(Kind::Hub, limits, ops)?;
    }

    #[test]
    fn memory_matches_the_model_with_every_limit_and_ttls(
        limits in limits(true, true),
        ops in ops(true),
    ) {
        run(Kind::Memory, limits, ops)?;
    }
}
