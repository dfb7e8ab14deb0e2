//! The whole path on a directory of images built from the input: decode
//! every process and write its core. Input: records of
//! [name length u8][name][data length u32 LE][data].
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use criu2core::{open, LoadOptions, Loaded, OpenOptions};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::scratch("checkpoint"))
}

fuzz_target!(|data: &[u8]| {
    // One directory on tmpfs for the whole run, emptied each time.
    let dir = dir();
    common::empty(dir);
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n);
        if tail.len() < n + 4 {
            break;
        }
        let name = String::from_utf8_lossy(&tail[..n]).into_owned();
        let len = u32::from_le_bytes(tail[n..n + 4].try_into().unwrap()) as usize;
        let body = &tail[n + 4..];
        let body = &body[..len.min(body.len())];
        rest = &tail[n + 4 + body.len()..];
        if name.is_empty()
            || name == "out"
            || name.contains('/')
            || name.contains('\0')
            || name.starts_with('.')
        {
            continue;
        }
        let _ = std::fs::write(dir.join(&name), body);
    }
    let Ok(ckpt) = open(dir, &OpenOptions::default()) else {
        return;
    };
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    for pid in ckpt.pids().into_iter().take(8) {
        if let Ok(Loaded::Process(p)) = ckpt.load(pid, &LoadOptions::default()) {
            let _ = p.argv();
            let _ = criu2core::write_core(&p, &out, true);
        }
    }
});
