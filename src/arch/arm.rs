//! 32-bit Arm (EABI): the notes of an Arm kernel's core, in its regset
//! order: ELF32 EM_ARM; NT_PRSTATUS with the 18 words of pt_regs (r0-r15,
//! cpsr, orig_r0); NT_ARM_VFP (user_vfp: d0-d31, fpscr); and NT_ARM_TLS
//! (TPIDRURO), which no Arm kernel writes into a core but gdb reads as
//! `tpidruro`: without it the thread pointer CRIU saved would be lost.
//!
//! Not written, because CRIU does not save it: NT_PRFPREG, the state of the
//! kernel's FPA emulator (struct user_fp), which EABI programs never use.
//! The kernel writes no e_flags into an Arm core.

use super::Regset;
use crate::elf::ElfTarget;
use crate::model::regs::arm::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (ELFCLASS32, EM_ARM).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: false,
    big_endian: false,
    machine: 40,
    flags: 0,
};
/// Note layout: 32-bit words, 16-bit uids in NT_PRPSINFO (Arm's
/// `__kernel_uid_t` is an unsigned short).
pub(crate) const ABI: Abi = notes::ILP32_LE_UID16;

/// pr_reg: pt_regs, 18 words.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    for &w in &r.gp {
        e.u32(w);
    }
    e.finish()
}

/// NT_ARM_VFP: struct user_vfp, d0-d31 then fpscr.
fn vfp(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    for &d in &r.vfp {
        e.u64(d);
    }
    e.u32(r.fpscr);
    e.finish()
}

/// The register sets written after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    let mut tls = Enc::new(ABI);
    tls.u32(r.tls);
    vec![
        Regset::new(nt::ARM_VFP, vfp(r)),
        Regset::new(nt::ARM_TLS, tls.finish()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::arm::{decode, sample};
    use crate::model::regs::arm::{CPSR, ORIG_R0, PC, SP};

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn notes_have_the_kernel_sizes() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 18 * 4); // ELF_NGREG: sizeof(struct pt_regs) / 4
        assert_eq!(u32_at(&pr, 0), 0x98000);
        assert_eq!(u32_at(&pr, 4 * 11), 11); // fp is r11
        assert_eq!(u32_at(&pr, 4 * SP), 0x407f_fca0);
        assert_eq!(u32_at(&pr, 4 * PC), 0x1053c);
        assert_eq!(u32_at(&pr, 4 * CPSR), 0x600f_0030);
        assert_eq!(u32_at(&pr, 4 * ORIG_R0), 0xffff_ffff);
        let st = notes::PrStatus::default();
        let d = notes::prstatus(ABI, &st, &pr, false);
        assert_eq!(d.len(), 148); // sizeof(struct elf_prstatus) on Arm
        assert_eq!(u32_at(&d, 72 + 4 * PC), 0x1053c); // pr_reg at 72

        let n = regsets(&r);
        let kinds: Vec<(u32, usize)> = n.iter().map(|n| (n.kind, n.desc.len())).collect();
        // ARM_VFPREGS_SIZE: 32 doubles and fpscr; TLS one word.
        assert_eq!(kinds, vec![(nt::ARM_VFP, 260), (nt::ARM_TLS, 4)]);
        assert_eq!(&n[0].desc[8..16], &0x4000_0000_0000_0001u64.to_le_bytes());
        assert_eq!(u32_at(&n[0].desc, 256), 0x0300_0010);
        assert_eq!(u32_at(&n[1].desc, 0), 0x76500);
    }
}
