//! The sysroot writer's path handling: files a checkpoint names are
//! written from a layer built from the input into a sysroot that may hold
//! a link it did not make; nothing is written outside it, no link is
//! followed there, the links it makes are relative and stay inside, and
//! no temporary file is left. `split`, `relative` and `clean_key` hold
//! their contracts for any path. Input: records of [kind][name length]
//! [name][data length u16 LE][data] (`common::records`): kind 0 a file,
//! 1 a directory, 2 a link to data, 3 a hard link to data, 4 and up a
//! path the process mapped; the first record's kind bit 3 plants a link
//! to the outside in the sysroot.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::{Tar, DIR, FILE, HARDLINK, SYMLINK};
use criu2core::oci::{BlobData, LayerView, Options};
use criu2core::testkit::oci::Layer;
use criu2core::model::Blob;
use criu2core::testkit::paths::{clean_key, relative, split, FileView, Sysroot};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch("sysroot"))
}

/// Where `target` leads from directory `from`, lexically; `None` if it
/// climbs above the root.
fn lexical(from: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    let mut at: Vec<&[u8]> = from
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                at.pop()?;
            }
            c => at.push(c),
        }
    }
    Some(at.join(&b'/'))
}

/// `split`, `relative` and `clean_key` on any path.
fn contracts(a: &[u8], b: &[u8]) {
    if let Some(k) = clean_key(a) {
        assert!(!k.starts_with(b"/") && !k.ends_with(b"/") && !k.windows(2).any(|w| w == b"//"));
        assert!(
            !k.split(|&c| c == b'/').any(|c| c == b"." || c == b".."),
            "{k:?}"
        );
        let (d, base) = split(&k);
        assert!(!base.contains(&b'/'));
        let back = if d.is_empty() {
            base.to_vec()
        } else {
            [d, b"/", base].concat()
        };
        assert_eq!(back, k);
        if let Some(t) = clean_key(b) {
            let r = relative(&k, &t);
            assert!(!r.starts_with(b"/") && !r.is_empty(), "{r:?}");
            assert_eq!(
                lexical(&k, &r).as_deref(),
                Some(&t[..]),
                "relative({k:?}, {t:?}) = {r:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    common::empty(dir);
    let records = common::records(data);
    let outside = dir.join("outside");
    let sysroot = dir.join("sysroot");
    fs::create_dir(&outside).unwrap();
    fs::create_dir(&sysroot).unwrap();
    let planted = records.first().is_some_and(|r| r.0 & 8 != 0);
    if planted {
        std::os::unix::fs::symlink(&outside, sysroot.join("usr")).unwrap();
    }
    let mut tar = Tar::default();
    let mut paths: Vec<&[u8]> = Vec::new();
    for (i, &(kind, name, body)) in records.iter().enumerate() {
        contracts(name, body);
        if let Some(&(_, next, _)) = records.get(i + 1) {
            contracts(name, next);
        }
        match kind & 7 {
            0 => tar.add(FILE, name, b"", body),
            1 => tar.add(DIR, name, b"", b""),
            2 => tar.add(SYMLINK, name, body, b""),
            3 => tar.add(HARDLINK, name, body, b""),
            _ => paths.push(name),
        }
    }
    let layer = dir.join("layer.tar");
    let bytes = tar.finish();
    fs::write(&layer, &bytes).unwrap();
    let blob = Blob {
        label: "layer.tar".into(),
        path: layer.clone(),
        offset: 0,
        len: bytes.len() as u64,
        remote: None,
    };
    let Ok(view) = LayerView::new(
        vec![Layer::new("layer.tar", BlobData::File(blob))],
        &Options::default(),
    ) else {
        return;
    };
    let view = FileView::new(Some(view), None);
    let s = Sysroot::create(&sysroot).unwrap();
    for p in paths.iter().take(16) {
        let _ = s.add_file(&view, p);
    }
    // Nothing outside; the planted link untouched; the writer's links
    // relative and inside; no temporary file left.
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the sysroot"
    );
    if planted {
        assert_eq!(fs::read_link(sysroot.join("usr")).unwrap(), outside);
    }
    for rel in common::tree(&sysroot) {
        let name = rel.file_name().unwrap().as_bytes();
        assert!(!name.ends_with(b".partial"), "left {rel:?}");
        let full = sysroot.join(&rel);
        if let Ok(t) = fs::read_link(&full) {
            if planted && rel.as_os_str() == "usr" {
                continue;
            }
            let t = t.as_os_str().as_bytes();
            let from = rel.parent().unwrap().as_os_str().as_bytes();
            assert!(
                lexical(from, t).is_some() && !t.starts_with(b"/"),
                "{rel:?} -> {t:?}"
            );
        }
    }
});
