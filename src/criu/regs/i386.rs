//! CRIU's `thread_info_x86` of a 32-bit (compat) task, which CRIU marks with
//! `gpregs.mode = COMPAT` → i386 registers.

use anyhow::{bail, Result};

use super::x86::{decode_fp, is_compat};
use crate::model::regs::i386::{Regs, UserDesc, TLS_MIN, TLS_SLOTS};
use crate::proto;

/// Decodes one of CRIU's saved TLS slots.
fn user_desc(d: &proto::X86UserDesc) -> UserDesc {
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

/// Decodes CRIU's saved state of a 32-bit (compat) thread. CRIU stores the
/// 32-bit registers zero-extended in the 64-bit message; r8-r15 and the
/// segment bases are not part of a compat task's state.
pub(crate) fn decode(ti: &proto::ThreadInfoX86) -> Result<Regs> {
    if !is_compat(ti) {
        bail!("the registers are those of an x86-64 task, not of a 32-bit (compat) one");
    }
    let g = &ti.gpregs;
    let gp = [
        g.bx, g.cx, g.dx, g.si, g.di, g.bp, g.ax, g.ds, g.es, g.fs, g.gs, g.orig_ax, g.ip, g.cs,
        g.flags, g.sp, g.ss,
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
        tls[slot] = user_desc(d);
    }
    Ok(Regs {
        gp,
        fp: decode_fp(&ti.fpregs)?,
        tls,
    })
}

/// A compat task's saved state: st0 = 1.0, st1 = 0.0, one TLS slot in use
/// (for tests).
#[cfg(test)]
pub(crate) fn sample() -> proto::ThreadInfoX86 {
    let desc = |entry_number, base_addr| proto::X86UserDesc {
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
    };
    let empty = |entry_number| proto::X86UserDesc {
        entry_number,
        read_exec_only: true,
        seg_not_present: true,
        ..Default::default()
    };
    let mut fpregs = super::x86::sample_fpregs();
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
        tls: vec![desc(12, 0xf7fb_2540), empty(13), empty(14)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::regs::i386::{EIP, ESP};

    #[test]
    fn decodes_the_32_bit_registers_and_tls_slots() {
        let r = decode(&sample()).unwrap();
        assert_eq!(r.gp[EIP], 0xf7fb_95e9);
        assert_eq!(r.gp[ESP], 0xff95_f8e0);
        assert!(!r.gp.contains(&0xdead));
        assert_eq!(r.tls[0].base_addr, 0xf7fb_2540);
        assert!(r.tls[1].is_empty() && r.tls[2].is_empty());
    }

    #[test]
    fn bad_slots_and_modes_are_errors() {
        let mut ti = sample();
        ti.tls[1].entry_number = 6;
        let err = decode(&ti).unwrap_err().to_string();
        assert!(err.contains("not a GDT TLS slot"), "{err}");
        let mut ti = sample();
        ti.tls[1].entry_number = 12;
        assert!(decode(&ti).is_err());
        let mut ti = sample();
        ti.gpregs.mode = Some(proto::X86RegsMode::Native as i32);
        assert!(decode(&ti).is_err());
        let mut ti = sample();
        ti.fpregs.st_space.pop();
        assert!(decode(&ti).is_err());
    }
}
