//! The ELF core writer. It takes a complete description of a core file
//! (header values, notes, segments and where each segment's bytes come
//! from) and writes it in one forward pass: every offset is reserved first
//! with `object`'s ELF writer, then the headers and notes are streamed out,
//! then the segment data is copied from its source files (copy_file_range
//! where the kernel allows) while zero runs are left as holes.
//!
//! Nothing here knows about CRIU.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, Writer};
use object::write::StreamingBuffer;
use object::Endianness;

use crate::notes::Note;

/// Values for the ELF header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfTarget {
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
pub mod pf {
    /// Executable.
    pub const X: u32 = 1;
    /// Writable.
    pub const W: u32 = 2;
    /// Readable.
    pub const R: u32 = 4;
}

/// A byte range of a file that segment data is copied from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Name for messages.
    pub label: String,
    /// The file.
    pub path: PathBuf,
    /// Start of the range within the file.
    pub offset: u64,
    /// Length of the range.
    pub len: u64,
}

/// A piece of a segment's file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
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
    pub fn len(&self) -> u64 {
        match *self {
            Extent::Copy { len, .. } | Extent::Zero(len) => len,
        }
    }

    /// Whether the extent is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A PT_LOAD segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// p_vaddr.
    pub vaddr: u64,
    /// p_memsz.
    pub memsz: u64,
    /// p_flags ([`pf`] bits).
    pub flags: u32,
    /// The file contents; their total length is p_filesz.
    pub data: Vec<Extent>,
}

impl Segment {
    /// p_filesz.
    pub fn filesz(&self) -> u64 {
        self.data.iter().map(Extent::len).sum()
    }

    /// Appends an extent, merging it with the last one where they continue
    /// each other.
    pub fn push(&mut self, ext: Extent) {
        if ext.is_empty() {
            return;
        }
        match (self.data.last_mut(), ext) {
            (Some(Extent::Zero(a)), Extent::Zero(b)) => *a += b,
            (
                Some(Extent::Copy {
                    source: s1,
                    offset: o1,
                    len: l1,
                }),
                Extent::Copy {
                    source: s2,
                    offset: o2,
                    len: l2,
                },
            ) if *s1 == s2 && *o1 + *l1 == o2 => *l1 += l2,
            _ => self.data.push(ext),
        }
    }
}

/// A PT_LOAD segment's header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
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
pub trait Segments {
    /// How many segments there are.
    fn count(&self) -> usize;
    /// Segment `i`'s header.
    fn header(&self, i: usize) -> SegmentHeader;
    /// Calls `f(i, extent)` with each extent of every segment `i`'s file
    /// contents: the segments in order, each one's extents in order.
    fn for_each_extent(&self, f: &mut dyn FnMut(usize, Extent) -> Result<()>) -> Result<()>;
}

impl Segments for Vec<Segment> {
    fn count(&self) -> usize {
        self.len()
    }

    fn header(&self, i: usize) -> SegmentHeader {
        let s = &self[i];
        SegmentHeader {
            vaddr: s.vaddr,
            memsz: s.memsz,
            filesz: s.filesz(),
            flags: s.flags,
        }
    }

    fn for_each_extent(&self, f: &mut dyn FnMut(usize, Extent) -> Result<()>) -> Result<()> {
        for (i, s) in self.iter().enumerate() {
            s.data.iter().try_for_each(|e| f(i, *e))?;
        }
        Ok(())
    }
}

/// The PT_NOTE contents of a core, made one at a time and as often as
/// asked, so that a process with many threads never has every thread's
/// notes in memory at once: the writer goes through them once to size the
/// PT_NOTE segment and once to write it.
pub trait Notes {
    /// Calls `f` with each note, in order; the same notes on every call.
    fn for_each(&self, f: &mut dyn FnMut(&Note) -> Result<()>) -> Result<()>;
}

impl Notes for Vec<Note> {
    fn for_each(&self, f: &mut dyn FnMut(&Note) -> Result<()>) -> Result<()> {
        self.iter().try_for_each(f)
    }
}

