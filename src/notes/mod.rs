//! ELF core notes that every Linux architecture shares (NT_PRSTATUS,
//! NT_PRPSINFO, NT_SIGINFO, NT_AUXV, NT_FILE), laid out as the kernel's
//! `fs/binfmt_elf.c` writes them for a given word size and byte order.
//! Register contents come from the architecture modules; which notes a
//! process's core has, and in which order, is [`process`].

pub(crate) mod process;

/// Note type numbers (from the kernel's include/uapi/linux/elf.h).
pub mod nt {
    /// struct elf_prstatus
    pub const PRSTATUS: u32 = 1;
    /// floating point registers (the arch's elf_fpregset_t)
    pub const PRFPREG: u32 = 2;
    /// struct elf_prpsinfo
    pub const PRPSINFO: u32 = 3;
    /// auxiliary vector
    pub const AUXV: u32 = 6;
    /// siginfo_t of the signal that caused the dump
    pub const SIGINFO: u32 = 0x5349_4749;
    /// mapped files
    pub const FILE: u32 = 0x4649_4c45;
    /// i386 user_fxsr_struct
    pub const PRXFPREG: u32 = 0x46e6_2b7f;
    /// x86 XSAVE extended state
    pub const X86_XSTATE: u32 = 0x202;
    /// i386 TLS slots
    pub const I386_TLS: u32 = 0x200;
    /// PowerPC Altivec/VMX registers
    pub const PPC_VMX: u32 = 0x100;
    /// PowerPC VSX registers (low halves of vsr0-31)
    pub const PPC_VSX: u32 = 0x102;
    /// s390 system call information
    pub const S390_SYSTEM_CALL: u32 = 0x307;
    /// s390 vector registers 0-15, low halves
    pub const S390_VXRS_LOW: u32 = 0x309;
    /// s390 vector registers 16-31
    pub const S390_VXRS_HIGH: u32 = 0x30a;
    /// s390 guarded-storage control block
    pub const S390_GS_CB: u32 = 0x30b;
    /// s390 guarded-storage broadcast control block
    pub const S390_GS_BC: u32 = 0x30c;
    /// s390 runtime-instrumentation control block
    pub const S390_RI_CB: u32 = 0x30d;
    /// Arm VFP registers (d0-d31, fpscr)
    pub const ARM_VFP: u32 = 0x400;
    /// Arm TLS register (tpidr_el0 on AArch64, TPIDRURO on 32-bit Arm)
    pub const ARM_TLS: u32 = 0x401;
    /// AArch64 pointer-authentication masks
    pub const ARM_PAC_MASK: u32 = 0x406;
    /// AArch64 pointer-authentication address keys
    pub const ARM_PACA_KEYS: u32 = 0x407;
    /// AArch64 pointer-authentication generic key
    pub const ARM_PACG_KEYS: u32 = 0x408;
    /// AArch64 pointer-authentication enabled keys
    pub const ARM_PAC_ENABLED_KEYS: u32 = 0x40a;
}

/// Note owner names.
pub const CORE: &str = "CORE";
/// Owner name of the regset notes that are not in the SVR4 set.
pub const LINUX: &str = "LINUX";

/// One ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Owner ("CORE" or "LINUX"), written with its terminating NUL.
    pub name: &'static str,
    /// Note type.
    pub kind: u32,
    /// Contents.
    pub desc: Vec<u8>,
}

impl Note {
    /// A note.
    pub fn new(name: &'static str, kind: u32, desc: Vec<u8>) -> Note {
        Note { name, kind, desc }
    }
}

/// How an architecture lays out the shared note structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    /// Big-endian target.
    pub big_endian: bool,
    /// Size of `long` (4 or 8).
    pub word: usize,
    /// Size of `__kernel_uid_t` in elf_prpsinfo (2 on i386 and arm).
    pub uid_size: usize,
    /// siginfo_t has si_code before si_errno (MIPS:
    /// `__ARCH_HAS_SWAPPED_SIGINFO`); everywhere else si_errno comes first.
    pub swapped_siginfo: bool,
}

