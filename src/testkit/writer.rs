//! Writing CRIU images: the inverse of [`super::image`], for tools and tests
//! that synthesize checkpoints (benchmarks, fuzz seeds, fixtures of other
//! architectures). criu2core itself never writes images.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use prost::Message;

use crate::criu::magic;
use crate::criu::pagemap::PE_PRESENT;
use crate::proto;

/// The bytes of an image: the header for `magic`, then each entry framed
/// with its 32-bit little-endian length.
pub fn image_bytes<M: Message>(magic: u32, entries: &[M]) -> Vec<u8> {
    let mut out = Vec::new();
    if magic != magic::INVENTORY {
        let first = if magic == magic::STATS {
            magic::IMG_SERVICE
        } else {
            magic::IMG_COMMON
        };
        out.extend_from_slice(&first.to_le_bytes());
    }
    out.extend_from_slice(&magic.to_le_bytes());
    for e in entries {
        let b = e.encode_to_vec();
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    }
    out
}

/// A run of pages for [`CheckpointWriter::pagemap`].
#[derive(Debug, Clone)]
pub struct PageSpan<'a> {
    /// First address (or object offset, for shared memory).
    pub vaddr: u64,
    /// Page count.
    pub nr_pages: u64,
    /// PE_* flags; the bytes are written to the pages file only with PE_PRESENT.
    pub flags: u32,
    /// The bytes of present pages (`nr_pages` pages), ignored otherwise.
    pub data: &'a [u8],
}

/// Writes the images of one checkpoint into a directory.
#[derive(Debug, Clone)]
pub struct CheckpointWriter {
    dir: PathBuf,
    page_size: u64,
}

impl CheckpointWriter {
    /// Creates `dir` (if needed) for a checkpoint with `page_size` pages.
    pub fn create(dir: impl AsRef<Path>, page_size: u64) -> Result<CheckpointWriter> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(CheckpointWriter { dir, page_size })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes image `name` holding `entries`.
    pub fn write<M: Message>(&self, name: &str, magic: u32, entries: &[M]) -> Result<()> {
        let path = self.dir.join(name);
        fs::write(&path, image_bytes(magic, entries))
            .with_context(|| format!("{}: cannot write", path.display()))
    }

    /// inventory.img (image version 2, as CRIU 3.x and 4.x write it).
    pub fn inventory(&self) -> Result<()> {
        let inv = proto::Inventory {
            img_version: 2,
            ..Default::default()
        };
        self.write("inventory.img", magic::INVENTORY, &[inv])
    }

    /// pstree.img.
    pub fn pstree(&self, entries: &[proto::PstreeEntry]) -> Result<()> {
        self.write("pstree.img", magic::PSTREE, entries)
    }

    /// `core-<tid>.img`.
    pub fn core(&self, tid: u32, core: &proto::Core) -> Result<()> {
        self.write(
            &format!("core-{tid}.img"),
            magic::CORE,
            std::slice::from_ref(core),
        )
    }

    /// `mm-<pid>.img`.
    pub fn mm(&self, pid: u32, mm: &proto::Mm) -> Result<()> {
        self.write(
            &format!("mm-{pid}.img"),
            magic::MM,
            std::slice::from_ref(mm),
        )
    }

    /// files.img.
    pub fn files(&self, entries: &[proto::FileEntry]) -> Result<()> {
        self.write("files.img", magic::FILES, entries)
    }

    /// memfd.img.
    pub fn memfd(&self, entries: &[proto::MemfdInode]) -> Result<()> {
        self.write("memfd.img", magic::MEMFD_INODE, entries)
    }

