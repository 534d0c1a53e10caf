//! Runs a few hundred simulated tasks through a hub from a plain tokio program.
//!
//! Workers move each task PENDING → RUNNING → SUCCESS (or FAILED, for every seventh task),
//! while a caller waits for all of them with one `wait_for_all`. Then it prints what the caller
//! received (results read back as `u64`), a page of the newest successes, and the hub's counts.
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

    // A caller fans out and waits for all of them at once, before any worker has reported:
    // a wait may name ids that nobody has stored yet.
    let ids: Vec<String> = (0..TASKS).map(task_id).collect();
    let joined = tokio::spawn({
        let hub = hub.clone();
        async move {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            hub.wait_for_all(&ids, Some(Duration::from_secs(10))).await
        }
    });

    let workers: Vec<_> = (0..TASKS)
        .map(|n| {
            let hub = hub.clone();
            tokio::spawn(async move { run_task(&hub, n).await })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker task panicked")?;
    }

    // Every record, in the order asked for; results read back as the workers' own type.
    let records = joined.await.expect("waiting task panicked")?;
    for record in &records[..3] {
        println!(
            "received: {}",
            serde_json::to_string(record).unwrap_or_default()
        );
    }
    let mut squares = 0_u64;
    let mut failed = 0;
    for record in &records {
        match record.status {
            TaskStatus::Success => squares += record.result_as::<u64>()?,
            _ => failed += 1,
        }
    }
    println!(
        "received {} successes (their squares sum to {squares}) and {failed} failures",
        records.len() - failed
    );

    println!("\nnewest 5 successes:");
    let page = hub.list_page(TaskStatus::Success, 5, None).await?;
    for record in page.records {
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
        TaskResult::new(&id, TaskStatus::Success).with_result_of(&((n * n) as u64))?
    };
    let finished = finished
        .with_started_at(started_at)
        .with_finished_at(Utc::now());
    hub.store(&id, finished).await
}
