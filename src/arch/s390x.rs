//! s390x: the kernel's s390 core notes, in its regset order, every field
//! big-endian: NT_PRSTATUS (s390_regs: PSW, gprs, access registers,
//! orig_gpr2), NT_PRFPREG (fpc and f0-f15), NT_S390_SYSTEM_CALL,
//! NT_S390_VXRS_LOW and NT_S390_VXRS_HIGH (vector registers),
//! NT_S390_GS_CB and NT_S390_GS_BC (guarded storage) and NT_S390_RI_CB
//! (runtime instrumentation), each where it was saved.
//!
//! Not written, because CRIU does not save them: NT_S390_LAST_BREAK and
//! the transaction diagnostic block.

use super::{words, Regset};
use crate::elf::ElfTarget;
use crate::model::regs::s390x::Regs;
use crate::notes::{self, nt, Abi, Enc};

/// ELF header values (EM_S390, big-endian).
pub(crate) const ELF: ElfTarget = ElfTarget {
    is_64: true,
    big_endian: true,
    machine: 22,
    flags: 0,
};
/// Note layout.
pub(crate) const ABI: Abi = notes::LP64_BE;

/// pr_reg: s390_regs.
pub(crate) fn prstatus_regs(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    e.u64(r.psw_mask).u64(r.psw_addr);
    e.bytes(&words(ABI, &r.gprs));
    for &a in &r.acrs {
        e.u32(a);
    }
    e.u64(r.orig_gpr2);
    e.finish()
}

/// NT_PRFPREG: s390_fp_regs (fpc, 4 bytes of padding, f0-f15).
fn fpregset(r: &Regs) -> Vec<u8> {
    let mut e = Enc::new(ABI);
    e.u32(r.fpc).zeros(4).bytes(&words(ABI, &r.fprs));
    e.finish()
}

/// The register sets the kernel writes after NT_PRSTATUS.
pub(crate) fn regsets(r: &Regs) -> Vec<Regset> {
    let mut system_call = Enc::new(ABI);
    system_call.u32(r.system_call);
    let mut out = vec![
        Regset::new(nt::PRFPREG, fpregset(r)),
        Regset::new(nt::S390_SYSTEM_CALL, system_call.finish()),
    ];
    let optional: [(u32, Option<&[u64]>); 5] = [
        (nt::S390_VXRS_LOW, r.vxrs_low.as_ref().map(|v| &v[..])),
        (nt::S390_VXRS_HIGH, r.vxrs_high.as_ref().map(|v| &v[..])),
        (nt::S390_GS_CB, r.gs_cb.as_ref().map(|v| &v[..])),
        (nt::S390_GS_BC, r.gs_bc.as_ref().map(|v| &v[..])),
        (nt::S390_RI_CB, r.ri_cb.as_ref().map(|v| &v[..])),
    ];
    for (kind, v) in optional {
        if let Some(v) = v {
            out.push(Regset::new(kind, words(ABI, v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::regs::s390x::{decode, sample};
    use crate::proto;

    #[test]
    fn notes_are_big_endian_with_the_kernel_sizes() {
        let r = decode(&sample()).unwrap();
        let pr = prstatus_regs(&r);
        assert_eq!(pr.len(), 216); // sizeof(s390_regs)
        assert_eq!(&pr[8..16], &[0, 0, 0, 0, 1, 1, 0xdc, 0x52]);
        assert_eq!(&pr[16 + 15 * 8..16 + 16 * 8], &15u64.to_be_bytes());
        assert_eq!(&pr[144..148], &[0, 0, 1, 0]); // a0
        assert_eq!(&pr[208..216], &0x22u64.to_be_bytes());
        let n = regsets(&r);
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
    fn control_blocks() {
        let mut ti = sample();
        ti.gs_cb = Some(proto::S390GsCb { regs: vec![1; 4] });
        ti.gs_bc = Some(proto::S390GsCb { regs: vec![2; 4] });
        ti.ri_cb.as_mut().unwrap().ri_on = 1;
        let n = regsets(&decode(&ti).unwrap());
        let tail: Vec<(u32, usize)> = n[4..].iter().map(|n| (n.kind, n.desc.len())).collect();
        assert_eq!(
            tail,
            vec![
                (nt::S390_GS_CB, 32),
                (nt::S390_GS_BC, 32),
                (nt::S390_RI_CB, 64)
            ]
        );
    }
}
