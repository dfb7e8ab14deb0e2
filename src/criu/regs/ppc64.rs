//! CRIU's `thread_info_ppc64` → ppc64le registers. CRIU runs on
//! little-endian ppc64 only, so images of this architecture are ppc64le.

use anyhow::Result;

use super::array;
use crate::model::regs::ppc64::{Regs, NGREG, NIP};
use crate::proto;

/// Decodes CRIU's saved ppc64 thread state.
pub(crate) fn decode(ti: &proto::ThreadInfoPpc64) -> Result<Regs> {
    let g = &ti.gpregs;
    let gpr: [u64; 32] = array("gpregs.gpr", &g.gpr)?;
    let mut gp = [0; NGREG];
    gp[..32].copy_from_slice(&gpr);
    // softe, dar, dsisr and result are not in the images; they stay 0.
    let rest = [
        g.nip,
        g.msr,
        g.orig_gpr3,
        g.ctr,
        g.link,
        g.xer,
        g.ccr,
        0,
        g.trap,
    ];
    gp[NIP..NIP + rest.len()].copy_from_slice(&rest);
    let fp = match &ti.fpstate {
        Some(f) => Some(array("fpstate.fpregs", &f.fpregs)?),
        None => None,
    };
    let vmx = match &ti.vrstate {
        Some(v) => Some((array("vrstate.vrregs", &v.vrregs)?, v.vrsave)),
        None => None,
    };
    let vsx = match &ti.vsxstate {
        Some(v) => Some(array("vsxstate.vsxregs", &v.vsxregs)?),
        None => None,
    };
    Ok(Regs { gp, fp, vmx, vsx })
}

/// A saved state with FP, VMX and VSX state (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoPpc64 {
    proto::ThreadInfoPpc64 {
        clear_tid_addr: 0,
        gpregs: proto::Ppc64Regs {
            gpr: (0..32).collect(),
            nip: 0x1000_0d0c,
            msr: 0x9000_0000_0280_f033,
            link: 0x1000_0d64,
            trap: 0xc00,
            ..Default::default()
        },
        fpstate: Some(proto::Ppc64Fpstate {
            fpregs: (0..33).collect(),
        }),
        vrstate: Some(proto::Ppc64Vrstate {
            vrregs: (0..66).collect(),
            vrsave: 0xffff_ffff,
        }),
        vsxstate: Some(proto::Ppc64Vsxstate {
            vsxregs: (0..32).collect(),
        }),
        tmstate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pt_regs_order_and_what_was_saved() {
        let r = decode(&sample()).unwrap();
        assert_eq!(r.gp[NIP], 0x1000_0d0c);
        assert_eq!(r.gp[36], 0x1000_0d64); // link
        assert_eq!(r.gp[40], 0xc00); // trap
        assert!(r.fp.is_some() && r.vmx.is_some() && r.vsx.is_some());
        let mut ti = sample();
        ti.fpstate = None;
        assert!(decode(&ti).unwrap().fp.is_none());
    }

    #[test]
    fn bad_lengths_fail() {
        let mut ti = sample();
        ti.vrstate.as_mut().unwrap().vrregs.truncate(64);
        let e = decode(&ti).unwrap_err().to_string();
        assert!(e.contains("vrstate.vrregs holds 64"), "{e}");
    }
}
