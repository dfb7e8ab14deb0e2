//! MIPS64 registers of an n64 task.

/// Index of lo in [`Regs::gp`] (r0-r31, lo, hi, cp0_epc, cp0_badvaddr,
/// cp0_status, cp0_cause: the ptrace order).
pub const LO: usize = 32;
/// Index of cp0_epc: the program counter.
pub const EPC: usize = 34;

/// Register state of a MIPS64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// r0-r31, lo, hi, cp0_epc, cp0_badvaddr, cp0_status, cp0_cause.
    pub gp: [u64; 38],
    /// f0-f31 (64-bit registers: n64 tasks run with FR=1).
    pub fpr: [u64; 32],
    /// FP control and status register (fcr31).
    pub fcsr: u32,
    /// FP implementation register (fcr0), the CPU's.
    pub fir: u32,
}
