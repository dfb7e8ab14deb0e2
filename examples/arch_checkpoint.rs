//! Writes the CRIU images of a process from a state taken of it without
//! CRIU: every thread's registers, the memory map, the bytes of every
//! readable mapping and the auxiliary vector. Two captures are read:
//!
//! - other architectures, as scripts/arch-fixtures/capture.py takes them
//!   under qemu-user through gdb (scripts/make-arch-fixtures): registers by
//!   gdb's names; the pages written are those that are not zero (anonymous)
//!   or not the file's own bytes (the executable's mappings);
//! - ARCH `i386`, a native 32-bit (compat) process as
//!   scripts/i386-fixture/capture.c takes it with ptrace
//!   (scripts/make-i386-fixture): the raw regsets CRIU's compel reads, turned
//!   into what CRIU writes for a compat task (`gpregs.mode = COMPAT`, the
//!   32-bit registers zero-extended, the restart of an interrupted system
//!   call, the XSAVE components where this CPU puts them, the GDT TLS
//!   slots, /proc/PID/auxv read as 64-bit words); the pages written are
//!   those CRIU dumps, as the capture lists them.
//!
//! Usage: arch_checkpoint ARCH CAPTURE_DIR EXE EXE_PATH OUT_DIR ARGV...
//! (EXE: the executable on this machine; EXE_PATH: its path in the process;
//! ARGV: the command line the process ran with.)

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use criu2core::criu::memory::status;
use criu2core::criu::pagemap::PE_PRESENT;
use criu2core::criu::writer::{CheckpointWriter, PageSpan};
use criu2core::proto;

/// One thread's registers: name → value bytes, most significant first.
type Regs = HashMap<String, Vec<u8>>;

fn read_registers(path: &Path) -> Result<Vec<(u32, Regs)>> {
    let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut threads: Vec<(u32, Regs)> = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        match cols[..] {
            ["thread", tid] => threads.push((tid.parse()?, Regs::new())),
            [name, size, value] => {
                let size: usize = size.parse()?;
                let hex = value.trim_start_matches("0x");
                ensure!(hex.len() == 2 * size, "{line}: value is not {size} bytes");
                let bytes = (0..size)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()?;
                let t = threads.last_mut().context("register before any thread")?;
                t.1.insert(name.to_string(), bytes);
            }
            _ => bail!("{}: cannot read {line:?}", path.display()),
        }
    }
    Ok(threads)
}

