//! i386: a 32-bit (compat) task of an x86-64 checkpoint, which CRIU saves
//! as `thread_info_x86` with `gpregs.mode = COMPAT` → the notes an x86-64
//! kernel writes for a 32-bit process (compat_binfmt_elf, with the regsets
//! of the kernel's x86_32 view in their order): ELF32 EM_386; NT_PRSTATUS
//! with the 17-register user_regs_struct; NT_PRFPREG as
//! user_i387_ia32_struct, the FSAVE layout the kernel converts the FXSAVE
//! area into (convert_from_fxsr); NT_PRXFPREG, the FXSAVE area itself;
//! NT_X86_XSTATE; and NT_386_TLS, the three GDT TLS slots, where any is in
//! use.
//!
//! Not written, because CRIU does not save it: NT_386_IOPERM (the I/O
//! permission bitmap).

use anyhow::{bail, Result};

use super::x86::FpState;
use crate::elf::ElfTarget;
use crate::notes::{self, nt, Abi, Enc, Note};
use crate::proto;

/// ELF header values (ELFCLASS32, EM_386).
pub const ELF: ElfTarget = ElfTarget {
    is_64: false,
    big_endian: false,
    machine: 3,
    flags: 0,
};
/// Note layout: 32-bit words, 16-bit uids in NT_PRPSINFO.
pub const ABI: Abi = notes::ILP32_LE_UID16;

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
/// Size of struct user_desc.
pub const USER_DESC_SIZE: usize = 16;

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

    /// Decodes one of CRIU's saved slots.
    pub fn from_criu(d: &proto::X86UserDesc) -> UserDesc {
        UserDesc {
            entry_number: d.entry_number,
            base_addr: d.base_addr,
            limit: d.limit,
            seg_32bit: d.seg_32bit,
            contents: u8::from(d.contents_h) << 1 | u8::from(d.contents_l),
            read_exec_only: d.read_exec_only,
            limit_in_pages: d.limit_in_pages,
            seg_not_present: d.seg_not_present,
            useable: d.usable,
        }
    }

    /// struct user_desc: three words, then the flag bits from bit 0 up
    /// (seg_32bit, contents (2 bits), read_exec_only, limit_in_pages,
    /// seg_not_present, useable, lm — 0 for a 32-bit data segment).
    pub fn bytes(&self) -> [u8; USER_DESC_SIZE] {
        let flags = u32::from(self.seg_32bit)
            | u32::from(self.contents & 3) << 1
            | u32::from(self.read_exec_only) << 3
            | u32::from(self.limit_in_pages) << 4
            | u32::from(self.seg_not_present) << 5
            | u32::from(self.useable) << 6;
        let mut out = [0; USER_DESC_SIZE];
        for (i, w) in [self.entry_number, self.base_addr, self.limit, flags]
            .into_iter()
            .enumerate()
        {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Register state of an i386 thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// General registers in user_regs_struct order (ebx … xss).
    pub gp: [u32; 17],
    /// x87, SSE and XSAVE state (the 64-bit FXSAVE layout, as CRIU saves it).
    pub fp: FpState,
    /// GDT TLS slots 12, 13 and 14.
    pub tls: [UserDesc; TLS_SLOTS],
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

impl Regs {
    /// Decodes CRIU's saved state of a 32-bit (compat) thread. CRIU stores
    /// the 32-bit registers zero-extended in the 64-bit message; r8-r15 and
    /// the segment bases are not part of a compat task's state.
    pub fn from_criu(ti: &proto::ThreadInfoX86) -> Result<Regs> {
        if !super::x86_64::is_compat(ti) {
            bail!("the registers are those of an x86-64 task, not of a 32-bit (compat) one");
        }
        let g = &ti.gpregs;
        let gp = [
            g.bx, g.cx, g.dx, g.si, g.di, g.bp, g.ax, g.ds, g.es, g.fs, g.gs, g.orig_ax, g.ip,
            g.cs, g.flags, g.sp, g.ss,
        ]
        .map(|r| r as u32);
        let mut tls = [0, 1, 2].map(|i| UserDesc::empty(TLS_MIN + i));
        let mut seen = [false; TLS_SLOTS];
        for d in &ti.tls {
            let slot = d.entry_number.wrapping_sub(TLS_MIN) as usize;
            if slot >= TLS_SLOTS {
                bail!(
                    "tls entry {} is not a GDT TLS slot ({TLS_MIN}-{})",
                    d.entry_number,
                    TLS_MIN + TLS_SLOTS as u32 - 1
                );
            }
            if std::mem::replace(&mut seen[slot], true) {
                bail!("tls entry {} is saved twice", d.entry_number);
            }
            tls[slot] = UserDesc::from_criu(d);
        }
        Ok(Regs {
            gp,
            fp: FpState::from_criu(&ti.fpregs)?,
            tls,
        })
    }

    /// pr_reg: the 32-bit user_regs_struct.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        self.gp.iter().flat_map(|r| r.to_le_bytes()).collect()
    }

    /// The full FSAVE tag word (two bits per physical register, 3 = empty)
    /// from the abridged FXSAVE one, with the upper half set as the kernel
    /// sets it.
    pub fn i387_tag_word(&self) -> u32 {
        let fx = &self.fp.fx;
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

    /// NT_PRFPREG: the 108-byte user_i387_ia32_struct, converted from the
    /// FXSAVE area as an x86-64 kernel converts it: control and status words
    /// with the upper half set, the full tag word, the 32-bit instruction
    /// and operand offsets, cs as the instruction selector (the opcode and
    /// the real selectors are not saved in 64-bit mode), ds with the upper
    /// half set as the operand selector, then st0-st7 in 10 bytes each.
    pub fn fpregset(&self) -> Vec<u8> {
        let fx = &self.fp.fx;
        let mut e = Enc::new(ABI);
        e.u32(0xffff_0000 | u32::from(fx.cwd));
        e.u32(0xffff_0000 | u32::from(fx.swd));
        e.u32(self.i387_tag_word());
        e.u32(fx.rip as u32).u32(self.gp[CS]);
        e.u32(fx.rdp as u32)
            .u32(0xffff_0000 | (self.gp[DS] & 0xffff));
        for reg in fx.st.chunks(16) {
            e.bytes(&reg[..10]);
        }
        e.finish()
    }

    /// NT_PRXFPREG: the FXSAVE area (user32_fxsr_struct, 512 bytes).
    pub fn xfpregset(&self) -> Vec<u8> {
        self.fp.fxsave_area()
    }

    /// NT_386_TLS: the three TLS slots, or nothing where none is in use (the
    /// regset is inactive then and the kernel writes no note).
    pub fn tls_note(&self) -> Option<Vec<u8>> {
        if self.tls.iter().all(UserDesc::is_empty) {
            return None;
        }
        Some(self.tls.iter().flat_map(UserDesc::bytes).collect())
    }

    /// The regset notes the kernel writes after NT_PRSTATUS.
    pub fn regset_notes(&self) -> Vec<Note> {
        let mut out = vec![
            Note::new(notes::CORE, nt::PRFPREG, self.fpregset()),
            Note::new(notes::LINUX, nt::PRXFPREG, self.xfpregset()),
        ];
        if let Some(x) = self.fp.xstate() {
            out.push(Note::new(notes::LINUX, nt::X86_XSTATE, x));
        }
        if let Some(t) = self.tls_note() {
            out.push(Note::new(notes::LINUX, nt::I386_TLS, t));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(entry_number: u32, base_addr: u32) -> proto::X86UserDesc {
        proto::X86UserDesc {
            entry_number,
            base_addr,
            limit: 0xfffff,
            seg_32bit: true,
            contents_h: false,
            contents_l: false,
            read_exec_only: false,
            limit_in_pages: true,
            seg_not_present: false,
            usable: true,
        }
    }

    fn sample() -> proto::ThreadInfoX86 {
        let mut fpregs = super::super::x86::sample_fpregs();
        // st0 = 1.0 in physical register 6 (TOP = 6), st1 = 0.0 in 7.
        fpregs.swd = 6 << 11 | 0x20;
        fpregs.twd = 0b1100_0000;
        fpregs.st_space[1] = 0x8000_0000;
        fpregs.st_space[2] = 0x3fff;
        fpregs.rip = 0xffff_ffff_f7e0_1234;
        fpregs.rdp = 0xff80_1000;
        let g = proto::X86Regs {
            bx: 1,
            cx: 2,
            dx: 3,
            si: 4,
            di: 5,
            bp: 6,
            ax: 0xffff_fe00,
            ds: 0x2b,
            es: 0x2b,
            fs: 0,
            gs: 0x63,
            orig_ax: 0xffff_ffff,
            ip: 0xf7fb_95e9,
            cs: 0x23,
            flags: 0x286,
            sp: 0xff95_f8e0,
            ss: 0x2b,
            r8: 0xdead, // not part of a compat task's state
            mode: Some(proto::X86RegsMode::Compat as i32),
            ..Default::default()
        };
        proto::ThreadInfoX86 {
            clear_tid_addr: 0,
            gpregs: g,
            fpregs,
            tls: vec![
                desc(12, 0xf7fb_2540),
                proto::X86UserDesc {
                    entry_number: 13,
                    read_exec_only: true,
                    seg_not_present: true,
                    ..Default::default()
                },
                proto::X86UserDesc {
                    entry_number: 14,
                    read_exec_only: true,
                    seg_not_present: true,
                    ..Default::default()
                },
            ],
        }
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    #[test]
    fn prstatus_regs_follow_user_regs_struct() {
        let r = Regs::from_criu(&sample()).unwrap();
        let b = r.prstatus_regs();
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
        let r = Regs::from_criu(&sample()).unwrap();
        let b = r.fpregset();
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
        let mut r = Regs::from_criu(&sample()).unwrap();
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
        assert_eq!(r.i387_tag_word(), 0xffff_0000 | 0b01_01_00_10_10_10_01_00);
    }

    #[test]
    fn regset_notes_in_the_x86_32_order() {
        let r = Regs::from_criu(&sample()).unwrap();
        let n = r.regset_notes();
        let kinds: Vec<(&str, u32, usize)> =
            n.iter().map(|n| (n.name, n.kind, n.desc.len())).collect();
        assert_eq!(
            kinds,
            vec![
                ("CORE", nt::PRFPREG, 108),
                ("LINUX", nt::PRXFPREG, 512),
                ("LINUX", nt::X86_XSTATE, 2696),
                ("LINUX", nt::I386_TLS, 48),
            ]
        );
        let tls = &n[3].desc;
        assert_eq!(u32_at(tls, 0), 12);
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
    fn no_tls_note_without_tls_and_bad_slots_are_errors() {
        let mut ti = sample();
        ti.tls.truncate(0);
        let r = Regs::from_criu(&ti).unwrap();
        assert!(r.tls_note().is_none());
        assert_eq!(r.regset_notes().len(), 3);
        ti.fpregs.xsave = None;
        assert_eq!(Regs::from_criu(&ti).unwrap().regset_notes().len(), 2);

        let mut ti = sample();
        ti.tls[1].entry_number = 6;
        let err = Regs::from_criu(&ti).unwrap_err().to_string();
        assert!(err.contains("not a GDT TLS slot"), "{err}");
        let mut ti = sample();
        ti.tls[1].entry_number = 12;
        assert!(Regs::from_criu(&ti).is_err());
        let mut ti = sample();
        ti.gpregs.mode = Some(proto::X86RegsMode::Native as i32);
        assert!(Regs::from_criu(&ti).is_err());
        let mut ti = sample();
        ti.fpregs.st_space.pop();
        assert!(Regs::from_criu(&ti).is_err());
    }
}
