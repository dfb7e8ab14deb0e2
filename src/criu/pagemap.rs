//! Pagemap images: which pages of an address space (or of a shared-memory
//! object) were dumped, and where their bytes are.
//!
//! A pagemap is read front to back, once: [`Cursor`] answers "what covers
//! this address?" for addresses that only grow, which is how VMAs are
//! walked, so conversion needs no per-page lookups and no index in memory.

use anyhow::Result;

use super::image::ImageReader;
use crate::error::corrupt;
use crate::proto;

/// Longest pagemap entry accepted: a real one takes a few dozen bytes.
pub const MAX_ENTRY_BYTES: usize = 4096;

/// Pages are in the parent (previous) dump of an incremental chain.
pub const PE_PARENT: u32 = 1 << 0;
/// Pages may be fetched lazily from the source (lazy migration).
pub const PE_LAZY: u32 = 1 << 1;
/// Pages are in this dump's `pages-<id>.img`.
pub const PE_PRESENT: u32 = 1 << 2;

/// One pagemap entry, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    /// First address (or offset, in a shared-memory pagemap).
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// PE_* flags.
    pub flags: u32,
    /// Where the first page is in the pages file, for PE_PRESENT entries.
    pub data: u64,
    /// Offset of the entry in the image, for messages.
    pub at: u64,
}

/// Reads a pagemap image's entries in order, checking that they are sorted,
/// aligned and sized sanely.
pub struct PagemapReader {
    image: ImageReader,
    page_size: u64,
    pages_id: u32,
    next_data: u64,
    prev_end: u64,
}

impl PagemapReader {
    /// Reads the head of a pagemap image.
    pub fn new(mut image: ImageReader, page_size: u64) -> Result<PagemapReader> {
        let head: proto::PagemapHead = image.expect()?;
        Ok(PagemapReader {
            image,
            page_size,
            pages_id: head.pages_id,
            next_data: 0,
            prev_end: 0,
        })
    }

    /// The image's name.
    pub fn name(&self) -> &str {
        self.image.name()
    }

    /// The id of the `pages-<id>.img` that holds this pagemap's data.
    pub fn pages_id(&self) -> u32 {
        self.pages_id
    }

    /// Bytes of the pages file the entries read so far take.
    pub fn claimed(&self) -> u64 {
        self.next_data
    }

    /// The next entry, or `None` at the end.
    pub fn next_range(&mut self) -> Result<Option<PageRange>> {
        let at = self.image.offset();
        let Some(e) = self.image.entry::<proto::PagemapEntry>()? else {
            return Ok(None);
        };
        let name = self.image.name();
        let nr_pages = e.nr_pages.unwrap_or(u64::from(e.compat_nr_pages));
        let flags = e.flags.unwrap_or(if e.in_parent == Some(true) {
            PE_PARENT
        } else {
            PE_PRESENT
        });
        if nr_pages == 0 {
            return Err(corrupt(
                name,
                Some(at),
                format!("{name}: offset {at}: entry at {:#x} has no pages", e.vaddr),
            ));
        }
        if e.vaddr % self.page_size != 0 {
            return Err(corrupt(
                name,
                Some(at),
                format!(
                    "{name}: offset {at}: address {:#x} is not page-aligned",
                    e.vaddr
                ),
            ));
        }
        let Some(end) = nr_pages
            .checked_mul(self.page_size)
            .and_then(|len| e.vaddr.checked_add(len))
        else {
            return Err(corrupt(name, Some(at), format!("{name}: offset {at}: {nr_pages} pages at {:#x} run past the end of the address space", e.vaddr)));
        };
        if e.vaddr < self.prev_end {
            return Err(corrupt(name, Some(at), format!(
                "{name}: offset {at}: entry at {:#x} overlaps or precedes the previous one (ending at {:#x})",
                e.vaddr,
                self.prev_end
            )));
        }
        self.prev_end = end;
        let data = self.next_data;
        if flags & PE_PRESENT != 0 {
            self.next_data += end - e.vaddr;
        }
        Ok(Some(PageRange {
            start: e.vaddr,
            end,
            flags,
            data,
            at,
        }))
    }
}

