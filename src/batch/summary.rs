//! What batch reports: one entry per input ([`InputSummary`]), and the
//! whole output directory ([`Summary`], written as `summary.json`).

use std::path::Path;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::absolute;
use super::convert::{Outcome, ProcessReport};
use super::shard::ShardListing;
use crate::input::{ImageRef, ImageUse};
use crate::model::ExitStatus;
use crate::warning::Warning;

/// How an input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Every core was written.
    Ok,
    /// The input, or some of its processes, could not be converted.
    Failed,
    /// Its cores were already complete (batch without `--force`).
    Skipped,
}

impl Status {
    /// "ok", "failed" or "skipped", as summary.json has it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The options that change a core, as recorded beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreOptions {
    /// `--root`, as a canonical path.
    pub root: Option<String>,
    /// `--image`, its path canonical, with the image asked for.
    #[serde(default)]
    pub image: Option<String>,
    /// `--pid`s, sorted; empty for all processes.
    pub pids: Vec<u32>,
}

impl CoreOptions {
    /// The options of a conversion with `root`, `image` and `pids`.
    pub(crate) fn new(root: Option<&Path>, image: Option<&ImageRef>, pids: &[u32]) -> CoreOptions {
        let mut pids = pids.to_vec();
        pids.sort_unstable();
        pids.dedup();
        CoreOptions {
            root: root.map(|r| absolute(r).display().to_string()),
            image: image.map(|i| {
                ImageRef {
                    path: absolute(&i.path),
                    reference: i.reference.clone(),
                }
                .to_string()
            }),
            pids,
        }
    }

    pub(crate) fn describe(&self) -> String {
        let mut parts = vec![match (&self.root, &self.image) {
            (Some(r), _) => format!("--root {r}"),
            (None, Some(i)) => format!("--image {i}"),
            (None, None) => "no --root or --image".into(),
        }];
        if !self.pids.is_empty() {
            let pids: Vec<String> = self.pids.iter().map(|p| format!("--pid {p}")).collect();
            parts.push(pids.join(" "));
        }
        parts.join(" ")
    }
}

/// One core in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreSummary {
    /// Process id.
    pub pid: u32,
    /// Absolute path of the core.
    pub path: String,
    /// Its size in bytes (of the core, not of a compressed file).
    pub size: u64,
    /// The size of the compressed file (`--compress`), where it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compressed_size: Option<u64>,
    /// The shell command that opens it in gdb.
    #[serde(default)]
    pub gdb_command: Option<String>,
    /// The regular files the process mapped, and whether their contents
    /// are in the core as the checkpoint recorded them.
    #[serde(default)]
    pub files: Vec<FileCheck>,
}

/// A file a process mapped: whether its contents were found and are the
/// file the checkpoint recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    /// Its path as the process opened it.
    pub path: String,
    /// "verified", "unverifiable", "mismatch" (its pages were left out),
    /// "missing", "not-sought" or "ghost" (deleted while open; the
    /// checkpoint keeps it).
    pub status: String,
    /// What was compared, what differed, or a ghost's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl FileCheck {
    /// The checks of the files `p` mapped.
    pub(crate) fn of(p: &crate::model::Process) -> Vec<FileCheck> {
        use crate::model::FileStatus;
        p.files
            .iter()
            .map(|f| FileCheck {
                path: crate::model::display_bytes(&f.path).into_owned(),
                status: f.status.name().to_string(),
                detail: match &f.status {
                    FileStatus::Verified { checks } => Some((*checks).to_string()),
                    FileStatus::Mismatch { why } => Some(why.clone()),
                    FileStatus::Ghost => f.contents.as_ref().map(|c| format!("{} bytes", c.size)),
                    _ => None,
                },
            })
            .collect()
    }
}

