//! From the process model to a core file: the notes in the order the
//! kernel writes them, PT_LOAD segments for every mapping, and the write
//! itself (to a temporary file, renamed into place when complete).

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch;
use crate::cancel::Cancel;
pub use crate::elf::Written;
use crate::elf::{self, CoreFile, Extent, SegmentHeader, Segments};
use crate::error::{fault, Error, ErrorKind};
use crate::model::{Mapping, PageRun, PageSource, Process, ProcessState};
use crate::notes::{self, nt, FileMapping, Note, PrPsInfo, PrStatus};
use crate::outdir::OutDir;

/// The notes of a process's core, in the kernel's order: each thread's
/// NT_PRSTATUS; after the first one NT_PRPSINFO, NT_SIGINFO, NT_AUXV and
/// NT_FILE; then that thread's other register sets. Only the process-wide
/// notes are held; each thread's are made when they are asked for, so a
/// process with many threads never has all their notes in memory.
pub struct ProcessNotes<'a> {
    p: &'a Process,
    /// NT_PRPSINFO, NT_SIGINFO, NT_AUXV and NT_FILE.
    process: Vec<Note>,
}

impl<'a> ProcessNotes<'a> {
    /// The notes of `p` (the process-wide ones made now).
    pub fn new(p: &'a Process) -> ProcessNotes<'a> {
        let abi = arch::abi(p.arch);
        let mut process = vec![
            Note::new(notes::CORE, nt::PRPSINFO, notes::prpsinfo(abi, &psinfo(p))),
            Note::new(notes::CORE, nt::SIGINFO, siginfo(p)),
            Note::new(notes::CORE, nt::AUXV, notes::auxv(abi, &p.auxv)),
        ];
        let files = file_mappings(p);
        if !files.is_empty() {
            process.push(Note::new(
                notes::CORE,
                nt::FILE,
                notes::file_note(abi, p.page_size, &files),
            ));
        }
        ProcessNotes { p, process }
    }
}

impl elf::Notes for ProcessNotes<'_> {
    fn for_each(&self, f: &mut dyn FnMut(&Note) -> Result<()>) -> Result<()> {
        let p = self.p;
        let abi = arch::abi(p.arch);
        for (i, t) in p.threads.iter().enumerate() {
            let st = PrStatus {
                cursig: 0,
                sigpend: t.pending,
                sighold: t.blocked,
                pid: t.tid,
                ppid: p.ppid,
                pgrp: p.pgid,
                sid: p.sid,
            };
            let (prstatus, regsets) = arch::thread_notes(abi, &st, &t.regs);
            f(&prstatus)?;
            if i == 0 {
                self.process.iter().try_for_each(&mut *f)?;
            }
            regsets.iter().try_for_each(&mut *f)?;
        }
        Ok(())
    }
}

/// NT_PRPSINFO's fields.
pub fn psinfo(p: &Process) -> PrPsInfo {
    let mut psargs = p.psargs(notes::PSARGS_LEN);
    if psargs.is_empty() {
        psargs = p.comm.clone();
    }
    PrPsInfo {
        sname: match p.state {
            ProcessState::Running => b'R',
            ProcessState::Stopped(_) => b'T',
        },
        nice: p.threads.first().map_or(0, |t| t.nice),
        flag: u64::from(p.flags),
        uid: p.uid,
        gid: p.gid,
        pid: p.pid,
        ppid: p.ppid,
        pgrp: p.pgid,
        sid: p.sid,
        fname: p.comm.clone(),
        psargs,
    }
}

/// NT_SIGINFO: the stop that froze the process for the checkpoint. No
/// signal killed it, so pr_cursig stays 0; the siginfo names the stop
/// signal (the one recorded for a stopped task, SIGSTOP otherwise), sent by
/// the kernel, as a debugger's attach leaves it.
fn siginfo(p: &Process) -> Vec<u8> {
    let signo = match p.state {
        ProcessState::Stopped(Some(s)) => s,
        _ => p.arch.sigstop(),
    };
    notes::siginfo(arch::abi(p.arch), signo, notes::SI_KERNEL)
}

/// NT_FILE entries: every mapping with a file behind it.
pub fn file_mappings(p: &Process) -> Vec<FileMapping> {
    p.mappings
        .iter()
        .filter_map(|m| {
            let f = m.file.as_ref()?;
            Some(FileMapping {
                start: m.start,
                end: m.end,
                offset: f.offset,
                path: f.path.clone(),
            })
        })
        .collect()
}

