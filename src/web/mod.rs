//! An actix-web scope over a [`HubHandle`](crate::HubHandle), a `RedisBackend` (feature
//! `redis`) or any [`WebBackend`]: REST routes, live Server-Sent Events and a dashboard page
//! (cargo feature `web`). Over Redis the routes answer the same JSON, with the differences
//! [`WebBackend`] lists (stats from a cached walk, paging by offset, events from what the
//! process can see).
//!
//! [`configure`] returns a function for actix-web's `App::configure` or
//! `ServiceConfig::configure`, so an application mounts the routes wherever it likes, usually
//! under a scope of their own. Every route is relative to that mount point:
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /` | the dashboard page |
//! | `GET /tasks/{id}` | 200 with the record, 404 when missing |
//! | `GET /tasks/{id}/wait?timeout=SECS` | 200 with the terminal record, 408 on timeout |
//! | `GET /tasks?status=S&limit=N&offset=N` (or `&cursor=C`) | 200 with a page, newest first, the status's total, and the `next` page's cursor |
//! | `GET /stats` | 200 with the backend's counts |
//! | `GET /events` | Server-Sent Events, one `task` event per change |
//! | `POST /tasks/{id}` | 201 with the stored record (only with `allow_writes`) |
//! | `DELETE /tasks/{id}` | 204, or 404 when missing (only with `allow_writes`) |
//! | `GET /healthz`, `GET /readyz` | 200 while the process serves, and while the backend answers |
//! | `GET /metrics` | records, waiters, evictions, HTTP requests and their durations, for Prometheus |
//!
//! Every 4xx answer has a JSON body `{"error": "..."}` naming the problem; bad input is refused
//! before it reaches the backend. Every `GET` route serves `HEAD`; a 405 names the methods served
//! in `Allow`, a 503 says `Retry-After`. A request whose `Host` is not in
//! [`WebOptions::allowed_hosts`] (loopback names by default) is refused with 421, against DNS
//! rebinding: list the names your clients use. The full reference is `docs/http-api.md`.
//!
//! # Examples
//!
//! ```
//! use actix_web::{App, test, web};
//! use resulthub::web::{WebOptions, configure};
//! use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
//!
//! # actix_rt::System::new().block_on(async {
//! let hub = HubHandle::start(HubConfig::default());
//! hub.store("t1", TaskResult::new("t1", TaskStatus::Success)).await.unwrap();
//!
//! let app = test::init_service(
//!     App::new().service(web::scope("/hub").configure(configure(hub, WebOptions::default()))),
//! )
//! .await;
//! let request = test::TestRequest::get().uri("/hub/tasks/t1").to_request();
//! let record: serde_json::Value = test::call_and_read_body_json(&app, request).await;
//! assert_eq!(record["status"], "success");
//! # });
//! ```
//!
//! In a server, build the function once and clone it into the app factory (it is cheap to
//! clone), so that every worker serves the same hub. Also turn off HTTP/1 half-closed
//! connections: by default actix-web keeps handling a request after its client has hung up,
//! so a `GET /tasks/{id}/wait` whose client left would hold its waiter until its timeout (at
//! most `max_wait`). With `h1_allow_half_closed(false)` actix drops the request at the
//! client's EOF, and the waiter with it. (A client that half-closes its socket on purpose
//! after sending a request then gets no answer; browsers and HTTP libraries do not.)
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use resulthub::web::{WebOptions, configure};
//! use resulthub::{HubConfig, HubHandle};
//!
//! #[actix_rt::main]
//! async fn main() -> std::io::Result<()> {
//!     let hub = HubHandle::start(HubConfig::default());
//!     let routes = configure(hub, WebOptions::default().with_allow_writes(true));
//!     HttpServer::new(move || App::new().service(web::scope("/hub").configure(routes.clone())))
//!         .h1_allow_half_closed(false)
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await
//! }
//! ```

mod auth;
mod backend;
mod error;
mod metrics;
mod query;
mod routes;
mod sse;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;

pub use backend::WebBackend;

/// The longest task id the routes accept, in bytes; a hub with a lower `max_task_id_len`
/// lowers it.
pub const MAX_ID_BYTES: usize = 512;

