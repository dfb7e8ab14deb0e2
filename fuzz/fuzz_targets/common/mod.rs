//! What the fuzz targets share: a scratch directory on tmpfs reused across
//! runs, and a tar writer for trees built from the input.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A directory for this process's files, on /dev/shm where there is one
/// (no disk, no fsync), made once and emptied before each run.
pub fn scratch(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("criu2core-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes what `dir` holds, leaving it.
pub fn empty(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p).unwrap(),
            _ => std::fs::remove_file(&p).unwrap(),
        }
    }
}

/// Every path under `dir` (links not followed), relative to it.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}

/// Member types of [`Tar`].
pub const FILE: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const DIR: u8 = b'5';

/// A ustar archive being written in memory (names and link targets cut
/// at 100 bytes).
#[derive(Default)]
pub struct Tar(pub Vec<u8>);

impl Tar {
    pub fn add(&mut self, kind: u8, name: &[u8], link: &[u8], data: &[u8]) {
        let mut h = [0u8; 512];
        let name = &name[..name.len().min(100)];
        let link = &link[..link.len().min(100)];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(if kind == DIR {
            b"0000755\0"
        } else {
            b"0000644\0"
        });
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        let size = if kind == FILE { data.len() } else { 0 };
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.0.extend_from_slice(&h);
        if kind == FILE {
            self.0.extend_from_slice(data);
            self.0.resize(self.0.len().next_multiple_of(512), 0);
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

/// Splits the input into records of [kind][name length][name][data
/// length, u16 LE][data]; a short tail ends it.
pub fn records(mut data: &[u8]) -> Vec<(u8, &[u8], &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        let (kind, n) = (data[0], usize::from(data[1]));
        let rest = &data[2..];
        if rest.len() < n + 2 {
            break;
        }
        let name = &rest[..n];
        let len = usize::from(u16::from_le_bytes([rest[n], rest[n + 1]]));
        let body = &rest[n + 2..];
        let body = &body[..len.min(body.len())];
        data = &rest[n + 2 + body.len()..];
        out.push((kind, name, body));
    }
    out
}
