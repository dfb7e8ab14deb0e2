//! `criu2core grep`: search the memory of every process of many
//! checkpoints at once, in parallel, with the output in a fixed order
//! (input, pid, address) whatever the number of jobs.
//!
//! Inputs are opened and processes searched by a pool of workers that
//! always take the earliest piece of work there is; each process writes
//! its output into a bounded channel that the printer drains in order, so
//! memory stays bounded however much a process matches, and a process
//! whose turn has not come waits for the printer rather than piling up.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use anyhow::{bail, Context, Result};

use crate::batch::find::expand_inputs;
use crate::cancel::Cancel;
use crate::criu::fds::{FileObject, FileTables, OpenFile, QueuedData};
use crate::error::Error;
use crate::input::ImageRef;
use crate::input::{self, Checkpoint, LoadOptions, OpenOptions, PageUse};
use crate::model::{Loaded, Mapping, Process};
use crate::rootfs::FileView;
use crate::search::{self, Filter, Match, Pattern, SearchOptions};
use crate::spill::SpillOptions;
use crate::stdext::lock;

/// What to report of each process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Each match ([`Event::Match`]; with rules, `Event::Rule`).
    #[default]
    Matches,
    /// The number of matches of each process searched ([`Event::Count`],
    /// `-c`; with rules, `Event::RuleCount` per rule).
    Count,
    /// The processes with a match ([`Event::Listed`], `-l`).
    List,
}

/// Whose memory a find is in.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Who<'a> {
    /// The input, its path as given.
    pub input: &'a str,
    /// The process.
    pub pid: u32,
    /// Its name (comm), as the checkpoint has it.
    pub comm: &'a [u8],
}

/// A descriptor whose queued bytes CRIU saved.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Queue<'a> {
    /// The descriptor.
    pub fd: u32,
    /// Which of its queues (as docs/grep.md names them).
    pub source: &'static str,
    /// What the descriptor is, as bytes from the checkpoint: `tcp
    /// 127.0.0.1:80 -> 10.0.0.1:5000`, `pipe:[1234]`, a FIFO's path.
    pub object: &'a [u8],
}

/// Where a find is.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// In the process's memory, in this mapping; none for a rule that
    /// matched without a string match, or an address no mapping holds.
    Memory(Option<&'a Mapping>),
    /// In a queue: addresses are offsets in its bytes.
    Queue(Queue<'a>),
}

/// What `grep` found, handed to the caller's renderer one at a time.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A match of the pattern ([`Mode::Matches`]).
    Match {
        /// Whose.
        who: Who<'a>,
        /// Where.
        place: Place<'a>,
        /// The match, its context, and its address (an offset in a queue).
        hit: &'a Match,
    },
    /// A process searched and its matches ([`Mode::Count`]).
    Count {
        /// Whose.
        who: Who<'a>,
        /// How many matches.
        count: u64,
    },
    /// A process with a match ([`Mode::List`]).
    Listed {
        /// Whose.
        who: Who<'a>,
    },
    /// A rule that matched ([`Mode::Matches`] with rules), with one of its
    /// string matches, or none for a rule that matched without one.
    #[cfg(feature = "yara")]
    Rule {
        /// Whose.
        who: Who<'a>,
        /// Where the string match is.
        place: Place<'a>,
        /// The rule.
        rule: &'a crate::yara::RuleHit,
        /// The string match.
        string: Option<&'a crate::yara::StringHit>,
    },
    /// A rule and its string matches in one process ([`Mode::Count`] with
    /// rules).
    #[cfg(feature = "yara")]
    RuleCount {
        /// Whose.
        who: Who<'a>,
        /// The rule's name.
        rule: &'a str,
        /// Its string matches, in memory and queues together.
        count: u64,
    },
}

