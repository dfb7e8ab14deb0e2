//! LoongArch64 registers. The thread pointer is r2 (tp), one of the
//! general registers.

/// Register state of a LoongArch64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// r0-r31.
    pub gp: [u64; 32],
    /// The program counter (csr_era).
    pub pc: u64,
    /// f0-f31 (their scalar, 64-bit halves).
    pub fpr: [u64; 32],
    /// The eight condition flags fcc0-fcc7, one a byte.
    pub fcc: u64,
    /// FP control and status register.
    pub fcsr: u32,
}
