//! Load: 100,000 concurrent waiters on distinct ids, and a producer storing every one of them,
//! against the hub (`HubHandle::spawn`) and `InMemoryBackend`. Every waiter must get its own
//! record, none may time out, no waiter may be left registered, and the process's resident
//! memory must come back near where it started once the backend is cleared.
//!
//! The two tests measure the whole process's memory, so they take turns.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use resulthub::{HubConfig, HubHandle, InMemoryBackend, TaskResult, TaskStatus};
use support::{Subject, mib, rss_allowance, rss_bytes, trimmed_rss_bytes, within_for};

const WAITERS: usize = 100_000;
/// Generous: nothing should come near it.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How many stores the producer keeps in flight.
const PRODUCER_IN_FLIGHT: usize = 256;

/// Serializes the tests of this file: each measures the process's memory.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn id(n: usize) -> String {
    format!("load-{n}")
}

fn record(n: usize) -> TaskResult {
    TaskResult::new(id(n), TaskStatus::Success).with_result(n)
}

/// One round: `n` waiters, then a producer storing all `n` ids. Returns the peak RSS seen
/// while every waiter was registered.
async fn round(s: &Subject, n: usize) -> u64 {
    let waiters: Vec<_> = (0..n)
        .map(|i| {
            let backend = Arc::clone(&s.backend);
            tokio::spawn(async move { backend.wait_for(&id(i), Some(WAIT_TIMEOUT)).await })
        })
        .collect();
    s.await_waiters_within(WAIT_TIMEOUT, n).await;
    let peak = rss_bytes();

    let backend = Arc::clone(&s.backend);
    let producer = tokio::spawn(async move {
        futures::stream::iter(0..n)
            .map(|i| {
                let backend = Arc::clone(&backend);
                async move { backend.store(&id(i), record(i)).await }
            })
            .buffer_unordered(PRODUCER_IN_FLIGHT)
            .for_each(|out| async move { out.expect("store") })
            .await;
    });

    within_for(WAIT_TIMEOUT, "every waiter", async {
        for (i, waiter) in waiters.into_iter().enumerate() {
            match waiter.await.expect("waiter task") {
                Ok(got) => {
                    assert_eq!(got.task_id, id(i), "{}: waiter {i}", s.name());
                    assert_eq!(got.result, serde_json::json!(i), "{}: waiter {i}", s.name());
                    assert_eq!(got, record(i));
                }
                Err(error) => panic!("{}: waiter {i} got {error:?}", s.name()),
            }
        }
    })
    .await;
    within_for(WAIT_TIMEOUT, "the producer", producer)
        .await
        .expect("producer task");
    let stats = s.stats().await;
    assert_eq!(stats.waiters, 0, "{}: {stats:?}", s.name());
    assert_eq!(stats.results, n, "{}: {stats:?}", s.name());
    let cleared = within_for(WAIT_TIMEOUT, "clear", s.backend.clear())
        .await
        .expect("clear");
    assert_eq!(cleared, n);
    peak.max(rss_bytes())
}

async fn run(s: Subject) {
    let _turn = MEASURING.lock().await;
    // Warm-up: runtime, allocator arenas and the backend's maps reach their working size.
    round(&s, WAITERS / 10).await;
    // Measured after `malloc_trim`: glibc keeps freed memory cached in its arenas, which says
    // nothing about what the backend still holds. The raw figure is printed too.
    let baseline = trimmed_rss_bytes();
    let started = Instant::now();
    let peak = round(&s, WAITERS).await;
    let elapsed = started.elapsed();
    let stats = s.stats().await;
    assert_eq!(
        (stats.results, stats.waiters),
        (0, 0),
        "{}: {stats:?}",
        s.name()
    );
    let raw_after = rss_bytes();
    let after = trimmed_rss_bytes();
    println!(
        "{}: {WAITERS} waiters woken in {elapsed:.2?} ({:.0} waiters/s); RSS baseline {:.1} MiB, \
         peak {:.1} MiB, after clear {:.1} MiB ({:.1} MiB before malloc_trim)",
        s.name(),
        WAITERS as f64 / elapsed.as_secs_f64(),
        mib(baseline),
        mib(peak),
        mib(after),
        mib(raw_after),
    );
    assert!(
        after <= rss_allowance(baseline),
        "{}: RSS after clear {:.1} MiB, over the allowance {:.1} MiB (baseline {:.1} MiB)",
        s.name(),
        mib(after),
        mib(rss_allowance(baseline)),
        mib(baseline)
    );
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_wakes_a_hundred_thousand_waiters_each_with_its_own_record() {
    run(Subject::hub(HubHandle::spawn(HubConfig::default()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_wakes_a_hundred_thousand_waiters_each_with_its_own_record() {
    run(Subject::memory(InMemoryBackend::with_config(
        HubConfig::default(),
    )))
    .await;
}