/// Reads registers by gdb's names.
struct Reader<'a> {
    regs: &'a Regs,
    big_endian: bool,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Result<&[u8]> {
        self.regs
            .get(name)
            .map(Vec::as_slice)
            .with_context(|| format!("register {name} was not captured"))
    }

    fn u64(&self, name: &str) -> Result<u64> {
        let b = self.raw(name)?;
        ensure!(b.len() <= 8, "register {name} is wider than 64 bits");
        Ok(b.iter().fold(0, |a, &x| a << 8 | u64::from(x)))
    }

    fn u32(&self, name: &str) -> Result<u32> {
        Ok(self.u64(name)? as u32)
    }

    fn list(&self, names: impl IntoIterator<Item = String>) -> Result<Vec<u64>> {
        names.into_iter().map(|n| self.u64(&n)).collect()
    }

    /// A 128-bit register as the two words its bytes form in memory.
    fn vector(&self, name: &str) -> Result<[u64; 2]> {
        let mut b = self.raw(name)?.to_vec();
        ensure!(b.len() == 16, "register {name} is not 128 bits");
        let word = |c: &[u8]| -> u64 {
            let a: [u8; 8] = c.try_into().unwrap_or_default();
            if self.big_endian {
                u64::from_be_bytes(a)
            } else {
                u64::from_le_bytes(a)
            }
        };
        if !self.big_endian {
            b.reverse(); // the number's bytes, least significant first
        }
        Ok([word(&b[..8]), word(&b[8..])])
    }

    fn vectors(&self, names: impl IntoIterator<Item = String>) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for n in names {
            out.extend(self.vector(&n)?);
        }
        Ok(out)
    }
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn thread_info(arch: &str, r: &Reader, core: &mut proto::Core) -> Result<()> {
    use proto::core::Arch;
    match arch {
        "aarch64" => {
            core.mtype = Arch::Aarch64 as i32;
            core.aarch64 = Some(proto::ThreadInfoAarch64 {
                clear_tid_addr: 0,
                tls: r.u64("TPIDR_EL0")?,
                gpregs: proto::Aarch64Regs {
                    regs: r.list(numbered("x", 0..31))?,
                    sp: r.u64("sp")?,
                    pc: r.u64("pc")?,
                    pstate: r.u64("cpsr")?,
                },
                fpsimd: proto::Aarch64Fpsimd {
                    vregs: r.vectors(numbered("v", 0..32))?,
                    fpsr: r.u32("fpsr")?,
                    fpcr: r.u32("fpcr")?,
                },
                pac_keys: None,
            });
        }
        "riscv64" => {
            let x = |n: &str| r.u64(n);
            core.mtype = Arch::Riscv64 as i32;
            let mut f = numbered("ft", 0..8);
            f.extend(["fs0", "fs1"].map(String::from));
            f.extend(numbered("fa", 0..8));
            f.extend(numbered("fs", 2..12));
            f.extend(numbered("ft", 8..12));
            core.riscv64 = Some(proto::ThreadInfoRiscv64 {
                clear_tid_addr: 0,
                tls: x("tp")?,
                gpregs: proto::Riscv64Regs {
                    pc: x("pc")?,
                    ra: x("ra")?,
                    sp: x("sp")?,
                    gp: x("gp")?,
                    tp: x("tp")?,
                    t0: x("t0")?,
                    t1: x("t1")?,
                    t2: x("t2")?,
                    s0: x("fp")?,
                    s1: x("s1")?,
                    a0: x("a0")?,
                    a1: x("a1")?,
                    a2: x("a2")?,
                    a3: x("a3")?,
                    a4: x("a4")?,
                    a5: x("a5")?,
                    a6: x("a6")?,
                    a7: x("a7")?,
                    s2: x("s2")?,
                    s3: x("s3")?,
                    s4: x("s4")?,
                    s5: x("s5")?,
                    s6: x("s6")?,
                    s7: x("s7")?,
                    s8: x("s8")?,
                    s9: x("s9")?,
                    s10: x("s10")?,
                    s11: x("s11")?,
                    t3: x("t3")?,
                    t4: x("t4")?,
                    t5: x("t5")?,
                    t6: x("t6")?,
                },
                fpsimd: proto::Riscv64DExt {
                    f: r.list(f)?,
                    fcsr: r.u32("fcsr")?,
                },
            });
        }
        "ppc64le" => {
            core.mtype = Arch::Ppc64 as i32;
            let mut fp = r.list(numbered("f", 0..32))?;
            fp.push(r.u64("fpscr")?);
            let mut vr = r.vectors(numbered("vr", 0..32))?;
            // vscr sits in the first word of its 16-byte slot on little-endian.
            vr.extend([r.u64("vscr")?, 0]);
            core.ppc64 = Some(proto::ThreadInfoPpc64 {
                clear_tid_addr: 0,
                gpregs: proto::Ppc64Regs {
                    gpr: r.list(numbered("r", 0..32))?,
                    nip: r.u64("pc")?,
                    msr: r.u64("msr")?,
                    orig_gpr3: 0, // not in qemu's view
                    ctr: r.u64("ctr")?,
                    link: r.u64("lr")?,
                    xer: r.u64("xer")?,
                    ccr: r.u64("cr")?,
                    trap: 0,
                    ..Default::default()
                },
                fpstate: Some(proto::Ppc64Fpstate { fpregs: fp }),
                vrstate: Some(proto::Ppc64Vrstate {
                    vrregs: vr,
                    vrsave: r.u32("vrsave")?,
                }),
                // The hidden raw halves are vs0h-vs31h, in order.
                vsxstate: Some(proto::Ppc64Vsxstate {
                    vsxregs: r.list(numbered("#", 0..32))?,
                }),
                tmstate: None,
            });
        }
        "s390x" => {
            core.mtype = Arch::S390 as i32;
            core.s390 = Some(proto::ThreadInfoS390 {
                clear_tid_addr: 0,
                gpregs: proto::S390Regs {
                    psw_mask: r.u64("pswm")?,
                    psw_addr: r.u64("pswa")?,
                    gprs: r.list(numbered("r", 0..16))?,
                    acrs: r
                        .list(numbered("acr", 0..16))?
                        .into_iter()
                        .map(|a| a as u32)
                        .collect(),
                    orig_gpr2: 0, // not in qemu's view
                    system_call: 0,
                },
                fpregs: proto::S390Fpregs {
                    fpc: r.u32("fpc")?,
                    fprs: r.list(numbered("f", 0..16))?,
                },
                // The hidden raw halves are v0l-v15l, in order.
                vxrs_low: Some(proto::S390VxrsLow {
                    regs: r.list(numbered("#", 0..16))?,
                }),
                vxrs_high: Some(proto::S390VxrsHigh {
                    regs: r.vectors(numbered("v", 16..32))?,
                }),
                gs_cb: None,
                gs_bc: None,
                ri_cb: None,
            });
        }
        _ => bail!("unknown architecture {arch}"),
    }
    Ok(())
}

