//! CRIU's `user_x86_fpregs_entry` (the FXSAVE legacy area and the XSAVE
//! components beyond it), which x86-64 and i386 (compat) tasks share.

use anyhow::{bail, Result};

use crate::model::regs::x86::{xsave_component, FpState, Fxsave, Xsave};
use crate::proto;

/// Whether CRIU marked these registers as those of a 32-bit (compat) task.
pub(crate) fn is_compat(ti: &proto::ThreadInfoX86) -> bool {
    ti.gpregs.mode == Some(proto::X86RegsMode::Compat as i32)
}

fn le_u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn le_u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn exact<const N: usize>(what: &str, bytes: Vec<u8>) -> Result<[u8; N]> {
    let len = bytes.len();
    match bytes.try_into() {
        Ok(a) => Ok(a),
        Err(_) => bail!("{what} holds {len} bytes, expected {N}"),
    }
}

/// Decodes CRIU's saved FPU state.
pub(crate) fn decode_fp(f: &proto::X86Fpregs) -> Result<FpState> {
    let fx = Fxsave {
        cwd: f.cwd as u16,
        swd: f.swd as u16,
        twd: f.twd as u16,
        fop: f.fop as u16,
        rip: f.rip,
        rdp: f.rdp,
        mxcsr: f.mxcsr,
        mxcsr_mask: f.mxcsr_mask,
        st: exact("fpregs.st_space", le_u32s(&f.st_space))?,
        xmm: exact("fpregs.xmm_space", le_u32s(&f.xmm_space))?,
    };
    let xsave = match &f.xsave {
        None => None,
        Some(x) => {
            // The XSAVE layout is little-endian whatever the task.
            let saved: [(u32, Vec<u8>); 7] = [
                (2, le_u32s(&x.ymmh)),
                (3, le_u64s(&x.bndregs)),
                (4, le_u64s(&x.bndcsr)),
                (5, le_u64s(&x.opmask)),
                (6, le_u64s(&x.zmm_hi256)),
                (7, le_u64s(&x.hi16_zmm)),
                (9, le_u32s(&x.pkru)),
            ];
            let mut xcr0 = 0b11; // x87 and SSE are always enabled
            let mut components = Vec::new();
            for (bit, bytes) in saved {
                if bytes.is_empty() {
                    continue;
                }
                let size = xsave_component(bit).map_or(0, |(_, size)| size);
                if bytes.len() > size {
                    bail!(
                        "xsave component {bit} holds {} bytes, more than its {size}",
                        bytes.len()
                    );
                }
                xcr0 |= 1 << bit;
                components.push((bit, bytes));
            }
            Some(Xsave {
                xstate_bv: x.xstate_bv,
                xcr0,
                components,
            })
        }
    };
    Ok(FpState { fx, xsave })
}

/// CRIU's FPU state with AVX and PKRU, xmm_space counting up (for tests).
#[cfg(test)]
pub(crate) fn sample_fpregs() -> proto::X86Fpregs {
    proto::X86Fpregs {
        cwd: 0x37f,
        mxcsr: 0x1f80,
        st_space: vec![0; 32],
        xmm_space: (0..64).collect(),
        xsave: Some(proto::X86Xsave {
            xstate_bv: 0x7,
            ymmh: vec![0xdeadbeef; 64],
            pkru: vec![0x55555554, 0],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_components_and_implies_xcr0() {
        let fp = decode_fp(&sample_fpregs()).unwrap();
        let x = fp.xsave.unwrap();
        assert_eq!(x.xcr0, 0x207);
        assert_eq!(x.components.len(), 2);
        assert_eq!(fp.fx.mxcsr, 0x1f80);
        assert_eq!(&fp.fx.xmm[4..8], &1u32.to_le_bytes());
    }

    #[test]
    fn short_or_long_arrays_are_errors() {
        let mut f = sample_fpregs();
        f.xmm_space.truncate(10);
        let err = decode_fp(&f).unwrap_err().to_string();
        assert!(err.contains("xmm_space"), "{err}");
        let mut f = sample_fpregs();
        f.xsave.as_mut().unwrap().ymmh = vec![0; 100];
        assert!(decode_fp(&f).is_err());
    }
}
