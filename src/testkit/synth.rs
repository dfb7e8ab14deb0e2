//! Synthetic CRIU checkpoints of any size, deterministic from a seed: for
//! benchmarks, tests and fuzzing seeds. Page data is streamed to disk as it
//! is generated, never held in memory.
//!
//! Each process has the mappings a real one has — a file-backed executable
//! (text left out of the dump, data dumped), a heap, a shared memfd mapping
//! whose pages are in a shared-memory pagemap, a vDSO, vvar, a stack that
//! holds argv and the environment — and as many anonymous mappings as asked
//! for, of varying sizes, with one page in four (by default) never touched
//! (a hole) and
//! pagemap flags mixed as CRIU writes them (present, present|lazy).

use std::path::Path;

use anyhow::{ensure, Result};

use super::writer::CheckpointWriter;
use crate::criu::pagemap::{PE_LAZY, PE_PRESENT};
use crate::proto;

/// What to synthesize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Seed of everything random.
    pub seed: u64,
    /// Number of processes (the first is the parent of the others).
    pub processes: u32,
    /// Threads per process.
    pub threads: u32,
    /// Mappings per process (at least [`MIN_VMAS`]).
    pub vmas: u32,
    /// Dumped page bytes, in all, spread over the processes.
    pub bytes: u64,
    /// One page in this many of the anonymous mappings is never touched (a
    /// hole in the dump); 0 for none.
    pub holes: u32,
    /// Page contents that compress as real memory does (about 3.5:1 with
    /// zstd or gzip: 12 random bits in each 8-byte word) rather than
    /// random bytes, which do not compress at all.
    pub compressible: bool,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            seed: 1,
            processes: 1,
            threads: 2,
            vmas: 32,
            bytes: 1 << 20,
            holes: 4,
            compressible: false,
        }
    }
}

/// Fewest mappings a synthetic process has (the fixed ones plus one).
pub const MIN_VMAS: u32 = 8;
/// Page size of synthetic checkpoints.
pub const PAGE: u64 = 4096;
/// The executable every synthetic process maps.
pub const EXE: &str = "/usr/bin/synth";
/// Id of the shared-memory object all processes share.
pub const SHMEM_ID: u64 = 77;
/// Pages of the shared memfd mapping.
pub const SHMEM_PAGES: u64 = 4;
/// Where the first anonymous mapping starts.
const ANON_BASE: u64 = 0x1000_0000;
const EXE_BASE: u64 = 0x40_0000;
const HEAP_BASE: u64 = 0x80_0000;
const SHMEM_BASE: u64 = 0x7f00_0000_0000;
const VDSO_BASE: u64 = 0x7fff_f000_0000;
const STACK_TOP: u64 = 0x7fff_ff00_0000;
const STACK_PAGES: u64 = 8;

/// A summary of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Pids, the parent first.
    pub pids: Vec<u32>,
    /// Mappings written, in all.
    pub vmas: u64,
    /// Bytes of page data written (pages-*.img), in all.
    pub page_bytes: u64,
    /// Bytes mapped, in all.
    pub mapped_bytes: u64,
}

/// The pid of process `i`.
pub fn pid(i: u32) -> u32 {
    i + 1
}