/// One line of /proc/PID/maps.
struct MapLine {
    start: u64,
    end: u64,
    perms: String,
    offset: u64,
    path: String,
}

fn read_maps(path: &Path) -> Result<Vec<MapLine>> {
    let text = fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        ensure!(cols.len() >= 5, "{}: cannot read {line:?}", path.display());
        let (s, e) = cols[0].split_once('-').context("no range")?;
        out.push(MapLine {
            start: u64::from_str_radix(s, 16)?,
            end: u64::from_str_radix(e, 16)?,
            perms: cols[1].to_string(),
            offset: u64::from_str_radix(cols[2], 16)?,
            path: cols.get(5).map_or(String::new(), |p| p.to_string()),
        });
    }
    Ok(out)
}

/// The 32-bit words of a little-endian byte string.
fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The 64-bit words of a little-endian byte string.
fn u64s(b: &[u8]) -> Vec<u64> {
    b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect()
}

/// Exactly `N` 32-bit words of a little-endian byte string.
fn le_words<const N: usize>(what: &str, b: &[u8]) -> Result<[u32; N]> {
    let v = u32s(b);
    let len = v.len();
    v.try_into()
        .map_err(|_| anyhow::anyhow!("{what}: {len} words, expected {N}"))
}

/// What CRIU saves of one thread of a 32-bit (compat) task, from the
/// regsets capture.c took of it; `layout` is (feature bit, offset, size) of
/// each XSAVE component on the CPU it ran on.
fn compat_thread(dir: &Path, layout: &[(u32, usize, usize)]) -> Result<proto::ThreadInfoX86> {
    let read =
        |name: &str| fs::read(dir.join(name)).with_context(|| format!("{}/{name}", dir.display()));
    let [bx, cx, dx, si, di, bp, mut ax, ds, es, fs, gs, orig_ax, mut ip, cs, flags, sp, ss] =
        le_words::<17>("prstatus", &read("prstatus")?)?;
    // compel: a task stopped in an interruptible system call is saved at the
    // point where it restarts it.
    if orig_ax as i32 >= 0 {
        match ax as i32 {
            -514..=-512 => {
                ax = orig_ax;
                ip = ip.wrapping_sub(2);
            }
            -516 => ax = -4i32 as u32, // -ERESTART_RESTARTBLOCK: -EINTR
            _ => {}
        }
    }
    let w = u64::from;
    let gpregs = proto::X86Regs {
        bx: w(bx),
        cx: w(cx),
        dx: w(dx),
        si: w(si),
        di: w(di),
        bp: w(bp),
        ax: w(ax),
        ds: w(ds),
        es: w(es),
        fs: w(fs),
        gs: w(gs),
        orig_ax: w(orig_ax),
        ip: w(ip),
        cs: w(cs),
        flags: w(flags),
        sp: w(sp),
        ss: w(ss),
        mode: Some(proto::X86RegsMode::Compat as i32),
        ..Default::default()
    };

    // The XSAVE area; compel rereads the legacy area with PTRACE_GETFPREGS
    // where XSTATE_BV says x87 or SSE is in its initial state.
    let xstate = read("xstate")?;
    ensure!(xstate.len() >= 576, "xstate: {} bytes", xstate.len());
    let xstate_bv = u64::from_le_bytes(xstate[512..520].try_into()?);
    let legacy = if xstate_bv & 3 != 3 {
        read("fpregs")?
    } else {
        xstate[..512].to_vec()
    };
    ensure!(legacy.len() == 512, "fpregs: {} bytes", legacy.len());
    let u16_at = |o: usize| u32::from(u16::from_le_bytes([legacy[o], legacy[o + 1]]));
    let component = |bit: u32| -> Result<&[u8]> {
        Ok(match layout.iter().find(|c| c.0 == bit) {
            Some(&(_, off, size)) => xstate
                .get(off..off + size)
                .with_context(|| format!("xsave component {bit} lies past the area"))?,
            None => &[],
        })
    };
    let xsave = proto::X86Xsave {
        xstate_bv,
        ymmh: u32s(component(2)?),
        bndregs: u64s(component(3)?),
        bndcsr: u64s(component(4)?),
        opmask: u64s(component(5)?),
        zmm_hi256: u64s(component(6)?),
        hi16_zmm: u64s(component(7)?),
        pkru: u32s(component(9)?),
    };
    let fpregs = proto::X86Fpregs {
        cwd: u16_at(0),
        swd: u16_at(2),
        twd: u16_at(4),
        fop: u16_at(6),
        rip: u64::from_le_bytes(legacy[8..16].try_into()?),
        rdp: u64::from_le_bytes(legacy[16..24].try_into()?),
        mxcsr: u32s(&legacy[24..28])[0],
        mxcsr_mask: u32s(&legacy[28..32])[0],
        st_space: u32s(&legacy[32..160]),
        xmm_space: u32s(&legacy[160..416]),
        xsave: Some(xsave),
    };

    // struct user_desc: entry_number, base_addr, limit, then the flag bits.
    let tls_bytes = read("tls")?;
    ensure!(tls_bytes.len() == 48, "tls: {} bytes", tls_bytes.len());
    let tls = tls_bytes
        .chunks_exact(16)
        .map(|d| {
            let [entry_number, base_addr, limit, bits] = le_words::<4>("tls", d)?;
            let bit = |n: u32| bits >> n & 1 != 0;
            Ok(proto::X86UserDesc {
                entry_number,
                base_addr,
                limit,
                seg_32bit: bit(0),
                contents_h: bit(2),
                contents_l: bit(1),
                read_exec_only: bit(3),
                limit_in_pages: bit(4),
                seg_not_present: bit(5),
                usable: bit(6),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(proto::ThreadInfoX86 {
        clear_tid_addr: 0,
        gpregs,
        fpregs,
        tls,
    })
}

/// A field of /proc/PID/status ("SigBlk", "Uid", ...): its first value.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()
}

/// The threads of a capture, the leader first, with what their core images
/// need: (tid, registers as CRIU stores them, /proc status if captured).
fn captured_threads(
    arch: &str,
    capture: &Path,
    big_endian: bool,
) -> Result<Vec<(u32, proto::Core, Option<String>)>> {
    let mut out = Vec::new();
    if arch != "i386" {
        for (tid, regs) in read_registers(&capture.join("registers.txt"))? {
            let mut core = proto::Core::default();
            let reader = Reader {
                regs: &regs,
                big_endian,
            };
            thread_info(arch, &reader, &mut core).with_context(|| format!("thread {tid}"))?;
            out.push((tid, core, None));
        }
        return Ok(out);
    }
    let layout: Vec<(u32, usize, usize)> = fs::read_to_string(capture.join("xsave-layout.txt"))?
        .lines()
        .map(|l| -> Result<(u32, usize, usize)> {
            let n: Vec<&str> = l.split_whitespace().collect();
            ensure!(n.len() == 3, "xsave-layout.txt: {l:?}");
            Ok((n[0].parse()?, n[1].parse()?, n[2].parse()?))
        })
        .collect::<Result<_>>()?;
    for tid in fs::read_to_string(capture.join("tids.txt"))?.split_whitespace() {
        let dir = capture.join(format!("thread-{tid}"));
        let ti = compat_thread(&dir, &layout).with_context(|| format!("thread {tid}"))?;
        let core = proto::Core {
            mtype: proto::core::Arch::X8664 as i32,
            x86: Some(ti),
            ..Default::default()
        };
        let status = fs::read_to_string(dir.join("status"))?;
        out.push((tid.parse()?, core, Some(status)));
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    ensure!(
        args.len() > 6,
        "usage: arch_checkpoint ARCH CAPTURE_DIR EXE EXE_PATH OUT_DIR ARGV..."
    );
    let (arch, capture, exe, exe_path, out) = (
        &args[1],
        Path::new(&args[2]),
        Path::new(&args[3]),
        &args[4],
        Path::new(&args[5]),
    );
    let argv = &args[6..];
    let big_endian = arch == "s390x";
    let word = |b: &[u8]| -> u64 {
        let a: [u8; 8] = b.try_into().unwrap_or_default();
        if big_endian {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };

    // CRIU reads /proc/PID/auxv into 64-bit words, whatever the task: a
    // 32-bit task's pairs of 32-bit words end up two to a saved word.
    let auxv_bytes = fs::read(capture.join("state.auxv"))?;
    let auxv: Vec<u64> = auxv_bytes.chunks_exact(8).map(word).collect();
    let auxv_words: Vec<u64> = if arch == "i386" {
        auxv.iter()
            .flat_map(|w| [w & 0xffff_ffff, w >> 32])
            .collect()
    } else {
        auxv.clone()
    };
    let page_size = auxv_words
        .chunks(2)
        .find(|p| p[0] == 6)
        .map(|p| p[1])
        .context("no AT_PAGESZ")?;
    let threads = captured_threads(arch, capture, big_endian)?;
    let pid = threads.first().context("no threads")?.0;
    let maps = read_maps(&capture.join("state.maps"))?;
    let exe_bytes = fs::read(exe)?;
    let host_exe = exe.to_string_lossy();
    // The pages CRIU would dump, where the capture could tell.
    let dumped: Option<BTreeSet<u64>> = match fs::read_to_string(capture.join("dumped.txt")) {
        Ok(text) => Some(
            text.split_whitespace()
                .map(|a| u64::from_str_radix(a, 16))
                .collect::<Result<_, _>>()?,
        ),
        Err(_) => None,
    };
    // ppid, pgid and sid from /proc/PID/stat, where captured (the fields
    // after the parenthesised command name).
    let stat = fs::read_to_string(capture.join("state.stat")).unwrap_or_default();
    let stat_field = |n: usize| -> Option<u32> {
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(n)?
            .parse()
            .ok()
    };
    let comm: String = exe_path
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(15)
        .collect();

    let images = out.join("images");
    let _ = fs::remove_dir_all(&images);
    let w = CheckpointWriter::create(&images, page_size)?;
    w.inventory()?;
    w.pstree(&[proto::PstreeEntry {
        pid,
        ppid: stat_field(1).unwrap_or(1),
        pgid: stat_field(2).unwrap_or(pid),
        sid: stat_field(3).unwrap_or(pid),
        threads: threads.iter().map(|t| t.0).collect(),
    }])?;
    for (i, (tid, core, status)) in threads.iter().enumerate() {
        let status = status.as_deref().unwrap_or("");
        let id = |name: &str, default: u32| {
            status_field(status, name)
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let blocked = status_field(status, "SigBlk").and_then(|v| u64::from_str_radix(v, 16).ok());
        let mut core = core.clone();
        core.thread_core = Some(proto::ThreadCore {
            creds: Some(proto::Creds {
                uid: id("Uid", 1000),
                gid: id("Gid", 1000),
                ..Default::default()
            }),
            comm: Some(comm.clone().into_bytes()),
            blk_sigset: blocked.filter(|_| i > 0),
            ..Default::default()
        });
        if i == 0 {
            core.tc = Some(proto::TaskCore {
                task_state: proto::TaskState::TaskAlive as u32,
                comm: comm.clone().into_bytes(),
                blk_sigset: blocked.unwrap_or(0),
                ..Default::default()
            });
        }
        w.core(*tid, &core)?;
    }

    // Every mapped file gets an id, the executable 1; paths are the
    // process's own (the executable may lie elsewhere on this machine).
    let in_process = |p: &str| -> String {
        if p == host_exe {
            exe_path.clone()
        } else {
            p.to_string()
        }
    };
    let mut files: Vec<String> = vec![exe_path.clone()];
    for m in &maps {
        let p = in_process(&m.path);
        if p.starts_with('/') && !files.contains(&p) {
            files.push(p);
        }
    }
    let file_id = |p: &str| files.iter().position(|f| f == p).map(|i| i as u32 + 1);
    w.files(
        &files
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let size = if *name == *exe_path {
                    exe_bytes.len() as u64
                } else {
                    fs::metadata(name).map(|m| m.len()).unwrap_or(0)
                };
                proto::FileEntry {
                    r#type: proto::FdType::Reg as i32,
                    id: i as u32 + 1,
                    reg: Some(proto::RegFile {
                        id: i as u32 + 1,
                        name: name.clone().into_bytes(),
                        size: Some(size),
                        ..Default::default()
                    }),
                    memfd: None,
                }
            })
            .collect::<Vec<_>>(),
    )?;

    // Memory: the pages CRIU dumps where the capture lists them; otherwise
    // every page that is not zero (anonymous) or not the file's own bytes
    // (the executable's mappings).
    let mut vmas: Vec<proto::Vma> = Vec::new();
    let mut present: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut arg_range, mut env_range) = ((0, 0), (0, 0));
    for m in &maps {
        let path = in_process(&m.path);
        let file = file_id(&path);
        let prot = (m.perms.contains('r') as u32)
            | (m.perms.contains('w') as u32) << 1
            | (m.perms.contains('x') as u32) << 2;
        let mut st = 1; // VMA_AREA_REGULAR
        st |= if file.is_some() {
            status::FILE_PRIVATE
        } else {
            status::ANON_PRIVATE
        };
        match m.path.as_str() {
            "[stack]" => st |= status::STACK,
            "[heap]" => st |= status::HEAP,
            "[vdso]" => st |= status::VDSO,
            p if p.starts_with("[vvar") => st |= status::VVAR,
            _ => {}
        }
        // CRIU keeps [vvar] and [vvar_vclock] as one area.
        if let Some(prev) = vmas.last_mut() {
            if st & status::VVAR != 0 && prev.status == st && prev.end == m.start {
                prev.end = m.end;
                continue;
            }
        }
        vmas.push(proto::Vma {
            start: m.start,
            end: m.end,
            pgoff: m.offset,
            shmid: file.map_or(0, u64::from),
            prot,
            flags: if file.is_some() { 0x2 } else { 0x22 }, // MAP_PRIVATE [| MAP_ANONYMOUS]
            status: st,
            fd: -1,
            madv: None,
            fdflags: None,
        });
        if prot & 1 == 0 || st & status::VVAR != 0 {
            continue;
        }
        let mem = fs::read(capture.join(format!("mem/{:x}.bin", m.start)))?;
        ensure!(
            mem.len() as u64 == m.end - m.start,
            "short dump at {:x}",
            m.start
        );
        for (i, page) in mem.chunks(page_size as usize).enumerate() {
            let off = i as u64 * page_size;
            let dump = match &dumped {
                Some(d) => d.contains(&(m.start + off)),
                None if path == *exe_path => {
                    let fo = (m.offset + off) as usize;
                    exe_bytes.get(fo..fo + page.len()) != Some(page)
                        && (fo < exe_bytes.len() || page.iter().any(|&b| b != 0))
                }
                None => page.iter().any(|&b| b != 0),
            };
            if dump {
                present.push((m.start + off, page.to_vec()));
            }
        }
        if m.path == "[stack]" {
            let mut joined = argv.join("\0").into_bytes();
            joined.push(0);
            let at = find(&mem, &joined).context("argv is not on the stack")?;
            let arg_start = m.start + at as u64;
            let arg_end = arg_start + joined.len() as u64;
            let env_len: usize = mem[at + joined.len()..]
                .split(|&b| b == 0)
                .take_while(|s| s.contains(&b'='))
                .map(|s| s.len() + 1)
                .sum();
            arg_range = (arg_start, arg_end);
            env_range = (arg_end, arg_end + env_len as u64);
        }
    }
    ensure!(arg_range.1 > 0, "no [stack] mapping");
    // One pagemap entry per run of consecutive pages, as CRIU writes them.
    let mut spans: Vec<(u64, Vec<u8>)> = Vec::new();
    for (addr, data) in present {
        match spans.last_mut() {
            Some((start, bytes)) if *start + bytes.len() as u64 == addr => {
                bytes.extend_from_slice(&data)
            }
            _ => spans.push((addr, data)),
        }
    }
    w.pagemap(
        &format!("pagemap-{pid}.img"),
        1,
        spans.iter().map(|(addr, data)| PageSpan {
            vaddr: *addr,
            nr_pages: data.len() as u64 / page_size,
            flags: PE_PRESENT,
            data,
        }),
    )?;
    w.mm(
        pid,
        &proto::Mm {
            arg_start: arg_range.0,
            arg_end: arg_range.1,
            env_start: env_range.0,
            env_end: env_range.1,
            exe_file_id: 1,
            saved_auxv: auxv,
            vmas,
            ..Default::default()
        },
    )?;
    eprintln!(
        "{}: {} threads, {} pages",
        images.display(),
        threads.len(),
        spans
            .iter()
            .map(|s| s.1.len() as u64 / page_size)
            .sum::<u64>()
    );
    Ok(())
}
