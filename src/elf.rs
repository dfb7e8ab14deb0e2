//! The ELF core writer. It takes a complete description of a core file
//! (header values, notes, segments and where each segment's bytes come
//! from) and writes it in one forward pass: every offset is reserved first
//! with `object`'s ELF writer ([`lay_out`], once), then the headers and
//! notes are streamed out, then the segment data is copied from its source
//! files while zero runs are left as holes; the extents of sources already
//! written at their places are left as they are. Into a file the copies are made with
//! copy_file_range where the kernel allows; into any other seekable
//! writer, through a buffer.
//!
//! Nothing here knows about CRIU.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, Writer};
use object::write::StreamingBuffer;
use object::Endianness;

use crate::blobio::BlobFile;
use crate::join::{Join, Joiner};
use crate::model::Blob;
use crate::notes::Note;

/// Bytes of an object read at once while copying it into a core.
const OBJECT_CHUNK: u64 = 8 << 20;

/// Values for the ELF header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElfTarget {
    /// ELFCLASS64 (true) or ELFCLASS32.
    pub is_64: bool,
    /// ELFDATA2MSB (true) or ELFDATA2LSB.
    pub big_endian: bool,
    /// e_machine.
    pub machine: u16,
    /// e_flags.
    pub flags: u32,
}

/// Segment permission bits (p_flags).
pub(crate) mod pf {
    /// Executable.
    pub const X: u32 = 1;
    /// Writable.
    pub const W: u32 = 2;
    /// Readable.
    pub const R: u32 = 4;
}

/// A piece of a segment's file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extent {
    /// `len` bytes from `sources[source]`, starting `offset` bytes into its range.
    Copy {
        /// Index into [`CoreFile::sources`].
        source: usize,
        /// Offset within the source's range.
        offset: u64,
        /// Byte count.
        len: u64,
    },
    /// `len` zero bytes, written as a hole.
    Zero(u64),
}

impl Extent {
    /// Byte count.
    pub(crate) fn len(&self) -> u64 {
        match *self {
            Extent::Copy { len, .. } | Extent::Zero(len) => len,
        }
    }
}

/// A PT_LOAD segment's header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// p_vaddr.
    pub vaddr: u64,
    /// p_memsz.
    pub memsz: u64,
    /// p_filesz: the total length of the segment's extents.
    pub filesz: u64,
    /// p_flags ([`pf`] bits).
    pub flags: u32,
}

/// The PT_LOAD segments of a core, asked for one at a time, so that a
/// description of every extent of every segment need never sit in memory:
/// the writer reads the headers once, then the extents once, in order.
pub(crate) trait Segments {
    /// How many segments there are.
    fn count(&self) -> usize;
    /// Segment `i`'s header.
    fn header(&self, i: usize) -> SegmentHeader;
    /// Calls `f(i, extent)` with each extent of every segment `i`'s file
    /// contents: the segments in order, each one's extents in order.
    fn for_each_extent(&self, f: &mut dyn FnMut(usize, Extent) -> Result<()>) -> Result<()>;
}

/// The PT_NOTE contents of a core, made one at a time and as often as
/// asked, so that a process with many threads never has every thread's
/// notes in memory at once: the writer goes through them once to size the
/// PT_NOTE segment and once to write it.
pub(crate) trait Notes {
    /// Calls `f` with each note, in order; the same notes on every call.
    fn for_each(&self, f: &mut dyn FnMut(&Note) -> Result<()>) -> Result<()>;
}

/// Everything a core file holds.
pub(crate) struct CoreFile<'a> {
    /// Header values.
    pub target: ElfTarget,
    /// Page size; segment data starts on a page boundary.
    pub page_size: u64,
    /// PT_NOTE contents, in order.
    pub notes: &'a dyn Notes,
    /// PT_LOAD segments, in address order.
    pub segments: &'a dyn Segments,
    /// Files that segment data is copied from.
    pub sources: &'a [Blob],
}

/// What writing a core produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Apparent size of the core.
    pub size: u64,
    /// Bytes of memory contents copied into it (the rest are holes or
    /// headers).
    pub copied: u64,
}

