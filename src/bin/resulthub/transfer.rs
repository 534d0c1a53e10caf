//! `resulthub export` and `import`: the records of a Redis prefix to and from a JSON-lines file,
//! for backups and migrations, with a progress bar on a terminal and a count at the end.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use resulthub::{RedisBackend, ResultBackend, TaskStatus, jsonl};

/// Records stored per `store_many` batch by `import`.
const BATCH: usize = 1000;

#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// The Redis server: `redis://[user:password@]host:port/db`, or `rediss://` over TLS.
    /// `--redis` without a URL reads it from the environment variable `RESULTHUB_REDIS_URL`,
    /// which `ps` does not show (best for a URL with a password).
    #[arg(long, value_name = "URL", num_args = 0..=1, required = true)]
    redis: Option<Option<String>>,
    /// The key prefix of the records (flowrra's is `flowrra`).
    #[arg(long, default_value = "flowrra")]
    prefix: String,
    /// The file to write, one record per line; `-` for standard output.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// How long listing the prefix may take, e.g. `10m`: the walk reads every key of it.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    list_timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ImportArgs {
    /// The Redis server: `redis://[user:password@]host:port/db`, or `rediss://` over TLS.
    /// `--redis` without a URL reads it from the environment variable `RESULTHUB_REDIS_URL`,
    /// which `ps` does not show (best for a URL with a password).
    #[arg(long, value_name = "URL", num_args = 0..=1, required = true)]
    redis: Option<Option<String>>,
    /// The key prefix to store the records under (flowrra's is `flowrra`).
    #[arg(long, default_value = "flowrra")]
    prefix: String,
    /// The file to read, one record per line (as `export` writes it); `-` for standard input.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
}

pub(crate) fn export(args: ExportArgs) -> Result<(), String> {
    runtime()?.block_on(async {
        let url = crate::redis_url(args.redis.clone().flatten())?;
        let backend = RedisBackend::builder(&url)
            .prefix(&args.prefix)
            .list_timeout(args.list_timeout)
            .build()
            .await
            .map_err(crate::build_error)?;
        let progress = progress(None, "listing");
        let mut records = Vec::new();
        for status in TaskStatus::ALL {
            progress.set_message(format!("listing {status}"));
            let listed = backend
                .list_by_status(status, None, 0)
                .await
                .map_err(|error| format!("cannot list the {status} records: {error}"))?;
            progress.inc(listed.len() as u64);
            records.extend(listed);
        }
        progress.finish_and_clear();
        let written = records.len();
        if args.output.as_os_str() == "-" {
            let stdout = std::io::stdout();
            jsonl::write_records(stdout.lock(), &records)
                .map_err(|error| format!("cannot write the records: {error}"))?;
        } else {
            let file = File::create(&args.output)
                .map_err(|error| format!("cannot create {}: {error}", args.output.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            jsonl::write_records(&mut writer, &records)
                .and_then(|()| {
                    writer
                        .flush()
                        .map_err(|error| resulthub::BackendError::Storage(Box::new(error)))
                })
                .map_err(|error| format!("cannot write {}: {error}", args.output.display()))?;
        }
        eprintln!(
            "exported {written} records of prefix {:?}",
            backend.prefix()
        );
        Ok(())
    })
}

pub(crate) fn import(args: ImportArgs) -> Result<(), String> {
    let reader: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = File::open(&args.input)
            .map_err(|error| format!("cannot open {}: {error}", args.input.display()))?;
        Box::new(BufReader::new(file))
    };
    // All read (and checked) before anything is stored: a bad line stores nothing.
    let records = jsonl::read_records(reader)
        .map_err(|error| format!("cannot read {}: {error}", args.input.display()))?;
    runtime()?.block_on(async {
        let url = crate::redis_url(args.redis.clone().flatten())?;
        let backend = RedisBackend::builder(&url)
            .prefix(&args.prefix)
            .build()
            .await
            .map_err(crate::build_error)?;
        let progress = progress(Some(records.len() as u64), "storing");
        let (mut stored, mut failed) = (0usize, 0usize);
        let total = records.len();
        let mut records = records.into_iter();
        loop {
            let batch: Vec<_> = records.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            let ids: Vec<String> = batch.iter().map(|record| record.task_id.clone()).collect();
            for (id, outcome) in ids.iter().zip(backend.store_many(batch).await) {
                match outcome {
                    Ok(()) => stored += 1,
                    Err(error) => {
                        failed += 1;
                        progress.suspend(|| eprintln!("not stored: {id:?}: {error}"));
                    }
                }
                progress.inc(1);
            }
        }
        progress.finish_and_clear();
        eprintln!(
            "imported {stored} of {total} records under prefix {:?}",
            backend.prefix()
        );
        if failed > 0 {
            return Err(format!("{failed} records were not stored"));
        }
        Ok(())
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start a Tokio runtime: {error}"))
}

/// A bar (or, without a total, a counter) on a terminal's standard error; hidden otherwise.
fn progress(total: Option<u64>, message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg}: {pos} records")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(message);
    bar
}
