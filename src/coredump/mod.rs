//! From the process model to a core file: the notes in the order the
//! kernel writes them ([`notes`]), PT_LOAD segments for every mapping
//! ([`mod@segments`]), and the write itself ([`CoreWriter`]: into a file, any
//! seekable writer, or `core.<pid>` in a directory through a temporary file
//! renamed into place when complete).

mod segments;

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch;
use crate::cancel::Cancel;
pub use crate::elf::Written;
use crate::elf::{self, CoreFile, Extent, SegmentHeader, Segments};
/// Where a core is written, and a local file as one: what the one-pass
/// conversion writes extents through at their planned places.
pub(crate) use crate::elf::{FileOutput, Output};
use crate::error::{fault, Error, ErrorKind};
use crate::model::Process;
use crate::notes::process::ProcessNotes;
use crate::outdir::OutDir;
use segments::{segments, ProcessSegments};

/// What writing one core produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreStats {
    /// Where the core is, under the directory as it was named (for object
    /// storage, its URL).
    pub path: PathBuf,
    /// Apparent size.
    pub size: u64,
    /// Bytes of memory contents copied into it.
    pub copied: u64,
    /// The size of the compressed file, where it was compressed.
    pub compressed: Option<u64>,
}

/// How a core is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CoreCompression {
    /// As it is: `core.<pid>`, sparse in a local directory (holes written
    /// as zeros to object storage).
    #[default]
    None,
    /// zstd-compressed, `core.<pid>.zst` (holes compress to almost
    /// nothing). `zstd -d` gives back the plain core.
    Zstd,
}

impl CoreCompression {
    /// The name of process `pid`'s core.
    pub fn core_name(self, pid: u32) -> String {
        match self {
            CoreCompression::None => format!("core.{pid}"),
            CoreCompression::Zstd => format!("core.{pid}.zst"),
        }
    }
}

/// zstd's level for compressed cores: its default, fast and already
/// making holes nearly free.
const ZSTD_LEVEL: i32 = 3;

/// Writes one process's core: its notes and segments are laid out when it
/// is made (the page runs are walked once), and written by one of its
/// `write` methods (walked again while copying).
///
/// ```
/// use criu2core::{open, CoreWriter, LoadOptions, Loaded, OpenOptions};
///
/// let ckpt = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
/// let Loaded::Process(p) = ckpt.load(12155, &LoadOptions::default())? else { panic!() };
/// // Into memory (holes read as zeros)...
/// let mut core = std::io::Cursor::new(Vec::new());
/// let written = CoreWriter::new(&p)?.write_to(&mut core)?;
/// assert_eq!(&core.get_ref()[..4], b"\x7fELF");
/// assert_eq!(core.get_ref().len() as u64, written.size);
/// // ...or as core.12155 in a directory, sparse.
/// let dir = tempfile::tempdir()?;
/// let stats = CoreWriter::new(&p)?.write_into(dir.path(), false)?;
/// assert_eq!(stats.size, written.size);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CoreWriter<'a> {
    plan: CorePlan<'a>,
}

impl<'a> CoreWriter<'a> {
    /// Lays out the core of `p`.
    pub fn new(p: &'a Process) -> crate::Result<CoreWriter<'a>> {
        let plan = CorePlan::new(p).map_err(Error::new)?;
        Ok(CoreWriter { plan })
    }

    /// Stops writing (and removes the temporary file of
    /// [`CoreWriter::write_into`]) once `cancel` is set.
    pub fn with_cancel(self, cancel: &Cancel) -> CoreWriter<'a> {
        CoreWriter {
            plan: self.plan.with_cancel(cancel),
        }
    }

    /// Writes the core into `file`, which must be empty: page data is
    /// copied with copy_file_range (shared with the pages files where the
    /// filesystem can), and pages of zeros are left as holes.
    pub fn write_to_file(&self, file: &File) -> crate::Result<Written> {
        self.plan
            .write(&mut elf::FileOutput(file), &[])
            .map_err(Error::new)
    }

    /// Writes the core into `out`, which must be empty: anything that can
    /// seek (a `Cursor<Vec<u8>>`, a file opened elsewhere). Pages of
    /// zeros are seeked over, so they read as zeros.
    pub fn write_to(&self, out: impl Write + Seek) -> crate::Result<Written> {
        self.plan
            .write(&mut elf::SeekOutput::new(out), &[])
            .map_err(Error::new)
    }

    /// Writes the core front to back into `out`, a stream (a pipe, a
    /// compressor, an upload): its holes are written as zeros.
    pub fn write_stream(&self, out: impl Write) -> crate::Result<Written> {
        let mut sink = elf::SinkOutput::new(out);
        self.plan.write(&mut sink, &[]).map_err(Error::new)
    }

