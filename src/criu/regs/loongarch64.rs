//! CRIU's `thread_info_loongarch64` → LoongArch64 registers.

use anyhow::{Context, Result};

use super::array;
use crate::model::regs::loongarch64::Regs;
use crate::proto;

/// Decodes CRIU's saved LoongArch64 thread state: r0-r31 and the pc, f0-f31,
/// fcc and fcsr (`criu/arch/loongarch64/crtools.c`; CRIU 4.2 saves neither
/// orig_a0 nor csr_badv, nor any LSX/LASX state).
pub(crate) fn decode(ti: &proto::ThreadInfoLoongarch64) -> Result<Regs> {
    Ok(Regs {
        gp: array("gpregs.regs", &ti.gpregs.regs)?,
        pc: ti.gpregs.pc,
        fpr: array("fpregs.regs", &ti.fpregs.regs).context("fpregs")?,
        fcc: ti.fpregs.fcc,
        fcsr: ti.fpregs.fcsr,
    })
}

/// A saved state (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoLoongarch64 {
    proto::ThreadInfoLoongarch64 {
        clear_tid_addr: 0,
        tls: 0x103_b4d8,
        gpregs: proto::Loongarch64Gpregs {
            regs: (0..32).map(|i| 0x100 + i).collect(),
            pc: 0x101_2900,
        },
        fpregs: proto::Loongarch64Fpregs {
            regs: (0..32).map(|i| 0x4000_0000_0000_0000 + i).collect(),
            fcc: 0x0100_0000_0000_0001,
            fcsr: 0x0300_0000,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_registers() {
        let r = decode(&sample()).unwrap();
        assert_eq!(
            (r.gp[0], r.gp[2], r.gp[31], r.pc),
            (0x100, 0x102, 0x11f, 0x101_2900)
        );
        assert_eq!(
            (r.fpr[31], r.fcc, r.fcsr),
            (0x4000_0000_0000_001f, 0x0100_0000_0000_0001, 0x0300_0000)
        );
    }

    #[test]
    fn short_arrays_are_errors() {
        let mut ti = sample();
        ti.gpregs.regs.pop();
        let e = decode(&ti).unwrap_err().to_string();
        assert!(e.contains("gpregs.regs holds 31"), "{e}");
        let mut ti = sample();
        ti.fpregs.regs.push(1);
        assert!(decode(&ti).is_err());
    }
}
