//! Converting a compressed checkpoint archive in one pass: each process's
//! pages go from the decompressor straight to their place in its core, so
//! the archive is inflated once and its pages written once, instead of
//! being unpacked into the temporary directory and copied from there.
//!
//! Where a page goes in a core depends on the whole layout: the notes
//! before the segment data (the threads and their register sets, the
//! mapped files' names), and the segments before it (the mappings, which
//! of their pages the pagemaps hold, which a rootfs diff or `--root`
//! supplies). The orders the engines write their archives in:
//!
//! - Podman (libpod's `exportCheckpoint`, `podman container checkpoint
//!   --export`, zstd by default): containers/storage's `TarWithOptions`
//!   with the include list `artifacts`, `devshm-checkpoint.tar`,
//!   `config.dump`, `spec.dump`, `network.status`, `stats-dump`
//!   (`ctr.log`), `checkpoint/`, then `rootfs-diff.tar`, `deleted.files`
//!   and the volumes' tars; each entry walked with `filepath.WalkDir`,
//!   which lists a directory in name order.
//! - CRI-O (`internal/lib/checkpoint.go`): the same walk over
//!   `stats-dump`, `dump.log`, `checkpoint/`, `config.dump`, `spec.dump`,
//!   `bind.mounts`, then the rootfs diff and the log, but uncompressed: a
//!   plain tar, whose pages are used where they lie, never streamed.
//! - containerd (its CRI plugin's checkpoint): `archive.Diff` of the
//!   checkpoint directory, every file in name order.
//!
//! So in `checkpoint/` every `core-*`, `files.img`, `memfd.img`, `mm-*` and
//! `pagemap-*` comes before the first `pages-*` ("pagemap" < "pages"), but
//! `pstree.img`, `remap-fpath.img` (files deleted while mapped),
//! `reg-files.img` (CRIU before files.img) and the rootfs diff come after.
//!
//! The conversion reads the archive's members itself
//! ([`ArchiveStore::members_of`]): each pages member it can place is taken
//! as it streams by ([`Entry::went_by`]), every other member kept as an
//! ordinary open keeps it ([`Entry::keep`]).
//!
//! So each process is laid out, when its pages member comes, from what the
//! archive has said by then ([`Entry::snapshot`]), with the process
//! tree guessed from the core images where pstree.img is still to come
//! ([`guess_tree`]), and the diff taken to hold none of its files where it
//! is still to come; its pages are written where that layout's plan puts
//! them ([`CorePlan::extents_of`]).
//! Once the archive has been read whole (and its checksum checked), each
//! process is laid out again from everything, and the copies of its pages
//! compared ([`Trace`]): where they lie where they were written (what the
//! engines' orders give, unless the diff holds a file the process mapped
//! or the tree was guessed wrong), the rest of the core (headers, notes,
//! file pages, shared memory) is written around them
//! ([`CorePlan::complete_in`]); where the layout
//! moved, they are copied from the first file to their places in a second,
//! within the output directory. Pages that come before their pagemap or
//! their process's images, shared-memory objects (whose pages several
//! processes map) and anything in an order that makes the archive's images
//! be decoded more than [`MAX_VIEWS`] times are unpacked as before; so is
//! every pages file where `--image` is given (file pages come from the
//! image's layers, read only once the archive has been).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

use crate::archive::{self, ArchiveOptions, ArchiveStore, Entry, Members, Role};
use crate::batch::{ConvertOptions, Listener, ProcessReport};
use crate::coredump::{check_free, CorePlan, CoreStats, FileOutput, Output};
use crate::criu::guess::guess_tree;
use crate::criu::store::ImageStore;
use crate::criu::{Images, LoadOptions};
use crate::input::{self, Checkpoint, ImageUse, InputKind};
use crate::model::{Blob, Loaded, PageSource, Process};
use crate::notes::PSARGS_LEN;
use crate::outdir::OutDir;
use crate::rootfs::{FileView, RootFs};
use crate::stdext::read_full;

/// Most times the images read so far are decoded to lay out processes
/// before the archive has been read whole: once in the engines' orders
/// (every image before the first pages member); past this, pages members
/// are unpacked.
const MAX_VIEWS: usize = 4;

/// Bytes read from the archive and written at a time.
const CHUNK: usize = crate::readahead::CHUNK;

