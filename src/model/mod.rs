//! The process model: what a checkpoint says about one process — its
//! threads and their registers, its mappings and where each of their bytes
//! comes from — in terms that name neither CRIU's images nor ELF. Decoding
//! CRIU's images fills it in; the core writer reads it.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::error::{fault, Error, ErrorKind, Result};

pub(crate) mod fds;
pub(crate) mod mounts;
pub mod regs;
pub(crate) mod sockets;
pub(crate) mod source;

pub use regs::{Arch, Registers};
pub(crate) use source::{FileSource, ReadAt, RemoteObject};

/// A byte range of a file that holds page data: on this machine, or an
/// object in object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// How to name it in messages.
    pub label: String,
    /// The file (for an object, its URL, never opened as a path).
    pub path: PathBuf,
    /// Where the range starts in the file.
    pub offset: u64,
    /// Length of the range.
    pub len: u64,
    /// The object that holds the range, where it is in object storage
    /// rather than a file on this machine.
    pub remote: Option<RemoteObject>,
}

impl Blob {
    /// The `len` bytes at `offset` in this range, in the same file or
    /// object, named `label`.
    pub(crate) fn part(&self, label: String, offset: u64, len: u64) -> Blob {
        Blob {
            label,
            path: self.path.clone(),
            offset: self.offset + offset,
            len,
            remote: self.remote.clone(),
        }
    }
}

/// Bytes from a checkpoint (a name, a path, an argument) as text for
/// people. Processes name themselves and their files whatever they like,
/// so the model keeps those as bytes, and this is the one place where they
/// become text: bytes that are not UTF-8 show as U+FFFD.
pub(crate) fn display_bytes(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Most bytes [`Process::read_byte_strings`] reads: argv and the environment
/// together take at most a quarter of the stack limit, 2 MiB by default.
pub const MAX_STRINGS_BYTES: u64 = 64 << 20;

/// Identifies a [`Blob`] of a process ([`Process::blob`]).
pub type BlobId = usize;

/// Why the contents of some pages are not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// Unmodified pages of a file mapping: they are in the file, not the
    /// checkpoint, and no root filesystem was given to read them from.
    FileBacked,
    /// Pages left on the source machine by a lazy-migration dump.
    Lazy,
    /// Mappings the kernel never dumps (vvar, vsyscall, device memory).
    NoContents,
}

/// Where the bytes of a run of pages come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageSource {
    /// Bytes in a file ([`Process::blob`]).
    Blob {
        /// The file.
        blob: BlobId,
        /// Where the run's bytes start within it.
        offset: u64,
    },
    /// Memory that reads as zeros (anonymous pages never touched or not dumped).
    Zero,
    /// Memory whose contents are unknown.
    Missing(Missing),
}

/// A run of bytes of a mapping with one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRun {
    /// Length in bytes.
    pub len: u64,
    /// Where the bytes come from.
    pub source: PageSource,
}

impl crate::join::Join for PageRun {
    /// Runs join where the second continues the first: zeros after zeros,
    /// the same kind of unknown contents, or the next bytes of one blob.
    fn join(&mut self, next: &PageRun) -> bool {
        let ok = match (self.source, next.source) {
            (PageSource::Zero, PageSource::Zero) => true,
            (PageSource::Missing(a), PageSource::Missing(b)) => a == b,
            (PageSource::Blob { blob: a, offset: o }, PageSource::Blob { blob: b, offset: p }) => {
                a == b && o + self.len == p
            }
            _ => false,
        };
        if ok {
            self.len += next.len;
        }
        ok
    }
}

/// What a mapping is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MappingKind {
    /// Private anonymous memory.
    Anonymous,
    /// The brk heap.
    Heap,
    /// The main thread's stack.
    Stack,
    /// A mapped file, private or shared.
    File,
    /// MAP_SHARED|MAP_ANONYMOUS memory.
    SharedAnonymous,
    /// A memfd.
    Memfd,
    /// A System V shared memory segment.
    SysvShm,
    /// The vDSO.
    Vdso,
    /// The vDSO's data pages.
    Vvar,
    /// The legacy vsyscall page.
    Vsyscall,
    /// Anything else (AIO rings, packet sockets, uprobes).
    Other,
}

impl MappingKind {
    /// A short name: "anonymous", "heap", "stack", "file",
    /// "shared-anonymous", "memfd", "sysv-shm", "vdso", "vvar",
    /// "vsyscall" or "other".
    pub fn name(self) -> &'static str {
        match self {
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
}

/// The file behind a mapping, as the kernel names it in NT_FILE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    /// Path as seen by the process (with " (deleted)" where the kernel adds
    /// it), as bytes: a path need not be UTF-8.
    pub path: Vec<u8>,
    /// Offset in the file, in bytes.
    pub offset: u64,
}

