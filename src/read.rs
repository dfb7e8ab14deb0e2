//! `criu2core read`: the bytes of a process's memory at an address, as
//! the process saw them (and as its core holds them), streamed.
//!
//! A range is checked whole before a byte is given out, so a range that
//! runs into unmapped memory or into pages the checkpoint does not hold
//! fails with nothing written, and says which addresses and why.

use std::io::Write;

use anyhow::{bail, Context, Result};

use crate::blobio::BlobFile;
use crate::cancel::Cancel;
use crate::model::{Mapping, Missing, PageSource, Process};
use crate::search::mapping_path;
use crate::text::escape_bytes;

/// Bytes read and handed on at a time.
const CHUNK: u64 = 1 << 20;

fn describe(m: &Mapping) -> String {
    match mapping_path(m) {
        Some(path) => format!("{:x}-{:x} ({})", m.start, m.end, escape_bytes(path)),
        None => format!("{:x}-{:x}", m.start, m.end),
    }
}

/// Why the bytes `from..to` of mapping `m` cannot be read.
fn unreadable(m: &Mapping, from: u64, to: u64, source: PageSource) -> String {
    let what = format!(
        "{from:#x}-{to:#x} ({} bytes) of mapping {}",
        to - from,
        describe(m)
    );
    match source {
        PageSource::Zero => format!(
            "{what} were not dumped: anonymous memory never written, or left out by CRIU; a core holds zeros there (--zeros reads them so)"
        ),
        PageSource::Missing(Missing::FileBacked) => format!(
            "{what} are unmodified pages of the mapped file, which a checkpoint does not hold (--image IMAGE reads them from the container's image, --root DIR from a root filesystem)"
        ),
        PageSource::Missing(Missing::Lazy) => {
            format!("{what} were left on the source machine by a lazy-pages dump")
        }
        PageSource::Missing(Missing::NoContents) => {
            format!("{what} have no contents (vvar, vsyscall or device memory)")
        }
        PageSource::Blob { .. } => what,
    }
}

/// Checks that `len` bytes at `addr` can be read (holes only if `zeros`).
pub(crate) fn check(p: &Process, addr: u64, len: u64, zeros: bool) -> Result<()> {
    p.pieces(addr, len, &mut |m, from, to, source| match source {
        PageSource::Blob { .. } => Ok(()),
        PageSource::Zero if zeros => Ok(()),
        other => bail!("{}", unreadable(m, from, to, other)),
    })
}

/// Gives `out` the `len` bytes at `addr`, in pieces of at most 1 MiB, after
/// checking them all ([`check`]); holes of undumped memory read as zeros
/// where `zeros`.
pub(crate) fn read(
    p: &Process,
    addr: u64,
    len: u64,
    zeros: bool,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    check(p, addr, len, zeros)?;
    let mut buf = Vec::new();
    let mut open: Option<(usize, BlobFile)> = None;
    p.pieces(addr, len, &mut |_, from, to, source| {
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(CHUNK);
            buf.clear();
            buf.resize(n as usize, 0);
            if let PageSource::Blob { blob, offset } = source {
                let b = p
                    .blobs
                    .get(blob)
                    .context("page run names an unknown blob")?;
                if open.as_ref().is_none_or(|(id, _)| *id != blob) {
                    let f =
                        BlobFile::open(b).with_context(|| format!("{}: cannot open", b.label))?;
                    open = Some((blob, f));
                }
                let at = offset + (pos - from);
                if let Some((_, f)) = &mut open {
                    f.read_exact_at(&mut buf, b.offset + at).with_context(|| {
                        format!("{}: cannot read {n} bytes at offset {at}", b.label)
                    })?;
                }
            }
            out(&buf)?;
            pos += n;
        }
        Ok(())
    })
}

/// Which bytes to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum What {
    /// `len` bytes from an address.
    Range(u64, u64),
    /// The whole mapping that holds an address.
    Mapping(u64),
}

impl What {
    /// The address and length of the bytes it names in `p`.
    pub fn range(self, p: &Process) -> crate::Result<(u64, u64)> {
        self.range_in(p).map_err(crate::Error::new)
    }

    fn range_in(self, p: &Process) -> Result<(u64, u64)> {
        match self {
            What::Range(a, n) => Ok((a, n)),
            What::Mapping(a) => {
                let m = p.mapping_at(a)?;
                Ok((m.start, m.len()))
            }
        }
    }
}

/// How to read them.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReadOptions {
    /// Undumped anonymous pages read as zeros.
    pub zeros: bool,
    /// Checked between pieces.
    pub cancel: Cancel,
}

