//! `RedisBackend` against flowrra 0.1.8's `RedisBackend` on the same `redis-server`, in one run.
//!
//! ```text
//! cargo run --release --features redis --example bench_redis -- [--quick] [--no-flowrra]
//! ```
//!
//! Starts its own `redis-server` on a free loopback port (Debian: `apt-get install
//! redis-server`). flowrra runs from a virtualenv under target/bench-venv, made on first use
//! (`pip install flowrra==0.1.8 redis`). Workloads:
//!
//! - `lifecycle1`, `lifecycle64`: each task stored PENDING, RUNNING, SUCCESS and read back, by
//!   1 and by 64 concurrent callers; tasks per second.
//! - `waiters`: N callers wait on N tasks, then one producer completes them all; seconds until
//!   every waiter has its record, and the pub/sub connections the server saw while they waited.
//! - `list`: a page of 50 SUCCESS records out of N mixed ones, at offset 0 and N/8; µs.
//!
//! Numbers are medians over the rounds. The machine is shared and noisy: read the ratios.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use futures::future::join_all;
use resulthub::{RedisBackend, ResultBackend, TaskResult, TaskStatus};
use serde_json::{Value, json};

struct Sizes {
    lifecycle: usize,
    waiters: usize,
    list: usize,
    rounds: usize,
}

const FULL: Sizes = Sizes {
    lifecycle: 5_000,
    waiters: 500,
    list: 20_000,
    rounds: 3,
};

const QUICK: Sizes = Sizes {
    lifecycle: 500,
    waiters: 100,
    list: 2_000,
    rounds: 1,
};

/// One line of the table: a metric's rounds for both systems.
struct Row {
    workload: &'static str,
    metric: &'static str,
    ours: Vec<f64>,
    theirs: Option<Vec<f64>>,
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes = if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    };
    let with_flowrra = !args.iter().any(|a| a == "--no-flowrra");
    let server = Server::start();
    let url = server.url();
    let python = if with_flowrra { venv() } else { None };

    let mut rows: Vec<Row> = Vec::new();
    let workloads: [(&'static str, usize, &[&'static str]); 4] = [
        ("lifecycle1", sizes.lifecycle, &["tasks_per_sec"]),
        ("lifecycle64", sizes.lifecycle, &["tasks_per_sec"]),
        (
            "waiters",
            sizes.waiters,
            &["all_woken_secs", "pubsub_connections"],
        ),
        ("list", sizes.list, &["page0_micros", "page_deep_micros"]),
    ];
    for (workload, n, metrics) in workloads {
        eprintln!("{workload} (n = {n}): resulthub ...");
        let mut ours = Vec::new();
        for _ in 0..sizes.rounds {
            server.flush();
            ours.push(run_rust(&server, workload, n).await);
        }
        let theirs = python.as_ref().map(|python| {
            eprintln!("{workload} (n = {n}): flowrra ...");
            server.flush();
            run_flowrra(python, &url, workload, n, sizes.rounds)
        });
        for metric in metrics {
            let pick = |rounds: &[Value]| -> Vec<f64> {
                rounds.iter().filter_map(|r| r[*metric].as_f64()).collect()
            };
            rows.push(Row {
                workload,
                metric,
                ours: pick(&ours),
                theirs: theirs.as_ref().map(|t| pick(t)),
            });
        }
    }

    println!();
    println!("| workload | metric | resulthub RedisBackend | flowrra 0.1.8 RedisBackend | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for row in rows {
        let (workload, metric) = (row.workload, row.metric);
        let ours = median(&row.ours);
        let theirs = row.theirs.as_deref().map(median);
        // For rates, higher is better; for times and connections, lower is.
        let ratio = match theirs {
            Some(t) if metric == "tasks_per_sec" && t > 0.0 => format!("{:.2}x", ours / t),
            Some(t) if ours > 0.0 => format!("{:.2}x", t / ours),
            _ => "-".to_owned(),
        };
        println!(
            "| {workload} | {metric} | {} | {} | {ratio} |",
            fmt(ours),
            theirs.map_or("-".to_owned(), fmt)
        );
    }
    println!(
        "\nratio: how many times better resulthub is (a rate over a rate, a time under a time)"
    );
}

async fn run_rust(server: &Server, workload: &str, n: usize) -> Value {
    let backend = Arc::new(RedisBackend::connect(&server.url()).await.expect("connect"));
    match workload {
        "lifecycle1" => json!({"tasks_per_sec": lifecycle(&backend, n, 1).await}),
        "lifecycle64" => json!({"tasks_per_sec": lifecycle(&backend, n, 64).await}),
        "waiters" => waiters(server, &backend, n).await,
        _ => listing(&backend, n).await,
    }
}

