//! `criu2core batch` (and `convert` with several inputs): many checkpoints
//! into one output directory, each in a directory of its own that is named
//! stably from the input, recorded, resumable, and summarised in
//! `summary.json`.
//!
//! The rules, which README's batch section repeats:
//!
//! - An input is known by its canonical path. Its directory is named by
//!   [`input::output_name`]; when two inputs of one run would share that
//!   name, each gets `-` and the first 8 hex digits of the SHA-256 of its
//!   canonical path appended (16 if even that is taken). A directory that
//!   already holds an input's record ([`RECORD`]) stays that input's on
//!   every later run, whatever the order or the other inputs; a directory
//!   that holds another input's record, or anything without a record, is
//!   never written into.
//! - The record says which input (SHA-256 of its canonical path, and a
//!   fingerprint of sizes and modification times) and which options (those
//!   that change a core: `--root`, `--pid`) made the cores, and whether the
//!   conversion finished. Same input, same options, finished, cores intact:
//!   skipped. Different options: refused without `--force`. Changed input
//!   or unfinished run: converted again, after removing the old cores so
//!   that old and new never mix.
//! - `summary.json` describes every input that has a directory in the
//!   output directory (from the records), and this run's inputs that have
//!   none because they failed before writing anything. Paths in it are
//!   absolute. batch's own files in the output directory are
//!   `summary.json` and dot-names, which no input's directory can take.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cancel::Cancel;
use crate::convert::{self, ConvertOptions, Outcome, ProcessReport};
use crate::input::{self, OpenOptions};
use crate::outdir::OutDir;

/// Identifies the JSON schema of [`Summary`] (docs/batch.schema.json).
pub const SCHEMA: &str = "criu2core.batch/2";
/// Identifies the JSON schema of `convert --json` (docs/convert.schema.json).
pub const CONVERT_SCHEMA: &str = "criu2core.convert/2";
/// The summary batch writes into the output directory.
pub const SUMMARY: &str = "summary.json";
/// The record in each input's output directory.
pub const RECORD: &str = ".criu2core.json";
/// Identifies the format of a [`RECORD`].
const RECORD_SCHEMA: &str = "criu2core.record/1";
/// Largest record read back.
const RECORD_LIMIT: u64 = 16 << 20;
/// How many directory levels below a directory named on the command line
/// are searched for checkpoints.
pub const MAX_DEPTH: usize = 8;
/// Most checkpoints taken from one directory named on the command line.
pub const MAX_FOUND: usize = 100_000;

/// Options for a batch run.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// Worker threads (at least 1).
    pub jobs: usize,
    /// Convert inputs again even when their cores are complete, and replace
    /// cores made with other options.
    pub force: bool,
    /// Root filesystem for file-backed pages.
    pub root: Option<PathBuf>,
    /// Where compressed archives are unpacked.
    pub spill_dir: Option<PathBuf>,
    /// The most each compressed archive may unpack there (default: half
    /// of the space free there).
    pub max_spill: Option<u64>,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Stops the run: no new input is started, the current ones stop.
    pub cancel: Cancel,
}

/// The options that change a core, as recorded beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreOptions {
    /// `--root`, as a canonical path.
    pub root: Option<String>,
    /// `--pid`s, sorted; empty for all processes.
    pub pids: Vec<u32>,
}

impl CoreOptions {
    /// The options of a conversion with `root` and `pids`.
    pub fn new(root: Option<&Path>, pids: &[u32]) -> CoreOptions {
        let mut pids = pids.to_vec();
        pids.sort_unstable();
        pids.dedup();
        CoreOptions {
            root: root.map(|r| absolute(r).display().to_string()),
            pids,
        }
    }

