//! Hostile checkpoints: images that claim absurd sizes or contradict each
//! other get a clear error (file, offset, what is wrong) in little CPU time
//! and memory, or convert what is sound with a warning; archives unpack
//! only what a checkpoint can use, within --max-spill; and a failed write
//! leaves no core behind.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::Need;
use criu2core::testkit::flags::PE_PRESENT;
use criu2core::testkit::proto;
use criu2core::testkit::synth::{self, Spec};
use libtest_mimic::Trial;

/// A small synthetic checkpoint (pid 1, 3 threads, 12 mappings) to damage.
fn base(name: &str) -> PathBuf {
    let dir = scratch(&format!("hostile-{name}"));
    let images = dir.join("images");
    synth::synthesize(
        &images,
        &Spec {
            seed: 3,
            processes: 1,
            threads: 3,
            vmas: 12,
            bytes: 256 << 10,
            holes: 4,
            ..Default::default()
        },
    )
    .unwrap();
    images
}

/// What a measured run of criu2core did.
pub(crate) struct Measured {
    pub(crate) out: Output,
    /// CPU time criu2core itself used (user and system): unlike wall time,
    /// it does not grow when other jobs share the machine.
    pub(crate) cpu: Duration,
    /// Peak resident memory of criu2core itself, in KiB.
    pub(crate) rss_kb: u64,
    /// Most bytes the watched directory took on disk at any moment seen.
    peak_disk: u64,
}

impl Measured {
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub(crate) fn ok(&self) -> bool {
        self.out.status.success()
    }
}

/// Bytes the files under `dir` take on disk (allocated blocks, so sparse
/// files count what they hold).
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Runs criu2core with `args`, measuring its CPU time, the peak RSS of
/// criu2core itself (Python's getrusage of its child) and, every few
/// milliseconds, the disk space the files under `watch` take.
pub(crate) fn run_measured<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    watch: Option<&Path>,
) -> Measured {
    let stats = tempfile::NamedTempFile::new().unwrap();
    let script = r#"
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write(f"{u.ru_utime + u.ru_stime} {u.ru_maxrss}")
sys.exit(r.returncode)
"#;
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(stats.path())
        .arg(env!("CARGO_BIN_EXE_criu2core"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = watch.map(|dir| {
        let (dir, done, peak) = (dir.to_path_buf(), done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(disk_usage(&dir), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::Relaxed);
    if let Some(t) = sampler {
        t.join().unwrap();
    }
    let text = fs::read_to_string(stats.path()).unwrap();
    let (cpu, rss) = text.split_once(' ').unwrap();
    Measured {
        out,
        cpu: Duration::from_secs_f64(cpu.parse().unwrap()),
        rss_kb: rss.parse().unwrap(),
        peak_disk: peak.load(Ordering::Relaxed),
    }
}

/// Converts `images`, measuring the CPU time and peak RSS of the
/// conversion itself.
fn convert_measured(images: &Path) -> (Output, Duration, u64) {
    let out = images.parent().unwrap().join("out");
    let m = run_measured(
        &[
            "convert".as_ref(),
            images.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "-f".as_ref(),
        ],
        None,
    );
    (m.out, m.cpu, m.rss_kb)
}

/// Converts and insists on a lean failure (little CPU time and memory)
/// whose message says `what`.
fn refused(images: &Path, what: &[&str]) -> String {
    let (o, cpu, rss_kb) = convert_measured(images);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "accepted; stderr: {err}");
    for w in what {
        assert!(err.contains(w), "error does not say {w:?}: {err}");
    }
    assert!(cpu < Duration::from_secs(2), "took {cpu:?} of CPU");
    let input: u64 = fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // What the program takes to start, plus at most twice the input's size
    // (the images read, and what they decode to). Most of the start is the
    // debug binary's own code and tables paged in: about 22 MiB since it
    // holds an object-storage client (tokio, reqwest, rustls), of which
    // only 2 MiB are allocated; what a hostile claim would allocate is
    // gigabytes.
    assert!(
        rss_kb * 1024 < (32 << 20) + 2 * input,
        "peak RSS {rss_kb} KiB for {input} bytes of images"
    );
    assert!(!images.parent().unwrap().join("out/core.1").exists());
    err
}

fn pagemap_entries(images: &Path, f: impl FnMut(usize, &mut proto::PagemapEntry)) {
    edit_image::<proto::PagemapEntry>(&images.join("pagemap-1.img"), 1, f);
}

fn a_pagemap_that_claims_2_to_the_40_pages() {
    let images = base("pages-2-40");
    pagemap_entries(&images, |i, e| {
        if i == 3 {
            e.nr_pages = Some(1 << 40);
        }
    });
    refused(
        &images,
        &["pagemap-1.img: offset", "pages-2.img, which holds only"],
    );
}

fn an_mm_entry_that_claims_gigabytes() {
    let images = base("mm-gigabytes");
    let path = images.join("mm-1.img");
    let mut bytes = fs::read(&path).unwrap();
    // The entry's length says 2.8 GB (what some hundred million VMAs would
    // take; the 32-bit length holds no more than 4 GiB), the file a few KiB.
    bytes[8..12].copy_from_slice(&(20_000_000_000u64 as u32 | 0x8000_0000).to_le_bytes());
    fs::write(&path, bytes).unwrap();
    refused(&images, &["mm-1.img: offset 8: entry claims", "remain"]);
}

fn a_vma_of_2_to_the_63_bytes() {
    let images = base("vma-2-63");
    edit_image::<proto::Mm>(&images.join("mm-1.img"), 0, |_, mm| {
        let last = mm.vmas.len() - 2;
        mm.vmas[last].end = mm.vmas[last].start.wrapping_add(1 << 63);
        mm.vmas.truncate(last + 1);
    });
    refused(
        &images,
        &["mm-1.img: VMA #", "larger than any address space"],
    );
}

fn overlapping_or_unsorted_vmas() {
    let images = base("overlap");
    edit_image::<proto::Mm>(&images.join("mm-1.img"), 0, |_, mm| {
        mm.vmas[4].start = mm.vmas[3].start
    });
    refused(&images, &["mm-1.img: VMA #4", "overlaps or precedes"]);
    let images = base("unsorted");
    edit_image::<proto::Mm>(&images.join("mm-1.img"), 0, |_, mm| mm.vmas.swap(5, 6));
    refused(&images, &["mm-1.img: VMA #6", "overlaps or precedes"]);
    let images = base("unaligned");
    edit_image::<proto::Mm>(&images.join("mm-1.img"), 0, |_, mm| mm.vmas[2].end += 1);
    refused(&images, &["mm-1.img: VMA #2", "not page-aligned"]);
}

fn pagemap_entries_outside_every_vma_are_ignored_with_a_warning() {
    let images = base("outside");
    let path = images.join("pagemap-1.img");
    let mut img = read_raw(&path);
    // Pages between two mappings (after the heap): not in any VMA.
    let stray = proto::PagemapEntry {
        vaddr: 0x90_0000,
        compat_nr_pages: 0,
        in_parent: None,
        flags: Some(PE_PRESENT),
        nr_pages: Some(2),
    };
    let at = img.entries[1..]
        .iter()
        .position(|e| {
            <proto::PagemapEntry as prost::Message>::decode(&e[..])
                .unwrap()
                .vaddr
                > stray.vaddr
        })
        .unwrap()
        + 1;
    img.entries
        .insert(at, prost::Message::encode_to_vec(&stray));
    write_raw(&path, &img);
    // Its pages go where pagemap order puts them in pages-2.img.
    let before: u64 = img.entries[1..at]
        .iter()
        .map(|e| <proto::PagemapEntry as prost::Message>::decode(&e[..]).unwrap())
        .filter(|e| e.flags.unwrap_or(PE_PRESENT) & PE_PRESENT != 0)
        .map(|e| e.nr_pages.unwrap() * 4096)
        .sum();
    let pages = fs::read(images.join("pages-2.img")).unwrap();
    let at = before as usize;
    fs::write(
        images.join("pages-2.img"),
        [&pages[..at], &[0x5a; 8192][..], &pages[at..]].concat(),
    )
    .unwrap();
    let (o, _, _) = convert_measured(&images);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("lie outside every VMA"), "no warning: {err}");
}

fn pages_missing_from_the_pages_file() {
    let images = base("short-pages");
    let path = images.join("pages-2.img");
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 8192)
        .unwrap();
    refused(
        &images,
        &["pagemap-1.img: offset", "pages-2.img, which holds only"],
    );
}

fn a_million_threads() {
    // As many threads as criu2core converts: accepted, until an image is missing.
    let images = base("max-threads");
    edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
        e.threads = (1..=1 << 16).collect();
    });
    refused(&images, &["core-2.img is missing"]);
    let images = base("twice");
    edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
        e.threads.push(e.threads[1])
    });
    refused(&images, &["lists thread 101001 of pid 1 twice"]);
    // One more, and a million: refused before any thread is decoded, with
    // the number. (A 100,000-thread process once took 1.3 GB.)
    for (name, n) in [("one-too-many", (1 << 16) + 1), ("million", 1_000_000)] {
        let images = base(name);
        edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
            e.threads = (1..=n).collect();
        });
        let err = refused(&images, &["pstree.img: offset 8"]);
        assert!(
            err.contains(&format!(
                "pid 1 has {n} threads, more than criu2core converts (65536)"
            )) || err.contains("is larger than any PstreeEntry"),
            "{err}"
        );
    }
    // 2^22 ids in all, each process within the limit: more than a PID
    // namespace holds.
    let images = base("too-many-ids");
    let mut img = read_raw(&images.join("pstree.img"));
    let proc_ = |k: u32| proto::PstreeEntry {
        pid: 1_000_000 + k,
        ppid: 1,
        pgid: 1,
        sid: 1,
        threads: (0..1 << 16).map(|t| 10_000_000 + k * 70_000 + t).collect(),
    };
    for k in 0..64 {
        img.entries.push(prost::Message::encode_to_vec(&proc_(k)));
    }
    write_raw(&images.join("pstree.img"), &img);
    refused(&images, &["more than 4194304 processes and threads"]);
}

