//! s390x: CRIU's `thread_info_s390` → the kernel's s390 core notes, in its
//! regset order, every field big-endian: NT_PRSTATUS (s390_regs: PSW,
//! gprs, access registers, orig_gpr2), NT_PRFPREG (fpc and f0-f15),
//! NT_S390_SYSTEM_CALL, NT_S390_VXRS_LOW and NT_S390_VXRS_HIGH (vector
//! registers), NT_S390_GS_CB and NT_S390_GS_BC (guarded storage) and
//! NT_S390_RI_CB (runtime instrumentation), each where CRIU saved it.
//!
//! Not written, because CRIU does not save them: NT_S390_LAST_BREAK and
//! the transaction diagnostic block.

use anyhow::{Context, Result};

use super::{array, words};
use crate::elf::ElfTarget;
use crate::notes::{self, nt, Abi, Enc, Note};
use crate::proto;

/// ELF header values (EM_S390, big-endian).
pub const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: true,
    machine: 22,
    flags: 0,
};
/// Note layout.
pub const ABI: Abi = notes::LP64_BE;

/// Register state of an s390x thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regs {
    /// PSW mask.
    pub psw_mask: u64,
    /// PSW address: the program counter.
    pub psw_addr: u64,
    /// r0-r15.
    pub gprs: [u64; 16],
    /// a0-a15 (a0:a1 hold the thread pointer).
    pub acrs: [u32; 16],
    /// r2 at system call entry.
    pub orig_gpr2: u64,
    /// The system call the thread was in (NT_S390_SYSTEM_CALL).
    pub system_call: u32,
    /// Floating-point control register.
    pub fpc: u32,
    /// f0-f15 (the high halves of v0-v15).
    pub fprs: [u64; 16],
    /// The low halves of v0-v15.
    pub vxrs_low: Option<[u64; 16]>,
    /// v16-v31, two words each.
    pub vxrs_high: Option<[u64; 32]>,
    /// Guarded-storage control block.
    pub gs_cb: Option<[u64; 4]>,
    /// Guarded-storage broadcast control block.
    pub gs_bc: Option<[u64; 4]>,
    /// Runtime-instrumentation control block, if instrumentation was on.
    pub ri_cb: Option<[u64; 8]>,
}

fn opt<const N: usize>(what: &str, v: Option<&[u64]>) -> Result<Option<[u64; N]>> {
    v.map(|v| array(what, v)).transpose()
}

impl Regs {
    /// Decodes CRIU's saved s390x thread state.
    pub fn from_criu(ti: &proto::ThreadInfoS390) -> Result<Regs> {
        let g = &ti.gpregs;
        let ri_cb = match &ti.ri_cb {
            Some(ri) if ri.ri_on != 0 => Some(array("ri_cb.regs", &ri.regs)?),
            _ => None,
        };
        Ok(Regs {
            psw_mask: g.psw_mask,
            psw_addr: g.psw_addr,
            gprs: array("gpregs.gprs", &g.gprs)?,
            acrs: array("gpregs.acrs", &g.acrs)?,
            orig_gpr2: g.orig_gpr2,
            system_call: g.system_call,
            fpc: ti.fpregs.fpc,
            fprs: array("fpregs.fprs", &ti.fpregs.fprs).context("fpregs")?,
            vxrs_low: opt("vxrs_low.regs", ti.vxrs_low.as_ref().map(|v| &v.regs[..]))?,
            vxrs_high: opt("vxrs_high.regs", ti.vxrs_high.as_ref().map(|v| &v.regs[..]))?,
            gs_cb: opt("gs_cb.regs", ti.gs_cb.as_ref().map(|v| &v.regs[..]))?,
            gs_bc: opt("gs_bc.regs", ti.gs_bc.as_ref().map(|v| &v.regs[..]))?,
            ri_cb,
        })
    }

    /// pr_reg: s390_regs.
    pub fn prstatus_regs(&self) -> Vec<u8> {
        let mut e = Enc::new(ABI);
        e.u64(self.psw_mask).u64(self.psw_addr);
        e.bytes(&words(ABI, &self.gprs));
        for &a in &self.acrs {
            e.u32(a);
        }
        e.u64(self.orig_gpr2);
        e.finish()
    }

    /// NT_PRFPREG: s390_fp_regs (fpc, 4 bytes of padding, f0-f15).
    pub fn fpregset(&self) -> Vec<u8> {
        let mut e = Enc::new(ABI);
        e.u32(self.fpc).zeros(4).bytes(&words(ABI, &self.fprs));
        e.finish()
    }

