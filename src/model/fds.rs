//! What a process had open: its descriptors (files, pipes, sockets,
//! event and notification files, terminals, kernel objects), its working
//! and root directories and its mount namespace.

use super::sockets::Socket;

/// What an open file descriptor refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileObject {
    /// A file or directory by path.
    Regular {
        /// Path in the process's mount namespace (" (deleted)" appended
        /// where it was unlinked while open).
        path: Vec<u8>,
        /// open(2) flags.
        flags: u32,
        /// File position.
        pos: u64,
        /// Size when dumped, where recorded.
        size: Option<u64>,
        /// Whether it is a directory.
        directory: bool,
    },
    /// One end of a pipe.
    Pipe {
        /// The pipe's inode: both ends share it.
        inode: u32,
        /// The write end (else the read end).
        write: bool,
        /// Bytes waiting in it.
        queued: u64,
    },
    /// A named pipe.
    Fifo {
        /// The pipe's inode.
        inode: u32,
        /// Its path.
        path: Option<Vec<u8>>,
        /// Bytes waiting in it.
        queued: u64,
    },
    /// A socket.
    Socket(Box<Socket>),
    /// An eventfd.
    Eventfd {
        /// Its counter.
        counter: u64,
    },
    /// An epoll instance.
    Eventpoll {
        /// The descriptors it watches.
        targets: Vec<u32>,
    },
    /// An inotify instance.
    Inotify {
        /// Inodes watched.
        watches: Vec<u64>,
    },
    /// A fanotify instance.
    Fanotify,
    /// A signalfd.
    Signalfd {
        /// The signals it takes (bit n-1 for signal n).
        mask: u64,
    },
    /// A timerfd.
    Timerfd {
        /// CLOCK_* id.
        clock: u32,
        /// Time to the next expiry (seconds, nanoseconds).
        value: (u64, u64),
        /// Interval (seconds, nanoseconds).
        interval: (u64, u64),
    },
    /// A terminal.
    Tty {
        /// Its path, where recorded.
        path: Option<Vec<u8>>,
        /// "pty", "console", "vt", "ctty", "serial", "external", "unknown".
        kind: &'static str,
        /// A pty's number.
        index: Option<u32>,
        /// The master side of a pty (/dev/ptmx).
        master: bool,
    },
    /// A memfd.
    Memfd {
        /// memfd_create's name.
        name: Vec<u8>,
        /// File position.
        pos: u64,
    },
    /// A namespace file (/proc/PID/ns/...).
    Namespace {
        /// "net", "mnt", "uts", ...
        kind: &'static str,
    },
    /// A tun/tap device.
    Tun {
        /// The interface it is attached to.
        device: Option<Vec<u8>>,
    },
    /// A BPF map.
    BpfMap {
        /// Its name.
        name: Vec<u8>,
        /// Its id.
        id: u32,
    },
    /// A pidfd.
    Pidfd {
        /// The pid it refers to (in the checkpoint's namespace; -1 if it
        /// had exited).
        pid: i32,
    },
    /// A file the checkpoint left to whoever restores it (`--external`).
    External,
    /// A kind criu2core does not know, by the checkpoint's number for it,
    /// or a file the checkpoint does not describe.
    Unknown {
        /// The type number.
        type_code: i32,
    },
}

impl FileObject {
    /// A short name of its kind: "file", "dir", "pipe", "fifo", the
    /// socket's ("tcp", "udp6", "unix/stream", ...), "eventfd", ...
    pub fn kind_name(&self) -> String {
        match self {
            FileObject::Regular {
                directory: true, ..
            } => "dir".into(),
            FileObject::Regular { .. } => "file".into(),
            FileObject::Pipe { .. } => "pipe".into(),
            FileObject::Fifo { .. } => "fifo".into(),
            FileObject::Socket(s) => s.short_name(),
            FileObject::Eventfd { .. } => "eventfd".into(),
            FileObject::Eventpoll { .. } => "epoll".into(),
            FileObject::Inotify { .. } => "inotify".into(),
            FileObject::Fanotify => "fanotify".into(),
            FileObject::Signalfd { .. } => "signalfd".into(),
            FileObject::Timerfd { .. } => "timerfd".into(),
            FileObject::Tty { .. } => "tty".into(),
            FileObject::Memfd { .. } => "memfd".into(),
            FileObject::Namespace { .. } => "ns".into(),
            FileObject::Tun { .. } => "tun".into(),
            FileObject::BpfMap { .. } => "bpf-map".into(),
            FileObject::Pidfd { .. } => "pidfd".into(),
            FileObject::External => "external".into(),
            FileObject::Unknown { .. } => "unknown".into(),
        }
    }
}

/// One open file descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFile {
    /// The descriptor's number.
    pub fd: u32,
    /// The open file's id in the checkpoint (descriptors that share an
    /// open file share it).
    pub id: u32,
    /// FD_CLOEXEC.
    pub cloexec: bool,
    /// What it refers to.
    pub object: FileObject,
}

/// What a process had open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessFiles {
    /// Its descriptors, by number.
    pub fds: Vec<OpenFile>,
    /// Its working directory.
    pub cwd: Option<Vec<u8>>,
    /// Its root directory.
    pub root: Option<Vec<u8>>,
    /// Its mount namespace's id in the checkpoint.
    pub mount_namespace: Option<u32>,
}
