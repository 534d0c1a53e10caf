//! A bounded soak: mixed operations from many concurrent clients on a spawned hub, with waiters
//! that are woken (80%), time out (10%) or are dropped before they complete (10%). At the end
//! no waiter may be left registered and, once the hub is cleared, the process's resident memory
//! must be back near where it was after a warm-up round.
//!
//! Ignored by default; run it with
//!
//! ```text
//! cargo test --all-features --test soak -- --ignored --nocapture
//! RESULTHUB_SOAK_OPS=200000 cargo test --all-features --test soak -- --ignored --nocapture
//! ```

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use resulthub::{BackendError, HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use support::{Subject, mib, rss_allowance, rss_bytes, trimmed_rss_bytes, within, within_for};

/// Operations in the measured run, unless `RESULTHUB_SOAK_OPS` says otherwise.
const DEFAULT_OPS: u64 = 1_000_000;
/// Clients with an operation in flight at any time.
const CLIENTS: usize = 64;
/// Ids the plain stores, gets and deletes cycle through.
const KEYS: u64 = 10_000;
/// How long a waiter meant to time out waits.
const SHORT_TIMEOUT: Duration = Duration::from_millis(2);
/// How long a waiter meant to be woken may wait: nothing should come near it.
const WAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on the whole run.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

fn ops_from_env() -> u64 {
    match std::env::var("RESULTHUB_SOAK_OPS") {
        Ok(text) => text
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("RESULTHUB_SOAK_OPS={text:?} is not a count")),
        Err(_) => DEFAULT_OPS,
    }
}

/// xorshift64*: a cheap, reproducible choice per operation.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[derive(Default)]
struct Tally {
    stores: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    woken: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
}

impl Tally {
    fn line(&self) -> String {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        format!(
            "stores {}, gets {}, lists {}, deletes {}, waiters woken {}, timed out {}, dropped {}",
            get(&self.stores),
            get(&self.gets),
            get(&self.lists),
            get(&self.deletes),
            get(&self.woken),
            get(&self.timed_out),
            get(&self.dropped),
        )
    }
}

fn key(n: u64) -> String {
    format!("key-{}", n % KEYS)
}

