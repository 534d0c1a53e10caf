//! A real actix-web server on a free loopback port, serving the hub's scope under `/hub`, for
//! the tests that need real connections (`web_server.rs`, `browser.rs`).

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use resulthub::HubHandle;
use resulthub::web::{WebOptions, configure};

/// A server on its own thread and actix System; stopped and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves `hub` under `/hub` on `127.0.0.1`, one worker.
    pub fn start(hub: HubHandle, options: WebOptions) -> TestServer {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            let routes = configure(hub, options);
            let server = HttpServer::new(move || {
                App::new().service(web::scope("/hub").configure(routes.clone()))
            })
            .workers(1)
            // What the crate's docs ask of a server: drop a request whose client hung up, so
            // that a `/wait` gives its waiter back at once.
            .h1_allow_half_closed(false)
            .disable_signals()
            .shutdown_timeout(1)
            .bind(("127.0.0.1", 0))
            .expect("bind a loopback port");
            let addr = server.addrs()[0];
            let server = server.run();
            ready_tx
                .send((addr, server.handle()))
                .expect("the test is waiting");
            system.block_on(server).expect("the server ran");
        });
        let (addr, handle) = ready_rx.recv().expect("the server thread started");
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/hub/` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/hub/{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not graceful: open SSE streams would hold a graceful stop for its whole timeout.
        let stop = self.handle.stop(false);
        futures::executor::block_on(stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
