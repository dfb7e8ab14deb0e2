//! `criu2core inspect`: what an analyst wants to know first about a
//! checkpoint — the container, the process tree with full command lines,
//! and each process's memory — as text for a terminal or as JSON with a
//! stable schema (docs/inspect.schema.json).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

use crate::text::escape;
use std::borrow::Cow;

use crate::container::ContainerInfo;
use crate::criu::memory::MAX_PARENT_DEPTH;
use crate::criu::store::ImageStore;
use crate::criu::{ExitStatus, LoadOptions, Loaded};
use crate::input::Input;
use crate::model::{MappingKind, Process, ProcessState};

/// Identifies the JSON schema of [`Report`].
pub const SCHEMA: &str = "criu2core.inspect/2";

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: &'static str,
    /// The input.
    pub input: InputInfo,
    /// The container, if the input says.
    pub container: Option<ContainerInfo>,
    /// The checkpoint as a whole.
    pub checkpoint: CheckpointInfo,
    /// Every process, in pstree order.
    pub processes: Vec<ProcessInfo>,
}

/// The input.
#[derive(Debug, Clone, Serialize)]
pub struct InputInfo {
    /// Path as given.
    pub path: String,
    /// "images", "checkpoint-dir", "tar", "tar.gz" or "tar.zst".
    pub kind: String,
}

/// The checkpoint as a whole.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointInfo {
    /// CRIU image version, from inventory.img.
    pub image_version: Option<u32>,
    /// Architecture of the processes.
    pub arch: Option<String>,
    /// Number of processes.
    pub processes: usize,
    /// Number of threads.
    pub threads: usize,
    /// Bytes of memory contents the images hold.
    pub dumped_bytes: u64,
    /// Where the images of the parent dumps of an incremental chain are,
    /// the parent first (following each dump's `parent` link).
    pub parents: Vec<String>,
}

/// One process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    /// Pid in the checkpoint's namespace.
    pub pid: u32,
    /// Parent pid (0: outside the checkpoint).
    pub ppid: u32,
    /// Process group.
    pub pgid: u32,
    /// Session.
    pub sid: u32,
    /// Command name.
    pub comm: Option<String>,
    /// "running", "stopped", "zombie" or "error".
    pub state: String,
    /// Thread ids, the leader first.
    pub threads: Vec<u32>,
    /// Executable path.
    pub exe: Option<String>,
    /// argv, read from the dumped memory.
    pub argv: Option<Vec<String>>,
    /// The environment (only when asked for).
    pub environment: Option<Vec<String>>,
    /// Memory summary.
    pub memory: Option<MemoryInfo>,
    /// How a zombie ended (null for other processes).
    pub exit: Option<ExitStatus>,
    /// Why the process could not be read, if it could not.
    pub error: Option<String>,
}

/// A process's memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryInfo {
    /// Number of mappings.
    pub mappings: usize,
    /// Bytes mapped.
    pub mapped_bytes: u64,
    /// Bytes whose contents the images hold.
    pub dumped_bytes: u64,
    /// Per kind of mapping.
    pub by_kind: BTreeMap<String, KindInfo>,
    /// Mapped files.
    pub files: Vec<FileInfo>,
    /// The dumps the contents come from: this one first, then each parent
    /// dump of an incremental chain that holds some of them.
    pub dumps: Vec<DumpInfo>,
}

/// What one dump of an incremental chain holds of a process's memory.
#[derive(Debug, Clone, Serialize)]
pub struct DumpInfo {
    /// Where its images are.
    pub images: String,
    /// Bytes of memory contents taken from it.
    pub dumped_bytes: u64,
}

/// Mappings of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindInfo {
    /// How many.
    pub count: usize,
    /// Bytes mapped.
    pub bytes: u64,
    /// Bytes dumped.
    pub dumped_bytes: u64,
}

/// One mapped file.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    /// Path as the process saw it.
    pub path: String,
    /// Number of mappings of it.
    pub mappings: usize,
    /// Bytes mapped.
    pub bytes: u64,
}

fn kind_name(k: MappingKind) -> &'static str {
    match k {
        MappingKind::Anonymous => "anonymous",
        MappingKind::Heap => "heap",
        MappingKind::Stack => "stack",
        MappingKind::File => "file",
        MappingKind::SharedAnonymous => "shared-anonymous",
        MappingKind::Memfd => "memfd",
        MappingKind::SysvShm => "sysv-shm",
        MappingKind::Vdso => "vdso",
        MappingKind::Vvar => "vvar",
        MappingKind::Vsyscall => "vsyscall",
        MappingKind::Other => "other",
    }
}

