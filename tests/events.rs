//! `HubHandle::subscribe`: one event per applied change, in the hub's order; every kind of
//! change emits; filters; slow subscribers lose events instead of slowing anyone; streams end
//! with the hub and unsubscribe when dropped. Nothing here measures time: expiry runs on a
//! `ManualClock`, and "the hub is not stalled" is shown by stores completing while a
//! subscriber never reads.

mod support;

use std::time::Duration;

use actix::Actor;
use futures::StreamExt;
use resulthub::messages::Subscribe;
use resulthub::{
    BackendError, Clock, EventFilter, EventKind, EventStream, HubConfig, HubEvent, HubHandle,
    ManualClock, ResultBackend, ResultHub, TaskEvent, TaskResult, TaskStatus,
};
use serde_json::json;
use support::within;

use TaskStatus::{Failed, Pending, Running, Success};

fn record(id: &str, status: TaskStatus) -> TaskResult {
    TaskResult::new(id, status)
}

/// The next item, which must be a task event.
async fn next_task(events: &mut EventStream) -> TaskEvent {
    match within("the next event", events.next()).await {
        Some(HubEvent::Task(event)) => event,
        other => panic!("expected a task event, got {other:?}"),
    }
}

/// The next `n` task events as (kind, id, status).
async fn next_n(events: &mut EventStream, n: usize) -> Vec<(EventKind, String, TaskStatus)> {
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        let event = next_task(events).await;
        seen.push((event.kind, event.task_id, event.status));
    }
    seen
}

fn ev(kind: EventKind, id: &str, status: TaskStatus) -> (EventKind, String, TaskStatus) {
    (kind, id.to_owned(), status)
}

#[tokio::test]
async fn events_follow_the_hubs_order_of_changes() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = within("subscribe", hub.subscribe()).await.unwrap();
    let mut expected = Vec::new();
    for n in 0..200 {
        let id = format!("t{n}");
        for status in [Pending, Running, Success] {
            hub.store(&id, record(&id, status)).await.unwrap();
            expected.push(ev(EventKind::Stored, &id, status));
        }
        if n % 3 == 0 {
            assert!(hub.delete(&id).await.unwrap());
            expected.push(ev(EventKind::Deleted, &id, Success));
        }
    }
    assert_eq!(next_n(&mut events, expected.len()).await, expected);
    hub.shutdown().await;
    assert!(within("end of stream", events.next()).await.is_none());
}

#[tokio::test]
async fn every_subscriber_sees_the_same_order_from_concurrent_writers() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut first = hub.subscribe().await.unwrap();
    let mut second = hub.subscribe().await.unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for n in 0..100 {
                    let id = format!("w{w}-{n}");
                    hub.store(&id, record(&id, Running)).await.unwrap();
                    hub.store(&id, record(&id, Success)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        within("writer", writer).await.unwrap();
    }
    let a = next_n(&mut first, 800).await;
    let b = next_n(&mut second, 800).await;
    assert_eq!(a, b);
    // Each writer's own stores keep their order.
    for w in 0..4 {
        let prefix = format!("w{w}-");
        let mine: Vec<_> = a
            .iter()
            .filter(|(_, id, _)| id.starts_with(&prefix))
            .collect();
        for (n, pair) in mine.chunks(2).enumerate() {
            let id = format!("w{w}-{n}");
            assert_eq!(*pair[0], ev(EventKind::Stored, &id, Running));
            assert_eq!(*pair[1], ev(EventKind::Stored, &id, Success));
        }
    }
}

#[tokio::test]
async fn a_stored_event_carries_the_record_as_get_returns_it() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = hub.subscribe().await.unwrap();
    let first = record("t", Pending)
        .with_task_name("resize")
        .with_args(vec![json!(1)]);
    hub.store("t", first).await.unwrap();
    hub.store("t", record("t", Success).with_result(json!({"ok": true})))
        .await
        .unwrap();
    let _ = next_task(&mut events).await;
    let event = next_task(&mut events).await;
    let stored = event.record.expect("a stored event carries its record");
    // Task fields inherited from the first store, exactly as `get` shows them.
    assert_eq!(Some(stored.clone()), hub.get("t").await.unwrap());
    assert_eq!(stored.task_name.as_deref(), Some("resize"));
    assert_eq!(stored.result, json!({"ok": true}));
}

