//! How `list_by_status` orders, filters and pages, and how `list_page` walks a status by
//! cursor.

use super::*;

// ---------------------------------------------------------------------------------------------
// Ordering and paging
// ---------------------------------------------------------------------------------------------

pub async fn list_orders_newest_submitted_first_and_missing_last(s: &Subject) {
    s.fresh().await;
    let p = TaskStatus::Pending;
    s.put(TaskResult::new("a", p).with_submitted_at(at(10)))
        .await;
    s.put(TaskResult::new("b", p)).await;
    s.put(TaskResult::new("c", p).with_submitted_at(at(30)))
        .await;
    s.put(TaskResult::new("d", p)).await;
    s.put(TaskResult::new("e", p).with_submitted_at(at(20)))
        .await;
    // One microsecond apart still orders.
    let fine = at(20) + chrono::Duration::microseconds(1);
    s.put(TaskResult::new("f", p).with_submitted_at(fine)).await;
    assert_eq!(s.list_ids(p, None, 0).await, ["c", "f", "e", "a", "b", "d"]);
}

pub async fn list_breaks_ties_by_first_store_order(s: &Subject) {
    s.fresh().await;
    let st = TaskStatus::Success;
    // Ids chosen so that neither alphabetical nor reverse order matches store order.
    for id in ["tie-m", "tie-z", "tie-a", "tie-q"] {
        s.put(TaskResult::new(id, st).with_submitted_at(at(5)))
            .await;
    }
    for id in ["none-z", "none-a", "none-m"] {
        s.put(TaskResult::new(id, st)).await;
    }
    s.put(TaskResult::new("newer", st).with_submitted_at(at(6)))
        .await;
    let mut expected = vec!["newer"];
    expected.extend(s.tied(&["tie-m", "tie-z", "tie-a", "tie-q"]));
    expected.extend(s.tied(&["none-z", "none-a", "none-m"]));
    assert_eq!(s.list_ids(st, None, 0).await, expected);
}

pub async fn list_restore_keeps_place(s: &Subject) {
    s.fresh().await;
    let st = TaskStatus::Success;
    for id in ["r1", "r2", "r3"] {
        s.put(TaskResult::new(id, st).with_submitted_at(at(7)))
            .await;
    }
    s.put(TaskResult::new("r1", st).with_result(json!("again")))
        .await;
    assert_eq!(s.list_ids(st, None, 0).await, ["r1", "r2", "r3"]);

    // Leaving the status and coming back is still the same id: same place.
    s.put(TaskResult::new("r2", TaskStatus::Running)).await;
    assert_eq!(s.list_ids(st, None, 0).await, ["r1", "r3"]);
    s.put(TaskResult::new("r2", st)).await;
    assert_eq!(s.list_ids(st, None, 0).await, ["r1", "r2", "r3"]);

    // Same for records without submitted_at.
    for id in ["n1", "n2", "n3"] {
        s.put(TaskResult::new(id, TaskStatus::Failed)).await;
    }
    s.put(TaskResult::new("n1", TaskStatus::Failed).with_error("again"))
        .await;
    assert_eq!(
        s.list_ids(TaskStatus::Failed, None, 0).await,
        ["n1", "n2", "n3"]
    );

    // An explicit new submitted_at does move it, by time.
    s.put(TaskResult::new("r3", st).with_submitted_at(at(8)))
        .await;
    assert_eq!(s.list_ids(st, None, 0).await, ["r3", "r1", "r2"]);
}

pub async fn list_delete_or_clear_then_store_counts_as_new(s: &Subject) {
    s.fresh().await;
    let st = TaskStatus::Pending;
    for id in ["n1", "n2", "n3"] {
        s.put(TaskResult::new(id, st).with_submitted_at(at(3)))
            .await;
    }
    assert!(s.delete("n1").await);
    s.put(TaskResult::new("n1", st).with_submitted_at(at(3)))
        .await;
    assert_eq!(s.list_ids(st, None, 0).await, s.tied(&["n2", "n3", "n1"]));

    s.clear().await;
    s.put(TaskResult::new("c1", st)).await;
    s.put(TaskResult::new("c2", st)).await;
    s.clear().await;
    s.put(TaskResult::new("c2", st)).await;
    s.put(TaskResult::new("c1", st)).await;
    assert_eq!(s.list_ids(st, None, 0).await, s.tied(&["c2", "c1"]));
}