/// The PT_LOAD segments of a process: one per mapping, except that where
/// a mapping has pages of unknown contents the segment's file data stops
/// there (p_filesz < p_memsz) and a new segment starts after them, so
/// readers fall back to the mapped file. A mapping none of whose pages the
/// checkpoint holds gets no file data (p_filesz 0), as the kernel writes a
/// mapping that was never touched. Only the headers are held; the extents
/// are made from a second walk of the page runs as they are written.
pub struct ProcessSegments<'a> {
    process: &'a Process,
    /// Each segment's mapping and header.
    headers: Vec<(usize, SegmentHeader)>,
}

/// The segments of `p`, from one walk of its page runs.
pub fn segments(p: &Process) -> Result<ProcessSegments<'_>> {
    let mut cut = Cutter::new(p);
    p.walk_runs(0, &mut |mi, m, at, run| {
        cut.run(mi, m, at, run)?;
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    cut.close_to(p.mappings.len())?;
    Ok(ProcessSegments {
        process: p,
        headers: cut.headers,
    })
}

/// Cuts a process's mappings into segments as their runs go by.
struct Cutter<'a> {
    p: &'a Process,
    headers: Vec<(usize, SegmentHeader)>,
    /// The mapping being walked: the first that has no headers yet.
    next: usize,
    /// Where its current segment starts, where that segment's contents
    /// end, and where its runs have reached.
    seg: u64,
    content: u64,
    addr: u64,
}

impl<'a> Cutter<'a> {
    fn new(p: &'a Process) -> Cutter<'a> {
        let start = p.mappings.first().map_or(0, |m| m.start);
        Cutter {
            p,
            headers: Vec::with_capacity(p.mappings.len()),
            next: 0,
            seg: start,
            content: start,
            addr: start,
        }
    }

    fn run(&mut self, mi: usize, m: &Mapping, at: u64, run: PageRun) -> Result<()> {
        if mi < self.next {
            bail!("page runs of mapping {mi} come out of order");
        }
        self.close_to(mi)?;
        if !matches!(run.source, PageSource::Missing(_)) {
            if self.content < at {
                // Contents again after unknown pages: a new segment.
                self.headers
                    .push((mi, header(m, self.seg, at, self.content)));
                self.seg = at;
            }
            self.content = at + run.len;
        }
        self.addr = at + run.len;
        Ok(())
    }

    /// Ends every mapping before `upto`: the one being walked, and any
    /// that had no runs at all.
    fn close_to(&mut self, upto: usize) -> Result<()> {
        while self.next < upto {
            let m = &self.p.mappings[self.next];
            if m.stored == 0 {
                // Nothing of it was ever written (guard pages, reservations):
                // no file contents at all, as the kernel dumps a mapping that
                // was never touched. Readers see zeros or the mapped file.
                self.headers
                    .push((self.next, header(m, m.start, m.end, m.start)));
            } else if self.addr != m.end {
                bail!(
                    "the page runs of mapping {:#x}-{:#x} stop at {:#x}",
                    m.start,
                    m.end,
                    self.addr
                );
            } else {
                self.headers
                    .push((self.next, header(m, self.seg, m.end, self.content)));
            }
            self.next += 1;
            let start = self.p.mappings.get(self.next).map_or(0, |m| m.start);
            (self.seg, self.content, self.addr) = (start, start, start);
        }
        Ok(())
    }
}

/// The header of the segment of `m` from `start` to `end` whose contents
/// end at `content`.
fn header(m: &Mapping, start: u64, end: u64, content: u64) -> SegmentHeader {
    let flags = (if m.prot.read { elf::pf::R } else { 0 })
        | (if m.prot.write { elf::pf::W } else { 0 })
        | (if m.prot.exec { elf::pf::X } else { 0 });
    SegmentHeader {
        vaddr: start,
        memsz: end - start,
        filesz: content - start,
        flags,
    }
}

impl Segments for ProcessSegments<'_> {
    fn count(&self) -> usize {
        self.headers.len()
    }

    fn header(&self, i: usize) -> SegmentHeader {
        self.headers[i].1
    }

    fn for_each_extent(&self, f: &mut dyn FnMut(usize, Extent) -> Result<()>) -> Result<()> {
        let mut si = 0;
        self.process.walk_runs(0, &mut |mi, m, at, run| {
            let ext = match run.source {
                PageSource::Zero => Extent::Zero(run.len),
                PageSource::Blob { blob, offset } => Extent::Copy {
                    source: blob,
                    offset,
                    len: run.len,
                },
                PageSource::Missing(_) => return Ok(std::ops::ControlFlow::Continue(())),
            };
            if m.stored == 0 {
                return Ok(std::ops::ControlFlow::Continue(()));
            }
            // The segment whose contents hold this run.
            while self
                .headers
                .get(si)
                .is_some_and(|&(hm, h)| hm < mi || (hm == mi && h.vaddr + h.filesz <= at))
            {
                si += 1;
            }
            match self.headers.get(si) {
                Some(&(hm, h))
                    if hm == mi && h.vaddr <= at && at + run.len <= h.vaddr + h.filesz => {}
                _ => bail!("the page runs at {at:#x} changed between walks"),
            }
            f(si, ext)?;
            Ok(std::ops::ControlFlow::Continue(()))
        })
    }
}