    fn describe(&self) -> String {
        let mut parts = vec![match &self.root {
            Some(r) => format!("--root {r}"),
            None => "no --root".into(),
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSummary {
    /// The input's canonical path (absolute where it cannot be resolved).
    pub input: String,
    /// The absolute path of the directory its cores are in; `None` when
    /// it has none.
    pub output: Option<String>,
    /// "ok", "failed" or "skipped" (already complete).
    pub status: String,
    /// The options its cores were (or were to be) made with.
    pub options: CoreOptions,
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
    /// A summary of `input` converted into `output` with `options`, with
    /// nothing done yet.
    pub fn new(input: &Path, output: Option<&Path>, options: CoreOptions) -> InputSummary {
        InputSummary {
            input: input.display().to_string(),
            output: output.map(|o| o.display().to_string()),
            status: "failed".into(),
            options,
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
                    path: absolute(&stats.path).display().to_string(),
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
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The output directory, absolute.
    pub out_dir: String,
    /// Entries of `inputs` whose status is "ok".
    pub ok: usize,
    /// Entries whose status is "failed".
    pub failed: usize,
    /// Entries whose status is "skipped".
    pub skipped: usize,
    /// The run that wrote this summary.
    pub run: RunTotals,
    /// Per input, sorted by output directory: this run's inputs as they
    /// ended, the others as their last run left them.
    pub inputs: Vec<InputSummary>,
}

/// The record in each input's output directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    schema: String,
    /// SHA-256 (hex) of the input's canonical path.
    input_sha256: String,
    /// What the input looked like (see [`fingerprint`]).
    fingerprint: String,
    /// Whether every core was written.
    complete: bool,
    /// The criu2core version that wrote it.
    version: String,
    /// The input's entry as its last run left it.
    summary: InputSummary,
}

fn read_record(dir: &OutDir) -> Option<Record> {
    let bytes = dir.read_file(RECORD, RECORD_LIMIT).ok()??;
    serde_json::from_slice::<Record>(&bytes)
        .ok()
        .filter(|r| r.schema == RECORD_SCHEMA)
}

fn write_record(dir: &OutDir, rec: &Record) -> Result<()> {
    dir.write_file(RECORD, &serde_json::to_vec_pretty(rec)?)?;
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// An input as batch knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputId {
    /// Its canonical path (absolute where it cannot be resolved).
    pub path: PathBuf,
    /// SHA-256 (hex) of that path's bytes.
    pub sha256: String,
    /// Its output name before any digest suffix ([`input::output_name`]).
    pub base: String,
}

impl InputId {
    /// Identifies the input at `path`.
    pub fn new(path: &Path) -> InputId {
        let path = absolute(path);
        let digest = Sha256::digest(path.as_os_str().as_bytes());
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        InputId {
            base: input::output_name(&path),
            sha256,
            path,
        }
    }
}

/// What sits under a name in an output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing, or an empty directory.
    Free,
    /// The directory of the input whose canonical path has this SHA-256.
    Input(String),
    /// Anything else: a file, a link, a directory without a record.
    Other,
}

fn occupant(out: &OutDir, name: &str) -> Occupant {
    if out.is_free(name).unwrap_or(false) {
        return Occupant::Free;
    }
    match out.existing_subdir(name) {
        Ok(Some(d)) => match read_record(&d) {
            Some(r) => Occupant::Input(r.input_sha256),
            None if d.is_empty().unwrap_or(false) => Occupant::Free,
            None => Occupant::Other,
        },
        _ => Occupant::Other,
    }
}

/// The names an input may get, in order of preference.
fn candidates(base: &str, sha256: &str) -> [String; 3] {
    let d = |n: usize| sha256.get(..n).unwrap_or(sha256);
    [
        base.to_string(),
        format!("{base}-{}", d(8)),
        format!("{base}-{}", d(16)),
    ]
}

/// Chooses each input's output directory name (see the module's rules),
/// given what occupies a name; `None` where every candidate is taken. The
/// choice depends on the set of inputs and the occupants, never on the
/// inputs' order.
pub fn choose_names(
    inputs: &[&InputId],
    occupied: &mut dyn FnMut(&str) -> Occupant,
) -> Vec<Option<String>> {
    let mut seen: HashMap<String, Occupant> = HashMap::new();
    let mut look = |name: &str| {
        seen.entry(name.to_string())
            .or_insert_with(|| occupied(name))
            .clone()
    };
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by(|&a, &b| {
        (&inputs[a].sha256, &inputs[a].base).cmp(&(&inputs[b].sha256, &inputs[b].base))
    });
    let mut per_base: HashMap<&str, usize> = HashMap::new();
    for i in inputs {
        *per_base.entry(i.base.as_str()).or_default() += 1;
    }
    let mut taken: HashSet<String> = HashSet::new();
    let mut names = vec![None; inputs.len()];
    // Directories inputs already have keep them.
    for &i in &order {
        let id = inputs[i];
        for c in candidates(&id.base, &id.sha256) {
            if !taken.contains(&c) && look(&c) == Occupant::Input(id.sha256.clone()) {
                taken.insert(c.clone());
                names[i] = Some(c);
                break;
            }
        }
    }
    for &i in &order {
        if names[i].is_some() {
            continue;
        }
        let id = inputs[i];
        let shared = per_base[id.base.as_str()] > 1;
        for c in candidates(&id.base, &id.sha256)
            .into_iter()
            .skip(usize::from(shared))
        {
            if !taken.contains(&c) && look(&c) == Occupant::Free {
                taken.insert(c.clone());
                names[i] = Some(c);
                break;
            }
        }
    }
    names
}

/// An input found on the command line, or why it cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path.
    pub path: PathBuf,
    /// Why it is no checkpoint, if it is not.
    pub problem: Option<String>,
}

/// Expands the command line's inputs: checkpoints as they are, and the
/// checkpoints found in directories that are not one, down to
/// [`MAX_DEPTH`] levels, in name order. A directory that is a checkpoint is
/// not searched further; symbolic links inside a directory are not
/// followed; `skip` (the output directory) is not searched. An argument
/// that is no checkpoint and no directory holding any is returned with its
/// problem.
pub fn expand_inputs(args: &[PathBuf], skip: Option<&Path>) -> Vec<Found> {
    let skip = skip
        .and_then(|p| fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()));
    let mut out = Vec::new();
    for a in args {
        let problem = match input::detect(a) {
            Ok(Some(_)) => None,
            Err(e) => Some(format!("{e:#}")),
            Ok(None) if fs::metadata(a).is_ok_and(|m| m.is_dir()) => {
                let mut found = Vec::new();
                let full = walk(a, 1, skip, &mut found);
                let n = found.len();
                out.extend(found.into_iter().map(|path| Found {
                    path,
                    problem: None,
                }));
                if full {
                    Some(format!(
                        "{}: more than {MAX_FOUND} checkpoints; the rest are left out",
                        a.display()
                    ))
                } else if n == 0 {
                    Some(format!(
                        "{}: holds no checkpoints ({MAX_DEPTH} levels searched, links not followed)",
                        a.display()
                    ))
                } else {
                    continue;
                }
            }
            Ok(None) => Some(format!(
                "{}: not a checkpoint (image directory or archive) nor a directory holding any",
                a.display()
            )),
        };
        out.push(Found {
            path: a.clone(),
            problem,
        });
    }
    out
}

/// Adds the checkpoints under `dir` (at `depth`) to `found`; true if it
/// stopped at [`MAX_FOUND`].
fn walk(dir: &Path, depth: usize, skip: Option<(u64, u64)>, found: &mut Vec<PathBuf>) -> bool {
    let mut entries: Vec<(PathBuf, fs::FileType)> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
            .collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list; skipped");
            return false;
        }
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, ty) in entries {
        if found.len() >= MAX_FOUND {
            return true;
        }
        if ty.is_dir() {
            if skip.is_some() && fs::metadata(&path).ok().map(|m| (m.dev(), m.ino())) == skip {
                continue;
            }
            match input::detect(&path) {
                Ok(Some(_)) => found.push(path),
                Ok(None) if depth < MAX_DEPTH => {
                    if walk(&path, depth + 1, skip, found) {
                        return true;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "skipped")
                }
            }
        } else if ty.is_file() {
            match input::detect(&path) {
                Ok(Some(_)) => found.push(path),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "skipped")
                }
            }
        }
        // Links, fifos, devices and sockets are never opened.
    }
    false
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
fn from_record(rec: &Record, dir: &OutDir) -> InputSummary {
    let mut s = rec.summary.clone();
    s.output = Some(dir.path().display().to_string());
    for c in &mut s.cores {
        c.path = dir
            .path()
            .join(format!("core.{}", c.pid))
            .display()
            .to_string();
    }
    s
}

