//! Whether a file found under a root, in an image or among a container's
//! changed files is the one a checkpoint recorded: its size, and its ELF
//! build-id where one was recorded, read as CRIU reads it (the
//! NT_GNU_BUILD_ID note of a PT_NOTE segment in the file's first MiB).
//!
//! A recorded checksum is not compared: no CRIU release writes one, and
//! which bytes it covers (`checksum_config`) has no published meaning.

use anyhow::{Context, Result};

use crate::blobio::BlobFile;
use crate::model::{Blob, FileStatus, Recorded};

/// How much of a file CRIU reads to find its build-id.
const BUILD_ID_WINDOW: u64 = 1 << 20;

/// Longest build-id CRIU records.
const MAX_BUILD_ID: usize = 512;

/// ELF's PT_NOTE and NT_GNU_BUILD_ID.
const PT_NOTE: u32 = 4;
const NT_GNU_BUILD_ID: u32 = 3;

/// Compares the file in `blob` with what was `recorded` of it.
pub(crate) fn check(blob: &Blob, recorded: &Recorded) -> Result<FileStatus> {
    if recorded.size.is_none() && recorded.build_id.is_none() {
        return Ok(FileStatus::Unverifiable);
    }
    if let Some(size) = recorded.size {
        if size != blob.len {
            return Ok(FileStatus::Mismatch {
                why: format!("recorded {size} bytes, found {} bytes", blob.len),
            });
        }
    }
    let Some(want) = &recorded.build_id else {
        return Ok(FileStatus::Verified { checks: "size" });
    };
    let head = read_head(blob)?;
    let found = build_id(&head).map(|mut id| {
        id.resize(id.len().div_ceil(4) * 4, 0);
        id
    });
    Ok(match found {
        Some(id) if &id == want => FileStatus::Verified {
            checks: if recorded.size.is_some() {
                "size, build-id"
            } else {
                "build-id"
            },
        },
        Some(id) => FileStatus::Mismatch {
            why: format!("recorded build-id {}, found {}", hex(want), hex(&id)),
        },
        None => FileStatus::Mismatch {
            why: format!("recorded build-id {}, found none", hex(want)),
        },
    })
}

/// A build-id as the tools print it: lowercase hex, trailing padding
/// zeros kept (they were recorded).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_head(blob: &Blob) -> Result<Vec<u8>> {
    let mut head = vec![0; blob.len.min(BUILD_ID_WINDOW) as usize];
    let mut f = BlobFile::open(blob).with_context(|| format!("{}: cannot open", blob.label))?;
    f.read_exact_at(&mut head, blob.offset)
        .with_context(|| format!("{}: cannot read its first bytes", blob.label))?;
    Ok(head)
}

/// Reads fixed-size integers of an ELF file in its own byte order.
pub(crate) struct Elf<'a> {
    /// The bytes read, from the offset that `at` counts from.
    pub(crate) data: &'a [u8],
    /// Whether the file is big-endian.
    pub(crate) big: bool,
}

