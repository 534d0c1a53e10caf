//! A store in one atomic step: write the merged record and announce a terminal one, only if
//! the record it was merged with is still the one stored.
//!
//! Sticky fields need the previous record, and other writers (flowrra, other processes) may
//! write between our read and our write. The script compares what is stored with what was
//! read (by SHA-1), and writes and publishes only if they match; otherwise the store reads
//! and merges again. The JSON itself is never touched by Lua: cjson would reorder its keys
//! and turn `[]` into `{}`.
//!
//! A script whose reply was lost (the connection dropped after it ran) is sent again, and must
//! not read its own write as another writer's: so the script first checks whether the stored
//! bytes already are the new record, and then writes nothing and publishes nothing.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: the record key, alone: a script may only touch keys of one hash slot on Redis Cluster,
/// and a channel is not a key (it hashes elsewhere, and `PUBLISH` reaches every node).
/// ARGV: SHA-1 of the record merged with (`''`: there was none), the new record, the TTL in
/// seconds (`''`: none), `'1'` to publish `done`, the completion channel.
/// Returns 1 when written, 0 when the record changed since it was read, 2 when the record
/// stored already is the new one (its TTL is set again, as a write would).
static COMPARE_AND_STORE: LazyLock<Script> = LazyLock::new(|| Script::new(COMPARE_AND_STORE_LUA));

const COMPARE_AND_STORE_LUA: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then
  if ARGV[3] == '' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
  return 2
end
if current then
  if redis.sha1hex(current) ~= ARGV[1] then return 0 end
elseif ARGV[1] ~= '' then
  return 0
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SETEX', KEYS[1], ARGV[3], ARGV[2])
end
if ARGV[4] == '1' then
  redis.call('PUBLISH', ARGV[5], 'done')
end
return 1
";

/// What one attempt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The record was written (and announced, if terminal).
    Written,
    /// The stored record is no longer the one read: merge again.
    Changed,
    /// The stored record already is this one: an earlier send of this attempt ran but its
    /// reply was lost, or the caller stored the same record twice. Nothing was written or
    /// announced again.
    AlreadyStored,
}

/// One attempt to write `record` over `previous` (the bytes read, `None` if there was no key).
pub(crate) struct Attempt<'a> {
    pub(crate) key: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) previous: Option<&'a [u8]>,
    pub(crate) record: &'a [u8],
    pub(crate) ttl_secs: Option<u64>,
    pub(crate) announce: bool,
}

impl Attempt<'_> {
    /// Runs the compare-and-store script once.
    pub(crate) async fn run(
        &self,
        connection: &mut super::pool::Connection,
    ) -> Result<Outcome, redis::RedisError> {
        let expected = self
            .previous
            .map(|bytes| sha1_smol::Sha1::from(bytes).digest().to_string())
            .unwrap_or_default();
        let ttl = self
            .ttl_secs
            .map(|secs| secs.to_string())
            .unwrap_or_default();
        let announce: &[u8] = if self.announce { b"1" } else { b"0" };
        let outcome: i64 = connection
            .run_script(
                &COMPARE_AND_STORE,
                COMPARE_AND_STORE_LUA,
                &[self.key.as_bytes()],
                &[
                    expected.as_bytes(),
                    self.record,
                    ttl.as_bytes(),
                    announce,
                    self.channel.as_bytes(),
                ],
            )
            .await?;
        match outcome {
            1 => Ok(Outcome::Written),
            0 => Ok(Outcome::Changed),
            2 => Ok(Outcome::AlreadyStored),
            other => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the store script answered an unknown outcome",
                other.to_string(),
            ))),
        }
    }
}