    /// Writes `core.<pid>` into directory `dir` (created if missing)
    /// through a temporary file that is renamed into place only when
    /// complete; an existing core is replaced only if `force` is set.
    pub fn write_into(&self, dir: impl AsRef<Path>, force: bool) -> crate::Result<CoreStats> {
        OutDir::create(dir.as_ref())
            .and_then(|dir| self.plan.write_in(&dir, force, CoreCompression::None))
            .map_err(Error::new)
    }
}

/// A process's core planned: its notes and segments laid out and every
/// offset of the file reserved once (the notes encoded to size them), so
/// that where each extent of each page source goes is known before a byte
/// is written. Both ways of writing a core follow one plan: the ordinary
/// one writes the headers and notes, then copies every extent
/// ([`CorePlan::write_in`]); the one-pass conversion writes the extents of
/// a pages member at their planned places as the member streams by
/// ([`CorePlan::extents_of`]), then the headers, the notes and the other
/// extents around them ([`CorePlan::complete_in`]).
pub(crate) struct CorePlan<'a> {
    p: &'a Process,
    notes: ProcessNotes<'a>,
    segments: ProcessSegments<'a>,
    layout: elf::Layout,
    cancel: Cancel,
}

impl<'a> CorePlan<'a> {
    /// Plans the core of `p`.
    pub(crate) fn new(p: &'a Process) -> Result<CorePlan<'a>> {
        if p.threads.is_empty() {
            bail!("pid {} has no threads", p.pid);
        }
        let segments = segments(p)?;
        let notes = ProcessNotes::new(p);
        let layout = elf::lay_out(&core_file(p, &notes, &segments))?;
        tracing::debug!(
            pid = p.pid,
            threads = p.threads.len(),
            segments = segments.count(),
            size = layout.size(),
            "core planned"
        );
        Ok(CorePlan {
            p,
            notes,
            segments,
            layout,
            cancel: Cancel::new(),
        })
    }

    /// Stops writing (and removes the temporary file of
    /// [`CorePlan::write_in`]) once `cancel` is set.
    pub(crate) fn with_cancel(mut self, cancel: &Cancel) -> CorePlan<'a> {
        self.cancel = cancel.clone();
        self
    }

