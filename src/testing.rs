//! Hooks for the crate's own tests (feature `fault-injection`); not part of the supported API.

use actix::Message;

/// Stops the hub's actor context as a crash would, without shutting the hub down: an
/// unsupervised hub dies, a supervised one is restarted by its supervisor (feature
/// `fault-injection` only).
#[derive(Debug)]
pub struct StopHub;

impl Message for StopHub {
    type Result = ();
}

/// Makes the hub's next call of `operation` panic midway through its change (feature
/// `fault-injection` only). Operations: `"store"` (for a record that exists), `"get"`,
/// `"wait_for"`, `"delete"`, `"clear"`, `"list_by_status"`, `"stats"`, `"snapshot"`,
/// `"restore"`.
#[derive(Debug)]
pub struct InjectFault {
    /// The operation whose next call panics.
    pub operation: &'static str,
}

impl Message for InjectFault {
    type Result = ();
}

/// Blocks the hub's thread for this long, as a long `clear` or `snapshot` would (feature
/// `fault-injection` only).
#[derive(Debug)]
pub struct Stall(pub std::time::Duration);

impl Message for Stall {
    type Result = ();
}
