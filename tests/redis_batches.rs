//! `RedisBackend`'s own batches: `store_many` starts every store at once and keeps the order of
//! stores of one id; `get_many` is one `MGET`.

#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use redis_server::RedisServer;
use resulthub::{RedisBackend, ResultBackend, TaskResult, TaskStatus};
use support::within;

/// 100 ids through a whole lifecycle in one batch, their stores interleaved and all under way
/// at once: each id ends as its last record says, merged with its first, with one `done` each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_many_keeps_the_order_of_each_ids_stores() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = within("connect", RedisBackend::connect(&server.url()))
        .await
        .expect("connect");
    let mut completions = redis_server::Completions::subscribe(&server, "flowrra:complete:*");
    let lifecycle = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Retrying,
        TaskStatus::Running,
        TaskStatus::Success,
    ];
    let mut records = Vec::new();
    for (step, status) in lifecycle.into_iter().enumerate() {
        for n in 0..100 {
            let id = format!("b{n}");
            let mut record = TaskResult::new(&id, status).with_retries(step as u32);
            if step == 0 {
                record = record.with_task_name("batch.job");
            }
            records.push(record);
        }
    }
    let outcomes = within("store_many", backend.store_many(records)).await;
    assert_eq!(outcomes.len(), 500);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let ids: Vec<String> = (0..100).map(|n| format!("b{n}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let stored = within("get_many", backend.get_many(&refs))
        .await
        .expect("get_many");
    for (id, record) in ids.iter().zip(stored) {
        let record = record.unwrap_or_else(|| panic!("{id} stored"));
        assert_eq!(record.status, TaskStatus::Success, "{id}");
        assert_eq!(
            record.retries, 4,
            "{id}: the last store of the id is the one kept"
        );
        assert_eq!(record.task_name.as_deref(), Some("batch.job"), "{id}");
    }
    let done = completions.published();
    assert_eq!(done.len(), 100, "one done per id");
}

/// A batch dropped after its first poll (a caller's timeout) still stores every record: each
/// store took its place when the batch started, and one not yet under way finishes on the
/// backend's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_dropped_after_it_started_stores_every_record() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = within("connect", RedisBackend::connect(&server.url()))
        .await
        .expect("connect");
    let records: Vec<TaskResult> = (0..1000)
        .map(|n| TaskResult::new(format!("d{n}"), TaskStatus::Success))
        .collect();
    {
        let mut batch = std::pin::pin!(backend.store_many(records));
        assert!(
            futures::poll!(&mut batch).is_pending(),
            "1,000 stores are not done in one poll"
        );
    }
    support::eventually("every record stored", || {
        server.command_text(&["DBSIZE"]) == "1000"
    })
    .await;
    // And this process's later reads come after them.
    assert!(
        within("get", backend.get("d999"))
            .await
            .expect("get")
            .is_some()
    );
}
