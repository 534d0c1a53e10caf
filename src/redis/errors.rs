//! How Redis failures reach callers: `Unavailable` when the server cannot be reached,
//! `Storage` when it answered with an error.

use std::future::Future;
use std::time::Duration;

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::BackendError;

/// Maps a client error to the crate's error.
fn from_redis(error: RedisError) -> BackendError {
    let unreachable = error.is_io_error()
        || error.is_connection_refusal()
        || error.is_connection_dropped()
        || error.is_timeout()
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

/// Runs one command under `limit`: a server that stopped answering is `Unavailable`, never a
/// hang.
pub(crate) async fn timed<T, F>(limit: Duration, command: F) -> Result<T, BackendError>
where
    F: Future<Output = Result<T, RedisError>>,
{
    match tokio::time::timeout(limit, command).await {
        Ok(outcome) => outcome.map_err(from_redis),
        Err(_) => Err(BackendError::Unavailable {
            reason: format!("redis did not answer within {limit:?}"),
        }),
    }
}
