//! CRIU's `thread_info_x86` of a 64-bit task → x86-64 registers.

use anyhow::{bail, Result};

use super::x86::{decode_fp, is_compat};
use crate::model::regs::x86_64::Regs;
use crate::proto;

/// Decodes CRIU's saved x86-64 thread state.
pub(crate) fn decode(ti: &proto::ThreadInfoX86) -> Result<Regs> {
    if is_compat(ti) {
        bail!("the registers are those of a 32-bit (compat) task, not of an x86-64 one");
    }
    let g = &ti.gpregs;
    let gp = [
        g.r15, g.r14, g.r13, g.r12, g.bp, g.bx, g.r11, g.r10, g.r9, g.r8, g.ax, g.cx, g.dx, g.si,
        g.di, g.orig_ax, g.ip, g.cs, g.flags, g.sp, g.ss, g.fs_base, g.gs_base, g.ds, g.es, g.fs,
        g.gs,
    ];
    Ok(Regs {
        gp,
        fp: decode_fp(&ti.fpregs)?,
    })
}

/// A 64-bit task's saved state (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoX86 {
    proto::ThreadInfoX86 {
        clear_tid_addr: 0,
        gpregs: proto::X86Regs {
            r15: 15,
            ip: 0x401000,
            sp: 0x7ffc0000,
            mode: Some(1),
            ..Default::default()
        },
        fpregs: super::x86::sample_fpregs(),
        tls: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::regs::x86_64::RIP;

    #[test]
    fn decodes_in_user_regs_struct_order() {
        let r = decode(&sample()).unwrap();
        assert_eq!(r.gp[0], 15);
        assert_eq!(r.gp[RIP], 0x401000);
    }

    #[test]
    fn bad_state_is_an_error() {
        let mut ti = sample();
        ti.fpregs.xmm_space.truncate(10);
        let err = decode(&ti).unwrap_err().to_string();
        assert!(err.contains("xmm_space"), "{err}");
        let mut ti = sample();
        ti.gpregs.mode = Some(proto::X86RegsMode::Compat as i32);
        assert!(decode(&ti).is_err());
    }
}