/// The largest `POST /tasks/{id}` body, in bytes; a larger one is answered with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// How the routes behave: paging bounds, the longest wait, whether writes are allowed, and the
/// token every request must bring.
///
/// Start from [`Default`] and set what you need with the chained `with_*` methods (one per
/// field, e.g. [`with_allow_writes`](Self::with_allow_writes)); the fields stay public to read.
/// The struct is `#[non_exhaustive]`, so options can be added without breaking callers:
/// outside this crate it cannot be built as a struct literal.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use resulthub::web::WebOptions;
///
/// let options = WebOptions::default()
///     .with_allow_writes(true)
///     .with_token(Some("s3cret".to_owned()))
///     .with_max_wait(Duration::from_secs(30));
/// assert!(options.allow_writes);
/// assert_eq!(options.max_limit, 500);
/// ```
///
/// # Loading from a file
///
/// With the cargo feature `serde`, `WebOptions` implements `serde::Deserialize`, so it loads
/// with the config library of your choice. Every field is optional (a missing one keeps its
/// default), an unknown one is an error, and durations are written as humantime strings
/// (`"30s"`, `"5m"`, `"1h 30m"`).
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use std::time::Duration;
/// use resulthub::web::WebOptions;
///
/// let options: WebOptions = toml::from_str(
///     r#"
///     allow_writes = true
///     max_wait = "30s"
///     heartbeat = "5s"
///     "#,
/// )
/// .unwrap();
/// assert_eq!(
///     options,
///     WebOptions::default()
///         .with_allow_writes(true)
///         .with_max_wait(Duration::from_secs(30))
///         .with_heartbeat(Duration::from_secs(5))
/// );
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct WebOptions {
    /// The largest `limit` a listing accepts; a larger one is answered with 400.
    ///
    /// Default: 500.
    pub max_limit: usize,
    /// The `limit` of a listing that gives none (capped at `max_limit`).
    ///
    /// Default: 50.
    pub default_limit: usize,
    /// The largest position a listing starts at: its `offset`, or the position behind an
    /// offset `cursor` (a `RedisBackend`'s); past it, 400. A listing at an offset reads every
    /// record of the status before it (over Redis, all held in memory while the page is
    /// made), so this bounds what one request costs. The hub's own cursors are positions in
    /// its order, not offsets, and are not bounded.
    ///
    /// Default: 10,000.
    pub max_offset: usize,
    /// The longest `GET /tasks/{id}/wait`: a larger or missing `timeout` waits this long.
    ///
    /// Default: 60 seconds.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_wait: Duration,
    /// Whether `POST /tasks/{id}` and `DELETE /tasks/{id}` are served; without it they are
    /// answered with 403.
    ///
    /// Default: `false`.
    pub allow_writes: bool,
    /// When set, every route wants `Authorization: Bearer <token>` (the page and `/events`
    /// also take `?token=<token>`, as a browser's `EventSource` cannot send headers), and
    /// answers 401 without it, before any other check. Serve it over TLS, or on a trusted
    /// network only: the token travels in the clear otherwise.
    ///
    /// Default: `None` (no authentication).
    pub token: Option<String>,
    /// How often `/events` sends a comment line when no event comes, so that proxies keep the
    /// connection open and a client that left is noticed (and its subscription dropped) even
    /// when the hub is quiet. Periods under 10 ms are taken as 10 ms.
    ///
    /// Default: 15 seconds.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub heartbeat: Duration,
    /// How many `/events` clients may be connected at once, over all of the server's workers;
    /// one more is answered with 503. Each client costs the hub a wake-up per change.
    ///
    /// Default: 256.
    pub max_event_clients: usize,
    /// How many of those may come from one IP address (the connection's peer: behind a
    /// reverse proxy every client has the proxy's, so raise it there); one more is answered
    /// with 503. One client cannot take every place.
    ///
    /// Default: 16.
    pub max_event_clients_per_ip: usize,
    /// How long one `/events` connection lasts at most; then the stream ends, and the browser
    /// reconnects (after 2 s) with `Last-Event-ID`, missing nothing the hub still holds. Bounds
    /// what a forgotten tab or a stuck proxy holds on to.
    ///
    /// Default: 1 hour.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_event_lifetime: Duration,
    /// The names (and addresses) this server answers to, as the `Host` of a request, without
    /// the port; any other is answered with 421. A browser sends the name of the site it
    /// thinks it talks to, so a hostile page whose own name is rebound to this server's
    /// address (DNS rebinding) is refused. Add every name clients use (`"results.internal"`,
    /// the server's address when it is reached by IP); `"*"` allows any, and then writes need
    /// a [`token`](Self::token). A request without `Host` (no browser sends one) passes.
    /// `/healthz` and `/readyz` answer any host.
    ///
    /// Default: `["localhost", "127.0.0.1", "::1"]`.
    pub allowed_hosts: Vec<String>,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions {
            max_limit: 500,
            default_limit: 50,
            max_offset: 10_000,
            max_wait: Duration::from_secs(60),
            allow_writes: false,
            token: None,
            heartbeat: Duration::from_secs(15),
            max_event_clients: 256,
            max_event_clients_per_ip: 16,
            max_event_lifetime: Duration::from_secs(3600),
            allowed_hosts: ["localhost", "127.0.0.1", "::1"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl WebOptions {
    /// Sets [`max_limit`](Self::max_limit): the largest `limit` a listing accepts.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_max_limit(1000);
    /// assert_eq!(options.max_limit, 1000);
    /// ```
    #[must_use]
    pub fn with_max_limit(mut self, max_limit: usize) -> Self {
        self.max_limit = max_limit;
        self
    }

    /// Sets [`max_offset`](Self::max_offset): the largest position a listing starts at.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_max_offset(100_000);
    /// assert_eq!(options.max_offset, 100_000);
    /// ```
    #[must_use]
    pub fn with_max_offset(mut self, max_offset: usize) -> Self {
        self.max_offset = max_offset;
        self
    }

    /// Sets [`default_limit`](Self::default_limit): the `limit` of a listing that gives none.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_default_limit(20);
    /// assert_eq!(options.default_limit, 20);
    /// ```
    #[must_use]
    pub fn with_default_limit(mut self, default_limit: usize) -> Self {
        self.default_limit = default_limit;
        self
    }

    /// Sets [`max_wait`](Self::max_wait): the longest `GET /tasks/{id}/wait`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_max_wait(Duration::from_secs(30));
    /// assert_eq!(options.max_wait, Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Sets [`allow_writes`](Self::allow_writes): whether `POST /tasks/{id}` and `DELETE
    /// /tasks/{id}` are served.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_allow_writes(true);
    /// assert!(options.allow_writes);
    /// ```
    #[must_use]
    pub fn with_allow_writes(mut self, allow_writes: bool) -> Self {
        self.allow_writes = allow_writes;
        self
    }

    /// Sets [`token`](Self::token): the bearer token every request must bring (`None`: no
    /// authentication).
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_token(Some("s3cret".to_owned()));
    /// assert_eq!(options.token.as_deref(), Some("s3cret"));
    /// ```
    #[must_use]
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Sets [`heartbeat`](Self::heartbeat): how often `/events` sends a comment line when no event
    /// comes.
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_heartbeat(Duration::from_secs(5));
    /// assert_eq!(options.heartbeat, Duration::from_secs(5));
    /// ```
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets [`max_event_clients`](Self::max_event_clients): how many `/events` clients may be
    /// connected at once.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_max_event_clients(1024);
    /// assert_eq!(options.max_event_clients, 1024);
    /// ```
    #[must_use]
    pub fn with_max_event_clients(mut self, max_event_clients: usize) -> Self {
        self.max_event_clients = max_event_clients;
        self
    }

    /// Sets [`max_event_clients_per_ip`](Self::max_event_clients_per_ip): how many `/events`
    /// clients one IP address may have connected at once.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_max_event_clients_per_ip(64);
    /// assert_eq!(options.max_event_clients_per_ip, 64);
    /// ```
    #[must_use]
    pub fn with_max_event_clients_per_ip(mut self, max_event_clients_per_ip: usize) -> Self {
        self.max_event_clients_per_ip = max_event_clients_per_ip;
        self
    }

    /// Sets [`max_event_lifetime`](Self::max_event_lifetime): how long one `/events`
    /// connection lasts at most.
    ///
    /// ```
    /// use std::time::Duration;
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_max_event_lifetime(Duration::from_secs(600));
    /// assert_eq!(options.max_event_lifetime, Duration::from_secs(600));
    /// ```
    #[must_use]
    pub fn with_max_event_lifetime(mut self, max_event_lifetime: Duration) -> Self {
        self.max_event_lifetime = max_event_lifetime;
        self
    }

    /// Sets [`allowed_hosts`](Self::allowed_hosts): the names this server answers to.
    ///
    /// ```
    /// use resulthub::web::WebOptions;
    ///
    /// let options = WebOptions::default().with_allowed_hosts(["results.internal", "10.0.0.7"]);
    /// assert_eq!(options.allowed_hosts, ["results.internal", "10.0.0.7"]);
    /// ```
    #[must_use]
    pub fn with_allowed_hosts<I, S>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_hosts = hosts.into_iter().map(Into::into).collect();
        self
    }

    /// Whether `"*"` lets any host in.
    pub(crate) fn any_host(&self) -> bool {
        self.allowed_hosts.iter().any(|host| host == "*")
    }

    /// Whether a request's `Host` (`name`, `name:port`, `[v6]:port`) names an allowed host.
    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(rest),
            None => match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => host,
            },
        };
        let name = name.trim_end_matches('.');
        self.allowed_hosts.iter().any(|allowed| {
            allowed == "*"
                || allowed
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(name)
        })
    }
}

