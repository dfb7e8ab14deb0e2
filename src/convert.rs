//! From the process model to a core file: the notes in the order the
//! kernel writes them, PT_LOAD segments for every mapping, and the write
//! itself (to a temporary file, renamed into place when complete).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::elf::{self, CoreFile, Extent, SegmentHeader, Segments, Source};
use crate::model::{Mapping, PageSource, Process, ProcessState};
use crate::notes::{self, nt, FileMapping, Note, PrPsInfo, PrStatus};

/// The notes of a process's core, in the kernel's order: each thread's
/// NT_PRSTATUS; after the first one NT_PRPSINFO, NT_SIGINFO, NT_AUXV and
/// NT_FILE; then that thread's other register sets.
pub fn build_notes(p: &Process) -> Vec<Note> {
    let abi = p.arch.abi();
    let mut out = Vec::new();
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
        out.push(Note::new(
            notes::CORE,
            nt::PRSTATUS,
            notes::prstatus(abi, &st, &t.regs.prstatus_regs(), true),
        ));
        if i == 0 {
            out.push(Note::new(
                notes::CORE,
                nt::PRPSINFO,
                notes::prpsinfo(abi, &psinfo(p)),
            ));
            out.push(Note::new(notes::CORE, nt::SIGINFO, siginfo(p)));
            out.push(Note::new(notes::CORE, nt::AUXV, notes::auxv(abi, &p.auxv)));
            let files = file_mappings(p);
            if !files.is_empty() {
                out.push(Note::new(
                    notes::CORE,
                    nt::FILE,
                    notes::file_note(abi, p.page_size, &files),
                ));
            }
        }
        out.extend(t.regs.regset_notes());
    }
    out
}

/// NT_PRPSINFO's fields.
pub fn psinfo(p: &Process) -> PrPsInfo {
    let mut psargs = p.psargs(notes::PSARGS_LEN);
    if psargs.is_empty() {
        psargs = p.comm.as_bytes().to_vec();
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
        fname: p.comm.as_bytes().to_vec(),
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
    notes::siginfo(p.arch.abi(), signo, notes::SI_KERNEL)
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
/// mapping that was never touched. Held as an index into the
/// mappings' page runs; extents are made from the runs as they are written.
pub struct ProcessSegments<'a> {
    mappings: &'a [Mapping],
    index: Vec<SegmentIndex>,
}

/// Segment = runs `first..end` of mapping `mapping`, whose file contents
/// are runs `first..content` (the rest have unknown contents). Headers are
/// summed from the runs when asked for, to keep this small.
#[derive(Debug, Clone, Copy)]
struct SegmentIndex {
    mapping: u32,
    first: u32,
    content: u32,
    end: u32,
}

/// The segments of `p`.
pub fn segments(p: &Process) -> ProcessSegments<'_> {
    segments_of(&p.mappings)
}

fn segments_of(mappings: &[Mapping]) -> ProcessSegments<'_> {
    let mut index = Vec::with_capacity(mappings.len());
    for (mi, m) in mappings.iter().enumerate() {
        let mapping = mi as u32;
        if m.stored_bytes() == 0 {
            // Nothing of it was ever written (guard pages, reservations):
            // no file contents at all, as the kernel dumps a mapping that
            // was never touched. Readers see zeros or the mapped file.
            let end = m.runs.len() as u32;
            index.push(SegmentIndex {
                mapping,
                first: 0,
                content: 0,
                end,
            });
            continue;
        }
        let mut seg = SegmentIndex {
            mapping,
            first: 0,
            content: 0,
            end: 0,
        };
        for (ri, run) in m.runs.iter().enumerate() {
            let ri = ri as u32;
            let missing = matches!(run.source, PageSource::Missing(_));
            if !missing && seg.content < seg.end {
                // Contents again after unknown pages: a new segment.
                index.push(seg);
                seg = SegmentIndex {
                    mapping,
                    first: ri,
                    content: ri,
                    end: ri,
                };
            }
            if !missing {
                seg.content = ri + 1;
            }
            seg.end = ri + 1;
        }
        index.push(seg);
    }
    ProcessSegments { mappings, index }
}

