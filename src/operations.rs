//! Operation metrics and tracing spans, the same for every backend of this crate.
//!
//! Each [`HubHandle`](crate::HubHandle) (with its hub and every clone of it),
//! [`InMemoryBackend`](crate::InMemoryBackend) and `RedisBackend` (with its clones) counts the
//! [`ResultBackend`](crate::ResultBackend) operations made through it, by
//! [`OperationKind`] and [`Outcome`], and times them in a latency histogram per kind with fixed
//! buckets ([`LATENCY_BUCKETS`]). Read them with the backend's `operations()`, which returns an
//! [`OperationMetrics`] snapshot, the rows a Prometheus exporter turns into
//! `resulthub_operations_total{op, outcome}` and
//! `resulthub_operation_duration_seconds{op}`.
//!
//! What counts as one operation:
//! - one call of a `ResultBackend` method the backend implements: `store`, `store_many`,
//!   `get`, `get_many`, `wait_for`, `delete`, `clear`, `list_by_status`, `list_page`; a batch is
//!   one operation of its own kind, never one per record as well;
//! - `wait_for_all` and `wait_for_any` are built on `get_many` and `wait_for` on every backend,
//!   and are counted as the calls they make;
//! - the latency runs from the call to the answer, as the caller sees it: a pipelined hub
//!   store is done when it is queued, a `wait_for` when its record comes or its timeout
//!   passes;
//! - a call whose future is dropped before it answered counts as [`Outcome::Cancelled`].
//!
//! Every operation also runs in a `tracing` span named `resulthub.op` at DEBUG level (target
//! `resulthub::hub`, `resulthub::memory` or `resulthub::redis`), with the fields `backend`,
//! `op`, `task_id` and `status` (for a store), `count` (for a batch) and `outcome` (recorded
//! when it ends). Its parent is the caller's current span, and the hub applies the operation
//! inside it, on whatever thread the hub runs, so the hub's events for that operation are its
//! children. docs/observability.md lists the names.
//!
//! Recording costs two clock reads and three counter additions without a lock or a locked
//! instruction: each thread has a shard of its own in each instance it records in (made the
//! first time), adds to it alone, and a snapshot sums the shards. No cache line is written by
//! two threads. The span costs one check of a cached interest when
//! no subscriber wants it.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::Span;

use crate::BackendError;

/// A [`ResultBackend`](crate::ResultBackend) operation, as the metrics and spans name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OperationKind {
    /// `store`.
    Store,
    /// `store_many`, one per batch.
    StoreMany,
    /// `get`.
    Get,
    /// `get_many`, one per batch.
    GetMany,
    /// `wait_for`.
    WaitFor,
    /// `delete`.
    Delete,
    /// `clear`.
    Clear,
    /// `list_by_status`.
    ListByStatus,
    /// `list_page`.
    ListPage,
}

impl OperationKind {
    /// Every kind, in the order snapshots list them.
    pub const ALL: [OperationKind; 9] = [
        OperationKind::Store,
        OperationKind::StoreMany,
        OperationKind::Get,
        OperationKind::GetMany,
        OperationKind::WaitFor,
        OperationKind::Delete,
        OperationKind::Clear,
        OperationKind::ListByStatus,
        OperationKind::ListPage,
    ];

    /// The method's name, e.g. `"store_many"`: the `op` label and span field.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationKind::Store => "store",
            OperationKind::StoreMany => "store_many",
            OperationKind::Get => "get",
            OperationKind::GetMany => "get_many",
            OperationKind::WaitFor => "wait_for",
            OperationKind::Delete => "delete",
            OperationKind::Clear => "clear",
            OperationKind::ListByStatus => "list_by_status",
            OperationKind::ListPage => "list_page",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an operation ended: `Ok`, or the kind of [`BackendError`] it returned.
///
/// An answer that finds nothing (`get` of an unknown id, `delete` of one) is `Ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Outcome {
    /// Answered without an error.
    Ok,
    /// [`BackendError::Timeout`].
    Timeout,
    /// [`BackendError::InvalidInput`].
    InvalidInput,
    /// [`BackendError::Overloaded`].
    Overloaded,
    /// [`BackendError::Unavailable`].
    Unavailable,
    /// [`BackendError::Conflict`].
    Conflict,
    /// [`BackendError::Unsupported`].
    Unsupported,
    /// [`BackendError::Internal`].
    Internal,
    /// [`BackendError::Storage`].
    Storage,
    /// [`BackendError::Codec`].
    Codec,
    /// The caller dropped the call's future before it answered.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in the order snapshots list them.
    pub const ALL: [Outcome; 11] = [
        Outcome::Ok,
        Outcome::Timeout,
        Outcome::InvalidInput,
        Outcome::Overloaded,
        Outcome::Unavailable,
        Outcome::Conflict,
        Outcome::Unsupported,
        Outcome::Internal,
        Outcome::Storage,
        Outcome::Codec,
        Outcome::Cancelled,
    ];

