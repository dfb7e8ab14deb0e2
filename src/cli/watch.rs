//! `criu2core watch DIR -o OUT`: converts each checkpoint archive that
//! appears in DIR once it is complete, as a DaemonSet does on each node's
//! /var/lib/kubelet/checkpoints.
//!
//! The kubelet writes an archive in place, under its final name, so an
//! archive is taken only once it is complete: its writer has closed it
//! (inotify's IN_CLOSE_WRITE, where a write, IN_MODIFY, was seen) and its
//! size and modification time have stayed the same for `--settle`
//! seconds. Any other arrival (created by a link, renamed into DIR, its
//! mode changed: IN_CREATE, IN_MOVED_TO, IN_ATTRIB) waits for size and
//! modification time alone. A writer silent for a whole `--rescan` period
//! is taken to be gone, and a queue overflow (closes may be lost) clears
//! every file's writer. Each archive is then converted by one batch run
//! of its own, so it gets its directory, record and summary entry as
//! batch gives them; a file is converted once per state it is seen in,
//! and after a restart the records say what is done (the first scan finds
//! it complete and skips it). The output directory's lock is held for the
//! whole watch: no batch writes there meanwhile.
//!
//! Bounded: events go through a queue of [`QUEUE`] (past it, they are
//! dropped and DIR is scanned again, as after inotify's own overflow); at
//! most [`MAX_TRACKED`] files are tracked; DIR is watched alone, not its
//! subdirectories (the kubelet writes the archives directly into it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use criu2core::batch::{self, BatchOptions, Status};
use criu2core::Cancel;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};

use super::args::WatchArgs;
use super::output::{emit_line, error_line};

/// Events queued at most between the watcher and the loop.
pub const QUEUE: usize = 4096;
/// Files tracked at most (a directory with more is refused at the scan).
pub const MAX_TRACKED: usize = 100_000;

/// What is known of one file in DIR.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// Size and modification time when last looked at.
    state: (u64, Option<SystemTime>),
    /// Since when that state has held.
    since: Instant,
    /// A write was seen and no close after it yet.
    open_for_write: bool,
    /// The state it was last converted (or found no archive) in.
    done: Option<(u64, Option<SystemTime>)>,
}

/// The file's size and modification time, if it is a regular file.
fn state_of(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    m.is_file().then(|| (m.len(), m.modified().ok()))
}

/// The batch options each conversion runs with, holding OUT_DIR's lock;
/// `--settle`; `--rescan` (none for 0).
fn options(
    args: &WatchArgs,
    cancel: &Cancel,
) -> Result<(BatchOptions, Duration, Option<Duration>)> {
    if !args.settle.is_finite() || args.settle < 0.0 || args.settle > 86_400.0 {
        bail!("--settle: from 0 to 86400 seconds");
    }
    if !args.rescan.is_finite() || args.rescan < 0.0 || args.rescan > 86_400.0 {
        bail!("--rescan: from 0 to 86400 seconds");
    }
    let settle = Duration::from_secs_f64(args.settle);
    let rescan = (args.rescan > 0.0).then(|| Duration::from_secs_f64(args.rescan));
    let mut opts = BatchOptions::default();
    opts.jobs = 1;
    opts.root.clone_from(&args.root);
    opts.spill = args.spill.options();
    opts.cancel = cancel.clone();
    opts.compression = args.compress.unwrap_or_default();
    // Held for the whole watch: each conversion's batch run uses it.
    opts.lock = Some(Arc::new(batch::lock(
        &args.out_dir,
        batch::Writer::Whole,
        "watch",
    )?));
    Ok((opts, settle, rescan))
}

