//! The one tar reader, for checkpoint archives, rootfs diffs, image
//! archives and image layers alike, all of which may come from hosts that
//! are compromised: it reads headers one by one, holds no more than one
//! member's name (bounded by [`MAX_NAME_BYTES`]) and one PAX header
//! (bounded by [`MAX_PAX_BYTES`]), and never expands a sparse member: it
//! only says what the member claims.
//!
//! It reads the POSIX ustar and GNU formats and the extensions real
//! archives use: GNU long names and link targets (`L`, `K`), PAX headers
//! (`x`, with `path`, `linkpath` and `size`; global `g` headers are read
//! and ignored), GNU sparse members (`S`, and PAX sparse formats), GNU
//! directory dumps (`D`, a directory), old headers whose regular file
//! name ends in `/` (a directory) and base-256 sizes. As GNU tar and Go's
//! archive/tar, links, directories, devices and fifos carry no data
//! whatever their size field says. Members are handed out in archive
//! order; the data of the current one can be read through the reader
//! itself, and a source that ends inside it is an error.

use std::io::{self, Read, Seek, SeekFrom};

use anyhow::{bail, Context, Result};

use crate::error::{fault, ErrorKind};
use crate::model::display_bytes;

/// Longest member name or link target accepted: Linux's PATH_MAX. Names
/// are paths inside a checkpoint or a container's filesystem, which no
/// process could open if they were longer.
pub const MAX_NAME_BYTES: usize = 4096;

/// Largest PAX extended header accepted. Real ones hold a path, a link
/// target, a size and extended attributes (each at most 64 KiB).
pub const MAX_PAX_BYTES: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// Where the bytes of an archive come from, and how to pass over some.
pub trait Source: Read {
    /// Passes over `n` bytes; returns how many there were (fewer at the end).
    fn skip(&mut self, n: u64) -> io::Result<u64>;
}

/// A source chosen when the archive is opened (in place or streamed).
impl<S: Source + ?Sized> Source for Box<S> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        (**self).skip(n)
    }
}

/// A stream that can only be read (a decompressor, or a hashing reader that
/// must see every byte): skipping reads.
pub struct Stream<R>(pub R);

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for Stream<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink())
    }
}

/// A file (or a window onto one): skipping seeks.
pub struct Seekable<R>(pub R);

impl<R: Read> Read for Seekable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read + Seek> Source for Seekable<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let by = i64::try_from(n).map_err(|_| io::Error::other("seek too far"))?;
        self.0.seek(SeekFrom::Current(by))?;
        Ok(n)
    }
}

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (or a contiguous file, which is one too).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier member.
    HardLink,
    /// A character or block device.
    Device,
    /// A named pipe.
    Fifo,
    /// A sparse file: its data in the archive expands to `real_size` bytes
    /// (holes read as zeros). Never expanded here.
    Sparse {
        /// The size it claims to have once expanded.
        real_size: u64,
    },
    /// Anything else (volume labels, multi-volume parts, vendor types),
    /// with its type flag.
    Other(u8),
}

/// One member's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its position among the archive's members, from 0 (extension headers
    /// are not members).
    pub index: usize,
    /// Its name, as bytes (not necessarily UTF-8).
    pub name: Vec<u8>,
    /// The target of a link (empty for other members).
    pub link: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Bytes of data it has in the archive.
    pub size: u64,
    /// Where its data starts in the (uncompressed) archive.
    pub data_offset: u64,
}

/// Reads the members of a tar archive in order.
pub struct TarReader<S> {
    src: S,
    /// Bytes consumed from the source.
    pos: u64,
    /// Where the current member's data ends, and where the next header is.
    data_end: u64,
    next: u64,
    /// The archive's length, where known: no member may claim data past it.
    limit: Option<u64>,
    members: usize,
    /// The current member's name, for messages.
    current: Vec<u8>,
}

/// What extension headers said about the member that follows them.
#[derive(Default)]
struct Pending {
    name: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    sparse_name: Option<Vec<u8>>,
    sparse_size: Option<u64>,
    sparse: bool,
}

