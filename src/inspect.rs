//! `criu2core inspect`: what an analyst wants to know first about a
//! checkpoint — the container, the process tree with full command lines,
//! each process's memory, and on request its open files, sockets and the
//! container's mounts — as text for a terminal or as JSON with a stable
//! schema (docs/inspect.schema.json).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::text::{escape, escape_bytes};

use crate::container::ContainerInfo;
use crate::criu::fds::{FileObject, FileTables, OpenFile};
use crate::criu::memory::MAX_PARENT_DEPTH;
use crate::criu::mounts::{self, Mount};
use crate::criu::sockets::{endpoint_bytes, Endpoint, Socket};
use crate::criu::store::ImageStore;
use crate::criu::{ExitStatus, LoadOptions, Loaded};
use crate::input::Input;
use crate::model::{MappingKind, Process, ProcessState};

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
pub const SCHEMA: &str = "criu2core.inspect/4";

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
    /// The mount namespaces of the processes (only when asked for).
    pub mounts: Option<Vec<MountNamespace>>,
    /// What is wrong with the checkpoint as a whole but did not stop it
    /// being read (images no process uses, an inconsistent process tree...).
    pub warnings: Vec<String>,
}

/// What to report besides the process tree and memory.
#[derive(Debug, Clone, Copy, Default)]
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

/// An open file descriptor.
#[derive(Debug, Clone, Serialize)]
pub struct FdInfo {
    /// Its number.
    pub fd: u32,
    /// "file", "dir", "pipe", "fifo", "tcp", "udp6", "unix/stream", "netlink",
    /// "packet", "eventfd", "epoll", "inotify", "fanotify", "signalfd",
    /// "timerfd", "tty", "memfd", "ns", "tun", "bpf-map", "pidfd",
    /// "external" or "unknown".
    #[serde(rename = "type")]
    pub kind: String,
    /// FD_CLOEXEC.
    pub cloexec: bool,
    /// The path, where it has one.
    pub path: Option<Bytes>,
    /// "r", "w" or "rw" for files opened with an access mode.
    pub mode: Option<&'static str>,
    /// open(2) flags.
    pub flags: Option<u32>,
    /// File position.
    pub pos: Option<u64>,
    /// Inode of a pipe or socket (both ends of a pipe share it).
    pub inode: Option<u32>,
    /// Bytes queued unread (pipes, fifos, sockets).
    pub queued: Option<u64>,
    /// The rest, as the text report shows it (escaped).
    pub detail: String,
}

/// One end of a socket.
#[derive(Debug, Clone, Serialize)]
pub struct SocketAddress {
    /// As ss writes it: `127.0.0.1:80`, `[::1]:80`, a path, `@name` for an
    /// abstract unix name, `*` for an unnamed one, `PORTID/GROUP` for
    /// netlink (escaped as the text report shows it).
    pub address: String,
    /// The IP address.
    pub ip: Option<String>,
    /// The port (a netlink socket's port id).
    pub port: Option<u32>,
    /// A unix socket's name, exactly (an abstract name starts with NUL).
    pub path: Option<Bytes>,
}

/// A socket.
#[derive(Debug, Clone, Serialize)]
pub struct SocketInfo {
    /// The descriptor.
    pub fd: u32,
    /// "inet", "inet6", "unix", "netlink" or "packet".
    pub family: &'static str,
    /// "stream", "dgram", "seqpacket", "raw", ...
    #[serde(rename = "type")]
    pub kind: String,
    /// "tcp", "udp", ..., "unix", the netlink family, a packet socket's ethertype.
    pub protocol: String,
    /// "ESTABLISHED", "LISTEN", "UNCONN", ... as ss shows them.
    pub state: String,
    /// The local end.
    pub local: Option<SocketAddress>,
    /// The remote end (a unix socket's peer's name, where it has one).
    pub remote: Option<SocketAddress>,
    /// Bytes received and not read, where recorded.
    pub recv_queue: Option<u64>,
    /// Bytes written and not sent or acknowledged, where recorded.
    pub send_queue: Option<u64>,
    /// Listen backlog.
    pub backlog: u32,
    /// The socket's inode.
    pub inode: u32,
    /// A unix socket's peer, by inode.
    pub peer_inode: Option<u32>,
}

