//! The library as an embedder sees it: `open`, `Checkpoint::load`,
//! `CoreWriter` into a file and into any writer, `Process::search`, and
//! the `ErrorKind` of representative failures, decided where they arise.

use std::fs;
use std::io::Cursor;
use std::ops::ControlFlow;

use crate::common::*;
use criu2core::search::{Filter, Pattern, PatternOptions, SearchOptions};
use criu2core::testkit::proto;
use criu2core::{
    open, Cancel, CoreWriter, ErrorKind, LoadOptions, Loaded, OpenOptions, PageUse, Process,
};
use libtest_mimic::Trial;

/// The archive the crate's documentation opens.
fn example() -> std::path::PathBuf {
    repo().join("gdb-fixtures/example.tar.zst")
}

fn load(ckpt: &criu2core::Checkpoint, pid: u32, opts: &LoadOptions) -> Box<Process> {
    match ckpt.load(pid, opts).unwrap() {
        Loaded::Process(p) => p,
        other => panic!("pid {pid}: {other:?}"),
    }
}

fn a_core_written_to_a_writer_is_the_core_written_to_a_file() {
    let out = scratch("library-writer");
    let ckpt = open(example(), &OpenOptions::default()).unwrap();
    assert_eq!(ckpt.kind().name(), "tar.zst");
    assert_eq!(
        ckpt.container().and_then(|c| c.name.as_deref()),
        Some("victim")
    );
    let p = load(&ckpt, 12155, &LoadOptions::default());
    let w = CoreWriter::new(&p).unwrap();
    let stats = w.write_into(&out, false).unwrap();
    let mut buf = Cursor::new(Vec::new());
    let written = w.write_to(&mut buf).unwrap();
    let file = fs::read(&stats.path).unwrap();
    assert_eq!((written.size, written.copied), (stats.size, stats.copied));
    assert!(buf.into_inner() == file, "the two cores differ");
    // The same core the command line writes from the same archive.
    let cli = scratch("library-writer-cli");
    convert_ok(&[&"convert", &example(), &"-o", &cli]);
    assert!(fs::read(cli.join("core.12155")).unwrap() == file);
}

fn the_rootfs_diff_and_a_root_supply_file_pages() {
    let ckpt = open(example(), &OpenOptions::default()).unwrap();
    let with = load(&ckpt, 12155, &LoadOptions::default());
    let without = load(&ckpt, 12155, &LoadOptions::default().rootfs_diff(false));
    // The diff holds the program: its 5 mappings' pages are there.
    let exe = |p: &Process| -> u64 {
        p.mappings
            .iter()
            .filter(|m| {
                m.file
                    .as_ref()
                    .is_some_and(|f| f.path == b"/srv/victim/victim")
            })
            .map(|m| m.stored_bytes())
            .sum()
    };
    assert!(
        exe(&with) > exe(&without),
        "{} {}",
        exe(&with),
        exe(&without)
    );
    let fx = fixture("mt-pie");
    let rooted = load(
        &ckpt,
        12155,
        &LoadOptions::default().rootfs_diff(false).root(fx.sysroot()),
    );
    assert!(rooted.stored_bytes() > with.stored_bytes());
}

