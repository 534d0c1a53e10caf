//! A real Redis Cluster for tests: six `redis-server`s (three masters, three replicas) on free
//! loopback ports in a temporary directory, joined by `redis-cli --cluster create`, killed on
//! drop (also when a test panics). Tests can kill a node, fail a master over to its replica,
//! find the node that owns a key and move a slot to another master.
//!
//! [`RedisCluster::shared`] gives the tests of one binary one cluster while any of them holds
//! it (each test on its own prefix); [`RedisCluster::start`] gives a test a cluster of its own,
//! for tests that change the topology.
//!
//! Without `redis-server` or `redis-cli` on the PATH the tests skip loudly, unless
//! `RESULTHUB_REQUIRE_REDIS=1` (set by `.ci/run`) makes that a failure, as
//! `redis_server.rs` does.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

/// How long a node may go unanswered before the others mark it failed (`cluster-node-timeout`):
/// short, so a killed master's replica is promoted within a few seconds.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// A running cluster of six nodes.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

struct Node {
    port: u16,
    child: Mutex<Option<Child>>,
}

/// What `CLUSTER NODES` says of one node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// For a replica, its master's id.
    pub master_id: Option<String>,
    pub failed: bool,
}

impl RedisCluster {
    /// The cluster this test binary's tests share while any of them holds it (a new one when
    /// none does), or `None` as [`start`](Self::start).
    pub fn shared() -> Option<Arc<RedisCluster>> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cluster) = shared.upgrade() {
            return Some(cluster);
        }
        let cluster = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&cluster);
        Some(cluster)
    }

    /// Starts a cluster of its own, or `None` (after saying so) when this machine has no
    /// `redis-server` or `redis-cli`.
    pub fn start() -> Option<RedisCluster> {
        if !available() {
            let why = "redis-server or redis-cli is not on the PATH (Debian: apt-get install \
                       redis-server)";
            if std::env::var("RESULTHUB_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("RESULTHUB_REQUIRE_REDIS=1 but {why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        // Ports just found free can be taken by another test in between: try a few times.
        let mut last_error = String::new();
        for _ in 0..5 {
            match Self::try_start() {
                Ok(cluster) => return Some(cluster),
                Err(error) => {
                    eprintln!("redis cluster start failed, trying again: {error}");
                    last_error = error;
                }
            }
        }
        panic!("could not start a redis cluster: {last_error}");
    }

    fn try_start() -> Result<RedisCluster, String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "resulthub-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|error| format!("make {dir:?}: {error}"))?;
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for port in free_cluster_ports(6) {
            let node = Node {
                port,
                child: Mutex::new(None),
            };
            cluster.spawn(&node)?;
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            cluster.await_ping(node.port)?;
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let output = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("run redis-cli --cluster create: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        cluster.await_stable(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Seed URLs: every node's (the backend discovers the rest anyway).
    pub fn seeds(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// Every node's port, killed ones included.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| lock(&node.child).is_some())
            .map(|node| node.port)
            .collect()
    }

    /// Sends one command to the node at `port` over a fresh connection; an error reply or
    /// an unreachable node panics.
    pub fn command(&self, port: u16, args: &[&str]) -> redis::Value {
        self.try_command(port, args)
            .unwrap_or_else(|error| panic!("node {port}: {args:?}: {error}"))
    }

    /// `command`, with the error returned.
    pub fn try_command(&self, port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let (name, rest) = args.split_first().expect("a command");
        let mut command = redis::cmd(name);
        for arg in rest {
            command.arg(*arg);
        }
        let mut connection = connect(port, Duration::from_secs(10))?;
        command.query(&mut connection)
    }

    /// `command` for a reply read as text.
    pub fn command_text(&self, port: u16, args: &[&str]) -> String {
        text(self.command(port, args))
    }

    /// What the live nodes say of the cluster, as the first live node answers `CLUSTER NODES`.
    pub fn node_infos(&self) -> Vec<NodeInfo> {
        let port = self.live_ports()[0];
        parse_nodes(&self.command_text(port, &["CLUSTER", "NODES"]))
    }

    /// The ports of the masters that hold slots, not failed.
    pub fn masters(&self) -> Vec<u16> {
        let port = self.live_ports()[0];
        let slots = self.command(port, &["CLUSTER", "SLOTS"]);
        let mut masters: Vec<u16> = slot_ranges(&slots)
            .into_iter()
            .map(|(_, _, master, _)| master)
            .collect();
        masters.sort_unstable();
        masters.dedup();
        masters
    }

    /// The port of the master that serves `key` now.
    pub fn master_of_key(&self, key: &str) -> u16 {
        self.master_of_slot(self.slot_of(key))
    }

    /// The hash slot of `key`.
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot = self.command_text(port, &["CLUSTER", "KEYSLOT", key]);
        slot.trim().parse().expect("a slot number")
    }

    /// The port of the master that serves `slot` now.
    pub fn master_of_slot(&self, slot: u16) -> u16 {
        let port = self.live_ports()[0];
        let slots = self.command(port, &["CLUSTER", "SLOTS"]);
        slot_ranges(&slots)
            .into_iter()
            .find(|(start, end, _, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, master, _)| master)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    /// A replica of the master at `master`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let infos = self.node_infos();
        let id = infos
            .iter()
            .find(|info| info.port == master)
            .map(|info| info.id.clone())
            .expect("the master is known");
        infos
            .iter()
            .find(|info| info.master_id.as_deref() == Some(id.as_str()) && !info.failed)
            .map(|info| info.port)
            .unwrap_or_else(|| panic!("master {master} has no replica"))
    }

    /// The node id of the node at `port`.
    pub fn id_of(&self, port: u16) -> String {
        self.command_text(port, &["CLUSTER", "MYID"])
            .trim()
            .to_owned()
    }

    /// The keys of the prefix (`{prefix}:task:*`) on the master at `port`.
    pub fn keys_on(&self, port: u16, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let reply = self.command(port, &["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
            let redis::Value::Array(parts) = reply else {
                panic!("SCAN answered {reply:?}");
            };
            cursor = text(parts[0].clone());
            if let redis::Value::Array(found) = &parts[1] {
                keys.extend(found.iter().cloned().map(text));
            }
            if cursor == "0" {
                return keys;
            }
        }
    }

    /// The ports of the nodes with a pattern subscription (`PUBSUB NUMPAT`).
    pub fn pattern_subscribed(&self) -> Vec<u16> {
        self.live_ports()
            .into_iter()
            .filter(|&port| {
                matches!(
                    self.command(port, &["PUBSUB", "NUMPAT"]),
                    redis::Value::Int(n) if n > 0
                )
            })
            .collect()
    }

    /// Kills the node at `port` at once (SIGKILL): its connections drop, nothing is saved.
    pub fn kill(&self, port: u16) {
        let node = self.node(port);
        if let Some(mut child) = lock(&node.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Fails the master at `master` over to a replica with `CLUSTER FAILOVER` (a manual
    /// failover: the replica catches up first, so nothing acknowledged is lost), and waits
    /// until the cluster agrees. Returns the new master's port.
    pub fn failover(&self, master: u16) -> u16 {
        let replica = self.replica_of(master);
        self.command(replica, &["CLUSTER", "FAILOVER"]);
        self.await_master(replica, Duration::from_secs(30));
        replica
    }

    /// Waits until the node at `port` is a master that every live node sees serving slots,
    /// and the cluster is `ok` everywhere.
    pub fn await_master(&self, port: u16, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let promoted = self.live_ports().into_iter().all(|node| {
                self.try_command(node, &["CLUSTER", "SLOTS"])
                    .is_ok_and(|slots| {
                        slot_ranges(&slots)
                            .iter()
                            .any(|(_, _, master, _)| *master == port)
                    })
            });
            if promoted && self.all_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {port} not promoted within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Moves `slot` to the master at `to`, as `redis-cli --cluster reshard` does: the target
    /// imports, the source migrates, the keys move in batches of `batch` with `MIGRATE`
    /// (`pause` after each batch, for callers to meet a half-moved slot), then every node is
    /// told the new owner.
    pub fn migrate_slot(&self, slot: u16, to: u16, batch: usize, pause: Duration) {
        let from = self.master_of_slot(slot);
        assert_ne!(from, to, "slot {slot} is already on {to}");
        let (from_id, to_id) = (self.id_of(from), self.id_of(to));
        let slot_text = slot.to_string();
        self.command(
            to,
            &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id],
        );
        self.command(
            from,
            &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id],
        );
        loop {
            let count = batch.to_string();
            let keys = self.command(from, &["CLUSTER", "GETKEYSINSLOT", &slot_text, &count]);
            let redis::Value::Array(keys) = keys else {
                panic!("GETKEYSINSLOT answered {keys:?}");
            };
            if keys.is_empty() {
                break;
            }
            let keys: Vec<String> = keys.into_iter().map(text).collect();
            let to_port = to.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &to_port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            self.command(from, &args);
            std::thread::sleep(pause);
        }
        // The target first, so that the slot always has an owner that says so.
        self.command(to, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id]);
        self.command(from, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id]);
        // The other masters; replicas learn it from their masters (SETSLOT is for masters).
        for port in self.masters() {
            if port != to && port != from {
                self.command(port, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id]);
            }
        }
    }

    /// Waits until every live node says `cluster_state:ok` and knows every slot's master.
    pub fn await_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.all_ok() {
            assert!(Instant::now() < deadline, "cluster not ok within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn all_ok(&self) -> bool {
        self.live_ports().into_iter().all(|port| {
            self.try_command(port, &["CLUSTER", "INFO"])
                .map(text)
                .is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
                })
        })
    }

    /// Waits until the new cluster is `ok` on every node, every node knows all six, and every
    /// replica's link to its master is up (a manual failover needs it).
    fn await_stable(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let stable = self.all_ok()
                && self.ports().into_iter().all(|port| {
                    let Ok(info) = self.try_command(port, &["CLUSTER", "INFO"]).map(text) else {
                        return false;
                    };
                    let Ok(replication) =
                        self.try_command(port, &["INFO", "replication"]).map(text)
                    else {
                        return false;
                    };
                    info.contains("cluster_known_nodes:6")
                        && (replication.contains("role:master")
                            || replication.contains("master_link_status:up"))
                });
            if stable {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("cluster not stable within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn node(&self, port: u16) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    fn spawn(&self, node: &Node) -> Result<(), String> {
        let port = node.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .arg("--cluster-config-file")
            .arg(self.dir.join(format!("nodes-{port}.conf")))
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            // A replica whose link broke a moment ago may still be promoted.
            .args(["--cluster-replica-validity-factor", "0"])
            // The topology stays as the tests make it.
            .args(["--cluster-allow-replica-migration", "no"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join(format!("{port}.log")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("spawn redis-server: {error}"))?;
        *lock(&node.child) = Some(child);
        Ok(())
    }

    fn await_ping(&self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = lock(&self.node(port).child).as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("redis-server on {port} exited: {status}"));
                }
            }
            let pong = connect(port, Duration::from_millis(500))
                .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection));
            if pong.is_ok_and(|reply| reply == "PONG") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("redis-server on {port} did not answer"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            if let Some(mut child) = lock(&node.child).take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn available() -> bool {
    ["redis-server", "redis-cli"].into_iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

fn connect(port: u16, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let connection = client.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// `count` ports whose cluster bus ports (port + 10000) are free too, and not given out
/// before by this process.
fn free_cluster_ports(count: usize) -> Vec<u16> {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = lock(&TAKEN);
    let mut ports = Vec::with_capacity(count);
    while ports.len() < count {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        drop(listener);
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if taken.contains(&port) || taken.contains(&bus) || ports.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", bus)).is_err() {
            continue;
        }
        ports.push(port);
    }
    taken.extend(ports.iter().copied());
    taken.extend(ports.iter().map(|port| port + 10_000));
    ports
}

/// A reply as text: a string or a number as its text, nil as nothing, an array as its
/// items, each followed by `\n`.
fn text(reply: redis::Value) -> String {
    match reply {
        redis::Value::Nil => String::new(),
        redis::Value::Int(number) => number.to_string(),
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::SimpleString(text) => text,
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::Okay => "OK".to_owned(),
        redis::Value::Array(items) => items
            .into_iter()
            .map(|item| format!("{}\n", text(item)))
            .collect(),
        other => panic!("a reply `text` does not read: {other:?}"),
    }
}

/// `(start, end, master port, replica ports)` of each range of a `CLUSTER SLOTS` reply.
fn slot_ranges(reply: &redis::Value) -> Vec<(u16, u16, u16, Vec<u16>)> {
    let redis::Value::Array(ranges) = reply else {
        panic!("CLUSTER SLOTS answered {reply:?}");
    };
    let int = |value: &redis::Value| match value {
        redis::Value::Int(n) => u16::try_from(*n).expect("a u16"),
        other => panic!("not a number: {other:?}"),
    };
    let port = |node: &redis::Value| match node {
        redis::Value::Array(parts) => int(&parts[1]),
        other => panic!("not a node: {other:?}"),
    };
    ranges
        .iter()
        .map(|range| {
            let redis::Value::Array(fields) = range else {
                panic!("not a range: {range:?}");
            };
            (
                int(&fields[0]),
                int(&fields[1]),
                port(&fields[2]),
                fields[3..].iter().map(port).collect(),
            )
        })
        .collect()
}

/// The lines of `CLUSTER NODES`.
fn parse_nodes(text: &str) -> Vec<NodeInfo> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            // <id> <ip:port@cport> <flags> <master> ...
            let port = fields[1]
                .split('@')
                .next()
                .and_then(|address| address.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or(0);
            let flags: Vec<&str> = fields[2].split(',').collect();
            NodeInfo {
                id: fields[0].to_owned(),
                port,
                master: flags.contains(&"master"),
                master_id: (fields[3] != "-").then(|| fields[3].to_owned()),
                failed: flags.contains(&"fail") || flags.contains(&"fail?"),
            }
        })
        .collect()
}

/// Every key of `prefix` on each master: port to keys.
pub fn keys_by_master(cluster: &RedisCluster, prefix: &str) -> HashMap<u16, Vec<String>> {
    cluster
        .masters()
        .into_iter()
        .map(|port| (port, cluster.keys_on(port, &format!("{prefix}:task:*"))))
        .collect()
}
