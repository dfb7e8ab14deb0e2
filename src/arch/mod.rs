//! The notes the kernel writes for each architecture's register state, one
//! module per architecture: the ELF header values of its cores, the layout
//! of the shared note structures, NT_PRSTATUS's `pr_reg`, and the register
//! sets that follow NT_PRSTATUS, in the order of the architecture's regset
//! table. Register values come from the model ([`crate::model::regs`]);
//! nothing here knows CRIU.

pub(crate) mod aarch64;
pub(crate) mod arm;
pub(crate) mod i386;
pub(crate) mod loongarch64;
pub(crate) mod mips64;
pub(crate) mod ppc64;
pub(crate) mod riscv64;
pub(crate) mod s390x;
pub(crate) mod x86;
pub(crate) mod x86_64;

use crate::elf::ElfTarget;
use crate::model::{Arch, Registers};
use crate::notes::{self, nt, Abi, Enc, Note, PrStatus};

/// ELF header values of the cores of `arch`.
pub(crate) fn elf_target(arch: Arch) -> ElfTarget {
    match arch {
        Arch::X86_64 => x86_64::ELF,
        Arch::I386 => i386::ELF,
        Arch::Aarch64 => aarch64::ELF,
        Arch::Riscv64 => riscv64::ELF,
        Arch::Ppc64le => ppc64::ELF,
        Arch::S390x => s390x::ELF,
        Arch::Arm => arm::ELF,
        Arch::Mips64el => mips64::ELF,
        Arch::Loongarch64 => loongarch64::ELF,
    }
}

/// Layout of the shared note structures of `arch`.
pub(crate) fn abi(arch: Arch) -> Abi {
    match arch {
        Arch::X86_64 => x86_64::ABI,
        Arch::I386 => i386::ABI,
        Arch::Aarch64 => aarch64::ABI,
        Arch::Riscv64 => riscv64::ABI,
        Arch::Ppc64le => ppc64::ABI,
        Arch::S390x => s390x::ABI,
        Arch::Arm => arm::ABI,
        Arch::Mips64el => mips64::ABI,
        Arch::Loongarch64 => loongarch64::ABI,
    }
}

/// One register set the kernel writes after NT_PRSTATUS: its note type and
/// contents. Its owner name and what it means for NT_PRSTATUS are decided
/// in one place, [`thread_notes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Regset {
    /// Note type.
    pub kind: u32,
    /// Contents.
    pub desc: Vec<u8>,
}

impl Regset {
    pub(crate) fn new(kind: u32, desc: Vec<u8>) -> Regset {
        Regset { kind, desc }
    }
}

/// pr_reg of NT_PRSTATUS.
fn prstatus_regs(r: &Registers) -> Vec<u8> {
    match r {
        Registers::X86_64(r) => x86_64::prstatus_regs(r),
        Registers::I386(r) => i386::prstatus_regs(r),
        Registers::Aarch64(r) => aarch64::prstatus_regs(r),
        Registers::Riscv64(r) => riscv64::prstatus_regs(r),
        Registers::Ppc64le(r) => ppc64::prstatus_regs(r),
        Registers::S390x(r) => s390x::prstatus_regs(r),
        Registers::Arm(r) => arm::prstatus_regs(r),
        Registers::Mips64el(r) => mips64::prstatus_regs(r),
        Registers::Loongarch64(r) => loongarch64::prstatus_regs(r),
    }
}

/// The register sets written after NT_PRSTATUS, in the kernel's order.
fn regsets(r: &Registers, top: u64) -> Vec<Regset> {
    match r {
        Registers::X86_64(r) => x86_64::regsets(r),
        Registers::I386(r) => i386::regsets(r),
        Registers::Aarch64(r) => aarch64::regsets(r, top),
        Registers::Riscv64(r) => riscv64::regsets(r),
        Registers::Ppc64le(r) => ppc64::regsets(r),
        Registers::S390x(r) => s390x::regsets(r),
        Registers::Arm(r) => arm::regsets(r),
        Registers::Mips64el(r) => mips64::regsets(r),
        Registers::Loongarch64(r) => loongarch64::regsets(r),
    }
}

/// A thread's NT_PRSTATUS and the register-set notes that follow it. As
/// the kernel's fill_thread_core_info does, NT_PRFPREG is owned by "CORE"
/// and every other set by "LINUX", and pr_fpvalid says whether there is an
/// NT_PRFPREG. `top` is the end of the process's highest mapping (the
/// address-space width that pointer-authentication masks depend on).
pub(crate) fn thread_notes(
    abi: Abi,
    st: &PrStatus,
    regs: &Registers,
    top: u64,
) -> (Note, Vec<Note>) {
    let sets = regsets(regs, top);
    let fpvalid = sets.iter().any(|s| s.kind == nt::PRFPREG);
    let prstatus = Note::new(
        notes::CORE,
        nt::PRSTATUS,
        notes::prstatus(abi, st, &prstatus_regs(regs), fpvalid),
    );
    let sets = sets
        .into_iter()
        .map(|s| {
            let owner = if s.kind == nt::PRFPREG {
                notes::CORE
            } else {
                notes::LINUX
            };
            Note::new(owner, s.kind, s.desc)
        })
        .collect();
    (prstatus, sets)
}

/// 64-bit words in the byte order of `abi`.
pub(crate) fn words(abi: Abi, v: &[u64]) -> Vec<u8> {
    let mut e = Enc::new(abi);
    for &w in v {
        e.u64(w);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs;

    fn owners_and_fpvalid(r: &Registers) -> (Vec<(&'static str, u32)>, u32) {
        let (pr, sets) = thread_notes(abi(Arch::Ppc64le), &PrStatus::default(), r, 0);
        let fpvalid = u32::from_le_bytes(pr.desc[pr.desc.len() - 8..][..4].try_into().unwrap());
        (sets.iter().map(|n| (n.name, n.kind)).collect(), fpvalid)
    }

    #[test]
    fn pr_fpvalid_and_owners_follow_the_register_sets() {
        let r = Registers::Ppc64le(Box::new(
            regs::ppc64::decode(&regs::ppc64::sample()).unwrap(),
        ));
        let (sets, fpvalid) = owners_and_fpvalid(&r);
        assert_eq!(
            sets,
            [
                ("CORE", nt::PRFPREG),
                ("LINUX", nt::PPC_VMX),
                ("LINUX", nt::PPC_VSX)
            ]
        );
        assert_eq!(fpvalid, 1);
        // Without FP state there is no NT_PRFPREG, and pr_fpvalid says so.
        let mut ti = regs::ppc64::sample();
        ti.fpstate = None;
        let r = Registers::Ppc64le(Box::new(regs::ppc64::decode(&ti).unwrap()));
        let (sets, fpvalid) = owners_and_fpvalid(&r);
        assert_eq!(sets, [("LINUX", nt::PPC_VMX), ("LINUX", nt::PPC_VSX)]);
        assert_eq!(fpvalid, 0);
    }
}