    /// A pagemap image named `pagemap_name` and its pages-<pages_id>.img
    /// from spans that carry their bytes.
    pub fn pagemap<'a>(
        &self,
        pagemap_name: &str,
        pages_id: u32,
        spans: impl IntoIterator<Item = PageSpan<'a>>,
    ) -> Result<()> {
        let spans: Vec<PageSpan<'a>> = spans.into_iter().collect();
        for s in spans.iter().filter(|s| s.flags & PE_PRESENT != 0) {
            let len = s.nr_pages * self.page_size;
            anyhow::ensure!(
                s.data.len() as u64 == len,
                "span at {:#x} has {} bytes, not {len}",
                s.vaddr,
                s.data.len()
            );
        }
        self.pagemap_with(
            pagemap_name,
            pages_id,
            spans.iter().map(|s| (s.vaddr, s.nr_pages, s.flags)),
            |i, off, buf| {
                buf.copy_from_slice(&spans[i].data[off as usize..off as usize + buf.len()])
            },
        )
    }

    /// A pagemap image named `pagemap_name` and its pages-<pages_id>.img
    /// from `(vaddr, nr_pages, flags)` spans; `fill(span, offset, buf)`
    /// supplies the bytes of present spans a buffer at a time, so no span
    /// needs to be in memory whole.
    pub fn pagemap_with(
        &self,
        pagemap_name: &str,
        pages_id: u32,
        spans: impl IntoIterator<Item = (u64, u64, u32)>,
        mut fill: impl FnMut(usize, u64, &mut [u8]),
    ) -> Result<()> {
        let pages_path = self.dir.join(format!("pages-{pages_id}.img"));
        let mut pages = fs::File::create(&pages_path)
            .with_context(|| format!("{}: cannot create", pages_path.display()))?;
        let mut entries = vec![proto::PagemapHead { pages_id }.encode_to_vec()];
        let mut buf = vec![0u8; 1 << 20];
        for (i, (vaddr, nr_pages, flags)) in spans.into_iter().enumerate() {
            if flags & PE_PRESENT != 0 {
                let len = nr_pages * self.page_size;
                let mut off = 0;
                while off < len {
                    let n = (len - off).min(buf.len() as u64) as usize;
                    fill(i, off, &mut buf[..n]);
                    pages
                        .write_all(&buf[..n])
                        .with_context(|| format!("{}: cannot write", pages_path.display()))?;
                    off += n as u64;
                }
            }
            let e = proto::PagemapEntry {
                vaddr,
                compat_nr_pages: 0,
                in_parent: None,
                flags: Some(flags),
                nr_pages: Some(nr_pages),
            };
            entries.push(e.encode_to_vec());
        }
        let mut out = Vec::new();
        out.extend_from_slice(&magic::IMG_COMMON.to_le_bytes());
        out.extend_from_slice(&magic::PAGEMAP.to_le_bytes());
        for b in entries {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(&b);
        }
        let path = self.dir.join(pagemap_name);
        fs::write(&path, out).with_context(|| format!("{}: cannot write", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::image::Image;

    #[test]
    fn written_images_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let w = CheckpointWriter::create(dir.path(), 4096).unwrap();
        w.inventory().unwrap();
        w.pstree(&[proto::PstreeEntry {
            pid: 1,
            ppid: 0,
            pgid: 1,
            sid: 1,
            threads: vec![1],
        }])
        .unwrap();
        let data = vec![7u8; 8192];
        w.pagemap(
            "pagemap-1.img",
            5,
            [
                PageSpan {
                    vaddr: 0x1000,
                    nr_pages: 2,
                    flags: PE_PRESENT,
                    data: &data,
                },
                PageSpan {
                    vaddr: 0x9000,
                    nr_pages: 1,
                    flags: crate::criu::pagemap::PE_PARENT,
                    data: &[],
                },
            ],
        )
        .unwrap();
        let inv = std::fs::read(dir.path().join("inventory.img")).unwrap();
        let mut img = Image::parse("inventory.img", inv, magic::INVENTORY).unwrap();
        assert_eq!(img.expect::<proto::Inventory>().unwrap().img_version, 2);
        let pm = std::fs::read(dir.path().join("pagemap-1.img")).unwrap();
        let mut img = Image::parse("pagemap-1.img", pm, magic::PAGEMAP).unwrap();
        assert_eq!(img.expect::<proto::PagemapHead>().unwrap().pages_id, 5);
        let mut entries = 0;
        while img.entry::<proto::PagemapEntry>().unwrap().is_some() {
            entries += 1;
        }
        assert_eq!(entries, 2);
        assert_eq!(
            std::fs::metadata(dir.path().join("pages-5.img"))
                .unwrap()
                .len(),
            8192
        );
    }
}
