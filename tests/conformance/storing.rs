//! What `store`, `get`, `wait_for`, `delete` and `clear` do with one record: flowrra's own
//! backend tests, the task fields a later store keeps, and the input every backend refuses.

use super::*;

// ---------------------------------------------------------------------------------------------
// flowrra's own backend tests
// ---------------------------------------------------------------------------------------------

pub async fn store_then_get_returns_the_record(s: &Subject) {
    s.fresh().await;
    let record = full_record("task-1", TaskStatus::Success);
    s.put(record.clone()).await;
    assert_eq!(s.get("task-1").await, Some(record));
}

pub async fn get_missing_id_returns_none(s: &Subject) {
    s.fresh().await;
    assert_eq!(s.get("nonexistent").await, None);
    s.put(TaskResult::new("present", TaskStatus::Pending)).await;
    assert_eq!(s.get("nonexistent").await, None);
}

pub async fn store_replaces_the_record(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("task-1", TaskStatus::Pending)).await;
    let done = TaskResult::new("task-1", TaskStatus::Success)
        .with_result(json!("done"))
        .with_retries(2);
    s.put(done.clone()).await;
    assert_eq!(s.get("task-1").await, Some(done));
    assert!(s.list_ids(TaskStatus::Pending, None, 0).await.is_empty());
    assert_eq!(s.list_ids(TaskStatus::Success, None, 0).await, ["task-1"]);
}

pub async fn wait_for_returns_at_once_when_already_terminal(s: &Subject) {
    s.fresh().await;
    let done = full_record("done", TaskStatus::Success);
    let failed = TaskResult::new("failed", TaskStatus::Failed).with_error("boom");
    s.put(done.clone()).await;
    s.put(failed.clone()).await;
    // No store follows: these can only succeed by answering from the stored record.
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        assert_eq!(s.wait("done", timeout).await.expect("terminal"), done);
        assert_eq!(s.wait("failed", timeout).await.expect("terminal"), failed);
    }
    s.await_waiters(0).await;
}

pub async fn wait_for_wakes_on_terminal_store(s: &Subject) {
    s.fresh().await;
    for (id, status) in [("ok", TaskStatus::Success), ("ko", TaskStatus::Failed)] {
        s.put(TaskResult::new(id, TaskStatus::Running)).await;
        let waiter = s.spawn_wait(id, Some(Duration::from_secs(30)));
        s.await_waiters(1).await;
        let record = TaskResult::new(id, status)
            .with_result(json!(id))
            .with_error("if failed");
        s.put(record.clone()).await;
        let got = join_ok("waiter", waiter).await;
        assert_eq!(got, record);
        assert_eq!(Some(got), s.get(id).await);
        s.await_waiters(0).await;
    }
}

pub async fn wait_for_times_out_without_terminal_store(s: &Subject) {
    s.fresh().await;
    let limit = Duration::from_millis(100);
    let started = Instant::now();
    let out = s.wait("nonexistent", Some(limit)).await;
    let waited = started.elapsed();
    assert_timeout("never-stored id", out, "nonexistent", limit);
    // Lower bound only (with slack for timer granularity): it really waited.
    assert!(
        waited >= Duration::from_millis(90),
        "gave up after {waited:?}"
    );

    s.put(TaskResult::new("running", TaskStatus::Running)).await;
    let limit = Duration::from_millis(50);
    assert_timeout(
        "running record",
        s.wait("running", Some(limit)).await,
        "running",
        limit,
    );
    s.await_waiters(0).await;
}

pub async fn wait_for_waits_when_record_went_back_to_non_terminal(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("again", TaskStatus::Success).with_result(json!(1)))
        .await;
    s.put(TaskResult::new("again", TaskStatus::Retrying)).await;
    let limit = Duration::from_millis(30);
    assert_timeout(
        "retrying again",
        s.wait("again", Some(limit)).await,
        "again",
        limit,
    );

    let waiter = s.spawn_wait("again", None);
    s.await_waiters(1).await;
    let second = TaskResult::new("again", TaskStatus::Success).with_result(json!(2));
    s.put(second.clone()).await;
    assert_eq!(join_ok("waiter", waiter).await, second);
}

