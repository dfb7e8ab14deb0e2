//! `criu2core diff`: what changed between two checkpoints of the same
//! processes — processes (matched by pid) added, removed or changed; per
//! process its threads, command line, environment, name and state, its
//! mappings, the pages whose contents differ, and its open files and
//! sockets — as a [`DiffReport`], data that the command line prints as
//! text or JSON (docs/diff.schema.json). Processes and
//! mappings have the shapes `inspect` and `grep` give them.

mod pages;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;

pub use pages::{PageRange, CHUNK_BYTES, MAX_PAGE_RANGES};

use crate::cancel::Cancel;
use crate::input::{Checkpoint, LoadOptions};
use crate::inspect::{FdInfo, InputInfo, InspectOptions, MappingInfo, ProcessInfo, SocketInfo};
use crate::model::{Loaded, Process};
use crate::rootfs::FileView;
use crate::warning::Warning;

/// Identifies the JSON schema of [`DiffReport`].
pub const SCHEMA: &str = "criu2core.diff/2";

/// How a process, mapping, descriptor or socket compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// In both, different.
    Changed,
    /// In both, the same.
    Same,
}

impl Status {
    /// "added", "removed", "changed" or "same".
    pub fn name(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
            Status::Same => "same",
        }
    }
}

/// Everything `diff` reports.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DiffReport {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// The first checkpoint.
    pub a: InputInfo,
    /// The second checkpoint.
    pub b: InputInfo,
    /// Whether nothing differs.
    pub same: bool,
    /// How many of each thing differ.
    pub summary: Summary,
    /// Every process of either, by pid.
    pub processes: Vec<ProcessDiff>,
    /// What is wrong with either checkpoint but did not stop the diff,
    /// each starting with "a: " or "b: ".
    pub warnings: Vec<Warning>,
}

/// How many things were added, removed and changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Only in B.
    pub added: usize,
    /// Only in A.
    pub removed: usize,
    /// In both, different.
    pub changed: usize,
}

impl Counts {
    fn count(&mut self, s: Status) {
        match s {
            Status::Added => self.added += 1,
            Status::Removed => self.removed += 1,
            Status::Changed => self.changed += 1,
            Status::Same => {}
        }
    }

    /// Whether nothing was added, removed or changed.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// The counts of the whole diff.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Processes added, removed, changed.
    pub processes: Counts,
    /// Processes the same in both.
    pub same_processes: usize,
    /// Threads added and removed (in processes of both).
    pub threads: Counts,
    /// Mappings added, removed and changed.
    pub mappings: Counts,
    /// Ranges of pages whose contents differ.
    pub page_ranges: usize,
    /// Bytes in them.
    pub page_bytes: u64,
    /// Open descriptors added, removed and changed.
    pub fds: Counts,
    /// Sockets added, removed and changed.
    pub sockets: Counts,
}

/// One process.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ProcessDiff {
    /// Its pid.
    pub pid: u32,
    /// How it compares.
    pub status: Status,
    /// What `inspect` shows of it: B's (A's for a removed process).
    pub process: ProcessInfo,
    /// Its properties that differ: comm, state, exe, argv, environment,
    /// ppid, pgid, sid, cwd, root.
    pub fields: Vec<FieldChange>,
    /// Threads added or removed.
    pub threads: Vec<ThreadDiff>,
    /// Mappings added, removed or changed.
    pub mappings: Vec<MappingDiff>,
    /// Pages whose contents differ (or that only one side holds).
    pub pages: Vec<PageRange>,
    /// Open descriptors added, removed or changed.
    pub fds: Vec<FdDiff>,
    /// Sockets added, removed or changed.
    pub sockets: Vec<SocketDiff>,
}

/// A property of a process that differs.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FieldChange {
    /// Which ("comm", "argv", ...).
    pub field: &'static str,
    /// A's value, as inspect's JSON has it.
    pub a: serde_json::Value,
    /// B's value.
    pub b: serde_json::Value,
    /// A's value as the text shows it (escaped).
    #[serde(skip)]
    pub shown_a: String,
    /// B's value as the text shows it (escaped).
    #[serde(skip)]
    pub shown_b: String,
}

