//! The listing order: `submitted_at` newest first, records without it last, ties by first store.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

/// Where a record sorts in `list_by_status`. `seq` numbers the first store of an id, so it
/// breaks ties between equal (or missing) submission times in first-store order, exactly as
/// flowrra's `InMemoryBackend` does with Python's stable sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ListKey {
    pub(crate) submitted_at: Option<DateTime<Utc>>,
    pub(crate) seq: u64,
}

impl Ord for ListKey {
    fn cmp(&self, other: &Self) -> Ordering {
        newest_first(self.submitted_at, other.submitted_at).then(self.seq.cmp(&other.seq))
    }
}

/// The first part of every listing order: `submitted_at` newest first, records without it
/// last. Each backend breaks the ties its own way (first store here, task id on Redis).
pub(crate) fn newest_first(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

impl PartialOrd for ListKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Skips `offset` items of a listing in order and keeps at most `limit` (`None`: all).
pub(crate) fn page<T>(
    ordered: impl Iterator<Item = T>,
    limit: Option<usize>,
    offset: usize,
) -> Vec<T> {
    let rest = ordered.skip(offset);
    match limit {
        Some(limit) => rest.take(limit).collect(),
        None => rest.collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn newest_first_then_missing_then_first_stored() {
        let at = |s| Some(Utc.timestamp_opt(s, 0).single().unwrap());
        let mut keys = [
            ListKey {
                submitted_at: None,
                seq: 1,
            },
            ListKey {
                submitted_at: at(10),
                seq: 4,
            },
            ListKey {
                submitted_at: at(20),
                seq: 5,
            },
            ListKey {
                submitted_at: at(10),
                seq: 2,
            },
            ListKey {
                submitted_at: None,
                seq: 0,
            },
        ];
        keys.sort();
        let seqs: Vec<u64> = keys.iter().map(|k| k.seq).collect();
        assert_eq!(seqs, [5, 2, 4, 0, 1]);
    }
}
