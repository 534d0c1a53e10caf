//! `GET /events`: the hub's events as Server-Sent Events.
//!
//! The subscription is made before the handler returns the response head, so a client that
//! saw the head misses no change after it. A client that leaves is noticed at the next write
//! (an event or a heartbeat), which drops its subscription.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::WebState;
use super::auth::{TokenIn, authorized_query};
use super::error::ApiError;
use super::query::check_id;
use crate::{EventFilter, EventStream, HubEvent};

/// The shortest heartbeat period used, whatever the options say.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

pub(super) async fn events(
    request: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, ApiError> {
    let query = authorized_query(&request, &state.options, TokenIn::HeaderOrQuery)?;
    let filter = EventFilter {
        status: query.optional_status()?,
        task_id: query.get("task_id").map(str::to_owned),
    };
    if let Some(task_id) = &filter.task_id {
        check_id(&state.hub, task_id).await?;
    }
    let slot = EventClient::admit(&state)?;
    let events = state.hub.subscribe_with(filter).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        // Tells nginx-like proxies not to buffer the stream.
        .insert_header(("x-accel-buffering", HeaderValue::from_static("no")))
        // Tells an app's `Compress` middleware to leave the stream alone: a compressor
        // buffers, and the frames would reach the client late or never.
        .insert_header((
            header::CONTENT_ENCODING,
            HeaderValue::from_static("identity"),
        ))
        .streaming(SseBody::new(events, state.options.heartbeat, slot)))
}

/// `HEAD /events`: the headers a `GET` would answer with, without subscribing.
pub(super) async fn events_head(
    request: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, ApiError> {
    let query = authorized_query(&request, &state.options, TokenIn::HeaderOrQuery)?;
    query.optional_status()?;
    if let Some(task_id) = query.get("task_id") {
        check_id(&state.hub, task_id).await?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .finish())
}

/// The response body: a greeting, then one frame per event, and a comment line whenever a
/// heartbeat period passes without one. Ends when the hub stops.
struct SseBody {
    events: EventStream,
    heartbeat: Interval,
    greeted: bool,
    _client: EventClient,
}

/// A connected `/events` client's place under `max_event_clients`, given back when its
/// response (or a refused request) is dropped.
struct EventClient(Arc<AtomicUsize>);

impl EventClient {
    fn admit(state: &WebState) -> Result<EventClient, ApiError> {
        let max = state.options.max_event_clients;
        state
            .event_clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| EventClient(Arc::clone(&state.event_clients)))
            .map_err(|_| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("too many /events clients (max_event_clients is {max})"),
                )
            })
    }
}

impl Drop for EventClient {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SseBody {
    fn new(events: EventStream, period: Duration, client: EventClient) -> Self {
        let period = period.max(MIN_HEARTBEAT);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        SseBody {
            events,
            heartbeat,
            greeted: false,
            _client: client,
        }
    }
}

impl Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if !this.greeted {
            this.greeted = true;
            // A first chunk right away, so the client's EventSource opens at once; `retry`
            // sets its reconnection delay.
            return Poll::Ready(Some(Ok(Bytes::from_static(
                b"retry: 2000\n: subscribed\n\n",
            ))));
        }
        match this.events.poll_next_unpin(cx) {
            Poll::Ready(Some(event)) => {
                this.heartbeat.reset();
                return Poll::Ready(Some(Ok(frame(&event))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match this.heartbeat.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(b": heartbeat\n\n")))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One event as an SSE frame. JSON escapes newlines, so the data is always one line.
fn frame(event: &HubEvent) -> Bytes {
    let (name, data) = match event {
        HubEvent::Task(event) => ("task", serde_json::to_string(event)),
        HubEvent::Lagged { missed } => (
            "lagged",
            serde_json::to_string(&serde_json::json!({ "missed": missed })),
        ),
    };
    match data {
        Ok(data) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        Err(error) => {
            tracing::error!(name: "web.event_encode", %error);
            Bytes::from_static(b": an event could not be encoded\n\n")
        }
    }
}
