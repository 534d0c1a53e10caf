//! Hooks for the crate's own tests; not part of the supported API.

use actix::Message;

/// Stops the hub's actor context as a crash would, without shutting the hub down: an
/// unsupervised hub dies, a supervised one is restarted by its supervisor.
#[derive(Debug)]
pub struct StopHub;

impl Message for StopHub {
    type Result = ();
}
