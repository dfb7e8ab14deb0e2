//! Files unlinked while a process had them open or mapped, whose contents
//! CRIU kept in the checkpoint: remap-fpath.img names, for such a file's
//! id, a ghost id, and `ghost-file-<ghost id in hex>.img` holds a
//! ghost_file_entry followed by the contents — the whole file when
//! `chunks` is unset, else chunk entries (`len`, `off`) each followed by
//! `len` bytes of the file at `off`, the rest of the file reading as zeros.

use anyhow::Result;

use super::image::ImageReader;
use super::magic;
use super::store::ImageStore;
use crate::error::{corrupt, fault, ErrorKind};
use crate::model::Blob;
use crate::proto;

/// Most chunks one ghost file may have (each is held as three numbers):
/// CRIU writes one per run of data between holes.
pub const MAX_GHOST_CHUNKS: usize = 1 << 20;

/// Longest entry of a ghost image (a header or a chunk entry: a few
/// numbers, and a symbolic link's target of at most PATH_MAX).
const MAX_GHOST_ENTRY: usize = 8 << 10;

/// S_IFMT and S_IFREG.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;

/// The contents of a ghost file, where they lie in its image.
#[derive(Debug, Clone)]
pub struct Ghost {
    /// The image file.
    pub blob: Blob,
    /// The file's size.
    pub size: u64,
    /// Its non-zero parts: (offset in the file, length, offset in `blob`),
    /// in offset order, disjoint.
    pub pieces: Vec<(u64, u64, u64)>,
}

/// The name of the image of ghost `id`.
pub fn image_name(id: u32) -> String {
    format!("ghost-file-{id:x}.img")
}

/// Reads ghost `id` of `store`: `None` when the checkpoint lacks its
/// image or the ghost is no regular file (a directory or a link).
pub fn load(store: &dyn ImageStore, id: u32) -> Result<Option<Ghost>> {
    let name = image_name(id);
    let (Some(blob), Some((stream, len))) = (store.blob(&name)?, store.open(&name)?) else {
        return Ok(None);
    };
    let label = format!("{}/{name}", store.location());
    let mut img = ImageReader::new(
        label.clone(),
        stream,
        len,
        magic::GHOST_FILE,
        MAX_GHOST_ENTRY,
    )?;
    let head: proto::GhostFileEntry = img.expect()?;
    if head.mode & S_IFMT != S_IFREG {
        return Ok(None);
    }
    if head.chunks != Some(true) {
        let (at, size) = (img.offset(), img.remaining());
        let pieces = if size > 0 {
            vec![(0, size, at)]
        } else {
            Vec::new()
        };
        return Ok(Some(Ghost { blob, size, pieces }));
    }
    let size = head.size.ok_or_else(|| {
        corrupt(
            &label,
            Some(0),
            format!("{label}: a ghost file in chunks without its size"),
        )
    })?;
    let mut pieces: Vec<(u64, u64, u64)> = Vec::new();
    while img.remaining() > 0 {
        let at = img.offset();
        let c: proto::GhostChunkEntry = img.expect()?;
        let end = pieces.last().map_or(0, |p| p.0 + p.1);
        if c.off < end || c.off.checked_add(c.len).is_none_or(|e| e > size) {
            return Err(corrupt(
                &label,
                Some(at),
                format!(
                    "{label}: offset {at}: chunk of {} bytes at {} is out of order or past the file's {size} bytes",
                    c.len, c.off
                ),
            ));
        }
        if pieces.len() == MAX_GHOST_CHUNKS {
            return Err(fault(
                ErrorKind::Limit,
                format!("{label}: offset {at}: more than {MAX_GHOST_CHUNKS} chunks, more than criu2core reads"),
            ));
        }
        let data = img.offset();
        img.skip(c.len)?;
        if c.len > 0 {
            pieces.push((c.off, c.len, data));
        }
    }
    Ok(Some(Ghost { blob, size, pieces }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::store::DirStore;
    use crate::testkit::CheckpointWriter;
    use prost::Message;

    fn write(dir: &std::path::Path, head: &proto::GhostFileEntry, rest: &[u8]) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&magic::IMG_COMMON.to_le_bytes());
        bytes.extend_from_slice(&magic::GHOST_FILE.to_le_bytes());
        let h = head.encode_to_vec();
        bytes.extend_from_slice(&(h.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&h);
        bytes.extend_from_slice(rest);
        std::fs::write(dir.join(image_name(0x1a)), bytes).unwrap();
    }

    fn chunk(off: u64, data: &[u8]) -> Vec<u8> {
        let c = proto::GhostChunkEntry {
            len: data.len() as u64,
            off,
        }
        .encode_to_vec();
        [&(c.len() as u32).to_le_bytes()[..], &c, data].concat()
    }

    fn head(chunks: bool, size: Option<u64>) -> proto::GhostFileEntry {
        proto::GhostFileEntry {
            mode: S_IFREG | 0o755,
            chunks: Some(chunks),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn whole_and_chunked_ghosts() {
        let dir = tempfile::tempdir().unwrap();
        CheckpointWriter::create(dir.path(), 4096).unwrap();
        let store = DirStore::open(dir.path()).unwrap();
        write(dir.path(), &head(false, None), b"whole file");
        let g = load(&store, 0x1a).unwrap().unwrap();
        let at = g.blob.len - 10;
        assert_eq!((g.size, g.pieces.clone()), (10, vec![(0, 10, at)]));

        let rest = [chunk(0, b"abc"), chunk(4096, b"xyz")].concat();
        write(dir.path(), &head(true, Some(8192)), &rest);
        let g = load(&store, 0x1a).unwrap().unwrap();
        assert_eq!(g.size, 8192);
        let offs: Vec<(u64, u64)> = g.pieces.iter().map(|p| (p.0, p.1)).collect();
        assert_eq!(offs, vec![(0, 3), (4096, 3)]);
        let bytes = std::fs::read(&g.blob.path).unwrap();
        let p = g.pieces[1];
        assert_eq!(&bytes[p.2 as usize..(p.2 + p.1) as usize], b"xyz");
        assert!(load(&store, 0x1b).unwrap().is_none());
    }

    #[test]
    fn lying_ghosts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        CheckpointWriter::create(dir.path(), 4096).unwrap();
        let store = DirStore::open(dir.path()).unwrap();
        let bad: [(proto::GhostFileEntry, Vec<u8>); 4] = [
            (head(true, None), chunk(0, b"a")),
            (head(true, Some(2)), chunk(1, b"abc")),
            (
                head(true, Some(100)),
                [chunk(10, b"a"), chunk(5, b"b")].concat(),
            ),
            (head(true, Some(100)), chunk(0, b"abc")[..8].to_vec()),
        ];
        for (h, rest) in bad {
            write(dir.path(), &h, &rest);
            assert!(load(&store, 0x1a).is_err(), "{h:?}");
        }
        let mut dir_mode = head(false, None);
        dir_mode.mode = 0o040_755;
        write(dir.path(), &dir_mode, b"");
        assert!(load(&store, 0x1a).unwrap().is_none());
    }
}