#[tokio::test]
async fn the_subscription_starts_where_the_hub_handles_it() {
    let hub = HubHandle::spawn(HubConfig::default());
    // Pipelined: may return before the hub applied it, but it is queued before the subscribe.
    hub.store("before", record("before", Success))
        .await
        .unwrap();
    let mut events = hub.subscribe().await.unwrap();
    hub.store("after", record("after", Success)).await.unwrap();
    let event = next_task(&mut events).await;
    assert_eq!(event.task_id, "after");
}

#[tokio::test]
async fn clear_emits_one_cleared_event_per_record_in_first_store_order() {
    let hub = HubHandle::spawn(HubConfig::default());
    for (id, status) in [("c", Running), ("a", Success), ("b", Failed)] {
        hub.store(id, record(id, status)).await.unwrap();
    }
    let mut events = hub.subscribe().await.unwrap();
    assert_eq!(hub.clear().await.unwrap(), 3);
    hub.store("marker", record("marker", Pending))
        .await
        .unwrap();
    let seen = next_n(&mut events, 4).await;
    assert_eq!(
        seen,
        vec![
            ev(EventKind::Cleared, "c", Running),
            ev(EventKind::Cleared, "a", Success),
            ev(EventKind::Cleared, "b", Failed),
            ev(EventKind::Stored, "marker", Pending),
        ]
    );
}

#[tokio::test]
async fn deleting_a_missing_record_emits_nothing() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = hub.subscribe().await.unwrap();
    assert!(!hub.delete("ghost").await.unwrap());
    assert_eq!(hub.clear().await.unwrap(), 0);
    hub.store("marker", record("marker", Pending))
        .await
        .unwrap();
    let event = next_task(&mut events).await;
    assert_eq!(
        (event.kind, event.task_id.as_str()),
        (EventKind::Stored, "marker")
    );
    assert_eq!(event.record.map(|r| r.status), Some(Pending));
}

#[tokio::test]
async fn expiry_emits_expired_at_the_hubs_clock() {
    let clock = ManualClock::new();
    let hub = HubHandle::spawn(
        HubConfig::default()
            .with_result_ttl(Some(Duration::from_secs(60)))
            .with_clock(Clock::from(clock.clone())),
    );
    let mut events = hub.subscribe().await.unwrap();
    hub.store("old", record("old", Success)).await.unwrap();
    let stored = next_task(&mut events).await;
    clock.advance(Duration::from_secs(3600));
    // Any call expires what is due first; `stats` changes nothing else.
    assert_eq!(hub.stats().await.unwrap().expired, 1);
    let expired = next_task(&mut events).await;
    assert_eq!(
        (expired.kind, expired.task_id.as_str(), expired.status),
        (EventKind::Expired, "old", Success)
    );
    assert_eq!(expired.record, None);
    // The event's time moved with the manual clock, not with the wall clock.
    assert!(expired.at - stored.at >= chrono::Duration::seconds(3600));
}

#[tokio::test]
async fn the_ttl_sweep_alone_emits_expired() {
    let clock = ManualClock::new();
    // A TTL of 40 ms makes the sweep run every 10 ms of real time; the records' deadlines
    // follow the manual clock, so nothing expires before the test moves it.
    let hub = HubHandle::spawn(
        HubConfig::default()
            .with_result_ttl(Some(Duration::from_millis(40)))
            .with_clock(Clock::from(clock.clone())),
    );
    let mut events = hub.subscribe().await.unwrap();
    hub.store("swept", record("swept", Success)).await.unwrap();
    assert_eq!(next_task(&mut events).await.kind, EventKind::Stored);
    clock.advance(Duration::from_secs(3600));
    // No call touches the hub from here on: only its sweep timer can expire the record.
    let expired = next_task(&mut events).await;
    assert_eq!(
        (expired.kind, expired.task_id.as_str(), expired.status),
        (EventKind::Expired, "swept", Success)
    );
    assert_eq!(expired.record, None);
    assert_eq!(hub.stats().await.unwrap().expired, 1);
}