/// Everything a core file holds.
pub struct CoreFile<'a> {
    /// Header values.
    pub target: ElfTarget,
    /// Page size; segment data starts on a page boundary.
    pub page_size: u64,
    /// PT_NOTE contents, in order.
    pub notes: &'a dyn Notes,
    /// PT_LOAD segments, in address order.
    pub segments: &'a dyn Segments,
    /// Files that segment data is copied from.
    pub sources: Vec<Source>,
}

/// What writing produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Apparent size of the file.
    pub size: u64,
    /// Bytes copied into it (the rest are holes or headers).
    pub copied: u64,
}

fn note_len(n: &Note) -> u64 {
    12 + align4(n.name.len() as u64 + 1) + align4(n.desc.len() as u64)
}

fn align4(v: u64) -> u64 {
    (v + 3) & !3
}

fn align_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

/// The bytes of one note: its header, its owner's name and its contents,
/// each padded to 4 bytes.
fn encode_note(n: &Note, big_endian: bool, out: &mut Vec<u8>) {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    out.extend_from_slice(&u32b(n.name.len() as u32 + 1));
    out.extend_from_slice(&u32b(n.desc.len() as u32));
    out.extend_from_slice(&u32b(n.kind));
    out.extend_from_slice(n.name.as_bytes());
    out.push(0);
    out.resize(align4(out.len() as u64) as usize, 0);
    out.extend_from_slice(&n.desc);
    out.resize(align4(out.len() as u64) as usize, 0);
}

/// Writes `core` to `out`, which must be empty and positioned at 0.
pub fn write_core(core: &CoreFile, out: &mut File) -> Result<Written> {
    let t = core.target;
    if !core.page_size.is_power_of_two() {
        bail!("page size {} is not a power of two", core.page_size);
    }
    let mut notes_len = 0u64;
    core.notes.for_each(&mut |n| {
        if n.desc.len() > u32::MAX as usize {
            bail!(
                "note {:#x} is too large for ELF ({} bytes)",
                n.kind,
                n.desc.len()
            );
        }
        notes_len += note_len(n);
        Ok(())
    })?;
    let segments = core.segments;
    let count = segments.count();
    let phnum = u32::try_from(count + 1).context("too many segments for ELF")?;
    let endian = if t.big_endian {
        Endianness::Big
    } else {
        Endianness::Little
    };

    // Phase one: reserve every range, compute every offset.
    let mut buffer = StreamingBuffer::new(BufWriter::with_capacity(1 << 20, &*out));
    let mut w = Writer::new(endian, t.is_64, &mut buffer);
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
    let data_start = align_up(w.reserved_len(), core.page_size);
    let mut end = data_start;
    for i in 0..count {
        end = end
            .checked_add(segments.header(i).filesz)
            .context("core file size overflows")?;
    }
    if !t.is_64 && end > u64::from(u32::MAX) {
        bail!("a 32-bit core cannot hold {end} bytes");
    }
    if !t.is_64 {
        for i in 0..count {
            let h = segments.header(i);
            if h.vaddr.checked_add(h.memsz).is_none_or(|e| e > 1 << 32) {
                bail!(
                    "a 32-bit core cannot hold memory at {:#x}-{:#x}",
                    h.vaddr,
                    h.vaddr.saturating_add(h.memsz)
                );
            }
        }
    }

    // Phase two: headers and notes, streamed.
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
        p_offset: notes_off,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: notes_len,
        p_memsz: 0,
        p_align: 4,
    });
    let mut off = data_start;
    for i in 0..count {
        let h = segments.header(i);
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
    if extended {
        w.write_null_section_header();
    }
    w.write_align(4);
    // One note at a time, through a buffer reused for each.
    let (mut note, mut written) = (Vec::new(), 0u64);
    core.notes.for_each(&mut |n| {
        note.clear();
        encode_note(n, t.big_endian, &mut note);
        written += note.len() as u64;
        if written > notes_len {
            bail!("the notes grew between sizing and writing");
        }
        w.write(&note);
        Ok(())
    })?;
    if written != notes_len {
        bail!("the notes shrank between sizing and writing");
    }
    buffer.result().context("cannot write core headers")?;
    buffer
        .into_inner()
        .flush()
        .context("cannot write core headers")?;

    // Segment data: copies and holes.
    let mut copier = Copier::new(&core.sources);
    let mut copied = 0;
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
        if let Extent::Copy {
            source,
            offset,
            len,
        } = ext
        {
            copier.copy(source, offset, len, out, pos)?;
            copied += len;
        }
        pos += ext.len();
        Ok(())
    })?;
    while seg < count {
        seg_start = close(seg, seg_start, pos)?;
        seg += 1;
    }
    copier.flush(out)?;
    out.set_len(end).context("cannot set core file size")?;
    Ok(Written { size: end, copied })
}