fn a_full_disk_leaves_no_core_behind() {
    let images = base("full-disk");
    let out = images.parent().unwrap().join("small");
    fs::create_dir_all(&out).unwrap();
    // RLIMIT_FSIZE stands in for a full disk: writes past 64 KiB fail (EFBIG).
    let run = |ignore_sigxfsz: bool| {
        let trap = if ignore_sigxfsz { "trap '' XFSZ;" } else { "" };
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{trap} ulimit -f 128; exec \"$0\" convert \"$1\" -o \"$2\" -f"
            ))
            .arg(env!("CARGO_BIN_EXE_criu2core"))
            .arg(&images)
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run(true);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("File too large"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let left: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a failed write left {left:?}");
    // Killed outright by SIGXFSZ: no core under its final name either.
    let o = run(false);
    assert!(!o.status.success());
    assert!(!out.join("core.1").exists());
}

// ---------------------------------------------------------------------
// Archives: what is unpacked, and how much.

/// A tar header block of the GNU format for `name` of type `flag` with
/// `size` bytes of data (base-256 where octal does not fit).
fn gnu_header(name: &[u8], flag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    h[100..107].copy_from_slice(b"0000644");
    put_number(&mut h[124..136], size);
    h[156] = flag;
    h[257..265].copy_from_slice(b"ustar  \0");
    seal(&mut h);
    h
}

/// A 12-byte numeric field: octal, or base-256 where octal does not fit.
fn put_number(field: &mut [u8], v: u64) {
    if v < 1 << 33 {
        field[..11].copy_from_slice(format!("{v:011o}").as_bytes());
        field[11] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        field[4..12].copy_from_slice(&v.to_be_bytes());
    }
}

/// Sets a header's checksum.
fn seal(h: &mut [u8; 512]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
}

/// A GNU sparse member: `stored` bytes of data that claim to expand to
/// `real` bytes (one chunk at the very end, a hole before it).
fn sparse_member(name: &[u8], stored: u64, real: u64) -> Vec<u8> {
    let mut h = gnu_header(name, b'S', stored);
    put_number(&mut h[386..398], real - stored);
    put_number(&mut h[398..410], stored);
    put_number(&mut h[483..495], real);
    seal(&mut h);
    let mut out = h.to_vec();
    out.resize(512 + stored.div_ceil(512) as usize * 512, 0x41);
    out
}

/// A container checkpoint archive of `images` as a tar without its end
/// marker, so members can be appended; `first` goes before the images.
fn open_tar(images: &Path, first: &[u8]) -> Vec<u8> {
    let mut tar = first.to_vec();
    let mut rest = podman_tar(images, |_| {});
    rest.truncate(rest.len() - 1024);
    tar.extend_from_slice(&rest);
    tar
}

/// Writes `parts` as a .tar.zst, streamed (checksummed, as engines write
/// them), the end-of-archive marker after them.
fn write_zst(path: &Path, parts: impl FnOnce(&mut dyn Write)) {
    let mut e = zstd::Encoder::new(fs::File::create(path).unwrap(), 1).unwrap();
    e.include_checksum(true).unwrap();
    parts(&mut e);
    e.write_all(&[0; 1024]).unwrap();
    e.finish().unwrap();
}