    fn cancellable(&self) -> Cancellable<'_> {
        Cancellable {
            inner: &self.segments,
            cancel: &self.cancel,
        }
    }

    /// Writes the headers and notes, then every extent but those of the
    /// sources in `written` (which are in `out` already, each at its
    /// planned place), then sizes the core.
    fn write(&self, out: &mut dyn elf::Output, written: &[usize]) -> Result<Written> {
        let segments = self.cancellable();
        let core = core_file(self.p, &self.notes, &segments);
        self.cancel.check()?;
        let written = elf::write_core(&core, &self.layout, out, written)?;
        self.cancel.check()?;
        Ok(written)
    }

    /// Calls `f(at, offset, len)` with every extent copied from the
    /// process's blob `source`, in the order they lie in the core: `len`
    /// bytes from `offset` of the blob go to offset `at` of the core.
    pub(crate) fn extents_of(
        &self,
        source: usize,
        f: &mut dyn FnMut(u64, u64, u64) -> Result<()>,
    ) -> Result<()> {
        let segments = self.cancellable();
        let core = core_file(self.p, &self.notes, &segments);
        elf::for_each_placed(&core, &self.layout, &mut |at, ext| match ext {
            Extent::Copy {
                source: s,
                offset,
                len,
            } if s == source => f(at, offset, len),
            _ => Ok(()),
        })
    }

    /// Writes `core.<pid>` into `dir`, stored as `compression` says,
    /// through a temporary file renamed into place only when complete; an
    /// existing core is replaced only if `force` is set. Into object
    /// storage the core goes up as a multipart upload while it is written,
    /// completed only once it is whole.
    pub(crate) fn write_in(
        &self,
        dir: &OutDir,
        force: bool,
        compression: CoreCompression,
    ) -> Result<CoreStats> {
        let p = self.p;
        let name = compression.core_name(p.pid);
        let path = dir.join(&name)?;
        check_free(dir, &name, force)?;
        self.cancel.check()?;
        let start = std::time::Instant::now();
        let writing = || format!("writing {}", path.display());
        let (written, compressed) = if let Some(mut up) = dir.upload(&name)? {
            // Dropped on an error, the upload is aborted: no object.
            let written = self
                .write_compressed(&mut up, compression)
                .with_context(writing)?;
            let stored = up.finish()?;
            (
                written,
                (compression != CoreCompression::None).then_some(stored),
            )
        } else {
            let tmp = dir.temp_file(&name)?;
            let written = match compression {
                CoreCompression::None => self
                    .write(&mut elf::FileOutput(tmp.as_file()), &[])
                    .with_context(writing)?,
                CoreCompression::Zstd => {
                    let out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
                    self.write_compressed(out, compression)
                        .with_context(writing)?
                }
            };
            let stored = tmp.as_file().metadata().with_context(writing)?.len();
            dir.persist(tmp, &name, force)?;
            (
                written,
                (compression != CoreCompression::None).then_some(stored),
            )
        };
        Ok(self.wrote(dir, &name, written, compressed, start))
    }

    /// Completes `tmp`, a temporary file of the local directory `dir` that
    /// holds the extents of the blobs in `written` at their planned places
    /// (and nothing else): writes the headers, the notes and every other
    /// extent, and renames it `core.<pid>` (uncompressed); an existing
    /// core is replaced only if `force` is set.
    pub(crate) fn complete_in(
        &self,
        dir: &OutDir,
        tmp: tempfile::NamedTempFile,
        written: &[usize],
        force: bool,
    ) -> Result<CoreStats> {
        let name = CoreCompression::None.core_name(self.p.pid);
        let path = dir.join(&name)?;
        let start = std::time::Instant::now();
        let written = self
            .write(&mut elf::FileOutput(tmp.as_file()), written)
            .with_context(|| format!("writing {}", path.display()))?;
        dir.persist(tmp, &name, force)?;
        Ok(self.wrote(dir, &name, written, None, start))
    }

    /// Logs core `name` of `dir` as written and says what it holds.
    fn wrote(
        &self,
        dir: &OutDir,
        name: &str,
        written: Written,
        compressed: Option<u64>,
        start: std::time::Instant,
    ) -> CoreStats {
        let p = self.p;
        let path = dir.shown(name);
        tracing::info!(
            pid = p.pid,
            path = %path.display(),
            size = written.size,
            copied = written.copied,
            compressed = compressed,
            ms = start.elapsed().as_millis() as u64,
            "wrote core"
        );
        CoreStats {
            path,
            size: written.size,
            copied: written.copied,
            compressed,
        }
    }

    /// Writes the core into the stream `out`, compressed as asked.
    fn write_compressed(&self, out: impl Write, compression: CoreCompression) -> Result<Written> {
        match compression {
            CoreCompression::None => {
                let mut sink = elf::SinkOutput::new(out);
                let written = self.write(&mut sink, &[])?;
                sink.into_inner().flush()?;
                Ok(written)
            }
            CoreCompression::Zstd => {
                let enc = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
                    .context("cannot start zstd")?;
                let mut sink = elf::SinkOutput::new(enc);
                let written = self.write(&mut sink, &[])?;
                sink.into_inner()
                    .finish()
                    .context("cannot end the zstd stream")?
                    .flush()?;
                Ok(written)
            }
        }
    }
}

/// Fails with [`ErrorKind::Exists`] where `dir` has something named
/// `name` and `force` is not set.
pub(crate) fn check_free(dir: &OutDir, name: &str, force: bool) -> Result<()> {
    let path = dir.join(name)?;
    if !force && !dir.is_free(name)? {
        return Err(fault(
            ErrorKind::Exists,
            format!("{} exists (use --force to replace it)", path.display()),
        ));
    }
    Ok(())
}

/// Writes `core.<pid>` for `p` into `dir` (created if missing), through a
/// temporary file that is renamed into place only when complete. An
/// existing core is replaced only if `force` is set.
pub fn write_core(p: &Process, dir: impl AsRef<Path>, force: bool) -> crate::Result<CoreStats> {
    CoreWriter::new(p)?.write_into(dir, force)
}

/// The core of `p` as the ELF writer sees it: what is planned and what is
/// written are one description.
fn core_file<'c>(
    p: &'c Process,
    notes: &'c ProcessNotes<'c>,
    segments: &'c dyn Segments,
) -> CoreFile<'c> {
    CoreFile {
        target: arch::elf_target(p.arch),
        page_size: p.page_size,
        notes,
        segments,
        sources: &p.blobs,
    }
}

/// Segments whose extents stop coming once `cancel` is set.
struct Cancellable<'a> {
    inner: &'a dyn Segments,
    cancel: &'a Cancel,
}

impl Segments for Cancellable<'_> {
    fn count(&self) -> usize {
        self.inner.count()
    }

    fn header(&self, i: usize) -> SegmentHeader {
        self.inner.header(i)
    }

    fn for_each_extent(&self, f: &mut dyn FnMut(usize, Extent) -> Result<()>) -> Result<()> {
        self.inner.for_each_extent(&mut |i, e| {
            self.cancel.check()?;
            f(i, e)
        })
    }
}