/// The tid of thread `t` of process `i` (the leader's is its pid).
pub fn tid(i: u32, t: u32) -> u32 {
    if t == 0 {
        pid(i)
    } else {
        100_000 + pid(i) * 1000 + t
    }
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The 8 bytes of synthetic memory at `addr` (8-aligned) of process `pid`
/// (use 0 for the shared memfd, whose addresses are object offsets).
pub fn word(seed: u64, pid: u32, addr: u64) -> u64 {
    mix(seed ^ mix(u64::from(pid) << 48 ^ addr))
}

/// The words of `buf`, which holds synthetic memory from `addr` of `pid`:
/// [`word`]s, or with `compressible` only their low 12 bits.
fn fill_words(seed: u64, compressible: bool, pid: u32, addr: u64, buf: &mut [u8]) {
    let mask = if compressible { 0xfff } else { u64::MAX };
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let w = (word(seed, pid, addr + 8 * i as u64) & mask).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// A mapping of a synthetic process, and what of it is dumped.
#[derive(Debug, Clone)]
struct Area {
    vma: proto::Vma,
    /// Dumped runs: (first page, pages, flags).
    dumped: Vec<(u64, u64, u32)>,
}

use crate::criu::memory::status::{
    ANON_PRIVATE, FILE_PRIVATE, FILE_SHARED, HEAP, MEMFD, REGULAR, VDSO, VVAR,
};
const MAP_PRIVATE_ANON: u32 = 0x22;

fn area(
    start: u64,
    pages: u64,
    prot: u32,
    flags: u32,
    status: u32,
    shmid: u64,
    pgoff: u64,
) -> Area {
    let vma = proto::Vma {
        start,
        end: start + pages * PAGE,
        pgoff,
        shmid,
        prot,
        flags,
        status,
        fd: -1,
        madv: None,
        fdflags: None,
    };
    Area {
        vma,
        dumped: Vec::new(),
    }
}

/// The argv and environment a synthetic process holds on its stack.
pub fn command_line(i: u32) -> (Vec<String>, Vec<String>) {
    let argv = vec![
        EXE.to_string(),
        format!("--process={i}"),
        "--synthetic".into(),
    ];
    let env = vec!["PATH=/usr/bin".to_string(), format!("SYNTH_PID={}", pid(i))];
    (argv, env)
}

/// Lays out process `i`: its mappings in address order.
fn layout(spec: &Spec, i: u32) -> Vec<Area> {
    let mut areas = exe_and_heap();
    areas.extend(anonymous(spec, i));
    areas.extend(shared_vdso_and_stack());
    areas
}

/// The executable (text never dumped, one page of data dumped) and the
/// heap.
fn exe_and_heap() -> Vec<Area> {
    let mut areas = Vec::new();
    areas.push(area(EXE_BASE, 4, 5, 0x2, REGULAR | FILE_PRIVATE, 1, 0));
    let mut data = area(
        EXE_BASE + 4 * PAGE,
        1,
        3,
        0x2,
        REGULAR | FILE_PRIVATE,
        1,
        4 * PAGE,
    );
    data.dumped.push((0, 1, PE_PRESENT));
    areas.push(data);
    let mut heap = area(
        HEAP_BASE,
        8,
        3,
        MAP_PRIVATE_ANON,
        REGULAR | HEAP | ANON_PRIVATE,
        0,
        0,
    );
    heap.dumped.push((0, 6, PE_PRESENT | PE_LAZY));
    areas.push(heap);
    areas
}

/// The anonymous mappings of process `i`, sharing its byte budget, of
/// sizes varied around their share.
fn anonymous(spec: &Spec, i: u32) -> Vec<Area> {
    let mut areas = Vec::new();
    let anon = u64::from(spec.vmas.max(MIN_VMAS) - (MIN_VMAS - 1));
    let budget = spec.bytes / u64::from(spec.processes.max(1));
    let mut state = mix(spec.seed ^ u64::from(i));
    let mut addr = ANON_BASE;
    let mut left = budget / PAGE;
    // One page in `holes` is never touched: a hole after each run of
    // `holes - 1` dumped pages.
    let run_len = if spec.holes >= 2 {
        u64::from(spec.holes) - 1
    } else {
        u64::MAX
    };
    for k in 0..anon {
        let share = left / (anon - k);
        // Vary sizes around the share, keeping the total.
        state = mix(state);
        let wobble = if share > 2 {
            state % (share / 2 + 1)
        } else {
            0
        };
        let dumped = if k + 1 == anon {
            left
        } else {
            (share - share / 4 + wobble).min(left)
        };
        left -= dumped;
        let prot = if k % 2 == 0 { 3 } else { 1 };
        let a = anonymous_area(addr, prot, dumped, run_len);
        addr = a.vma.end + PAGE;
        areas.push(a);
    }
    areas
}

/// An anonymous mapping at `addr` with `dumped` pages dumped in runs of
/// `run_len`, a hole after each, the runs' flags alternating between
/// present|lazy and present.
fn anonymous_area(addr: u64, prot: u32, dumped: u64, run_len: u64) -> Area {
    let pages = (dumped + dumped / run_len).max(1);
    let mut a = area(
        addr,
        pages,
        prot,
        MAP_PRIVATE_ANON,
        REGULAR | ANON_PRIVATE,
        0,
        0,
    );
    let mut p = 0;
    let mut n = 0;
    let mut k = 0;
    while p < pages && n < dumped {
        let run = run_len.min(pages - p).min(dumped - n);
        let flags = if k % 2 == 0 {
            PE_PRESENT | PE_LAZY
        } else {
            PE_PRESENT
        };
        a.dumped.push((p, run, flags));
        n += run;
        p = p.saturating_add(run + 1);
        k += 1;
    }
    a
}

/// The mappings above the anonymous ones: the shared memfd mapping, vvar,
/// the vDSO and the stack (whose last pages are dumped).
fn shared_vdso_and_stack() -> Vec<Area> {
    let mut areas = Vec::new();
    let shared = area(
        SHMEM_BASE,
        SHMEM_PAGES,
        3,
        0x1,
        REGULAR | FILE_SHARED | MEMFD,
        2,
        0,
    );
    areas.push(shared);
    let mut vvar = area(
        VDSO_BASE,
        4,
        1,
        MAP_PRIVATE_ANON,
        REGULAR | VVAR | ANON_PRIVATE,
        0,
        0,
    );
    vvar.vma.madv = Some(1 << 16);
    areas.push(vvar);
    let mut vdso = area(
        VDSO_BASE + 4 * PAGE,
        2,
        5,
        MAP_PRIVATE_ANON,
        REGULAR | VDSO | ANON_PRIVATE,
        0,
        0,
    );
    vdso.dumped.push((0, 2, PE_PRESENT));
    areas.push(vdso);
    let mut stack = area(
        STACK_TOP - STACK_PAGES * PAGE,
        STACK_PAGES,
        3,
        0x122,
        REGULAR | ANON_PRIVATE,
        0,
        0,
    );
    stack.dumped.push((STACK_PAGES - 3, 3, PE_PRESENT));
    areas.push(stack);
    areas
}

/// Where argv and the environment lie in the stack's last page, as bytes.
fn stack_strings(i: u32) -> (u64, Vec<u8>, usize) {
    let (argv, env) = command_line(i);
    let mut bytes = Vec::new();
    for s in &argv {
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
    }
    let args_len = bytes.len();
    for s in &env {
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
    }
    let start = STACK_TOP - 64 - bytes.len() as u64;
    (start, bytes, args_len)
}

fn thread_core(spec: &Spec, i: u32, t: u32) -> proto::Core {
    let sp = STACK_TOP - 2 * PAGE - 16 * u64::from(t + 1);
    let gpregs = proto::X86Regs {
        ip: EXE_BASE + 0x100 + u64::from(t) * 16,
        sp,
        bp: sp + 64,
        ax: word(spec.seed, pid(i), u64::from(t)),
        cs: 0x33,
        ss: 0x2b,
        flags: 0x246,
        orig_ax: u64::MAX,
        fs_base: HEAP_BASE + u64::from(t) * 0x100,
        mode: Some(proto::X86RegsMode::Native as i32),
        ..Default::default()
    };
    let fpregs = proto::X86Fpregs {
        cwd: 0x37f,
        mxcsr: 0x1f80,
        mxcsr_mask: 0xffff,
        st_space: vec![0; 32],
        xmm_space: (0..64)
            .map(|k| (word(spec.seed, tid(i, t), k) & 0xffff_ffff) as u32)
            .collect(),
        xsave: Some(proto::X86Xsave {
            xstate_bv: 0x7,
            ymmh: (0..64)
                .map(|k| (word(spec.seed, tid(i, t), 64 + k) & 0xffff_ffff) as u32)
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let comm = if t == 0 {
        "synth".to_string()
    } else {
        format!("synth-{t}")
    };
    proto::Core {
        mtype: proto::core::Arch::X8664 as i32,
        x86: Some(proto::ThreadInfoX86 {
            clear_tid_addr: 0,
            gpregs,
            fpregs,
            tls: vec![],
        }),
        tc: (t == 0).then(|| proto::TaskCore {
            task_state: 1,
            comm: "synth".into(),
            blk_sigset: 1 << 9,
            flags: 0x40_0000,
            ..Default::default()
        }),
        thread_core: Some(proto::ThreadCore {
            blk_sigset: Some(1 << 9),
            comm: Some(comm.into_bytes()),
            creds: Some(proto::Creds {
                uid: 1000,
                gid: 1000,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Writes the checkpoint `spec` describes into `dir`.
pub fn synthesize(dir: &Path, spec: &Spec) -> Result<Summary> {
    ensure!(
        spec.processes >= 1 && spec.processes <= 1000,
        "processes must be 1 to 1000"
    );
    ensure!(
        spec.threads >= 1 && spec.threads <= 999,
        "threads must be 1 to 999"
    );
    ensure!(
        spec.vmas >= MIN_VMAS,
        "at least {MIN_VMAS} mappings per process"
    );
    let w = CheckpointWriter::create(dir, PAGE)?;
    w.inventory()?;
    let tree: Vec<proto::PstreeEntry> = (0..spec.processes)
        .map(|i| proto::PstreeEntry {
            pid: pid(i),
            ppid: if i == 0 { 0 } else { 1 },
            pgid: 1,
            sid: 1,
            threads: (0..spec.threads).map(|t| tid(i, t)).collect(),
        })
        .collect();
    w.pstree(&tree)?;
    write_shared_files(&w, spec)?;
    let mut summary = Summary {
        page_bytes: SHMEM_PAGES * PAGE,
        ..Default::default()
    };
    for i in 0..spec.processes {
        write_process(&w, spec, i, &mut summary)?;
    }
    Ok(summary)
}

/// Writes the files every process shares: the executable, the memfd
/// behind the shared mapping, and that mapping's pages.
fn write_shared_files(w: &CheckpointWriter, spec: &Spec) -> Result<()> {
    let exe = proto::FileEntry {
        r#type: proto::FdType::Reg as i32,
        id: 1,
        reg: Some(proto::RegFile {
            id: 1,
            name: EXE.into(),
            size: Some(5 * PAGE),
            ..Default::default()
        }),
        memfd: None,
    };
    let memfd = proto::FileEntry {
        r#type: proto::FdType::Memfd as i32,
        id: 2,
        reg: None,
        memfd: Some(proto::MemfdFile {
            id: 2,
            flags: 2,
            pos: 0,
            inode_id: 1,
        }),
    };
    w.files(&[exe, memfd])?;
    w.memfd(&[proto::MemfdInode {
        name: "synth-shm".into(),
        size: SHMEM_PAGES * PAGE,
        shmid: SHMEM_ID as u32,
        inode_id: 1,
        ..Default::default()
    }])?;
    let (seed, compressible) = (spec.seed, spec.compressible);
    w.pagemap_with(
        &format!("pagemap-shmem-{SHMEM_ID}.img"),
        1,
        [(0, SHMEM_PAGES, PE_PRESENT)],
        |_, off, buf| fill_words(seed, compressible, 0, off, buf),
    )?;
    Ok(())
}

/// Writes process `i`: its threads' cores, its mm and its pages, the
/// stack's strings among them; counts what it wrote into `summary`.
fn write_process(w: &CheckpointWriter, spec: &Spec, i: u32, summary: &mut Summary) -> Result<()> {
    let (seed, compressible) = (spec.seed, spec.compressible);
    let p = pid(i);
    summary.pids.push(p);
    for t in 0..spec.threads {
        w.core(tid(i, t), &thread_core(spec, i, t))?;
    }
    let areas = layout(spec, i);
    let (args_at, strings, args_len) = stack_strings(i);
    w.mm(p, &mm(&areas, args_at, args_len, strings.len()))?;
    let spans: Vec<(u64, u64, u32)> = areas
        .iter()
        .flat_map(|a| {
            a.dumped
                .iter()
                .map(move |&(first, n, flags)| (a.vma.start + first * PAGE, n, flags))
        })
        .collect();
    summary.vmas += areas.len() as u64;
    summary.mapped_bytes += areas.iter().map(|a| a.vma.end - a.vma.start).sum::<u64>();
    summary.page_bytes += spans.iter().map(|s| s.1 * PAGE).sum::<u64>();
    w.pagemap_with(
        &format!("pagemap-{p}.img"),
        1 + p,
        spans.iter().copied(),
        |k, off, buf| {
            let addr = spans[k].0 + off;
            fill_words(seed, compressible, p, addr, buf);
            // The stack's strings overwrite the generated words where they lie.
            let (lo, hi) = (args_at, args_at + strings.len() as u64);
            let (b_lo, b_hi) = (addr, addr + buf.len() as u64);
            if lo < b_hi && b_lo < hi {
                let from = lo.max(b_lo);
                let to = hi.min(b_hi);
                buf[(from - b_lo) as usize..(to - b_lo) as usize]
                    .copy_from_slice(&strings[(from - lo) as usize..(to - lo) as usize]);
            }
        },
    )?;
    Ok(())
}

/// The mm image of a process with mappings `areas`, whose argv starts at
/// `args_at`, `args_len` bytes long, followed by the environment
/// (`strings_len` bytes of strings in all).
fn mm(areas: &[Area], args_at: u64, args_len: usize, strings_len: usize) -> proto::Mm {
    let auxv = vec![
        6,
        PAGE,
        33,
        VDSO_BASE + 4 * PAGE,
        9,
        EXE_BASE + 0x100,
        31,
        args_at,
        0,
        0,
    ];
    proto::Mm {
        start_code: EXE_BASE,
        end_code: EXE_BASE + 4 * PAGE,
        start_stack: STACK_TOP - 2 * PAGE,
        start_brk: HEAP_BASE,
        brk: HEAP_BASE + 8 * PAGE,
        arg_start: args_at,
        arg_end: args_at + args_len as u64,
        env_start: args_at + args_len as u64,
        env_end: args_at + strings_len as u64,
        exe_file_id: 1,
        saved_auxv: auxv,
        vmas: areas.iter().map(|a| a.vma).collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open, LoadOptions, Loaded, OpenOptions};

    #[test]
    fn synthesized_checkpoints_decode_and_hold_their_data() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            seed: 7,
            processes: 2,
            threads: 3,
            vmas: 20,
            bytes: 2 << 20,
            holes: 4,
            compressible: false,
        };
        let s = synthesize(dir.path(), &spec).unwrap();
        assert_eq!(s.pids, vec![1, 2]);
        let dumped = s.page_bytes - SHMEM_PAGES * PAGE;
        assert!(
            (2 << 20..(2 << 20) + 64 * PAGE).contains(&dumped),
            "{dumped}"
        );
        let ckpt = open(dir.path(), &OpenOptions::default()).unwrap();
        for (i, p) in s.pids.iter().enumerate() {
            let Loaded::Process(proc_) = ckpt.load(*p, &LoadOptions::default()).unwrap() else {
                panic!()
            };
            assert_eq!(proc_.threads.len(), 3);
            assert_eq!(proc_.mappings.len(), 20);
            assert!(proc_.warnings.is_empty(), "{:?}", proc_.warnings);
            let (argv, env) = command_line(i as u32);
            let bytes = |v: Vec<String>| v.into_iter().map(String::into_bytes).collect::<Vec<_>>();
            assert_eq!(proc_.argv().unwrap(), bytes(argv));
            assert_eq!(proc_.environment().unwrap(), bytes(env));
            let a = ANON_BASE + 8;
            let got = proc_.read_memory(a, 8).unwrap();
            assert_eq!(u64::from_le_bytes(got.try_into().unwrap()), word(7, *p, a));
            let shm = proc_.read_memory(SHMEM_BASE + 16, 8).unwrap();
            assert_eq!(u64::from_le_bytes(shm.try_into().unwrap()), word(7, 0, 16));
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let spec = Spec {
            vmas: 50,
            bytes: 300 << 10,
            ..Default::default()
        };
        synthesize(a.path(), &spec).unwrap();
        synthesize(b.path(), &spec).unwrap();
        for name in ["pagemap-1.img", "pages-2.img", "mm-1.img", "core-1.img"] {
            assert_eq!(
                std::fs::read(a.path().join(name)).unwrap(),
                std::fs::read(b.path().join(name)).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn compressible_memory_keeps_twelve_bits_a_word() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            seed: 7,
            vmas: 20,
            bytes: 1 << 20,
            compressible: true,
            ..Default::default()
        };
        synthesize(dir.path(), &spec).unwrap();
        let ckpt = open(dir.path(), &OpenOptions::default()).unwrap();
        let Loaded::Process(p) = ckpt.load(1, &LoadOptions::default()).unwrap() else {
            panic!()
        };
        let a = ANON_BASE + 64;
        let got = u64::from_le_bytes(p.read_memory(a, 8).unwrap().try_into().unwrap());
        assert_eq!(got, word(7, 1, a) & 0xfff);
        // The command line is still there to read.
        assert_eq!(p.argv().unwrap()[0], command_line(0).0[0].as_bytes());
    }
}
