//! `clear` and `list_by_status` over every record of the prefix, found by `SCAN` (never
//! `KEYS`, which blocks the server) and read by batched `MGET`.
//!
//! On a cluster the walk is a `SCAN` on every primary in turn ([`KeyScan`]). A resharding may
//! show a key on two nodes (a key being migrated, or a slot that moved between two nodes'
//! walks, or a node's walk started again because its slot moved: see `Inner::next_keys`): a
//! listing keeps a task id once, `stats` counts a key once, and `clear` counts only what its
//! `UNLINK`s removed. A key that moves during the walk from a node not walked yet to one
//! already walked is not seen by that walk, as `SCAN` guarantees nothing for a key that is not
//! on its node for the whole walk.
//!
//! A listing holds only what can still be on its page: the first `offset + limit` records, in
//! listing order, of those read so far ([`Best`]), besides one batch of raw values. A record's
//! status and `submitted_at` are read first (serde skips over the rest), and only a record that
//! would be kept is decoded whole. The whole walk runs under `list_timeout`.

use crate::timestamp::with_naive_times;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

use redis::cluster_routing::Slot;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Inner;
use super::cluster;
use super::keys::Keys;
use crate::{BackendError, TaskResult, TaskStatus, order};

/// Keys asked of each `SCAN` step, and records of each `MGET`.
const BATCH: usize = 512;

/// A walk over the keys of the prefix: one `SCAN` cursor on one server; on a cluster one per
/// primary (as `CLUSTER SLOTS` names them when the walk starts), one after another.
pub(super) struct KeyScan {
    /// `None`: the one server; on a cluster, each primary (the walk's `SCAN`s on it are routed
    /// by its slot, and checked against its id).
    nodes: Vec<Option<cluster::Primary>>,
    index: usize,
    cursor: u64,
    /// Restarts of the current node's walk since its last step (see `Inner::next_keys`).
    restarts: u32,
}

/// Restarts of one node's walk in a row after which the walk fails as `Unavailable`: the
/// cluster client routes a slot by its own slot map, which only a redirection refreshes, so a
/// map that stays stale would otherwise restart the walk for ever (`clear` has no
/// `list_timeout`).
const MAX_RESTARTS: u32 = 16;

