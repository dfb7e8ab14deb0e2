//! LoongArch64: the notes of a LoongArch kernel's core, in its regset
//! order: NT_PRSTATUS (user_pt_regs: r0-r31, orig_a0, csr_era, csr_badv,
//! ten reserved words) and NT_PRFPREG (user_fp_state: f0-f31, fcc, fcsr,
//! padded to elf_fpregset_t's 34 words). The kernel writes no e_flags into
//! a LoongArch core.
//!
//! Not written, because CRIU does not save them: NT_LOONGARCH_CPUCFG,
//! NT_LOONGARCH_LSX, NT_LOONGARCH_LASX, NT_LOONGARCH_LBT and the hardware
//! breakpoint sets. orig_a0 and csr_badv, which CRIU does not save either,
//! are 0.

use super::{words, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::loongarch64::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (EM_LOONGARCH).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 258,
    flags: 0,
};
/// Note layout.
pub(crate) const ABI: Abi = notes::LP64_LE;

/// Words of elf_gregset_t (ELF_NGREG).
const NGREG: usize = 45;
/// Index of csr_era in user_pt_regs.
const ERA: usize = 33;

/// pr_reg: user_pt_regs.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    let mut g = [0u64; NGREG];
    g[..32].copy_from_slice(&r.gp);
    g[ERA] = r.pc;
    words(ABI, &g)
}

/// NT_PRFPREG: f0-f31, fcc, fcsr and 4 bytes of padding.
fn fpregset(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    e.bytes(&words(ABI, &r.fpr)).u64(r.fcc).u32(r.fcsr).zeros(4);
    e.finish()
}

/// The register sets the kernel writes after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    vec![Regset::new(nt::PRFPREG, fpregset(r))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::loongarch64::{decode, sample};

    fn u64_at(b: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap())
    }

    #[test]
    fn notes_have_the_kernel_sizes() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 45 * 8); // sizeof(struct user_pt_regs)
        assert_eq!((u64_at(&pr, 0), u64_at(&pr, 2)), (0x100, 0x102));
        assert_eq!(u64_at(&pr, 31), 0x11f);
        assert_eq!(u64_at(&pr, 32), 0); // orig_a0
        assert_eq!(u64_at(&pr, 33), 0x101_2900); // csr_era
        assert!(pr[34 * 8..].iter().all(|&b| b == 0)); // csr_badv, reserved
        let st = notes::PrStatus::default();
        assert_eq!(notes::prstatus(ABI, &st, &pr, true).len(), 480);

        let n = regsets(&r);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, nt::PRFPREG);
        assert_eq!(n[0].desc.len(), 34 * 8); // sizeof(elf_fpregset_t)
        assert_eq!(u64_at(&n[0].desc, 31), 0x4000_0000_0000_001f);
        assert_eq!(u64_at(&n[0].desc, 32), 0x0100_0000_0000_0001); // fcc
        assert_eq!(&n[0].desc[264..272], &[0, 0, 0, 3, 0, 0, 0, 0]); // fcsr
    }
}
