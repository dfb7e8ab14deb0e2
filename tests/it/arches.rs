//! Checkpoints of other architectures, converted on this host, must show in
//! gdb-multiarch what gdb showed of the live process.
//!
//! The fixtures in gdb-fixtures/arches/ (made by scripts/make-arch-fixtures)
//! hold a statically linked three-thread program per architecture, the CRIU
//! images of it stopped at checkpoint_here() under qemu-user (written by
//! CRIU's own serializer, `crit encode`), and `live.txt`:
//! gdb's answers to gdb-fixtures/arches/commands.txt through qemu's gdb
//! stub at that moment. The core must give the same answers: threads and
//! their frames, backtraces through the program's real frames, every
//! register both views know (general, floating-point and vector), the
//! marker strings and the auxiliary vector; the thread pointer of every
//! thread, the command line in NT_PRPSINFO, and the ELF header of the
//! architecture (byte order included) are checked besides.
//!
//! Without gdb-multiarch the tests are ignored, saying why, unless
//! CRIU2CORE_REQUIRE_TOOLS is set (as in CI), where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::Need;
use libtest_mimic::Trial;

const GDB: &str = "gdb-multiarch";
const EXE: &str = "/srv/arches/arches";
const PSARGS: &str =
    "/srv/arches/arches with a command line long enough to run past the eighty bytes";
const MARKERS: [&str; 4] = [
    "RANDOM_ARCH_KEY_6",
    "HEAP_MARKER_77",
    "ENV_MARKER_5150",
    "ARGV_TAIL",
];

/// The LWP a thread header or `info threads` row names: "(LWP N)" in a
/// core, "Thread 1.N" through qemu's stub.
fn lwp(line: &str) -> Option<u32> {
    let digits =
        |s: &str| -> Option<u32> { s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok() };
    if let Some((_, r)) = line.split_once("(LWP ") {
        return digits(r);
    }
    digits(line.split_once("Thread 1.")?.1)
}

/// Splits `thread apply all …` output into LWP → non-empty lines.
fn by_thread(section: &str) -> BTreeMap<u32, Vec<String>> {
    let mut map: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in section.lines() {
        if line.starts_with("Thread ") && line.ends_with("):") {
            current = lwp(line);
            if let Some(l) = current {
                map.entry(l).or_default();
            }
        } else if let (Some(l), false) = (current, line.trim().is_empty()) {
            map.entry(l).or_default().push(line.to_string());
        }
    }
    map
}

/// (LWP, frame) of each `info threads` row.
fn thread_rows(section: &str) -> Vec<(u32, String)> {
    section
        .lines()
        .filter_map(|l| {
            let id = lwp(l)?;
            let rest = match l.split_once("(LWP ") {
                Some((_, r)) => r.split_once(')')?.1,
                None => l.split_once("]) ")?.1,
            };
            Some((id, rest.trim().to_string()))
        })
        .collect()
}