/// What the checkpoint recorded about a regular file when it was dumped,
/// by which the file is told from another of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Recorded {
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Its ELF build-id, zero-padded to a multiple of 4 bytes as recorded.
    pub build_id: Option<Vec<u8>>,
    /// A CRC32C of some of its bytes.
    pub checksum: Option<u32>,
}

impl Recorded {
    /// Whether anything was recorded at all.
    pub fn is_empty(&self) -> bool {
        self.size.is_none() && self.build_id.is_none() && self.checksum.is_none()
    }
}

/// Where the contents of a file a process mapped came from, and whether
/// they are the file the checkpoint recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileStatus {
    /// Found in the root, image or the checkpoint's changed files and
    /// matching what was recorded; `checks` names what was compared
    /// ("size", "size, build-id").
    Verified {
        /// What was compared.
        checks: &'static str,
    },
    /// Found, but nothing was recorded to compare it with: used as found.
    Unverifiable,
    /// Found, but not the recorded file: not used.
    Mismatch {
        /// What was recorded and what was found.
        why: String,
    },
    /// Not found where the process's files were looked for.
    Missing,
    /// No root, image or changed files to look in.
    NotSought,
    /// Deleted while open; the checkpoint keeps its contents.
    Ghost,
}

impl FileStatus {
    /// A one-word name: "verified", "unverifiable", "mismatch", "missing",
    /// "not-sought" or "ghost".
    pub fn name(&self) -> &'static str {
        match self {
            FileStatus::Verified { .. } => "verified",
            FileStatus::Unverifiable => "unverifiable",
            FileStatus::Mismatch { .. } => "mismatch",
            FileStatus::Missing => "missing",
            FileStatus::NotSought => "not-sought",
            FileStatus::Ghost => "ghost",
        }
    }
}

/// Part of a file's contents that lies in a blob; the rest reads as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePiece {
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// The blob that holds it ([`Process::blob`]).
    pub blob: BlobId,
    /// Where it starts in the blob.
    pub blob_offset: u64,
}

/// The contents of a file: its size and where its bytes are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileContents {
    /// Size in bytes.
    pub size: u64,
    /// Its non-zero parts, in offset order, disjoint.
    pub pieces: Vec<FilePiece>,
}

/// A regular file a process mapped, with what is known of its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// Its path as the process opened it (no " (deleted)").
    pub path: Vec<u8>,
    /// What was recorded of it.
    pub recorded: Recorded,
    /// Whether its contents were found, and trusted.
    pub status: FileStatus,
    /// Its contents, where they are used: verified, unverifiable or ghost.
    pub contents: Option<FileContents>,
    /// Where its contents were found (a path under the root, an image
    /// layer, or the checkpoint's ghost image), for people.
    pub source: Option<String>,
}

/// Page protection of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prot {
    /// PROT_READ
    pub read: bool,
    /// PROT_WRITE
    pub write: bool,
    /// PROT_EXEC
    pub exec: bool,
}

/// One mapping (VMA).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Protection.
    pub prot: Prot,
    /// MAP_SHARED.
    pub shared: bool,
    /// What it is.
    pub kind: MappingKind,
    /// The file behind it, if any (boxed: most mappings have none, and a
    /// process can have hundreds of thousands of mappings).
    pub file: Option<Box<MappedFile>>,
    /// Bytes whose contents come from the checkpoint or a root filesystem.
    pub(crate) stored: u64,
    /// Of those, the bytes the checkpoint itself holds (pages files, and
    /// files deleted while open).
    pub(crate) dumped: u64,
}

impl Mapping {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the mapping covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Bytes whose contents come from the checkpoint or a root filesystem.
    pub fn stored_bytes(&self) -> u64 {
        self.stored
    }

    /// Bytes whose contents the checkpoint itself holds.
    pub fn dumped_bytes(&self) -> u64 {
        self.dumped
    }
}

/// Where every byte of a process's mappings comes from, as page runs made
/// afresh on each walk, front to back, so that they need never be held all
/// at once: a large fragmented heap has millions of them.
pub(crate) trait PageRuns: std::fmt::Debug + Send + Sync {
    /// Calls `f` with the index of each mapping from `from` on and each of
    /// its runs, in address order (each mapping's runs cover it exactly),
    /// until `f` breaks.
    fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(usize, PageRun) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<()>;
}

