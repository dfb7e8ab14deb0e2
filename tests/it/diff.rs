//! `criu2core diff` on real CRIU 4.2 checkpoints: gdb-fixtures/diff.tar.zst
//! holds one process dumped with --leave-running (a/), again after it
//! changed in known ways (b/, --leave-running) and a last time with
//! nothing changed (c/), and record.txt, what the program says it changed
//! (see gdb-fixtures/README.md). The diff is checked against the record,
//! including what must not be reported (an untouched region, the heap
//! block's other pages), and its pages against a page-by-page reading of
//! both checkpoints through the library.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::common::*;
use crate::Need;
use criu2core::model::PageSource;
use criu2core::{open, LoadOptions, Loaded, OpenOptions, Process};
use libtest_mimic::Trial;
use serde_json::Value;

pub fn tests() -> Vec<Trial> {
    trials![
        diff_finds_what_the_program_changed needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_reports_nothing_untouched needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_pages_match_a_page_by_page_reading needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_of_unchanged_dumps_is_same needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_exit_status_and_quiet needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_text_summary_first needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_reads_archives_and_directories_alike needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_process_shape_is_inspects needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_through_an_incremental_chain needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_compares_file_pages_with_root needs [Need::Tool("tar"), Need::Tool("zstd")],
        diff_escapes_what_the_checkpoint_names needs [Need::Tool("tar"), Need::Tool("zstd")],
    ]
}

/// The unpacked fixture.
fn fx() -> PathBuf {
    unpack(&repo().join("gdb-fixtures/diff.tar.zst"), "diff")
}

/// record.txt: each name with its values.
fn record() -> BTreeMap<String, Vec<String>> {
    fs::read_to_string(fx().join("record.txt"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().map(String::from);
            Some((w.next()?, w.collect()))
        })
        .collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `diff --json A B`, checked against the schema, with its exit status.
fn diff_json(a: &Path, b: &Path) -> (Value, Option<i32>) {
    let o = criu2core(["diff", "--json", s(a), s(b)]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stderr));
    });
    assert_schema("diff.schema.json", &v);
    (v, o.status.code())
}

