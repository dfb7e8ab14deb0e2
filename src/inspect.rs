//! `criu2core inspect`: what an analyst wants to know first about a
//! checkpoint — the container, the process tree with full command lines,
//! and each process's memory — as text for a terminal or as JSON with a
//! stable schema (docs/inspect.schema.json).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::container::ContainerInfo;
use crate::criu::memory::MAX_PARENT_DEPTH;
use crate::criu::store::ImageStore;
use crate::input::{Checkpoint, LoadOptions};
use crate::model::{ExitStatus, Loaded, Process, ProcessState, TreeEntry};
use crate::text::{escape, escape_bytes, human_bytes};

/// Bytes from a checkpoint (a name, a path, an argument), which a process
/// chose and which need not be UTF-8. In JSON they are exact: a string
/// where they are UTF-8, otherwise `{"base64": "..."}` (standard alphabet,
/// padded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// As text for a terminal: escaped, bytes that are not UTF-8 as `\xNN`
    /// (see [`escape_bytes`]).
    pub fn display(&self) -> Cow<'_, str> {
        escape_bytes(&self.0)
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("base64", &base64(&self.0))?;
                m.end()
            }
        }
    }
}

/// Standard base64 (RFC 4648, padded).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Identifies the JSON schema of [`Report`].
pub const SCHEMA: &str = "criu2core.inspect/3";

/// What to put into a [`Report`] besides what is always there.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct InspectOptions {
    /// Each process's environment.
    pub env: bool,
}

impl InspectOptions {
    /// With each process's environment, or not.
    pub fn env(mut self, env: bool) -> InspectOptions {
        self.env = env;
        self
    }
}

/// What state a process is in, as the report shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ProcessStatus {
    /// Running or sleeping.
    Running,
    /// Stopped by a signal.
    Stopped,
    /// Exited and not reaped.
    Zombie,
    /// Could not be read (see [`ProcessInfo::error`]).
    Error,
}

impl ProcessStatus {
    /// "running", "stopped", "zombie" or "error".
    pub fn name(self) -> &'static str {
        match self {
            ProcessStatus::Running => "running",
            ProcessStatus::Stopped => "stopped",
            ProcessStatus::Zombie => "zombie",
            ProcessStatus::Error => "error",
        }
    }
}

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
    /// What is wrong with the checkpoint as a whole but did not stop it
    /// being read (images no process uses, an inconsistent process tree...).
    pub warnings: Vec<String>,
}

/// The input.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InputInfo {
    /// Path as given.
    pub path: String,
    /// "images", "checkpoint-dir", "tar", "tar.gz" or "tar.zst".
    pub kind: String,
}

/// The checkpoint as a whole.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
    pub comm: Option<Bytes>,
    /// Its state.
    pub state: ProcessStatus,
    /// Thread ids, the leader first.
    pub threads: Vec<u32>,
    /// Executable path.
    pub exe: Option<Bytes>,
    /// argv, read from the dumped memory.
    pub argv: Option<Vec<Bytes>>,
    /// The environment (only when asked for).
    pub environment: Option<Vec<Bytes>>,
    /// Memory summary.
    pub memory: Option<MemoryInfo>,
    /// How a zombie ended (null for other processes).
    pub exit: Option<ExitStatus>,
    /// Why the process could not be read, if it could not.
    pub error: Option<String>,
    /// What decoding it found wrong without failing.
    pub warnings: Vec<String>,
}

/// A process's memory.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct DumpInfo {
    /// Where its images are.
    pub images: String,
    /// Bytes of memory contents taken from it.
    pub dumped_bytes: u64,
}

/// Mappings of one kind.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct FileInfo {
    /// Path as the process saw it.
    pub path: Bytes,
    /// Number of mappings of it.
    pub mappings: usize,
    /// Bytes mapped.
    pub bytes: u64,
}