/// Whether `name` is a core's name (`core.<digits>`).
fn is_core_name(name: &str) -> bool {
    name.strip_prefix("core.")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the cores a record lists are there, with their sizes.
fn intact(dir: &OutDir, rec: &Record) -> bool {
    rec.summary.cores.iter().all(|c| {
        dir.join(&format!("core.{}", c.pid))
            .ok()
            .and_then(|p| fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.len() == c.size)
    })
}

/// How an input is converted into its own directory.
struct Job<'a> {
    id: &'a InputId,
    out: &'a OutDir,
    name: &'a str,
    options: &'a CoreOptions,
    convert: ConvertOptions,
    spill_dir: Option<PathBuf>,
    max_spill: Option<u64>,
    /// batch: skip what is complete, replace cores of the same input, and
    /// refuse other options without force. convert: none of that.
    batch: bool,
    force: bool,
}

impl Job<'_> {
    /// Converts the input; `warn` hears what is wrong with it as a whole,
    /// `report` each process as it is done.
    fn run(
        &self,
        report: &mut dyn FnMut(&ProcessReport),
        warn: &mut dyn FnMut(&str),
    ) -> InputSummary {
        let start = Instant::now();
        let dir_path = self.out.path().join(self.name);
        let mut s = InputSummary::new(&self.id.path, Some(&dir_path), self.options.clone());
        let mut claimed = None;
        let mut fresh = false;
        let result = self.convert(&mut s, &mut claimed, &mut fresh, report, warn);
        if let Err(e) = result {
            s.status = "failed".into();
            s.error = Some(if self.convert.cancel.is_cancelled() {
                "interrupted".into()
            } else {
                format!("{e:#}")
            });
        }
        s.duration_ms = start.elapsed().as_millis() as u64;
        if let Some(dir) = claimed {
            self.finish(&dir, &mut s, fresh);
        }
        if s.output.as_deref().is_some_and(|o| !Path::new(o).is_dir()) {
            s.output = None;
        }
        tracing::info!(input = %s.input, status = %s.status, ms = s.duration_ms, "input done");
        s
    }

    /// Converts, leaving in `claimed` the directory once it holds this
    /// input's record (`fresh` if this run made it).
    fn convert(
        &self,
        s: &mut InputSummary,
        claimed: &mut Option<OutDir>,
        fresh: &mut bool,
        report: &mut dyn FnMut(&ProcessReport),
        warn: &mut dyn FnMut(&str),
    ) -> Result<()> {
        self.convert.cancel.check()?;
        let fp = fingerprint(&self.id.path)?;
        let existing = self.out.existing_subdir(self.name)?;
        let previous = existing.as_ref().and_then(read_record);
        if let (Some(dir), Some(rec)) = (&existing, &previous) {
            if rec.input_sha256 != self.id.sha256 {
                bail!(
                    "{}: holds the cores of another input ({}); left alone",
                    dir.path().display(),
                    rec.summary.input
                );
            }
            // Only this run writes here now (the output directory is locked).
            dir.remove_partials(None)?;
            if self.batch && rec.summary.options != *self.options && !self.force {
                // The cores there stay this input's, as they were made.
                *s = from_record(rec, dir);
                bail!(
                    "{}: holds cores of this input made with {}; this run asks for {}: use --force to replace them",
                    dir.path().display(),
                    rec.summary.options.describe(),
                    self.options.describe()
                );
            }
            if self.batch
                && rec.complete
                && rec.fingerprint == fp
                && !self.force
                && intact(dir, rec)
            {
                *s = from_record(rec, dir);
                s.status = "skipped".into();
                s.error = None;
                return Ok(());
            }
        }
        let dir = self.out.subdir(self.name)?;
        *fresh = previous.is_none();
        if self.batch {
            // Cores of an earlier conversion of this input (changed since,
            // other options, or unfinished) must not mix with the new ones.
            for f in dir.files()?.iter().filter(|f| is_core_name(f)) {
                dir.remove_file(f)?;
            }
        }
        let mut pending = s.clone();
        pending.error = Some("not finished".into());
        write_record(
            &dir,
            &Record {
                schema: RECORD_SCHEMA.into(),
                input_sha256: self.id.sha256.clone(),
                fingerprint: fp,
                complete: false,
                version: env!("CARGO_PKG_VERSION").into(),
                summary: pending,
            },
        )?;
        let dir = claimed.insert(dir);
        let inp = input::open(
            &self.id.path,
            &OpenOptions {
                spill_dir: self.spill_dir.clone(),
                max_spill: self.max_spill,
                pages: input::PageUse::All,
                cancel: self.convert.cancel.clone(),
            },
        )?;
        s.processes = inp.checkpoint.tree.len();
        inp.warnings.iter().for_each(|w| warn(w));
        s.warnings.extend(inp.warnings.iter().cloned());
        let reports = convert::convert_input(&inp, dir, &self.convert, report)?;
        s.add_reports(&reports)?;
        s.status = "ok".into();
        Ok(())
    }

    /// Leaves the record saying how the input ended; a directory this run
    /// made and wrote no core into is removed again.
    fn finish(&self, dir: &OutDir, s: &mut InputSummary, fresh: bool) {
        let done = || -> Result<()> {
            if fresh && s.cores.is_empty() && s.status == "failed" {
                dir.remove_file(RECORD)?;
                dir.remove_partials(None)?;
                if dir.is_empty()? {
                    fs::remove_dir(dir.path())
                        .with_context(|| format!("{}: cannot remove", dir.path().display()))?;
                }
                return Ok(());
            }
            let Some(mut rec) = read_record(dir) else {
                bail!("{}: its record went missing", dir.path().display());
            };
            rec.complete = s.status == "ok";
            rec.summary = s.clone();
            write_record(dir, &rec)
        };
        if let Err(e) = done() {
            s.status = "failed".into();
            let e = format!("{e:#}");
            s.error = Some(match s.error.take() {
                Some(first) => format!("{first}; {e}"),
                None => e,
            });
        }
    }
}