/// What [`Process::walk_runs`] calls with each run: the mapping's index,
/// the mapping, the address the run starts at, and the run.
pub(crate) type RunVisit<'a> =
    dyn FnMut(usize, &Mapping, u64, PageRun) -> anyhow::Result<ControlFlow<()>> + 'a;

/// Page runs held in memory, one list per mapping (for tests).
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct RunList(pub Vec<Vec<PageRun>>);

#[cfg(test)]
impl PageRuns for RunList {
    fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(usize, PageRun) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<()> {
        for (i, runs) in self.0.iter().enumerate().skip(from) {
            for run in runs {
                if f(i, *run)?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// One dump of an incremental chain (`criu dump --prev-images-dir`) that
/// a process's pages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DumpLevel {
    /// Where its images are.
    pub images: String,
    /// Bytes of the process's memory contents taken from its pages files.
    pub bytes: u64,
}

/// How the process was when it was checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessState {
    /// Running or sleeping.
    Running,
    /// Stopped by a signal (SIGSTOP, SIGTSTP, ...), if known which.
    Stopped(Option<u32>),
}

/// One thread.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Thread {
    /// Thread id, in the checkpoint's PID namespace.
    pub tid: u32,
    /// Blocked signal mask (bit n-1 for signal n).
    pub blocked: u64,
    /// Signals pending for this thread alone.
    pub pending: u64,
    /// Nice value.
    pub nice: i32,
    /// Register state.
    pub regs: Registers,
}

/// One process of a checkpoint, as [`crate::Checkpoint::load`] reads it.
/// Its memory is described, not held: [`Process::read_memory`] and
/// [`Process::walk`] read it where it lies.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Process {
    /// Process id, in the checkpoint's PID namespace.
    pub pid: u32,
    /// Parent's pid (0 for the root of the checkpoint).
    pub ppid: u32,
    /// Process group.
    pub pgid: u32,
    /// Session.
    pub sid: u32,
    /// Command name (the kernel's comm, at most 15 bytes, not necessarily UTF-8).
    pub comm: Vec<u8>,
    /// State.
    pub state: ProcessState,
    /// Kernel task flags (PF_*).
    pub flags: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Architecture of the process.
    pub arch: Arch,
    /// Page size of the machine it ran on.
    pub page_size: u64,
    /// Threads; the group leader first.
    pub threads: Vec<Thread>,
    /// Auxiliary vector, without the terminating AT_NULL.
    pub auxv: Vec<(u64, u64)>,
    /// Where argv's strings lie in memory.
    pub arg_range: (u64, u64),
    /// Where the environment's strings lie in memory.
    pub env_range: (u64, u64),
    /// Path of the executable, if known (bytes, like every path).
    pub exe: Option<Vec<u8>>,
    /// Mappings in address order.
    pub mappings: Vec<Mapping>,
    /// Where the bytes of the mappings come from.
    pub(crate) runs: Arc<dyn PageRuns>,
    /// Files that the page runs point into.
    pub(crate) blobs: Vec<Blob>,
    /// What the blobs are opened through.
    pub(crate) source: Arc<dyn FileSource>,
    /// Things worth telling the user that did not stop decoding.
    pub warnings: Vec<crate::Warning>,
    /// The regular files it mapped, each once, in the order first mapped.
    pub files: Vec<FileInfo>,
    /// The dumps its pages were read from: this dump first, then each
    /// parent dump of an incremental chain that supplied pages (empty for
    /// a process built by hand).
    pub dumps: Vec<DumpLevel>,
}

impl Process {
    /// Bytes of memory whose contents the checkpoint (or root) provides.
    pub fn stored_bytes(&self) -> u64 {
        self.mappings.iter().map(Mapping::stored_bytes).sum()
    }

    /// Bytes of memory whose contents the checkpoint itself holds.
    pub fn dumped_bytes(&self) -> u64 {
        self.mappings.iter().map(Mapping::dumped_bytes).sum()
    }

    /// The file a [`PageSource::Blob`] run's bytes are in.
    pub fn blob(&self, id: BlobId) -> Option<&Blob> {
        self.blobs.get(id)
    }