/// Writes the cores of a compressed archive's processes as it streams by:
/// [`OnePass::open`] reads the archive, [`OnePass::finish`] completes the
/// cores.
pub(crate) struct OnePass<'a> {
    out: &'a OutDir,
    opts: &'a ConvertOptions,
    /// The images read so far, decoded, and how many members they were
    /// decoded from (`None` where they could not be).
    view: Option<(usize, Option<View>)>,
    views: usize,
    /// The cores started, by pid.
    started: HashMap<u32, Started>,
    /// Which process's core each pages member written as it streamed by
    /// went into, by the member's label.
    taken: HashMap<String, u32>,
}

/// The images of an archive read so far, decoded.
struct View {
    images: Images,
    /// `--root`, where given: the rootfs diff is laid over it once the
    /// archive has been read whole.
    roots: Option<FileView>,
}

/// A core whose pages were written as they streamed by.
struct Started {
    /// The process as the images read by then described it.
    process: Process,
    /// The core's temporary file.
    file: NamedTempFile,
    /// The label of the pages member written into it.
    label: String,
    /// What was written where.
    trace: Traced,
    /// The bytes of the member that NT_PRPSINFO's command line is made of,
    /// by their offsets in it.
    argv: Vec<(u64, Vec<u8>)>,
    /// Why writing the pages failed, if it did (the archive was read on).
    failed: Option<anyhow::Error>,
}

