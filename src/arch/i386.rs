//! i386: the notes an x86-64 kernel writes for a 32-bit (compat) process
//! (compat_binfmt_elf, with the regsets of the kernel's x86_32 view in
//! their order): ELF32 EM_386; NT_PRSTATUS with the 17-register
//! user_regs_struct; NT_PRFPREG as user_i387_ia32_struct, the FSAVE layout
//! the kernel converts the FXSAVE area into (convert_from_fxsr);
//! NT_PRXFPREG, the FXSAVE area itself; NT_X86_XSTATE; and NT_386_TLS, the
//! three GDT TLS slots, where any is in use.
//!
//! Not written, because CRIU does not save it: NT_386_IOPERM (the I/O
//! permission bitmap).

use super::{x86, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::i386::{Regs, UserDesc, CS, DS};
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (ELFCLASS32, EM_386).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: false,
    big_endian: false,
    machine: 3,
    flags: 0,
};
/// Note layout: 32-bit words, 16-bit uids in NT_PRPSINFO.
pub(crate) const ABI: Abi = notes::ILP32_LE_UID16;

/// Size of struct user_desc.
const USER_DESC_SIZE: usize = 16;

/// struct user_desc: three words, then the flag bits from bit 0 up
/// (seg_32bit, contents (2 bits), read_exec_only, limit_in_pages,
/// seg_not_present, useable, lm — 0 for a 32-bit data segment).
fn user_desc(d: &UserDesc) -> [u8; USER_DESC_SIZE] {
    let flags = u32::from(d.seg_32bit)
        | u32::from(d.contents & 3) << 1
        | u32::from(d.read_exec_only) << 3
        | u32::from(d.limit_in_pages) << 4
        | u32::from(d.seg_not_present) << 5
        | u32::from(d.useable) << 6;
    let mut out = [0; USER_DESC_SIZE];
    for (i, w) in [d.entry_number, d.base_addr, d.limit, flags]
        .into_iter()
        .enumerate()
    {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The FSAVE tag of one x87 register from its 80-bit contents: valid (0),
/// zero (1) or special (2), as the kernel's twd_fxsr_to_i387 classifies it.
fn x87_tag(reg: &[u8]) -> u32 {
    let exponent = u16::from_le_bytes([reg[8], reg[9]]) & 0x7fff;
    let significand = u64::from_le_bytes(reg[..8].try_into().unwrap_or_default());
    match exponent {
        0x7fff => 2,
        0 if significand == 0 => 1,
        0 => 2,
        _ if significand >> 63 != 0 => 0,
        _ => 2,
    }
}

/// The full FSAVE tag word (two bits per physical register, 3 = empty)
/// from the abridged FXSAVE one, with the upper half set as the kernel
/// sets it.
fn i387_tag_word(r: &Regs) -> u32 {
    let fx = &r.fp.fx;
    let top = usize::from((fx.swd >> 11) & 7);
    (0..8).fold(0xffff_0000, |tw, i| {
        let tag = if fx.twd & (1 << i) == 0 {
            3
        } else {
            // Physical register i is st((i - top) mod 8).
            let st = (i + 8 - top) % 8;
            x87_tag(&fx.st[16 * st..16 * st + 10])
        };
        tw | tag << (2 * i)
    })
}

/// pr_reg: the 32-bit user_regs_struct.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    r.gp.iter().flat_map(|r| r.to_le_bytes()).collect()
}

/// NT_PRFPREG: the 108-byte user_i387_ia32_struct, converted from the
/// FXSAVE area as an x86-64 kernel converts it: control and status words
/// with the upper half set, the full tag word, the 32-bit instruction and
/// operand offsets, cs as the instruction selector (the opcode and the
/// real selectors are not saved in 64-bit mode), ds with the upper half
/// set as the operand selector, then st0-st7 in 10 bytes each.
fn fpregset(r: &Regs) -> Vec<u8> {
    let fx = &r.fp.fx;
    let mut e = Enc::new(ABI);
    e.u32(0xffff_0000 | u32::from(fx.cwd));
    e.u32(0xffff_0000 | u32::from(fx.swd));
    e.u32(i387_tag_word(r));
    e.u32(fx.rip as u32).u32(r.gp[CS]);
    e.u32(fx.rdp as u32).u32(0xffff_0000 | (r.gp[DS] & 0xffff));
    for reg in fx.st.chunks(16) {
        e.bytes(&reg[..10]);
    }
    e.finish()
}

/// NT_386_TLS: the three TLS slots, or nothing where none is in use (the
/// regset is inactive then and the kernel writes no note).
fn tls_note(r: &Regs) -> Option<Vec<u8>> {
    if r.tls.iter().all(UserDesc::is_empty) {
        return None;
    }
    Some(r.tls.iter().flat_map(user_desc).collect())
}

/// The register sets the kernel writes after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    let mut out = vec![
        Regset::new(nt::PRFPREG, fpregset(r)),
        Regset::new(nt::PRXFPREG, x86::fxsave_area(&r.fp)),
    ];
    if let Some(x) = x86::xstate(&r.fp) {
        out.push(Regset::new(nt::X86_XSTATE, x));
    }
    if let Some(t) = tls_note(r) {
        out.push(Regset::new(nt::I386_TLS, t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::i386::{decode, sample};
    use crate::model::regs::i386::{EIP, TLS_MIN};

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn prstatus_regs_follow_user_regs_struct() {
        let r = decode(&sample()).unwrap();
        let b = prstatus_regs(&r);
        assert_eq!(b.len(), 68); // sizeof(struct user_regs_struct32)
        let at = |name: &str| {
            let i = [
                "ebx", "ecx", "edx", "esi", "edi", "ebp", "eax", "xds", "xes", "xfs", "xgs",
                "orig_eax", "eip", "xcs", "eflags", "esp", "xss",
            ]
            .iter()
            .position(|n| *n == name)
            .unwrap();
            u32_at(&b, 4 * i)
        };
        assert_eq!(at("ebx"), 1);
        assert_eq!(at("ebp"), 6);
        assert_eq!(at("eax"), 0xffff_fe00);
        assert_eq!(at("xgs"), 0x63);
        assert_eq!(at("orig_eax"), 0xffff_ffff);
        assert_eq!(at("eip"), 0xf7fb_95e9);
        assert_eq!(at("xcs"), 0x23);
        assert_eq!(at("esp"), 0xff95_f8e0);
        assert_eq!(at("xss"), 0x2b);
        assert!(!b.windows(4).any(|w| w == 0xdeadu32.to_le_bytes()));
        let st = crate::notes::PrStatus::default();
        let d = crate::notes::prstatus(ABI, &st, &b, true);
        assert_eq!(d.len(), 144);
        assert_eq!(u32_at(&d, 72 + 4 * EIP), 0xf7fb_95e9); // pr_reg at 72
        assert_eq!(u32_at(&d, 140), 1); // pr_fpvalid
    }

    #[test]
    fn i387_layout_matches_user_i387_ia32_struct() {
        let r = decode(&sample()).unwrap();
        let b = fpregset(&r);
        assert_eq!(b.len(), 108);
        assert_eq!(u32_at(&b, 0), 0xffff_037f); // cwd
        assert_eq!(u32_at(&b, 4), 0xffff_3020); // swd
                                                // Physical registers 0-5 empty (3), 6 valid (0), 7 zero (1).
        assert_eq!(u32_at(&b, 8), 0xffff_0000 | 0b0100_1111_1111_1111);
        assert_eq!(u32_at(&b, 12), 0xf7e0_1234); // fip
        assert_eq!(u32_at(&b, 16), 0x23); // fcs
        assert_eq!(u32_at(&b, 20), 0xff80_1000); // foo
        assert_eq!(u32_at(&b, 24), 0xffff_002b); // fos
                                                 // st0 in 10 bytes at 28: significand 0x8000000000000000, exponent 0x3fff.
        assert_eq!(&b[28..38], &[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        assert!(b[38..108].iter().all(|&x| x == 0));
    }

    #[test]
    fn tag_word_classifies_like_the_kernel() {
        let mut r = decode(&sample()).unwrap();
        let set = |r: &mut Regs, slot: usize, sig: u64, exp: u16| {
            r.fp.fx.st[16 * slot..16 * slot + 8].copy_from_slice(&sig.to_le_bytes());
            r.fp.fx.st[16 * slot + 8..16 * slot + 10].copy_from_slice(&exp.to_le_bytes());
        };
        r.fp.fx.swd = 0; // TOP 0: st(i) is physical register i
        r.fp.fx.twd = 0xff;
        set(&mut r, 0, 1 << 63, 0x3fff); // valid
        set(&mut r, 1, 0, 0); // zero
        set(&mut r, 2, 1, 0); // denormal: special
        set(&mut r, 3, 1 << 63, 0x7fff); // infinity: special
        set(&mut r, 4, 1, 0x3fff); // unnormal: special
        set(&mut r, 5, 1 << 63, 0x8001); // negative, valid
                                         // Physical registers 6 and 7 hold zeros.
        assert_eq!(i387_tag_word(&r), 0xffff_0000 | 0b01_01_00_10_10_10_01_00);
    }

    #[test]
    fn regsets_in_the_x86_32_order() {
        let r = decode(&sample()).unwrap();
        let n = regsets(&r);
        let kinds: Vec<(u32, usize)> = n.iter().map(|n| (n.kind, n.desc.len())).collect();
        assert_eq!(
            kinds,
            vec![
                (nt::PRFPREG, 108),
                (nt::PRXFPREG, 512),
                (nt::X86_XSTATE, 2696),
                (nt::I386_TLS, 48),
            ]
        );
        let tls = &n[3].desc;
        assert_eq!(u32_at(tls, 0), TLS_MIN);
        assert_eq!(u32_at(tls, 4), 0xf7fb_2540);
        assert_eq!(u32_at(tls, 8), 0xfffff);
        // seg_32bit | limit_in_pages | useable
        assert_eq!(u32_at(tls, 12), 0b101_0001);
        // Empty slots read back as read-only and not present.
        assert_eq!(u32_at(tls, 16), 13);
        assert_eq!(u32_at(tls, 28), 0b10_1000);
        assert_eq!(u32_at(tls, 32), 14);
        assert_eq!(&n[1].desc[..416], &n[2].desc[..416]);
    }

    #[test]
    fn no_tls_note_without_tls() {
        let mut ti = sample();
        ti.tls.truncate(0);
        let r = decode(&ti).unwrap();
        assert!(tls_note(&r).is_none());
        assert_eq!(regsets(&r).len(), 3);
        ti.fpregs.xsave = None;
        assert_eq!(regsets(&decode(&ti).unwrap()).len(), 2);
    }
}
