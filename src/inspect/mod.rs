//! `criu2core inspect`: what an analyst wants to know first about a
//! checkpoint — the container, the process tree with full command lines,
//! each process's memory, and on request its environment, open files,
//! sockets and the container's mounts — as a [`Report`], data that the
//! command line prints as text and serializes as JSON with a stable schema
//! (docs/inspect.schema.json).

mod files;
mod report;

use std::collections::{BTreeMap, HashMap};

use serde::{Serialize, Serializer};

pub use report::{
    CheckpointInfo, DumpInfo, FdInfo, FileInfo, InputInfo, KindInfo, MappingInfo, MemoryInfo,
    MountInfo, MountNamespace, ProcessInfo, Report, SocketAddress, SocketInfo,
};

use crate::input::{Checkpoint, LoadOptions, OpenFiles};
use crate::model::{FileStatus, Loaded, Process, ProcessState, TreeEntry};
use crate::rootfs::FileView;

/// Bytes from a checkpoint (a name, a path, an argument), which a process
/// chose and which need not be UTF-8. In JSON they are exact: a string
/// where they are UTF-8, otherwise `{"base64": "..."}` (standard alphabet,
/// padded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

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
pub const SCHEMA: &str = "criu2core.inspect/7";

/// What to report besides the process tree and memory.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct InspectOptions {
    /// Each process's environment.
    pub env: bool,
    /// Each process's open file descriptors, working and root directory.
    pub fds: bool,
    /// Each process's sockets.
    pub sockets: bool,
    /// The mounts of each mount namespace.
    pub mounts: bool,
}

impl InspectOptions {
    /// With each process's environment, or not.
    pub fn env(mut self, on: bool) -> InspectOptions {
        self.env = on;
        self
    }

    /// With each process's open files, or not.
    pub fn fds(mut self, on: bool) -> InspectOptions {
        self.fds = on;
        self
    }

    /// With each process's sockets, or not.
    pub fn sockets(mut self, on: bool) -> InspectOptions {
        self.sockets = on;
        self
    }

