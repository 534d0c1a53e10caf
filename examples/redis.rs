//! A producer and a waiter sharing results through Redis, as two services on two machines
//! would (here two backends in one program, each with its own connections).
//!
//! ```sh
//! redis-server --port 6379 --save '' &      # any Redis 5 or newer
//! cargo run --features redis --example redis -- redis://127.0.0.1:6379/0
//! ```
//!
//! The records land at `flowrra:task:{id}`, where Python flowrra 0.1.8 processes read them too.

use std::time::Duration;

use chrono::Utc;
use resulthub::{BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;

const TASKS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), BackendError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379/0".to_owned());
    // A prefix of its own keeps the example away from a real flowrra deployment's records.
    let connect = || {
        RedisBackend::builder(&url)
            .prefix("resulthub-example")
            .ttl(Duration::from_secs(600))
            .build()
    };
    let waiter_side = connect().await.inspect_err(|e| {
        eprintln!("cannot use Redis at {url}: {e}\nstart one with: redis-server --port 6379");
    })?;
    let worker_side = connect().await?;
    waiter_side.clear().await?;

    // The callers wait first: nothing is stored yet.
    let waits: Vec<_> = (0..TASKS)
        .map(|i| {
            let backend = waiter_side.clone();
            tokio::spawn(async move {
                let id = format!("job-{i}");
                backend.wait_for(&id, Some(Duration::from_secs(30))).await
            })
        })
        .collect();

    // The worker moves each task through its states.
    for i in 0..TASKS {
        let id = format!("job-{i}");
        worker_side
            .store(
                &id,
                TaskResult::new(&id, TaskStatus::Pending)
                    .with_task_name("square")
                    .with_submitted_at(Utc::now())
                    .with_args(vec![json!(i)]),
            )
            .await?;
        worker_side
            .store(
                &id,
                TaskResult::new(&id, TaskStatus::Running).with_started_at(Utc::now()),
            )
            .await?;
        let done = if i % 7 == 6 {
            TaskResult::new(&id, TaskStatus::Failed).with_error("ValueError: unlucky")
        } else {
            TaskResult::new(&id, TaskStatus::Success).with_result(json!(i * i))
        };
        worker_side
            .store(&id, done.with_finished_at(Utc::now()))
            .await?;
    }

    let mut succeeded = 0;
    for wait in waits {
        let record = wait.await.map_err(|e| BackendError::Internal {
            reason: e.to_string(),
        })??;
        // The sticky fields the worker left out of later stores are still there.
        assert_eq!(record.task_name.as_deref(), Some("square"));
        if record.is_success() {
            succeeded += 1;
        }
    }
    let failed = waiter_side
        .list_by_status(TaskStatus::Failed, None, 0)
        .await?;
    println!(
        "{TASKS} tasks finished: {succeeded} succeeded, {} failed",
        failed.len()
    );
    for record in &failed {
        println!(
            "  {} failed: {}",
            record.task_id,
            record.error.as_deref().unwrap_or("?")
        );
    }
    let newest = waiter_side
        .list_by_status(TaskStatus::Success, Some(3), 0)
        .await?;
    let ids: Vec<&str> = newest.iter().map(|r| r.task_id.as_str()).collect();
    println!("newest successes: {ids:?}");
    println!("cleared {} records", waiter_side.clear().await?);
    Ok(())
}
