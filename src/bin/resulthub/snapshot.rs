//! The `--snapshot` file: JSON lines, loaded at start and written atomically (a temporary file
//! in the same directory, flushed to disk, then renamed over the old one), so a crash leaves
//! the previous snapshot or the new one, never half of one.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use resulthub::{HubHandle, jsonl};

/// Loads `path` into `hub`; a missing file is an empty start.
pub(crate) async fn load(hub: &HubHandle, path: &Path) -> Result<usize, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(format!("cannot open snapshot {}: {error}", path.display())),
    };
    let records = jsonl::read_records(BufReader::new(file))
        .map_err(|error| format!("cannot read snapshot {}: {error}", path.display()))?;
    hub.restore(records)
        .await
        .map_err(|error| format!("cannot restore snapshot {}: {error}", path.display()))
}

/// Writes every record of `hub` to `path`, atomically.
pub(crate) async fn save(hub: &HubHandle, path: &Path) -> Result<usize, String> {
    let records = hub
        .snapshot()
        .await
        .map_err(|error| format!("cannot take a snapshot: {error}"))?;
    write(path, &records)?;
    Ok(records.len())
}

/// Writes `records` to `path` through a temporary file in the same directory.
pub(crate) fn write(path: &Path, records: &[resulthub::TaskResult]) -> Result<(), String> {
    let temporary = temporary_path(path);
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        let _ = std::fs::remove_file(&temporary);
        format!("cannot {what} snapshot {}: {error}", path.display())
    };
    let file = File::create(&temporary).map_err(|error| failed("create", &error))?;
    let mut writer = BufWriter::new(file);
    jsonl::write_records(&mut writer, records).map_err(|error| failed("write", &error))?;
    writer.flush().map_err(|error| failed("write", &error))?;
    let file = writer
        .into_inner()
        .map_err(|error| failed("write", &error.error().to_string()))?;
    file.sync_all().map_err(|error| failed("sync", &error))?;
    std::fs::rename(&temporary, path).map_err(|error| failed("replace", &error))?;
    Ok(())
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
