//! [`RedisBackend::stats`](super::RedisBackend::stats): the records of the prefix counted by
//! status, by a `SCAN` walk that is cached for `stats_interval`. However many callers ask (a
//! dashboard per browser tab), at most one walk is in flight: the others wait for it and share
//! its answer.

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Inner;
use crate::{BackendError, HubStats, StatusCounts};

/// The last count and when its walk ended.
#[derive(Debug, Default)]
pub(super) struct StatsCache(Mutex<Option<(Instant, StatusCounts)>>);

impl Inner {
    /// The counts by status, from the cache while it is younger than `stats_interval`.
    pub(super) async fn stats(&self, local_waiters: usize) -> Result<HubStats, BackendError> {
        // Held across the walk: the one walk in flight, that later callers wait for.
        let mut cache = self.stats_cache.0.lock().await;
        let fresh = cache
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.stats_interval)
            .map(|(_, counts)| *counts);
        let by_status = match fresh {
            Some(counts) => counts,
            None => {
                let counts = self.count_by_status().await?;
                *cache = Some((Instant::now(), counts));
                counts
            }
        };
        Ok(HubStats {
            results: crate::TaskStatus::ALL
                .iter()
                .map(|&status| by_status.get(status))
                .sum(),
            waiters: local_waiters,
            by_status,
            // Redis expires and evicts by itself, uncounted; this backend has no events.
            evicted: 0,
            expired: 0,
            subscribers: 0,
        })
    }

    /// One walk over the prefix, reading each record's status only, under `list_timeout`.
    async fn count_by_status(&self) -> Result<StatusCounts, BackendError> {
        let walk = async {
            let mut counts = StatusCounts::default();
            let mut cursor = 0;
            loop {
                let (next, keys) = self.scan_step(cursor).await?;
                if !keys.is_empty() {
                    let mut command = redis::cmd("MGET");
                    command.arg(&keys);
                    let values: Vec<Option<Vec<u8>>> = self.pool.query(&command).await?;
                    // Deleted since the scan, or not a record: not counted.
                    for status in values
                        .iter()
                        .flatten()
                        .filter_map(|bytes| super::stored_status(bytes))
                    {
                        *counts.slot(status) += 1;
                    }
                }
                if next == 0 {
                    return Ok::<_, BackendError>(counts);
                }
                cursor = next;
            }
        };
        match tokio::time::timeout(self.list_timeout, walk).await {
            Ok(counts) => counts,
            Err(_) => Err(BackendError::Unavailable {
                reason: format!(
                    "counting the records of prefix {:?} took longer than list_timeout ({:?})",
                    self.prefix, self.list_timeout
                ),
            }),
        }
    }
}
