//! Checkpoint archives: the tar files Podman (`podman container checkpoint
//! --export`), CRI-O and the kubelet write, with the CRIU images under
//! `checkpoint/` beside `config.dump`, `spec.dump`, `rootfs-diff.tar` and
//! friends — plain, gzip- or zstd-compressed (recognised by content).
//!
//! Archives are not extracted. Small members are held in memory; page files,
//! pagemaps and the rootfs diff are used where they lie inside an uncompressed
//! archive, or streamed once into a private temporary directory (removed
//! when the store is dropped) when the archive is compressed. Member paths
//! are only ever keys: nothing is written under a name from the archive,
//! and members that try to escape it (absolute paths, `..`, links pointing
//! outside), device files and duplicates are refused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

use crate::cancel::Cancel;
use crate::criu::store::{ImageStore, MAX_IMAGE_BYTES};
use crate::model::Blob;

/// How an archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Members kept in memory up to this size each...
const SMALL_MEMBER: u64 = 8 << 20;
/// ...and this much in all; larger members go to files.
const SMALL_TOTAL: u64 = 256 << 20;
/// Most members an archive may have.
const MAX_MEMBERS: usize = 200_000;

/// Recognises a tar archive (plain, gzip or zstd) by its first bytes.
pub fn sniff(path: &Path) -> Result<Option<Compression>> {
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let head = read_head(f, 512).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if is_ustar(&head) {
        Some(Compression::None)
    } else {
        None
    })
}

/// Whether the bytes of `blob` begin like a plain tar archive (or there are none).
pub fn sniff_blob(blob: &Blob) -> Result<bool> {
    let sub = SubFile::open(&blob.path, blob.offset, blob.len)
        .with_context(|| format!("{}: cannot open", blob.label))?;
    let head = read_head(sub, 512).with_context(|| format!("{}: cannot read", blob.label))?;
    Ok(blob.len == 0 || is_ustar(&head))
}

/// Up to `len` bytes from the start of `r`.
fn read_head(r: impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(len as usize);
    r.take(len).read_to_end(&mut head)?;
    Ok(head)
}

/// A tar header block: "ustar" at offset 257 (POSIX and GNU formats).
fn is_ustar(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

/// Where a member's bytes are.
#[derive(Debug, Clone)]
enum Member {
    /// In memory.
    Small(Arc<[u8]>),
    /// In a file (the archive itself, or a spill file).
    Large(Blob),
}

/// A checkpoint archive opened for reading.
pub struct ArchiveStore {
    label: String,
    compression: Compression,
    prefix: String,
    members: BTreeMap<String, Member>,
    _spill: Option<TempDir>,
}

impl std::fmt::Debug for ArchiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveStore")
            .field("label", &self.label)
            .field("members", &self.members.len())
            .finish()
    }
}

/// A member's path made relative and clean, or an error if it would leave
/// the archive. `None` for the archive root itself.
fn clean_path(p: &Path) -> Result<Option<String>> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => bail!("path {} contains '..'", p.display()),
            Component::RootDir | Component::Prefix(_) => bail!("path {} is absolute", p.display()),
        }
    }
    Ok(if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    })
}

/// Checks that a link target stays inside the archive when followed from `dir`.
fn check_link(dir: &str, target: &Path) -> Result<()> {
    if target.is_absolute() {
        bail!("links to absolute path {}", target.display());
    }
    let mut depth: i64 = if dir.is_empty() {
        0
    } else {
        dir.split('/').count() as i64
    };
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            bail!("links to {}, outside the archive", target.display());
        }
    }
    Ok(())
}

impl ArchiveStore {
    /// Opens the archive at `path`; `spill_dir` is where compressed page
    /// files are unpacked (the system temporary directory if `None`).
    pub fn open(path: &Path, spill_dir: Option<&Path>) -> Result<ArchiveStore> {
        Self::open_cancellable(path, spill_dir, &Cancel::new())
    }

