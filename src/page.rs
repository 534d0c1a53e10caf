//! Paging by cursor: a page of a listing and where the next one starts.

use std::fmt;
use std::str::FromStr;

use chrono::DateTime;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::order::ListKey;
use crate::{BackendError, TaskResult};

/// Where the next page of a listing starts: after the last record of the page it came with.
///
/// Opaque: pass it back to the backend that made it, as it is or through its text form
/// (`to_string` and `parse`, or serde, which writes it as a string), e.g. in a URL. A cursor
/// holds a position in the listing's order, not a record, so the next page starts where the
/// last one ended even when records were added or removed in between, and finding it does not
/// depend on how deep it is.
///
/// # Examples
///
/// ```
/// use resulthub::{Cursor, HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), resulthub::BackendError> {
/// let hub = HubHandle::spawn(HubConfig::default());
/// for i in 0..5 {
///     let id = format!("t{i}");
///     hub.store(&id, TaskResult::new(&id, TaskStatus::Success)).await?;
/// }
/// let mut seen = Vec::new();
/// let mut after: Option<Cursor> = None;
/// loop {
///     let page = hub.list_page(TaskStatus::Success, 2, after.as_ref()).await?;
///     seen.extend(page.records.into_iter().map(|record| record.task_id));
///     match page.next {
///         // As text, e.g. for a URL, and back.
///         Some(next) => after = Some(next.to_string().parse()?),
///         None => break,
///     }
/// }
/// assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"]);
/// # hub.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Cursor(String);

/// One page of a listing, newest first, and the cursor of the page after it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Page {
    /// The records of the page, in listing order.
    pub records: Vec<TaskResult>,
    /// Where the next page starts; `None` when this page holds the last record.
    pub next: Option<Cursor>,
}

impl Page {
    pub(crate) fn new(records: Vec<TaskResult>, next: Option<Cursor>) -> Self {
        Page { records, next }
    }
}

/// Where a page by position starts, checked: a `limit` of at least one, and a cursor of the
/// hub's or `InMemoryBackend`'s order (`None`: from the first record).
pub(crate) fn position(
    limit: usize,
    after: Option<&Cursor>,
) -> Result<Option<ListKey>, BackendError> {
    crate::backend::check_page_limit(limit)?;
    after.map(Cursor::key).transpose()
}

impl Cursor {
    /// The cursor as text, as `to_string` writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The position after a record at `key` of the hub's or `InMemoryBackend`'s order.
    pub(crate) fn after_key(key: ListKey) -> Self {
        match key.submitted_at {
            Some(at) => Cursor(format!(
                "k{}.{}.{}",
                at.timestamp(),
                at.timestamp_subsec_nanos(),
                key.seq
            )),
            None => Cursor(format!("k-.{}", key.seq)),
        }
    }

    /// The key [`after_key`](Self::after_key) wrote.
    pub(crate) fn key(&self) -> Result<ListKey, BackendError> {
        let refused = || {
            BackendError::invalid(format!(
                "cursor {:?} was not made by this backend's listings",
                self.0
            ))
        };
        let fields = self.0.strip_prefix('k').ok_or_else(refused)?;
        let parts: Vec<&str> = fields.split('.').collect();
        let (submitted_at, seq) = match parts.as_slice() {
            ["-", seq] => (None, *seq),
            [secs, nanos, seq] => {
                let secs = secs.parse().map_err(|_| refused())?;
                let nanos = nanos.parse().map_err(|_| refused())?;
                let at = DateTime::from_timestamp(secs, nanos).ok_or_else(refused)?;
                (Some(at), *seq)
            }
            _ => return Err(refused()),
        };
        let seq = seq.parse().map_err(|_| refused())?;
        Ok(ListKey { submitted_at, seq })
    }

    /// The position after the first `offset` records, for backends that page by offset.
    pub(crate) fn after_offset(offset: usize) -> Self {
        Cursor(format!("o{offset}"))
    }

    /// The offset [`after_offset`](Self::after_offset) wrote.
    pub(crate) fn offset(&self) -> Result<usize, BackendError> {
        self.0
            .strip_prefix('o')
            .and_then(|offset| offset.parse().ok())
            .ok_or_else(|| {
                BackendError::invalid(format!(
                    "cursor {:?} was not made by this backend's listings",
                    self.0
                ))
            })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Any text parses: whether it is a cursor of the backend it is given to is that backend's
/// to say ([`BackendError::InvalidInput`] when it is not).
impl FromStr for Cursor {
    type Err = BackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(BackendError::invalid("cursor is empty"));
        }
        Ok(Cursor(text.to_owned()))
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_offsets_survive_their_text_form() {
        let at = DateTime::from_timestamp(1_700_000_000, 123_456_789);
        for key in [
            ListKey {
                submitted_at: at,
                seq: 7,
            },
            ListKey {
                submitted_at: None,
                seq: 0,
            },
            ListKey {
                submitted_at: DateTime::from_timestamp(-5, 0),
                seq: u64::MAX,
            },
        ] {
            let cursor: Cursor = Cursor::after_key(key).to_string().parse().unwrap();
            assert_eq!(cursor.key().unwrap(), key);
            let json = serde_json::to_string(&cursor).unwrap();
            assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), cursor);
        }
        assert_eq!(Cursor::after_offset(42).offset().unwrap(), 42);
        for foreign in ["o5", "k", "k1.2", "kx.1.2", "k1.2.3.4", "k-.x"] {
            let cursor: Cursor = foreign.parse().unwrap();
            assert!(
                matches!(cursor.key(), Err(BackendError::InvalidInput { .. })),
                "{foreign}"
            );
        }
        assert!(
            Cursor::after_key(ListKey {
                submitted_at: None,
                seq: 1
            })
            .offset()
            .is_err()
        );
        assert!("".parse::<Cursor>().is_err());
    }
}