impl<S: Source> TarReader<S> {
    /// A reader at the start of `src`, an archive of `limit` bytes if known.
    pub fn new(src: S, limit: Option<u64>) -> TarReader<S> {
        TarReader {
            src,
            pos: 0,
            data_end: 0,
            next: 0,
            limit,
            members: 0,
            current: Vec::new(),
        }
    }

    /// The source, positioned wherever reading stopped.
    pub fn into_inner(self) -> S {
        self.src
    }

    /// Reads exactly `buf.len()` bytes, or returns how many there were.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let got = crate::stdext::read_full(&mut self.src, buf)?;
        self.pos += got as u64;
        Ok(got)
    }

    fn block(&mut self) -> Result<Option<[u8; 512]>> {
        let at = self.pos;
        let mut b = [0u8; 512];
        match self
            .fill(&mut b)
            .with_context(|| format!("offset {at}: cannot read"))?
        {
            0 => Ok(None),
            512 => Ok(Some(b)),
            n => bail!("offset {at}: the archive ends inside a header ({n} of 512 bytes)"),
        }
    }

    /// Moves to `to`, which lies ahead.
    fn skip_to(&mut self, to: u64) -> Result<()> {
        let n = to - self.pos;
        let done = self
            .src
            .skip(n)
            .with_context(|| format!("offset {}: cannot read", self.pos))?;
        self.pos += done;
        if done < n {
            bail!(
                "offset {}: the archive ends inside member {}",
                self.pos,
                display_bytes(&self.current)
            );
        }
        Ok(())
    }

    /// The data of an extension header of `size` bytes, which may be at
    /// most `max`.
    /// `at` is where its header is, for messages.
    fn extension(&mut self, at: u64, size: u64, max: u64, what: &str) -> Result<Vec<u8>> {
        if size > max {
            return Err(fault(
                ErrorKind::Limit,
                format!("offset {at}: {what} of {size} bytes, more than {max} (the most accepted)"),
            ));
        }
        let mut data = vec![0u8; size as usize];
        if self.fill(&mut data)? as u64 != size {
            bail!("offset {at}: the archive ends inside a {what}");
        }
        let next = round_up(self.pos)?;
        self.skip_to(next)?;
        Ok(data)
    }

    /// The next member, or `None` at the end of the archive.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        let mut pending = Pending::default();
        loop {
            if self.pos < self.next {
                self.skip_to(self.next)?;
            }
            let at = self.pos;
            let Some(h) = self.block()? else {
                if pending.name.is_some() || pending.link.is_some() || pending.pax.is_some() {
                    bail!("offset {at}: the archive ends after an extension header");
                }
                return Ok(None);
            };
            if h.iter().all(|&b| b == 0) {
                // The end-of-archive marker.
                return Ok(None);
            }
            check_sum(&h).with_context(|| format!("offset {at}"))?;
            let header_size =
                number(&h[124..136]).with_context(|| format!("offset {at}: size field"))?;
            if self.extension_header(&h, at, header_size, &mut pending)? {
                continue;
            }
            return self.member(&h, at, header_size, pending).map(Some);
        }
    }

    /// Reads the extension header `h` (at `at`) into `pending`: a GNU long
    /// name or link target, or a PAX header (a global one is read past).
    /// False if `h` is a member's own header.
    fn extension_header(
        &mut self,
        h: &[u8; 512],
        at: u64,
        size: u64,
        pending: &mut Pending,
    ) -> Result<bool> {
        let flag = h[156];
        match flag {
            b'L' | b'K' => {
                let (what, slot) = if flag == b'L' {
                    ("long name", &mut pending.name)
                } else {
                    ("long link target", &mut pending.link)
                };
                if slot.is_some() {
                    bail!("offset {at}: two {what}s for one member");
                }
                let mut v = self.extension(at, size, MAX_NAME_BYTES as u64 + 1, what)?;
                while v.last() == Some(&0) {
                    v.pop();
                }
                *slot = Some(v);
            }
            b'x' | b'g' => {
                let data = self.extension(at, size, MAX_PAX_BYTES, "PAX header")?;
                // Global defaults (a comment, a charset): nothing a member's
                // identity depends on here.
                if flag == b'x' {
                    if pending.pax.is_some() {
                        bail!("offset {at}: two PAX headers for one member");
                    }
                    pending.pax = Some(pax(&data).with_context(|| format!("offset {at}"))?);
                }
            }
            _ => return Ok(false),
        }
        self.next = self.pos;
        Ok(true)
    }

    /// The member whose own header is `h` (at `at`), with what the
    /// extension headers before it said.
    fn member(
        &mut self,
        h: &[u8; 512],
        at: u64,
        header_size: u64,
        pending: Pending,
    ) -> Result<Member> {
        let flag = h[156];
        let index = self.members;
        self.members += 1;
        let pax = pending.pax.unwrap_or_default();
        let mut kind = self.kind(h, at, &pax)?;
        let name = match (pax.sparse_name, pax.path, pending.name) {
            (Some(n), _, _) | (None, Some(n), _) | (None, None, Some(n)) => n,
            (None, None, None) => header_name(h),
        };
        let link = match (pax.linkpath, pending.link) {
            (Some(l), _) | (None, Some(l)) => l,
            (None, None) => field(&h[157..257]).to_vec(),
        };
        for (what, v) in [("name", &name), ("link target", &link)] {
            if v.len() > MAX_NAME_BYTES {
                return Err(fault(
                    ErrorKind::Limit,
                    format!(
                        "offset {at}: a {what} of {} bytes, more than {MAX_NAME_BYTES} (the most accepted)",
                        v.len()
                    ),
                ));
            }
        }
        // An old header's regular file whose name ends in `/` is a
        // directory (GNU tar reads it so).
        if kind == Kind::File && name.ends_with(b"/") {
            kind = Kind::Dir;
        }
        // Links, directories, devices and fifos have no data whatever their
        // size field says, as in GNU tar; a GNU directory dump (`D`)
        // carries its listing, which is read past.
        let size = match flag {
            b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => 0,
            _ => pax.size.unwrap_or(header_size),
        };
        let data_offset = self.pos;
        let data_end = data_offset
            .checked_add(size)
            .with_context(|| format!("offset {at}: size {size} overflows"))?;
        if let Some(limit) = self.limit {
            if data_end > limit {
                bail!(
                    "offset {at}: member {} claims {size} bytes at offset {data_offset}, past the archive's end ({limit})",
                    display_bytes(&name)
                );
            }
        }
        self.data_end = data_end;
        self.next = round_up(data_end)?;
        self.current.clone_from(&name);
        Ok(Member {
            index,
            name,
            link,
            kind,
            size,
            data_offset,
        })
    }

    /// What the member with header `h` is, reading past the blocks of a
    /// GNU sparse map.
    fn kind(&mut self, h: &[u8; 512], at: u64, pax: &Pax) -> Result<Kind> {
        let flag = h[156];
        let kind = match flag {
            b'0' | 0 | b'7' => Kind::File,
            b'1' => Kind::HardLink,
            b'2' => Kind::Symlink,
            b'3' | b'4' => Kind::Device,
            b'5' | b'D' => Kind::Dir,
            b'6' => Kind::Fifo,
            b'S' => Kind::Sparse {
                real_size: number(&h[483..495])
                    .with_context(|| format!("offset {at}: sparse size field"))?,
            },
            other => Kind::Other(other),
        };
        if flag == b'S' && h[482] != 0 {
            // Further sparse maps follow in blocks of their own.
            loop {
                let ext_at = self.pos;
                let ext = self.block()?.with_context(|| {
                    format!("offset {ext_at}: the archive ends inside a sparse map")
                })?;
                if ext[504] == 0 {
                    break;
                }
            }
        }
        Ok(if pax.sparse {
            Kind::Sparse {
                real_size: pax.sparse_size.unwrap_or(0),
            }
        } else {
            kind
        })
    }
}