impl Segments for ProcessSegments<'_> {
    fn count(&self) -> usize {
        self.index.len()
    }

    fn header(&self, i: usize) -> SegmentHeader {
        let s = self.index[i];
        let m = &self.mappings[s.mapping as usize];
        let len = |r: std::ops::Range<u32>| -> u64 {
            m.runs[r.start as usize..r.end as usize]
                .iter()
                .map(|r| r.len)
                .sum()
        };
        let flags = (if m.prot.read { elf::pf::R } else { 0 })
            | (if m.prot.write { elf::pf::W } else { 0 })
            | (if m.prot.exec { elf::pf::X } else { 0 });
        SegmentHeader {
            vaddr: m.start + len(0..s.first),
            memsz: if s.end == s.first {
                m.len()
            } else {
                len(s.first..s.end)
            },
            filesz: len(s.first..s.content),
            flags,
        }
    }

    fn for_each_extent(&self, i: usize, f: &mut dyn FnMut(Extent) -> Result<()>) -> Result<()> {
        let s = self.index[i];
        let runs = &self.mappings[s.mapping as usize].runs[s.first as usize..s.content as usize];
        for run in runs {
            f(match run.source {
                PageSource::Zero => Extent::Zero(run.len),
                PageSource::Blob { blob, offset } => Extent::Copy {
                    source: blob,
                    offset,
                    len: run.len,
                },
                PageSource::Missing(_) => bail!("a segment's contents include unknown pages"),
            })?;
        }
        Ok(())
    }
}

/// The complete description of a process's core file.
pub fn core_file<'a>(p: &Process, segments: &'a ProcessSegments<'_>) -> Result<CoreFile<'a>> {
    if p.threads.is_empty() {
        bail!("pid {} has no threads", p.pid);
    }
    Ok(CoreFile {
        target: p.arch.elf(),
        page_size: p.page_size,
        notes: build_notes(p),
        segments,
        sources: p
            .blobs
            .iter()
            .map(|b| Source {
                label: b.label.clone(),
                path: b.path.clone(),
                offset: b.offset,
                len: b.len,
            })
            .collect(),
    })
}

/// What writing one core produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreStats {
    /// Where the core is.
    pub path: PathBuf,
    /// Apparent size.
    pub size: u64,
    /// Bytes of memory contents copied into it.
    pub copied: u64,
}