impl Inner {
    /// Starts a walk over the keys of the prefix.
    pub(super) async fn key_scan(&self) -> Result<KeyScan, BackendError> {
        let nodes = if self.pool.is_cluster() {
            cluster::primaries(&self.pool)
                .await?
                .into_iter()
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        Ok(KeyScan {
            nodes,
            index: 0,
            cursor: 0,
            restarts: 0,
        })
    }

    /// One `SCAN` step of the walk: the keys it found, or `None` once every node is walked.
    ///
    /// On a cluster each step is sent with `CLUSTER MYID`, both routed by the primary's slot:
    /// when another node answers (the slot moved in a resharding, or a failover promoted a
    /// replica), the step is dropped (its cursor means nothing on that node) and the primary's
    /// walk starts again from cursor 0, routed by a slot it still serves; a primary that serves
    /// none any more is replaced by the node now serving its slot (its replica promoted), walked
    /// from 0. Keys met twice so are dropped by the callers (`clear` unlinks again, which is
    /// harmless). More than [`MAX_RESTARTS`] restarts in a row fail the walk as `Unavailable`.
    pub(super) async fn next_keys(
        &self,
        scan: &mut KeyScan,
    ) -> Result<Option<Vec<Vec<u8>>>, BackendError> {
        let Some(node) = scan.nodes.get_mut(scan.index) else {
            return Ok(None);
        };
        let mut command = redis::cmd("SCAN");
        command
            .arg(scan.cursor)
            .arg("MATCH")
            .arg(self.keys.task_pattern())
            .arg("COUNT")
            .arg(BATCH);
        let (next, keys): (u64, Vec<Vec<u8>>) = match node {
            None => self.pool.query_node(&command, None).await?,
            Some(primary) => {
                let (id, reply) = self.pool.query_node_with_id(&command, primary.slot).await?;
                if id != primary.id {
                    tracing::debug!(
                        slot = primary.slot,
                        expected = %primary.id,
                        answered = %id,
                        "resulthub.redis.walk_restarted"
                    );
                    scan.restarts += 1;
                    if scan.restarts > MAX_RESTARTS {
                        return Err(BackendError::Unavailable {
                            reason: format!(
                                "the walk of cluster node {} restarted {MAX_RESTARTS} times in a \
                                 row: its slots keep moving",
                                primary.id
                            ),
                        });
                    }
                    match cluster::slot_of(&self.pool, &primary.id).await? {
                        Some(slot) => primary.slot = slot,
                        None => primary.id = id,
                    }
                    scan.cursor = 0;
                    return Ok(Some(Vec::new()));
                }
                scan.restarts = 0;
                reply
            }
        };
        if next == 0 {
            scan.index += 1;
        }
        scan.cursor = next;
        Ok(Some(keys))
    }

    /// Deletes every record of the prefix, a `SCAN` page at a time. On a cluster, one `UNLINK`
    /// per hash slot of the page, all at once: a multi-key command must stay within one slot,
    /// and one that is sent again (a lost reply, a failover) repeats only its own slot's keys.
    pub(super) async fn clear(&self) -> Result<usize, BackendError> {
        let mut removed = 0;
        let mut scan = self.key_scan().await?;
        while let Some(keys) = self.next_keys(&mut scan).await? {
            if keys.is_empty() {
                continue;
            }
            if !self.pool.is_cluster() {
                let mut command = redis::cmd("UNLINK");
                command.arg(&keys);
                removed += self.pool.query::<usize>(&command).await?;
                continue;
            }
            let mut by_slot: HashMap<Slot, Vec<&[u8]>> = HashMap::new();
            for key in &keys {
                by_slot.entry(Slot::for_key(key)).or_default().push(key);
            }
            let unlinks = by_slot.into_values().map(|keys| async move {
                let mut command = redis::cmd("UNLINK");
                command.arg(keys);
                self.pool.query::<usize>(&command).await
            });
            for outcome in futures_util::future::join_all(unlinks).await {
                removed += outcome?;
            }
        }
        Ok(removed)
    }

    /// The records of `status`, newest `submitted_at` first, records without it last, ties by
    /// task id; `offset` skipped and at most `limit` kept. `Unavailable` when the walk takes
    /// longer than `list_timeout`.
    pub(super) async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let keep = limit.map(|limit| offset.saturating_add(limit));
        let walk = async {
            let mut walk = Walk::new(&self.keys, status, keep);
            let mut scan = self.key_scan().await?;
            while let Some(keys) = self.next_keys(&mut scan).await? {
                // SCAN may answer more keys than its COUNT.
                for batch in keys.chunks(BATCH) {
                    let values = self.pool.mget(batch).await?;
                    for (key, value) in batch.iter().zip(values) {
                        // Deleted or expired since the scan.
                        if let Some(bytes) = value {
                            with_naive_times(self.naive_times, || walk.consider(key, &bytes));
                        }
                    }
                }
            }
            Ok::<_, BackendError>(walk.best)
        };
        match tokio::time::timeout(self.list_timeout, walk).await {
            Ok(best) => Ok(best?.page(limit, offset)),
            Err(_) => Err(BackendError::Unavailable {
                reason: format!(
                    "listing the {status} records of prefix {:?} took longer than list_timeout \
                     ({:?})",
                    self.prefix, self.list_timeout
                ),
            }),
        }
    }
}

/// What a listing needs of a stored record before deciding whether to decode it whole.
#[derive(Deserialize)]
struct Head {
    status: TaskStatus,
    #[serde(default, deserialize_with = "crate::timestamp::deserialize")]
    submitted_at: Option<DateTime<Utc>>,
}

/// One listing's pass over the stored values.
struct Walk<'a> {
    keys: &'a Keys,
    status: TaskStatus,
    best: Best,
    /// Records decoded whole, for the tests of what is decoded.
    #[cfg(test)]
    decoded: usize,
}

impl<'a> Walk<'a> {
    fn new(keys: &'a Keys, status: TaskStatus, keep: Option<usize>) -> Self {
        Walk {
            keys,
            status,
            best: Best::new(keep),
            #[cfg(test)]
            decoded: 0,
        }
    }

