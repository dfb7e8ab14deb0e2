//! Turns a process's VMAs and pagemaps into [`Mapping`]s whose page runs say
//! where every byte comes from: `pages-<id>.img` of this dump or of a parent
//! dump, a shared-memory pagemap, a file under the root filesystem, zeros,
//! or nowhere.
//!
//! The runs are never all held: each walk reads every pagemap front to
//! back, streamed, while the VMAs are visited in address order, and hands
//! the runs on one by one. A process keeps only one small plan per mapping.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::files::{self, FileTable, Remap};
use super::ghost;
use super::image::{Image, ImageReader};
use super::magic;
use super::pagemap::{Cursor, PagemapReader, MAX_ENTRY_BYTES, PE_LAZY, PE_PARENT, PE_PRESENT};
use super::store::ImageStore;
use crate::error::{corrupt, kind_of, ErrorKind};
use crate::join::Joiner;
use crate::model::{
    display_bytes, Blob, BlobId, DumpLevel, FileContents, FileInfo, FilePiece, FileStatus,
    MappedFile, Mapping, MappingKind, Missing, PageRun, PageRuns, PageSource, Prot, Recorded,
};
use crate::proto;
use crate::rootfs::FileView;
use crate::warning::{Warning, WarningKind};

/// Largest mapping any architecture can have (a 57-bit address space).
pub const MAX_VMA_BYTES: u64 = 1 << 57;

/// Deepest chain of parent dumps followed.
pub const MAX_PARENT_DEPTH: usize = 64;

/// VMA status bits (CRIU's VMA_AREA_* / VMA_*_* flags), as CRIU writes
/// them: VMA_AREA_REGULAR with one of the FILE/ANON bits and at most one
/// kind; vsyscall without REGULAR; an AIO ring with only its own bit; and
/// since CRIU 4.2 MADV_GUARD_INSTALL ranges as entries with only the GUARD
/// bit, after every real VMA and inside some of them. CRIU never writes
/// STACK (the stack is found from mm's start_stack) nor UPROBES (it skips
/// those areas).
pub mod status {
    /// A VMA CRIU dumps and restores (every real mapping but vsyscall).
    /// Named for those who write images; reading needs only the kind bits.
    #[allow(dead_code)]
    pub const REGULAR: u32 = 1 << 0;
    /// Stack.
    pub const STACK: u32 = 1 << 1;
    /// vsyscall page.
    pub const VSYSCALL: u32 = 1 << 2;
    /// vDSO.
    pub const VDSO: u32 = 1 << 3;
    /// brk heap.
    pub const HEAP: u32 = 1 << 5;
    /// Private file mapping.
    pub const FILE_PRIVATE: u32 = 1 << 6;
    /// Shared file mapping.
    pub const FILE_SHARED: u32 = 1 << 7;
    /// Shared anonymous mapping.
    pub const ANON_SHARED: u32 = 1 << 8;
    /// Private anonymous mapping.
    pub const ANON_PRIVATE: u32 = 1 << 9;
    /// System V shared memory.
    pub const SYSVIPC: u32 = 1 << 10;
    /// Packet socket ring.
    pub const SOCKET: u32 = 1 << 11;
    /// vDSO data.
    pub const VVAR: u32 = 1 << 12;
    /// AIO ring.
    pub const AIORING: u32 = 1 << 13;
    /// memfd mapping.
    pub const MEMFD: u32 = 1 << 14;
    /// x86 shadow stack (anonymous, private; its pages are dumped).
    pub const SHSTK: u32 = 1 << 15;
    /// Not a mapping: pages of the VMA around it made guard pages by
    /// `madvise(MADV_GUARD_INSTALL)`.
    pub const GUARD: u32 = 1 << 16;
    /// uprobes area.
    pub const UPROBES: u32 = 1 << 17;
    /// A device mapping whose contents a CRIU plugin saves elsewhere
    /// (GPU memory): not in the pagemap.
    pub const EXT_PLUGIN: u32 = 1 << 27;
}

/// PROT_* bits of a VMA's `prot`.
const PROT_READ: u32 = 1;
const PROT_WRITE: u32 = 2;
const PROT_EXEC: u32 = 4;
/// MAP_SHARED in a VMA's `flags`.
const MAP_SHARED: u32 = 1;

/// Where the contents of a kind of mapping are found.
#[derive(Debug, Clone, Copy)]
enum Contents {
    /// Nowhere: the kernel dumps none (vvar, vsyscall, sockets' rings,
    /// uprobes).
    None,
    /// Nowhere either, but the device file is named (a CRIU plugin saved
    /// the memory elsewhere).
    Plugin,
    /// A System V segment's pagemap.
    SysvShm,
    /// A memfd's pagemap (through the process's own, if private).
    Memfd,
    /// A shared anonymous object's pagemap.
    SharedAnonymous,
    /// The process's pagemap, then the mapped file.
    File,
    /// The process's pagemap, then zeros.
    Anonymous,
}

/// Status bits → what a mapping is and where its contents are: the first
/// entry whose bit is set wins (CRIU sets one kind bit besides REGULAR and
/// a FILE/ANON one); a VMA with none of them is private anonymous memory.
const BY_STATUS: [(u32, MappingKind, Contents); 16] = [
    (status::VSYSCALL, MappingKind::Vsyscall, Contents::None),
    (status::VVAR, MappingKind::Vvar, Contents::None),
    (status::SOCKET, MappingKind::Other, Contents::None),
    (status::UPROBES, MappingKind::Other, Contents::None),
    (status::EXT_PLUGIN, MappingKind::Other, Contents::Plugin),
    (status::SYSVIPC, MappingKind::SysvShm, Contents::SysvShm),
    (status::MEMFD, MappingKind::Memfd, Contents::Memfd),
    (
        status::ANON_SHARED,
        MappingKind::SharedAnonymous,
        Contents::SharedAnonymous,
    ),
    (status::FILE_SHARED, MappingKind::File, Contents::File),
    (status::FILE_PRIVATE, MappingKind::File, Contents::File),
    (status::VDSO, MappingKind::Vdso, Contents::Anonymous),
    (status::HEAP, MappingKind::Heap, Contents::Anonymous),
    (status::STACK, MappingKind::Stack, Contents::Anonymous),
    (status::AIORING, MappingKind::Other, Contents::Anonymous),
    (status::SHSTK, MappingKind::Anonymous, Contents::Anonymous),
    (
        status::ANON_PRIVATE,
        MappingKind::Anonymous,
        Contents::Anonymous,
    ),
];

/// Which pagemap an address range is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MapKey {
    /// The process's own `pagemap-<pid>.img`, addressed by virtual address.
    Private,
    /// `pagemap-shmem-<id>.img`, addressed by offset in the object.
    Shmem(u64),
}

/// What fills the parts of a range that a pagemap does not cover.
#[derive(Debug, Clone, Copy)]
enum Gap {
    Zero,
    /// The mapped file: address `a` is at file offset `pgoff + (a - start)`.
    File {
        file: Option<usize>,
        start: u64,
        pgoff: u64,
    },
    /// A shared-memory object: address `a` is at offset `pgoff + (a - start)`.
    Shmem {
        id: u64,
        start: u64,
        pgoff: u64,
    },
}