    /// The outcome's name in snake case, e.g. `"invalid_input"`: the `outcome` label and span
    /// field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::InvalidInput => "invalid_input",
            Outcome::Overloaded => "overloaded",
            Outcome::Unavailable => "unavailable",
            Outcome::Conflict => "conflict",
            Outcome::Unsupported => "unsupported",
            Outcome::Internal => "internal",
            Outcome::Storage => "storage",
            Outcome::Codec => "codec",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The outcome of a call that returned `error`.
    pub fn of_error(error: &BackendError) -> Outcome {
        match error {
            BackendError::Timeout { .. } => Outcome::Timeout,
            BackendError::Unsupported { .. } => Outcome::Unsupported,
            BackendError::InvalidInput { .. } => Outcome::InvalidInput,
            BackendError::Unavailable { .. } => Outcome::Unavailable,
            BackendError::Overloaded { .. } => Outcome::Overloaded,
            BackendError::Conflict { .. } => Outcome::Conflict,
            BackendError::Internal { .. } => Outcome::Internal,
            BackendError::Storage(_) => Outcome::Storage,
            BackendError::Codec(_) => Outcome::Codec,
        }
    }

    /// The outcome of a call that returned `result`.
    pub fn of<T>(result: &Result<T, BackendError>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(error) => Outcome::of_error(error),
        }
    }

    /// The outcome of a `store_many`: `Ok` when every record was stored, else the outcome of
    /// the first one refused.
    pub(crate) fn of_batch(results: &[Result<(), BackendError>]) -> Outcome {
        results
            .iter()
            .find_map(|result| result.as_ref().err())
            .map_or(Outcome::Ok, Outcome::of_error)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The upper bounds of the latency histogram's buckets, 1 µs to 10 s in 1-2.5-5 steps; a last
/// bucket without bound (`+Inf`) takes the rest.
pub const LATENCY_BUCKETS: [Duration; 22] = [
    Duration::from_micros(1),
    Duration::from_nanos(2_500),
    Duration::from_micros(5),
    Duration::from_micros(10),
    Duration::from_micros(25),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2_500),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// A point-in-time read of a backend's operation metrics, from its `operations()`.
///
/// Every number only grows over the backend's life (each is a sum of counters that only
/// grow), so they are Prometheus counters as they are.
///
/// # Examples
///
/// ```
/// use resulthub::operations::{OperationKind, Outcome};
/// use resulthub::{InMemoryBackend, ResultBackend, TaskResult, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resulthub::BackendError> {
/// let backend = InMemoryBackend::new();
/// backend.store("t1", TaskResult::new("t1", TaskStatus::Success)).await?;
/// let refused = backend.store("", TaskResult::new("", TaskStatus::Success)).await;
/// assert!(refused.is_err()); // an empty id is refused
/// assert_eq!(backend.get("missing").await?, None); // nothing found is no error
///
/// let metrics = backend.operations();
/// assert_eq!(metrics.count(OperationKind::Store, Outcome::Ok), 1);
/// assert_eq!(metrics.count(OperationKind::Store, Outcome::InvalidInput), 1);
/// assert_eq!(metrics.count(OperationKind::Get, Outcome::Ok), 1);
/// // As `resulthub_operations_total{op, outcome}`:
/// for row in &metrics.counts {
///     println!("op={} outcome={} {}", row.kind, row.outcome, row.count);
/// }
/// // As `resulthub_operation_duration_seconds{op}`:
/// let stores = metrics.latency(OperationKind::Store).unwrap();
/// assert_eq!(stores.count, 2);
/// assert_eq!(stores.buckets.iter().map(|(_, n)| n).sum::<u64>(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OperationMetrics {
    /// How many operations ended, by kind and outcome: one row per pair that happened at
    /// least once, by kind then outcome, in the order of [`OperationKind::ALL`] and
    /// [`Outcome::ALL`].
    pub counts: Vec<OperationCount>,
    /// One latency histogram per kind, for every kind of [`OperationKind::ALL`] in that order
    /// (empty ones included).
    pub latencies: Vec<LatencyHistogram>,
}

