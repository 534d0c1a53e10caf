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

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::time::Instant;

use super::errors::{from_redis, is_connection_error, is_passing};
use crate::BackendError;

/// The first pause before a command refused with `LOADING` or `READONLY` is sent again; each
/// next pause doubles, up to [`PASSING_PAUSE_MAX`].
const PASSING_PAUSE_MIN: Duration = Duration::from_millis(25);
/// The longest pause between two sends of a command refused with `LOADING` or `READONLY`.
const PASSING_PAUSE_MAX: Duration = Duration::from_millis(500);

#[derive(Debug)]
struct Slot {
    manager: Mutex<ConnectionManager>,
    replacing: AtomicBool,
}

/// The command connections of one backend.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Vec<Arc<Slot>>,
    next: AtomicUsize,
    client: redis::Client,
    config: ConnectionManagerConfig,
    connect_timeout: Duration,
    response_timeout: Duration,
    runtime: Handle,
}

impl Pool {
    /// Opens `size` connections; fails if any cannot be made.
    pub(crate) async fn open(
        client: redis::Client,
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
            let manager = connect(&client, &config, connect_timeout).await?;
            slots.push(Arc::new(Slot {
                manager: Mutex::new(manager),
                replacing: AtomicBool::new(false),
            }));
        }
        Ok(Pool {
            slots,
            next: AtomicUsize::new(0),
            client,
            config,
            connect_timeout,
            response_timeout,
            runtime,
        })
    }

    /// Runs one command (made by `command` on a connection) under the response timeout; one
    /// refused with `LOADING` or `READONLY` is sent again until that timeout, counted from now,
    /// runs out.
    pub(crate) async fn call<T, F, Fut>(&self, command: F) -> Result<T, BackendError>
    where
        F: Fn(ConnectionManager) -> Fut,
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
        loop {
            let manager = slot
                .manager
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            match tokio::time::timeout_at(deadline, command(manager)).await {
                Ok(Ok(value)) => return Ok(value),
                // The manager's own response timeout: same as ours, never repeated.
                Ok(Err(error)) if error.is_timeout() => {
                    self.replace(slot);
                    return Err(from_redis(error));
                }
                Ok(Err(error)) if !repeated && is_connection_error(&error) => repeated = true,
                Ok(Err(error)) if is_passing(&error) => {
                    // A name or a proxy may lead elsewhere by now (to the promoted master): a
                    // new connection finds out, the old one serves until it is made.
                    self.replace(slot);
                    if Instant::now() + pause >= deadline {
                        return Err(from_redis(error));
                    }
                    tracing::debug!(error = %error, "resulthub.redis.command_retried");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2).min(PASSING_PAUSE_MAX);
                }
                Ok(Err(error)) => return Err(from_redis(error)),
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

    /// Rebuilds a slot's connection in the background; one rebuild at a time per slot. The old
    /// connection serves until the new one is made.
    fn replace(&self, slot: &Arc<Slot>) {
        if slot.replacing.swap(true, Ordering::AcqRel) {
            return;
        }
        let slot = Arc::clone(slot);
        let client = self.client.clone();
        let config = self.config.clone();
        let timeout = self.connect_timeout;
        self.runtime.spawn(async move {
            match connect(&client, &config, timeout).await {
                Ok(manager) => {
                    *slot.manager.lock().unwrap_or_else(PoisonError::into_inner) = manager;
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

async fn connect(
    client: &redis::Client,
    config: &ConnectionManagerConfig,
    timeout: Duration,
) -> Result<ConnectionManager, BackendError> {
    super::connect::warn_if_insecure(client);
    let connect = ConnectionManager::new_with_config(client.clone(), config.clone());
    // The manager retries once; the whole attempt stays within twice the timeout.
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
