//! CRIU's saved thread state (`thread_info_*` in core-N.img) → the model's
//! register sets, one module per architecture. Notes are made from the
//! model elsewhere ([`crate::arch`]); nothing here knows ELF.

pub(crate) mod aarch64;
pub(crate) mod arm;
pub(crate) mod i386;
pub(crate) mod loongarch64;
pub(crate) mod mips64;
pub(crate) mod ppc64;
pub(crate) mod riscv64;
pub(crate) mod s390x;
pub(crate) mod x86;
pub(crate) mod x86_64;

use anyhow::{bail, Context, Result};

use crate::error::{fault, ErrorKind};
use crate::model::{Arch, Registers};
use crate::proto;

/// `N` values of a repeated field, or an error naming the field.
pub(crate) fn array<T: Copy, const N: usize>(what: &str, v: &[T]) -> Result<[T; N]> {
    match v.try_into() {
        Ok(a) => Ok(a),
        Err(_) => bail!("{what} holds {} values, expected {N}", v.len()),
    }
}

/// The architecture a core image was dumped on: x86-64 images hold 32-bit
/// (compat) tasks too, whose registers CRIU marks with mode COMPAT.
pub(crate) fn arch_of(core: &proto::Core) -> Result<Arch> {
    use proto::core::Arch as M;
    Ok(match M::try_from(core.mtype) {
        Ok(M::X8664) => match &core.x86 {
            Some(ti) if x86::is_compat(ti) => Arch::I386,
            _ => Arch::X86_64,
        },
        Ok(M::Aarch64) => Arch::Aarch64,
        Ok(M::Riscv64) => Arch::Riscv64,
        Ok(M::Ppc64) => Arch::Ppc64le,
        Ok(M::S390) => Arch::S390x,
        Ok(M::Arm) => Arch::Arm,
        Ok(M::Mips) => Arch::Mips64el,
        Ok(M::Loongarch64) => Arch::Loongarch64,
        Ok(M::Unknown) | Err(_) => {
            return Err(fault(
                ErrorKind::UnsupportedArch,
                format!("unknown architecture code {}", core.mtype),
            ))
        }
    })
}

/// The registers of the thread whose core image is `core`, which must be
/// of architecture `arch`.
pub(crate) fn registers(core: &proto::Core, arch: Arch) -> Result<Registers> {
    let found = arch_of(core)?;
    if found != arch {
        bail!(
            "thread is {} but its process is {}",
            found.name(),
            arch.name()
        );
    }
    Ok(match arch {
        Arch::X86_64 => {
            let ti = core.x86.as_ref().context("no x86 register state")?;
            Registers::X86_64(Box::new(x86_64::decode(ti)?))
        }
        Arch::I386 => {
            let ti = core.x86.as_ref().context("no x86 register state")?;
            Registers::I386(Box::new(i386::decode(ti)?))
        }
        Arch::Aarch64 => {
            let ti = core.aarch64.as_ref().context("no aarch64 register state")?;
            Registers::Aarch64(Box::new(aarch64::decode(ti)?))
        }
        Arch::Riscv64 => {
            let ti = core.riscv64.as_ref().context("no riscv64 register state")?;
            Registers::Riscv64(Box::new(riscv64::decode(ti)?))
        }
        Arch::Ppc64le => {
            let ti = core.ppc64.as_ref().context("no ppc64 register state")?;
            Registers::Ppc64le(Box::new(ppc64::decode(ti)?))
        }
        Arch::S390x => {
            let ti = core.s390.as_ref().context("no s390 register state")?;
            Registers::S390x(Box::new(s390x::decode(ti)?))
        }
        Arch::Arm => {
            let ti = core.arm.as_ref().context("no arm register state")?;
            Registers::Arm(Box::new(arm::decode(ti)?))
        }
        Arch::Mips64el => {
            let ti = core.mips.as_ref().context("no mips register state")?;
            Registers::Mips64el(Box::new(mips64::decode(ti)?))
        }
        Arch::Loongarch64 => {
            let ti = core
                .loongarch64
                .as_ref()
                .context("no loongarch64 register state")?;
            Registers::Loongarch64(Box::new(loongarch64::decode(ti)?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_registers_make_an_i386_process() {
        let mut core = proto::Core {
            mtype: proto::core::Arch::X8664 as i32,
            x86: Some(proto::ThreadInfoX86::default()),
            ..Default::default()
        };
        assert_eq!(arch_of(&core).unwrap(), Arch::X86_64);
        if let Some(ti) = core.x86.as_mut() {
            ti.gpregs.mode = Some(proto::X86RegsMode::Compat as i32);
        }
        assert_eq!(arch_of(&core).unwrap(), Arch::I386);
    }
}