/// Runs until `cancel` is set (or, with `--once`, until DIR's archives are
/// converted); true if every conversion succeeded.
pub fn watch(args: &WatchArgs, cancel: &Cancel) -> Result<bool> {
    let dir = std::fs::canonicalize(&args.dir)
        .with_context(|| format!("{}: cannot open", args.dir.display()))?;
    if !dir.is_dir() {
        bail!("{}: not a directory", args.dir.display());
    }
    let (opts, settle, rescan) = options(args, cancel)?;
    let (tx, rx) = sync_channel(QUEUE);
    let overflow = Arc::new(AtomicBool::new(false));
    let lost = overflow.clone();
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if tx.try_send(e).is_err() {
            lost.store(true, Ordering::SeqCst);
        }
    })
    .context("cannot start inotify")?;
    if !args.once {
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("{}: cannot watch", dir.display()))?;
    }
    let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
    let mut all_ok = true;
    let mut last_scan = None::<Instant>;
    loop {
        if cancel.is_cancelled() {
            return Ok(all_ok);
        }
        let now = Instant::now();
        let due = last_scan.is_none_or(|t| rescan.is_some_and(|r| now.duration_since(t) >= r));
        let lost = overflow.swap(false, Ordering::SeqCst);
        if due || lost {
            // Events lost: a close may be among them.
            let silent = if lost { Some(Duration::ZERO) } else { rescan };
            scan(&dir, &mut seen, silent)?;
            last_scan = Some(now);
        }
        all_ok &= convert_settled(&mut seen, settle, args, &opts);
        if args.once || cancel.is_cancelled() {
            return Ok(all_ok);
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => {
                note(&dir, event, &mut seen, &overflow);
                // Take what else is queued, without waiting.
                while let Ok(e) = rx.try_recv() {
                    note(&dir, e, &mut seen, &overflow);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("the inotify watcher stopped"),
        }
    }
}

/// Converts what has settled, oldest first (until cancelled); true unless
/// a conversion failed.
fn convert_settled(
    seen: &mut HashMap<PathBuf, Seen>,
    settle: Duration,
    args: &WatchArgs,
    opts: &BatchOptions,
) -> bool {
    let mut ready: Vec<PathBuf> = seen
        .iter()
        .filter(|(_, s)| {
            !s.open_for_write
                && s.done != Some(s.state)
                && (args.once || s.since.elapsed() >= settle)
        })
        .map(|(p, _)| p.clone())
        .collect();
    ready.sort();
    let mut all_ok = true;
    for path in ready {
        if opts.cancel.is_cancelled() {
            break;
        }
        let Some(s) = seen.get_mut(&path) else {
            continue;
        };
        // Changed since it was last looked at: not settled after all.
        let now_state = state_of(&path);
        if now_state != Some(s.state) {
            match now_state {
                Some(st) => {
                    s.state = st;
                    s.since = Instant::now();
                }
                None => {
                    seen.remove(&path);
                }
            }
            continue;
        }
        s.done = Some(s.state);
        all_ok &= convert(&path, args, opts);
    }
    all_ok
}

/// Notes what an event says of DIR's files.
fn note(
    dir: &Path,
    event: notify::Result<notify::Event>,
    seen: &mut HashMap<PathBuf, Seen>,
    overflow: &AtomicBool,
) {
    let event = match event {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "inotify error; scanning again");
            overflow.store(true, Ordering::SeqCst);
            return;
        }
    };
    if event.need_rescan() {
        overflow.store(true, Ordering::SeqCst);
    }
    for path in &event.paths {
        if path.parent() != Some(dir) {
            continue;
        }
        let Some(state) = state_of(path) else {
            seen.remove(path);
            continue;
        };
        if !seen.contains_key(path) && seen.len() >= MAX_TRACKED {
            tracing::warn!(path = %path.display(), "too many files tracked; left for a later scan");
            continue;
        }
        let s = seen.entry(path.clone()).or_insert_with(|| Seen {
            state,
            since: Instant::now(),
            open_for_write: false,
            done: None,
        });
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => s.open_for_write = false,
            // A write: its writer may keep it open for more.
            EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => s.open_for_write = true,
            // Anything else (made by a link, renamed in, its mode changed)
            // has no writer to wait for: it settles on size and time.
            _ => {}
        }
        if s.state != state {
            s.state = state;
            s.since = Instant::now();
        }
    }
}

/// Looks at every regular file in DIR (not below it). A file whose
/// writer has left it unchanged for `silent` is taken as closed.
fn scan(dir: &Path, seen: &mut HashMap<PathBuf, Seen>, silent: Option<Duration>) -> Result<()> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let e = e.with_context(|| format!("{}: cannot list", dir.display()))?;
        if e.file_type().is_ok_and(|t| t.is_file()) {
            names.push(e.path());
            if names.len() > MAX_TRACKED {
                bail!(
                    "{}: more than {MAX_TRACKED} files; not watched",
                    dir.display()
                );
            }
        }
    }
    let present: std::collections::HashSet<&PathBuf> = names.iter().collect();
    seen.retain(|p, _| present.contains(p));
    for path in names {
        let Some(state) = state_of(&path) else {
            continue;
        };
        let s = seen.entry(path).or_insert_with(|| Seen {
            state,
            since: Instant::now(),
            open_for_write: false,
            done: None,
        });
        if s.state != state {
            s.state = state;
            s.since = Instant::now();
        } else if silent.is_some_and(|d| s.since.elapsed() >= d) {
            s.open_for_write = false;
        }
    }
    Ok(())
}

/// Converts one settled file (if it is a checkpoint archive) by a batch
/// run of its own; true unless it failed.
fn convert(path: &Path, args: &WatchArgs, opts: &BatchOptions) -> bool {
    match criu2core::InputKind::detect(path) {
        Ok(Some(criu2core::InputKind::Archive(_))) => {}
        // Not an archive (yet, or at all): looked at again once it changes.
        _ => return true,
    }
    let done = match batch::run(&[path.to_path_buf()], &args.out_dir, opts) {
        Ok(d) => d,
        Err(e) => {
            error_line(&format!("{}: {e:#}", path.display()));
            return false;
        }
    };
    let mut ok = true;
    for s in &done.this_run {
        match s.status {
            Status::Failed => {
                ok = false;
                error_line(&super::output::input_error(&s.input, s.error.as_deref()));
            }
            _ if args.quiet => {}
            status => emit_line(
                super::text::escape(&format!(
                    "{}: {} ({} core{}) in {}",
                    s.input,
                    if status == Status::Skipped {
                        "already converted"
                    } else {
                        "converted"
                    },
                    s.cores.len(),
                    if s.cores.len() == 1 { "" } else { "s" },
                    s.output.as_deref().unwrap_or("-")
                ))
                .into_owned(),
            ),
        }
    }
    ok
}
