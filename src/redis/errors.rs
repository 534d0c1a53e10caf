//! How Redis failures reach callers: `Unavailable` when the server cannot be reached or cannot
//! serve the command for now, `Storage` when it answered with an error.

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::BackendError;

/// Maps a client error to the crate's error.
pub(crate) fn from_redis(error: RedisError) -> BackendError {
    let unreachable = is_connection_error(&error)
        || is_passing(&error)
        || is_cluster_route_lost(&error)
        || is_redirect(&error);
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

/// Whether the server refused the command for a reason that passes and left nothing changed,
/// so that the command is sent again, on a new connection, while the caller's time lasts:
///
/// - `LOADING`: a restarted server reading its dataset;
/// - `READONLY`: the server, or the one a name or a proxy now leads to, is a replica (a
///   failover under way);
/// - `CLUSTERDOWN`: a cluster node does not serve the slot yet (a master failed and its
///   replica is not promoted, or the slot is not assigned during a resharding);
/// - `TRYAGAIN`: a multi-key command met a slot being migrated;
/// - `MASTERDOWN`: a replica lost its master and refuses stale reads.
///
/// Each is answered before the command runs (a script fails with `READONLY` at its first
/// write, having written nothing), and the cluster client has already retried it within its
/// own budget before it reaches the pool.
pub(crate) fn is_passing(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
        )
    )
}

/// Whether the cluster client lost every route to the node a command needed (the node is
/// down and its replacement not known yet): the command was not sent, so it may be sent again
/// once the slots are refreshed.
pub(crate) fn is_cluster_route_lost(error: &RedisError) -> bool {
    matches!(error.kind(), ErrorKind::ClusterConnectionNotFound)
}

/// Whether a cluster node sent the command elsewhere (`MOVED`, `ASK`) and the cluster client
/// gave up following: a command redirected did not run. The client follows each redirection
/// itself, but an `ASK` it follows on a multiplexed connection can lose its `ASKING` to another
/// command sent in between, and bounce between the two nodes of a migrating slot until its
/// retries run out; the pool sends it again after a pause.
pub(crate) fn is_redirect(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error as the client makes it from a server's reply line.
    fn server_error(line: &str) -> RedisError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
            .expect("an error reply parses");
        value.extract_error().expect_err("an error reply")
    }

    #[test]
    fn passing_server_errors_are_retried_and_unavailable() {
        for line in [
            "LOADING Redis is loading the dataset in memory",
            "READONLY You can't write against a read only replica.",
            "CLUSTERDOWN The cluster is down",
            "CLUSTERDOWN Hash slot not served",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        ] {
            let error = server_error(line);
            assert!(is_passing(&error), "{line}: {:?}", error.kind());
            assert!(
                matches!(from_redis(error), BackendError::Unavailable { .. }),
                "{line}"
            );
        }
    }

    #[test]
    fn other_server_errors_are_final_and_storage() {
        for line in [
            "ERR unknown command",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "NOSCRIPT No matching script",
            "CROSSSLOT Keys in request don't hash to the same slot",
            "NOPERM this user has no permissions",
        ] {
            let error = server_error(line);
            assert!(!is_passing(&error), "{line}");
            assert!(!is_connection_error(&error), "{line}");
            assert!(
                matches!(from_redis(error), BackendError::Storage(_)),
                "{line}"
            );
        }
    }

    #[test]
    fn a_redirect_the_client_gave_up_on_is_unavailable() {
        for line in ["ASK 6093 127.0.0.1:7001", "MOVED 6093 127.0.0.1:7001"] {
            let error = server_error(line);
            assert!(is_redirect(&error), "{line}");
            assert!(!is_passing(&error), "{line}");
            assert!(
                matches!(from_redis(error), BackendError::Unavailable { .. }),
                "{line}"
            );
        }
        assert!(!is_redirect(&server_error("ERR no")));
    }

    #[test]
    fn a_lost_cluster_route_is_unavailable() {
        let error =
            RedisError::from((ErrorKind::ClusterConnectionNotFound, "No connections found"));
        assert!(is_cluster_route_lost(&error));
        assert!(matches!(
            from_redis(error),
            BackendError::Unavailable { .. }
        ));
    }
}