    /// Keeps the record stored at `key` if it has the status listed and may be on the page.
    /// One that cannot be decoded is skipped with a warning: another writer's bad record must
    /// not break every listing.
    fn consider(&mut self, key: &[u8], bytes: &[u8]) {
        let Some(task_id) = self.keys.task_id_of(key) else {
            return;
        };
        match serde_json::from_slice::<Head>(bytes) {
            Ok(head) => {
                if head.status == self.status && self.best.admits(head.submitted_at, task_id) {
                    if let Some(record) = self.decode(key, task_id, bytes) {
                        self.best.offer(record);
                    }
                }
            }
            // Not even the head reads: unless its status alone says it is not listed here, the
            // full decode tells why.
            Err(_) => {
                if super::stored_status(bytes).is_some_and(|stored| stored != self.status) {
                    return;
                }
                if let Some(record) = self.decode(key, task_id, bytes) {
                    if record.status == self.status
                        && self.best.admits(record.submitted_at, &record.task_id)
                    {
                        self.best.offer(record);
                    }
                }
            }
        }
    }

    fn decode(&mut self, key: &[u8], task_id: &str, bytes: &[u8]) -> Option<TaskResult> {
        #[cfg(test)]
        {
            self.decoded += 1;
        }
        match super::decode(task_id, bytes) {
            Ok(record) => Some(record),
            Err(error) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(key),
                    error = %error,
                    "resulthub.redis.undecodable_record_skipped"
                );
                None
            }
        }
    }
}

/// Where a record sorts in a Redis listing: `submitted_at` newest first, records without it
/// last; then task id ascending, since Redis keeps no first-store order.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    submitted_at: Option<DateTime<Utc>>,
    task_id: String,
}

impl Ord for Place {
    fn cmp(&self, other: &Self) -> Ordering {
        listing_order(
            (self.submitted_at, &self.task_id),
            (other.submitted_at, &other.task_id),
        )
    }
}

impl PartialOrd for Place {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn listing_order(a: (Option<DateTime<Utc>>, &str), b: (Option<DateTime<Utc>>, &str)) -> Ordering {
    order::newest_first(a.0, b.0).then_with(|| a.1.cmp(b.1))
}

/// The first `keep` records in listing order of those offered (`None`: all of them): an
/// ordered map that drops its last record when it grows past `keep`.
#[derive(Debug)]
struct Best {
    keep: Option<usize>,
    held: BTreeMap<Place, TaskResult>,
    /// The ids in `held`. `SCAN` may return a key twice; a record read again (perhaps changed
    /// in between) must not be listed twice.
    ids: HashSet<String>,
}

impl Best {
    fn new(keep: Option<usize>) -> Self {
        Best {
            keep,
            held: BTreeMap::new(),
            ids: HashSet::new(),
        }
    }

    /// Whether a record of `task_id` at `submitted_at` would be kept: not held already, and
    /// room left or ahead of the last one held. Decides before the record is decoded.
    fn admits(&self, submitted_at: Option<DateTime<Utc>>, task_id: &str) -> bool {
        if self.ids.contains(task_id) {
            return false;
        }
        match self.keep {
            Some(keep) if self.held.len() >= keep => {
                self.held.last_key_value().is_some_and(|(last, _)| {
                    listing_order((submitted_at, task_id), (last.submitted_at, &last.task_id))
                        == Ordering::Less
                })
            }
            _ => true,
        }
    }