#[tokio::test]
async fn eviction_under_max_results_emits_expired() {
    let hub = HubHandle::spawn(HubConfig::default().with_max_results(Some(2)));
    let mut events = hub.subscribe().await.unwrap();
    for id in ["a", "b", "c"] {
        hub.store(id, record(id, Success)).await.unwrap();
    }
    let seen = next_n(&mut events, 4).await;
    assert_eq!(
        seen,
        vec![
            ev(EventKind::Stored, "a", Success),
            ev(EventKind::Stored, "b", Success),
            ev(EventKind::Expired, "a", Success),
            ev(EventKind::Stored, "c", Success),
        ]
    );
    assert_eq!(hub.stats().await.unwrap().evicted, 1);
}

#[tokio::test]
async fn restore_emits_one_stored_event_per_record_in_order() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = hub.subscribe().await.unwrap();
    let records = vec![record("x", Success), record("y", Running)];
    assert_eq!(hub.restore(records).await.unwrap(), 2);
    assert_eq!(
        next_n(&mut events, 2).await,
        vec![
            ev(EventKind::Stored, "x", Success),
            ev(EventKind::Stored, "y", Running)
        ]
    );
}

#[tokio::test]
async fn filters_keep_only_matching_events() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut failed = hub
        .subscribe_with(EventFilter::status(Failed))
        .await
        .unwrap();
    let mut only_b = hub.subscribe_with(EventFilter::task("b")).await.unwrap();
    let mut both = hub
        .subscribe_with(EventFilter {
            status: Some(Running),
            task_id: Some("b".to_owned()),
        })
        .await
        .unwrap();
    for (id, status) in [("a", Running), ("b", Running), ("a", Failed), ("b", Failed)] {
        hub.store(id, record(id, status)).await.unwrap();
    }
    assert!(hub.delete("a").await.unwrap());
    assert_eq!(
        next_n(&mut failed, 3).await,
        vec![
            ev(EventKind::Stored, "a", Failed),
            ev(EventKind::Stored, "b", Failed),
            ev(EventKind::Deleted, "a", Failed),
        ]
    );
    assert_eq!(
        next_n(&mut only_b, 2).await,
        vec![
            ev(EventKind::Stored, "b", Running),
            ev(EventKind::Stored, "b", Failed)
        ]
    );
    hub.shutdown().await;
    assert_eq!(
        next_n(&mut both, 1).await,
        vec![ev(EventKind::Stored, "b", Running)]
    );
    // Nothing else matched: after the buffered events the stream ends.
    assert!(within("end of stream", both.next()).await.is_none());
}

/// The flowrra failure, made impossible: a subscriber that never reads. Many more stores than
/// its buffer holds all complete, and the hub keeps answering; when the subscriber finally
/// reads, it is told how many it lost, then gets the newest ones, in order.
#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_stall_the_hub() {
    const BUFFER: usize = 64;
    const STORES: usize = 20_000;
    let hub = HubHandle::spawn(HubConfig::default().with_event_buffer(BUFFER));
    let mut stalled = hub.subscribe().await.unwrap();
    within("every store, with a subscriber that never reads", async {
        for n in 0..STORES {
            let id = format!("t{n}");
            hub.store(&id, record(&id, Success)).await.unwrap();
        }
    })
    .await;
    let stats = within("stats", hub.stats()).await.unwrap();
    assert_eq!((stats.results, stats.subscribers), (STORES, 1));

    match within("the lag report", stalled.next()).await {
        Some(HubEvent::Lagged { missed }) => assert_eq!(missed, (STORES - BUFFER) as u64),
        other => panic!("expected Lagged, got {other:?}"),
    }
    for n in STORES - BUFFER..STORES {
        assert_eq!(next_task(&mut stalled).await.task_id, format!("t{n}"));
    }
    // Caught up: the next change comes straight through.
    hub.store("later", record("later", Running)).await.unwrap();
    assert_eq!(next_task(&mut stalled).await.task_id, "later");
}

