//! How Redis failures reach callers: `Unavailable` when the server cannot be reached or cannot
//! serve the command for now, `Storage` when it answered with an error.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::BackendError;

/// Maps a client error to the crate's error.
pub(crate) fn from_redis(error: RedisError) -> BackendError {
    let unreachable = is_connection_error(&error)
        || is_passing(&error)
        || matches!(
            error.kind(),
            ErrorKind::Server(ServerErrorKind::MasterDown | ServerErrorKind::TryAgain)
        );
    if unreachable {
        BackendError::Unavailable {
            reason: format!("redis cannot be reached: {error}"),
        }
    } else {
        BackendError::Storage(Box::new(error))
    }
}

/// Whether the error is the connection's (refused, dropped, timed out), not the server's.
pub(crate) fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
}

/// Whether the server refused the command for a reason that passes and left nothing changed:
/// `LOADING` (a restarted server reading its dataset) or `READONLY` (the server, or the one a
/// name or a proxy now leads to, is a replica: a failover under way). Such a command is sent
/// again, on a new connection, while the caller's time lasts.
pub(crate) fn is_passing(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::ReadOnly)
    )
}
