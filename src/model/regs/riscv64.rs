//! RISC-V 64 registers. The thread pointer is x4 (tp), one of the general
//! registers.

/// Index of pc in [`Regs::gp`] (user_regs_struct order: pc, ra, sp, gp, tp, ...).
pub const PC: usize = 0;
/// Index of sp.
pub const SP: usize = 2;

/// Register state of a RISC-V 64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// pc, then x1-x31.
    pub gp: [u64; 32],
    /// f0-f31 (as 64-bit D-extension registers).
    pub f: [u64; 32],
    /// Floating-point control and status.
    pub fcsr: u32,
}