/// A slow subscriber beside a reader that keeps up: the reader gets every event, none lost,
/// while the slow one only falls behind.
#[tokio::test]
async fn a_slow_subscriber_does_not_cost_other_subscribers_anything() {
    const BUFFER: usize = 16;
    const STORES: usize = 2_000;
    let hub = HubHandle::spawn(HubConfig::default().with_event_buffer(BUFFER));
    let mut slow = hub.subscribe().await.unwrap();
    let mut reader = hub.subscribe().await.unwrap();
    for n in 0..STORES {
        let id = format!("t{n}");
        hub.store(&id, record(&id, Running)).await.unwrap();
        // Causality instead of timing: the reader has seen store n before store n+1 is made,
        // so it never falls behind; the slow subscriber falls STORES behind.
        let event = next_task(&mut reader).await;
        assert_eq!(event.task_id, id);
    }
    let mut lost = 0;
    let mut received = Vec::new();
    hub.shutdown().await;
    while let Some(item) = within("the slow subscriber's backlog", slow.next()).await {
        match item {
            HubEvent::Lagged { missed } => lost += missed,
            HubEvent::Task(event) => received.push(event.task_id),
        }
    }
    assert_eq!(lost as usize + received.len(), STORES);
    assert_eq!(received.len(), BUFFER);
    assert_eq!(received.last().map(String::as_str), Some("t1999"));
}

#[tokio::test]
async fn an_event_buffer_of_zero_is_taken_as_one() {
    let hub = HubHandle::spawn(HubConfig::default().with_event_buffer(0));
    let events = hub.subscribe().await.unwrap();
    for id in ["a", "b", "c"] {
        hub.store(id, record(id, Pending)).await.unwrap();
    }
    hub.shutdown().await;
    let items: Vec<HubEvent> = within("drain", events.collect()).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], HubEvent::Lagged { missed: 2 });
    assert!(matches!(&items[1], HubEvent::Task(event) if event.task_id == "c"));
}

#[tokio::test]
async fn dropped_subscribers_are_pruned() {
    let hub = HubHandle::spawn(HubConfig::default());
    let first = hub.subscribe().await.unwrap();
    let second = hub.subscribe_with(EventFilter::task("x")).await.unwrap();
    assert_eq!(hub.stats().await.unwrap().subscribers, 2);
    drop(first);
    assert_eq!(hub.stats().await.unwrap().subscribers, 1);
    drop(second);
    assert_eq!(hub.stats().await.unwrap().subscribers, 0);
    // Emitting with nobody listening is a no-op, not an error.
    hub.store("x", record("x", Success)).await.unwrap();
    assert!(hub.get("x").await.unwrap().is_some());
}

#[tokio::test]
async fn a_stopped_hub_refuses_subscriptions_and_ends_streams() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = hub.subscribe().await.unwrap();
    hub.store("t", record("t", Success)).await.unwrap();
    hub.shutdown().await;
    // What was applied before the shutdown is still delivered, then the stream ends.
    assert_eq!(next_task(&mut events).await.task_id, "t");
    assert!(within("end of stream", events.next()).await.is_none());
    assert!(matches!(
        hub.subscribe().await,
        Err(BackendError::Unavailable { .. })
    ));
}

