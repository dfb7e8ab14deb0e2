//! AArch64: CRIU's `thread_info_aarch64` → the kernel's arm64 core notes, in
//! the order of its regset table: NT_PRSTATUS (user_pt_regs), NT_PRFPREG
//! (user_fpsimd_state), NT_ARM_TLS (tpidr_el0), and, where CRIU saved
//! pointer-authentication keys, NT_ARM_PAC_MASK, NT_ARM_PAC_ENABLED_KEYS,
//! NT_ARM_PACA_KEYS and NT_ARM_PACG_KEYS.
//!
//! Not written, because CRIU does not save them: NT_ARM_HW_BREAK/WATCH,
//! NT_ARM_SYSTEM_CALL, SVE/SME state and the tagged-address control.

use anyhow::{Context, Result};

use super::{array, words};
use crate::elf::ElfTarget;
use crate::notes::{self, nt, Abi, Enc, Note};
use crate::proto;

/// ELF header values (EM_AARCH64).
pub const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 183,
    flags: 0,
};
/// Note layout.
pub const ABI: Abi = notes::LP64_LE;

/// Index of sp in [`Regs::gp`] (user_pt_regs order: x0-x30, sp, pc, pstate).
pub const SP: usize = 31;
/// Index of pc.
pub const PC: usize = 32;
/// Index of pstate.
pub const PSTATE: usize = 33;

/// Bits of a user address that hold no address when the kernel's virtual
/// addresses are 48 bits wide (GENMASK(54, 48)): where pointer
/// authentication codes sit. CRIU does not record the VA size; 48 bits is
/// the arm64 default, and the mask is also right for 52-bit kernels as long
/// as no mapping lies above 2^48.
pub const PAC_MASK_VA48: u64 = 0x007f_0000_0000_0000;

/// Pointer-authentication state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pac {
    /// APIA, APIB, APDA, APDB keys as (lo, hi) halves, in that order.
    pub address_keys: [u64; 8],
    /// PR_PAC_ENABLED_KEYS bits.
    pub enabled_keys: u64,
    /// APGA key (lo, hi), where the CPU has generic authentication.
    pub generic_key: Option<[u64; 2]>,
}

/// Register state of an AArch64 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// x0-x30, sp, pc, pstate.
    pub gp: [u64; 34],
    /// v0-v31 as the kernel stores them (two little-endian words each).
    pub vregs: [u64; 64],
    /// FP status register.
    pub fpsr: u32,
    /// FP control register.
    pub fpcr: u32,
    /// tpidr_el0, the thread pointer.
    pub tls: u64,
    /// Pointer-authentication keys, if CRIU saved them.
    pub pac: Option<Pac>,
}

impl Regs {
    /// Decodes CRIU's saved AArch64 thread state.
    pub fn from_criu(ti: &proto::ThreadInfoAarch64) -> Result<Regs> {
        let g = &ti.gpregs;
        let x: [u64; 31] = array("gpregs.regs", &g.regs)?;
        let mut gp = [0; 34];
        gp[..31].copy_from_slice(&x);
        gp[SP] = g.sp;
        gp[PC] = g.pc;
        gp[PSTATE] = g.pstate;
        let pac = ti.pac_keys.as_ref().and_then(|k| {
            let a = k.address_keys.as_ref()?;
            Some(Pac {
                address_keys: [
                    a.apiakey_lo,
                    a.apiakey_hi,
                    a.apibkey_lo,
                    a.apibkey_hi,
                    a.apdakey_lo,
                    a.apdakey_hi,
                    a.apdbkey_lo,
                    a.apdbkey_hi,
                ],
                enabled_keys: a.pac_enabled_key,
                generic_key: k
                    .generic_keys
                    .as_ref()
                    .map(|g| [g.apgakey_lo, g.apgakey_hi]),
            })
        });
        Ok(Regs {
            gp,
            vregs: array("fpsimd.vregs", &ti.fpsimd.vregs).context("fpsimd")?,
            fpsr: ti.fpsimd.fpsr,
            fpcr: ti.fpsimd.fpcr,
            tls: ti.tls,
            pac,
        })
    }

