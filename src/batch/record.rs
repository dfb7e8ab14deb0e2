//! The record batch leaves in each input's output directory
//! (`.criu2core.json`): which input and options made the cores there,
//! whether the run finished, and the input's summary entry.

use std::fs;
use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::summary::{CoreSummary, InputSummary};
use crate::coredump::CoreCompression;
use crate::outdir::OutDir;

/// The record in each input's output directory.
pub const RECORD: &str = ".criu2core.json";
/// Identifies the format of a [`RECORD`].
pub(crate) const RECORD_SCHEMA: &str = "criu2core.record/1";
/// Largest record read back.
const RECORD_LIMIT: u64 = 16 << 20;

/// The record in each input's output directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub schema: String,
    /// SHA-256 (hex) of the input's canonical path.
    pub input_sha256: String,
    /// What the input looked like (see [`fingerprint`]).
    pub fingerprint: String,
    /// Whether every core was written.
    pub complete: bool,
    /// The criu2core version that wrote it.
    pub version: String,
    /// The input's entry as its last run left it.
    pub summary: InputSummary,
}

pub(crate) fn read_record(dir: &OutDir) -> Option<Record> {
    let bytes = dir.read_file(RECORD, RECORD_LIMIT).ok()??;
    serde_json::from_slice::<Record>(&bytes)
        .ok()
        .filter(|r| r.schema == RECORD_SCHEMA)
}

pub(crate) fn write_record(dir: &OutDir, rec: &Record) -> Result<()> {
    dir.write_file(RECORD, &serde_json::to_vec_pretty(rec)?)?;
    Ok(())
}

/// What identifies an input's contents cheaply: sizes and modification
/// times of the file, or of a directory's files.
pub(crate) fn fingerprint(path: &Path) -> Result<String> {
    if let Some(url) = crate::blobio::url_of(path) {
        let m = crate::remote::Location::parse(url)?
            .head()?
            .with_context(|| format!("{url}: no such object"))?;
        return Ok(format!("{}@{}", m.size, m.stamp));
    }
    let stamp = |m: &fs::Metadata| {
        let t = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{}@{t}", m.len())
    };
    let meta = fs::metadata(path).with_context(|| format!("{}: cannot stat", path.display()))?;
    if !meta.is_dir() {
        return Ok(stamp(&meta));
    }
    let mut parts = Vec::new();
    let dirs = [path.to_path_buf(), path.join("checkpoint")];
    for d in dirs.iter().filter(|d| d.is_dir()) {
        for e in fs::read_dir(d).with_context(|| format!("{}: cannot list", d.display()))? {
            let e = e.with_context(|| format!("{}: cannot list", d.display()))?;
            if let Ok(m) = e.metadata() {
                if m.is_file() {
                    parts.push(format!("{}={}", e.path().display(), stamp(&m)));
                }
            }
        }
    }
    parts.sort();
    Ok(parts.join(";"))
}

/// A record's entry, with the paths of `dir` as it is now (the output
/// directory may have moved since).
pub(crate) fn from_record(rec: &Record, dir: &OutDir) -> InputSummary {
    let mut s = rec.summary.clone();
    s.output = Some(dir.path().display().to_string());
    for c in &mut s.cores {
        c.path = dir.path().join(core_file(c)).display().to_string();
    }
    s
}

/// The name of a recorded core's file: `core.<pid>`, or `core.<pid>.zst`
/// where it was compressed.
pub(crate) fn core_file(c: &CoreSummary) -> String {
    let compression = match c.compressed_size {
        Some(_) => CoreCompression::Zstd,
        None => CoreCompression::None,
    };
    compression.core_name(c.pid)
}

/// Whether `name` is a core's name (`core.<digits>`, or that with `.zst`).
pub(crate) fn is_core_name(name: &str) -> bool {
    let name = name.strip_suffix(".zst").unwrap_or(name);
    name.strip_prefix("core.")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the cores a record lists are there, with their sizes.
pub(crate) fn intact(dir: &OutDir, rec: &Record) -> bool {
    rec.summary.cores.iter().all(|c| {
        dir.file_size(&core_file(c))
            .is_ok_and(|size| size == Some(c.compressed_size.unwrap_or(c.size)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_names() {
        assert!(is_core_name("core.1") && is_core_name("core.4194304"));
        assert!(is_core_name("core.12.zst"));
        for n in [
            "core.",
            "core",
            "core.zst",
            "core.1.zst.zst",
            "core.1.partial",
            ".core.1",
            "core.-1",
            "score.1",
        ] {
            assert!(!is_core_name(n), "{n}");
        }
    }
}
