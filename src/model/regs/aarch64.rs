//! AArch64 registers.

/// Index of sp in [`Regs::gp`] (user_pt_regs order: x0-x30, sp, pc, pstate).
pub const SP: usize = 31;
/// Index of pc.
pub const PC: usize = 32;
/// Index of pstate.
pub const PSTATE: usize = 33;

/// Pointer-authentication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pac {
    /// APIA, APIB, APDA, APDB keys as (lo, hi) halves, in that order.
    pub address_keys: [u64; 8],
    /// PR_PAC_ENABLED_KEYS bits.
    pub enabled_keys: u64,
    /// APGA key (lo, hi), where the CPU has generic authentication.
    pub generic_key: Option<[u64; 2]>,
}

/// Register state of an AArch64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// x0-x30, sp, pc, pstate.
    pub gp: [u64; 34],
    /// v0-v31 as the kernel stores them (two little-endian words each).
    pub vregs: [u64; 64],
    /// FP status register.
    pub fpsr: u32,
    /// FP control register.
    pub fpcr: u32,
    /// tpidr_el0, the thread pointer.
    pub tls: u64,
    /// Pointer-authentication keys, if they were saved.
    pub pac: Option<Pac>,
}
