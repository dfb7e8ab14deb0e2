//! CRIU's `thread_info_s390` → s390x registers.

use anyhow::{Context, Result};

use super::array;
use crate::model::regs::s390x::Regs;
use crate::proto;

fn opt<const N: usize>(what: &str, v: Option<&[u64]>) -> Result<Option<[u64; N]>> {
    v.map(|v| array(what, v)).transpose()
}

/// Decodes CRIU's saved s390x thread state.
pub(crate) fn decode(ti: &proto::ThreadInfoS390) -> Result<Regs> {
    let g = &ti.gpregs;
    let ri_cb = match &ti.ri_cb {
        Some(ri) if ri.ri_on != 0 => Some(array("ri_cb.regs", &ri.regs)?),
        _ => None,
    };
    Ok(Regs {
        psw_mask: g.psw_mask,
        psw_addr: g.psw_addr,
        gprs: array("gpregs.gprs", &g.gprs)?,
        acrs: array("gpregs.acrs", &g.acrs)?,
        orig_gpr2: g.orig_gpr2,
        system_call: g.system_call,
        fpc: ti.fpregs.fpc,
        fprs: array("fpregs.fprs", &ti.fpregs.fprs).context("fpregs")?,
        vxrs_low: opt("vxrs_low.regs", ti.vxrs_low.as_ref().map(|v| &v.regs[..]))?,
        vxrs_high: opt("vxrs_high.regs", ti.vxrs_high.as_ref().map(|v| &v.regs[..]))?,
        gs_cb: opt("gs_cb.regs", ti.gs_cb.as_ref().map(|v| &v.regs[..]))?,
        gs_bc: opt("gs_bc.regs", ti.gs_bc.as_ref().map(|v| &v.regs[..]))?,
        ri_cb,
    })
}

/// A saved state with vector registers, instrumentation off (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoS390 {
    proto::ThreadInfoS390 {
        clear_tid_addr: 0,
        gpregs: proto::S390Regs {
            psw_mask: 0x0705_0001_8000_0000,
            psw_addr: 0x0101_dc52,
            gprs: (0..16).collect(),
            acrs: (0..16).map(|i| 0x100 + i).collect(),
            orig_gpr2: 0x22,
            system_call: 3,
        },
        fpregs: proto::S390Fpregs {
            fpc: 0x0800_0000,
            fprs: (0..16).collect(),
        },
        vxrs_low: Some(proto::S390VxrsLow {
            regs: (0..16).collect(),
        }),
        vxrs_high: Some(proto::S390VxrsHigh {
            regs: (0..32).collect(),
        }),
        gs_cb: None,
        gs_bc: None,
        ri_cb: Some(proto::S390RiCb {
            ri_on: 0,
            regs: vec![0; 8],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instrumentation_counts_only_when_on() {
        let r = decode(&sample()).unwrap();
        assert!(r.ri_cb.is_none());
        let mut ti = sample();
        ti.ri_cb.as_mut().unwrap().ri_on = 1;
        assert_eq!(decode(&ti).unwrap().ri_cb, Some([0; 8]));
    }

    #[test]
    fn bad_lengths_fail() {
        let mut ti = sample();
        ti.gpregs.acrs.pop();
        let e = decode(&ti).unwrap_err().to_string();
        assert!(e.contains("gpregs.acrs holds 15"), "{e}");
    }
}