fn process(v: &Value, pid: u64) -> &Value {
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no pid {pid} in {v:#}"))
}

/// The pid of the program (the process of a/).
fn parent_pid() -> u64 {
    let ckpt = open(fx().join("a"), &OpenOptions::default()).unwrap();
    u64::from(ckpt.pids()[0])
}

fn page_ranges(p: &Value) -> Vec<(u64, u64)> {
    p["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap()))
        .collect()
}

/// Every change the program recorded is in the diff: the heap write's
/// page, the new mapping (and its pages), the mapping made read-only, the
/// new descriptor, the moved position, the new thread, the new name, the
/// forked child.
fn diff_finds_what_the_program_changed() {
    let dir = fx();
    let rec = record();
    let (v, code) = diff_json(&dir.join("a"), &dir.join("b"));
    assert_eq!(code, Some(1));
    assert_eq!(v["same"], false);
    let pid = parent_pid();
    let p = process(&v, pid);
    assert_eq!(p["status"], "changed");
    let child: u64 = rec["child"][0].parse().unwrap();
    let c = process(&v, child);
    assert_eq!(c["status"], "added");
    assert_eq!(c["process"]["pid"], child);
    assert_eq!(v["summary"]["processes"]["added"], 1);

    let comm = &p["fields"].as_array().unwrap()[0];
    assert_eq!(comm["field"], "comm");
    assert_eq!(comm["a"], rec["comm_change"][0].as_str());
    assert_eq!(comm["b"], rec["comm_change"][1].as_str());

    let tid: u64 = rec["new_thread"][0].parse().unwrap();
    assert_eq!(
        p["threads"],
        serde_json::json!([{ "tid": tid, "status": "added" }])
    );

    let maps = p["mappings"].as_array().unwrap();
    let at = |start: u64| {
        maps.iter()
            .find(|m| m["start"] == start)
            .unwrap_or_else(|| panic!("no mapping at {start:#x}: {maps:#?}"))
    };
    let (ns, ne) = (hex(&rec["new_mapping"][0]), hex(&rec["new_mapping"][1]));
    let m = at(ns);
    assert_eq!(
        (&m["status"], &m["end"], &m["prot"], &m["kind"]),
        (&"added".into(), &ne.into(), &"rw-p".into(), &"anon".into())
    );
    let pc = &rec["prot_change"];
    let m = at(hex(&pc[0]));
    assert_eq!(m["status"], "changed");
    assert_eq!(m["changes"], serde_json::json!(["prot"]));
    assert_eq!(m["before"]["prot"], format!("{}p", pc[2]));
    assert_eq!(m["prot"], format!("{}p", pc[3]));
    assert_eq!(m["end"], hex(&pc[1]));

    let pages = page_ranges(p);
    let covered = |lo: u64, hi: u64| pages.iter().any(|&(s, e)| s <= lo && hi <= e);
    let w = hex(&rec["heap_write"][0]);
    assert!(covered(w & !0xfff, (w & !0xfff) + 0x1000), "{pages:x?}");
    assert!(covered(ns, ne), "{pages:x?}");

    let fds = p["fds"].as_array().unwrap();
    let fd = |n: &str| {
        let n: u64 = n.parse().unwrap();
        fds.iter()
            .find(|f| f["fd"] == n)
            .unwrap_or_else(|| panic!("no fd {n}: {fds:#?}"))
    };
    let nf = &rec["new_fd"];
    let f = fd(&nf[0]);
    assert_eq!(f["status"], "added");
    assert_eq!(f["path"], nf[1].as_str());
    assert_eq!(f["pos"], nf[2].parse::<u64>().unwrap());
    let fp = &rec["fd_pos"];
    let f = fd(&fp[0]);
    assert_eq!(f["status"], "changed");
    assert!(f["changes"].as_array().unwrap().contains(&"pos".into()));
    assert_eq!(f["before"]["pos"], fp[1].parse::<u64>().unwrap());
    assert_eq!(f["pos"], fp[2].parse::<u64>().unwrap());
}

/// Nothing of the untouched region is reported, nor any page of the heap
/// block but the one written.
fn diff_reports_nothing_untouched() {
    let dir = fx();
    let rec = record();
    let (v, _) = diff_json(&dir.join("a"), &dir.join("b"));
    let p = process(&v, parent_pid());
    let (us, ue) = (hex(&rec["untouched"][0]), hex(&rec["untouched"][1]));
    let overlaps = |lo: u64, hi: u64, s: u64, e: u64| s < hi && lo < e;
    let pages = page_ranges(p);
    assert!(
        !pages.iter().any(|&(s, e)| overlaps(us, ue, s, e)),
        "untouched region {us:#x}-{ue:#x} reported: {pages:x?}"
    );
    for m in p["mappings"].as_array().unwrap() {
        let (s, e) = (m["start"].as_u64().unwrap(), m["end"].as_u64().unwrap());
        assert!(!overlaps(us, ue, s, e), "untouched mapping reported: {m}");
    }
    // The heap block's whole pages, less the written one.
    let (hs, he) = (hex(&rec["heap"][0]), hex(&rec["heap"][1]));
    let w = hex(&rec["heap_write"][0]) & !0xfff;
    let (first, last) = ((hs + 0xfff) & !0xfff, he & !0xfff);
    assert!(last - first >= 8 * 0x1000);
    let mut written = false;
    for &(s, e) in &pages {
        let (lo, hi) = (s.max(first), e.min(last));
        if lo < hi {
            assert!(
                lo >= w && hi <= w + 0x1000,
                "heap pages beyond the written one reported: {s:#x}-{e:#x}"
            );
            written = true;
        }
    }
    assert!(written);
}

/// A process's pages as a page-by-page reading gives them: where it holds
/// bytes, and what they are.
fn held_pages(p: &Process) -> BTreeMap<u64, Vec<u8>> {
    let mut held = BTreeSet::new();
    p.walk(0, &mut |_, at, run| {
        if let PageSource::Blob { .. } = run.source {
            let mut a = at;
            while a < at + run.len {
                held.insert(a & !(p.page_size - 1));
                a += p.page_size;
            }
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    held.into_iter()
        .map(|a| (a, p.read_memory(a, p.page_size).unwrap()))
        .collect()
}

fn load(dir: &Path) -> Process {
    let ckpt = open(dir, &OpenOptions::default()).unwrap();
    let pid = ckpt.pids()[0];
    match ckpt.load(pid, &LoadOptions::default()).unwrap() {
        Loaded::Process(p) => *p,
        _ => panic!("a zombie"),
    }
}

/// The pages diff reports are exactly those a page-by-page reading of
/// both sides finds different or held by one side only.
fn diff_pages_match_a_page_by_page_reading() {
    let dir = fx();
    let (pa, pb) = (load(&dir.join("a")), load(&dir.join("b")));
    let (ha, hb) = (held_pages(&pa), held_pages(&pb));
    let mut expect: Vec<(u64, u64)> = Vec::new();
    let addrs: BTreeSet<u64> = ha.keys().chain(hb.keys()).copied().collect();
    for a in addrs {
        if ha.get(&a) != hb.get(&a) {
            match expect.last_mut() {
                Some(last) if last.1 == a => last.1 = a + pa.page_size,
                _ => expect.push((a, a + pa.page_size)),
            }
        }
    }
    let (v, _) = diff_json(&dir.join("a"), &dir.join("b"));
    let got = page_ranges(process(&v, u64::from(pa.pid)));
    assert!(!got.is_empty());
    assert_eq!(got, expect);
}

/// The last two dumps, with nothing done in between, are the same.
fn diff_of_unchanged_dumps_is_same() {
    let dir = fx();
    let (v, code) = diff_json(&dir.join("b"), &dir.join("c"));
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["same"], true);
    assert_eq!(v["summary"]["same_processes"], 2);
    for p in v["processes"].as_array().unwrap() {
        assert_eq!(p["status"], "same");
        assert_eq!(p["pages"], serde_json::json!([]));
    }
}

/// 0 the same, 1 different, 2 an error; --quiet prints nothing.
fn diff_exit_status_and_quiet() {
    let dir = fx();
    let run = |args: &[&str]| criu2core(args);
    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let o = run(&["diff", "--quiet", s(&a), s(&b)]);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(1), 0));
    let o = run(&["diff", "-q", s(&b), s(&c)]);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0));
    let o = run(&["diff", s(&a), "Cargo.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a checkpoint"));
    let o = run(&["diff", s(&a), s(&dir.join("nowhere"))]);
    assert_eq!(o.status.code(), Some(2));
}

