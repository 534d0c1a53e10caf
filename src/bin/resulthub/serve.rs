//! `resulthub serve`: an in-process hub behind the crate's HTTP API, for services in any
//! language, with its records kept in a snapshot file across restarts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use resulthub::web::{WebOptions, configure};
use resulthub::{HubConfig, HubHandle};

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
    /// Remove a finished record this long after its last store, e.g. `1h`.
    #[arg(long, value_parser = humantime::parse_duration)]
    result_ttl: Option<Duration>,
    /// The longest `GET /tasks/{id}/wait`, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    max_wait: Duration,
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
    actix_rt::System::new().block_on(serve(args, config, options))
}

async fn serve(args: ServeArgs, config: HubConfig, options: WebOptions) -> Result<(), String> {
    let hub = HubHandle::spawn(config);
    if let Some(path) = &args.snapshot {
        let loaded = snapshot::load(&hub, path).await?;
        tracing::info!(records = loaded, path = %path.display(), "resulthub.server.snapshot_loaded");
    }
    let routes = configure(hub.clone(), options);
    let server =
        HttpServer::new(move || App::new().service(web::scope("").configure(routes.clone())))
            // A waiter or subscription whose client hung up ends with it (see `resulthub::web`).
            .h1_allow_half_closed(false)
            // Signals are ours: a stop writes the snapshot after the last request.
            .disable_signals()
            .bind(args.bind)
            .map_err(|error| format!("cannot listen on {}: {error}", args.bind))?
            .run();
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