/// A thread added or removed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ThreadDiff {
    /// Its id.
    pub tid: u32,
    /// "added" or "removed".
    pub status: Status,
}

/// A mapping added, removed or changed (matched by start address).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MappingDiff {
    /// How it compares.
    pub status: Status,
    /// The mapping: B's (A's if removed).
    #[serde(flatten)]
    pub mapping: MappingInfo,
    /// A's, for a changed mapping.
    pub before: Option<MappingInfo>,
    /// What changed: "end", "prot", "kind", "path", "offset".
    pub changes: Vec<&'static str>,
}

/// A descriptor added, removed or changed (matched by number).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FdDiff {
    /// How it compares.
    pub status: Status,
    /// The descriptor: B's (A's if removed).
    #[serde(flatten)]
    pub fd: FdInfo,
    /// A's, for a changed descriptor.
    pub before: Option<FdInfo>,
    /// What changed: "type", "path", "mode", "flags", "pos", "cloexec",
    /// "inode".
    pub changes: Vec<&'static str>,
}

/// A socket added, removed or changed (matched by descriptor).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SocketDiff {
    /// How it compares.
    pub status: Status,
    /// The socket: B's (A's if removed).
    #[serde(flatten)]
    pub socket: SocketInfo,
    /// A's, for a changed socket.
    pub before: Option<SocketInfo>,
    /// What changed: "family", "type", "protocol", "state", "local",
    /// "remote", "inode".
    pub changes: Vec<&'static str>,
}

/// How to diff.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Where file pages come from, on both sides (`--root`, `--image`).
    pub load: LoadOptions,
    /// Stops comparing once set.
    pub cancel: Cancel,
}

impl DiffOptions {
    /// Reads file pages, on both sides, as `load` says.
    pub fn load(mut self, load: LoadOptions) -> DiffOptions {
        self.load = load;
        self
    }

    /// Stops once `cancel` is set.
    pub fn cancel(mut self, cancel: &Cancel) -> DiffOptions {
        self.cancel = cancel.clone();
        self
    }
}

/// Compares checkpoint `a` with `b`. A process that cannot be read on
/// either side is an error, as is a comparison that meets a bound
/// ([`MAX_PAGE_RANGES`]).
///
/// ```
/// use criu2core::diff::{diff, DiffOptions};
/// use criu2core::{open, OpenOptions};
///
/// let a = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
/// let b = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
/// let report = diff(&a, &b, &DiffOptions::default())?;
/// assert!(report.same);
/// assert_eq!(report.summary.same_processes, 1);
/// # Ok::<(), criu2core::Error>(())
/// ```
pub fn diff(a: &Checkpoint, b: &Checkpoint, opts: &DiffOptions) -> crate::Result<DiffReport> {
    diff_inner(a, b, opts).map_err(crate::Error::new)
}

fn diff_inner(a: &Checkpoint, b: &Checkpoint, opts: &DiffOptions) -> Result<DiffReport> {
    let what = InspectOptions::default().env(true).fds(true).sockets(true);
    let infos = |c: &Checkpoint| -> BTreeMap<u32, ProcessInfo> {
        c.inspect(&what)
            .processes
            .into_iter()
            .map(|p| (p.pid, p))
            .collect()
    };
    let (infos_a, infos_b) = (infos(a), infos(b));
    let view_a = a.file_view(&opts.load)?;
    let view_b = b.file_view(&opts.load)?;
    let sides = Sides {
        a,
        b,
        view_a: view_a.as_ref().map(|(v, _)| v),
        view_b: view_b.as_ref().map(|(v, _)| v),
    };
    let mut pids: Vec<u32> = infos_a.keys().chain(infos_b.keys()).copied().collect();
    pids.sort_unstable();
    pids.dedup();
    let mut processes = Vec::new();
    for pid in pids {
        opts.cancel.check()?;
        let d = match (infos_a.get(&pid), infos_b.get(&pid)) {
            (Some(x), None) => whole(x, Status::Removed)?,
            (None, Some(y)) => whole(y, Status::Added)?,
            (Some(x), Some(y)) => sides.process(x, y, &opts.cancel)?,
            (None, None) => continue,
        };
        processes.push(d);
    }
    let summary = summarize(&processes);
    let warnings = a
        .warnings()
        .iter()
        .map(|w| w.prefixed("a: "))
        .chain(b.warnings().iter().map(|w| w.prefixed("b: ")))
        .collect();
    Ok(DiffReport {
        schema: SCHEMA,
        a: input_info(a),
        b: input_info(b),
        same: processes.iter().all(|p| p.status == Status::Same),
        summary,
        processes,
        warnings,
    })
}

