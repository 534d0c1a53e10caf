//! The Python peer: flowrra 0.1.8's InMemoryBackend running the same workloads
//! (examples/bench_flowrra.py), in a virtualenv this bench creates under target/.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::report::{Metric, Report};

const FLOWRRA: &str = "flowrra==0.1.8";

pub struct Peer {
    python: PathBuf,
    script: PathBuf,
}

impl Peer {
    /// Finds or builds the virtualenv; `None`, with a message saying why, when Python or pip
    /// cannot provide flowrra.
    pub fn prepare() -> Option<Peer> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("examples").join("bench_flowrra.py");
        let venv = root.join("target").join("bench-venv");
        let python = venv.join("bin").join("python");
        let has_flowrra = |python: &Path| {
            Command::new(python)
                .args(["-c", "import flowrra"])
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if !has_flowrra(&python) {
            eprintln!("setting up {} in {} ...", FLOWRRA, venv.display());
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|status| status.success());
            let installed = made
                && Command::new(venv.join("bin").join("pip"))
                    .args(["install", "--quiet", FLOWRRA])
                    .status()
                    .is_ok_and(|status| status.success());
            if !installed || !has_flowrra(&python) {
                eprintln!(
                    "skipping flowrra: could not create a virtualenv with {FLOWRRA} \
                     (is python3 with venv and pip available?)"
                );
                return None;
            }
        }
        Some(Peer { python, script })
    }

    /// Runs one workload in Python and adds its rounds to the report.
    pub fn run(&self, label: &str, workload: &str, n: usize, rounds: usize, report: &mut Report) {
        let system = "flowrra 0.1.8 InMemoryBackend";
        crate::progress(workload, system, "python");
        let output = Command::new(&self.python)
            .arg(&self.script)
            .args([
                "--workload",
                label,
                "--n",
                &n.to_string(),
                "--rounds",
                &rounds.to_string(),
            ])
            .output();
        let output = match output {
            Ok(output) if output.status.success() => output,
            Ok(output) => {
                eprintln!(
                    "  flowrra {label} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                return;
            }
            Err(error) => {
                eprintln!("  flowrra {label} could not start: {error}");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(parsed) = stdout
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        else {
            eprintln!("  flowrra {label} printed no JSON result");
            return;
        };
        let measured = parsed["rounds"].as_array().cloned().unwrap_or_default();
        let metrics: &[Metric] = match label {
            "L1" | "L64" => &[Metric::TasksPerSec],
            "W" | "WP" => &[Metric::AllWokenSecs, Metric::P50Micros, Metric::P99Micros],
            "P" => &[Metric::Page0Micros, Metric::Page10kMicros],
            _ => &[Metric::BytesPerRecord, Metric::BytesPerCaller],
        };
        for metric in metrics {
            let values = measured
                .iter()
                .filter_map(|round| round[metric.key()].as_f64())
                .collect();
            report.add(label, workload, system, *metric, values);
        }
    }
}