/// A process's mappings, where their bytes come from and the files those
/// point into.
#[derive(Debug)]
pub struct Mapped {
    /// Mappings in address order.
    pub mappings: Vec<Mapping>,
    /// Their page runs, made again from the pagemaps on each walk.
    pub runs: CriuRuns,
    /// Files the runs point into.
    pub blobs: Vec<Blob>,
    /// Things worth telling the user.
    pub warnings: Vec<Warning>,
    /// The regular files mapped, each path once.
    pub files: Vec<FileInfo>,
    /// The dumps of an incremental chain the pages came from, this one
    /// first, with the bytes taken from each.
    pub dumps: Vec<DumpLevel>,
}

/// How the bytes of one mapping are found.
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// None of them are known (vvar, vsyscall, device memory).
    NoContents,
    /// Shared-memory object `id`, from `offset` on.
    Shmem { id: u64, offset: u64 },
    /// The process's own pagemap, with `Gap` where it has nothing.
    Private(Gap),
    /// Only what `Gap` gives (shared file mappings).
    Gap(Gap),
}

/// The page runs of a process's mappings, made from its pagemaps on each
/// walk: holds one small plan per mapping, never the runs themselves.
pub struct CriuRuns {
    plans: Vec<(u64, u64, Plan)>,
    dump: Dump,
}

impl std::fmt::Debug for CriuRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriuRuns")
            .field("pid", &self.dump.pid)
            .field("mappings", &self.plans.len())
            .finish()
    }
}

impl PageRuns for CriuRuns {
    fn walk(
        &self,
        from: usize,
        f: &mut dyn FnMut(usize, PageRun) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut walker = Walker::new(self.dump.clone());
        for (i, &(start, end, plan)) in self.plans.iter().enumerate().skip(from) {
            let mut emit = |run| f(i, run);
            let mut sink = Sink::new(&mut emit);
            walker.runs(plan, start, end, &mut sink)?;
            sink.finish()?;
            if sink.stopped {
                break;
            }
        }
        Ok(())
    }
}

/// Receives a mapping's runs, joining those that continue each other,
/// until its receiver breaks.
struct Sink<'f> {
    pending: Joiner<PageRun>,
    emit: &'f mut dyn FnMut(PageRun) -> Result<ControlFlow<()>>,
    stopped: bool,
}

impl<'f> Sink<'f> {
    fn new(emit: &'f mut dyn FnMut(PageRun) -> Result<ControlFlow<()>>) -> Sink<'f> {
        Sink {
            pending: Joiner::new(),
            emit,
            stopped: false,
        }
    }

    fn push(&mut self, run: PageRun) -> Result<()> {
        if run.len == 0 || self.stopped {
            return Ok(());
        }
        if let Some(done) = self.pending.push(run) {
            self.stopped = (self.emit)(done)?.is_break();
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(last) = self.pending.take() {
            if !self.stopped {
                self.stopped = (self.emit)(last)?.is_break();
            }
        }
        Ok(())
    }
}

/// What walks learn of a process's dump and keep from walk to walk: the
/// chain of parent stores and the files page runs point into.
#[derive(Clone)]
struct Dump {
    pid: u32,
    page_size: u64,
    chain: Vec<Arc<dyn ImageStore>>,
    blobs: Vec<Blob>,
    pages: HashMap<(usize, u32), BlobId>,
    /// The contents of the mapped files that are used.
    files: Vec<FileContents>,
}

/// Finds the runs of mappings in pagemaps, walking each pagemap forward.
struct Walker {
    dump: Dump,
    private: Vec<Option<Cursor>>,
    shmem: HashMap<(usize, u64), Option<Cursor>>,
    lazy_bytes: u64,
    parent_holes: u64,
}

/// Pages of a file past its size that a mapping's budget still allows
/// (segments of one library share a page at each boundary).
const FILE_SLACK_PAGES: u64 = 16;

/// Gives `out` the runs of `len` bytes of file `f` from offset `off`:
/// its pieces' bytes, zeros between them and past its end.
fn file_runs(f: &FileContents, off: u64, len: u64, out: &mut Sink) -> Result<()> {
    let end = off + len;
    let mut pos = off;
    let first = f.pieces.partition_point(|p| p.offset + p.len <= off);
    for p in &f.pieces[first..] {
        if p.offset >= end {
            break;
        }
        if p.offset > pos {
            out.push(PageRun {
                len: p.offset - pos,
                source: PageSource::Zero,
            })?;
            pos = p.offset;
        }
        let stop = (p.offset + p.len).min(end);
        out.push(PageRun {
            len: stop - pos,
            source: PageSource::Blob {
                blob: p.blob,
                offset: p.blob_offset + (pos - p.offset),
            },
        })?;
        pos = stop;
    }
    out.push(PageRun {
        len: end - pos,
        source: PageSource::Zero,
    })
}

/// Builds the mappings of one process.
pub struct MemoryBuilder<'a> {
    walker: Walker,
    root: Option<&'a FileView>,
    files: &'a FileTable,
    big_endian: bool,
    skip_ghosts: bool,
    sysv_keys: Option<HashMap<u64, u32>>,
    /// Per file id: its contents' index in the dump's files, if used.
    by_id: HashMap<u32, Option<usize>>,
    /// What is known of each file, each path once.
    infos: Vec<FileInfo>,
    /// The paths in `infos`.
    listed: HashSet<Vec<u8>>,
    /// Per used file: bytes its mappings may still take from it.
    budget: HashMap<usize, u64>,
    /// Used files whose budget ran out (said once each).
    over_budget: HashSet<usize>,
    /// The blobs of files found under the root (not in the checkpoint).
    root_blobs: HashSet<BlobId>,
    warnings: Vec<Warning>,
}

impl<'a> MemoryBuilder<'a> {
    /// A builder for process `pid` of the dump in `store`, made on a
    /// machine of the byte order `big_endian`.
    pub fn new(
        store: Arc<dyn ImageStore>,
        pid: u32,
        page_size: u64,
        files: &'a FileTable,
        root: Option<&'a FileView>,
        big_endian: bool,
    ) -> MemoryBuilder<'a> {
        MemoryBuilder {
            walker: Walker::new(Dump {
                pid,
                page_size,
                chain: vec![store],
                blobs: Vec::new(),
                pages: HashMap::new(),
                files: Vec::new(),
            }),
            root,
            files,
            big_endian,
            skip_ghosts: false,
            sysv_keys: None,
            by_id: HashMap::new(),
            infos: Vec::new(),
            listed: HashSet::new(),
            budget: HashMap::new(),
            over_budget: HashSet::new(),
            root_blobs: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// Leaves out (or not) the contents of files deleted while open that
    /// the checkpoint keeps.
    pub fn skip_ghosts(mut self, skip: bool) -> MemoryBuilder<'a> {
        self.skip_ghosts = skip;
        self
    }