/// Writes `len` zero bytes to `w`, a block at a time, then tar padding.
fn zeros(w: &mut dyn Write, len: u64) {
    let block = vec![0u8; 1 << 20];
    let mut left = len.div_ceil(512) * 512;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
}

/// Appends the file at `path` as a regular member (never a sparse one:
/// holes are written as the zeros they read as).
fn append_file<W: Write>(b: &mut tar::Builder<W>, path: &Path, name: &str) {
    let f = fs::File::open(path).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(f.metadata().unwrap().len());
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, f).unwrap();
}

/// Writes the images in `dir` as a container checkpoint .tar.zst, in name
/// order as engines write them, or with the pages files first.
fn zst_of_images(dir: &Path, ar: &Path, pages_first: bool) {
    write_zst(ar, |w| {
        let mut b = tar::Builder::new(w);
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort_by_key(|n| (pages_first && !n.starts_with("pages-"), n.clone()));
        for n in names {
            append_file(&mut b, &dir.join(&n), &format!("checkpoint/{n}"));
        }
        b.into_inner().unwrap();
    });
}

/// A scratch directory with the synthetic checkpoint's images, an empty
/// temporary directory and where cores go.
struct Case {
    dir: PathBuf,
    images: PathBuf,
    tmp: PathBuf,
    out: PathBuf,
}

fn case(name: &str) -> Case {
    let images = base(name);
    let dir = images.parent().unwrap().to_path_buf();
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    Case {
        out: dir.join("out"),
        dir,
        images,
        tmp,
    }
}

impl Case {
    /// criu2core `cmd` on `input` with the temporary directory watched.
    fn run(&self, cmd: &str, input: &Path, extra: &[&str]) -> Measured {
        let mut args: Vec<std::ffi::OsString> = vec![cmd.into(), input.into()];
        if cmd == "convert" {
            args.extend(["-o".into(), self.out.clone().into(), "-f".into()]);
        }
        args.extend(["--tmpdir".into(), self.tmp.clone().into()]);
        args.extend(extra.iter().map(Into::into));
        let m = run_measured(&args, Some(&self.tmp));
        assert_eq!(
            fs::read_dir(&self.tmp).unwrap().count(),
            0,
            "{cmd} left temporary files"
        );
        m
    }