fn memory_is_walked_read_and_searched_where_it_lies() {
    let fx = fixture("mt-pie");
    let ckpt = open(fx.images(), &OpenOptions::default()).unwrap();
    let p = load(&ckpt, 12155, &LoadOptions::default());
    let argv = p.argv().unwrap();
    assert_eq!(argv[0], b"./victim");
    assert!(argv.last().unwrap().ends_with(b"ARGV_TAIL"));
    assert!(p
        .environment()
        .unwrap()
        .iter()
        .any(|v| v == b"SECRET_TOKEN=ENV_MARKER_5150"));
    // The runs of every mapping cover it exactly, front to back.
    let mut covered = vec![0u64; p.mappings.len()];
    let mut last = 0;
    p.walk(0, &mut |m, at, run| {
        assert!(at >= last && at >= m.start && at + run.len <= m.end);
        last = at + run.len;
        let i = p.mappings.iter().position(|x| x.start == m.start).unwrap();
        covered[i] += run.len;
        ControlFlow::Continue(())
    })
    .unwrap();
    for (m, c) in p.mappings.iter().zip(&covered) {
        assert_eq!(*c, m.len(), "{:#x}-{:#x}", m.start, m.end);
    }
    // What the search finds, reading memory gives back.
    let pattern = Pattern::new("HEAP_MARKER_77", &PatternOptions::default()).unwrap();
    let mut hits = Vec::new();
    let found = p
        .search(
            &pattern,
            &Filter::default(),
            &SearchOptions::default(),
            &mut |_, hit| {
                hits.push(hit.addr);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert_eq!(found.matches, hits.len() as u64);
    assert!(!hits.is_empty());
    for addr in hits {
        assert_eq!(p.read_memory(addr, 14).unwrap(), b"HEAP_MARKER_77");
    }
}

fn kind(r: criu2core::Result<impl std::fmt::Debug>) -> ErrorKind {
    r.expect_err("succeeded").kind().clone()
}

fn errors_say_what_kind_of_failure_they_are() {
    let dir = scratch("library-errors");
    // Missing, not a checkpoint, an empty directory.
    assert_eq!(
        kind(open(dir.join("nowhere"), &OpenOptions::default())),
        ErrorKind::Io(std::io::ErrorKind::NotFound)
    );
    let junk = dir.join("junk.bin");
    fs::write(&junk, b"no tar, no images").unwrap();
    assert_eq!(
        kind(open(&junk, &OpenOptions::default())),
        ErrorKind::NotACheckpoint
    );
    fs::create_dir(dir.join("empty")).unwrap();
    assert_eq!(
        kind(open(dir.join("empty"), &OpenOptions::default())),
        ErrorKind::NotACheckpoint
    );
    // A broken archive, and one that would unpack past its bound.
    let bytes = fs::read(example()).unwrap();
    let cut = dir.join("cut.tar.zst");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        kind(open(&cut, &OpenOptions::default())),
        ErrorKind::BadArchive
    );
    let tight = OpenOptions::default().max_spill(4096).pages(PageUse::All);
    assert_eq!(kind(open(example(), &tight)), ErrorKind::Limit);
    // A process that is not there, a damaged image, another architecture.
    let fx = fixture("mt-pie");
    let images = dir.join("images");
    copy_dir(&fx.images(), &images);
    let ckpt = open(&images, &OpenOptions::default()).unwrap();
    assert_eq!(
        kind(ckpt.load(4242, &LoadOptions::default())),
        ErrorKind::NoSuchProcess
    );
    let mm = images.join("mm-12155.img");
    let full = fs::read(&mm).unwrap();
    fs::write(&mm, &full[..full.len() - 100]).unwrap();
    match kind(ckpt.load(12155, &LoadOptions::default())) {
        ErrorKind::CorruptImage { file, offset } => {
            assert!(file.ends_with("/mm-12155.img"), "{file}");
            assert_eq!(offset, Some(8));
        }
        other => panic!("{other:?}"),
    }
    fs::write(&mm, &full).unwrap();
    edit_image::<proto::Core>(&images.join("core-12155.img"), 0, |_, c| {
        c.mtype = proto::core::Arch::Unknown as i32;
    });
    assert_eq!(
        kind(ckpt.load(12155, &LoadOptions::default())),
        ErrorKind::UnsupportedArch
    );
    // A core already there, and a cancelled write (nothing is left).
    let ckpt = open(fx.images(), &OpenOptions::default()).unwrap();
    let p = load(&ckpt, 12155, &LoadOptions::default());
    let out = dir.join("cores");
    CoreWriter::new(&p)
        .unwrap()
        .write_into(&out, false)
        .unwrap();
    assert_eq!(
        kind(CoreWriter::new(&p).unwrap().write_into(&out, false)),
        ErrorKind::Exists
    );
    let cancel = Cancel::new();
    cancel.cancel(15);
    let fresh = dir.join("cancelled");
    let w = CoreWriter::new(&p).unwrap().with_cancel(&cancel);
    assert_eq!(kind(w.write_into(&fresh, false)), ErrorKind::Cancelled(15));
    assert_eq!(fs::read_dir(&fresh).unwrap().count(), 0);
    // The message keeps the file and offset.
    let e = open(&junk, &OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("junk.bin: not a checkpoint"), "{e}");
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        a_core_written_to_a_writer_is_the_core_written_to_a_file,
        the_rootfs_diff_and_a_root_supply_file_pages,
        memory_is_walked_read_and_searched_where_it_lies,
        errors_say_what_kind_of_failure_they_are,
    ]
}
