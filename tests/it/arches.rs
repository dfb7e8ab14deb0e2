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

/// name → value text of `info all-registers` lines.
fn registers(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| {
            let (name, value) = l.split_once(char::is_whitespace)?;
            Some((
                name.to_string(),
                value.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect()
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
    if !a.starts_with('{') || !b.starts_with('{') {
        return a.split_whitespace().next() == b.split_whitespace().next();
    }
    let (a, b) = (leaves(a), leaves(b));
    let common: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    !common.is_empty() && common.iter().all(|k| a[*k] == b[*k])
}

fn names(prefix: &str, range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// What a test checks of one architecture.
struct Expect {
    arch: &'static str,
    machine: u16,
    big_endian: bool,
    flags: u32,
    /// Registers both views must show, and show alike.
    registers: Vec<String>,
    /// A gdb expression for the thread pointer, where `info all-registers`
    /// through qemu's stub does not already show it under the same name.
    thread_pointer: Option<&'static str>,
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
        (elf.header.e_machine, elf.little_endian, elf.header.e_flags),
        (x.machine, !x.big_endian, x.flags),
        "{}: ELF header",
        x.arch
    );

    let mut cmds = commands();
    if let Some(tp) = x.thread_pointer {
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
    if x.thread_pointer.is_some() {
        let recorded: BTreeSet<String> = sec(&live, "tps")
            .split(['{', '}', ','])
            .map(|s| s.trim().to_string())
            .filter(|s| s.starts_with("0x"))
            .collect();
        let shown: BTreeSet<String> = by_thread(sec(&ours, "tp"))
            .values()
            .flatten()
            .filter_map(|l| Some(l.split_once(" = ")?.1.trim().to_string()))
            .collect();
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
        big_endian: false,
        flags: 0,
        registers,
        thread_pointer: Some("$tpidr"),
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
        big_endian: false,
        flags: 0,
        registers,
        thread_pointer: None,
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
        big_endian: false,
        flags: 2,
        registers,
        thread_pointer: None,
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
        big_endian: true,
        flags: 0,
        registers,
        thread_pointer: None,
    });
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        aarch64_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        riscv64_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        ppc64le_core_reads_like_the_live_process needs [Need::Tool(GDB)],
        s390x_core_reads_like_the_live_process needs [Need::Tool(GDB)],
    ]
}