/// What writing one core produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreStats {
    /// Where the core is, under the directory as it was named.
    pub path: PathBuf,
    /// Apparent size.
    pub size: u64,
    /// Bytes of memory contents copied into it.
    pub copied: u64,
}

/// Writes one process's core: its notes and segments are laid out when it
/// is made (the page runs are walked once), and written by one of its
/// `write` methods (walked again while copying).
pub struct CoreWriter<'a> {
    p: &'a Process,
    notes: ProcessNotes<'a>,
    segments: ProcessSegments<'a>,
    cancel: Cancel,
}

impl<'a> CoreWriter<'a> {
    /// Lays out the core of `p`.
    pub fn new(p: &'a Process) -> crate::Result<CoreWriter<'a>> {
        CoreWriter::lay_out(p).map_err(Error::new)
    }

    fn lay_out(p: &'a Process) -> Result<CoreWriter<'a>> {
        if p.threads.is_empty() {
            bail!("pid {} has no threads", p.pid);
        }
        let segments = segments(p)?;
        tracing::debug!(
            pid = p.pid,
            threads = p.threads.len(),
            segments = segments.count(),
            "core laid out"
        );
        Ok(CoreWriter {
            p,
            notes: ProcessNotes::new(p),
            segments,
            cancel: Cancel::new(),
        })
    }

    /// Stops writing (and removes the temporary file of
    /// [`CoreWriter::write_into`]) once `cancel` is set.
    pub fn with_cancel(mut self, cancel: &Cancel) -> CoreWriter<'a> {
        self.cancel = cancel.clone();
        self
    }

    fn write(&self, out: &mut dyn elf::Output) -> Result<Written> {
        let cancellable = Cancellable {
            inner: &self.segments,
            cancel: &self.cancel,
        };
        let core = CoreFile {
            target: arch::elf_target(self.p.arch),
            page_size: self.p.page_size,
            notes: &self.notes,
            segments: &cancellable,
            sources: &self.p.blobs,
        };
        self.cancel.check()?;
        let written = elf::write_core(&core, out)?;
        self.cancel.check()?;
        Ok(written)
    }

    /// Writes the core into `file`, which must be empty: page data is
    /// copied with copy_file_range (shared with the pages files where the
    /// filesystem can), and pages of zeros are left as holes.
    pub fn write_to_file(&self, file: &File) -> crate::Result<Written> {
        self.write(&mut elf::FileOutput(file)).map_err(Error::new)
    }

    /// Writes the core into `out`, which must be empty: anything that can
    /// seek (a `Cursor<Vec<u8>>`, a file opened elsewhere). Pages of
    /// zeros are seeked over, so they read as zeros.
    pub fn write_to(&self, out: impl Write + Seek) -> crate::Result<Written> {
        self.write(&mut elf::SeekOutput::new(out))
            .map_err(Error::new)
    }

    /// Writes `core.<pid>` into directory `dir` (created if missing)
    /// through a temporary file that is renamed into place only when
    /// complete; an existing core is replaced only if `force` is set.
    pub fn write_into(&self, dir: impl AsRef<Path>, force: bool) -> crate::Result<CoreStats> {
        OutDir::create(dir.as_ref())
            .and_then(|dir| self.write_into_outdir(&dir, force))
            .map_err(Error::new)
    }

    /// [`CoreWriter::write_into`] an [`OutDir`].
    pub(crate) fn write_into_outdir(&self, dir: &OutDir, force: bool) -> Result<CoreStats> {
        let p = self.p;
        let name = format!("core.{}", p.pid);
        let path = dir.join(&name)?;
        if !force && path.symlink_metadata().is_ok() {
            return Err(fault(
                ErrorKind::Exists,
                format!("{} exists (use --force to replace it)", path.display()),
            ));
        }
        self.cancel.check()?;
        let start = std::time::Instant::now();
        let tmp = dir.temp_file(&name)?;
        let written = self
            .write(&mut elf::FileOutput(tmp.as_file()))
            .with_context(|| format!("writing {}", path.display()))?;
        dir.persist(tmp, &name, force)?;
        let path = dir.shown(&name);
        tracing::info!(
            pid = p.pid,
            path = %path.display(),
            size = written.size,
            copied = written.copied,
            ms = start.elapsed().as_millis() as u64,
            "wrote core"
        );
        Ok(CoreStats {
            path,
            size: written.size,
            copied: written.copied,
        })
    }
}

/// Writes `core.<pid>` for `p` into `dir` (created if missing), through a
/// temporary file that is renamed into place only when complete. An
/// existing core is replaced only if `force` is set.
pub fn write_core(p: &Process, dir: impl AsRef<Path>, force: bool) -> crate::Result<CoreStats> {
    CoreWriter::new(p)?.write_into(dir, force)
}

/// [`write_core`] into an [`OutDir`], stopping (and removing the
/// temporary file) once `cancel` is set.
pub(crate) fn write_core_in(
    p: &Process,
    dir: &OutDir,
    force: bool,
    cancel: &Cancel,
) -> Result<CoreStats> {
    cancel.check()?;
    CoreWriter::lay_out(p)?
        .with_cancel(cancel)
        .write_into_outdir(dir, force)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MappingKind, Missing, Prot, RunList};