/// What turns an [`Event`] into output (see [`grep`]).
type Render<'r> = &'r (dyn Fn(&Event<'_>, &mut String) + Sync);

/// Everything `grep` needs besides its inputs.
#[derive(Debug)]
#[non_exhaustive]
pub struct GrepOptions {
    /// The pattern.
    pub pattern: Pattern,
    /// Which mappings and addresses.
    pub filter: Filter,
    /// Only these processes (all, if empty).
    pub pids: Vec<u32>,
    /// Bytes of context each side of a match.
    pub context: usize,
    /// At most this many matches per process.
    pub max_count: Option<u64>,
    /// What to report.
    pub mode: Mode,
    /// Processes searched at once.
    pub jobs: usize,
    /// Search the contents of mapped files too: those the checkpoint
    /// keeps (deleted while open, changed by the container), and with
    /// `root` or `image` the others.
    pub files: bool,
    /// Root filesystem whose unmodified file pages are searched too.
    pub root: Option<PathBuf>,
    /// The container's image: file pages are searched from its layers
    /// (with the container's changed files over them). Not with `root`.
    pub image: Option<ImageRef>,
    /// Where compressed archives are unpacked, and how much.
    pub spill: SpillOptions,
    /// Stops the search.
    pub cancel: Cancel,
    /// Search memory only, not the bytes CRIU saved in socket, pipe and
    /// FIFO queues.
    pub memory_only: bool,
    /// YARA rules to run instead of the pattern (`criu2core yara`).
    #[cfg(feature = "yara")]
    pub rules: Option<Arc<crate::yara::Rules>>,
}

impl GrepOptions {
    /// Options that search for `pattern` everywhere, a line per match,
    /// one process at a time.
    pub fn new(pattern: Pattern) -> GrepOptions {
        GrepOptions {
            pattern,
            filter: Filter::default(),
            pids: Vec::new(),
            context: 0,
            max_count: None,
            mode: Mode::default(),
            jobs: 1,
            files: false,
            root: None,
            image: None,
            spill: SpillOptions::default(),
            cancel: Cancel::default(),
            memory_only: false,
            #[cfg(feature = "yara")]
            rules: None,
        }
    }
}

/// What a whole `grep` found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Matches reported (or, with [`Mode::List`], processes listed).
    pub matches: u64,
    /// Inputs or processes that could not be searched.
    pub errors: u64,
}

impl Outcome {
    /// grep's exit status: 0 something matched, 1 nothing did, 2 an error
    /// (which wins).
    pub fn exit_status(&self) -> u8 {
        if self.errors > 0 {
            2
        } else if self.matches > 0 {
            0
        } else {
            1
        }
    }
}

/// A piece of a process's output.
enum Piece {
    Out(Vec<u8>),
    Err(String),
    Found(u64),
}

/// Output pieces are sent once this many bytes are gathered.
const PIECE_BYTES: usize = 64 << 10;
/// Pieces a process may have waiting for the printer.
const PIECES_QUEUED: usize = 16;

/// An input, as the workers leave it for the printer.
enum Slot {
    Waiting,
    Failed(String),
    Opened(Vec<Receiver<Piece>>),
    Done,
}

/// A process to search.
struct Unit {
    input: Arc<Opened>,
    pid: u32,
    tx: SyncSender<Piece>,
    /// Workers with nothing left to do: a search may use as many threads
    /// more, to search parts of its process at once.
    spare: Arc<AtomicUsize>,
}

struct Opened {
    input: Checkpoint,
    /// The file images, where queues are searched (or why they cannot be).
    tables: Option<std::result::Result<FileTables, String>>,
    roots: Option<FileView>,
    /// Whether file contents are searched.
    files: bool,
    /// The input's name as printed.
    name: String,
}

struct State {
    slots: Vec<Slot>,
    next_input: usize,
    ready: BTreeMap<(usize, usize), Unit>,
    /// The input the printer is at: inputs far beyond it wait, so that
    /// the output of finished ones does not pile up.
    printing: usize,
}

/// How many inputs past the one being printed may be opened.
fn lookahead(jobs: usize) -> usize {
    (2 * jobs).max(8)
}

/// Searches `inputs` (checkpoints, or directories searched for them) for
/// what `opts` ask; `render` turns each find into text, appending it to
/// the string it is given (it is called on grep's worker threads), and
/// that text is written to `out` in a fixed order (input, pid, address);
/// errors are given to `error` in their place in the order.
///
/// ```
/// use criu2core::grep::{grep, Event, GrepOptions, Mode};
/// use criu2core::search::{Pattern, PatternOptions};
///
/// let pattern = Pattern::new("ENV_MARKER_5150", &PatternOptions::default())?;
/// let mut opts = GrepOptions::new(pattern);
/// opts.mode = Mode::Count;
/// let render = |e: &Event<'_>, out: &mut String| {
///     if let Event::Count { who, count } = e {
///         out.push_str(&format!("{} {count}\n", who.pid));
///     }
/// };
/// let mut out = Vec::new();
/// let inputs = ["gdb-fixtures/example.tar.zst".into()];
/// let found = grep(&inputs, &opts, &render, &mut out, &mut |e| eprintln!("{e}"))?;
/// assert_eq!(found.exit_status(), 0);
/// assert!(String::from_utf8_lossy(&out).contains("12155 "));
/// # Ok::<(), criu2core::Error>(())
/// ```
pub fn grep(
    inputs: &[PathBuf],
    opts: &GrepOptions,
    render: &(dyn Fn(&Event<'_>, &mut String) + Sync),
    out: &mut dyn Write,
    error: &mut dyn FnMut(&str),
) -> crate::Result<Outcome> {
    grep_inputs(inputs, opts, render, out, error).map_err(Error::new)
}

fn grep_inputs(
    inputs: &[PathBuf],
    opts: &GrepOptions,
    render: Render<'_>,
    out: &mut dyn Write,
    error: &mut dyn FnMut(&str),
) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let found = expand_inputs(inputs, None);
    let mut paths = Vec::new();
    for f in found {
        match f.problem {
            Some(p) => {
                error(&p);
                outcome.errors += 1;
            }
            None => paths.push(f.path),
        }
    }
    let seen: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
    let state = Mutex::new(State {
        slots: paths.iter().map(|_| Slot::Waiting).collect(),
        next_input: 0,
        ready: BTreeMap::new(),
        printing: 0,
    });
    let changed = Condvar::new();
    let jobs = opts.jobs.max(1);
    let workers = jobs.min(paths.len().max(1));
    // The jobs no worker was started for are spare from the start.
    let spare = Arc::new(AtomicUsize::new(jobs - workers));
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            scope.spawn(|| worker(&paths, opts, render, &state, &changed, &seen, &spare));
        }
        let result = print_in_order(paths.len(), &state, &changed, out, error, &mut outcome);
        if result.is_err() {
            // Nobody will read what the workers still have: let them stop.
            opts.cancel.cancel(usize::MAX);
            let mut st = lock(&state);
            st.ready.clear();
            st.slots.iter_mut().for_each(|s| *s = Slot::Done);
            st.next_input = paths.len();
            changed.notify_all();
        }
        result
    })?;
    let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
    for pid in &opts.pids {
        if !seen.contains(pid) {
            error(&format!("pid {pid} is in no checkpoint searched"));
            outcome.errors += 1;
        }
    }
    Ok(outcome)
}

