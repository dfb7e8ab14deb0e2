//! Compressed archives converted in one pass: the member orders the
//! engines write (pages written straight into the cores), orders that put
//! pages before what describes them (unpacked, within --max-spill), and
//! layouts that move once the whole archive is read (moved pages), each
//! giving the cores the images directory gives.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use criu2core::testkit::synth::{self, Spec};
use libtest_mimic::Trial;

/// What the one-pass writer logs for each core it wrote pages into as the
/// archive streamed by, and for each it had to move them in.
const STRAIGHT: &str = "pages went straight into the core";
const MOVED: &str = "the layout moved once the archive was read whole";

/// A member of an archive being built: name and bytes.
type Members = Vec<(String, Vec<u8>)>;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The images of `dir` as `checkpoint/NAME` members, in name order.
fn checkpoint_members(dir: &Path) -> Members {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let data = fs::read(dir.join(&n)).unwrap();
            (format!("checkpoint/{n}"), data)
        })
        .collect()
}

/// A rootfs diff holding a file no process maps.
fn unrelated_diff() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    tar_file(&mut b, "etc/motd", b"changed after the image was built\n");
    b.into_inner().unwrap()
}

/// Podman's `exportCheckpoint` order (libpod): its include list
/// (config.dump, spec.dump, network.status, stats-dump, checkpoint/, then
/// rootfs-diff.tar and deleted.files), each walked in name order.
fn podman_order(images: &Path) -> Members {
    let mut m: Members = vec![
        ("config.dump".into(), CONFIG_DUMP.as_bytes().to_vec()),
        ("spec.dump".into(), SPEC_DUMP.as_bytes().to_vec()),
        ("network.status".into(), b"[]".to_vec()),
        ("stats-dump".into(), Vec::new()),
    ];
    m.extend(checkpoint_members(images));
    m.push(("rootfs-diff.tar".into(), unrelated_diff()));
    m.push(("deleted.files".into(), b"[\"/tmp/gone\"]".to_vec()));
    m
}

/// containerd's CRI checkpoint archive: `archive.Diff` of a directory,
/// every member in name order ("checkpoint/" first, "pagemap" < "pages" <
/// "pstree" within it).
fn containerd_order(images: &Path) -> Members {
    let mut m = checkpoint_members(images);
    m.push(("config.dump".into(), CONFIG_DUMP.as_bytes().to_vec()));
    m.push(("rootfs-diff.tar".into(), unrelated_diff()));
    m.push(("spec.dump".into(), SPEC_DUMP.as_bytes().to_vec()));
    m.push(("status".into(), b"{}".to_vec()));
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m
}

/// The members of `m` for which `first` holds moved to the front, in
/// their order.
fn to_front(mut m: Members, first: impl Fn(&str) -> bool) -> Members {
    m.sort_by_key(|(name, _)| !first(name.rsplit('/').next().unwrap()));
    m
}

/// `members` as a tar compressed as `kind` ("tar.gz", "tar.zst").
fn archive(members: &Members, kind: &str, path: &Path) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in members {
        tar_file(&mut b, name, data);
    }
    fs::write(path, compress(&b.into_inner().unwrap(), kind)).unwrap();
    path.to_path_buf()
}