/// What a pagemap says of its pages file, read front to back without
/// being held: for bounding a pages file by what can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The `pages-<id>.img` its pages are in.
    pub pages_id: u32,
    /// Bytes of that file its present entries take.
    pub bytes: u64,
    /// Where in that file the pages of the `wanted` address ranges are
    /// (offset, length), in order.
    pub ranges: Vec<(u64, u64)>,
}

/// Reads `reader` to its end: what its present entries claim of its pages
/// file, and where in that file the pages of `wanted` lie (ranges of
/// addresses, each taken whole). Only present pages count: pages in a
/// parent dump or left on the source are not in this dump's file.
pub fn claims(mut reader: PagemapReader, wanted: &[(u64, u64)]) -> Result<Claims> {
    let mut out = Claims {
        pages_id: reader.pages_id(),
        bytes: 0,
        ranges: Vec::new(),
    };
    while let Some(r) = reader.next_range()? {
        if r.flags & PE_PRESENT == 0 {
            continue;
        }
        out.bytes += r.end - r.start;
        for &(lo, hi) in wanted {
            let (a, b) = (lo.max(r.start), hi.min(r.end));
            if a < b {
                out.ranges.push((r.data + (a - r.start), b - a));
            }
        }
    }
    out.ranges.sort_unstable();
    Ok(out)
}

/// Walks a pagemap for ascending addresses.
pub struct Cursor {
    reader: PagemapReader,
    current: Option<PageRange>,
    current_used: bool,
    done: bool,
    /// Lowest address a query may still ask about.
    pub floor: u64,
    /// Present entries passed over without being asked for.
    pub unused: u64,
}

impl Cursor {
    /// A cursor at the start of `reader`.
    pub fn new(reader: PagemapReader) -> Cursor {
        Cursor {
            reader,
            current: None,
            current_used: false,
            done: false,
            floor: 0,
            unused: 0,
        }
    }

    /// The pagemap's image name.
    pub fn name(&self) -> &str {
        self.reader.name()
    }

    /// The id of its pages file.
    pub fn pages_id(&self) -> u32 {
        self.reader.pages_id()
    }

    /// The first entry that ends after `addr`, or `None` if there is none.
    /// `addr` must not be below an address asked about before.
    pub fn find(&mut self, addr: u64) -> Result<Option<PageRange>> {
        debug_assert!(addr >= self.floor);
        self.floor = addr;
        loop {
            if let Some(r) = self.current {
                if r.end > addr {
                    return Ok(Some(r));
                }
                if !self.current_used && r.flags & PE_PRESENT != 0 {
                    self.unused += 1;
                }
            }
            if self.done {
                return Ok(None);
            }
            self.current = self.reader.next_range()?;
            self.current_used = false;
            if self.current.is_none() {
                self.done = true;
            }
        }
    }

    /// Bytes of the pages file the entries read so far take (all of them,
    /// after [`Cursor::finish`]).
    pub fn claimed(&self) -> u64 {
        self.reader.claimed()
    }

    /// Records that the current entry's pages were used.
    pub fn mark_used(&mut self) {
        self.current_used = true;
    }