/// Moves extent data into the core with copy_file_range, so the bytes stay
/// in the kernel and, on filesystems that can (XFS, btrfs), are shared with
/// the pages file rather than copied. Extents that continue each other in
/// both files are joined first: mappings dumped whole, back to back in the
/// pages file and in the core alike, cost one call.
struct Copier<'a> {
    sources: &'a [Source],
    files: Vec<Option<File>>,
    /// A copy not yet made: (source, absolute source offset, destination
    /// offset, length).
    pending: Option<(usize, u64, u64, u64)>,
}

impl<'a> Copier<'a> {
    fn new(sources: &'a [Source]) -> Copier<'a> {
        Copier {
            sources,
            files: sources.iter().map(|_| None).collect(),
            pending: None,
        }
    }

    /// Queues `len` bytes at `offset` in `sources[source]` for `pos` in `out`.
    fn copy(&mut self, source: usize, offset: u64, len: u64, out: &File, pos: u64) -> Result<()> {
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
        let abs = src.offset + offset;
        if let Some((s, from, to, n)) = &mut self.pending {
            if *s == source && *from + *n == abs && *to + *n == pos {
                *n += len;
                return Ok(());
            }
        }
        self.flush(out)?;
        self.pending = Some((source, abs, pos, len));
        Ok(())
    }

    /// Makes the queued copy.
    fn flush(&mut self, out: &File) -> Result<()> {
        let Some((source, abs, pos, len)) = self.pending.take() else {
            return Ok(());
        };
        let src = &self.sources[source];
        let file = match &mut self.files[source] {
            Some(f) => f,
            slot => {
                let f =
                    File::open(&src.path).with_context(|| format!("{}: cannot open", src.label))?;
                // Sources are read front to back: ask for generous readahead.
                let _ = rustix::fs::fadvise(
                    &f,
                    src.offset,
                    std::num::NonZeroU64::new(src.len),
                    rustix::fs::Advice::Sequential,
                );
                slot.insert(f)
            }
        };
        copy_range(file, abs, len, out, pos)
            .with_context(|| format!("{}: cannot copy {len} bytes at offset {abs}", src.label))
    }
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
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("source ended after {} of {len} bytes", len - left),
                ))
            }
            Ok(n) => left -= n as u64,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::PERM,
            ) => return copy_by_hand(src, off_in, left, dst, off_out, len),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The read-and-write fallback of [`copy_range`].