impl Elf<'_> {
    /// The 16-bit integer at `at`, where `data` holds it.
    pub(crate) fn u16(&self, at: u64) -> Option<u64> {
        let b: [u8; 2] = self.bytes(at, 2)?.try_into().ok()?;
        Some(u64::from(if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }))
    }

    /// The 32-bit integer at `at`, where `data` holds it.
    pub(crate) fn u32(&self, at: u64) -> Option<u64> {
        let b: [u8; 4] = self.bytes(at, 4)?.try_into().ok()?;
        Some(u64::from(if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }))
    }

    /// The 64-bit integer at `at`, where `data` holds it.
    pub(crate) fn u64(&self, at: u64) -> Option<u64> {
        let b: [u8; 8] = self.bytes(at, 8)?.try_into().ok()?;
        Some(if self.big {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// `len` bytes at `at`, where `data` holds them.
    pub(crate) fn bytes(&self, at: u64, len: u64) -> Option<&[u8]> {
        let start = usize::try_from(at).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        self.data.get(start..end)
    }
}

/// The build-id of the ELF file that starts with `data`, if `data` holds
/// its program headers and build-id note.
fn build_id(data: &[u8]) -> Option<Vec<u8>> {
    if data.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match data.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let elf = Elf {
        data,
        big: *data.get(5)? == 2,
    };
    let (phoff, phentsize, phnum) = if wide {
        (elf.u64(32)?, elf.u16(54)?, elf.u16(56)?)
    } else {
        (elf.u32(28)?, elf.u16(42)?, elf.u16(44)?)
    };
    (0..phnum).find_map(|i| {
        let ph = phoff.checked_add(i * phentsize)?;
        if elf.u32(ph)? != u64::from(PT_NOTE) {
            return None;
        }
        let (offset, filesz, align) = if wide {
            (elf.u64(ph + 8)?, elf.u64(ph + 32)?, elf.u64(ph + 48)?)
        } else {
            (elf.u32(ph + 4)?, elf.u32(ph + 16)?, elf.u32(ph + 28)?)
        };
        note(&elf, offset, offset.checked_add(filesz)?, align.max(4))
    })
}

/// The NT_GNU_BUILD_ID descriptor among the notes in `start..end`, whose
/// fields are aligned to `align` bytes.
fn note(elf: &Elf<'_>, start: u64, end: u64, align: u64) -> Option<Vec<u8>> {
    let pad = |n: u64| n.checked_next_multiple_of(align);
    let mut at = start;
    while at.checked_add(12)? <= end {
        let (namesz, descsz, kind) = (elf.u32(at)?, elf.u32(at + 4)?, elf.u32(at + 8)?);
        let desc = at.checked_add(12)?.checked_add(pad(namesz)?)?;
        if kind == u64::from(NT_GNU_BUILD_ID) && elf.bytes(at + 12, namesz)? == b"GNU\0" {
            if descsz == 0 || descsz > MAX_BUILD_ID as u64 || desc.checked_add(descsz)? > end {
                return None;
            }
            return elf.bytes(desc, descsz).map(<[u8]>::to_vec);
        }
        at = desc.checked_add(pad(descsz)?)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with one PT_NOTE holding a
    /// build-id note.
    fn elf_with(id: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let notes = f.len() as u64;
        let mut n = Vec::new();
        n.extend_from_slice(&4u32.to_le_bytes());
        n.extend_from_slice(&(id.len() as u32).to_le_bytes());
        n.extend_from_slice(&NT_GNU_BUILD_ID.to_le_bytes());
        n.extend_from_slice(b"GNU\0");
        n.extend_from_slice(id);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        f[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        f[72..80].copy_from_slice(&notes.to_le_bytes());
        f[96..104].copy_from_slice(&(n.len() as u64).to_le_bytes());
        f[112..120].copy_from_slice(&4u64.to_le_bytes());
        f.extend_from_slice(&n);
        f
    }

    fn blob_of(dir: &std::path::Path, bytes: &[u8]) -> Blob {
        let path = dir.join("f");
        std::fs::write(&path, bytes).unwrap();
        Blob {
            label: "f".into(),
            path,
            offset: 0,
            len: bytes.len() as u64,
            remote: None,
        }
    }

    #[test]
    fn size_and_build_id_tell_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = elf_with(&[1, 2, 3, 4, 5, 6]);
        let blob = blob_of(dir.path(), &file);
        let rec = |size, id: Option<&[u8]>| Recorded {
            size,
            build_id: id.map(<[u8]>::to_vec),
            checksum: None,
        };
        let len = file.len() as u64;
        let same = check(&blob, &rec(Some(len), Some(&[1, 2, 3, 4, 5, 6, 0, 0]))).unwrap();
        assert_eq!(
            same,
            FileStatus::Verified {
                checks: "size, build-id"
            }
        );
        let other = check(&blob, &rec(Some(len), Some(&[9, 2, 3, 4, 5, 6, 0, 0]))).unwrap();
        assert_eq!(
            other,
            FileStatus::Mismatch {
                why: "recorded build-id 0902030405060000, found 0102030405060000".into()
            }
        );
        let size = check(&blob, &rec(Some(len + 1), None)).unwrap();
        let why = format!("recorded {} bytes, found {len} bytes", len + 1);
        assert_eq!(size, FileStatus::Mismatch { why });
        assert_eq!(
            check(&blob, &rec(None, None)).unwrap(),
            FileStatus::Unverifiable
        );
        let plain = blob_of(dir.path(), b"not an ELF file at all");
        let none = check(&plain, &rec(None, Some(&[1, 2, 3, 4]))).unwrap();
        assert!(matches!(none, FileStatus::Mismatch { why } if why.ends_with("found none")));
    }

    #[test]
    fn damaged_headers_have_no_build_id() {
        let file = elf_with(&[7; 20]);
        assert_eq!(build_id(&file), Some(vec![7; 20]));
        for cut in 0..file.len() {
            assert_eq!(build_id(&file[..cut]), None, "{cut}");
        }
        let mut huge = file.clone();
        huge[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
        huge[54..56].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(build_id(&huge), Some(vec![7; 20]));
        let mut long = file;
        long[124..128].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(build_id(&long), None);
    }
}
