//! `criu2core batch` ([`run`]) and `criu2core convert` ([`convert()`]):
//! checkpoints into one output directory. With several inputs each gets a
//! directory of its own that is named stably from the input, recorded,
//! resumable, and summarised in `summary.json`.
//!
//! The rules, which the manual's batch page (docs/batch.md) repeats:
//!
//! - An input is known by its canonical path. Its directory is named after
//!   its file name (docs/batch.md gives the rule); when two inputs
//!   of one run would share that name, each gets `-` and the first 8 hex digits of the SHA-256 of its
//!   canonical path appended (16 if even that is taken). A directory that
//!   already holds an input's record (`.criu2core.json`) stays that input's on
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

mod convert;
pub(crate) mod find;
mod job;
mod lock;
pub(crate) mod naming;
mod onepass;
mod record;
mod shard;
mod summary;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;

pub use convert::{convert, ConvertOptions, Listener, Outcome, ProcessReport};
pub(crate) use convert::{convert_input_with, write_core};
use find::expand_inputs;
use job::Job;
pub use lock::{lock, OutLock, Writer};
use naming::{choose_names, occupant, InputId};
use record::{from_record, read_record};
pub use shard::{merge, Merged, Shard, ShardListing, MAX_SHARDS};
pub use summary::{
    CoreOptions, CoreSummary, FileCheck, InputSummary, RunTotals, Status, Summary, ZombieSummary,
};

use crate::cancel::Cancel;
use crate::coredump::CoreCompression;
use crate::error::Error;
use crate::input::ImageRef;
use crate::outdir::OutDir;
use crate::spill::SpillOptions;

/// Identifies the JSON schema of [`Summary`] (docs/batch.schema.json).
pub const SCHEMA: &str = "criu2core.batch/6";
/// Identifies the JSON schema of `convert --json` (docs/convert.schema.json).
pub const CONVERT_SCHEMA: &str = "criu2core.convert/5";
/// The summary batch writes into the output directory.
pub const SUMMARY: &str = "summary.json";

/// Hears how a batch run goes, from its worker threads (the command line
/// draws a progress bar).
pub trait Progress: Send + Sync {
    /// The run has `inputs` inputs to go through.
    fn start(&self, _inputs: usize) {}
    /// A worker started on the input that gets the output directory
    /// `name` (as the input named it: escape it before a terminal).
    fn input_started(&self, _name: &str) {}
    /// An input is done.
    fn input_done(&self) {}
    /// Every input is done.
    fn finish(&self) {}
}

/// Options for a batch run.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct BatchOptions {
    /// Worker threads (at least 1).
    pub jobs: usize,
    /// Convert inputs again even when their cores are complete, and replace
    /// cores made with other options.
    pub force: bool,
    /// Root filesystem for file-backed pages.
    pub root: Option<PathBuf>,
    /// The containers' image, for file-backed pages (not with `root`).
    pub image: Option<ImageRef>,
    /// Where to write the files the cores map, for gdb's `set sysroot`.
    pub sysroot: Option<PathBuf>,
    /// Where compressed archives are unpacked, and how much each may.
    pub spill: SpillOptions,
    /// Hears how the run goes.
    pub progress: Option<Arc<dyn Progress>>,
    /// Stops the run: no new input is started, the current ones stop.
    pub cancel: Cancel,
    /// How cores are stored (`--compress`).
    pub compression: CoreCompression,
    /// Convert only this shard's inputs, and write its summary
    /// (`summary-K-of-N.json`) rather than summary.json.
    pub shard: Option<Shard>,
    /// The output directory's lock, already held (watch holds it for its
    /// whole run); without it (or with another directory's, or another
    /// writer's), [`run`] takes the lock itself.
    pub lock: Option<Arc<OutLock>>,
}

impl std::fmt::Debug for BatchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchOptions")
            .field("jobs", &self.jobs)
            .field("force", &self.force)
            .field("root", &self.root)
            .field("image", &self.image)
            .field("sysroot", &self.sysroot)
            .field("spill", &self.spill)
            .field("compression", &self.compression)
            .field("shard", &self.shard)
            .field("progress", &self.progress.is_some())
            .field("lock", &self.lock.as_ref().map(|l| l.dir()))
            .finish()
    }
}