fn memory(p: &Process) -> MemoryInfo {
    let mut by_kind: BTreeMap<String, KindInfo> = BTreeMap::new();
    let mut files: Vec<FileInfo> = Vec::new();
    for m in &p.mappings {
        let k = by_kind.entry(kind_name(m.kind).to_string()).or_default();
        k.count += 1;
        k.bytes += m.len();
        k.dumped_bytes += m.stored_bytes();
        if let Some(f) = &m.file {
            match files.iter_mut().find(|x| x.path == f.path) {
                Some(x) => {
                    x.mappings += 1;
                    x.bytes += m.len();
                }
                None => files.push(FileInfo {
                    path: f.path.clone(),
                    mappings: 1,
                    bytes: m.len(),
                }),
            }
        }
    }
    MemoryInfo {
        mappings: p.mappings.len(),
        mapped_bytes: p.mappings.iter().map(|m| m.len()).sum(),
        dumped_bytes: p.stored_bytes(),
        by_kind,
        files,
        dumps: p
            .dumps
            .iter()
            .map(|d| DumpInfo {
                images: d.images.clone(),
                dumped_bytes: d.bytes,
            })
            .collect(),
    }
}

/// The locations of the parent dumps of `store`, the parent first, as far
/// as they can be followed.
fn parents(store: &Arc<dyn ImageStore>) -> Vec<String> {
    let mut seen = vec![store.location()];
    let mut current = store.clone();
    while seen.len() <= MAX_PARENT_DEPTH {
        let Ok(Some(parent)) = current.parent() else {
            break;
        };
        let loc = parent.location();
        if seen.contains(&loc) {
            break;
        }
        seen.push(loc);
        current = parent;
    }
    seen.split_off(1)
}

/// Builds the report; `env` includes each process's environment.
pub fn inspect(input: &Input, env: bool) -> Report {
    let ckpt = &input.checkpoint;
    let mut processes = Vec::new();
    let mut arch = None;
    for e in &ckpt.tree {
        let mut info = ProcessInfo {
            pid: e.pid,
            ppid: e.ppid,
            pgid: e.pgid,
            sid: e.sid,
            comm: None,
            state: "error".into(),
            threads: e.threads.clone(),
            exe: None,
            argv: None,
            environment: None,
            memory: None,
            exit: None,
            error: None,
        };
        match ckpt.load(e.pid, LoadOptions::default()) {
            Err(err) => info.error = Some(format!("{err:#}")),
            Ok(Loaded::Zombie { comm, exit, .. }) => {
                // The thread ids CRIU records for a zombie mean nothing.
                info.state = "zombie".into();
                info.threads.clear();
                info.comm = Some(comm);
                info.exit = Some(exit);
            }
            Ok(Loaded::Process(p)) => {
                arch.get_or_insert_with(|| p.arch.name().to_string());
                info.comm = Some(p.comm.clone());
                info.state = match p.state {
                    ProcessState::Running => "running",
                    ProcessState::Stopped(_) => "stopped",
                }
                .into();
                info.threads = p.threads.iter().map(|t| t.tid).collect();
                info.exe = p.exe.clone();
                info.argv = p.read_strings(p.arg_range).ok();
                if env {
                    info.environment = p.read_strings(p.env_range).ok();
                }
                info.memory = Some(memory(&p));
            }
        }
        processes.push(info);
    }
    Report {
        schema: SCHEMA,
        input: InputInfo {
            path: input.path.display().to_string(),
            kind: input.kind.name().into(),
        },
        container: input.container.clone(),
        checkpoint: CheckpointInfo {
            image_version: ckpt.inventory.as_ref().map(|i| i.img_version),
            arch,
            processes: processes.len(),
            threads: processes.iter().map(|p| p.threads.len()).sum(),
            dumped_bytes: processes
                .iter()
                .filter_map(|p| p.memory.as_ref())
                .map(|m| m.dumped_bytes)
                .sum(),
            parents: parents(ckpt.store()),
        },
        processes,
    }
}

/// A byte count for people: "281.5 MiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A field from the checkpoint, escaped for a terminal; "-" if absent.
fn opt(s: &Option<String>) -> Cow<'_, str> {
    s.as_deref().map_or(Cow::Borrowed("-"), escape)
}