pub async fn delete_returns_true_for_existing_record(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("task-1", TaskStatus::Success)).await;
    assert!(s.delete("task-1").await);
    assert_eq!(s.get("task-1").await, None);
    assert!(s.list_ids(TaskStatus::Success, None, 0).await.is_empty());
    assert!(!s.delete("task-1").await, "second delete found a record");
    // The terminal record is gone, so there is nothing to answer from.
    let out = s.wait("task-1", Some(Duration::ZERO)).await;
    assert_timeout("deleted record", out, "task-1", Duration::ZERO);
}

pub async fn delete_returns_false_for_missing_record(s: &Subject) {
    s.fresh().await;
    assert!(!s.delete("nonexistent").await);
    s.put(TaskResult::new("other", TaskStatus::Pending)).await;
    assert!(!s.delete("nonexistent").await);
    assert!(
        s.get("other").await.is_some(),
        "delete of another id removed a record"
    );
}

pub async fn clear_returns_number_removed(s: &Subject) {
    s.fresh().await;
    assert_eq!(s.clear().await, 0);
    s.put(TaskResult::new("a", TaskStatus::Pending)).await;
    s.put(TaskResult::new("b", TaskStatus::Success)).await;
    s.put(TaskResult::new("c", TaskStatus::Failed)).await;
    // Re-storing an id must not count twice.
    s.put(TaskResult::new("a", TaskStatus::Running)).await;
    assert_eq!(s.clear().await, 3);
    for id in ["a", "b", "c"] {
        assert_eq!(s.get(id).await, None, "{id} survived clear()");
    }
    s.assert_all_lists_empty("after clear()").await;
    assert_eq!(s.clear().await, 0);
}

pub async fn multiple_waiters_all_receive_the_record(s: &Subject) {
    s.fresh().await;
    let waiters_ = vec![
        s.spawn_wait("shared", None),
        s.spawn_wait("shared", Some(Duration::from_secs(30))),
        s.spawn_wait("shared", Some(Duration::MAX)),
    ];
    s.await_waiters(3).await;
    let record = TaskResult::new("shared", TaskStatus::Success).with_result(json!("shared-result"));
    s.put(record.clone()).await;
    for w in waiters_ {
        assert_eq!(join_ok("waiter", w).await, record);
    }
    s.await_waiters(0).await;
}

// ---------------------------------------------------------------------------------------------
// Sticky task fields
// ---------------------------------------------------------------------------------------------

pub async fn sticky_submitted_at_is_kept(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("t", TaskStatus::Pending).with_submitted_at(at(42)))
        .await;
    s.put(TaskResult::new("t", TaskStatus::Running).with_started_at(at(43)))
        .await;
    let running = s.get("t").await.expect("stored");
    assert_eq!(running.submitted_at, Some(at(42)));
    assert_eq!(running.started_at, Some(at(43)));
    s.put(TaskResult::new("t", TaskStatus::Success)).await;
    assert_eq!(s.get("t").await.expect("stored").submitted_at, Some(at(42)));
}

pub async fn sticky_task_name_is_kept(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("t", TaskStatus::Pending).with_task_name("tasks.add"))
        .await;
    s.put(TaskResult::new("t", TaskStatus::Running)).await;
    assert_eq!(
        s.get("t").await.expect("stored").task_name.as_deref(),
        Some("tasks.add")
    );
    s.put(TaskResult::new("t", TaskStatus::Failed).with_error("e"))
        .await;
    let failed = s.get("t").await.expect("stored");
    assert_eq!(failed.task_name.as_deref(), Some("tasks.add"));
    assert_eq!(failed.error.as_deref(), Some("e"));
}

pub async fn sticky_args_are_kept(s: &Subject) {
    s.fresh().await;
    let args = vec![json!(1), json!("two"), json!([3])];
    s.put(TaskResult::new("t", TaskStatus::Pending).with_args(args.clone()))
        .await;
    s.put(TaskResult::new("t", TaskStatus::Running)).await;
    assert_eq!(s.get("t").await.expect("stored").args, args);
    s.put(TaskResult::new("t", TaskStatus::Success).with_args(Vec::new()))
        .await;
    assert_eq!(s.get("t").await.expect("stored").args, args);
}

pub async fn sticky_kwargs_are_kept(s: &Subject) {
    s.fresh().await;
    // Not alphabetical: the kept map must keep its order too.
    let kw = kwargs(&[("zeta", json!(1)), ("alpha", json!({"x": null}))]);
    s.put(TaskResult::new("t", TaskStatus::Pending).with_kwargs(kw.clone()))
        .await;
    s.put(TaskResult::new("t", TaskStatus::Retrying).with_retries(1))
        .await;
    let kept = s.get("t").await.expect("stored").kwargs;
    assert_eq!(kept, kw);
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["zeta", "alpha"]);
    s.put(TaskResult::new("t", TaskStatus::Success).with_kwargs(Map::new()))
        .await;
    assert_eq!(s.get("t").await.expect("stored").kwargs, kw);
}

