//! CRIU's `thread_info_mips` → MIPS64 registers.

use anyhow::Result;

use crate::model::regs::mips64::Regs;
use crate::proto;

/// Decodes CRIU's saved MIPS64 thread state: r0-r31 and the special
/// registers as PTRACE_GETREGS gave them, f0-f31, FCSR and FIR as
/// PTRACE_GETFPREGS gave them (`criu/arch/mips/crtools.c`).
pub(crate) fn decode(ti: &proto::ThreadInfoMips) -> Result<Regs> {
    let g = &ti.gpregs;
    let f = &ti.fpregs;
    let gp = [
        g.r0,
        g.r1,
        g.r2,
        g.r3,
        g.r4,
        g.r5,
        g.r6,
        g.r7,
        g.r8,
        g.r9,
        g.r10,
        g.r11,
        g.r12,
        g.r13,
        g.r14,
        g.r15,
        g.r16,
        g.r17,
        g.r18,
        g.r19,
        g.r20,
        g.r21,
        g.r22,
        g.r23,
        g.r24,
        g.r25,
        g.r26,
        g.r27,
        g.r28,
        g.r29,
        g.r30,
        g.r31,
        g.lo,
        g.hi,
        g.cp0_epc,
        g.cp0_badvaddr,
        g.cp0_status,
        g.cp0_cause,
    ];
    let fpr = [
        f.r0, f.r1, f.r2, f.r3, f.r4, f.r5, f.r6, f.r7, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13,
        f.r14, f.r15, f.r16, f.r17, f.r18, f.r19, f.r20, f.r21, f.r22, f.r23, f.r24, f.r25, f.r26,
        f.r27, f.r28, f.r29, f.r30, f.r31,
    ];
    Ok(Regs {
        gp,
        fpr,
        fcsr: f.fpu_fcr31,
        fir: f.fpu_id,
    })
}

/// A saved state (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoMips {
    proto::ThreadInfoMips {
        clear_tid_addr: 0,
        tls: 0x1200c7760,
        gpregs: proto::MipsRegs {
            r1: 1,
            r26: 0x26,
            r27: 0x27,
            r29: 0x40007ffb60,
            r31: 0x120004bd8,
            lo: 0xffff_ffff_cccd_47c0,
            hi: 0xcccc,
            cp0_epc: 0x1200049a8,
            cp0_badvaddr: 0x35,
            cp0_status: 0x2480_0030,
            cp0_cause: 0x37,
            ..Default::default()
        },
        fpregs: proto::MipsFpregs {
            r0: 0x4000_0000_0000_0000,
            r30: 0x01ff_eedd_ccbb_aa99,
            r31: 0x8877_6655_4433_2211,
            fpu_fcr31: 0x0100_0000,
            fpu_id: 0x007f_0000,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::regs::mips64::{EPC, LO};

    #[test]
    fn decodes_the_ptrace_order() {
        let r = decode(&sample()).unwrap();
        assert_eq!(
            (r.gp[1], r.gp[29], r.gp[31]),
            (1, 0x40007ffb60, 0x120004bd8)
        );
        assert_eq!((r.gp[LO], r.gp[LO + 1]), (0xffff_ffff_cccd_47c0, 0xcccc));
        assert_eq!(r.gp[EPC], 0x1200049a8);
        assert_eq!(r.gp[37], 0x37);
        assert_eq!(
            (r.fpr[0], r.fpr[31]),
            (0x4000_0000_0000_0000, 0x8877_6655_4433_2211)
        );
        assert_eq!((r.fcsr, r.fir), (0x0100_0000, 0x007f_0000));
    }
}
