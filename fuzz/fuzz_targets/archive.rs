//! Checkpoint archives: any bytes as a (compressed) tar must be read or
//! refused cleanly, within --max-spill, and nothing may be written outside
//! the spill directory.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use criu2core::testkit::decode::{index_diff, ArchiveOptions, ArchiveStore, Diff, ImageStore};
use criu2core::PageUse;
use libfuzzer_sys::fuzz_target;

/// What a fuzzed archive may unpack.
const MAX_SPILL: u64 = 8 << 20;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch("archive"))
}

fuzz_target!(|data: &[u8]| {
    // One directory on tmpfs for the whole run, emptied each time.
    let dir = dir();
    common::empty(dir);
    let path = dir.join("ckpt.tar");
    std::fs::write(&path, data).unwrap();
    let spill = dir.join("spill");
    std::fs::create_dir(&spill).unwrap();
    // Both ways of reading: for a conversion, and for inspect.
    for pages in [PageUse::All, PageUse::Strings] {
        let mut limits = criu2core::SpillOptions::default();
        limits.dir = Some(spill.clone());
        limits.max = Some(MAX_SPILL);
        let opts = ArchiveOptions {
            spill: limits,
            pages,
            cancel: Default::default(),
        };
        if let Ok(store) = ArchiveStore::open(&path, &opts) {
            assert!(store.unpacked_bytes() <= MAX_SPILL);
            for name in store.names().unwrap_or_default() {
                let _ = store.read(&name);
                let _ = store.blob(&name);
            }
            let _ = store.read_member("config.dump");
            match store.rootfs_diff() {
                Some(Diff::Indexed(ix)) => {
                    for (_, b) in ix.files() {
                        assert!(b.path == path || b.path.starts_with(&spill), "{b:?}");
                    }
                }
                Some(Diff::Tar(blob)) => {
                    let _ = index_diff(blob, &[b"usr/bin/synth"], &spill, MAX_SPILL);
                }
                _ => {}
            }
        }
        // Only the archive, the spill directory and what is inside it.
        for e in std::fs::read_dir(dir).unwrap() {
            let name = e.unwrap().file_name();
            assert!(name == "ckpt.tar" || name == "spill", "wrote {name:?}");
        }
    }
});