/// Where a core is written: its headers and notes from its start, then
/// each copy of segment data at its offset, holes left unwritten.
pub(crate) trait Output {
    /// A writer positioned at the start of the core.
    fn start(&mut self) -> io::Result<&mut dyn Write>;
    /// Copies `len` bytes at `from` in `src` to `to` in the core.
    fn copy(&mut self, src: &File, from: u64, len: u64, to: u64) -> io::Result<()>;
    /// Writes `bytes` at `to` in the core (data that is not in a local
    /// file: an object's ranges).
    fn write_at(&mut self, bytes: &[u8], to: u64) -> io::Result<()>;
    /// Ends the core at `len` bytes (the last bytes may be a hole).
    fn finish(&mut self, len: u64) -> io::Result<()>;
}

/// An empty file, written with copy_file_range: the bytes stay in the
/// kernel and, on filesystems that can (XFS, btrfs), are shared with the
/// pages file rather than copied; holes stay holes.
pub(crate) struct FileOutput<'a>(pub &'a File);

impl Output for FileOutput<'_> {
    fn start(&mut self) -> io::Result<&mut dyn Write> {
        Ok(&mut self.0)
    }

    fn copy(&mut self, src: &File, from: u64, len: u64, to: u64) -> io::Result<()> {
        copy_range(src, from, len, self.0, to)
    }

    fn write_at(&mut self, bytes: &[u8], to: u64) -> io::Result<()> {
        self.0.write_all_at(bytes, to)
    }

    fn finish(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

/// Any empty seekable writer: copies go through a buffer, holes are
/// seeked over (and read as zeros, as they do in a file or a `Cursor`).
pub(crate) struct SeekOutput<W> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write + Seek> SeekOutput<W> {
    /// Writes into `inner`, which must be empty.
    pub(crate) fn new(inner: W) -> SeekOutput<W> {
        SeekOutput {
            inner,
            buf: Vec::new(),
        }
    }
}

impl<W: Write + Seek> Output for SeekOutput<W> {
    fn start(&mut self) -> io::Result<&mut dyn Write> {
        self.inner.seek(SeekFrom::Start(0))?;
        Ok(&mut self.inner)
    }

    fn copy(&mut self, src: &File, from: u64, len: u64, to: u64) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(to))?;
        let inner = &mut self.inner;
        copy_through(src, from, len, &mut self.buf, &mut |bytes, _| {
            inner.write_all(bytes)
        })
    }

    fn write_at(&mut self, bytes: &[u8], to: u64) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(to))?;
        self.inner.write_all(bytes)
    }

    fn finish(&mut self, len: u64) -> io::Result<()> {
        // A hole at the end is made by writing its last byte.
        if len > 0 && self.inner.seek(SeekFrom::End(0))? < len {
            self.inner.seek(SeekFrom::Start(len - 1))?;
            self.inner.write_all(&[0])?;
        }
        self.inner.flush()
    }
}

/// Zeros written for the holes of a core going to a stream.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// A stream written front to back (an upload, a compressor): the core's
/// holes are written as zeros, as a stream has no holes.
pub(crate) struct SinkOutput<W> {
    inner: W,
    pos: u64,
    buf: Vec<u8>,
}

impl<W: Write> SinkOutput<W> {
    /// Writes into `inner` from its start.
    pub(crate) fn new(inner: W) -> SinkOutput<W> {
        SinkOutput {
            inner,
            pos: 0,
            buf: Vec::new(),
        }
    }

    /// The stream, once the core is written.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    /// Writes zeros up to offset `to`.
    fn zeros_to(&mut self, to: u64) -> io::Result<()> {
        if to < self.pos {
            return Err(io::Error::other(format!(
                "a stream cannot go back from offset {} to {to}",
                self.pos
            )));
        }
        while self.pos < to {
            let n = (to - self.pos).min(ZEROS.len() as u64) as usize;
            self.write_all(&ZEROS[..n])?;
        }
        Ok(())
    }
}

impl<W: Write> Write for SinkOutput<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Output for SinkOutput<W> {
    fn start(&mut self) -> io::Result<&mut dyn Write> {
        if self.pos != 0 {
            return Err(io::Error::other("the stream is not at its start"));
        }
        Ok(self)
    }

    fn copy(&mut self, src: &File, from: u64, len: u64, to: u64) -> io::Result<()> {
        self.zeros_to(to)?;
        let mut buf = std::mem::take(&mut self.buf);
        let done = copy_through(src, from, len, &mut buf, &mut |bytes, _| {
            self.write_all(bytes)
        });
        self.buf = buf;
        done
    }

