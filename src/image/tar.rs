//! A small tar reader for image layers and image archives: it yields each
//! member's header (path and link target as bytes, type, size, and where
//! its data starts in the stream) and lets the caller read or skip the
//! data, holding nothing but one header at a time.
//!
//! It reads what the tools that write images write: POSIX ustar (with the
//! `prefix` field), PAX extended headers (`path`, `linkpath`, `size`), GNU
//! long names and long link targets, GNU base-256 sizes, and old V7
//! headers. Extension records are bounded ([`MAX_EXTENSION_BYTES`]), so a
//! hostile archive cannot make it hold more than that. As Go's archive/tar
//! (which writes and reads the layers of Docker, containerd and Podman)
//! does, links, directories, devices and fifos carry no data whatever their
//! size field says. Sparse members are reported as such; their data is not
//! the file's contents.

use std::io::{self, Read, Seek, SeekFrom};

use anyhow::{bail, Context, Result};

/// Most bytes of one PAX extended header, GNU long name or long link
/// target record.
pub const MAX_EXTENSION_BYTES: u64 = 1 << 20;

const BLOCK: u64 = 512;

/// What a member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (or a contiguous file).
    File,
    /// A hard link to an earlier member.
    HardLink,
    /// A symbolic link.
    Symlink,
    /// A directory.
    Dir,
    /// Anything else: devices, fifos, unknown types.
    Other,
}

/// One member's header.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// Ordinal of the member in the archive, from 0 (extension records are
    /// not members).
    pub index: u32,
    /// The path, as recorded.
    pub path: Vec<u8>,
    /// The link target of a link, as recorded.
    pub link: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Bytes of data that follow the header.
    pub size: u64,
    /// Where the data starts in the (uncompressed) stream.
    pub offset: u64,
    /// A GNU or PAX sparse file: the data is a sparse map and chunks.
    pub sparse: bool,
}

/// Reads members one after the other from a tar stream.
pub(crate) struct TarReader<R> {
    inner: R,
    skip: fn(&mut R, u64) -> io::Result<()>,
    /// Length of the whole stream, when known (checked against each member).
    len: Option<u64>,
    pos: u64,
    /// Data bytes of the current member not read yet.
    left: u64,
    /// Padding after the current member's data.
    pad: u64,
    next_index: u32,
    done: bool,
}

fn discard<R: Read>(r: &mut R, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut r.take(n), &mut io::sink())?;
    if copied != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the archive ends inside a member",
        ));
    }
    Ok(())
}

fn seek_over<R: Seek>(r: &mut R, n: u64) -> io::Result<()> {
    let n = i64::try_from(n).map_err(|_| io::Error::other("member too large"))?;
    r.seek(SeekFrom::Current(n)).map(drop)
}

