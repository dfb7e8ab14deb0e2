//! Spilling: the private copies made of what compressed archives, rootfs
//! diffs, image archives and layers hold, in a temporary directory removed
//! with them, at most a cap of bytes (one default, one error kind past it:
//! `ErrorKind::Limit`). Copies are named by a counter, never by an input.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::error::{fault, ErrorKind};
use crate::model::Blob;

/// Where copies out of compressed inputs go, and how much may go there:
/// the one set of spill options every opener takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpillOptions {
    /// The directory a private temporary directory is made in for the
    /// copies (the system temporary directory if `None`); it is removed
    /// when what made it is dropped.
    pub dir: Option<PathBuf>,
    /// The most bytes copied there, per archive, diff or image view
    /// (default: half of the space free there when the first copy is made).
    pub max: Option<u64>,
}

/// A temporary directory of copies and the bytes it holds.
pub(crate) struct Spill {
    opts: SpillOptions,
    dir: Option<TempDir>,
    max: Option<u64>,
    used: u64,
    files: usize,
}

impl Spill {
    /// Nothing copied yet; the directory is made on first use.
    pub(crate) fn new(opts: &SpillOptions) -> Spill {
        Spill {
            opts: opts.clone(),
            dir: None,
            max: opts.max,
            used: 0,
            files: 0,
        }
    }

    /// The bytes copied so far.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Counts `bytes` as no longer held (a copy replaced by what was read
    /// from it).
    pub(crate) fn release(&mut self, bytes: u64) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Whether `path` is one of its files.
    pub(crate) fn holds(&self, path: &Path) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|d| path.starts_with(d.path()))
    }

    /// Removes the directory now (what is in it is no longer read).
    #[cfg(feature = "testkit")]
    pub(crate) fn remove(&mut self) {
        self.dir = None;
    }

    /// The directory, created on first use, and the most it may hold.
    fn dir(&mut self) -> Result<(&Path, u64)> {
        if self.dir.is_none() {
            let mut b = tempfile::Builder::new();
            b.prefix("criu2core-");
            let d = match &self.opts.dir {
                Some(p) => b.tempdir_in(p).with_context(|| {
                    format!("{}: cannot create a temporary directory", p.display())
                }),
                None => b.tempdir().context("cannot create a temporary directory"),
            }?;
            if self.max.is_none() {
                let st = rustix::fs::statvfs(d.path()).with_context(|| {
                    format!("{}: cannot read the free space", d.path().display())
                })?;
                self.max = Some(st.f_bavail.saturating_mul(st.f_frsize) / 2);
            }
            self.dir = Some(d);
        }
        match (&self.dir, self.max) {
            (Some(d), Some(max)) => Ok((d.path(), max)),
            _ => bail!("no temporary directory"),
        }
    }

    /// The error for copying more than `max` bytes in all.
    fn over(&self, max: u64, what: &str) -> anyhow::Error {
        fault(
            ErrorKind::Limit,
            format!(
                "{what}unpacking it would put more than {max} bytes into the temporary directory \
                 (--max-spill; {} already there)",
                self.used
            ),
        )
    }

    /// Checks, before copying, that `need` bytes in all (those already
    /// there included) stay within the cap; `label` names what would pass it.
    pub(crate) fn check(&mut self, need: u64, label: &str) -> Result<()> {
        let (_, max) = self.dir()?;
        if need > max {
            return Err(self.over(max, &format!("{label}: ")));
        }
        Ok(())
    }

    /// A new file in the directory (named by a counter, never by the input).
    pub(crate) fn create(&mut self) -> Result<(File, PathBuf)> {
        let n = self.files;
        self.files += 1;
        let (dir, _) = self.dir()?;
        let path = dir.join(format!("member-{n}"));
        let f = File::create_new(&path)
            .with_context(|| format!("{}: cannot create", path.display()))?;
        Ok((f, path))
    }

    /// Copies `len` bytes from `from` to `to` at `at`, counting them
    /// against the cap; gives the bytes copied (fewer where `from` ends).
    pub(crate) fn copy(
        &mut self,
        from: &mut impl Read,
        to: &mut File,
        at: u64,
        len: u64,
    ) -> Result<u64> {
        let (_, max) = self.dir()?;
        to.seek(SeekFrom::Start(at))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut done = 0;
        while done < len {
            let want = (len - done).min(buf.len() as u64) as usize;
            let n = match from.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("cannot read"),
            };
            if self.used + n as u64 > max {
                return Err(self.over(max, ""));
            }
            to.write_all(&buf[..n]).context("cannot unpack")?;
            self.used += n as u64;
            done += n as u64;
        }
        Ok(done)
    }

    /// Copies the `size` bytes `data` reads into a new file: a blob
    /// labelled `label`. An error if `data` ends before them.
    pub(crate) fn copy_out(&mut self, data: &mut dyn Read, size: u64, label: &str) -> Result<Blob> {
        let (mut out, path) = self.create()?;
        let n = self.copy(&mut &mut *data, &mut out, 0, size)?;
        if n < size {
            bail!("{label}: the archive ends inside it ({n} of {size} bytes)");
        }
        Ok(Blob {
            label: label.to_string(),
            path,
            offset: 0,
            len: size,
            remote: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    #[test]
    fn past_the_cap_is_a_limit_and_nothing_is_left_behind() {
        let parent = tempfile::tempdir().unwrap();
        let opts = SpillOptions {
            dir: Some(parent.path().to_path_buf()),
            max: Some(10),
        };
        let mut s = Spill::new(&opts);
        let b = s.copy_out(&mut &b"12345"[..], 5, "a").unwrap();
        assert_eq!(std::fs::read(&b.path).unwrap(), b"12345");
        assert!(s.holds(&b.path));
        assert_eq!(s.used(), 5);
        // Copying past the cap, and a check before copying, say Limit.
        let e = s.copy_out(&mut &b"123456"[..], 6, "b").unwrap_err();
        assert_eq!(kind_of(&e), ErrorKind::Limit, "{e:#}");
        assert!(format!("{e:#}").contains("more than 10 bytes"), "{e:#}");
        let e = s.check(11, "c").unwrap_err();
        assert_eq!(kind_of(&e), ErrorKind::Limit, "{e:#}");
        assert!(format!("{e:#}").starts_with("c: unpacking it"), "{e:#}");
        s.check(10, "d").unwrap();
        // A short input is an error of its own, no limit.
        let mut s2 = Spill::new(&opts);
        let e = s2.copy_out(&mut &b"12"[..], 4, "e").unwrap_err();
        assert_ne!(kind_of(&e), ErrorKind::Limit);
        drop((s, s2));
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_default_cap_is_half_the_free_space() {
        let parent = tempfile::tempdir().unwrap();
        let mut s = Spill::new(&SpillOptions {
            dir: Some(parent.path().to_path_buf()),
            max: None,
        });
        let st = rustix::fs::statvfs(parent.path()).unwrap();
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let (_, max) = s.dir().unwrap();
        assert!(max <= free / 2 && max >= free / 4, "{max} of {free}");
    }
}