/// Little-endian 64-bit ABI (x86_64, aarch64, riscv64, ppc64le,
/// loongarch64).
pub const LP64_LE: Abi = Abi {
    big_endian: false,
    word: 8,
    uid_size: 4,
    swapped_siginfo: false,
};
/// Big-endian 64-bit ABI (s390x, ppc64).
pub const LP64_BE: Abi = Abi {
    big_endian: true,
    word: 8,
    uid_size: 4,
    swapped_siginfo: false,
};
/// Little-endian 64-bit MIPS (n64): [`LP64_LE`] with si_code and si_errno
/// swapped.
pub const MIPS64_LE: Abi = Abi {
    swapped_siginfo: true,
    ..LP64_LE
};
/// Little-endian 32-bit ABI with 16-bit uids in prpsinfo (i386, arm).
pub const ILP32_LE_UID16: Abi = Abi {
    big_endian: false,
    word: 4,
    uid_size: 2,
    swapped_siginfo: false,
};

/// A growing byte buffer that writes integers in a target's byte order.
#[derive(Debug, Clone)]
pub struct Enc {
    abi: Abi,
    buf: Vec<u8>,
}

impl Enc {
    /// An empty buffer for `abi`.
    pub fn new(abi: Abi) -> Enc {
        Enc {
            abi,
            buf: Vec::new(),
        }
    }

    /// Appends a 16-bit value.
    pub fn u16(&mut self, v: u16) -> &mut Enc {
        let b = if self.abi.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes(&b)
    }

    /// Appends a 32-bit value.
    pub fn u32(&mut self, v: u32) -> &mut Enc {
        let b = if self.abi.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes(&b)
    }

    /// Appends a 64-bit value.
    pub fn u64(&mut self, v: u64) -> &mut Enc {
        let b = if self.abi.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes(&b)
    }

