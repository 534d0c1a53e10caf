//! `RedisBackend` on a Redis Cluster under the changes a cluster goes through: records spread
//! over every master, a slot migrated while callers store and wait, a manual failover under
//! load, a master killed, and the node the pub/sub connection listens on killed. Besides,
//! `cluster_builder`'s refusals of bad seeds.
//!
//! The tests that change the topology start a cluster of their own and run one at a time: a
//! failover on a 2-core machine busy with another cluster's could make the node timeout
//! (1 s) fire where no test asked for it.

#![cfg(feature = "redis")]

#[path = "support/redis_cluster.rs"]
mod redis_cluster;
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_cluster::{RedisCluster, keys_by_master};
use resulthub::{BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;
use support::{LONG_TIMEOUT, eventually, within_for, within_long};
use tokio::task::JoinHandle;

/// One topology-changing test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn backend(cluster: &RedisCluster, prefix: &str, response_timeout: Duration) -> RedisBackend {
    within_long(
        "connect to the cluster",
        RedisBackend::cluster_builder(cluster.seeds())
            .prefix(prefix)
            .response_timeout(response_timeout)
            .build(),
    )
    .await
    .expect("connect to the test's redis cluster")
}

fn done(id: &str, n: u64) -> TaskResult {
    TaskResult::new(id, TaskStatus::Success).with_result(json!(n))
}

/// Waits for `ids`, each for up to `timeout`, in tasks of their own.
fn spawn_waiters(
    backend: &RedisBackend,
    ids: &[String],
    timeout: Duration,
) -> Vec<(String, JoinHandle<Result<TaskResult, BackendError>>)> {
    ids.iter()
        .map(|id| {
            let (backend, id) = (backend.clone(), id.clone());
            let task_id = id.clone();
            (
                id,
                tokio::spawn(async move { backend.wait_for(&task_id, Some(timeout)).await }),
            )
        })
        .collect()
}

/// Stores records from `writers` tasks, first finishing `to_finish` (one id a store), then
/// under fresh ids, until `stop` and every id of `to_finish` is stored; returns the records
/// whose store was acknowledged, by id.
async fn store_until(
    backend: &RedisBackend,
    prefix_ids: &str,
    writers: usize,
    to_finish: Vec<String>,
    stop: Arc<AtomicBool>,
) -> HashMap<String, TaskResult> {
    let to_finish = Arc::new(std::sync::Mutex::new(to_finish));
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (backend, stop, to_finish) = (backend.clone(), stop.clone(), to_finish.clone());
            let prefix_ids = prefix_ids.to_owned();
            tokio::spawn(async move {
                let mut acknowledged = HashMap::new();
                let mut n = 0u64;
                loop {
                    let next = to_finish.lock().unwrap().pop();
                    if next.is_none() && stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = next.unwrap_or_else(|| format!("{prefix_ids}-{writer}-{n}"));
                    let record = done(&id, n);
                    match backend.store(&id, record.clone()).await {
                        Ok(()) => {
                            acknowledged.insert(id, record);
                        }
                        // Not acknowledged: the caller would try again (an id to finish is
                        // tried again; it may have landed, which nothing here relies on).
                        Err(BackendError::Unavailable { .. }) => {
                            if id.starts_with(&prefix_ids) {
                                n += 1;
                                continue;
                            }
                            to_finish.lock().unwrap().push(id);
                        }
                        Err(other) => panic!("store {id}: {other:?}"),
                    }
                    n += 1;
                }
                acknowledged
            })
        })
        .collect();
    let mut all = HashMap::new();
    for task in tasks {
        all.extend(within_long("writers", task).await.expect("writer task"));
    }
    all
}

