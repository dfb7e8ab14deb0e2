//! x86-64: CRIU's `thread_info_x86` → the kernel's x86-64 core notes
//! (NT_PRSTATUS with user_regs_struct, NT_PRFPREG with the FXSAVE area,
//! NT_X86_XSTATE in the XSAVE standard format sized for the saved XCR0).
//! 32-bit (compat) tasks are [`super::i386`].

use anyhow::{bail, Result};

use super::words;
use super::x86::FpState;
use crate::elf::ElfTarget;
use crate::notes::{self, nt, Abi, Note};
use crate::proto;

/// ELF header values.
pub const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 62,
    flags: 0,
};
/// Note layout.
pub const ABI: Abi = notes::LP64_LE;

/// Index of rax in [`Regs::gp`] (user_regs_struct order).
pub const RAX: usize = 10;
/// Index of orig_rax.
pub const ORIG_RAX: usize = 15;
/// Index of rip.
pub const RIP: usize = 16;
/// Index of rsp.
pub const RSP: usize = 19;
/// Index of fs_base.
pub const FS_BASE: usize = 21;

/// Register state of an x86-64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// General registers in user_regs_struct order (r15 … gs).
    pub gp: [u64; 27],
    /// x87, SSE and XSAVE state.
    pub fp: FpState,
}

/// Whether CRIU marked these registers as those of a 32-bit (compat) task.
pub fn is_compat(ti: &proto::ThreadInfoX86) -> bool {
    ti.gpregs.mode == Some(proto::X86RegsMode::Compat as i32)
}

impl Regs {
    /// Decodes CRIU's saved x86-64 thread state.
    pub fn from_criu(ti: &proto::ThreadInfoX86) -> Result<Regs> {
        if is_compat(ti) {
            bail!("the registers are those of a 32-bit (compat) task, not of an x86-64 one");
        }
        let g = &ti.gpregs;
        let gp = [
            g.r15, g.r14, g.r13, g.r12, g.bp, g.bx, g.r11, g.r10, g.r9, g.r8, g.ax, g.cx, g.dx,
            g.si, g.di, g.orig_ax, g.ip, g.cs, g.flags, g.sp, g.ss, g.fs_base, g.gs_base, g.ds,
            g.es, g.fs, g.gs,
        ];
        Ok(Regs {
            gp,
            fp: FpState::from_criu(&ti.fpregs)?,
        })
    }

    /// pr_reg: user_regs_struct.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        words(ABI, &self.gp)
    }

    /// NT_PRFPREG: the 512-byte user_i387_struct.
    pub fn fpregset(&self) -> Vec<u8> {
        self.fp.fxsave_area()
    }

    /// NT_X86_XSTATE: the XSAVE standard format, XCR0 in the software bytes.
    pub fn xstate(&self) -> Option<Vec<u8>> {
        self.fp.xstate()
    }

    /// The regset notes the kernel writes after NT_PRSTATUS.
    pub fn regset_notes(&self) -> Vec<Note> {
        let mut out = vec![Note::new(notes::CORE, nt::PRFPREG, self.fpregset())];
        if let Some(x) = self.xstate() {
            out.push(Note::new(notes::LINUX, nt::X86_XSTATE, x));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> proto::ThreadInfoX86 {
        proto::ThreadInfoX86 {
            clear_tid_addr: 0,
            gpregs: proto::X86Regs {
                r15: 15,
                ip: 0x401000,
                sp: 0x7ffc0000,
                mode: Some(1),
                ..Default::default()
            },
            fpregs: super::super::x86::sample_fpregs(),
            tls: vec![],
        }
    }

    #[test]
    fn decodes_and_writes_the_regsets() {
        let r = Regs::from_criu(&sample()).unwrap();
        assert_eq!(r.gp[0], 15);
        assert_eq!(r.gp[RIP], 0x401000);
        assert_eq!(r.prstatus_regs().len(), 27 * 8);
        assert_eq!(r.fpregset().len(), 512);
        assert_eq!(r.xstate().unwrap().len(), 2696);
        let kinds: Vec<u32> = r.regset_notes().iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![nt::PRFPREG, nt::X86_XSTATE]);
    }

    #[test]
    fn bad_state_is_an_error() {
        let mut ti = sample();
        ti.fpregs.xmm_space.truncate(10);
        let err = Regs::from_criu(&ti).unwrap_err().to_string();
        assert!(err.contains("xmm_space"), "{err}");
        let mut ti = sample();
        ti.gpregs.mode = Some(proto::X86RegsMode::Compat as i32);
        assert!(Regs::from_criu(&ti).is_err());
    }
}