    fn write_at(&mut self, bytes: &[u8], to: u64) -> io::Result<()> {
        self.zeros_to(to)?;
        self.write_all(bytes)
    }

    fn finish(&mut self, len: u64) -> io::Result<()> {
        self.zeros_to(len)?;
        self.flush()
    }
}

/// The bytes of one note: its header, its owner's name and its contents,
/// each padded to 4 bytes.
fn encode_note(n: &Note, big_endian: bool, out: &mut Vec<u8>) -> Result<()> {
    let desc_len = u32::try_from(n.desc.len()).with_context(|| {
        format!(
            "note {:#x} is too large for ELF ({} bytes)",
            n.kind,
            n.desc.len()
        )
    })?;
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let pad4 = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(&u32b(n.name.len() as u32 + 1));
    out.extend_from_slice(&u32b(desc_len));
    out.extend_from_slice(&u32b(n.kind));
    out.extend_from_slice(n.name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(&n.desc);
    pad4(out);
    Ok(())
}

/// Calls `f` with the bytes of each note, encoded one at a time into one
/// reused buffer.
fn each_encoded(core: &CoreFile, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let mut buf = Vec::new();
    core.notes.for_each(&mut |n| {
        buf.clear();
        encode_note(n, core.target.big_endian, &mut buf)?;
        f(&buf)
    })
}

/// The length of the PT_NOTE contents: the notes are encoded to size
/// them, so what is reserved is what the encoder writes.
fn notes_len(core: &CoreFile) -> Result<u64> {
    if !core.page_size.is_power_of_two() {
        bail!("page size {} is not a power of two", core.page_size);
    }
    let mut notes_len = 0u64;
    each_encoded(core, &mut |bytes| {
        notes_len += bytes.len() as u64;
        Ok(())
    })?;
    Ok(notes_len)
}

/// Lays `core` out: every offset reserved as `object`'s writer reserves
/// them, the notes encoded once to size them. What [`write_core`] and
/// [`for_each_placed`] follow.
pub(crate) fn lay_out(core: &CoreFile) -> Result<Layout> {
    let notes_len = notes_len(core)?;
    let mut sink = StreamingBuffer::new(io::sink());
    let mut w = Writer::new(endianness(core.target), core.target.is_64, &mut sink);
    reserve(core, notes_len, &mut w)
}

/// The byte order of `target`, as `object` names it.
fn endianness(target: ElfTarget) -> Endianness {
    if target.big_endian {
        Endianness::Big
    } else {
        Endianness::Little
    }
}

/// Writes `core`, laid out as `layout`, to `out`: its headers and notes,
/// then every extent but those of the sources in `written` (which are in
/// the output already, each at its place), then its size.
pub(crate) fn write_core(
    core: &CoreFile,
    layout: &Layout,
    out: &mut dyn Output,
    written: &[usize],
) -> Result<Written> {
    let head = out.start().context("cannot write core headers")?;
    let mut buffer = StreamingBuffer::new(BufWriter::with_capacity(1 << 20, head));
    write_head(core, layout, &mut buffer)?;
    buffer.result().context("cannot write core headers")?;
    buffer
        .into_inner()
        .flush()
        .context("cannot write core headers")?;
    let copied = write_data(core, layout, out, written)?;
    out.finish(layout.end)
        .context("cannot set core file size")?;
    Ok(Written {
        size: layout.end,
        copied,
    })
}

/// Where the parts of a core go, as `object`'s writer reserved them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The length of the PT_NOTE contents.
    notes_len: u64,
    /// Whether the real phnum is in the first section header (PN_XNUM).
    extended: bool,
    /// Where the notes start.
    notes_off: u64,
    /// Where segment data starts (a page boundary).
    data_start: u64,
    /// The core's size.
    end: u64,
}

impl Layout {
    /// The core's size.
    pub(crate) fn size(&self) -> u64 {
        self.end
    }
}