    /// [`ArchiveStore::open`] that stops reading (and removes what it
    /// unpacked) once `cancel` is set.
    pub fn open_cancellable(
        path: &Path,
        spill_dir: Option<&Path>,
        cancel: &Cancel,
    ) -> Result<ArchiveStore> {
        let label = path.display().to_string();
        let compression = sniff(path)?
            .with_context(|| format!("{label}: not a tar, tar.gz or tar.zst archive"))?;
        let file = File::open(path).with_context(|| format!("{label}: cannot open"))?;
        let file_len = file
            .metadata()
            .with_context(|| format!("{label}: cannot stat"))?
            .len();
        let file = cancel.reader(file);
        let mut store = ArchiveStore {
            label: label.clone(),
            compression,
            prefix: String::new(),
            members: BTreeMap::new(),
            _spill: None,
        };
        let result = match compression {
            Compression::None => {
                // Page files are used in place, so seek over them rather than read.
                let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 16, file));
                let entries = ar.entries_with_seek().context("cannot read the archive");
                entries.and_then(|e| store.scan(e, true, path, file_len, spill_dir))
            }
            Compression::Gzip => {
                let dec =
                    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file));
                store.scan_stream(tar::Archive::new(dec), path, file_len, spill_dir)
            }
            Compression::Zstd => {
                let dec = zstd::stream::read::Decoder::new(file)
                    .with_context(|| format!("{label}: cannot start zstd"))?;
                store.scan_stream(tar::Archive::new(dec), path, file_len, spill_dir)
            }
        };
        result.with_context(|| {
            format!("{label}: broken or unsafe {} archive", compression.suffix())
        })?;
        tracing::debug!(
            archive = %label,
            members = store.members.len(),
            unpacked = store._spill.is_some(),
            "read archive"
        );
        store.prefix = if store.members.contains_key("checkpoint/pstree.img") {
            "checkpoint/".into()
        } else if store.members.contains_key("pstree.img") {
            String::new()
        } else {
            bail!("{label}: no CRIU images (neither checkpoint/pstree.img nor pstree.img)");
        };
        Ok(store)
    }

    /// Scans a compressed archive, then reads the stream to its end so the
    /// decompressor checks its checksum and a corrupt archive is not taken
    /// for a good one.
    fn scan_stream<R: Read>(
        &mut self,
        mut ar: tar::Archive<R>,
        path: &Path,
        file_len: u64,
        spill_dir: Option<&Path>,
    ) -> Result<()> {
        let entries = ar.entries().context("cannot read the archive")?;
        self.scan(entries, false, path, file_len, spill_dir)?;
        io::copy(&mut ar.into_inner(), &mut io::sink())
            .context("the compressed stream is corrupt")?;
        Ok(())
    }

    fn scan<R: Read>(
        &mut self,
        entries: tar::Entries<'_, R>,
        in_place: bool,
        path: &Path,
        file_len: u64,
        spill_dir: Option<&Path>,
    ) -> Result<()> {
        let mut small_total = 0u64;
        for (index, entry) in entries.enumerate() {
            let mut entry =
                entry.with_context(|| format!("cannot read the header of member #{index}"))?;
            let raw_path = entry
                .path()
                .with_context(|| format!("member #{index}: unreadable path"))?
                .into_owned();
            let Some(name) = clean_path(&raw_path).with_context(|| format!("member #{index}"))?
            else {
                continue;
            };
            let kind = entry.header().entry_type();
            let ctx = || format!("member {name}");
            if kind.is_dir() {
                continue;
            }
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .with_context(ctx)?
                    .with_context(|| format!("member {name}: link without target"))?;
                let dir = if kind.is_symlink() {
                    name.rsplit_once('/').map_or("", |d| d.0)
                } else {
                    ""
                };
                check_link(dir, &target).with_context(ctx)?;
                continue;
            }
            if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                bail!(
                    "member {name}: device or fifo ({:?}) in a checkpoint archive",
                    kind
                );
            }
            if !(kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse()) {
                continue;
            }
            if self.members.contains_key(&name) {
                bail!("member {name} appears twice");
            }
            if self.members.len() >= MAX_MEMBERS {
                bail!("more than {MAX_MEMBERS} members");
            }
            let size = entry.size();
            let large = is_page_file(&name)
                || name == "rootfs-diff.tar"
                || size > SMALL_MEMBER
                || small_total + size > SMALL_TOTAL;
            let member = if !large {
                let mut buf = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut buf)
                    .with_context(ctx)?;
                if buf.len() as u64 != size {
                    bail!(
                        "member {name}: archive ends inside it ({} of {size} bytes)",
                        buf.len()
                    );
                }
                small_total += size;
                Member::Small(buf.into())
            } else if in_place && !kind.is_gnu_sparse() {
                let offset = entry.raw_file_position();
                if offset.checked_add(size).is_none_or(|end| end > file_len) {
                    bail!("member {name}: claims {size} bytes at offset {offset}, past the archive's end ({file_len})");
                }
                Member::Large(Blob {
                    label: format!("{}:{name}", path.display()),
                    path: path.to_path_buf(),
                    offset,
                    len: size,
                })
            } else {
                let dir = match &self._spill {
                    Some(d) => d,
                    None => {
                        let mut b = tempfile::Builder::new();
                        b.prefix("criu2core-");
                        let d = match spill_dir {
                            Some(p) => b.tempdir_in(p),
                            None => b.tempdir(),
                        }
                        .context("cannot create a temporary directory")?;
                        self._spill.insert(d)
                    }
                };
                let spill = dir.path().join(format!("member-{index}"));
                let mut out = File::create(&spill)
                    .with_context(|| format!("{}: cannot create", spill.display()))?;
                let copied =
                    io::copy(&mut (&mut entry).take(size), &mut out).with_context(|| {
                        format!("member {name}: cannot unpack into {}", spill.display())
                    })?;
                if copied != size {
                    bail!("member {name}: archive ends inside it ({copied} of {size} bytes)");
                }
                Member::Large(Blob {
                    label: format!("{}:{name}", path.display()),
                    path: spill,
                    offset: 0,
                    len: size,
                })
            };
            self.members.insert(name, member);
        }
        Ok(())
    }

    /// The compression of the archive.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Whether the archive has a container checkpoint's layout (images
    /// under `checkpoint/`) rather than bare images.
    pub fn is_container_checkpoint(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Reads a member outside the image directory (config.dump, spec.dump...).
    pub fn read_member(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read_path(name)
    }

    /// Where `rootfs-diff.tar` lies, if the archive has one.
    pub fn rootfs_diff(&self) -> Option<Blob> {
        match self.members.get("rootfs-diff.tar")? {
            Member::Large(b) => Some(b.clone()),
            Member::Small(_) => None,
        }
    }

    fn read_path(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.members.get(key) {
            None => Ok(None),
            Some(Member::Small(b)) => Ok(Some(b.to_vec())),
            Some(Member::Large(b)) => {
                if b.len > MAX_IMAGE_BYTES {
                    bail!(
                        "{}: {} bytes is larger than any metadata image should be",
                        b.label,
                        b.len
                    );
                }
                let mut f =
                    File::open(&b.path).with_context(|| format!("{}: cannot open", b.label))?;
                f.seek(SeekFrom::Start(b.offset))?;
                let mut buf = Vec::with_capacity(b.len as usize);
                f.take(b.len)
                    .read_to_end(&mut buf)
                    .with_context(|| format!("{}: cannot read", b.label))?;
                if buf.len() as u64 != b.len {
                    bail!("{}: ends early", b.label);
                }
                Ok(Some(buf))
            }
        }
    }
}