    /// pr_reg: user_pt_regs.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        words(ABI, &self.gp)
    }

    /// NT_PRFPREG: user_fpsimd_state (v0-v31, fpsr, fpcr, 8 reserved bytes).
    pub fn fpregset(&self) -> Vec<u8> {
        let mut e = Enc::new(ABI);
        e.bytes(&words(ABI, &self.vregs));
        e.u32(self.fpsr).u32(self.fpcr).zeros(8);
        e.finish()
    }

    /// The regset notes the kernel writes after NT_PRSTATUS.
    pub fn regset_notes(&self) -> Vec<Note> {
        let mut out = vec![
            Note::new(notes::CORE, nt::PRFPREG, self.fpregset()),
            Note::new(notes::LINUX, nt::ARM_TLS, words(ABI, &[self.tls])),
        ];
        if let Some(p) = &self.pac {
            let mask = words(ABI, &[PAC_MASK_VA48, PAC_MASK_VA48]);
            out.push(Note::new(notes::LINUX, nt::ARM_PAC_MASK, mask));
            let enabled = words(ABI, &[p.enabled_keys]);
            out.push(Note::new(notes::LINUX, nt::ARM_PAC_ENABLED_KEYS, enabled));
            let keys = words(ABI, &p.address_keys);
            out.push(Note::new(notes::LINUX, nt::ARM_PACA_KEYS, keys));
            if let Some(g) = p.generic_key {
                out.push(Note::new(notes::LINUX, nt::ARM_PACG_KEYS, words(ABI, &g)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> proto::ThreadInfoAarch64 {
        proto::ThreadInfoAarch64 {
            clear_tid_addr: 0,
            tls: 0x4a8740,
            gpregs: proto::Aarch64Regs {
                regs: (0..31).collect(),
                sp: 0x7ff0,
                pc: 0x400800,
                pstate: 0x8000_0000,
            },
            fpsimd: proto::Aarch64Fpsimd {
                vregs: (100..164).collect(),
                fpsr: 0x10,
                fpcr: 0x0300_0000,
            },
            pac_keys: None,
        }
    }

    #[test]
    fn notes_have_the_kernel_sizes_and_order() {
        let r = Regs::from_criu(&sample()).unwrap();
        let pr = r.prstatus_regs();
        assert_eq!(pr.len(), 34 * 8); // sizeof(struct user_pt_regs)
        assert_eq!(&pr[31 * 8..32 * 8], &0x7ff0u64.to_le_bytes());
        assert_eq!(&pr[32 * 8..33 * 8], &0x400800u64.to_le_bytes());
        let n = r.regset_notes();
        let kinds: Vec<u32> = n.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![nt::PRFPREG, nt::ARM_TLS]);
        assert_eq!(n[0].desc.len(), 528); // sizeof(struct user_fpsimd_state)
        assert_eq!(&n[0].desc[8..16], &101u64.to_le_bytes());
        assert_eq!(&n[0].desc[512..520], &[0x10, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(n[1].desc, 0x4a8740u64.to_le_bytes());
    }

    #[test]
    fn pac_keys_become_their_notes() {
        let mut ti = sample();
        ti.pac_keys = Some(proto::Aarch64PacKeys {
            address_keys: Some(proto::Aarch64PacAddressKeys {
                apiakey_lo: 1,
                apiakey_hi: 2,
                apdbkey_hi: 8,
                pac_enabled_key: 0xf,
                ..Default::default()
            }),
            generic_keys: Some(proto::Aarch64PacGenericKeys {
                apgakey_lo: 9,
                apgakey_hi: 10,
            }),
        });
        let n = Regs::from_criu(&ti).unwrap().regset_notes();
        let kinds: Vec<u32> = n.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                nt::PRFPREG,
                nt::ARM_TLS,
                nt::ARM_PAC_MASK,
                nt::ARM_PAC_ENABLED_KEYS,
                nt::ARM_PACA_KEYS,
                nt::ARM_PACG_KEYS
            ]
        );
        assert_eq!(n[2].desc.len(), 16); // struct user_pac_mask
        assert_eq!(&n[2].desc[..8], &PAC_MASK_VA48.to_le_bytes());
        assert_eq!(n[3].desc, 0xfu64.to_le_bytes());
        assert_eq!(n[4].desc.len(), 64); // struct user_pac_address_keys
        assert_eq!(
            &n[4].desc[..16],
            &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(n[4].desc[56], 8);
        assert_eq!(n[5].desc.len(), 16); // struct user_pac_generic_keys
    }

    #[test]
    fn short_arrays_are_errors() {
        let mut ti = sample();
        ti.gpregs.regs.pop();
        let e = Regs::from_criu(&ti).unwrap_err().to_string();
        assert!(e.contains("gpregs.regs holds 30"), "{e}");
        let mut ti = sample();
        ti.fpsimd.vregs.push(1);
        assert!(Regs::from_criu(&ti).is_err());
    }
}
