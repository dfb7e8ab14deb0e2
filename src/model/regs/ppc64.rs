//! ppc64le registers. Each group beyond the general registers is there
//! only where it was saved.

/// Words of elf_gregset_t (ELF_NGREG).
pub const NGREG: usize = 48;
/// Index of nip in [`Regs::gp`] (pt_regs order: gpr0-31, nip, msr, orig_gpr3,
/// ctr, link, xer, ccr, softe, trap, dar, dsisr, result).
pub const NIP: usize = 32;

/// Register state of a ppc64le thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// elf_gregset_t: the user_pt_regs words, zero-padded to 48.
    pub gp: [u64; NGREG],
    /// fpr0-31 and fpscr.
    pub fp: Option<[u64; 33]>,
    /// vr0-31 and vscr as the kernel stores them (two words each), and vrsave.
    pub vmx: Option<([u64; 66], u32)>,
    /// The low doublewords of vsr0-31.
    pub vsx: Option<[u64; 32]>,
}