/// A zombie in the summary: it has no core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieSummary {
    /// Process id.
    pub pid: u32,
    /// Its command name.
    pub comm: Option<String>,
    /// How it ended.
    pub exit: ExitStatus,
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSummary {
    /// The input's canonical path (absolute where it cannot be resolved).
    pub input: String,
    /// The absolute path of the directory its cores are in; `None` when
    /// it has none.
    pub output: Option<String>,
    /// How it ended.
    pub status: Status,
    /// The options its cores were (or were to be) made with.
    pub options: CoreOptions,
    /// The image `--image` gave, as chosen for this input.
    #[serde(default)]
    pub image: Option<ImageUse>,
    /// Processes in the checkpoint.
    pub processes: usize,
    /// Cores written (or found complete).
    pub cores: Vec<CoreSummary>,
    /// Zombie processes (no core).
    pub zombies: Vec<ZombieSummary>,
    /// Wall time spent on it, in milliseconds.
    pub duration_ms: u64,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// Warnings from decoding, each process's with its pid before its
    /// message.
    pub warnings: Vec<Warning>,
}

impl InputSummary {
    /// A summary of `input` converted into `output` with `options`, with
    /// nothing done yet.
    pub(crate) fn new(input: &Path, output: Option<&Path>, options: CoreOptions) -> InputSummary {
        InputSummary {
            input: input.display().to_string(),
            output: output.map(|o| o.display().to_string()),
            status: Status::Failed,
            options,
            image: None,
            processes: 0,
            cores: Vec::new(),
            zombies: Vec::new(),
            duration_ms: 0,
            error: None,
            warnings: Vec::new(),
        }
    }

    /// Records what became of each process; an error lists the processes
    /// that failed.
    pub(crate) fn add_reports(&mut self, reports: &[ProcessReport]) -> Result<()> {
        let mut errors = Vec::new();
        for r in reports {
            self.warnings.extend(
                r.warnings
                    .iter()
                    .map(|w| w.prefixed(&format!("pid {}: ", r.pid))),
            );
            match &r.outcome {
                Outcome::Written {
                    stats,
                    gdb_command,
                    files,
                    ..
                } => self.cores.push(CoreSummary {
                    pid: r.pid,
                    path: absolute(&stats.path).display().to_string(),
                    size: stats.size,
                    compressed_size: stats.compressed,
                    gdb_command: gdb_command.clone(),
                    files: files.clone(),
                }),
                Outcome::Zombie { exit } => self.zombies.push(ZombieSummary {
                    pid: r.pid,
                    comm: r.comm.clone(),
                    exit: *exit,
                }),
                Outcome::Failed(e) => errors.push(format!("pid {}: {e}", r.pid)),
            }
        }
        if !errors.is_empty() {
            bail!(errors.join("; "));
        }
        Ok(())
    }
}

/// Counts of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTotals {
    /// Inputs this run was given (after expanding directories).
    pub inputs: usize,
    /// Of those, converted.
    pub ok: usize,
    /// Failed, entirely or in part.
    pub failed: usize,
    /// Skipped because their cores were complete.
    pub skipped: usize,
    /// Wall time of the run, in milliseconds.
    pub duration_ms: u64,
}

/// What summary.json holds: every input with cores in the output directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Always [`super::SCHEMA`].
    pub schema: String,
    /// The output directory, absolute.
    pub out_dir: String,
    /// Entries of `inputs` whose status is "ok".
    pub ok: usize,
    /// Entries whose status is "failed".
    pub failed: usize,
    /// Entries whose status is "skipped".
    pub skipped: usize,
    /// The run that wrote this summary (merged: the shards' runs added up).
    pub run: RunTotals,
    /// Inputs a shard listed that no shard has an entry for (only in a
    /// summary merged from shards' summaries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// In a shard's summary (`summary-K-of-N.json`): which shard, and every
    /// input the listing had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardListing>,
    /// Per input, sorted by output directory: this run's inputs as they
    /// ended, the others as their last run left them (a shard's summary:
    /// its own inputs only).
    pub inputs: Vec<InputSummary>,
}