/// Reads the data of the current member (nothing after its last byte).
impl<S: Source> Read for TarReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.data_end.saturating_sub(self.pos)) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.src.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "offset {}: the archive ends inside member {}",
                    self.pos,
                    display_bytes(&self.current)
                ),
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

fn round_up(v: u64) -> Result<u64> {
    v.checked_add(BLOCK - 1)
        .map(|v| v & !(BLOCK - 1))
        .context("offset overflows")
}

/// A NUL-terminated header field.
fn field(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// The name in the header itself: POSIX ustar puts a prefix before it.
fn header_name(h: &[u8; 512]) -> Vec<u8> {
    let name = field(&h[0..100]);
    if &h[257..263] == b"ustar\0" {
        let prefix = field(&h[345..500]);
        if !prefix.is_empty() {
            return [prefix, b"/", name].concat();
        }
    }
    name.to_vec()
}

/// A numeric field: octal digits, or base-256 (GNU) when the top bit of
/// the first byte is set.
fn number(b: &[u8]) -> Result<u64> {
    if b[0] & 0x80 != 0 {
        if b[0] & 0x40 != 0 {
            bail!("negative base-256 number");
        }
        let mut v: u64 = u64::from(b[0] & 0x3f);
        for &c in &b[1..] {
            if v >> 56 != 0 {
                bail!("base-256 number too large");
            }
            v = v << 8 | u64::from(c);
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let digits = b
        .iter()
        .skip_while(|&&c| c == b' ' || c == 0)
        .take_while(|&&c| c != b' ' && c != 0);
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            bail!("{:?} is not an octal number", display_bytes(b));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .context("octal number too large")?;
    }
    Ok(v)
}

/// The header checksum: the sum of its bytes with the checksum field taken
/// as spaces, unsigned (POSIX) or signed (some old tars).
fn check_sum(h: &[u8; 512]) -> Result<()> {
    let want = number(&h[148..156]).context("checksum field")?;
    let field: u64 = h[148..156].iter().map(|&b| u64::from(b)).sum();
    let spaces = 8 * u64::from(b' ');
    let unsigned = h.iter().map(|&b| u64::from(b)).sum::<u64>() - field + spaces;
    if want == unsigned {
        return Ok(());
    }
    let rest = h[..148].iter().chain(&h[156..]);
    let signed: i64 = rest.map(|&b| i64::from(b as i8)).sum::<i64>() + spaces as i64;
    if i64::try_from(want).ok() != Some(signed) {
        bail!("header checksum mismatch (not a tar header)");
    }
    Ok(())
}

/// The records of a PAX extended header that matter here.
fn pax(data: &[u8]) -> Result<Pax> {
    let mut out = Pax::default();
    let mut rest = data;
    while !rest.is_empty() {
        // "LEN KEY=VALUE\n", LEN counting the whole record.
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .context("malformed PAX record (no length)")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .context("malformed PAX record length")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            bail!("malformed PAX record");
        }
        let record = &rest[sp + 1..len - 1];
        rest = &rest[len..];
        let eq = record
            .iter()
            .position(|&c| c == b'=')
            .context("malformed PAX record (no '=')")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        let num = || -> Result<u64> {
            std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("PAX {} is not a number", display_bytes(key)))
        };
        match key {
            b"path" => out.path = Some(value.to_vec()),
            b"linkpath" => out.linkpath = Some(value.to_vec()),
            b"size" => out.size = Some(num()?),
            b"GNU.sparse.name" => {
                out.sparse = true;
                out.sparse_name = Some(value.to_vec());
            }
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                out.sparse = true;
                out.sparse_size = Some(num()?);
            }
            k if k.starts_with(b"GNU.sparse.") => out.sparse = true,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar built with the tar crate (GNU headers, long names and links
    /// as GNU records) from `(path, kind, data or link target)`; a device
    /// or anything else is written as a fifo.
    pub(crate) fn build(members: &[(&[u8], Kind, &[u8])]) -> Vec<u8> {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let mut b = tar::Builder::new(Vec::new());
        for &(path, kind, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            let link = matches!(kind, Kind::Symlink | Kind::HardLink);
            let (ty, body): (tar::EntryType, &[u8]) = match kind {
                Kind::File => (tar::EntryType::Regular, data),
                Kind::Dir => (tar::EntryType::Directory, b""),
                Kind::Symlink => (tar::EntryType::Symlink, b""),
                Kind::HardLink => (tar::EntryType::Link, b""),
                _ => (tar::EntryType::Fifo, b""),
            };
            h.set_entry_type(ty);
            h.set_size(body.len() as u64);
            let p = OsStr::from_bytes(path);
            // Raw names and targets: the tar crate refuses `..` and empty
            // link targets, which hostile archives have.
            if path.len() > 100 || (link && data.len() > 100) {
                if link {
                    b.append_link(&mut h, p, OsStr::from_bytes(data)).unwrap();
                } else {
                    b.append_data(&mut h, p, body).unwrap();
                }
                continue;
            }
            h.as_old_mut().name[..path.len()].copy_from_slice(path);
            if link {
                h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            }
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A header block for `name` of type `flag` with `size` bytes of data.
    fn header(name: &[u8], flag: u8, size: u64) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        h[100..107].copy_from_slice(b"0000644");
        if size < 1 << 33 {
            h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        } else {
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        seal(&mut h);
        h
    }

    fn seal(h: &mut [u8; 512]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }

    fn member(out: &mut Vec<u8>, name: &[u8], flag: u8, data: &[u8]) {
        out.extend_from_slice(&header(name, flag, data.len() as u64));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }

    fn all(data: &[u8]) -> Result<Vec<(Member, Vec<u8>)>> {
        let mut r = TarReader::new(Seekable(io::Cursor::new(data)), Some(data.len() as u64));
        let mut out = Vec::new();
        while let Some(m) = r.next_member()? {
            let mut d = Vec::new();
            if m.kind == Kind::File {
                r.read_to_end(&mut d)?;
            }
            out.push((m, d));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(120) + "file";
        for (name, data) in [("a.img", &b"abc"[..]), (long.as_str(), &[7u8; 1000][..])] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "lnk", "a.img").unwrap();
        let data = b.into_inner().unwrap();
        let got = all(&data).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].0.name.as_slice(), got[0].1.as_slice()),
            (&b"a.img"[..], &b"abc"[..])
        );
        assert_eq!(got[1].0.name, long.as_bytes());
        assert_eq!(got[1].1, vec![7u8; 1000]);
        assert_eq!(got[1].0.index, 1);
        assert_eq!(
            (got[2].0.kind, got[2].0.link.as_slice()),
            (Kind::Symlink, &b"a.img"[..])
        );
    }

    #[test]
    fn pax_names_and_sizes_win() {
        let mut data = Vec::new();
        let rec = |k: &str, v: &str| {
            let body = format!(" {k}={v}\n");
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            format!("{len}{body}")
        };
        let pax = rec("path", "checkpoint/pages-1.img") + &rec("size", "5");
        member(&mut data, b"PaxHeaders/x", b'x', pax.as_bytes());
        // The header's own size field says 0, as Go writes it for sizes
        // that do not fit: the PAX size is the one that counts.
        data.extend_from_slice(&header(b"short", b'0', 0));
        data.extend_from_slice(b"hello");
        data.resize(data.len().div_ceil(512) * 512, 0);
        member(&mut data, b"next", b'0', b"x");
        let got = all(&data).unwrap();
        assert_eq!(got[0].0.name, b"checkpoint/pages-1.img");
        assert_eq!(got[0].1, b"hello");
        assert_eq!(got[1].0.name, b"next");
    }

    #[test]
    fn bounds_and_damage_are_errors() {
        // A long name longer than PATH_MAX is refused before it is read.
        let mut data = Vec::new();
        data.extend_from_slice(&header(b"././@LongLink", b'L', 1 << 30));
        let e = format!("{:#}", all(&data).unwrap_err());
        assert!(
            e.contains("long name of 1073741824 bytes, more than 4097"),
            "{e}"
        );
        // So is a PAX header of a GiB.
        let mut data = Vec::new();
        data.extend_from_slice(&header(b"x", b'x', 1 << 30));
        let e = format!("{:#}", all(&data).unwrap_err());
        assert!(e.contains("PAX header of 1073741824 bytes"), "{e}");
        // A size past the end of a seekable archive.
        let mut data = Vec::new();
        data.extend_from_slice(&header(b"big", b'0', 1 << 40));
        let e = format!("{:#}", all(&data).unwrap_err());
        assert!(e.contains("past the archive's end"), "{e}");
        // A bad checksum.
        let mut data = header(b"a", b'0', 0).to_vec();
        data[0] = b'b';
        assert!(format!("{:#}", all(&data).unwrap_err()).contains("checksum"));
        // A truncated header.
        let data = header(b"a", b'0', 0)[..100].to_vec();
        assert!(format!("{:#}", all(&data).unwrap_err()).contains("ends inside a header"));
        // An archive that stops inside a member, read as a stream.
        let mut data = header(b"a", b'0', 2000).to_vec();
        data.extend_from_slice(&[1; 100]);
        let mut r = TarReader::new(Stream(io::Cursor::new(data)), None);
        r.next_member().unwrap().unwrap();
        assert!(format!("{:#}", r.next_member().unwrap_err()).contains("ends inside member a"));
    }

    #[test]
    fn sparse_members_are_described_not_expanded() {
        // GNU sparse: 4 GiB claimed, 512 bytes stored, one extension block.
        let mut h = header(b"pages-1.img", b'S', 512);
        h[257..265].copy_from_slice(b"ustar  \0");
        h[483..495].copy_from_slice(format!("{:011o}\0", 1u64 << 32).as_bytes());
        h[482] = 1;
        seal(&mut h);
        let mut data = h.to_vec();
        data.extend_from_slice(&[0; 512]); // the extension block (isextended 0)
        data.extend_from_slice(&[9; 512]);
        member(&mut data, b"after", b'0', b"z");
        let got = all(&data).unwrap();
        assert_eq!(got[0].0.kind, Kind::Sparse { real_size: 1 << 32 });
        assert_eq!((got[0].0.size, got[0].0.data_offset), (512, 1024));
        assert_eq!(
            (got[1].0.name.as_slice(), got[1].1.as_slice()),
            (&b"after"[..], &b"z"[..])
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"00000000017\0").unwrap(), 15);
        assert_eq!(number(b"     17 \0\0\0\0").unwrap(), 15);
        assert_eq!(number(b"\0\0\0\0\0\0\0\0\0\0\0\0").unwrap(), 0);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[4..].copy_from_slice(&(1u64 << 40).to_be_bytes());
        assert_eq!(number(&b256).unwrap(), 1 << 40);
        b256[1] = 1;
        assert!(number(&b256).is_err());
        assert!(number(b"0000000009\0\0").is_err());
        assert!(number(&[0xff; 12]).is_err());
    }

    #[test]
    fn links_dirs_and_directory_dumps() {
        let mut t = Vec::new();
        // A symlink whose size field claims data: the next header follows
        // right after it, as GNU tar and Go's archive/tar read it.
        t.extend_from_slice(&header(b"l", b'2', 600));
        // A GNU directory dump carries its listing, read past.
        member(&mut t, b"dump", b'D', b"Yfile\0\0");
        // An old header's regular file named with a trailing slash.
        member(&mut t, b"old/", b'0', b"");
        member(&mut t, b"f", b'0', b"ok");
        t.extend([0u8; 1024]);
        let got = all(&t).unwrap();
        let kinds: Vec<(&[u8], Kind, u64)> = got
            .iter()
            .map(|(m, _)| (&m.name[..], m.kind, m.size))
            .collect();
        assert_eq!(
            kinds,
            [
                (&b"l"[..], Kind::Symlink, 0),
                (b"dump", Kind::Dir, 7),
                (b"old/", Kind::Dir, 0),
                (b"f", Kind::File, 2),
            ]
        );
        assert_eq!(got[3].1, b"ok");
        // What the tar crate writes, read from a stream that must be read
        // through (a hashing reader's case).
        let data = build(&[
            (b"./a/", Kind::Dir, b""),
            (b"a/h", Kind::HardLink, b"a/f"),
            (b"a/p", Kind::Fifo, b""),
        ]);
        let mut r = TarReader::new(Stream(&data[..]), None);
        let mut kinds = Vec::new();
        while let Some(m) = r.next_member().unwrap() {
            kinds.push(m.kind);
        }
        assert_eq!(kinds, [Kind::Dir, Kind::HardLink, Kind::Fifo]);
    }

    #[test]
    fn a_stream_that_ends_inside_a_member_is_an_error() {
        let mut t = header(b"f", b'0', 4096).to_vec();
        t.extend([1u8; 100]);
        let mut r = TarReader::new(Stream(&t[..]), None);
        let m = r.next_member().unwrap().unwrap();
        assert_eq!(m.size, 4096);
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(e.to_string().contains("ends inside member f"), "{e}");
    }
}