impl<'a> OnePass<'a> {
    /// Converts into `out` as `opts` say.
    pub(crate) fn new(out: &'a OutDir, opts: &'a ConvertOptions) -> OnePass<'a> {
        OnePass {
            out,
            opts,
            view: None,
            views: 0,
            started: HashMap::new(),
            taken: HashMap::new(),
        }
    }

    /// Opens the compressed checkpoint archive at `path` (of kind `kind`),
    /// taking the pages members it can place as they stream by.
    pub(crate) fn open(&mut self, path: &Path, kind: InputKind) -> Result<Checkpoint> {
        let opts = self.opts.open_options();
        let read = self.read(path, &opts.archive_options());
        input::open_read_archive(path, kind, &opts, read)
    }

    /// Reads the archive at `path`: its members consumed as they stream by,
    /// then the store of what was kept.
    fn read(&mut self, path: &Path, opts: &ArchiveOptions) -> Result<ArchiveStore> {
        let blob = archive::whole_archive(path)?;
        let mut store = ArchiveStore::new(&blob.label, opts);
        let mut members = store.members_of(&blob, &opts.cancel)?;
        let consumed = self.consume(&mut members);
        members.close(consumed)?;
        store.finish()
    }

    /// Takes each pages member whose pages can go straight into their
    /// core; keeps every other member as an ordinary open does.
    fn consume(&mut self, members: &mut Members<'_>) -> Result<()> {
        while let Some(mut m) = members.next_member()? {
            match self
                .take(&mut m)
                .with_context(|| format!("member {}", m.key()))?
            {
                Some(used) => m.went_by(used)?,
                None => m.keep()?,
            }
        }
        Ok(())
    }

    /// Writes the pages of member `m` into their core as they stream by,
    /// if it is a pages member whose process can be laid out by now:
    /// returns the bytes of it its pagemap claims, once it has read what
    /// it uses of them; `None`, having read nothing, to have it kept.
    fn take(&mut self, m: &mut Entry<'_, '_>) -> Result<Option<u64>> {
        if !m.streamed() || !matches!(m.role(), Role::Pages(_)) {
            return Ok(None);
        }
        let Some((pagemap, claimed)) = m.pagemap() else {
            return Ok(None);
        };
        // Only a process's own pagemap: a shared-memory object's pages go
        // into the core of every process that maps it.
        let Some(pid) = private_pagemap(&pagemap) else {
            return Ok(None);
        };
        if claimed > m.size() || self.started.contains_key(&pid) {
            return Ok(None);
        }
        if !self.opts.pids.is_empty() && !self.opts.pids.contains(&pid) {
            // No core wants them.
            return Ok(Some(claimed));
        }
        let Some((p, source)) = self.provisional(m, pid) else {
            return Ok(None);
        };
        Ok(self.start(p, source, m)?.then_some(claimed))
    }

    /// The images read before member `m`, decoded.
    fn view(&mut self, m: &Entry<'_, '_>) -> Option<&View> {
        let described = m.described();
        let fresh = self.view.as_ref().is_some_and(|v| v.0 == described);
        if !fresh {
            self.view = None;
            if self.views >= MAX_VIEWS {
                return None;
            }
            self.views += 1;
            let view = View::new(m, self.opts.root.as_deref())
                .map_err(|e| tracing::debug!(error = %format!("{e:#}"), "cannot lay out yet"))
                .ok();
            self.view = Some((described, view));
        }
        self.view.as_ref().and_then(|v| v.1.as_ref())
    }

    /// Process `pid` as the archive read so far describes it, and the
    /// index of the blob of pages member `m` among its blobs; `None`
    /// where it cannot be laid out yet, or its core is not to be written.
    fn provisional(&mut self, m: &Entry<'_, '_>, pid: u32) -> Option<(Process, usize)> {
        if check_free(self.out, &format!("core.{pid}"), self.opts.force).is_err() {
            return None;
        }
        let label = m.label();
        let view = self.view(m)?;
        let root = LoadOptions {
            root: view.roots.as_ref(),
            skip_ghosts: false,
        };
        let Ok(Loaded::Process(p)) = view.images.load(pid, root) else {
            return None;
        };
        let source = p
            .blobs
            .iter()
            .position(|b| b.label == label && went_by(b))?;
        Some((*p, source))
    }

    /// Writes process `p`'s pages from pages member `m` (its blob
    /// `source`) as it streams by, where the core's plan puts them, into a
    /// new core; false, having read nothing, where its core cannot be
    /// planned or its plan does not take the member front to back.
    fn start(&mut self, p: Process, source: usize, m: &mut Entry<'_, '_>) -> Result<bool> {
        let pid = p.pid;
        let label = m.label();
        let Ok(plan) = CorePlan::new(&p) else {
            return Ok(false);
        };
        let mut trace = Trace::default();
        let walked = plan.extents_of(source, &mut |at, offset, len| {
            trace.add(at, offset, len);
            Ok(())
        });
        if walked.is_err() || !trace.rising {
            return Ok(false);
        }
        let Ok(file) = self.out.temp_file(&format!("core.{pid}")) else {
            return Ok(false);
        };
        let mut copy = StreamCopy {
            data: m.data(),
            read: 0,
            buf: vec![0u8; CHUNK],
            file: FileOutput(file.as_file()),
            failed: None,
            opts: self.opts,
            argv: argv_pieces(&p, source),
            kept: Vec::new(),
        };
        plan.extents_of(source, &mut |at, offset, len| copy.copy(at, offset, len))
            .with_context(|| format!("{label}: cannot read"))?;
        let argv = std::mem::take(&mut copy.kept);
        let failed = copy.failed.take().map(|e| {
            e.context(format!(
                "writing {}",
                self.out.shown(&format!("core.{pid}")).display()
            ))
        });
        drop(plan);
        tracing::debug!(
            pid,
            member = label,
            bytes = trace.bytes,
            "pages went straight into the core"
        );
        self.taken.insert(label.clone(), pid);
        self.started.insert(
            pid,
            Started {
                process: p,
                file,
                label,
                trace: trace.finish(),
                argv,
                failed,
            },
        );
        Ok(true)
    }

    /// Writes the cores of `ckpt`, the checkpoint [`OnePass::open`] read:
    /// each process that was started is completed (or its pages moved to
    /// where its real plan puts them), the others written the ordinary way
    /// ([`crate::batch::write_core`]).
    pub(crate) fn finish(
        mut self,
        ckpt: &Checkpoint,
        used: &mut Option<ImageUse>,
        listener: &mut dyn Listener,
    ) -> Result<Vec<ProcessReport>> {
        let opts = self.opts;
        crate::batch::convert_input_with(ckpt, opts, used, listener, &mut |p| self.complete(p))
    }

    /// Writes the core of `p`, as the whole archive describes it.
    fn complete(&mut self, p: &Process) -> Result<CoreStats> {
        let (out, force, cancel) = (self.out, self.opts.force, &self.opts.cancel);
        let streamed: Vec<usize> = (0..p.blobs.len())
            .filter(|&i| went_by(&p.blobs[i]))
            .collect();
        let Some(started) = self.started.remove(&p.pid) else {
            if let Some(&i) = streamed.first() {
                let label = &p.blobs[i].label;
                return Err(match self.taken.get(label) {
                    Some(other) => anyhow!(
                        "{label}: its pages went into the core of pid {other} as the archive streamed by; pid {} maps them too",
                        p.pid
                    ),
                    None => anyhow!("{label}: its pages were read past, for no core wanted them"),
                });
            }
            return crate::batch::write_core(p, out, self.opts);
        };
        if let Some(e) = started.failed {
            return Err(e);
        }
        let source = match streamed[..] {
            [i] if p.blobs[i].label == started.label => i,
            _ => bail!(
                "pid {}: the pages files its images name changed once the archive was read whole",
                p.pid
            ),
        };
        check_free(out, &format!("core.{}", p.pid), force)?;
        let (p, _argv) = with_argv(p, source, &started.argv, out)?;
        let p = &p;
        let plan = CorePlan::new(p)?.with_cancel(cancel);
        let mut trace = Trace::default();
        plan.extents_of(source, &mut |at, offset, len| {
            trace.add(at, offset, len);
            Ok(())
        })?;
        let trace = trace.finish();
        if trace.placed == started.trace.placed {
            return plan.complete_in(out, started.file, &[source], force);
        }
        if trace.taken != started.trace.taken {
            bail!(
                "{}: the images read after it describe its pages otherwise than those read before it",
                started.label
            );
        }
        tracing::info!(
            pid = p.pid,
            "the layout moved once the archive was read whole (pstree.img, the rootfs diff or deleted files): moving the pages"
        );
        let tmp = out.temp_file(&format!("core.{}", p.pid))?;
        relocate(&started, &plan, source, tmp.as_file()).with_context(|| {
            format!(
                "writing {}",
                out.shown(&format!("core.{}", p.pid)).display()
            )
        })?;
        plan.complete_in(out, tmp, &[source], force)
    }
}

