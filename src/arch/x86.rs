//! What x86-64 and i386 (compat) tasks share: the x87/SSE/AVX state that
//! CRIU saves as `user_x86_fpregs_entry` — the FXSAVE legacy area and the
//! XSAVE components beyond it — and the two layouts both kernels' regsets
//! give it: the 512-byte FXSAVE area (x86-64 NT_PRFPREG, i386 NT_PRXFPREG)
//! and NT_X86_XSTATE in the XSAVE standard format, sized for the XCR0 the
//! images imply.

use anyhow::{bail, Result};

use super::words;
use crate::notes::{self, Enc};
use crate::proto;

/// The FXSAVE legacy area (user_i387_struct without its reserved tail), in
/// its 64-bit form: the kernel saves the state of 32-bit tasks with the same
/// 64-bit XSAVE, so `rip` and `rdp` are full words there too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fxsave {
    /// FPU control word.
    pub cwd: u16,
    /// FPU status word.
    pub swd: u16,
    /// Abridged tag word (one bit per physical register).
    pub twd: u16,
    /// Last FPU opcode.
    pub fop: u16,
    /// Last FPU instruction pointer.
    pub rip: u64,
    /// Last FPU data pointer.
    pub rdp: u64,
    /// SSE control and status.
    pub mxcsr: u32,
    /// Valid MXCSR bits.
    pub mxcsr_mask: u32,
    /// st0-st7, 16 bytes each (10 bytes of register, 6 of padding).
    pub st: [u8; 128],
    /// xmm0-xmm15.
    pub xmm: [u8; 256],
}

/// XSAVE state beyond the legacy area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xsave {
    /// XSTATE_BV: components not in their initial state.
    pub xstate_bv: u64,
    /// XCR0: the user components the kernel enabled.
    pub xcr0: u64,
    /// (feature bit, bytes in XSAVE standard format) for each saved component.
    pub components: Vec<(u32, Vec<u8>)>,
}

/// The x87/SSE state of a thread and, where the CPU had XSAVE, the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FpState {
    /// The legacy area.
    pub fx: Fxsave,
    /// Extended state, if the CPU had XSAVE.
    pub xsave: Option<Xsave>,
}

/// (feature bit, offset, size) of the user XSAVE components in the
/// standard (non-compacted) format, as CPUID leaf 0xD reports them.
const XSAVE_COMPONENTS: [(u32, usize, usize); 7] = [
    (2, 576, 256),   // YMM_Hi128
    (3, 960, 64),    // BNDREGS
    (4, 1024, 64),   // BNDCSR
    (5, 1088, 64),   // opmask
    (6, 1152, 512),  // ZMM_Hi256
    (7, 1664, 1024), // Hi16_ZMM
    (9, 2688, 8),    // PKRU
];

/// Size of the legacy area plus the XSAVE header.
const XSAVE_BASE: usize = 576;
/// Size of the FXSAVE area.
pub const FXSAVE_SIZE: usize = 512;
/// Offset of the software-reserved bytes where the kernel stores XCR0.
const SW_RESERVED: usize = 464;

/// Size of NT_X86_XSTATE for a given XCR0, as the kernel sizes it.
pub fn xstate_size(xcr0: u64) -> usize {
    XSAVE_COMPONENTS
        .iter()
        .filter(|(bit, _, _)| xcr0 & (1 << bit) != 0)
        .map(|(_, off, size)| off + size)
        .fold(XSAVE_BASE, usize::max)
}

fn le_u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn exact<const N: usize>(what: &str, bytes: Vec<u8>) -> Result<[u8; N]> {
    let len = bytes.len();
    match bytes.try_into() {
        Ok(a) => Ok(a),
        Err(_) => bail!("{what} holds {len} bytes, expected {N}"),
    }
}