fn pad_of(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

impl<R: Read> TarReader<R> {
    /// Reads a stream from its start, skipping data by reading it (so that
    /// a hashing reader underneath sees every byte).
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            skip: discard::<R>,
            len: None,
            pos: 0,
            left: 0,
            pad: 0,
            next_index: 0,
            done: false,
        }
    }

    fn read_block(&mut self, block: &mut [u8; 512]) -> Result<bool> {
        let mut got = 0;
        while got < block.len() {
            match self.inner.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context(format!("offset {}: cannot read", self.pos)),
            }
        }
        if got == 0 {
            return Ok(false);
        }
        if got < block.len() {
            bail!("offset {}: the archive ends inside a header", self.pos);
        }
        self.pos += BLOCK;
        Ok(true)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        if let Some(len) = self.len {
            if self.pos.checked_add(n).is_none_or(|end| end > len) {
                bail!(
                    "offset {}: {n} bytes of data run past the archive's end ({len})",
                    self.pos
                );
            }
        }
        (self.skip)(&mut self.inner, n).with_context(|| format!("offset {}", self.pos))?;
        self.pos += n;
        Ok(())
    }

    fn read_record(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_EXTENSION_BYTES {
            bail!(
                "offset {}: {what} of {size} bytes (more than {MAX_EXTENSION_BYTES})",
                self.pos
            );
        }
        let mut buf = Vec::with_capacity(size as usize);
        (&mut self.inner)
            .take(size)
            .read_to_end(&mut buf)
            .with_context(|| format!("offset {}: cannot read {what}", self.pos))?;
        if buf.len() as u64 != size {
            bail!("offset {}: the archive ends inside {what}", self.pos);
        }
        self.pos += size;
        let pad = pad_of(size);
        self.skip_bytes(pad)?;
        Ok(buf)
    }

    /// The next member's header, or `None` at the end of the archive (an
    /// all-zero block, or the end of the stream between members). Data of
    /// the previous member not read is skipped.
    pub(crate) fn next_header(&mut self) -> Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        let rest = self
            .left
            .checked_add(self.pad)
            .with_context(|| format!("offset {}: member too large", self.pos))?;
        self.left = 0;
        self.pad = 0;
        self.skip_bytes(rest)?;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax = Pax::default();
        let mut block = [0u8; 512];
        loop {
            let at = self.pos;
            if !self.read_block(&mut block)? {
                if long_name.is_some() || long_link.is_some() || pax.any {
                    bail!("offset {at}: the archive ends after an extension header");
                }
                self.done = true;
                return Ok(None);
            }
            if block.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            check_sum(&block).with_context(|| format!("offset {at}: bad header"))?;
            let size =
                number(&block[124..136]).with_context(|| format!("offset {at}: bad size field"))?;
            let flag = block[156];
            match flag {
                b'x' => {
                    let rec = self.read_record(size, "a PAX header")?;
                    pax.parse(&rec)
                        .with_context(|| format!("offset {at}: bad PAX header"))?;
                    continue;
                }
                b'g' => {
                    // Global PAX records: nothing in them changes where
                    // members are or what they are called for an image.
                    self.read_record(size, "a global PAX header")?;
                    continue;
                }
                b'L' => {
                    long_name = Some(trim_nul(self.read_record(size, "a GNU long name")?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(self.read_record(size, "a GNU long link")?));
                    continue;
                }
                _ => {}
            }
            let ustar = &block[257..263] == b"ustar\0";
            let mut path = match long_name.take().or(pax.path.take()) {
                Some(p) => p,
                None => {
                    let name = field(&block[0..100]);
                    let prefix = if ustar { field(&block[345..500]) } else { &[] };
                    if prefix.is_empty() {
                        name.to_vec()
                    } else {
                        [prefix, b"/", name].concat()
                    }
                }
            };
            let link = long_link
                .take()
                .or(pax.linkpath.take())
                .unwrap_or_else(|| field(&block[157..257]).to_vec());
            let mut sparse = pax.sparse;
            let kind = match flag {
                b'0' | 0 | b'7' if path.ends_with(b"/") => Kind::Dir,
                b'0' | 0 | b'7' => Kind::File,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'5' | b'D' => Kind::Dir,
                b'S' => {
                    sparse = true;
                    Kind::File
                }
                _ => Kind::Other,
            };
            if flag == b'S' && block[482] != 0 {
                // Extension blocks of the sparse map follow the header.
                let mut ext = [0u8; 512];
                loop {
                    let at = self.pos;
                    if !self.read_block(&mut ext)? {
                        bail!("offset {at}: the archive ends inside a sparse map");
                    }
                    if ext[504] == 0 {
                        break;
                    }
                }
            }
            let mut size = pax.size.unwrap_or(size);
            if matches!(flag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6') {
                size = 0;
            }
            if path.is_empty() {
                path = b".".to_vec();
            }
            let offset = self.pos;
            if let Some(len) = self.len {
                if offset.checked_add(size).is_none_or(|end| end > len) {
                    bail!(
                        "offset {at}: member {} claims {size} bytes, past the archive's end ({len})",
                        path.escape_ascii()
                    );
                }
            }
            let index = self.next_index;
            self.next_index = self.next_index.checked_add(1).context("too many members")?;
            self.left = size;
            self.pad = pad_of(size);
            return Ok(Some(Header {
                index,
                path,
                link,
                kind,
                size,
                offset,
                sparse,
            }));
        }
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// Reads a seekable stream of `len` bytes, seeking over data.
    pub(crate) fn seekable(inner: R, len: u64) -> Self {
        let mut r = TarReader::new(inner);
        r.skip = seek_over::<R>;
        r.len = Some(len);
        r
    }
}

impl<R: Read> Read for TarReader<R> {
    /// Reads the current member's data.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("offset {}: the archive ends inside a member", self.pos),
            ));
        }
        self.left -= got as u64;
        self.pos += got as u64;
        Ok(got)
    }
}

/// Extended header records that matter here.
#[derive(Default)]
struct Pax {
    any: bool,
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    sparse: bool,
}

impl Pax {
    /// Parses records `"<len> <key>=<value>\n"`.
    fn parse(&mut self, mut rec: &[u8]) -> Result<()> {
        self.any = true;
        while !rec.is_empty() {
            let sp = rec
                .iter()
                .position(|&b| b == b' ')
                .context("record without length")?;
            let len: usize = std::str::from_utf8(&rec[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .context("record length is not a number")?;
            if len <= sp + 1 || len > rec.len() || rec[len - 1] != b'\n' {
                bail!("record length {len} does not fit");
            }
            let kv = &rec[sp + 1..len - 1];
            let eq = kv
                .iter()
                .position(|&b| b == b'=')
                .context("record without '='")?;
            let (key, value) = (&kv[..eq], &kv[eq + 1..]);
            match key {
                b"path" => self.path = Some(value.to_vec()),
                b"linkpath" => self.linkpath = Some(value.to_vec()),
                b"size" => {
                    self.size = Some(
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .context("size record is not a number")?,
                    )
                }
                k if k.starts_with(b"GNU.sparse.") => self.sparse = true,
                _ => {}
            }
            rec = &rec[len..];
        }
        Ok(())
    }
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(end) = v.iter().position(|&b| b == 0) {
        v.truncate(end);
    }
    v
}

/// A NUL-terminated (or full-width) text field.
fn field(f: &[u8]) -> &[u8] {
    &f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())]
}