    /// Reads to the end, counting present entries never asked for.
    pub fn finish(&mut self) -> Result<u64> {
        self.find(u64::MAX)?;
        Ok(self.unused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::magic;
    use prost::Message;

    fn image(entries: &[proto::PagemapEntry]) -> ImageReader {
        let mut data = Vec::new();
        data.extend_from_slice(&magic::IMG_COMMON.to_le_bytes());
        data.extend_from_slice(&magic::PAGEMAP.to_le_bytes());
        let head = proto::PagemapHead { pages_id: 3 }.encode_to_vec();
        data.extend_from_slice(&(head.len() as u32).to_le_bytes());
        data.extend_from_slice(&head);
        for e in entries {
            let b = e.encode_to_vec();
            data.extend_from_slice(&(b.len() as u32).to_le_bytes());
            data.extend_from_slice(&b);
        }
        ImageReader::from_bytes("pagemap-1.img", data, magic::PAGEMAP).unwrap()
    }

    fn entry(vaddr: u64, nr: u64, flags: u32) -> proto::PagemapEntry {
        proto::PagemapEntry {
            vaddr,
            compat_nr_pages: 0,
            in_parent: None,
            flags: Some(flags),
            nr_pages: Some(nr),
        }
    }

    #[test]
    fn data_offsets_count_only_present_pages() {
        let img = image(&[
            entry(0x1000, 2, PE_PRESENT),
            entry(0x4000, 1, PE_PARENT),
            entry(0x8000, 1, PE_PRESENT | PE_LAZY),
        ]);
        let mut r = PagemapReader::new(img, 4096).unwrap();
        assert_eq!(r.pages_id(), 3);
        let a = r.next_range().unwrap().unwrap();
        let b = r.next_range().unwrap().unwrap();
        let c = r.next_range().unwrap().unwrap();
        assert_eq!((a.start, a.end, a.data), (0x1000, 0x3000, 0));
        assert_eq!(b.flags, PE_PARENT);
        assert_eq!(c.data, 0x2000);
        assert!(r.next_range().unwrap().is_none());
    }

    #[test]
    fn legacy_fields() {
        let old = proto::PagemapEntry {
            vaddr: 0x2000,
            compat_nr_pages: 3,
            in_parent: Some(true),
            flags: None,
            nr_pages: None,
        };
        let mut r = PagemapReader::new(image(&[old]), 4096).unwrap();
        let e = r.next_range().unwrap().unwrap();
        assert_eq!((e.end, e.flags), (0x5000, PE_PARENT));
    }

    #[test]
    fn bad_entries_are_errors() {
        for (bad, what) in [
            (vec![entry(0x1001, 1, PE_PRESENT)], "not page-aligned"),
            (vec![entry(0x1000, 0, PE_PRESENT)], "no pages"),
            (vec![entry(0x1000, 1 << 60, PE_PRESENT)], "past the end"),
            (
                vec![entry(0x5000, 1, PE_PRESENT), entry(0x1000, 1, PE_PRESENT)],
                "overlaps or precedes",
            ),
            (
                vec![entry(0x1000, 4, PE_PRESENT), entry(0x2000, 1, PE_PRESENT)],
                "overlaps or precedes",
            ),
        ] {
            let mut r = PagemapReader::new(image(&bad), 4096).unwrap();
            let err = (|| -> Result<()> {
                while r.next_range()?.is_some() {}
                Ok(())
            })()
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(what) && err.contains("pagemap-1.img: offset"),
                "{err}"
            );
        }
    }

    #[test]
    fn claims_count_present_pages_and_find_wanted_ones() {
        let img = image(&[
            entry(0x1000, 2, PE_PRESENT),
            entry(0x4000, 1, PE_PARENT),
            entry(0x8000, 3, PE_PRESENT),
        ]);
        let c = claims(
            PagemapReader::new(img, 4096).unwrap(),
            &[(0x9800, 0x9900), (0x1000, 0x1001)],
        )
        .unwrap();
        assert_eq!(c.pages_id, 3);
        assert_eq!(c.bytes, 5 * 4096);
        // 0x9800 is 0x1800 into the entry whose pages start at 0x2000.
        assert_eq!(c.ranges, [(0, 1), (0x3800, 0x100)]);
    }

    #[test]
    fn cursor_walks_forward_and_counts_unused() {
        let img = image(&[
            entry(0x1000, 1, PE_PRESENT),
            entry(0x3000, 2, PE_PRESENT),
            entry(0x9000, 1, PE_PRESENT),
        ]);
        let mut c = Cursor::new(PagemapReader::new(img, 4096).unwrap());
        assert_eq!(c.find(0x2000).unwrap().unwrap().start, 0x3000);
        c.mark_used();
        assert_eq!(c.find(0x4000).unwrap().unwrap().start, 0x3000);
        assert_eq!(c.finish().unwrap(), 2);
    }
}