/// Page files and pagemaps, which grow with the checkpoint: read where they
/// lie (or from a spill file), never held in memory.
fn is_page_file(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name);
    (base.starts_with("pages-") || base.starts_with("pagemap-")) && base.ends_with(".img")
}

impl ImageStore for ArchiveStore {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            self.label.clone()
        } else {
            format!("{}:{}", self.label, self.prefix.trim_end_matches('/'))
        }
    }

    fn names(&self) -> Result<Vec<String>> {
        Ok(self
            .members
            .keys()
            .filter_map(|k| k.strip_prefix(self.prefix.as_str()))
            .filter(|k| !k.contains('/'))
            .map(String::from)
            .collect())
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read_path(&format!("{}{name}", self.prefix))
    }

    fn blob(&self, name: &str) -> Result<Option<Blob>> {
        match self.members.get(&format!("{}{name}", self.prefix)) {
            None => Ok(None),
            Some(Member::Large(b)) => Ok(Some(b.clone())),
            Some(Member::Small(_)) => {
                Err(anyhow!("{}: {name} is not stored as a file", self.label))
            }
        }
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + Sync>, u64)>> {
        match self.members.get(&format!("{}{name}", self.prefix)) {
            Some(Member::Large(b)) => {
                let f = SubFile::open(&b.path, b.offset, b.len)
                    .with_context(|| format!("{}: cannot open {name}", self.label))?;
                Ok(Some((Box::new(f), b.len)))
            }
            Some(Member::Small(b)) => {
                Ok(Some((Box::new(io::Cursor::new(b.clone())), b.len() as u64)))
            }
            None => Ok(None),
        }
    }

    fn parent(&self) -> Result<Option<Arc<dyn ImageStore>>> {
        Ok(None)
    }
}

