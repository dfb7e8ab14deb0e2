//! The notes of a process's core, in the order the kernel writes them.

use anyhow::Result;

use super::{nt, FileMapping, Note, PrPsInfo, PrStatus};
use crate::arch;
use crate::elf;
use crate::model::{Process, ProcessState};
use crate::notes;

/// The notes of a process's core, in the kernel's order: each thread's
/// NT_PRSTATUS; after the first one NT_PRPSINFO, NT_SIGINFO, NT_AUXV and
/// NT_FILE; then that thread's other register sets. Only the process-wide
/// notes are held; each thread's are made when they are asked for, so a
/// process with many threads never has all their notes in memory.
pub(crate) struct ProcessNotes<'a> {
    p: &'a Process,
    /// NT_PRPSINFO, NT_SIGINFO, NT_AUXV and NT_FILE.
    process: Vec<Note>,
}

impl<'a> ProcessNotes<'a> {
    /// The notes of `p` (the process-wide ones made now).
    pub(crate) fn new(p: &'a Process) -> ProcessNotes<'a> {
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
        let top = p.mappings.iter().map(|m| m.end).max().unwrap_or(0);
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
            let (prstatus, regsets) = arch::thread_notes(abi, &st, &t.regs, top);
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
fn psinfo(p: &Process) -> PrPsInfo {
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
fn file_mappings(p: &Process) -> Vec<FileMapping> {
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