pub async fn list_orders_by_sticky_submitted_at(s: &Subject) {
    s.fresh().await;
    // flowrra's workers write the SUCCESS record without submitted_at; it must still sort.
    s.put(TaskResult::new("a", TaskStatus::Pending).with_submitted_at(at(10)))
        .await;
    s.put(TaskResult::new("b", TaskStatus::Pending).with_submitted_at(at(20)))
        .await;
    s.put(TaskResult::new("a", TaskStatus::Success)).await;
    s.put(TaskResult::new("c", TaskStatus::Success).with_submitted_at(at(15)))
        .await;
    s.put(TaskResult::new("b", TaskStatus::Success)).await;
    s.put(TaskResult::new("d", TaskStatus::Success)).await;
    let listed = s.list_by_status(TaskStatus::Success, None, 0).await;
    let ids: Vec<&str> = listed.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["b", "c", "a", "d"]);
    assert_eq!(listed[0].submitted_at, Some(at(20)));
    assert_eq!(listed[2].submitted_at, Some(at(10)));
}

pub async fn list_filters_by_status(s: &Subject) {
    s.fresh().await;
    s.assert_all_lists_empty("empty backend").await;
    for status in TaskStatus::ALL {
        let id = format!("only-{status}");
        s.put(TaskResult::new(id, status)).await;
    }
    for status in TaskStatus::ALL {
        assert_eq!(
            s.list_ids(status, None, 0).await,
            [format!("only-{status}")]
        );
    }
    s.put(TaskResult::new("only-pending", TaskStatus::Running))
        .await;
    assert!(s.list_ids(TaskStatus::Pending, None, 0).await.is_empty());
    // "only-pending" was stored first, so it keeps first place in its new status.
    assert_eq!(
        s.list_ids(TaskStatus::Running, None, 0).await,
        ["only-pending", "only-running"]
    );
}

pub async fn list_offset_and_limit_edges(s: &Subject) {
    s.fresh().await;
    let st = TaskStatus::Success;
    let ids = ["s0", "s1", "s2", "s3", "s4"];
    for (i, id) in ids.iter().enumerate() {
        let secs = 50 - 10 * i64::try_from(i).unwrap();
        s.put(TaskResult::new(*id, st).with_submitted_at(at(secs)))
            .await;
    }
    s.put(TaskResult::new("elsewhere", TaskStatus::Failed))
        .await;

    let cases: &[(Option<usize>, usize, &[&str])] = &[
        (None, 0, &ids),
        (Some(usize::MAX), 0, &ids),
        (Some(5), 0, &ids),
        (Some(6), 0, &ids),
        (Some(0), 0, &[]),
        (Some(0), 2, &[]),
        (Some(2), 0, &["s0", "s1"]),
        (Some(2), 2, &["s2", "s3"]),
        (Some(2), 4, &["s4"]),
        (None, 3, &["s3", "s4"]),
        (Some(1), 4, &["s4"]),
        (None, 5, &[]),
        (Some(3), 5, &[]),
        (None, 100, &[]),
        (None, usize::MAX, &[]),
        (Some(usize::MAX), usize::MAX, &[]),
    ];
    for &(limit, offset, expected) in cases {
        assert_eq!(
            s.list_ids(st, limit, offset).await,
            expected,
            "limit {limit:?}, offset {offset}"
        );
    }
    assert!(s.list_ids(TaskStatus::Running, Some(3), 0).await.is_empty());
}