/// Reserves every range of the core and computes every offset.
fn reserve(core: &CoreFile, notes_len: u64, w: &mut Writer) -> Result<Layout> {
    let segments = core.segments;
    let count = segments.count();
    let phnum = u32::try_from(count + 1).context("too many segments for ELF")?;
    w.reserve_file_header();
    w.reserve_program_headers(phnum);
    let extended = phnum >= u32::from(elf::PN_XNUM);
    if extended {
        // More segments than e_phnum can count: the real number goes in the
        // first section header's sh_info (PN_XNUM).
        w.reserve_null_section_index();
        w.reserve_section_headers();
    }
    let notes_off = w.reserve(notes_len, 4);
    let data_start = w.reserved_len().next_multiple_of(core.page_size);
    let mut end = data_start;
    for i in 0..count {
        end = end
            .checked_add(segments.header(i).filesz)
            .context("core file size overflows")?;
    }
    if !core.target.is_64 {
        check_fits_32_bits(segments, end)?;
    }
    Ok(Layout {
        notes_len,
        extended,
        notes_off,
        data_start,
        end,
    })
}

/// Refuses what a 32-bit core cannot describe: a file past 4 GiB, memory
/// above 4 GiB.
fn check_fits_32_bits(segments: &dyn Segments, end: u64) -> Result<()> {
    if end > u64::from(u32::MAX) {
        bail!("a 32-bit core cannot hold {end} bytes");
    }
    for i in 0..segments.count() {
        let h = segments.header(i);
        if h.vaddr.checked_add(h.memsz).is_none_or(|e| e > 1 << 32) {
            bail!(
                "a 32-bit core cannot hold memory at {:#x}-{:#x}",
                h.vaddr,
                h.vaddr.saturating_add(h.memsz)
            );
        }
    }
    Ok(())
}

/// Writes the ELF header, the program headers and the notes, reserving
/// as [`lay_out`] did (and checking that it comes to the same layout).
fn write_head(
    core: &CoreFile,
    planned: &Layout,
    buffer: &mut StreamingBuffer<impl Write>,
) -> Result<()> {
    let t = core.target;
    let notes_len = planned.notes_len;
    let mut w = Writer::new(endianness(t), t.is_64, buffer);
    let layout = reserve(core, notes_len, &mut w)?;
    if layout != *planned {
        bail!("the core's layout changed between planning and writing");
    }
    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_CORE,
        e_machine: elf::Machine(t.machine),
        e_entry: 0,
        e_flags: elf::FileFlags(t.flags),
    })
    .map_err(|e| anyhow::anyhow!("cannot write ELF header: {e}"))?;
    w.write_align_program_headers();
    w.write_program_header(&ProgramHeader {
        p_type: elf::PT_NOTE,
        p_flags: elf::ProgramFlags(0),
        p_offset: layout.notes_off,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: notes_len,
        p_memsz: 0,
        p_align: 4,
    });
    let mut off = layout.data_start;
    for i in 0..core.segments.count() {
        let h = core.segments.header(i);
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: elf::ProgramFlags(h.flags),
            p_offset: off,
            p_vaddr: h.vaddr,
            p_paddr: 0,
            p_filesz: h.filesz,
            p_memsz: h.memsz,
            p_align: core.page_size,
        });
        off += h.filesz;
    }
    if layout.extended {
        w.write_null_section_header();
    }
    w.write_align(4);
    let mut written = 0u64;
    each_encoded(core, &mut |bytes| {
        written += bytes.len() as u64;
        if written > notes_len {
            bail!("the notes grew between sizing and writing");
        }
        w.write(bytes);
        Ok(())
    })?;
    if written != notes_len {
        bail!("the notes shrank between sizing and writing");
    }
    Ok(())
}

/// Writes every segment's extents where `layout` puts them but those of
/// the sources in `written`; returns the bytes of memory contents the
/// core holds (those included).
fn write_data(
    core: &CoreFile,
    layout: &Layout,
    out: &mut dyn Output,
    written: &[usize],
) -> Result<u64> {
    let mut copier = Copier::new(core.sources);
    let mut copied = 0;
    for_each_placed(core, layout, &mut |pos, ext| {
        if let Extent::Copy {
            source,
            offset,
            len,
        } = ext
        {
            if !written.contains(&source) {
                copier.copy(source, offset, len, pos, out)?;
            }
            copied += len;
        }
        Ok(())
    })?;
    copier.flush(out)?;
    Ok(copied)
}