    /// With the mounts of each mount namespace, or not.
    pub fn mounts(mut self, on: bool) -> InspectOptions {
        self.mounts = on;
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

fn memory(p: &Process) -> MemoryInfo {
    let mut by_kind: BTreeMap<String, KindInfo> = BTreeMap::new();
    let mut files: Vec<FileInfo> = Vec::new();
    let mut at: HashMap<&[u8], usize> = HashMap::new();
    let known: HashMap<&[u8], &crate::model::FileInfo> =
        p.files.iter().map(|f| (f.path.as_slice(), f)).collect();
    for m in &p.mappings {
        let k = by_kind.entry(m.kind.name().to_string()).or_default();
        k.count += 1;
        k.bytes += m.len();
        k.dumped_bytes += m.dumped_bytes();
        if let Some(f) = &m.file {
            match at.get(f.path.as_slice()) {
                Some(&i) => {
                    files[i].mappings += 1;
                    files[i].bytes += m.len();
                }
                None => {
                    at.insert(&f.path, files.len());
                    files.push(file_info(&known, &f.path, m.len()));
                }
            }
        }
    }
    MemoryInfo {
        mappings: p.mappings.len(),
        mapped_bytes: p.mappings.iter().map(|m| m.len()).sum(),
        dumped_bytes: p.dumped_bytes(),
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

/// A mapped file's entry: what is known of its contents.
fn file_info(known: &HashMap<&[u8], &crate::model::FileInfo>, path: &[u8], bytes: u64) -> FileInfo {
    let name = path.strip_suffix(b" (deleted)").unwrap_or(path);
    let known = known.get(name).copied();
    let status = known.map(|f| &f.status);
    FileInfo {
        path: Bytes(path.to_vec()),
        mappings: 1,
        bytes,
        status: status.map(FileStatus::name),
        detail: status.and_then(|s| match s {
            FileStatus::Verified { checks } => Some(format!("matches the recorded {checks}")),
            FileStatus::Mismatch { why } => Some(why.clone()),
            FileStatus::Ghost => known
                .and_then(|f| f.contents.as_ref())
                .map(|c| format!("deleted; kept in the checkpoint, {} bytes", c.size)),
            _ => None,
        }),
        source: known.and_then(|f| f.source.clone()),
    }
}

/// The file images, where the report needs them: decoded once for every
/// process (or why they could not be).
struct Files<'a> {
    tables: Option<OpenFiles<'a>>,
    error: Option<String>,
    /// The processes of each mount namespace.
    namespaces: BTreeMap<u32, Vec<u32>>,
}

impl Checkpoint {
    /// What `criu2core inspect` shows: the container, the process tree with
    /// full command lines, each process's memory, and what `opts` ask for.
    /// A process that cannot be read is in the report with its error.
    ///
    /// ```
    /// use criu2core::inspect::{InspectOptions, ProcessStatus};
    /// use criu2core::{open, OpenOptions};
    ///
    /// let ckpt = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
    /// let report = ckpt.inspect(&InspectOptions::default().env(true));
    /// let p = &report.processes[0];
    /// assert_eq!(p.state, ProcessStatus::Running);
    /// let mut env = report.processes.iter().flat_map(|p| p.environment.iter().flatten());
    /// assert!(env.any(|v| v.0 == b"SECRET_TOKEN=ENV_MARKER_5150"));
    /// let json = serde_json::to_value(&report).unwrap();
    /// assert_eq!(json["container"]["engine"], "Podman");
    /// # Ok::<(), criu2core::Error>(())
    /// ```
    pub fn inspect(&self, opts: &InspectOptions) -> Report {
        self.inspect_report(opts, None)
    }

    /// [`Checkpoint::inspect`], with every mapped file looked up where
    /// `load` says (`--root`, `--image`, the container's changed files)
    /// and checked against what the checkpoint recorded of it.
    pub fn inspect_files(
        &self,
        opts: &InspectOptions,
        load: &LoadOptions,
    ) -> crate::Result<Report> {
        let view = self.file_view(load).map_err(crate::Error::new)?;
        Ok(self.inspect_report(opts, Some(view.as_ref().map(|(v, _)| v))))
    }

    fn inspect_report(&self, opts: &InspectOptions, view: Option<Option<&FileView>>) -> Report {
        let mut files = Files {
            tables: None,
            error: None,
            namespaces: BTreeMap::new(),
        };
        if opts.fds || opts.sockets || opts.mounts {
            match self.open_files() {
                Ok(t) => files.tables = Some(t),
                Err(e) => files.error = Some(format!("{e:#}")),
            }
        }
        let mut arch = None;
        let processes: Vec<ProcessInfo> = self
            .processes()
            .iter()
            .map(|e| process_info(self, e, opts, view, &mut arch, &mut files))
            .collect();
        let mounts = opts
            .mounts
            .then(|| files::mount_namespaces(self, &files.namespaces));
        Report {
            schema: SCHEMA,
            input: InputInfo {
                path: self.path().display().to_string(),
                kind: self.kind().name(),
            },
            container: self.container().cloned(),
            image: None,
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
                parents: self.parent_dumps(),
            },
            processes,
            warnings: self.warnings().to_vec(),
            mounts,
        }
    }
}

/// Process `pid`, with its files looked up in `view` where there is one;
/// without, only the strings are read: no root filesystem is needed.
fn load(ckpt: &Checkpoint, pid: u32, view: Option<Option<&FileView>>) -> crate::Result<Loaded> {
    match view {
        Some(view) => ckpt.load_with(pid, view, true).map_err(crate::Error::new),
        None => ckpt.load(pid, &LoadOptions::default().rootfs_diff(false)),
    }
}

/// The report's entry for process `e`; `arch` is set from the first
/// process that has one.
fn process_info(
    ckpt: &Checkpoint,
    e: &TreeEntry,
    opts: &InspectOptions,
    view: Option<Option<&FileView>>,
    arch: &mut Option<String>,
    files: &mut Files<'_>,
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
        fds: None,
        cwd: None,
        root: None,
        sockets: None,
    };
    match load(ckpt, e.pid, view) {
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
            let strings = |range: (u64, u64)| {
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
            match &files.tables {
                Some(t) => files::add_files(&mut info, t, p.arch, opts, &mut files.namespaces),
                None if opts.fds || opts.sockets => {
                    info.error = files.error.as_ref().map(|e| format!("open files: {e}"));
                }
                None => {}
            }
        }
    }
    info
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
    }
}
