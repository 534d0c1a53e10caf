//! [`RedisBackend`]: results shared across processes through Redis, in flowrra's layout.

mod builder;
mod cluster;
mod connect;
mod delete;
mod errors;
mod feed;
mod inflight;
mod keys;
mod listing;
mod operations;
mod pool;
mod stats;
mod store;
mod waiters;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::de::Error as _;
use tokio::runtime::Handle;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

pub use builder::RedisBackendBuilder;

use crate::timestamp::with_naive_times;
use crate::{
    BackendError, HubConfig, Limit, NaiveTimes, ResultBackend, TaskResult, TaskStatus, validate,
};
use inflight::InFlight;
use keys::Keys;
use pool::Pool;
use waiters::{Link, LinkSettings, Waiters};

/// A [`ResultBackend`] on Redis, sharing results with other processes and machines, and with
/// Python services running flowrra 0.1.8 in both directions.
///
/// Records live at `{prefix}:task:{id}` as the JSON of [`TaskResult`], and a terminal store
/// publishes `done` on `{prefix}:complete:{id}` in the same atomic step as its write
/// (docs/wire-format.md has the whole layout). The semantics are the hub's, with one
/// difference: records of equal (or no) `submitted_at` list by task id, because Redis keeps
/// no first-store order.
///
/// `wait_for` subscribes before it reads, so it cannot miss a completion; all waiters of a
/// backend share one pub/sub connection, open only while there are waiters, which reconnects
/// with backoff and makes every waiter re-read its key after an outage.
///
/// The connections and the pub/sub dispatcher live on the Tokio runtime the backend was built
/// on, which must keep running (a multi-threaded runtime, or one whose thread keeps driving it)
/// for as long as the backend is used. Callers may run on any runtime, or on none: a call from
/// outside Tokio is run on the backend's runtime.
///
/// Batches: `get_many` is one `MGET` (on a cluster, one per hash slot); `store_many` starts every store at once, so their reads
/// and scripts share round trips; `wait_for_all` and `wait_for_any` read the batch with one
/// `MGET`, then each open id waits on the backend's one pattern subscription (no subscription
/// of its own).
///
/// Cloning is cheap and shares the connections.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), resulthub::BackendError> {
/// use std::time::Duration;
/// use resulthub::{RedisBackend, ResultBackend, TaskResult, TaskStatus};
///
/// let backend = RedisBackend::connect("redis://127.0.0.1:6379/0").await?;
/// backend.store("t-1", TaskResult::new("t-1", TaskStatus::Success)).await?;
/// let done = backend.wait_for("t-1", Some(Duration::from_secs(5))).await?;
/// assert!(done.is_success());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: Keys,
    prefix: String,
    ttl_secs: Option<u64>,
    limits: HubConfig,
    max_store_attempts: usize,
    read_retry_delay: Duration,
    list_timeout: Duration,
    naive_times: NaiveTimes,
    stats_interval: Duration,
    stats_cache: stats::StatsCache,
    /// The events: this process's stores and deletes, and completions from the channel while
    /// someone is subscribed.
    feed: feed::Feed,
    pool: Arc<Pool>,
    waiters: Arc<Waiters>,
    in_flight: Arc<InFlight>,
    runtime: Handle,
    operations: crate::operations::Operations,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.waiters.stop();
    }
}

impl RedisBackend {
    /// Connects with every option at its default (see [`RedisBackendBuilder`]): the `flowrra`
    /// prefix, no TTL.
    ///
    /// # Errors
    ///
    /// As [`RedisBackendBuilder::build`].
    pub async fn connect(url: &str) -> Result<RedisBackend, BackendError> {
        Self::builder(url).build().await
    }

    /// Starts building a backend for the server at `url`: `redis://[user:password@]host:port/db`
    /// or `unix:///path/to/socket`; with the `redis-tls` feature also
    /// `rediss://[user:password@]host:port/db` (TLS; the builder's `tls_*` options). Without
    /// that feature a `rediss://` URL is refused with `InvalidInput` naming it.
    pub fn builder(url: &str) -> RedisBackendBuilder {
        RedisBackendBuilder::new(url)
    }

