//! Benchmarks resulthub against the backends users would otherwise pick, in one run.
//!
//! ```text
//! cargo run --release --example bench -- [--quick] [--workload L|W|P|M|B|all] [--json FILE] [--peer-flowrra]
//!     [--system KEY]... [--tracing LEVEL]
//! ```
//!
//! Workloads, systems and how to read the table: docs/benchmarks.md.

mod flowrra;
mod memory;
mod naive;
mod report;
mod systems;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;

use report::{Metric, Report};
use systems::{RUST_SYSTEMS, System};

/// Sizes and repetitions; `--quick` shrinks them to a smoke run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub lifecycle: usize,
    pub waiters: usize,
    pub pagination: usize,
    pub memory_records: usize,
    pub memory_waiters: usize,
    /// B: how many batches of [`BATCH`] tasks.
    pub batches: usize,
    pub rounds: usize,
}

/// B: tasks per batch.
const BATCH: usize = 100;

const FULL: Sizes = Sizes {
    lifecycle: 100_000,
    waiters: 100_000,
    pagination: 1_000_000,
    memory_records: 1_000_000,
    memory_waiters: 100_000,
    batches: 1_000,
    rounds: 5,
};

const QUICK: Sizes = Sizes {
    lifecycle: 5_000,
    waiters: 2_000,
    pagination: 60_000,
    memory_records: 20_000,
    memory_waiters: 5_000,
    batches: 50,
    rounds: 2,
};

struct Args {
    sizes: Sizes,
    quick: bool,
    workloads: Vec<char>,
    json: Option<PathBuf>,
    peer_flowrra: bool,
    /// Only these systems (`--system KEY`, repeatable), for profiling one at a time.
    systems: Vec<System>,
    /// `--tracing LEVEL`: a global `tracing` subscriber (a registry, no output) at this level,
    /// to measure what the backends' spans cost; none by default.
    tracing: Option<tracing::level_filters::LevelFilter>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: FULL,
        quick: false,
        workloads: vec!['L', 'W', 'P', 'M', 'B'],
        json: None,
        peer_flowrra: false,
        systems: RUST_SYSTEMS.to_vec(),
        tracing: None,
    };
    let mut chosen = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => {
                args.quick = true;
                args.sizes = QUICK;
            }
            "--workload" => {
                let value = it.next().ok_or("--workload needs L, W, P, M, B or all")?;
                args.workloads = match value.to_ascii_uppercase().as_str() {
                    "ALL" => vec!['L', 'W', 'P', 'M', 'B'],
                    one @ ("L" | "W" | "P" | "M" | "B") => {
                        vec![one.chars().next().unwrap_or('L')]
                    }
                    other => return Err(format!("unknown workload {other:?}")),
                };
            }
            "--json" => args.json = Some(it.next().ok_or("--json needs a file")?.into()),
            "--peer-flowrra" => args.peer_flowrra = true,
            "--system" => {
                let key = it
                    .next()
                    .ok_or("--system needs hub-arbiter, hub-thread, memory or naive")?;
                chosen.push(System::from_key(&key).ok_or(format!("unknown system {key:?}"))?);
            }
            "--tracing" => {
                let level = it
                    .next()
                    .ok_or("--tracing needs a level: info, debug, ...")?;
                args.tracing = Some(level.parse().map_err(|_| format!("bad level {level:?}"))?);
            }
            "--help" | "-h" => {
                return Err(
                    "usage: bench [--quick] [--workload L|W|P|M|B|all] [--json FILE] \
                            [--peer-flowrra] [--system KEY]... [--tracing LEVEL]"
                        .to_owned(),
                );
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !chosen.is_empty() {
        args.systems = chosen;
    }
    Ok(args)
}