impl OperationMetrics {
    /// How many operations of `kind` ended with `outcome`.
    pub fn count(&self, kind: OperationKind, outcome: Outcome) -> u64 {
        self.counts
            .iter()
            .find(|row| row.kind == kind && row.outcome == outcome)
            .map_or(0, |row| row.count)
    }

    /// How many operations of `kind` ended, whatever their outcome.
    pub fn total(&self, kind: OperationKind) -> u64 {
        self.counts
            .iter()
            .filter(|row| row.kind == kind)
            .map(|row| row.count)
            .sum()
    }

    /// The latency histogram of `kind`.
    pub fn latency(&self, kind: OperationKind) -> Option<&LatencyHistogram> {
        self.latencies
            .iter()
            .find(|histogram| histogram.kind == kind)
    }
}

/// How many operations of a kind ended with an outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationCount {
    /// The operation.
    pub kind: OperationKind,
    /// How it ended.
    pub outcome: Outcome,
    /// How many times.
    pub count: u64,
}

/// The latencies of one kind of operation, whatever the outcome.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LatencyHistogram {
    /// The operation.
    pub kind: OperationKind,
    /// `(upper bound in seconds, how many operations fell in this bucket and not in an earlier
    /// one)`, one per bound of [`LATENCY_BUCKETS`] and a last one whose bound is
    /// `f64::INFINITY`: per bucket, not cumulative, which is what `prometheus-client`'s
    /// `encode_histogram` takes (it writes the cumulative `le` series). See
    /// [`cumulative`](Self::cumulative) for Prometheus' own form.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of every latency, in seconds.
    pub sum_seconds: f64,
    /// How many operations: the sum of the buckets.
    pub count: u64,
}

impl LatencyHistogram {
    /// The buckets in Prometheus' cumulative form: `(le, operations at or under le)`, the last
    /// one `(f64::INFINITY, count)`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.buckets
            .iter()
            .map(|&(bound, count)| {
                total += count;
                (bound, total)
            })
            .collect()
    }
}

const KINDS: usize = OperationKind::ALL.len();
const OUTCOMES: usize = Outcome::ALL.len();
const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// The bounds in nanoseconds, to compare with an elapsed time without converting it.
const BOUNDS_NANOS: [u64; LATENCY_BUCKETS.len()] = {
    let mut nanos = [0; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = LATENCY_BUCKETS[i].as_nanos() as u64;
        i += 1;
    }
    nanos
};

/// One kind's counters in one shard. Together, so that one operation touches one or two
/// cache lines. Atomics, so that a snapshot may read them while their thread writes.
#[derive(Debug)]
struct KindCells {
    by_outcome: [AtomicU64; OUTCOMES],
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

/// One thread's counters in one backend instance. Aligned so that two shards never share a
/// cache line, nor its prefetched neighbour.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    kinds: [KindCells; KINDS],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            kinds: std::array::from_fn(|_| KindCells {
                by_outcome: std::array::from_fn(|_| AtomicU64::new(0)),
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Adds `other`'s counts, which nobody writes any more, to this shard's.
    fn absorb(&self, other: &Shard) {
        for (mine, theirs) in self.kinds.iter().zip(&other.kinds) {
            let pairs = mine
                .by_outcome
                .iter()
                .zip(&theirs.by_outcome)
                .chain(mine.buckets.iter().zip(&theirs.buckets))
                .chain([(&mine.sum_nanos, &theirs.sum_nanos)]);
            for (mine, theirs) in pairs {
                add_shared(mine, theirs.load(Ordering::Relaxed));
            }
        }
    }

    /// Counts one operation, with `add` for each counter.
    fn add(&self, kind: OperationKind, outcome: Outcome, nanos: u64, add: fn(&AtomicU64, u64)) {
        let cells = &self.kinds[kind as usize];
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKETS - 1);
        add(&cells.by_outcome[outcome as usize], 1);
        add(&cells.buckets[bucket], 1);
        add(&cells.sum_nanos, nanos);
    }
}

