//! The workloads, defined once and run against every system. See docs/benchmarks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use resulthub::{ResultBackend, TaskResult, TaskStatus};
use serde_json::json;

use crate::systems::Subject;

/// B: `batches` batches of `size` ids; per batch every id is stored SUCCESS, read back, and
/// waited for (finished already), through the single calls or the batch calls. Returns
/// tasks per second.
pub async fn batches(subject: &Subject, batches: usize, size: usize, batched: bool) -> f64 {
    let backend = &*subject.backend;
    let start = Instant::now();
    for batch in 0..batches {
        let ids: Vec<String> = (0..size).map(|i| format!("batch-{batch}-{i}")).collect();
        let records: Vec<TaskResult> = ids
            .iter()
            .map(|id| TaskResult::new(id, TaskStatus::Success).with_result(json!(1)))
            .collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let limit = Some(Duration::from_secs(60));
        if batched {
            for outcome in backend.store_many(records).await {
                outcome.expect("store_many");
            }
            let found = backend.get_many(&ids).await.expect("get_many");
            assert!(found.iter().all(Option::is_some));
            let done = backend
                .wait_for_all(&ids, limit)
                .await
                .expect("wait_for_all");
            assert_eq!(done.len(), size);
        } else {
            for record in records {
                let id = record.task_id.clone();
                backend.store(&id, record).await.expect("store");
            }
            for id in &ids {
                assert!(backend.get(id).await.expect("get").is_some());
            }
            for id in &ids {
                backend.wait_for(id, limit).await.expect("wait_for");
            }
        }
    }
    (batches * size) as f64 / start.elapsed().as_secs_f64()
}

