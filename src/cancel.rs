//! Cooperative cancellation. The library owns no signal handlers: whoever
//! runs it (the command line) sets a [`Cancel`] from its own handlers, and
//! conversion checks it between inputs, processes and extents, and while
//! reading archives, then unwinds through its ordinary error paths so that
//! every temporary file and directory is removed on the way out.

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::stdext::lock;

/// The temporary files being written now, by path: what
/// [`Cancel::remove_temporaries`] removes.
static TEMPORARIES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Notes that the temporary file `path` is being written.
pub(crate) fn track(path: &Path) {
    let mut t = lock(&TEMPORARIES);
    t.insert(path.to_path_buf());
}

/// Notes that `path` is no temporary file any more (renamed into place, or
/// removed).
pub(crate) fn untrack(path: &Path) {
    let mut t = lock(&TEMPORARIES);
    t.remove(path);
}

/// A shared "stop now" request; clones share it. Never set unless someone
/// calls [`Cancel::cancel`] or stores into [`Cancel::flag`].
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicUsize>);

/// The error conversion stops with once cancelled; it carries the value the
/// request was made with (the command line stores the signal number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled(pub usize);

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Cancelled {}

impl Cancel {
    /// A request that is not set.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// The shared word: 0 while not cancelled, else the reason. A signal
    /// handler may store into it (e.g. `signal_hook::flag::register_usize`).
    pub fn flag(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.0)
    }

    /// Asks everything sharing this request to stop, for `reason` (not 0;
    /// 0 is taken as `usize::MAX`). A reason already set is kept.
    pub fn cancel(&self, reason: usize) {
        let reason = if reason == 0 { usize::MAX } else { reason };
        let _ = self
            .0
            .compare_exchange(0, reason, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// The reason, once cancelled.
    pub fn reason(&self) -> Option<usize> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            r => Some(r),
        }
    }

    /// Whether it is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.reason().is_some()
    }

    /// Removes every temporary file being written now (partial cores,
    /// records, sysroot files), for a caller that is about to end the
    /// process at once, with no time for the work in hand to unwind (a
    /// second signal).
    pub fn remove_temporaries() {
        let mut t = lock(&TEMPORARIES);
        for path in std::mem::take(&mut *t) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// `Err(Cancelled)` once cancelled.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        match self.reason() {
            None => Ok(()),
            Some(r) => Err(Cancelled(r).into()),
        }
    }

    /// `inner`, whose reads fail once this is cancelled.
    pub(crate) fn reader<R>(&self, inner: R) -> CancelReader<R> {
        CancelReader {
            inner,
            cancel: self.clone(),
        }
    }
}

/// A reader that fails with [`Cancelled`] once its [`Cancel`] is set, so a
/// long read (unpacking a compressed archive) stops at the next call.
#[derive(Debug)]
pub(crate) struct CancelReader<R> {
    inner: R,
    cancel: Cancel,
}

impl<R> CancelReader<R> {
    fn check(&self) -> io::Result<()> {
        match self.cancel.reason() {
            // Not ErrorKind::Interrupted: readers retry on that.
            Some(r) => Err(io::Error::other(Cancelled(r))),
            None => Ok(()),
        }
    }
}

impl<R: Read> Read for CancelReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for CancelReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.check()?;
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_reader_fails() {
        let c = Cancel::new();
        let mut r = c.reader(&b"abcdef"[..]);
        let mut buf = [0u8; 3];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert!(c.check().is_ok() && !c.is_cancelled());
        c.cancel(2);
        c.cancel(15);
        assert_eq!(c.reason(), Some(2), "the first reason stays");
        let e = r.read(&mut buf).unwrap_err();
        assert_ne!(e.kind(), io::ErrorKind::Interrupted, "readers would retry");
        assert!(c.check().unwrap_err().is::<Cancelled>());
        // The kind survives the reader's io::Error and context.
        let e = anyhow::Error::new(e).context("reading a layer");
        assert_eq!(crate::Error::new(e).kind(), &crate::ErrorKind::Cancelled(2));
    }

    #[test]
    fn tracked_temporaries_are_removed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.partial"), dir.path().join("b"));
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"y").unwrap();
        track(&a);
        track(&b);
        untrack(&b);
        Cancel::remove_temporaries();
        assert!(!a.exists() && b.exists());
    }
}
