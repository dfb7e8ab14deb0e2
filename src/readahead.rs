//! Decompression on a thread of its own: the bytes of a compressed archive
//! are inflated a few chunks ahead of whoever reads them, so that inflating
//! and writing what was inflated (cores, unpacked members) overlap on two
//! CPUs, as `zstd -dc ARCHIVE | tar -x` overlaps them in two processes.
//! What is held is the chunks in flight: at most `2 * DEPTH + 3` of
//! [`CHUNK`] bytes, whatever the size of the archive.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

/// Bytes inflated at a time.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks inflated ahead of the reader.
const DEPTH: usize = 3;

/// A chunk and how many of its bytes hold data.
type Chunk = (Vec<u8>, usize);

/// Reads `inner` on a thread of its own, [`CHUNK`] bytes at a time, up to
/// `DEPTH` chunks ahead; hands the bytes on in order, and the first error
/// where it happened (a later read fails too: the stream is broken).
pub(crate) struct ReadAhead {
    chunks: Option<Receiver<io::Result<Chunk>>>,
    /// Chunks read out, sent back to be filled again.
    spare: SyncSender<Vec<u8>>,
    current: Chunk,
    pos: usize,
    state: State,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Ended,
    Failed,
}

impl ReadAhead {
    /// Starts reading `inner` on a new thread.
    pub(crate) fn new<R: Read + Send + 'static>(inner: R) -> io::Result<ReadAhead> {
        let (tx, chunks) = mpsc::sync_channel(DEPTH);
        let (spare, spares) = mpsc::sync_channel(DEPTH + 1);
        let thread = std::thread::Builder::new()
            .name("criu2core-inflate".into())
            .spawn(move || fill(inner, &tx, &spares))?;
        Ok(ReadAhead {
            chunks: Some(chunks),
            spare,
            current: (Vec::new(), 0),
            pos: 0,
            state: State::Reading,
            thread: Some(thread),
        })
    }

    /// Makes the next chunk current; false at the end of the stream.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let got = match &self.chunks {
            Some(rx) => rx.recv(),
            None => return Ok(false),
        };
        match got {
            Ok(Ok(chunk)) => {
                let used = std::mem::replace(&mut self.current, chunk);
                if !used.0.is_empty() {
                    // Full when the thread already has enough: then dropped.
                    let _ = self.spare.try_send(used.0);
                }
                self.pos = 0;
                Ok(true)
            }
            Ok(Err(e)) => {
                self.state = State::Failed;
                Err(e)
            }
            Err(_) => {
                // The thread is gone without an error: the stream ended.
                self.state = State::Ended;
                Ok(false)
            }
        }
    }
}

/// The thread's work: fills chunks from `inner` and sends them on until
/// the stream ends, fails, or the reader is gone.
fn fill(mut inner: impl Read, tx: &SyncSender<io::Result<Chunk>>, spares: &Receiver<Vec<u8>>) {
    loop {
        let mut buf = match spares.try_recv() {
            Ok(b) => b,
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => vec![0u8; CHUNK],
        };
        let mut n = 0;
        while n < buf.len() {
            match inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Whatever came before the error is handed on first.
                    if n > 0 && tx.send(Ok((buf, n))).is_err() {
                        return;
                    }
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if n == 0 || tx.send(Ok((buf, n))).is_err() {
            return;
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.pos == self.current.1 {
            match self.state {
                State::Ended => return Ok(0),
                State::Failed => {
                    return Err(io::Error::other(
                        "the compressed stream failed earlier; nothing after it can be read",
                    ))
                }
                State::Reading => {
                    if !self.next_chunk()? {
                        return Ok(0);
                    }
                }
            }
        }
        let n = out.len().min(self.current.1 - self.pos);
        out[..n].copy_from_slice(&self.current.0[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // The thread's next send fails once the receiver is gone; it ends
        // after the read it is in.
        self.chunks = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` a few bytes at a time, then fails if told to.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        fail_at_end: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.data.len() {
                return if self.fail_at_end {
                    Err(io::Error::new(io::ErrorKind::InvalidData, "checksum"))
                } else {
                    Ok(0)
                };
            }
            let n = buf.len().min(7777).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn hands_on_every_byte_in_order() {
        let want = data(3 * CHUNK + 12345);
        let mut r = ReadAhead::new(Trickle {
            data: want.clone(),
            pos: 0,
            fail_at_end: false,
        })
        .unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert!(got == want);
        assert_eq!(r.read(&mut [0u8; 10]).unwrap(), 0);
    }

    #[test]
    fn an_error_comes_after_the_bytes_before_it_and_stays() {
        let want = data(CHUNK + 5);
        let mut r = ReadAhead::new(Trickle {
            data: want.clone(),
            pos: 0,
            fail_at_end: true,
        })
        .unwrap();
        let mut got = vec![0u8; want.len()];
        r.read_exact(&mut got).unwrap();
        assert!(got == want);
        let e = r.read(&mut [0u8; 10]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(r.read(&mut [0u8; 10]).is_err());
    }

    #[test]
    fn dropping_it_early_ends_the_thread() {
        let mut r = ReadAhead::new(Trickle {
            data: data(20 * CHUNK),
            pos: 0,
            fail_at_end: false,
        })
        .unwrap();
        r.read_exact(&mut [0u8; 100]).unwrap();
        drop(r);
    }
}