    /// The mappings of `vmas` (about `count` of them), which must be sorted
    /// and disjoint. Every mapping's runs are walked once here, so that a
    /// damaged pagemap or pages file is found before anything is written.
    pub fn build(
        mut self,
        vmas: impl Iterator<Item = Result<proto::Vma>>,
        count: usize,
        mm_name: &str,
    ) -> Result<Mapped> {
        let mut mappings = Vec::with_capacity(count);
        let mut plans = Vec::with_capacity(count);
        let mut prev_end = 0;
        let mut blob_bytes: HashMap<BlobId, u64> = HashMap::new();
        for (i, v) in vmas.enumerate() {
            let v = &v?;
            if v.status & status::GUARD != 0 {
                // Guard pages inside a real VMA, which CRIU did not dump:
                // they read as that VMA's other undumped pages do.
                continue;
            }
            check_vma(v, i, prev_end, self.walker.dump.page_size, mm_name)?;
            prev_end = v.end;
            let context = || format!("{mm_name}: VMA #{i} {:#x}-{:#x}", v.start, v.end);
            let (mut m, plan) = self.mapping(v).with_context(context)?;
            let (mut stored, mut dumped) = (0, 0);
            let root_blobs = &self.root_blobs;
            let mut count_stored = |run: PageRun| {
                if let PageSource::Blob { blob, .. } = run.source {
                    stored += run.len;
                    if !root_blobs.contains(&blob) {
                        dumped += run.len;
                    }
                    *blob_bytes.entry(blob).or_insert(0) += run.len;
                }
                Ok(ControlFlow::Continue(()))
            };
            let mut sink = Sink::new(&mut count_stored);
            self.walker
                .runs(plan, v.start, v.end, &mut sink)
                .with_context(context)?;
            sink.finish()?;
            m.stored = stored;
            m.dumped = dumped;
            mappings.push(m);
            plans.push((v.start, v.end, plan));
        }
        let mut warnings = std::mem::take(&mut self.warnings);
        warnings.extend(self.walker.warnings()?);
        let dumps = self.walker.dumps(&blob_bytes);
        Ok(Mapped {
            mappings,
            dumps,
            files: self.infos,
            blobs: self.walker.dump.blobs.clone(),
            runs: CriuRuns {
                plans,
                dump: self.walker.dump,
            },
            warnings,
        })
    }

    fn mapping(&mut self, v: &proto::Vma) -> Result<(Mapping, Plan)> {
        let st = v.status;
        let shared =
            v.flags & MAP_SHARED != 0 || st & (status::FILE_SHARED | status::ANON_SHARED) != 0;
        let (mut kind, contents) = BY_STATUS.iter().find(|(bit, _, _)| st & bit != 0).map_or(
            (MappingKind::Anonymous, Contents::Anonymous),
            |&(_, k, c)| (k, c),
        );
        let (start, end, pgoff) = (v.start, v.end, v.pgoff);
        let named = |path| {
            Some(Box::new(MappedFile {
                path,
                offset: pgoff,
            }))
        };
        let (file, plan) = match contents {
            Contents::None => (None, Plan::NoContents),
            Contents::Plugin => {
                // Device memory: the kernel dumps none of it either. The
                // device file is still named, as NT_FILE names it.
                let id = u32::try_from(v.shmid).context("file id out of range")?;
                (
                    self.files.regular_path(id).and_then(named),
                    Plan::NoContents,
                )
            }
            Contents::SysvShm => {
                let key = self.sysv_key(v.shmid)?;
                let plan = Plan::Shmem {
                    id: v.shmid,
                    offset: pgoff,
                };
                (named(files::sysv_path(key)), plan)
            }
            Contents::Memfd => {
                let (file, plan, anon) = self.memfd(v, shared)?;
                if anon {
                    kind = MappingKind::SharedAnonymous;
                }
                (Some(file), plan)
            }
            Contents::SharedAnonymous => {
                let plan = Plan::Shmem {
                    id: v.shmid,
                    offset: pgoff,
                };
                (named(b"/dev/zero (deleted)".to_vec()), plan)
            }
            Contents::File => {
                let (file, plan) = self.file(v)?;
                (Some(file), plan)
            }
            Contents::Anonymous => (None, Plan::Private(Gap::Zero)),
        };
        let m = Mapping {
            start,
            end,
            prot: Prot {
                read: v.prot & PROT_READ != 0,
                write: v.prot & PROT_WRITE != 0,
                exec: v.prot & PROT_EXEC != 0,
            },
            shared,
            kind,
            file,
            stored: 0,
            dumped: 0,
        };
        Ok((m, plan))
    }

    /// A memfd mapping: its name, how its pages are found, and whether the
    /// memfd is really shared anonymous memory (its name starts with `/`,
    /// as the kernel names the object behind MAP_SHARED|MAP_ANONYMOUS).
    fn memfd(&mut self, v: &proto::Vma, shared: bool) -> Result<(Box<MappedFile>, Plan, bool)> {
        let id = u32::try_from(v.shmid).context("memfd file id out of range")?;
        let inode = self.files.memfd(id)?.clone();
        let obj = u64::from(inode.shmid);
        let plan = if shared {
            Plan::Shmem {
                id: obj,
                offset: v.pgoff,
            }
        } else {
            Plan::Private(Gap::Shmem {
                id: obj,
                start: v.start,
                pgoff: v.pgoff,
            })
        };
        let file = Box::new(MappedFile {
            path: files::memfd_path(&inode),
            offset: v.pgoff,
        });
        Ok((file, plan, inode.name.starts_with(b"/")))
    }

    /// A file mapping: its path, and how its pages are found (the
    /// process's pagemap first for a private one, then the file's
    /// contents: from the checkpoint for a file deleted while open, else
    /// from the root where it matches what CRIU recorded).
    fn file(&mut self, v: &proto::Vma) -> Result<(Box<MappedFile>, Plan)> {
        let id = u32::try_from(v.shmid).context("file id out of range")?;
        let path = self
            .files
            .regular_path(id)
            .with_context(|| format!("files.img has no regular file id {id}"))?;
        let contents = self.contents(id)?;
        let gap = Gap::File {
            file: self.within_budget(contents, v, &path),
            start: v.start,
            pgoff: v.pgoff,
        };
        let plan = if v.status & status::FILE_SHARED != 0 {
            // Shared file pages live in the file; CRIU does not dump them.
            Plan::Gap(gap)
        } else {
            Plan::Private(gap)
        };
        let file = Box::new(MappedFile {
            path,
            offset: v.pgoff,
        });
        Ok((file, plan))
    }

