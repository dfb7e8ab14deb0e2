//! The process model: what a checkpoint says about one process, in terms
//! that know nothing of CRIU's images or of ELF. Decoding fills it in; note
//! building and the core writer read it.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

pub use crate::arch::{Arch, Registers};

/// A byte range of a file on this machine that holds page data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// How to name it in messages.
    pub label: String,
    /// The file.
    pub path: PathBuf,
    /// Where the range starts in the file.
    pub offset: u64,
    /// Length of the range.
    pub len: u64,
}

/// Bytes from a checkpoint (a name, a path, an argument) as text for
/// people. Processes name themselves and their files whatever they like,
/// so the model keeps those as bytes, and this is the one place where they
/// become text: bytes that are not UTF-8 show as U+FFFD.
pub fn display_bytes(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Most bytes [`Process::read_strings`] reads: argv and the environment
/// together take at most a quarter of the stack limit, 2 MiB by default.
pub const MAX_STRINGS_BYTES: u64 = 64 << 20;

/// Index into [`Process::blobs`].
pub type BlobId = usize;

/// Why the contents of some pages are not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
pub enum PageSource {
    /// Bytes in a blob, starting at `offset` within it.
    Blob { blob: BlobId, offset: u64 },
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

/// What a mapping is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The file behind a mapping, as the kernel names it in NT_FILE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedFile {
    /// Path as seen by the process (with " (deleted)" where the kernel adds
    /// it), as bytes: a path need not be UTF-8.
    pub path: Vec<u8>,
    /// Offset in the file, in bytes.
    pub offset: u64,
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

/// One mapping (VMA) and where each of its bytes comes from.
#[derive(Debug, Clone)]
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
    pub stored: u64,
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
}

/// Where every byte of a process's mappings comes from, as page runs made
/// afresh on each walk, front to back, so that they need never be held all
/// at once: a large fragmented heap has millions of them.
pub trait PageRuns: std::fmt::Debug + Send + Sync {
    /// Calls `f` with the index of each mapping from `from` on and each of
    /// its runs, in address order (each mapping's runs cover it exactly),
    /// until `f` breaks.
    fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(usize, PageRun) -> Result<ControlFlow<()>>,
    ) -> Result<()>;
}

/// What [`Process::walk_runs`] calls with each run: the mapping's index,
/// the mapping, the address the run starts at, and the run.
pub type RunVisit<'a> = dyn FnMut(usize, &Mapping, u64, PageRun) -> Result<ControlFlow<()>> + 'a;

/// Page runs held in memory, one list per mapping: for processes built by
/// hand.
#[derive(Debug, Clone, Default)]
pub struct RunList(pub Vec<Vec<PageRun>>);

impl PageRuns for RunList {
    fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(usize, PageRun) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
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
pub struct DumpLevel {
    /// Where its images are.
    pub images: String,
    /// Bytes of the process's memory contents taken from its pages files.
    pub bytes: u64,
}

/// How the process was when it was checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// Running or sleeping.
    Running,
    /// Stopped by a signal (SIGSTOP, SIGTSTP, ...), if known which.
    Stopped(Option<u32>),
}

/// One thread.
#[derive(Debug, Clone)]
pub struct Thread {
    /// Thread id, in the checkpoint's PID namespace.
    pub tid: u32,
    /// The thread's own name, where it has one (bytes, as the kernel keeps it).
    pub comm: Option<Vec<u8>>,
    /// Blocked signal mask (bit n-1 for signal n).
    pub blocked: u64,
    /// Signals pending for this thread alone.
    pub pending: u64,
    /// Nice value.
    pub nice: i32,
    /// Register state.
    pub regs: Registers,
}

/// One process of a checkpoint.
#[derive(Debug, Clone)]
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
    /// Signals pending for the whole process.
    pub shared_pending: u64,
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
    pub runs: Arc<dyn PageRuns>,
    /// Files that the page runs point into.
    pub blobs: Vec<Blob>,
    /// Things worth telling the user that did not stop decoding.
    pub warnings: Vec<String>,
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

    /// Walks the page runs of the mappings from `from` on, giving `f` each
    /// run with its mapping's index, the mapping and the address the run
    /// starts at, until `f` breaks.
    pub fn walk_runs(&self, from: usize, f: &mut RunVisit<'_>) -> Result<()> {
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
        let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
        let end = addr
            .checked_add(len)
            .context("address range wraps around")?;
        let mut pos = addr;
        let first = self.mappings.partition_point(|m| m.end <= addr);
        if len > 0 {
            self.walk_runs(first, &mut |_, _, run_start, run| {
                if run_start > pos {
                    bail!("address {pos:#x} is not mapped");
                }
                let run_end = run_start + run.len;
                if run_end > pos && run_start < end {
                    let from = pos - run_start;
                    let n = run_end.min(end) - pos;
                    match run.source {
                        PageSource::Zero => out.resize(out.len() + n as usize, 0),
                        PageSource::Missing(why) => {
                            bail!("memory at {pos:#x} is not in the checkpoint ({why:?})")
                        }
                        PageSource::Blob { blob, offset } => {
                            let b = self
                                .blobs
                                .get(blob)
                                .context("page run names an unknown blob")?;
                            let mut f = File::open(&b.path)
                                .with_context(|| format!("{}: cannot open", b.label))?;
                            f.seek(SeekFrom::Start(b.offset + offset + from))?;
                            let before = out.len();
                            f.take(n)
                                .read_to_end(&mut out)
                                .with_context(|| format!("{}: cannot read", b.label))?;
                            if (out.len() - before) as u64 != n {
                                bail!("{}: ends before offset {}", b.label, offset + from + n);
                            }
                        }
                    }
                    pos += n;
                }
                Ok(if pos >= end {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
        }
        if pos < end {
            bail!("address {pos:#x} is not mapped");
        }
        Ok(out)
    }

    /// Reads the NUL-separated strings of a range such as argv or envp, as
    /// text (bytes that are not UTF-8 become U+FFFD; see
    /// [`Process::read_byte_strings`] for the bytes themselves).
    pub fn read_strings(&self, range: (u64, u64)) -> Result<Vec<String>> {
        Ok(self
            .read_byte_strings(range)?
            .iter()
            .map(|s| display_bytes(s).into_owned())
            .collect())
    }

    /// Reads the NUL-separated strings of a range such as argv or envp,
    /// exactly as they are in memory.
    pub fn read_byte_strings(&self, (start, end): (u64, u64)) -> Result<Vec<Vec<u8>>> {
        if end <= start {
            return Ok(Vec::new());
        }
        if end - start > MAX_STRINGS_BYTES {
            bail!(
                "{} bytes of strings at {start:#x} are more than criu2core reads ({MAX_STRINGS_BYTES})",
                end - start
            );
        }
        let bytes = self.read_memory(start, end - start)?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
        Ok(bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect())
    }

    /// The command line as the kernel writes it into NT_PRPSINFO: the first
    /// `max - 1` bytes of argv with NULs turned into spaces.
    pub fn psargs(&self, max: usize) -> Vec<u8> {
        let (start, end) = self.arg_range;
        let len = end.saturating_sub(start).min(max.saturating_sub(1) as u64);
        match self.read_memory(start, len) {
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
