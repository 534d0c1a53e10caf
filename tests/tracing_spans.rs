//! Tracing: every backend operation runs in a `resulthub.op` span whose parent is the caller's
//! span, and the hub applies an operation inside that span, on its own thread too: the events
//! it emits for the operation are the span's children.

#[cfg(feature = "redis")]
#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resulthub::{HubConfig, HubHandle, InMemoryBackend, ResultBackend, TaskStatus};
use support::{rec, within};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Clone, Debug)]
struct SeenSpan {
    name: &'static str,
    target: String,
    fields: HashMap<String, String>,
    parent: Option<u64>,
}

#[derive(Clone, Debug)]
struct SeenEvent {
    message: String,
    fields: HashMap<String, String>,
    parent: Option<u64>,
    thread: std::thread::ThreadId,
}

/// What a test's subscriber saw.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<HashMap<u64, SeenSpan>>>,
    events: Arc<Mutex<Vec<SeenEvent>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.id().into_u64());
        let seen = SeenSpan {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            fields,
            parent,
        };
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let seen = SeenEvent {
            message: fields.remove("message").unwrap_or_default(),
            fields,
            parent: ctx.event_span(event).map(|span| span.id().into_u64()),
            thread: std::thread::current().id(),
        };
        self.events.lock().unwrap().push(seen);
    }
}

impl Capture {
    /// A subscriber for this thread only (tests run in parallel), and what it sees.
    fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    fn span(&self, id: u64) -> SeenSpan {
        self.spans.lock().unwrap()[&id].clone()
    }