/// What [`convert_each`] needs besides the inputs.
pub struct EachOptions<'a> {
    /// How to convert each input (force, pids, root, cancel).
    pub convert: ConvertOptions,
    /// Where compressed archives are unpacked.
    pub spill_dir: Option<PathBuf>,
    /// The most each compressed archive may unpack there (default: half
    /// of the space free there).
    pub max_spill: Option<u64>,
    /// Called with what is wrong with an input as a whole (each process's
    /// warnings come with its report).
    pub warn: &'a mut dyn FnMut(&str),
    /// Called as each process is done.
    pub report: &'a mut dyn FnMut(&ProcessReport),
    /// Called for an input that failed as a whole (it could not be
    /// opened, or had no free name).
    pub failed: &'a mut dyn FnMut(&InputSummary),
}

/// `convert`: one input's cores go into `out_dir` itself; several inputs
/// get a directory each, named and recorded as batch names and records
/// them (but nothing is skipped, and existing cores are replaced only with
/// `force`).
pub fn convert_each(
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: EachOptions<'_>,
) -> Result<Vec<InputSummary>> {
    let out = OutDir::create(out_dir)?;
    let options = CoreOptions::new(opts.convert.root.as_deref(), &opts.convert.pids);
    if let [single] = inputs {
        let start = Instant::now();
        let mut s = InputSummary::new(&absolute(single), Some(out.path()), options);
        let result = input::open(
            single,
            &OpenOptions {
                spill_dir: opts.spill_dir.clone(),
                max_spill: opts.max_spill,
                pages: input::PageUse::All,
                cancel: opts.convert.cancel.clone(),
            },
        )
        .and_then(|inp| {
            s.processes = inp.checkpoint.tree.len();
            inp.warnings.iter().for_each(|w| (opts.warn)(w));
            s.warnings.extend(inp.warnings.iter().cloned());
            convert::convert_input(&inp, &out, &opts.convert, opts.report)
        });
        match result {
            Ok(reports) => match s.add_reports(&reports) {
                Ok(()) => s.status = "ok".into(),
                Err(e) => s.error = Some(format!("{e:#}")),
            },
            Err(e) => {
                s.error = Some(format!("{e:#}"));
                (opts.failed)(&s);
            }
        }
        s.duration_ms = start.elapsed().as_millis() as u64;
        return Ok(vec![s]);
    }
    let _lock = out.lock()?;
    let ids = unique_ids(inputs.iter());
    let refs: Vec<&InputId> = ids.iter().collect();
    let names = choose_names(&refs, &mut |n| occupant(&out, n));
    let mut summaries = Vec::new();
    for (id, name) in ids.iter().zip(&names) {
        let s = match name {
            None => no_name(id, options.clone()),
            Some(name) => Job {
                id,
                out: &out,
                name,
                options: &options,
                convert: opts.convert.clone(),
                spill_dir: opts.spill_dir.clone(),
                max_spill: opts.max_spill,
                batch: false,
                force: opts.convert.force,
            }
            .run(opts.report, opts.warn),
        };
        if s.status == "failed" && s.cores.is_empty() {
            (opts.failed)(&s);
        }
        summaries.push(s);
        if opts.convert.cancel.is_cancelled() {
            break;
        }
    }
    Ok(summaries)
}