    /// Starts building a backend for a Redis Cluster, reached through any of its nodes
    /// (`seeds`: `redis://[user:password@]host:port` URLs; with the `redis-tls` feature
    /// `rediss://` ones, all seeds alike). The cluster names its other nodes itself. Every
    /// option of [`RedisBackendBuilder`] keeps its meaning; the few that differ say how.
    ///
    /// The layout is flowrra's, as on one server: a store touches one key and stays atomic,
    /// `MOVED` and `ASK` are followed, a failover is ridden out within `response_timeout`, and
    /// listings, `clear` and [`stats`](RedisBackend::stats) walk every primary (a `SCAN` on
    /// each). Waiters share one pattern subscription on one node, which receives every node's
    /// completions and moves to another node when that one fails.
    ///
    /// `build` refuses (`InvalidInput`) no seeds, a malformed seed, a unix socket, a database
    /// other than 0, and seeds that mix `rediss://` and plain URLs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), resulthub::BackendError> {
    /// use std::time::Duration;
    /// use resulthub::RedisBackend;
    ///
    /// let backend = RedisBackend::cluster_builder([
    ///     "redis://10.0.0.1:7000",
    ///     "redis://10.0.0.2:7000",
    ///     "redis://10.0.0.3:7000",
    /// ])
    /// // Longer than a failover: the cluster's node timeout and an election.
    /// .response_timeout(Duration::from_secs(10))
    /// .build()
    /// .await?;
    /// # let _ = backend;
    /// # Ok(())
    /// # }
    /// ```
    pub fn cluster_builder<I>(seeds: I) -> RedisBackendBuilder
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RedisBackendBuilder::cluster(
            seeds
                .into_iter()
                .map(|seed| seed.as_ref().to_owned())
                .collect(),
        )
    }

    /// The prefix of every key and channel this backend uses.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The records of the prefix counted by status (every process's, flowrra's included), and
    /// this backend's waiters. The count comes from a walk over the prefix (`SCAN`, reading
    /// each record's status), cached for
    /// [`stats_interval`](RedisBackendBuilder::stats_interval): however many callers ask, at
    /// most one walk is in flight, and callers within the interval share its answer.
    /// `evicted` and `expired` are 0: Redis expires keys by itself, uncounted. `subscribers`
    /// counts this backend's live event subscriptions.
    ///
    /// # Errors
    ///
    /// As a listing: [`BackendError::Unavailable`] when the server cannot be reached or the
    /// walk takes longer than `list_timeout`.
    pub async fn stats(&self) -> Result<crate::HubStats, BackendError> {
        let inner = Arc::clone(&self.inner);
        self.on_runtime(async move {
            let waiters = inner.waiters.count();
            let mut stats = inner.stats(waiters).await?;
            stats.subscribers = inner.feed.subscribers();
            Ok(stats)
        })
        .await
    }

    /// How many `wait_for` calls on this backend (and its clones) are waiting now.
    pub fn local_waiters(&self) -> usize {
        self.inner.waiters.count()
    }

    async fn from_builder(options: RedisBackendBuilder) -> Result<RedisBackend, BackendError> {
        options.check()?;
        let ttl_secs = options.ttl_secs()?;
        let Ok(runtime) = Handle::try_current() else {
            return Err(BackendError::Unsupported {
                operation: "RedisBackend outside a Tokio runtime",
            });
        };
        let (connector, subscriber) = connect::connections(&options)?;
        let pool = Arc::new(
            Pool::open(
                connector.clone(),
                options.pool_size,
                options.connect_timeout,
                options.response_timeout,
                runtime.clone(),
            )
            .await
            .map_err(|error| connect::in_context(&connector, error))?,
        );
        let settings = LinkSettings {
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
            health_check_interval: options.health_check_interval,
            backoff_min: options.backoff_min,
            backoff_max: options.backoff_max,
            linger: options.subscription_linger,
        };
        let keys = Keys::new(&options.prefix);
        let limits = HubConfig {
            max_task_id_len: options.max_task_id_len,
            max_record_bytes: options.max_record_bytes,
            terminal_policy: options.terminal_policy,
            max_waiters: options.max_waiters,
            ..HubConfig::default()
        };
        let feed = feed::Feed::new(&limits);
        let backend = RedisBackend {
            inner: Arc::new(Inner {
                waiters: Waiters::new(
                    subscriber,
                    keys.clone(),
                    settings,
                    options.max_waiters,
                    Arc::clone(&pool),
                    runtime.clone(),
                ),
                keys,
                prefix: options.prefix,
                ttl_secs,
                limits,
                max_store_attempts: options.max_store_attempts,
                read_retry_delay: options.backoff_max,
                list_timeout: options.list_timeout,
                naive_times: options.naive_times,
                stats_interval: options.stats_interval,
                stats_cache: stats::StatsCache::default(),
                feed,
                pool,
                in_flight: Arc::default(),
                runtime,
                operations: crate::operations::Operations::default(),
            }),
        };
        backend
            .inner
            .pool
            .query::<String>(&redis::cmd("PING"))
            .await
            .map_err(|error| connect::in_context(&connector, error))?;
        Ok(backend)
    }

    /// Runs `work` here when the caller is inside a Tokio runtime, else on the backend's own.
    async fn on_runtime<T, F>(&self, work: F) -> Result<T, BackendError>
    where
        F: Future<Output = Result<T, BackendError>> + Send + 'static,
        T: Send + 'static,
    {
        if Handle::try_current().is_ok() {
            work.await
        } else {
            // The caller's span (the operation's) and subscriber go with the work to the other
            // runtime's threads.
            let work = tracing::instrument::WithSubscriber::with_current_subscriber(
                tracing::Instrument::in_current_span(work),
            );
            joined(AbortOnDropHandle::new(self.inner.runtime.spawn(work))).await
        }
    }
}