impl Report {
    /// The report as text for a terminal. Everything that comes from the
    /// checkpoint is shown through [`escape`]: no control character of a
    /// command line, path or name reaches the terminal.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "input        {} ({})",
            escape(&self.input.path),
            self.input.kind
        );
        if let Some(c) = &self.container {
            let id = c.id.as_deref().map(|i| {
                let short = i.char_indices().nth(12).map_or(i, |(at, _)| &i[..at]);
                short.to_string()
            });
            let _ = writeln!(
                o,
                "container    {}  engine {}  id {}",
                opt(&c.name),
                opt(&c.engine),
                opt(&id)
            );
            let _ = writeln!(
                o,
                "             image {}  runtime {}",
                opt(&c.image),
                opt(&c.runtime)
            );
            if c.pod.is_some() || c.namespace.is_some() {
                let _ = writeln!(
                    o,
                    "             pod {}  namespace {}",
                    opt(&c.pod),
                    opt(&c.namespace)
                );
            }
            let _ = writeln!(
                o,
                "             created {}  checkpointed {}",
                opt(&c.created),
                opt(&c.checkpointed)
            );
        }
        let ck = &self.checkpoint;
        let _ = writeln!(
            o,
            "checkpoint   CRIU images v{}, {}, {} process{}, {} thread{}, {} of memory contents",
            ck.image_version.map_or("?".into(), |v| v.to_string()),
            ck.arch.as_deref().unwrap_or("unknown arch"),
            ck.processes,
            if ck.processes == 1 { "" } else { "es" },
            ck.threads,
            if ck.threads == 1 { "" } else { "s" },
            human_bytes(ck.dumped_bytes)
        );
        for (i, parent) in ck.parents.iter().enumerate() {
            let _ = writeln!(
                o,
                "{:<12} {} {}",
                if i == 0 { "parents" } else { "" },
                i + 1,
                escape(parent)
            );
        }
        let _ = writeln!(
            o,
            "\n{:<8} {:<8} {:<8} {:>7}  {:<16} COMMAND",
            "PID", "PPID", "STATE", "THREADS", "COMM"
        );
        for p in &self.processes {
            // A zombie as ps shows one: it has no command line left.
            let cmd = match (&p.argv, &p.exit) {
                (Some(a), _) => escape(&a.join(" ")).into_owned(),
                (None, Some(_)) => format!("[{}] <defunct>", opt(&p.comm)),
                (None, None) => "?".into(),
            };
            let _ = writeln!(
                o,
                "{:<8} {:<8} {:<8} {:>7}  {:<16} {}",
                p.pid,
                p.ppid,
                p.state,
                p.threads.len(),
                opt(&p.comm),
                cmd
            );
        }
        for p in &self.processes {
            let _ = writeln!(o, "\npid {} ({})  exe {}", p.pid, opt(&p.comm), opt(&p.exe));
            if let Some(exit) = &p.exit {
                let _ = writeln!(o, "  zombie   {exit}: no memory or registers, no core");
            }
            if let Some(e) = &p.error {
                let _ = writeln!(o, "  error    {}", escape(e));
            }
            if let Some(m) = &p.memory {
                let _ = writeln!(
                    o,
                    "  memory   {} mappings, {} mapped, {} dumped",
                    m.mappings,
                    human_bytes(m.mapped_bytes),
                    human_bytes(m.dumped_bytes)
                );
                if m.dumps.len() > 1 {
                    let from: Vec<String> = m
                        .dumps
                        .iter()
                        .enumerate()
                        .map(|(level, d)| {
                            let which = if level == 0 {
                                "this dump".to_string()
                            } else {
                                format!("parent {level}")
                            };
                            format!("{} from {which}", human_bytes(d.dumped_bytes))
                        })
                        .collect();
                    let _ = writeln!(o, "  pages    {}", from.join(", "));
                }
                let kinds: Vec<String> = m
                    .by_kind
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k} {} ({}, {} dumped)",
                            v.count,
                            human_bytes(v.bytes),
                            human_bytes(v.dumped_bytes)
                        )
                    })
                    .collect();
                for (i, k) in kinds.iter().enumerate() {
                    let _ = writeln!(o, "  {:<8} {k}", if i == 0 { "kinds" } else { "" });
                }
                for (i, f) in m.files.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "  {:<8} {} ({} mapping{}, {})",
                        if i == 0 { "files" } else { "" },
                        escape(&f.path),
                        f.mappings,
                        if f.mappings == 1 { "" } else { "s" },
                        human_bytes(f.bytes)
                    );
                }
            }
            if let Some(env) = &p.environment {
                for (i, v) in env.iter().enumerate() {
                    let _ = writeln!(o, "  {:<8} {}", if i == 0 { "env" } else { "" }, escape(v));
                }
            }
        }
        o
    }
}