    /// Walks where the bytes of the mappings come from, front to back from
    /// mapping `from` on: `f` gets each mapping's runs in order, with the
    /// mapping and the address each run starts at, until it breaks. The
    /// runs are made as they are walked, never held.
    pub fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(&Mapping, u64, PageRun) -> ControlFlow<()>,
    ) -> Result<()> {
        self.walk_runs(from, &mut |_, m, at, run| Ok(f(m, at, run)))
            .map_err(Error::new)
    }

    /// Walks the page runs of the mappings from `from` on, giving `f` each
    /// run with its mapping's index, the mapping and the address the run
    /// starts at, until `f` breaks.
    pub(crate) fn walk_runs(&self, from: usize, f: &mut RunVisit<'_>) -> anyhow::Result<()> {
        let (mut current, mut addr) = (usize::MAX, 0);
        self.runs.walk(from, &mut |mi, run| {
            let m = self
                .mappings
                .get(mi)
                .context("page run of an unknown mapping")?;
            if mi != current {
                (current, addr) = (mi, m.start);
            }
            let at = addr;
            addr += run.len;
            f(mi, m, at, run)
        })
    }

    /// Reads `len` bytes of the process's memory at `addr`. Fails if any of
    /// them is unmapped or has unknown contents.
    pub fn read_memory(&self, addr: u64, len: u64) -> Result<Vec<u8>> {
        self.read(addr, len).map_err(Error::new)
    }

    fn read(&self, addr: u64, len: u64) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
        self.pieces(addr, len, &mut |_, from, to, source| {
            let n = (to - from) as usize;
            match source {
                PageSource::Zero => out.resize(out.len() + n, 0),
                PageSource::Missing(why) => {
                    bail!("memory at {from:#x} is not in the checkpoint ({why:?})")
                }
                PageSource::Blob { blob, offset } => {
                    let b = self
                        .blobs
                        .get(blob)
                        .context("page run names an unknown blob")?;
                    let mut f = self
                        .source
                        .open(b)
                        .with_context(|| format!("{}: cannot open", b.label))?;
                    let before = out.len();
                    out.resize(before + n, 0);
                    f.read_exact_at(&mut out[before..], b.offset + offset)
                        .with_context(|| {
                            format!(
                                "{}: cannot read up to offset {}",
                                b.label,
                                offset + n as u64
                            )
                        })?;
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The mapping that holds `addr`; where none does, an error that names
    /// the mappings on either side.
    pub(crate) fn mapping_at(&self, addr: u64) -> anyhow::Result<&Mapping> {
        let i = self.mappings.partition_point(|m| m.end <= addr);
        match self.mappings.get(i) {
            Some(m) if m.start <= addr => Ok(m),
            next => {
                let prev = i.checked_sub(1).and_then(|j| self.mappings.get(j));
                let near: Vec<String> = prev
                    .into_iter()
                    .chain(next)
                    .map(|m| format!("{:x}-{:x}", m.start, m.end))
                    .collect();
                if near.is_empty() {
                    bail!(
                        "address {addr:#x} is not mapped in pid {} (it has no mappings)",
                        self.pid
                    );
                }
                bail!(
                    "address {addr:#x} is not mapped in pid {} (nearest mappings: {})",
                    self.pid,
                    near.join(", ")
                )
            }
        }
    }

    /// Walks the runs of `addr..addr+len`, giving `f` each piece (its
    /// mapping, start, end and source, a blob's offset moved to the piece's
    /// start) in order; fails where the range is not mapped.
    pub(crate) fn pieces(
        &self,
        addr: u64,
        len: u64,
        f: &mut dyn FnMut(&Mapping, u64, u64, PageSource) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let end = addr
            .checked_add(len)
            .context("the address range wraps around")?;
        if len == 0 {
            return Ok(());
        }
        let first = self.mappings.partition_point(|m| m.end <= addr);
        self.mapping_at(addr)?;
        let mut pos = addr;
        self.walk_runs(first, &mut |_, m, at, run| {
            if at > pos {
                self.mapping_at(pos)?;
            }
            let run_end = at + run.len;
            if run_end > pos {
                let to = run_end.min(end);
                let source = match run.source {
                    PageSource::Blob { blob, offset } => PageSource::Blob {
                        blob,
                        offset: offset + (pos - at),
                    },
                    other => other,
                };
                f(m, pos, to, source)?;
                pos = to;
            }
            Ok(if pos >= end {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        if pos < end {
            self.mapping_at(pos)?;
        }
        Ok(())
    }

    /// Reads the NUL-separated strings of a range such as argv or envp,
    /// exactly as they are in memory.
    pub fn read_byte_strings(&self, (start, end): (u64, u64)) -> Result<Vec<Vec<u8>>> {
        if end <= start {
            return Ok(Vec::new());
        }
        if end - start > MAX_STRINGS_BYTES {
            return Err(Error::new(fault(
                ErrorKind::Limit,
                format!(
                    "{} bytes of strings at {start:#x} are more than criu2core reads ({MAX_STRINGS_BYTES})",
                    end - start
                ),
            )));
        }
        let bytes = self.read_memory(start, end - start)?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
        Ok(bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect())
    }

    /// argv, read from memory (see [`Process::read_byte_strings`]).
    pub fn argv(&self) -> Result<Vec<Vec<u8>>> {
        self.read_byte_strings(self.arg_range)
    }

    /// The environment, read from memory (see [`Process::read_byte_strings`]).
    pub fn environment(&self) -> Result<Vec<Vec<u8>>> {
        self.read_byte_strings(self.env_range)
    }

    /// The command line as the kernel writes it into NT_PRPSINFO: the first
    /// `max - 1` bytes of argv with NULs turned into spaces.
    pub(crate) fn psargs(&self, max: usize) -> Vec<u8> {
        let (start, end) = self.arg_range;
        let len = end.saturating_sub(start).min(max.saturating_sub(1) as u64);
        match self.read(start, len) {
            Ok(mut bytes) => {
                for b in &mut bytes {
                    if *b == 0 {
                        *b = b' ';
                    }
                }
                bytes
            }
            Err(_) => Vec::new(),
        }
    }
}

/// What loading a process found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Loaded {
    /// A process with memory and threads.
    Process(Box<Process>),
    /// A zombie: it has exited and has neither memory nor registers.
    Zombie(Zombie),
}

/// An entry of a checkpoint's process tree: a process and its threads,
/// whatever state it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeEntry {
    /// Process id, in the checkpoint's PID namespace.
    pub pid: u32,
    /// Parent's pid (0: outside the checkpoint).
    pub ppid: u32,
    /// Process group.
    pub pgid: u32,
    /// Session.
    pub sid: u32,
    /// Thread ids as the checkpoint lists them (for a zombie they mean
    /// nothing).
    pub threads: Vec<u32>,
}

/// A process that had exited but was not yet reaped: it has neither
/// memory nor registers, so no core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Zombie {
    /// Its pid.
    pub pid: u32,
    /// Its command name (bytes, as the kernel keeps it).
    pub comm: Vec<u8>,
    /// How it ended.
    pub exit: ExitStatus,
}

/// How a zombie ended, from its wait status (as `waitpid` returns it:
/// `exit(3)` is 768).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ExitStatus {
    /// The wait status as recorded.
    pub wait_status: u32,
    /// The status it exited with (`WEXITSTATUS`), if it exited.
    pub exit_status: Option<u32>,
    /// The signal that killed it (`WTERMSIG`), if one did.
    pub signal: Option<u32>,
    /// Whether it dumped core as it died (`WCOREDUMP`).
    pub core_dumped: bool,
}

/// Bits of a wait status (`WTERMSIG`'s mask, `WCOREDUMP`'s flag, and the
/// low byte of a stopped, not ended, task).
const WAIT_SIGNAL_MASK: u32 = 0x7f;
const WAIT_CORE_DUMPED: u32 = 0x80;
const WAIT_STOPPED: u32 = 0x7f;

impl ExitStatus {
    /// Decodes a wait status.
    pub fn from_wait_status(wait_status: u32) -> ExitStatus {
        let low = wait_status & WAIT_SIGNAL_MASK;
        let killed = low != 0 && low != WAIT_STOPPED;
        ExitStatus {
            wait_status,
            exit_status: (low == 0).then_some((wait_status >> 8) & 0xff),
            signal: killed.then_some(low),
            core_dumped: killed && wait_status & WAIT_CORE_DUMPED != 0,
        }
    }
}

/// Names of the signals whose numbers every Linux architecture shares.
fn signal_name(signo: u32) -> Option<&'static str> {
    Some(match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

impl std::fmt::Display for ExitStatus {
    /// "exited with status 3 (wait status 768)", "killed by signal 9
    /// (SIGKILL) (wait status 9)", with ", core dumped" where it did.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.exit_status, self.signal) {
            (Some(code), _) => write!(f, "exited with status {code}")?,
            (None, Some(sig)) => {
                write!(f, "killed by signal {sig}")?;
                if let Some(name) = signal_name(sig) {
                    write!(f, " ({name})")?;
                }
                if self.core_dumped {
                    write!(f, ", core dumped")?;
                }
            }
            (None, None) => write!(f, "ended")?,
        }
        write!(f, " (wait status {})", self.wait_status)
    }
}
