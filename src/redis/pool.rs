//! The command connections: multiplexed, used in turn, every command under a deadline, and a
//! connection that stopped answering replaced.
//!
//! `ConnectionManager` reconnects by itself after a connection error, but not after a timeout:
//! a half-open connection (a partition, a NAT that forgot it) would fail every call until the
//! kernel gives up on the socket, minutes later. So a timeout rebuilds that slot in the
//! background. And its first command after an outage fails even once the server is back (it
//! awaits the failed reconnection), so a command that failed on the connection itself, not on
//! time, is sent once more: every command here is safe to repeat (reads, and the store and
//! delete scripts, which recognise their own earlier run: see store.rs and delete.rs).
//!
//! `LOADING` and `READONLY` answers pass (a server restarting, a failover), so a command
//! refused with one is sent again, on a rebuilt connection and after a growing pause, until
//! the response timeout since the call began runs out. Neither changed anything: the server
//! refuses a command while loading before running it, and a script here fails with
//! `READONLY` at its first write.
//!
//! On Redis Cluster each pool slot holds a `ClusterConnection`, which keeps a multiplexed
//! connection per node, follows `MOVED` and `ASK`, refreshes its slot map and reconnects to a
//! node by itself. What it gives up on within its own retries (a master that died and whose
//! replica is not promoted yet: refused or timed-out connections, `CLUSTERDOWN`, no route to
//! the slot) is sent again here, after a growing pause, until the call's one deadline: a
//! failover takes the cluster's node timeout and an election, longer than the client's quick
//! retries. So is a
//! `MOVED` or `ASK` it stopped following (see `errors::is_redirect`): a redirected command
//! did not run.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, RedisError, RedisFuture, Value};
use tokio::runtime::Handle;
use tokio::time::Instant;

use super::errors::{
    from_redis, is_cluster_route_lost, is_connection_error, is_passing, is_redirect,
};
use crate::BackendError;

/// What the pool's connections are made from: one server's client, or a cluster's.
#[derive(Clone, Debug)]
pub(crate) enum Connector {
    Single(Box<redis::Client>),
    Cluster {
        client: Box<ClusterClient>,
        /// Skips verifying the nodes' certificates (`tls_insecure`): warned at each connect.
        insecure: bool,
    },
}

/// A command connection as the pool hands it to a call: to one server (through its
/// `ConnectionManager`) or to a cluster (routing each command by its keys).
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Single(_) => f.write_str("Connection::Single"),
            Connection::Cluster(_) => f.write_str("Connection::Cluster"),
        }
    }
}

impl Connection {
    /// Sends `command` to the primary that serves `slot` (see `cluster::primaries`); on one
    /// server, to that server. For commands that are about a node, not a key (`SCAN`).
    pub(crate) async fn query_node<T: redis::FromRedisValue>(
        &mut self,
        command: &Cmd,
        slot: Option<u16>,
    ) -> Result<T, RedisError> {
        match (self, slot) {
            (Connection::Cluster(connection), Some(slot)) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                let value = connection.route_command(command.clone(), routing).await?;
                redis::from_redis_value(value).map_err(RedisError::from)
            }
            (connection, _) => command.query_async(connection).await,
        }
    }
}

impl Connection {
    /// On a cluster, sends `CLUSTER MYID` and `command` in one pipeline to the primary that
    /// serves `slot`, and answers the id of the node that ran `command` with its reply: the
    /// slot may have moved to another node since it was picked.
    pub(crate) async fn query_node_with_id<T: redis::FromRedisValue>(
        &mut self,
        command: &Cmd,
        slot: u16,
    ) -> Result<(String, T), RedisError> {
        let Connection::Cluster(connection) = self else {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "a node's id asked of a connection to one server",
            )));
        };
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("CLUSTER")
            .arg("MYID")
            .add_command(command.clone());
        let values = connection
            .route_pipeline(
                pipeline,
                0,
                2,
                SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)),
            )
            .await?;
        let mut values = values.into_iter();
        let (Some(id), Some(reply), None) = (values.next(), values.next(), values.next()) else {
            return Err(RedisError::from((
                redis::ErrorKind::Parse,
                "a pipeline of two commands answered another number of replies",
            )));
        };
        let id: String = redis::from_redis_value(id).map_err(RedisError::from)?;
        let reply: T = redis::from_redis_value(reply).map_err(RedisError::from)?;
        Ok((id, reply))
    }
}