    /// The one event named `message` about `task_id`.
    fn event(&self, message: &str, task_id: &str) -> SeenEvent {
        let events = self.events.lock().unwrap();
        let found: Vec<&SeenEvent> = events
            .iter()
            .filter(|event| {
                event.message == message
                    && event.fields.get("task_id").map(String::as_str) == Some(task_id)
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one {message} event for {task_id}: {events:#?}"
        );
        found[0].clone()
    }

    /// The one operation span of `op` on `task_id`, with its id.
    fn op_span(&self, op: &str, task_id: &str) -> (u64, SeenSpan) {
        let spans = self.spans.lock().unwrap();
        let found: Vec<(u64, SeenSpan)> = spans
            .iter()
            .filter(|(_, span)| {
                span.name == "resulthub.op"
                    && span.fields.get("op").map(String::as_str) == Some(op)
                    && span.fields.get("task_id").map(String::as_str) == Some(task_id)
            })
            .map(|(id, span)| (*id, span.clone()))
            .collect();
        assert_eq!(found.len(), 1, "one {op} span for {task_id}: {spans:#?}");
        found[0].clone()
    }

    /// The id of the caller's span, named `request`.
    fn request(&self) -> u64 {
        let spans = self.spans.lock().unwrap();
        let found: Vec<u64> = spans
            .iter()
            .filter(|(_, span)| span.name == "request")
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(found.len(), 1);
        found[0]
    }
}

/// A store, a get and a wait of `t1` in the caller's `request` span, then a call that the
/// hub answers after them all (so that a pipelined store was applied).
async fn requested(backend: &dyn ResultBackend) {
    let request = tracing::info_span!("request", user = "test");
    async {
        backend
            .store("t1", rec("t1", TaskStatus::Success))
            .await
            .unwrap();
        backend.delete("t2").await.unwrap();
        assert!(backend.get("t1").await.unwrap().is_some());
        backend
            .wait_for("t1", Some(Duration::from_secs(5)))
            .await
            .unwrap();
    }
    .instrument(request)
    .await;
    // Outside the request: answered after everything above was applied.
    backend
        .list_by_status(TaskStatus::Success, None, 0)
        .await
        .unwrap();
}

/// The op span of the store is the caller's span's child, has the scheme's fields, and ended
/// `ok`; `backend` and `target` name the backend.
fn assert_store_span(capture: &Capture, backend: &str) -> u64 {
    let request = capture.request();
    let (store, span) = capture.op_span("store", "t1");
    assert_eq!(
        span.parent,
        Some(request),
        "{backend}: the op span's parent is the caller's"
    );
    assert_eq!(span.target, format!("resulthub::{backend}"));
    assert_eq!(span.fields["backend"], backend);
    assert_eq!(span.fields["status"], "success");
    assert_eq!(span.fields["outcome"], "ok");
    let (_, delete) = capture.op_span("delete", "t2");
    assert_eq!(delete.parent, Some(request));
    assert_eq!(delete.fields["outcome"], "ok");
    store
}

/// The hub's events for the store and the delete are children of their op spans.
fn assert_hub_events_in_op_spans(capture: &Capture, store: u64) {
    let event = capture.event("resulthub.hub.store", "t1");
    assert_eq!(
        event.parent,
        Some(store),
        "the hub's store event belongs to the store's op span"
    );
    let (delete, _) = capture.op_span("delete", "t2");
    assert_eq!(
        capture.event("resulthub.hub.delete", "t2").parent,
        Some(delete)
    );
    assert_eq!(capture.span(store).parent, Some(capture.request()));
}

#[tokio::test(flavor = "current_thread")]
async fn a_hub_on_its_own_thread_applies_the_operation_inside_the_callers_span() {
    for config in [
        HubConfig::default(),
        HubConfig::default().with_pipeline_stores(false),
    ] {
        let (capture, _guard) = Capture::install();
        let hub = HubHandle::spawn(config);
        within("the calls", requested(&hub)).await;
        let store = assert_store_span(&capture, "hub");
        assert_hub_events_in_op_spans(&capture, store);
        let event = capture.event("resulthub.hub.store", "t1");
        assert_ne!(
            event.thread,
            std::thread::current().id(),
            "the event came from the hub's thread"
        );
        hub.shutdown().await;
    }
}

#[actix_rt::test]
async fn a_hub_on_the_callers_arbiter_applies_the_operation_inside_the_callers_span() {
    let (capture, _guard) = Capture::install();
    let hub = HubHandle::start(HubConfig::default());
    within("the calls", requested(&hub)).await;
    let store = assert_store_span(&capture, "hub");
    assert_hub_events_in_op_spans(&capture, store);
    hub.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn memory_operations_run_in_the_callers_span() {
    let (capture, _guard) = Capture::install();
    let backend = InMemoryBackend::new();
    within("the calls", requested(&backend)).await;
    let store = assert_store_span(&capture, "memory");
    assert_eq!(
        capture.event("resulthub.memory.store", "t1").parent,
        Some(store)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_operation_records_its_outcome() {
    let (capture, _guard) = Capture::install();
    let hub = HubHandle::spawn(HubConfig::default());
    let waited = hub.wait_for("never", Some(Duration::from_millis(10))).await;
    assert!(waited.is_err());
    let (_, span) = capture.op_span("wait_for", "never");
    assert_eq!(span.fields["outcome"], "timeout");
    assert_eq!(span.parent, None, "no caller's span, no parent");
    hub.shutdown().await;
}

/// Without a subscriber that wants them, the hub carries no span and still answers.
#[tokio::test(flavor = "current_thread")]
async fn without_a_subscriber_nothing_is_traced_and_all_is_counted() {
    let hub = HubHandle::spawn(HubConfig::default());
    within("the calls", requested(&hub)).await;
    let metrics = hub.operations();
    assert_eq!(
        metrics.total(resulthub::operations::OperationKind::Store),
        1
    );
    hub.shutdown().await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "current_thread")]
async fn redis_operations_run_in_the_callers_span() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = support::connect_redis(&server.url()).await;
    let (capture, _guard) = Capture::install();
    within("the calls", requested(&backend)).await;
    assert_store_span(&capture, "redis");
}

/// A Redis store called from a thread outside Tokio runs on the backend's runtime: its work
/// (here, replacing a record that cannot be decoded, which logs a warning) still belongs to
/// the operation's span, under the caller's, and reaches the caller's subscriber.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_call_from_outside_tokio_carries_its_span_to_the_backends_runtime() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let backend = support::connect_redis(&server.url()).await;
    server.command_text(&["SET", "flowrra:task:odd", "not json"]);
    let caller = std::thread::spawn(move || {
        let (capture, _guard) = Capture::install();
        let request = tracing::info_span!("request", user = "test");
        let _entered = request.enter();
        futures::executor::block_on(backend.store("odd", rec("odd", TaskStatus::Success)))
            .expect("store");
        capture
    });
    let capture = within("the caller's thread", async {
        tokio::task::spawn_blocking(move || caller.join().expect("caller"))
            .await
            .expect("join")
    })
    .await;
    let (store, span) = capture.op_span("store", "odd");
    assert_eq!(span.parent, Some(capture.request()));
    assert_eq!(
        capture
            .event("resulthub.redis.undecodable_record_replaced", "odd")
            .parent,
        Some(store),
        "the work on the backend's runtime belongs to the store's span"
    );
}