/// The inputs, identified, each once, in their first order.
fn unique_ids<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Vec<InputId> {
    let mut seen = HashSet::new();
    paths
        .map(|p| InputId::new(p))
        .filter(|id| seen.insert(id.sha256.clone()))
        .collect()
}

fn no_name(id: &InputId, options: CoreOptions) -> InputSummary {
    let mut s = InputSummary::new(&id.path, None, options);
    s.error = Some(format!(
        "{}: no free output directory name ({} and its digest-suffixed forms are taken by other inputs or other files)",
        id.path.display(),
        id.base
    ));
    s
}

/// What a batch run did.
#[derive(Debug, Clone)]
pub struct BatchRun {
    /// What it wrote into summary.json.
    pub summary: Summary,
    /// This run's inputs as they ended, in no particular order.
    pub this_run: Vec<InputSummary>,
}

/// Converts every input (checkpoints, or directories holding them) into
/// `out_dir/<name>/`, `opts.jobs` at a time, and writes
/// `out_dir/summary.json`.
pub fn run(args: &[PathBuf], out_dir: &Path, opts: &BatchOptions) -> Result<BatchRun> {
    let start = Instant::now();
    let out = OutDir::create(out_dir)?;
    let _lock = out.lock()?;
    // Only batch's own: a single-input convert may be writing cores here.
    out.remove_partials(Some(SUMMARY))?;
    let found = expand_inputs(args, Some(out.path()));
    let mut problems: Vec<InputSummary> = Vec::new();
    let options = CoreOptions::new(opts.root.as_deref(), &[]);
    let mut good = Vec::new();
    for f in found {
        match f.problem {
            Some(p) => {
                let mut s = InputSummary::new(&absolute(&f.path), None, options.clone());
                s.error = Some(p);
                problems.push(s);
            }
            None => good.push(f.path),
        }
    }
    let ids = unique_ids(good.iter());
    let refs: Vec<&InputId> = ids.iter().collect();
    let names = choose_names(&refs, &mut |n| occupant(&out, n));
    let bar = if opts.progress && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(ids.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let convert = ConvertOptions {
        pids: Vec::new(),
        root: opts.root.clone(),
        force: true,
        cancel: opts.cancel.clone(),
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<InputSummary>>> = Mutex::new(vec![None; ids.len()]);
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1).min(ids.len().max(1)) {
            scope.spawn(|| loop {
                if opts.cancel.is_cancelled() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(id) = ids.get(i) else { break };
                let s = match &names[i] {
                    None => no_name(id, options.clone()),
                    Some(name) => {
                        bar.set_message(crate::text::escape(name).into_owned());
                        Job {
                            id,
                            out: &out,
                            name,
                            options: &options,
                            convert: convert.clone(),
                            spill_dir: opts.spill_dir.clone(),
                            max_spill: opts.max_spill,
                            batch: true,
                            force: opts.force,
                        }
                        .run(&mut |_| {}, &mut |_| {})
                    }
                };
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(s);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let mut this_run: Vec<InputSummary> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    this_run.extend(problems);
    let count = |v: &[InputSummary], st: &str| v.iter().filter(|s| s.status == st).count();
    let run = RunTotals {
        inputs: this_run.len(),
        ok: count(&this_run, "ok"),
        failed: count(&this_run, "failed"),
        skipped: count(&this_run, "skipped"),
        duration_ms: start.elapsed().as_millis() as u64,
    };
    let inputs = everything_in(&out, this_run.clone())?;
    let summary = Summary {
        schema: SCHEMA.into(),
        out_dir: out.path().display().to_string(),
        ok: count(&inputs, "ok"),
        failed: count(&inputs, "failed"),
        skipped: count(&inputs, "skipped"),
        run,
        inputs,
    };
    out.write_file(SUMMARY, &serde_json::to_vec_pretty(&summary)?)?;
    Ok(BatchRun { summary, this_run })
}

/// This run's entries, and those of every other input with a directory in
/// `out` (as its record says, with paths where `out` is now), sorted by
/// output directory.
fn everything_in(out: &OutDir, this_run: Vec<InputSummary>) -> Result<Vec<InputSummary>> {
    let mut by_output: BTreeMap<(String, String), InputSummary> = BTreeMap::new();
    let mut mine = HashSet::new();
    for s in this_run {
        if let Some(o) = &s.output {
            mine.insert(o.clone());
        }
        by_output.insert((s.output.clone().unwrap_or_default(), s.input.clone()), s);
    }
    let list = || format!("{}: cannot list", out.path().display());
    for e in fs::read_dir(out.path()).with_context(list)? {
        let e = e.with_context(list)?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Ok(Some(dir)) = out.existing_subdir(&name) else {
            continue;
        };
        let output = dir.path().display().to_string();
        if mine.contains(&output) {
            continue;
        }
        let Some(rec) = read_record(&dir) else {
            continue;
        };
        let s = from_record(&rec, &dir);
        by_output.insert((output, s.input.clone()), s);
    }
    Ok(by_output.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(path: &str) -> InputId {
        InputId::new(Path::new(path))
    }

    fn names(ids: &[&InputId], occupants: &[(&str, Occupant)]) -> Vec<Option<String>> {
        let map: HashMap<&str, Occupant> = occupants.iter().cloned().collect();
        choose_names(ids, &mut |n| map.get(n).cloned().unwrap_or(Occupant::Free))
    }

    #[test]
    fn names_do_not_depend_on_the_order_of_the_inputs() {
        let a = id("/nonexistent/a/images");
        let b = id("/nonexistent/b/images");
        let c = id("/nonexistent/c/web.tar.zst");
        let one = names(&[&a, &b, &c], &[]);
        let two = names(&[&c, &b, &a], &[]);
        assert_eq!(one, [two[2].clone(), two[1].clone(), two[0].clone()]);
        assert_eq!(one[2].as_deref(), Some("web"));
        // Both namesakes get digests: neither is favoured.
        assert_eq!(one[0], Some(format!("images-{}", &a.sha256[..8])));
        assert_eq!(one[1], Some(format!("images-{}", &b.sha256[..8])));
    }

    #[test]
    fn an_input_keeps_its_directory_and_others_never_take_it() {
        let a = id("/nonexistent/a/images");
        let b = id("/nonexistent/b/images");
        // An earlier run gave `images` to a.
        let had = [("images", Occupant::Input(a.sha256.clone()))];
        assert_eq!(
            names(&[&b, &a], &had),
            [
                Some(format!("images-{}", &b.sha256[..8])),
                Some("images".into()),
            ]
        );
        // b alone does not take a's directory, nor a stranger's.
        assert_eq!(
            names(&[&b], &had)[0],
            Some(format!("images-{}", &b.sha256[..8]))
        );
        let other = [
            ("images", Occupant::Other),
            (&*format!("images-{}", &b.sha256[..8]), Occupant::Other),
        ];
        assert_eq!(
            names(&[&b], &other)[0],
            Some(format!("images-{}", &b.sha256[..16]))
        );
        let full = [
            ("images", Occupant::Other),
            (&*format!("images-{}", &b.sha256[..8]), Occupant::Other),
            (
                &*format!("images-{}", &b.sha256[..16]),
                Occupant::Input(a.sha256.clone()),
            ),
        ];
        assert_eq!(names(&[&b], &full)[0], None);
    }

    #[test]
    fn core_names() {
        assert!(is_core_name("core.1") && is_core_name("core.4194304"));
        for n in [
            "core.",
            "core",
            "core.1.partial",
            ".core.1",
            "core.-1",
            "score.1",
        ] {
            assert!(!is_core_name(n), "{n}");
        }
    }
}