/// Every acknowledged record reads back as stored.
async fn assert_readable(backend: &RedisBackend, acknowledged: &HashMap<String, TaskResult>) {
    for (id, record) in acknowledged {
        let stored = within_long("get", backend.get(id)).await.expect("get");
        assert_eq!(stored.as_ref(), Some(record), "acknowledged store of {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_one_run_land_on_every_master_and_walks_see_them_all() {
    let Some(cluster) = RedisCluster::shared() else {
        return;
    };
    let backend = backend(&cluster, "spread", Duration::from_secs(10)).await;
    backend.clear().await.expect("clear");
    let records: Vec<TaskResult> = (0..300)
        .map(|n| {
            done(&format!("t-{n}"), n).with_submitted_at(support::at(1_700_000_000 + n as i64))
        })
        .collect();
    for outcome in backend.store_many(records.clone()).await {
        outcome.expect("store");
    }
    let by_master = keys_by_master(&cluster, "spread");
    assert_eq!(by_master.len(), 3, "three masters: {:?}", by_master.keys());
    for (port, keys) in &by_master {
        assert!(!keys.is_empty(), "master {port} holds no record");
    }
    assert_eq!(by_master.values().map(Vec::len).sum::<usize>(), 300);

    // Every record once, newest first, with the same paging as on one server.
    let listed = backend
        .list_by_status(TaskStatus::Success, None, 0)
        .await
        .expect("list");
    let mut newest_first = records.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let page = backend
        .list_by_status(TaskStatus::Success, Some(7), 290)
        .await
        .expect("a page");
    assert_eq!(page, newest_first[290..297].to_vec());
    let many = backend
        .get_many(&["t-5", "nothing", "t-200", "t-5"])
        .await
        .expect("get_many across slots");
    assert_eq!(
        many,
        vec![
            Some(records[5].clone()),
            None,
            Some(records[200].clone()),
            Some(records[5].clone())
        ]
    );
    let stats = backend.stats().await.expect("stats");
    assert_eq!(stats.by_status.get(TaskStatus::Success), 300);
    assert!(backend.delete("t-0").await.expect("delete"));
    assert!(!backend.delete("t-0").await.expect("delete again"));
    assert_eq!(backend.clear().await.expect("clear"), 299);
    assert!(
        keys_by_master(&cluster, "spread")
            .values()
            .all(Vec::is_empty)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrated_while_callers_store_and_wait_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let backend = backend(&cluster, "mig", Duration::from_secs(10)).await;
    // Ids with a hash tag: every key `mig:task:{hot}-n` is in the slot of `hot`.
    let hot = |n: usize| format!("{{hot}}-{n}");
    let slot = cluster.slot_of(&format!("mig:task:{}", hot(0)));
    let from = cluster.master_of_slot(slot);
    let to = cluster
        .masters()
        .into_iter()
        .find(|&port| port != from)
        .expect("another master");

    // Stored before: 300 finished, and 100 running that waiters wait for.
    for n in 0..300 {
        backend
            .store(&hot(n), done(&hot(n), 0))
            .await
            .expect("store");
    }
    let running: Vec<String> = (300..400).map(hot).collect();
    for id in &running {
        backend
            .store(id, TaskResult::new(id.clone(), TaskStatus::Running))
            .await
            .expect("store");
    }
    // Waiters on the running ones and on ids not stored yet, in the moving slot.
    let fresh: Vec<String> = (400..450).map(hot).collect();
    let mut waited = running.clone();
    waited.extend(fresh.iter().cloned());
    let waiters = spawn_waiters(&backend, &waited, Duration::from_secs(50));
    eventually("the waiters registered", || {
        backend.local_waiters() == waited.len()
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut to_finish = waited.clone();
    to_finish.reverse();
    let writers = {
        let (backend, stop) = (backend.clone(), stop.clone());
        tokio::spawn(async move { store_until(&backend, "{hot}-w", 4, to_finish, stop).await })
    };
    let migration = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            cluster.migrate_slot(slot, to, 20, Duration::from_millis(100));
        })
    };
    within_long("the migration", migration)
        .await
        .expect("migration task");
    // Some stores after the move, against the slot's new owner.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = within_long("writers", writers).await.expect("writers task");
    assert_eq!(cluster.master_of_slot(slot), to);
    assert!(waited.iter().all(|id| acknowledged.contains_key(id)));
    // Every acknowledged store moved with its slot, and the records stored before too.
    assert_readable(&backend, &acknowledged).await;
    for n in 0..300 {
        assert_eq!(
            backend.get(&hot(n)).await.expect("get"),
            Some(done(&hot(n), 0))
        );
    }
    assert!(cluster.keys_on(from, "mig:task:*").is_empty());
    // Every waiter woke with the record its store acknowledged.
    for (id, waiter) in waiters {
        let woke = within_long("a waiter", waiter)
            .await
            .expect("waiter task")
            .unwrap_or_else(|error| panic!("waiter {id}: {error:?}"));
        assert_eq!(Some(&woke), acknowledged.get(&id), "waiter {id}");
    }
    // And a listing sees every record once (a store that failed as Unavailable may have
    // landed too, so the count is a lower bound).
    let listed = backend
        .list_by_status(TaskStatus::Success, None, 0)
        .await
        .expect("list");
    let ids: std::collections::HashSet<&str> = listed
        .iter()
        .map(|record| record.task_id.as_str())
        .collect();
    // As many as the masters hold, counted by a raw SCAN of each (the slot has settled).
    let stored: usize = cluster
        .masters()
        .iter()
        .map(|&port| cluster.keys_on(port, "mig:task:*").len())
        .sum();
    assert_eq!(listed.len(), stored, "listed against the keys stored");
    let stats = backend.stats().await.expect("stats");
    assert_eq!(stats.by_status.get(TaskStatus::Success), stored);
    assert!(ids.len() >= 300 + acknowledged.len());
    assert!(acknowledged.keys().all(|id| ids.contains(id.as_str())));
}

/// A walk routes each primary's `SCAN`s by one slot of that primary, its lowest; a resharding
/// moves a node's lowest slots first. A slot moved mid-walk must not send the rest of the walk
/// to the new owner (whose keys the cursor does not describe), skipping the rest of the
/// source's keys: each walk, listing and count, sees every record stored before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_while_a_primarys_routing_slot_moves_see_every_record() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let backend = within_long(
        "connect to the cluster",
        RedisBackend::cluster_builder(cluster.seeds())
            .prefix("walk")
            .response_timeout(Duration::from_secs(10))
            .stats_interval(Duration::ZERO)
            .build(),
    )
    .await
    .expect("connect to the test's redis cluster");
    // Enough records for several SCAN steps on each primary.
    let records: Vec<TaskResult> = (0..6000).map(|n| done(&format!("r-{n}"), n)).collect();
    for outcome in backend.store_many(records).await {
        outcome.expect("store");
    }
    // Slot 0, the one that moves, holds none of them: a record that moves to a node walked
    // already is not the walk's to see.
    let from = cluster.master_of_slot(0);
    let redis::Value::Array(in_slot) =
        cluster.command(from, &["CLUSTER", "GETKEYSINSLOT", "0", "1000"])
    else {
        panic!("GETKEYSINSLOT answered no array");
    };
    for key in in_slot {
        let redis::Value::BulkString(key) = key else {
            panic!("a key that is not a bulk string");
        };
        let key = String::from_utf8(key).expect("a text key");
        let id = key.strip_prefix("walk:task:").expect("a key of the prefix");
        assert!(backend.delete(id).await.expect("delete"));
    }
    let stored: usize = cluster
        .masters()
        .iter()
        .map(|&port| cluster.keys_on(port, "walk:task:*").len())
        .sum();
    assert!(stored > 5990, "{stored}");
    let to = cluster
        .masters()
        .into_iter()
        .find(|&port| port != from)
        .expect("another master");

    let stop = Arc::new(AtomicBool::new(false));
    let walker = {
        let (backend, stop) = (backend.clone(), stop.clone());
        tokio::spawn(async move {
            let mut walks = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let listed = backend
                    .list_by_status(TaskStatus::Success, None, 0)
                    .await
                    .expect("list");
                assert_eq!(listed.len(), stored, "listing {walks}");
                let stats = backend.stats().await.expect("stats");
                assert_eq!(stats.results, stored, "count {walks}");
                walks += 1;
            }
            walks
        })
    };
    let flips = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || {
            for flip in 0..40 {
                let target = if flip % 2 == 0 { to } else { from };
                cluster.migrate_slot(0, target, 20, Duration::ZERO);
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };
    within_long("the slot's moves", flips)
        .await
        .expect("flips task");
    stop.store(true, Ordering::Relaxed);
    let walks = within_long("the walker", walker)
        .await
        .expect("walker task");
    assert!(walks >= 2, "{walks} walks");
    // And a clear removes every record.
    assert_eq!(backend.clear().await.expect("clear"), stored);
}

