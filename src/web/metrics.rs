//! `GET /metrics`: Prometheus' text format (OpenMetrics), through the `prometheus-client`
//! crate. What the backend holds is read from its stats at each scrape, and its operation
//! counts and latencies from [`WebBackend::operations`] by a collector; the HTTP requests are
//! counted as they are answered, by a middleware around the routes.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::auth::{TokenIn, authorize_token};
use super::error::ApiError;
use super::{WebBackend, WebState};
use crate::TaskStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    op: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    op: &'static str,
}

/// The backend's own operation metrics, read at each scrape. They are totals kept by the
/// backend (every caller's, not only this scope's), so they are encoded as they are rather
/// than copied into counters of the registry.
#[derive(Debug)]
struct Operations(Arc<dyn WebBackend>);

impl Collector for Operations {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(operations) = self.0.operations() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "operations",
            "Backend operations ended, by kind and outcome",
            None,
            MetricType::Counter,
        )?;
        for row in &operations.counts {
            let labels = OperationLabels {
                op: row.kind.as_str(),
                outcome: row.outcome.as_str(),
            };
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&row.count, None)?;
        }
        let mut family = encoder.encode_descriptor(
            "operation_duration_seconds",
            "Time from a backend operation's call to its answer, by kind",
            None,
            MetricType::Histogram,
        )?;
        for histogram in &operations.latencies {
            let label = OperationLabel {
                op: histogram.kind.as_str(),
            };
            family
                .encode_family(&label)?
                .encode_histogram::<NoLabelSet>(
                    histogram.sum_seconds,
                    histogram.count,
                    &histogram.buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// The metrics of one mounted scope, shared by every worker.
pub(crate) struct Metrics {
    registry: Registry,
    records: Family<StatusLabel, Gauge>,
    waiters: Gauge,
    subscribers: Gauge,
    evictions: Counter,
    expirations: Counter,
    /// The stats' totals at the last scrape: the counters move by the difference.
    seen: Mutex<(u64, u64)>,
    sse_clients: Gauge,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabel, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new(backend: Arc<dyn WebBackend>) -> Self {
        let mut registry = Registry::with_prefix("resulthub");
        registry.register_collector(Box::new(Operations(backend)));
        let records = Family::<StatusLabel, Gauge>::default();
        registry.register("records", "Records held, by status", records.clone());
        let waiters = Gauge::default();
        registry.register("waiters", "wait_for calls waiting now", waiters.clone());
        let subscribers = Gauge::default();
        registry.register(
            "event_subscribers",
            "Live event subscriptions, /events clients included",
            subscribers.clone(),
        );
        let evictions = Counter::default();
        registry.register(
            "evictions",
            "Finished records evicted to make room under max_results",
            evictions.clone(),
        );
        let expirations = Counter::default();
        registry.register(
            "expirations",
            "Records removed by result_ttl or pending_ttl",
            expirations.clone(),
        );
        let sse_clients = Gauge::default();
        registry.register(
            "sse_clients",
            "/events clients connected to this scope now",
            sse_clients.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            // 100 us to ~6.5 s: a read answered from memory up to a long wait's first bytes.
            Histogram::new(exponential_buckets(0.0001, 4.0, 9))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to the first byte of a stream), by route pattern",
            durations.clone(),
        );
        Metrics {
            registry,
            records,
            waiters,
            subscribers,
            evictions,
            expirations,
            seen: Mutex::new((0, 0)),
            sse_clients,
            requests,
            durations,
        }
    }

    /// Counts one answered request.
    pub(crate) fn observe(&self, response: &ServiceResponse, elapsed: Duration) {
        let request = response.request();
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method: request.method().as_str().to_owned(),
                status: response.status().as_u16(),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabel { route })
            .observe(elapsed.as_secs_f64());
    }
}

fn to_gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// `GET /metrics`: the token when one is set, but no `Host` check, like the probes: scrapers
/// reach a server by its address, and the counts tell a page nothing it could use.
pub(super) async fn metrics(
    request: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, ApiError> {
    authorize_token(&request, None, &state.options, TokenIn::Header)?;
    let stats = state.backend.stats().await?;
    let metrics = &state.metrics;
    for status in TaskStatus::ALL {
        metrics
            .records
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .set(to_gauge(stats.by_status.get(status)));
    }
    metrics.waiters.set(to_gauge(stats.waiters));
    metrics.subscribers.set(to_gauge(stats.subscribers));
    {
        let mut seen = metrics.seen.lock().unwrap_or_else(PoisonError::into_inner);
        metrics
            .evictions
            .inc_by(stats.evicted.saturating_sub(seen.0));
        metrics
            .expirations
            .inc_by(stats.expired.saturating_sub(seen.1));
        *seen = (seen.0.max(stats.evicted), seen.1.max(stats.expired));
    }
    metrics
        .sse_clients
        .set(to_gauge(state.event_clients.connected()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry).map_err(|error| {
        ApiError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            error.to_string(),
        )
    })?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        ))
        .body(text))
}