async fn lifecycle(backend: &Arc<RedisBackend>, n: usize, callers: usize) -> f64 {
    let start = Instant::now();
    let tasks = (0..callers).map(|c| {
        let backend = Arc::clone(backend);
        tokio::spawn(async move {
            for i in (c..n).step_by(callers) {
                let id = format!("life-{i}");
                let now = Utc::now();
                let args = vec![json!(i)];
                let records = [
                    TaskResult::new(&id, TaskStatus::Pending)
                        .with_task_name("bench")
                        .with_submitted_at(now)
                        .with_args(args.clone()),
                    TaskResult::new(&id, TaskStatus::Running)
                        .with_task_name("bench")
                        .with_submitted_at(now)
                        .with_started_at(now)
                        .with_args(args.clone()),
                    TaskResult::new(&id, TaskStatus::Success)
                        .with_task_name("bench")
                        .with_submitted_at(now)
                        .with_started_at(now)
                        .with_finished_at(now)
                        .with_result(json!(i * i))
                        .with_args(args),
                ];
                for record in records {
                    backend.store(&id, record).await.expect("store");
                }
                backend.get(&id).await.expect("get");
            }
        })
    });
    for task in join_all(tasks).await {
        task.expect("caller");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn waiters(server: &Server, backend: &Arc<RedisBackend>, n: usize) -> Value {
    let waits: Vec<_> = (0..n)
        .map(|i| {
            let backend = Arc::clone(backend);
            tokio::spawn(async move {
                backend
                    .wait_for(&format!("wait-{i}"), Some(Duration::from_secs(120)))
                    .await
            })
        })
        .collect();
    while backend.local_waiters() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Registered is not yet subscribed and read: wait for the first read of every waiter.
    while server.get_calls() < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pubsub = server.pubsub_connections();
    let start = Instant::now();
    for i in 0..n {
        let id = format!("wait-{i}");
        let record = TaskResult::new(&id, TaskStatus::Success).with_result(json!(i));
        backend.store(&id, record).await.expect("store");
    }
    for wait in join_all(waits).await {
        wait.expect("waiter").expect("wait_for");
    }
    json!({"all_woken_secs": start.elapsed().as_secs_f64(), "pubsub_connections": pubsub})
}

async fn listing(backend: &Arc<RedisBackend>, n: usize) -> Value {
    let statuses = [
        TaskStatus::Success,
        TaskStatus::Failed,
        TaskStatus::Pending,
        TaskStatus::Running,
    ];
    let base = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("a date");
    let stores = (0..n).map(|i| {
        let backend = Arc::clone(backend);
        async move {
            let id = format!("list-{i}");
            let at = base + chrono::Duration::seconds(i64::try_from(i).expect("small"));
            let record = TaskResult::new(&id, statuses[i % 4]).with_submitted_at(at);
            backend.store(&id, record).await.expect("store");
        }
    });
    join_all(stores).await;
    let mut out = serde_json::Map::new();
    for (key, offset) in [("page0_micros", 0), ("page_deep_micros", n / 8)] {
        let mut samples = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let page = backend
                .list_by_status(TaskStatus::Success, Some(50), offset)
                .await
                .expect("list");
            samples.push(start.elapsed().as_secs_f64() * 1e6);
            assert_eq!(page.len(), 50);
        }
        out.insert(key.to_owned(), json!(median(&samples)));
    }
    Value::Object(out)
}

fn run_flowrra(python: &Path, url: &str, workload: &str, n: usize, rounds: usize) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_flowrra_redis.py");
    let output = Command::new(python)
        .arg(script)
        .args([url, workload, &n.to_string(), &rounds.to_string()])
        .output()
        .expect("run python");
    if !output.status.success() {
        eprintln!(
            "flowrra {workload} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Vec::new();
    }
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("JSON from the peer");
    parsed["rounds"].as_array().cloned().unwrap_or_default()
}

/// The bench virtualenv with flowrra and redis-py, made on first use.
fn venv() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import flowrra, redis"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if !ready(&python) {
        eprintln!(
            "setting up flowrra 0.1.8 and redis-py in {} ...",
            venv.display()
        );
        let made = python.exists()
            || Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
        let installed = made
            && Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "flowrra==0.1.8",
                    "redis>=5,<8",
                ])
                .status()
                .is_ok_and(|s| s.success());
        if !installed || !ready(&python) {
            eprintln!("skipping flowrra: no virtualenv with flowrra 0.1.8 and redis-py");
            return None;
        }
    }
    Some(python)
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn fmt(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// A `redis-server` of the bench's own on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("resulthub-bench-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("a directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--maxclients", "20000"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (Debian: apt-get install redis-server)");
        let server = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.try_command(&["PING"]).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn flush(&self) {
        self.command(&["FLUSHALL"]);
        self.command(&["CONFIG", "RESETSTAT"]);
    }

    fn get_calls(&self) -> u64 {
        self.command(&["INFO", "commandstats"])
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap_or(0))
    }

    fn pubsub_connections(&self) -> usize {
        self.command(&["CLIENT", "LIST"])
            .lines()
            .filter(|line| {
                line.split(' ').any(|f| {
                    (f.starts_with("sub=") && f != "sub=0")
                        || (f.starts_with("psub=") && f != "psub=0")
                })
            })
            .count()
    }

    fn command(&self, args: &[&str]) -> String {
        self.try_command(args).expect("redis answered")
    }

    /// One command over a fresh connection; the reply's text (a bulk or simple string).
    fn try_command(&self, args: &[&str]) -> redis::RedisResult<String> {
        let timeout = Duration::from_secs(10);
        let mut connection =
            redis::Client::open(self.url())?.get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        let (name, rest) = args.split_first().expect("a command");
        redis::cmd(name).arg(rest).query(&mut connection)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