/// One operation, chosen by `n`'s hash. `client` keeps the ids of its waiters its own.
async fn one_op(hub: &HubHandle, client: usize, n: u64, tally: &Tally) {
    let roll = mix(n.wrapping_add(0x9E37_79B9_7F4A_7C15));
    let status = TaskStatus::ALL[(roll >> 8) as usize % 5];
    match roll % 100 {
        // Plain stores of every status.
        0..=39 => {
            let id = key(roll >> 16);
            let record = TaskResult::new(id.clone(), status)
                .with_task_name("soak")
                .with_result(n);
            hub.store(&id, record).await.expect("store");
            tally.stores.fetch_add(1, Ordering::Relaxed);
        }
        40..=59 => {
            hub.get(&key(roll >> 16)).await.expect("get");
            tally.gets.fetch_add(1, Ordering::Relaxed);
        }
        60..=64 => {
            let page = hub
                .list_by_status(status, Some(10), (roll >> 20) as usize % 50)
                .await
                .expect("list");
            assert!(page.len() <= 10);
            tally.lists.fetch_add(1, Ordering::Relaxed);
        }
        65..=69 => {
            hub.delete(&key(roll >> 16)).await.expect("delete");
            tally.deletes.fetch_add(1, Ordering::Relaxed);
        }
        // Waiters: 10% of them time out, 10% are dropped, 80% are woken by a store.
        _ => {
            let id = format!("wait-{client}-{n}");
            match (roll >> 32) % 10 {
                0 => {
                    let out = hub.wait_for(&id, Some(SHORT_TIMEOUT)).await;
                    assert!(
                        matches!(out, Err(BackendError::Timeout { .. })),
                        "{id}: {out:?}"
                    );
                    tally.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                1 => {
                    let mut wait = hub.wait_for(&id, None);
                    // One poll sends the request; dropping the future must leave nothing.
                    let polled = futures::poll!(wait.as_mut());
                    assert!(
                        polled.is_pending(),
                        "{id}: nothing stored, nothing to return"
                    );
                    drop(wait);
                    tally.dropped.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    let mut wait = hub.wait_for(&id, Some(WAKE_TIMEOUT));
                    // Registered before the store: the hub handles a caller's calls in order.
                    if let Poll::Ready(out) = futures::poll!(wait.as_mut()) {
                        panic!("{id}: resolved before its store: {out:?}");
                    }
                    let record = TaskResult::new(id.clone(), TaskStatus::Success).with_result(n);
                    hub.store(&id, record.clone()).await.expect("store");
                    let got = wait.await.expect("woken by its store");
                    assert_eq!(got, record);
                    hub.delete(&id).await.expect("delete");
                    tally.woken.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Runs `ops` operations from `CLIENTS` concurrent clients; returns the peak RSS sampled.
async fn run_ops(hub: &HubHandle, ops: u64, first: u64, tally: &Arc<Tally>) -> u64 {
    let next = Arc::new(AtomicU64::new(first));
    let end = first + ops;
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let hub = hub.clone();
            let next = Arc::clone(&next);
            let tally = Arc::clone(tally);
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= end {
                        break;
                    }
                    within("a soak operation", one_op(&hub, client, n, &tally)).await;
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    let mut peak = rss_bytes();
    while done.load(Ordering::Acquire) < CLIENTS {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss_bytes());
    }
    for client in clients {
        within("a soak client", client).await.expect("client task");
    }
    peak
}

#[test]
#[ignore = "soak: run with --ignored (RESULTHUB_SOAK_OPS sets its size)"]
fn soak_mixed_operations_leave_no_waiters_and_give_memory_back() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        within_for(RUN_TIMEOUT, "the soak", soak()).await;
    });
}

async fn soak() {
    let ops = ops_from_env();
    let hub = HubHandle::spawn(HubConfig::default());
    let s = Subject::hub(hub.clone());
    let tally = Arc::new(Tally::default());

    // Warm-up round, then the baseline.
    let warm_up = (ops / 20).clamp(1_000, 50_000);
    run_ops(&hub, warm_up, 0, &Arc::new(Tally::default())).await;
    within_for(RUN_TIMEOUT, "clear", hub.clear())
        .await
        .expect("clear");
    assert_eq!(s.stats().await.waiters, 0, "after the warm-up");
    let raw_baseline = rss_bytes();
    let baseline = trimmed_rss_bytes();

    let started = Instant::now();
    let peak = run_ops(&hub, ops, warm_up, &tally).await;
    let elapsed = started.elapsed();

    let stats = s.stats().await;
    assert_eq!(stats.waiters, 0, "no waiter left registered: {stats:?}");
    let held = stats.results;
    within_for(RUN_TIMEOUT, "clear", hub.clear())
        .await
        .expect("clear");
    assert_eq!(s.stats().await.results, 0);
    let raw_after = rss_bytes();
    let after = trimmed_rss_bytes();
    println!(
        "soak: {ops} ops from {CLIENTS} clients in {elapsed:.2?} ({:.0} ops/s); {}; {held} records \
         held before the final clear",
        ops as f64 / elapsed.as_secs_f64(),
        tally.line(),
    );
    println!(
        "soak: RSS before {:.1} MiB ({:.1} MiB before malloc_trim), peak {:.1} MiB, after {:.1} MiB \
         ({:.1} MiB before malloc_trim); allowance {:.1} MiB",
        mib(baseline),
        mib(raw_baseline),
        mib(peak),
        mib(after),
        mib(raw_after),
        mib(rss_allowance(baseline)),
    );
    assert!(
        after <= rss_allowance(baseline),
        "RSS after the soak {:.1} MiB, over the allowance {:.1} MiB (baseline {:.1} MiB)",
        mib(after),
        mib(rss_allowance(baseline)),
        mib(baseline)
    );
    within_for(RUN_TIMEOUT, "shutdown", hub.shutdown()).await;
}
