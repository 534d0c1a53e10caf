//! `resulthub`: the dashboard, REST API and live events over an in-process hub or a Redis
//! prefix that flowrra workers write (`serve`, `serve --redis URL`), and moving records
//! between a Redis prefix and a JSON-lines file (`export`, `import`).
//!
//! Built with the cargo feature `server`:
//! `cargo run --features server --bin resulthub -- serve --help`.

mod serve;
mod snapshot;
mod transfer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Stores and serves the results of background tasks.
#[derive(Parser, Debug)]
#[command(name = "resulthub", version, about, long_about = None)]
struct Cli {
    /// Log as JSON lines instead of text (the level comes from `RUST_LOG`, default `info`).
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the dashboard, the REST API and live events over an in-process hub, or over the
    /// records a flowrra deployment keeps in Redis (`--redis URL`).
    Serve(serve::ServeArgs),
    /// Write every record of a Redis prefix to a JSON-lines file.
    Export(transfer::ExportArgs),
    /// Store every record of a JSON-lines file under a Redis prefix.
    Import(transfer::ImportArgs),
}

/// The environment variable `--redis` without a URL reads it from.
pub(crate) const REDIS_URL_VARIABLE: &str = "RESULTHUB_REDIS_URL";

/// The URL `--redis` gave, or, given without one, the one in [`REDIS_URL_VARIABLE`].
pub(crate) fn redis_url(given: Option<String>) -> Result<String, String> {
    match given {
        Some(url) => Ok(url),
        None => match std::env::var(REDIS_URL_VARIABLE) {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => Err(format!(
                "--redis without a URL reads it from {REDIS_URL_VARIABLE}, which is not set"
            )),
        },
    }
}

/// Why a `RedisBackend` was not built: settings it refused (named as invalid input), or a
/// server it could not reach.
pub(crate) fn build_error(error: resulthub::BackendError) -> String {
    match error {
        resulthub::BackendError::InvalidInput { .. } => {
            format!("invalid input in --redis (or its options): {error}")
        }
        error => format!("cannot connect to Redis: {error}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Export(args) => transfer::export(args),
        Command::Import(args) => transfer::import(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("resulthub: {error}");
            ExitCode::FAILURE
        }
    }
}