/// One mount.
#[derive(Debug, Clone, Serialize)]
pub struct MountInfo {
    /// Mount id.
    pub id: u32,
    /// The mount it is on.
    pub parent: u32,
    /// Where.
    pub mountpoint: Bytes,
    /// Filesystem type ("unsupported" where CRIU recorded none).
    #[serde(rename = "type")]
    pub fstype: String,
    /// Source.
    pub source: Bytes,
    /// The directory of the filesystem mounted there.
    pub root: Bytes,
    /// Superblock options.
    pub options: Bytes,
    /// Mounted read-only.
    pub read_only: bool,
    /// The key of an external (bind) mount.
    pub external: Option<Bytes>,
    /// Shared peer group (0: private).
    pub shared: u32,
    /// Master peer group (0: none).
    pub master: u32,
}

/// A mount namespace and its mounts.
#[derive(Debug, Clone, Serialize)]
pub struct MountNamespace {
    /// Its id in the checkpoint (the N of mountpoints-N.img).
    pub id: u32,
    /// The processes in it.
    pub processes: Vec<u32>,
    /// Its mounts, each after the one it is mounted on; null if the
    /// checkpoint holds none (the processes shared the mount namespace of
    /// the host CRIU ran on) or they could not be read.
    pub mounts: Option<Vec<MountInfo>>,
    /// Why its mounts could not be read, if they could not.
    pub error: Option<String>,
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
    pub comm: Option<Bytes>,
    /// "running", "stopped", "zombie" or "error".
    pub state: String,
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
    /// Open file descriptors (only when asked for).
    pub fds: Option<Vec<FdInfo>>,
    /// Working directory (with the descriptors).
    pub cwd: Option<Bytes>,
    /// Root directory (with the descriptors).
    pub root: Option<Bytes>,
    /// Sockets (only when asked for).
    pub sockets: Option<Vec<SocketInfo>>,
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
    pub path: Bytes,
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

/// Bytes from the checkpoint as the text shows them.
fn esc(b: &[u8]) -> String {
    escape_bytes(b).into_owned()
}

fn access_mode(flags: u32) -> &'static str {
    match flags & 3 {
        0 => "r",
        1 => "w",
        _ => "rw",
    }
}

fn fd_info(f: &OpenFile) -> FdInfo {
    let mut i = FdInfo {
        fd: f.fd,
        kind: f.object.kind_name(),
        cloexec: f.cloexec,
        path: None,
        mode: None,
        flags: None,
        pos: None,
        inode: None,
        queued: None,
        detail: String::new(),
    };
    let queue = |n: u64| {
        if n > 0 {
            format!(", {n} bytes queued")
        } else {
            String::new()
        }
    };
    let bytes = |p: &[u8]| Some(Bytes(p.to_vec()));
    i.detail = match &f.object {
        FileObject::Regular {
            path,
            flags,
            pos,
            size,
            directory,
        } => {
            (i.path, i.mode, i.flags, i.pos) = (
                bytes(path),
                Some(access_mode(*flags)),
                Some(*flags),
                Some(*pos),
            );
            let size = size.map(|s| format!(", size {s}")).unwrap_or_default();
            if *directory {
                format!("{} ({})", esc(path), access_mode(*flags))
            } else {
                format!("{} ({}, pos {pos}{size})", esc(path), access_mode(*flags))
            }
        }
        FileObject::Pipe {
            inode,
            write,
            queued,
        } => {
            (i.inode, i.queued, i.mode) = (
                Some(*inode),
                Some(*queued),
                Some(if *write { "w" } else { "r" }),
            );
            format!(
                "pipe:[{inode}] {} end{}",
                if *write { "write" } else { "read" },
                queue(*queued)
            )
        }
        FileObject::Fifo {
            inode,
            path,
            queued,
        } => {
            (i.inode, i.queued, i.path) =
                (Some(*inode), Some(*queued), path.as_deref().and_then(bytes));
            format!(
                "{} (pipe:[{inode}]{})",
                path.as_deref().map_or("?".into(), esc),
                queue(*queued)
            )
        }
        FileObject::Socket(s) => {
            i.inode = Some(s.inode);
            i.queued = s.queues.map(|q| q.recv + q.send);
            socket_text(s)
        }
        FileObject::Eventfd { counter } => format!("counter {counter}"),
        FileObject::Eventpoll { targets } => {
            let t: Vec<String> = targets.iter().map(u32::to_string).collect();
            format!(
                "watching fds {}",
                if t.is_empty() {
                    "none".into()
                } else {
                    t.join(", ")
                }
            )
        }
        FileObject::Inotify { watches } => format!("{} watches", watches.len()),
        FileObject::Fanotify => String::new(),
        FileObject::Signalfd { mask } => format!("signals {mask:#x}"),
        FileObject::Timerfd {
            clock,
            value,
            interval,
        } => format!(
            "clock {clock}, next in {}.{:09} s, interval {}.{:09} s",
            value.0, value.1, interval.0, interval.1
        ),
        FileObject::Tty {
            path,
            kind,
            index,
            master,
        } => {
            i.path = path.as_deref().and_then(bytes);
            let mut d = path.as_deref().map_or_else(|| "?".into(), esc);
            d.push_str(&format!(" ({kind}"));
            if let Some(n) = index {
                d.push_str(&format!(" {n}"));
            }
            if *master {
                d.push_str(", master");
            }
            d.push(')');
            d
        }
        FileObject::Memfd { name, pos } => {
            i.pos = Some(*pos);
            format!("memfd:{} (pos {pos})", esc(name))
        }
        FileObject::Namespace { kind } => format!("{kind} namespace"),
        FileObject::Tun { device } => device.as_deref().map_or("detached".into(), esc),
        FileObject::BpfMap { name, id } => format!("{} (id {id})", esc(name)),
        FileObject::Pidfd { pid } => format!("pid {pid}"),
        FileObject::External => "left to the restorer (--external)".into(),
        FileObject::Unknown { type_code } => format!("CRIU file type {type_code}"),
    };
    i
}

