//! Hooks for the crate's own tests; not part of the supported API.

use actix::Message;

/// Stops the hub's actor context as a crash would, without shutting the hub down: an
/// unsupervised hub dies, a supervised one is restarted by its supervisor.
#[derive(Debug)]
pub struct StopHub;

impl Message for StopHub {
    type Result = ();
}

/// Makes the hub's next call of `operation` panic midway through its change (feature
/// `fault-injection` only). Operations: `"store"` (for a record that exists), `"get"`,
/// `"wait_for"`, `"delete"`, `"clear"`, `"list_by_status"`, `"stats"`, `"snapshot"`,
/// `"restore"`.
#[cfg(feature = "fault-injection")]
#[derive(Debug)]
pub struct InjectFault {
    /// The operation whose next call panics.
    pub operation: &'static str,
}

#[cfg(feature = "fault-injection")]
impl Message for InjectFault {
    type Result = ();
}