fn input_info(c: &Checkpoint) -> InputInfo {
    InputInfo {
        path: c.path().display().to_string(),
        kind: c.kind().name(),
    }
}

fn summarize(processes: &[ProcessDiff]) -> Summary {
    let mut s = Summary::default();
    for p in processes {
        match p.status {
            Status::Same => s.same_processes += 1,
            st => s.processes.count(st),
        }
        p.threads.iter().for_each(|t| s.threads.count(t.status));
        p.mappings.iter().for_each(|m| s.mappings.count(m.status));
        p.fds.iter().for_each(|f| s.fds.count(f.status));
        p.sockets.iter().for_each(|x| s.sockets.count(x.status));
        s.page_ranges += p.pages.len();
        s.page_bytes += p.pages.iter().map(|r| r.end - r.start).sum::<u64>();
    }
    s
}

/// A process only one side has.
fn whole(info: &ProcessInfo, status: Status) -> Result<ProcessDiff> {
    if let Some(e) = &info.error {
        anyhow::bail!("pid {}: {e}", info.pid);
    }
    Ok(ProcessDiff {
        pid: info.pid,
        status,
        process: info.clone(),
        fields: Vec::new(),
        threads: Vec::new(),
        mappings: Vec::new(),
        pages: Vec::new(),
        fds: Vec::new(),
        sockets: Vec::new(),
    })
}

/// Both checkpoints, and where their file pages come from.
struct Sides<'a> {
    a: &'a Checkpoint,
    b: &'a Checkpoint,
    view_a: Option<&'a FileView>,
    view_b: Option<&'a FileView>,
}

impl Sides<'_> {
    /// A process both sides have.
    fn process(&self, x: &ProcessInfo, y: &ProcessInfo, cancel: &Cancel) -> Result<ProcessDiff> {
        for (side, info) in [("a", x), ("b", y)] {
            if let Some(e) = &info.error {
                anyhow::bail!("{side}: pid {}: {e}", info.pid);
            }
        }
        let pid = x.pid;
        let load = |c: &Checkpoint, view, side: &str| -> Result<Option<Process>> {
            let loaded = c
                .load_with(pid, view, true)
                .with_context(|| format!("{side}: {}: pid {pid}", c.path().display()))?;
            Ok(match loaded {
                Loaded::Process(p) => Some(*p),
                _ => None,
            })
        };
        let pa = load(self.a, self.view_a, "a")?;
        let pb = load(self.b, self.view_b, "b")?;
        let mut d = ProcessDiff {
            pid,
            status: Status::Same,
            process: y.clone(),
            fields: fields(x, y),
            threads: threads(&x.threads, &y.threads),
            mappings: Vec::new(),
            pages: Vec::new(),
            fds: fds(x.fds.as_deref(), y.fds.as_deref()),
            sockets: sockets(x.sockets.as_deref(), y.sockets.as_deref()),
        };
        if let (Some(pa), Some(pb)) = (&pa, &pb) {
            d.mappings = mappings(pa, pb);
            d.pages = pages::changed_pages(pa, pb, cancel)?;
        } else if let Some(p) = pa.as_ref().or(pb.as_ref()) {
            // A zombie on one side: every mapping of the other went or came.
            let status = if pa.is_some() {
                Status::Removed
            } else {
                Status::Added
            };
            d.mappings = p
                .mappings
                .iter()
                .map(|m| MappingDiff {
                    status,
                    mapping: MappingInfo::of(m),
                    before: None,
                    changes: Vec::new(),
                })
                .collect();
        }
        let changed = !(d.fields.is_empty()
            && d.threads.is_empty()
            && d.mappings.is_empty()
            && d.pages.is_empty()
            && d.fds.is_empty()
            && d.sockets.is_empty());
        if changed {
            d.status = Status::Changed;
        }
        Ok(d)
    }
}