impl View {
    /// Decodes what the archive has said by the time member `m` comes,
    /// with `root`.
    fn new(m: &Entry<'_, '_>, root: Option<&Path>) -> Result<View> {
        let store = m.snapshot();
        let has_tree = store.names()?.iter().any(|n| n == "pstree.img");
        let store: Arc<dyn ImageStore> = Arc::new(store);
        let images = if has_tree {
            Images::open(store)?
        } else {
            let tree = guess_tree(&*store)?;
            let at = vec![0; tree.len()];
            Images::with_tree(store, tree, &at)?
        };
        // The engines write the rootfs diff after the images: a process
        // that maps a file of it is laid out again once it has come by.
        let roots = match root {
            Some(r) => Some(FileView::new(None, Some(RootFs::new(r)?))),
            None => None,
        };
        Ok(View { images, roots })
    }
}

/// The pieces of pages member `source` (offset, length) that hold the
/// first bytes of `p`'s argv, those NT_PRPSINFO quotes.
fn argv_pieces(p: &Process, source: usize) -> Vec<(u64, u64)> {
    let (start, end) = p.arg_range;
    let end = end.min(start.saturating_add(PSARGS_LEN as u64 - 1));
    let mut pieces = Vec::new();
    if end <= start {
        return pieces;
    }
    let first = p.mappings.partition_point(|m| m.end <= start);
    // A walk that fails leaves the pieces short: the command line is then
    // unreadable, as it is to the process's other readers.
    let _ = p.walk_runs(first, &mut |_, _, at, run| {
        if at >= end {
            return Ok(ControlFlow::Break(()));
        }
        let (lo, hi) = (at.max(start), (at + run.len).min(end));
        if let PageSource::Blob { blob, offset } = run.source {
            if blob == source && lo < hi {
                pieces.push((offset + (lo - at), hi - lo));
            }
        }
        Ok(ControlFlow::Continue(()))
    });
    pieces
}

/// `p` with the blob of pages member `source`, whose pages went into its
/// core as they streamed by, made readable where NT_PRPSINFO reads it: a
/// temporary file of the member's length holding the bytes in `argv` (by
/// their offsets in the member), and nothing else. The core writer reads
/// no other byte of it: it copies none of the member's pages, which are
/// in the core already (or moved there from the first layout's file).
fn with_argv(
    p: &Process,
    source: usize,
    argv: &[(u64, Vec<u8>)],
    out: &OutDir,
) -> Result<(Process, NamedTempFile)> {
    let file = out.temp_file(&format!("argv.{}", p.pid))?;
    for (offset, bytes) in argv {
        file.as_file()
            .write_all_at(bytes, *offset)
            .with_context(|| format!("{}: cannot write", file.path().display()))?;
    }
    let mut p = p.clone();
    let blob = &mut p.blobs[source];
    blob.path = file.path().to_path_buf();
    blob.offset = 0;
    Ok((p, file))
}