    /// Appends a `long` (truncated to 32 bits on 32-bit targets).
    pub fn word(&mut self, v: u64) -> &mut Enc {
        if self.abi.word == 8 {
            self.u64(v)
        } else {
            self.u32(v as u32)
        }
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Enc {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends `n` zero bytes.
    pub fn zeros(&mut self, n: usize) -> &mut Enc {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    /// Appends `b` cut or zero-padded to exactly `n` bytes.
    pub fn fixed(&mut self, b: &[u8], n: usize) -> &mut Enc {
        let take = b.len().min(n);
        self.bytes(&b[..take]).zeros(n - take)
    }

    /// Zero-pads to a multiple of `align`.
    pub fn align(&mut self, align: usize) -> &mut Enc {
        let rem = self.buf.len() % align;
        if rem != 0 {
            self.zeros(align - rem);
        }
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// The fields of NT_PRSTATUS that are not registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrStatus {
    /// Signal that caused the dump (0 for none), also pr_info.si_signo.
    pub cursig: u32,
    /// Pending signals.
    pub sigpend: u64,
    /// Blocked signals.
    pub sighold: u64,
    /// Thread id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group.
    pub pgrp: u32,
    /// Session.
    pub sid: u32,
}

/// NT_PRSTATUS: `elf_prstatus` with `regs` as pr_reg.
pub fn prstatus(abi: Abi, st: &PrStatus, regs: &[u8], fpvalid: bool) -> Vec<u8> {
    let mut e = Enc::new(abi);
    // pr_info: si_signo, si_code, si_errno
    e.u32(st.cursig).u32(0).u32(0);
    e.u16(st.cursig as u16).zeros(2);
    e.word(st.sigpend).word(st.sighold);
    e.u32(st.pid).u32(st.ppid).u32(st.pgrp).u32(st.sid);
    // pr_utime, pr_stime, pr_cutime, pr_cstime: CRIU keeps no CPU times.
    e.zeros(8 * abi.word);
    e.bytes(regs);
    e.u32(fpvalid as u32);
    e.align(abi.word);
    e.finish()
}

/// The fields of NT_PRPSINFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrPsInfo {
    /// State letter: R, S, D, T, Z, W.
    pub sname: u8,
    /// Nice value.
    pub nice: i32,
    /// Kernel task flags.
    pub flag: u64,
    /// Real uid.
    pub uid: u32,
    /// Real gid.
    pub gid: u32,
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Process group.
    pub pgrp: u32,
    /// Session.
    pub sid: u32,
    /// Command name (up to 16 bytes).
    pub fname: Vec<u8>,
    /// Command line (up to 79 bytes, NULs already turned into spaces).
    pub psargs: Vec<u8>,
}

/// Length of pr_psargs, including its terminating NUL.
pub const PSARGS_LEN: usize = 80;

/// The kernel's overflow uid and gid (DEFAULT_OVERFLOWUID), which a 16-bit
/// field shows for an id that does not fit.
pub const OVERFLOW_ID: u16 = 65534;

/// A uid or gid in a 16-bit field, as the kernel's high2lowuid maps it.
fn uid16(id: u32) -> u16 {
    u16::try_from(id).unwrap_or(OVERFLOW_ID)
}

/// NT_PRPSINFO: `elf_prpsinfo`.
pub fn prpsinfo(abi: Abi, ps: &PrPsInfo) -> Vec<u8> {
    let state = b"RSDTZW".iter().position(|&c| c == ps.sname).unwrap_or(0) as u8;
    let mut e = Enc::new(abi);
    e.bytes(&[
        state,
        ps.sname,
        (ps.sname == b'Z') as u8,
        ps.nice as i8 as u8,
    ]);
    e.align(abi.word);
    e.word(ps.flag);
    if abi.uid_size == 2 {
        e.u16(uid16(ps.uid)).u16(uid16(ps.gid));
    } else {
        e.u32(ps.uid).u32(ps.gid);
    }
    e.u32(ps.pid).u32(ps.ppid).u32(ps.pgrp).u32(ps.sid);
    e.fixed(&ps.fname, 16);
    e.fixed(
        &ps.psargs[..ps.psargs.len().min(PSARGS_LEN - 1)],
        PSARGS_LEN,
    );
    e.align(abi.word);
    e.finish()
}

/// si_code of a signal sent by the kernel.
pub const SI_KERNEL: i32 = 0x80;

/// NT_SIGINFO: a 128-byte `siginfo_t` carrying a signal number and code
/// (si_errno 0).
pub fn siginfo(abi: Abi, signo: u32, code: i32) -> Vec<u8> {
    let mut e = Enc::new(abi);
    e.u32(signo);
    if abi.swapped_siginfo {
        e.u32(code as u32).u32(0);
    } else {
        e.u32(0).u32(code as u32);
    }
    e.zeros(128 - e.len());
    e.finish()
}

/// NT_AUXV: the auxiliary vector, terminated by AT_NULL as the kernel writes it.
pub fn auxv(abi: Abi, pairs: &[(u64, u64)]) -> Vec<u8> {
    let mut e = Enc::new(abi);
    for &(k, v) in pairs.iter().take_while(|(k, _)| *k != 0) {
        e.word(k).word(v);
    }
    e.word(0).word(0);
    e.finish()
}

/// One NT_FILE entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMapping {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Offset in the file, in bytes.
    pub offset: u64,
    /// Path, as bytes (written as they are).
    pub path: Vec<u8>,
}

/// NT_FILE: count, page size, (start, end, offset in pages) triples, then the
/// NUL-terminated paths.
pub fn file_note(abi: Abi, page_size: u64, files: &[FileMapping]) -> Vec<u8> {
    let mut e = Enc::new(abi);
    e.word(files.len() as u64).word(page_size);
    for f in files {
        e.word(f.start).word(f.end).word(f.offset / page_size);
    }
    for f in files {
        e.bytes(&f.path).bytes(&[0]);
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prstatus_sizes_match_the_kernel() {
        // sizeof(struct elf_prstatus) per architecture, pr_reg sizes from
        // each arch's elf_gregset_t.
        let st = PrStatus::default();
        assert_eq!(prstatus(LP64_LE, &st, &[0; 27 * 8], true).len(), 336); // x86_64
        assert_eq!(prstatus(LP64_LE, &st, &[0; 34 * 8], true).len(), 392); // aarch64
        assert_eq!(prstatus(LP64_LE, &st, &[0; 32 * 8], true).len(), 376); // riscv64
        assert_eq!(prstatus(LP64_LE, &st, &[0; 48 * 8], true).len(), 504); // ppc64
        assert_eq!(prstatus(LP64_BE, &st, &[0; 216], true).len(), 336); // s390x
        assert_eq!(prstatus(ILP32_LE_UID16, &st, &[0; 17 * 4], true).len(), 144); // i386
        assert_eq!(prstatus(ILP32_LE_UID16, &st, &[0; 18 * 4], true).len(), 148); // arm
        assert_eq!(prstatus(MIPS64_LE, &st, &[0; 45 * 8], true).len(), 480); // mips64
        assert_eq!(prstatus(LP64_LE, &st, &[0; 45 * 8], true).len(), 480); // loongarch64
    }

    #[test]
    fn mips_siginfo_has_si_code_before_si_errno() {
        let si = siginfo(MIPS64_LE, 23, SI_KERNEL);
        assert_eq!(si.len(), 128);
        assert_eq!(&si[..12], &[23, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        let si = siginfo(LP64_LE, 19, SI_KERNEL);
        assert_eq!(&si[..12], &[19, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0]);
    }

    #[test]
    fn prstatus_fields_land_where_the_kernel_puts_them() {
        let st = PrStatus {
            cursig: 0,
            sigpend: 0x10,
            sighold: 0x4200,
            pid: 7,
            ppid: 1,
            pgrp: 7,
            sid: 7,
        };
        let d = prstatus(LP64_LE, &st, &[0xab; 216], true);
        assert_eq!(u64::from_le_bytes(d[16..24].try_into().unwrap()), 0x10);
        assert_eq!(u64::from_le_bytes(d[24..32].try_into().unwrap()), 0x4200);
        assert_eq!(u32::from_le_bytes(d[32..36].try_into().unwrap()), 7);
        assert_eq!(u32::from_le_bytes(d[36..40].try_into().unwrap()), 1);
        assert_eq!(d[112], 0xab);
        assert_eq!(u32::from_le_bytes(d[328..332].try_into().unwrap()), 1);
        let be = prstatus(LP64_BE, &st, &[0; 216], false);
        assert_eq!(&be[32..36], &[0, 0, 0, 7]);
    }

    fn sample_psinfo() -> PrPsInfo {
        PrPsInfo {
            sname: b'T',
            uid: 1000,
            gid: 100,
            pid: 5,
            ppid: 1,
            pgrp: 5,
            sid: 5,
            fname: b"victim".to_vec(),
            psargs: vec![b'a'; 200],
            ..Default::default()
        }
    }

    #[test]
    fn prpsinfo_layouts() {
        let ps = sample_psinfo();
        let d = prpsinfo(LP64_LE, &ps);
        assert_eq!(d.len(), 136);
        assert_eq!((d[0], d[1], d[2]), (3, b'T', 0));
        assert_eq!(u32::from_le_bytes(d[16..20].try_into().unwrap()), 1000);
        assert_eq!(u32::from_le_bytes(d[24..28].try_into().unwrap()), 5);
        assert_eq!(&d[40..46], b"victim");
        assert_eq!(&d[56..56 + 79], &[b'a'; 79][..]);
        assert_eq!(d[135], 0);
        assert_eq!(prpsinfo(ILP32_LE_UID16, &ps).len(), 124);
    }

    #[test]
    fn i386_prpsinfo_fields_land_where_compat_elf_prpsinfo_has_them() {
        let ps = PrPsInfo {
            sname: b'R',
            flag: 0x40_0040,
            gid: 100_000, // beyond 16 bits: the overflow gid
            pgrp: 6,
            sid: 7,
            fname: b"compat".to_vec(),
            ..sample_psinfo()
        };
        let d = prpsinfo(ILP32_LE_UID16, &ps);
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
        assert_eq!(d.len(), 124);
        assert_eq!((d[0], d[1]), (0, b'R'));
        assert_eq!(u32_at(4), 0x40_0040); // pr_flag
        assert_eq!(u16::from_le_bytes([d[8], d[9]]), 1000); // pr_uid
        assert_eq!(u16::from_le_bytes([d[10], d[11]]), OVERFLOW_ID); // pr_gid
        assert_eq!(
            (u32_at(12), u32_at(16), u32_at(20), u32_at(24)),
            (5, 1, 6, 7)
        );
        assert_eq!(&d[28..34], b"compat");
        assert_eq!(&d[44..44 + 79], &[b'a'; 79][..]);
        assert_eq!(d[123], 0);
    }

    #[test]
    fn i386_prstatus_siginfo_auxv_and_file_use_32_bit_words() {
        let st = PrStatus {
            cursig: 19,
            sigpend: 0x1_0000_0010, // only the low word fits compat_ulong_t
            sighold: 0x4200,
            pid: 7,
            ppid: 1,
            pgrp: 8,
            sid: 9,
        };
        let d = prstatus(ILP32_LE_UID16, &st, &[0xab; 68], true);
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
        assert_eq!(d.len(), 144);
        assert_eq!(u32_at(0), 19); // pr_info.si_signo
        assert_eq!(u16::from_le_bytes([d[12], d[13]]), 19); // pr_cursig
        assert_eq!((u32_at(16), u32_at(20)), (0x10, 0x4200)); // pr_sigpend, pr_sighold
        assert_eq!(
            (u32_at(24), u32_at(28), u32_at(32), u32_at(36)),
            (7, 1, 8, 9)
        );
        assert!(d[40..72].iter().all(|&b| b == 0)); // four old_timeval32
        assert_eq!((d[72], d[139]), (0xab, 0xab)); // pr_reg
        assert_eq!(u32_at(140), 1); // pr_fpvalid

        let si = siginfo(ILP32_LE_UID16, 19, SI_KERNEL);
        assert_eq!(si.len(), 128); // compat_siginfo_t
        assert_eq!(&si[..12], &[19, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0]);

        assert_eq!(auxv(ILP32_LE_UID16, &[(6, 4096), (0, 0)]), {
            let mut v = 6u32.to_le_bytes().to_vec();
            v.extend(4096u32.to_le_bytes());
            v.extend([0; 8]);
            v
        });
        let f = [FileMapping {
            start: 0xf7d1_1000,
            end: 0xf7d3_3000,
            offset: 0x2000,
            path: b"/usr/lib32/libc.so.6".to_vec(),
        }];
        let d = file_note(ILP32_LE_UID16, 4096, &f);
        let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
        assert_eq!((u32_at(0), u32_at(4)), (1, 4096));
        assert_eq!(
            (u32_at(8), u32_at(12), u32_at(16)),
            (0xf7d1_1000, 0xf7d3_3000, 2)
        );
        assert_eq!(&d[20..], b"/usr/lib32/libc.so.6\0");
    }

    #[test]
    fn auxv_gets_one_terminator() {
        let d = auxv(LP64_LE, &[(6, 4096), (0, 0)]);
        assert_eq!(d.len(), 32);
        assert_eq!(auxv(LP64_LE, &[(6, 4096)]).len(), 32);
    }

    #[test]
    fn file_note_counts_pages() {
        let f = [FileMapping {
            start: 0x1000,
            end: 0x3000,
            offset: 0x2000,
            path: b"/bin/x".to_vec(),
        }];
        let d = file_note(LP64_LE, 4096, &f);
        assert_eq!(d.len(), 16 + 24 + 7);
        assert_eq!(u64::from_le_bytes(d[32..40].try_into().unwrap()), 2);
        assert_eq!(&d[40..], b"/bin/x\0");
    }
}