/// Calls `f` with every extent of every segment and where `layout` puts
/// it in the core, checking that each segment gets exactly its p_filesz
/// bytes.
pub(crate) fn for_each_placed(
    core: &CoreFile,
    layout: &Layout,
    f: &mut dyn FnMut(u64, Extent) -> Result<()>,
) -> Result<()> {
    let data_start = layout.data_start;
    let segments = core.segments;
    let count = segments.count();
    let mut pos = data_start;
    // The segment extents are arriving for, and where its data starts.
    let (mut seg, mut seg_start) = (0, data_start);
    // Checks that segment `seg` got all its bytes; returns where the next starts.
    let close = |seg: usize, seg_start: u64, pos: u64| -> Result<u64> {
        let filesz = segments.header(seg).filesz;
        if pos - seg_start != filesz {
            bail!(
                "segment {seg} has {} bytes of extents but p_filesz {filesz}",
                pos - seg_start
            );
        }
        Ok(pos)
    };
    segments.for_each_extent(&mut |i, ext| {
        if i < seg || i >= count {
            bail!("extents of segment {i} come out of order");
        }
        while seg < i {
            seg_start = close(seg, seg_start, pos)?;
            seg += 1;
        }
        f(pos, ext)?;
        pos += ext.len();
        Ok(())
    })?;
    while seg < count {
        seg_start = close(seg, seg_start, pos)?;
        seg += 1;
    }
    Ok(())
}

/// A copy of segment data: `len` bytes at absolute offset `from` of source
/// `source` to offset `to` of the core.
#[derive(Debug, Clone, Copy)]
struct Copy {
    source: usize,
    from: u64,
    to: u64,
    len: u64,
}

impl Join for Copy {
    /// Copies that continue each other in both files are one: mappings
    /// dumped whole, back to back in the pages file and in the core alike,
    /// cost one call.
    fn join(&mut self, next: &Copy) -> bool {
        let ok = self.source == next.source
            && self.from + self.len == next.from
            && self.to + self.len == next.to;
        if ok {
            self.len += next.len;
        }
        ok
    }
}

/// Most sources a core's writer holds open at once.
const MAX_OPEN_SOURCES: usize = 32;

/// Moves extent data into the core, joining copies that continue each
/// other first.
struct Copier<'a> {
    sources: &'a [Blob],
    files: Vec<Option<BlobFile>>,
    /// The sources open now, the first opened first: at most
    /// [`MAX_OPEN_SOURCES`], so that thousands of mapped files need no
    /// more descriptors than a few.
    open: std::collections::VecDeque<usize>,
    pending: Joiner<Copy>,
    /// Where an object's bytes pass on their way into the core.
    buf: Vec<u8>,
}

