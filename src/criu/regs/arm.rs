//! CRIU's `thread_info_arm` → 32-bit Arm registers.

use anyhow::{Context, Result};

use super::array;
use crate::model::regs::arm::Regs;
use crate::proto;

/// Decodes CRIU's saved 32-bit Arm thread state: the general registers
/// as `criu/arch/arm/crtools.c` names them (fp is r11, ip r12), the 32
/// VFP doubles and fpscr, and TPIDRURO. fpexc, fpinst and fpinst2 CRIU
/// never fills.
pub(crate) fn decode(ti: &proto::ThreadInfoArm) -> Result<Regs> {
    let g = &ti.gpregs;
    let gp = [
        g.r0, g.r1, g.r2, g.r3, g.r4, g.r5, g.r6, g.r7, g.r8, g.r9, g.r10, g.fp, g.ip, g.sp, g.lr,
        g.pc, g.cpsr, g.orig_r0,
    ];
    Ok(Regs {
        gp,
        vfp: array("fpstate.vfp_regs", &ti.fpstate.vfp_regs).context("fpstate")?,
        fpscr: ti.fpstate.fpscr,
        tls: ti.tls,
    })
}

/// A saved state (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoArm {
    proto::ThreadInfoArm {
        clear_tid_addr: 0,
        tls: 0x76500,
        gpregs: proto::ArmRegs {
            r0: 0x98000,
            r1: 2,
            r10: 10,
            fp: 11,
            ip: 12,
            sp: 0x407f_fca0,
            lr: 0x1065b,
            pc: 0x1053c,
            cpsr: 0x600f_0030,
            orig_r0: 0xffff_ffff,
            ..Default::default()
        },
        fpstate: proto::ArmVfp {
            vfp_regs: (0..32).map(|i| 0x4000_0000_0000_0000 + i).collect(),
            fpscr: 0x0300_0010,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::regs::arm::{CPSR, ORIG_R0, PC, SP};

    #[test]
    fn decodes_r0_to_pc_then_cpsr_and_orig_r0() {
        let r = decode(&sample()).unwrap();
        assert_eq!(
            (r.gp[0], r.gp[10], r.gp[11], r.gp[12]),
            (0x98000, 10, 11, 12)
        );
        assert_eq!((r.gp[SP], r.gp[PC]), (0x407f_fca0, 0x1053c));
        assert_eq!((r.gp[CPSR], r.gp[ORIG_R0]), (0x600f_0030, 0xffff_ffff));
        assert_eq!(
            (r.vfp[31], r.fpscr, r.tls),
            (0x4000_0000_0000_001f, 0x0300_0010, 0x76500)
        );
    }

    #[test]
    fn vfp_registers_must_be_32() {
        let mut ti = sample();
        ti.fpstate.vfp_regs.truncate(16);
        let e = format!("{:#}", decode(&ti).unwrap_err());
        assert!(e.contains("fpstate.vfp_regs holds 16"), "{e}");
    }
}