    /// Keeps `record`, which [`admits`](Self::admits) let in, and drops the last one held if
    /// there are more than `keep`.
    fn offer(&mut self, record: TaskResult) {
        let place = Place {
            submitted_at: record.submitted_at,
            task_id: record.task_id.clone(),
        };
        self.ids.insert(record.task_id.clone());
        self.held.insert(place, record);
        if self.keep.is_some_and(|keep| self.held.len() > keep) {
            if let Some((last, _)) = self.held.pop_last() {
                self.ids.remove(&last.task_id);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.len()
    }

    /// The records held, in listing order, `offset` skipped and at most `limit` kept.
    fn page(self, limit: Option<usize>, offset: usize) -> Vec<TaskResult> {
        order::page(self.held.into_values(), limit, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic shuffle: the records arrive in no particular order, as from `SCAN`.
    fn shuffled<T>(mut items: Vec<T>, mut seed: u64) -> Vec<T> {
        for i in (1..items.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from(seed >> 33).unwrap() % (i + 1);
            items.swap(i, j);
        }
        items
    }

    fn record(n: usize, status: TaskStatus) -> TaskResult {
        let id = format!("t{n:05}");
        let record = TaskResult::new(&id, status);
        // Some without `submitted_at`, many sharing one, so every part of the order is used.
        match n % 5 {
            0 => record,
            _ => {
                let secs = i64::try_from(n % 97).unwrap();
                record.with_submitted_at(DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap())
            }
        }
    }

    fn expected(records: &[TaskResult], status: TaskStatus) -> Vec<TaskResult> {
        let mut matching: Vec<TaskResult> = records
            .iter()
            .filter(|r| r.status == status)
            .cloned()
            .collect();
        matching.sort_by(|a, b| {
            listing_order((a.submitted_at, &a.task_id), (b.submitted_at, &b.task_id))
        });
        matching
    }

    #[test]
    fn a_walk_holds_at_most_offset_plus_limit_records_and_pages_as_a_full_sort() {
        let keys = Keys::new("flowrra");
        let records: Vec<TaskResult> = (0..5_000)
            .map(|n| {
                let status = if n % 3 == 0 {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Success
                };
                record(n, status)
            })
            .collect();
        let all = expected(&records, TaskStatus::Success);
        let stored: Vec<(String, Vec<u8>)> = shuffled(records.clone(), 7)
            .iter()
            .map(|r| (keys.task(&r.task_id), serde_json::to_vec(r).unwrap()))
            .collect();
        for (limit, offset) in [
            (Some(10), 0),
            (Some(7), 100),
            (Some(1), 3_332),
            (None, 3_000),
        ] {
            let mut walk = Walk::new(&keys, TaskStatus::Success, limit.map(|l| offset + l));
            let mut peak = 0;
            for (key, bytes) in &stored {
                walk.consider(key.as_bytes(), bytes);
                // SCAN returns a key twice at times: it is not listed twice.
                walk.consider(key.as_bytes(), bytes);
                peak = peak.max(walk.best.len());
            }
            let bound = limit.map_or(all.len(), |limit| offset + limit);
            assert!(peak <= bound, "held {peak} records, more than {bound}");
            let want: Vec<TaskResult> = order::page(all.iter().cloned(), limit, offset);
            assert_eq!(
                walk.best.page(limit, offset),
                want,
                "limit {limit:?} offset {offset}"
            );
        }
    }

    #[test]
    fn only_records_that_may_be_on_the_page_are_decoded() {
        let keys = Keys::new("flowrra");
        let records: Vec<TaskResult> = (0..2_000).map(|n| record(n, TaskStatus::Success)).collect();
        // Best first: once the first ten are held, nothing after them can enter.
        let ordered = expected(&records, TaskStatus::Success);
        let mut walk = Walk::new(&keys, TaskStatus::Success, Some(10));
        for r in &ordered {
            walk.consider(
                keys.task(&r.task_id).as_bytes(),
                &serde_json::to_vec(r).unwrap(),
            );
        }
        // Other statuses are never decoded either.
        let failed = TaskResult::new("f", TaskStatus::Failed);
        walk.consider(b"flowrra:task:f", &serde_json::to_vec(&failed).unwrap());
        assert_eq!(walk.decoded, 10);
        assert_eq!(walk.best.page(Some(10), 0), ordered[..10].to_vec());
    }

    #[test]
    fn undecodable_records_are_skipped_and_the_rest_listed() {
        let keys = Keys::new("flowrra");
        let mut walk = Walk::new(&keys, TaskStatus::Success, Some(10));
        let good = TaskResult::new("good", TaskStatus::Success);
        walk.consider(b"flowrra:task:good", &serde_json::to_vec(&good).unwrap());
        walk.consider(
            b"flowrra:task:nan",
            b"{\"task_id\":\"nan\",\"status\":\"success\",\"result\":NaN}",
        );
        walk.consider(
            b"flowrra:task:date",
            b"{\"task_id\":\"date\",\"status\":\"success\",\"submitted_at\":\"x\"}",
        );
        walk.consider(
            b"flowrra:task:other",
            b"{\"task_id\":\"elsewhere\",\"status\":\"success\"}",
        );
        walk.consider(b"flowrra:task:list", b"[\"success\",null]");
        assert_eq!(walk.best.page(None, 0), vec![good]);
    }
}