/// A path made absolute: canonical where it can be resolved. An
/// object-storage URL is kept, normalized.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    if let Some(url) = crate::blobio::url_of(p) {
        return PathBuf::from(crate::blobio::normalize_url(url));
    }
    fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|_| p.to_path_buf())
}

/// The inputs, identified, each once, in their first order.
pub(crate) fn unique_ids<'a>(paths: impl Iterator<Item = &'a PathBuf>) -> Vec<InputId> {
    let mut seen = HashSet::new();
    paths
        .map(|p| InputId::new(p))
        .filter(|id| seen.insert(id.sha256.clone()))
        .collect()
}

pub(crate) fn no_name(id: &InputId, options: CoreOptions) -> InputSummary {
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
///
/// ```
/// use criu2core::batch::{self, BatchOptions};
///
/// let (checkpoints, out) = (tempfile::tempdir()?, tempfile::tempdir()?);
/// std::fs::copy("gdb-fixtures/example.tar.zst", checkpoints.path().join("web.tar.zst"))?;
/// // A directory is searched for checkpoints.
/// let inputs = [checkpoints.path().to_path_buf()];
/// let mut opts = BatchOptions::default();
/// opts.jobs = 2;
/// let first = batch::run(&inputs, out.path(), &opts)?;
/// assert_eq!((first.summary.run.ok, first.summary.run.failed), (1, 0));
/// assert!(out.path().join("web/core.12155").is_file());
/// // A second run finds the cores complete.
/// let again = batch::run(&inputs, out.path(), &opts)?;
/// assert_eq!(again.summary.run.skipped, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(args: &[PathBuf], out_dir: &Path, opts: &BatchOptions) -> crate::Result<BatchRun> {
    run_batch(args, out_dir, opts).map_err(Error::new)
}

fn run_batch(args: &[PathBuf], out_dir: &Path, opts: &BatchOptions) -> Result<BatchRun> {
    let start = Instant::now();
    convert::check_file_options(opts.root.as_deref(), opts.image.as_ref())?;
    let out = OutDir::create(out_dir)?;
    let summary_name = opts.shard.map_or(SUMMARY.into(), |s| s.summary_name());
    // Shards of one split write into one directory at once, each into
    // its own inputs' directories; anything else writes alone.
    let writer = opts
        .shard
        .map_or(Writer::Whole, |s| Writer::Shards(s.count));
    let _own = match &opts.lock {
        Some(l) if l.dir() == out.path() && l.writer() == writer => None,
        _ => Some(lock::take(&out, writer, "batch")?),
    };
    // Only batch's own, and those of runs that have ended: a single-input
    // convert may be writing cores here.
    out.remove_partials(Some(&summary_name))?;
    out.remove_stale_partials();
    let options = CoreOptions::new(opts.root.as_deref(), opts.image.as_ref(), &[]);
    let (good, problems, mut listed) = listing(args, &out, &options, opts.shard);
    let ids = unique_ids(good.iter());
    let refs: Vec<&InputId> = ids.iter().collect();
    // Named over the whole listing, so that every shard names every input
    // alike and no two shards' inputs take one name.
    let names = choose_names(&refs, &mut |n| occupant(&out, n));
    listed.extend(ids.iter().map(|id| id.path.display().to_string()));
    let (ids, names): (Vec<InputId>, Vec<Option<String>>) = ids
        .into_iter()
        .zip(names)
        .filter(|(id, _)| opts.shard.is_none_or(|s| s.owns(&id.sha256)))
        .unzip();
    let mut this_run = convert_all(&ids, &names, &out, &options, opts);
    this_run.extend(problems);
    let count = |v: &[InputSummary], st: Status| v.iter().filter(|s| s.status == st).count();
    let run = RunTotals {
        inputs: this_run.len(),
        ok: count(&this_run, Status::Ok),
        failed: count(&this_run, Status::Failed),
        skipped: count(&this_run, Status::Skipped),
        duration_ms: start.elapsed().as_millis() as u64,
    };
    let inputs = match opts.shard {
        // Other shards are writing their directories: a shard reports its
        // own inputs, and `criu2core summary` merges.
        Some(_) => by_output(this_run.clone()),
        // Whatever goes wrong, a summary is written: this run's inputs
        // at least.
        None => everything_in(&out, this_run.clone()).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "cannot list the output directory; the summary has this run's inputs alone");
            by_output(this_run.clone())
        }),
    };
    listed.sort();
    listed.dedup();
    let summary = Summary {
        schema: SCHEMA.into(),
        out_dir: out.path().display().to_string(),
        ok: count(&inputs, Status::Ok),
        failed: count(&inputs, Status::Failed),
        skipped: count(&inputs, Status::Skipped),
        run,
        missing: Vec::new(),
        shard: opts.shard.map(|shard| ShardListing { shard, listed }),
        inputs,
    };
    out.write_file(&summary_name, &serde_json::to_vec_pretty(&summary)?)?;
    Ok(BatchRun { summary, this_run })
}

