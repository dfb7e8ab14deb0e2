//! Hostile checkpoints: images that claim absurd sizes or contradict each
//! other get a clear error (file, offset, what is wrong) quickly and in
//! little memory, or convert what is sound with a warning; and a failed
//! write leaves no core behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;
use criu2core::criu::pagemap::PE_PRESENT;
use criu2core::proto;
use criu2core::synth::{self, Spec};
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
        },
    )
    .unwrap();
    images
}

/// Converts `images`, measuring wall time and the peak RSS of the
/// conversion itself (through Python's getrusage of its child).
fn convert_measured(images: &Path) -> (Output, Duration, u64) {
    let out = images.parent().unwrap().join("out");
    let stats = images.parent().unwrap().join("stats");
    let script = r#"
import resource, subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[2:])
wall = time.monotonic() - t
open(sys.argv[1], "w").write(f"{wall} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
sys.exit(r.returncode)
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&stats)
        .arg(env!("CARGO_BIN_EXE_criu2core"))
        .arg("convert")
        .arg(images)
        .arg("-o")
        .arg(&out)
        .arg("-f")
        .output()
        .expect("run python3");
    let text = fs::read_to_string(&stats).unwrap();
    let (wall, rss) = text.split_once(' ').unwrap();
    (
        o,
        Duration::from_secs_f64(wall.parse().unwrap()),
        rss.parse().unwrap(),
    )
}

/// Converts and insists on a quick, lean failure whose message says `what`.
fn refused(images: &Path, what: &[&str]) -> String {
    let (o, wall, rss_kb) = convert_measured(images);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "accepted; stderr: {err}");
    for w in what {
        assert!(err.contains(w), "error does not say {w:?}: {err}");
    }
    assert!(wall < Duration::from_secs(2), "took {wall:?}");
    let input: u64 = fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // What the program takes to start, plus at most twice the input's size
    // (the images read, and what they decode to).
    assert!(
        rss_kb * 1024 < (16 << 20) + 2 * input,
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

fn an_mm_image_that_claims_a_billion_vmas() {
    let images = base("billion-vmas");
    let path = images.join("mm-1.img");
    let mut bytes = fs::read(&path).unwrap();
    // A billion VMAs take at least 20 GB: the entry says so, the file does not.
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
    let images = base("million-threads");
    edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
        e.threads = (1..=1_000_000).collect();
    });
    refused(&images, &["core-2.img is missing"]);
    let images = base("twice");
    edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
        e.threads.push(e.threads[1])
    });
    refused(&images, &["lists thread 101001 of pid 1 twice"]);
    let images = base("too-many-threads");
    edit_image::<proto::PstreeEntry>(&images.join("pstree.img"), 0, |_, e| {
        e.threads = (1..=(1 << 22) + 1).collect();
    });
    refused(&images, &["more than Linux allows"]);
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

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        a_pagemap_that_claims_2_to_the_40_pages,
        an_mm_image_that_claims_a_billion_vmas,
        a_vma_of_2_to_the_63_bytes,
        overlapping_or_unsorted_vmas,
        pagemap_entries_outside_every_vma_are_ignored_with_a_warning,
        pages_missing_from_the_pages_file,
        a_million_threads,
        a_full_disk_leaves_no_core_behind,
    ]
}