/// The printer: each input in turn, each of its processes in turn.
fn print_in_order(
    inputs: usize,
    state: &Mutex<State>,
    changed: &Condvar,
    out: &mut dyn Write,
    error: &mut dyn FnMut(&str),
    outcome: &mut Outcome,
) -> Result<()> {
    for i in 0..inputs {
        let slot = {
            let mut st = lock(state);
            st.printing = i;
            changed.notify_all();
            while matches!(st.slots[i], Slot::Waiting) {
                st = changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::replace(&mut st.slots[i], Slot::Done)
        };
        match slot {
            Slot::Failed(e) => {
                error(&e);
                outcome.errors += 1;
            }
            Slot::Opened(receivers) => {
                for rx in receivers {
                    while let Ok(piece) = rx.recv() {
                        match piece {
                            Piece::Out(bytes) => {
                                out.write_all(&bytes).context("cannot write to stdout")?
                            }
                            Piece::Err(e) => {
                                out.flush().context("cannot write to stdout")?;
                                error(&e);
                                outcome.errors += 1;
                            }
                            Piece::Found(n) => outcome.matches += n,
                        }
                    }
                }
            }
            Slot::Waiting | Slot::Done => {}
        }
    }
    out.flush().context("cannot write to stdout")
}

/// A worker: searches the earliest process ready, else opens the next input.
fn worker(
    paths: &[PathBuf],
    opts: &GrepOptions,
    render: Render<'_>,
    state: &Mutex<State>,
    changed: &Condvar,
    seen: &Mutex<BTreeSet<u32>>,
    spare: &Arc<AtomicUsize>,
) {
    loop {
        let mut st = lock(state);
        if let Some((_, unit)) = st.ready.pop_first() {
            drop(st);
            search_unit(unit, opts, render);
            continue;
        }
        if st.next_input >= paths.len() {
            spare.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if st.next_input >= st.printing + lookahead(opts.jobs) {
            drop(changed.wait(st).unwrap_or_else(|e| e.into_inner()));
            continue;
        }
        let i = st.next_input;
        st.next_input += 1;
        drop(st);
        let slot = match open(&paths[i], opts) {
            Err(e) => Slot::Failed(format!("{e:#}")),
            Ok(opened) => {
                let pids: Vec<u32> = {
                    let mut all = opened.input.pids();
                    all.sort_unstable();
                    all.dedup();
                    all.retain(|p| opts.pids.is_empty() || opts.pids.contains(p));
                    all
                };
                lock(seen).extend(pids.iter().copied());
                let opened = Arc::new(opened);
                let mut receivers = Vec::new();
                let mut st = lock(state);
                for (k, pid) in pids.into_iter().enumerate() {
                    let (tx, rx) = sync_channel(PIECES_QUEUED);
                    receivers.push(rx);
                    let unit = Unit {
                        input: Arc::clone(&opened),
                        pid,
                        tx,
                        spare: Arc::clone(spare),
                    };
                    st.ready.insert((i, k), unit);
                }
                drop(st);
                Slot::Opened(receivers)
            }
        };
        let mut st = lock(state);
        if matches!(st.slots[i], Slot::Waiting) {
            st.slots[i] = slot;
        }
        changed.notify_all();
    }
}

fn open(path: &Path, opts: &GrepOptions) -> Result<Opened> {
    opts.cancel.check()?;
    let input = input::open(
        path,
        &OpenOptions {
            spill: opts.spill.clone(),
            pages: PageUse::All,
            cancel: opts.cancel.clone(),
        },
    )?;
    // File pages are searched only when asked: from what the checkpoint
    // keeps, and a root filesystem or an image (with the container's
    // changed files over it).
    let mut load = LoadOptions::default();
    load.root.clone_from(&opts.root);
    load.image.clone_from(&opts.image);
    let files = opts.files || opts.root.is_some() || opts.image.is_some();
    let roots = match files {
        false => None,
        true => input.file_view(&load)?.map(|(v, _)| v),
    };
    let tables = (!opts.memory_only)
        .then(|| FileTables::load(&**input.images.store()).map_err(|e| format!("{e:#}")));
    Ok(Opened {
        name: input.path().display().to_string(),
        tables,
        input,
        roots,
        files,
    })
}

/// Searches one process, sending its output to the printer.
fn search_unit(unit: Unit, opts: &GrepOptions, render: Render<'_>) {
    let tx = unit.tx.clone();
    let mut sink = Sink {
        tx: unit.tx,
        render,
        buf: String::new(),
        gone: false,
    };
    if let Err(e) = search_one(&unit.input, unit.pid, opts, &unit.spare, &mut sink) {
        sink.flush();
        let _ = tx.send(Piece::Err(format!(
            "{}: pid {}: {e:#}",
            unit.input.name, unit.pid
        )));
    }
    sink.flush();
}

/// Output of one process on its way to the printer.
struct Sink<'r> {
    tx: SyncSender<Piece>,
    render: Render<'r>,
    buf: String,
    gone: bool,
}

impl Sink<'_> {
    /// Renders `event` into the output.
    fn emit(&mut self, event: &Event<'_>) -> Result<()> {
        (self.render)(event, &mut self.buf);
        if self.buf.len() >= PIECE_BYTES {
            self.flush();
        }
        if self.gone {
            bail!("output closed");
        }
        Ok(())
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() && !self.gone {
            let bytes = std::mem::take(&mut self.buf).into_bytes();
            self.gone = self.tx.send(Piece::Out(bytes)).is_err();
        }
    }
}

