//! From the process model to a core file: the notes in the order the
//! kernel writes them, PT_LOAD segments for every mapping, and the write
//! itself (to a temporary file, renamed into place when complete).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cancel::Cancel;
use crate::elf::{self, CoreFile, Extent, SegmentHeader, Segments, Source};
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
        let abi = p.arch.abi();
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
        let abi = p.arch.abi();
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
            f(&Note::new(
                notes::CORE,
                nt::PRSTATUS,
                notes::prstatus(abi, &st, &t.regs.prstatus_regs(), true),
            ))?;
            if i == 0 {
                self.process.iter().try_for_each(&mut *f)?;
            }
            t.regs.regset_notes().iter().try_for_each(&mut *f)?;
        }
        Ok(())
    }
}

/// Every note of a process's core, in the kernel's order, held at once
/// (the writer uses [`ProcessNotes`], which makes them thread by thread).
pub fn build_notes(p: &Process) -> Vec<Note> {
    let mut out = Vec::new();
    let notes = ProcessNotes::new(p);
    let _ = elf::Notes::for_each(&notes, &mut |n| {
        out.push(n.clone());
        Ok(())
    });
    out
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

/// The complete description of a process's core file.
pub fn core_file<'a>(
    p: &Process,
    notes: &'a ProcessNotes<'_>,
    segments: &'a ProcessSegments<'_>,
) -> Result<CoreFile<'a>> {
    if p.threads.is_empty() {
        bail!("pid {} has no threads", p.pid);
    }
    Ok(CoreFile {
        target: p.arch.elf(),
        page_size: p.page_size,
        notes,
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
    /// Where the core is, as its directory was named (see [`OutDir::shown`]).
    pub path: PathBuf,
    /// Apparent size.
    pub size: u64,
    /// Bytes of memory contents copied into it.
    pub copied: u64,
}

/// Writes `core.<pid>` for `p` into `dir` (created if missing), through a
/// temporary file that is renamed into place only when complete. An
/// existing core is replaced only if `force` is set.
pub fn write_core(p: &Process, dir: &Path, force: bool) -> Result<CoreStats> {
    write_core_in(p, &OutDir::create(dir)?, force, &Cancel::new())
}

/// [`write_core`] into an [`OutDir`], stopping (and removing the
/// temporary file) once `cancel` is set.
pub fn write_core_in(p: &Process, dir: &OutDir, force: bool, cancel: &Cancel) -> Result<CoreStats> {
    let name = format!("core.{}", p.pid);
    let path = dir.join(&name)?;
    if !force && path.symlink_metadata().is_ok() {
        bail!("{} exists (use --force to replace it)", path.display());
    }
    cancel.check()?;
    let start = std::time::Instant::now();
    let segments = segments(p)?;
    let cancellable = Cancellable {
        inner: &segments,
        cancel,
    };
    let notes = ProcessNotes::new(p);
    let mut core = core_file(p, &notes, &segments)?;
    core.segments = &cancellable;
    tracing::debug!(
        pid = p.pid,
        threads = p.threads.len(),
        segments = core.segments.count(),
        "core laid out"
    );
    let mut tmp = dir.temp_file(&name)?;
    let written = elf::write_core(&core, tmp.as_file_mut())
        .with_context(|| format!("writing {}", path.display()))?;
    cancel.check()?;
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
    fn gdb_commands_quote_every_path_and_use_the_root() {
        let core = Path::new("out dir/core.7");
        assert_eq!(
            gdb_command(core, Some("/usr/bin/app"), None),
            "gdb /usr/bin/app 'out dir/core.7'"
        );
        assert_eq!(
            gdb_command(core, Some("/tmp/x (deleted)"), None),
            "gdb -c 'out dir/core.7'"
        );
        assert_eq!(gdb_command(core, None, None), "gdb -c 'out dir/core.7'");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("it's root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/app"), b"").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", root.join("abs")).unwrap();
        let r = root.display().to_string();
        let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        assert_eq!(
            gdb_command(core, Some("/usr/bin/app"), Some(&root)),
            format!(
                "gdb -iex {} {} 'out dir/core.7'",
                q(&format!("set sysroot {r}")),
                q(&format!("{r}/usr/bin/app"))
            )
        );
        // Through a relative link in the root: the path as given.
        assert!(
            gdb_command(core, Some("/bin/app"), Some(&root)).contains(&q(&format!("{r}/bin/app")))
        );
        // Through an absolute one, which the host would resolve outside
        // the root: the file it resolves to inside.
        let canon = std::fs::canonicalize(root.join("usr/bin/app")).unwrap();
        assert!(gdb_command(core, Some("/abs/app"), Some(&root))
            .contains(&q(&canon.display().to_string())));
        // Not in the root: no executable rather than a wrong one.
        assert!(gdb_command(core, Some("/opt/none"), Some(&root)).ends_with(" -c 'out dir/core.7'"));
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

/// Options for converting the processes of a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Only these processes (all if empty).
    pub pids: Vec<u32>,
    /// Root filesystem for unmodified file-backed pages.
    pub root: Option<PathBuf>,
    /// Replace existing cores.
    pub force: bool,
    /// Stops the conversion between processes and extents once set.
    pub cancel: Cancel,
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
        /// The shell command that opens it in gdb ([`gdb_command`]).
        gdb_command: String,
    },
    /// A zombie: nothing to write.
    Zombie {
        /// How it ended.
        exit: crate::criu::ExitStatus,
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
/// an error that concerns the whole input (or a cancellation) is returned.
pub fn convert_input(
    input: &crate::input::Input,
    out_dir: &OutDir,
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
    let root_dir = opts.root.as_deref();
    let mut out = Vec::with_capacity(pids.len());
    for pid in pids {
        opts.cancel.check()?;
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
            Ok(crate::criu::Loaded::Zombie { comm, exit, .. }) => {
                r.comm = Some(crate::model::display_bytes(&comm).into_owned());
                Outcome::Zombie { exit }
            }
            Ok(crate::criu::Loaded::Process(p)) => {
                r.comm = Some(crate::model::display_bytes(&p.comm).into_owned());
                r.warnings = p.warnings.clone();
                match write_core_in(&p, out_dir, opts.force, &opts.cancel) {
                    Ok(stats) => Outcome::Written {
                        // A command line is text: an executable whose path is
                        // not UTF-8 is left for gdb to find from the core.
                        gdb_command: gdb_command(
                            &stats.path,
                            p.exe.as_deref().and_then(|e| std::str::from_utf8(e).ok()),
                            root_dir,
                        ),
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

/// The shell command that opens `core` in gdb, its words quoted for a POSIX
/// shell (it may hold anything a checkpoint names: escape it before a
/// terminal). With a root filesystem the executable is taken from there,
/// and gdb is told to look there for the shared libraries with `-iex`, so
/// that `set sysroot` is in force before the executable and the core are
/// loaded (set later, gdb cannot place a position-independent program whose
/// first page a core does not hold). Without one, the executable is named
/// by the path the process had.
pub fn gdb_command(core: &Path, exe: Option<&str>, root: Option<&Path>) -> String {
    use crate::text::shell_quote;
    // A deleted executable is not at its path any more.
    let exe = exe.filter(|e| !e.ends_with(" (deleted)"));
    let mut words = vec!["gdb".to_string()];
    let exe = match root {
        Some(root) => {
            words.push("-iex".into());
            words.push(shell_quote(&format!("set sysroot {}", root.display())).into_owned());
            exe.and_then(|e| exe_in_root(root, e))
        }
        None => exe.map(PathBuf::from),
    };
    match exe {
        Some(e) => words.push(shell_quote(&e.to_string_lossy()).into_owned()),
        None => words.push("-c".into()),
    }
    words.push(shell_quote(&core.to_string_lossy()).into_owned());
    words.join(" ")
}

/// Where executable `exe` is under `root`: `root/exe` as given where that
/// is the file, else the file it resolves to inside the root.
fn exe_in_root(root: &Path, exe: &str) -> Option<PathBuf> {
    let fs = crate::rootfs::RootFs::new(root).ok()?;
    let (found, _) = fs.resolve(exe).ok()??;
    let literal = root.join(exe.trim_start_matches('/'));
    if std::fs::canonicalize(&literal).is_ok_and(|c| c == found) {
        Some(literal)
    } else {
        Some(found)
    }
}
