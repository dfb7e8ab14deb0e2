//! Checkpoint archives: any bytes as a (compressed) tar must be read or
//! refused cleanly, and nothing may be written outside the spill directory.
#![no_main]

use criu2core::archive::ArchiveStore;
use criu2core::criu::store::ImageStore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.tar");
    std::fs::write(&path, data).unwrap();
    let spill = dir.path().join("spill");
    std::fs::create_dir(&spill).unwrap();
    if let Ok(store) = ArchiveStore::open(&path, Some(&spill)) {
        for name in store.names().unwrap_or_default() {
            let _ = store.read(&name);
            let _ = store.blob(&name);
        }
        let _ = store.read_member("config.dump");
        if let Some(diff) = store.rootfs_diff() {
            let _ = criu2core::archive::index_tar(&diff);
        }
    }
    // Only the archive, the spill directory and what is inside it.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let name = e.unwrap().file_name();
        assert!(name == "ckpt.tar" || name == "spill", "wrote {name:?}");
    }
});