fn search_one(
    opened: &Opened,
    pid: u32,
    opts: &GrepOptions,
    spare: &AtomicUsize,
    sink: &mut Sink<'_>,
) -> Result<()> {
    opts.cancel.check()?;
    let p = match opened
        .input
        .load_with(pid, opened.roots.as_ref(), opened.files)?
    {
        Loaded::Process(p) => p,
        // A zombie has no memory left to search.
        Loaded::Zombie(_) => return Ok(()),
    };
    let who = Who {
        input: &opened.name,
        pid,
        comm: &p.comm,
    };
    #[cfg(feature = "yara")]
    if let Some(rules) = &opts.rules {
        return yara_one(opened, who, &p, rules, opts, sink);
    }
    // Workers that found nothing left to do search parts of this process.
    let extra = spare.swap(0, Ordering::SeqCst);
    let sopts = SearchOptions {
        context: if opts.mode == Mode::Matches {
            opts.context
        } else {
            0
        },
        max_matches: match opts.mode {
            Mode::List => Some(1),
            _ => opts.max_count,
        },
        cancel: opts.cancel.clone(),
        threads: 1 + extra,
    };
    let mut err = None;
    let searched =
        search::search_process(&p, &opts.pattern, &opts.filter, &sopts, &mut |m, hit| {
            if opts.mode == Mode::Matches {
                let place = Place::Memory(Some(m));
                if let Err(e) = sink.emit(&Event::Match {
                    who,
                    place,
                    hit: &hit,
                }) {
                    err = Some(e);
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        });
    spare.fetch_add(extra, Ordering::SeqCst);
    let searched = searched?;
    if let Some(e) = err {
        return Err(e);
    }
    let mut searched = searched;
    if opts.mode != Mode::List || searched.matches == 0 {
        searched.matches += search_queues(opened, who, &p, opts, sink)?;
    }
    match opts.mode {
        Mode::Matches => {}
        Mode::Count => sink.emit(&Event::Count {
            who,
            count: searched.matches,
        })?,
        Mode::List if searched.matches > 0 => sink.emit(&Event::Listed { who })?,
        Mode::List => {}
    }
    tracing::debug!(input = %opened.name, pid, bytes = searched.bytes, matches = searched.matches, "searched");
    sink.flush();
    let _ = sink.tx.send(Piece::Found(searched.matches));
    Ok(())
}

/// Each queue CRIU saved for the process's descriptors, in descriptor
/// order, to `each` until it breaks.
fn each_queue(
    opened: &Opened,
    who: Who<'_>,
    p: &Process,
    each: &mut dyn FnMut(&OpenFile, QueuedData) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let tables = match &opened.tables {
        None => return Ok(()),
        Some(Err(e)) => bail!("queues: {e}"),
        Some(Ok(t)) => t,
    };
    let store = opened.input.images.store();
    let files = tables
        .process(&**store, who.pid, p.arch.big_endian())
        .context("queues")?;
    for f in &files.fds {
        for q in tables.queued_data(&**store, f).context("queues")? {
            if each(f, q)?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Searches the bytes CRIU saved in the queues of the process's
/// descriptors; returns the matches (each sent as an event where `opts`
/// ask for matches).
fn search_queues(
    opened: &Opened,
    who: Who<'_>,
    p: &Process,
    opts: &GrepOptions,
    sink: &mut Sink<'_>,
) -> Result<u64> {
    let mut n = 0u64;
    let limit = match opts.mode {
        Mode::List => Some(1),
        _ => opts.max_count,
    };
    let context = match opts.mode {
        Mode::Matches => opts.context,
        _ => 0,
    };
    each_queue(opened, who, p, &mut |f, q| {
        let mut err = None;
        let object = queue_object(f);
        search::search_bytes(&opts.pattern, &q.data, context, &opts.cancel, &mut |hit| {
            if limit.is_some_and(|l| n >= l) {
                return Ok(ControlFlow::Break(()));
            }
            n += 1;
            if opts.mode == Mode::Matches {
                let place = Place::Queue(Queue {
                    fd: f.fd,
                    source: q.source,
                    object: &object,
                });
                if let Err(e) = sink.emit(&Event::Match {
                    who,
                    place,
                    hit: &hit,
                }) {
                    err = Some(e);
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        match err {
            Some(e) => Err(e),
            None if limit.is_some_and(|l| n >= l) => Ok(ControlFlow::Break(())),
            None => Ok(ControlFlow::Continue(())),
        }
    })?;
    Ok(n)
}

/// What a descriptor with a queue is: `tcp 127.0.0.1:80 -> 10.0.0.1:5000`,
/// `pipe:[1234]`, a FIFO's path.
fn queue_object(f: &OpenFile) -> Vec<u8> {
    use crate::criu::sockets::endpoint_bytes;
    match &f.object {
        FileObject::Socket(s) => {
            let mut d = s.short_name().into_bytes();
            for (sep, e) in [(" ", &s.local), (" -> ", &s.remote)] {
                if let Some(e) = e {
                    d.extend_from_slice(sep.as_bytes());
                    d.extend(endpoint_bytes(e));
                }
            }
            d
        }
        FileObject::Pipe { inode, .. } => format!("pipe:[{inode}]").into_bytes(),
        FileObject::Fifo { inode, path, .. } => path
            .clone()
            .unwrap_or_else(|| format!("fifo:[{inode}]").into_bytes()),
        _ => Vec::new(),
    }
}

/// The rules that matched one descriptor's queue.
#[cfg(feature = "yara")]
struct QueueHits {
    fd: u32,
    source: &'static str,
    /// What the descriptor is ([`queue_object`]).
    object: Vec<u8>,
    hits: Vec<crate::yara::RuleHit>,
}

/// Runs YARA rules over the queues CRIU saved for the process's
/// descriptors, each queue on its own.
#[cfg(feature = "yara")]
fn yara_queues(
    opened: &Opened,
    who: Who<'_>,
    p: &Process,
    rules: &crate::yara::Rules,
    opts: &GrepOptions,
) -> Result<Vec<QueueHits>> {
    let mut out = Vec::new();
    each_queue(opened, who, p, &mut |f, q| {
        opts.cancel.check()?;
        let hits = crate::yara::scan_bytes(rules, &q.data)?;
        if !hits.is_empty() {
            out.push(QueueHits {
                fd: f.fd,
                source: q.source,
                object: queue_object(f),
                hits,
            });
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(out)
}

/// Runs YARA rules over one process (its memory, then its queues) and
/// sends what matched.
#[cfg(feature = "yara")]
fn yara_one(
    opened: &Opened,
    who: Who<'_>,
    p: &Process,
    rules: &crate::yara::Rules,
    opts: &GrepOptions,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let hits = crate::yara::scan_process(p, rules, &opts.filter, &opts.cancel)?;
    let queues = yara_queues(opened, who, p, rules, opts)?;
    let matched = hits.len() + queues.iter().map(|q| q.hits.len()).sum::<usize>();
    let found = match opts.mode {
        Mode::List => {
            if matched > 0 {
                sink.emit(&Event::Listed { who })?;
            }
            u64::from(matched > 0)
        }
        Mode::Count => {
            for (rule, count) in yara_counts(&hits, &queues) {
                sink.emit(&Event::RuleCount { who, rule, count })?;
            }
            matched as u64
        }
        Mode::Matches => {
            for h in &hits {
                yara_rule_events(who, None, Some(p), h, sink)?;
            }
            for q in &queues {
                let queue = Queue {
                    fd: q.fd,
                    source: q.source,
                    object: &q.object,
                };
                for h in &q.hits {
                    yara_rule_events(who, Some(queue), None, h, sink)?;
                }
            }
            matched as u64
        }
    };
    sink.flush();
    let _ = sink.tx.send(Piece::Found(found));
    Ok(())
}

/// The string matches of each rule that matched, in memory and queues
/// together, the rules in the order they first matched.
#[cfg(feature = "yara")]
fn yara_counts<'a>(
    hits: &'a [crate::yara::RuleHit],
    queues: &'a [QueueHits],
) -> Vec<(&'a str, u64)> {
    let mut counts: Vec<(&str, u64)> = Vec::new();
    let all = hits.iter().chain(queues.iter().flat_map(|q| q.hits.iter()));
    for h in all {
        let n = h.strings.len() as u64;
        match counts.iter_mut().find(|(r, _)| *r == h.rule) {
            Some((_, c)) => *c += n,
            None => counts.push((&h.rule, n)),
        }
    }
    counts
}

/// The events of one rule that matched, in a queue or in the memory of
/// `p`: one per string match, or one for the rule if it matched without
/// any.
#[cfg(feature = "yara")]
fn yara_rule_events(
    who: Who<'_>,
    queue: Option<Queue<'_>>,
    p: Option<&Process>,
    rule: &crate::yara::RuleHit,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let place = |s: Option<&crate::yara::StringHit>| match queue {
        Some(q) => Place::Queue(q),
        None => Place::Memory(
            p.zip(s)
                .and_then(|(p, s)| crate::yara::mapping_at(p, s.addr)),
        ),
    };
    if rule.strings.is_empty() {
        let place = place(None);
        sink.emit(&Event::Rule {
            who,
            place,
            rule,
            string: None,
        })?;
    }
    for s in &rule.strings {
        let place = place(Some(s));
        sink.emit(&Event::Rule {
            who,
            place,
            rule,
            string: Some(s),
        })?;
    }
    Ok(())
}