pub async fn list_returns_records_equal_to_get(s: &Subject) {
    s.fresh().await;
    s.put(full_record("x", TaskStatus::Pending)).await;
    s.put(TaskResult::new("x", TaskStatus::Failed).with_error("bad"))
        .await;
    s.put(full_record("y", TaskStatus::Failed)).await;
    for record in s.list_by_status(TaskStatus::Failed, None, 0).await {
        assert_eq!(Some(record.clone()), s.get(&record.task_id).await);
    }
}

// ---------------------------------------------------------------------------------------------
// Paging by cursor
// ---------------------------------------------------------------------------------------------

/// Every page of `status`, `limit` at a time, each cursor passed through its text form.
async fn all_pages(s: &Subject, status: TaskStatus, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = within(
            "list_page",
            s.backend.list_page(status, limit, after.as_ref()),
        )
        .await
        .expect("list_page");
        assert!(page.records.len() <= limit);
        assert!(page.records.iter().all(|record| record.status == status));
        pages.push(page.records.into_iter().map(|r| r.task_id).collect());
        match page.next {
            Some(next) => after = Some(next.to_string().parse().expect("a cursor's text")),
            None => return pages,
        }
        assert!(pages.len() <= 100, "list_page never ended");
    }
}

pub async fn list_page_walks_every_record_once_in_order(s: &Subject) {
    s.fresh().await;
    let times = [Some(30), None, Some(10), Some(30), None, Some(20), Some(40)];
    for (i, time) in times.iter().enumerate() {
        let mut record = TaskResult::new(format!("lp-{i}"), TaskStatus::Success);
        if let Some(secs) = time {
            record = record.with_submitted_at(at(1_700_000_000 + secs));
        }
        s.put(record).await;
    }
    s.put(TaskResult::new("lp-running", TaskStatus::Running))
        .await;
    let listed = s.list_ids(TaskStatus::Success, None, 0).await;
    assert_eq!(listed.len(), 7);
    for limit in [1, 2, 3, 7, 100] {
        let pages = all_pages(s, TaskStatus::Success, limit).await;
        assert_eq!(
            pages.concat(),
            listed,
            "limit {limit}: every record once, in order"
        );
        assert_eq!(pages.len(), 7_usize.div_ceil(limit).max(1), "limit {limit}");
    }
    assert_eq!(
        all_pages(s, TaskStatus::Failed, 5).await,
        vec![Vec::<String>::new()]
    );
    assert_invalid(
        "a page of no records",
        within(
            "list_page",
            s.backend.list_page(TaskStatus::Success, 0, None),
        )
        .await,
    );
    let foreign: Cursor = "not-a-cursor".parse().expect("any text parses");
    assert_invalid(
        "a cursor no backend made",
        within(
            "list_page",
            s.backend.list_page(TaskStatus::Success, 2, Some(&foreign)),
        )
        .await,
    );
}

/// A page by position starts right after the last record of the page before: records added
/// before that position, or removed from the pages already read, shift nothing.
pub async fn list_page_by_position_is_stable_while_records_change(s: &Subject) {
    if !s.pages_by_position {
        return;
    }
    s.fresh().await;
    for i in 0..6 {
        let record = TaskResult::new(format!("ls-{i}"), TaskStatus::Success)
            .with_submitted_at(at(1_700_000_100 - i));
        s.put(record).await;
    }
    let first = within(
        "list_page",
        s.backend.list_page(TaskStatus::Success, 3, None),
    )
    .await
    .expect("first page");
    let ids: Vec<&str> = first.records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["ls-0", "ls-1", "ls-2"]);
    // Newer than every record, and the page's own records gone: an offset would now skip.
    s.put(TaskResult::new("ls-new", TaskStatus::Success).with_submitted_at(at(1_800_000_000)))
        .await;
    assert!(s.delete("ls-0").await && s.delete("ls-2").await);
    let second = within(
        "list_page",
        s.backend
            .list_page(TaskStatus::Success, 3, first.next.as_ref()),
    )
    .await
    .expect("second page");
    let ids: Vec<&str> = second.records.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["ls-3", "ls-4", "ls-5"]);
    assert_eq!(second.next, None);
}