/// A numeric field: octal text, or GNU base-256 when the high bit is set.
fn number(f: &[u8]) -> Result<u64> {
    if f[0] & 0x80 != 0 {
        if f[0] & 0x40 != 0 {
            bail!("negative number");
        }
        let mut v: u64 = u64::from(f[0] & 0x3f);
        for &b in &f[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .context("number too large")?;
        }
        return Ok(v);
    }
    let mut v: u64 = 0;
    let mut digits = f
        .iter()
        .skip_while(|&&b| b == b' ' || b == 0)
        .take_while(|&&b| b != b' ' && b != 0);
    for &b in &mut digits {
        if !(b'0'..=b'7').contains(&b) {
            bail!("not an octal number: {}", field(f).escape_ascii());
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .context("number too large")?;
    }
    Ok(v)
}

/// Checks the header checksum (unsigned, or the signed sum old tars wrote).
fn check_sum(block: &[u8; 512]) -> Result<()> {
    let want = number(&block[148..156])?;
    let spaces = 8 * u64::from(b' ');
    let (mut unsigned, mut signed) = (spaces, spaces as i64);
    for (i, &b) in block.iter().enumerate() {
        if !(148..156).contains(&i) {
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
    }
    if want != unsigned && i64::try_from(want).ok() != Some(signed) {
        bail!("checksum mismatch");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar built with the tar crate (GNU headers, long names and links
    /// as GNU records) from `(path, kind, data or link target)`.
    pub(crate) fn build(members: &[(&[u8], Kind, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for &(path, kind, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            let (ty, body): (tar::EntryType, &[u8]) = match kind {
                Kind::File => (tar::EntryType::Regular, data),
                Kind::Dir => (tar::EntryType::Directory, b""),
                Kind::Symlink => (tar::EntryType::Symlink, b""),
                Kind::HardLink => (tar::EntryType::Link, b""),
                Kind::Other => (tar::EntryType::Fifo, b""),
            };
            h.set_entry_type(ty);
            h.set_size(body.len() as u64);
            use std::os::unix::ffi::OsStrExt;
            let p = std::ffi::OsStr::from_bytes(path);
            // Raw names and targets: the tar crate refuses `..` and empty
            // link targets, which hostile archives have.
            if path.len() > 100
                || (matches!(kind, Kind::Symlink | Kind::HardLink) && data.len() > 100)
            {
                if matches!(kind, Kind::Symlink | Kind::HardLink) {
                    b.append_link(&mut h, p, std::ffi::OsStr::from_bytes(data))
                        .unwrap();
                } else {
                    b.append_data(&mut h, p, body).unwrap();
                }
                continue;
            }
            h.as_old_mut().name[..path.len()].copy_from_slice(path);
            if matches!(kind, Kind::Symlink | Kind::HardLink) {
                h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            }
            h.set_cksum();
            b.append(&h, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn all(data: &[u8]) -> Result<Vec<(Header, Vec<u8>)>> {
        let mut r = TarReader::new(data);
        let mut out = Vec::new();
        while let Some(h) = r.next_header()? {
            let mut v = Vec::new();
            r.read_to_end(&mut v)?;
            out.push((h, v));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let long = [b"d/".repeat(80).as_slice(), b"file"].concat();
        let data = build(&[
            (b"./a/", Kind::Dir, b""),
            (b"a/f", Kind::File, b"hello"),
            (&long, Kind::File, b"deep"),
            (
                b"a/l",
                Kind::Symlink,
                &[b"x/".repeat(70).as_slice(), b"t"].concat(),
            ),
            (b"a/h", Kind::HardLink, b"a/f"),
            (b"a/p", Kind::Other, b""),
        ]);
        let got = all(&data).unwrap();
        let kinds: Vec<_> = got.iter().map(|(h, _)| h.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Dir,
                Kind::File,
                Kind::File,
                Kind::Symlink,
                Kind::HardLink,
                Kind::Other
            ]
        );
        assert_eq!(got[1].0.path, b"a/f");
        assert_eq!(got[1].1, b"hello");
        assert_eq!(&data[got[1].0.offset as usize..][..5], b"hello");
        assert_eq!(got[2].0.path, long);
        assert_eq!(got[2].1, b"deep");
        assert_eq!(got[3].0.link.len(), 141);
        assert_eq!(got[4].0.link, b"a/f");
        assert_eq!(
            got.iter().map(|g| g.0.index).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5]
        );
        // Seeking over data gives the same headers and offsets.
        let mut r = TarReader::seekable(io::Cursor::new(&data), data.len() as u64);
        let mut offsets = Vec::new();
        while let Some(h) = r.next_header().unwrap() {
            offsets.push(h.offset);
        }
        assert_eq!(offsets, got.iter().map(|g| g.0.offset).collect::<Vec<_>>());
    }

    fn header(name: &[u8], flag: u8, size: u64) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[100..107].copy_from_slice(b"0000644");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn padded(data: &[u8]) -> Vec<u8> {
        let mut v = data.to_vec();
        v.resize(data.len().div_ceil(512) * 512, 0);
        v
    }

    #[test]
    fn pax_records_override_the_header() {
        let record = |kv: &str| {
            let n = kv.len() + 2;
            let n = n + format!("{}", n + 2).len();
            let r = format!("{n} {kv}\n");
            assert_eq!(r.len(), n);
            r
        };
        let rec = [
            record("path=a/very/long/pax/path"),
            record("size=000000003"),
            record("linkpath=xy"),
        ]
        .concat()
        .into_bytes();
        let mut t = header(b"PaxHeader", b'x', rec.len() as u64).to_vec();
        t.extend(padded(&rec));
        t.extend(header(b"short", b'0', 0));
        t.extend(padded(b"abc"));
        t.extend([0u8; 1024]);
        let got = all(&t).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.path, b"a/very/long/pax/path");
        assert_eq!(got[0].0.size, 3);
        assert_eq!(got[0].1, b"abc");
        assert_eq!(got[0].0.index, 0);
    }

    #[test]
    fn links_and_dirs_carry_no_data() {
        // A symlink whose size field claims data: the next header follows
        // right after it, as Go's archive/tar reads it.
        let mut t = header(b"l", b'2', 600).to_vec();
        t.extend(header(b"f", b'0', 2));
        t.extend(padded(b"ok"));
        let got = all(&t).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0.kind, got[0].0.size), (Kind::Symlink, 0));
        assert_eq!(got[1].1, b"ok");
    }

    #[test]
    fn hostile_headers_fail_cleanly() {
        // Checksum.
        let mut h = header(b"f", b'0', 0);
        h[0] = b'g';
        assert!(all(&h).unwrap_err().to_string().contains("bad header"));
        // An extension record larger than the bound is refused before it
        // is read.
        let t = header(b"././@LongLink", b'L', MAX_EXTENSION_BYTES + 1);
        let err = format!("{:#}", all(&t).unwrap_err());
        assert!(err.contains("GNU long name"), "{err}");
        // Data past the end of a stream of known length.
        let t = header(b"f", b'0', 4096);
        let mut r = TarReader::seekable(io::Cursor::new(&t), 512);
        assert!(format!("{:#}", r.next_header().unwrap_err()).contains("past the archive's end"));
        // A stream that ends inside a member's data.
        let mut t = header(b"f", b'0', 4096).to_vec();
        t.extend([1u8; 100]);
        assert!(all(&t).is_err());
        // A base-256 size of 2^64 - 1: an error when skipped, not an
        // overflow.
        let mut h = header(b"f", b'0', 0);
        h[124..128].copy_from_slice(&[0x80, 0, 0, 0]);
        h[128..136].copy_from_slice(&[0xff; 8]);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut r = TarReader::new(&h[..]);
        assert_eq!(r.next_header().unwrap().unwrap().size, u64::MAX);
        assert!(r.next_header().is_err());
        // An extension header with nothing after it.
        let t = header(b"././@LongLink", b'L', 3).to_vec();
        let t = [t, padded(b"abc")].concat();
        assert!(all(&t).is_err());
        // Bad PAX records.
        for rec in [
            &b"99 path=x\n"[..],
            b"x path=y\n",
            b"9 pathx\n",
            b"11 size=zz\n",
        ] {
            let mut t = header(b"P", b'x', rec.len() as u64).to_vec();
            t.extend(padded(rec));
            t.extend(header(b"f", b'0', 0));
            assert!(all(&t).is_err(), "{}", rec.escape_ascii());
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"00000000012\0").unwrap(), 10);
        assert_eq!(number(b"     12 \0\0\0\0").unwrap(), 10);
        assert_eq!(number(b"\0\0\0\0").unwrap(), 0);
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 1;
        b256[10] = 2;
        assert_eq!(number(&b256).unwrap(), 513);
        b256[0] = 0xff;
        assert!(number(&b256).is_err());
        assert!(number(b"0009\0").is_err());
    }
}
