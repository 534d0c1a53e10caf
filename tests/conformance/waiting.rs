//! `wait_for`: who is woken, when, with what; timeouts; waiters that leave; and stores whose
//! futures are dropped or race their reads.

use super::*;

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

pub async fn non_terminal_stores_do_not_wake_waiters(s: &Subject) {
    s.fresh().await;
    let waiter = s.spawn_wait("nt", None);
    s.await_waiters(1).await;
    for status in [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Retrying,
    ] {
        s.put(TaskResult::new("nt", status).with_result(json!(status.as_str())))
            .await;
    }
    assert_eq!(
        s.waiters().await,
        1,
        "a non-terminal store consumed the waiter"
    );
    let done = TaskResult::new("nt", TaskStatus::Success).with_result(json!("final"));
    s.put(done.clone()).await;
    // Had a non-terminal store woken it, it would hold that record instead.
    assert_eq!(join_ok("waiter", waiter).await, done);
}

pub async fn wait_for_waits_for_never_stored_id(s: &Subject) {
    s.fresh().await;
    let waiter = s.spawn_wait("ghost", Some(Duration::from_secs(30)));
    s.await_waiters(1).await;
    let record = TaskResult::new("ghost", TaskStatus::Failed).with_error("vanished");
    s.put(record.clone()).await;
    assert_eq!(join_ok("waiter", waiter).await, record);
}

pub async fn wait_for_accepts_duration_max(s: &Subject) {
    s.fresh().await;
    let done = TaskResult::new("done", TaskStatus::Success);
    s.put(done.clone()).await;
    assert_eq!(
        s.wait("done", Some(Duration::MAX)).await.expect("terminal"),
        done
    );

    let waiter = s.spawn_wait("later", Some(Duration::MAX));
    s.await_waiters(1).await;
    let later = TaskResult::new("later", TaskStatus::Success).with_result(json!(1));
    s.put(later.clone()).await;
    assert_eq!(join_ok("Duration::MAX waiter", waiter).await, later);

    // Near-MAX too: adding it to "now" must saturate, not panic.
    let near = Duration::MAX - Duration::from_secs(1);
    let waiter = s.spawn_wait("near", Some(near));
    s.await_waiters(1).await;
    s.put(TaskResult::new("near", TaskStatus::Failed)).await;
    join_ok("near-MAX waiter", waiter).await;
    s.await_waiters(0).await;
}

pub async fn wait_for_zero_timeout(s: &Subject) {
    s.fresh().await;
    let done = TaskResult::new("done", TaskStatus::Success).with_result(json!(0));
    let failed = TaskResult::new("failed", TaskStatus::Failed);
    s.put(done.clone()).await;
    s.put(failed.clone()).await;
    assert_eq!(
        s.wait("done", Some(Duration::ZERO))
            .await
            .expect("terminal"),
        done
    );
    assert_eq!(
        s.wait("failed", Some(Duration::ZERO))
            .await
            .expect("terminal"),
        failed
    );

    s.put(TaskResult::new("running", TaskStatus::Running)).await;
    let out = s.wait("running", Some(Duration::ZERO)).await;
    assert_timeout("zero timeout, running", out, "running", Duration::ZERO);
    let out = s.wait("missing", Some(Duration::ZERO)).await;
    assert_timeout("zero timeout, missing", out, "missing", Duration::ZERO);
    s.await_waiters(0).await;
}

pub async fn thousand_waiters_on_one_id_all_receive_the_record(s: &Subject) {
    s.fresh().await;
    s.put(full_record("crowd", TaskStatus::Pending)).await;
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            let timeout = if i % 2 == 0 {
                None
            } else {
                Some(Duration::from_secs(30))
            };
            s.spawn_wait("crowd", timeout)
        })
        .collect();
    s.await_waiters(1000).await;
    s.put(TaskResult::new("crowd", TaskStatus::Success).with_result(json!("all")))
        .await;
    let expected = s.get("crowd").await.expect("stored");
    let results = within_for(LONG_TIMEOUT, "1,000 waiters", join_all(handles)).await;
    for (i, r) in results.into_iter().enumerate() {
        let got = r
            .expect("waiter task")
            .unwrap_or_else(|e| panic!("waiter {i}: {e:?}"));
        assert_eq!(got, expected, "waiter {i}");
    }
    s.await_waiters(0).await;
}