    /// `contents` if the mapping `v` may take its file's bytes from them:
    /// a process's mappings of one file take at most one copy of it (and
    /// a few pages where segments share one), so that a checkpoint cannot
    /// make a core larger than its own files justify by mapping a file
    /// many times. A kernel core holds none of these pages.
    fn within_budget(
        &mut self,
        contents: Option<usize>,
        v: &proto::Vma,
        path: &[u8],
    ) -> Option<usize> {
        let i = contents?;
        let size = self.walker.dump.files[i].size;
        let page = self.walker.dump.page_size;
        let want = (v.end - v.start).min(size.saturating_sub(v.pgoff));
        let left = self
            .budget
            .entry(i)
            .or_insert_with(|| size.div_ceil(page) * page + FILE_SLACK_PAGES * page);
        if want <= *left {
            *left -= want;
            return Some(i);
        }
        if self.over_budget.insert(i) {
            self.warnings.push(
                Warning::new(
                    WarningKind::PagesLeftOut,
                    format!(
                        "{}: mapped again past one copy of its {size} bytes: the unmodified pages of its further mappings are left out of the core",
                        display_bytes(path)
                    ),
                )
                .about(display_bytes(path)),
            );
        }
        None
    }

    /// The contents of regular file `id`, where they are known and
    /// trusted; what is known of it is noted once per path.
    fn contents(&mut self, id: u32) -> Result<Option<usize>> {
        if let Some(known) = self.by_id.get(&id) {
            return Ok(*known);
        }
        let (name, raw, remap) = self
            .files
            .regular(id)
            .with_context(|| format!("files.img has no regular file id {id}"))?;
        let recorded = raw.to_model(self.big_endian);
        let looked = match remap {
            Some(Remap::Ghost(_)) if self.skip_ghosts => Ok((FileStatus::NotSought, None)),
            Some(Remap::Ghost(g)) => self.ghost(g, name),
            Some(Remap::Linked(l)) => match self.files.regular(l) {
                Some((linked, ..)) => self.in_root(linked, &recorded),
                None => Ok((FileStatus::Missing, None)),
            },
            None => self.in_root(name, &recorded),
        };
        // One file that cannot be read (a damaged ghost image, a link loop
        // under the root) costs its own pages, not the process's core; a
        // cancellation, or an input past its bounds, stops everything.
        let (status, found) = match looked {
            Ok(looked) => looked,
            Err(e)
                if matches!(kind_of(&e), ErrorKind::Cancelled(_))
                    || (remap.is_none() && kind_of(&e) == ErrorKind::Limit) =>
            {
                return Err(e)
            }
            Err(e) => {
                self.warnings.push(
                    Warning::new(
                        WarningKind::unread(&e),
                        format!(
                            "{}: cannot be read ({e:#}): its pages are left out",
                            display_bytes(name)
                        ),
                    )
                    .about(display_bytes(name)),
                );
                (FileStatus::Missing, None)
            }
        };
        if let FileStatus::Mismatch { why } = &status {
            self.warnings.push(
                Warning::new(
                    WarningKind::FileMismatch,
                    format!(
                        "{}: not the file the checkpoint recorded ({why}): its pages are left out",
                        display_bytes(name)
                    ),
                )
                .about(display_bytes(name)),
            );
        }
        let index = found.as_ref().map(|(c, _)| {
            self.walker.dump.files.push(c.clone());
            self.walker.dump.files.len() - 1
        });
        if self.listed.insert(name.to_vec()) {
            let (contents, source) = found.unzip();
            self.infos.push(FileInfo {
                path: name.to_vec(),
                recorded,
                status,
                contents,
                source,
            });
        }
        self.by_id.insert(id, index);
        Ok(index)
    }

    /// The contents of a file deleted while open that the checkpoint kept
    /// as ghost `id`.
    fn ghost(
        &mut self,
        id: u32,
        name: &[u8],
    ) -> Result<(FileStatus, Option<(FileContents, String)>)> {
        let store = self.walker.dump.chain[0].clone();
        let Some(g) = ghost::load(&*store, id)? else {
            self.warnings.push(
                Warning::new(
                    WarningKind::FileNotFound,
                    format!(
                        "{}: deleted while open, and {} is missing or holds no regular file",
                        display_bytes(name),
                        ghost::image_name(id)
                    ),
                )
                .about(display_bytes(name)),
            );
            return Ok((FileStatus::Missing, None));
        };
        let label = g.blob.label.clone();
        let blob = self.push_blob(g.blob);
        let pieces = g
            .pieces
            .iter()
            .map(|&(offset, len, blob_offset)| FilePiece {
                offset,
                len,
                blob,
                blob_offset,
            })
            .collect();
        let contents = FileContents {
            size: g.size,
            pieces,
        };
        Ok((FileStatus::Ghost, Some((contents, label))))
    }

    /// `path` in the root filesystems, if they have it and it is the file
    /// `recorded` describes.
    fn in_root(
        &mut self,
        path: &[u8],
        recorded: &Recorded,
    ) -> Result<(FileStatus, Option<(FileContents, String)>)> {
        let Some(root) = self.root else {
            return Ok((FileStatus::NotSought, None));
        };
        let (status, found) = root.checked(path, recorded)?;
        let found = found.map(|f| {
            let (size, label) = (f.blob.len, f.blob.label.clone());
            let blob = self.push_blob(f.blob);
            self.root_blobs.insert(blob);
            let pieces = (size > 0)
                .then_some(FilePiece {
                    offset: 0,
                    len: size,
                    blob,
                    blob_offset: 0,
                })
                .into_iter()
                .collect();
            (FileContents { size, pieces }, label)
        });
        Ok((status, found))
    }

    fn push_blob(&mut self, blob: Blob) -> BlobId {
        self.walker.dump.blobs.push(blob);
        self.walker.dump.blobs.len() - 1
    }

    /// The IPC key of System V segment `id`, from the ipcns-shm images.
    fn sysv_key(&mut self, id: u64) -> Result<u32> {
        if self.sysv_keys.is_none() {
            let store = self.walker.dump.chain[0].clone();
            let mut keys = HashMap::new();
            for name in store.names()? {
                if !(name.starts_with("ipcns-shm-") && name.ends_with(".img")) {
                    continue;
                }
                let Some(data) = store.read(&name)? else {
                    continue;
                };
                let mut img = Image::parse(
                    format!("{}/{name}", store.location()),
                    data,
                    magic::IPCNS_SHM,
                )?;
                while let Some(shm) = img.entry::<proto::IpcShm>()? {
                    keys.insert(u64::from(shm.desc.id), shm.desc.key);
                    if shm.in_pagemaps != Some(true) {
                        // Old images carry the segment's bytes inline, padded to 4 bytes.
                        img.skip(shm.size.div_ceil(4) * 4)?;
                    }
                }
            }
            self.sysv_keys = Some(keys);
        }
        Ok(self
            .sysv_keys
            .as_ref()
            .and_then(|k| k.get(&id).copied())
            .unwrap_or(0))
    }
}

/// Refuses VMA #`i` unless it is page-aligned, not empty, no larger than
/// an address space, and after the one before (which ended at `prev_end`).
fn check_vma(v: &proto::Vma, i: usize, prev_end: u64, page_size: u64, mm_name: &str) -> Result<()> {
    let bad = |what: String| {
        Err(corrupt(
            mm_name,
            None,
            format!("{mm_name}: VMA #{i} {what}"),
        ))
    };
    if v.start >= v.end || v.start % page_size != 0 || v.end % page_size != 0 {
        return bad(format!(
            "{:#x}-{:#x} is empty or not page-aligned",
            v.start, v.end
        ));
    }
    if v.end - v.start > MAX_VMA_BYTES {
        return bad(format!(
            "{:#x}-{:#x} is larger than any address space",
            v.start, v.end
        ));
    }
    if v.start < prev_end {
        return bad(format!(
            "at {:#x} overlaps or precedes the one before (ending {prev_end:#x})",
            v.start
        ));
    }
    Ok(())
}

impl Walker {
    /// A walker over `dump`, ready to walk from the start.
    fn new(dump: Dump) -> Walker {
        Walker {
            dump,
            private: Vec::new(),
            shmem: HashMap::new(),
            lazy_bytes: 0,
            parent_holes: 0,
        }
    }