fn main() -> ExitCode {
    // A child process measuring memory: `bench --mem-child SYSTEM WHAT N`.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--mem-child") {
        return memory_child(&argv[2..]);
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some(level) = args.tracing {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(level);
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            eprintln!("a tracing subscriber was set already");
            return ExitCode::from(2);
        }
    }
    if cfg!(debug_assertions) && !args.quick {
        eprintln!("note: a debug build; run with --release for meaningful numbers");
    }
    let peer = if args.peer_flowrra {
        flowrra::Peer::prepare()
    } else {
        None
    };
    let mut report = Report::new(args.quick);
    for workload in &args.workloads {
        match workload {
            'L' => run_lifecycle(&args.sizes, &args.systems, peer.as_ref(), &mut report),
            'W' => run_wake(&args.sizes, &args.systems, peer.as_ref(), &mut report),
            'P' => run_pagination(&args.sizes, &args.systems, peer.as_ref(), &mut report),
            'M' => run_memory(&args.sizes, &args.systems, peer.as_ref(), &mut report),
            'B' => run_batches(&args.sizes, &args.systems, &mut report),
            _ => unreachable!("parse_args accepts only L, W, P, M, B"),
        }
    }
    report.print_table();
    if let Some(path) = &args.json {
        if let Err(error) = report.write_json(path) {
            eprintln!("could not write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

/// B: the same tasks stored, read and waited for one call at a time, then a batch at a time.
/// flowrra has no batch calls, so it has no row here.
fn run_batches(sizes: &Sizes, systems: &[System], report: &mut Report) {
    for (label, batched) in [("B1", false), ("B100", true)] {
        let calls = if batched {
            "batch calls"
        } else {
            "single calls"
        };
        let workload = format!(
            "{label}: {} batches of {BATCH} tasks stored, read and waited for, {calls}",
            sizes.batches
        );
        for &system in systems {
            let rounds = rounds(sizes.rounds, &workload, system.name(), || {
                system.run(|subject| {
                    let batches = sizes.batches;
                    Box::pin(
                        async move { workloads::batches(&subject, batches, BATCH, batched).await },
                    )
                })
            });
            report.add(label, &workload, system.name(), Metric::TasksPerSec, rounds);
        }
    }
}

fn run_lifecycle(
    sizes: &Sizes,
    systems: &[System],
    peer: Option<&flowrra::Peer>,
    report: &mut Report,
) {
    for (label, callers) in [("L1", 1), ("L64", 64)] {
        let workload = format!(
            "{label}: lifecycle, {callers} caller(s), {} tasks",
            sizes.lifecycle
        );
        for &system in systems {
            let rounds = rounds(sizes.rounds, &workload, system.name(), || {
                system.run(|subject| {
                    let n = sizes.lifecycle;
                    Box::pin(async move { workloads::lifecycle(&subject, n, callers).await })
                })
            });
            report.add(label, &workload, system.name(), Metric::TasksPerSec, rounds);
        }
        if let Some(peer) = peer {
            peer.run(label, &workload, sizes.lifecycle, sizes.rounds, report);
        }
    }
    // For reading the cross-thread rows: what one round trip to another thread costs here.
    let floor = "RT: one round trip to a plain thread (tokio mpsc + oneshot), 1 caller";
    let rounds = rounds(sizes.rounds, floor, "bare channels", || {
        workloads::bare_round_trip(10_000).as_secs_f64() * 1e6
    });
    report.add(
        "RT",
        floor,
        "bare channels",
        Metric::RoundTripMicros,
        rounds,
    );
}

fn run_wake(sizes: &Sizes, systems: &[System], peer: Option<&flowrra::Peer>, report: &mut Report) {
    for (label, pending_first) in [("W", false), ("WP", true)] {
        let workload = match pending_first {
            false => format!("{label}: {} waiters woken by one producer", sizes.waiters),
            true => format!(
                "{label}: {} waiters woken by one producer, each id stored PENDING first",
                sizes.waiters
            ),
        };
        for &system in systems {
            let rounds = rounds(sizes.rounds.min(3), &workload, system.name(), || {
                system.run(|subject| {
                    let n = sizes.waiters;
                    Box::pin(async move { workloads::wake(&subject, n, pending_first).await })
                })
            });
            let all: Vec<f64> = rounds.iter().map(|r| r.all_woken.as_secs_f64()).collect();
            let p50: Vec<f64> = rounds.iter().map(|r| r.p50.as_secs_f64() * 1e6).collect();
            let p99: Vec<f64> = rounds.iter().map(|r| r.p99.as_secs_f64() * 1e6).collect();
            report.add(label, &workload, system.name(), Metric::AllWokenSecs, all);
            report.add(label, &workload, system.name(), Metric::P50Micros, p50);
            report.add(label, &workload, system.name(), Metric::P99Micros, p99);
        }
        if let Some(peer) = peer {
            peer.run(label, &workload, sizes.waiters, sizes.rounds.min(3), report);
        }
    }
}

fn run_pagination(
    sizes: &Sizes,
    systems: &[System],
    peer: Option<&flowrra::Peer>,
    report: &mut Report,
) {
    let workload = format!(
        "P: a page of 100 SUCCESS out of {} records",
        sizes.pagination
    );
    for &system in systems {
        let rounds = rounds(1, &workload, system.name(), || {
            system.run(|subject| {
                let n = sizes.pagination;
                Box::pin(async move { workloads::pagination(&subject, n, 5).await })
            })
        });
        let micros = |time: fn(&workloads::PageTimes) -> std::time::Duration| -> Vec<f64> {
            rounds.iter().map(|r| time(r).as_secs_f64() * 1e6).collect()
        };
        let name = system.name();
        report.add(
            "P",
            &workload,
            name,
            Metric::Page0Micros,
            micros(|r| r.first),
        );
        report.add(
            "P",
            &workload,
            name,
            Metric::Page10kMicros,
            micros(|r| r.at_10k),
        );
        let deep = micros(|r| r.deep_by_offset);
        report.add("P", &workload, name, Metric::PageDeepOffsetMicros, deep);
        let deep = micros(|r| r.deep_by_cursor);
        report.add("P", &workload, name, Metric::PageDeepCursorMicros, deep);
    }
    if let Some(peer) = peer {
        peer.run("P", &workload, sizes.pagination, 1, report);
    }
}

fn run_memory(
    sizes: &Sizes,
    systems: &[System],
    peer: Option<&flowrra::Peer>,
    report: &mut Report,
) {
    let workload = format!(
        "M: resident bytes per record ({}) and per waiter ({})",
        sizes.memory_records, sizes.memory_waiters
    );
    for &system in systems {
        progress(&workload, system.name(), "records");
        let per_record = spawn_memory_child(system, "records", sizes.memory_records);
        report.add(
            "M",
            &workload,
            system.name(),
            Metric::BytesPerRecord,
            per_record.into_iter().collect(),
        );
        progress(&workload, system.name(), "waiting callers");
        let per_caller = spawn_memory_child(system, "callers", sizes.memory_waiters);
        report.add(
            "M",
            &workload,
            system.name(),
            Metric::BytesPerCaller,
            per_caller.into_iter().collect(),
        );
        if matches!(system, System::HubArbiter | System::HubThread) {
            progress(&workload, system.name(), "hub waiters");
            let per_waiter = spawn_memory_child(system, "hub-waiters", sizes.memory_waiters);
            report.add(
                "M",
                &workload,
                system.name(),
                Metric::BytesPerHubWaiter,
                per_waiter.into_iter().collect(),
            );
        }
    }
    if let Some(peer) = peer {
        peer.run("M", &workload, sizes.memory_records, 1, report);
    }
}

/// Runs the memory measurement in a fresh copy of this binary.
fn spawn_memory_child(system: System, what: &str, n: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let output = std::process::Command::new(exe)
        .args(["--mem-child", system.key(), what, &n.to_string()])
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!(
            "  memory child {} {what} failed: {}",
            system.key(),
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

fn memory_child(args: &[String]) -> ExitCode {
    let (Some(system), Some(what), Some(n)) = (
        args.first().and_then(|key| System::from_key(key)),
        args.get(1),
        args.get(2).and_then(|n| n.parse().ok()),
    ) else {
        eprintln!("usage: bench --mem-child SYSTEM records|callers|hub-waiters N");
        return ExitCode::from(2);
    };
    println!("{:.1}", memory::child(system, what, n));
    ExitCode::SUCCESS
}

/// One warm-up round, then `count` measured rounds, with progress on stderr.
fn rounds<T>(count: usize, workload: &str, system: &str, mut round: impl FnMut() -> T) -> Vec<T> {
    progress(workload, system, "warm-up");
    let _ = round();
    (1..=count)
        .map(|n| {
            progress(workload, system, &format!("round {n}/{count}"));
            round()
        })
        .collect()
}

fn progress(workload: &str, system: &str, step: &str) {
    eprintln!(
        "[{}] {workload} | {system} | {step}",
        chrono::Utc::now().format("%H:%M:%S")
    );
}