#[test]
fn event_types_cross_threads() {
    fn assert_send_sync_unpin<T: Send + Sync + Unpin + 'static>() {}
    assert_send_sync_unpin::<EventStream>();
    assert_send_sync_unpin::<HubEvent>();
    assert_send_sync_unpin::<TaskEvent>();
    assert_send_sync_unpin::<EventFilter>();
    assert_send_sync_unpin::<EventKind>();
    assert_send_sync_unpin::<Subscribe>();
    let hub = HubHandle::spawn(HubConfig::default());
    fn require_send<F: std::future::Future + Send>(fut: F) {
        drop(fut);
    }
    require_send(hub.subscribe());
    require_send(hub.subscribe_with(EventFilter::default()));
}

#[test]
fn actix_code_subscribes_with_the_subscribe_message() {
    actix_rt::System::new().block_on(async {
        let addr = ResultHub::new(HubConfig::default()).start();
        let mut events = addr
            .send(Subscribe::default())
            .await
            .unwrap()
            .expect("a running hub subscribes");
        let hub = HubHandle::from_addr(addr);
        hub.store("t", record("t", Success)).await.unwrap();
        let event = next_task(&mut events).await;
        assert_eq!((event.kind, event.status), (EventKind::Stored, Success));
    });
}

#[tokio::test]
async fn an_event_serializes_as_documented_and_reads_back() {
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = hub.subscribe().await.unwrap();
    hub.store("t", record("t", Success).with_result(7))
        .await
        .unwrap();
    hub.delete("t").await.unwrap();
    let stored = next_task(&mut events).await;
    let deleted = next_task(&mut events).await;

    let json = serde_json::to_value(&stored).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["kind", "task_id", "status", "record", "at"]);
    assert_eq!(json["kind"], "stored");
    assert_eq!(json["status"], "success");
    assert_eq!(json["record"]["result"], 7);
    assert_eq!(json["record"]["task_id"], "t");
    let at = json["at"].as_str().unwrap();
    // Naive UTC, like the records' timestamps: no offset, no `Z`.
    assert!(
        at.len() >= 19 && !at.ends_with('Z') && !at.contains('+'),
        "{at}"
    );
    let back: TaskEvent = serde_json::from_value(json).unwrap();
    // Microsecond precision on the wire.
    assert_eq!(back.record, stored.record);
    assert!((back.at - stored.at).abs() < chrono::Duration::microseconds(1));

    let json = serde_json::to_value(&deleted).unwrap();
    assert_eq!(json["kind"], "deleted");
    assert_eq!(json["record"], serde_json::Value::Null);
}

#[tokio::test]
async fn resuming_with_a_previous_hubs_event_id_starts_with_lagged() {
    let previous = HubHandle::spawn(HubConfig::default());
    let mut events = previous
        .subscribe_after(EventFilter::default(), None)
        .await
        .unwrap();
    previous.store("a", record("a", Success)).await.unwrap();
    let seen = next_task(&mut events).await.id;
    drop(events);

    // A new hub (a restart) with no event yet: what happened in between is unknown.
    let hub = HubHandle::spawn(HubConfig::default());
    let mut events = hub
        .subscribe_after(EventFilter::default(), Some(seen))
        .await
        .unwrap();
    hub.store("b", record("b", Success)).await.unwrap();
    match within("the first item", events.next()).await {
        Some(HubEvent::Lagged { missed: 0 }) => {}
        other => panic!("expected lagged 0, got {other:?}"),
    }
    assert_eq!(next_task(&mut events).await.task_id, "b");

    // Its own ids resume without one.
    let mut again = hub
        .subscribe_after(EventFilter::default(), Some(next_task_id(&hub).await))
        .await
        .unwrap();
    hub.store("c", record("c", Success)).await.unwrap();
    assert_eq!(next_task(&mut again).await.task_id, "c");
}

/// The id of a fresh event of `hub`'s.
async fn next_task_id(hub: &HubHandle) -> resulthub::EventId {
    let mut events = hub.subscribe().await.unwrap();
    hub.store("probe", record("probe", Pending)).await.unwrap();
    next_task(&mut events).await.id
}
