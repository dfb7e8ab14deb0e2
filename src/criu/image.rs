//! Framing of CRIU protobuf images: a magic header, then entries that are
//! each a 32-bit little-endian length followed by that many bytes of
//! protobuf message. The header is checked by one function
//! ([`first_entry`]) and each entry's length by one other ([`entry_len`]),
//! whether the image is held in memory ([`Image`]) or streamed
//! ([`ImageReader`]).
//!
//! Nothing read from a file is trusted: every length is checked against the
//! bytes that remain, so a corrupt image is an error that names the file
//! and the offset, never a panic or an allocation larger than the file.

use std::io::{BufReader, Read};
use std::sync::Arc;

use anyhow::{Context, Result};
use prost::Message;

use super::magic;
use crate::error::{corrupt, Fault};

/// A CRIU image held in memory, positioned at its next entry.
#[derive(Clone)]
pub struct Image {
    name: String,
    data: Arc<[u8]>,
    pos: usize,
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Where the first entry of an image of `len` bytes starts, given its first
/// two 32-bit words, after checking its magic against `expected`.
fn first_entry(name: &str, words: [Option<u32>; 2], len: u64, expected: u32) -> Result<usize> {
    let bad = |at, what: String| corrupt(name, Some(at), what);
    let first = words[0].ok_or_else(|| {
        bad(
            0,
            format!("{name}: too short for an image header ({len} bytes)"),
        )
    })?;
    if first == magic::IMG_COMMON || first == magic::IMG_SERVICE {
        let second = words[1]
            .ok_or_else(|| bad(4, format!("{name}: truncated image header ({len} bytes)")))?;
        if second != expected {
            return Err(bad(
                4,
                format!(
                    "{name}: offset 4: magic {second:#010x} ({}) where a {} image ({expected:#010x}) was expected",
                    magic::name(second),
                    magic::name(expected)
                ),
            ));
        }
        Ok(8)
    } else if first == expected {
        // inventory.img, and images from CRIU before the common header.
        Ok(4)
    } else {
        Err(bad(
            0,
            format!(
                "{name}: offset 0: magic {first:#010x} ({}) where a {} image ({expected:#010x}) was expected",
                magic::name(first),
                magic::name(expected)
            ),
        ))
    }
}

/// The length of the entry at `at` of image `name`, whose length word is
/// `word` (`None` if fewer than 4 bytes are left) and after which `left`
/// bytes remain; an entry may have at most `max` bytes (a `what`).
fn entry_len(
    name: &str,
    at: u64,
    word: Option<[u8; 4]>,
    left: u64,
    max: usize,
    what: fn() -> &'static str,
) -> Result<usize> {
    let bad = |what: String| corrupt(name, Some(at), what);
    let word = word.ok_or_else(|| {
        bad(format!(
            "{name}: offset {at}: truncated entry header ({left} bytes left)"
        ))
    })?;
    let len = u32::from_le_bytes(word) as usize;
    if len as u64 > left {
        return Err(bad(format!(
            "{name}: offset {at}: entry claims {len} bytes but only {left} remain (truncated or corrupt image)"
        )));
    }
    if len > max {
        return Err(bad(format!(
            "{name}: offset {at}: entry of {len} bytes is larger than any {} ({max} bytes at most)",
            what()
        )));
    }
    Ok(len)
}

impl Image {
    /// Checks the header of `data` against `expected` and positions the
    /// image at its first entry. `name` is used in every error message.
    pub fn parse(
        name: impl Into<String>,
        data: impl Into<Arc<[u8]>>,
        expected: u32,
    ) -> Result<Image> {
        let name = name.into();
        let data = data.into();
        let words = [read_u32(&data, 0), read_u32(&data, 4)];
        let pos = first_entry(&name, words, data.len() as u64, expected)?;
        Ok(Image { name, data, pos })
    }

    /// The raw bytes of the next entry and its offset, or `None` at the end.
    pub fn next_raw(&mut self) -> Result<Option<(usize, &[u8])>> {
        let at = self.pos;
        if at >= self.data.len() {
            return Ok(None);
        }
        let rest = (self.data.len() - at) as u64;
        let word = self.data.get(at..at + 4).and_then(|w| w.try_into().ok());
        let left = if word.is_some() { rest - 4 } else { rest };
        let len = entry_len(&self.name, at as u64, word, left, usize::MAX, || "entry")?;
        let start = at + 4;
        self.pos = start + len;
        Ok(Some((at, &self.data[start..start + len])))
    }

    /// Decodes the next entry as `M`, or returns `None` at the end.
    pub fn entry<M: Message + Default>(&mut self) -> Result<Option<M>> {
        let Some((at, bytes)) = self.next_raw()? else {
            return Ok(None);
        };
        // The entry just read ends where the image now stands.
        let len = bytes.len();
        decode(&self.name, at as u64, &self.data[self.pos - len..self.pos]).map(Some)
    }

