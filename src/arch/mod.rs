//! Architectures: their register state, how CRIU stores it, and the notes
//! the kernel writes for it. One module per architecture; everything else
//! is shared.

pub mod aarch64;
pub mod i386;
pub mod ppc64;
pub mod riscv64;
pub mod s390x;
pub mod x86;
pub mod x86_64;

use anyhow::{bail, Result};

pub use crate::elf::ElfTarget;
use crate::notes::{Abi, Enc, Note};

/// An architecture a checkpointed process can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// 32-bit x86: a compat task of an x86-64 checkpoint.
    I386,
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit RISC-V.
    Riscv64,
    /// 64-bit little-endian PowerPC (the only PowerPC CRIU runs on).
    Ppc64le,
    /// 64-bit IBM Z (big-endian).
    S390x,
}

impl Arch {
    /// Every architecture criu2core converts.
    pub const ALL: &'static [Arch] = &[
        Arch::X86_64,
        Arch::I386,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::Ppc64le,
        Arch::S390x,
    ];

    /// Name as `uname -m` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
        }
    }

    /// ELF header values of its cores.
    pub fn elf(self) -> ElfTarget {
        match self {
            Arch::X86_64 => x86_64::ELF,
            Arch::I386 => i386::ELF,
            Arch::Aarch64 => aarch64::ELF,
            Arch::Riscv64 => riscv64::ELF,
            Arch::Ppc64le => ppc64::ELF,
            Arch::S390x => s390x::ELF,
        }
    }

    /// Layout of the shared note structures.
    pub fn abi(self) -> Abi {
        match self {
            Arch::X86_64 => x86_64::ABI,
            Arch::I386 => i386::ABI,
            Arch::Aarch64 => aarch64::ABI,
            Arch::Riscv64 => riscv64::ABI,
            Arch::Ppc64le => ppc64::ABI,
            Arch::S390x => s390x::ABI,
        }
    }

    /// The number of SIGSTOP (19 on every architecture here).
    pub fn sigstop(self) -> u32 {
        19
    }

    /// Page size when the checkpoint does not say.
    pub fn default_page_size(self) -> u64 {
        match self {
            Arch::Ppc64le => 65536,
            _ => 4096,
        }
    }
}

/// The register state of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registers {
    /// x86-64 registers.
    X86_64(Box<x86_64::Regs>),
    /// i386 registers.
    I386(Box<i386::Regs>),
    /// AArch64 registers.
    Aarch64(Box<aarch64::Regs>),
    /// RISC-V 64 registers.
    Riscv64(Box<riscv64::Regs>),
    /// ppc64le registers.
    Ppc64le(Box<ppc64::Regs>),
    /// s390x registers.
    S390x(Box<s390x::Regs>),
}

impl Registers {
    /// The architecture these registers belong to.
    pub fn arch(&self) -> Arch {
        match self {
            Registers::X86_64(_) => Arch::X86_64,
            Registers::I386(_) => Arch::I386,
            Registers::Aarch64(_) => Arch::Aarch64,
            Registers::Riscv64(_) => Arch::Riscv64,
            Registers::Ppc64le(_) => Arch::Ppc64le,
            Registers::S390x(_) => Arch::S390x,
        }
    }

    /// pr_reg of NT_PRSTATUS.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        match self {
            Registers::X86_64(r) => r.prstatus_regs(),
            Registers::I386(r) => r.prstatus_regs(),
            Registers::Aarch64(r) => r.prstatus_regs(),
            Registers::Riscv64(r) => r.prstatus_regs(),
            Registers::Ppc64le(r) => r.prstatus_regs(),
            Registers::S390x(r) => r.prstatus_regs(),
        }
    }

    /// The notes that follow NT_PRSTATUS for this thread, in kernel order.
    pub fn regset_notes(&self) -> Vec<Note> {
        match self {
            Registers::X86_64(r) => r.regset_notes(),
            Registers::I386(r) => r.regset_notes(),
            Registers::Aarch64(r) => r.regset_notes(),
            Registers::Riscv64(r) => r.regset_notes(),
            Registers::Ppc64le(r) => r.regset_notes(),
            Registers::S390x(r) => r.regset_notes(),
        }
    }

    /// The program counter.
    pub fn pc(&self) -> u64 {
        match self {
            Registers::X86_64(r) => r.gp[x86_64::RIP],
            Registers::I386(r) => u64::from(r.gp[i386::EIP]),
            Registers::Aarch64(r) => r.gp[aarch64::PC],
            Registers::Riscv64(r) => r.gp[riscv64::PC],
            Registers::Ppc64le(r) => r.gp[ppc64::NIP],
            Registers::S390x(r) => r.psw_addr,
        }
    }

    /// The stack pointer.
    pub fn sp(&self) -> u64 {
        match self {
            Registers::X86_64(r) => r.gp[x86_64::RSP],
            Registers::I386(r) => u64::from(r.gp[i386::ESP]),
            Registers::Aarch64(r) => r.gp[aarch64::SP],
            Registers::Riscv64(r) => r.gp[riscv64::SP],
            Registers::Ppc64le(r) => r.gp[1],
            Registers::S390x(r) => r.gprs[15],
        }
    }
}

/// `N` values of a repeated field, or an error naming the field.
pub(crate) fn array<T: Copy, const N: usize>(what: &str, v: &[T]) -> Result<[T; N]> {
    match v.try_into() {
        Ok(a) => Ok(a),
        Err(_) => bail!("{what} holds {} values, expected {N}", v.len()),
    }
}

/// 64-bit words in the byte order of `abi`.
pub(crate) fn words(abi: Abi, v: &[u64]) -> Vec<u8> {
    let mut e = Enc::new(abi);
    for &w in v {
        e.u64(w);
    }
    e.finish()
}