    /// The cores of the images themselves, for comparison.
    fn reference(&self) -> Vec<u8> {
        let out = self.dir.join("reference");
        let o = criu2core([
            "convert".as_ref(),
            self.images.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "-f".as_ref(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        fs::read(out.join("core.1")).unwrap()
    }
}

fn sparse_members_are_never_expanded() {
    let c = case("sparse");
    let reference = c.reference();
    // 4 GiB and 1 TiB claimed by a member nothing uses, in a plain tar and
    // a compressed one: read past, nothing written; inspect and convert work.
    for (real, kind) in [(4u64 << 30, "tar"), (1 << 40, "tar"), (1 << 40, "tar.zst")] {
        let junk = sparse_member(b"checkpoint/junk.img", 4096, real);
        let tar = open_tar(&c.images, &junk);
        let ar = c.dir.join(format!("junk.{kind}"));
        match kind {
            "tar" => fs::write(&ar, [&tar[..], &[0; 1024]].concat()).unwrap(),
            _ => write_zst(&ar, |w| w.write_all(&tar).unwrap()),
        }
        for cmd in ["inspect", "convert"] {
            let m = c.run(cmd, &ar, &[]);
            assert!(m.ok(), "{cmd} {kind}: {}", m.stderr());
            assert!(
                m.peak_disk < 32 << 20,
                "{cmd} {kind}: {} bytes unpacked",
                m.peak_disk
            );
            assert!(
                m.cpu < Duration::from_secs(10),
                "{cmd} {kind}: {:?} of CPU",
                m.cpu
            );
        }
        assert_eq!(fs::read(c.out.join("core.1")).unwrap(), reference);
    }
    // A sparse pages file would have to be expanded: refused, naming it.
    let pages = sparse_member(b"checkpoint/pages-2.img", 4096, 4 << 30);
    let mut tar = Vec::new();
    let mut b = tar::Builder::new(Vec::new());
    for e in fs::read_dir(&c.images).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name != "pages-2.img" {
            tar_file(
                &mut b,
                &format!("checkpoint/{name}"),
                &fs::read(c.images.join(&name)).unwrap(),
            );
        }
    }
    let mut rest = b.into_inner().unwrap();
    rest.truncate(rest.len() - 1024);
    tar.extend_from_slice(&rest);
    tar.extend_from_slice(&pages);
    tar.extend_from_slice(&[0; 1024]);
    let ar = c.dir.join("sparse-pages.tar");
    fs::write(&ar, &tar).unwrap();
    let m = c.run("convert", &ar, &[]);
    assert!(!m.ok());
    assert!(
        m.stderr()
            .contains("checkpoint/pages-2.img: a sparse file (4294967296 bytes"),
        "{}",
        m.stderr()
    );
    assert!(m.peak_disk < 1 << 20);
}

fn unused_members_are_not_unpacked() {
    // 2 GiB of zeros in a member nothing uses (the issue's 20 GiB, smaller):
    // decompressed and checked, never written.
    let c = case("bomb");
    let reference = c.reference();
    let ar = c.dir.join("bomb.tar.zst");
    let tar = open_tar(&c.images, &[]);
    write_zst(&ar, |w| {
        w.write_all(&tar).unwrap();
        w.write_all(&gnu_header(b"checkpoint/zeros", b'0', 2 << 30))
            .unwrap();
        zeros(w, 2 << 30);
    });
    assert!(fs::metadata(&ar).unwrap().len() < 1 << 20);
    let m = c.run("convert", &ar, &[]);
    assert!(m.ok(), "{}", m.stderr());
    assert!(m.peak_disk < 16 << 20, "{} bytes unpacked", m.peak_disk);
    assert_eq!(fs::read(c.out.join("core.1")).unwrap(), reference);
}

fn pages_files_are_unpacked_only_as_far_as_their_pagemap_claims() {
    let c = case("pages-bomb");
    let reference = c.reference();
    let claimed = fs::metadata(c.images.join("pages-2.img")).unwrap().len();
    let bloated = c.dir.join("bloated");
    copy_dir(&c.images, &bloated);
    // pages-2.img with 512 MiB of zeros after the pages its pagemap claims.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(bloated.join("pages-2.img"))
        .unwrap();
    f.set_len(claimed + (512 << 20)).unwrap();
    drop(f);
    // As engines write archives, the pagemap comes first: the excess is
    // never written.
    let ar = c.dir.join("bloated.tar.zst");
    zst_of_images(&bloated, &ar, false);
    let m = c.run("convert", &ar, &[]);
    assert!(m.ok(), "{}", m.stderr());
    assert!(m.peak_disk < 32 << 20, "{} bytes unpacked", m.peak_disk);
    assert!(
        m.stderr()
            .contains("checkpoint/pages-2.img: 536870912 bytes past the"),
        "{}",
        m.stderr()
    );
    assert_eq!(fs::read(c.out.join("core.1")).unwrap(), reference);
    // The pages before their pagemap: unpacked (within --max-spill), then
    // cut; with a small --max-spill, refused, naming the member.
    let ar = c.dir.join("pages-first.tar.zst");
    zst_of_images(&bloated, &ar, true);
    let m = c.run("convert", &ar, &["--max-spill", "64M"]);
    assert!(!m.ok());
    assert!(
        m.stderr().contains(
            "member checkpoint/pages-2.img: unpacking it would put more than 67108864 bytes"
        ),
        "{}",
        m.stderr()
    );
    assert!(m.peak_disk <= 72 << 20, "{} bytes unpacked", m.peak_disk);
    let m = c.run("convert", &ar, &["--max-spill", "1G"]);
    assert!(m.ok(), "{}", m.stderr());
    assert!(
        m.stderr().contains("pages-2.img: 536870912 bytes past the"),
        "{}",
        m.stderr()
    );
    assert_eq!(fs::read(c.out.join("core.1")).unwrap(), reference);
}

fn max_spill_caps_what_an_archive_unpacks() {
    let c = case("max-spill");
    let ar = c.dir.join("ckpt.tar.zst");
    fs::write(&ar, compress(&podman_tar(&c.images, |_| {}), "tar.zst")).unwrap();
    let m = c.run("convert", &ar, &["--max-spill", "16K"]);
    assert!(!m.ok());
    assert!(m.stderr().contains("(--max-spill;"), "{}", m.stderr());
    assert!(
        m.stderr().contains("member checkpoint/pag"),
        "{}",
        m.stderr()
    );
    assert!(!c.out.join("core.1").exists());
    // Batch and inspect take it too.
    let m = run_measured(
        &[
            "batch".as_ref(),
            ar.as_os_str(),
            "-o".as_ref(),
            c.dir.join("batch").as_os_str(),
            "--tmpdir".as_ref(),
            c.tmp.as_os_str(),
            "--max-spill".as_ref(),
            "16K".as_ref(),
        ],
        None,
    );
    assert!(!m.ok());
    assert!(m.stderr().contains("--max-spill"), "{}", m.stderr());
    let m = c.run("inspect", &ar, &["--max-spill", "64"]);
    assert!(
        !m.ok() && m.stderr().contains("--max-spill"),
        "{}",
        m.stderr()
    );
    let m = c.run("convert", &ar, &["--max-spill", "lots"]);
    assert!(
        !m.ok() && m.stderr().contains("not a size"),
        "{}",
        m.stderr()
    );
    let m = c.run("convert", &ar, &["--max-spill", "64M"]);
    assert!(m.ok(), "{}", m.stderr());
}

fn inspect_unpacks_only_the_pages_of_argv_and_the_environment() {
    let c = case("inspect-spill");
    let ar = c.dir.join("ckpt.tar.zst");
    fs::write(&ar, compress(&podman_tar(&c.images, |_| {}), "tar.zst")).unwrap();
    let pages: u64 = ["pages-1.img", "pages-2.img"]
        .iter()
        .map(|n| fs::metadata(c.images.join(n)).map_or(0, |m| m.len()))
        .sum();
    let m = c.run("inspect", &ar, &["--env"]);
    assert!(m.ok(), "{}", m.stderr());
    let (argv, env) = synth::command_line(0);
    assert!(m.stdout().contains(&argv.join(" ")), "{}", m.stdout());
    assert!(m.stdout().contains(&env[1]), "{}", m.stdout());
    // The pages files take 256 KiB; their argv and environment a page.
    assert!(
        m.peak_disk < pages / 4,
        "{} of {pages} bytes unpacked",
        m.peak_disk
    );
    let direct = criu2core(["inspect".as_ref(), "--env".as_ref(), c.images.as_os_str()]);
    let strip = |t: &str| {
        let from = t.find("\ncheckpoint ").unwrap_or(0);
        t[from..].to_string()
    };
    assert_eq!(
        strip(&m.stdout()),
        strip(&String::from_utf8_lossy(&direct.stdout))
    );
}

// ---------------------------------------------------------------------
// Memory: bounded by what a real checkpoint holds.

/// Asserts a run failed in little CPU time and memory, saying each of
/// `what`.
fn lean_failure(m: &Measured, what: &[&str]) {
    assert!(!m.ok(), "accepted: {}", m.stderr());
    for w in what {
        assert!(m.stderr().contains(w), "does not say {w:?}: {}", m.stderr());
    }
    assert!(m.rss_kb < 48 << 10, "peak RSS {} KiB", m.rss_kb);
    assert!(m.cpu < Duration::from_secs(20), "took {:?} of CPU", m.cpu);
}

fn long_member_names_take_no_memory() {
    let c = case("long-names");
    // A GNU long name of 256 MiB (the issue's 3 GB, smaller): refused
    // before it is read.
    let ar = c.dir.join("long-name.tar.zst");
    write_zst(&ar, |w| {
        w.write_all(&gnu_header(b"././@LongLink", b'L', 256 << 20))
            .unwrap();
        let a = vec![b'a'; 1 << 20];
        for _ in 0..256 {
            w.write_all(&a).unwrap();
        }
        w.write_all(&gnu_header(b"x", b'0', 0)).unwrap();
    });
    for cmd in ["inspect", "convert"] {
        let m = c.run(cmd, &ar, &[]);
        lean_failure(&m, &["long name of 268435456 bytes, more than 4097"]);
    }
    // A PAX path of 256 MiB: the PAX header is refused likewise.
    let ar = c.dir.join("long-pax.tar.zst");
    write_zst(&ar, |w| {
        w.write_all(&gnu_header(b"pax", b'x', 256 << 20)).unwrap();
        zeros(w, 256 << 20);
    });
    lean_failure(
        &c.run("convert", &ar, &[]),
        &["PAX header of 268435456 bytes"],
    );
    // 20,000 members with names of 4,000 bytes (80 MB of names) that
    // nothing uses: read past, one at a time.
    let ar = c.dir.join("many-long.tar.zst");
    let tar = open_tar(&c.images, &[]);
    write_zst(&ar, |w| {
        w.write_all(&tar).unwrap();
        for i in 0..20_000 {
            let name = format!("junk/{i:05}/{}", "n".repeat(3989));
            w.write_all(&gnu_header(b"././@LongLink", b'L', name.len() as u64 + 1))
                .unwrap();
            let mut data = name.into_bytes();
            data.resize(4096, 0);
            w.write_all(&data).unwrap();
            w.write_all(&gnu_header(b"junk", b'0', 0)).unwrap();
        }
    });
    let m = c.run("convert", &ar, &[]);
    assert!(m.ok(), "{}", m.stderr());
    assert!(m.rss_kb < 48 << 10, "peak RSS {} KiB", m.rss_kb);
}

fn too_many_members_are_refused() {
    let c = case("many-members");
    let ar = c.dir.join("many.tar.zst");
    let tar = open_tar(&c.images, &[]);
    write_zst(&ar, |w| {
        w.write_all(&tar).unwrap();
        for i in 0..200_000 {
            w.write_all(&gnu_header(format!("j/{i}").as_bytes(), b'0', 0))
                .unwrap();
        }
    });
    lean_failure(&c.run("convert", &ar, &[]), &["more than 200000 members"]);
    // A rootfs-diff.tar of 2^20 + 1 empty members (512 MiB of headers),
    // streamed by in a compressed archive.
    let ar = c.dir.join("many-diff.tar.zst");
    let n: u64 = (1 << 20) + 1;
    write_zst(&ar, |w| {
        w.write_all(&tar).unwrap();
        w.write_all(&gnu_header(b"rootfs-diff.tar", b'0', n * 512 + 1024))
            .unwrap();
        for i in 0..n {
            w.write_all(&gnu_header(format!("f{i}").as_bytes(), b'0', 0))
                .unwrap();
        }
        w.write_all(&[0; 1024]).unwrap();
    });
    lean_failure(
        &c.run("convert", &ar, &[]),
        &["rootfs-diff.tar: more than 1048576 members"],
    );
}

fn a_rootfs_diff_of_many_long_names_takes_little_memory() {
    // 20,000 files with 4,000-byte names in the container's diff, and the
    // one file the process maps: only that one is kept.
    let c = case("diff-names");
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..20_000 {
        let name = format!("var/{i:05}/{}", "n".repeat(3989));
        tar_file(&mut b, &name, b"");
    }
    tar_file(
        &mut b,
        synth::EXE.trim_start_matches('/'),
        &[0x5a; 5 * 4096],
    );
    let diff = b.into_inner().unwrap();
    let tar = podman_tar(&c.images, |b| tar_file(b, "rootfs-diff.tar", &diff));
    for kind in ["tar", "tar.zst"] {
        let ar = c.dir.join(format!("diff.{kind}"));
        fs::write(&ar, compress(&tar, kind)).unwrap();
        let m = c.run("convert", &ar, &[]);
        assert!(m.ok(), "{kind}: {}", m.stderr());
        assert!(m.rss_kb < 48 << 10, "{kind}: peak RSS {} KiB", m.rss_kb);
        // Only the mapped file was unpacked, not the diff.
        assert!(
            m.peak_disk < diff.len() as u64 / 4,
            "{kind}: {} bytes unpacked",
            m.peak_disk
        );
        // Its text pages came from the diff.
        let core = c.out.join("core.1");
        assert!(
            find_in_core(&core, &["\u{5a}".repeat(4096)]).len() >= 4,
            "{kind}"
        );
    }
}

fn a_files_image_of_millions_of_entries_is_refused() {
    let images = base("files-million");
    // 2^20 + 1 entries of ten bytes: sockets, none a file criu2core uses.
    let mut img = read_raw(&images.join("files.img"));
    img.entries.extend((0..(1u32 << 20) + 1).map(|i| {
        prost::Message::encode_to_vec(&proto::FileEntry {
            r#type: proto::FdType::Unixsk as i32,
            id: 1000 + i,
            reg: None,
            memfd: None,
        })
    }));
    write_raw(&images.join("files.img"), &img);
    let m = run_measured(&["inspect".as_ref(), images.as_os_str()], None);
    lean_failure(&m, &["files.img: offset", "more than 1048576 entries"]);
}

fn a_process_of_two_million_vmas_is_refused() {
    let images = base("vmas-million");
    edit_image::<proto::Mm>(&images.join("mm-1.img"), 0, |_, mm| {
        let v = mm.vmas[0];
        mm.vmas = (0..(1u64 << 21) + 1)
            .map(|i| proto::Vma {
                start: 0x1000_0000 + i * 0x2000,
                end: 0x1000_1000 + i * 0x2000,
                ..v
            })
            .collect();
    });
    let (o, cpu, rss) = convert_measured(&images);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("mm-1.img: 2097153 VMAs, more than criu2core converts (2097152)"),
        "{err}"
    );
    assert!(cpu < Duration::from_secs(20), "{cpu:?} of CPU");
    let mm = fs::metadata(images.join("mm-1.img")).unwrap().len();
    assert!(rss * 1024 < (32 << 20) + 2 * mm, "peak RSS {rss} KiB");
    fs::remove_file(images.join("mm-1.img")).unwrap();
}

fn thread_notes_are_written_thread_by_thread() {
    // 20,000 threads (each thread's core image a hard link to one): about
    // 1.7 KiB of notes each, 34 MB in all, never held at once.
    let images = base("threads");
    let n = 20_000u32;
    for t in 0..n {
        fs::hard_link(
            images.join("core-101001.img"),
            images.join(format!("core-{}.img", 200_000 + t)),
        )
        .unwrap();
    }
    edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
        e.threads = std::iter::once(1).chain(200_000..200_000 + n).collect();
    });
    let (o, _, rss) = convert_measured(&images);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let core = images.parent().unwrap().join("out/core.1");
    let prstatus = notes(&core).iter().filter(|n| n.1 == 1).count();
    assert_eq!(prstatus, n as usize + 1);
    // Holding the notes took 117 MB here; the threads' registers alone take
    // about 1.3 KiB each.
    assert!(rss < 64 << 10, "peak RSS {rss} KiB");
}