/// An addition by the counter's only writer: a load and a store, without the locked
/// read-modify-write a counter shared by writers needs. Relaxed: each counter is read on its
/// own, and nothing orders one against another.
fn add_alone(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// An addition to a counter other threads may add to as well.
fn add_shared(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The operation counters of one backend instance, shared by its clones: one shard per thread
/// that recorded, written by that thread only, summed on read.
pub(crate) struct Operations {
    /// Tells this instance's shard apart in a thread's list.
    id: u64,
    /// Every thread's shard; the lock is taken when a thread records for the first time and
    /// when a snapshot is read.
    shards: Mutex<Vec<Arc<Shard>>>,
    /// The counts of threads gone, and of a thread whose own list cannot be used (while its
    /// thread-locals are destroyed): written by several threads.
    shared: Shard,
}

impl fmt::Debug for Operations {
    /// A summary: the shards hold thousands of counters, which a handle's `Debug` (that shows
    /// its hub's shared state) would otherwise print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operations")
            .field("threads", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Default for Operations {
    fn default() -> Self {
        Operations {
            id: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            shared: Shard::new(),
        }
    }
}

/// Numbers instances, never reusing a number: a thread's list tells their shards apart by it.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard of each instance it recorded in.
    static MINE: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

impl Operations {
    /// Counts one operation.
    pub(crate) fn record(&self, kind: OperationKind, outcome: Outcome, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let recorded = MINE.try_with(|mine| {
            let Ok(mut mine) = mine.try_borrow_mut() else {
                return false;
            };
            let shard = match mine.iter().position(|(id, _)| *id == self.id) {
                Some(at) => &mine[at].1,
                None => {
                    // The instances gone hold no other reference to their shards.
                    mine.retain(|(_, shard)| Arc::strong_count(shard) > 1);
                    let shard = Arc::new(Shard::new());
                    let mut shards = self.lock();
                    // Threads come and go (a blocking pool's do): the shards of those gone
                    // are folded into one, so that memory follows the threads alive.
                    shards.retain(|shard| {
                        let alive = Arc::strong_count(shard) > 1;
                        if !alive {
                            // `strong_count` reads relaxed: this orders the gone thread's
                            // last counts (before its release of the shard) before ours.
                            std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
                            self.shared.absorb(shard);
                        }
                        alive
                    });
                    shards.push(Arc::clone(&shard));
                    drop(shards);
                    mine.push((self.id, shard));
                    &mine[mine.len() - 1].1
                }
            };
            shard.add(kind, outcome, nanos, add_alone);
            true
        });
        if recorded != Ok(true) {
            self.shared.add(kind, outcome, nanos, add_shared);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Shard>>> {
        // Nothing panics while holding it; a poisoned list is still whole.
        self.shards
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sums the shards.
    pub(crate) fn snapshot(&self) -> OperationMetrics {
        let mut metrics = OperationMetrics::default();
        let shards = self.lock();
        let every = || shards.iter().map(|shard| &**shard).chain([&self.shared]);
        for kind in OperationKind::ALL {
            let sum = |read: &dyn Fn(&KindCells) -> u64| -> u64 {
                every()
                    .map(|shard| read(&shard.kinds[kind as usize]))
                    .fold(0u64, u64::saturating_add)
            };
            for outcome in Outcome::ALL {
                let count =
                    sum(&|cells| cells.by_outcome[outcome as usize].load(Ordering::Relaxed));
                if count > 0 {
                    metrics.counts.push(OperationCount {
                        kind,
                        outcome,
                        count,
                    });
                }
            }
            let buckets: Vec<(f64, u64)> = (0..BUCKETS)
                .map(|bucket| {
                    let bound = LATENCY_BUCKETS
                        .get(bucket)
                        .map_or(f64::INFINITY, Duration::as_secs_f64);
                    (
                        bound,
                        sum(&|cells| cells.buckets[bucket].load(Ordering::Relaxed)),
                    )
                })
                .collect();
            let sum_nanos = sum(&|cells| cells.sum_nanos.load(Ordering::Relaxed));
            metrics.latencies.push(LatencyHistogram {
                kind,
                count: buckets.iter().map(|(_, count)| count).sum(),
                buckets,
                sum_seconds: Duration::from_nanos(sum_nanos).as_secs_f64(),
            });
        }
        metrics
    }
}

/// The span of one operation, `resulthub.op`, with every field the scheme has (so that all
/// operations of all backends have the same ones); `target` names the backend's module.
///
/// `Span::none()` unless some subscriber takes DEBUG spans: the macro's own disabled path
/// still builds the fields for the `log` crate when tracing's `log` feature is on (actix turns
/// it on), and a disabled span with metadata goes through `log` on every enter and exit.
macro_rules! op_span {
    (@ $target:literal, $backend:literal, $kind:expr, $task_id:expr, $status:expr) => {
        if ::tracing::level_filters::LevelFilter::current() >= ::tracing::Level::DEBUG {
            ::tracing::debug_span!(
                target: $target,
                "resulthub.op",
                backend = $backend,
                op = $kind.as_str(),
                task_id = $task_id,
                status = $status,
                count = ::tracing::field::Empty,
                outcome = ::tracing::field::Empty,
            )
        } else {
            ::tracing::Span::none()
        }
    };
    ($target:literal, $backend:literal, $kind:expr) => {
        $crate::operations::op_span!(
            @ $target, $backend, $kind, ::tracing::field::Empty, ::tracing::field::Empty
        )
    };
    ($target:literal, $backend:literal, $kind:expr, $task_id:expr) => {
        $crate::operations::op_span!(@ $target, $backend, $kind, $task_id, ::tracing::field::Empty)
    };
    ($target:literal, $backend:literal, $kind:expr, $task_id:expr, $status:expr) => {
        $crate::operations::op_span!(@ $target, $backend, $kind, $task_id, $status)
    };
}
pub(crate) use op_span;

/// The span an operation carries to where it is applied (the hub's thread): `None` when no
/// subscriber wants it, so that an untraced operation pays one pointer, not a span.
pub(crate) type Carried = Option<Box<Span>>;

/// One operation under way: its kind, when it was called, its span.
#[derive(Debug)]
pub(crate) struct Call {
    kind: OperationKind,
    started: Instant,
    span: Span,
}

impl Call {
    /// Starts the clock of an operation whose span is `span` (see [`op_span!`]).
    pub(crate) fn begin(kind: OperationKind, span: Span) -> Call {
        Call {
            kind,
            started: Instant::now(),
            span,
        }
    }

    /// The span, for the work to be carried elsewhere: a clone only when a subscriber wants
    /// it.
    pub(crate) fn carried(&self) -> Carried {
        (!self.span.is_disabled()).then(|| Box::new(self.span.clone()))
    }

    /// Records the size of a batch.
    pub(crate) fn count(&self, count: usize) {
        if !self.span.is_disabled() {
            self.span.record("count", count);
        }
    }

    /// Ends the operation with `outcome`: counted in `operations` (`None`: a hub handle that
    /// never learnt where its hub keeps them), and recorded on the span.
    pub(crate) fn end(&self, operations: Option<&Operations>, outcome: Outcome) {
        if let Some(operations) = operations {
            operations.record(self.kind, outcome, self.started.elapsed());
        }
        if !self.span.is_disabled() {
            self.span.record("outcome", outcome.as_str());
        }
    }

    /// Runs `work` inside the span: for an operation that does all its work at once.
    pub(crate) fn in_span<T>(&self, work: impl FnOnce() -> T) -> T {
        let _entered = self.span.enter();
        work()
    }

    /// [`end`](Self::end) with the outcome of `result`.
    pub(crate) fn finish<T>(
        &self,
        operations: Option<&Operations>,
        result: &Result<T, BackendError>,
    ) {
        self.end(operations, Outcome::of(result));
    }

    /// Awaits `work` inside the span (entered on every poll), then ends the operation with
    /// its result's outcome; [`Outcome::Cancelled`] if the future is dropped first.
    pub(crate) async fn run<'a, T, F>(
        self,
        operations: impl Fn() -> Option<&'a Operations>,
        work: F,
    ) -> Result<T, BackendError>
    where
        F: Future<Output = Result<T, BackendError>>,
    {
        self.run_with(operations, Outcome::of, work).await
    }

    /// [`run`](Self::run) for work whose output says its outcome through `outcome`.
    pub(crate) async fn run_with<'a, T, F>(
        self,
        operations: impl Fn() -> Option<&'a Operations>,
        outcome: impl FnOnce(&T) -> Outcome,
        work: F,
    ) -> T
    where
        F: Future<Output = T>,
    {
        let mut running = Running {
            call: self,
            operations,
            done: false,
        };
        let mut work = std::pin::pin!(work);
        let output = std::future::poll_fn(|cx| {
            let _entered = running.call.span.enter();
            work.as_mut().poll(cx)
        })
        .await;
        running.done = true;
        running.call.end((running.operations)(), outcome(&output));
        output
    }
}

/// A call being awaited: counts it as cancelled if dropped before its answer.
struct Running<'a, O: Fn() -> Option<&'a Operations>> {
    call: Call,
    operations: O,
    done: bool,
}

impl<'a, O: Fn() -> Option<&'a Operations>> Drop for Running<'a, O> {
    fn drop(&mut self) {
        if !self.done {
            self.call.end((self.operations)(), Outcome::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_latency_falls_in_the_bucket_of_its_bound() {
        let operations = Operations::default();
        operations.record(OperationKind::Get, Outcome::Ok, Duration::from_nanos(300));
        operations.record(OperationKind::Get, Outcome::Ok, Duration::from_micros(1));
        operations.record(
            OperationKind::Get,
            Outcome::Timeout,
            Duration::from_millis(3),
        );
        operations.record(
            OperationKind::Get,
            Outcome::Timeout,
            Duration::from_secs(60),
        );
        let metrics = operations.snapshot();
        let get = metrics.latency(OperationKind::Get).unwrap();
        assert_eq!(get.count, 4);
        assert_eq!(get.buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert_eq!(
            get.buckets[0],
            (1e-6, 2),
            "300 ns and 1 µs are at or under 1 µs"
        );
        assert_eq!(get.buckets[11], (0.005, 1), "3 ms is in the 5 ms bucket");
        assert_eq!(get.buckets[BUCKETS - 1], (f64::INFINITY, 1));
        assert!((get.sum_seconds - 60.003_001_3).abs() < 1e-9);
        assert_eq!(get.cumulative().last(), Some(&(f64::INFINITY, 4)));
        assert_eq!(metrics.count(OperationKind::Get, Outcome::Ok), 2);
        assert_eq!(metrics.count(OperationKind::Get, Outcome::Timeout), 2);
        assert_eq!(metrics.total(OperationKind::Get), 4);
        assert_eq!(metrics.counts.len(), 2, "only pairs that happened");
        assert_eq!(metrics.latencies.len(), OperationKind::ALL.len());
        assert_eq!(metrics.latency(OperationKind::Store).unwrap().count, 0);
    }

    #[test]
    fn threads_add_to_one_total() {
        let operations = std::sync::Arc::new(Operations::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let operations = std::sync::Arc::clone(&operations);
                std::thread::spawn(move || {
                    for _ in 0..1_000 {
                        operations.record(OperationKind::Store, Outcome::Ok, Duration::ZERO);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let metrics = operations.snapshot();
        assert_eq!(metrics.count(OperationKind::Store, Outcome::Ok), 8_000);
        assert_eq!(metrics.latency(OperationKind::Store).unwrap().count, 8_000);
    }

    #[test]
    fn the_shards_of_threads_gone_are_folded_and_keep_their_counts() {
        let operations = std::sync::Arc::new(Operations::default());
        for _ in 0..10 {
            let operations = std::sync::Arc::clone(&operations);
            std::thread::spawn(move || {
                operations.record(OperationKind::Get, Outcome::Ok, Duration::from_micros(3));
            })
            .join()
            .unwrap();
        }
        assert!(
            operations.lock().len() <= 1,
            "one shard for the last thread at most"
        );
        let metrics = operations.snapshot();
        assert_eq!(metrics.count(OperationKind::Get, Outcome::Ok), 10);
        let get = metrics.latency(OperationKind::Get).unwrap();
        assert_eq!(get.count, 10);
        assert_eq!(get.buckets[2], (5e-6, 10));
    }

    #[tokio::test]
    async fn a_dropped_call_counts_as_cancelled() {
        let operations = Operations::default();
        let call = Call::begin(OperationKind::WaitFor, Span::none());
        let running = call.run(
            || Some(&operations),
            std::future::pending::<Result<(), _>>(),
        );
        assert!(futures_util::FutureExt::now_or_never(running).is_none());
        let metrics = operations.snapshot();
        assert_eq!(metrics.count(OperationKind::WaitFor, Outcome::Cancelled), 1);
    }
}