pub async fn ten_thousand_waiters_racing_their_stores_all_wake(s: &Subject) {
    s.fresh().await;
    const N: usize = 10_000;
    let mut waiting = Vec::with_capacity(N);
    let mut storing = Vec::with_capacity(N);
    for i in 0..N {
        let id = format!("race-{i}");
        let backend = Arc::clone(&s.backend);
        let record = TaskResult::new(id.clone(), TaskStatus::Success).with_result(json!(i));
        let store_task = async move {
            if i % 3 == 0 {
                backend
                    .store(&id, TaskResult::new(id.clone(), TaskStatus::Running))
                    .await?;
            }
            backend.store(&id, record).await
        };
        // Alternate which side is spawned first so both orders race.
        if i % 2 == 0 {
            storing.push(tokio::spawn(store_task));
            waiting.push(s.spawn_wait(format!("race-{i}"), Some(Duration::from_secs(30))));
        } else {
            waiting.push(s.spawn_wait(format!("race-{i}"), Some(Duration::from_secs(30))));
            storing.push(tokio::spawn(store_task));
        }
    }
    let stored = within_for(LONG_TIMEOUT, "10,000 stores", join_all(storing)).await;
    for (i, r) in stored.into_iter().enumerate() {
        r.expect("store task")
            .unwrap_or_else(|e| panic!("store race-{i}: {e:?}"));
    }
    let woken = within_for(LONG_TIMEOUT, "10,000 waiters", join_all(waiting)).await;
    for (i, r) in woken.into_iter().enumerate() {
        let got = r
            .expect("waiter task")
            .unwrap_or_else(|e| panic!("waiter race-{i} lost its wake-up: {e:?}"));
        assert_eq!(got.task_id, format!("race-{i}"));
        assert_eq!(got.status, TaskStatus::Success);
        assert_eq!(got.result, json!(i));
    }
    s.await_waiters(0).await;
}

pub async fn timed_out_waiters_leave_nothing_behind(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("to-0", TaskStatus::Running)).await;
    let handles: Vec<_> = (0..50u64)
        .map(|i| s.spawn_wait(format!("to-{}", i % 5), Some(Duration::from_millis(10 + i))))
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let id = format!("to-{}", i % 5);
        let limit = Duration::from_millis(10 + i as u64);
        assert_timeout("short waiter", join("short waiter", h).await, &id, limit);
    }
    s.await_waiters(0).await;
    // The ids stay usable, and a store finds no stale registration to trip over.
    s.put(TaskResult::new("to-0", TaskStatus::Success)).await;
    assert_eq!(s.waiters().await, 0);
    let waiter = s.spawn_wait("to-1", Some(Duration::from_secs(30)));
    s.await_waiters(1).await;
    s.put(TaskResult::new("to-1", TaskStatus::Success)).await;
    join_ok("fresh waiter on a timed-out id", waiter).await;
    s.await_waiters(0).await;
}

pub async fn dropped_wait_futures_leave_nothing_behind(s: &Subject) {
    s.fresh().await;

    // Polled once, then dropped.
    {
        let mut fut = s.backend.wait_for("drop-a", None);
        assert!(
            futures::poll!(&mut fut).is_pending(),
            "nothing was stored yet"
        );
    }
    // A round trip, so that anything the dropped future sent has been seen.
    s.get("drop-a").await;
    s.await_waiters(0).await;

    // Cut off by an outer timeout.
    let out =
        tokio::time::timeout(Duration::from_millis(5), s.backend.wait_for("drop-b", None)).await;
    assert!(out.is_err(), "wait_for returned without a store: {out:?}");
    s.get("drop-b").await;
    s.await_waiters(0).await;

    // Registered for sure, then aborted.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let timeout = if i % 2 == 0 {
                None
            } else {
                Some(Duration::from_secs(30))
            };
            s.spawn_wait(format!("drop-c-{}", i % 4), timeout)
        })
        .collect();
    s.await_waiters(20).await;
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let out = within("aborted waiter", h).await;
        assert!(
            matches!(&out, Err(e) if e.is_cancelled()),
            "waiter finished though nothing was stored: {out:?}"
        );
    }
    s.await_waiters(0).await;

    // Later stores to those ids find nothing to wake and leave nothing behind.
    for id in [
        "drop-a", "drop-b", "drop-c-0", "drop-c-1", "drop-c-2", "drop-c-3",
    ] {
        s.put(TaskResult::new(id, TaskStatus::Success)).await;
    }
    assert_eq!(s.waiters().await, 0);
}

