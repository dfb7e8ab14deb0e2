//! The OCI walk: an image archive (OCI layout tar or docker-archive) built
//! from the input is opened (index.json through indexes and manifests to
//! configs, or manifest.json), an image chosen and its layers stacked into
//! a view; each step returns or refuses, within bounds, and nothing is
//! written outside the spill directory. Input: records of [kind][name
//! length][name][data length u16 LE][data] (`common::records`), written
//! last to first so that a record's data can name a later one: `@N` there
//! becomes the sha256 digest of record i+1+N, `$N` its size, and a record
//! named `@` is stored as blobs/sha256/<its own digest>.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{Tar, DIR, FILE, HARDLINK, SYMLINK};
use criu2core::oci::{ImageArchive, LayerView, Options, Selector};
use criu2core::testkit::oci::{Algorithm, Digest};
use libfuzzer_sys::fuzz_target;

/// Most bytes copied out per archive or view.
const SPILL_CAP: u64 = 1 << 20;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch("oci"))
}

/// `data` with `@N` and `$N` replaced by the digest and size of `done[N]`.
fn substitute(data: &[u8], done: &[(Vec<u8>, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let (c, next) = (data[i], data.get(i + 1).copied());
        match (c, next) {
            (b'@' | b'$', Some(d @ b'0'..=b'9')) => {
                if let Some((bytes, digest)) = done.get(usize::from(d - b'0')) {
                    if c == b'@' {
                        out.extend_from_slice(digest.as_bytes());
                    } else {
                        out.extend_from_slice(bytes.len().to_string().as_bytes());
                    }
                }
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    common::empty(dir);
    let records = common::records(data);
    // Last to first: `done` holds the records after the current one, nearest first.
    let mut done: Vec<(Vec<u8>, String)> = Vec::new();
    let mut members = Vec::new();
    for &(kind, name, body) in records.iter().rev() {
        let body = substitute(body, &done);
        let digest = Digest::of(Algorithm::Sha256, &body).to_string();
        let name = if name == b"@" {
            format!("blobs/sha256/{}", &digest["sha256:".len()..]).into_bytes()
        } else {
            name.to_vec()
        };
        members.push((kind, name, body.clone()));
        done.insert(0, (body, digest));
    }
    let mut tar = Tar::default();
    for (kind, name, body) in members.iter().rev() {
        match kind % 4 {
            0 => tar.add(FILE, name, b"", body),
            1 => tar.add(DIR, name, b"", b""),
            2 => tar.add(SYMLINK, name, body, b""),
            _ => tar.add(HARDLINK, name, body, b""),
        }
    }
    let path = dir.join("image.tar");
    std::fs::write(&path, tar.finish()).unwrap();
    let spill = dir.join("spill");
    std::fs::create_dir(&spill).unwrap();
    let mut opts = Options::default();
    opts.spill.dir = Some(spill.clone());
    opts.spill.max = Some(SPILL_CAP);
    if let Ok(archive) = ImageArchive::open(&path, &opts) {
        let mut sels = vec![Selector::default()];
        for info in archive.images().iter().take(4) {
            let mut s = Selector::default();
            s.hints = info.names.clone();
            s.architecture = info.platform.as_ref().map(|p| p.architecture.clone());
            sels.push(s);
        }
        for sel in &sels {
            let Ok(img) = archive.select(sel) else {
                continue;
            };
            for d in img.info().layers.iter().take(4) {
                let _ = img.read_blob(d, 1 << 16);
            }
            let Ok(layers) = img.layers() else { continue };
            let Ok(view) = LayerView::new(layers, &opts) else {
                continue;
            };
            let files: Vec<_> = view.files().take(16).collect();
            for f in &files {
                let p = f.path();
                assert!(
                    !p.starts_with(b"/")
                        && !p.split(|&b| b == b'/').any(|c| c == b".." || c.is_empty()),
                    "{:?}",
                    p.escape_ascii().to_string()
                );
                if let Ok(Some(again)) = view.resolve(p) {
                    assert_eq!(again.path(), p);
                }
            }
            if let Ok(blobs) = view.materialize(&files) {
                for (f, b) in files.iter().zip(&blobs) {
                    assert_eq!(b.len, f.len());
                    assert!(b.path == path || b.path.starts_with(&spill), "{b:?}");
                }
            }
        }
    }
    // Only the archive and the spill directory, whose copies are gone.
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name();
        assert!(name == "image.tar" || name == "spill", "wrote {name:?}");
    }
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "copies left behind"
    );
});
