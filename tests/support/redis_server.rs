//! A real `redis-server` for one test: started on a free loopback port, killed on drop (also
//! when the test panics). Tests can kill, restart, pause and resume it. `start_tls` starts one
//! that speaks only TLS (feature `redis-tls`).
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
    tls: Option<TlsServer>,
}

/// How a TLS-only server is set up: its certificate and key, the CA it checks client
/// certificates against, whether it requires one, and what this helper's own connections
/// (readiness pings, `command`) trust and present.
#[derive(Clone, Debug)]
pub struct TlsServer {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    /// `--tls-auth-clients yes`: a client without a certificate from `ca_pem` is refused.
    pub auth_clients: bool,
    /// The CA this helper's connections trust (the one that issued `cert_pem`).
    pub trust_pem: String,
    /// The certificate and key this helper's connections present.
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl RedisServer {
    /// Starts a server, or `None` (after saying so) when this machine has no `redis-server`.
    pub fn start() -> Option<RedisServer> {
        Self::start_configured(&[], None)
    }

    /// `start` with more command-line options (`["--enable-debug-command", "yes"]`), given
    /// again at every restart.
    pub fn start_with(extra_args: &[&str]) -> Option<RedisServer> {
        Self::start_configured(extra_args, None)
    }

    /// Starts a server that speaks only TLS (`--port 0 --tls-port P`), or `None` as `start`.
    #[cfg(feature = "redis-tls")]
    pub fn start_tls(tls: TlsServer) -> Option<RedisServer> {
        Self::start_configured(&[], Some(tls))
    }

    fn start_configured(extra_args: &[&str], tls: Option<TlsServer>) -> Option<RedisServer> {
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
        if let Some(tls) = &tls {
            for (name, pem) in [
                ("server.crt", &tls.cert_pem),
                ("server.key", &tls.key_pem),
                ("ca.crt", &tls.ca_pem),
            ] {
                std::fs::write(dir.join(name), pem).expect("write a TLS file");
            }
        }
        // A port just released can be taken by another test in between: try a few.
        for _ in 0..10 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                dir: dir.clone(),
                extra_args: extra_args.iter().map(|&arg| arg.to_owned()).collect(),
                tls: tls.clone(),
            };
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// `redis://127.0.0.1:{port}/0`; `rediss://localhost:{port}/0` for a TLS server, a name
    /// as managed services give (the server listens on 127.0.0.1 either way).
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("redis://127.0.0.1:{}/0", self.port),
            Some(_) => format!("rediss://localhost:{}/0", self.port),
        }
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
        let reply: redis::Value = self
            .connect(Duration::from_secs(10))
            .and_then(|mut connection| command.query(&mut connection))
            .unwrap_or_else(|error| panic!("redis command {command:?}: {error}"));
        flatten(reply)
    }

    /// A connection of its own, e.g. to subscribe with (`as_pubsub`) the way a flowrra
    /// process listens.
    pub fn connection(&self) -> redis::Connection {
        self.connect(Duration::from_secs(10))
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

    /// A connection to the server whose connect, reads and writes each give up after
    /// `timeout`; over TLS with the helper's own CA and client certificate.
    fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let client = match &self.tls {
            None => redis::Client::open(self.url())?,
            #[cfg(feature = "redis-tls")]
            Some(tls) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: tls.client_cert_pem.clone().into_bytes(),
                        client_key: tls.client_key_pem.clone().into_bytes(),
                    }),
                    root_cert: Some(tls.trust_pem.clone().into_bytes()),
                },
            )?,
            #[cfg(not(feature = "redis-tls"))]
            Some(_) => unreachable!("a TLS server is only started with the redis-tls feature"),
        };
        let connection = client.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        connection.set_write_timeout(Some(timeout))?;
        Ok(connection)
    }

    fn ping(&self) -> bool {
        self.connect(Duration::from_millis(500))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_ok_and(|reply| reply == "PONG")
    }

    /// Starts the process and waits until it answers; `false` if it could not start.
    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
            Some(tls) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(self.dir.join("server.crt"))
                    .arg("--tls-key-file")
                    .arg(self.dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(self.dir.join("ca.crt"))
                    .args([
                        "--tls-auth-clients",
                        if tls.auth_clients { "yes" } else { "no" },
                    ]);
            }
        }
        let child = command
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
            if self.ping() {
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

/// A plain pattern subscriber straight to the server, the way another process (flowrra)
/// listens for completions.
pub struct Completions {
    connection: redis::Connection,
}

impl Completions {
    /// `PSUBSCRIBE pattern` on a connection of its own.
    pub fn subscribe(server: &RedisServer, pattern: &str) -> Completions {
        let mut connection = server.connection();
        let confirmation: redis::Value = redis::cmd("PSUBSCRIBE")
            .arg(pattern)
            .query(&mut connection)
            .expect("psubscribe");
        assert!(
            String::from_utf8_lossy(&flatten(confirmation)).starts_with("psubscribe"),
            "not subscribed"
        );
        Completions { connection }
    }

    /// Every message published since the last call, as `pmessage {pattern} {channel}
    /// {payload}`. A `PING` on a subscribed connection is answered after every message
    /// published before it, so none is missed.
    pub fn published(&mut self) -> Vec<String> {
        self.connection
            .send_packed_command(&redis::cmd("PING").get_packed_command())
            .expect("ping");
        let mut messages = Vec::new();
        loop {
            let reply = self.connection.recv_response().expect("a reply");
            let text = String::from_utf8_lossy(&flatten(reply)).replace('\n', " ");
            let text = text.trim_end().to_owned();
            if text.starts_with("pong") {
                return messages;
            }
            messages.push(text);
        }
    }
}
