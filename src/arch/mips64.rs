//! MIPS64 (n64, little-endian): the notes of a mips64 kernel's core of an
//! n64 task, in its regset order: NT_PRSTATUS (elf_gregset_t: 45 words,
//! r0-r31, lo, hi, cp0_epc, cp0_badvaddr, cp0_status, cp0_cause, then
//! unused words; r0, k0 and k1 written as zero, as mips_dump_regs64 does)
//! and NT_PRFPREG (elf_fpregset_t: f0-f31, then FCSR and FIR as 32-bit
//! words). The kernel writes no e_flags for an n64 core.
//!
//! Not written, because CRIU does not save them: NT_MIPS_DSP,
//! NT_MIPS_FP_MODE and NT_MIPS_MSA.

use super::{words, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::mips64::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (EM_MIPS).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 8,
    flags: 0,
};
/// Note layout: the generic 64-bit one, with MIPS's siginfo_t.
pub(crate) const ABI: Abi = notes::MIPS64_LE;

/// Words of elf_gregset_t (ELF_NGREG).
const NGREG: usize = 45;
/// r26 and r27 (k0, k1), the kernel's scratch registers.
const K0: usize = 26;
const K1: usize = 27;

/// pr_reg: elf_gregset_t as mips_dump_regs64 fills it.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    let mut g = [0u64; NGREG];
    g[..r.gp.len()].copy_from_slice(&r.gp);
    for i in [0, K0, K1] {
        g[i] = 0;
    }
    words(ABI, &g)
}

/// NT_PRFPREG: f0-f31, FCSR, FIR.
fn fpregset(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    e.bytes(&words(ABI, &r.fpr)).u32(r.fcsr).u32(r.fir);
    e.finish()
}

/// The register sets the kernel writes after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    vec![Regset::new(nt::PRFPREG, fpregset(r))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::mips64::{decode, sample};
    use crate::model::regs::mips64::{EPC, LO};

    fn u64_at(b: &[u8], i: usize) -> u64 {
        u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap())
    }

    #[test]
    fn notes_have_the_kernel_sizes() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 45 * 8); // sizeof(elf_gregset_t)
        assert_eq!(u64_at(&pr, 1), 1); // EF_R1
        assert_eq!((u64_at(&pr, 26), u64_at(&pr, 27)), (0, 0)); // k0, k1
        assert_eq!(u64_at(&pr, 29), 0x40007ffb60); // EF_R29, sp
        assert_eq!(u64_at(&pr, LO), 0xffff_ffff_cccd_47c0); // EF_LO = 32
        assert_eq!(u64_at(&pr, 33), 0xcccc); // EF_HI
        assert_eq!(u64_at(&pr, EPC), 0x1200049a8); // EF_CP0_EPC = 34
        assert_eq!(u64_at(&pr, 35), 0x35); // EF_CP0_BADVADDR
        assert_eq!(u64_at(&pr, 36), 0x2480_0030); // EF_CP0_STATUS
        assert_eq!(u64_at(&pr, 37), 0x37); // EF_CP0_CAUSE
        assert!(pr[38 * 8..].iter().all(|&b| b == 0));
        let st = notes::PrStatus::default();
        assert_eq!(notes::prstatus(ABI, &st, &pr, true).len(), 480);

        let n = regsets(&r);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, nt::PRFPREG);
        assert_eq!(n[0].desc.len(), 33 * 8); // sizeof(elf_fpregset_t)
        assert_eq!(u64_at(&n[0].desc, 31), 0x8877_6655_4433_2211);
        assert_eq!(&n[0].desc[256..264], &[0, 0, 0, 1, 0, 0, 0x7f, 0]);
    }
}
