//! `criu2core grep` and `criu2core read`: every marker of every real
//! fixture is found at exactly the addresses where gcore's core of the
//! same live process holds it, and nowhere else; the search with a root
//! filesystem finds exactly what our core made with that root holds; and
//! a synthetic checkpoint built for it pins down the rest: matches across
//! pagemap entries, across a parent dump's pages and this dump's, across
//! the 1 MiB read boundary, never across a hole or a mapping boundary,
//! every pattern form, filter and output form, archives, -j, exit
//! statuses, and `read` returning what gdb reads from our core.
//!
//! Compared like with like: gcore's cores of the fixtures hold no marker in
//! an unmodified file page (checked: each marker's gcore addresses are all
//! in mappings whose pages the checkpoint holds), so the search without
//! `--files` must equal gcore exactly; with `--root` and `--files` it is
//! held against our `--root` core, since gcore leaves most unmodified file
//! pages out of its cores.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use crate::common::*;
use crate::Need;
use criu2core::testkit::flags::{PE_PARENT, PE_PRESENT};
use criu2core::testkit::{proto, CheckpointWriter, PageSpan};
use libtest_mimic::Trial;
use serde_json::Value;

/// Runs `criu2core grep ARGS`.
fn grep(args: &[&str]) -> Output {
    let mut all = vec!["grep"];
    all.extend_from_slice(args);
    criu2core(&all)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `grep --json ARGS`: every line checked against the schema; asserts the
/// exit status.
fn grep_json(args: &[&str], status: i32) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = grep(&all);
    assert_eq!(o.status.code(), Some(status), "grep {args:?}: {}", err(&o));
    text(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_schema("grep.schema.json", &v);
            v
        })
        .collect()
}

/// (pid, address) of each match of `grep --json ARGS`, whose exit status
/// must say whether there were any.
fn found(args: &[&str]) -> BTreeSet<(u64, u64)> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = grep(&all);
    let lines: Vec<Value> = text(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for v in &lines {
        assert_schema("grep.schema.json", v);
    }
    let want = if lines.is_empty() { 1 } else { 0 };
    assert_eq!(o.status.code(), Some(want), "grep {args:?}: {}", err(&o));
    hits(&lines)
}

/// (pid, address) of each match.
fn hits(lines: &[Value]) -> BTreeSet<(u64, u64)> {
    lines
        .iter()
        .map(|v| (v["pid"].as_u64().unwrap(), v["address"].as_u64().unwrap()))
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- the real fixtures -------------------------------------------------

const ALL_FIXTURES: [&str; 5] = ["mt-pie", "fork-shared", "static", "reaper", "i386"];

/// Every marker at exactly the addresses gcore's core holds it, one
/// search per marker (literal), and all markers at once as a regular
/// expression.
fn markers_are_found_exactly_where_gcore_has_them() {
    for name in ALL_FIXTURES {
        let fx = fixture(name);
        let images = fx.images();
        let mut gcore_all = BTreeSet::new();
        let mut found_any = false;
        for p in fx.processes.iter().filter(|p| !fx.zombies.contains(&p.pid)) {
            for m in &fx.markers {
                let want: BTreeSet<u64> = find_in_core(&fx.gcore(p), std::slice::from_ref(m))
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect();
                found_any |= !want.is_empty();
                let pid = p.pid.to_string();
                let lines = grep_json(
                    &["-p", &pid, m, path_str(&images)],
                    if want.is_empty() { 1 } else { 0 },
                );
                let got: BTreeSet<u64> = lines
                    .iter()
                    .map(|v| v["address"].as_u64().unwrap())
                    .collect();
                assert_eq!(got, want, "{name}: pid {}: {m}", p.pid);
                for v in &lines {
                    assert_eq!(v["match"], m.as_str());
                    let (a, s, e) = (
                        v["address"].as_u64().unwrap(),
                        v["mapping"]["start"].as_u64().unwrap(),
                        v["mapping"]["end"].as_u64().unwrap(),
                    );
                    assert!(s <= a && a + m.len() as u64 <= e, "{v}");
                }
                gcore_all.extend(want.into_iter().map(|a| (u64::from(p.pid), a)));
            }
        }
        assert!(
            found_any,
            "{name}: no marker in gcore's cores: nothing checked"
        );
        let alternation = fx.markers.join("|");
        let lines = grep_json(&["-E", &alternation, path_str(&images)], 0);
        assert_eq!(hits(&lines), gcore_all, "{name}: -E {alternation}");
    }
}

/// The checkpoints of other architectures (images of a state captured
/// under qemu-user; no gcore there): each marker where our core of them
/// holds it, big-endian s390x, 32-bit Arm, loongarch64's 16 KiB pages
/// (whose build lacks `secret`: a marker neither finds), ppc64le's 64 KiB
/// ones and aarch64's 16 KiB ones (both captured on a real kernel) included.
fn markers_of_other_architectures_are_where_their_cores_hold_them() {
    for arch in [
        "aarch64",
        "riscv64",
        "ppc64le",
        "s390x",
        "armv7",
        "mips64el",
        "loongarch64",
        "ppc64le-64k",
        "aarch64-16k",
    ] {
        let dir = unpack(
            &repo().join(format!("gdb-fixtures/arches/{arch}.tar.zst")),
            arch,
        );
        let images = dir.join("images");
        let out = scratch(&format!("grep-arch-{arch}"));
        let o = criu2core(["convert", path_str(&images), "-o", path_str(&out)]);
        assert!(o.status.success(), "{}", err(&o));
        let core = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("core.")
            })
            .unwrap();
        for m in [
            "RANDOM_ARCH_KEY_6",
            "HEAP_MARKER_77",
            "ENV_MARKER_5150",
            "ARGV_TAIL",
        ] {
            let want: BTreeSet<u64> = find_in_core(&core, &[m.to_string()])
                .into_iter()
                .map(|x| x.1)
                .collect();
            let absent = arch == "loongarch64" && m == "RANDOM_ARCH_KEY_6";
            assert_eq!(want.is_empty(), absent, "{arch}: {m} in the core");
            let got: BTreeSet<u64> = grep_json(&[m, path_str(&images)], i32::from(absent))
                .iter()
                .map(|v| v["address"].as_u64().unwrap())
                .collect();
            assert_eq!(got, want, "{arch}: {m}");
        }
    }
}

