//! Writes the CRIU images of a process of another architecture from the
//! state scripts/arch-fixtures/capture.py took of it under qemu-user: every
//! thread's registers, the memory map, the bytes of every readable mapping
//! and the auxiliary vector. Used by scripts/make-arch-fixtures.
//!
//! Usage: arch_checkpoint ARCH CAPTURE_DIR EXE EXE_PATH OUT_DIR ARGV...
//! (EXE: the executable on this machine; EXE_PATH: its path in the process;
//! ARGV: the command line the process ran with.)

use std::collections::HashMap;
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

    let auxv_bytes = fs::read(capture.join("state.auxv"))?;
    let auxv: Vec<u64> = auxv_bytes.chunks_exact(8).map(word).collect();
    let page_size = auxv
        .chunks(2)
        .find(|p| p[0] == 6)
        .map(|p| p[1])
        .context("no AT_PAGESZ")?;
    let threads = read_registers(&capture.join("registers.txt"))?;
    let pid = threads.first().context("no threads")?.0;
    let maps = read_maps(&capture.join("state.maps"))?;
    let exe_bytes = fs::read(exe)?;
    let host_exe = exe.to_string_lossy();

    let images = out.join("images");
    let _ = fs::remove_dir_all(&images);
    let w = CheckpointWriter::create(&images, page_size)?;
    w.inventory()?;
    w.pstree(&[proto::PstreeEntry {
        pid,
        ppid: 1,
        pgid: pid,
        sid: pid,
        threads: threads.iter().map(|t| t.0).collect(),
    }])?;
    for (i, (tid, regs)) in threads.iter().enumerate() {
        let reader = Reader { regs, big_endian };
        let mut core = proto::Core {
            thread_core: Some(proto::ThreadCore {
                creds: Some(proto::Creds {
                    uid: 1000,
                    gid: 1000,
                    ..Default::default()
                }),
                comm: Some("arches".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        if i == 0 {
            core.tc = Some(proto::TaskCore {
                task_state: proto::TaskState::TaskAlive as u32,
                comm: "arches".into(),
                ..Default::default()
            });
        }
        thread_info(arch, &reader, &mut core).with_context(|| format!("thread {tid}"))?;
        w.core(*tid, &core)?;
    }
    w.files(&[proto::FileEntry {
        r#type: proto::FdType::Reg as i32,
        id: 1,
        reg: Some(proto::RegFile {
            id: 1,
            name: exe_path.clone(),
            size: Some(exe_bytes.len() as u64),
            ..Default::default()
        }),
        memfd: None,
    }])?;

    // Memory: every page that is not zero (anonymous) or not the file's own
    // bytes (file mappings), as CRIU dumps them.
    let mut vmas = Vec::new();
    let mut present: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut arg_range, mut env_range) = ((0, 0), (0, 0));
    for m in &maps {
        let file_backed = m.path == host_exe;
        let prot = (m.perms.contains('r') as u32)
            | (m.perms.contains('w') as u32) << 1
            | (m.perms.contains('x') as u32) << 2;
        let mut st = 1; // VMA_AREA_REGULAR
        st |= if file_backed {
            status::FILE_PRIVATE
        } else {
            status::ANON_PRIVATE
        };
        if m.path == "[stack]" {
            st |= status::STACK;
        }
        vmas.push(proto::Vma {
            start: m.start,
            end: m.end,
            pgoff: m.offset,
            shmid: if file_backed { 1 } else { 0 },
            prot,
            flags: if file_backed { 0x2 } else { 0x22 }, // MAP_PRIVATE [| MAP_ANONYMOUS]
            status: st,
            fd: -1,
            madv: None,
            fdflags: None,
        });
        if prot & 1 == 0 {
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
            let unchanged = if file_backed {
                let fo = (m.offset + off) as usize;
                exe_bytes.get(fo..fo + page.len()) == Some(page)
                    || (fo >= exe_bytes.len() && page.iter().all(|&b| b == 0))
            } else {
                page.iter().all(|&b| b == 0)
            };
            if !unchanged {
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
    w.pagemap(
        &format!("pagemap-{pid}.img"),
        1,
        present.iter().map(|(addr, data)| PageSpan {
            vaddr: *addr,
            nr_pages: 1,
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
        present.len()
    );
    Ok(())
}