/// Writes the bytes `what` names to `out`, after checking them all;
/// nothing is written if any is unreadable.
///
/// ```
/// use criu2core::read::{write, ReadOptions, What};
/// use criu2core::{open, LoadOptions, Loaded, OpenOptions};
///
/// let ckpt = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
/// let Loaded::Process(p) = ckpt.load(12155, &LoadOptions::default())? else { panic!() };
/// let mut out = Vec::new();
/// write(&p, What::Range(p.arg_range.0, 8), &ReadOptions::default(), &mut out)?;
/// assert_eq!(out, b"./victim");
/// # Ok::<(), criu2core::Error>(())
/// ```
pub fn write(
    p: &Process,
    what: What,
    opts: &ReadOptions,
    out: &mut dyn Write,
) -> crate::Result<()> {
    write_bytes(p, what, opts, out).map_err(crate::Error::new)
}

fn write_bytes(p: &Process, what: What, opts: &ReadOptions, out: &mut dyn Write) -> Result<()> {
    let (addr, len) = what.range_in(p)?;
    read(p, addr, len, opts.zeros, &mut |bytes| {
        opts.cancel.check()?;
        out.write_all(bytes)?;
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Blob, MappingKind, PageRun, Prot, RunList};
    use std::sync::Arc;

    fn process(dir: &std::path::Path) -> Process {
        let path = dir.join("pages");
        std::fs::write(&path, b"0123456789abcdef").unwrap();
        let m = |start, end| Mapping {
            start,
            end,
            prot: Prot::default(),
            shared: false,
            kind: MappingKind::Anonymous,
            file: None,
            stored: 0,
            dumped: 0,
        };
        let blob = |offset| PageSource::Blob { blob: 0, offset };
        Process {
            pid: 7,
            ppid: 0,
            pgid: 7,
            sid: 7,
            comm: "t".into(),
            state: crate::model::ProcessState::Running,
            flags: 0,
            uid: 0,
            gid: 0,
            arch: crate::model::Arch::X86_64,
            page_size: 4,
            threads: Vec::new(),
            auxv: Vec::new(),
            arg_range: (0, 0),
            env_range: (0, 0),
            exe: None,
            mappings: vec![m(0x100, 0x10c), m(0x10c, 0x110), m(0x200, 0x204)],
            runs: Arc::new(RunList(vec![
                vec![
                    PageRun {
                        len: 4,
                        source: blob(0),
                    },
                    PageRun {
                        len: 4,
                        source: PageSource::Zero,
                    },
                    PageRun {
                        len: 4,
                        source: blob(4),
                    },
                ],
                vec![PageRun {
                    len: 4,
                    source: blob(12),
                }],
                vec![PageRun {
                    len: 4,
                    source: PageSource::Missing(Missing::FileBacked),
                }],
            ])),
            blobs: vec![Blob {
                label: "pages".into(),
                path,
                offset: 0,
                len: 16,
                remote: None,
            }],
            source: std::sync::Arc::new(crate::blobio::Files),
            warnings: Vec::new(),
            files: Vec::new(),
            dumps: Vec::new(),
        }
    }

    fn read_all(p: &Process, addr: u64, len: u64, zeros: bool) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        read(p, addr, len, zeros, &mut |b| {
            v.extend_from_slice(b);
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn reads_across_runs_and_mappings_and_refuses_what_is_not_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = process(dir.path());
        assert_eq!(read_all(&p, 0x101, 2, false).unwrap(), b"12");
        assert_eq!(read_all(&p, 0x10a, 4, false).unwrap(), b"67cd");
        let e = read_all(&p, 0x102, 4, false).unwrap_err().to_string();
        assert!(e.contains("0x104-0x106") && e.contains("--zeros"), "{e}");
        assert_eq!(read_all(&p, 0x102, 8, true).unwrap(), b"23\0\0\0\x0045");
        let e = read_all(&p, 0x10e, 4, false).unwrap_err().to_string();
        assert!(
            e.contains("0x110 is not mapped") && e.contains("10c-110, 200-204"),
            "{e}"
        );
        let e = read_all(&p, 0x200, 1, true).unwrap_err().to_string();
        assert!(e.contains("--root"), "{e}");
        assert!(read_all(&p, 0x50, 1, true).is_err());
        assert!(read_all(&p, u64::MAX, 2, true).is_err());
        assert_eq!(p.mapping_at(0x10f).unwrap().start, 0x10c);
    }
}
