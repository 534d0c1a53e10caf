//! The `resulthub` binary as a process: `serve` over its own hub with a token file, writes and
//! a snapshot that survives a graceful stop and a restart; `serve --redis` over what a Python
//! flowrra 0.1.8 process writes; `export` and `import` between Redis prefixes; `--help` for
//! every flag.

#![cfg(feature = "server")]

#[path = "support/flowrra.rs"]
mod flowrra;
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis_server::RedisServer;
use resulthub::{RedisBackend, ResultBackend, TaskResult, TaskStatus};
use rustix::process::{Pid, Signal, kill_process};

const BINARY: &str = env!("CARGO_BIN_EXE_resulthub");

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
fn http(addr: SocketAddr, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

fn get(addr: SocketAddr, path: &str, token: &str) -> Option<(u16, String)> {
    http(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A `serve` process, killed on drop if the test did not stop it.
struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Served {
    fn start(args: &[&str]) -> Served {
        Self::start_with_env(args, &[])
    }

    /// `start`, with these environment variables set.
    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Served {
        let addr = free_addr();
        let child = Command::new(BINARY)
            .arg("serve")
            .args(["--bind", &addr.to_string()])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start resulthub serve");
        let served = Served { child, addr };
        let deadline = Instant::now() + support::LONG_TIMEOUT;
        while http(
            addr,
            &format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
        .is_none_or(|(status, _)| status != 200)
        {
            assert!(
                Instant::now() < deadline,
                "resulthub serve never answered /healthz"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        kill_process(Pid::from_child(&self.child), Signal::TERM).expect("SIGTERM");
        let deadline = Instant::now() + support::LONG_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "resulthub serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_keeps_its_records_in_the_snapshot_across_a_restart() {
    let dir = tempdir("serve");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret\n").expect("write the token file");
    let snapshot = dir.join("records.jsonl");
    let args = [
        "--token-file",
        token_file.to_str().unwrap(),
        "--allow-writes",
        "--snapshot",
        snapshot.to_str().unwrap(),
    ];
    let served = Served::start(&args);
    let addr = served.addr;
    let body = r#"{"status": "success", "task_name": "svc.job", "result": {"n": 7}}"#;
    let (status, _) = http(
        addr,
        &format!(
            "POST /tasks/job-1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer s3cret\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .expect("POST");
    assert_eq!(status, 201);
    assert_eq!(get(addr, "/tasks/job-1", "wrong").expect("GET").0, 401);
    assert!(served.stop().success(), "a graceful stop exits 0");

    let written = std::fs::read_to_string(&snapshot).expect("the snapshot was written");
    assert_eq!(written.lines().count(), 1, "{written}");
    assert!(written.contains("job-1"), "{written}");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let again = Served::start(&args);
    let (status, record) = get(again.addr, "/tasks/job-1", "s3cret").expect("GET");
    assert_eq!(status, 200, "{record}");
    let record: serde_json::Value = serde_json::from_str(&record).expect("JSON");
    assert_eq!(record["result"]["n"], 7);
    assert_eq!(record["task_name"], "svc.job");
    assert!(again.stop().success());
}

/// Written every `--snapshot-every` while serving: a crash (SIGKILL, no graceful stop) loses at
/// most one interval, and leaves a whole file.
#[test]
fn serve_writes_the_snapshot_while_it_runs() {
    let dir = tempdir("periodic");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "t").unwrap();
    let snapshot = dir.join("records.jsonl");
    let served = Served::start(&[
        "--token-file",
        token_file.to_str().unwrap(),
        "--allow-writes",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--snapshot-every",
        "100ms",
    ]);
    let addr = served.addr;
    let body = r#"{"status": "running"}"#;
    let (status, _) = http(
        addr,
        &format!(
            "POST /tasks/p-1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer t\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .expect("POST");
    assert_eq!(status, 201);
    let deadline = Instant::now() + support::LONG_TIMEOUT;
    while !std::fs::read_to_string(&snapshot).is_ok_and(|text| text.contains("p-1")) {
        assert!(
            Instant::now() < deadline,
            "no snapshot written while serving"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut served = served;
    served.child.kill().expect("SIGKILL");
    served.child.wait().expect("wait");
    let text = std::fs::read_to_string(&snapshot).expect("the snapshot survives a crash");
    let records = resulthub::jsonl::read_records(text.as_bytes()).expect("a whole file");
    assert_eq!(records.len(), 1);
}

#[test]
fn serve_refuses_an_empty_token_file_and_says_why() {
    let dir = tempdir("empty-token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "\n").unwrap();
    let output = Command::new(BINARY)
        .args(["serve", "--token-file", token_file.to_str().unwrap()])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("holds no token"), "{stderr}");
}

/// Runs the binary with `args` (and `RESULTHUB_REDIS_URL` set to `env_url`, or unset): its
/// exit code and standard error.
fn run(args: &[&str], env_url: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(BINARY);
    command.args(args).env_remove("RESULTHUB_REDIS_URL");
    if let Some(url) = env_url {
        command.env("RESULTHUB_REDIS_URL", url);
    }
    let output = command.output().expect("run");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn serve_redis_refuses_the_hubs_own_flags_and_an_unreachable_server() {
    for flag in [
        &["--snapshot", "x.jsonl"][..],
        &["--snapshot-every", "5s"],
        &["--max-results", "10"],
    ] {
        let mut args = vec!["serve", "--redis", "redis://127.0.0.1:1/0"];
        args.extend_from_slice(flag);
        let (code, stderr) = run(&args, None);
        // A usage error: clap's exit code, before anything starts.
        assert_eq!(code, Some(2), "{flag:?}: {stderr}");
        assert!(stderr.contains("cannot be used with"), "{flag:?}: {stderr}");
        assert!(stderr.contains(flag[0]), "{flag:?}: {stderr}");
    }
    // Nothing listens on port 1: said at start, not at the first request.
    let bind = free_addr().to_string();
    let (code, stderr) = run(
        &["serve", "--bind", &bind, "--redis", "redis://127.0.0.1:1/0"],
        None,
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect to Redis"), "{stderr}");
}

#[test]
fn serve_redis_names_invalid_input_as_such() {
    let bind = free_addr().to_string();
    for (args, expected) in [
        (
            &["--redis", "redis://127.0.0.1:1/0", "--prefix", ""][..],
            "invalid --prefix",
        ),
        (&["--redis", "no-scheme:/x"], "invalid input in --redis"),
        (
            &["--redis", "redis://127.0.0.1:1/0", "--result-ttl", "1500ms"],
            "invalid --result-ttl",
        ),
    ] {
        let mut all = vec!["serve", "--bind", &bind];
        all.extend_from_slice(args);
        let (code, stderr) = run(&all, None);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("cannot connect"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_redis_url_comes_from_the_environment_only_when_redis_is_given() {
    // The variable alone changes nothing: `serve` serves a hub (which needs no server, so it
    // is ready although nothing listens on port 1).
    let served = Served::start_with_env(&[], &[("RESULTHUB_REDIS_URL", "redis://127.0.0.1:1/0")]);
    let addr = served.addr;
    assert_eq!(get(addr, "/readyz", "").expect("GET /readyz").0, 200);
    assert!(served.stop().success());

    // `--redis` without a URL reads it: the server named there is the one tried.
    let bind = free_addr().to_string();
    for args in [
        &["serve", "--bind", &bind, "--redis"][..],
        &["export", "--redis", "--output", "-"],
        &["import", "--redis", "--input", "/dev/null"],
    ] {
        let (code, stderr) = run(args, Some("redis://127.0.0.1:1/0"));
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot connect to Redis"),
            "{args:?}: {stderr}"
        );
        // Unset, it says where the URL was looked for.
        let (code, stderr) = run(args, None);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("RESULTHUB_REDIS_URL"), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_redis_stores_with_the_result_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let served = Served::start(&["--redis", &url, "--allow-writes", "--result-ttl", "1h"]);
    let addr = served.addr;
    let body = r#"{"status": "success", "result": 1}"#;
    let (status, _) = http(
        addr,
        &format!(
            "POST /tasks/ttl-1 HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .expect("POST");
    assert_eq!(status, 201);
    let ttl: i64 = server
        .command_text(&["TTL", "flowrra:task:ttl-1"])
        .trim()
        .parse()
        .expect("a TTL");
    assert!((3590..=3600).contains(&ttl), "TTL {ttl}");
    assert!(served.stop().success());
}

#[test]
fn every_command_and_flag_has_help() {
    for (args, flags) in [
        (
            &["serve", "--help"][..],
            &[
                "--bind",
                "--token-file",
                "--allow-writes",
                "--allowed-host",
                "--snapshot",
                "--snapshot-every",
                "--max-results",
                "--result-ttl",
                "--max-wait",
                "--redis",
                "--prefix",
                "--stats-interval",
                "RESULTHUB_REDIS_URL",
            ][..],
        ),
        (
            &["export", "--help"],
            &[
                "--redis",
                "--prefix",
                "--output",
                "--list-timeout",
                "RESULTHUB_REDIS_URL",
            ],
        ),
        (
            &["import", "--help"],
            &["--redis", "--prefix", "--input", "RESULTHUB_REDIS_URL"],
        ),
        (&["--help"], &["serve", "export", "import", "--log-json"]),
    ] {
        let output = Command::new(BINARY).args(args).output().expect("run");
        assert!(output.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "{args:?} does not mention {flag}:\n{help}"
            );
        }
    }
}

/// Reads an open `/events` response until its text holds `needle`; what was read by then.
fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let deadline = Instant::now() + support::LONG_TIMEOUT;
    let mut text = String::new();
    while !text.contains(needle) {
        assert!(
            Instant::now() < deadline,
            "/events never said {needle:?}; it said:\n{text}"
        );
        let mut chunk = [0; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("/events ended before {needle:?}:\n{text}"),
            Ok(read) => text.push_str(&String::from_utf8_lossy(&chunk[..read])),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(error) => panic!("reading /events: {error}"),
        }
    }
    text
}

/// `serve --redis` pointed at a Redis that a Python flowrra 0.1.8 worker writes: its records
/// by id, by status and counted, its completions as live events, and in `/metrics`.
#[test]
fn serve_redis_shows_what_a_flowrra_worker_stores() {
    let (Some(server), Some(python)) = (RedisServer::start(), flowrra::python()) else {
        return;
    };
    let url = server.url();
    let stored = flowrra::peer(&python, &["store", &url, "py-1"]);
    assert_eq!(stored["status"], "success");

    let served = Served::start(&[
        "--redis",
        &url,
        "--prefix",
        "flowrra",
        "--stats-interval",
        "1ms",
    ]);
    let addr = served.addr;
    let json = |(status, body): (u16, String)| -> serde_json::Value {
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    };
    let record = json(get(addr, "/tasks/py-1", "").expect("GET"));
    assert_eq!(record, stored, "the record as flowrra wrote it");
    let page = json(get(addr, "/tasks?status=success", "").expect("GET"));
    assert_eq!(page["items"], serde_json::json!([stored]));
    assert_eq!(page["total"], 1);
    assert_eq!(
        json(get(addr, "/tasks?status=pending", "").expect("GET"))["total"],
        0
    );
    let stats = json(get(addr, "/stats", "").expect("GET"));
    assert_eq!(stats["by_status"]["success"], 1, "{stats}");
    assert_eq!(stats["results"], 1, "{stats}");

    // A worker that finishes a task while a client listens: the client hears of it, with
    // the record.
    let mut events = TcpStream::connect(addr).expect("connect");
    events
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        events,
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let head = read_until(&mut events, ": subscribed");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let done = flowrra::peer(&python, &["store", &url, "py-2"]);
    let text = read_until(&mut events, "\"task_id\":\"py-2\"");
    let frame = text
        .split("\n\n")
        .find(|frame| frame.contains("\"task_id\":\"py-2\""))
        .expect("the frame");
    assert!(frame.contains("event: task"), "{frame}");
    assert!(
        frame.lines().any(|line| line.starts_with("id: ")),
        "{frame}"
    );
    let data: serde_json::Value = serde_json::from_str(
        frame
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .expect("data"),
    )
    .expect("JSON");
    assert_eq!(
        (&data["kind"], &data["status"]),
        (&serde_json::json!("stored"), &serde_json::json!("success")),
        "only the completion is announced in flowrra's layout: {text}"
    );
    assert_eq!(data["record"], done);

    let (status, metrics) = get(addr, "/metrics", "").expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("resulthub_records{status=\"success\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("resulthub_sse_clients 1"), "{metrics}");
    drop(events);
    assert!(served.stop().success(), "a graceful stop exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_then_import_copies_a_prefix() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let source = support::within("connect", RedisBackend::connect(&url))
        .await
        .expect("connect");
    let records = vec![
        TaskResult::new("e1", TaskStatus::Success).with_result(1),
        TaskResult::new("e2", TaskStatus::Failed).with_error("boom"),
        TaskResult::new("e3", TaskStatus::Pending).with_task_name("later"),
    ];
    for outcome in source.store_many(records.clone()).await {
        outcome.expect("store");
    }
    let dir = tempdir("transfer");
    let file = dir.join("export.jsonl");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(BINARY).args(args).output().expect("run"))
    };
    let exported = run(vec![
        "export".into(),
        "--redis".into(),
        url.clone(),
        "--output".into(),
        file.to_str().unwrap().into(),
    ])
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&exported.stderr);
    assert!(exported.status.success(), "{stderr}");
    assert!(stderr.contains("exported 3 records"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);

    let imported = run(vec![
        "import".into(),
        "--redis".into(),
        url.clone(),
        "--prefix".into(),
        "copy".into(),
        "--input".into(),
        file.to_str().unwrap().into(),
    ])
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&imported.stderr);
    assert!(imported.status.success(), "{stderr}");
    assert!(stderr.contains("imported 3 of 3 records"), "{stderr}");
    let copy = RedisBackend::builder(&url)
        .prefix("copy")
        .build()
        .await
        .expect("connect");
    for record in &records {
        assert_eq!(
            copy.get(&record.task_id).await.expect("get").as_ref(),
            Some(record)
        );
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("resulthub-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make a directory");
    dir
}
