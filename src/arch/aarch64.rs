//! AArch64: the kernel's arm64 core notes, in the order of its regset
//! table: NT_PRSTATUS (user_pt_regs), NT_PRFPREG (user_fpsimd_state),
//! NT_ARM_TLS (tpidr_el0), and, where pointer-authentication keys were
//! saved, NT_ARM_PAC_MASK, NT_ARM_PAC_ENABLED_KEYS, NT_ARM_PACA_KEYS and
//! NT_ARM_PACG_KEYS.
//!
//! Not written, because CRIU does not save them: NT_ARM_HW_BREAK/WATCH,
//! NT_ARM_SYSTEM_CALL, SVE/SME state and the tagged-address control.

use super::{words, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::aarch64::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (EM_AARCH64).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: false,
    machine: 183,
    flags: 0,
};
/// Note layout.
pub(crate) const ABI: Abi = notes::LP64_LE;

/// NT_ARM_PAC_MASK's value: the bits of a user address that hold a pointer
/// authentication code, GENMASK(54, vabits_actual) as the kernel's
/// ptrauth_user_pac_mask() makes it. CRIU does not record the kernel's VA
/// size (36 to 52 bits: 48 on most 4 KiB kernels, 47 on 16 KiB ones), so it
/// is taken from `top`, the end of the highest mapping: every mapping lies
/// below 2^vabits, and a mask that starts lower than the kernel's still
/// clears no bit any address of the process uses.
fn pac_mask(top: u64) -> u64 {
    let bits = (64 - top.saturating_sub(1).leading_zeros()).clamp(36, 52);
    (u64::MAX >> (63 - 54)) & !((1u64 << bits) - 1)
}

/// pr_reg: user_pt_regs.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    words(ABI, &r.gp)
}

/// NT_PRFPREG: user_fpsimd_state (v0-v31, fpsr, fpcr, 8 reserved bytes).
fn fpregset(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    e.bytes(&words(ABI, &r.vregs));
    e.u32(r.fpsr).u32(r.fpcr).zeros(8);
    e.finish()
}

/// The register sets the kernel writes after NT_PRSTATUS.
/// `top` is the end of the process's highest mapping.
pub(crate) fn regsets(r: &Regs, top: u64) -> Vec<Regset> {
    let mut out = vec![
        Regset::new(nt::PRFPREG, fpregset(r)),
        Regset::new(nt::ARM_TLS, words(ABI, &[r.tls])),
    ];
    if let Some(p) = &r.pac {
        let mask = words(ABI, &[pac_mask(top), pac_mask(top)]);
        out.push(Regset::new(nt::ARM_PAC_MASK, mask));
        let enabled = words(ABI, &[p.enabled_keys]);
        out.push(Regset::new(nt::ARM_PAC_ENABLED_KEYS, enabled));
        out.push(Regset::new(nt::ARM_PACA_KEYS, words(ABI, &p.address_keys)));
        if let Some(g) = p.generic_key {
            out.push(Regset::new(nt::ARM_PACG_KEYS, words(ABI, &g)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::aarch64::{decode, sample, sample_with_pac};

    #[test]
    fn notes_have_the_kernel_sizes_and_order() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 34 * 8); // sizeof(struct user_pt_regs)
        assert_eq!(&pr[31 * 8..32 * 8], &0x7ff0u64.to_le_bytes());
        assert_eq!(&pr[32 * 8..33 * 8], &0x400800u64.to_le_bytes());
        let n = regsets(&r, 0xffff_ffff_f000);
        let kinds: Vec<u32> = n.iter().map(|n| n.kind).collect();
        assert_eq!(kinds, vec![nt::PRFPREG, nt::ARM_TLS]);
        assert_eq!(n[0].desc.len(), 528); // sizeof(struct user_fpsimd_state)
        assert_eq!(&n[0].desc[8..16], &101u64.to_le_bytes());
        assert_eq!(&n[0].desc[512..520], &[0x10, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(n[1].desc, 0x4a8740u64.to_le_bytes());
    }

    #[test]
    fn pac_keys_become_their_notes() {
        // A 48-bit address space: its stack ends just below 2^48.
        let n = regsets(&decode(&sample_with_pac()).unwrap(), 0xffff_ffff_f000);
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
        assert_eq!(&n[2].desc[..8], &0x007f_0000_0000_0000u64.to_le_bytes());
        assert_eq!(&n[2].desc[8..], &0x007f_0000_0000_0000u64.to_le_bytes());
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
    fn the_pac_mask_starts_at_the_address_space_width() {
        // GENMASK(54, 48) on 48-bit kernels (4 KiB pages, 4 levels).
        assert_eq!(pac_mask(0xffff_ffff_f000), 0x007f_0000_0000_0000);
        assert_eq!(pac_mask(1 << 48), 0x007f_0000_0000_0000);
        // GENMASK(54, 47) on 47-bit ones (16 KiB pages): the stack of the
        // aarch64-16k fixture ends at 2^47.
        assert_eq!(pac_mask(0x8000_0000_0000), 0x007f_8000_0000_0000);
        // GENMASK(54, 39) on 39-bit ones (4 KiB pages, 3 levels).
        assert_eq!(pac_mask(0x80_0000_0000), 0x007f_ff80_0000_0000);
        // Never below the smallest VA size arm64 has, nor above 52 bits.
        assert_eq!(pac_mask(0), 0x007f_fff0_0000_0000);
        assert_eq!(pac_mask(u64::MAX), 0x0070_0000_0000_0000);
    }
}
