//! RISC-V 64: the kernel's riscv core notes: NT_PRSTATUS (user_regs_struct:
//! pc, x1-x31) and NT_PRFPREG (__riscv_d_ext_state: f0-f31, fcsr, padded to
//! 264 bytes as the kernel pads it). Vector state (NT_RISCV_VECTOR) is not
//! in CRIU's images.

use super::{words, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::riscv64::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (EM_RISCV). The kernel writes no ELF flags into cores
/// (riscv defines no ELF_CORE_EFLAGS); gdb takes the ABI from the
/// executable and the FP register size from NT_PRFPREG.
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 243,
    flags: 0,
};
/// Note layout.
pub(crate) const ABI: Abi = notes::LP64_LE;

/// pr_reg: user_regs_struct.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    words(ABI, &r.gp)
}

/// The register sets the kernel writes after NT_PRSTATUS: NT_PRFPREG, f0-f31,
/// fcsr and 4 bytes of padding.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    let mut e = Enc::new(ABI);
    e.bytes(&words(ABI, &r.f)).u32(r.fcsr).zeros(4);
    vec![Regset::new(nt::PRFPREG, e.finish())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::riscv64::{decode, sample};

    #[test]
    fn notes_have_the_kernel_sizes() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 32 * 8); // sizeof(struct user_regs_struct)
        assert_eq!(&pr[..8], &0x10734u64.to_le_bytes());
        assert_eq!(&pr[2 * 8..3 * 8], &0x7ff0u64.to_le_bytes());
        assert_eq!(&pr[4 * 8..5 * 8], &0x77u64.to_le_bytes());
        assert_eq!(&pr[31 * 8..], &31u64.to_le_bytes());
        let n = regsets(&r);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, nt::PRFPREG);
        assert_eq!(n[0].desc.len(), 264); // sizeof(struct __riscv_d_ext_state)
        assert_eq!(&n[0].desc[256..264], &[0xe0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
