//! `criu2core batch`: many checkpoints at once, in parallel, resumable,
//! with a summary.json that says what became of each.

use std::collections::BTreeSet;
use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::convert::{self, ConvertOptions, Outcome, ProcessReport};
use crate::input::{self, OpenOptions};

/// Identifies the JSON schema of [`Summary`].
pub const SCHEMA: &str = "criu2core.batch/1";
/// File in each input's output directory that marks it complete.
pub const DONE_MARKER: &str = ".criu2core-done.json";

/// Options for a batch run.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// Worker threads (at least 1).
    pub jobs: usize,
    /// Convert inputs again even when their cores are complete.
    pub force: bool,
    /// Root filesystem for file-backed pages.
    pub root: Option<PathBuf>,
    /// Where compressed archives are unpacked.
    pub spill_dir: Option<PathBuf>,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// One core in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreSummary {
    /// Process id.
    pub pid: u32,
    /// Path of the core.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The shell command that opens it in gdb.
    #[serde(default)]
    pub gdb_command: Option<String>,
}

/// A zombie in the summary: it has no core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZombieSummary {
    /// Process id.
    pub pid: u32,
    /// Its command name.
    pub comm: Option<String>,
    /// How it ended.
    pub exit: crate::criu::ExitStatus,
}

/// What became of one input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSummary {
    /// The input path.
    pub input: String,
    /// The directory its cores went to.
    pub output: String,
    /// "ok", "failed" or "skipped" (already complete).
    pub status: String,
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
    /// Warnings from decoding.
    pub warnings: Vec<String>,
}

