//! The path resolvers: a directory tree with symbolic links built from the
//! input, resolved by `RootFs` (`--root`), and the same tree as a layer
//! resolved by `LayerView`. Neither may resolve outside its root or fail
//! to end; what `RootFs` gives is the real file (no link left in it); what
//! the view gives is a clean path that resolves to itself; and where both
//! answer for a tree they hold alike, they agree. Input: records of
//! [kind][name length][name][data length u16 LE][data] (`common::records`):
//! kind 0 a file, 1 a directory, 2 a link to data, 3 a hard link to data
//! (layer only), 4 and up a path to resolve; kind bit 3 puts an entry in
//! an upper layer.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use common::{Tar, DIR, FILE, HARDLINK, SYMLINK};
use criu2core::oci::{BlobData, LayerView, Options};
use criu2core::testkit::oci::Layer;
use criu2core::testkit::paths::{clean_key, RootFs};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch("resolver"))
}

/// Makes the directories of `key` (clean, relative) below `root`, never
/// through a link; false if something else is in the way.
fn parents(root: &Path, key: &[u8]) -> bool {
    let mut at = root.to_path_buf();
    let comps: Vec<&[u8]> = key.split(|&b| b == b'/').collect();
    for c in &comps[..comps.len() - 1] {
        at.push(OsStr::from_bytes(c));
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return false,
            Err(_) => {
                if fs::create_dir(&at).is_err() {
                    return false;
                }
            }
        }
    }
    true
}

/// A path made by the fuzzer that is fit to be a name in both trees.
fn plain(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.contains(&0)
        && clean_key(name).as_deref() == Some(name)
        && !name.split(|&b| b == b'/').any(|c| c.starts_with(b".wh."))
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    common::empty(dir);
    let root = dir.join("root");
    let outside = dir.join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"outside").unwrap();
    let (mut lower, mut upper) = (Tar::default(), Tar::default());
    let mut queries: Vec<&[u8]> = Vec::new();
    // The directory tree and the lower layer hold the same entries; the
    // upper layer, hard links and names unfit for both make them differ.
    let mut alike = true;
    for (kind, name, body) in common::records(data) {
        let layer = if kind & 8 == 0 {
            &mut lower
        } else {
            &mut upper
        };
        match kind & 7 {
            k @ 0..=3 => {
                queries.push(name);
                if kind & 8 != 0 || k == 3 || !plain(name) {
                    alike = false;
                    let t = [FILE, DIR, SYMLINK, HARDLINK][usize::from(k)];
                    layer.add(t, name, body, body);
                    continue;
                }
                let at = root.join(OsStr::from_bytes(name));
                if !parents(&root, name) || fs::symlink_metadata(&at).is_ok() {
                    continue;
                }
                let made = match k {
                    0 => fs::write(&at, body).is_ok(),
                    1 => fs::create_dir(&at).is_ok(),
                    _ => {
                        !body.is_empty()
                            && body.len() <= 100
                            && !body.contains(&0)
                            && std::os::unix::fs::symlink(OsStr::from_bytes(body), &at).is_ok()
                    }
                };
                if made {
                    lower.add([FILE, DIR, SYMLINK][usize::from(k)], name, body, body);
                }
            }
            _ => queries.push(name),
        }
    }
    let rootfs = RootFs::new(&root).unwrap();
    let canon = fs::canonicalize(&root).unwrap();
    let mut layers = vec![Layer::new(
        "lower",
        BlobData::Memory(Arc::from(lower.finish())),
    )];
    if !upper.0.is_empty() {
        layers.push(Layer::new(
            "upper",
            BlobData::Memory(Arc::from(upper.finish())),
        ));
    }
    let view = LayerView::new(layers, &Options::default()).ok();
    for q in queries.iter().take(32) {
        let by_dir = rootfs.resolve(q).ok().flatten();
        if let Some((full, len)) = &by_dir {
            assert!(full.starts_with(&canon), "{q:?} -> {full:?}");
            assert_eq!(
                &fs::canonicalize(full).unwrap(),
                full,
                "{q:?}: a link left in it"
            );
            assert_eq!(fs::metadata(full).unwrap().len(), *len);
        }
        if let Ok(Some(rel)) = rootfs.resolve_dir(q) {
            let full = canon.join(OsStr::from_bytes(&rel));
            assert_eq!(
                fs::canonicalize(&full).unwrap(),
                full,
                "{q:?}: a link left in it"
            );
        }
        let Some(view) = &view else { continue };
        let by_view = view.resolve(*q).ok().flatten();
        if let Some(f) = &by_view {
            let p = f.path();
            assert!(
                clean_key(p).as_deref() == Some(p) && !p.is_empty(),
                "{q:?} -> {p:?}"
            );
            assert_eq!(
                view.resolve(p).ok().flatten().as_ref(),
                Some(f),
                "{q:?}: not where it leads"
            );
        }
        if let Ok(Some(d)) = view.resolve_dir(*q) {
            assert!(clean_key(&d).as_deref() == Some(&d[..]), "{q:?} -> {d:?}");
        }
        if alike {
            if let (Ok(a), Ok(b)) = (rootfs.resolve(q), view.resolve(*q)) {
                let a = a.map(|(full, _)| {
                    full.strip_prefix(&canon)
                        .unwrap()
                        .as_os_str()
                        .as_bytes()
                        .to_vec()
                });
                let b = b.map(|f| f.path().to_vec());
                assert_eq!(a, b, "the root and the view disagree on {q:?}");
            }
        }
    }
    // The outside stays as it was.
    assert_eq!(fs::read(outside.join("secret")).unwrap(), b"outside");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
});
