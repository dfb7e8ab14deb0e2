//! Architectures: their register state, how CRIU stores it, and the notes
//! the kernel writes for it. One module per architecture; everything else
//! is shared.

pub mod x86_64;

pub use crate::elf::ElfTarget;
use crate::notes::{Abi, Note};

/// An architecture a checkpointed process can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64.
    X86_64,
}

impl Arch {
    /// Every architecture criu2core converts.
    pub const ALL: &'static [Arch] = &[Arch::X86_64];

    /// Name as `uname -m` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
        }
    }

    /// ELF header values of its cores.
    pub fn elf(self) -> ElfTarget {
        match self {
            Arch::X86_64 => x86_64::ELF,
        }
    }

    /// Layout of the shared note structures.
    pub fn abi(self) -> Abi {
        match self {
            Arch::X86_64 => x86_64::ABI,
        }
    }

    /// The number of SIGSTOP.
    pub fn sigstop(self) -> u32 {
        19
    }

    /// Page size when the checkpoint does not say.
    pub fn default_page_size(self) -> u64 {
        4096
    }
}

/// The register state of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registers {
    /// x86-64 registers.
    X86_64(Box<x86_64::Regs>),
}

impl Registers {
    /// The architecture these registers belong to.
    pub fn arch(&self) -> Arch {
        match self {
            Registers::X86_64(_) => Arch::X86_64,
        }
    }

    /// pr_reg of NT_PRSTATUS.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        match self {
            Registers::X86_64(r) => r.prstatus_regs(),
        }
    }

    /// The notes that follow NT_PRSTATUS for this thread, in kernel order.
    pub fn regset_notes(&self) -> Vec<Note> {
        match self {
            Registers::X86_64(r) => r.regset_notes(),
        }
    }

    /// The program counter.
    pub fn pc(&self) -> u64 {
        match self {
            Registers::X86_64(r) => r.gp[x86_64::RIP],
        }
    }

    /// The stack pointer.
    pub fn sp(&self) -> u64 {
        match self {
            Registers::X86_64(r) => r.gp[x86_64::RSP],
        }
    }
}