/// What `args` name: the inputs found, the failed entries of those that
/// are no input (a shard's own alone), and the identity of every one.
fn listing(
    args: &[PathBuf],
    out: &OutDir,
    options: &CoreOptions,
    shard: Option<Shard>,
) -> (Vec<PathBuf>, Vec<InputSummary>, Vec<String>) {
    let mut problems = Vec::new();
    let mut good = Vec::new();
    let mut listed = Vec::new();
    for f in expand_inputs(args, Some(out.path())) {
        match f.problem {
            Some(p) => {
                let id = InputId::new(&f.path);
                listed.push(id.path.display().to_string());
                if shard.is_some_and(|s| !s.owns(&id.sha256)) {
                    continue;
                }
                let mut s = InputSummary::new(&id.path, None, options.clone());
                s.error = Some(p);
                problems.push(s);
            }
            None => good.push(f.path),
        }
    }
    (good, problems, listed)
}

/// `entries` sorted by output directory, then input.
fn by_output(mut entries: Vec<InputSummary>) -> Vec<InputSummary> {
    entries.sort_by(|a, b| (&a.output, &a.input).cmp(&(&b.output, &b.input)));
    entries
}

/// Converts the inputs `ids` into the directories `names` gives them,
/// `opts.jobs` at a time; returns how each ended, in no particular order
/// (none of those a cancellation left unstarted).
fn convert_all(
    ids: &[InputId],
    names: &[Option<String>],
    out: &OutDir,
    options: &CoreOptions,
    opts: &BatchOptions,
) -> Vec<InputSummary> {
    let progress = opts.progress.as_deref();
    if let Some(p) = progress {
        p.start(ids.len());
    }
    let convert = ConvertOptions {
        pids: Vec::new(),
        root: opts.root.clone(),
        image: opts.image.clone(),
        sysroot: opts.sysroot.clone(),
        force: true,
        spill: opts.spill.clone(),
        cancel: opts.cancel.clone(),
        compression: opts.compression,
        sysroot_sub: None,
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
                let job = || match &names[i] {
                    None => no_name(id, options.clone()),
                    Some(name) => {
                        if let Some(p) = progress {
                            p.input_started(name);
                        }
                        Job {
                            id,
                            out,
                            name,
                            options,
                            convert: convert.clone(),
                            batch: true,
                            force: opts.force,
                        }
                        .run(&mut ())
                    }
                };
                // The conversion itself is guarded; this guards the rest
                // (records, names), so that a summary is always written.
                let s = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                    .unwrap_or_else(|_| {
                        let mut s = InputSummary::new(&id.path, None, options.clone());
                        s.error = Some(format!(
                            "{}: criu2core failed on this input (an internal error, a panic); please report it",
                            id.path.display()
                        ));
                        s
                    });
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(s);
                if let Some(p) = progress {
                    p.input_done();
                }
            });
        }
    });
    if let Some(p) = progress {
        p.finish();
    }
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
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
    for name in out.subdirs()? {
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
