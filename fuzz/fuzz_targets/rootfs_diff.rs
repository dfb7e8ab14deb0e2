//! A container's rootfs-diff.tar, and the tar reader under it: any bytes,
//! read where they lie and as a stream, must be indexed or refused
//! cleanly; what is indexed lies inside the tar and was asked for.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

use criu2core::limits::MAX_NAME_BYTES;
use criu2core::model::Blob;
use criu2core::testkit::decode::{index_diff, Stream, TarReader};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch("rootfs_diff"))
}

fuzz_target!(|data: &[u8]| {
    // One directory on tmpfs for the whole run, emptied each time.
    let dir = dir();
    common::empty(dir);
    let path = dir.join("rootfs-diff.tar");
    std::fs::write(&path, data).unwrap();
    let blob = Blob {
        label: "rootfs-diff.tar".into(),
        path: path.clone(),
        offset: 0,
        len: data.len() as u64,
        remote: None,
    };
    let wanted: [&[u8]; 4] = [b"usr/bin/synth", b"lib/libc.so.6", b"a", b"etc/hostname"];
    let spill = dir.join("spill");
    std::fs::create_dir(&spill).unwrap();
    // Plain, gzip or zstd by content: in place, or copied out (at most 8 MiB).
    if let Ok((ix, _keep)) = index_diff(&blob, &wanted, &spill, 8 << 20) {
        for (key, b) in ix.files() {
            assert!(wanted.contains(&key.as_slice()));
            if b.path == path {
                assert!(b.offset + b.len <= data.len() as u64, "{b:?} past the tar");
            } else {
                assert!(
                    b.path.starts_with(&spill),
                    "{b:?} outside the spill directory"
                );
            }
        }
    }
    // The same bytes as a stream, each member's data read.
    let mut r = TarReader::new(Stream(data), None);
    while let Ok(Some(m)) = r.next_member() {
        assert!(m.name.len() <= MAX_NAME_BYTES && m.link.len() <= MAX_NAME_BYTES);
        let got = std::io::copy(&mut (&mut r).take(1 << 20), &mut std::io::sink()).unwrap_or(0);
        assert!(got <= m.size);
    }
});
