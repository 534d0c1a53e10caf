//! How Redis failures reach callers: `Unavailable` when the server cannot be reached,
//! `Storage` when it answered with an error.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::BackendError;

/// Maps a client error to the crate's error.
pub(crate) fn from_redis(error: RedisError) -> BackendError {
    let unreachable = is_connection_error(&error)
        || matches!(
            error.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::TryAgain
            )
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