/// A socket as one line: state, local end, remote end, queues (escaped).
fn socket_text(s: &Socket) -> String {
    let mut t = format!(
        "{} {}",
        s.state,
        s.local
            .as_ref()
            .map_or("*".into(), |e| esc(&endpoint_bytes(e)))
    );
    if let Some(r) = &s.remote {
        t.push_str(&format!(" -> {}", esc(&endpoint_bytes(r))));
    } else if let Some(p) = s.peer {
        t.push_str(&format!(" -> socket:[{p}]"));
    }
    if let Some(q) = s.queues {
        t.push_str(&format!(" (recv-q {}, send-q {})", q.recv, q.send));
    }
    t
}

fn address(e: &Endpoint) -> SocketAddress {
    let mut a = SocketAddress {
        address: esc(&endpoint_bytes(e)),
        ip: None,
        port: None,
        path: None,
    };
    match e {
        Endpoint::Inet { addr, port } => {
            (a.ip, a.port) = (Some(addr.to_string()), Some(u32::from(*port)));
        }
        Endpoint::Unix(name) => a.path = Some(Bytes(name.clone())),
        Endpoint::Netlink { portid, .. } => a.port = Some(*portid),
    }
    a
}

fn socket_info(fd: u32, s: &Socket) -> SocketInfo {
    SocketInfo {
        fd,
        family: s.family.name(),
        kind: s.kind.clone(),
        protocol: s.protocol.clone(),
        state: s.state.clone(),
        local: s.local.as_ref().map(address),
        remote: s.remote.as_ref().map(address),
        recv_queue: s.queues.map(|q| q.recv),
        send_queue: s.queues.map(|q| q.send),
        backlog: s.backlog,
        inode: s.inode,
        peer_inode: s.peer,
    }
}

fn mount_info(m: &Mount) -> MountInfo {
    MountInfo {
        id: m.id,
        parent: m.parent,
        mountpoint: Bytes(m.mountpoint.clone()),
        fstype: m.fstype.clone(),
        source: Bytes(m.source.clone()),
        root: Bytes(m.root.clone()),
        options: Bytes(m.options.clone()),
        read_only: m.read_only,
        external: m.external.clone().map(Bytes),
        shared: m.shared,
        master: m.master,
    }
}