/// The properties of a process that differ.
fn fields(x: &ProcessInfo, y: &ProcessInfo) -> Vec<FieldChange> {
    use crate::inspect::Bytes;
    use crate::text::escape_bytes;
    let one = |b: &Option<Bytes>| {
        b.as_ref()
            .map_or("-".into(), |b| escape_bytes(&b.0).into_owned())
    };
    let many = |l: &Option<Vec<Bytes>>| {
        l.as_ref().map_or("-".into(), |l| {
            let words: Vec<String> = l.iter().map(|b| escape_bytes(&b.0).into_owned()).collect();
            words.join(" ")
        })
    };
    let v = |p: &ProcessInfo| -> [(&'static str, serde_json::Value, String); 10] {
        let j = |t: serde_json::Result<serde_json::Value>| t.unwrap_or(serde_json::Value::Null);
        [
            ("comm", j(serde_json::to_value(&p.comm)), one(&p.comm)),
            (
                "state",
                j(serde_json::to_value(p.state)),
                p.state.name().into(),
            ),
            ("exe", j(serde_json::to_value(&p.exe)), one(&p.exe)),
            ("argv", j(serde_json::to_value(&p.argv)), many(&p.argv)),
            (
                "environment",
                j(serde_json::to_value(&p.environment)),
                many(&p.environment),
            ),
            ("ppid", p.ppid.into(), p.ppid.to_string()),
            ("pgid", p.pgid.into(), p.pgid.to_string()),
            ("sid", p.sid.into(), p.sid.to_string()),
            ("cwd", j(serde_json::to_value(&p.cwd)), one(&p.cwd)),
            ("root", j(serde_json::to_value(&p.root)), one(&p.root)),
        ]
    };
    v(x).into_iter()
        .zip(v(y))
        .filter(|((_, a, _), (_, b, _))| a != b)
        .map(|((field, a, shown_a), (_, b, shown_b))| FieldChange {
            field,
            a,
            b,
            shown_a,
            shown_b,
        })
        .collect()
}

/// Threads only one side has, by id.
fn threads(a: &[u32], b: &[u32]) -> Vec<ThreadDiff> {
    let mut out: Vec<ThreadDiff> = a
        .iter()
        .filter(|t| !b.contains(t))
        .map(|&tid| ThreadDiff {
            tid,
            status: Status::Removed,
        })
        .chain(b.iter().filter(|t| !a.contains(t)).map(|&tid| ThreadDiff {
            tid,
            status: Status::Added,
        }))
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// Matches `a` and `b` by key (both sorted by it), calling `f` with each
/// pair, one side `None` where the other has no match.
fn pair<'x, T, K: Ord>(
    a: &'x [T],
    b: &'x [T],
    key: impl Fn(&T) -> K,
    mut f: impl FnMut(Option<&'x T>, Option<&'x T>),
) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => match key(x).cmp(&key(y)) {
                std::cmp::Ordering::Less => {
                    f(Some(x), None);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    f(None, Some(y));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    f(Some(x), Some(y));
                    i += 1;
                    j += 1;
                }
            },
            (Some(x), None) => {
                f(Some(x), None);
                i += 1;
            }
            (None, y) => {
                f(None, y);
                j += 1;
            }
        }
    }
}

/// A property by name, and whether two entries agree on it.
type Check<T> = (&'static str, fn(&T, &T) -> bool);

/// Which of the named properties differ.
fn changed_fields<T>(x: &T, y: &T, checks: &[Check<T>]) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|(_, same)| !same(x, y))
        .map(|(name, _)| *name)
        .collect()
}