/// L: per task, store PENDING (name, args, submitted_at), RUNNING, SUCCESS with a small
/// result, then get. `callers` tasks share the `n` tasks. Returns tasks per second.
pub async fn lifecycle(subject: &Subject, n: usize, callers: usize) -> f64 {
    let start = Instant::now();
    let per_caller = n / callers;
    let handles: Vec<_> = (0..callers)
        .map(|caller| {
            let backend = Arc::clone(&subject.backend);
            tokio::spawn(async move {
                for i in caller * per_caller..(caller + 1) * per_caller {
                    one_lifecycle(&*backend, i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a lifecycle caller panicked");
    }
    (per_caller * callers) as f64 / start.elapsed().as_secs_f64()
}

async fn one_lifecycle(backend: &dyn ResultBackend, i: usize) {
    let id = format!("task-{i}");
    let pending = TaskResult::new(&id, TaskStatus::Pending)
        .with_task_name("bench.add")
        .with_args(vec![json!(i), json!(1)])
        .with_submitted_at(Utc::now());
    backend.store(&id, pending).await.expect("store PENDING");
    let running = TaskResult::new(&id, TaskStatus::Running).with_started_at(Utc::now());
    backend.store(&id, running).await.expect("store RUNNING");
    let success = TaskResult::new(&id, TaskStatus::Success)
        .with_result(json!({ "sum": i + 1 }))
        .with_finished_at(Utc::now());
    backend.store(&id, success).await.expect("store SUCCESS");
    let record = backend.get(&id).await.expect("get");
    assert!(record.is_some_and(|record| record.is_success()));
}

/// What W measured in one round.
pub struct WakeRound {
    pub all_woken: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// W: `n` waiters, one per id, registered before a producer stores SUCCESS for every id in
/// order. Measures from the first store call to the last waiter's return, and per id the time
/// from its store call to its waiter's return. With `pending_first` (WP), every id is stored
/// PENDING (not timed) before its waiter registers, as when callers wait on submitted tasks.
pub async fn wake(subject: &Subject, n: usize, pending_first: bool) -> WakeRound {
    if pending_first {
        load(subject, n, 1, |i| {
            TaskResult::new(format!("task-{i}"), TaskStatus::Pending)
        })
        .await;
    }
    let waiters: Vec<_> = (0..n)
        .map(|i| {
            let backend = Arc::clone(&subject.backend);
            tokio::spawn(async move {
                let record = backend
                    .wait_for(&format!("task-{i}"), Some(Duration::from_secs(60)))
                    .await
                    .expect("every waiter is answered");
                assert!(record.is_success());
                Instant::now()
            })
        })
        .collect();
    subject.await_waiters(n).await;
    // The producer is a task like the waiters, as a request handler or a worker would be:
    // `block_on`'s own future would get the scheduler's attention first on every wake.
    let backend = Arc::clone(&subject.backend);
    let producer = tokio::spawn(async move {
        let mut stored_at = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("task-{i}");
            stored_at.push(Instant::now());
            let success =
                TaskResult::new(&id, TaskStatus::Success).with_result(json!({ "sum": i }));
            backend.store(&id, success).await.expect("store");
        }
        stored_at
    });
    let stored_at = producer.await.expect("the producer panicked");
    let mut latencies = Vec::with_capacity(n);
    let mut last = stored_at[0];
    for (waiter, stored) in waiters.into_iter().zip(&stored_at) {
        let returned = waiter.await.expect("a waiter panicked");
        last = last.max(returned);
        latencies.push(returned.saturating_duration_since(*stored));
    }
    latencies.sort_unstable();
    WakeRound {
        all_woken: last - stored_at[0],
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What P measured: medians of one page at offset 0, at offset 10,000, and three quarters
/// deep into the SUCCESS records by offset and by cursor.
pub struct PageTimes {
    pub first: Duration,
    pub at_10k: Duration,
    pub deep_by_offset: Duration,
    pub deep_by_cursor: Duration,
}

/// P: loads `n` records over the five statuses with pseudo-random `submitted_at` (64 loaders in
/// flight; not timed), then times one page of 100 SUCCESS records at offset 0, at 10,000, and
/// three quarters through the SUCCESS records, by offset and after a cursor at the same place
/// (found by paging there first, not timed). Returns the median of `repeats` calls of each.
pub async fn pagination(subject: &Subject, n: usize, repeats: usize) -> PageTimes {
    load(subject, n, 64, |i| {
        let status = TaskStatus::ALL[i % 5];
        let base = DateTime::from_timestamp(1_704_067_200, 0).expect("2024-01-01");
        let offset = splitmix64(i as u64) % (365 * 24 * 3600);
        TaskResult::new(format!("task-{i}"), status)
            .with_submitted_at(base + chrono::Duration::seconds(offset as i64))
    })
    .await;
    let page = |offset| {
        let backend = Arc::clone(&subject.backend);
        async move {
            let mut times = Vec::with_capacity(repeats);
            for _ in 0..repeats {
                let start = Instant::now();
                let page = backend
                    .list_by_status(TaskStatus::Success, Some(100), offset)
                    .await
                    .expect("list_by_status");
                times.push(start.elapsed());
                assert_eq!(page.len(), 100);
                assert!(
                    page.windows(2)
                        .all(|w| w[0].submitted_at >= w[1].submitted_at)
                );
            }
            times.sort_unstable();
            times[times.len() / 2]
        }
    };
    let first = page(0).await;
    let at_10k = page(10_000).await;
    let deep = n / 5 * 3 / 4;
    let deep_by_offset = page(deep).await;
    // A cursor at the same place: the pages before it, 10,000 records at a time.
    let backend = &*subject.backend;
    let mut cursor = None;
    for _ in 0..deep / 10_000 {
        let skipped = backend
            .list_page(TaskStatus::Success, 10_000, cursor.as_ref())
            .await
            .expect("list_page");
        cursor = skipped.next;
    }
    if deep % 10_000 > 0 {
        let rest = backend
            .list_page(TaskStatus::Success, deep % 10_000, cursor.as_ref())
            .await
            .expect("list_page");
        cursor = rest.next;
    }
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let page = backend
            .list_page(TaskStatus::Success, 100, cursor.as_ref())
            .await
            .expect("list_page");
        times.push(start.elapsed());
        assert_eq!(page.records.len(), 100);
    }
    times.sort_unstable();
    PageTimes {
        first,
        at_10k,
        deep_by_offset,
        deep_by_cursor: times[times.len() / 2],
    }
}

/// Stores `n` records made by `record`, with `in_flight` loaders.
pub async fn load(subject: &Subject, n: usize, in_flight: usize, record: fn(usize) -> TaskResult) {
    let handles: Vec<_> = (0..in_flight)
        .map(|loader| {
            let backend = Arc::clone(&subject.backend);
            tokio::spawn(async move {
                for i in (loader..n).step_by(in_flight) {
                    let record = record(i);
                    let id = record.task_id.clone();
                    backend.store(&id, record).await.expect("store");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a loader panicked");
    }
}

/// A small, good pseudo-random mix: the same sequence on every run, no dependency.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The floor under any cross-thread call, for reading the L rows: one request over a tokio
/// mpsc channel to a plain thread that answers on a oneshot, one caller at a time. No actix,
/// no records. Returns the median round trip.
pub fn bare_round_trip(samples: usize) -> Duration {
    type Request = tokio::sync::oneshot::Sender<()>;
    let (requests, mut inbox) = tokio::sync::mpsc::unbounded_channel::<Request>();
    let server = std::thread::spawn(move || {
        while let Some(reply) = inbox.blocking_recv() {
            let _ = reply.send(());
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut times = runtime.block_on(async {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let start = Instant::now();
            requests.send(reply).expect("the server is running");
            answer.await.expect("the server answers");
            times.push(start.elapsed());
        }
        times
    });
    drop(requests);
    let _ = server.join();
    times.sort_unstable();
    times[times.len() / 2]
}
