//! [`RedisBackend::stats`](super::RedisBackend::stats): the records of the prefix counted by
//! status, by a `SCAN` walk that is cached for `stats_interval`. However many callers ask (a
//! dashboard per browser tab), at most one walk is in flight: the others wait for it and share
//! its answer.

use std::collections::HashSet;

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
            // On a cluster a resharding can show a key on two nodes: each is counted once, by
            // a 16-byte fingerprint; with the hash table's overhead (its load factor and
            // control bytes) about 20-40 bytes a record while the walk lasts.
            let mut seen = self.pool.is_cluster().then(HashSet::<u128>::new);
            let mut scan = self.key_scan().await?;
            while let Some(mut keys) = self.next_keys(&mut scan).await? {
                if let Some(seen) = seen.as_mut() {
                    keys.retain(|key| seen.insert(super::cluster::fingerprint(key)));
                }
                if !keys.is_empty() {
                    let values = self.pool.mget(&keys).await?;
                    // Deleted since the scan, or not a record: not counted.
                    for status in values
                        .iter()
                        .flatten()
                        .filter_map(|bytes| super::stored_status(bytes))
                    {
                        *counts.slot(status) += 1;
                    }
                }
            }
            Ok::<_, BackendError>(counts)
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