/// The text starts with the counts, then the processes that differ.
fn diff_text_summary_first() {
    let dir = fx();
    let rec = record();
    let o = criu2core(["diff", s(&dir.join("a")), s(&dir.join("b"))]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("a: ") && lines[1].starts_with("b: "));
    assert_eq!(lines[2], "processes: 1 added, 0 removed, 1 changed, 0 same");
    assert_eq!(lines[3], "threads: 1 added, 0 removed");
    assert!(lines[4].starts_with("mappings: ") && lines[5].starts_with("pages: "));
    assert!(lines[6].starts_with("fds: 1 added, 0 removed, "));
    let pid = parent_pid();
    let first = lines.iter().position(|l| l.starts_with("pid ")).unwrap();
    assert!(first > 7);
    assert_eq!(lines[first], format!("pid {pid} (diffvictim-b): changed"));
    let (ns, ne) = (&rec["new_mapping"][0], &rec["new_mapping"][1]);
    assert!(
        text.contains(&format!("  mapping {ns}-{ne} rw-p anon: added\n")),
        "{text}"
    );
    assert!(text.contains(&format!("pid {} (diffvictim-b): added\n", rec["child"][0])));
}

/// A directory and a checkpoint archive of the same images are the same.
fn diff_reads_archives_and_directories_alike() {
    let dir = fx();
    let out = scratch("diff-archive");
    let tar = out.join("a.tar.zst");
    fs::write(
        &tar,
        compress(&podman_tar(&dir.join("a"), |_| {}), "tar.zst"),
    )
    .unwrap();
    let (v, code) = diff_json(&dir.join("a"), &tar);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["b"]["kind"], "tar.zst");
    let (v, code) = diff_json(&tar, &dir.join("b"));
    assert_eq!(code, Some(1));
    assert_eq!(v["summary"]["processes"]["added"], 1);
}