// ---------------------------------------------------------------------
// Silent loss: warnings, or errors where the result would be wrong.

/// Runs `inspect --json` on `input`: its checkpoint warnings and each
/// process's warnings and error.
fn inspect_json(input: &Path) -> serde_json::Value {
    let o = criu2core(["inspect".as_ref(), "--json".as_ref(), input.as_os_str()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo().join("docs/inspect.schema.json")).unwrap())
            .unwrap();
    let mut errs = Vec::new();
    validate(&schema, &v, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:#?}");
    v
}

/// Every warning inspect gives, the checkpoint's and the processes':
/// their messages.
fn all_warnings(v: &serde_json::Value) -> String {
    let mut w: Vec<String> = warning_objects(v)
        .iter()
        .map(|x| x["message"].as_str().unwrap().to_string())
        .collect();
    for p in v["processes"].as_array().unwrap() {
        if let Some(e) = p["error"].as_str() {
            w.push(e.to_string());
        }
    }
    w.join("\n")
}

/// Every warning of an inspect report as its JSON objects, the
/// checkpoint's first.
fn warning_objects(v: &serde_json::Value) -> Vec<serde_json::Value> {
    let mut w: Vec<serde_json::Value> = v["warnings"].as_array().unwrap().clone();
    for p in v["processes"].as_array().unwrap() {
        w.extend(p["warnings"].as_array().unwrap().iter().cloned());
    }
    w
}

/// The one warning of inspect's report `v` whose message holds `what`:
/// its kind and file.
fn kind_and_file(v: &serde_json::Value, what: &str) -> (String, Option<String>) {
    let found: Vec<_> = warning_objects(v)
        .into_iter()
        .filter(|w| w["message"].as_str().unwrap().contains(what))
        .collect();
    assert_eq!(found.len(), 1, "{what:?}: {v}");
    let w = &found[0];
    (
        w["kind"].as_str().unwrap().to_string(),
        w["file"].as_str().map(str::to_string),
    )
}

/// Converts `images` and insists on success with a warning saying each
/// of `what`, which inspect (text and JSON) shows too: in JSON, the
/// warning saying the last of `what` has kind `kind` and is about a file
/// whose name ends with `file`.
fn warned(images: &Path, (kind, file): (&str, &str), what: &[&str]) {
    let (o, _, _) = convert_measured(images);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for w in what {
        assert!(
            err.contains("warning") && err.contains(w),
            "no warning {w:?}: {err}"
        );
    }
    let text = criu2core(["inspect".as_ref(), images.as_os_str()]);
    let v = inspect_json(images);
    let (k, f) = kind_and_file(&v, what[what.len() - 1]);
    assert_eq!(k, kind, "{what:?}");
    assert!(f.as_deref().is_some_and(|f| f.ends_with(file)), "{f:?}");
    let json = all_warnings(&v);
    for w in what {
        assert!(
            String::from_utf8_lossy(&text.stdout).contains(w),
            "inspect does not say {w:?}"
        );
        assert!(
            json.contains(w),
            "inspect --json does not say {w:?}: {json}"
        );
    }
}

fn pages_no_pagemap_entry_claims_are_a_warning() {
    // A pagemap cut at an entry boundary: its last entries (the stack's
    // and the vDSO's pages) are gone, their pages left in the pages file.
    let images = base("pagemap-cut");
    let path = images.join("pagemap-1.img");
    let mut img = read_raw(&path);
    img.entries.truncate(img.entries.len() - 2);
    write_raw(&path, &img);
    warned(
        &images,
        ("entry_ignored", "/pages-2.img"),
        &[
            "pages-2.img: ",
            "bytes after the",
            "used by no pagemap entry",
        ],
    );
    // Pages appended to a pages file that no entry claims.
    let images = base("pages-extra");
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(images.join("pages-2.img"))
        .unwrap();
    f.write_all(&[0x77; 8192]).unwrap();
    warned(
        &images,
        ("entry_ignored", "/pages-2.img"),
        &["pages-2.img: 8192 bytes after the"],
    );
    // A whole pages file no pagemap names: in a directory, a warning; in a
    // compressed archive, also dropped from the temporary directory.
    let c = case("pages-unnamed");
    let reference = c.reference();
    fs::copy(c.images.join("pages-2.img"), c.images.join("pages-9.img")).unwrap();
    warned(
        &c.images,
        ("entry_ignored", "/pages-9.img"),
        &["pages-9.img named by no pagemap; not used"],
    );
    let ar = c.dir.join("unnamed.tar.zst");
    fs::write(&ar, compress(&podman_tar(&c.images, |_| {}), "tar.zst")).unwrap();
    let m = c.run("convert", &ar, &[]);
    assert!(m.ok(), "{}", m.stderr());
    assert!(
        m.stderr()
            .contains("checkpoint/pages-9.img: no pagemap names it; its 311296 bytes are not used"),
        "{}",
        m.stderr()
    );
    assert_eq!(fs::read(c.out.join("core.1")).unwrap(), reference);
}

/// A synthetic checkpoint of two processes (pids 1 and 2) to damage.
fn two(name: &str) -> PathBuf {
    let dir = scratch(&format!("hostile-{name}"));
    let images = dir.join("images");
    synth::synthesize(
        &images,
        &Spec {
            seed: 5,
            processes: 2,
            threads: 2,
            vmas: 10,
            bytes: 128 << 10,
            holes: 4,
            ..Default::default()
        },
    )
    .unwrap();
    images
}

fn pstree(images: &Path, f: impl FnOnce(&mut Vec<proto::PstreeEntry>)) {
    let path = images.join("pstree.img");
    let mut img = read_raw(&path);
    let mut entries: Vec<proto::PstreeEntry> = img
        .entries
        .iter()
        .map(|e| prost::Message::decode(&e[..]).unwrap())
        .collect();
    f(&mut entries);
    img.entries = entries.iter().map(prost::Message::encode_to_vec).collect();
    write_raw(&path, &img);
}

fn an_inconsistent_process_tree_is_reported() {
    // pstree.img lists fewer processes than the images hold.
    let images = two("unlisted");
    pstree(&images, |e| e.truncate(1));
    warned(
        &images,
        ("entry_ignored", "/images"),
        &["core-102001.img, core-2.img, mm-2.img, pagemap-2.img belong to no process"],
    );
    // A process that is its own parent; two that are each other's.
    let images = two("own-parent");
    pstree(&images, |e| e[1].ppid = 2);
    warned(
        &images,
        ("inconsistent_tree", "/pstree.img"),
        &["pstree.img: pid 2 is its own parent"],
    );
    let images = two("loop");
    pstree(&images, |e| e[0].ppid = 2);
    warned(
        &images,
        ("inconsistent_tree", "/pstree.img"),
        &["pstree.img: pids 1 -> 2 -> 1 are each other's ancestors"],
    );
    // A pid listed twice, the same both times: converted once.
    let images = two("twice-same");
    pstree(&images, |e| e.push(e[1].clone()));
    warned(
        &images,
        ("entry_ignored", "/pstree.img"),
        &["pid 2 is listed twice (offsets"],
    );
    let out = images.parent().unwrap().join("out");
    assert_eq!(fs::read_dir(&out).unwrap().count(), 2);
    // Listed twice differently, or one thread in two processes: those
    // processes fail (which entry is right cannot be told), the others
    // convert; the exit status says something failed.
    for (name, edit, want) in [
        (
            "twice-differently",
            Box::new(|e: &mut Vec<proto::PstreeEntry>| {
                let mut again = e[1].clone();
                again.threads.pop();
                e.push(again);
            }) as Box<dyn FnOnce(&mut Vec<proto::PstreeEntry>)>,
            &["pid 2: ", "pid 2 is listed twice, differently"][..],
        ),
        (
            "shared-thread",
            Box::new(|e: &mut Vec<proto::PstreeEntry>| {
                let t = e[0].threads[1];
                e[1].threads.push(t);
            }),
            &[
                "pid 1: ",
                "pid 2: ",
                "thread 101001 is listed by pid 1 and by pid 2",
            ][..],
        ),
    ] {
        let images = two(name);
        pstree(&images, edit);
        let (o, _, _) = convert_measured(&images);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: {err}");
        for w in want {
            assert!(err.contains(w), "{name}: no {w:?}: {err}");
        }
        let out = images.parent().unwrap().join("out");
        if name == "twice-differently" {
            assert!(out.join("core.1").exists() && !out.join("core.2").exists());
        } else {
            assert!(!out.join("core.1").exists() && !out.join("core.2").exists());
        }
        assert!(all_warnings(&inspect_json(&images)).contains(want[want.len() - 1]));
    }
}

// ---------------------------------------------------------------------
// Names and paths a contained process chose.

fn paths_and_names_that_are_not_utf8_are_kept_exactly() {
    // A process that named itself and opened a file in Latin-1.
    let images = base("latin1");
    let exe: &[u8] = b"/srv/caf\xe9/app";
    edit_image::<proto::FileEntry>(&images.join("files.img"), 0, |_, e| {
        if let Some(reg) = &mut e.reg {
            reg.name = exe.to_vec();
        }
    });
    edit_image::<proto::Core>(&images.join("core-1.img"), 0, |_, c| {
        if let Some(tc) = &mut c.tc {
            tc.comm = b"caf\xe9".to_vec();
        }
    });
    let (o, _, _) = convert_measured(&images);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let core = images.parent().unwrap().join("out/core.1");
    let n = notes(&core);
    let file = &n.iter().find(|n| n.1 == 0x4649_4c45).expect("NT_FILE").2;
    assert!(memchr::memmem::find(file, &[exe, b"\0"].concat()).is_some());
    let psinfo = &n.iter().find(|n| n.1 == 3).unwrap().2;
    assert_eq!(&psinfo[40..45], b"caf\xe9\0");
    // inspect --json: the exact bytes, as base64 (schema-valid).
    let v = inspect_json(&images);
    let p = &v["processes"][0];
    assert_eq!(p["exe"]["base64"], "L3Nydi9jYWbpL2FwcA==");
    assert_eq!(p["comm"]["base64"], "Y2Fm6Q==");
    assert!(p["memory"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"]["base64"] == "L3Nydi9jYWbpL2FwcA=="));
    // With --root, the file is found under its own (non-UTF-8) name.
    let root = images.parent().unwrap().join("root");
    let dir = root.join(std::ffi::OsStr::from_bytes(b"srv/caf\xe9"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("app"), [0x42u8; 5 * 4096]).unwrap();
    let out = images.parent().unwrap().join("out-root");
    let o = criu2core([
        "convert".as_ref(),
        images.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!find_in_core(&out.join("core.1"), &["\u{42}".repeat(4096)]).is_empty());
}

// ---------------------------------------------------------------------
// Symbolic links and '..' in unpacked checkpoints.

/// An unpacked container checkpoint of `images` in `dir`, with a rootfs
/// diff holding `diff`.
fn unpacked(images: &Path, dir: &Path, diff: &[u8]) {
    copy_dir(images, &dir.join("checkpoint"));
    fs::write(dir.join("config.dump"), CONFIG_DUMP).unwrap();
    fs::write(dir.join("spec.dump"), SPEC_DUMP).unwrap();
    fs::write(dir.join("rootfs-diff.tar"), diff).unwrap();
}

fn symlinks_out_of_a_checkpoint_directory_are_refused() {
    let images = base("dir-links");
    let top = images.parent().unwrap();
    // What the links point at: another checkpoint, a diff, a container's
    // description, all outside.
    let outside = top.join("outside");
    unpacked(&images, &outside, &{
        let mut b = tar::Builder::new(Vec::new());
        tar_file(
            &mut b,
            synth::EXE.trim_start_matches('/'),
            &[0x66; 5 * 4096],
        );
        b.into_inner().unwrap()
    });
    for name in ["checkpoint", "rootfs-diff.tar", "config.dump", "spec.dump"] {
        let dir = top.join(format!("ckpt-{name}"));
        let _ = fs::remove_dir_all(&dir);
        unpacked(
            &images,
            &dir,
            &tar::Builder::new(Vec::new()).into_inner().unwrap(),
        );
        let target = outside.join(name);
        if target.is_dir() {
            fs::remove_dir_all(dir.join(name)).unwrap();
        } else {
            fs::remove_file(dir.join(name)).unwrap();
        }
        std::os::unix::fs::symlink(&target, dir.join(name)).unwrap();
        let out = top.join(format!("out-{name}"));
        let o = criu2core([
            "convert".as_ref(),
            dir.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{name}: accepted");
        assert!(
            err.contains(name) && err.contains("symbolic link out of the checkpoint directory"),
            "{name}: {err}"
        );
        assert!(!out.join("core.1").exists());
        // A link that stays inside is fine.
        fs::remove_file(dir.join(name)).unwrap();
        let inner = dir.join(format!("{name}.real"));
        fs::rename(
            if target.is_dir() {
                outside.join(name)
            } else {
                target.clone()
            },
            &inner,
        )
        .unwrap();
        std::os::unix::fs::symlink(format!("{name}.real"), dir.join(name)).unwrap();
        let o = criu2core([
            "convert".as_ref(),
            dir.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        fs::rename(&inner, outside.join(name)).unwrap();
    }
}

/// A config.dump past the bound on container descriptions is left out,
/// with a warning of kind `limit` about it (refused in a directory before
/// it is read).
fn a_container_description_past_its_bound_is_a_limit_warning() {
    let images = base("big-config");
    let dir = images.parent().unwrap().join("unpacked");
    unpacked(&images, &dir, &[0; 1024]);
    fs::write(dir.join("config.dump"), vec![b' '; 2 << 20]).unwrap();
    let v = inspect_json(&dir);
    let (kind, file) = kind_and_file(&v, "more than any container description takes");
    assert_eq!(
        (kind.as_str(), file.as_deref()),
        ("limit", Some("config.dump"))
    );
}

/// A sparse file where a rootfs diff holds the executable: not expanded,
/// and said so as a warning of kind `unsupported` about that file.
fn a_sparse_file_in_a_rootfs_diff_is_an_unsupported_warning() {
    let images = base("diff-sparse");
    let top = images.parent().unwrap();
    let exe = synth::EXE.trim_start_matches('/');
    let diff = [sparse_member(exe.as_bytes(), 4096, 5 * 4096), vec![0; 1024]].concat();
    let input = top.join("unpacked");
    unpacked(&images, &input, &diff);
    let o = criu2core([
        "convert".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        top.join("out").as_os_str(),
        "--json".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("is a sparse file, which criu2core does not expand"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("convert.schema.json", &v);
    let sparse: Vec<_> = v["inputs"][0]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["message"].as_str().unwrap().contains("is a sparse file"))
        .collect();
    assert_eq!(sparse.len(), 1, "{v}");
    assert_eq!(
        (&sparse[0]["kind"], &sparse[0]["file"]),
        (&"unsupported".into(), &exe.into())
    );
}

fn dotdot_members_of_a_rootfs_diff_are_skipped_with_a_warning() {
    let images = base("diff-dotdot");
    let top = images.parent().unwrap();
    // The executable's pages under a '..' path (never used), and a
    // harmless file.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5 * 4096);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let exe = synth::EXE.trim_start_matches('/');
    {
        let name = format!("etc/../{exe}");
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_cksum();
    b.append(&h, &[0x66u8; 5 * 4096][..]).unwrap();
    tar_file(&mut b, "etc/hostname", b"victim\n");
    let diff = b.into_inner().unwrap();
    for kind in ["dir", "tar", "tar.zst"] {
        let input = match kind {
            "dir" => {
                let d = top.join("unpacked");
                let _ = fs::remove_dir_all(&d);
                unpacked(&images, &d, &diff);
                d
            }
            _ => {
                let ar = top.join(format!("ckpt.{kind}"));
                let tar = podman_tar(&images, |b| tar_file(b, "rootfs-diff.tar", &diff));
                fs::write(&ar, compress(&tar, kind)).unwrap();
                ar
            }
        };
        let out = top.join(format!("out-{kind}"));
        let o = criu2core([
            "convert".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "-f".as_ref(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{kind}: {err}");
        assert!(
            err.contains("rootfs-diff.tar: 1 member with '..' in its path skipped: #0"),
            "{kind}: {err}"
        );
        assert!(
            find_in_core(&out.join("core.1"), &["\u{66}".repeat(4096)]).is_empty(),
            "{kind}"
        );
        let v = inspect_json(&input);
        assert!(
            all_warnings(&v).contains("with '..' in its path skipped"),
            "{kind}: {v}"
        );
        let (k, f) = kind_and_file(&v, "with '..' in its path skipped");
        assert_eq!(k, "unsafe_path", "{kind}");
        assert!(f.is_some_and(|f| f.ends_with("rootfs-diff.tar")), "{kind}");
    }
}

// ---------------------------------------------------------------------
// The tar reader against GNU tar.

fn gnu_tar_archives_convert_like_their_images() {
    let images = base("gnu-tar");
    let top = images.parent().unwrap();
    let src = top.join("src");
    copy_dir(&images, &src.join("checkpoint"));
    // A sparse file with a long name, where GNU tar writes a sparse member
    // (it is never used, so it is read past, not expanded).
    let deep = src
        .join("checkpoint")
        .join("d".repeat(120))
        .join("e".repeat(120));
    fs::create_dir_all(&deep).unwrap();
    let f = fs::File::create(deep.join("sparse")).unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    for format in ["gnu", "posix"] {
        let ar = top.join(format!("{format}.tar"));
        let st = Command::new("tar")
            .args([
                "--sparse",
                &format!("--format={format}"),
                "--sort=name",
                "-C",
            ])
            .arg(&src)
            .arg("-cf")
            .arg(&ar)
            .arg("checkpoint")
            .status()
            .unwrap();
        assert!(st.success());
        let o = criu2core([
            "convert".as_ref(),
            ar.as_os_str(),
            "-o".as_ref(),
            top.join(format!("out-{format}")).as_os_str(),
        ]);
        assert!(
            o.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            fs::read(top.join(format!("out-{format}/core.1"))).unwrap(),
            {
                let out = top.join("reference");
                criu2core([
                    "convert".as_ref(),
                    images.as_os_str(),
                    "-o".as_ref(),
                    out.as_os_str(),
                    "-f".as_ref(),
                ]);
                fs::read(out.join("core.1")).unwrap()
            },
            "{format}"
        );
    }
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        a_pagemap_that_claims_2_to_the_40_pages,
        an_mm_entry_that_claims_gigabytes,
        a_vma_of_2_to_the_63_bytes,
        overlapping_or_unsorted_vmas,
        pagemap_entries_outside_every_vma_are_ignored_with_a_warning,
        pages_missing_from_the_pages_file,
        a_million_threads,
        a_full_disk_leaves_no_core_behind,
        sparse_members_are_never_expanded,
        unused_members_are_not_unpacked,
        pages_files_are_unpacked_only_as_far_as_their_pagemap_claims,
        max_spill_caps_what_an_archive_unpacks,
        inspect_unpacks_only_the_pages_of_argv_and_the_environment,
        long_member_names_take_no_memory,
        too_many_members_are_refused,
        a_rootfs_diff_of_many_long_names_takes_little_memory,
        a_files_image_of_millions_of_entries_is_refused,
        a_process_of_two_million_vmas_is_refused,
        thread_notes_are_written_thread_by_thread,
        pages_no_pagemap_entry_claims_are_a_warning,
        an_inconsistent_process_tree_is_reported,
        paths_and_names_that_are_not_utf8_are_kept_exactly,
        symlinks_out_of_a_checkpoint_directory_are_refused,
        dotdot_members_of_a_rootfs_diff_are_skipped_with_a_warning,
        a_sparse_file_in_a_rootfs_diff_is_an_unsupported_warning,
        a_container_description_past_its_bound_is_a_limit_warning,
        gnu_tar_archives_convert_like_their_images needs [Need::Tool("tar")],
    ]
}