impl<'a> Copier<'a> {
    fn new(sources: &'a [Blob]) -> Copier<'a> {
        Copier {
            sources,
            files: sources.iter().map(|_| None).collect(),
            open: std::collections::VecDeque::new(),
            pending: Joiner::new(),
            buf: Vec::new(),
        }
    }

    /// Queues `len` bytes at `offset` in `sources[source]` for `pos` in the core.
    fn copy(
        &mut self,
        source: usize,
        offset: u64,
        len: u64,
        pos: u64,
        out: &mut dyn Output,
    ) -> Result<()> {
        let src = self
            .sources
            .get(source)
            .context("extent names an unknown source")?;
        if offset.checked_add(len).is_none_or(|e| e > src.len) {
            bail!(
                "{}: range {offset:#x}+{len:#x} lies beyond its {} bytes",
                src.label,
                src.len
            );
        }
        let copy = Copy {
            source,
            from: src.offset + offset,
            to: pos,
            len,
        };
        match self.pending.push(copy) {
            Some(done) => self.make(done, out),
            None => Ok(()),
        }
    }

    /// Makes the queued copy.
    fn flush(&mut self, out: &mut dyn Output) -> Result<()> {
        match self.pending.take() {
            Some(done) => self.make(done, out),
            None => Ok(()),
        }
    }

    fn make(&mut self, c: Copy, out: &mut dyn Output) -> Result<()> {
        let src = &self.sources[c.source];
        if self.files[c.source].is_none() {
            let f = BlobFile::open_with_readahead(src, crate::blobio::COPY_READAHEAD)
                .with_context(|| format!("{}: cannot open", src.label))?;
            if let Some(local) = f.local() {
                // Sources are read front to back: ask for generous readahead.
                let _ = rustix::fs::fadvise(
                    local,
                    src.offset,
                    std::num::NonZeroU64::new(src.len),
                    rustix::fs::Advice::Sequential,
                );
            }
            // Sources come mostly in order: the one opened first is the
            // one least likely to be read again.
            if self.open.len() >= MAX_OPEN_SOURCES {
                if let Some(old) = self.open.pop_front() {
                    self.files[old] = None;
                }
            }
            self.open.push_back(c.source);
            self.files[c.source] = Some(f);
        }
        let Some(file) = self.files[c.source].as_mut() else {
            bail!("{}: not open", src.label);
        };
        let copied = match file.local() {
            Some(local) => out.copy(local, c.from, c.len, c.to),
            None => copy_object(file, c, &mut self.buf, out),
        };
        copied.with_context(|| {
            format!(
                "{}: cannot copy {} bytes at offset {}",
                src.label, c.len, c.from
            )
        })
    }
}

/// Copies `c` from an object, through `buf` ([`OBJECT_CHUNK`] at a time:
/// each a ranged GET).
fn copy_object(
    file: &mut BlobFile,
    c: Copy,
    buf: &mut Vec<u8>,
    out: &mut dyn Output,
) -> io::Result<()> {
    buf.resize(c.len.min(OBJECT_CHUNK) as usize, 0);
    let mut done = 0;
    while done < c.len {
        let n = (c.len - done).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], c.from + done)?;
        out.write_at(&buf[..n], c.to + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Copies `len` bytes at `from` in `src` to `to` in `dst` with
/// copy_file_range, so the data stays in the kernel (and is shared, not
/// copied, on filesystems that can reflink); falls back to reads and writes
/// where the kernel cannot copy between the two files.
fn copy_range(src: &File, from: u64, len: u64, dst: &File, to: u64) -> io::Result<()> {
    let (mut off_in, mut off_out, mut left) = (from, to, len);
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        match rustix::fs::copy_file_range(src, Some(&mut off_in), dst, Some(&mut off_out), chunk) {
            Ok(0) => return Err(ended(len, left)),
            Ok(n) => left -= n as u64,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::PERM,
            ) => {
                let mut buf = Vec::new();
                return copy_through(src, off_in, left, &mut buf, &mut |bytes, at| {
                    dst.write_all_at(bytes, off_out + at)
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The error of a source that ended with `left` of `len` bytes to copy.
fn ended(len: u64, left: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("source ended after {} of {len} bytes", len - left),
    )
}

/// Reads `len` bytes at `from` in `src` through `buf` and hands each piece
/// to `write` with its offset from the start of the copy.
fn copy_through(
    src: &File,
    from: u64,
    len: u64,
    buf: &mut Vec<u8>,
    write: &mut dyn FnMut(&[u8], u64) -> io::Result<()>,
) -> io::Result<()> {
    buf.resize(len.min(1 << 20) as usize, 0);
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        let got = src.read_at(&mut buf[..n], from + done)?;
        if got == 0 {
            return Err(ended(len, len - done));
        }
        write(&buf[..got], done)?;
        done += got as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::{self, Note};

    /// Segments held in memory: header values and extents.
    struct Held(Vec<(u64, u64, u32, Vec<Extent>)>);

    impl Segments for Held {
        fn count(&self) -> usize {
            self.0.len()
        }

        fn header(&self, i: usize) -> SegmentHeader {
            let (vaddr, memsz, flags, data) = &self.0[i];
            SegmentHeader {
                vaddr: *vaddr,
                memsz: *memsz,
                filesz: data.iter().map(Extent::len).sum(),
                flags: *flags,
            }
        }

        fn for_each_extent(&self, f: &mut dyn FnMut(usize, Extent) -> Result<()>) -> Result<()> {
            for (i, s) in self.0.iter().enumerate() {
                s.3.iter().try_for_each(|e| f(i, *e))?;
            }
            Ok(())
        }
    }

    impl Notes for Vec<Note> {
        fn for_each(&self, f: &mut dyn FnMut(&Note) -> Result<()>) -> Result<()> {
            self.iter().try_for_each(f)
        }
    }

    /// Writes `core` whole, as laid out.
    fn write(core: &CoreFile, out: &mut dyn Output) -> Result<Written> {
        write_core(core, &lay_out(core)?, out, &[])
    }

    fn target() -> ElfTarget {
        ElfTarget {
            is_64: true,
            big_endian: false,
            machine: 62,
            flags: 0,
        }
    }

    fn copy(offset: u64, len: u64) -> Extent {
        Extent::Copy {
            source: 0,
            offset,
            len,
        }
    }

    fn blob(path: &std::path::Path, len: u64) -> Blob {
        Blob {
            label: "src".into(),
            path: path.to_path_buf(),
            offset: 0,
            len,
            remote: None,
        }
    }

    /// Two segments, the first with data, a hole and data again.
    fn sample(src: &std::path::Path) -> (Held, Vec<Note>, Vec<Blob>) {
        std::fs::write(src, (0..8192u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
        let data = vec![copy(0, 4096), Extent::Zero(4096), copy(4096, 4096)];
        let segments = Held(vec![
            (0x10000, 0x3000, pf::R | pf::W, data),
            (0x20000, 0x1000, pf::R, vec![]),
        ]);
        let notes = vec![Note::new(notes::CORE, 6, vec![1, 2, 3])];
        (segments, notes, vec![blob(src, 8192)])
    }

    /// The test target's core over `sample`'s parts, pages of 4 KiB.
    fn core_of<'a>(segments: &'a Held, notes: &'a dyn Notes, sources: &'a [Blob]) -> CoreFile<'a> {
        CoreFile {
            target: target(),
            page_size: 4096,
            notes,
            segments,
            sources,
        }
    }

    #[test]
    fn writes_headers_notes_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, notes, sources) = sample(&dir.path().join("src"));
        let core = core_of(&segments, &notes, &sources);
        let path = dir.path().join("core");
        let f = File::create(&path).unwrap();
        let w = write(&core, &mut FileOutput(&f)).unwrap();
        assert_eq!(w.copied, 8192);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, w.size);
        assert_eq!(&bytes[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 4); // ET_CORE
        assert_eq!(u16::from_le_bytes([bytes[56], bytes[57]]), 3); // e_phnum

        // Data starts on the first page boundary after the headers.
        assert_eq!(bytes[4096 + 1], 1);
        assert!(bytes[8192..12288].iter().all(|&b| b == 0));
        assert_eq!(bytes[12288 + 1], 1); // 4097 as u8
        assert_eq!(w.size, 4096 + 3 * 4096);

        // Any seekable writer gets the same bytes.
        let mut buf = io::Cursor::new(Vec::new());
        let w2 = write(&core, &mut SeekOutput::new(&mut buf)).unwrap();
        assert_eq!(w2, w);
        assert!(buf.into_inner() == bytes);

        // So does a stream, its holes written as zeros.
        let mut sink = SinkOutput::new(Vec::new());
        let w3 = write(&core, &mut sink).unwrap();
        assert_eq!(w3, w);
        assert!(sink.into_inner() == bytes);
    }

    #[test]
    fn extents_written_first_at_their_planned_places_give_the_same_core() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, notes, sources) = sample(&dir.path().join("src"));
        let core = core_of(&segments, &notes, &sources);
        let layout = lay_out(&core).unwrap();
        let mut whole = io::Cursor::new(Vec::new());
        let w = write_core(&core, &layout, &mut SeekOutput::new(&mut whole), &[]).unwrap();
        // Source 0's extents first, where the plan puts them...
        let f = File::create(dir.path().join("core")).unwrap();
        let src = File::open(dir.path().join("src")).unwrap();
        let mut placed = Vec::new();
        for_each_placed(&core, &layout, &mut |at, ext| {
            if let Extent::Copy { offset, len, .. } = ext {
                FileOutput(&f).copy(&src, offset, len, at)?;
                placed.push(at);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(placed, [4096, 12288]);
        // ...then the rest around them.
        let w2 = write_core(&core, &layout, &mut FileOutput(&f), &[0]).unwrap();
        assert_eq!(w2, w);
        let bytes = std::fs::read(dir.path().join("core")).unwrap();
        assert!(bytes == whole.into_inner());
    }

    #[test]
    fn a_trailing_hole_still_sizes_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Held(vec![(0, 0x2000, pf::R, vec![Extent::Zero(0x2000)])]);
        let core = CoreFile {
            target: target(),
            page_size: 4096,
            notes: &Vec::new(),
            segments: &segments,
            sources: &[],
        };
        let f = File::create(dir.path().join("core")).unwrap();
        let w = write(&core, &mut FileOutput(&f)).unwrap();
        let mut buf = io::Cursor::new(Vec::new());
        write(&core, &mut SeekOutput::new(&mut buf)).unwrap();
        assert_eq!(buf.get_ref().len() as u64, w.size);
        assert_eq!(
            std::fs::read(dir.path().join("core")).unwrap(),
            buf.into_inner()
        );
    }

    #[test]
    fn writes_elf32_cores_and_refuses_memory_past_4_gib() {
        let dir = tempfile::tempdir().unwrap();
        let i386 = crate::arch::elf_target(crate::model::Arch::I386);
        let fits = Held(vec![(0xffff_e000, 0x2000, pf::R, vec![])]);
        let notes = vec![Note::new(notes::CORE, 1, vec![0; 144])];
        let mut core = CoreFile {
            target: i386,
            page_size: 4096,
            notes: &notes,
            segments: &fits,
            sources: &[],
        };
        let path = dir.path().join("core");
        write(&core, &mut FileOutput(&File::create(&path).unwrap())).unwrap();
        let b = std::fs::read(&path).unwrap();
        assert_eq!((b[4], b[5]), (1, 1)); // ELFCLASS32, ELFDATA2LSB
        assert_eq!(u16::from_le_bytes([b[18], b[19]]), 3); // EM_386
        assert_eq!(u16::from_le_bytes([b[42], b[43]]), 32); // e_phentsize
        assert_eq!(u16::from_le_bytes([b[44], b[45]]), 2); // e_phnum
        let load = 52 + 32; // second program header
        assert_eq!(
            u32::from_le_bytes(b[load + 8..load + 12].try_into().unwrap()),
            0xffff_e000
        );
        assert_eq!(
            u32::from_le_bytes(b[load + 20..load + 24].try_into().unwrap()),
            0x2000
        );

        let too_high = Held(vec![(0xffff_f000, 0x2000, pf::R, vec![])]);
        core.segments = &too_high;
        let f = File::create(dir.path().join("core2")).unwrap();
        let err = write(&core, &mut FileOutput(&f)).unwrap_err().to_string();
        assert!(err.contains("0xfffff000-0x100001000"), "{err}");
    }

    #[test]
    fn copies_that_continue_each_other_are_one() {
        let mut a = Copy {
            source: 1,
            from: 0,
            to: 100,
            len: 10,
        };
        assert!(a.join(&Copy {
            source: 1,
            from: 10,
            to: 110,
            len: 5
        }));
        assert_eq!(a.len, 15);
        // Contiguous in the source only (a hole between them in the core).
        assert!(!a.join(&Copy {
            source: 1,
            from: 15,
            to: 200,
            len: 5
        }));
        assert!(!a.join(&Copy {
            source: 2,
            from: 15,
            to: 115,
            len: 5
        }));
    }

    #[test]
    fn source_shorter_than_claimed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, [0u8; 100]).unwrap();
        let segments = Held(vec![(0, 4096, 0, vec![copy(0, 4096)])]);
        let mut sources = vec![blob(&src, 4096)];
        sources[0].label = "pages-1.img".into();
        let core = CoreFile {
            target: target(),
            page_size: 4096,
            notes: &Vec::new(),
            segments: &segments,
            sources: &sources,
        };
        let f = File::create(dir.path().join("core")).unwrap();
        let err = format!("{:#}", write(&core, &mut FileOutput(&f)).unwrap_err());
        assert!(
            err.contains("pages-1.img") && err.contains("ended after 100"),
            "{err}"
        );
    }

    #[test]
    fn many_segments_use_extended_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Held(
            (0..70000u64)
                .map(|i| (i * 0x2000, 0x1000, pf::R, vec![]))
                .collect(),
        );
        let core = CoreFile {
            target: target(),
            page_size: 4096,
            notes: &Vec::new(),
            segments: &segments,
            sources: &[],
        };
        let path = dir.path().join("core");
        write(&core, &mut FileOutput(&File::create(&path).unwrap())).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[56], bytes[57]]), 0xffff);
        let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
        let sh_info = u32::from_le_bytes(bytes[shoff + 44..shoff + 48].try_into().unwrap());
        assert_eq!(sh_info, 70001);
    }
}