    /// Decodes the next entry, which must exist.
    pub fn expect<M: Message + Default>(&mut self) -> Result<M> {
        let at = self.pos as u64;
        let m = self.entry()?;
        present(&self.name, at, m)
    }

    /// Decodes every remaining entry.
    pub fn all<M: Message + Default>(&mut self) -> Result<Vec<M>> {
        let mut out = Vec::new();
        while let Some(m) = self.entry()? {
            out.push(m);
        }
        Ok(out)
    }

    /// The `len` bytes of raw payload that follow an entry, passed over.
    pub fn payload(&mut self, len: u64) -> Result<&[u8]> {
        let at = self.pos;
        self.skip(len)?;
        Ok(&self.data[at..self.pos])
    }

    /// Skips `len` bytes of raw payload that follow an entry.
    pub fn skip(&mut self, len: u64) -> Result<()> {
        let left = (self.data.len() - self.pos.min(self.data.len())) as u64;
        if len > left {
            return Err(corrupt(
                &self.name,
                Some(self.pos as u64),
                format!(
                    "{}: offset {}: payload of {len} bytes runs past the end ({left} bytes left)",
                    self.name, self.pos
                ),
            ));
        }
        self.pos += len as usize;
        Ok(())
    }
}

/// A CRIU image read entry by entry from a stream, never held whole: for
/// images that grow with the checkpoint (pagemaps). Entries longer than
/// `max_entry` are refused, so memory stays bounded whatever the file says.
pub struct ImageReader {
    name: String,
    inner: BufReader<Box<dyn Read + Send + Sync>>,
    len: u64,
    pos: u64,
    max_entry: usize,
    buf: Vec<u8>,
}

impl ImageReader {
    /// Checks the header of the `len`-byte image read from `inner` against
    /// `expected` and positions the reader at its first entry.
    pub fn new(
        name: impl Into<String>,
        inner: Box<dyn Read + Send + Sync>,
        len: u64,
        expected: u32,
        max_entry: usize,
    ) -> Result<ImageReader> {
        let mut r = ImageReader {
            name: name.into(),
            inner: BufReader::with_capacity(64 << 10, inner),
            len,
            pos: 0,
            max_entry,
            buf: Vec::new(),
        };
        let mut word = || -> Result<u32> {
            let b = r.read_bytes(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let first = if len >= 4 { Some(word()?) } else { None };
        let common = matches!(first, Some(m) if m == magic::IMG_COMMON || m == magic::IMG_SERVICE);
        let second = if common && len >= 8 {
            Some(word()?)
        } else {
            None
        };
        let start = first_entry(&r.name, [first, second], len, expected)?;
        r.pos = start as u64;
        Ok(r)
    }

    /// An image held in memory, read the same way.
    #[cfg(feature = "testkit")]
    pub fn from_bytes(
        name: impl Into<String>,
        data: Vec<u8>,
        expected: u32,
    ) -> Result<ImageReader> {
        let len = data.len() as u64;
        ImageReader::new(
            name,
            Box::new(std::io::Cursor::new(data)),
            len,
            expected,
            usize::MAX,
        )
    }

    /// The name given to [`ImageReader::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Byte offset of the next entry.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    fn read_bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut out = vec![0; n];
        self.inner.read_exact(&mut out).with_context(|| {
            format!("{}: offset {}: cannot read {n} bytes", self.name, self.pos)
        })?;
        Ok(out)
    }

    /// Decodes the next entry as `M`, or returns `None` at the end.
    pub fn entry<M: Message + Default>(&mut self) -> Result<Option<M>> {
        let at = self.pos;
        let left = self.len.saturating_sub(at);
        if left == 0 {
            return Ok(None);
        }
        let word = if left < 4 {
            None
        } else {
            let mut word = [0; 4];
            self.inner
                .read_exact(&mut word)
                .with_context(|| format!("{}: offset {at}: cannot read", self.name))?;
            Some(word)
        };
        let rest = if word.is_some() { left - 4 } else { left };
        let len = entry_len(
            &self.name,
            at,
            word,
            rest,
            self.max_entry,
            short_type_name::<M>,
        )?;
        self.buf.resize(len, 0);
        self.inner
            .read_exact(&mut self.buf)
            .with_context(|| format!("{}: offset {at}: cannot read {len} bytes", self.name))?;
        self.pos = at + 4 + len as u64;
        decode(&self.name, at, &self.buf).map(Some)
    }

    /// Decodes the next entry, which must exist.
    pub fn expect<M: Message + Default>(&mut self) -> Result<M> {
        let at = self.pos;
        let m = self.entry()?;
        present(&self.name, at, m)
    }

    /// Bytes left after the next entry's offset.
    pub fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Passes over `len` bytes of raw data that follow an entry.
    pub fn skip(&mut self, len: u64) -> Result<()> {
        let at = self.pos;
        if len > self.remaining() {
            return Err(corrupt(
                &self.name,
                Some(at),
                format!(
                    "{}: offset {at}: {len} bytes of data, but only {} are left",
                    self.name,
                    self.remaining()
                ),
            ));
        }
        let copied = std::io::copy(&mut (&mut self.inner).take(len), &mut std::io::sink())
            .with_context(|| format!("{}: offset {at}: cannot read", self.name))?;
        if copied != len {
            return Err(corrupt(
                &self.name,
                Some(at),
                format!(
                    "{}: offset {at}: ends {} bytes early",
                    self.name,
                    len - copied
                ),
            ));
        }
        self.pos += len;
        Ok(())
    }
}

/// The submessages with field number `tag` inside a message's bytes, each
/// with its offset in `bytes`, without decoding the rest: for repeated
/// fields too large to decode into memory at once.
pub struct Submessages<'a> {
    bytes: &'a [u8],
    pos: usize,
    tag: u64,
}

impl<'a> Submessages<'a> {
    /// The field-`tag` submessages of `bytes`.
    pub fn new(bytes: &'a [u8], tag: u32) -> Submessages<'a> {
        Submessages {
            bytes,
            pos: 0,
            tag: u64::from(tag),
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn advance(&mut self, n: u64) -> Option<()> {
        let end = self.pos.checked_add(usize::try_from(n).ok()?)?;
        (end <= self.bytes.len()).then(|| self.pos = end)
    }
}

impl<'a> Iterator for Submessages<'a> {
    type Item = std::result::Result<(usize, &'a [u8]), usize>;

    /// The next submessage, or `Err(offset)` where the bytes stop making sense.
    fn next(&mut self) -> Option<Self::Item> {
        while self.pos < self.bytes.len() {
            let at = self.pos;
            let Some(key) = self.varint() else {
                return Some(Err(at));
            };
            let ok = match key & 7 {
                0 => self.varint().map(|_| ()),
                1 => self.advance(8),
                5 => self.advance(4),
                2 => match self.varint() {
                    Some(len) if key >> 3 == self.tag => {
                        let start = self.pos;
                        match self.advance(len) {
                            Some(()) => return Some(Ok((start, &self.bytes[start..self.pos]))),
                            None => None,
                        }
                    }
                    Some(len) => self.advance(len),
                    None => None,
                },
                _ => None,
            };
            if ok.is_none() {
                self.pos = self.bytes.len();
                return Some(Err(at));
            }
        }
        None
    }
}

/// Decodes the entry at `at` of image `name`.
fn decode<M: Message + Default>(name: &str, at: u64, bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| {
        anyhow::Error::new(e).context(Fault::corrupt(
            name,
            Some(at),
            format!(
                "{name}: offset {at}: cannot decode {}",
                short_type_name::<M>()
            ),
        ))
    })
}

/// The entry an image must have at `at`.
fn present<M>(name: &str, at: u64, m: Option<M>) -> Result<M> {
    m.ok_or_else(|| {
        corrupt(
            name,
            Some(at),
            format!(
                "{name}: offset {at}: missing {} entry (image ends here)",
                short_type_name::<M>()
            ),
        )
    })
}

fn short_type_name<M>() -> &'static str {
    let full = std::any::type_name::<M>();
    full.rsplit("::").next().unwrap_or(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::PstreeEntry;

    fn framed(magic_words: &[u32], entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in magic_words {
            out.extend_from_slice(&m.to_le_bytes());
        }
        for e in entries {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    fn pstree(pid: u32) -> Vec<u8> {
        PstreeEntry {
            pid,
            ppid: 0,
            pgid: pid,
            sid: pid,
            threads: vec![pid],
        }
        .encode_to_vec()
    }

    #[test]
    fn reads_entries_after_common_header() {
        let data = framed(&[magic::IMG_COMMON, magic::PSTREE], &[pstree(1), pstree(7)]);
        let mut img = Image::parse("pstree.img", data, magic::PSTREE).unwrap();
        let mut all = Vec::new();
        while let Some(e) = img.entry::<PstreeEntry>().unwrap() {
            all.push(e.pid);
        }
        assert_eq!(all, vec![1, 7]);
    }

    #[test]
    fn accepts_bare_magic() {
        let data = framed(&[magic::INVENTORY], &[vec![8, 2]]);
        let mut img = Image::parse("inventory.img", data, magic::INVENTORY).unwrap();
        let inv: crate::proto::Inventory = img.expect().unwrap();
        assert_eq!(inv.img_version, 2);
    }

    #[test]
    fn wrong_magic_names_both() {
        let data = framed(&[magic::IMG_COMMON, magic::MM], &[]);
        let err = Image::parse("core-1.img", data, magic::CORE)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("core-1.img"), "{err}");
        assert!(err.contains("mm") && err.contains("core"), "{err}");
        let err = Image::parse("x.img", vec![1, 2], magic::CORE)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("too short"), "{err}");
    }

    #[test]
    fn truncated_entry_is_an_error_with_offset() {
        let mut data = framed(&[magic::IMG_COMMON, magic::PSTREE], &[pstree(1), pstree(2)]);
        data.truncate(data.len() - 3);
        let mut img = Image::parse("pstree.img", data, magic::PSTREE).unwrap();
        assert!(img.entry::<PstreeEntry>().unwrap().is_some());
        let err = img.entry::<PstreeEntry>().err().unwrap().to_string();
        assert!(err.contains("pstree.img: offset 22"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn huge_length_does_not_allocate() {
        let mut data = framed(&[magic::IMG_COMMON, magic::PSTREE], &[]);
        data.extend_from_slice(&u32::MAX.to_le_bytes());
        data.extend_from_slice(&[0; 16]);
        let mut img = Image::parse("pstree.img", data, magic::PSTREE).unwrap();
        let err = img.entry::<PstreeEntry>().err().unwrap().to_string();
        assert!(
            err.contains("offset 8") && err.contains("4294967295"),
            "{err}"
        );
    }

    #[test]
    fn streamed_images_read_like_held_ones() {
        let entries = [pstree(1), pstree(2)];
        for words in [
            &[magic::IMG_COMMON, magic::PSTREE][..],
            &[magic::PSTREE][..],
        ] {
            let data = framed(words, &entries);
            let mut held = Image::parse("pstree.img", data.clone(), magic::PSTREE).unwrap();
            let mut r = ImageReader::from_bytes("pstree.img", data, magic::PSTREE).unwrap();
            for _ in 0..3 {
                assert_eq!(held.pos as u64, r.offset());
                let a: Option<PstreeEntry> = held.entry().unwrap();
                assert_eq!(a, r.entry().unwrap());
            }
        }
        let err = |data: Vec<u8>, max: usize| {
            let len = data.len() as u64;
            let cur = Box::new(std::io::Cursor::new(data));
            let mut r = ImageReader::new("pstree.img", cur, len, magic::PSTREE, max)?;
            while r.entry::<PstreeEntry>()?.is_some() {}
            Ok::<_, anyhow::Error>(())
        };
        let mut data = framed(&[magic::IMG_COMMON, magic::PSTREE], &entries);
        let e = err(data.clone(), 4).unwrap_err().to_string();
        assert!(
            e.contains("offset 8: entry of 10 bytes is larger than any"),
            "{e}"
        );
        data.truncate(data.len() - 1);
        let e = err(data.clone(), 100).unwrap_err().to_string();
        assert!(
            e.contains("offset 22: entry claims 10 bytes but only 9 remain"),
            "{e}"
        );
        data.truncate(24);
        let e = err(data, 100).unwrap_err().to_string();
        assert!(
            e.contains("offset 22: truncated entry header (2 bytes left)"),
            "{e}"
        );
        let e = err(vec![1, 2], 100).unwrap_err().to_string();
        assert!(e.contains("too short for an image header"), "{e}");
    }

    #[test]
    fn submessages_are_found_without_decoding_the_rest() {
        use crate::proto::{Mm, Vma};
        let vma = |start| Vma {
            start,
            end: start + 4096,
            fd: -1,
            ..Default::default()
        };
        let mm = Mm {
            arg_start: 7,
            saved_auxv: vec![6, 4096],
            vmas: vec![vma(0x1000), vma(0x9000)],
            ..Default::default()
        };
        let bytes = mm.encode_to_vec();
        let found: Vec<u64> = Submessages::new(&bytes, 14)
            .map(|r| Vma::decode(r.unwrap().1).unwrap().start)
            .collect();
        assert_eq!(found, vec![0x1000, 0x9000]);
        let head = crate::proto::MmHead::decode(&bytes[..]).unwrap();
        assert_eq!((head.arg_start, head.saved_auxv.len()), (7, 2));
        let cut = &bytes[..bytes.len() - 3];
        assert!(Submessages::new(cut, 14).any(|r| r.is_err()));
    }

    #[test]
    fn garbage_entry_is_a_decode_error() {
        let data = framed(&[magic::IMG_COMMON, magic::PSTREE], &[vec![0xff; 5]]);
        let mut img = Image::parse("pstree.img", data, magic::PSTREE).unwrap();
        let err = format!("{:#}", img.entry::<PstreeEntry>().err().unwrap());
        assert!(
            err.contains("pstree.img: offset 8: cannot decode PstreeEntry"),
            "{err}"
        );
    }
}
