//! 32-bit Arm (EABI) registers.

/// Index of sp (r13) in [`Regs::gp`] (pt_regs order: r0-r15, cpsr, orig_r0).
pub const SP: usize = 13;
/// Index of pc (r15).
pub const PC: usize = 15;
/// Index of cpsr.
pub const CPSR: usize = 16;
/// Index of orig_r0.
pub const ORIG_R0: usize = 17;

/// Register state of a 32-bit Arm thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// r0-r15, cpsr, orig_r0.
    pub gp: [u32; 18],
    /// d0-d31 (VFP/NEON).
    pub vfp: [u64; 32],
    /// VFP status and control register.
    pub fpscr: u32,
    /// TPIDRURO, the thread pointer.
    pub tls: u32,
}
