//! Runs a few hundred simulated tasks through a hub from a plain tokio program.
//!
//! Workers move each task PENDING → RUNNING → SUCCESS (or FAILED, for every seventh task),
//! while a waiter per task waits for its result. Then it prints what the waiters received, a
//! page of the newest successes, and the hub's counts.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use chrono::Utc;
use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;

const TASKS: usize = 300;

#[tokio::main]
async fn main() -> Result<(), resulthub::BackendError> {
    // `spawn` runs the hub on its own thread; inside an actix app use `HubHandle::start`.
    let hub = HubHandle::spawn(HubConfig::default());

    // Waiters first: they may wait for ids that nobody has stored yet.
    let waiters: Vec<_> = (0..TASKS)
        .map(|n| {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.wait_for(&task_id(n), Some(Duration::from_secs(10)))
                    .await
            })
        })
        .collect();

    let workers: Vec<_> = (0..TASKS)
        .map(|n| {
            let hub = hub.clone();
            tokio::spawn(async move { run_task(&hub, n).await })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker task panicked")?;
    }

    let (mut succeeded, mut failed) = (0, 0);
    for (n, waiter) in waiters.into_iter().enumerate() {
        let record = waiter.await.expect("waiter task panicked")?;
        if n < 3 {
            println!(
                "waiter {n} received: {}",
                serde_json::to_string(&record).unwrap_or_default()
            );
        }
        match record.status {
            TaskStatus::Success => succeeded += 1,
            _ => failed += 1,
        }
    }
    println!("waiters received {succeeded} successes and {failed} failures");

    println!("\nnewest 5 successes:");
    for record in hub.list_by_status(TaskStatus::Success, Some(5), 0).await? {
        println!(
            "  {} submitted {:?} -> {}",
            record.task_id, record.submitted_at, record.result
        );
    }

    let stats = hub.stats().await?;
    println!(
        "\nstats: {} records ({} success, {} failed), {} waiters left",
        stats.results, stats.by_status.success, stats.by_status.failed, stats.waiters
    );
    hub.shutdown().await;
    Ok(())
}

fn task_id(n: usize) -> String {
    format!("task-{n:04}")
}

/// What a worker of a task queue writes as it runs one task. Only the first record carries the
/// submission time, name and arguments; the hub keeps them on the later ones.
async fn run_task(hub: &HubHandle, n: usize) -> Result<(), resulthub::BackendError> {
    let id = task_id(n);
    let submitted = TaskResult::new(&id, TaskStatus::Pending)
        .with_task_name("square")
        .with_args(vec![json!(n)])
        .with_submitted_at(Utc::now());
    hub.store(&id, submitted).await?;
    let started_at = Utc::now();
    let running = TaskResult::new(&id, TaskStatus::Running).with_started_at(started_at);
    hub.store(&id, running).await?;
    tokio::time::sleep(Duration::from_millis((n % 10) as u64)).await;
    let finished = if n % 7 == 0 {
        TaskResult::new(&id, TaskStatus::Failed).with_error(format!("task {n} is unlucky"))
    } else {
        TaskResult::new(&id, TaskStatus::Success).with_result(json!(n * n))
    };
    let finished = finished
        .with_started_at(started_at)
        .with_finished_at(Utc::now());
    hub.store(&id, finished).await
}
