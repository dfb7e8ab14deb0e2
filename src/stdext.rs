//! Two small helpers over std that several modules share, each written
//! once: reading until a buffer is full, and locking a mutex whose last
//! holder panicked.

use std::io::{self, Read};
use std::sync::{Mutex, MutexGuard};

/// Reads until `buf` is full or the stream ends; the bytes read (fewer than
/// `buf.len()` only at the end). Interrupted reads are retried.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Locks `m`, taking the data as it is where a holder panicked: the state
/// behind these locks stays consistent between statements, and a panic is
/// reported where it happened, not again at every later lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte at a time, interrupted between.
    struct Trickle(Vec<u8>, bool);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0.remove(0);
            Ok(1)
        }
    }

    #[test]
    fn read_full_fills_across_short_and_interrupted_reads() {
        let mut buf = [0u8; 4];
        assert_eq!(
            read_full(&mut Trickle(b"abcdef".to_vec(), false), &mut buf).unwrap(),
            4
        );
        assert_eq!(&buf, b"abcd");
        let mut buf = [0u8; 8];
        assert_eq!(
            read_full(&mut Trickle(b"xy".to_vec(), false), &mut buf).unwrap(),
            2
        );
    }

    #[test]
    fn lock_survives_a_panicked_holder() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("holder panics");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
