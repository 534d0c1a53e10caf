//! M: resident memory per record and per waiter, each measured in a fresh child process so
//! that one system's freed memory cannot flatter the next.

use std::sync::Arc;

use resulthub::messages::{WaitFor, WaitOutcome};
use resulthub::{TaskResult, TaskStatus};
use serde_json::json;

use crate::systems::{Subject, System};
use crate::workloads::load;

/// The process's resident set, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A small record, the SUCCESS record of workload L.
pub fn small_record(i: usize) -> TaskResult {
    TaskResult::new(format!("task-{i}"), TaskStatus::Success)
        .with_task_name("bench.add")
        .with_args(vec![json!(i), json!(1)])
        .with_result(json!({ "sum": i + 1 }))
        .with_submitted_at(chrono::Utc::now())
}

/// What a child measures: `records`, `callers` (a task blocked in `wait_for` per id) or
/// `hub-waiters` (the hub's registration plus the `PendingWait` a caller holds).
pub fn child(system: System, what: &str, n: usize) -> f64 {
    let what = what.to_owned();
    system.run(move |subject| {
        Box::pin(async move {
            warm_up(&subject).await;
            let before = rss_bytes();
            match what.as_str() {
                "records" => {
                    load(&subject, n, 64, small_record).await;
                    let after = rss_bytes();
                    after.saturating_sub(before) as f64 / n as f64
                }
                "callers" => {
                    let waiters: Vec<_> = (0..n)
                        .map(|i| {
                            let backend = Arc::clone(&subject.backend);
                            tokio::spawn(async move {
                                let _ = backend.wait_for(&format!("task-{i}"), None).await;
                            })
                        })
                        .collect();
                    subject.await_waiters(n).await;
                    let after = rss_bytes();
                    for waiter in &waiters {
                        waiter.abort();
                    }
                    after.saturating_sub(before) as f64 / n as f64
                }
                "hub-waiters" => {
                    let hub = subject.hub.clone().expect("hub-waiters needs a hub");
                    let mut pending = Vec::with_capacity(n);
                    let before = rss_bytes();
                    for i in 0..n {
                        match hub.addr().send(WaitFor::new(format!("task-{i}"))).await {
                            Ok(Ok(WaitOutcome::Waiting(wait))) => pending.push(wait),
                            other => panic!("expected a registered waiter, got {other:?}"),
                        }
                    }
                    let after = rss_bytes();
                    drop(pending);
                    after.saturating_sub(before) as f64 / n as f64
                }
                other => panic!("unknown memory measurement {other:?}"),
            }
        })
    })
}

/// Touches every code path once so that lazy statics and first allocations are not counted.
async fn warm_up(subject: &Subject) {
    load(subject, 1_000, 8, small_record).await;
    let _ = subject.backend.clear().await;
}