pub async fn delete_and_clear_do_not_wake_waiters(s: &Subject) {
    s.fresh().await;
    s.put(TaskResult::new("dw", TaskStatus::Pending)).await;
    let waiter = s.spawn_wait("dw", None);
    s.await_waiters(1).await;
    assert!(s.delete("dw").await);
    assert_eq!(s.waiters().await, 1, "delete() consumed the waiter");
    let done = TaskResult::new("dw", TaskStatus::Success).with_result(json!("after delete"));
    s.put(done.clone()).await;
    assert_eq!(join_ok("waiter across delete", waiter).await, done);
    s.await_waiters(0).await;

    s.put(TaskResult::new("cw", TaskStatus::Running)).await;
    s.put(TaskResult::new("other", TaskStatus::Success)).await;
    let waiter = s.spawn_wait("cw", Some(Duration::from_secs(30)));
    s.await_waiters(1).await;
    assert_eq!(s.clear().await, 3);
    assert_eq!(s.waiters().await, 1, "clear() consumed the waiter");
    let done = TaskResult::new("cw", TaskStatus::Failed).with_error("after clear");
    s.put(done.clone()).await;
    assert_eq!(join_ok("waiter across clear", waiter).await, done);
    s.await_waiters(0).await;
}

pub async fn waiters_receive_the_merged_record_equal_to_get(s: &Subject) {
    s.fresh().await;
    s.put(full_record("merge", TaskStatus::Pending)).await;
    let handles = vec![s.spawn_wait("merge", None), s.spawn_wait("merge", None)];
    s.await_waiters(2).await;
    // A worker's SUCCESS record: no task fields.
    s.put(TaskResult::new("merge", TaskStatus::Success).with_result(json!(5)))
        .await;
    let expected = s.get("merge").await.expect("stored");
    assert_eq!(expected.task_name.as_deref(), Some("tasks.add"));
    assert_eq!(expected.submitted_at, Some(at(1_700_000_000)));
    assert_eq!(expected.args, [json!(2), json!(3)]);
    assert_eq!(expected.result, json!(5));
    for h in handles {
        assert_eq!(join_ok("waiter", h).await, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// Cancellation and read-your-writes
// ---------------------------------------------------------------------------------------------

pub async fn dropped_store_future_is_not_lost(s: &Subject) {
    s.fresh().await;
    let waiter = s.spawn_wait("ds-1", Some(Duration::from_secs(30)));
    s.await_waiters(1).await;

    let first = TaskResult::new("ds-1", TaskStatus::Success).with_result(json!(1));
    {
        let mut fut = s.backend.store("ds-1", first.clone());
        // Polled once, then dropped whatever it answered.
        let _ = futures::poll!(&mut fut);
    }
    assert_eq!(s.get("ds-1").await, Some(first.clone()));
    assert_eq!(
        join_ok("waiter woken by a dropped store", waiter).await,
        first
    );

    let second = TaskResult::new("ds-2", TaskStatus::Pending).with_task_name("n");
    let _ = tokio::time::timeout(Duration::ZERO, s.backend.store("ds-2", second.clone())).await;
    assert_eq!(s.get("ds-2").await, Some(second));
}

pub async fn each_caller_reads_its_own_writes(s: &Subject) {
    s.fresh().await;
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let backend = Arc::clone(&s.backend);
            tokio::spawn(async move {
                let id = format!("rw-{i}");
                for status in [
                    TaskStatus::Pending,
                    TaskStatus::Running,
                    TaskStatus::Success,
                ] {
                    let record = TaskResult::new(id.clone(), status).with_result(json!(i));
                    backend.store(&id, record.clone()).await.expect("store");
                    let seen = backend.get(&id).await.expect("get");
                    assert_eq!(seen, Some(record), "{id} did not read its own write");
                }
            })
        })
        .collect();
    for r in within_for(LONG_TIMEOUT, "200 writers", join_all(handles)).await {
        r.expect("writer task");
    }
    assert_eq!(
        s.list_by_status(TaskStatus::Success, None, 0).await.len(),
        200
    );
}