/// A window onto part of a file, readable and seekable on its own.
pub struct SubFile {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl SubFile {
    /// The `len` bytes of `path` from `start`.
    pub fn open(path: &Path, start: u64, len: u64) -> io::Result<SubFile> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(start))?;
        Ok(SubFile {
            file,
            start,
            len,
            pos: 0,
        })
    }
}

impl Read for SubFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for SubFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.pos = target;
        Ok(target)
    }
}

/// The regular files of an uncompressed tar lying inside `blob` (a
/// rootfs-diff.tar), by clean path, each as a blob of its own.
pub fn index_tar(blob: &Blob) -> Result<BTreeMap<String, Blob>> {
    let sub = SubFile::open(&blob.path, blob.offset, blob.len)
        .with_context(|| format!("{}: cannot open", blob.label))?;
    let mut ar = tar::Archive::new(sub);
    let mut out = BTreeMap::new();
    for (index, entry) in ar
        .entries_with_seek()
        .with_context(|| format!("{}: cannot read", blob.label))?
        .enumerate()
    {
        let entry = entry.with_context(|| format!("{}: member #{index}", blob.label))?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let path = entry
            .path()
            .with_context(|| format!("{}: member #{index}", blob.label))?
            .into_owned();
        let Some(name) =
            clean_path(&path).with_context(|| format!("{}: member #{index}", blob.label))?
        else {
            continue;
        };
        let (offset, len) = (entry.raw_file_position(), entry.size());
        if offset.checked_add(len).is_none_or(|e| e > blob.len) {
            bail!("{}: member {name} runs past the end of the tar", blob.label);
        }
        out.insert(
            name.clone(),
            Blob {
                label: format!("{}:{name}", blob.label),
                path: blob.path.clone(),
                offset: blob.offset + offset,
                len,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(
            clean_path(Path::new("./checkpoint/pstree.img"))
                .unwrap()
                .unwrap(),
            "checkpoint/pstree.img"
        );
        assert_eq!(clean_path(Path::new("./")).unwrap(), None);
        assert!(clean_path(Path::new("/etc/passwd")).is_err());
        assert!(clean_path(Path::new("checkpoint/../../x")).is_err());
    }

    #[test]
    fn links_must_stay_inside() {
        assert!(check_link("checkpoint", Path::new("../config.dump")).is_ok());
        assert!(check_link("checkpoint", Path::new("../../etc")).is_err());
        assert!(check_link("", Path::new("/etc/passwd")).is_err());
        assert!(check_link("", Path::new("a/../../b")).is_err());
    }
}