pub async fn explicit_new_task_fields_win(s: &Subject) {
    s.fresh().await;
    s.put(full_record("t", TaskStatus::Pending)).await;
    let replacement = TaskResult::new("t", TaskStatus::Running)
        .with_submitted_at(at(99))
        .with_task_name("tasks.mul")
        .with_args(vec![json!(7)])
        .with_kwargs(kwargs(&[("other", json!(true))]));
    s.put(replacement.clone()).await;
    assert_eq!(s.get("t").await, Some(replacement));

    // One field set, the others left unset: only that one changes.
    s.put(TaskResult::new("t", TaskStatus::Success).with_task_name("tasks.div"))
        .await;
    let merged = s.get("t").await.expect("stored");
    assert_eq!(merged.task_name.as_deref(), Some("tasks.div"));
    assert_eq!(merged.submitted_at, Some(at(99)));
    assert_eq!(merged.args, [json!(7)]);
    assert_eq!(merged.kwargs, kwargs(&[("other", json!(true))]));
}

pub async fn attempt_fields_are_replaced(s: &Subject) {
    s.fresh().await;
    s.put(full_record("t", TaskStatus::Failed).with_error("boom"))
        .await;
    s.put(TaskResult::new("t", TaskStatus::Retrying)).await;
    let retrying = s.get("t").await.expect("stored");
    // Only the four task fields are sticky; the attempt's fields follow the new record.
    assert_eq!(retrying.status, TaskStatus::Retrying);
    assert_eq!(retrying.result, Value::Null);
    assert_eq!(retrying.error, None);
    assert_eq!(retrying.started_at, None);
    assert_eq!(retrying.finished_at, None);
    assert_eq!(retrying.retries, 0);
    assert_eq!(retrying.task_name.as_deref(), Some("tasks.add"));
}

pub async fn deleted_or_cleared_record_leaves_no_sticky_fields(s: &Subject) {
    s.fresh().await;
    s.put(full_record("d", TaskStatus::Pending)).await;
    assert!(s.delete("d").await);
    let bare = TaskResult::new("d", TaskStatus::Success);
    s.put(bare.clone()).await;
    assert_eq!(s.get("d").await, Some(bare));

    s.put(full_record("c", TaskStatus::Pending)).await;
    s.clear().await;
    let bare = TaskResult::new("c", TaskStatus::Success);
    s.put(bare.clone()).await;
    assert_eq!(s.get("c").await, Some(bare));
}

// ---------------------------------------------------------------------------------------------
// Invalid input
// ---------------------------------------------------------------------------------------------

pub async fn store_rejects_empty_id_without_change(s: &Subject) {
    s.fresh().await;
    let out = within(
        "store empty",
        s.backend
            .store("", TaskResult::new("", TaskStatus::Success)),
    )
    .await;
    assert!(
        out.as_ref()
            .err()
            .is_some_and(|error| error.exceeded().is_none()),
        "an empty id is not over a limit: {out:?}"
    );
    assert_invalid("store(\"\") with empty record id", out);
    let out = within(
        "store empty",
        s.backend
            .store("", TaskResult::new("x", TaskStatus::Success)),
    )
    .await;
    assert_invalid("store(\"\") with record id \"x\"", out);
    assert_eq!(s.get("x").await, None);
    s.assert_all_lists_empty("after refused stores").await;
    assert_eq!(s.clear().await, 0, "a refused store left a record");
}

