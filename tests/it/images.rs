//! Decoding behaviour on real fixture images changed in controlled ways:
//! incremental dump chains, process states, lazy pages, missing or corrupt
//! images, and the command line's promises.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::common::*;
use criu2core::testkit::flags::{PE_LAZY, PE_PARENT, PE_PRESENT};
use criu2core::testkit::proto;
use criu2core::{open, write_core, LoadOptions, Loaded, OpenOptions};
use libtest_mimic::Trial;

const PAGE: usize = 4096;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn convert_dir(images: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "convert".to_string(),
        images.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    criu2core(&args)
}

/// Moves the pages of the pagemap entries `pick` selects out of `dir` into
/// a parent dump: `dir`'s entries become PE_PARENT and its pages file loses
/// their bytes; `parent` keeps a full copy of the original.
fn split_into_parent(dir: &Path, pagemap: &str, parent: &Path, pick: impl Fn(usize) -> bool) {
    copy_dir(dir, parent);
    let pm_path = dir.join(pagemap);
    let mut pm = read_raw(&pm_path);
    let head = <proto::PagemapHead as prost::Message>::decode(&pm.entries[0][..]).unwrap();
    let pages_path = dir.join(format!("pages-{}.img", head.pages_id));
    let pages = fs::read(&pages_path).unwrap();
    let mut kept = Vec::new();
    let mut off = 0;
    for (i, raw) in pm.entries.iter_mut().enumerate().skip(1) {
        let mut e = <proto::PagemapEntry as prost::Message>::decode(&raw[..]).unwrap();
        let flags = e.flags.unwrap_or(PE_PRESENT);
        let len = e.nr_pages.unwrap() as usize * PAGE;
        if flags & PE_PRESENT == 0 {
            continue;
        }
        if pick(i) {
            e.flags = Some(PE_PARENT);
            *raw = prost::Message::encode_to_vec(&e);
        } else {
            kept.extend_from_slice(&pages[off..off + len]);
        }
        off += len;
    }
    write_raw(&pm_path, &pm);
    fs::write(&pages_path, kept).unwrap();
}

