//! `resulthub serve`: the crate's HTTP API and dashboard over an in-process hub, for services
//! in any language, with its records kept in a snapshot file across restarts; or, with
//! `--redis`, over the records a flowrra deployment (or any `RedisBackend`) keeps in Redis.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use resulthub::web::{WebBackend, WebOptions, configure};
use resulthub::{HubConfig, HubHandle, RedisBackend};

use crate::snapshot;

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// A file whose content (one line) is the bearer token every request must bring. A token
    /// is never taken on the command line, where `ps` would show it.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Serve `POST` and `DELETE /tasks/{id}`, for workers that store results over HTTP.
    #[arg(long)]
    allow_writes: bool,
    /// A name clients use to reach the server, as their `Host` (repeat for several). Loopback
    /// names and the bound address are always allowed; `*` allows any (writes then need a
    /// token). Requests naming another host are refused, against DNS rebinding.
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// A JSON-lines file: its records are loaded at start, and every record is written to it
    /// at a graceful stop (SIGINT, SIGTERM) and every `--snapshot-every`, atomically (a crash
    /// loses at most one interval, never the file).
    #[arg(long, value_name = "FILE")]
    snapshot: Option<PathBuf>,
    /// How often the snapshot is written, e.g. `30s`, `5m`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    snapshot_every: Duration,
    /// Keep at most this many records: past it, the oldest finished ones are evicted.
    #[arg(long, value_name = "N")]
    max_results: Option<usize>,
    /// Remove a finished record this long after its last store, e.g. `1h`. With `--redis`:
    /// every record this process stores (`POST /tasks/{id}`) expires this long after the
    /// store (Redis's `SETEX`, whole seconds, as flowrra's `ttl`); records other processes
    /// store keep theirs.
    #[arg(long, value_parser = humantime::parse_duration)]
    result_ttl: Option<Duration>,
    /// The longest `GET /tasks/{id}/wait`, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    max_wait: Duration,
    /// Serve the records of a Redis server instead of an in-process hub: the ones Python
    /// flowrra workers (or other resulthub processes) write there, with their completions as
    /// live events. `redis://[user:password@]host:port/db`; `rediss://` over TLS when built
    /// with the `redis-tls` feature. `--redis` without a URL reads it from the environment
    /// variable `RESULTHUB_REDIS_URL`, which `ps` does not show (best for a URL with a
    /// password); the variable alone changes nothing: without `--redis`, `serve` serves a hub.
    #[arg(
        long,
        value_name = "URL",
        num_args = 0..=1,
        conflicts_with_all = ["snapshot", "snapshot_every", "max_results"]
    )]
    redis: Option<Option<String>>,
    /// With `--redis`: the key prefix of the records (`{prefix}:task:{id}`); flowrra's is
    /// `flowrra`.
    #[arg(long, default_value = "flowrra", requires = "redis")]
    prefix: String,
    /// With `--redis`: how long `/stats` and `/metrics` reuse one count of the prefix's
    /// records (each count walks every key of the prefix), e.g. `2s`.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration, requires = "redis")]
    stats_interval: Duration,
    /// With `--redis` over `rediss://`: a PEM file of the CA certificates to trust instead of
    /// the public ones (a private CA).
    #[cfg(feature = "redis-tls")]
    #[arg(long, value_name = "FILE", requires = "redis")]
    redis_ca: Option<PathBuf>,
}

pub(crate) fn run(args: ServeArgs) -> Result<(), String> {
    if args.snapshot_every.is_zero() {
        return Err("--snapshot-every must be longer than zero".to_owned());
    }
    let token = match &args.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    let mut hosts = WebOptions::default().allowed_hosts;
    hosts.push(args.bind.ip().to_string());
    hosts.extend(args.allowed_hosts.iter().cloned());
    let options = WebOptions::default()
        .with_token(token)
        .with_allow_writes(args.allow_writes)
        .with_allowed_hosts(hosts)
        .with_max_wait(args.max_wait);
    let config = HubConfig::default()
        .with_max_results(args.max_results)
        .with_result_ttl(args.result_ttl);
    actix_rt::System::new().block_on(async move {
        match args.redis.clone() {
            Some(url) => serve_redis(&crate::redis_url(url)?, args, options).await,
            None => serve(args, config, options).await,
        }
    })
}