fn memory(p: &Process) -> MemoryInfo {
    let mut by_kind: BTreeMap<String, KindInfo> = BTreeMap::new();
    let mut files: Vec<FileInfo> = Vec::new();
    for m in &p.mappings {
        let k = by_kind.entry(m.kind.name().to_string()).or_default();
        k.count += 1;
        k.bytes += m.len();
        k.dumped_bytes += m.stored_bytes();
        if let Some(f) = &m.file {
            match files.iter_mut().find(|x| x.path.0 == f.path) {
                Some(x) => {
                    x.mappings += 1;
                    x.bytes += m.len();
                }
                None => files.push(FileInfo {
                    path: Bytes(f.path.clone()),
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

impl Checkpoint {
    /// What `criu2core inspect` shows: the container, the process tree with
    /// full command lines, and each process's memory. A process that
    /// cannot be read is in the report with its error.
    pub fn inspect(&self, opts: &InspectOptions) -> Report {
        let mut processes = Vec::new();
        let mut arch = None;
        for e in self.processes() {
            let info = process_info(self, e, opts, &mut arch);
            processes.push(info);
        }
        Report {
            schema: SCHEMA,
            input: InputInfo {
                path: self.path().display().to_string(),
                kind: self.kind().name().into(),
            },
            container: self.container().cloned(),
            checkpoint: CheckpointInfo {
                image_version: self.image_version(),
                arch,
                processes: processes.len(),
                threads: processes.iter().map(|p| p.threads.len()).sum(),
                dumped_bytes: processes
                    .iter()
                    .filter_map(|p| p.memory.as_ref())
                    .map(|m| m.dumped_bytes)
                    .sum(),
                parents: parents(self.images.store()),
            },
            processes,
            warnings: self.warnings().to_vec(),
        }
    }
}

/// The report's entry for process `e`; `arch` is set from the first
/// process that has one.
fn process_info(
    ckpt: &Checkpoint,
    e: &TreeEntry,
    opts: &InspectOptions,
    arch: &mut Option<String>,
) -> ProcessInfo {
    let mut info = ProcessInfo {
        pid: e.pid,
        ppid: e.ppid,
        pgid: e.pgid,
        sid: e.sid,
        comm: None,
        state: ProcessStatus::Error,
        threads: e.threads.clone(),
        exe: None,
        argv: None,
        environment: None,
        memory: None,
        exit: None,
        error: None,
        warnings: Vec::new(),
    };
    // Only the strings are read: no root filesystem is needed.
    let load = LoadOptions::default().rootfs_diff(false);
    match ckpt.load(e.pid, &load) {
        Err(err) => info.error = Some(err.to_string()),
        Ok(Loaded::Zombie(z)) => {
            // The thread ids CRIU records for a zombie mean nothing.
            info.state = ProcessStatus::Zombie;
            info.threads.clear();
            info.comm = Some(Bytes(z.comm));
            info.exit = Some(z.exit);
        }
        Ok(Loaded::Process(p)) => {
            arch.get_or_insert_with(|| p.arch.name().to_string());
            info.comm = Some(Bytes(p.comm.clone()));
            info.state = match p.state {
                ProcessState::Running => ProcessStatus::Running,
                ProcessState::Stopped(_) => ProcessStatus::Stopped,
            };
            info.threads = p.threads.iter().map(|t| t.tid).collect();
            info.exe = p.exe.clone().map(Bytes);
            let strings = |range| {
                p.read_byte_strings(range)
                    .ok()
                    .map(|v| v.into_iter().map(Bytes).collect())
            };
            info.argv = strings(p.arg_range);
            if opts.env {
                info.environment = strings(p.env_range);
            }
            info.memory = Some(memory(&p));
            info.warnings = p.warnings.clone();
        }
    }
    info
}

/// A field from the checkpoint, escaped for a terminal; "-" if absent.
fn opt(s: &Option<String>) -> Cow<'_, str> {
    s.as_deref().map_or(Cow::Borrowed("-"), escape)
}

fn opt_bytes(b: &Option<Bytes>) -> Cow<'_, str> {
    b.as_ref().map_or(Cow::Borrowed("-"), Bytes::display)
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
            container_text(&mut o, c);
        }
        self.checkpoint_text(&mut o);
        let _ = writeln!(
            o,
            "\n{:<8} {:<8} {:<8} {:>7}  {:<16} COMMAND",
            "PID", "PPID", "STATE", "THREADS", "COMM"
        );
        for p in &self.processes {
            // A zombie as ps shows one: it has no command line left.
            let cmd = match (&p.argv, &p.exit) {
                (Some(a), _) => a.iter().map(Bytes::display).collect::<Vec<_>>().join(" "),
                (None, Some(_)) => format!("[{}] <defunct>", opt_bytes(&p.comm)),
                (None, None) => "?".into(),
            };
            let _ = writeln!(
                o,
                "{:<8} {:<8} {:<8} {:>7}  {:<16} {}",
                p.pid,
                p.ppid,
                p.state.name(),
                p.threads.len(),
                opt_bytes(&p.comm),
                cmd
            );
        }
        for p in &self.processes {
            process_text(&mut o, p);
        }
        o
    }

    /// The checkpoint line, its parent dumps and its warnings.
    fn checkpoint_text(&self, o: &mut String) {
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
        labelled(o, 12, "warning", self.warnings.iter().map(|w| escape(w)));
    }
}

/// Lines of `items`, the first labelled `label` in a column of `width`.
fn labelled<T: std::fmt::Display>(
    o: &mut String,
    width: usize,
    label: &str,
    items: impl Iterator<Item = T>,
) {
    let indent = if width < 12 { "  " } else { "" };
    for (i, item) in items.enumerate() {
        let _ = writeln!(
            o,
            "{indent}{:<width$} {item}",
            if i == 0 { label } else { "" }
        );
    }
}

/// The container's lines.
fn container_text(o: &mut String, c: &ContainerInfo) {
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

/// One process's section.
fn process_text(o: &mut String, p: &ProcessInfo) {
    let _ = writeln!(
        o,
        "\npid {} ({})  exe {}",
        p.pid,
        opt_bytes(&p.comm),
        opt_bytes(&p.exe)
    );
    if let Some(exit) = &p.exit {
        let _ = writeln!(o, "  zombie   {exit}: no memory or registers, no core");
    }
    if let Some(e) = &p.error {
        let _ = writeln!(o, "  error    {}", escape(e));
    }
    labelled(o, 8, "warning", p.warnings.iter().map(|w| escape(w)));
    if let Some(m) = &p.memory {
        memory_text(o, m);
    }
    if let Some(env) = &p.environment {
        labelled(o, 8, "env", env.iter().map(Bytes::display));
    }
}

/// A process's memory lines.
fn memory_text(o: &mut String, m: &MemoryInfo) {
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
    let kinds = m.by_kind.iter().map(|(k, v)| {
        format!(
            "{k} {} ({}, {} dumped)",
            v.count,
            human_bytes(v.bytes),
            human_bytes(v.dumped_bytes)
        )
    });
    labelled(o, 8, "kinds", kinds);
    let files = m.files.iter().map(|f| {
        format!(
            "{} ({} mapping{}, {})",
            f.path.display(),
            f.mappings,
            if f.mappings == 1 { "" } else { "s" },
            human_bytes(f.bytes)
        )
    });
    labelled(o, 8, "files", files);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_exact_in_json() {
        let json = |b: &[u8]| serde_json::to_string(&Bytes(b.to_vec())).unwrap();
        assert_eq!(json(b"/usr/bin/app"), r#""/usr/bin/app""#);
        assert_eq!(json("/tmp/café".as_bytes()), "\"/tmp/café\"");
        // Latin-1 "café": not UTF-8, so base64 of the very bytes.
        assert_eq!(json(b"/tmp/caf\xe9"), r#"{"base64":"L3RtcC9jYWbp"}"#);
        for (raw, b64) in [
            (&b""[..], ""),
            (b"\xff", "/w=="),
            (b"\xff\xfe", "//4="),
            (b"\xff\xfe\xfd", "//79"),
        ] {
            assert_eq!(base64(raw), b64);
        }
        assert_eq!(Bytes(b"caf\xe9\x1b".to_vec()).display(), "caf\\xe9\\x1b");
    }
}
