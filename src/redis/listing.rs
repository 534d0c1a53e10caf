//! `clear` and `list_by_status` over every record of the prefix, found by `SCAN` (never
//! `KEYS`, which blocks the server) and read by batched `MGET`.

use std::cmp::Ordering;
use std::collections::HashSet;

use super::Inner;
use crate::{BackendError, TaskResult, TaskStatus, order};

/// Keys asked of each `SCAN` step, and records of each `MGET`.
const BATCH: usize = 512;

impl Inner {
    /// One `SCAN` step: the next cursor and the keys it found.
    async fn scan_step(&self, cursor: u64) -> Result<(u64, Vec<Vec<u8>>), BackendError> {
        let mut command = redis::cmd("SCAN");
        command
            .arg(cursor)
            .arg("MATCH")
            .arg(self.keys.task_pattern())
            .arg("COUNT")
            .arg(BATCH);
        self.pool.query(&command).await
    }

    /// Deletes every record of the prefix, a `SCAN` page at a time.
    pub(super) async fn clear(&self) -> Result<usize, BackendError> {
        let mut removed = 0;
        let mut cursor = 0;
        loop {
            let (next, keys) = self.scan_step(cursor).await?;
            if !keys.is_empty() {
                let mut command = redis::cmd("UNLINK");
                command.arg(&keys);
                removed += self.pool.query::<usize>(&command).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Every record of `status`, newest `submitted_at` first, records without it last, ties
    /// by task id; then the page asked for.
    pub(super) async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        // SCAN may return a key twice (while Redis rehashes), never skips one that stays.
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, found) = self.scan_step(cursor).await?;
            keys.extend(found.into_iter().filter(|key| seen.insert(key.clone())));
            if next == 0 {
                break;
            }
            cursor = next;
        }

        let mut matching = Vec::new();
        for batch in keys.chunks(BATCH) {
            let mut command = redis::cmd("MGET");
            command.arg(batch);
            let values: Vec<Option<Vec<u8>>> = self.pool.query(&command).await?;
            for (key, value) in batch.iter().zip(values) {
                // Deleted or expired since the scan.
                let Some(bytes) = value else { continue };
                if let Some(record) = self.listed(key, &bytes, status) {
                    matching.push(record);
                }
            }
        }
        matching.sort_by(listing_order);
        Ok(order::page(matching.into_iter(), limit, offset))
    }

    /// The record in `bytes` if it has `status`. One that cannot be decoded is skipped with a
    /// warning: another writer's bad record must not break every listing.
    fn listed(&self, key: &[u8], bytes: &[u8], status: TaskStatus) -> Option<TaskResult> {
        // Reading the status alone first skips the full decode of the other statuses.
        if super::stored_status(bytes).is_some_and(|stored| stored != status) {
            return None;
        }
        let task_id = self.keys.task_id_of(key);
        match task_id.map(|id| super::decode(id, bytes)) {
            Some(Ok(record)) => (record.status == status).then_some(record),
            Some(Err(error)) => {
                tracing::warn!(
                    key = %String::from_utf8_lossy(key),
                    error = %error,
                    "resulthub.redis.undecodable_record_skipped"
                );
                None
            }
            None => None,
        }
    }
}

/// `submitted_at` newest first, records without it last; then task id ascending, since Redis
/// keeps no first-store order.
fn listing_order(a: &TaskResult, b: &TaskResult) -> Ordering {
    let by_time = match (a.submitted_at, b.submitted_at) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_time.then_with(|| a.task_id.cmp(&b.task_id))
}
