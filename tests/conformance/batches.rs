//! The batch calls: `get_many`, `store_many`, `wait_for_all` and `wait_for_any`.

use super::*;

// ---------------------------------------------------------------------------------------------
// Batches and waiting on many
// ---------------------------------------------------------------------------------------------

pub async fn get_many_returns_one_entry_per_id_in_order(s: &Subject) {
    s.fresh().await;
    s.put(full_record("gm-a", TaskStatus::Success)).await;
    s.put(TaskResult::new("gm-b", TaskStatus::Running)).await;
    let records = within(
        "get_many",
        s.backend.get_many(&["gm-b", "gm-missing", "gm-a", "gm-b"]),
    )
    .await
    .expect("get_many");
    let ids: Vec<Option<&str>> = records
        .iter()
        .map(|record| record.as_ref().map(|r| r.task_id.as_str()))
        .collect();
    assert_eq!(ids, [Some("gm-b"), None, Some("gm-a"), Some("gm-b")]);
    assert_eq!(records[2], s.get("gm-a").await, "equal to get");
    assert_invalid(
        "get_many of no ids",
        within("get_many", s.backend.get_many(&[])).await,
    );
    let long = "x".repeat(MAX_ID_LEN + 1);
    assert_invalid(
        "get_many with a long id",
        within("get_many", s.backend.get_many(&["gm-a", &long])).await,
    );
}

pub async fn store_many_stores_in_order_and_a_bad_record_fails_alone(s: &Subject) {
    s.fresh().await;
    let outcomes = within(
        "store_many",
        s.backend.store_many(vec![
            full_record("sm-a", TaskStatus::Pending),
            TaskResult::new("", TaskStatus::Pending),
            TaskResult::new("sm-a", TaskStatus::Running),
            TaskResult::new("sm-b", TaskStatus::Success),
        ]),
    )
    .await;
    assert_eq!(outcomes.len(), 4);
    assert!(
        outcomes[0].is_ok() && outcomes[2].is_ok() && outcomes[3].is_ok(),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Err(BackendError::InvalidInput { .. })),
        "{outcomes:?}"
    );
    // In order: the later store of sm-a wins, and keeps the task fields of the first.
    let a = s.get("sm-a").await.expect("stored");
    assert_eq!(a.status, TaskStatus::Running);
    assert_eq!(a.task_name.as_deref(), Some("tasks.add"));
    assert!(s.get("sm-b").await.expect("stored").is_success());
    assert_eq!(
        s.list_ids(TaskStatus::Pending, None, 0).await,
        Vec::<String>::new()
    );
    assert!(
        within("store_many of nothing", s.backend.store_many(Vec::new()))
            .await
            .is_empty()
    );
}

pub async fn wait_for_all_returns_every_record_in_order(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("wa-c", TaskStatus::Success)).await;
    let backend = Arc::clone(&s.backend);
    let all = tokio::spawn(async move {
        backend
            .wait_for_all(&["wa-a", "wa-b", "wa-c"], Some(Duration::from_secs(30)))
            .await
    });
    s.await_waiters(2).await;
    s.put(TaskResult::new("wa-b", TaskStatus::Success)).await;
    s.put(TaskResult::new("wa-a", TaskStatus::Running)).await;
    s.put(TaskResult::new("wa-a", TaskStatus::Failed).with_error("boom"))
        .await;
    let records = join("wait_for_all", all).await.expect("all finished");
    let ids: Vec<&str> = records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["wa-a", "wa-b", "wa-c"]);
    assert_eq!(records[0].status, TaskStatus::Failed);
    s.await_waiters(0).await;
    assert_invalid(
        "wait_for_all of no ids",
        within("wait_for_all", s.backend.wait_for_all(&[], None)).await,
    );
    assert_invalid(
        "wait_for_all with an empty id",
        within("wait_for_all", s.backend.wait_for_all(&["wa-a", ""], None)).await,
    );
    s.await_waiters(0).await;
}

