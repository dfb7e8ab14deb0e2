//! x86-64: the kernel's core notes for a 64-bit task — NT_PRSTATUS with
//! user_regs_struct, NT_PRFPREG with the FXSAVE area, NT_X86_XSTATE in the
//! XSAVE standard format sized for the saved XCR0. 32-bit (compat) tasks
//! are [`super::i386`].

use super::{words, x86, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::x86_64::Regs;
use crate::notes::{self, nt, Abi};

/// ELF header values (EM_X86_64).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 62,
    flags: 0,
};
/// Note layout.
pub(crate) const ABI: Abi = notes::LP64_LE;

/// pr_reg: user_regs_struct.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    words(ABI, &r.gp)
}

/// The register sets the kernel writes after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    let mut out = vec![Regset::new(nt::PRFPREG, x86::fxsave_area(&r.fp))];
    if let Some(x) = x86::xstate(&r.fp) {
        out.push(Regset::new(nt::X86_XSTATE, x));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::x86_64::{decode, sample};

    #[test]
    fn writes_the_regsets() {
        let r = decode(&sample()).unwrap();
        assert_eq!(prstatus_regs(&r).len(), 27 * 8);
        let sets: Vec<(u32, usize)> = regsets(&r).iter().map(|s| (s.kind, s.desc.len())).collect();
        assert_eq!(sets, [(nt::PRFPREG, 512), (nt::X86_XSTATE, 2696)]);
    }
}