fn copy_by_hand(
    src: &File,
    mut from: u64,
    mut left: u64,
    dst: &File,
    mut to: u64,
    len: u64,
) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; left.min(1 << 20) as usize];
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        let got = src.read_at(&mut buf[..n], from)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("source ended after {} of {len} bytes", len - left),
            ));
        }
        dst.write_all_at(&buf[..got], to)?;
        from += got as u64;
        to += got as u64;
        left -= got as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::{self, Note};

    fn target() -> ElfTarget {
        ElfTarget {
            is_64: true,
            big_endian: false,
            machine: 62,
            flags: 0,
        }
    }

    #[test]
    fn writes_headers_notes_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, (0..8192u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
        let mut seg = Segment {
            vaddr: 0x10000,
            memsz: 0x3000,
            flags: pf::R | pf::W,
            data: vec![],
        };
        seg.push(Extent::Copy {
            source: 0,
            offset: 0,
            len: 4096,
        });
        seg.push(Extent::Zero(4096));
        seg.push(Extent::Copy {
            source: 0,
            offset: 4096,
            len: 4096,
        });
        let segments = vec![
            seg,
            Segment {
                vaddr: 0x20000,
                memsz: 0x1000,
                flags: pf::R,
                data: vec![],
            },
        ];
        let core = CoreFile {
            target: target(),
            page_size: 4096,
            notes: &vec![Note::new(notes::CORE, 6, vec![1, 2, 3])],
            segments: &segments,
            sources: vec![Source {
                label: "src".into(),
                path: src,
                offset: 0,
                len: 8192,
            }],
        };
        let path = dir.path().join("core");
        let mut f = File::create(&path).unwrap();
        let w = write_core(&core, &mut f).unwrap();
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
    }

    #[test]
    fn writes_elf32_cores_and_refuses_memory_past_4_gib() {
        let dir = tempfile::tempdir().unwrap();
        let i386 = crate::arch::Arch::I386.elf();
        let seg = |vaddr, memsz| Segment {
            vaddr,
            memsz,
            flags: pf::R,
            data: vec![],
        };
        let fits = vec![seg(0xffff_e000, 0x2000)];
        let mut core = CoreFile {
            target: i386,
            page_size: 4096,
            notes: &vec![Note::new(notes::CORE, 1, vec![0; 144])],
            segments: &fits,
            sources: vec![],
        };
        let path = dir.path().join("core");
        write_core(&core, &mut File::create(&path).unwrap()).unwrap();
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

        let too_high = vec![seg(0xffff_f000, 0x2000)];
        core.segments = &too_high;
        let mut f = File::create(dir.path().join("core2")).unwrap();
        let err = write_core(&core, &mut f).unwrap_err().to_string();
        assert!(err.contains("0xfffff000-0x100001000"), "{err}");
    }

    #[test]
    fn extents_merge() {
        let mut s = Segment {
            vaddr: 0,
            memsz: 0,
            flags: 0,
            data: vec![],
        };
        s.push(Extent::Copy {
            source: 1,
            offset: 0,
            len: 10,
        });
        s.push(Extent::Copy {
            source: 1,
            offset: 10,
            len: 5,
        });
        s.push(Extent::Zero(3));
        s.push(Extent::Zero(4));
        s.push(Extent::Copy {
            source: 1,
            offset: 99,
            len: 1,
        });
        assert_eq!(
            s.data,
            vec![
                Extent::Copy {
                    source: 1,
                    offset: 0,
                    len: 15
                },
                Extent::Zero(7),
                Extent::Copy {
                    source: 1,
                    offset: 99,
                    len: 1
                }
            ]
        );
        assert_eq!(s.filesz(), 23);
    }

    #[test]
    fn source_shorter_than_claimed_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, [0u8; 100]).unwrap();
        let segments = vec![Segment {
            vaddr: 0,
            memsz: 4096,
            flags: 0,
            data: vec![Extent::Copy {
                source: 0,
                offset: 0,
                len: 4096,
            }],
        }];
        let core = CoreFile {
            target: target(),
            page_size: 4096,
            notes: &Vec::new(),
            segments: &segments,
            sources: vec![Source {
                label: "pages-1.img".into(),
                path: src,
                offset: 0,
                len: 4096,
            }],
        };
        let mut f = File::create(dir.path().join("core")).unwrap();
        let err = format!("{:#}", write_core(&core, &mut f).unwrap_err());
        assert!(
            err.contains("pages-1.img") && err.contains("ended after 100"),
            "{err}"
        );
    }

    #[test]
    fn many_segments_use_extended_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let segments: Vec<Segment> = (0..70000u64)
            .map(|i| Segment {
                vaddr: i * 0x2000,
                memsz: 0x1000,
                flags: pf::R,
                data: vec![],
            })
            .collect();
        let core = CoreFile {
            target: target(),
            page_size: 4096,
            notes: &Vec::new(),
            segments: &segments,
            sources: vec![],
        };
        let path = dir.path().join("core");
        let mut f = File::create(&path).unwrap();
        write_core(&core, &mut f).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u16::from_le_bytes([bytes[56], bytes[57]]), 0xffff);
        let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
        let sh_info = u32::from_le_bytes(bytes[shoff + 44..shoff + 48].try_into().unwrap());
        assert_eq!(sh_info, 70001);
    }
}