    /// What the walk of every mapping found wrong: pagemap entries outside
    /// every VMA, pages no entry claims (what a pagemap cut short at an
    /// entry boundary leaves; the memory they were for reads as zeros),
    /// lazy pages, and pages a parent dump lacks.
    fn warnings(&mut self) -> Result<Vec<Warning>> {
        let mut warnings = Vec::new();
        if let Some(Some(c)) = self.private.first_mut() {
            let unused = c.finish()?;
            if unused > 0 {
                warnings.push(
                    Warning::new(
                        WarningKind::EntryIgnored,
                        format!(
                            "{}: {unused} pagemap entries lie outside every VMA; ignored",
                            c.name()
                        ),
                    )
                    .about(c.name()),
                );
            }
        }
        let mut cursors: Vec<&mut Cursor> = self.private.iter_mut().take(1).flatten().collect();
        let mut shmem: Vec<_> = self
            .shmem
            .iter_mut()
            .filter(|((level, _), _)| *level == 0)
            .collect();
        shmem.sort_by_key(|((_, id), _)| *id);
        cursors.extend(shmem.into_iter().filter_map(|(_, c)| c.as_mut()));
        let store = self.dump.chain[0].clone();
        for c in cursors {
            c.finish()?;
            let name = format!("pages-{}.img", c.pages_id());
            if let Some(pages) = store.blob(&name)? {
                if pages.len > c.claimed() {
                    warnings.push(
                        Warning::new(
                            WarningKind::EntryIgnored,
                            format!(
                                "{}: {} bytes after the {} that {} claims are used by no pagemap entry (a pagemap cut short?); ignored",
                                pages.label,
                                pages.len - c.claimed(),
                                c.claimed(),
                                c.name()
                            ),
                        )
                        .about(pages.label.clone()),
                    );
                }
            }
        }
        if self.lazy_bytes > 0 {
            warnings.push(Warning::new(
                WarningKind::PagesLeftOut,
                format!(
                    "{} KiB of memory was left on the source by a lazy-pages dump and is not in the core",
                    self.lazy_bytes / 1024
                ),
            ));
        }
        if self.parent_holes > 0 {
            warnings.push(Warning::new(
                WarningKind::PagesLeftOut,
                format!(
                    "{} KiB marked as in the parent dump are not there; they read as the parent had them (zeros, or the mapped file)",
                    self.parent_holes / 1024
                ),
            ));
        }
        Ok(warnings)
    }

    /// The bytes taken from the pages files of each dump of the chain,
    /// given the bytes taken from each blob.
    fn dumps(&self, blob_bytes: &HashMap<BlobId, u64>) -> Vec<DumpLevel> {
        let mut dumps: Vec<DumpLevel> = self
            .dump
            .chain
            .iter()
            .map(|store| DumpLevel {
                images: store.location(),
                bytes: 0,
            })
            .collect();
        for (&(level, _), blob) in &self.dump.pages {
            if let Some(d) = dumps.get_mut(level) {
                d.bytes += blob_bytes.get(blob).copied().unwrap_or(0);
            }
        }
        for (level, d) in dumps.iter().enumerate().skip(1) {
            tracing::info!(
                pid = self.dump.pid,
                level,
                images = %d.images,
                bytes = d.bytes,
                "pages from a parent dump"
            );
        }
        dumps
    }

    /// Gives `out` the runs of the mapping `start..end` found by `plan`.
    fn runs(&mut self, plan: Plan, start: u64, end: u64, out: &mut Sink) -> Result<()> {
        match plan {
            Plan::NoContents => out.push(PageRun {
                len: end - start,
                source: PageSource::Missing(Missing::NoContents),
            }),
            Plan::Shmem { id, offset } => self.shmem(id, offset, end - start, out),
            Plan::Private(gap) => self.resolve(MapKey::Private, 0, start, end, gap, out),
            Plan::Gap(gap) => self.fill_gap(gap, 0, start, end, out),
        }
    }

    /// Gives `out` the runs for `start..end` of pagemap `key` at chain
    /// `level`.
    fn resolve(
        &mut self,
        key: MapKey,
        level: usize,
        start: u64,
        end: u64,
        gap: Gap,
        out: &mut Sink,
    ) -> Result<()> {
        let mut pos = start;
        while pos < end && !out.stopped {
            let Some(cursor) = self.cursor(key, level, pos)? else {
                return self.fill_gap(gap, level, pos, end, out);
            };
            let r = match cursor.find(pos)? {
                Some(r) if r.start < end => {
                    cursor.mark_used();
                    r
                }
                _ => return self.fill_gap(gap, level, pos, end, out),
            };
            let (pages_id, name) = (cursor.pages_id(), cursor.name().to_string());
            if r.start > pos {
                self.fill_gap(gap, level, pos, r.start, out)?;
                pos = r.start;
            }
            let stop = r.end.min(end);
            let len = stop - pos;
            if r.flags & PE_PRESENT != 0 {
                let blob = self.pages_blob(level, pages_id)?;
                let offset = r.data + (pos - r.start);
                let b = &self.dump.blobs[blob];
                if offset + len > b.len {
                    return Err(corrupt(
                        &name,
                        Some(r.at),
                        format!(
                            "{name}: offset {}: pages at {pos:#x} need bytes {offset}..{} of {}, which holds only {}",
                            r.at,
                            offset + len,
                            b.label,
                            b.len
                        ),
                    ));
                }
                out.push(PageRun {
                    len,
                    source: PageSource::Blob { blob, offset },
                })?;
            } else if r.flags & PE_PARENT != 0 {
                if level + 1 > MAX_PARENT_DEPTH {
                    return Err(crate::error::fault(
                        crate::ErrorKind::Limit,
                        format!("parent dumps nest deeper than {MAX_PARENT_DEPTH}"),
                    ));
                }
                self.resolve(key, level + 1, pos, stop, gap, out)?;
            } else if r.flags & PE_LAZY != 0 {
                self.lazy_bytes += len;
                out.push(PageRun {
                    len,
                    source: PageSource::Missing(Missing::Lazy),
                })?;
            } else {
                self.fill_gap(gap, level, pos, stop, out)?;
            }
            pos = stop;
        }
        Ok(())
    }