/// Fills in what `opts` ask for of process `info`'s files.
fn add_files(
    info: &mut ProcessInfo,
    tables: &FileTables,
    store: &dyn ImageStore,
    big_endian: bool,
    opts: &InspectOptions,
    namespaces: &mut BTreeMap<u32, Vec<u32>>,
) {
    match tables.process(store, info.pid, big_endian) {
        Err(e) => {
            let msg = format!("open files: {e:#}");
            info.error = Some(match info.error.take() {
                Some(prev) => format!("{prev}; {msg}"),
                None => msg,
            });
        }
        Ok(files) => {
            if opts.fds {
                info.fds = Some(files.fds.iter().map(fd_info).collect());
                info.cwd = files.cwd.clone().map(Bytes);
                info.root = files.root.clone().map(Bytes);
            }
            if opts.sockets {
                info.sockets = Some(
                    files
                        .fds
                        .iter()
                        .filter_map(|f| match &f.object {
                            FileObject::Socket(s) => Some(socket_info(f.fd, s)),
                            _ => None,
                        })
                        .collect(),
                );
            }
            if let Some(ns) = files.mount_namespace {
                namespaces.entry(ns).or_default().push(info.pid);
            }
        }
    }
}

/// Builds the report of what `opts` ask for.
pub fn inspect(input: &Input, opts: &InspectOptions) -> Report {
    let env = opts.env;
    let ckpt = &input.checkpoint;
    let store = ckpt.store().clone();
    let mut processes = Vec::new();
    let mut arch = None;
    let mut namespaces: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut mounts_error = None;
    let tables = if opts.fds || opts.sockets || opts.mounts {
        match FileTables::load(&*store) {
            Ok(t) => Some(t),
            Err(e) => {
                mounts_error = Some(format!("{e:#}"));
                None
            }
        }
    } else {
        None
    };
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
            warnings: Vec::new(),
            fds: None,
            cwd: None,
            root: None,
            sockets: None,
        };
        match ckpt.load(e.pid, LoadOptions::default()) {
            Err(err) => info.error = Some(format!("{err:#}")),
            Ok(Loaded::Zombie { comm, exit, .. }) => {
                // The thread ids CRIU records for a zombie mean nothing.
                info.state = "zombie".into();
                info.threads.clear();
                info.comm = Some(Bytes(comm));
                info.exit = Some(exit);
            }
            Ok(Loaded::Process(p)) => {
                arch.get_or_insert_with(|| p.arch.name().to_string());
                info.comm = Some(Bytes(p.comm.clone()));
                info.state = match p.state {
                    ProcessState::Running => "running",
                    ProcessState::Stopped(_) => "stopped",
                }
                .into();
                info.threads = p.threads.iter().map(|t| t.tid).collect();
                info.exe = p.exe.clone().map(Bytes);
                let strings = |range| {
                    p.read_byte_strings(range)
                        .ok()
                        .map(|v| v.into_iter().map(Bytes).collect())
                };
                info.argv = strings(p.arg_range);
                if env {
                    info.environment = strings(p.env_range);
                }
                info.memory = Some(memory(&p));
                info.warnings = p.warnings.clone();
                match &tables {
                    Some(t) => add_files(
                        &mut info,
                        t,
                        &*store,
                        p.arch.abi().big_endian,
                        opts,
                        &mut namespaces,
                    ),
                    None if opts.fds || opts.sockets => {
                        info.error = mounts_error.as_ref().map(|e| format!("open files: {e}"));
                    }
                    None => {}
                }
            }
        }
        processes.push(info);
    }
    let mounts = opts.mounts.then(|| {
        namespaces
            .iter()
            .map(|(&id, pids)| {
                let (mounts, error) = match mounts::load(&*store, id) {
                    Ok(m) => (m.map(|m| m.iter().map(mount_info).collect()), None),
                    Err(e) => (None, Some(format!("{e:#}"))),
                };
                MountNamespace {
                    id,
                    processes: pids.clone(),
                    mounts,
                    error,
                }
            })
            .collect()
    });
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
        warnings: input.warnings.clone(),
        mounts,
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
        for (i, w) in self.warnings.iter().enumerate() {
            let _ = writeln!(
                o,
                "{:<12} {}",
                if i == 0 { "warning" } else { "" },
                escape(w)
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
                (Some(a), _) => a.iter().map(Bytes::display).collect::<Vec<_>>().join(" "),
                (None, Some(_)) => format!("[{}] <defunct>", opt_bytes(&p.comm)),
                (None, None) => "?".into(),
            };
            let _ = writeln!(
                o,
                "{:<8} {:<8} {:<8} {:>7}  {:<16} {}",
                p.pid,
                p.ppid,
                p.state,
                p.threads.len(),
                opt_bytes(&p.comm),
                cmd
            );
        }
        for p in &self.processes {
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
            for (i, w) in p.warnings.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "  {:<8} {}",
                    if i == 0 { "warning" } else { "" },
                    escape(w)
                );
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
                        f.path.display(),
                        f.mappings,
                        if f.mappings == 1 { "" } else { "s" },
                        human_bytes(f.bytes)
                    );
                }
            }
            if let Some(fds) = &p.fds {
                for (i, f) in fds.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "  {:<8} {:<4} {:<11} {}",
                        if i == 0 { "fds" } else { "" },
                        f.fd,
                        f.kind,
                        f.detail
                    );
                }
                if fds.is_empty() {
                    let _ = writeln!(o, "  fds      none");
                }
                if let Some(cwd) = &p.cwd {
                    let _ = writeln!(o, "  cwd      {}", cwd.display());
                }
                if let Some(root) = p.root.as_ref().filter(|r| r.0 != b"/") {
                    let _ = writeln!(o, "  root     {}", root.display());
                }
            }
            if let Some(socks) = &p.sockets {
                if socks.is_empty() {
                    let _ = writeln!(o, "  sockets  none");
                } else {
                    let _ = writeln!(
                        o,
                        "  sockets  {:<4} {:<12} {:<11} {:>6} {:>6}  {:<24} REMOTE",
                        "FD", "PROTO", "STATE", "RECV-Q", "SEND-Q", "LOCAL"
                    );
                }
                for s in socks {
                    let q = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
                    // As ss shows a listener: its backlog as the send queue.
                    let send = if s.state == "LISTEN" {
                        s.backlog.to_string()
                    } else {
                        q(s.send_queue)
                    };
                    let remote = match (&s.remote, s.peer_inode) {
                        (Some(r), _) => r.address.clone(),
                        (None, Some(p)) => format!("socket:[{p}]"),
                        (None, None) => "*".into(),
                    };
                    let proto = match s.family {
                        "inet6" => format!("{}6", s.protocol),
                        "unix" => format!("unix/{}", s.kind),
                        "inet" => s.protocol.clone(),
                        f => f.to_string(),
                    };
                    let _ = writeln!(
                        o,
                        "           {:<4} {:<12} {:<11} {:>6} {:>6}  {:<24} {}",
                        s.fd,
                        proto,
                        s.state,
                        q(s.recv_queue),
                        send,
                        s.local.as_ref().map_or("*", |l| l.address.as_str()),
                        remote
                    );
                }
            }
            if let Some(env) = &p.environment {
                for (i, v) in env.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "  {:<8} {}",
                        if i == 0 { "env" } else { "" },
                        v.display()
                    );
                }
            }
        }
        if let Some(spaces) = &self.mounts {
            if spaces.is_empty() {
                let _ = writeln!(o, "\nmounts       none recorded");
            }
            for ns in spaces {
                let pids: Vec<String> = ns.processes.iter().map(u32::to_string).collect();
                let _ = writeln!(
                    o,
                    "\nmount namespace {} (pid{} {})",
                    ns.id,
                    if pids.len() == 1 { "" } else { "s" },
                    pids.join(", ")
                );
                if let Some(e) = &ns.error {
                    let _ = writeln!(o, "  error    {}", escape(e));
                }
                match &ns.mounts {
                    None if ns.error.is_none() => {
                        let _ = writeln!(
                            o,
                            "  none recorded: the processes shared the mount namespace of the host CRIU ran on"
                        );
                    }
                    None => {}
                    Some(ms) => {
                        let _ = writeln!(
                            o,
                            "  {:<5} {:<6} {:<12} {:<20} {:<12} OPTIONS",
                            "ID", "PARENT", "TYPE", "MOUNTPOINT", "SOURCE"
                        );
                        for m in ms {
                            let mut opts = format!(
                                "{}{}{}",
                                if m.read_only { "ro" } else { "rw" },
                                if m.options.0.is_empty() { "" } else { "," },
                                m.options.display()
                            );
                            if m.root.0 != b"/" {
                                opts.push_str(&format!(" (root {})", m.root.display()));
                            }
                            if let Some(k) = &m.external {
                                opts.push_str(&format!(" (external {})", k.display()));
                            }
                            let _ = writeln!(
                                o,
                                "  {:<5} {:<6} {:<12} {:<20} {:<12} {}",
                                m.id,
                                m.parent,
                                escape(&m.fstype),
                                m.mountpoint.display(),
                                m.source.display(),
                                opts
                            );
                        }
                    }
                }
            }
        }
        o
    }
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