    fn run(len: u64, source: PageSource) -> PageRun {
        PageRun { len, source }
    }

    fn mapping(start: u64, end: u64, stored: u64) -> Mapping {
        Mapping {
            start,
            end,
            prot: Prot {
                read: true,
                write: false,
                exec: true,
            },
            shared: false,
            kind: MappingKind::File,
            file: None,
            stored,
        }
    }

    fn process(mappings: Vec<Mapping>, runs: Vec<Vec<PageRun>>) -> Process {
        Process {
            pid: 1,
            ppid: 0,
            pgid: 1,
            sid: 1,
            comm: b"t".to_vec(),
            state: ProcessState::Running,
            flags: 0,
            uid: 0,
            gid: 0,
            arch: crate::model::Arch::X86_64,
            page_size: 4096,
            threads: Vec::new(),
            shared_pending: 0,
            auxv: Vec::new(),
            arg_range: (0, 0),
            env_range: (0, 0),
            exe: None,
            mappings,
            runs: std::sync::Arc::new(RunList(runs)),
            blobs: Vec::new(),
            warnings: Vec::new(),
            dumps: Vec::new(),
        }
    }

    fn extents(segs: &ProcessSegments) -> Vec<(usize, Extent)> {
        let mut out = Vec::new();
        segs.for_each_extent(&mut |i, e| {
            out.push((i, e));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn unknown_pages_end_a_segment_and_the_next_starts_after_them() {
        let blob = |offset| PageSource::Blob { blob: 0, offset };
        let missing = PageSource::Missing(Missing::FileBacked);
        let p = process(
            vec![
                mapping(0x10000, 0x16000, 0x2000),
                mapping(0x20000, 0x22000, 0),
                mapping(0x30000, 0x33000, 0x1000),
            ],
            vec![
                vec![
                    run(0x1000, blob(0)),
                    run(0x2000, missing),
                    run(0x1000, PageSource::Zero),
                    run(0x1000, blob(0x1000)),
                    run(0x1000, missing),
                ],
                vec![run(0x2000, PageSource::Zero)],
                vec![
                    run(0x1000, missing),
                    run(0x1000, blob(0x2000)),
                    run(0x1000, missing),
                ],
            ],
        );
        let segs = segments(&p).unwrap();
        let h: Vec<_> = (0..segs.count())
            .map(|i| {
                let h = segs.header(i);
                (h.vaddr, h.filesz, h.memsz)
            })
            .collect();
        assert_eq!(
            h,
            [
                (0x10000, 0x1000, 0x3000),
                (0x13000, 0x2000, 0x3000),
                // Never written: no contents, whatever its runs.
                (0x20000, 0, 0x2000),
                // Unknown pages first: an empty segment over them.
                (0x30000, 0, 0x1000),
                (0x31000, 0x1000, 0x2000),
            ]
        );
        assert_eq!(segs.header(0).flags, elf::pf::R | elf::pf::X);
        let copy = |offset| Extent::Copy {
            source: 0,
            offset,
            len: 0x1000,
        };
        assert_eq!(
            extents(&segs),
            [
                (0, copy(0)),
                (1, Extent::Zero(0x1000)),
                (1, copy(0x1000)),
                (4, copy(0x2000)),
            ]
        );
    }

    #[test]
    fn runs_that_do_not_cover_their_mapping_are_an_error() {
        let p = process(
            vec![mapping(0x10000, 0x13000, 0x1000)],
            vec![vec![
                run(0x1000, PageSource::Zero),
                run(0x1000, PageSource::Blob { blob: 0, offset: 0 }),
            ]],
        );
        let e = segments(&p).err().unwrap().to_string();
        assert!(
            e.contains("page runs of mapping 0x10000-0x13000 stop at 0x12000"),
            "{e}"
        );
    }
}