    /// Gives `out` the runs of `len` bytes of shared-memory object `id`
    /// from `offset`; pages its pagemap does not have are zeros.
    fn shmem(&mut self, id: u64, offset: u64, len: u64, out: &mut Sink) -> Result<()> {
        self.resolve(MapKey::Shmem(id), 0, offset, offset + len, Gap::Zero, out)
    }

    /// Gives `out` runs for `start..end`, which no pagemap entry of dump
    /// `level` covers (a parent dump that lacks pages it was said to have).
    fn fill_gap(
        &mut self,
        gap: Gap,
        level: usize,
        start: u64,
        end: u64,
        out: &mut Sink,
    ) -> Result<()> {
        let len = end - start;
        if level > 0 {
            self.parent_holes += len;
        }
        match gap {
            Gap::Zero => out.push(PageRun {
                len,
                source: PageSource::Zero,
            }),
            Gap::File { file: None, .. } => out.push(PageRun {
                len,
                source: PageSource::Missing(Missing::FileBacked),
            }),
            Gap::File {
                file: Some(i),
                start: vstart,
                pgoff,
            } => {
                let off = pgoff + (start - vstart);
                file_runs(&self.dump.files[i], off, len, out)
            }
            Gap::Shmem {
                id,
                start: vstart,
                pgoff,
            } => self.shmem(id, pgoff + (start - vstart), len, out),
        }
    }

    /// The images of dump `level` of the chain (0 is this dump).
    fn store(&mut self, level: usize) -> Result<Arc<dyn ImageStore>> {
        while self.dump.chain.len() <= level {
            let last = self
                .dump
                .chain
                .last()
                .expect("chain starts non-empty")
                .clone();
            let parent = last.parent()?.with_context(|| {
                format!(
                    "pages are in the parent dump, but {} has no parent images",
                    last.location()
                )
            })?;
            let loc = parent.location();
            if self.dump.chain.iter().any(|s| s.location() == loc) {
                bail!("parent images of {} loop back to {loc}", last.location());
            }
            self.dump.chain.push(parent);
        }
        Ok(self.dump.chain[level].clone())
    }

    /// The cursor over pagemap `key` at `level`, positioned for `pos`, or
    /// `None` for a shared-memory object that has no pagemap (no pages).
    fn cursor(&mut self, key: MapKey, level: usize, pos: u64) -> Result<Option<&mut Cursor>> {
        let stale = match key {
            MapKey::Private => self.private.get(level).is_none(),
            MapKey::Shmem(id) => match self.shmem.get(&(level, id)) {
                None => true,
                Some(Some(c)) => c.floor > pos,
                Some(None) => false,
            },
        };
        if stale {
            let store = self.store(level)?;
            let name = match key {
                MapKey::Private => format!("pagemap-{}.img", self.dump.pid),
                MapKey::Shmem(id) => format!("pagemap-shmem-{id}.img"),
            };
            let cursor = match store.open(&name)? {
                Some((stream, len)) => {
                    let img = ImageReader::new(
                        format!("{}/{name}", store.location()),
                        stream,
                        len,
                        magic::PAGEMAP,
                        MAX_ENTRY_BYTES,
                    )?;
                    Some(Cursor::new(PagemapReader::new(img, self.dump.page_size)?))
                }
                None if matches!(key, MapKey::Private) => {
                    bail!("{}: {name} is missing", store.location())
                }
                None => None,
            };
            match key {
                MapKey::Private => {
                    while self.private.len() <= level {
                        self.private.push(None);
                    }
                    self.private[level] = cursor;
                }
                MapKey::Shmem(id) => {
                    self.shmem.insert((level, id), cursor);
                }
            }
        }
        Ok(match key {
            MapKey::Private => self.private[level].as_mut(),
            MapKey::Shmem(id) => self.shmem.get_mut(&(level, id)).and_then(Option::as_mut),
        })
    }