/// Each entry of `a` and `b` (matched by `key`) that was added, removed or
/// changed, made by `make` from its status, the entry (B's, A's if removed),
/// A's if changed, and what changed.
fn compare_lists<T: Clone, K: Ord, D>(
    a: &[T],
    b: &[T],
    key: impl Fn(&T) -> K,
    checks: &[Check<T>],
    make: impl Fn(Status, T, Option<T>, Vec<&'static str>) -> D,
) -> Vec<D> {
    let mut out = Vec::new();
    pair(a, b, key, |x, y| match (x, y) {
        (Some(x), None) => out.push(make(Status::Removed, x.clone(), None, Vec::new())),
        (None, Some(y)) => out.push(make(Status::Added, y.clone(), None, Vec::new())),
        (Some(x), Some(y)) => {
            let changes = changed_fields(x, y, checks);
            if !changes.is_empty() {
                out.push(make(Status::Changed, y.clone(), Some(x.clone()), changes));
            }
        }
        (None, None) => {}
    });
    out
}

/// Mappings added, removed or changed, matched by start address.
fn mappings(a: &Process, b: &Process) -> Vec<MappingDiff> {
    let infos =
        |p: &Process| -> Vec<MappingInfo> { p.mappings.iter().map(MappingInfo::of).collect() };
    let checks: [Check<MappingInfo>; 5] = [
        ("end", |x, y| x.end == y.end),
        ("prot", |x, y| x.prot == y.prot),
        ("kind", |x, y| x.kind == y.kind),
        ("path", |x, y| x.path == y.path),
        ("offset", |x, y| x.offset == y.offset),
    ];
    let (mut ia, mut ib) = (infos(a), infos(b));
    ia.sort_by_key(|m| m.start);
    ib.sort_by_key(|m| m.start);
    compare_lists(
        &ia,
        &ib,
        |m| m.start,
        &checks,
        |status, mapping, before, changes| MappingDiff {
            status,
            mapping,
            before,
            changes,
        },
    )
}

/// Descriptors added, removed or changed, matched by number.
fn fds(a: Option<&[FdInfo]>, b: Option<&[FdInfo]>) -> Vec<FdDiff> {
    let checks: [Check<FdInfo>; 7] = [
        ("type", |x, y| x.kind == y.kind),
        ("path", |x, y| x.path == y.path),
        ("mode", |x, y| x.mode == y.mode),
        ("flags", |x, y| x.flags == y.flags),
        ("pos", |x, y| x.pos == y.pos),
        ("cloexec", |x, y| x.cloexec == y.cloexec),
        ("inode", |x, y| x.inode == y.inode),
    ];
    let sorted = |l: Option<&[FdInfo]>| {
        let mut v = l.unwrap_or_default().to_vec();
        v.sort_by_key(|f| f.fd);
        v
    };
    compare_lists(
        &sorted(a),
        &sorted(b),
        |f| f.fd,
        &checks,
        |status, fd, before, changes| FdDiff {
            status,
            fd,
            before,
            changes,
        },
    )
}

/// Sockets added, removed or changed, matched by descriptor.
fn sockets(a: Option<&[SocketInfo]>, b: Option<&[SocketInfo]>) -> Vec<SocketDiff> {
    let checks: [Check<SocketInfo>; 7] = [
        ("family", |x, y| x.family == y.family),
        ("type", |x, y| x.kind == y.kind),
        ("protocol", |x, y| x.protocol == y.protocol),
        ("state", |x, y| x.state == y.state),
        ("local", |x, y| {
            x.local.as_ref().map(|s| &s.address) == y.local.as_ref().map(|s| &s.address)
        }),
        ("remote", |x, y| {
            x.remote.as_ref().map(|s| &s.address) == y.remote.as_ref().map(|s| &s.address)
        }),
        ("inode", |x, y| x.inode == y.inode),
    ];
    let sorted = |l: Option<&[SocketInfo]>| {
        let mut v = l.unwrap_or_default().to_vec();
        v.sort_by_key(|s| s.fd);
        v
    };
    compare_lists(
        &sorted(a),
        &sorted(b),
        |s| s.fd,
        &checks,
        |status, socket, before, changes| SocketDiff {
            status,
            socket,
            before,
            changes,
        },
    )
}