/// Whether a token of `info all-registers` is a value in MIPS's table:
/// 8 or 16 hex digits.
fn table_value(t: &str) -> bool {
    matches!(t.len(), 8 | 16) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// name → value text of `info all-registers` lines: one register a line
/// ("name value ..."), or, as gdb prints MIPS's general registers, a line
/// of names over a line of values (the values possibly after a row label
/// such as "R8"), and "f0: value ..." lines.
fn registers(lines: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        let names: Vec<&str> = lines[i].split_whitespace().collect();
        let next: Vec<&str> = lines
            .get(i + 1)
            .map_or(vec![], |l| l.split_whitespace().collect());
        let values = &next[next.len().saturating_sub(names.len())..];
        if names.len() > 1
            && !names.iter().any(|n| table_value(n))
            && values.len() == names.len()
            && values.iter().all(|v| table_value(v))
        {
            for (n, v) in names.iter().zip(values) {
                out.insert(n.to_string(), v.to_string());
            }
            i += 2;
            continue;
        }
        if let Some((name, value)) = lines[i].trim_start().split_once(char::is_whitespace) {
            out.insert(
                name.trim_end_matches(':').to_string(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            );
        }
        i += 1;
    }
    out
}

/// The leaves of a printed gdb value: "{a = {b = 1, c = {2, 3}}}" gives
/// ("a.b", "1") and ("a.c", "{2, 3}"); a scalar is its own leaf. Vector
/// registers print as unions whose member list depends on the target
/// description (a core's has half-float views qemu's lacks), so they are
/// compared leaf by leaf.
fn leaves(value: &str) -> BTreeMap<String, String> {
    fn split_top(s: &str) -> Vec<&str> {
        let (mut depth, mut start, mut out) = (0, 0, Vec::new());
        for (i, c) in s.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(s[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(s[start..].trim());
        out
    }
    fn walk(prefix: &str, v: &str, out: &mut BTreeMap<String, String>) {
        let inner = v.strip_prefix('{').and_then(|r| r.strip_suffix('}'));
        let fields: Option<Vec<(&str, &str)>> = inner.and_then(|i| {
            split_top(i)
                .into_iter()
                .map(|f| f.split_once(" = "))
                .collect()
        });
        match fields {
            Some(fields) => {
                for (name, value) in fields {
                    walk(&format!("{prefix}.{name}"), value, out);
                }
            }
            None => {
                out.insert(prefix.to_string(), v.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// Whether two printed register values agree on everything both show. A
/// scalar is compared by its first column, the hex value: the natural
/// column of a flags register depends on the target description too.
fn same_value(a: &str, b: &str) -> bool {
    match (a.starts_with('{'), b.starts_with('{')) {
        (false, false) => return a.split_whitespace().next() == b.split_whitespace().next(),
        // One view types the register as a float, showing its bits as
        // "(raw 0x...)", the other as a union of integer vectors (qemu's
        // Arm d registers): the bits must be the union's u64.
        (true, false) => return raw_matches_u64(b, a),
        (false, true) => return raw_matches_u64(a, b),
        (true, true) => {}
    }
    let (a, b) = (leaves(a), leaves(b));
    let common: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    !common.is_empty() && common.iter().all(|k| a[*k] == b[*k])
}

/// Whether `scalar`'s "(raw 0x...)" bits are the ".u64" leaf of `union`.
fn raw_matches_u64(scalar: &str, union: &str) -> bool {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let raw = scalar
        .split_once("(raw ")
        .and_then(|(_, r)| hex(r.trim_end_matches(')')));
    let u64_leaf = leaves(union).get(".u64").and_then(|v| hex(v));
    raw.is_some() && raw == u64_leaf
}

/// The word (4 or 8 bytes, as long as `b` allows) at byte `at` of `b`.
fn word(b: &[u8], at: usize, little_endian: bool) -> u64 {
    let n = (b.len() - at).min(8);
    let mut w = [0u8; 8];
    if little_endian {
        w[..n].copy_from_slice(&b[at..at + n]);
        u64::from_le_bytes(w)
    } else {
        w[8 - n..].copy_from_slice(&b[at..at + n]);
        u64::from_be_bytes(w)
    }
}

fn names(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// Where a test reads each thread's thread pointer in the core.
enum ThreadPointer {
    /// `info all-registers` through qemu's stub shows it under the same
    /// name as in the core: compared with the other registers.
    Register,
    /// A gdb expression, where the stub shows it under another name.
    Gdb(&'static str),
    /// The contents of a note after each NT_PRSTATUS, where gdb does not
    /// read the note that holds it (Arm's NT_ARM_TLS in gdb 13).
    Note(u32),
    /// Nowhere: no note of the architecture's kernel holds it.
    Nowhere,
}

/// What a test checks of one architecture.
struct Expect {
    arch: &'static str,
    machine: u16,
    is_64: bool,
    big_endian: bool,
    flags: u32,
    /// Registers both views must show, and show alike.
    registers: Vec<String>,
    thread_pointer: ThreadPointer,
}

fn unpacked(arch: &str) -> PathBuf {
    unpack(
        &repo().join(format!("gdb-fixtures/arches/{arch}.tar.zst")),
        arch,
    )
}

fn commands() -> Vec<String> {
    fs::read_to_string(repo().join("gdb-fixtures/arches/commands.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.strip_prefix("@@") {
            Some(name) => format!("echo @@{name}\\n"),
            None => l.to_string(),
        })
        .collect()
}

fn the_core(dir: &Path) -> PathBuf {
    let cores: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("core.")
        })
        .collect();
    assert_eq!(cores.len(), 1, "one core expected in {}", dir.display());
    cores[0].clone()
}

fn check(x: Expect) {
    let fx = unpacked(x.arch);
    let out = scratch(&format!("arch-{}", x.arch));
    convert_ok(&[&"convert", &fx.join("images"), &"-o", &out]);
    let core = the_core(&out);

    let data = fs::read(&core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    assert_eq!(
        (
            elf.header.e_machine,
            elf.is_64,
            elf.little_endian,
            elf.header.e_flags
        ),
        (x.machine, x.is_64, !x.big_endian, x.flags),
        "{}: ELF header",
        x.arch
    );

    let mut cmds = commands();
    if let ThreadPointer::Gdb(tp) = x.thread_pointer {
        cmds.push("echo @@tp\\n".into());
        cmds.push(format!("thread apply all p/x {tp}"));
    }
    let sysroot = fx.join("sysroot");
    let exe = sysroot.join(EXE.trim_start_matches('/'));
    let o = run_gdb(GDB, Some(&sysroot), Some(&exe), &core, &cmds);
    let live = sections(&fs::read_to_string(fx.join("live.txt")).unwrap());
    let ours = sections(&o);
    let mut problems = Vec::new();
    let mut differ = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
        problems.push(format!("{what} differ:\n  live: {a:?}\n  core: {b:?}"));
    };

    // Threads, each in the same frame, and their backtraces frame by frame.
    let (lt, ot) = (
        thread_rows(sec(&live, "threads")),
        thread_rows(sec(&ours, "threads")),
    );
    if lt != ot || lt.len() != 3 {
        differ("threads", &lt, &ot);
    }
    let (lb, ob) = (by_thread(sec(&live, "bt")), by_thread(sec(&ours, "bt")));
    if lb != ob || lb.values().any(|f| f.len() < 2) {
        differ("backtraces", &lb, &ob);
    }
    for frames in ob.values() {
        if !frames
            .iter()
            .any(|f| f.contains(" main ") || f.contains(" worker "))
        {
            differ("frames of the program", &"main or worker", frames);
        }
    }

    // Every register both views show; the listed ones must be among them.
    let (lr, or) = (by_thread(sec(&live, "regs")), by_thread(sec(&ours, "regs")));
    if lr.keys().collect::<Vec<_>>() != or.keys().collect::<Vec<_>>() {
        differ("register threads", &lr.keys(), &or.keys());
    }
    for (id, lines) in &lr {
        let l = registers(lines);
        let o = registers(or.get(id).map_or(&[][..], |v| v));
        for name in &x.registers {
            if !l.contains_key(name) || !o.contains_key(name) {
                differ(
                    &format!("presence of {name} in LWP {id}"),
                    &l.contains_key(name),
                    &o.contains_key(name),
                );
            }
        }
        for (name, lv) in &l {
            if let Some(ov) = o.get(name) {
                if !same_value(lv, ov) {
                    differ(&format!("{name} of LWP {id}"), lv, ov);
                }
            }
        }
    }

    // Memory as the program sees it, and the auxiliary vector.
    for s in ["secret", "heap", "tps", "auxv"] {
        let (a, b) = (sec(&live, s), sec(&ours, s));
        if a != b || a.trim().is_empty() || a.contains("error") {
            differ(s, &a, &b);
        }
    }
    for (s, m) in [("secret", MARKERS[0]), ("heap", MARKERS[1])] {
        if !sec(&ours, s).contains(m) {
            differ(s, &m, &sec(&ours, s));
        }
    }
    let found: BTreeSet<String> = find_in_core(
        &core,
        &MARKERS.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
    )
    .into_iter()
    .map(|(m, _)| m)
    .collect();
    if found.len() != MARKERS.len() {
        differ("markers in the core's memory", &MARKERS, &found);
    }

    // Each thread's thread pointer is one the program recorded.
    let recorded: BTreeSet<String> = sec(&live, "tps")
        .split(['{', '}', ','])
        .map(|s| s.trim().to_string())
        .filter(|s| s.starts_with("0x"))
        .collect();
    let shown: Option<BTreeSet<String>> = match x.thread_pointer {
        ThreadPointer::Gdb(_) => Some(
            by_thread(sec(&ours, "tp"))
                .values()
                .flatten()
                .filter_map(|l| Some(l.split_once(" = ")?.1.trim().to_string()))
                .collect(),
        ),
        ThreadPointer::Note(kind) => Some(
            notes(&core)
                .into_iter()
                .filter(|n| n.1 == kind)
                .map(|n| format!("{:#x}", word(&n.2, 0, !x.big_endian)))
                .collect(),
        ),
        ThreadPointer::Register | ThreadPointer::Nowhere => None,
    };
    if let Some(shown) = shown {
        if recorded.len() != 3 || recorded != shown {
            differ("thread pointers", &recorded, &shown);
        }
    }

    // The kernel's pr_psargs, and no warning while reading the core.
    let want = format!("Core was generated by `{PSARGS}'.");
    if !o.contains(&want) {
        differ("psargs", &want, &sec(&ours, "@load"));
    }
    let warnings: Vec<&str> = o.lines().filter(|l| l.contains("warning:")).collect();
    if !warnings.is_empty() {
        differ("warnings", &"none", &warnings);
    }
    assert!(
        problems.is_empty(),
        "{}: {} difference(s):\n{}",
        x.arch,
        problems.len(),
        problems.join("\n")
    );
}

fn aarch64_core_reads_like_the_live_process() {
    let mut registers = names("x", 0..31);
    registers.extend(names("v", 0..32));
    registers.extend(["sp", "pc", "cpsr", "fpsr", "fpcr"].map(String::from));
    check(Expect {
        arch: "aarch64",
        machine: 183,
        is_64: true,
        big_endian: false,
        flags: 0,
        registers,
        thread_pointer: ThreadPointer::Gdb("$tpidr"),
    });
}

fn riscv64_core_reads_like_the_live_process() {
    let mut registers: Vec<String> = [
        "pc", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1", "fcsr", "fflags", "frm",
    ]
    .map(String::from)
    .to_vec();
    registers.extend(names("a", 0..8));
    registers.extend(names("s", 2..12));
    registers.extend(names("t", 3..7));
    registers.extend(names("ft", 0..12));
    registers.extend(names("fs", 0..12));
    registers.extend(names("fa", 0..8));
    check(Expect {
        arch: "riscv64",
        machine: 243,
        is_64: true,
        big_endian: false,
        flags: 0,
        registers,
        thread_pointer: ThreadPointer::Register,
    });
}

fn ppc64le_core_reads_like_the_live_process() {
    let mut registers = names("r", 0..32);
    registers.extend(names("f", 0..32));
    registers.extend(names("vr", 0..32));
    registers.extend(names("vs", 0..64));
    registers.extend(
        [
            "pc", "msr", "cr", "lr", "ctr", "xer", "fpscr", "vscr", "vrsave",
        ]
        .map(String::from),
    );
    check(Expect {
        arch: "ppc64le",
        machine: 21,
        is_64: true,
        big_endian: false,
        flags: 2,
        registers,
        thread_pointer: ThreadPointer::Register,
    });
}

fn s390x_core_reads_like_the_live_process() {
    let mut registers = names("r", 0..16);
    registers.extend(names("acr", 0..16));
    registers.extend(names("f", 0..16));
    registers.extend(names("v", 0..32));
    registers.extend(["pswm", "pswa", "fpc"].map(String::from));
    check(Expect {
        arch: "s390x",
        machine: 22,
        is_64: true,
        big_endian: true,
        flags: 0,
        registers,
        thread_pointer: ThreadPointer::Register,
    });
}

/// 32-bit Arm: an ELF32 core. qemu's stub shows the d registers as
/// integer vectors and the core's description as doubles (compared by
/// their bits); gdb 13 recognises NT_ARM_TLS but does not load
/// `tpidruro` from it, so the thread pointers are read from the notes.
fn armv7_core_reads_like_the_live_process() {
    let mut registers = names("r", 0..13);
    registers.extend(names("d", 0..32));
    registers.extend(names("s", 0..32));
    registers.extend(["sp", "lr", "pc", "cpsr", "fpscr"].map(String::from));
    check(Expect {
        arch: "armv7",
        machine: 40,
        is_64: false,
        big_endian: false,
        flags: 0,
        registers,
        thread_pointer: ThreadPointer::Note(0x401),
    });
}

/// MIPS64 n64: gdb prints the general registers as a table, which
/// `registers` reads. No note of a MIPS kernel's core holds the thread
/// pointer (UserLocal); the recorded ones are compared as memory.
fn mips64el_core_reads_like_the_live_process() {
    let mut registers: Vec<String> = [
        "zero", "at", "v0", "v1", "t8", "t9", "k0", "k1", "gp", "sp", "s8", "ra", "sr", "lo", "hi",
        "bad", "cause", "pc", "fsr", "fir",
    ]
    .map(String::from)
    .to_vec();
    registers.extend(names("a", 0..8));
    registers.extend(names("t", 0..4));
    registers.extend(names("s", 0..8));
    registers.extend(names("f", 0..32));
    check(Expect {
        arch: "mips64el",
        machine: 8,
        is_64: true,
        big_endian: false,
        flags: 0,
        registers,
        thread_pointer: ThreadPointer::Nowhere,
    });
}

/// Checks that a core is laid out in pages of `page` bytes: its PT_LOADs
/// are exactly the mappings the images list (which are in such pages),
/// aligned to `page` (p_align, file offsets, file sizes), and AT_PAGESZ
/// and NT_FILE's page size say `page`. Returns the mappings as (start,
/// length).
fn layout_in_pages(fx: &Path, core: &Path, page: u64) -> Vec<(u64, u64)> {
    let data = fs::read(core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    let mm = fs::read_dir(fx.join("json"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("mm-"))
        .unwrap();
    let mm: serde_json::Value = serde_json::from_slice(&fs::read(mm).unwrap()).unwrap();
    let vmas: Vec<(u64, u64)> = mm["entries"][0]["vmas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let (s, e) = (v["start"].as_u64().unwrap(), v["end"].as_u64().unwrap());
            (s, e - s)
        })
        .collect();
    let pt_loads: Vec<(u64, u64)> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| {
            assert_eq!(p.p_align, page, "p_align of {:#x}", p.p_vaddr);
            assert_eq!(p.p_offset % page, 0, "file offset of {:#x}", p.p_vaddr);
            assert_eq!(p.p_filesz % page, 0, "file size of {:#x}", p.p_vaddr);
            assert!(p.p_filesz <= p.p_memsz);
            (p.p_vaddr, p.p_memsz)
        })
        .collect();
    assert_eq!(pt_loads, vmas);
    assert!(vmas.iter().all(|&(s, l)| s % page == 0 && l % page == 0));
    let notes = notes(core);
    let little = elf.little_endian;
    let w = if elf.is_64 { 8 } else { 4 };
    let auxv = &notes.iter().find(|n| n.1 == 6).expect("NT_AUXV").2;
    let pagesz = auxv
        .chunks(2 * w)
        .find(|p| word(&p[..w], 0, little) == 6)
        .map(|p| word(&p[w..], 0, little));
    assert_eq!(pagesz, Some(page), "AT_PAGESZ");
    let file = &notes
        .iter()
        .find(|n| n.1 == 0x4649_4c45)
        .expect("NT_FILE")
        .2;
    assert_eq!(word(&file[w..2 * w], 0, little), page, "NT_FILE page size");
    vmas
}

/// Register name → captured value, per thread, from a fixture's
/// registers.txt ("thread TID" lines, then "NAME SIZE 0xVALUE").
fn captured_registers(fx: &Path) -> BTreeMap<u32, BTreeMap<String, u128>> {
    let mut out: BTreeMap<u32, BTreeMap<String, u128>> = BTreeMap::new();
    let mut tid = None;
    for l in fs::read_to_string(fx.join("registers.txt"))
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["thread", t] => tid = t.parse().ok(),
            [name, _, value] => {
                let v = u128::from_str_radix(value.trim_start_matches("0x"), 16).unwrap();
                out.entry(tid.unwrap())
                    .or_default()
                    .insert(name.to_string(), v);
            }
            _ => {}
        }
    }
    out
}

/// `len` bytes at `addr` from the file data of a core's PT_LOADs.
fn core_bytes(data: &[u8], elf: &goblin::elf::Elf, addr: u64, len: usize) -> Option<Vec<u8>> {
    let p = elf.program_headers.iter().find(|p| {
        p.p_type == goblin::elf::program_header::PT_LOAD
            && p.p_vaddr <= addr
            && addr + len as u64 <= p.p_vaddr + p.p_filesz
    })?;
    let at = (p.p_offset + addr - p.p_vaddr) as usize;
    Some(data[at..at + len].to_vec())
}

/// LoongArch64, 16 KiB pages: Debian 12's gdb-multiarch knows no LoongArch,
/// so the core is checked against what the capture recorded: its layout
/// (PT_LOADs exactly the mappings, in 16 KiB pages; AT_PAGESZ and NT_FILE's
/// page size 16384), the kernel's note sizes, every register of every
/// thread, the thread pointers and the markers at the addresses the
/// program has them.
fn loongarch64_core_matches_the_capture() {
    let fx = unpacked("loongarch64");
    let out = scratch("arch-loongarch64");
    convert_ok(&[&"convert", &fx.join("images"), &"-o", &out]);
    let core = the_core(&out);
    let data = fs::read(&core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    assert_eq!(
        (
            elf.header.e_machine,
            elf.is_64,
            elf.little_endian,
            elf.header.e_flags
        ),
        (258, true, true, 0),
        "ELF header"
    );
    const PAGE: u64 = 16384;
    let vmas = layout_in_pages(&fx, &core, PAGE);
    let notes = notes(&core);

    // Per thread NT_PRSTATUS (480 bytes, user_pt_regs at 112) and
    // NT_PRFPREG (272).
    let captured = captured_registers(&fx);
    let mut seen = BTreeSet::new();
    let mut tps = BTreeSet::new();
    for (i, n) in notes.iter().enumerate().filter(|(_, n)| n.1 == 1) {
        assert_eq!((n.0.as_str(), n.2.len()), ("CORE", 480), "NT_PRSTATUS");
        let tid = word(&n.2, 32, true) as u32;
        let want = &captured[&tid];
        let reg = |i: usize| u128::from(word(&n.2, 112 + 8 * i, true));
        for r in 0..32 {
            assert_eq!(reg(r), want[&format!("r{r}")], "r{r} of {tid}");
        }
        assert_eq!(reg(32), want["orig_a0"], "orig_a0 of {tid}");
        assert_eq!(reg(33), want["pc"], "pc (csr_era) of {tid}");
        assert_eq!(reg(34), want["badv"], "csr_badv of {tid}");
        assert_eq!(word(&n.2, 472, true) as u32, 1, "pr_fpvalid of {tid}");
        tps.insert(reg(2) as u64);
        let fp = notes[i + 1..]
            .iter()
            .take_while(|n| n.1 != 1)
            .find(|n| n.1 == 2)
            .expect("NT_PRFPREG");
        assert_eq!((fp.0.as_str(), fp.2.len()), ("CORE", 272), "NT_PRFPREG");
        for f in 0..32 {
            assert_eq!(
                u128::from(word(&fp.2, 8 * f, true)),
                want[&format!("f{f}")],
                "f{f} of {tid}"
            );
        }
        assert_eq!(
            u128::from(word(&fp.2, 256, true)),
            want["fcc"],
            "fcc of {tid}"
        );
        assert_eq!(
            u128::from(word(&fp.2, 264, true) as u32),
            want["fcsr"],
            "fcsr of {tid}"
        );
        seen.insert(tid);
    }
    assert_eq!(seen, captured.keys().copied().collect());

    // The markers where the program has them: the heap string behind
    // `heap_marker`, the environment's and the command line's on the stack,
    // and the thread pointers the program recorded, each a thread's tp
    // (r2). `secret`, which no code reads, this build's linker (zig's lld,
    // collecting unused sections) left out: neither the executable nor the
    // process holds it.
    let exe_data = fs::read(fx.join("sysroot").join(EXE.trim_start_matches('/'))).unwrap();
    let exe = goblin::elf::Elf::parse(&exe_data).unwrap();
    let symbol = |name: &str| {
        exe.syms
            .iter()
            .find(|s| exe.strtab.get_at(s.st_name) == Some(name))
            .map(|s| s.st_value)
            .unwrap_or_else(|| panic!("no symbol {name}"))
    };
    assert!(memchr::memmem::find(&exe_data, MARKERS[0].as_bytes()).is_none());
    let heap = word(
        &core_bytes(&data, &elf, symbol("heap_marker"), 8).unwrap(),
        0,
        true,
    );
    assert_eq!(
        core_bytes(&data, &elf, heap, MARKERS[1].len()).as_deref(),
        Some(MARKERS[1].as_bytes())
    );
    let recorded = core_bytes(&data, &elf, symbol("thread_pointers"), 24).unwrap();
    let recorded: BTreeSet<u64> = (0..3)
        .map(|i| word(&recorded[8 * i..8 * i + 8], 0, true))
        .collect();
    assert_eq!(recorded, tps, "thread pointers");
    let stack = vmas
        .iter()
        .find(|&&(s, l)| (s..s + l).contains(&word(&notes[0].2, 112 + 8 * 3, true)))
        .copied()
        .unwrap();
    let found: BTreeMap<String, Vec<u64>> = find_in_core(&core, &MARKERS.map(String::from))
        .into_iter()
        .fold(BTreeMap::new(), |mut m, (k, a)| {
            m.entry(k).or_default().push(a);
            m
        });
    assert_eq!(found.get(MARKERS[0]), None);
    assert_eq!(found.get(MARKERS[1]), Some(&vec![heap]));
    for m in &MARKERS[2..] {
        let at = found
            .get(*m)
            .unwrap_or_else(|| panic!("{m} not in the core"));
        assert!(
            at.iter().all(|a| (stack.0..stack.0 + stack.1).contains(a)),
            "{m} at {at:x?}, not in the stack {stack:x?}"
        );
    }
    assert!(prpsinfo_psargs(&core).starts_with(&PSARGS.as_bytes()[..79]));
}

/// The registers CRIU saves of a ppc64 thread from what ptrace gave:
/// compel's handle_syscall() puts a thread interrupted in a system call
/// (trap 0xc00 with cr0's SO bit set, or scv's 0x3000 with a negative
/// error) that is to be restarted back at its `sc` with r3 = orig_r3, and
/// trap is reset to 0.
fn ppc64_as_criu_saves(r: &BTreeMap<String, u128>) -> BTreeMap<String, u128> {
    const RESTART: [i64; 3] = [512, 513, 514]; // ERESTARTSYS, -NOINTR, -NOHAND
    let mut out = r.clone();
    let trap = r["trap"] & !0xf;
    let r3 = r["r3"] as u64;
    let restart = match trap {
        0xc00 => r["cr"] & 0x1000_0000 != 0 && RESTART.contains(&(r3 as i64)),
        0x3000 => RESTART.contains(&-(r3 as i64)),
        _ => false,
    };
    if restart {
        out.insert("r3".into(), r["orig_r3"]);
        out.insert("pc".into(), r["pc"] - 4);
    }
    out.insert("trap".into(), 0);
    out
}

/// What a test checks of a checkpoint captured on a real kernel
/// (scripts/make-kernel-fixture), which no gdb watched live.
struct Captured {
    fixture: &'static str,
    /// e_machine and e_flags of the core.
    machine: u16,
    flags: u32,
    /// The kernel's page size.
    page: u64,
    /// The registers gdb must show, by gdb's names, from one thread's
    /// captured registers (registers.txt).
    expected: fn(&BTreeMap<String, u128>) -> BTreeMap<String, u128>,
    /// The register holding the thread pointer.
    thread_pointer: &'static str,
}

/// Checks a core of a checkpoint captured on a real kernel: laid out in
/// the kernel's pages, and gdb-multiarch shows its threads and their
/// backtraces through the program's frames, every register as CRIU saves
/// it from what ptrace gave, each thread's thread pointer among those the
/// program recorded, its markers, and AT_PAGESZ the kernel's page size.
fn check_captured(x: Captured) {
    let fx = unpacked(x.fixture);
    let out = scratch(&format!("arch-{}", x.fixture));
    convert_ok(&[&"convert", &fx.join("images"), &"-o", &out]);
    let core = the_core(&out);
    let data = fs::read(&core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    assert_eq!(
        (
            elf.header.e_machine,
            elf.is_64,
            elf.little_endian,
            elf.header.e_flags
        ),
        (x.machine, true, true, x.flags),
        "ELF header"
    );
    layout_in_pages(&fx, &core, x.page);

    let sysroot = fx.join("sysroot");
    let exe = sysroot.join(EXE.trim_start_matches('/'));
    let o = run_gdb(GDB, Some(&sysroot), Some(&exe), &core, &commands());
    let ours = sections(&o);
    let program: serde_json::Value =
        serde_json::from_slice(&fs::read(fx.join("program.json")).unwrap()).unwrap();
    let ids = |k: &str| -> Vec<u64> {
        program[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect()
    };
    let (tids, tps) = (ids("tids"), ids("thread_pointers"));

    // The threads, each with frames of the program.
    let rows: Vec<u64> = thread_rows(sec(&ours, "threads"))
        .iter()
        .map(|r| u64::from(r.0))
        .collect();
    assert_eq!(rows.iter().collect::<BTreeSet<_>>(), tids.iter().collect());
    let bt = by_thread(sec(&ours, "bt"));
    assert_eq!(bt.len(), tids.len(), "backtraces: {bt:?}");
    for (id, frames) in &bt {
        assert!(
            frames.len() >= 2
                && frames
                    .iter()
                    .any(|f| f.contains(" main ") || f.contains(" worker ")),
            "LWP {id}: {frames:?}"
        );
    }

    // Every captured register, as CRIU saves it, as gdb shows it.
    let hex = |s: &str| u128::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let shown = by_thread(sec(&ours, "regs"));
    let captured = captured_registers(&fx);
    assert_eq!(
        shown.keys().collect::<BTreeSet<_>>(),
        captured.keys().collect()
    );
    for (tid, raw) in &captured {
        let want = (x.expected)(raw);
        let got: BTreeMap<String, u128> = registers(&shown[tid])
            .into_iter()
            .filter_map(|(name, v)| {
                // A float's "(raw 0x...)" bits; a vector's 128 bits, in
                // ppc64's union as uint128, in aarch64's as q.u.
                let bits = match v.split_once("(raw ") {
                    Some((_, r)) => hex(r.trim_end_matches(')')),
                    None if v.starts_with('{') => {
                        let l = leaves(&v);
                        let q = l.get(".uint128").or_else(|| l.get(".q.u"))?;
                        hex(q.trim_matches(['{', '}']))
                    }
                    None => hex(v.split_whitespace().next()?),
                };
                Some((name, bits?))
            })
            .collect();
        let differ: Vec<String> = want
            .iter()
            .filter(|&(name, w)| got.get(name) != Some(w))
            .map(|(name, w)| format!("{name}: captured {w:#x}, core {:x?}", got.get(name)))
            .collect();
        assert!(
            differ.is_empty(),
            "thread {tid}: {} differences:\n{}",
            differ.len(),
            differ.join("\n")
        );
        assert!(
            tps.contains(&(got[x.thread_pointer] as u64)),
            "{} of {tid}",
            x.thread_pointer
        );
    }

    // Memory, the auxiliary vector, psargs.
    assert!(sec(&ours, "secret").contains(MARKERS[0]), "{o}");
    assert!(sec(&ours, "heap").contains(MARKERS[1]), "{o}");
    let recorded = format!(
        "$1 = {{{}}}",
        tps.iter()
            .map(|t| format!("{t:#x}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(sec(&ours, "tps").trim(), recorded);
    let pagesz = format!(" {}", x.page);
    assert!(
        sec(&ours, "auxv")
            .lines()
            .any(|l| l.starts_with("6 ") && l.trim_end().ends_with(&pagesz)),
        "{}",
        sec(&ours, "auxv")
    );
    assert!(
        o.contains(&format!("Core was generated by `{PSARGS}'.")),
        "{o}"
    );
    let warnings: Vec<&str> = o.lines().filter(|l| l.contains("warning:")).collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    let found: BTreeSet<String> = find_in_core(&core, &MARKERS.map(String::from))
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(found.len(), MARKERS.len(), "markers: {found:?}");
}

/// ppc64le with 64 KiB pages, captured on a real kernel of that page size
/// (Debian's ppc64el kernel in qemu-system-ppc64): the registers are
/// general, floating-point, vector, VSX, orig_r3 and trap, as CRIU saves
/// them; r13 is the thread pointer; AT_PAGESZ is 65536.
fn ppc64le_64k_core_reads_like_the_captured_process() {
    check_captured(Captured {
        fixture: "ppc64le-64k",
        machine: 21,
        flags: 2,
        page: 65536,
        expected: |raw| {
            let mut want = ppc64_as_criu_saves(raw);
            for n in 0..32 {
                // vsN (N < 32): fN's doubleword above the captured low one.
                if let Some(low) = want.remove(&format!("#{n}")) {
                    want.insert(format!("vs{n}"), want[&format!("f{n}")] << 64 | low);
                }
                want.insert(format!("vs{}", 32 + n), want[&format!("vr{n}")]);
            }
            want
        },
        thread_pointer: "r13",
    });
}

/// aarch64 with 16 KiB pages, captured on a real kernel of that page size
/// (Debian's arm64-16k kernel in qemu-system-aarch64): the registers are
/// x0-x30, sp, pc, cpsr, v0-v31, fpsr, fpcr and tpidr (NT_ARM_TLS), as
/// ptrace gave them (arm64's kernel has already set a thread interrupted
/// in a system call back to restart it when ptrace stops it, and compel
/// changes nothing); tpidr is the thread pointer; AT_PAGESZ is 16384.
fn aarch64_16k_core_reads_like_the_captured_process() {
    check_captured(Captured {
        fixture: "aarch64-16k",
        machine: 183,
        flags: 0,
        page: 16384,
        expected: |raw| {
            let mut want = raw.clone();
            if let Some(tp) = want.remove("TPIDR_EL0") {
                want.insert("tpidr".into(), tp);
            }
            want
        },
        thread_pointer: "tpidr",
    });
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        aarch64_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        riscv64_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        ppc64le_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        s390x_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        armv7_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        mips64el_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        loongarch64_core_matches_the_capture,
        ppc64le_64k_core_reads_like_the_captured_process needs [Need::Tool(GDB)],
        aarch64_16k_core_reads_like_the_captured_process needs [Need::Tool(GDB)],
    ]
}