/// A store that has its place in this process's order of stores of its id: it runs when
/// awaited, and on the backend's runtime if it is dropped first, so a started store is never
/// lost (a batch dropped before all its stores were first polled included).
struct StartedStore(inflight::FinishOnDrop<Result<TaskResult, BackendError>>);

impl StartedStore {
    async fn run(self, backend: &RedisBackend) -> Result<(), BackendError> {
        self.run_merged(backend).await.map(|_| ())
    }

    /// As `run`, answering the record as stored: task fields merged from the one it replaced.
    async fn run_merged(self, backend: &RedisBackend) -> Result<TaskResult, BackendError> {
        let store = AssertUnwindSafe(self.0).catch_unwind();
        // A panic is a bug of ours: the caller gets an error, as from a spawned store.
        backend
            .on_runtime(async move {
                store.await.unwrap_or_else(|_| {
                    Err(BackendError::Internal {
                        reason: "a Redis store panicked".to_owned(),
                    })
                })
            })
            .await
    }
}

impl Inner {
    /// Checks a store and takes its place in the order of stores of its id, now.
    fn started_store(
        self: &Arc<Self>,
        task_id: &str,
        record: TaskResult,
    ) -> Result<StartedStore, BackendError> {
        validate::store(task_id, &record, &self.limits)?;
        let inner = Arc::clone(self);
        let ticket = self.in_flight.begin(task_id);
        let task_id = task_id.to_owned();
        let work = async move {
            inner
                .in_flight
                .settled_before(Some(&task_id), ticket.number())
                .await;
            let outcome = inner.store(&task_id, record).await;
            drop(ticket);
            outcome
        };
        // In the caller's span (the operation's) also when a dropped store is finished on
        // the runtime.
        Ok(StartedStore(inflight::FinishOnDrop::new(
            tracing::instrument::WithSubscriber::with_current_subscriber(
                tracing::Instrument::in_current_span(work),
            ),
            self.runtime.clone(),
        )))
    }

    /// A stored record, its naive times read in the backend's zone.
    fn decode(&self, task_id: &str, bytes: &[u8]) -> Result<TaskResult, BackendError> {
        with_naive_times(self.naive_times, || decode(task_id, bytes))
    }