    /// The blob of `pages-<id>.img` at `level`.
    fn pages_blob(&mut self, level: usize, pages_id: u32) -> Result<BlobId> {
        if let Some(&id) = self.dump.pages.get(&(level, pages_id)) {
            return Ok(id);
        }
        let store = self.store(level)?;
        let name = format!("pages-{pages_id}.img");
        let blob = store
            .blob(&name)?
            .with_context(|| format!("{}: {name} is missing", store.location()))?;
        self.dump.blobs.push(blob);
        let id = self.dump.blobs.len() - 1;
        self.dump.pages.insert((level, pages_id), id);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::store::DirStore;
    use crate::rootfs::RootFs;
    use crate::testkit::{CheckpointWriter, PageSpan};

    const P: u64 = 4096;

    fn run(len: u64, source: PageSource) -> PageRun {
        PageRun { len, source }
    }

    fn blob(blob: BlobId, offset: u64) -> PageSource {
        PageSource::Blob { blob, offset }
    }

    fn vma(start: u64, pages: u64, st: u32, shmid: u64) -> proto::Vma {
        proto::Vma {
            start,
            end: start + pages * P,
            pgoff: 0,
            shmid,
            prot: PROT_READ | PROT_WRITE,
            flags: if st & status::ANON_SHARED != 0 { 1 } else { 2 },
            status: status::REGULAR | st,
            fd: -1,
            madv: None,
            fdflags: None,
        }
    }

    /// The mappings of `vmas` in the images in `dir`, for pid 1.
    fn build(dir: &std::path::Path, vmas: &[proto::Vma], root: Option<&FileView>) -> Mapped {
        let store: Arc<dyn ImageStore> = Arc::new(DirStore::open(dir).unwrap());
        let files = FileTable::load(&*store).unwrap();
        MemoryBuilder::new(store, 1, P, &files, root, false)
            .build(vmas.iter().cloned().map(Ok), vmas.len(), "mm-1.img")
            .unwrap()
    }

    /// Every run of every mapping from `from` on.
    fn runs(m: &Mapped, from: usize) -> Vec<(usize, PageRun)> {
        let mut out = Vec::new();
        m.runs
            .walk(from, &mut |i, r| {
                out.push((i, r));
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        out
    }

    fn page(byte: u8) -> Vec<u8> {
        vec![byte; P as usize]
    }

    fn regular(id: u32, name: &str, size: Option<u64>) -> proto::FileEntry {
        proto::FileEntry {
            r#type: proto::FdType::Reg as i32,
            id,
            reg: Some(proto::RegFile {
                id,
                name: name.into(),
                size,
                ..Default::default()
            }),
            memfd: None,
        }
    }

    /// A file mapped fifty times gives its bytes to one mapping only (a
    /// few pages more may go to segments that share one); the others
    /// read as unknown file pages, and a warning says so.
    #[test]
    fn a_file_mapped_many_times_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let w = CheckpointWriter::create(&images, P).unwrap();
        w.files(&[regular(1, "/big", Some(64 * P))]).unwrap();
        w.pagemap("pagemap-1.img", 1, Vec::<PageSpan>::new())
            .unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("big"), vec![b'B'; 64 * P as usize]).unwrap();
        let view = FileView::new(None, Some(RootFs::new(&root).unwrap()));
        let vmas: Vec<proto::Vma> = (0..50)
            .map(|i| vma(0x100_0000 + i * 0x10_0000, 64, status::FILE_PRIVATE, 1))
            .collect();
        let m = build(&images, &vmas, Some(&view));
        let from_file: u64 = runs(&m, 0)
            .iter()
            .filter(|(_, r)| matches!(r.source, PageSource::Blob { .. }))
            .map(|(_, r)| r.len)
            .sum();
        assert_eq!(from_file, 64 * P);
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0]
            .message
            .contains("/big: mapped again past one copy"));
        assert_eq!(
            (m.warnings[0].kind, m.warnings[0].file.as_deref()),
            (WarningKind::PagesLeftOut, Some("/big"))
        );
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].status, FileStatus::Verified { checks: "size" });
    }

    /// A file deleted while open reads from its ghost image: the chunks'
    /// bytes, zeros in the holes between them and past its end; a file
    /// under the root of another size is not used.
    #[test]
    fn ghost_chunks_and_holes_and_mismatched_files() {
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let w = CheckpointWriter::create(&images, P).unwrap();
        w.files(&[
            regular(1, "/gone", Some(3 * P)),
            regular(2, "/other", Some(10)),
        ])
        .unwrap();
        w.pagemap("pagemap-1.img", 1, Vec::<PageSpan>::new())
            .unwrap();
        let remap = proto::RemapFilePath {
            orig_id: 1,
            remap_id: 7,
            remap_type: Some(1),
        };
        w.write("remap-fpath.img", magic::REMAP_FPATH, &[remap])
            .unwrap();
        let mut g = Vec::new();
        g.extend_from_slice(&magic::IMG_COMMON.to_le_bytes());
        g.extend_from_slice(&magic::GHOST_FILE.to_le_bytes());
        let entry = |m: &dyn Fn(&mut Vec<u8>)| {
            let mut e = Vec::new();
            m(&mut e);
            [&(e.len() as u32).to_le_bytes()[..], &e].concat()
        };
        g.extend(entry(&|e| {
            proto::GhostFileEntry {
                mode: 0o100_644,
                chunks: Some(true),
                size: Some(3 * P),
                ..Default::default()
            }
            .encode(e)
            .unwrap()
        }));
        g.extend(entry(&|e| {
            proto::GhostChunkEntry { len: P, off: P }.encode(e).unwrap()
        }));
        g.extend(vec![b'G'; P as usize]);
        std::fs::write(images.join("ghost-file-7.img"), &g).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("other"), b"eleven byte").unwrap();
        let view = FileView::new(None, Some(RootFs::new(&root).unwrap()));
        let vmas = [
            vma(0x10000, 4, status::FILE_PRIVATE, 1),
            vma(0x20000, 1, status::FILE_PRIVATE, 2),
        ];
        let m = build(&images, &vmas, Some(&view));
        let ghost = m
            .blobs
            .iter()
            .position(|b| b.label.ends_with("ghost-file-7.img"))
            .unwrap();
        let at = (g.len() as u64) - P;
        assert_eq!(
            runs(&m, 0),
            [
                (0, run(P, PageSource::Zero)),
                (0, run(P, blob(ghost, at))),
                (0, run(2 * P, PageSource::Zero)),
                (1, run(P, PageSource::Missing(Missing::FileBacked))),
            ]
        );
        assert_eq!(m.files[0].status, FileStatus::Ghost);
        assert_eq!(
            m.files[1].status,
            FileStatus::Mismatch {
                why: "recorded 10 bytes, found 11 bytes".into()
            }
        );
        assert!(m
            .warnings
            .iter()
            .any(|w| w.message.contains("/other: not the file")
                && (w.kind, w.file.as_deref()) == (WarningKind::FileMismatch, Some("/other"))));
        assert_eq!(
            m.mappings[0].file.as_ref().unwrap().path,
            b"/gone (deleted)"
        );
    }

    /// A damaged ghost image and a link loop under the root cost their
    /// files' pages, not the process.
    #[test]
    fn unreadable_files_are_left_out_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let w = CheckpointWriter::create(&images, P).unwrap();
        w.files(&[regular(1, "/gone", None), regular(2, "/loop", None)])
            .unwrap();
        w.pagemap("pagemap-1.img", 1, Vec::<PageSpan>::new())
            .unwrap();
        let remap = proto::RemapFilePath {
            orig_id: 1,
            remap_id: 3,
            remap_type: Some(1),
        };
        w.write("remap-fpath.img", magic::REMAP_FPATH, &[remap])
            .unwrap();
        // A header, then four bytes that are no entry.
        let mut g = Vec::new();
        g.extend_from_slice(&magic::IMG_COMMON.to_le_bytes());
        g.extend_from_slice(&magic::GHOST_FILE.to_le_bytes());
        g.extend_from_slice(&[0xff; 4]);
        std::fs::write(images.join("ghost-file-3.img"), &g).unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let view = FileView::new(None, Some(RootFs::new(&root).unwrap()));
        let vmas = [
            vma(0x10000, 1, status::FILE_PRIVATE, 1),
            vma(0x20000, 1, status::FILE_PRIVATE, 2),
        ];
        let m = build(&images, &vmas, Some(&view));
        let missing = run(P, PageSource::Missing(Missing::FileBacked));
        assert_eq!(runs(&m, 0), [(0, missing), (1, missing)]);
        // The loop is not found (the resolver says why, and loading says
        // so: see tests/it/hostile_walks.rs); the damaged ghost is a
        // warning here.
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].message.starts_with("/gone: cannot be read ("));
        assert_eq!(
            (m.warnings[0].kind, m.warnings[0].file.as_deref()),
            (WarningKind::Unreadable, Some("/gone"))
        );
        assert!(m.files.iter().all(|f| f.status == FileStatus::Missing));
    }

    #[test]
    fn the_sink_joins_what_continues_and_stops_when_told() {
        let mut got = Vec::new();
        let mut emit = |r: PageRun| {
            got.push(r);
            Ok(if got.len() == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        };
        let mut s = Sink::new(&mut emit);
        for r in [
            run(10, PageSource::Zero),
            run(0, blob(3, 0)), // empty: dropped
            run(5, PageSource::Zero),
            run(4, blob(0, 0)),
            run(4, blob(0, 4)),
            run(1, blob(0, 9)), // a gap in the blob: a new run
            run(7, PageSource::Missing(Missing::Lazy)),
        ] {
            s.push(r).unwrap();
        }
        s.finish().unwrap();
        assert!(s.stopped);
        assert_eq!(got, [run(15, PageSource::Zero), run(8, blob(0, 0))]);
        // Unknown contents of different kinds stay apart.
        let mut got = Vec::new();
        let mut emit = |r: PageRun| {
            got.push(r);
            Ok(ControlFlow::Continue(()))
        };
        let mut s = Sink::new(&mut emit);
        s.push(run(1, PageSource::Missing(Missing::Lazy))).unwrap();
        s.push(run(1, PageSource::Missing(Missing::FileBacked)))
            .unwrap();
        s.finish().unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn pagemaps_give_dumped_pages_holes_parent_pages_and_lazy_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (parent, child) = (dir.path().join("1"), dir.path().join("2"));
        let w = CheckpointWriter::create(&parent, P).unwrap();
        let b = page(b'B');
        w.pagemap(
            "pagemap-1.img",
            7,
            [PageSpan {
                vaddr: 0x11000,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &b,
            }],
        )
        .unwrap();
        let w = CheckpointWriter::create(&child, P).unwrap();
        std::os::unix::fs::symlink("../1", child.join("parent")).unwrap();
        let a = page(b'A');
        let spans = [
            PageSpan {
                vaddr: 0x10000,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &a,
            },
            PageSpan {
                vaddr: 0x11000,
                nr_pages: 1,
                flags: PE_PARENT,
                data: &[],
            },
            // 0x12000: in no entry, a hole that reads as zeros.
            PageSpan {
                vaddr: 0x13000,
                nr_pages: 1,
                flags: PE_LAZY,
                data: &[],
            },
        ];
        w.pagemap("pagemap-1.img", 8, spans).unwrap();
        let m = build(&child, &[vma(0x10000, 4, status::ANON_PRIVATE, 0)], None);
        let [pages8, pages7] = [0, 1].map(|i| m.blobs[i].label.clone());
        assert!(pages8.ends_with("2/pages-8.img") && pages7.ends_with("1/pages-7.img"));
        assert_eq!(
            runs(&m, 0),
            [
                (0, run(P, blob(0, 0))),
                (0, run(P, blob(1, 0))),
                (0, run(P, PageSource::Zero)),
                (0, run(P, PageSource::Missing(Missing::Lazy))),
            ]
        );
        assert_eq!(m.mappings[0].stored, 2 * P);
        let bytes: Vec<u64> = m.dumps.iter().map(|d| d.bytes).collect();
        assert_eq!(bytes, [P, P]);
        assert!(
            m.warnings
                .iter()
                .any(|w| w.message.contains("lazy-pages") && w.kind == WarningKind::PagesLeftOut),
            "{:?}",
            m.warnings
        );
        // The same runs on every walk.
        assert_eq!(runs(&m, 0), runs(&m, 0));
    }

    #[test]
    fn file_pages_come_from_the_root_and_shared_memory_from_its_pagemap() {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        let w = CheckpointWriter::create(&images, P).unwrap();
        w.files(&[proto::FileEntry {
            r#type: proto::FdType::Reg as i32,
            id: 1,
            reg: Some(proto::RegFile {
                id: 1,
                name: "/lib/x.so".into(),
                ..Default::default()
            }),
            memfd: None,
        }])
        .unwrap();
        let (c, s) = (page(b'C'), page(b'S'));
        w.pagemap(
            "pagemap-1.img",
            1,
            [PageSpan {
                vaddr: 0x20000,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &c,
            }],
        )
        .unwrap();
        w.pagemap(
            "pagemap-shmem-9.img",
            2,
            [PageSpan {
                vaddr: P,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &s,
            }],
        )
        .unwrap();
        let vmas = [
            vma(0x20000, 3, status::FILE_PRIVATE, 1),
            vma(0x30000, 2, status::ANON_SHARED, 9),
        ];
        // Without a root, the file's unmodified pages are unknown.
        let m = build(&images, &vmas, None);
        assert_eq!(
            runs(&m, 0),
            [
                (0, run(P, blob(0, 0))),
                (0, run(2 * P, PageSource::Missing(Missing::FileBacked))),
                (1, run(P, PageSource::Zero)),
                (1, run(P, blob(1, 0))),
            ]
        );
        assert_eq!(m.mappings[0].kind, MappingKind::File);
        assert_eq!(m.mappings[1].kind, MappingKind::SharedAnonymous);
        // With one holding the file (one page and a half long): its pages,
        // then zeros past its end.
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("lib/x.so"), vec![b'F'; 6144]).unwrap();
        let roots = FileView::new(None, Some(RootFs::new(&root).unwrap()));
        let m = build(&images, &vmas, Some(&roots));
        let file = m
            .blobs
            .iter()
            .position(|b| b.path.ends_with("lib/x.so"))
            .unwrap();
        let pages = m
            .blobs
            .iter()
            .position(|b| b.label.ends_with("pages-1.img"))
            .unwrap();
        assert_eq!(
            runs(&m, 0)[..3],
            [
                (0, run(P, blob(pages, 0))),
                (0, run(2048, blob(file, P))),
                (0, run(P + 2048, PageSource::Zero)),
            ]
        );
        assert_eq!(m.mappings[0].stored, P + 2048);
        // Walking from the second mapping gives only its runs, and a walk
        // stops where its receiver breaks.
        assert_eq!(runs(&m, 1).len(), 2);
        let mut seen = 0;
        m.runs
            .walk(0, &mut |_, _| {
                seen += 1;
                Ok(ControlFlow::Break(()))
            })
            .unwrap();
        assert_eq!(seen, 1);
    }

    #[test]
    fn entries_outside_every_vma_and_unclaimed_pages_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let w = CheckpointWriter::create(dir.path(), P).unwrap();
        let pages = [page(1), page(2)];
        w.pagemap(
            "pagemap-1.img",
            3,
            [
                PageSpan {
                    vaddr: 0x10000,
                    nr_pages: 1,
                    flags: PE_PRESENT,
                    data: &pages[0],
                },
                PageSpan {
                    vaddr: 0x90000,
                    nr_pages: 1,
                    flags: PE_PRESENT,
                    data: &pages[1],
                },
            ],
        )
        .unwrap();
        // A page no entry claims, after the pages the entries claim.
        let path = dir.path().join("pages-3.img");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(page(3));
        std::fs::write(&path, bytes).unwrap();
        let m = build(
            dir.path(),
            &[vma(0x10000, 1, status::ANON_PRIVATE, 0)],
            None,
        );
        assert_eq!(runs(&m, 0), [(0, run(P, blob(0, 0)))]);
        let w = m
            .warnings
            .iter()
            .map(|w| w.message.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(w.contains("1 pagemap entries lie outside every VMA"), "{w}");
        assert!(w.contains("4096 bytes after the 8192"), "{w}");
        let about: Vec<_> = m
            .warnings
            .iter()
            .map(|w| (w.kind, w.file.as_deref().and_then(|f| f.rsplit('/').next())))
            .collect();
        assert_eq!(
            about[..2],
            [
                (WarningKind::EntryIgnored, Some("pagemap-1.img")),
                (WarningKind::EntryIgnored, Some("pages-3.img"))
            ],
            "{:?}",
            m.warnings
        );
    }
}
