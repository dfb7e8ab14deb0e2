//! RISC-V 64: CRIU's `thread_info_riscv64` → the kernel's riscv core notes:
//! NT_PRSTATUS (user_regs_struct: pc, x1-x31) and NT_PRFPREG
//! (__riscv_d_ext_state: f0-f31, fcsr, padded to 264 bytes as the kernel
//! pads it). The thread pointer is x4 (tp), part of the general registers.
//! Vector state (NT_RISCV_VECTOR) is not in CRIU's images.

use anyhow::{Context, Result};

use super::{array, words};
use crate::elf::ElfTarget;
use crate::notes::{self, nt, Abi, Enc, Note};
use crate::proto;

/// ELF header values (EM_RISCV). The kernel writes no ELF flags into cores
/// (riscv defines no ELF_CORE_EFLAGS); gdb takes the ABI from the
/// executable and the FP register size from NT_PRFPREG.
pub const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 243,
    flags: 0,
};
/// Note layout.
pub const ABI: Abi = notes::LP64_LE;

/// Index of pc in [`Regs::gp`] (user_regs_struct order: pc, ra, sp, gp, tp, ...).
pub const PC: usize = 0;
/// Index of sp.
pub const SP: usize = 2;

/// Register state of a RISC-V 64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// pc, then x1-x31.
    pub gp: [u64; 32],
    /// f0-f31 (as 64-bit D-extension registers).
    pub f: [u64; 32],
    /// Floating-point control and status.
    pub fcsr: u32,
}

impl Regs {
    /// Decodes CRIU's saved RISC-V thread state.
    pub fn from_criu(ti: &proto::ThreadInfoRiscv64) -> Result<Regs> {
        let g = &ti.gpregs;
        let gp = [
            g.pc, g.ra, g.sp, g.gp, g.tp, g.t0, g.t1, g.t2, g.s0, g.s1, g.a0, g.a1, g.a2, g.a3,
            g.a4, g.a5, g.a6, g.a7, g.s2, g.s3, g.s4, g.s5, g.s6, g.s7, g.s8, g.s9, g.s10, g.s11,
            g.t3, g.t4, g.t5, g.t6,
        ];
        Ok(Regs {
            gp,
            f: array("fpsimd.f", &ti.fpsimd.f).context("fpsimd")?,
            fcsr: ti.fpsimd.fcsr,
        })
    }

    /// pr_reg: user_regs_struct.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        words(ABI, &self.gp)
    }

    /// NT_PRFPREG: f0-f31, fcsr and 4 bytes of padding.
    pub fn fpregset(&self) -> Vec<u8> {
        let mut e = Enc::new(ABI);
        e.bytes(&words(ABI, &self.f)).u32(self.fcsr).zeros(4);
        e.finish()
    }

    /// The regset notes the kernel writes after NT_PRSTATUS.
    pub fn regset_notes(&self) -> Vec<Note> {
        vec![Note::new(notes::CORE, nt::PRFPREG, self.fpregset())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> proto::ThreadInfoRiscv64 {
        proto::ThreadInfoRiscv64 {
            clear_tid_addr: 0,
            tls: 0x77,
            gpregs: proto::Riscv64Regs {
                pc: 0x10734,
                ra: 1,
                sp: 0x7ff0,
                tp: 0x77,
                t6: 31,
                ..Default::default()
            },
            fpsimd: proto::Riscv64DExt {
                f: (0..32).map(|i| 0x4000_0000_0000_0000 + i).collect(),
                fcsr: 0xe0,
            },
        }
    }

    #[test]
    fn notes_have_the_kernel_sizes() {
        let r = Regs::from_criu(&sample()).unwrap();
        let pr = r.prstatus_regs();
        assert_eq!(pr.len(), 32 * 8); // sizeof(struct user_regs_struct)
        assert_eq!(&pr[..8], &0x10734u64.to_le_bytes());
        assert_eq!(&pr[2 * 8..3 * 8], &0x7ff0u64.to_le_bytes());
        assert_eq!(&pr[4 * 8..5 * 8], &0x77u64.to_le_bytes());
        assert_eq!(&pr[31 * 8..], &31u64.to_le_bytes());
        let n = r.regset_notes();
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].name, n[0].kind), (notes::CORE, nt::PRFPREG));
        assert_eq!(n[0].desc.len(), 264); // sizeof(struct __riscv_d_ext_state)
        assert_eq!(&n[0].desc[256..264], &[0xe0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn short_fp_array_is_an_error() {
        let mut ti = sample();
        ti.fpsimd.f.truncate(16);
        let e = format!("{:#}", Regs::from_criu(&ti).unwrap_err());
        assert!(e.contains("fpsimd.f holds 16"), "{e}");
    }
}
