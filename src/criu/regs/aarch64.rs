//! CRIU's `thread_info_aarch64` → AArch64 registers.

use anyhow::{Context, Result};

use super::array;
use crate::model::regs::aarch64::{Pac, Regs, PC, PSTATE, SP};
use crate::proto;

/// Decodes CRIU's saved AArch64 thread state.
pub(crate) fn decode(ti: &proto::ThreadInfoAarch64) -> Result<Regs> {
    let g = &ti.gpregs;
    let x: [u64; 31] = array("gpregs.regs", &g.regs)?;
    let mut gp = [0; 34];
    gp[..31].copy_from_slice(&x);
    gp[SP] = g.sp;
    gp[PC] = g.pc;
    gp[PSTATE] = g.pstate;
    let pac = ti.pac_keys.as_ref().and_then(|k| {
        let a = k.address_keys.as_ref()?;
        Some(Pac {
            address_keys: [
                a.apiakey_lo,
                a.apiakey_hi,
                a.apibkey_lo,
                a.apibkey_hi,
                a.apdakey_lo,
                a.apdakey_hi,
                a.apdbkey_lo,
                a.apdbkey_hi,
            ],
            enabled_keys: a.pac_enabled_key,
            generic_key: k
                .generic_keys
                .as_ref()
                .map(|g| [g.apgakey_lo, g.apgakey_hi]),
        })
    });
    Ok(Regs {
        gp,
        vregs: array("fpsimd.vregs", &ti.fpsimd.vregs).context("fpsimd")?,
        fpsr: ti.fpsimd.fpsr,
        fpcr: ti.fpsimd.fpcr,
        tls: ti.tls,
        pac,
    })
}

/// A saved state without pointer-authentication keys (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoAarch64 {
    proto::ThreadInfoAarch64 {
        clear_tid_addr: 0,
        tls: 0x4a8740,
        gpregs: proto::Aarch64Regs {
            regs: (0..31).collect(),
            sp: 0x7ff0,
            pc: 0x400800,
            pstate: 0x8000_0000,
        },
        fpsimd: proto::Aarch64Fpsimd {
            vregs: (100..164).collect(),
            fpsr: 0x10,
            fpcr: 0x0300_0000,
        },
        pac_keys: None,
    }
}

/// [`sample`] with address and generic keys (for tests).
#[cfg(test)]
pub(crate) fn sample_with_pac() -> proto::ThreadInfoAarch64 {
    let mut ti = sample();
    ti.pac_keys = Some(proto::Aarch64PacKeys {
        address_keys: Some(proto::Aarch64PacAddressKeys {
            apiakey_lo: 1,
            apiakey_hi: 2,
            apdbkey_hi: 8,
            pac_enabled_key: 0xf,
            ..Default::default()
        }),
        generic_keys: Some(proto::Aarch64PacGenericKeys {
            apgakey_lo: 9,
            apgakey_hi: 10,
        }),
    });
    ti
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_registers_and_keys() {
        let r = decode(&sample()).unwrap();
        assert_eq!((r.gp[30], r.gp[SP], r.gp[PC]), (30, 0x7ff0, 0x400800));
        assert!(r.pac.is_none());
        let p = decode(&sample_with_pac()).unwrap().pac.unwrap();
        assert_eq!(p.address_keys, [1, 2, 0, 0, 0, 0, 0, 8]);
        assert_eq!((p.enabled_keys, p.generic_key), (0xf, Some([9, 10])));
    }

    #[test]
    fn short_arrays_are_errors() {
        let mut ti = sample();
        ti.gpregs.regs.pop();
        let e = decode(&ti).unwrap_err().to_string();
        assert!(e.contains("gpregs.regs holds 30"), "{e}");
        let mut ti = sample();
        ti.fpsimd.vregs.push(1);
        assert!(decode(&ti).is_err());
    }
}