impl Connection {
    /// Runs `script` (whose text is `source`) with `keys` and `args`.
    ///
    /// On one server as `Script` does: `EVALSHA`, then, if the server does not know the
    /// script, `SCRIPT LOAD` and `EVALSHA` again; and if it still does not know it, `EVAL` with
    /// the whole text. On a cluster `EVALSHA` routed by the key, and on `NOSCRIPT` straight to
    /// `EVAL`, routed alike, which caches the script on that node: the client's `SCRIPT LOAD`
    /// goes to every master and fails (or waits) if any one is unreachable, failing stores to
    /// healthy ones; and it may miss the key's node (a replica promoted since).
    pub(crate) async fn run_script<T: redis::FromRedisValue>(
        &mut self,
        script: &redis::Script,
        source: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<T, RedisError> {
        let outcome = match self {
            Connection::Cluster(_) => {
                let mut command = redis::cmd("EVALSHA");
                command
                    .arg(script.get_hash())
                    .arg(keys.len())
                    .arg(keys)
                    .arg(args);
                command.query_async(self).await
            }
            Connection::Single(_) => {
                let mut invocation = script.prepare_invoke();
                for key in keys {
                    invocation.key(*key);
                }
                for arg in args {
                    invocation.arg(*arg);
                }
                invocation.invoke_async(self).await
            }
        };
        match outcome {
            Err(error) if is_no_script(&error) => {
                let mut command = redis::cmd("EVAL");
                command.arg(source).arg(keys.len()).arg(keys).arg(args);
                command.query_async(self).await
            }
            outcome => outcome,
        }
    }
}

fn is_no_script(error: &RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The first pause before a command refused with `LOADING` or `READONLY` is sent again; each
/// next pause doubles, up to [`PASSING_PAUSE_MAX`].
const PASSING_PAUSE_MIN: Duration = Duration::from_millis(25);
/// The longest pause between two sends of a command refused with `LOADING` or `READONLY`.
const PASSING_PAUSE_MAX: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Slot {
    connection: Mutex<Connection>,
    replacing: AtomicBool,
}

/// The command connections of one backend.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Vec<Arc<Slot>>,
    next: AtomicUsize,
    connector: Connector,
    config: ConnectionManagerConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
    runtime: Handle,
}

impl Pool {
    /// Opens `size` connections; fails if any cannot be made.
    pub(crate) async fn open(
        connector: Connector,
        size: usize,
        connect_timeout: Duration,
        response_timeout: Duration,
        runtime: Handle,
    ) -> Result<Pool, BackendError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            // One quick retry: a call during an outage fails fast instead of sitting through
            // a backoff.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(25))
            .set_max_delay(Duration::from_millis(25));
        let mut slots = Vec::with_capacity(size);
        for _ in 0..size {
            let connection = connect(&connector, &config, connect_timeout).await?;
            slots.push(Arc::new(Slot {
                connection: Mutex::new(connection),
                replacing: AtomicBool::new(false),
            }));
        }
        Ok(Pool {
            slots,
            next: AtomicUsize::new(0),
            connector,
            config,
            connect_timeout,
            response_timeout,
            runtime,
        })
    }

