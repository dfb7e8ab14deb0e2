//! ppc64le: CRIU's `thread_info_ppc64` → the kernel's powerpc core notes, in
//! its regset order: NT_PRSTATUS (user_pt_regs padded to 48 words),
//! NT_PRFPREG (fpr0-31, fpscr), NT_PPC_VMX (vr0-31, vscr, vrsave) and
//! NT_PPC_VSX (the low doublewords of vsr0-31), each where CRIU saved it.
//!
//! CRIU runs on little-endian ppc64 only, so images of this architecture are
//! ppc64le. Not written, because CRIU does not save them: NT_PPC_PPR,
//! NT_PPC_DSCR, NT_PPC_TAR and the PMU/EBB/key registers. The checkpointed
//! transactional-memory state of a thread inside a transaction is not
//! written either.

use anyhow::Result;

use super::{array, words};
use crate::elf::ElfTarget;
use crate::notes::{self, nt, Abi, Enc, Note};
use crate::proto;

/// ELF header values (EM_PPC64). e_flags is 2, ELF ABI v2, as the kernel
/// writes for an ELFv2 task (every ppc64le task).
pub const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 21,
    flags: 2,
};
/// Note layout.
pub const ABI: Abi = notes::LP64_LE;

/// Words of elf_gregset_t (ELF_NGREG).
pub const NGREG: usize = 48;
/// Index of nip in [`Regs::gp`] (pt_regs order: gpr0-31, nip, msr, orig_gpr3,
/// ctr, link, xer, ccr, softe, trap, dar, dsisr, result).
pub const NIP: usize = 32;

/// Register state of a ppc64le thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// elf_gregset_t: the user_pt_regs words, zero-padded to 48.
    pub gp: [u64; NGREG],
    /// fpr0-31 and fpscr.
    pub fp: Option<[u64; 33]>,
    /// vr0-31 and vscr as the kernel stores them (two words each), and vrsave.
    pub vmx: Option<([u64; 66], u32)>,
    /// The low doublewords of vsr0-31.
    pub vsx: Option<[u64; 32]>,
}

impl Regs {
    /// Decodes CRIU's saved ppc64 thread state.
    pub fn from_criu(ti: &proto::ThreadInfoPpc64) -> Result<Regs> {
        let g = &ti.gpregs;
        let gpr: [u64; 32] = array("gpregs.gpr", &g.gpr)?;
        let mut gp = [0; NGREG];
        gp[..32].copy_from_slice(&gpr);
        // softe, dar, dsisr and result are not in the images; they stay 0.
        let rest = [
            g.nip,
            g.msr,
            g.orig_gpr3,
            g.ctr,
            g.link,
            g.xer,
            g.ccr,
            0,
            g.trap,
        ];
        gp[NIP..NIP + rest.len()].copy_from_slice(&rest);
        let fp = match &ti.fpstate {
            Some(f) => Some(array("fpstate.fpregs", &f.fpregs)?),
            None => None,
        };
        let vmx = match &ti.vrstate {
            Some(v) => Some((array("vrstate.vrregs", &v.vrregs)?, v.vrsave)),
            None => None,
        };
        let vsx = match &ti.vsxstate {
            Some(v) => Some(array("vsxstate.vsxregs", &v.vsxregs)?),
            None => None,
        };
        Ok(Regs { gp, fp, vmx, vsx })
    }

    /// pr_reg: elf_gregset_t.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        words(ABI, &self.gp)
    }

    /// NT_PPC_VMX: 32 vector registers, vscr and vrsave, 16 bytes each.
    fn vmx_note(regs: &[u64; 66], vrsave: u32) -> Vec<u8> {
        let mut e = Enc::new(ABI);
        e.bytes(&words(ABI, regs)).u32(vrsave).zeros(12);
        e.finish()
    }

    /// The regset notes the kernel writes after NT_PRSTATUS.
    pub fn regset_notes(&self) -> Vec<Note> {
        let mut out = Vec::new();
        if let Some(fp) = &self.fp {
            out.push(Note::new(notes::CORE, nt::PRFPREG, words(ABI, fp)));
        }
        if let Some((regs, vrsave)) = &self.vmx {
            out.push(Note::new(
                notes::LINUX,
                nt::PPC_VMX,
                Self::vmx_note(regs, *vrsave),
            ));
        }
        if let Some(vsx) = &self.vsx {
            out.push(Note::new(notes::LINUX, nt::PPC_VSX, words(ABI, vsx)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> proto::ThreadInfoPpc64 {
        proto::ThreadInfoPpc64 {
            clear_tid_addr: 0,
            gpregs: proto::Ppc64Regs {
                gpr: (0..32).collect(),
                nip: 0x1000_0d0c,
                msr: 0x9000_0000_0280_f033,
                link: 0x1000_0d64,
                trap: 0xc00,
                ..Default::default()
            },
            fpstate: Some(proto::Ppc64Fpstate {
                fpregs: (0..33).collect(),
            }),
            vrstate: Some(proto::Ppc64Vrstate {
                vrregs: (0..66).collect(),
                vrsave: 0xffff_ffff,
            }),
            vsxstate: Some(proto::Ppc64Vsxstate {
                vsxregs: (0..32).collect(),
            }),
            tmstate: None,
        }
    }

    #[test]
    fn notes_have_the_kernel_sizes_and_order() {
        let r = Regs::from_criu(&sample()).unwrap();
        let pr = r.prstatus_regs();
        assert_eq!(pr.len(), 48 * 8); // ELF_NGREG longs
        assert_eq!(&pr[32 * 8..33 * 8], &0x1000_0d0cu64.to_le_bytes());
        assert_eq!(&pr[36 * 8..37 * 8], &0x1000_0d64u64.to_le_bytes()); // link
        assert_eq!(&pr[40 * 8..41 * 8], &0xc00u64.to_le_bytes()); // trap
        let n = r.regset_notes();
        let kinds: Vec<u32> = n.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![nt::PRFPREG, nt::PPC_VMX, nt::PPC_VSX]);
        assert_eq!(n[0].desc.len(), 33 * 8); // ELF_NFPREG doubles
        assert_eq!(n[1].desc.len(), 34 * 16); // 34 vector128
        assert_eq!(&n[1].desc[32 * 16..32 * 16 + 8], &64u64.to_le_bytes()); // vscr slot
        assert_eq!(&n[1].desc[33 * 16..33 * 16 + 4], &[0xff; 4]); // vrsave
        assert_eq!(n[2].desc.len(), 32 * 8); // ELF_NVSRHALFREG doubles
    }

    #[test]
    fn absent_vector_state_writes_no_note_and_bad_lengths_fail() {
        let mut ti = sample();
        ti.vrstate = None;
        ti.vsxstate = None;
        let n = Regs::from_criu(&ti).unwrap().regset_notes();
        assert_eq!(n.len(), 1);
        let mut ti = sample();
        ti.vrstate.as_mut().unwrap().vrregs.truncate(64);
        let e = Regs::from_criu(&ti).unwrap_err().to_string();
        assert!(e.contains("vrstate.vrregs holds 64"), "{e}");
    }
}
