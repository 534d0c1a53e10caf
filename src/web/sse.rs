//! `GET /events`: the hub's events as Server-Sent Events.
//!
//! The subscription is made before the handler returns the response head, so a client that
//! saw the head misses no change after it. A client that leaves is noticed at the next write
//! (an event or a heartbeat), which drops its subscription.
//!
//! Every event frame has an `id:`; a browser that reconnects sends the last one as
//! `Last-Event-ID`, and the subscription resumes after it (`HubHandle::subscribe_after`), with
//! a `lagged` frame first if the hub no longer holds every event since.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
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
use crate::{EventFilter, EventId, EventStream, HubEvent};

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
        check_id(state.backend.as_ref(), task_id).await?;
    }
    let after = last_event_id(&request)?;
    let peer = request.peer_addr().map(|addr| addr.ip());
    let slot = EventClient::admit(&state, peer)?;
    let events = state.backend.subscribe_after(filter, after).await?;
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
        .streaming(SseBody::new(
            events,
            state.options.heartbeat,
            state.options.max_event_lifetime,
            slot,
        )))
}

/// The `Last-Event-ID` a reconnecting browser sends; a malformed one is 400.
fn last_event_id(request: &HttpRequest) -> Result<Option<EventId>, ApiError> {
    let Some(value) = request.headers().get("last-event-id") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Last-Event-ID is not text"))?;
    // An empty id is how a server resets the browser's: no resumption.
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|error| ApiError::bad_request(format!("Last-Event-ID: {error}")))
}

/// `HEAD /events`: the headers a `GET` would answer with, without subscribing.
pub(super) async fn events_head(
    request: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, ApiError> {
    let query = authorized_query(&request, &state.options, TokenIn::HeaderOrQuery)?;
    query.optional_status()?;
    if let Some(task_id) = query.get("task_id") {
        check_id(state.backend.as_ref(), task_id).await?;
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
    /// When the connection has lasted `max_event_lifetime`.
    ends: Pin<Box<tokio::time::Sleep>>,
    ended: bool,
    _client: EventClient,
}

/// The `/events` clients connected now, in all and by IP address, shared by every worker's
/// copy of the routes.
#[derive(Debug, Default)]
pub(crate) struct EventClients(Mutex<Counts>);

#[derive(Debug, Default)]
struct Counts {
    all: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// A connected `/events` client's place under `max_event_clients` (and its address's under
/// `max_event_clients_per_ip`), given back when its response (or a refused request) is
/// dropped.
struct EventClient {
    clients: Arc<EventClients>,
    ip: Option<IpAddr>,
}

impl EventClient {
    fn admit(state: &WebState, ip: Option<IpAddr>) -> Result<EventClient, ApiError> {
        let options = &state.options;
        let mut counts = state.event_clients.lock();
        if counts.all >= options.max_event_clients {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many /events clients (max_event_clients is {})",
                    options.max_event_clients
                ),
            ));
        }
        if let Some(ip) = ip {
            let of_ip = counts.by_ip.entry(ip).or_default();
            if *of_ip >= options.max_event_clients_per_ip {
                // Refused with none connected (a cap of 0): leave no entry behind.
                if *of_ip == 0 {
                    counts.by_ip.remove(&ip);
                }
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "too many /events clients from {ip} (max_event_clients_per_ip is {})",
                        options.max_event_clients_per_ip
                    ),
                ));
            }
            *of_ip += 1;
        }
        counts.all += 1;
        Ok(EventClient {
            clients: Arc::clone(&state.event_clients),
            ip,
        })
    }
}

impl EventClients {
    /// Clients connected now.
    pub(crate) fn connected(&self) -> usize {
        self.lock().all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for EventClient {
    fn drop(&mut self) {
        let mut counts = self.clients.lock();
        counts.all -= 1;
        if let Some(ip) = self.ip {
            if let Some(of_ip) = counts.by_ip.get_mut(&ip) {
                *of_ip -= 1;
                if *of_ip == 0 {
                    counts.by_ip.remove(&ip);
                }
            }
        }
    }
}

impl SseBody {
    fn new(events: EventStream, period: Duration, lifetime: Duration, client: EventClient) -> Self {
        let period = period.max(MIN_HEARTBEAT);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let ends = Instant::now()
            .checked_add(lifetime)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365));
        SseBody {
            events,
            heartbeat,
            greeted: false,
            ends: Box::pin(tokio::time::sleep_until(ends)),
            ended: false,
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
        if this.ended {
            return Poll::Ready(None);
        }
        if this.ends.as_mut().poll(cx).is_ready() {
            // A last word, then the end: the browser reconnects with its Last-Event-ID.
            this.ended = true;
            return Poll::Ready(Some(Ok(Bytes::from_static(
                b": max_event_lifetime reached; reconnect\n\n",
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
        HubEvent::Task(event) => match serde_json::to_string(event) {
            Ok(data) => {
                return Bytes::from(format!("id: {}\nevent: task\ndata: {data}\n\n", event.id));
            }
            Err(error) => ("task", Err(error)),
        },
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
