//! The two layouts the x86-64 and i386 kernels' regsets give the x87/SSE/AVX
//! state: the 512-byte FXSAVE area (x86-64 NT_PRFPREG, i386 NT_PRXFPREG)
//! and NT_X86_XSTATE in the XSAVE standard format, sized for the XCR0 the
//! state implies.

use crate::model::regs::x86::{xsave_component, FpState, XSAVE_COMPONENTS};
use crate::notes::{self, Enc};

/// Size of the legacy area plus the XSAVE header.
const XSAVE_BASE: usize = 576;
/// Size of the FXSAVE area.
pub(crate) const FXSAVE_SIZE: usize = 512;
/// Offset of the software-reserved bytes where the kernel stores XCR0.
const SW_RESERVED: usize = 464;
/// Offset of XSTATE_BV in the XSAVE header.
const XSTATE_BV: usize = 512;

/// Size of NT_X86_XSTATE for a given XCR0, as the kernel sizes it.
pub(crate) fn xstate_size(xcr0: u64) -> usize {
    XSAVE_COMPONENTS
        .iter()
        .filter(|(bit, _, _)| xcr0 & (1 << bit) != 0)
        .map(|(_, off, size)| off + size)
        .fold(XSAVE_BASE, usize::max)
}

/// The 416 meaningful bytes of the FXSAVE area.
fn legacy_area(fp: &FpState) -> Vec<u8> {
    let fx = &fp.fx;
    let mut e = Enc::new(notes::LP64_LE);
    e.u16(fx.cwd).u16(fx.swd).u16(fx.twd).u16(fx.fop);
    e.u64(fx.rip).u64(fx.rdp).u32(fx.mxcsr).u32(fx.mxcsr_mask);
    e.bytes(&fx.st).bytes(&fx.xmm);
    e.finish()
}

/// The 512-byte FXSAVE area (user_i387_struct, user32_fxsr_struct), its
/// padding and software-reserved bytes zero as the kernel writes them.
pub(crate) fn fxsave_area(fp: &FpState) -> Vec<u8> {
    let mut out = legacy_area(fp);
    out.resize(FXSAVE_SIZE, 0);
    out
}

/// NT_X86_XSTATE: the XSAVE standard format, XCR0 in the software bytes;
/// `None` without XSAVE state.
pub(crate) fn xstate(fp: &FpState) -> Option<Vec<u8>> {
    let x = fp.xsave.as_ref()?;
    let mut out = legacy_area(fp);
    out.resize(xstate_size(x.xcr0), 0);
    out[SW_RESERVED..SW_RESERVED + 8].copy_from_slice(&x.xcr0.to_le_bytes());
    out[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&(x.xstate_bv & x.xcr0).to_le_bytes());
    for (bit, bytes) in &x.components {
        if let Some((off, size)) = xsave_component(*bit) {
            let n = bytes.len().min(size);
            out[off..off + n].copy_from_slice(&bytes[..n]);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::x86::{decode_fp, sample_fpregs};

    #[test]
    fn xstate_sizes_match_gdb_and_the_kernel() {
        assert_eq!(xstate_size(0x3), 576); // SSE
        assert_eq!(xstate_size(0x7), 832); // AVX
        assert_eq!(xstate_size(0x1f), 1088); // MPX
        assert_eq!(xstate_size(0xe7), 2688); // AVX-512
        assert_eq!(xstate_size(0x2e7), 2696); // AVX-512 + PKRU
        assert_eq!(xstate_size(0x207), 2696); // AVX + PKRU
    }

    #[test]
    fn lays_out_the_fxsave_area_and_xstate() {
        let fp = decode_fp(&sample_fpregs()).unwrap();
        let x = xstate(&fp).unwrap();
        assert_eq!(x.len(), 2696);
        assert_eq!(u64::from_le_bytes(x[464..472].try_into().unwrap()), 0x207);
        assert_eq!(u64::from_le_bytes(x[512..520].try_into().unwrap()), 0x7);
        assert_eq!(&x[576..580], &0xdeadbeefu32.to_le_bytes());
        assert_eq!(&x[2688..2692], &0x55555554u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(x[24..28].try_into().unwrap()), 0x1f80);
        assert_eq!(u32::from_le_bytes(x[164..168].try_into().unwrap()), 1); // xmm_space[1]
        let fx = fxsave_area(&fp);
        assert_eq!(fx.len(), 512);
        assert_eq!(&fx[..416], &x[..416]);
        assert!(fx[416..].iter().all(|&b| b == 0));
    }
}