/// Whether `b` is a pages member that went by unkept (the archive's
/// `Member::Streamed`): in no file here nor in object storage.
fn went_by(b: &Blob) -> bool {
    b.path.as_os_str().is_empty() && b.remote.is_none()
}

/// The pid whose own pagemap `key` (`pagemap-<pid>.img`, in a directory
/// or not) is.
fn private_pagemap(key: &str) -> Option<u32> {
    let base = key.rsplit('/').next()?;
    let digits = base.strip_prefix("pagemap-")?.strip_suffix(".img")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Copies the pages of a member, as it streams by, to their places in a
/// core.
struct StreamCopy<'r> {
    data: &'r mut dyn Read,
    /// Bytes of the member read so far.
    read: u64,
    buf: Vec<u8>,
    /// The core's file, the member's pages written at their planned places.
    file: FileOutput<'r>,
    /// The first write that failed: the rest of the member is read past.
    failed: Option<anyhow::Error>,
    opts: &'r ConvertOptions,
    /// Pieces of the member to keep (offset, length): argv's first bytes.
    argv: Vec<(u64, u64)>,
    /// What was kept of them, by offset.
    kept: Vec<(u64, Vec<u8>)>,
}

impl StreamCopy<'_> {
    /// Writes bytes `offset..offset + len` of the member at `at` in the
    /// core (offsets rise from call to call).
    fn copy(&mut self, at: u64, offset: u64, len: u64) -> Result<()> {
        if offset < self.read {
            bail!(
                "pages at offset {offset} are wanted after offset {}",
                self.read
            );
        }
        let skip = offset - self.read;
        if io::copy(&mut (&mut *self.data).take(skip), &mut io::sink())? < skip {
            bail!(
                "it ends at offset {}, before its pagemap's pages",
                self.read
            );
        }
        self.read = offset;
        let mut done = 0;
        while done < len {
            self.opts.cancel.check()?;
            let want = (len - done).min(self.buf.len() as u64) as usize;
            let n = read_full(&mut *self.data, &mut self.buf[..want])?;
            if n == 0 {
                bail!(
                    "it ends at offset {}, before its pagemap's pages",
                    self.read
                );
            }
            if self.failed.is_none() {
                if let Err(e) = self.file.write_at(&self.buf[..n], at + done) {
                    self.failed = Some(e.into());
                }
            }
            let (lo, hi) = (self.read, self.read + n as u64);
            for &(o, l) in &self.argv {
                let (a, b) = (o.max(lo), (o + l).min(hi));
                if a < b {
                    let bytes = &self.buf[(a - lo) as usize..(b - lo) as usize];
                    self.kept.push((a, bytes.to_vec()));
                }
            }
            done += n as u64;
            self.read += n as u64;
        }
        Ok(())
    }
}

/// Copies the pages `started` wrote as they streamed by from its file to
/// where `plan` (the process's real layout) puts them in `to`. Both
/// plans take the member front to back, so the two walks go in step:
/// the first on a thread of its own, handing its copies over a bounded
/// channel.
fn relocate(started: &Started, plan: &CorePlan, source: usize, to: &File) -> Result<()> {
    let first = CorePlan::new(&started.process)?;
    let from_source = started
        .process
        .blobs
        .iter()
        .position(|b| b.label == started.label)
        .context("the pages member went missing")?;
    let from = started.file.as_file();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, u64, u64)>(1024);
        let walker = scope.spawn(move || {
            first.extents_of(from_source, &mut |at, offset, len| {
                tx.send((at, offset, len))
                    .map_err(|_| anyhow::Error::new(Unwanted))
            })
        });
        // The copy of the first layout being read from: (at, offset, len).
        let mut piece: Option<(u64, u64, u64)> = None;
        let mut to = FileOutput(to);
        let moved = plan.extents_of(source, &mut |at, offset, len| {
            let mut done = 0;
            while done < len {
                let want = offset + done;
                let (p_at, p_off, p_len) = loop {
                    match piece {
                        Some(p) if p.1 + p.2 > want => break p,
                        _ => match rx.recv() {
                            Ok(p) => piece = Some(p),
                            Err(_) => {
                                bail!("offset {want} of {} was not written", started.label)
                            }
                        },
                    }
                };
                if p_off > want {
                    bail!("offset {want} of {} was not written", started.label);
                }
                let n = (len - done).min(p_off + p_len - want);
                to.copy(from, p_at + (want - p_off), n, at + done)
                    .context("cannot move pages")?;
                done += n;
            }
            Ok(())
        });
        drop(rx);
        let walked = walker
            .join()
            .map_err(|_| anyhow!("the walk of the first layout failed"))?;
        moved?;
        // The first walk stops early, and fails, once it is not wanted.
        walked.or_else(|e| if e.is::<Unwanted>() { Ok(()) } else { Err(e) })
    })
}