/// A master that does not know the store script (flushed, or a replica promoted since) is sent
/// it with `EVAL`, on that master only: loading it on every master would fail, or wait, on one
/// that does not answer, failing stores to healthy ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_without_the_script_is_stored_to_while_another_does_not_answer() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let backend = backend(&cluster, "noscript", Duration::from_secs(4)).await;
    // The script is known everywhere the client loaded it.
    backend
        .store("first", done("first", 0))
        .await
        .expect("store");
    let masters = cluster.masters();
    let (flushed, silent) = (masters[0], masters[1]);
    let ids: Vec<String> = (0..200)
        .map(|n| format!("n-{n}"))
        .filter(|id| cluster.master_of_key(&format!("noscript:task:{id}")) == flushed)
        .take(5)
        .collect();
    assert_eq!(ids.len(), 5);
    cluster.command(flushed, &["SCRIPT", "FLUSH"]);
    // Answers no client for 8 s; the cluster bus goes on, so no failover.
    cluster.command(silent, &["CLIENT", "PAUSE", "8000", "ALL"]);
    for (n, id) in ids.iter().enumerate() {
        within_for(
            Duration::from_secs(2),
            "a store to a healthy master",
            backend.store(id, done(id, n as u64)),
        )
        .await
        .unwrap_or_else(|error| panic!("store {id}: {error:?}"));
        assert_eq!(
            backend.get(id).await.expect("get"),
            Some(done(id, n as u64))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_under_load_loses_nothing_acknowledged() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let cluster = Arc::new(cluster);
    let backend = backend(&cluster, "fo", Duration::from_secs(15)).await;
    let waited: Vec<String> = (0..60).map(|n| format!("w-{n}")).collect();
    let waiters = spawn_waiters(&backend, &waited, Duration::from_secs(50));
    eventually("the waiters registered", || {
        backend.local_waiters() == waited.len()
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = {
        let (backend, stop, to_finish) = (backend.clone(), stop.clone(), waited.clone());
        tokio::spawn(async move { store_until(&backend, "s", 4, to_finish, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let master = cluster.master_of_key("fo:task:s-0-0");
    let promoted = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.failover(master))
    };
    let promoted = within_long("the failover", promoted)
        .await
        .expect("failover task");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = within_long("writers", writers).await.expect("writers task");
    assert!(cluster.masters().contains(&promoted));
    assert!(!cluster.masters().contains(&master));
    // A manual failover waits for the replica to catch up: nothing acknowledged is lost.
    assert_readable(&backend, &acknowledged).await;
    for (id, waiter) in waiters {
        let woke = within_long("a waiter", waiter)
            .await
            .expect("waiter task")
            .unwrap_or_else(|error| panic!("waiter {id}: {error:?}"));
        assert_eq!(Some(&woke), acknowledged.get(&id), "waiter {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_hangs_no_caller_and_stores_resume_after_its_replica_takes_over() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let response_timeout = Duration::from_secs(4);
    let backend = backend(&cluster, "kill", response_timeout).await;
    // The ids of the master to be killed, found by their slot.
    let master = cluster.master_of_key("kill:task:k-0");
    let victims: Vec<String> = (0..2000)
        .map(|n| format!("k-{n}"))
        .filter(|id| cluster.master_of_key(&format!("kill:task:{id}")) == master)
        .take(40)
        .collect();
    let wait_timeout = Duration::from_secs(3);
    let waiters: Vec<_> = victims
        .iter()
        .map(|id| {
            let (backend, id) = (backend.clone(), id.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = backend.wait_for(&id, Some(wait_timeout)).await;
                (started.elapsed(), outcome)
            })
        })
        .collect();
    eventually("the waiters registered", || {
        backend.local_waiters() == victims.len()
    })
    .await;
    let replica = cluster.replica_of(master);
    cluster.kill(master);
    // Stores while the master is dead: each ends (done or Unavailable) within its deadline.
    let stores: Vec<_> = victims
        .iter()
        .map(|id| {
            let (backend, id) = (backend.clone(), id.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let outcome = backend.store(&id, done(&id, 1)).await;
                (started.elapsed(), outcome)
            })
        })
        .collect();
    // A store makes two calls (a read, a script), each bounded by the response timeout.
    let store_bound = response_timeout * 2 + Duration::from_secs(2);
    for store in stores {
        let (took, outcome) = within_long("a store", store).await.expect("store task");
        assert!(took <= store_bound, "a store took {took:?}: {outcome:?}");
        if let Err(error) = outcome {
            assert!(
                matches!(error, BackendError::Unavailable { .. }),
                "{error:?}"
            );
        }
    }
    for waiter in waiters {
        let (took, outcome) = within_long("a waiter", waiter).await.expect("waiter task");
        assert!(
            took <= wait_timeout + response_timeout + Duration::from_secs(2),
            "a waiter took {took:?}: {outcome:?}"
        );
        if let Err(error) = outcome {
            assert!(
                matches!(
                    error,
                    BackendError::Timeout { .. } | BackendError::Unavailable { .. }
                ),
                "{error:?}"
            );
        }
    }
    // The replica takes over; from then on every store of the slot succeeds and reads back.
    let promoted = Arc::new(cluster);
    {
        let cluster = Arc::clone(&promoted);
        within_long(
            "the promotion",
            tokio::task::spawn_blocking(move || cluster.await_master(replica, LONG_TIMEOUT)),
        )
        .await
        .expect("promotion task");
    }
    for id in &victims {
        let record = done(id, 2);
        within_for(
            response_timeout * 3,
            "a store after the promotion",
            backend.store(id, record.clone()),
        )
        .await
        .unwrap_or_else(|error| panic!("store {id} after the promotion: {error:?}"));
        assert_eq!(backend.get(id).await.expect("get"), Some(record));
    }
    let listed = backend
        .list_by_status(TaskStatus::Success, None, 0)
        .await
        .expect("a listing after the promotion");
    assert_eq!(listed.len(), victims.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_the_subscription_listens_on_leaves_no_waiter_hanging() {
    let _serial = SERIAL.lock().await;
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let backend = RedisBackend::cluster_builder(cluster.seeds())
        .prefix("sub")
        .response_timeout(Duration::from_secs(10))
        // Quick to notice and quick to move on.
        .health_check_interval(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .await
        .expect("connect");
    let ids: Vec<String> = (0..100).map(|n| format!("s-{n}")).collect();
    let waiters = spawn_waiters(&backend, &ids, Duration::from_secs(50));
    eventually("the waiters registered", || {
        backend.local_waiters() == ids.len()
    })
    .await;
    let listening = cluster.pattern_subscribed();
    assert_eq!(
        listening.len(),
        1,
        "one pattern subscription: {listening:?}"
    );
    let killed = listening[0];
    let killed_at = Instant::now();
    cluster.kill(killed);
    // Half the records while the subscription moves to another node (and, if the node was a
    // master, while its replica takes over), half once it has.
    for id in &ids[..50] {
        within_long("a store", backend.store(id, done(id, 3)))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "store {id}, {:?} after the kill: {error:?}",
                    killed_at.elapsed()
                )
            });
    }
    eventually("the subscription moved to a live node", || {
        let now = cluster.pattern_subscribed();
        now.len() == 1 && now[0] != killed
    })
    .await;
    for id in &ids[50..] {
        within_long("a store", backend.store(id, done(id, 3)))
            .await
            .unwrap_or_else(|error| panic!("store {id}: {error:?}"));
    }
    let started = Instant::now();
    for (id, waiter) in waiters {
        let woke = within_long("a waiter", waiter)
            .await
            .expect("waiter task")
            .unwrap_or_else(|error| panic!("waiter {id}: {error:?}"));
        assert_eq!(woke, done(&id, 3));
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the waiters woke only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_seeds_are_refused_at_build() {
    let no_seeds: [&str; 0] = [];
    let refused =
        |what: &str, outcome: Result<RedisBackend, BackendError>, needle: &str| match outcome {
            Err(BackendError::InvalidInput { reason, .. }) => {
                assert!(reason.contains(needle), "{what}: {reason}");
                assert!(
                    !reason.contains("secret"),
                    "{what} echoes a password: {reason}"
                );
            }
            other => panic!("{what}: expected InvalidInput, got {other:?}"),
        };
    refused(
        "no seeds",
        RedisBackend::cluster_builder(no_seeds).build().await,
        "no seed",
    );
    refused(
        "a bad URL",
        RedisBackend::cluster_builder(["redis://127.0.0.1:7000", "http://:secret@x"])
            .build()
            .await,
        "cluster seed 2 of 2",
    );
    refused(
        "a unix socket",
        RedisBackend::cluster_builder(["unix:///tmp/redis.sock"])
            .build()
            .await,
        "unix socket",
    );
    refused(
        "a database",
        RedisBackend::cluster_builder(["redis://:secret@127.0.0.1:7000/3"])
            .build()
            .await,
        "database 0 only",
    );
    #[cfg(feature = "redis-tls")]
    {
        refused(
            "TLS and plain seeds",
            RedisBackend::cluster_builder(["rediss://127.0.0.1:7000", "redis://127.0.0.1:7001"])
                .build()
                .await,
            "mix",
        );
        refused(
            "TLS options on plain seeds",
            RedisBackend::cluster_builder(["redis://127.0.0.1:7000"])
                .tls_insecure()
                .build()
                .await,
            "tls_insecure",
        );
        refused(
            "a CA with an insecure seed",
            RedisBackend::cluster_builder(["rediss://127.0.0.1:7000/#insecure"])
                .tls_root_certificate(b"-----BEGIN CERTIFICATE-----".to_vec())
                .build()
                .await,
            "tls_insecure",
        );
        refused(
            "a CA PEM without a certificate",
            RedisBackend::cluster_builder(["rediss://127.0.0.1:7000"])
                .tls_root_certificate(b"not a certificate".to_vec())
                .build()
                .await,
            "tls_root_certificate",
        );
    }
    #[cfg(not(feature = "redis-tls"))]
    refused(
        "a TLS seed without the feature",
        RedisBackend::cluster_builder(["rediss://127.0.0.1:7000"])
            .build()
            .await,
        "`redis-tls`",
    );
    // Options are checked as on one server.
    refused(
        "pool_size zero",
        RedisBackend::cluster_builder(["redis://127.0.0.1:7000"])
            .pool_size(0)
            .build()
            .await,
        "pool_size",
    );
}
