//! Reading the bytes of a [`Blob`] wherever they lie: a file on this
//! machine (read with `pread`, copied into cores with copy_file_range), or
//! an object in object storage (read with ranged GETs, or one streaming
//! GET). Everything that reads page data, images or archive members from a
//! blob goes through here, so a plain tar in a bucket is read where it
//! lies, as a plain tar on disk is.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use crate::model::{Blob, FileSource, ReadAt, RemoteObject};

/// Bytes fetched at once from an object when less is asked for: a ranged
/// GET costs a round trip, so small reads (tar headers, images read
/// through a buffer) are served from one larger fetch.
pub(crate) const READAHEAD: usize = 1 << 20;
/// The read-ahead of a blob copied front to back into a core: its page
/// runs are often a few pages each, and one GET serves many of them.
pub(crate) const COPY_READAHEAD: usize = 8 << 20;

/// URL schemes taken as object storage rather than paths, with or
/// without the `object-store` feature (without it they are refused, never
/// taken as local paths).
pub const SCHEMES: [&str; 7] = [
    "s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "file://",
];

/// Whether `s` names an object-storage location rather than a path.
pub fn is_url(s: &str) -> bool {
    SCHEMES
        .iter()
        .any(|p| s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()))
}

/// `url` as criu2core knows an object or prefix by: its scheme in lower
/// case, no trailing `/`.
pub fn normalize_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.trim_end_matches('/');
    let rest = if rest.is_empty() && scheme.eq_ignore_ascii_case("file") {
        "/"
    } else {
        rest
    };
    format!("{}://{rest}", scheme.to_ascii_lowercase())
}

/// The URL `p` is, where it names an object-storage location rather
/// than a path.
pub(crate) fn url_of(p: &std::path::Path) -> Option<&str> {
    p.to_str().filter(|s| is_url(s))
}

/// A blob's file or object, open for reads at any offset (offsets are
/// the file's, not the blob's).
pub(crate) enum BlobFile {
    /// A file on this machine.
    Local(File),
    /// An object, with the last bytes fetched (where they start, and
    /// them), and how many bytes a short read fetches.
    Remote(RemoteObject, Option<(u64, Vec<u8>)>, usize),
}

impl BlobFile {
    /// Opens the file or object that holds `b`.
    pub(crate) fn open(b: &Blob) -> io::Result<BlobFile> {
        BlobFile::open_with_readahead(b, READAHEAD)
    }

    /// [`BlobFile::open`], an object's short reads fetching `readahead`
    /// bytes.
    pub(crate) fn open_with_readahead(b: &Blob, readahead: usize) -> io::Result<BlobFile> {
        Ok(match &b.remote {
            Some(r) => BlobFile::Remote(r.clone(), None, readahead.max(1)),
            None => BlobFile::Local(File::open(&b.path)?),
        })
    }

    /// The local file, where it is one (for copy_file_range).
    pub(crate) fn local(&self) -> Option<&File> {
        match self {
            BlobFile::Local(f) => Some(f),
            BlobFile::Remote(..) => None,
        }
    }

    /// Reads up to `buf.len()` bytes at `offset` (fewer only at the end).
    pub(crate) fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            BlobFile::Local(f) => f.read_at(buf, offset),
            BlobFile::Remote(obj, cache, readahead) => {
                let size = obj.0.size();
                let n = (buf.len() as u64).min(size.saturating_sub(offset)) as usize;
                if n == 0 {
                    return Ok(0);
                }
                let buf = &mut buf[..n];
                if let Some((start, bytes)) = cache {
                    let end = *start + bytes.len() as u64;
                    if offset >= *start && offset + n as u64 <= end {
                        let from = (offset - *start) as usize;
                        buf.copy_from_slice(&bytes[from..from + n]);
                        return Ok(n);
                    }
                }
                if n >= *readahead {
                    obj.0.read_exact_at(buf, offset)?;
                    return Ok(n);
                }
                let want = (*readahead as u64).min(size - offset) as usize;
                let mut bytes = cache.take().map(|(_, b)| b).unwrap_or_default();
                bytes.resize(want, 0);
                obj.0.read_exact_at(&mut bytes, offset)?;
                buf.copy_from_slice(&bytes[..n]);
                *cache = Some((offset, bytes));
                Ok(n)
            }
        }
    }

    /// Fills `buf` with the bytes at `offset`.
    pub(crate) fn read_exact_at(&mut self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ends before the bytes asked for",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl ReadAt for BlobFile {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        BlobFile::read_exact_at(self, buf, offset)
    }
}

/// Blobs opened where they lie: files on this machine, objects by range.
#[derive(Debug)]
pub(crate) struct Files;

impl FileSource for Files {
    fn open(&self, blob: &Blob) -> io::Result<Box<dyn ReadAt>> {
        Ok(Box::new(BlobFile::open(blob)?))
    }
}

/// A blob's bytes as a reader that can seek within them.
pub(crate) struct BlobReader {
    file: BlobFile,
    start: u64,
    len: u64,
    pos: u64,
}

impl BlobReader {
    /// The bytes of `b`.
    pub(crate) fn open(b: &Blob) -> io::Result<BlobReader> {
        Ok(BlobReader {
            file: BlobFile::open(b)?,
            start: b.offset,
            len: b.len,
            pos: 0,
        })
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

/// A blob's bytes front to back, as one stream: for an object holding
/// nothing else, one GET; otherwise reads of its range.
pub(crate) fn stream(b: &Blob) -> io::Result<Box<dyn Read + Send>> {
    match &b.remote {
        Some(r) if b.offset == 0 && b.len == r.0.size() => r.0.stream(),
        _ => Ok(Box::new(BlobReader::open(b)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::RangeRead;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// An object in memory that counts its fetches.
    struct Mem(Vec<u8>, AtomicUsize);

    impl RangeRead for Mem {
        fn url(&self) -> &str {
            "mem://x"
        }
        fn size(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let o = offset as usize;
            buf.copy_from_slice(&self.0[o..o + buf.len()]);
            Ok(())
        }
        fn stream(&self) -> io::Result<Box<dyn Read + Send>> {
            Ok(Box::new(io::Cursor::new(self.0.clone())))
        }
    }

    #[test]
    fn remote_windows_read_like_local_ones_with_few_fetches() {
        let data: Vec<u8> = (0..3 * READAHEAD + 77)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mem = Arc::new(Mem(data.clone(), AtomicUsize::new(0)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        let (off, len) = (1000u64, (2 * READAHEAD) as u64);
        let local = Blob {
            label: "f".into(),
            path,
            offset: off,
            len,
            remote: None,
        };
        let remote = Blob {
            remote: Some(RemoteObject(mem.clone())),
            ..local.clone()
        };
        for b in [&local, &remote] {
            let mut r = BlobReader::open(b).unwrap();
            let mut got = Vec::new();
            // Small reads, as a tar reader's buffer makes them.
            let mut buf = [0u8; 512];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, &data[off as usize..(off + len) as usize]);
            r.seek(SeekFrom::Start(10)).unwrap();
            let mut ten = [0u8; 10];
            r.read_exact(&mut ten).unwrap();
            assert_eq!(ten, data[off as usize + 10..off as usize + 20]);
        }
        // 2 MiB in 512-byte reads: a fetch per MiB, not per read.
        assert!(mem.1.load(Ordering::SeqCst) <= 4, "{:?}", mem.1);
        let mut all = Vec::new();
        stream(&Blob {
            offset: 0,
            len: data.len() as u64,
            ..remote
        })
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
        assert_eq!(all, data);
    }
}
