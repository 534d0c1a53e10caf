//! A real `redis-server` for one test: started on a free loopback port, killed on drop (also
//! when the test panics). Tests can kill, restart, pause and resume it.
//!
//! Without `redis-server` on the PATH the Redis tests skip loudly, unless
//! `RESULTHUB_REQUIRE_REDIS=1` (set by `.ci/run`) makes that a failure.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra_args: Vec<String>,
}

impl RedisServer {
    /// Starts a server, or `None` (after saying so) when this machine has no `redis-server`.
    pub fn start() -> Option<RedisServer> {
        Self::start_with(&[])
    }

    /// `start` with more command-line options (`["--enable-debug-command", "yes"]`), given
    /// again at every restart.
    pub fn start_with(extra_args: &[&str]) -> Option<RedisServer> {
        if !available() {
            let why = "redis-server is not on the PATH (Debian: apt-get install redis-server)";
            if std::env::var("RESULTHUB_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("RESULTHUB_REQUIRE_REDIS=1 but {why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "resulthub-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("make the server's directory");
        // A port just released can be taken by another test in between: try a few.
        for _ in 0..10 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir: dir.clone(),
                extra_args: extra_args.iter().map(|&arg| arg.to_owned()).collect(),
            };
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// `redis://127.0.0.1:{port}/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server at once (SIGKILL): connections drop, nothing is saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal(Signal::STOP);
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::CONT);
    }

    /// Sends one command over a fresh connection and returns the reply flattened: a string
    /// or a number as its text, nil as nothing, an array as its items each followed by `\n`.
    /// An error reply panics.
    pub fn command(&self, args: &[&[u8]]) -> Vec<u8> {
        let (name, rest) = args.split_first().expect("a command");
        let mut command = redis::cmd(&String::from_utf8_lossy(name));
        for arg in rest {
            command.arg(*arg);
        }
        let reply: redis::Value = connect(&self.url(), Duration::from_secs(10))
            .and_then(|mut connection| command.query(&mut connection))
            .unwrap_or_else(|error| panic!("redis command {command:?}: {error}"));
        flatten(reply)
    }

    /// A connection of its own, e.g. to subscribe with (`as_pubsub`) the way a flowrra
    /// process listens.
    pub fn connection(&self) -> redis::Connection {
        connect(&self.url(), Duration::from_secs(10))
            .unwrap_or_else(|error| panic!("connect to the test's redis-server: {error}"))
    }

    /// `command` for arguments that are text.
    pub fn command_text(&self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        String::from_utf8_lossy(&self.command(&args)).into_owned()
    }

    fn signal(&self, signal: Signal) {
        let child = self.child.as_ref().expect("the server is running");
        kill_process(Pid::from_child(child), signal)
            .unwrap_or_else(|error| panic!("kill {signal:?} failed: {error}"));
    }

    /// Starts the process and waits until it answers; `false` if it could not start.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    // Exited: most likely the port was taken.
                    self.child = None;
                    return false;
                }
            }
            if ping(&self.url()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // `kill` sends SIGKILL (`Child::kill`), which ends a paused server too; SIGTERM would not.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// A connection to `url` whose connect, reads and writes each give up after `timeout`.
fn connect(url: &str, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let connection = redis::Client::open(url)?.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

fn ping(url: &str) -> bool {
    connect(url, Duration::from_millis(500))
        .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
        .is_ok_and(|reply| reply == "PONG")
}

/// A reply as `command` returns it.
fn flatten(reply: redis::Value) -> Vec<u8> {
    match reply {
        redis::Value::Nil => Vec::new(),
        redis::Value::Int(number) => number.to_string().into_bytes(),
        redis::Value::BulkString(bytes) => bytes,
        redis::Value::SimpleString(text) => text.into_bytes(),
        redis::Value::Okay => b"OK".to_vec(),
        redis::Value::Array(items) => items
            .into_iter()
            .flat_map(|item| {
                let mut text = flatten(item);
                text.push(b'\n');
                text
            })
            .collect(),
        other => panic!("a reply `command` does not read: {other:?}"),
    }
}

/// Every message a subscriber has received so far, as `"{channel} {payload}"`, in order. A
/// `PING` on a subscribed connection is answered after every message published before it, so
/// nothing published before this call is missed.
pub fn received(subscriber: &mut redis::PubSub<'_>) -> Vec<String> {
    subscriber.ping::<()>().expect("ping the subscriber");
    subscriber
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    let mut messages = Vec::new();
    // The ping's answer came after every earlier message, so they are all read; the timeout
    // only ends the loop.
    while let Ok(message) = subscriber.get_message() {
        let payload: String = message.get_payload().expect("a text payload");
        messages.push(format!("{} {payload}", message.get_channel_name()));
    }
    messages
}
