//! s390x registers. Each group beyond the general and floating-point
//! registers is there only where it was saved.

/// Register state of an s390x thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// PSW mask.
    pub psw_mask: u64,
    /// PSW address: the program counter.
    pub psw_addr: u64,
    /// r0-r15.
    pub gprs: [u64; 16],
    /// a0-a15 (a0:a1 hold the thread pointer).
    pub acrs: [u32; 16],
    /// r2 at system call entry.
    pub orig_gpr2: u64,
    /// The system call the thread was in.
    pub system_call: u32,
    /// Floating-point control register.
    pub fpc: u32,
    /// f0-f15 (the high halves of v0-v15).
    pub fprs: [u64; 16],
    /// The low halves of v0-v15.
    pub vxrs_low: Option<[u64; 16]>,
    /// v16-v31, two words each.
    pub vxrs_high: Option<[u64; 32]>,
    /// Guarded-storage control block.
    pub gs_cb: Option<[u64; 4]>,
    /// Guarded-storage broadcast control block.
    pub gs_bc: Option<[u64; 4]>,
    /// Runtime-instrumentation control block, if instrumentation was on.
    pub ri_cb: Option<[u64; 8]>,
}
