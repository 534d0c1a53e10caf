//! A real `redis-server` for one test: started on a free loopback port, killed on drop (also
//! when the test panics). Tests can kill, restart, pause and resume it.
//!
//! Without `redis-server` on the PATH the Redis tests skip loudly, unless
//! `RESULTHUB_REQUIRE_REDIS=1` (set by `.ci/run`) makes that a failure.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server, or `None` (after saying so) when this machine has no `redis-server`.
    pub fn start() -> Option<RedisServer> {
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
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Sends one command in RESP and returns the raw reply, e.g. `CLIENT LIST`.
    pub fn command(&self, args: &[&[u8]]) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request).expect("send the command");
        read_reply(&mut stream)
    }

    /// `command` for arguments that are text.
    pub fn command_text(&self, args: &[&str]) -> String {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        String::from_utf8_lossy(&self.command(&args)).into_owned()
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        // The shell's own `kill`: a machine without procps has no /bin/kill.
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill {signal} {}", child.id()))
            .status()
            .expect("run sh");
        assert!(status.success(), "kill {signal} failed");
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
            if ping(self.port) {
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
        if let Some(child) = self.child.as_ref() {
            // A paused server does not die of SIGTERM; SIGKILL works either way.
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -KILL {}", child.id()))
                .status();
        }
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

fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Reads one RESP reply whole (simple, error, integer, bulk or flat array of bulks).
fn read_reply(stream: &mut TcpStream) -> Vec<u8> {
    let line = read_line(stream);
    match line.first() {
        Some(b'$') => {
            let len: i64 = parse(&line[1..]);
            if len < 0 {
                return Vec::new();
            }
            let mut body = vec![0u8; usize::try_from(len).expect("length") + 2];
            stream.read_exact(&mut body).expect("read a bulk reply");
            body.truncate(body.len() - 2);
            body
        }
        Some(b'*') => {
            let n: i64 = parse(&line[1..]);
            let mut out = Vec::new();
            for _ in 0..n.max(0) {
                out.extend(read_reply(stream));
                out.push(b'\n');
            }
            out
        }
        _ => line[1..].to_vec(),
    }
}

fn read_line(stream: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).expect("read a reply line");
        if byte[0] == b'\n' && line.last() == Some(&b'\r') {
            line.pop();
            return line;
        }
        line.push(byte[0]);
    }
}

fn parse(digits: &[u8]) -> i64 {
    std::str::from_utf8(digits)
        .expect("digits")
        .parse()
        .expect("a number")
}
