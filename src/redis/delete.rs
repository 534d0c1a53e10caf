//! `delete` in one script that a repeat recognises.
//!
//! A `DEL` whose reply was lost (the connection dropped after it ran) is sent again by the
//! pool, and the repeat finds no key: a plain `DEL` would answer "nothing removed" for a record
//! this very call removed. So the script, when it removes the record, also sets a marker key
//! named after a token of this call, for a little longer than the call can last; a repeat that
//! finds no record but its marker answers "removed".
//!
//! A script may only touch keys of one hash slot on Redis Cluster, so the marker must hash to
//! the record's slot. A record key may hold braces of its own (`{prefix}:task:{id}` with any
//! id), which rules out deriving the marker's hash tag from the key's text: `{` + key + `}` is
//! cut short by a `}` in the id. The marker's hash tag is instead a short brace-free text
//! chosen, from a table made once, to hash to the record key's slot.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use redis::cluster_routing::Slot;

use super::Inner;
use crate::BackendError;

/// KEYS: the record key, this call's marker key (in the record's slot).
/// ARGV: how long the marker lives, in milliseconds.
/// Returns 1 when this call removed the record (now, or in an earlier send whose reply was
/// lost), 0 when there was none.
static DELETE: LazyLock<Script> = LazyLock::new(|| Script::new(DELETE_LUA));

const DELETE_LUA: &str = r"
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
  return 1
end
return redis.call('EXISTS', KEYS[2])
";

/// The hash slots of Redis Cluster.
const SLOTS: usize = 16_384;

/// For every hash slot, a four-character alphanumeric text that hashes to it.
static SLOT_TAGS: LazyLock<HashMap<Slot, [u8; 4]>> = LazyLock::new(|| {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut tags = HashMap::with_capacity(SLOTS);
    // 62^4 texts cover the 16,384 slots many times over; about 160,000 are tried, once per
    // process, in a few milliseconds.
    'all: for &a in ALPHABET {
        for &b in ALPHABET {
            for &c in ALPHABET {
                for &d in ALPHABET {
                    let tag = [a, b, c, d];
                    tags.entry(Slot::for_key(tag)).or_insert(tag);
                    if tags.len() == SLOTS {
                        break 'all;
                    }
                }
            }
        }
    }
    tags
});

/// The key of a delete's marker: `{tag}:{prefix}:deleted:{token}`, where `tag` hashes to the
/// record key's slot.
fn marker_key(record_key: &str, prefix: &str, token: &str) -> String {
    match SLOT_TAGS.get(&Slot::for_key(record_key)) {
        Some(tag) => {
            let tag: String = tag.iter().map(|&byte| char::from(byte)).collect();
            format!("{{{tag}}}:{prefix}:deleted:{token}")
        }
        // The table covers every slot (a unit test checks it); were one missing, a marker
        // without a tag still works on one server.
        None => format!("{prefix}:deleted:{token}"),
    }
}

/// 128 bits no other delete, in this process or another, draws: std's `RandomState` is seeded
/// from the OS once per thread and steps its key on every instance.
fn token() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let high = RandomState::new().hash_one((call, std::process::id()));
    let low = RandomState::new().hash_one(call);
    format!("{high:016x}{low:016x}")
}

impl Inner {
    /// Removes the record; `true` if this call removed it, even when the reply to the send
    /// that did was lost.
    pub(super) async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
        let status = self.status_before_delete(task_id).await;
        let key = self.keys.task(task_id);
        let marker = marker_key(&key, &self.prefix, &token());
        let lifetime = marker_lifetime(self.pool.response_timeout());
        let removed: i64 = self
            .pool
            .call(|mut connection| {
                let (key, marker) = (&key, &marker);
                async move {
                    let lifetime = lifetime.to_string();
                    connection
                        .run_script(
                            &DELETE,
                            DELETE_LUA,
                            &[key.as_bytes(), marker.as_bytes()],
                            &[lifetime.as_bytes()],
                        )
                        .await
                }
            })
            .await?;
        if removed == 1 {
            if let Some(status) = status {
                self.announce_deleted(task_id, status);
            }
        }
        Ok(removed == 1)
    }
}

/// How long, in milliseconds, a marker outlives the send that set it: past every repeat of
/// the call (the pool sends a command at most for twice the response timeout), with a margin.
fn marker_lifetime(response_timeout: Duration) -> u64 {
    let lifetime = response_timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(1));
    u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_a_brace_free_tag() {
        assert_eq!(SLOT_TAGS.len(), SLOTS);
        for (slot, tag) in SLOT_TAGS.iter() {
            assert!(tag.iter().all(u8::is_ascii_alphanumeric));
            assert_eq!(Slot::for_key(tag), *slot);
        }
    }

    #[test]
    fn the_marker_shares_the_record_keys_slot_whatever_braces_the_id_holds() {
        for id in [
            "t-1",
            "a}b",
            "{}x",
            "x{y",
            "{tag}rest",
            "}{",
            "{",
            "}",
            "a{b}c{d}",
            "",
            "é{}",
        ] {
            let key = format!("flowrra:task:{id}");
            let marker = marker_key(&key, "flowrra", &token());
            assert_eq!(Slot::for_key(&marker), Slot::for_key(&key), "id {id:?}");
            assert!(
                !marker.starts_with("flowrra:task:"),
                "a listing would see it"
            );
        }
        // A prefix with braces sits after the tag and moves nothing.
        let key = "{app}:task:1";
        assert_eq!(
            Slot::for_key(marker_key(key, "{app}", "t")),
            Slot::for_key(key)
        );
    }

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<String> = (0..1000).map(|_| token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|token| token.len() == 32));
    }
}