/// 10,000 ids, one of them finished: the batch times out naming the open ones (the first
/// ten, and how many more), and every wait it made is gone.
pub async fn wait_for_all_times_out_naming_the_open_ids_and_leaves_nothing(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("wt-done", TaskStatus::Success)).await;
    let ids: Vec<String> = (0..10_000).map(|i| format!("wt-{i}")).collect();
    let mut batch: Vec<&str> = vec!["wt-done"];
    batch.extend(ids.iter().map(String::as_str));
    // Long enough for a backend to look at every id once (Redis reads each key), in a debug
    // build on a busy machine.
    let limit = Duration::from_secs(3);
    let outcome = within_for(
        LONG_TIMEOUT,
        "wait_for_all over 10,000 ids",
        s.backend.wait_for_all(&batch, Some(limit)),
    )
    .await;
    match outcome {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!(timeout, limit);
            assert!(task_id.starts_with("wt-0, wt-1,"), "{task_id}");
            assert!(!task_id.contains("wt-done"), "{task_id}");
            assert!(task_id.ends_with("and 9990 more"), "{task_id}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    s.await_waiters(0).await;
}

pub async fn dropped_wait_for_all_leaves_nothing_behind(s: &Subject) {
    s.fresh().await;
    let backend = Arc::clone(&s.backend);
    let all = tokio::spawn(async move {
        let ids: Vec<String> = (0..10_000).map(|i| format!("wd-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        backend.wait_for_all(&ids, None).await
    });
    let deadline = Instant::now() + LONG_TIMEOUT;
    while s.waiters().await < 10_000 {
        assert!(
            Instant::now() < deadline,
            "the batch never registered its waits"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    all.abort();
    assert!(within("aborted batch", all).await.is_err());
    s.await_waiters(0).await;
    // The ids stay usable.
    let waiter = s.spawn_wait("wd-1", Some(Duration::from_secs(30)));
    s.await_waiters(1).await;
    s.put(TaskResult::new("wd-1", TaskStatus::Success)).await;
    join_ok("a fresh waiter on an id of the dropped batch", waiter).await;
}

pub async fn wait_for_any_returns_the_first_terminal_record(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("wy-b", TaskStatus::Success)).await;
    s.put(TaskResult::new("wy-c", TaskStatus::Failed)).await;
    let first = within(
        "wait_for_any",
        s.backend
            .wait_for_any(&["wy-a", "wy-b", "wy-c"], Some(Duration::ZERO)),
    )
    .await
    .expect("two are terminal already");
    assert_eq!(
        first.task_id, "wy-b",
        "the first terminal one in the order given"
    );
    let untimed = within(
        "wait_for_any",
        s.backend.wait_for_any(&["wy-a", "wy-c", "wy-b"], None),
    )
    .await
    .expect("terminal already");
    assert_eq!(untimed.task_id, "wy-c");
    s.await_waiters(0).await;

    let backend = Arc::clone(&s.backend);
    let any = tokio::spawn(async move {
        backend
            .wait_for_any(&["wy-x", "wy-y", "wy-z"], Some(Duration::from_secs(30)))
            .await
    });
    s.await_waiters(3).await;
    s.put(TaskResult::new("wy-y", TaskStatus::Running)).await;
    s.put(TaskResult::new("wy-z", TaskStatus::Success)).await;
    let won = join("wait_for_any", any).await.expect("one finished");
    assert_eq!(won.task_id, "wy-z");
    // The waits on the others are gone with the batch.
    s.await_waiters(0).await;

    let limit = Duration::from_millis(50);
    match within(
        "wait_for_any",
        s.backend.wait_for_any(&["wy-p", "wy-q"], Some(limit)),
    )
    .await
    {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!((task_id.as_str(), timeout), ("wy-p, wy-q", limit));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_invalid(
        "wait_for_any of no ids",
        within("wait_for_any", s.backend.wait_for_any(&[], None)).await,
    );
    s.await_waiters(0).await;
}

pub async fn batch_waits_with_a_zero_timeout_poll(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("wz-done", TaskStatus::Success)).await;
    s.put(TaskResult::new("wz-open", TaskStatus::Running)).await;
    let polled = within(
        "wait_for_all",
        s.backend
            .wait_for_all(&["wz-done", "wz-open", "wz-never"], Some(Duration::ZERO)),
    )
    .await;
    match polled {
        Err(BackendError::Timeout { task_id, timeout }) => {
            assert_eq!(
                (task_id.as_str(), timeout),
                ("wz-open, wz-never", Duration::ZERO)
            );
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    let done = within(
        "wait_for_all",
        s.backend.wait_for_all(&["wz-done"], Some(Duration::ZERO)),
    )
    .await
    .expect("terminal already");
    assert_eq!(done.len(), 1);
    let any = within(
        "wait_for_any",
        s.backend
            .wait_for_any(&["wz-open", "wz-done"], Some(Duration::ZERO)),
    )
    .await
    .expect("one is terminal");
    assert_eq!(any.task_id, "wz-done");
    s.await_waiters(0).await;
}