impl InputSummary {
    /// A summary of `input` converted into `output`, with nothing done yet.
    pub fn new(input: &Path, output: &Path) -> InputSummary {
        InputSummary {
            input: input.display().to_string(),
            output: output.display().to_string(),
            status: "failed".into(),
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
    pub fn add_reports(&mut self, reports: &[ProcessReport]) -> Result<()> {
        let mut errors = Vec::new();
        for r in reports {
            self.warnings
                .extend(r.warnings.iter().map(|w| format!("pid {}: {w}", r.pid)));
            match &r.outcome {
                Outcome::Written {
                    stats, gdb_command, ..
                } => self.cores.push(CoreSummary {
                    pid: r.pid,
                    path: stats.path.display().to_string(),
                    size: stats.size,
                    gdb_command: Some(gdb_command.clone()),
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
            anyhow::bail!(errors.join("; "));
        }
        Ok(())
    }
}

/// The whole run, as written to summary.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// Inputs converted.
    pub ok: usize,
    /// Inputs that failed, entirely or in part.
    pub failed: usize,
    /// Inputs skipped because their cores were complete.
    pub skipped: usize,
    /// Wall time of the run, in milliseconds.
    pub duration_ms: u64,
    /// Per input, in the order given.
    pub inputs: Vec<InputSummary>,
}

/// The marker written once all of an input's cores are done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Done {
    fingerprint: String,
    processes: usize,
    cores: Vec<CoreSummary>,
    zombies: Vec<ZombieSummary>,
}

/// Expands the command line's inputs: checkpoints as they are, and the
/// checkpoints found directly inside directories that are not one.
pub fn expand_inputs(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        if input::detect(a)?.is_some() {
            out.push(a.clone());
            continue;
        }
        if !a.is_dir() {
            anyhow::bail!(
                "{}: not a checkpoint (image directory or archive)",
                a.display()
            );
        }
        let mut found: Vec<PathBuf> = Vec::new();
        for e in fs::read_dir(a).with_context(|| format!("{}: cannot list", a.display()))? {
            let p = e
                .with_context(|| format!("{}: cannot list", a.display()))?
                .path();
            if matches!(input::detect(&p), Ok(Some(_))) {
                found.push(p);
            }
        }
        if found.is_empty() {
            anyhow::bail!("{}: holds no checkpoints", a.display());
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Distinct output directory names for the inputs, in order.
pub fn output_names(inputs: &[PathBuf]) -> Vec<String> {
    let mut used = BTreeSet::new();
    inputs
        .iter()
        .map(|p| {
            let base = input::output_name(p);
            let mut name = base.clone();
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// What identifies an input's contents cheaply: sizes and modification
/// times of the file, or of a directory's files.
fn fingerprint(path: &Path) -> Result<String> {
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
            let e = e?;
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

fn read_done(dir: &Path) -> Option<Done> {
    serde_json::from_slice(&fs::read(dir.join(DONE_MARKER)).ok()?).ok()
}

/// Whether a previous run left this input's cores complete.
fn complete(dir: &Path, fp: &str) -> Option<Done> {
    let done = read_done(dir)?;
    let intact = done
        .cores
        .iter()
        .all(|c| fs::metadata(&c.path).is_ok_and(|m| m.len() == c.size));
    (done.fingerprint == fp && intact).then_some(done)
}

fn convert_one(path: &Path, out: &Path, opts: &BatchOptions) -> InputSummary {
    let start = Instant::now();
    let mut s = InputSummary::new(path, out);
    let result = (|| -> Result<()> {
        let fp = fingerprint(path)?;
        if !opts.force {
            if let Some(done) = complete(out, &fp) {
                s.status = "skipped".into();
                s.processes = done.processes;
                s.cores = done.cores;
                s.zombies = done.zombies;
                return Ok(());
            }
        }
        let _ = fs::remove_file(out.join(DONE_MARKER));
        let inp = input::open(
            path,
            &OpenOptions {
                spill_dir: opts.spill_dir.clone(),
            },
        )?;
        s.processes = inp.checkpoint.tree.len();
        // Cores already in this input's directory come from an earlier,
        // unfinished run of the same input: replace them.
        let copts = ConvertOptions {
            pids: Vec::new(),
            root: opts.root.clone(),
            force: true,
        };
        let reports = convert::convert_input(&inp, out, &copts, &mut |_| {})?;
        s.add_reports(&reports)?;
        let done = Done {
            fingerprint: fp,
            processes: s.processes,
            cores: s.cores.clone(),
            zombies: s.zombies.clone(),
        };
        let marker = out.join(DONE_MARKER);
        fs::write(&marker, serde_json::to_vec_pretty(&done)?)
            .with_context(|| format!("{}: cannot write", marker.display()))?;
        s.status = "ok".into();
        Ok(())
    })();
    if let Err(e) = result {
        s.status = "failed".into();
        s.error = Some(format!("{e:#}"));
    }
    s.duration_ms = start.elapsed().as_millis() as u64;
    tracing::info!(input = %path.display(), status = %s.status, ms = s.duration_ms, "batch input done");
    s
}

/// Converts every input into `out_dir/<name>/`, `opts.jobs` at a time, and
/// writes `out_dir/summary.json`.
pub fn run(inputs: &[PathBuf], out_dir: &Path, opts: &BatchOptions) -> Result<Summary> {
    let start = Instant::now();
    fs::create_dir_all(out_dir).with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let names = output_names(inputs);
    let bar = if opts.progress && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(inputs.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<InputSummary>>> = Mutex::new(vec![None; inputs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(inputs.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = inputs.get(i) else { break };
                bar.set_message(crate::text::escape(&names[i]).into_owned());
                let s = convert_one(path, &out_dir.join(&names[i]), opts);
                if s.status == "failed" {
                    let line = format!(
                        "{}: {}",
                        path.display(),
                        s.error.as_deref().unwrap_or("failed")
                    );
                    bar.println(crate::text::escape(&line));
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(s);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let inputs: Vec<InputSummary> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let count = |st: &str| inputs.iter().filter(|s| s.status == st).count();
    let summary = Summary {
        schema: SCHEMA.into(),
        ok: count("ok"),
        failed: count("failed"),
        skipped: count("skipped"),
        duration_ms: start.elapsed().as_millis() as u64,
        inputs,
    };
    let path = out_dir.join("summary.json");
    fs::write(&path, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(summary)
}
