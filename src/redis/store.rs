//! A store in one atomic step: write the merged record and announce a terminal one, only if
//! the record it was merged with is still the one stored.
//!
//! Sticky fields need the previous record, and other writers (flowrra, other processes) may
//! write between our read and our write. The script compares what is stored with what was
//! read (by SHA-1), and writes and publishes only if they match; otherwise the store reads
//! and merges again. The JSON itself is never touched by Lua: cjson would reorder its keys
//! and turn `[]` into `{}`.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: the record key, the completion channel.
/// ARGV: SHA-1 of the record merged with (`''`: there was none), the new record, the TTL in
/// seconds (`''`: none), `'1'` to publish `done`.
/// Returns 1 when written, 0 when the record changed since it was read.
static COMPARE_AND_STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
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
  redis.call('PUBLISH', KEYS[2], 'done')
end
return 1
",
    )
});

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
    /// Whether the write happened (`false`: the record changed since it was read).
    pub(crate) async fn run(
        &self,
        connection: &mut redis::aio::ConnectionManager,
    ) -> Result<bool, redis::RedisError> {
        let expected = self
            .previous
            .map(|bytes| sha1_smol::Sha1::from(bytes).digest().to_string())
            .unwrap_or_default();
        let ttl = self
            .ttl_secs
            .map(|secs| secs.to_string())
            .unwrap_or_default();
        let written: i64 = COMPARE_AND_STORE
            .key(self.key)
            .key(self.channel)
            .arg(expected)
            .arg(self.record)
            .arg(ttl)
            .arg(if self.announce { "1" } else { "0" })
            .invoke_async(connection)
            .await?;
        Ok(written == 1)
    }
}