/// A process in the diff has the shape of an item of inspect's processes.
fn diff_process_shape_is_inspects() {
    let dir = fx();
    let (v, _) = diff_json(&dir.join("a"), &dir.join("b"));
    let schema: Value =
        serde_json::from_slice(&fs::read(repo().join("docs/inspect.schema.json")).unwrap())
            .unwrap();
    let item = &schema["properties"]["processes"]["items"];
    for p in v["processes"].as_array().unwrap() {
        let mut errs = Vec::new();
        validate(item, &p["process"], "$.process", &mut errs);
        assert!(errs.is_empty(), "{errs:#?}");
    }
    let o = criu2core(["inspect", "--json", "--all", s(&dir.join("b"))]);
    let inspect: Value = serde_json::from_slice(&o.stdout).unwrap();
    let pid = parent_pid();
    let mine = &process(&v, pid)["process"];
    let theirs = inspect["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap();
    assert_eq!(mine, theirs);
}

/// b/ rewritten as CRIU writes an incremental dump on a kernel with
/// soft-dirty bits (`criu dump --prev-images-dir ../a --track-mem`): a
/// `parent` link to a/, each page a/ holds with the same bytes marked
/// PE_PARENT and left out of pages-N.img, the others kept. (The kernel
/// the fixture was made on has no soft-dirty bits, so CRIU itself could
/// not write the chain; see gdb-fixtures/README.md.) Returns the pages its
/// pagemap stores, as ranges.
fn chain_of(a: &Path, b: &Path, out: &Path, pid: u64) -> Vec<(u64, u64)> {
    use criu2core::testkit::flags::{PE_PARENT, PE_PRESENT};
    use criu2core::testkit::proto::{PagemapEntry, PagemapHead};
    use prost::Message;
    const PAGE: u64 = 4096;
    copy_dir(b, out);
    std::os::unix::fs::symlink(a, out.join("parent")).unwrap();
    let held = held_pages(&load(a));
    let name = format!("pagemap-{pid}.img");
    let mut img = read_raw(&out.join(&name));
    let head = PagemapHead::decode(&img.entries[0][..]).unwrap();
    let pages_name = format!("pages-{}.img", head.pages_id);
    let pages = fs::read(out.join(&pages_name)).unwrap();
    let (mut entries, mut kept, mut stored) =
        (vec![img.entries[0].clone()], Vec::new(), Vec::new());
    let mut off = 0usize;
    let push = |entries: &mut Vec<Vec<u8>>, vaddr: u64, flags: u32| {
        let last = entries.len() - 1;
        if last > 0 {
            let mut e = PagemapEntry::decode(&entries[last][..]).unwrap();
            if e.flags == Some(flags) && e.vaddr + e.nr_pages.unwrap() * PAGE == vaddr {
                e.nr_pages = Some(e.nr_pages.unwrap() + 1);
                entries[last] = e.encode_to_vec();
                return;
            }
        }
        let e = PagemapEntry {
            vaddr,
            compat_nr_pages: 0,
            in_parent: None,
            flags: Some(flags),
            nr_pages: Some(1),
        };
        entries.push(e.encode_to_vec());
    };
    for raw in &img.entries[1..] {
        let e = PagemapEntry::decode(&raw[..]).unwrap();
        let flags = e.flags.unwrap_or(PE_PRESENT);
        if flags & PE_PRESENT == 0 {
            entries.push(raw.clone());
            continue;
        }
        for k in 0..e.nr_pages.unwrap() {
            let vaddr = e.vaddr + k * PAGE;
            let bytes = &pages[off..off + PAGE as usize];
            off += PAGE as usize;
            if held.get(&vaddr).map(Vec::as_slice) == Some(bytes) {
                push(&mut entries, vaddr, PE_PARENT);
            } else {
                push(&mut entries, vaddr, flags);
                kept.extend_from_slice(bytes);
                match stored.last_mut() {
                    Some((_, end)) if *end == vaddr => *end += PAGE,
                    _ => stored.push((vaddr, vaddr + PAGE)),
                }
            }
        }
    }
    assert_eq!(off, pages.len());
    // Most pages come from the parent: the chain is a real one.
    assert!(
        kept.len() * 2 < pages.len(),
        "{} of {}",
        kept.len(),
        pages.len()
    );
    img.entries = entries;
    write_raw(&out.join(&name), &img);
    fs::write(out.join(&pages_name), kept).unwrap();
    stored
}

/// Through an incremental chain the diff is what the chain's pagemap says
/// changed (the pages it stores rather than take from its parent), and
/// the same as between the two full dumps.
fn diff_through_an_incremental_chain() {
    let dir = fx();
    let pid = parent_pid();
    let work = scratch("diff-chain");
    let chain = work.join("b-chain");
    let stored = chain_of(&dir.join("a"), &dir.join("b"), &chain, pid);
    assert!(!stored.is_empty());
    let (v, code) = diff_json(&dir.join("a"), &chain);
    assert_eq!(code, Some(1));
    let through = page_ranges(process(&v, pid));
    assert_eq!(through, stored);
    let (full, _) = diff_json(&dir.join("a"), &dir.join("b"));
    assert_eq!(through, page_ranges(process(&full, pid)));
    // The chain and the dump it stands for are the same.
    let (v, code) = diff_json(&dir.join("b"), &chain);
    assert_eq!(code, Some(0), "{v:#}");
}

/// File pages count where they matter: the example archive is mt-pie's
/// images with the executable in its rootfs-diff.tar, so without a root
/// only the archive side holds the executable's unmodified pages (they
/// differ, as pages one side holds); with --root both do, and are the
/// same.
fn diff_compares_file_pages_with_root() {
    let fx = fixture("mt-pie");
    let archive = repo().join("gdb-fixtures/example.tar.zst");
    let (v, code) = diff_json(&fx.images(), &archive);
    assert_eq!(code, Some(1));
    let pid = u64::from(fx.processes[0].pid);
    let pages = page_ranges(process(&v, pid));
    assert!(!pages.is_empty());
    let p = load(&fx.images());
    for (start, end) in pages {
        for page in (start..end).step_by(4096) {
            let m = p
                .mappings
                .iter()
                .find(|m| m.start <= page && page < m.end)
                .unwrap_or_else(|| panic!("{page:#x} in no mapping"));
            let path = &m.file.as_ref().expect("a file mapping").path;
            assert_eq!(path, fx.processes[0].exe.as_bytes());
        }
    }
    let o = criu2core([
        "diff",
        "--quiet",
        "--root",
        s(&fx.sysroot()),
        s(&fx.images()),
        s(&archive),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A name and a path with terminal escapes reach the text escaped, and
/// JSON exactly.
fn diff_escapes_what_the_checkpoint_names() {
    use criu2core::testkit::proto;
    let dir = fx();
    let work = scratch("diff-escapes");
    let b = work.join("b");
    copy_dir(&dir.join("a"), &b);
    let pid = parent_pid();
    edit_image::<proto::Core>(&b.join(format!("core-{pid}.img")), 0, |_, c| {
        if let Some(tc) = &mut c.tc {
            tc.comm = b"\x1b[31mevil\xff".to_vec();
        }
    });
    edit_image::<proto::FileEntry>(&b.join("files.img"), 0, |_, e| {
        if let Some(reg) = &mut e.reg {
            if reg.name.ends_with(b"data.txt") {
                reg.name = b"/srv/\x1b]0;owned\x07".to_vec();
            }
        }
    });
    let o = criu2core(["diff", s(&dir.join("a")), s(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text}");
    assert!(text.contains("(\\x1b[31mevil\\xff): changed"), "{text}");
    assert!(
        text.contains("fd 3 file /srv/\\x1b]0;owned\\x07 pos 5: changed (path "),
        "{text}"
    );
    let (v, _) = diff_json(&dir.join("a"), &b);
    let p = process(&v, pid);
    let comm = p["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == "comm")
        .unwrap();
    assert_eq!(comm["b"]["base64"], "G1szMW1ldmls/w==");
}
