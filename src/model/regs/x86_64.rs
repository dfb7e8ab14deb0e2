//! x86-64 registers. 32-bit (compat) tasks are [`super::i386`].

use super::x86::FpState;

/// Index of rax in [`Regs::gp`] (user_regs_struct order).
pub const RAX: usize = 10;
/// Index of orig_rax.
pub const ORIG_RAX: usize = 15;
/// Index of rip.
pub const RIP: usize = 16;
/// Index of rsp.
pub const RSP: usize = 19;
/// Index of fs_base.
pub const FS_BASE: usize = 21;

/// Register state of an x86-64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// General registers in user_regs_struct order (r15 … gs).
    pub gp: [u64; 27],
    /// x87, SSE and XSAVE state.
    pub fp: FpState,
}
