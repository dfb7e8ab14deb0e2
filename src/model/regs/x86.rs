//! What x86-64 and i386 (compat) tasks share: the x87/SSE state of the
//! FXSAVE legacy area and the XSAVE components beyond it.

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
    /// (feature bit, bytes in XSAVE standard format) for each saved
    /// component, at most its size in [`XSAVE_COMPONENTS`].
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
pub const XSAVE_COMPONENTS: [(u32, usize, usize); 7] = [
    (2, 576, 256),   // YMM_Hi128
    (3, 960, 64),    // BNDREGS
    (4, 1024, 64),   // BNDCSR
    (5, 1088, 64),   // opmask
    (6, 1152, 512),  // ZMM_Hi256
    (7, 1664, 1024), // Hi16_ZMM
    (9, 2688, 8),    // PKRU
];

/// The (offset, size) of XSAVE component `bit` in the standard format.
pub fn xsave_component(bit: u32) -> Option<(usize, usize)> {
    XSAVE_COMPONENTS
        .iter()
        .find(|c| c.0 == bit)
        .map(|&(_, off, size)| (off, size))
}