    /// Runs one command (made by `command` on a connection) under the response timeout; one
    /// refused with `LOADING` or `READONLY` (on a cluster also `CLUSTERDOWN`, `TRYAGAIN`,
    /// `MASTERDOWN`, a refused connection or a lost route) is sent again until that timeout,
    /// counted from now, runs out.
    pub(crate) async fn call<T, F, Fut>(&self, command: F) -> Result<T, BackendError>
    where
        F: Fn(Connection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        // Every try ends by one deadline: a retry takes what is left, not a fresh timeout. A
        // timeout too long to count in an `Instant` is as good as none.
        let deadline = Instant::now()
            .checked_add(self.response_timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let mut pause = PASSING_PAUSE_MIN;
        let mut repeated = false;
        let cluster = matches!(self.connector, Connector::Cluster { .. });
        loop {
            let connection = slot
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            // A cluster connection's own task can stall for good while it recovers from a
            // node's death (the redis crate's recovery and a node's repair wait on each other's
            // lock): nothing it was given is answered. So on a cluster each send gets half the
            // call's time, and one unanswered by then is sent again on a new connection.
            let attempt_end = if cluster {
                (Instant::now() + self.response_timeout / 2).min(deadline)
            } else {
                deadline
            };
            match tokio::time::timeout_at(attempt_end, command(connection)).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => match on_error(&error, cluster, repeated) {
                    OnError::Fail { replace } => {
                        if replace {
                            self.replace(slot);
                        }
                        return Err(from_redis(error));
                    }
                    OnError::SendOnceMore => repeated = true,
                    OnError::Retry => {
                        // A name or a proxy may lead elsewhere by now (to the promoted
                        // master): a new connection finds out, the old one serves until it is
                        // made. A cluster connection finds the new master by itself, from its
                        // slot refresh.
                        if !cluster {
                            self.replace(slot);
                        }
                        if Instant::now() + pause >= deadline {
                            return Err(from_redis(error));
                        }
                        tracing::debug!(error = %error, "resulthub.redis.command_retried");
                        tokio::time::sleep(pause).await;
                        pause = pause.saturating_mul(2).min(PASSING_PAUSE_MAX);
                    }
                },
                Err(_) if attempt_end < deadline => {
                    tracing::warn!(
                        after = ?self.response_timeout / 2,
                        "resulthub.redis.cluster_connection_unanswered"
                    );
                    self.replace(slot);
                    // The new connection is made in the background; the send waits for it.
                    while slot.replacing.load(Ordering::Acquire) && Instant::now() < deadline {
                        tokio::time::sleep(PASSING_PAUSE_MIN).await;
                    }
                }
                Err(_) => {
                    self.replace(slot);
                    return Err(BackendError::Unavailable {
                        reason: format!("redis did not answer within {:?}", self.response_timeout),
                    });
                }
            }
        }
    }

    /// The bound on each command, from the builder.
    pub(crate) fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// Runs one prepared command.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, BackendError> {
        self.call(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// Runs one prepared command on the primary of `slot` (see [`Connection::query_node`]).
    pub(crate) async fn query_node<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
        slot: Option<u16>,
    ) -> Result<T, BackendError> {
        self.call(|mut connection| async move { connection.query_node(command, slot).await })
            .await
    }

    /// Runs one prepared command on the primary of `slot`, with the id of the node that ran
    /// it (see [`Connection::query_node_with_id`]); cluster only.
    pub(crate) async fn query_node_with_id<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
        slot: u16,
    ) -> Result<(String, T), BackendError> {
        self.call(
            |mut connection| async move { connection.query_node_with_id(command, slot).await },
        )
        .await
    }

    /// The values of `keys`, in their order (`None` for a key that is missing). One `MGET` on
    /// one server; on a cluster one `MGET` per hash slot, all at once. The cluster client would
    /// split one `MGET` by slot itself, but it sends the parts to nodes by address, and a part
    /// whose node failed makes it reconnect to its seeds, which under a failover can stall it;
    /// a `MGET` of one slot is routed, and rerouted, by its slot.
    pub(crate) async fn mget<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.is_cluster() {
            let mut command = redis::cmd("MGET");
            for key in keys {
                command.arg(key.as_ref());
            }
            return checked_len(self.query(&command).await?, keys.len());
        }
        let mut by_slot: std::collections::HashMap<redis::cluster_routing::Slot, Vec<usize>> =
            std::collections::HashMap::new();
        for (index, key) in keys.iter().enumerate() {
            by_slot
                .entry(redis::cluster_routing::Slot::for_key(key.as_ref()))
                .or_default()
                .push(index);
        }
        let parts = by_slot.into_values().map(|indices| async move {
            let mut command = redis::cmd("MGET");
            for &index in &indices {
                command.arg(keys[index].as_ref());
            }
            let values = checked_len(self.query(&command).await?, indices.len())?;
            Ok::<_, BackendError>((indices, values))
        });
        let mut out = vec![None; keys.len()];
        for part in futures_util::future::join_all(parts).await {
            let (indices, values) = part?;
            for (index, value) in indices.into_iter().zip(values) {
                out[index] = value;
            }
        }
        Ok(out)
    }

    /// Whether the connections are a cluster's.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.connector, Connector::Cluster { .. })
    }

    /// Rebuilds a slot's connection in the background; one rebuild at a time per slot. The old
    /// connection serves until the new one is made.
    fn replace(&self, slot: &Arc<Slot>) {
        if slot.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = Arc::clone(slot);
        let connector = self.connector.clone();
        let config = self.config.clone();
        let timeout = self.connect_timeout;
        self.runtime.spawn(async move {
            match connect(&connector, &config, timeout).await {
                Ok(connection) => {
                    *slot
                        .connection
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = connection;
                    tracing::info!("resulthub.redis.connection_replaced");
                }
                Err(error) => {
                    tracing::warn!(error = %error, "resulthub.redis.connection_replace_failed");
                }
            }
            slot.replacing.store(false, Ordering::Release);
        });
    }
}

