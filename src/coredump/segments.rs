//! The PT_LOAD segments of a process's core, cut from its mappings as
//! their page runs go by.

use anyhow::{bail, Result};

use crate::elf::{self, Extent, SegmentHeader, Segments};
use crate::model::{Mapping, PageRun, PageSource, Process};

/// The PT_LOAD segments of a process: one per mapping, except that where
/// a mapping has pages of unknown contents the segment's file data stops
/// there (p_filesz < p_memsz) and a new segment starts after them, so
/// readers fall back to the mapped file. A mapping none of whose pages the
/// checkpoint holds gets no file data (p_filesz 0), as the kernel writes a
/// mapping that was never touched. Only the headers are held; the extents
/// are made from a second walk of the page runs as they are written.
pub(crate) struct ProcessSegments<'a> {
    process: &'a Process,
    /// Each segment's mapping and header.
    headers: Vec<(usize, SegmentHeader)>,
}

/// The segments of `p`, from one walk of its page runs.
pub(crate) fn segments(p: &Process) -> Result<ProcessSegments<'_>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ProcessState;
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
            dumped: stored,
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
            auxv: Vec::new(),
            arg_range: (0, 0),
            env_range: (0, 0),
            exe: None,
            mappings,
            runs: std::sync::Arc::new(RunList(runs)),
            blobs: Vec::new(),
            source: std::sync::Arc::new(crate::blobio::Files),
            warnings: Vec::new(),
            files: Vec::new(),
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
