//! ppc64le: the kernel's powerpc core notes, in its regset order:
//! NT_PRSTATUS (user_pt_regs padded to 48 words), NT_PRFPREG (fpr0-31,
//! fpscr), NT_PPC_VMX (vr0-31, vscr, vrsave) and NT_PPC_VSX (the low
//! doublewords of vsr0-31), each where it was saved.
//!
//! Not written, because CRIU does not save them: NT_PPC_PPR, NT_PPC_DSCR,
//! NT_PPC_TAR and the PMU/EBB/key registers. The checkpointed
//! transactional-memory state of a thread inside a transaction is not
//! written either.

use super::{words, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::ppc64::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (EM_PPC64). e_flags is 2, ELF ABI v2, as the kernel
/// writes for an ELFv2 task (every ppc64le task).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 21,
    flags: 2,
};
/// Note layout.
pub(crate) const ABI: Abi = notes::LP64_LE;

/// pr_reg: elf_gregset_t.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    words(ABI, &r.gp)
}

/// NT_PPC_VMX: 32 vector registers, vscr and vrsave, 16 bytes each.
fn vmx(regs: &[u64; 66], vrsave: u32) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    e.bytes(&words(ABI, regs)).u32(vrsave).zeros(12);
    e.finish()
}

/// The register sets the kernel writes after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    let mut out = Vec::new();
    if let Some(fp) = &r.fp {
        out.push(Regset::new(nt::PRFPREG, words(ABI, fp)));
    }
    if let Some((regs, vrsave)) = &r.vmx {
        out.push(Regset::new(nt::PPC_VMX, vmx(regs, *vrsave)));
    }
    if let Some(vsx) = &r.vsx {
        out.push(Regset::new(nt::PPC_VSX, words(ABI, vsx)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::ppc64::{decode, sample};

    #[test]
    fn notes_have_the_kernel_sizes_and_order() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 48 * 8); // ELF_NGREG longs
        assert_eq!(&pr[32 * 8..33 * 8], &0x1000_0d0cu64.to_le_bytes());
        assert_eq!(&pr[36 * 8..37 * 8], &0x1000_0d64u64.to_le_bytes()); // link
        assert_eq!(&pr[40 * 8..41 * 8], &0xc00u64.to_le_bytes()); // trap
        let n = regsets(&r);
        let kinds: Vec<u32> = n.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![nt::PRFPREG, nt::PPC_VMX, nt::PPC_VSX]);
        assert_eq!(n[0].desc.len(), 33 * 8); // ELF_NFPREG doubles
        assert_eq!(n[1].desc.len(), 34 * 16); // 34 vector128
        assert_eq!(&n[1].desc[32 * 16..32 * 16 + 8], &64u64.to_le_bytes()); // vscr slot
        assert_eq!(&n[1].desc[33 * 16..33 * 16 + 4], &[0xff; 4]); // vrsave
        assert_eq!(n[2].desc.len(), 32 * 8); // ELF_NVSRHALFREG doubles
    }

    #[test]
    fn absent_vector_state_writes_no_note() {
        let mut ti = sample();
        ti.vrstate = None;
        ti.vsxstate = None;
        assert_eq!(regsets(&decode(&ti).unwrap()).len(), 1);
    }
}
