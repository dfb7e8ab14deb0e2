//! What [`crate::Checkpoint::inspect`] reports, as the JSON schema
//! (docs/inspect.schema.json) describes it field by field.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Bytes, ProcessStatus};
use crate::container::ContainerInfo;
use crate::input::ImageUse;
use crate::model::{ExitStatus, Mapping};
use crate::search::Kind;
use crate::warning::Warning;

/// Everything `inspect` reports.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Always [`super::SCHEMA`].
    pub schema: &'static str,
    /// The input.
    pub input: InputInfo,
    /// The container, if the input says.
    pub container: Option<ContainerInfo>,
    /// The image `--image` gave: which of it would be used, and whether
    /// it is the one the checkpoint names (set by the caller, from
    /// [`crate::Checkpoint::choose_image`]).
    pub image: Option<ImageUse>,
    /// The checkpoint as a whole.
    pub checkpoint: CheckpointInfo,
    /// Every process, in pstree order.
    pub processes: Vec<ProcessInfo>,
    /// The mount namespaces of the processes (only when asked for).
    pub mounts: Option<Vec<MountNamespace>>,
    /// What is wrong with the checkpoint as a whole but did not stop it
    /// being read (images no process uses, an inconsistent process tree...).
    pub warnings: Vec<Warning>,
}

/// An open file descriptor.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
    pub warnings: Vec<Warning>,
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
    /// Whether its contents were found and are the file the checkpoint
    /// recorded: "verified", "unverifiable" (nothing recorded), "mismatch"
    /// (not used), "missing", "not-sought" (no root or image given) or
    /// "ghost" (deleted while open; the checkpoint keeps it).
    pub status: Option<&'static str>,
    /// What was compared, what differed, or how large a ghost is.
    pub detail: Option<String>,
    /// Where its contents were read from.
    pub source: Option<String>,
}

/// One mapping, as grep's matches and diff's mappings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MappingInfo {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Protection as /proc/PID/maps shows it: `rw-p`, `r-xs`.
    pub prot: String,
    /// The kind as `--kind` names it: "anon", "heap", "stack", "file",
    /// "shmem", "vdso" or "other".
    pub kind: &'static str,
    /// The file mapped, if any.
    pub path: Option<Bytes>,
    /// Where in the file the mapping starts.
    pub offset: Option<u64>,
}

impl MappingInfo {
    /// How `m` is shown.
    pub fn of(m: &Mapping) -> MappingInfo {
        let p = m.prot;
        let flag = |on: bool, c: char| if on { c } else { '-' };
        MappingInfo {
            start: m.start,
            end: m.end,
            prot: [
                flag(p.read, 'r'),
                flag(p.write, 'w'),
                flag(p.exec, 'x'),
                if m.shared { 's' } else { 'p' },
            ]
            .iter()
            .collect(),
            kind: Kind::of(m.kind).name(),
            path: m.file.as_ref().map(|f| Bytes(f.path.clone())),
            offset: m.file.as_ref().map(|f| f.offset),
        }
    }
}