impl FpState {
    /// Decodes CRIU's saved FPU state.
    pub fn from_criu(f: &proto::X86Fpregs) -> Result<FpState> {
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
                // The XSAVE layout is little-endian 64-bit words whatever the task.
                let saved: [(u32, Vec<u8>); 7] = [
                    (2, le_u32s(&x.ymmh)),
                    (3, words(notes::LP64_LE, &x.bndregs)),
                    (4, words(notes::LP64_LE, &x.bndcsr)),
                    (5, words(notes::LP64_LE, &x.opmask)),
                    (6, words(notes::LP64_LE, &x.zmm_hi256)),
                    (7, words(notes::LP64_LE, &x.hi16_zmm)),
                    (9, le_u32s(&x.pkru)),
                ];
                let mut xcr0 = 0b11; // x87 and SSE are always enabled
                let mut components = Vec::new();
                for (bit, bytes) in saved {
                    if bytes.is_empty() {
                        continue;
                    }
                    let (_, _, size) = XSAVE_COMPONENTS
                        .iter()
                        .find(|c| c.0 == bit)
                        .copied()
                        .unwrap_or_default();
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

    /// The 416 meaningful bytes of the FXSAVE area.
    fn legacy_area(&self) -> Vec<u8> {
        let fx = &self.fx;
        let mut e = Enc::new(notes::LP64_LE);
        e.u16(fx.cwd).u16(fx.swd).u16(fx.twd).u16(fx.fop);
        e.u64(fx.rip).u64(fx.rdp).u32(fx.mxcsr).u32(fx.mxcsr_mask);
        e.bytes(&fx.st).bytes(&fx.xmm);
        e.finish()
    }

    /// The 512-byte FXSAVE area (user_i387_struct, user32_fxsr_struct),
    /// its padding and software-reserved bytes zero as the kernel writes
    /// them.
    pub fn fxsave_area(&self) -> Vec<u8> {
        let mut out = self.legacy_area();
        out.resize(FXSAVE_SIZE, 0);
        out
    }

    /// NT_X86_XSTATE: the XSAVE standard format, XCR0 in the software bytes.
    pub fn xstate(&self) -> Option<Vec<u8>> {
        let x = self.xsave.as_ref()?;
        let mut out = self.legacy_area();
        out.resize(xstate_size(x.xcr0), 0);
        out[SW_RESERVED..SW_RESERVED + 8].copy_from_slice(&x.xcr0.to_le_bytes());
        out[512..520].copy_from_slice(&(x.xstate_bv & x.xcr0).to_le_bytes());
        for (bit, bytes) in &x.components {
            if let Some((_, off, _)) = XSAVE_COMPONENTS.iter().find(|c| c.0 == *bit) {
                out[*off..off + bytes.len()].copy_from_slice(bytes);
            }
        }
        Some(out)
    }
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
        let fp = FpState::from_criu(&sample_fpregs()).unwrap();
        let x = fp.xstate().unwrap();
        assert_eq!(x.len(), 2696);
        assert_eq!(u64::from_le_bytes(x[464..472].try_into().unwrap()), 0x207);
        assert_eq!(u64::from_le_bytes(x[512..520].try_into().unwrap()), 0x7);
        assert_eq!(&x[576..580], &0xdeadbeefu32.to_le_bytes());
        assert_eq!(&x[2688..2692], &0x55555554u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes(x[24..28].try_into().unwrap()), 0x1f80);
        assert_eq!(u32::from_le_bytes(x[164..168].try_into().unwrap()), 1); // xmm_space[1]
        let fx = fp.fxsave_area();
        assert_eq!(fx.len(), 512);
        assert_eq!(&fx[..416], &x[..416]);
        assert!(fx[416..].iter().all(|&b| b == 0));
    }

    #[test]
    fn short_or_long_arrays_are_errors() {
        let mut f = sample_fpregs();
        f.xmm_space.truncate(10);
        let err = FpState::from_criu(&f).unwrap_err().to_string();
        assert!(err.contains("xmm_space"), "{err}");
        let mut f = sample_fpregs();
        f.xsave.as_mut().unwrap().ymmh = vec![0; 100];
        assert!(FpState::from_criu(&f).is_err());
    }
}
