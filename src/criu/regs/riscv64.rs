//! CRIU's `thread_info_riscv64` → RISC-V 64 registers.

use anyhow::{Context, Result};

use super::array;
use crate::model::regs::riscv64::Regs;
use crate::proto;

/// Decodes CRIU's saved RISC-V thread state.
pub(crate) fn decode(ti: &proto::ThreadInfoRiscv64) -> Result<Regs> {
    let g = &ti.gpregs;
    let gp = [
        g.pc, g.ra, g.sp, g.gp, g.tp, g.t0, g.t1, g.t2, g.s0, g.s1, g.a0, g.a1, g.a2, g.a3, g.a4,
        g.a5, g.a6, g.a7, g.s2, g.s3, g.s4, g.s5, g.s6, g.s7, g.s8, g.s9, g.s10, g.s11, g.t3, g.t4,
        g.t5, g.t6,
    ];
    Ok(Regs {
        gp,
        f: array("fpsimd.f", &ti.fpsimd.f).context("fpsimd")?,
        fcsr: ti.fpsimd.fcsr,
    })
}

/// A saved state (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoRiscv64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pc_first_then_x1_to_x31() {
        let r = decode(&sample()).unwrap();
        assert_eq!(
            (r.gp[0], r.gp[2], r.gp[4], r.gp[31]),
            (0x10734, 0x7ff0, 0x77, 31)
        );
        assert_eq!(r.fcsr, 0xe0);
    }

    #[test]
    fn short_fp_array_is_an_error() {
        let mut ti = sample();
        ti.fpsimd.f.truncate(16);
        let e = format!("{:#}", decode(&ti).unwrap_err());
        assert!(e.contains("fpsimd.f holds 16"), "{e}");
    }
}
