//! i386 registers: a 32-bit (compat) task of an x86-64 checkpoint.

use super::x86::FpState;

/// Index of eax in [`Regs::gp`] (user_regs_struct order: ebx, ecx, edx,
/// esi, edi, ebp, eax, xds, xes, xfs, xgs, orig_eax, eip, xcs, eflags,
/// esp, xss).
pub const EAX: usize = 6;
/// Index of ds.
pub const DS: usize = 7;
/// Index of gs.
pub const GS: usize = 10;
/// Index of orig_eax.
pub const ORIG_EAX: usize = 11;
/// Index of eip.
pub const EIP: usize = 12;
/// Index of cs.
pub const CS: usize = 13;
/// Index of esp.
pub const ESP: usize = 15;

/// GDT index of the first TLS slot (GDT_ENTRY_TLS_MIN on x86-64, for
/// native and compat tasks alike).
pub const TLS_MIN: u32 = 12;
/// Number of TLS slots (GDT_ENTRY_TLS_ENTRIES).
pub const TLS_SLOTS: usize = 3;

/// One GDT TLS slot, as set_thread_area(2) describes it (struct user_desc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserDesc {
    /// GDT index.
    pub entry_number: u32,
    /// Segment base: the thread pointer, for the slot %gs selects.
    pub base_addr: u32,
    /// Segment limit.
    pub limit: u32,
    /// 32-bit segment.
    pub seg_32bit: bool,
    /// Segment type bits (0-3).
    pub contents: u8,
    /// Not writable.
    pub read_exec_only: bool,
    /// Limit counted in pages.
    pub limit_in_pages: bool,
    /// Not present.
    pub seg_not_present: bool,
    /// Available for software use.
    pub useable: bool,
}

impl UserDesc {
    /// The slot as the kernel reports an unused one: a zero descriptor reads
    /// back as read-only and not present.
    pub fn empty(entry_number: u32) -> UserDesc {
        UserDesc {
            entry_number,
            base_addr: 0,
            limit: 0,
            seg_32bit: false,
            contents: 0,
            read_exec_only: true,
            limit_in_pages: false,
            seg_not_present: true,
            useable: false,
        }
    }

    /// Whether the slot is unused (its GDT descriptor is zero).
    pub fn is_empty(&self) -> bool {
        *self == UserDesc::empty(self.entry_number)
    }
}

/// Register state of an i386 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// General registers in user_regs_struct order (ebx … xss).
    pub gp: [u32; 17],
    /// x87, SSE and XSAVE state (the 64-bit FXSAVE layout, as the kernel
    /// saves it for compat tasks).
    pub fp: FpState,
    /// GDT TLS slots 12, 13 and 14.
    pub tls: [UserDesc; TLS_SLOTS],
}
