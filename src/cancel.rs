//! Cooperative cancellation. The library owns no signal handlers: whoever
//! runs it (the command line) sets a [`Cancel`] from its own handlers, and
//! conversion checks it between inputs, processes and extents, and while
//! reading archives, then unwinds through its ordinary error paths so that
//! every temporary file and directory is removed on the way out.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
}