/// Writes `core.<pid>` for `p` into `dir`, through a temporary file that is
/// renamed into place only when complete. An existing core is replaced only
/// if `force` is set.
pub fn write_core(p: &Process, dir: &Path, force: bool) -> Result<CoreStats> {
    let path = dir.join(format!("core.{}", p.pid));
    if !force && path.symlink_metadata().is_ok() {
        bail!("{} exists (use --force to replace it)", path.display());
    }
    let start = std::time::Instant::now();
    let segments = segments(p);
    let core = core_file(p, &segments)?;
    tracing::debug!(
        pid = p.pid,
        notes = core.notes.len(),
        segments = core.segments.count(),
        "core laid out"
    );
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".core.{}.", p.pid))
        .suffix(".partial")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    let written = elf::write_core(&core, tmp.as_file_mut())
        .with_context(|| format!("writing {}", path.display()))?;
    if force {
        tmp.persist(&path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot rename into {}", path.display()))?;
    } else {
        tmp.persist_noclobber(&path)
            .map_err(|e| e.error)
            .with_context(|| {
                format!(
                    "cannot rename into {} (use --force to replace it)",
                    path.display()
                )
            })?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mapping, MappingKind, Missing, PageRun, Prot};

    fn run(len: u64, source: PageSource) -> PageRun {
        PageRun { len, source }
    }

    #[test]
    fn unknown_pages_end_a_segment_and_the_next_starts_after_them() {
        let m = Mapping {
            start: 0x10000,
            end: 0x16000,
            prot: Prot {
                read: true,
                write: false,
                exec: true,
            },
            shared: false,
            kind: MappingKind::File,
            file: None,
            runs: vec![
                run(0x1000, PageSource::Blob { blob: 0, offset: 0 }),
                run(0x2000, PageSource::Missing(Missing::FileBacked)),
                run(0x1000, PageSource::Zero),
                run(
                    0x1000,
                    PageSource::Blob {
                        blob: 0,
                        offset: 0x1000,
                    },
                ),
                run(0x1000, PageSource::Missing(Missing::FileBacked)),
            ],
        };
        let mappings = [m];
        let segs = segments_of(&mappings);
        assert_eq!(segs.count(), 2);
        let (a, b) = (segs.header(0), segs.header(1));
        assert_eq!((a.vaddr, a.filesz, a.memsz), (0x10000, 0x1000, 0x3000));
        assert_eq!((b.vaddr, b.filesz, b.memsz), (0x13000, 0x2000, 0x3000));
        assert_eq!(a.flags, elf::pf::R | elf::pf::X);
        let mut extents = Vec::new();
        segs.for_each_extent(1, &mut |e| {
            extents.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            extents,
            vec![
                Extent::Zero(0x1000),
                Extent::Copy {
                    source: 0,
                    offset: 0x1000,
                    len: 0x1000
                }
            ]
        );
    }
}

/// Options for converting the processes of a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Only these processes (all if empty).
    pub pids: Vec<u32>,
    /// Root filesystem for unmodified file-backed pages.
    pub root: Option<PathBuf>,
    /// Replace existing cores.
    pub force: bool,
}

/// What became of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A core was written.
    Written {
        /// The core.
        stats: CoreStats,
        /// Number of threads in it.
        threads: usize,
    },
    /// A zombie: nothing to write.
    Zombie {
        /// Its exit code.
        exit_code: u32,
    },
    /// Conversion failed.
    Failed(String),
}

/// One process's conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Its command name, where known.
    pub comm: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Warnings from decoding.
    pub warnings: Vec<String>,
}

/// Writes the cores of `input`'s processes into `out_dir`, calling `report`
/// as each process is done. A process that fails does not stop the others;
/// an error that concerns the whole input is returned.
pub fn convert_input(
    input: &crate::input::Input,
    out_dir: &Path,
    opts: &ConvertOptions,
    report: &mut dyn FnMut(&ProcessReport),
) -> Result<Vec<ProcessReport>> {
    let ckpt = &input.checkpoint;
    let all = ckpt.pids();
    for pid in &opts.pids {
        if !all.contains(pid) {
            bail!("pid {pid} is not in the checkpoint (it has {all:?})");
        }
    }
    let pids = if opts.pids.is_empty() {
        all
    } else {
        opts.pids.clone()
    };
    let roots = input.file_roots(opts.root.as_deref())?;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("{}: cannot create", out_dir.display()))?;
    let mut out = Vec::with_capacity(pids.len());
    for pid in pids {
        let mut r = ProcessReport {
            pid,
            comm: None,
            outcome: Outcome::Failed(String::new()),
            warnings: Vec::new(),
        };
        let loaded = ckpt.load(
            pid,
            crate::criu::LoadOptions {
                root: roots.as_ref(),
            },
        );
        r.outcome = match loaded {
            Err(e) => Outcome::Failed(format!("{e:#}")),
            Ok(crate::criu::Loaded::Zombie { exit_code, .. }) => Outcome::Zombie { exit_code },
            Ok(crate::criu::Loaded::Process(p)) => {
                r.comm = Some(p.comm.clone());
                r.warnings = p.warnings.clone();
                match write_core(&p, out_dir, opts.force) {
                    Ok(stats) => Outcome::Written {
                        stats,
                        threads: p.threads.len(),
                    },
                    Err(e) => Outcome::Failed(format!("{e:#}")),
                }
            }
        };
        report(&r);
        out.push(r);
    }
    Ok(out)
}