/// Converts `input` into `out` with the one-pass writer's log on stderr.
fn convert_logged(input: &Path, out: &Path, tmp: &Path, extra: &[&str]) -> Output {
    fs::create_dir_all(tmp).unwrap();
    Command::new(env!("CARGO_BIN_EXE_criu2core"))
        .args(["convert", s(input), "-o", s(out), "--tmpdir", s(tmp)])
        .args(extra)
        .env("RUST_LOG", "criu2core=debug")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts the cores in `out` are those in `reference`, byte for byte,
/// for each of `pids`.
fn same_cores(reference: &Path, out: &Path, pids: &[u32], what: &str) {
    for pid in pids {
        let a = fs::read(reference.join(format!("core.{pid}"))).unwrap();
        let b = fs::read(out.join(format!("core.{pid}")))
            .unwrap_or_else(|e| panic!("{what}: core.{pid}: {e}"));
        assert!(a == b, "{what}: core.{pid} differs from the directory's");
    }
}

/// Asserts that `tmp` (the --tmpdir) is empty again.
fn nothing_left(tmp: &Path, what: &str) {
    assert_eq!(
        fs::read_dir(tmp).unwrap().count(),
        0,
        "{what}: left files in --tmpdir"
    );
}

/// How many of the lines of `log` hold `needle`.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

fn engine_orders_write_pages_straight_into_the_cores() {
    for name in FIXTURES {
        let fx = fixture(name);
        let base = scratch(&format!("onepass-{name}"));
        let reference = convert_fixture(&fx, "onepass-ref", &[]);
        let live: Vec<u32> = fx
            .processes
            .iter()
            .map(|p| p.pid)
            .filter(|p| !fx.zombies.contains(p))
            .collect();
        let pids: Vec<u32> = fx.processes.iter().map(|p| p.pid).collect();
        for (order, members) in [
            ("podman", podman_order(&fx.images())),
            ("containerd", containerd_order(&fx.images())),
        ] {
            for kind in ["tar.gz", "tar.zst"] {
                let what = format!("{name}, {order}'s order, {kind}");
                let ar = archive(&members, kind, &base.join(format!("{order}.{kind}")));
                let out = base.join(format!("out-{order}-{kind}"));
                let tmp = base.join(format!("tmp-{order}-{kind}"));
                let o = convert_logged(&ar, &out, &tmp, &[]);
                let log = text(&o.stderr);
                assert!(o.status.success(), "{what}: {log}");
                same_cores(&reference, &out, &pids, &what);
                // Every live process's pages went straight into its core,
                // where they stayed.
                assert_eq!(count(&log, STRAIGHT), live.len(), "{what}: {log}");
                assert_eq!(count(&log, MOVED), 0, "{what}: {log}");
                nothing_left(&tmp, &what);
            }
        }
    }
}

fn pages_before_their_metadata_are_unpacked_within_max_spill() {
    let fx = fixture("fork-shared");
    let base = scratch("onepass-early-pages");
    let reference = convert_fixture(&fx, "onepass-ref", &[]);
    let pids: Vec<u32> = fx.processes.iter().map(|p| p.pid).collect();
    let images = fx.images();
    let pages: u64 = fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_str().unwrap().starts_with("pages-"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let sorted = containerd_order(&images);
    for (order, members) in [
        // Every pages file first: nothing describes them yet.
        (
            "pages-first",
            to_front(sorted.clone(), |n| n.starts_with("pages-")),
        ),
        // The pagemaps last: the pages' sizes are not known yet.
        ("pagemaps-last", {
            let mut m = sorted.clone();
            m.sort_by_key(|(n, _)| n.contains("/pagemap-"));
            m
        }),
    ] {
        for kind in ["tar.gz", "tar.zst"] {
            let what = format!("{order}, {kind}");
            let ar = archive(&members, kind, &base.join(format!("{order}.{kind}")));
            let out = base.join(format!("out-{order}-{kind}"));
            let tmp = base.join(format!("tmp-{order}-{kind}"));
            let room = format!("{}K", pages.div_ceil(1024) + 64);
            let o = convert_logged(&ar, &out, &tmp, &["--max-spill", &room]);
            let log = text(&o.stderr);
            assert!(o.status.success(), "{what}: {log}");
            same_cores(&reference, &out, &pids, &what);
            assert_eq!(count(&log, STRAIGHT), 0, "{what}: {log}");
            nothing_left(&tmp, &what);
            // Less room than the pages need: refused, nothing left behind.
            let small = base.join(format!("small-{order}-{kind}"));
            let o = convert_logged(&ar, &small, &tmp, &["--max-spill", "64K"]);
            let log = text(&o.stderr);
            assert!(!o.status.success(), "{what}: {log}");
            assert!(log.contains("--max-spill"), "{what}: {log}");
            for pid in &pids {
                assert!(!small.join(format!("core.{pid}")).exists(), "{what}");
            }
            nothing_left(&tmp, &what);
        }
    }
    // The same archive in the engines' order needs no room for pages: only
    // the shared memory (which several processes map) is unpacked.
    let ar = archive(&sorted, "tar.zst", &base.join("sorted.tar.zst"));
    let shmem: u64 = fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_str().unwrap().starts_with("pages-"))
        .map(|e| e.metadata().unwrap().len())
        .min()
        .unwrap();
    let out = base.join("out-sorted");
    let tmp = base.join("tmp-sorted");
    let room = format!("{}K", shmem.div_ceil(1024) + 64);
    let o = convert_logged(&ar, &out, &tmp, &["--max-spill", &room]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    same_cores(&reference, &out, &pids, "sorted, little room");
}

fn a_wrong_guess_of_the_threads_moves_the_pages() {
    // Several processes of several threads each, whose pstree.img comes
    // after every pages file (name order): the threads are given to their
    // processes from the core images, then checked against pstree.img.
    // The synthetic processes were all forked with the same mappings and
    // their threads' tids lie far above every pid, so each thread is
    // guessed to be the last process's (the real fork-shared fixture's are
    // told apart: engine_orders_write_pages_straight_into_the_cores): each
    // core's notes grow or shrink once pstree.img comes, and the pages
    // written as they streamed by are moved to their places.
    let base = scratch("onepass-synth");
    let images = base.join("images");
    let summary = synth::synthesize(
        &images,
        &Spec {
            seed: 5,
            processes: 3,
            threads: 4,
            vmas: 40,
            bytes: 6 << 20,
            holes: 4,
            compressible: true,
        },
    )
    .unwrap();
    let reference = base.join("ref");
    convert_ok(&[&"convert", &images, &"-o", &reference]);
    for kind in ["tar.gz", "tar.zst"] {
        let ar = archive(
            &containerd_order(&images),
            kind,
            &base.join(format!("synth.{kind}")),
        );
        let out = base.join(format!("out-{kind}"));
        let tmp = base.join(format!("tmp-{kind}"));
        let o = convert_logged(&ar, &out, &tmp, &[]);
        let log = text(&o.stderr);
        assert!(o.status.success(), "{kind}: {log}");
        same_cores(&reference, &out, &summary.pids, kind);
        assert_eq!(count(&log, STRAIGHT), summary.pids.len(), "{kind}: {log}");
        assert_eq!(count(&log, MOVED), summary.pids.len(), "{kind}: {log}");
        nothing_left(&tmp, kind);
    }
}

fn a_layout_that_moves_once_the_diff_comes_moves_the_pages() {
    // The bundled example's rootfs-diff.tar (after checkpoint/, as Podman
    // writes it) holds the program the process mapped: its file pages go
    // into the core, which moves the anonymous pages written before.
    let base = scratch("onepass-moved");
    let example = repo().join("gdb-fixtures/example.tar.zst");
    let dir = base.join("unpacked");
    fs::create_dir_all(&dir).unwrap();
    let st = Command::new("tar")
        .args(["--zstd", "-xf", s(&example), "-C", s(&dir)])
        .status()
        .unwrap();
    assert!(st.success());
    let reference = base.join("ref");
    convert_ok(&[&"convert", &dir, &"-o", &reference]);
    let out = base.join("out");
    let tmp = base.join("tmp");
    let o = convert_logged(&example, &out, &tmp, &[]);
    let log = text(&o.stderr);
    assert!(o.status.success(), "{log}");
    same_cores(&reference, &out, &[12155], "example.tar.zst");
    assert_eq!(count(&log, STRAIGHT), 1, "{log}");
    assert_eq!(count(&log, MOVED), 1, "{log}");
    nothing_left(&tmp, "example.tar.zst");
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        engine_orders_write_pages_straight_into_the_cores,
        pages_before_their_metadata_are_unpacked_within_max_spill,
        a_wrong_guess_of_the_threads_moves_the_pages,
        a_layout_that_moves_once_the_diff_comes_moves_the_pages,
    ]
}
