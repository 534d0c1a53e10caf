//! `RedisBackend` against flowrra 0.1.8's `RedisBackend` on the same `redis-server`, in one run;
//! with `--cluster`, also `RedisBackend` on one server against `RedisBackend` on a Redis Cluster.
//!
//! ```text
//! cargo run --release --features redis --example bench_redis -- [--quick] [--no-flowrra] [--cluster]
//! ```
//!
//! Starts its own `redis-server` on a free loopback port (Debian: `apt-get install
//! redis-server`); with `--cluster`, also a cluster of its own: three masters without replicas
//! (`--cluster-enabled yes`, joined by `redis-cli --cluster create`), on the same machine, so the
//! cluster's numbers show what its routing costs a client, not what more machines give. flowrra
//! runs from a virtualenv under target/bench-venv, made on first use (`pip install
//! flowrra==0.1.8 redis`); it has no cluster support, so the cluster table is resulthub's alone.
//! Workloads:
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
    let with_cluster = args.iter().any(|a| a == "--cluster");
    let server = Server::start();
    let url = server.url();
    let python = if with_flowrra { venv() } else { None };

    let mut rows: Vec<Row> = Vec::new();
    let mut cluster_rows: Vec<Row> = Vec::new();
    let cluster = with_cluster.then(Server::start_cluster);
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
        let on_cluster = match &cluster {
            Some(cluster) => {
                eprintln!("{workload} (n = {n}): resulthub on the cluster ...");
                let mut rounds = Vec::new();
                for _ in 0..sizes.rounds {
                    cluster.flush();
                    rounds.push(run_rust(cluster, workload, n).await);
                }
                Some(rounds)
            }
            None => None,
        };
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
            if let Some(on_cluster) = &on_cluster {
                cluster_rows.push(Row {
                    workload,
                    metric,
                    ours: pick(&ours),
                    theirs: Some(pick(on_cluster)),
                });
            }
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
    if cluster_rows.is_empty() {
        return;
    }
    println!();
    println!(
        "| workload | metric | resulthub, one redis-server | resulthub, cluster of 3 masters | cluster / one server |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for row in cluster_rows {
        let (workload, metric) = (row.workload, row.metric);
        let single = median(&row.ours);
        let on_cluster = row.theirs.as_deref().map_or(f64::NAN, median);
        // As a rate over a rate and a time over a time: over 1 the cluster does more per
        // second, or takes longer.
        let ratio = if single > 0.0 {
            format!("{:.2}x", on_cluster / single)
        } else {
            "-".to_owned()
        };
        println!(
            "| {workload} | {metric} | {} | {} | {ratio} |",
            fmt(single),
            fmt(on_cluster)
        );
    }
    println!("\ncluster / one server: the cluster's number over the one server's, for each metric");
}

async fn run_rust(server: &Server, workload: &str, n: usize) -> Value {
    let backend = Arc::new(server.backend().await);
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

/// A `redis-server` of the bench's own on a free loopback port, or a cluster of three, killed
/// on drop.
struct Server {
    children: Vec<Child>,
    ports: Vec<u16>,
    cluster: bool,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        Self::spawn(1, false)
    }

    /// Three masters without replicas, `ok` on every node.
    fn start_cluster() -> Server {
        let server = Self::spawn(3, true);
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for port in &server.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let status = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli on the PATH (Debian: apt-get install redis-tools)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.ports.iter().all(|&port| {
            server
                .try_command_on(port, &["CLUSTER", "INFO"])
                .is_ok_and(|info| info.contains("cluster_state:ok"))
        }) {
            assert!(Instant::now() < deadline, "the cluster did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn spawn(nodes: usize, cluster: bool) -> Server {
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < nodes {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            // A cluster node also listens on its port + 10000 (the cluster bus).
            let bus_free = !cluster
                || port
                    .checked_add(10_000)
                    .is_some_and(|bus| TcpListener::bind(("127.0.0.1", bus)).is_ok());
            if bus_free && !ports.contains(&port) {
                ports.push(port);
            }
        }
        let dir = std::env::temp_dir().join(format!("resulthub-bench-redis-{}", ports[0]));
        std::fs::create_dir_all(&dir).expect("a directory");
        let children = ports
            .iter()
            .map(|port| {
                let mut command = Command::new("redis-server");
                command
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--maxclients", "20000"])
                    .arg("--dir")
                    .arg(&dir);
                if cluster {
                    command
                        .args(["--cluster-enabled", "yes"])
                        .arg("--cluster-config-file")
                        .arg(dir.join(format!("nodes-{port}.conf")));
                }
                command
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("redis-server on the PATH (Debian: apt-get install redis-server)")
            })
            .collect();
        let server = Server {
            children,
            ports,
            cluster,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in &server.ports {
            while server.try_command_on(port, &["PING"]).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        server
    }

    /// The one server's URL (flowrra's too).
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.ports[0])
    }

    async fn backend(&self) -> RedisBackend {
        if self.cluster {
            RedisBackend::cluster_builder(
                self.ports
                    .iter()
                    .map(|port| format!("redis://127.0.0.1:{port}")),
            )
            .build()
            .await
            .expect("connect to the cluster")
        } else {
            RedisBackend::connect(&self.url()).await.expect("connect")
        }
    }

    fn flush(&self) {
        for &port in &self.ports {
            self.command_on(port, &["FLUSHALL"]);
            self.command_on(port, &["CONFIG", "RESETSTAT"]);
        }
    }

    /// `GET`s answered, on every node.
    fn get_calls(&self) -> u64 {
        self.ports
            .iter()
            .map(|&port| {
                self.command_on(port, &["INFO", "commandstats"])
                    .lines()
                    .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
                    .and_then(|rest| rest.split(',').next())
                    .map_or(0, |calls| calls.parse().unwrap_or(0))
            })
            .sum()
    }

    /// Connections subscribed to something, on every node.
    fn pubsub_connections(&self) -> usize {
        self.ports
            .iter()
            .map(|&port| {
                self.command_on(port, &["CLIENT", "LIST"])
                    .lines()
                    .filter(|line| {
                        line.split(' ').any(|f| {
                            (f.starts_with("sub=") && f != "sub=0")
                                || (f.starts_with("psub=") && f != "psub=0")
                        })
                    })
                    .count()
            })
            .sum()
    }

    fn command_on(&self, port: u16, args: &[&str]) -> String {
        self.try_command_on(port, args).expect("redis answered")
    }

    /// One command over a fresh connection to the node at `port`; the reply's text (a bulk
    /// or simple string).
    fn try_command_on(&self, port: u16, args: &[&str]) -> redis::RedisResult<String> {
        let timeout = Duration::from_secs(10);
        let mut connection = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
            .get_connection_with_timeout(timeout)?;
        connection.set_read_timeout(Some(timeout))?;
        let (name, rest) = args.split_first().expect("a command");
        redis::cmd(name).arg(rest).query(&mut connection)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