/// The routes over `backend` on `bind`, running (not yet awaited).
fn http_server<B: WebBackend>(
    backend: B,
    bind: SocketAddr,
    options: WebOptions,
) -> Result<actix_web::dev::Server, String> {
    let routes = configure(backend, options);
    Ok(
        HttpServer::new(move || App::new().service(web::scope("").configure(routes.clone())))
            // A waiter or subscription whose client hung up ends with it (see `resulthub::web`).
            .h1_allow_half_closed(false)
            // Signals are ours: a stop writes the snapshot after the last request.
            .disable_signals()
            // Open `/events` streams never end by themselves: a stop waits this long for them,
            // not actix's 30 s.
            .shutdown_timeout(5)
            .bind(bind)
            .map_err(|error| format!("cannot listen on {bind}: {error}"))?
            .run(),
    )
}

/// `serve --redis`: the routes over a `RedisBackend`, until SIGINT or SIGTERM.
async fn serve_redis(url: &str, args: ServeArgs, options: WebOptions) -> Result<(), String> {
    if args.prefix.is_empty() {
        return Err("invalid --prefix: it must not be empty".to_owned());
    }
    let builder = RedisBackend::builder(url)
        .prefix(&args.prefix)
        .stats_interval(args.stats_interval);
    let builder = match args.result_ttl {
        Some(ttl) => {
            if ttl < Duration::from_secs(1) || ttl.subsec_nanos() != 0 {
                return Err(format!(
                    "invalid --result-ttl {}: with --redis it must be a whole number of \
                     seconds, at least 1s (Redis expires keys in whole seconds)",
                    humantime::format_duration(ttl)
                ));
            }
            builder.ttl(ttl)
        }
        None => builder,
    };
    #[cfg(feature = "redis-tls")]
    let builder = match &args.redis_ca {
        Some(path) => builder.tls_root_certificate(
            std::fs::read(path)
                .map_err(|error| format!("cannot read --redis-ca {}: {error}", path.display()))?,
        ),
        None => builder,
    };
    let backend = builder.build().await.map_err(crate::build_error)?;
    let server = http_server(backend, args.bind, options)?;
    let handle = server.handle();
    tracing::info!(address = %args.bind, prefix = %args.prefix, "resulthub.server.listening");
    actix_rt::spawn(async move {
        stop_signal().await;
        tracing::info!("resulthub.server.stopping");
        handle.stop(true).await;
    });
    server
        .await
        .map_err(|error| format!("the server failed: {error}"))
}

async fn serve(args: ServeArgs, config: HubConfig, options: WebOptions) -> Result<(), String> {
    let hub = HubHandle::spawn(config);
    if let Some(path) = &args.snapshot {
        let loaded = snapshot::load(&hub, path).await?;
        tracing::info!(records = loaded, path = %path.display(), "resulthub.server.snapshot_loaded");
    }
    let server = http_server(hub.clone(), args.bind, options)?;
    let handle = server.handle();
    tracing::info!(address = %args.bind, "resulthub.server.listening");

    let saver = args.snapshot.clone().map(|path| {
        let hub = hub.clone();
        let every = args.snapshot_every;
        actix_rt::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match snapshot::save(&hub, &path).await {
                    Ok(records) => tracing::debug!(records, "resulthub.server.snapshot_written"),
                    Err(error) => tracing::error!(%error, "resulthub.server.snapshot_failed"),
                }
            }
        })
    });
    actix_rt::spawn(async move {
        stop_signal().await;
        tracing::info!("resulthub.server.stopping");
        handle.stop(true).await;
    });
    let served = server.await;
    if let Some(saver) = saver {
        saver.abort();
    }
    let saved = match &args.snapshot {
        Some(path) => match hub.shutdown_and_snapshot().await {
            Ok(records) => {
                snapshot::write(path, &records)?;
                tracing::info!(records = records.len(), path = %path.display(), "resulthub.server.snapshot_written");
                Ok(())
            }
            Err(error) => Err(format!("cannot take the last snapshot: {error}")),
        },
        None => {
            hub.shutdown().await;
            Ok(())
        }
    };
    served.map_err(|error| format!("the server failed: {error}"))?;
    saved
}

/// The token in `path`: its first line, which must not be empty.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read --token-file {}: {error}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(format!("--token-file {} holds no token", path.display()));
    }
    Ok(token.to_owned())
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