/// With the fixture's sysroot as root filesystem and --files, the search
/// finds what our --root core holds, file pages included (`GNU C Library`
/// sits only in libc's unmodified pages); without --files, what our plain
/// core holds.
fn file_pages_are_searched_with_root_and_files_only() {
    let fx = fixture("mt-pie");
    let p = &fx.processes[0];
    let rooted = convert_fixture(&fx, "root", &["--root", path_str(&fx.sysroot())]);
    let plain = convert_fixture(&fx, "plain", &[]);
    let core = |dir: &Path| dir.join(format!("core.{}", p.pid));
    for needle in ["GNU C Library", "\x7fELF", "RANDOM_1432_KEY"] {
        let n = [needle.to_string()];
        let with: BTreeSet<u64> = find_in_core(&core(&rooted), &n)
            .into_iter()
            .map(|x| x.1)
            .collect();
        let without: BTreeSet<u64> = find_in_core(&core(&plain), &n)
            .into_iter()
            .map(|x| x.1)
            .collect();
        let images = fx.images();
        let sysroot = fx.sysroot();
        let got = |extra: &[&str], want: &BTreeSet<u64>| {
            let mut args = extra.to_vec();
            args.extend([needle, path_str(&images)]);
            let lines = grep_json(&args, if want.is_empty() { 1 } else { 0 });
            lines
                .iter()
                .map(|v| v["address"].as_u64().unwrap())
                .collect::<BTreeSet<u64>>()
        };
        assert_eq!(
            got(&["--root", path_str(&sysroot), "--files"], &with),
            with,
            "{needle} with --files"
        );
        assert_eq!(got(&[], &without), without, "{needle} without --files");
        if needle == "GNU C Library" {
            assert!(!with.is_empty() && without.is_empty());
        }
    }
    // --root needs --files; --files alone searches the files the
    // checkpoint keeps (none here): what memory alone gives.
    let o = grep(&[
        "--root",
        path_str(&fx.sysroot()),
        "x",
        path_str(&fx.images()),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let alone = grep_json(&["--files", "RANDOM_1432_KEY", path_str(&fx.images())], 0);
    let memory = grep_json(&["RANDOM_1432_KEY", path_str(&fx.images())], 0);
    assert_eq!(alone, memory);
    let o = grep(&["--files", "GNU C Library", path_str(&fx.images())]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
}

/// A real fixture made an incremental chain (every other pagemap entry's
/// pages moved to the parent dump): the same matches as the full dump.
fn an_incremental_chain_is_searched_through_its_parent() {
    let fx = fixture("mt-pie");
    let base = scratch("grep-chain");
    let (child, parent) = (base.join("child"), base.join("parent"));
    copy_dir(&fx.images(), &child);
    copy_dir(&fx.images(), &parent);
    let pid = fx.processes[0].pid;
    let pm_path = child.join(format!("pagemap-{pid}.img"));
    let mut pm = read_raw(&pm_path);
    let head = <proto::PagemapHead as prost::Message>::decode(&pm.entries[0][..]).unwrap();
    let pages_path = child.join(format!("pages-{}.img", head.pages_id));
    let pages = fs::read(&pages_path).unwrap();
    let (mut kept, mut off, mut moved) = (Vec::new(), 0, 0);
    for (i, raw) in pm.entries.iter_mut().enumerate().skip(1) {
        let mut e = <proto::PagemapEntry as prost::Message>::decode(&raw[..]).unwrap();
        if e.flags.unwrap_or(PE_PRESENT) & PE_PRESENT == 0 {
            continue;
        }
        let len = e.nr_pages.unwrap() as usize * 4096;
        if i % 2 == 1 {
            e.flags = Some(PE_PARENT);
            *raw = prost::Message::encode_to_vec(&e);
            moved += 1;
        } else {
            kept.extend_from_slice(&pages[off..off + len]);
        }
        off += len;
    }
    assert!(moved > 3);
    let from_parent = fx
        .markers
        .iter()
        .filter(|m| memchr::memmem::find(&pages, m.as_bytes()).is_some())
        .filter(|m| memchr::memmem::find(&kept, m.as_bytes()).is_none())
        .count();
    assert!(
        from_parent > 0,
        "no marker left only in the parent: nothing checked"
    );
    write_raw(&pm_path, &pm);
    fs::write(&pages_path, kept).unwrap();
    symlink("../parent", child.join("parent")).unwrap();
    let all = fx.markers.join("|");
    let strip = |v: Vec<Value>| -> Vec<(u64, String)> {
        v.iter()
            .map(|v| {
                (
                    v["address"].as_u64().unwrap(),
                    v["match"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let full = strip(grep_json(&["-E", &all, path_str(&fx.images())], 0));
    assert_eq!(strip(grep_json(&["-E", &all, path_str(&child)], 0)), full);
    assert_eq!(
        full.len(),
        fx.markers.len() - 1,
        "WRITTEN_BY_CHILD is not in mt-pie"
    );
}

/// The same matches from the image directory, and from Podman archives
/// in each compression, searched in place; and from a directory that holds
/// them (searched recursively), in a fixed order.
fn archives_and_directories_are_searched_in_place() {
    let fx = fixture("mt-pie");
    let dir = scratch("grep-archives");
    let tar = podman_tar(&fx.images(), |_| {});
    let mut names = Vec::new();
    for kind in ["tar", "tar.gz", "tar.zst"] {
        let path = dir.join(format!("nested/ck.{kind}"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, compress(&tar, kind)).unwrap();
        names.push(path);
    }
    let want = grep_json(
        &[
            "RANDOM_1432_KEY|HEAP_MARKER_77",
            "-E",
            path_str(&fx.images()),
        ],
        0,
    );
    assert_eq!(want.len(), 2);
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["input"] = Value::Null;
        v
    };
    for ar in &names {
        let got = grep_json(&["-E", "RANDOM_1432_KEY|HEAP_MARKER_77", path_str(ar)], 0);
        assert_eq!(
            got.iter().map(strip).collect::<Vec<_>>(),
            want.iter().map(strip).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|v| v["input"] == path_str(ar)));
    }
    let tmp = tempfile::tempdir().unwrap();
    let got = grep_json(
        &[
            "--tmpdir",
            path_str(tmp.path()),
            "RANDOM_1432_KEY",
            path_str(&dir),
        ],
        0,
    );
    let inputs: Vec<&str> = got.iter().map(|v| v["input"].as_str().unwrap()).collect();
    let expect: Vec<&str> = names.iter().map(|p| path_str(p)).collect();
    assert_eq!(inputs, expect);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "unpacked files left behind"
    );
}

/// Many inputs, many processes: -j 1 and -j 8 print the same bytes, in
/// input, pid, address order.
fn parallel_output_is_the_same_as_serial() {
    let syn = synthetic();
    let mut inputs: Vec<String> = Vec::new();
    for name in ALL_FIXTURES {
        inputs.push(fixture(name).images().display().to_string());
    }
    inputs.push(syn.images.display().to_string());
    inputs.push(fixture("fork-shared").images().display().to_string());
    for (pattern, extra) in [
        ("MARKER|SECRET|[0-9]{4}", &["-E"][..]),
        ("e", &["-c"][..]),
        ("SECRET", &["-C", "16", "--hexdump"][..]),
    ] {
        let run = |j: &str| {
            let mut args = vec!["-j", j, pattern];
            args.extend_from_slice(extra);
            args.extend(inputs.iter().map(String::as_str));
            let o = grep(&args);
            assert_eq!(o.status.code(), Some(0), "{}", err(&o));
            o.stdout
        };
        let serial = run("1");
        assert!(!serial.is_empty());
        for _ in 0..3 {
            assert!(
                run("8") == serial,
                "-j 8 differs from -j 1 for {pattern} {extra:?}"
            );
        }
    }
    let lines = grep_json(
        &[
            "-j",
            "4",
            "-E",
            "[A-Z]{5,}_[A-Z0-9_]{3,}",
            &inputs[1],
            &inputs[0],
        ],
        0,
    );
    let keys: Vec<(usize, u64, u64)> = lines
        .iter()
        .map(|v| {
            (
                usize::from(v["input"] != inputs[1].as_str()),
                v["pid"].as_u64().unwrap(),
                v["address"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "not in input, pid, address order");
}

/// read gives the bytes gdb reads from our core at the same addresses: a
/// marker, a whole mapping, and a stack mapping with its undumped holes
/// (as zeros, with --zeros).
fn read_gives_what_gdb_reads_from_our_core() {
    let fx = fixture("mt-pie");
    let p = &fx.processes[0];
    let core = convert_fixture(&fx, "plain", &[]).join(format!("core.{}", p.pid));
    let images = fx.images();
    let hit = &grep_json(&["RANDOM_1432_KEY", path_str(&images)], 0)[0];
    let addr = hit["address"].as_u64().unwrap();
    let (start, end) = (
        hit["mapping"]["start"].as_u64().unwrap(),
        hit["mapping"]["end"].as_u64().unwrap(),
    );
    let stack = grep_json(
        &["--kind", "stack", "ENV_MARKER_5150", path_str(&images)],
        0,
    );
    let (sstart, send) = (
        stack[0]["mapping"]["start"].as_u64().unwrap(),
        stack[0]["mapping"]["end"].as_u64().unwrap(),
    );
    let dir = scratch("grep-read-gdb");
    let pid = p.pid.to_string();
    let cases = [
        (addr, 64, vec![format!("{addr:#x}"), "64".into()]),
        (
            start,
            end - start,
            vec!["--mapping".into(), format!("{:#x}", addr + 3)],
        ),
        (
            sstart,
            send - sstart,
            vec![
                "--zeros".into(),
                format!("{sstart}"),
                format!("{}", send - sstart),
            ],
        ),
    ];
    let mut cmds = Vec::new();
    for (i, (a, len, _)) in cases.iter().enumerate() {
        cmds.push(format!(
            "dump binary memory {} {a:#x} {:#x}",
            dir.join(format!("gdb{i}")).display(),
            a + len
        ));
    }
    let out = gdb(None, None, &core, &cmds);
    for (i, (_, len, args)) in cases.iter().enumerate() {
        let mut all: Vec<String> = vec![
            "read".into(),
            path_str(&images).into(),
            "--pid".into(),
            pid.clone(),
        ];
        all.extend(args.iter().cloned());
        let o = criu2core(&all);
        assert!(o.status.success(), "read {args:?}: {}", err(&o));
        let want = fs::read(dir.join(format!("gdb{i}"))).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(want.len() as u64, *len);
        assert!(o.stdout == want, "read {args:?} differs from gdb's dump");
    }
    assert!(
        cases[0].2.len() == 2
            && fs::read(dir.join("gdb0"))
                .unwrap()
                .starts_with(b"RANDOM_1432_KEY")
    );
    // The stack's undumped pages are zeros in the core; without --zeros
    // read says so rather than making them up.
    let o = criu2core([
        "read",
        path_str(&images),
        "--pid",
        &pid,
        &format!("{sstart:#x}"),
        &format!("{}", send - sstart),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("were not dumped") && err(&o).contains("--zeros"),
        "{}",
        err(&o)
    );
}

// ---- a synthetic checkpoint --------------------------------------------

const PAGE: u64 = 4096;
const CHUNK: u64 = 1 << 20;
const A: u64 = 0x1000_0000;
const A_PAGES: u64 = 2 * 256 + 1;
const B: u64 = 0x2000_0000;
const HEAP: u64 = 0x3000_0000;
const FILE: u64 = 0x4000_0000;
const E1: u64 = 0x5000_0000;
const SHM: u64 = 0x6000_0000;
const STACK: u64 = 0x7ff0_0000;
const LIB: &str = "/usr/lib/libsyn.so";

struct Synthetic {
    images: PathBuf,
    root: PathBuf,
    /// Where each needle lies, as (pid, address), from how it was built.
    at: Vec<(&'static str, u32, u64)>,
}

fn page_of(fill: u8) -> Vec<u8> {
    vec![fill; PAGE as usize]
}

fn put(buf: &mut [u8], off: u64, s: &[u8]) {
    buf[off as usize..off as usize + s.len()].copy_from_slice(s);
}

fn vma(start: u64, pages: u64, prot: u32, flags: u32, status: u32, shmid: u64) -> proto::Vma {
    proto::Vma {
        start,
        end: start + pages * PAGE,
        pgoff: 0,
        shmid,
        prot,
        flags,
        status,
        fd: -1,
        ..Default::default()
    }
}

fn task(w: &CheckpointWriter, pid: u32, comm: &str) {
    let regs = proto::X86Regs {
        ip: FILE,
        sp: STACK + 0xf00,
        cs: 0x33,
        ss: 0x2b,
        ..Default::default()
    };
    let fpregs = proto::X86Fpregs {
        st_space: vec![0; 32],
        xmm_space: vec![0; 64],
        ..Default::default()
    };
    w.core(
        pid,
        &proto::Core {
            mtype: proto::core::Arch::X8664 as i32,
            x86: Some(proto::ThreadInfoX86 {
                clear_tid_addr: 0,
                gpregs: regs,
                fpregs,
                tls: vec![],
            }),
            tc: Some(proto::TaskCore {
                task_state: 1,
                comm: comm.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Two processes sharing a page of shared anonymous memory; process 1 has
/// a parent dump (an incremental chain) and a root filesystem for its one
/// mapped file. See the module comment for what each part is for.
fn synthetic() -> &'static Synthetic {
    static SYN: OnceLock<Synthetic> = OnceLock::new();
    SYN.get_or_init(|| {
        let base = scratch("grep-synthetic");
        let (images, parent, root) = (base.join("images"), base.join("parent"), base.join("root"));
        let mut at = Vec::new();
        // Status bits: REGULAR 1, HEAP 0x20, FILE_PRIVATE 0x40, ANON_SHARED
        // 0x100, ANON_PRIVATE 0x200. Flags: MAP_SHARED 1, MAP_PRIVATE 2,
        // MAP_ANONYMOUS 0x20.
        let anon = |start, pages, prot| vma(start, pages, prot, 0x22, 0x201, 0);
        let w = CheckpointWriter::create(&images, PAGE).unwrap();
        w.inventory().unwrap();
        w.pstree(&[
            proto::PstreeEntry {
                pid: 1,
                ppid: 0,
                pgid: 1,
                sid: 1,
                threads: vec![1],
            },
            proto::PstreeEntry {
                pid: 2,
                ppid: 1,
                pgid: 1,
                sid: 1,
                threads: vec![2],
            },
        ])
        .unwrap();
        task(&w, 1, "syn");
        task(&w, 2, "ev\x1b[2Jil");
        w.files(&[proto::FileEntry {
            r#type: proto::FdType::Reg as i32,
            id: 1,
            reg: Some(proto::RegFile {
                id: 1,
                name: LIB.into(),
                size: Some(2 * PAGE),
                ..Default::default()
            }),
            memfd: None,
        }])
        .unwrap();
        let mut stack = page_of(0);
        put(&mut stack, 0xf00, b"app\0");
        put(&mut stack, 0x100, b"STACK_SECRET");
        at.push(("STACK_SECRET", 1, STACK + 0x100));
        let shared = vma(SHM, 1, 3, 0x21, 0x101, 42);
        let mm = |vmas: Vec<proto::Vma>| proto::Mm {
            vmas,
            start_stack: STACK + 0xf00,
            start_brk: HEAP,
            brk: HEAP + PAGE,
            arg_start: STACK + 0xf00,
            arg_end: STACK + 0xf04,
            exe_file_id: 1,
            saved_auxv: vec![6, PAGE, 0, 0],
            ..Default::default()
        };
        w.mm(
            1,
            &mm(vec![
                anon(A, A_PAGES, 3),
                anon(B, 4, 3),
                vma(HEAP, 1, 3, 0x22, 0x221, 0),
                vma(FILE, 2, 5, 0x2, 0x41, 1),
                anon(E1, 1, 3),
                anon(E1 + PAGE, 1, 1),
                shared,
                anon(STACK, 1, 3),
            ]),
        )
        .unwrap();
        w.mm(2, &mm(vec![shared, anon(STACK, 1, 3)])).unwrap();

        // A: a needle across the 1 MiB read boundary, passwords in UTF-8
        // and UTF-16, and bytes for --hex.
        let mut a = vec![b'.'; (A_PAGES * PAGE) as usize];
        put(&mut a, CHUNK - 5, b"CHUNK_STRADDLE");
        at.push(("CHUNK_STRADDLE", 1, A + CHUNK - 5));
        put(&mut a, 100, b"password=hunter2");
        at.push(("password", 1, A + 100));
        let wide: Vec<u8> = "Password"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        put(&mut a, 300, &wide);
        at.push(("Password16", 1, A + 300));
        put(&mut a, 200, &[0xde, 0xad, 0xbe, 0xef]);
        at.push(("deadbeef", 1, A + 200));
        put(&mut a, 2 * CHUNK + 10, b"A_SECRET_1 A_SECRET_2");
        at.push(("A_SECRET_1", 1, A + 2 * CHUNK + 10));
        at.push(("A_SECRET_2", 1, A + 2 * CHUNK + 21));
        // B: page 0 in the parent dump, 1 in this one, 2 never dumped, 3
        // in this one.
        let mut b0 = page_of(b'-');
        put(&mut b0, PAGE - 9, b"STRADDLE_");
        let mut b1 = page_of(b'-');
        put(&mut b1, 0, b"PARENT_CHILD");
        at.push(("STRADDLE_PARENT_CHILD", 1, B + PAGE - 9));
        put(&mut b1, PAGE - 11, b"HOLE_EDGE_K");
        at.push(("HOLE_EDGE_K", 1, B + 2 * PAGE - 11));
        let mut b3 = page_of(b'-');
        put(&mut b3, 0, b"AFTER_HOLE");
        at.push(("AFTER_HOLE", 1, B + 3 * PAGE));
        let mut heap = page_of(b'h');
        put(&mut heap, 64, b"HEAP_SECRET");
        at.push(("HEAP_SECRET", 1, HEAP + 64));
        let mut file0 = page_of(b'f');
        put(&mut file0, 8, b"DUMPED_FILE_PAGE");
        at.push(("DUMPED_FILE_PAGE", 1, FILE + 8));
        let mut e1 = page_of(b'e');
        put(&mut e1, PAGE - 3, b"ACR");
        let mut e2 = page_of(b'e');
        put(&mut e2, 0, b"OSS");
        at.push(("ACR", 1, E1 + PAGE - 3));
        at.push(("OSS", 1, E1 + PAGE));
        let span = |vaddr, data: &[u8]| (vaddr, data.to_vec());
        let spans1 = [
            span(A, &a),
            span(B + PAGE, &b1),
            span(B + 3 * PAGE, &b3),
            span(HEAP, &heap),
            span(FILE, &file0),
            span(E1, &e1),
            span(E1 + PAGE, &e2),
            span(STACK, &stack),
        ];
        let mut spans: Vec<PageSpan> = vec![PageSpan {
            vaddr: B,
            nr_pages: 1,
            flags: PE_PARENT,
            data: &[],
        }];
        spans.extend(spans1.iter().map(|(v, d)| PageSpan {
            vaddr: *v,
            nr_pages: d.len() as u64 / PAGE,
            flags: PE_PRESENT,
            data: d,
        }));
        spans.sort_by_key(|s| s.vaddr);
        w.pagemap("pagemap-1.img", 1, spans).unwrap();
        let mut stack2 = stack.clone();
        put(&mut stack2, 0x100, b"STACK_SECRET");
        at.push(("STACK_SECRET", 2, STACK + 0x100));
        w.pagemap(
            "pagemap-2.img",
            2,
            [PageSpan {
                vaddr: STACK,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &stack2,
            }],
        )
        .unwrap();
        let mut shm = page_of(b's');
        put(&mut shm, 16, b"SHM_SECRET");
        at.push(("SHM_SECRET", 1, SHM + 16));
        at.push(("SHM_SECRET", 2, SHM + 16));
        w.pagemap(
            "pagemap-shmem-42.img",
            3,
            [PageSpan {
                vaddr: 0,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &shm,
            }],
        )
        .unwrap();
        // The parent dump holds page 0 of B.
        let pw = CheckpointWriter::create(&parent, PAGE).unwrap();
        pw.pagemap(
            "pagemap-1.img",
            1,
            [PageSpan {
                vaddr: B,
                nr_pages: 1,
                flags: PE_PRESENT,
                data: &b0,
            }],
        )
        .unwrap();
        symlink("../parent", images.join("parent")).unwrap();
        // The root filesystem: the library's first page as on disk (the
        // checkpoint's copy was written to), the second only there.
        let mut lib = vec![b'r'; 2 * PAGE as usize];
        put(&mut lib, 8, b"FILE_ON_DISK_0");
        put(&mut lib, PAGE + 8, b"ROOT_ONLY_PAGE");
        fs::create_dir_all(root.join("usr/lib")).unwrap();
        fs::write(root.join(LIB.trim_start_matches('/')), lib).unwrap();
        Synthetic { images, root, at }
    })
}

fn where_built(syn: &Synthetic, needle: &str) -> BTreeSet<(u64, u64)> {
    syn.at
        .iter()
        .filter(|(n, _, _)| *n == needle)
        .map(|&(_, pid, a)| (u64::from(pid), a))
        .collect()
}

/// Each needle exactly where it was put: across the read boundary, across
/// the parent dump's page and this dump's, in shared memory in both
/// processes; and nowhere across a hole or a mapping boundary. The core
/// (made with the root filesystem) holds each of them at the same places.
fn synthetic_needles_are_found_where_they_were_put() {
    let syn = synthetic();
    let images = path_str(&syn.images);
    for needle in [
        "CHUNK_STRADDLE",
        "STRADDLE_PARENT_CHILD",
        "HOLE_EDGE_K",
        "AFTER_HOLE",
        "HEAP_SECRET",
        "DUMPED_FILE_PAGE",
        "ACR",
        "OSS",
        "STACK_SECRET",
        "SHM_SECRET",
    ] {
        let want = where_built(syn, needle);
        assert_eq!(hits(&grep_json(&[needle, images], 0)), want, "{needle}");
        // In pieces of every size the engine might be handed: the same.
        assert_eq!(
            hits(&grep_json(&["-E", &regex_escape(needle), images], 0)),
            want,
            "-E {needle}"
        );
    }
    // The core holds them at the same addresses.
    let out = scratch("grep-synthetic-core");
    let o = criu2core([
        "convert",
        images,
        "-o",
        path_str(&out),
        "--root",
        path_str(&syn.root),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    for (needle, pid, addr) in &syn.at {
        if needle.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            let found = find_in_core(&out.join(format!("core.{pid}")), &[needle.to_string()]);
            assert!(
                found.iter().any(|x| x.1 == *addr),
                "{needle} not at {addr:#x} in core.{pid}"
            );
        }
    }
    // Never across a mapping boundary (the core has them in two
    // segments too), nor into an undumped hole (the core has zeros
    // there, which a --hex pattern could match).
    assert!(grep_json(&["ACROSS", images], 1).is_empty());
    assert!(grep_json(&["--hex", "4b 00", images], 1).is_empty());
    let edge = grep_json(&["--hex", "5f 4b", images], 0);
    assert_eq!(hits(&edge), [(1, B + 2 * PAGE - 2)].into());
    // File pages from the root only with --files; the dumped copy of a
    // file page wins over the file's.
    assert!(grep_json(&["ROOT_ONLY_PAGE", images], 1).is_empty());
    let root = path_str(&syn.root);
    assert_eq!(
        hits(&grep_json(
            &["--root", root, "--files", "ROOT_ONLY_PAGE", images],
            0
        )),
        [(1, FILE + PAGE + 8)].into()
    );
    assert!(grep_json(&["--root", root, "--files", "FILE_ON_DISK", images], 1).is_empty());
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// -E, -i, --hex, --utf16, -C, -m, -c, -l, each filter and --range.
fn patterns_filters_and_output_forms() {
    let syn = synthetic();
    let images = path_str(&syn.images);
    let at = |n| where_built(syn, n);
    // Patterns.
    let re = grep_json(&["-E", "A_SECRET_[0-9]", images], 0);
    assert_eq!(hits(&re), &at("A_SECRET_1") | &at("A_SECRET_2"));
    assert_eq!(re[0]["match"], "A_SECRET_1");
    assert_eq!(
        hits(&grep_json(&["-i", "heap_secret", images], 0)),
        at("HEAP_SECRET")
    );
    let hex = grep_json(&["--hex", "de ad be ef", images], 0);
    assert_eq!(hits(&hex), at("deadbeef"));
    assert_eq!(hex[0]["match_hex"], "deadbeef");
    // de ad is UTF-8 for U+07AD; be and ef are no UTF-8.
    assert_eq!(hex[0]["match"], "\u{7ad}\\xbe\\xef");
    let wide = grep_json(&["--utf16", "Password", images], 0);
    assert_eq!(hits(&wide), at("Password16"));
    assert_eq!(
        (&wide[0]["match"], &wide[0]["utf16"]),
        (&Value::from("Password"), &Value::Bool(true))
    );
    assert_eq!(wide[0]["length"], 16);
    let both = grep_json(&["--utf16", "-i", "password", images], 0);
    assert_eq!(hits(&both), &at("Password16") | &at("password"));
    assert!(grep_json(&["Password", images], 1).is_empty());
    // Context, within the window.
    let ctx = grep_json(&["-C", "4", "HEAP_SECRET", images], 0);
    assert_eq!(
        (&ctx[0]["before"], &ctx[0]["after"]),
        (&Value::from("hhhh"), &Value::from("hhhh"))
    );
    let edge = grep_json(&["-C", "8", "AFTER_HOLE", images], 0);
    assert_eq!(edge[0]["before"], "", "context reaches back over a hole");
    // Counting and listing.
    let c = grep_json(&["-c", "SECRET", images], 0);
    let counts: Vec<(u64, u64)> = c
        .iter()
        .map(|v| (v["pid"].as_u64().unwrap(), v["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(counts, [(1, 5), (2, 2)]);
    let m = grep_json(&["-m", "1", "SECRET", images], 0);
    assert_eq!(m.len(), 2);
    let mc = grep_json(&["-c", "-m", "2", "SECRET", images], 0);
    assert_eq!(
        mc.iter()
            .map(|v| v["count"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [2, 2]
    );
    let l = grep_json(&["-l", "HEAP_SECRET", images], 0);
    assert_eq!(
        (l.len(), &l[0]["pid"], &l[0]["count"]),
        (1, &Value::from(1), &Value::from(1))
    );
    let zero = grep_json(&["-c", "NOWHERE", images], 1);
    assert_eq!(zero.len(), 2);
    assert!(zero.iter().all(|v| v["count"] == 0));
    // Filters.
    let f = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["-E", "[A-Z]+_SECRET|DUMPED_FILE_PAGE", images]);
        found(&a)
    };
    assert_eq!(f(&["--kind", "heap"]), at("HEAP_SECRET"));
    assert_eq!(f(&["--kind", "stack"]), at("STACK_SECRET"));
    assert_eq!(f(&["--kind", "shmem"]), at("SHM_SECRET"));
    assert_eq!(f(&["--kind", "file"]), at("DUMPED_FILE_PAGE"));
    assert_eq!(
        f(&["--kind", "heap", "--kind", "file"]),
        &at("HEAP_SECRET") | &at("DUMPED_FILE_PAGE")
    );
    assert_eq!(
        f(&["--kind", "anon"]),
        &at("A_SECRET_1") | &at("A_SECRET_2")
    );
    assert_eq!(f(&["--prot", "x"]), at("DUMPED_FILE_PAGE"));
    assert_eq!(f(&["--prot", "r-x"]), at("DUMPED_FILE_PAGE"));
    assert_eq!(f(&["--path", "*libsyn*"]), at("DUMPED_FILE_PAGE"));
    assert_eq!(f(&["--path", "/dev/zero*"]), at("SHM_SECRET"));
    let pid2: BTreeSet<(u64, u64)> = (&at("STACK_SECRET") | &at("SHM_SECRET"))
        .into_iter()
        .filter(|h| h.0 == 2)
        .collect();
    assert_eq!(f(&["-p", "2"]), pid2);
    let r = format!("{:#x}-{:#x}", HEAP, HEAP + 70);
    assert_eq!(
        f(&["--range", &r]),
        BTreeSet::new(),
        "a match must lie wholly in the range"
    );
    let r = format!("{:#x}-{:#x}", HEAP, HEAP + 75);
    assert_eq!(f(&["--range", &r]), at("HEAP_SECRET"));
    let r = format!("{:#x}-{:#x}", A + CHUNK, A + 2 * CHUNK);
    assert_eq!(f(&["--range", &r]), BTreeSet::new());
    // The mapping, as JSON says it.
    let file = &grep_json(&["DUMPED_FILE_PAGE", images], 0)[0];
    assert_eq!(
        file["mapping"],
        serde_json::json!({"start": FILE, "end": FILE + 2 * PAGE, "prot": "r-xp", "kind": "file", "path": LIB, "offset": 0})
    );
}

/// The text forms: a line per match with its mapping, checkpoint text
/// escaped; hex dumps; counts; exit statuses 0, 1, 2, an error in one
/// input still leaving the others' matches.
/// `-v` after `grep` is refused (grep(1) users mean "invert"), alone or
/// in a group, with a pointer to --verbose; `--verbose`, `-v` before
/// `grep` and a pattern `-v` after `--` work.
fn grep_refuses_v_which_grep_users_read_as_invert() {
    let syn = synthetic();
    let images = path_str(&syn.images);
    for args in [
        &["grep", "-v", "SHM_SECRET", images][..],
        &["grep", "-c", "-iv", "SHM_SECRET", images],
        &["grep", "-C", "2", "-cv", "SHM_SECRET", images],
        &["grep", "SHM_SECRET", images, "-v"],
    ] {
        let o = criu2core(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(
            err.contains("-v is refused") && err.contains("--verbose"),
            "{args:?}: {err}"
        );
    }
    for args in [
        &["grep", "--verbose", "-c", "SHM_SECRET", images][..],
        &["-v", "grep", "-c", "SHM_SECRET", images],
        // -C's value, and a pattern after --, are not options.
        &["grep", "-c", "-C2", "--", "-v", images],
    ] {
        let o = criu2core(args);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!String::from_utf8_lossy(&o.stderr).contains("refused"));
    }
    // Elsewhere -v is --verbose still.
    let o = criu2core(["inspect", "-v", images]);
    assert!(o.status.success());
}

fn text_output_and_exit_statuses() {
    let syn = synthetic();
    let images = path_str(&syn.images);
    let o = grep(&["--color", "never", "SHM_SECRET", images]);
    assert_eq!(o.status.code(), Some(0));
    let want = format!(
        "{images}: pid 1 (syn) {:#x} [{SHM:x}-{:x} rw-s shmem /dev/zero (deleted) +0x10]: SHM_SECRET\n\
         {images}: pid 2 (ev\\x1b[2Jil) {:#x} [{SHM:x}-{:x} rw-s shmem /dev/zero (deleted) +0x10]: SHM_SECRET\n",
        SHM + 16,
        SHM + PAGE,
        SHM + 16,
        SHM + PAGE
    );
    assert_eq!(text(&o), want);
    let o = grep(&["--color", "always", "-C", "2", "HEAP_SECRET", images]);
    assert!(
        text(&o).ends_with("]: hh\x1b[1;31mHEAP_SECRET\x1b[0mhh\n"),
        "{}",
        text(&o)
    );
    let o = grep(&["--hexdump", "-C", "3", "HEAP_SECRET", images]);
    assert_eq!(
        text(&o).lines().skip(1).collect::<Vec<_>>(),
        [
            "  0000000030000030                                          68 68 68  |             hhh|",
            "  0000000030000040  48 45 41 50 5f 53 45 43  52 45 54 68 68 68        |HEAP_SECRETHHH|"
                .replace("HHH", "hhh")
                .as_str()
        ]
    );
    let o = grep(&["--utf16", "-C", "4", "Password", images]);
    assert!(
        text(&o).ends_with(" rw-p anon]: ....Password.... (UTF-16LE)\n"),
        "{}",
        text(&o)
    );
    let o = grep(&["-c", "SECRET", images]);
    assert_eq!(
        text(&o),
        format!("{images}: pid 1 (syn): 5\n{images}: pid 2 (ev\\x1b[2Jil): 2\n")
    );
    let o = grep(&["-l", "HEAP_SECRET", images]);
    assert_eq!(text(&o), format!("{images}: pid 1 (syn)\n"));
    assert_eq!(grep(&["NOWHERE", images]).status.code(), Some(1));
    let o = grep(&["HEAP_SECRET", "/nonexistent/checkpoint", images]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("HEAP_SECRET") && err(&o).contains("/nonexistent/checkpoint"));
    let o = grep(&["-p", "99", "HEAP_SECRET", images]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("pid 99"), "{}", err(&o));
    for bad in [
        &["-E", "(", images][..],
        &["--hex", "xyz", images],
        &["--prot", "q", "x", images],
        &["--kind", "nope", "x", images],
    ] {
        assert_eq!(grep(bad).status.code(), Some(2), "{bad:?}");
    }
    // A reader that goes away (`| head -1`) ends grep as SIGPIPE would,
    // quietly.
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg("\"$0\" grep -j 2 -E '[a-z]' \"$1\" \"$1\" | head -1 >/dev/null; echo \"${PIPESTATUS[0]}\"")
        .arg(env!("CARGO_BIN_EXE_criu2core"))
        .arg(images)
        .output()
        .unwrap();
    assert_eq!((text(&o).trim(), err(&o).as_str()), ("141", ""));
    // A damaged pages file: an error naming it, exit 2.
    let dir = scratch("grep-damaged");
    copy_dir(&syn.images, &dir);
    symlink(syn.images.join("parent"), dir.join("parent")).unwrap();
    let pages = dir.join("pages-1.img");
    let len = fs::metadata(&pages).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&pages)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = grep(&["AFTER_HOLE", path_str(&dir)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("pages-1.img"), "{}", err(&o));
}

/// read: raw bytes across the parent dump's page and this one's, holes
/// only with --zeros, file pages only with --root, whole mappings,
/// hex dumps, and clear refusals.
fn read_bytes_holes_and_mappings() {
    let syn = synthetic();
    let images = path_str(&syn.images);
    let read = |args: &[&str]| {
        let mut all = vec!["read", images, "--pid", "1"];
        all.extend_from_slice(args);
        criu2core(&all)
    };
    let o = read(&[&format!("{:#x}", B + PAGE - 9), "21"]);
    assert_eq!(o.stdout, b"STRADDLE_PARENT_CHILD", "{}", err(&o));
    let o = read(&[&format!("{}", B + PAGE - 9), "0x15"]);
    assert_eq!(o.stdout, b"STRADDLE_PARENT_CHILD", "{}", err(&o));
    let o = read(&[&format!("{:#x}", B + 2 * PAGE - 2), "4"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        err(&o).contains("were not dumped") && err(&o).contains("--zeros"),
        "{}",
        err(&o)
    );
    let o = read(&["--zeros", &format!("{:#x}", B + 2 * PAGE - 2), "4"]);
    assert_eq!(o.stdout, b"_K\0\0");
    let o = read(&["--mapping", &format!("{:#x}", B + 5)]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a mapping with a hole needs --zeros"
    );
    assert!(o.stdout.is_empty());
    let o = read(&["--zeros", "--mapping", &format!("{:#x}", B + 5)]);
    assert_eq!(o.stdout.len() as u64, 4 * PAGE);
    assert!(o.stdout[(3 * PAGE) as usize..].starts_with(b"AFTER_HOLE"));
    let o = read(&[&format!("{:#x}", FILE + PAGE), "14"]);
    assert!(err(&o).contains("--root"), "{}", err(&o));
    let o = read(&[
        "--root",
        path_str(&syn.root),
        &format!("{:#x}", FILE + PAGE + 8),
        "14",
    ]);
    assert_eq!(o.stdout, b"ROOT_ONLY_PAGE");
    let o = read(&[&format!("{:#x}", E1 + PAGE - 3), "6"]);
    assert_eq!(
        o.stdout, b"ACROSS",
        "read crosses adjacent mappings as the core does"
    );
    let o = read(&["0x1234", "4"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("0x1234 is not mapped"), "{}", err(&o));
    let o = read(&[&format!("{:#x}", STACK + PAGE - 2), "4"]);
    assert!(
        err(&o).contains(&format!("{:#x} is not mapped", STACK + PAGE)),
        "{}",
        err(&o)
    );
    let o = read(&["--hexdump", &format!("{:#x}", HEAP + 64), "11"]);
    assert_eq!(
        text(&o),
        "0000000030000040  48 45 41 50 5f 53 45 43  52 45 54                 |HEAP_SECRET|\n"
    );
    let o = criu2core(["read", images, "--pid", "3", "0x1000"]);
    assert!(err(&o).contains("pid 3"), "{}", err(&o));
}

/// Raw memory is not written to a terminal (script(1) gives it one).
fn read_refuses_raw_bytes_on_a_terminal() {
    let syn = synthetic();
    let o = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} read {} --pid 1 {:#x} 4; echo status=$?",
            env!("CARGO_BIN_EXE_criu2core"),
            syn.images.display(),
            HEAP + 64
        ))
        .arg("/dev/null")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(
        t.contains("refusing to write raw memory to a terminal") && t.contains("status=1"),
        "{t}"
    );
}

/// SIGINT while a compressed archive is unpacked or searched: exit 130,
/// and nothing left in --tmpdir.
fn an_interrupted_search_leaves_nothing_behind() {
    let dir = scratch("grep-interrupt");
    let ck = dir.join("ck");
    criu2core::testkit::synth::synthesize(
        &ck,
        &criu2core::testkit::synth::Spec {
            bytes: 160 << 20,
            vmas: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let ar = dir.join("ck.tar.zst");
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg("tar -C \"$1\" -cf - . | zstd -1 -q -o \"$2\"")
        .arg("sh")
        .arg(&ck)
        .arg(&ar)
        .status()
        .unwrap();
    assert!(st.success());
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_criu2core"))
        .args(["grep", "-c", "NOWHERE", "--tmpdir"])
        .arg(&tmp)
        .arg(&ar)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it is unpacking, interrupt it.
    let start = std::time::Instant::now();
    while fs::read_dir(&tmp).unwrap().next().is_none() {
        assert!(start.elapsed().as_secs() < 60, "it never started unpacking");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", err(&out));
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary files left behind"
    );
}

/// This module's tests.
/// `grep -e M1 -e M2 ...` (and `-f FILE`) over every real fixture: each
/// hit the union of the single-marker searches holds, naming its pattern,
/// and the union is where gcore's cores hold the markers.
fn many_patterns_find_the_union_of_single_searches() {
    for name in ["mt-pie", "fork-shared"] {
        let fx = fixture(name);
        let images = fx.images();
        // A pattern inside another and one in no process, too.
        let mut pats = fx.markers.clone();
        pats.push(fx.markers[0][2..8].to_string());
        pats.push("NOT_IN_ANY_CHECKPOINT_4242".to_string());
        let mut union = BTreeSet::new();
        for (i, m) in pats.iter().enumerate() {
            for (pid, addr) in found(&[m, path_str(&images)]) {
                union.insert((pid, addr, i as u64));
            }
        }
        assert!(!union.is_empty(), "{name}: no marker found");
        let mut args: Vec<&str> = pats.iter().flat_map(|m| ["-e", m.as_str()]).collect();
        args.push(path_str(&images));
        let lines = grep_json(&args, 0);
        let got: BTreeSet<(u64, u64, u64)> = lines
            .iter()
            .map(|v| {
                let i = v["pattern"].as_u64().unwrap();
                assert_eq!(v["match"], pats[i as usize].as_str(), "{v}");
                (
                    v["pid"].as_u64().unwrap(),
                    v["address"].as_u64().unwrap(),
                    i,
                )
            })
            .collect();
        assert_eq!(lines.len(), got.len(), "{name}: a hit reported twice");
        assert_eq!(got, union, "{name}");
        // The union is what gcore's cores hold.
        let mut gcore = BTreeSet::new();
        for p in fx.processes.iter().filter(|p| !fx.zombies.contains(&p.pid)) {
            for (i, m) in pats.iter().enumerate() {
                for (_, a) in find_in_core(&fx.gcore(p), std::slice::from_ref(m)) {
                    gcore.insert((u64::from(p.pid), a, i as u64));
                }
            }
        }
        assert_eq!(got, gcore, "{name}");
        // -f: the same, patterns from a file (an empty line skipped).
        let file = images.parent().unwrap().join("patterns.txt");
        fs::write(&file, pats.join("\n") + "\n\n").unwrap();
        let from_file = grep_json(&["-f", path_str(&file), path_str(&images)], 0);
        assert_eq!(from_file, lines, "{name}: -f");
    }
    // -E takes one pattern; no pattern at all is an error.
    let o = grep(&["-E", "-e", "a", "-e", "b", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let o = grep(&["-f", "/dev/null", "x"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
}

/// The net fixture (a real CRIU 4.2 dump with --tcp-established): the
/// bytes each end of its loopback connection sent and the other had not
/// read are in the TCP receive queues, found there and attributed to the
/// descriptor, its socket's ends and the offset in the queue; with
/// --memory-only only memory is searched, with the same memory hits.
fn queued_bytes_are_searched_and_attributed_to_their_descriptor() {
    let fx = fixture("net");
    let images = fx.images();
    let img = path_str(&images);
    let all = grep_json(&["-C", "64", "NET_SECRET_9931", img], 0);
    let (queued, memory): (Vec<&Value>, Vec<&Value>) =
        all.iter().partition(|v| v.get("fd").is_some());
    assert_eq!(queued.len(), 1, "{all:#?}");
    let q = queued[0];
    assert_eq!(q["source"], "tcp-recv");
    assert_eq!(q["offset"], 15);
    assert_eq!(q["length"], 15);
    assert_eq!(q["before"], "GET /exfil?key=");
    assert_eq!(q["after"], " HTTP/1.0\r\n\r\n");
    let object = q["object"].as_str().unwrap();
    assert!(
        object.starts_with("tcp 127.0.0.1:") && object.contains(" -> 127.0.0.1:"),
        "{object}"
    );
    assert!([4, 5].contains(&q["fd"].as_u64().unwrap()), "{q}");
    assert!(q.get("address").is_none());
    // The other end's queue holds the reply, from its first byte.
    let reply = grep_json(&["HTTP/1.0 200 OK", img], 0);
    let rq: Vec<&Value> = reply.iter().filter(|v| v.get("fd").is_some()).collect();
    assert_eq!(rq.len(), 1, "{reply:#?}");
    assert_eq!(
        (rq[0]["offset"].as_u64(), rq[0]["source"].as_str()),
        (Some(0), Some("tcp-recv"))
    );
    assert_ne!(rq[0]["fd"], q["fd"]);
    // --memory-only: the memory hits alone, the same.
    let only = grep_json(&["--memory-only", "-C", "64", "NET_SECRET_9931", img], 0);
    assert_eq!(only.iter().collect::<Vec<_>>(), memory);
    // -c counts both; text names the descriptor.
    let o = grep(&["-c", "NET_SECRET_9931", img]);
    assert!(
        text(&o).ends_with(&format!(": {}\n", all.len())),
        "{}",
        text(&o)
    );
    let o = grep(&["NET_SECRET_9931", img]);
    let line = text(&o)
        .lines()
        .find(|l| l.contains(" tcp-recv "))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&format!(" fd {} tcp-recv [tcp 127.0.0.1:", q["fd"])),
        "{line}"
    );
    assert!(line.ends_with("] +0xf: NET_SECRET_9931"), "{line}");
}

pub fn tests() -> Vec<Trial> {
    trials![
        queued_bytes_are_searched_and_attributed_to_their_descriptor needs [Need::Tool("tar"), Need::Tool("zstd")],
        many_patterns_find_the_union_of_single_searches needs [Need::Tool("tar"), Need::Tool("zstd")],
        markers_are_found_exactly_where_gcore_has_them needs [Need::Tool("tar"), Need::Tool("zstd")],
        markers_of_other_architectures_are_where_their_cores_hold_them needs [Need::Tool("tar"), Need::Tool("zstd")],
        file_pages_are_searched_with_root_and_files_only needs [Need::Tool("tar"), Need::Tool("zstd")],
        an_incremental_chain_is_searched_through_its_parent needs [Need::Tool("tar"), Need::Tool("zstd")],
        archives_and_directories_are_searched_in_place needs [Need::Tool("tar"), Need::Tool("zstd")],
        parallel_output_is_the_same_as_serial needs [Need::Tool("tar"), Need::Tool("zstd")],
        read_gives_what_gdb_reads_from_our_core needs [Need::Tool("gdb"), Need::Tool("tar"), Need::Tool("zstd")],
        synthetic_needles_are_found_where_they_were_put,
        patterns_filters_and_output_forms,
        text_output_and_exit_statuses,
        read_bytes_holes_and_mappings,
        read_refuses_raw_bytes_on_a_terminal needs [Need::Tool("script")],
        an_interrupted_search_leaves_nothing_behind needs [Need::Tool("tar"), Need::Tool("zstd"), Need::Tool("kill")],
        grep_refuses_v_which_grep_users_read_as_invert,
    ]
}
