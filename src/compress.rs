//! Compression of tars (checkpoint archives, rootfs diffs, image archives
//! and layers): told apart by their first bytes, undone as they stream.
//! One sniffer and one decompressor for every reader; gzip and zstd are
//! read, bzip2 and xz refused with one message wherever they turn up. A
//! leaf: it imports nothing of the crate.

use std::io::{self, BufReader, Read};

use anyhow::{bail, Context, Result};

/// How a tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The usual file suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "tar",
            Compression::Gzip => "tar.gz",
            Compression::Zstd => "tar.zst",
        }
    }
}

/// How many first bytes [`sniff`] looks at (a tar header block).
pub(crate) const HEAD_BYTES: u64 = 512;

/// What a stream's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sniffed {
    /// gzip or zstd, or a plain tar (a ustar header block).
    Tar(Compression),
    /// A compression criu2core does not read: its name.
    Refused(&'static str),
    /// Anything else (not a tar, or too short to tell).
    Other,
}

/// What the first bytes `head` (up to [`HEAD_BYTES`]) say a stream is.
pub(crate) fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Tar(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Sniffed::Tar(Compression::Zstd)
    } else if head.starts_with(b"BZh") {
        Sniffed::Refused("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Sniffed::Refused("xz")
    } else if head.get(257..262) == Some(b"ustar") {
        // POSIX and GNU tar headers.
        Sniffed::Tar(Compression::None)
    } else {
        Sniffed::Other
    }
}

/// The compression of a tar whose first bytes are `head`, or `None` if
/// they are no tar's (nor a compressed one's) that criu2core reads: how
/// inputs are told apart, never an error.
pub(crate) fn tar_compression(head: &[u8]) -> Option<Compression> {
    match sniff(head) {
        Sniffed::Tar(c) => Some(c),
        Sniffed::Refused(_) | Sniffed::Other => None,
    }
}

/// The error for a stream `what` compressed as `name` says.
fn refused(what: &str, name: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {name}-compressed, which criu2core does not read")
}

/// The compression of the stream `what` whose first bytes are `head`,
/// where anything neither gzip nor zstd is taken for a plain tar (a
/// layer, whose tar reader says if it is none); bzip2 and xz refused.
pub(crate) fn layer_compression(head: &[u8], what: &str) -> Result<Compression> {
    match sniff(head) {
        Sniffed::Tar(c) => Ok(c),
        Sniffed::Refused(name) => Err(refused(what, name)),
        Sniffed::Other => Ok(Compression::None),
    }
}

/// The compression of the archive `what` whose first bytes are `head`:
/// a plain tar must start with a ustar header; bzip2 and xz refused.
pub(crate) fn archive_compression(head: &[u8], what: &str) -> Result<Compression> {
    match sniff(head) {
        Sniffed::Tar(c) => Ok(c),
        Sniffed::Refused(name) => Err(refused(what, name)),
        Sniffed::Other => bail!("{what}: not a tar, tar.gz or tar.zst archive"),
    }
}

/// A stream decompressed as its [`Compression`] says (`Send` where the
/// stream is).
pub(crate) enum Decoder<R: Read> {
    /// A plain tar, read as it is.
    Plain(R),
    /// gzip (each member of a multi-member stream in turn).
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<R>>>),
    /// zstd.
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// `raw` decompressed as `compression` says (`what` names it in messages).
pub(crate) fn decoder<R: Read>(raw: R, compression: Compression, what: &str) -> Result<Decoder<R>> {
    Ok(match compression {
        Compression::None => Decoder::Plain(raw),
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(1 << 16, raw),
        ))),
        Compression::Zstd => Decoder::Zstd(
            zstd::stream::read::Decoder::new(raw)
                .with_context(|| format!("{what}: cannot start zstd"))?,
        ),
    })
}

/// Up to `len` bytes from the start of `r`.
pub(crate) fn read_head(r: impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(len as usize);
    r.take(len).read_to_end(&mut head)?;
    Ok(head)
}

/// The first `n` bytes of `r` (fewer at its end), and `r` after them.
pub(crate) fn peek<R: Read>(mut r: R, n: u64) -> io::Result<(Vec<u8>, R)> {
    let head = read_head(&mut r, n)?;
    Ok((head, r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_head() -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[257..262].copy_from_slice(b"ustar");
        h
    }

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        let gz = flate2::read::GzEncoder::new(&b"x"[..], flate2::Compression::fast());
        let mut gz_bytes = Vec::new();
        std::io::Read::read_to_end(&mut { gz }, &mut gz_bytes).unwrap();
        let zst = zstd::encode_all(&b"x"[..], 1).unwrap();
        assert_eq!(sniff(&gz_bytes), Sniffed::Tar(Compression::Gzip));
        assert_eq!(sniff(&zst), Sniffed::Tar(Compression::Zstd));
        assert_eq!(sniff(&tar_head()), Sniffed::Tar(Compression::None));
        assert_eq!(sniff(b"BZh91AY&SY"), Sniffed::Refused("bzip2"));
        assert_eq!(sniff(b"\xfd7zXZ\0\0\x04"), Sniffed::Refused("xz"));
        assert_eq!(sniff(b"hello"), Sniffed::Other);
        // A layer need not start with a header to be read as a plain tar;
        // an archive must.
        assert_eq!(layer_compression(b"hello", "l").unwrap(), Compression::None);
        assert!(archive_compression(b"hello", "a").is_err());
        for (c, raw) in [(Compression::Gzip, gz_bytes), (Compression::Zstd, zst)] {
            let mut out = Vec::new();
            decoder(&raw[..], c, "t")
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, b"x", "{c:?}");
        }
    }

    #[test]
    fn bzip2_and_xz_are_refused_alike_by_both_readers() {
        for (head, name) in [(&b"BZh91AY&SY"[..], "bzip2"), (b"\xfd7zXZ\0\0\x04", "xz")] {
            let want = format!("x: {name}-compressed, which criu2core does not read");
            let layer = layer_compression(head, "x").unwrap_err();
            let archive = archive_compression(head, "x").unwrap_err();
            assert_eq!(layer.to_string(), want);
            assert_eq!(archive.to_string(), want);
        }
    }
}