pub async fn store_rejects_mismatched_id_without_change(s: &Subject) {
    s.fresh().await;
    let original = full_record("m1", TaskStatus::Pending);
    s.put(original.clone()).await;
    let w1 = s.spawn_wait("m1", Some(Duration::from_secs(30)));
    let w2 = s.spawn_wait("m2", Some(Duration::from_secs(30)));
    s.await_waiters(2).await;

    let bad = TaskResult::new("m2", TaskStatus::Success).with_result(json!("bad"));
    let out = within("mismatched store", s.backend.store("m1", bad)).await;
    assert_invalid("store(\"m1\", record of m2)", out);

    assert_eq!(s.get("m1").await, Some(original));
    assert_eq!(s.get("m2").await, None);
    assert!(s.list_ids(TaskStatus::Success, None, 0).await.is_empty());
    assert_eq!(s.list_ids(TaskStatus::Pending, None, 0).await, ["m1"]);

    // Had the refused store woken them, they would hold the "bad" record.
    let good1 = TaskResult::new("m1", TaskStatus::Success).with_result(json!("good1"));
    let good2 = TaskResult::new("m2", TaskStatus::Failed).with_result(json!("good2"));
    s.put(good1).await;
    s.put(good2.clone()).await;
    assert_eq!(join_ok("m1 waiter", w1).await.result, json!("good1"));
    assert_eq!(join_ok("m2 waiter", w2).await, good2);
}

pub async fn wait_for_rejects_empty_id(s: &Subject) {
    s.fresh().await;
    for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
        assert_invalid(
            &format!("wait_for(\"\", {timeout:?})"),
            s.wait("", timeout).await,
        );
    }
    s.await_waiters(0).await;
}

pub async fn long_id_is_rejected_by_every_id_operation(s: &Subject) {
    s.fresh().await;
    let ascii = "x".repeat(MAX_ID_LEN + 1);
    // The limit is in bytes: 513 two-byte characters are 1026 bytes.
    let wide = "é".repeat(MAX_ID_LEN / 2 + 1);
    for id in [ascii, wide] {
        let n = id.len();
        let record = TaskResult::new(id.clone(), TaskStatus::Success);
        let over = |what: &str, error: Option<BackendError>| {
            assert_over_limit(what, error, Limit::MaxTaskIdLen, MAX_ID_LEN, n);
        };
        over(
            &format!("store of a {n}-byte id"),
            within("store", s.backend.store(&id, record)).await.err(),
        );
        over(
            &format!("get of a {n}-byte id"),
            within("get", s.backend.get(&id)).await.err(),
        );
        over(
            &format!("delete of a {n}-byte id"),
            within("delete", s.backend.delete(&id)).await.err(),
        );
        for timeout in [None, Some(Duration::ZERO), Some(Duration::from_secs(30))] {
            over(
                &format!("wait_for of a {n}-byte id, {timeout:?}"),
                s.wait(&id, timeout).await.err(),
            );
        }
    }
    s.assert_all_lists_empty("after refused long-id stores")
        .await;
    s.await_waiters(0).await;
}

pub async fn id_at_length_limit_is_accepted(s: &Subject) {
    s.fresh().await;
    for id in ["y".repeat(MAX_ID_LEN), "é".repeat(MAX_ID_LEN / 2)] {
        assert_eq!(id.len(), MAX_ID_LEN);
        let record = TaskResult::new(id.clone(), TaskStatus::Success);
        s.put(record.clone()).await;
        assert_eq!(s.get(&id).await, Some(record.clone()));
        assert_eq!(
            s.wait(&id, Some(Duration::ZERO)).await.expect("terminal"),
            record
        );
        assert!(s.delete(&id).await);
    }
}

/// JSON nested past 100 levels could be stored but not read back (serde_json and flowrra stop
/// at 128): every backend refuses it, with the limit for a program to match on.
pub async fn records_nested_too_deep_are_refused_without_change(s: &Subject) {
    s.fresh().await;
    let nested = |levels: usize| (1..levels).fold(json!(1), |inner, _| json!([inner]));
    s.put(TaskResult::new("deep-ok", TaskStatus::Success).with_result(nested(100)))
        .await;
    assert_eq!(s.get("deep-ok").await.expect("stored").result, nested(100));
    let refused = within(
        "store of a result 101 levels deep",
        s.backend.store(
            "deep",
            TaskResult::new("deep", TaskStatus::Success).with_result(nested(101)),
        ),
    )
    .await;
    assert_over_limit("result", refused.err(), Limit::MaxJsonDepth, 100, 101);
    // An argument is a level below the record's `args`.
    let refused = within(
        "store of an argument 100 levels deep",
        s.backend.store(
            "deep",
            TaskResult::new("deep", TaskStatus::Pending).with_args(vec![nested(100)]),
        ),
    )
    .await;
    assert_over_limit("args", refused.err(), Limit::MaxJsonDepth, 100, 101);
    assert_eq!(s.get("deep").await, None, "a refused store changed nothing");
}