fn incremental_chain_gives_byte_identical_cores() {
    let fx = fixture("mt-pie");
    let base = scratch("incremental");
    let full = base.join("full");
    convert_dir(&fx.images(), &full, &[]);

    // grandparent: everything; parent: odd entries in grandparent;
    // child: entries divisible by 3 in parent (and so on down the chain).
    let (gp, parent, child) = (base.join("gp"), base.join("parent"), base.join("child"));
    copy_dir(&fx.images(), &child);
    split_into_parent(&child, "pagemap-12155.img", &parent, |i| i % 3 == 0);
    copy_dir(&parent, &base.join("tmp"));
    split_into_parent(&parent, "pagemap-12155.img", &gp, |i| i % 2 == 1);
    // The shared-memory pagemap moves to the parent too.
    split_into_parent(
        &child,
        "pagemap-shmem-1075.img",
        &base.join("unused"),
        |_| true,
    );
    fs::copy(
        fx.images().join("pagemap-shmem-1075.img"),
        parent.join("pagemap-shmem-1075.img"),
    )
    .unwrap();
    fs::copy(fx.images().join("pages-1.img"), parent.join("pages-1.img")).unwrap();
    symlink("../parent", child.join("parent")).unwrap();
    symlink("../gp", parent.join("parent")).unwrap();

    let inc = base.join("inc");
    let o = convert_dir(&child, &inc, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // No warnings but that the executable is not on this machine.
    assert!(
        stderr(&o)
            .lines()
            .all(|l| l.contains("is not on this machine")),
        "unexpected warnings: {}",
        stderr(&o)
    );
    let a = fs::read(full.join("core.12155")).unwrap();
    let b = fs::read(inc.join("core.12155")).unwrap();
    assert!(a == b, "cores of the full and the incremental dump differ");
    // The child really did depend on its parents.
    let child_pages = fs::metadata(child.join("pages-2.img")).unwrap().len();
    assert!(child_pages < fs::metadata(fx.images().join("pages-2.img")).unwrap().len());

    // inspect shows the chain and what each dump supplied; -v says it too.
    let o = criu2core(["inspect", "--json", child.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let canon = |p: &Path| fs::canonicalize(p).unwrap().display().to_string();
    assert_eq!(
        v["checkpoint"]["parents"],
        serde_json::json!([canon(&parent), canon(&gp)])
    );
    let mem = &v["processes"][0]["memory"];
    let dumps = mem["dumps"].as_array().unwrap();
    let bytes: Vec<u64> = dumps
        .iter()
        .map(|d| d["dumped_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(dumps.len(), 3, "{dumps:?}");
    assert_eq!(dumps[1]["images"], canon(&parent).as_str());
    assert_eq!(bytes[0], child_pages);
    assert!(bytes[1] > 0 && bytes[2] > 0, "{bytes:?}");
    assert_eq!(
        bytes.iter().sum::<u64>(),
        mem["dumped_bytes"].as_u64().unwrap()
    );
    let o = criu2core(["inspect", child.to_str().unwrap()]);
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "parents      1 {}\n             2 {}\n",
            canon(&parent),
            canon(&gp)
        )),
        "{text}"
    );
    let kib = |b: u64| format!("{:.1} KiB", b as f64 / 1024.0);
    assert!(
        text.contains(&format!(
            "  pages    {} from this dump, {} from parent 1, {} from parent 2\n",
            kib(bytes[0]),
            kib(bytes[1]),
            kib(bytes[2])
        )),
        "{text}"
    );
    let o = convert_dir(&child, &base.join("inc-v"), &["-v"]);
    let log = stderr(&o);
    for (level, dir) in [(1, &parent), (2, &gp)] {
        assert!(
            log.lines().any(|l| l.contains("pages from a parent dump")
                && l.contains(&format!("level={level} "))
                && l.contains(&format!("images={} ", canon(dir)))
                && l.contains(&format!("bytes={}", bytes[level]))),
            "{log}"
        );
    }

    // A parent that lacks pages the child says it has: converted, with
    // those pages as the parent has them (zeros), and a warning.
    let (hollow, orphan) = (base.join("hollow"), base.join("orphan"));
    copy_dir(&parent, &hollow);
    let mut pm = read_raw(&hollow.join("pagemap-12155.img"));
    pm.entries.truncate(1);
    write_raw(&hollow.join("pagemap-12155.img"), &pm);
    copy_dir(&child, &orphan);
    symlink("../hollow", orphan.join("parent")).unwrap();
    let o = convert_dir(&orphan, &base.join("orphan-out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("KiB marked as in the parent dump are not there"),
        "{}",
        stderr(&o)
    );

    // Without the parent link the pages are nowhere: a clear error.
    fs::remove_file(child.join("parent")).unwrap();
    let o = convert_dir(&child, &base.join("broken"), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("parent dump") && stderr(&o).contains("no parent images"),
        "{}",
        stderr(&o)
    );
    // A loop in the chain is refused.
    symlink("../child", gp.join("parent")).unwrap();
    symlink("../parent", child.join("parent")).unwrap();
    edit_image::<proto::PagemapEntry>(&gp.join("pagemap-12155.img"), 1, |_, e| {
        e.flags = Some(PE_PARENT)
    });
    let o = convert_dir(&child, &base.join("loop"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("loop back"), "{}", stderr(&o));
}

fn stopped_process_converts_with_state_t() {
    let fx = fixture("mt-pie");
    let base = scratch("stopped");
    let images = base.join("images");
    copy_dir(&fx.images(), &images);
    edit_image::<proto::Core>(&images.join("core-12155.img"), 0, |_, c| {
        let tc = c.tc.as_mut().unwrap();
        tc.task_state = 3;
        tc.stop_signo = Some(20);
    });
    let o = convert_dir(&images, &base.join("out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let core = base.join("out/core.12155");
    let notes = notes(&core);
    let ps = &notes.iter().find(|n| n.1 == 3).unwrap().2;
    assert_eq!((ps[0], ps[1]), (3, b'T'));
    let si = &notes.iter().find(|n| n.1 == 0x5349_4749).unwrap().2;
    assert_eq!(u32::from_le_bytes(si[0..4].try_into().unwrap()), 20);
    let out = gdb(
        Some(&fx.sysroot()),
        Some(&fx.exe(&fx.processes[0])),
        &core,
        &["thread apply all bt".into()],
    );
    assert!(
        out.contains("worker_leaf") && out.contains("vector_worker"),
        "{out}"
    );
}

fn zombies_dead_thread_lists_and_missing_images_fail_alone() {
    let fx = fixture("fork-shared");
    let base = scratch("states");

    // A zombie child with compel's TASK_ZOMBIE (6), which CRIU never
    // writes (gdb::reaper_with_a_zombie_matches_gcore has a real one, state
    // 2), killed by SIGSEGV with a core dump (wait status 0x8b): reported,
    // no core, success.
    let zombie = base.join("zombie");
    copy_dir(&fx.images(), &zombie);
    edit_image::<proto::Core>(&zombie.join("core-12225.img"), 0, |_, c| {
        let tc = c.tc.as_mut().unwrap();
        tc.task_state = 6;
        tc.exit_code = 0x8b;
    });
    fs::remove_file(zombie.join("mm-12225.img")).unwrap();
    let o = convert_dir(&zombie, &base.join("zombie-out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "pid 12225 (victim): zombie, killed by signal 11 (SIGSEGV), core dumped (wait status 139); no core"
        ),
        "{}",
        stdout(&o)
    );
    assert!(base.join("zombie-out/core.12223").exists());
    assert!(!base.join("zombie-out/core.12225").exists());
    // A state CRIU never writes is an error for that process alone.
    edit_image::<proto::Core>(&zombie.join("core-12225.img"), 0, |_, c| {
        c.tc.as_mut().unwrap().task_state = 4;
    });
    let o = convert_dir(&zombie, &base.join("state-4-out"), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("core-12225.img: task state 4"),
        "{}",
        stderr(&o)
    );
    assert!(base.join("state-4-out/core.12223").exists());

    // A process whose thread list is empty: an error for it alone.
    let dead = base.join("dead");
    copy_dir(&fx.images(), &dead);
    edit_image::<proto::PstreeEntry>(&dead.join("pstree.img"), 0, |_, e| {
        if e.pid == 12225 {
            e.threads.clear();
        }
    });
    let o = convert_dir(&dead, &base.join("dead-out"), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pid 12225") && stderr(&o).contains("no threads"),
        "{}",
        stderr(&o)
    );
    assert!(base.join("dead-out/core.12223").exists());
    assert!(!base.join("dead-out/core.12225").exists());

    // A missing image: an error naming it, the other process still converts.
    let missing = base.join("missing");
    copy_dir(&fx.images(), &missing);
    fs::remove_file(missing.join("mm-12225.img")).unwrap();
    let o = convert_dir(&missing, &base.join("missing-out"), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("mm-12225.img is missing"),
        "{}",
        stderr(&o)
    );
    assert!(base.join("missing-out/core.12223").exists());
    let leftovers: Vec<_> = fs::read_dir(base.join("missing-out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

fn lazy_pages_are_left_out_and_reported() {
    let fx = fixture("mt-pie");
    let base = scratch("lazy");
    let images = base.join("images");
    copy_dir(&fx.images(), &images);
    // Entry 4 (a thread stack page run) becomes lazy: its pages leave the images.
    let pm = read_raw(&images.join("pagemap-12155.img"));
    let mut before = 0;
    let mut lazy = None;
    for (i, raw) in pm.entries.iter().enumerate().skip(1) {
        let e = <proto::PagemapEntry as prost::Message>::decode(&raw[..]).unwrap();
        let len = e.nr_pages.unwrap() as usize * PAGE;
        if i == 4 {
            lazy = Some((e.vaddr, len));
            break;
        }
        before += len;
    }
    let (vaddr, len) = lazy.unwrap();
    edit_image::<proto::PagemapEntry>(&images.join("pagemap-12155.img"), 1, |i, e| {
        if i == 4 {
            e.flags = Some(PE_LAZY);
        }
    });
    let pages = fs::read(images.join("pages-2.img")).unwrap();
    fs::write(
        images.join("pages-2.img"),
        [&pages[..before], &pages[before + len..]].concat(),
    )
    .unwrap();
    let o = convert_dir(&images, &base.join("out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("lazy-pages dump"), "{}", stderr(&o));
    let loads = loads(&base.join("out/core.12155"));
    // The lazy pages are not in the file: the segment holding them has no
    // file data there.
    assert!(
        loads
            .iter()
            .any(|l| l.0 + l.2 <= vaddr && vaddr + len as u64 <= l.0 + l.3),
        "{loads:x?}"
    );
    // Everything else is still there.
    let p = &fx.processes[0];
    let out = gdb(
        Some(&fx.sysroot()),
        Some(&fx.exe(p)),
        &base.join("out/core.12155"),
        &["x/s heap_marker".into()],
    );
    assert!(out.contains("\"HEAP_MARKER_77\""), "{out}");
}

/// VMA entries as CRIU 4.2 writes them besides the usual ones: guard
/// regions (madvise(MADV_GUARD_INSTALL)) as entries with only the GUARD
/// status bit, after every real VMA and inside some of them; and device
/// mappings whose contents a plugin saves (VMA_EXT_PLUGIN).
fn guard_and_plugin_vmas_as_criu_writes_them() {
    const GUARD: u32 = 1 << 16;
    const EXT_PLUGIN: u32 = 1 << 27;
    let fx = fixture("mt-pie");
    let base = scratch("vma-kinds");
    let plain = convert_fixture(&fx, "plain", &[]);

    // Guard entries change nothing: the pages they cover were not dumped
    // and read as the rest of their VMA's undumped pages.
    let guarded = base.join("guarded");
    copy_dir(&fx.images(), &guarded);
    edit_image::<proto::Mm>(&guarded.join("mm-12155.img"), 0, |_, mm| {
        let heap = mm.vmas.iter().find(|v| v.status & (1 << 5) != 0).unwrap();
        let big = mm.vmas.iter().max_by_key(|v| v.end - v.start).unwrap();
        let guards: Vec<proto::Vma> = [(heap.start, 0x1000), (big.start + 0x10_0000, 0x4000)]
            .iter()
            .map(|&(start, len)| proto::Vma {
                start,
                end: start + len,
                status: GUARD,
                fd: -1,
                ..Default::default()
            })
            .collect();
        mm.vmas.extend(guards);
    });
    let o = convert_dir(&guarded, &base.join("guarded-out"), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        fs::read(base.join("guarded-out/core.12155")).unwrap()
            == fs::read(plain.join("core.12155")).unwrap(),
        "guard entries changed the core"
    );

    // A plugin's device mapping has no contents in the core, even with a
    // root filesystem that has a file at its path, as the kernel dumps none
    // of a VM_IO mapping; NT_FILE still names it.
    let plugin = base.join("plugin");
    copy_dir(&fx.images(), &plugin);
    let mut first = 0;
    edit_image::<proto::Mm>(&plugin.join("mm-12155.img"), 0, |_, mm| {
        mm.vmas[0].status |= EXT_PLUGIN;
        first = mm.vmas[0].start;
    });
    let sysroot = fx.sysroot();
    let root = ["--root", sysroot.to_str().unwrap()];
    let o = convert_dir(&plugin, &base.join("plugin-out"), &root);
    assert!(o.status.success(), "{}", stderr(&o));
    let with_root = convert_fixture(&fx, "root", &root);
    let at = |core: &Path| {
        loads(core)
            .into_iter()
            .find(|l| l.0 == first)
            .map(|l| (l.2, l.3))
    };
    let (filesz, memsz) = at(&with_root.join("core.12155")).unwrap();
    assert!(filesz == memsz && memsz > 0);
    assert_eq!(at(&base.join("plugin-out/core.12155")), Some((0, memsz)));
    let g = gdb(
        None,
        None,
        &base.join("plugin-out/core.12155"),
        &["info proc mappings".into()],
    );
    assert!(
        g.lines()
            .any(|l| l.contains(&format!("{first:#x}")) && l.contains("/srv/victim/victim")),
        "{g}"
    );
}

fn root_supplies_file_backed_pages() {
    let fx = fixture("mt-pie");
    let base = scratch("root");
    let without = base.join("without");
    let with = base.join("with");
    convert_dir(&fx.images(), &without, &[]);
    let o = convert_dir(
        &fx.images(),
        &with,
        &["--root", fx.sysroot().to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Without the executable or libraries at hand, only the core can tell
    // what instruction a thread stopped at.
    let cmds = ["x/i $pc".to_string()];
    let empty = base.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let a = gdb(Some(&empty), None, &without.join("core.12155"), &cmds);
    let b = gdb(Some(&empty), None, &with.join("core.12155"), &cmds);
    // (gdb reads pages that are in neither core nor file as zeros.)
    assert!(!a.contains("syscall"), "{a}");
    assert!(b.contains(":\tsyscall"), "{b}");
    // Every file mapping is whole in the core.
    let ckpt = open(fx.images(), &OpenOptions::default()).unwrap();
    let Loaded::Process(p) = ckpt.load(12155, &LoadOptions::default()).unwrap() else {
        panic!()
    };
    let files: Vec<_> = p
        .mappings
        .iter()
        .filter_map(|m| Some((m, m.file.as_ref()?)))
        .collect();
    assert!(files.len() >= 15);
    let loads = loads(&with.join("core.12155"));
    for (m, f) in files
        .iter()
        .filter(|(_, f)| !f.path.ends_with(b" (deleted)"))
    {
        let l = loads
            .iter()
            .find(|l| l.0 == m.start)
            .unwrap_or_else(|| panic!("no segment at {:#x}", m.start));
        assert_eq!(
            (l.2, l.3),
            (m.len(), m.len()),
            "{} at {:#x} is not whole",
            String::from_utf8_lossy(&f.path),
            m.start
        );
    }
}

fn cores_are_sparse() {
    let fx = fixture("mt-pie");
    let out = scratch("sparse");
    convert_dir(&fx.images(), &out, &[]);
    let meta = fs::metadata(out.join("core.12155")).unwrap();
    use std::os::unix::fs::MetadataExt;
    let allocated = meta.blocks() * 512;
    let dumped = fs::metadata(fx.images().join("pages-1.img")).unwrap().len()
        + fs::metadata(fx.images().join("pages-2.img")).unwrap().len();
    assert!(meta.len() > 256 << 20, "apparent size {}", meta.len());
    assert!(
        allocated <= dumped + (256 << 10),
        "allocated {allocated} for {dumped} dumped bytes"
    );
}

fn command_line_behaviour() {
    let fx = fixture("fork-shared");
    let base = scratch("cli");
    // -i/-o as criu-coredump spells them, one line per core, -p filters.
    let out = base.join("one");
    let o = criu2core([
        "convert",
        "-i",
        fx.images().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "12225",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // One core: its line and the gdb command that opens it.
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.contains("core.12225") && text.contains("pid 12225 (victim), 1 thread,"),
        "{text}"
    );
    assert!(
        text.lines().nth(1).is_some_and(
            // (the executable is not on this machine: the core alone)
            |l| l.starts_with("  gdb -c ") && l.ends_with("/core.12225")
        ),
        "{text}"
    );
    assert!(!out.join("core.12223").exists());
    // An existing core is kept unless --force.
    let again = criu2core([
        "convert",
        "-i",
        fx.images().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "12225",
    ]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("exists (use --force"),
        "{}",
        stderr(&again)
    );
    let forced = criu2core([
        "convert",
        "-i",
        fx.images().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "12225",
        "-f",
        "-q",
    ]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).is_empty());
    // A pid that is not there, an input that is not a checkpoint.
    let o = criu2core([
        "convert",
        fx.images().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-p",
        "4",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("pid 4 is not in the checkpoint"),
        "{}",
        stderr(&o)
    );
    let o = criu2core([
        "convert",
        base.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("not a checkpoint"),
        "{}",
        stderr(&o)
    );
    // Nothing but finished cores is left behind.
    for e in fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        assert!(name.starts_with("core."), "left behind: {name}");
    }
}

/// Runs the whole decode-and-write path in-process on a damaged copy.
fn try_convert(images: &Path, out: &Path) -> criu2core::Result<()> {
    let ckpt = open(images, &OpenOptions::default())?;
    for pid in ckpt.pids() {
        if let Loaded::Process(p) = ckpt.load(pid, &LoadOptions::default())? {
            write_core(&p, out, true)?;
        }
    }
    Ok(())
}

fn truncated_and_corrupt_images_give_errors_not_panics() {
    let fx = fixture("mt-pie");
    let base = scratch("corrupt");
    let images = base.join("images");
    let out = base.join("out");
    fs::create_dir_all(&out).unwrap();
    copy_dir(&fx.images(), &images);
    let names: Vec<String> = fs::read_dir(fx.images())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            [
                "inventory",
                "pstree",
                "core-",
                "mm-",
                "pagemap-",
                "files",
                "memfd",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        })
        .collect();
    let mut checked = 0;
    for name in &names {
        let orig = fs::read(fx.images().join(name)).unwrap();
        let path = images.join(name);
        // Cut inside the header, inside a length word, and inside an entry body.
        let mut cuts = vec![2, 6, 10];
        let mut pos = if orig.len() > 8
            && u32::from_le_bytes(orig[0..4].try_into().unwrap()) == 0x5456_4319
        {
            8
        } else {
            4
        };
        while pos + 4 <= orig.len() {
            let len = u32::from_le_bytes(orig[pos..pos + 4].try_into().unwrap()) as usize;
            cuts.push(pos + 2);
            cuts.push(pos + 4 + len / 2);
            pos += 4 + len;
        }
        for cut in cuts.into_iter().filter(|&c| c < orig.len()) {
            fs::write(&path, &orig[..cut]).unwrap();
            let r = try_convert(&images, &out);
            let msg = format!(
                "{:#}",
                r.expect_err(&format!("{name} cut at {cut} converted"))
            );
            assert!(
                msg.contains(name.as_str()),
                "{name} cut at {cut}: error does not name the file: {msg}"
            );
            checked += 1;
        }
        // Bit flips and absurd lengths must never panic.
        for i in 0..orig.len().min(64) {
            let mut bad = orig.clone();
            bad[i] ^= 0xff;
            fs::write(&path, &bad).unwrap();
            let _ = try_convert(&images, &out);
        }
        if orig.len() >= 12 {
            for v in [0u32, 1 << 31, u32::MAX] {
                let mut bad = orig.clone();
                let at = if u32::from_le_bytes(orig[0..4].try_into().unwrap()) == 0x5456_4319 {
                    8
                } else {
                    4
                };
                bad[at..at + 4].copy_from_slice(&v.to_le_bytes());
                fs::write(&path, &bad).unwrap();
                let _ = try_convert(&images, &out);
            }
        }
        fs::write(&path, &orig).unwrap();
    }
    assert!(checked > 50, "only {checked} truncations tried");
    // A pages file shorter than the pagemap says.
    let pages = fs::read(fx.images().join("pages-2.img")).unwrap();
    fs::write(images.join("pages-2.img"), &pages[..pages.len() - PAGE]).unwrap();
    let msg = format!("{:#}", try_convert(&images, &out).unwrap_err());
    assert!(
        msg.contains("pages-2.img") && msg.contains("holds only"),
        "{msg}"
    );
}

fn sysv_and_shared_file_mappings() {
    let fx = fixture("mt-pie");
    let base = scratch("sysv");
    let images = base.join("images");
    copy_dir(&fx.images(), &images);
    // Make the shared anonymous mapping a System V segment (id 1075, whose
    // pages are in pagemap-shmem-1075.img) and libc's text a shared mapping.
    edit_image::<proto::Mm>(&images.join("mm-12155.img"), 0, |_, mm| {
        for v in &mut mm.vmas {
            if v.status & (1 << 14) != 0 {
                v.status = 1 | (1 << 10);
                v.shmid = 1075;
            } else if v.start == 0x7fdd_cffe_5000 {
                v.status = 1 | (1 << 7);
                v.flags = 1;
            }
        }
    });
    let shm = proto::IpcShm {
        desc: proto::IpcDesc {
            key: 0x1234abcd,
            uid: 0,
            gid: 0,
            cuid: 0,
            cgid: 0,
            mode: 0o600,
            id: 1075,
        },
        size: 65536,
        in_pagemaps: Some(true),
        hugetlb_flag: None,
    };
    let mut header = 0x5456_4319u32.to_le_bytes().to_vec();
    header.extend_from_slice(&0x4628_3044u32.to_le_bytes());
    write_raw(
        &images.join("ipcns-shm-9.img"),
        &RawImage {
            header,
            entries: vec![prost::Message::encode_to_vec(&shm)],
        },
    );
    let out = base.join("out");
    let o = convert_dir(&images, &out, &["--root", fx.sysroot().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let core = out.join("core.12155");
    let p = &fx.processes[0];
    let g = gdb(
        Some(&fx.sysroot()),
        Some(&fx.exe(p)),
        &core,
        &["x/s shared_anon".into(), "info proc mappings".into()],
    );
    assert!(g.contains("\"SHARED_ANON_MARKER\""), "{g}");
    assert!(g.contains("/SYSV1234abcd (deleted)"), "{g}");
    // The shared file mapping came whole from the root filesystem.
    let l = loads(&core)
        .into_iter()
        .find(|l| l.0 == 0x7fdd_cffe_5000)
        .unwrap();
    assert_eq!(l.2, 0x156000);
}

fn impossible_compat_tasks_and_unsupported_architectures_fail_alone() {
    let fx = fixture("fork-shared");
    let base = scratch("arch-errors");
    let compat = |c: &mut proto::Core| {
        c.x86.as_mut().unwrap().gpregs.mode = Some(proto::X86RegsMode::Compat as i32);
    };

    // A 32-bit x86 task (CRIU's gpregs.mode = COMPAT) converts as i386
    // (tests/gdb.rs). A leader marked compat among x86-64 threads, and a
    // compat task with memory above 4 GiB, cannot be: clear errors naming
    // the image or core, and the other process still converts.
    let fails_alone = |images: &Path, out: &str, bad: u32, good: u32, want: &[&str]| {
        let o = convert_dir(images, &base.join(out), &[]);
        let err = stderr(&o);
        assert!(!o.status.success());
        assert!(want.iter().all(|w| err.contains(w)), "{err}");
        assert!(base.join(format!("{out}/core.{good}")).exists());
        assert!(!base.join(format!("{out}/core.{bad}")).exists());
    };
    let mixed = base.join("mixed");
    copy_dir(&fx.images(), &mixed);
    edit_image::<proto::Core>(&mixed.join("core-12223.img"), 0, |_, c| compat(c));
    let want = ["core-12226.img", "thread is x86_64 but its process is i386"];
    fails_alone(&mixed, "mixed-out", 12223, 12225, &want);

    let high = base.join("high");
    copy_dir(&fx.images(), &high);
    edit_image::<proto::Core>(&high.join("core-12225.img"), 0, |_, c| compat(c));
    fails_alone(
        &high,
        "auxv-out",
        12225,
        12223,
        &["AT_PAGESZ 0 is not a page size"],
    );
    // A compat task's auxiliary vector, as CRIU saves it: two 32-bit words
    // to a saved word.
    edit_image::<proto::Mm>(&high.join("mm-12225.img"), 0, |_, mm| {
        mm.saved_auxv = mm
            .saved_auxv
            .chunks(2)
            .map(|p| p[0] & 0xffff_ffff | p[1] << 32)
            .collect();
    });
    let want = ["core.12225", "a 32-bit core cannot hold memory at 0x"];
    fails_alone(&high, "high-out", 12225, 12223, &want);

    // An architecture criu2core does not convert, and one whose register
    // state is missing from the image.
    for (mtype, want) in [
        (proto::core::Arch::Unknown, "unknown architecture code 0"),
        (proto::core::Arch::Aarch64, "no aarch64 register state"),
    ] {
        let dir = base.join(format!("arch-{}", mtype as i32));
        copy_dir(&fx.images(), &dir);
        edit_image::<proto::Core>(&dir.join("core-12225.img"), 0, |_, c| {
            c.mtype = mtype as i32;
        });
        let o = convert_dir(&dir, &dir.join("out"), &[]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
        assert!(dir.join("out/core.12223").exists());
    }
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        incremental_chain_gives_byte_identical_cores,
        stopped_process_converts_with_state_t,
        guard_and_plugin_vmas_as_criu_writes_them,
        zombies_dead_thread_lists_and_missing_images_fail_alone,
        lazy_pages_are_left_out_and_reported,
        root_supplies_file_backed_pages,
        cores_are_sparse,
        command_line_behaviour,
        truncated_and_corrupt_images_give_errors_not_panics,
        sysv_and_shared_file_mappings,
        impossible_compat_tasks_and_unsupported_architectures_fail_alone,
    ]
}