    /// The regset notes the kernel writes after NT_PRSTATUS.
    pub fn regset_notes(&self) -> Vec<Note> {
        let mut out = vec![
            Note::new(notes::CORE, nt::PRFPREG, self.fpregset()),
            Note::new(
                notes::LINUX,
                nt::S390_SYSTEM_CALL,
                self.system_call.to_be_bytes().to_vec(),
            ),
        ];
        let optional: [(u32, Option<&[u64]>); 5] = [
            (nt::S390_VXRS_LOW, self.vxrs_low.as_ref().map(|v| &v[..])),
            (nt::S390_VXRS_HIGH, self.vxrs_high.as_ref().map(|v| &v[..])),
            (nt::S390_GS_CB, self.gs_cb.as_ref().map(|v| &v[..])),
            (nt::S390_GS_BC, self.gs_bc.as_ref().map(|v| &v[..])),
            (nt::S390_RI_CB, self.ri_cb.as_ref().map(|v| &v[..])),
        ];
        for (kind, v) in optional {
            if let Some(v) = v {
                out.push(Note::new(notes::LINUX, kind, words(ABI, v)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> proto::ThreadInfoS390 {
        proto::ThreadInfoS390 {
            clear_tid_addr: 0,
            gpregs: proto::S390Regs {
                psw_mask: 0x0705_0001_8000_0000,
                psw_addr: 0x0101_dc52,
                gprs: (0..16).collect(),
                acrs: (0..16).map(|i| 0x100 + i).collect(),
                orig_gpr2: 0x22,
                system_call: 3,
            },
            fpregs: proto::S390Fpregs {
                fpc: 0x0800_0000,
                fprs: (0..16).collect(),
            },
            vxrs_low: Some(proto::S390VxrsLow {
                regs: (0..16).collect(),
            }),
            vxrs_high: Some(proto::S390VxrsHigh {
                regs: (0..32).collect(),
            }),
            gs_cb: None,
            gs_bc: None,
            ri_cb: Some(proto::S390RiCb {
                ri_on: 0,
                regs: vec![0; 8],
            }),
        }
    }

    #[test]
    fn notes_are_big_endian_with_the_kernel_sizes() {
        let r = Regs::from_criu(&sample()).unwrap();
        let pr = r.prstatus_regs();
        assert_eq!(pr.len(), 216); // sizeof(s390_regs)
        assert_eq!(&pr[8..16], &[0, 0, 0, 0, 1, 1, 0xdc, 0x52]);
        assert_eq!(&pr[16 + 15 * 8..16 + 16 * 8], &15u64.to_be_bytes());
        assert_eq!(&pr[144..148], &[0, 0, 1, 0]); // a0
        assert_eq!(&pr[208..216], &0x22u64.to_be_bytes());
        let n = r.regset_notes();
        let kinds: Vec<u32> = n.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                nt::PRFPREG,
                nt::S390_SYSTEM_CALL,
                nt::S390_VXRS_LOW,
                nt::S390_VXRS_HIGH
            ]
        );
        assert_eq!(n[0].desc.len(), 136); // sizeof(s390_fp_regs)
        assert_eq!(&n[0].desc[..8], &[8, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&n[0].desc[8 + 8..8 + 16], &1u64.to_be_bytes());
        assert_eq!(n[1].desc, vec![0, 0, 0, 3]);
        assert_eq!(n[2].desc.len(), 16 * 8);
        assert_eq!(n[3].desc.len(), 16 * 16);
        assert_eq!(&n[3].desc[8..16], &1u64.to_be_bytes());
    }

    #[test]
    fn control_blocks_and_bad_lengths() {
        let mut ti = sample();
        ti.gs_cb = Some(proto::S390GsCb { regs: vec![1; 4] });
        ti.gs_bc = Some(proto::S390GsCb { regs: vec![2; 4] });
        ti.ri_cb.as_mut().unwrap().ri_on = 1;
        let n = Regs::from_criu(&ti).unwrap().regset_notes();
        let tail: Vec<(u32, usize)> = n[4..].iter().map(|n| (n.kind, n.desc.len())).collect();
        assert_eq!(
            tail,
            vec![
                (nt::S390_GS_CB, 32),
                (nt::S390_GS_BC, 32),
                (nt::S390_RI_CB, 64)
            ]
        );
        let mut ti = sample();
        ti.gpregs.acrs.pop();
        let e = Regs::from_criu(&ti).unwrap_err().to_string();
        assert!(e.contains("gpregs.acrs holds 15"), "{e}");
    }
}
