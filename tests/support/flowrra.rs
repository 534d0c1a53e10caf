//! A Python flowrra 0.1.8 process for the tests that share a Redis with one
//! (`tests/interop/flowrra_peer.py`), in a virtualenv made once per run under
//! target/interop-venv (flowrra 0.1.8 and redis-py from PyPI).
//!
//! Without Python (or PyPI) the tests that need it are skipped loudly, unless
//! `RESULTHUB_REQUIRE_REDIS=1`, when they fail.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

const FLOWRRA: &str = "flowrra==0.1.8";
const REDIS_PY: &str = "redis>=5,<8";

/// The virtualenv's Python, made once per run; `None` (after saying why) when it cannot be.
pub fn python() -> Option<PathBuf> {
    static MADE: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(|poison| poison.into_inner());
    let outcome = made.get_or_insert_with(make_venv).clone();
    match outcome {
        Ok(python) => Some(python),
        Err(why) => {
            if std::env::var("RESULTHUB_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("RESULTHUB_REQUIRE_REDIS=1 but the flowrra virtualenv failed: {why}");
            }
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

fn make_venv() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target").join("interop-venv");
    let python = venv.join("bin").join("python");
    let ready = venv.join(".flowrra-0.1.8-ready");
    if ready.exists() {
        return Ok(python);
    }
    let run = |command: &mut Command| -> Result<(), String> {
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{command:?}: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{command:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        FLOWRRA,
        REDIS_PY,
    ]))?;
    std::fs::write(&ready, "").map_err(|e| e.to_string())?;
    Ok(python)
}

pub fn peer(python: &Path, args: &[&str]) -> Value {
    peer_in_zone(python, "UTC", args)
}

/// `peer`, with the process's time zone set to `tz`.
pub fn peer_in_zone(python: &Path, tz: &str, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/flowrra_peer.py");
    let output: Output = Command::new(python)
        .arg(&script)
        .args(args)
        .env("TZ", tz)
        .stdin(Stdio::null())
        .output()
        .expect("run the flowrra peer");
    assert!(
        output.status.success(),
        "flowrra peer {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the peer prints JSON")
}