/// What [`Pool::call`] does with a command's error.
#[derive(Debug, PartialEq, Eq)]
enum OnError {
    /// Fails the call; `replace`: the connection is rebuilt first.
    Fail { replace: bool },
    /// Sends the command once more at once (a connection error on one server).
    SendOnceMore,
    /// Sends the command again after a pause, while the call's time lasts.
    Retry,
}

fn on_error(error: &RedisError, cluster: bool, repeated: bool) -> OnError {
    if cluster {
        // The cluster client's timeouts (its connection to a node, its own response timeout)
        // are one node's connection trouble like any other: retried within the deadline.
        if is_passing(error)
            || is_connection_error(error)
            || is_cluster_route_lost(error)
            || is_redirect(error)
        {
            return OnError::Retry;
        }
        return OnError::Fail { replace: false };
    }
    if error.is_timeout() {
        // The manager's own response timeout: same as ours, never repeated.
        return OnError::Fail { replace: true };
    }
    if !repeated && is_connection_error(error) {
        return OnError::SendOnceMore;
    }
    if is_passing(error) {
        return OnError::Retry;
    }
    OnError::Fail { replace: false }
}

/// An `MGET`'s values, if there is one per key asked.
fn checked_len(
    values: Vec<Option<Vec<u8>>>,
    keys: usize,
) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
    if values.len() == keys {
        Ok(values)
    } else {
        Err(BackendError::Storage(
            format!("MGET of {keys} keys answered {} values", values.len()).into(),
        ))
    }
}

async fn connect(
    connector: &Connector,
    config: &ConnectionManagerConfig,
    timeout: Duration,
) -> Result<Connection, BackendError> {
    let connect = async {
        match connector {
            Connector::Single(client) => {
                super::connect::warn_if_insecure(client);
                ConnectionManager::new_with_config((**client).clone(), config.clone())
                    .await
                    .map(Connection::Single)
            }
            Connector::Cluster { client, insecure } => {
                if *insecure {
                    tracing::warn!("resulthub.redis.tls_insecure");
                }
                client.get_async_connection().await.map(Connection::Cluster)
            }
        }
    };
    // The manager retries once; the whole attempt stays within twice the timeout. A cluster
    // connection is made to every seed at once and then to every node the seeds name.
    match tokio::time::timeout(timeout.saturating_mul(2), connect).await {
        Ok(outcome) => outcome.map_err(from_redis),
        Err(_) => Err(BackendError::Unavailable {
            reason: format!(
                "no connection to redis within {:?}",
                timeout.saturating_mul(2)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out() -> RedisError {
        RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer",
        ))
    }

    #[test]
    fn a_timeout_is_final_on_one_server_and_retried_on_a_cluster() {
        assert!(timed_out().is_timeout());
        assert_eq!(
            on_error(&timed_out(), false, false),
            OnError::Fail { replace: true }
        );
        assert_eq!(on_error(&timed_out(), true, false), OnError::Retry);
        assert_eq!(on_error(&timed_out(), true, true), OnError::Retry);
    }

    #[test]
    fn other_errors_keep_their_handling() {
        let refused = || {
            RedisError::from(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "refused",
            ))
        };
        assert_eq!(on_error(&refused(), false, false), OnError::SendOnceMore);
        assert_eq!(
            on_error(&refused(), false, true),
            OnError::Fail { replace: false }
        );
        assert_eq!(on_error(&refused(), true, false), OnError::Retry);
        let server = |kind, text: &'static str| RedisError::from((kind, text));
        let loading = || {
            server(
                redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading),
                "loading",
            )
        };
        assert_eq!(on_error(&loading(), false, true), OnError::Retry);
        assert_eq!(on_error(&loading(), true, false), OnError::Retry);
        let route_lost = || server(redis::ErrorKind::ClusterConnectionNotFound, "no route");
        assert_eq!(on_error(&route_lost(), true, false), OnError::Retry);
        let other = || server(redis::ErrorKind::Parse, "bad reply");
        assert_eq!(
            on_error(&other(), true, false),
            OnError::Fail { replace: false }
        );
        assert_eq!(
            on_error(&other(), false, false),
            OnError::Fail { replace: false }
        );
    }
}
