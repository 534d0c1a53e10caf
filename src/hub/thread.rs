//! The thread [`HubHandle::spawn`](crate::HubHandle::spawn) runs a hub on, and how it ends.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix::{Actor, Addr};
use tokio::sync::watch;

use super::ResultHub;
use super::shared::Shared;
use crate::HubConfig;

/// The thread [`HubHandle::spawn`](crate::HubHandle::spawn) started, and how to end it.
#[derive(Debug)]
pub(crate) struct HubThread {
    system: actix_rt::System,
    /// Closes when the thread's System has stopped.
    alive: watch::Receiver<()>,
    join: Mutex<Option<JoinHandle<()>>>,
}

impl HubThread {
    /// Starts a hub on a new thread running its own actix System; returns its address, what it
    /// shares with its handles, and the thread.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread.
    pub(crate) fn start(config: HubConfig) -> (Addr<ResultHub>, Arc<Shared>, HubThread) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (alive_tx, alive_rx) = watch::channel(());
        let spawned = std::thread::Builder::new()
            .name("resulthub".to_owned())
            .spawn(move || {
                let system = actix_rt::System::new();
                let (addr, shared) = system.block_on(async {
                    let mut hub = ResultHub::new(config);
                    hub.stops_its_system = true;
                    let shared = hub.shared();
                    (hub.start(), shared)
                });
                if ready_tx
                    .send((addr, shared, actix_rt::System::current()))
                    .is_ok()
                {
                    // `run` drops the runtime, and with it the hub and its records, on return.
                    if let Err(error) = system.run() {
                        // The hub's actix System ended with an error.
                        tracing::error!(%error, "resulthub.hub.thread_failed");
                    }
                }
                // Only then does dropping the watch sender tell `shutdown` the thread is done.
                drop(alive_tx);
            });
        let join = match spawned {
            Ok(join) => join,
            Err(error) => panic!("HubHandle::spawn could not start the hub thread: {error}"),
        };
        let (addr, shared, system) = match ready_rx.recv() {
            Ok(ready) => ready,
            Err(_) => panic!("the hub thread ended before starting its hub"),
        };
        let thread = HubThread {
            system,
            alive: alive_rx,
            join: Mutex::new(Some(join)),
        };
        (addr, shared, thread)
    }

    /// Stops the thread's System and waits until the thread has ended.
    pub(crate) async fn stop_and_join(&self) {
        self.system.stop();
        let mut alive = self.alive.clone();
        // Returns Err once the thread dropped its sender, i.e. its System has ended.
        while alive.changed().await.is_ok() {}
        let join = match self.join.lock() {
            Ok(mut join) => join.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(join) = join {
            // The thread has nothing left to do but return, so this join is short; off the
            // async runtime all the same, when there is one.
            let joined = match tokio::runtime::Handle::try_current() {
                Ok(runtime) => runtime
                    .spawn_blocking(move || join.join().is_ok())
                    .await
                    .unwrap_or(false),
                Err(_) => join.join().is_ok(),
            };
            if !joined {
                tracing::error!("resulthub.hub.thread_panicked");
            }
        }
    }
}

impl Drop for HubThread {
    fn drop(&mut self) {
        // The last handle is gone: nobody can reach the hub any more. The thread exits on its
        // own; joining here could block an async runtime.
        self.system.stop();
    }
}