impl std::fmt::Debug for WebOptions {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebOptions")
            .field("max_limit", &self.max_limit)
            .field("default_limit", &self.default_limit)
            .field("max_offset", &self.max_offset)
            .field("max_wait", &self.max_wait)
            .field("allow_writes", &self.allow_writes)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("heartbeat", &self.heartbeat)
            .field("max_event_clients", &self.max_event_clients)
            .field("max_event_clients_per_ip", &self.max_event_clients_per_ip)
            .field("max_event_lifetime", &self.max_event_lifetime)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// What every route reads: the backend and the options, as the scope's app data.
#[derive(Debug)]
pub(crate) struct WebState {
    pub(crate) backend: Arc<dyn WebBackend>,
    pub(crate) options: WebOptions,
    /// `/events` clients connected now, shared by every worker's copy of the routes.
    pub(crate) event_clients: Arc<sse::EventClients>,
    /// The scope's metrics, shared by every worker's copy of the routes.
    pub(crate) metrics: Arc<metrics::Metrics>,
}

/// The routes over `backend` (a [`HubHandle`](crate::HubHandle), a `RedisBackend` with the
/// `redis` feature, or any [`WebBackend`]), as a
/// function for `App::configure` or `ServiceConfig::configure`.
///
/// The function is cheap to clone: build it once and clone it into `HttpServer::new`'s factory,
/// which runs once per worker. The routes keep their state as app data of their own type, so
/// several backends can be mounted under different scopes of one app.
///
/// # Examples
///
/// Over Redis, the dashboard of a flowrra deployment:
///
/// ```no_run
/// # #[cfg(feature = "redis")]
/// # async fn serve() -> std::io::Result<()> {
/// use actix_web::{App, HttpServer};
/// use resulthub::RedisBackend;
/// use resulthub::web::{WebOptions, configure};
///
/// // Inside a Tokio runtime that keeps running (`#[actix_rt::main]`, for one).
/// let backend = RedisBackend::builder("redis://127.0.0.1:6379/0")
///     .prefix("flowrra")
///     .build()
///     .await
///     .map_err(std::io::Error::other)?;
/// let routes = configure(backend, WebOptions::default());
/// HttpServer::new(move || App::new().configure(routes.clone()))
///     .h1_allow_half_closed(false)
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
pub fn configure<B: WebBackend>(
    backend: B,
    options: WebOptions,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + Sync + 'static {
    let backend: Arc<dyn WebBackend> = Arc::new(backend);
    let event_clients = Arc::new(sse::EventClients::default());
    let metrics = Arc::new(metrics::Metrics::new(Arc::clone(&backend)));
    move |config: &mut web::ServiceConfig| {
        let state = web::Data::new(WebState {
            backend: Arc::clone(&backend),
            options: options.clone(),
            event_clients: Arc::clone(&event_clients),
            metrics: Arc::clone(&metrics),
        });
        routes::register(config, state);
    }
}