/// What the walk of the first layout stops with once its copies are no
/// longer wanted.
#[derive(Debug)]
struct Unwanted;

impl std::fmt::Display for Unwanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no longer wanted")
    }
}

impl std::error::Error for Unwanted {}

/// The copies of one source into a core, joined where they continue each
/// other, as two digests: with where each goes in the core (`placed`) and
/// without (`taken`). Two layouts with the same `placed` put every byte of
/// the source in the same place; with the same `taken`, they take the same
/// bytes of it, in the same order.
struct Trace {
    placed: Sha256,
    taken: Sha256,
    /// The copy being joined: (at, offset, len).
    last: Option<(u64, u64, u64)>,
    /// The run of offsets being joined: (offset, len).
    run: Option<(u64, u64)>,
    /// Where the copies so far end in the source.
    end: u64,
    /// Whether each copy starts where the last ended or later.
    rising: bool,
    bytes: u64,
}

/// A [`Trace`]'s digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Traced {
    placed: [u8; 32],
    taken: [u8; 32],
}

impl Default for Trace {
    fn default() -> Trace {
        Trace {
            placed: Sha256::new(),
            taken: Sha256::new(),
            last: None,
            run: None,
            end: 0,
            rising: true,
            bytes: 0,
        }
    }
}

impl Trace {
    fn add(&mut self, at: u64, offset: u64, len: u64) {
        if offset < self.end {
            self.rising = false;
        }
        self.end = offset + len;
        self.bytes += len;
        match &mut self.last {
            Some((a, o, l)) if *a + *l == at && *o + *l == offset => *l += len,
            last => {
                if let Some((a, o, l)) = last.replace((at, offset, len)) {
                    self.placed.update([a, o, l].map(u64::to_le_bytes).concat());
                }
            }
        }
        match &mut self.run {
            Some((o, l)) if *o + *l == offset => *l += len,
            run => {
                if let Some((o, l)) = run.replace((offset, len)) {
                    self.taken.update([o, l].map(u64::to_le_bytes).concat());
                }
            }
        }
    }

    fn finish(mut self) -> Traced {
        if let Some((a, o, l)) = self.last.take() {
            self.placed.update([a, o, l].map(u64::to_le_bytes).concat());
        }
        if let Some((o, l)) = self.run.take() {
            self.taken.update([o, l].map(u64::to_le_bytes).concat());
        }
        Traced {
            placed: self.placed.finalize().into(),
            taken: self.taken.finalize().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(copies: &[(u64, u64, u64)]) -> (Traced, bool) {
        let mut t = Trace::default();
        for &(a, o, l) in copies {
            t.add(a, o, l);
        }
        let rising = t.rising;
        (t.finish(), rising)
    }

    #[test]
    fn traces_join_what_continues_and_tell_moved_from_changed() {
        let (a, rising) = traced(&[(4096, 0, 4096), (8192, 4096, 4096), (16384, 8192, 4096)]);
        assert!(rising);
        // The same copies cut differently: the same trace.
        let (b, _) = traced(&[(4096, 0, 8192), (16384, 8192, 2048), (18432, 10240, 2048)]);
        assert_eq!(a, b);
        // The same bytes elsewhere in the core: moved, not changed.
        let (c, _) = traced(&[(8192, 0, 8192), (24576, 8192, 4096)]);
        assert_ne!(a.placed, c.placed);
        assert_eq!(a.taken, c.taken);
        // Other bytes: changed.
        let (d, _) = traced(&[(4096, 0, 8192), (16384, 12288, 4096)]);
        assert_ne!(a.taken, d.taken);
        // Going back in the source.
        let (_, rising) = traced(&[(4096, 4096, 4096), (8192, 0, 4096)]);
        assert!(!rising);
    }

    #[test]
    fn only_a_process_s_own_pagemap_names_its_pid() {
        assert_eq!(private_pagemap("checkpoint/pagemap-12.img"), Some(12));
        assert_eq!(private_pagemap("pagemap-7.img"), Some(7));
        assert_eq!(private_pagemap("checkpoint/pagemap-shmem-77.img"), None);
        assert_eq!(private_pagemap("checkpoint/pagemap-.img"), None);
    }
}
