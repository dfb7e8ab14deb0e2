//! The register state of a thread, one module per architecture: the
//! values themselves, in the order and widths the architecture's kernel
//! gives them, with no trace of how CRIU stores them or of the notes a
//! core carries them in (the crate's CRIU decoders fill these types in,
//! its note builders lay them out).

pub mod aarch64;
pub mod arm;
pub mod i386;
pub mod loongarch64;
pub mod mips64;
pub mod ppc64;
pub mod riscv64;
pub mod s390x;
pub mod x86;
pub mod x86_64;

/// An architecture a checkpointed process can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
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
    /// 32-bit Arm, EABI (the only 32-bit Arm CRIU runs on).
    Arm,
    /// 64-bit little-endian MIPS, n64 (the only MIPS CRIU runs on).
    Mips64el,
    /// 64-bit LoongArch.
    Loongarch64,
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
        Arch::Arm,
        Arch::Mips64el,
        Arch::Loongarch64,
    ];

    /// Name as `uname -m` prints it, but for the little-endian ones whose
    /// `uname -m` does not say so (ppc64le, mips64el), and 32-bit Arm,
    /// whose `uname -m` names the CPU's revision (armv7l, armv6l).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
            Arch::Arm => "arm",
            Arch::Mips64el => "mips64el",
            Arch::Loongarch64 => "loongarch64",
        }
    }

    /// Whether the architecture stores words most significant byte first.
    pub fn big_endian(self) -> bool {
        self == Arch::S390x
    }

    /// The number of SIGSTOP: 23 on MIPS, 19 on every other architecture
    /// here.
    pub fn sigstop(self) -> u32 {
        match self {
            Arch::Mips64el => 23,
            _ => 19,
        }
    }

    /// Page size when the checkpoint does not say (its saved auxiliary
    /// vector lacks AT_PAGESZ, which no kernel leaves out): the default of
    /// the architecture's kernel configuration.
    pub fn default_page_size(self) -> u64 {
        match self {
            Arch::Ppc64le => 65536,
            Arch::Loongarch64 => 16384,
            _ => 4096,
        }
    }
}

/// The register state of one thread.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// 32-bit Arm registers.
    Arm(Box<arm::Regs>),
    /// MIPS64 registers.
    Mips64el(Box<mips64::Regs>),
    /// LoongArch64 registers.
    Loongarch64(Box<loongarch64::Regs>),
}