    async fn read(&self, task_id: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let mut command = redis::cmd("GET");
        command.arg(self.keys.task(task_id));
        self.pool.query(&command).await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        match self.read(task_id).await? {
            Some(bytes) => self.decode(task_id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// One `MGET` for every id (on a cluster, one per hash slot); an empty id, which nothing
    /// can be stored under, reads `None`.
    async fn get_many(&self, task_ids: &[String]) -> Result<Vec<Option<TaskResult>>, BackendError> {
        let keys: Vec<String> = task_ids.iter().map(|id| self.keys.task(id)).collect();
        let values = self.pool.mget(&keys).await?;
        task_ids
            .iter()
            .zip(values)
            .map(|(task_id, bytes)| match bytes {
                Some(bytes) if !task_id.is_empty() => self.decode(task_id, &bytes).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    /// Reads, merges the sticky fields, and writes only if the record read is still the one
    /// stored; again while other writers get in between. Answers the record written.
    async fn store(&self, task_id: &str, record: TaskResult) -> Result<TaskResult, BackendError> {
        let key = self.keys.task(task_id);
        let channel = self.keys.complete(task_id);
        let announce = record.is_terminal();
        for _ in 0..self.max_store_attempts {
            let previous = self.read(task_id).await?;
            let mut merged = record.clone();
            match previous.as_deref().map(|bytes| self.decode(task_id, bytes)) {
                Some(Ok(previous)) => {
                    validate::terminal_policy(task_id, Some(previous.status), &self.limits)?;
                    merged.inherit_task_fields(&previous);
                }
                Some(Err(error)) => {
                    // Nothing can be merged from it; the write replaces it whole.
                    tracing::warn!(task_id, error = %error, "resulthub.redis.undecodable_record_replaced");
                }
                None => {}
            }
            let json = with_naive_times(self.naive_times, || serde_json::to_vec(&merged))
                .map_err(BackendError::Codec)?;
            validate::record_bytes(json.len(), &self.limits)?;
            let attempt = store::Attempt {
                key: &key,
                channel: &channel,
                previous: previous.as_deref(),
                record: &json,
                ttl_secs: self.ttl_secs,
                announce,
            };
            let sent = self
                .pool
                .call(|mut connection| {
                    let attempt = &attempt;
                    async move { attempt.run(&mut connection).await }
                })
                .await;
            match sent {
                Ok(store::Outcome::Written) => {
                    self.announce_stored(task_id, &merged, &json);
                    return Ok(merged);
                }
                Ok(store::Outcome::AlreadyStored) => {
                    tracing::debug!(task_id, "resulthub.redis.store_already_applied");
                    // Written by a send whose reply was lost: announced unless it was then.
                    self.announce_stored(task_id, &merged, &json);
                    return Ok(merged);
                }
                // Another writer got in between: merge the caller's record with the new one.
                Ok(store::Outcome::Changed) => {}
                Err(error @ BackendError::Unavailable { .. }) => {
                    self.lost_reply(task_id, &json, error).await?;
                    self.announce_stored(task_id, &merged, &json);
                    return Ok(merged);
                }
                Err(error) => return Err(error),
            }
        }
        Err(BackendError::overloaded(
            Limit::MaxStoreAttempts,
            self.max_store_attempts,
            self.max_store_attempts,
            format!(
                "task {task_id:?} changed under each of {} store attempts (max_store_attempts)",
                self.max_store_attempts
            ),
        ))
    }

    /// A store whose script may have run (its replies were lost, even to the repeat) is done
    /// if the record stored is the one it sent; it is read once to know. Any other answer,
    /// or a failed read, leaves `error` as the outcome.
    async fn lost_reply(
        &self,
        task_id: &str,
        sent: &[u8],
        error: BackendError,
    ) -> Result<(), BackendError> {
        match self.read(task_id).await {
            Ok(Some(stored)) if stored == sent => {
                tracing::debug!(task_id, "resulthub.redis.store_already_applied");
                Ok(())
            }
            _ => Err(error),
        }
    }

    /// Subscribes (through the shared dispatcher), then reads, then waits for a wake-up; a
    /// wake-up only means "read again". `deadline` bounds everything but a first read that
    /// starts after it, so a zero timeout still returns a record that is already terminal.
    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        let deadline = timeout.and_then(|timeout| Instant::now().checked_add(timeout));
        let registration = match self.waiters.register(task_id) {
            Ok(registration) => registration,
            // Full: only a task that is finished is answered, as by the hub.
            Err(full) => {
                let _ = until(deadline, self.in_flight.settled(Some(task_id))).await;
                return match self.get(task_id).await? {
                    Some(record) if record.is_terminal() => Ok(record),
                    _ => Err(full),
                };
            }
        };
        let expired = |task_id: &str| match registration.link() {
            Link::Down(failure) => BackendError::Unavailable {
                reason: format!(
                    "redis link down while waiting for task {task_id:?}: {}",
                    failure.reason
                ),
            },
            Link::Up | Link::Connecting => BackendError::Timeout {
                task_id: task_id.to_owned(),
                timeout: timeout.unwrap_or(Duration::MAX),
            },
        };

        // Stores this process started before the wait come first, within the timeout.
        let _ = until(deadline, self.in_flight.settled(Some(task_id))).await;

        match until(deadline, registration.subscribed()).await {
            Some(Ok(())) => {}
            Some(Err(failure)) => {
                // The pub/sub link is down, the server may not be: a finished task is answered
                // now, and an unfinished one waits (within the timeout) for the link, unless
                // the server refused the subscription itself.
                if let Some(record) = self.get(task_id).await? {
                    if record.is_terminal() {
                        return Ok(record);
                    }
                }
                if failure.refused {
                    return Err(BackendError::Storage(
                        format!("redis refused the subscription: {}", failure.reason).into(),
                    ));
                }
                self.waiters.reconnect_now();
                if until(deadline, registration.up()).await.is_none() {
                    return Err(BackendError::Unavailable {
                        reason: format!(
                            "no pub/sub link to wait for task {task_id:?} with: {}",
                            failure.reason
                        ),
                    });
                }
            }
            // Out of time before the subscription: one read decides.
            None => {
                return match self.get(task_id).await? {
                    Some(record) if record.is_terminal() => Ok(record),
                    _ => Err(expired(task_id)),
                };
            }
        }
        // A read that fails once the wait is under way (the server restarting, a blip) does
        // not end the wait: it is tried again at the next wake-up or after a short pause.
        let mut failed: Option<BackendError> = None;
        let mut first = true;
        loop {
            let read = if first && deadline.is_some_and(|at| at <= Instant::now()) {
                Some(self.get(task_id).await)
            } else {
                until(deadline, self.get(task_id)).await
            };
            match read {
                Some(Ok(Some(record))) if record.is_terminal() => return Ok(record),
                Some(Ok(_)) => failed = None,
                Some(Err(error @ BackendError::Unavailable { .. })) if !first => {
                    failed = Some(error);
                }
                Some(Err(error)) => return Err(error),
                None => return Err(failed.unwrap_or_else(|| expired(task_id))),
            }
            first = false;
            let next = async {
                if failed.is_some() {
                    let pause = tokio::time::sleep(self.read_retry_delay);
                    tokio::select! {
                        () = registration.woken() => {}
                        () = pause => {}
                    }
                } else {
                    registration.woken().await;
                }
            };
            if until(deadline, next).await.is_none() {
                return Err(failed.unwrap_or_else(|| expired(task_id)));
            }
        }
    }
}

/// Awaits `work` until `deadline` (`None`: without limit); `None` if the deadline came first.
async fn until<F: Future>(deadline: Option<Instant>, work: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, work).await.ok(),
        None => Some(work.await),
    }
}

/// The status of a stored record, read without decoding the rest; `None` if it has none that
/// can be read.
fn stored_status(bytes: &[u8]) -> Option<TaskStatus> {
    #[derive(serde::Deserialize)]
    struct StatusOnly {
        status: TaskStatus,
    }
    serde_json::from_slice::<StatusOnly>(bytes)
        .ok()
        .map(|only| only.status)
}

/// Decodes a stored record. One that is not valid JSON of a record, or is filed under another
/// task's key, is a `Codec` error.
fn decode(task_id: &str, bytes: &[u8]) -> Result<TaskResult, BackendError> {
    let record: TaskResult = serde_json::from_slice(bytes).map_err(BackendError::Codec)?;
    if record.task_id != task_id {
        return Err(BackendError::Codec(serde_json::Error::custom(format!(
            "the record stored for task {task_id:?} says task_id {:?}",
            record.task_id
        ))));
    }
    Ok(record)
}

/// The outcome of a task spawned on the backend's runtime; dropping the future aborts the task
/// (the caller stopped waiting for it).
async fn joined<T>(task: AbortOnDropHandle<Result<T, BackendError>>) -> Result<T, BackendError> {
    match task.await {
        Ok(outcome) => outcome,
        Err(error) if error.is_panic() => Err(BackendError::Internal {
            reason: format!("a Redis operation panicked: {error}"),
        }),
        Err(_) => Err(BackendError::Unavailable {
            reason: "the Tokio runtime the Redis backend was built on has shut down".to_owned(),
        }),
    }
}

#[async_trait::async_trait]
impl ResultBackend for RedisBackend {
    /// Writes the record merged with the stored one, and announces a terminal one, in one
    /// atomic step: each attempt is one script, so a store either happens whole or fails.
    ///
    /// The store runs in the caller's future (on the backend's runtime for a caller outside
    /// Tokio), without a task of its own. A caller that stops waiting does not stop the store,
    /// as with the hub: the rest of it is handed to a task on the backend's runtime then, and
    /// only then.
    async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        let call = self.store_call(task_id, result.status.as_str());
        let stored = async move { self.inner.started_store(task_id, result)?.run(self).await };
        call.run(|| self.counters(), stored).await
    }

    /// Every store starts at once, in the order given (so stores of one id apply in that
    /// order), and their reads and scripts share round trips on the multiplexed connections
    /// instead of waiting for each other. A record refused by a check fails alone.
    async fn store_many(&self, records: Vec<TaskResult>) -> Vec<Result<(), BackendError>> {
        let call = self.call(crate::operations::OperationKind::StoreMany, None);
        call.count(records.len());
        let stored = async move {
            let started: Vec<_> = records
                .into_iter()
                .map(|record| {
                    let task_id = record.task_id.clone();
                    self.inner.started_store(&task_id, record)
                })
                .collect();
            futures_util::future::join_all(started.into_iter().map(|store| async move {
                match store {
                    Ok(store) => store.run(self).await,
                    Err(error) => Err(error),
                }
            }))
            .await
        };
        let outcome = |results: &Vec<_>| crate::operations::Outcome::of_batch(results);
        call.run_with(|| self.counters(), outcome, stored).await
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        let call = self.call(crate::operations::OperationKind::Get, Some(task_id));
        let read = async move {
            validate::id_length(task_id, &self.inner.limits)?;
            if task_id.is_empty() {
                return Ok(None);
            }
            let inner = Arc::clone(&self.inner);
            let task_id = task_id.to_owned();
            self.on_runtime(async move {
                inner.in_flight.settled(Some(&task_id)).await;
                inner.get(&task_id).await
            })
            .await
        };
        call.run(|| self.counters(), read).await
    }

    /// One `MGET` for the whole batch, after the stores this process started on those ids.
    async fn get_many(&self, task_ids: &[&str]) -> Result<Vec<Option<TaskResult>>, BackendError> {
        let call = self.call(crate::operations::OperationKind::GetMany, None);
        call.count(task_ids.len());
        let read = async move {
            crate::many::non_empty(task_ids, "get_many")?;
            for task_id in task_ids {
                validate::id_length(task_id, &self.inner.limits)?;
            }
            let inner = Arc::clone(&self.inner);
            let task_ids: Vec<String> = task_ids.iter().map(|&id| id.to_owned()).collect();
            self.on_runtime(async move {
                for task_id in &task_ids {
                    inner.in_flight.settled(Some(task_id)).await;
                }
                inner.get_many(&task_ids).await
            })
            .await
        };
        call.run(|| self.counters(), read).await
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        let call = self.call(crate::operations::OperationKind::WaitFor, Some(task_id));
        let waited = async move {
            validate::waitable_id(task_id, &self.inner.limits)?;
            let inner = Arc::clone(&self.inner);
            let task_id = task_id.to_owned();
            self.on_runtime(async move { inner.wait_for(&task_id, timeout).await })
                .await
        };
        call.run(|| self.counters(), waited).await
    }

    async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        let call = self.call(crate::operations::OperationKind::Delete, Some(task_id));
        let deleted = async move {
            validate::id_length(task_id, &self.inner.limits)?;
            if task_id.is_empty() {
                return Ok(false);
            }
            let inner = Arc::clone(&self.inner);
            let task_id = task_id.to_owned();
            self.on_runtime(async move {
                inner.in_flight.settled(Some(&task_id)).await;
                inner.delete(&task_id).await
            })
            .await
        };
        call.run(|| self.counters(), deleted).await
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        let call = self.call(crate::operations::OperationKind::Clear, None);
        let inner = Arc::clone(&self.inner);
        let cleared = self.on_runtime(async move {
            inner.in_flight.settled(None).await;
            let cleared = inner.clear().await;
            inner.announce_cleared();
            cleared
        });
        call.run(|| self.counters(), cleared).await
    }

    /// The trait's paging by offset, through one listing, counted as one `list_page`.
    async fn list_page(
        &self,
        status: TaskStatus,
        limit: usize,
        after: Option<&crate::Cursor>,
    ) -> Result<crate::Page, BackendError> {
        let call = self.call(crate::operations::OperationKind::ListPage, None);
        let listed = async move {
            crate::backend::check_page_limit(limit)?;
            let offset = after.map(crate::Cursor::offset).transpose()?.unwrap_or(0);
            let mut records = self
                .listing(status, Some(limit.saturating_add(1)), offset)
                .await?;
            let next = (records.len() > limit).then(|| {
                records.truncate(limit);
                crate::Cursor::after_offset(offset + limit)
            });
            Ok(crate::Page::new(records, next))
        };
        call.run(|| self.counters(), listed).await
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let call = self.call(crate::operations::OperationKind::ListByStatus, None);
        let listed = self.listing(status, limit, offset);
        call.run(|| self.counters(), listed).await
    }
}
