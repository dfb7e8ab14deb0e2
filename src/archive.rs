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
//!
//! An archive's members are read as a stream ([`Members`]) that whoever
//! opens it consumes, one member at a time ([`Entry`]): an ordinary open
//! keeps each as said above; the one-pass conversion takes the pages
//! members it writes straight into cores and keeps the rest.
//!
//! The order of members decides what must be spilled. containerd's
//! Kubernetes archive (`internal/cri/server/container_checkpoint_linux.go`,
//! `archive.Diff` of a directory) is a sorted walk: `checkpoint/` first,
//! in it `core-*`, ..., `mm-*`, `pagemap-*`, `pages-*`, `pstree.img` in
//! name order, then `config.dump`, `container.log`, `dump.log`,
//! `rootfs-diff.tar` (gzip data despite its name), `spec.dump`,
//! `stats-dump`, `status`, `status.dump`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use prost::Message;

use crate::blobio::{self, BlobReader};
use crate::cancel::Cancel;
use crate::compress::{
    archive_compression, decoder, layer_compression, tar_compression, Compression, HEAD_BYTES,
};
use crate::criu::files::FileTable;
use crate::criu::image::{Image, ImageReader};
use crate::criu::pagemap::{self, PagemapReader, MAX_ENTRY_BYTES};
use crate::criu::store::{ImageStore, MAX_IMAGE_BYTES};
use crate::criu::{self, magic};
use crate::error::{fault, kind_of, ErrorKind, Fault};
use crate::model::{display_bytes, Blob, MAX_STRINGS_BYTES};
use crate::oci::{Recorded, Wanted};
use crate::paths::{self, DotDot};
use crate::proto;
use crate::readahead::ReadAhead;
use crate::rootfs::clean_key;
use crate::spill::{Spill, SpillOptions};
use crate::tar::{self, Kind, Source, TarReader};
use crate::warning::{Warning, WarningKind};

/// Metadata members kept in memory up to this size each...
const SMALL_MEMBER: u64 = 8 << 20;
/// ...and this much in all; larger ones go to files.
const SMALL_TOTAL: u64 = 64 << 20;
/// Most members an archive may have: a checkpoint has a few images per
/// process and one per thread.
pub const MAX_MEMBERS: usize = 200_000;
/// Most members a rootfs-diff.tar may have. Only the files the
/// checkpoint's processes mapped are kept (their paths and where they
/// lie), so this bounds the time spent reading headers, not memory.
pub const MAX_DIFF_MEMBERS: usize = 1 << 20;
/// How many members of a rootfs diff with `..` in their paths are named
/// in its warning (the rest are counted).
const NAMED_BAD_MEMBERS: usize = 5;

/// Recognises a tar archive (plain, gzip or zstd) by its first bytes.
pub fn sniff(path: &Path) -> Result<Option<Compression>> {
    let f = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let head =
        read_head(f, HEAD_BYTES).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(tar_compression(&head))
}

/// The whole of the archive at `path`: a file, or the object a URL names.
pub(crate) fn whole_archive(path: &Path) -> Result<Blob> {
    let label = path.display().to_string();
    if let Some(url) = blobio::url_of(path) {
        let obj = crate::remote::Location::parse(url)?.object()?;
        return Ok(Blob {
            len: obj.0.size(),
            remote: Some(obj),
            label,
            path: path.to_path_buf(),
            offset: 0,
        });
    }
    let len = fs::metadata(path)
        .with_context(|| format!("{label}: cannot stat"))?
        .len();
    Ok(Blob {
        label,
        path: path.to_path_buf(),
        offset: 0,
        len,
        remote: None,
    })
}

/// Up to `len` bytes from the start of `r`.
fn read_head(r: impl Read, len: u64) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(len as usize);
    r.take(len).read_to_end(&mut head)?;
    Ok(head)
}

/// Which page data the reader of an archive will use, so that only that is
/// unpacked from a compressed one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageUse {
    /// All of it, as a conversion does.
    #[default]
    All,
    /// Only the pages holding each process's command line and environment,
    /// as `inspect` does; the rest of each pages file reads as zeros.
    Strings,
}

/// How to open an archive.
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// Where members of a compressed archive are unpacked, and how much.
    pub spill: SpillOptions,
    /// Which page data will be used.
    pub pages: PageUse,
    /// Stops reading once set.
    pub cancel: Cancel,
}

/// Where a member's bytes are.
#[derive(Debug, Clone)]
enum Member {
    /// In memory.
    Small(Arc<[u8]>),
    /// In a file (the archive itself, or a spill file).
    Large(Blob),
    /// Nowhere: a pages file whose bytes its reader took as the archive
    /// streamed by ([`Entry::went_by`]), or that is not read yet (in an
    /// [`Entry::snapshot`]).
    /// Its blob has the member's label and length and no path: nothing can
    /// read it.
    Streamed(Blob),
}

/// A container's rootfs-diff.tar (the files it changed), read once: the
/// members a checkpoint can use ([`Recorded`]: the files its processes
/// had open or mapped, the directories above them, the whiteouts that
/// touch them), each wanted file where its bytes lie.
#[derive(Debug, Clone, Default)]
pub struct DiffIndex {
    /// How messages name the diff.
    pub label: String,
    /// Its members and wanted files, to be laid over an image's layers.
    pub(crate) recorded: Recorded,
    /// What was wrong with the diff (members skipped, and why).
    pub warnings: Vec<Warning>,
}

impl DiffIndex {
    /// The wanted files it holds: their paths (clean, relative) and where
    /// their bytes are (for the fuzz targets, through the testkit).
    #[cfg(feature = "testkit")]
    pub fn files(&self) -> Vec<(Vec<u8>, Blob)> {
        self.recorded
            .members
            .iter()
            .filter_map(|m| {
                let blob = self.recorded.copies.get(&u32::try_from(m.index).ok()?)?;
                Some((clean_key(&m.name)?, blob.clone()))
            })
            .collect()
    }
}

/// Reads the rootfs diff lying in `blob` (plain, gzip or zstd), keeping
/// the files `wanted` names (clean paths) as a checkpoint would: those of
/// a compressed diff copied into a new directory in `spill_dir`, at most
/// `max_spill` bytes. For tests and fuzz targets.
#[cfg(feature = "testkit")]
pub fn index_diff(
    blob: &Blob,
    wanted: &[&[u8]],
    spill_dir: &Path,
    max_spill: u64,
) -> crate::Result<(DiffIndex, impl Drop)> {
    let mut spill = Spill::new(&SpillOptions {
        dir: Some(spill_dir.to_path_buf()),
        max: Some(max_spill),
    });
    let wanted = Wanted::new::<[u8]>(wanted.iter().copied());
    let ix = read_diff(blob, &wanted, &mut spill).map_err(crate::Error::new)?;
    Ok((ix, SpillGuard(spill)))
}

/// Keeps a spill directory until dropped.
#[cfg(feature = "testkit")]
struct SpillGuard(Spill);

#[cfg(feature = "testkit")]
impl Drop for SpillGuard {
    fn drop(&mut self) {
        self.0.remove();
    }
}

/// A rootfs-diff.tar as an archive holds it.
#[derive(Debug, Clone)]
pub enum Diff {
    /// The tar itself (plain or compressed), to be read once the
    /// checkpoint's files are known.
    Tar(Blob),
    /// Already read (and its wanted files unpacked) while a compressed
    /// archive streamed by.
    Indexed(DiffIndex),
}

/// A checkpoint archive opened for reading.
pub struct ArchiveStore {
    label: String,
    prefix: String,
    members: BTreeMap<String, Member>,
    diff: Option<Diff>,
    warnings: Vec<Warning>,
    spill: Spill,
    learnt: Learnt,
    pages: PageUse,
    /// Metadata held in memory so far.
    small_total: u64,
    /// Members kept that are not pages files.
    described: usize,
}

impl std::fmt::Debug for ArchiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveStore")
            .field("label", &self.label)
            .field("members", &self.members.len())
            .finish()
    }
}

/// A member's path made relative and clean (bytes), or an error if it
/// would leave the archive. `None` for the archive root itself.
fn clean_path(p: &[u8]) -> Result<Option<Vec<u8>>> {
    if p.starts_with(b"/") {
        bail!("path {} is absolute", display_bytes(p));
    }
    let out = paths::clean(p, DotDot::Reject)
        .with_context(|| format!("path {} contains '..'", display_bytes(p)))?;
    Ok((!out.is_empty()).then_some(out))
}

/// Checks that a link target stays inside the archive when followed from `dir`.
fn check_link(dir: &[u8], target: &[u8]) -> Result<()> {
    if target.starts_with(b"/") {
        bail!("links to absolute path {}", display_bytes(target));
    }
    let mut depth: i64 = if dir.is_empty() {
        0
    } else {
        dir.split(|&b| b == b'/').count() as i64
    };
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            bail!("links to {}, outside the archive", display_bytes(target));
        }
    }
    Ok(())
}

/// What a member is to a checkpoint, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An image criu2core decodes, or config.dump / spec.dump.
    Metadata,
    /// A pagemap (a process's or a shared-memory object's).
    Pagemap,
    /// `pages-<id>.img`.
    Pages(u32),
    /// The container's changed files.
    RootfsDiff,
    /// `ghost-file-<id>.img`: a file deleted while open, kept whole as a
    /// file (file pages and sysroots read it in place).
    Ghost,
    /// Anything else: read past, never stored.
    Unused,
}

/// The number in an image name such as `core-<n>.img`.
fn image_number(base: &str, prefix: &str) -> Option<u32> {
    let digits = base.strip_prefix(prefix)?.strip_suffix(".img")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The hexadecimal number in an image name such as `tcp-stream-<x>.img`.
fn image_hex(base: &str, prefix: &str) -> Option<u32> {
    let digits = base.strip_prefix(prefix)?.strip_suffix(".img")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The images `inspect --fds --sockets --mounts` decodes (criu::fds,
/// criu::mounts), besides those memory decoding needs.
const FILE_IMAGES: [&str; 15] = [
    "tty-info.img",
    "sk-queues.img",
    "pipes-data.img",
    "fifo-data.img",
    "inetsk.img",
    "unixsk.img",
    "packetsk.img",
    "netlinksk.img",
    "pipes.img",
    "fifo.img",
    "eventfd.img",
    "signalfd.img",
    "timerfd.img",
    "tty.img",
    "ns-files.img",
];

/// The role of an image named `base` (no directory).
fn image_role(base: &str) -> Role {
    let num = |prefix| image_number(base, prefix);
    match base {
        "inventory.img" | "pstree.img" | "files.img" | "reg-files.img" | "memfd.img"
        | "remap-fpath.img" => Role::Metadata,
        _ if FILE_IMAGES.contains(&base) => Role::Metadata,
        _ if num("core-").is_some() || num("mm-").is_some() || num("ipcns-shm-").is_some() => {
            Role::Metadata
        }
        _ if ["ids-", "fs-", "fdinfo-", "mountpoints-"]
            .iter()
            .any(|p| num(p).is_some())
            || image_hex(base, "tcp-stream-").is_some() =>
        {
            Role::Metadata
        }
        _ if num("pagemap-").is_some() || num("pagemap-shmem-").is_some() => Role::Pagemap,
        _ if image_hex(base, "ghost-file-").is_some() => Role::Ghost,
        _ => num("pages-").map_or(Role::Unused, Role::Pages),
    }
}

/// The role of a member by its clean name: images at the top (a tar of
/// bare images) or under `checkpoint/`, and a container checkpoint's
/// files at the top.
fn role(name: &str) -> Role {
    match name {
        "config.dump" | "spec.dump" | "deleted.files" => Role::Metadata,
        "rootfs-diff.tar" => Role::RootfsDiff,
        _ => match name.strip_prefix("checkpoint/").unwrap_or(name) {
            base if base.contains('/') => Role::Unused,
            base => image_role(base),
        },
    }
}

/// A process's page size (AT_PAGESZ, if its mm image says) and where its
/// argv and environment are.
type MmFacts = (Option<u64>, [(u64, u64); 2]);

/// What the scan of an archive has learnt so far, to bound the page data
/// it unpacks by what the checkpoint can use.
#[derive(Default)]
struct Learnt {
    /// Per pid: its page size (AT_PAGESZ) and where its argv and
    /// environment are.
    mm: HashMap<u32, MmFacts>,
    /// The pagemap member naming each pages file.
    pagemaps: HashMap<u32, String>,
    /// Pages members unpacked whole because their pagemap was not known
    /// yet: bounded once the scan is over.
    unbounded: Vec<(String, u32)>,
    /// Whether some pagemap's head could not be read (so which pages files
    /// are named by none cannot be told).
    unreadable_pagemap: bool,
}

/// What a pages member may be unpacked as.
struct PagesPlan {
    /// The bytes its pagemap claims.
    claimed: u64,
    /// Only these ranges are written (inspect), if set.
    ranges: Option<Vec<(u64, u64)>>,
}

/// The name and role of member `m` where a checkpoint can use it; `None`
/// for a member that is read past (directories, links that stay inside
/// the archive, names that are no image's). Paths that leave the archive,
/// devices and fifos, sparse members a checkpoint would use and metadata
/// images too large for any are refused.
fn wanted(m: &tar::Member) -> Result<Option<(String, Role)>> {
    let index = m.index;
    let Some(name) = clean_path(&m.name).with_context(|| format!("member #{index}"))? else {
        return Ok(None);
    };
    let shown = display_bytes(&name).into_owned();
    match m.kind {
        Kind::Dir | Kind::Other(_) => return Ok(None),
        Kind::Symlink | Kind::HardLink => {
            let dir = match (m.kind, name.iter().rposition(|&b| b == b'/')) {
                (Kind::Symlink, Some(i)) => &name[..i],
                _ => &b""[..],
            };
            check_link(dir, &m.link).with_context(|| format!("member {shown}"))?;
            return Ok(None);
        }
        Kind::Device | Kind::Fifo => {
            bail!("member {shown}: device or fifo in a checkpoint archive")
        }
        Kind::File | Kind::Sparse { .. } => {}
    }
    // A name that is not UTF-8 is no image: read past.
    let Ok(key) = String::from_utf8(name) else {
        return Ok(None);
    };
    let role = role(&key);
    if role == Role::Unused {
        return Ok(None);
    }
    if let Kind::Sparse { real_size } = m.kind {
        bail!(
            "member {key}: a sparse file ({real_size} bytes once expanded from {} stored); \
             criu2core does not expand sparse members",
            m.size
        );
    }
    if role == Role::Metadata && m.size > MAX_IMAGE_BYTES {
        return Err(fault(
            ErrorKind::Limit,
            format!(
                "member {key}: {} bytes is larger than any metadata image should be (limit {MAX_IMAGE_BYTES})",
                m.size
            ),
        ));
    }
    Ok(Some((key, role)))
}

impl ArchiveStore {
    /// Opens the archive at `path`. Members are only ever keys: nothing is
    /// written under a name from the archive. Reading stops (and what was
    /// unpacked is removed) once `opts.cancel` is set.
    pub fn open(path: &Path, opts: &ArchiveOptions) -> Result<ArchiveStore> {
        ArchiveStore::open_window(&whole_archive(path)?, opts)
    }

    /// Opens the archive that is the byte range `blob` of a file (a layer
    /// or blob inside an image): plain, gzip or zstd by its first bytes.
    /// A plain one is used in place.
    pub(crate) fn open_window(blob: &Blob, opts: &ArchiveOptions) -> Result<ArchiveStore> {
        let mut store = ArchiveStore::new(&blob.label, opts);
        store.add_window(blob, &opts.cancel)?;
        store.finish()
    }

    /// Reads the members of the archive that is the byte range `blob`:
    /// plain (used in place), gzip or zstd by its first bytes.
    pub(crate) fn add_window(&mut self, blob: &Blob, cancel: &Cancel) -> Result<()> {
        self.members_of(blob, cancel)?.keep_all()
    }

    /// The members of the archive that is the byte range `blob` (plain,
    /// gzip or zstd by its first bytes), to be consumed front to back: a
    /// plain one's are used where they lie; a compressed one is read once,
    /// inflated on a thread of its own ([`ReadAhead`]) so that inflating
    /// overlaps whatever its reader does with them.
    pub(crate) fn members_of(&mut self, blob: &Blob, cancel: &Cancel) -> Result<Members<'_>> {
        let label = blob.label.clone();
        let compression = sniff_window(blob)?;
        let (source, origin, limit): (Box<dyn Source>, _, _) = match compression {
            Compression::None => {
                // Page files are used where they lie, so seek over them.
                let file = cancel.reader(
                    BlobReader::open(blob).with_context(|| format!("{label}: cannot open"))?,
                );
                let src = tar::Seekable(BufReader::with_capacity(1 << 16, file));
                (Box::new(src), Origin::InPlace(blob.clone()), Some(blob.len))
            }
            _ => {
                // One streaming GET for an object, read front to back,
                // inflated on a thread of its own.
                let file = cancel
                    .reader(blobio::stream(blob).with_context(|| format!("{label}: cannot open"))?);
                let dec =
                    decoder(file, compression, &label).and_then(|dec| read_ahead(dec, &label));
                let dec = self.fail_as_archive(dec, compression)?;
                (Box::new(buffered(dec)), Origin::Streamed, None)
            }
        };
        Ok(Members {
            store: self,
            reader: TarReader::new(source, limit),
            origin,
            compression,
            undecided: None,
        })
    }

    /// Opens an archive that arrives as a stream (a member of a compressed
    /// archive): plain, gzip or zstd by its first bytes, read once to its
    /// end. What it keeps of page data is unpacked.
    pub(crate) fn open_stream(
        label: &str,
        stream: impl Read,
        opts: &ArchiveOptions,
    ) -> Result<ArchiveStore> {
        let mut store = ArchiveStore::new(label, opts);
        store.add_stream(stream)?;
        store.finish()
    }

    /// An archive with nothing read yet, for [`add_stream`](Self::add_stream)
    /// and [`add_diff_stream`](Self::add_diff_stream) (a checkpoint whose
    /// parts are separate blobs), then [`finish`](Self::finish).
    pub(crate) fn new(label: &str, opts: &ArchiveOptions) -> ArchiveStore {
        ArchiveStore {
            label: label.to_string(),
            prefix: String::new(),
            members: BTreeMap::new(),
            diff: None,
            warnings: Vec::new(),
            spill: Spill::new(&opts.spill),
            learnt: Learnt::default(),
            pages: opts.pages,
            small_total: 0,
            described: 0,
        }
    }

    /// Reads the members of a tar arriving as a stream (plain, gzip or
    /// zstd by its first bytes), to the stream's end.
    pub(crate) fn add_stream(&mut self, stream: impl Read) -> Result<()> {
        let (head, rest) =
            peek(stream, HEAD_BYTES).with_context(|| format!("{}: cannot read", self.label))?;
        let compression = archive_compression(&head, &self.label)?;
        let stream = io::Cursor::new(head).chain(rest);
        let dec = decoder(stream, compression, &self.label);
        let dec = self.fail_as_archive(dec, compression)?;
        Members {
            store: self,
            reader: TarReader::new(Box::new(buffered(dec)), None),
            origin: Origin::Streamed,
            compression,
            undecided: None,
        }
        .keep_all()
    }

    /// The diff, or a warning that it cannot be used: a rootfs diff that
    /// is damaged or no tar only loses the file pages it would give. Bounds
    /// exceeded and cancellation stop the reading.
    fn diff_or_warning(&mut self, diff: Result<Diff>, label: &str) -> Result<Option<Diff>> {
        match diff {
            Ok(d) => Ok(Some(d)),
            Err(e) if matches!(kind_of(&e), ErrorKind::Limit | ErrorKind::Cancelled(_)) => Err(e),
            Err(e) => {
                self.warnings.push(
                    Warning::new(
                        WarningKind::Unreadable,
                        format!("{e:#}; the files in it are not used"),
                    )
                    .about(label),
                );
                Ok(None)
            }
        }
    }

    /// Takes the stream `stream`, `size` bytes, as the checkpoint's rootfs
    /// diff (a containerd checkpoint's rw layer).
    pub(crate) fn add_diff_stream(
        &mut self,
        label: &str,
        stream: &mut dyn Read,
        size: u64,
    ) -> Result<()> {
        if self.diff.is_some() {
            bail!("{label}: a second rootfs diff");
        }
        let diff = self.stream_diff(stream, size, label);
        self.diff = self.diff_or_warning(diff, label)?;
        Ok(())
    }

    /// Takes the bytes `blob` (plain or compressed) as the checkpoint's
    /// rootfs diff, read by [`finish`](Self::finish).
    pub(crate) fn set_diff(&mut self, blob: Blob) -> Result<()> {
        if self.diff.is_some() {
            bail!("{}: a second rootfs diff", blob.label);
        }
        self.diff = Some(Diff::Tar(blob));
        Ok(())
    }

    /// Marks an error of reading as this archive's.
    fn fail_as_archive<T>(&self, result: Result<T>, compression: Compression) -> Result<T> {
        result.map_err(|e| {
            e.context(Fault::new(
                ErrorKind::BadArchive,
                format!(
                    "{}: broken or unsafe {} archive",
                    self.label,
                    compression.suffix()
                ),
            ))
        })
    }

    /// Ends the reading: cuts pages files unpacked before their pagemap
    /// came by, finds the images, and reads the rootfs diff if it was not
    /// read as it streamed by.
    pub(crate) fn finish(mut self) -> Result<ArchiveStore> {
        let mut learnt = std::mem::take(&mut self.learnt);
        self.bound_unbounded(&mut learnt, self.pages)?;
        tracing::debug!(
            archive = %self.label,
            members = self.members.len(),
            unpacked = self.spill.used(),
            "read archive"
        );
        self.prefix = if self.members.contains_key("checkpoint/pstree.img") {
            "checkpoint/".into()
        } else if self.members.contains_key("pstree.img") {
            String::new()
        } else {
            return Err(fault(
                ErrorKind::NotACheckpoint,
                format!(
                    "{}: no CRIU images (neither checkpoint/pstree.img nor pstree.img)",
                    self.label
                ),
            ));
        };
        if let Some(Diff::Tar(blob)) = &self.diff {
            let blob = blob.clone();
            let wanted = match self.pages {
                PageUse::Strings => Wanted::default(),
                PageUse::All => self.wanted_files()?.unwrap_or_default(),
            };
            let index = read_diff(&blob, &wanted, &mut self.spill).map(Diff::Indexed);
            // A diff unpacked whole, before the file table came by, is no
            // longer needed once its wanted files are out.
            if self.spill.holds(&blob.path) {
                fs::remove_file(&blob.path)
                    .with_context(|| format!("{}: cannot remove", blob.path.display()))?;
                self.spill.release(blob.len);
            }
            self.diff = self.diff_or_warning(index, &blob.label)?;
        }
        Ok(self)
    }

    /// Records member `key` (whose role is `role`) as `member`, and what
    /// it tells of the page data to come.
    fn record(&mut self, key: &str, role: Role, member: Member) {
        if !matches!(role, Role::Pages(_)) {
            self.described += 1;
        }
        self.members.insert(key.to_string(), member);
        let mut learnt = std::mem::take(&mut self.learnt);
        self.learn(key, &mut learnt);
        self.learnt = learnt;
    }

    /// What is kept of member `m` (`key`, whose role is `role`): in
    /// memory, where it lies, or unpacked; `None` for the rootfs diff,
    /// kept as `self.diff` instead.
    fn keep_member<S: Source>(
        &mut self,
        r: &mut TarReader<S>,
        m: &tar::Member,
        key: &str,
        role: Role,
        origin: &Origin,
    ) -> Result<Option<Member>> {
        let ctx = || format!("member {key}");
        let label = format!("{}:{key}", self.label);
        let in_place = |blob: &Blob| Blob {
            label: label.clone(),
            path: blob.path.clone(),
            offset: blob.offset + m.data_offset,
            len: m.size,
            remote: blob.remote.clone(),
        };
        Ok(Some(match (role, origin) {
            (Role::RootfsDiff, Origin::InPlace(blob)) => {
                self.diff = Some(Diff::Tar(in_place(blob)));
                return Ok(None);
            }
            (Role::RootfsDiff, Origin::Streamed) => {
                let diff = self.stream_diff(&mut (&mut *r).take(m.size), m.size, &label);
                self.diff = self.diff_or_warning(diff.with_context(ctx), &label)?;
                return Ok(None);
            }
            (Role::Metadata, _)
                if m.size <= SMALL_MEMBER && self.small_total + m.size <= SMALL_TOTAL =>
            {
                let mut buf = Vec::with_capacity(m.size as usize);
                (&mut *r)
                    .take(m.size)
                    .read_to_end(&mut buf)
                    .with_context(ctx)?;
                self.small_total += m.size;
                Member::Small(buf.into())
            }
            (_, Origin::InPlace(blob)) => Member::Large(in_place(blob)),
            (Role::Pages(id), Origin::Streamed) => {
                Member::Large(self.unpack_pages(r, m, key, id, &label).with_context(ctx)?)
            }
            (_, Origin::Streamed) => {
                Member::Large(self.unpack(r, m, &label, None).with_context(ctx)?.0)
            }
        }))
    }

    /// The members read so far as a store of their own, for decoding what
    /// the archive has described before the rest of it is read: images
    /// under `prefix`, and `pages-<id>.img` for each id of `pending` that
    /// is not read yet as a streamed member of unknown length (its pages
    /// can be laid out, not read).
    fn snapshot(&self, prefix: &str, pending: &[u32]) -> ArchiveStore {
        let mut members = self.members.clone();
        for id in pending {
            let key = format!("{prefix}pages-{id}.img");
            members.entry(key.clone()).or_insert_with(|| {
                Member::Streamed(Blob {
                    label: format!("{}:{key}", self.label),
                    path: PathBuf::new(),
                    offset: 0,
                    len: u64::MAX,
                    remote: None,
                })
            });
        }
        ArchiveStore {
            label: self.label.clone(),
            prefix: prefix.to_string(),
            members,
            diff: None,
            warnings: Vec::new(),
            spill: Spill::new(&SpillOptions {
                dir: None,
                max: Some(0),
            }),
            learnt: Learnt::default(),
            pages: self.pages,
            small_total: self.small_total,
            described: self.described,
        }
    }

    /// Unpacks `pages-<id>.img` from a compressed archive: no more than its
    /// pagemap claims where the pagemap is known by now (what is left out
    /// is warned about), else all of it, to be cut once it is.
    fn unpack_pages<S: Source>(
        &mut self,
        r: &mut TarReader<S>,
        m: &tar::Member,
        key: &str,
        id: u32,
        label: &str,
    ) -> Result<Blob> {
        let plan = self.pages_plan(id, &self.learnt, self.pages);
        let (blob, excess) = self.unpack(r, m, label, plan.as_ref())?;
        match &plan {
            None => self.learnt.unbounded.push((key.to_string(), id)),
            Some(p) if excess > 0 => self.warnings.push(
                Warning::new(
                    WarningKind::EntryIgnored,
                    format!(
                        "{label}: {excess} bytes past the {} its pagemap claims are used by no pagemap entry; not unpacked",
                        p.claimed
                    ),
                )
                .about(label),
            ),
            Some(_) => {}
        }
        Ok(blob)
    }

    /// Notes what bounds page data: each process's page size and strings
    /// (from its mm image, when it is held in memory) and which pagemap
    /// names each pages file.
    fn learn(&self, key: &str, learnt: &mut Learnt) {
        let base = key.rsplit('/').next().unwrap_or(key);
        if let Some(pid) = image_number(base, "mm-") {
            let Some(Member::Small(data)) = self.members.get(key) else {
                return;
            };
            let Ok(mut img) = Image::parse(key, data.clone(), magic::MM) else {
                return;
            };
            if let Ok(Some((_, bytes))) = img.next_raw() {
                if let Ok(mm) = proto::MmHead::decode(bytes) {
                    let ranges = [(mm.arg_start, mm.arg_end), (mm.env_start, mm.env_end)]
                        .map(|(a, b)| (a, b.min(a.saturating_add(MAX_STRINGS_BYTES))));
                    learnt.mm.insert(pid, (criu::page_size_hint(&mm), ranges));
                }
            }
        } else if role(key) == Role::Pagemap {
            let head = self.member_reader(key).and_then(|(rd, len)| {
                ImageReader::new(key, rd, len, magic::PAGEMAP, MAX_ENTRY_BYTES)?
                    .expect::<proto::PagemapHead>()
            });
            match head {
                Ok(head) => {
                    learnt.pagemaps.insert(head.pages_id, key.to_string());
                }
                Err(_) => learnt.unreadable_pagemap = true,
            }
        }
    }

    /// How much of `pages-<id>.img` the checkpoint can use, where its
    /// pagemap (and its process's page size) are known by now.
    fn pages_plan(&self, id: u32, learnt: &Learnt, pages: PageUse) -> Option<PagesPlan> {
        let key = learnt.pagemaps.get(&id)?;
        let base = key.rsplit('/').next().unwrap_or(key);
        let mm = image_number(base, "pagemap-").and_then(|pid| learnt.mm.get(&pid));
        // A shared-memory pagemap counts in the pages of the processes
        // that map it, which share one page size.
        let page_size = match mm {
            Some(&(ps, _)) => ps?,
            None => learnt.mm.values().filter_map(|m| m.0).max()?,
        };
        let wanted = match (pages, mm) {
            (PageUse::Strings, Some((_, ranges))) => &ranges[..],
            _ => &[],
        };
        let (rd, len) = self.member_reader(key).ok()?;
        let img = ImageReader::new(key, rd, len, magic::PAGEMAP, MAX_ENTRY_BYTES).ok()?;
        let c = pagemap::claims(PagemapReader::new(img, page_size).ok()?, wanted).ok()?;
        if c.pages_id != id {
            return None;
        }
        Some(PagesPlan {
            claimed: c.bytes,
            ranges: (pages == PageUse::Strings).then_some(c.ranges),
        })
    }

    /// Pages files unpacked before their pagemap was known: cut to what
    /// it claims, now that it is, or dropped if no pagemap names them.
    fn bound_unbounded(&mut self, learnt: &mut Learnt, pages: PageUse) -> Result<()> {
        for (key, id) in std::mem::take(&mut learnt.unbounded) {
            if !learnt.pagemaps.contains_key(&id) && !learnt.unreadable_pagemap {
                if let Some(Member::Large(blob)) = self.members.remove(&key) {
                    fs::remove_file(&blob.path)
                        .with_context(|| format!("{}: cannot remove", blob.path.display()))?;
                    self.warnings.push(
                        Warning::new(
                            WarningKind::EntryIgnored,
                            format!(
                                "{}: no pagemap names it; its {} bytes are not used",
                                blob.label, blob.len
                            ),
                        )
                        .about(blob.label),
                    );
                }
                continue;
            }
            let Some(plan) = self.pages_plan(id, learnt, pages) else {
                continue;
            };
            let Some(Member::Large(blob)) = self.members.get_mut(&key) else {
                continue;
            };
            if blob.len > plan.claimed {
                let excess = blob.len - plan.claimed;
                OpenOptions::new()
                    .write(true)
                    .open(&blob.path)
                    .and_then(|f| f.set_len(plan.claimed))
                    .with_context(|| format!("{}: cannot truncate", blob.path.display()))?;
                blob.len = plan.claimed;
                self.warnings.push(
                    Warning::new(
                        WarningKind::EntryIgnored,
                        format!(
                            "{}: {excess} bytes past the {} its pagemap claims are used by no pagemap entry; dropped",
                            blob.label, plan.claimed
                        ),
                    )
                    .about(blob.label.clone()),
                );
            }
        }
        Ok(())
    }

    /// Unpacks the current member into a file of the temporary directory:
    /// all of it, or (with a plan) no more than its pagemap claims, or only
    /// the ranges the plan names. Returns where it is and how many of its
    /// bytes were left out.
    fn unpack(
        &mut self,
        r: &mut impl Read,
        m: &tar::Member,
        label: &str,
        plan: Option<&PagesPlan>,
    ) -> Result<(Blob, u64)> {
        let (mut out, spill) = self.spill.create()?;
        let keep = plan.map_or(m.size, |p| p.claimed.min(m.size));
        let mut pos = 0;
        match plan.and_then(|p| p.ranges.as_ref()) {
            None => pos = self.spill.copy(r, &mut out, 0, keep)?,
            Some(ranges) => {
                for &(off, len) in ranges {
                    let end = off.saturating_add(len).min(keep);
                    let start = off.max(pos);
                    if start >= end {
                        continue;
                    }
                    pos += io::copy(&mut (&mut *r).take(start - pos), &mut io::sink())?;
                    if pos < start {
                        break;
                    }
                    pos += self.spill.copy(r, &mut out, start, end - start)?;
                }
                if pos < keep {
                    pos += io::copy(&mut (&mut *r).take(keep - pos), &mut io::sink())?;
                }
                out.set_len(keep).context("cannot unpack")?;
            }
        }
        if pos < keep {
            bail!("archive ends inside it ({pos} of {} bytes)", m.size);
        }
        Ok((
            Blob {
                label: label.to_string(),
                path: spill,
                offset: 0,
                len: keep,
                remote: None,
            },
            m.size - keep,
        ))
    }

    /// Reads a rootfs-diff.tar (plain or compressed, by its first bytes)
    /// as it streams by: with the checkpoint's file table known, only the
    /// files its processes had open or mapped are unpacked (none for
    /// `inspect`); without, the whole tar is, to be read once it is.
    fn stream_diff(&mut self, stream: &mut dyn Read, size: u64, label: &str) -> Result<Diff> {
        let wanted = match self.pages {
            PageUse::Strings => Some(Wanted::default()),
            PageUse::All => self.wanted_files()?,
        };
        let Some(wanted) = wanted else {
            let whole = tar::Member {
                index: 0,
                name: Vec::new(),
                link: Vec::new(),
                kind: Kind::File,
                size,
                data_offset: 0,
            };
            return Ok(Diff::Tar(
                self.unpack(&mut &mut *stream, &whole, label, None)?.0,
            ));
        };
        let (head, rest) =
            peek(stream, HEAD_BYTES).with_context(|| format!("{label}: cannot read"))?;
        let compression = layer_compression(&head, label)?;
        let mut dec = decoder(io::Cursor::new(head).chain(rest), compression, label)?;
        let index = {
            let mut inner = TarReader::new(tar::Stream(&mut dec), None);
            let spill = &mut self.spill;
            let index = record_members(&mut inner, label, &wanted, &mut |member, data| {
                let name = display_bytes(&member.name).into_owned();
                spill.copy_out(data, member.size, &format!("{label}:{name}"))
            })?;
            io::copy(&mut inner.into_inner(), &mut io::sink())?;
            index
        };
        io::copy(&mut dec, &mut io::sink()).with_context(|| format!("{label}: corrupt"))?;
        Ok(Diff::Indexed(index))
    }

    /// The clean paths of every regular file the checkpoint's file images
    /// (read so far) name, or `None` if there are none yet.
    fn wanted_files(&mut self) -> Result<Option<Wanted>> {
        for prefix in ["checkpoint/", ""] {
            let known = ["files.img", "reg-files.img"]
                .iter()
                .any(|n| self.members.contains_key(&format!("{prefix}{n}")));
            if !known {
                continue;
            }
            let saved = std::mem::replace(&mut self.prefix, prefix.into());
            let table = FileTable::load(self);
            self.prefix = saved;
            return Ok(Some(Wanted::new::<[u8]>(table?.regular_names())));
        }
        Ok(None)
    }

    /// A member's bytes as a stream, with their length.
    fn member_reader(&self, key: &str) -> Result<(Box<dyn Read + Send + Sync>, u64)> {
        match self.members.get(key) {
            Some(Member::Large(b)) => {
                let f = BlobReader::open(b).with_context(|| format!("{}: cannot open", b.label))?;
                Ok((Box::new(f), b.len))
            }
            Some(Member::Small(b)) => Ok((Box::new(io::Cursor::new(b.clone())), b.len() as u64)),
            Some(Member::Streamed(b)) => bail!("{}: went by unkept", b.label),
            None => bail!("{}: no member {key}", self.label),
        }
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

    /// The archive's rootfs-diff.tar, if it has one.
    pub fn rootfs_diff(&self) -> Option<&Diff> {
        self.diff.as_ref()
    }

    /// Bytes unpacked into the temporary directory.
    #[cfg(feature = "testkit")]
    pub fn unpacked_bytes(&self) -> u64 {
        self.spill.used()
    }

    /// What reading the archive found wrong without refusing it.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    fn read_path(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.members.get(key) {
            None => Ok(None),
            Some(Member::Small(b)) => Ok(Some(b.to_vec())),
            Some(Member::Streamed(b)) => bail!("{}: went by unkept", b.label),
            Some(Member::Large(b)) => {
                if b.len > MAX_IMAGE_BYTES {
                    bail!(
                        "{}: {} bytes is larger than any metadata image should be",
                        b.label,
                        b.len
                    );
                }
                let f = BlobReader::open(b).with_context(|| format!("{}: cannot open", b.label))?;
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
            Some(Member::Large(b) | Member::Streamed(b)) => Ok(Some(b.clone())),
            Some(Member::Small(_)) => {
                Err(anyhow!("{}: {name} is not stored as a file", self.label))
            }
        }
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + Sync>, u64)>> {
        let key = format!("{}{name}", self.prefix);
        if !self.members.contains_key(&key) {
            return Ok(None);
        }
        self.member_reader(&key).map(Some)
    }

    fn parent(&self) -> Result<Option<Arc<dyn ImageStore>>> {
        Ok(None)
    }
}

/// Where the archive being read lies: in place in a file (a window
/// of it), or in a stream whose members must be unpacked to be kept.
enum Origin {
    InPlace(Blob),
    Streamed,
}

/// A decompressed stream read through a buffer large enough that tar
/// headers, 512 bytes at a time, cost no call each.
fn buffered<'r>(dec: impl Read + 'r) -> tar::Stream<BufReader<Box<dyn Read + 'r>>> {
    tar::Stream(BufReader::with_capacity(1 << 18, Box::new(dec)))
}

/// The members of an archive as they are read, front to back, each
/// current until the next is asked for; whoever reads the archive consumes
/// them. [`Entry::keep`] has the store record a member as an ordinary open
/// does (in memory, where it lies, or unpacked); a reader that takes a
/// pages member's bytes itself as they stream by says so with
/// [`Entry::went_by`]. [`Members::close`] ends the reading.
pub(crate) struct Members<'a> {
    store: &'a mut ArchiveStore,
    reader: TarReader<Box<dyn Source + 'a>>,
    origin: Origin,
    compression: Compression,
    /// A member that was neither kept nor taken: its name.
    undecided: Option<String>,
}

/// The member of an archive being read now (see [`Members`]): its name,
/// role and size, what the archive said before it, and its bytes.
pub(crate) struct Entry<'m, 'a> {
    members: &'m mut Members<'a>,
    header: tar::Member,
    key: String,
    role: Role,
    decided: bool,
}

impl<'a> Members<'a> {
    /// The next member a checkpoint can use (others are read past), or
    /// `None` at the end of the archive. Links that leave the archive,
    /// devices, sparse members, oversized images and duplicates are
    /// refused.
    pub(crate) fn next_member(&mut self) -> Result<Option<Entry<'_, 'a>>> {
        if let Some(key) = self.undecided.take() {
            bail!("member {key} was neither kept nor taken");
        }
        while let Some(m) = self.reader.next_member()? {
            if m.index >= MAX_MEMBERS {
                return Err(fault(
                    ErrorKind::Limit,
                    format!("more than {MAX_MEMBERS} members, more than any checkpoint has"),
                ));
            }
            let Some((key, role)) = wanted(&m)? else {
                continue;
            };
            let store = &*self.store;
            if store.members.contains_key(&key)
                || (role == Role::RootfsDiff && store.diff.is_some())
            {
                bail!("member {key} appears twice");
            }
            return Ok(Some(Entry {
                members: self,
                header: m,
                key,
                role,
                decided: false,
            }));
        }
        Ok(None)
    }

    /// Keeps every member left, as an ordinary open does, and ends the
    /// reading.
    pub(crate) fn keep_all(mut self) -> Result<()> {
        let kept = self.keep_rest();
        self.close(kept)
    }

    fn keep_rest(&mut self) -> Result<()> {
        while let Some(m) = self.next_member()? {
            m.keep()?;
        }
        Ok(())
    }

    /// Ends the reading, `consumed` being what consuming the members came
    /// to: a compressed archive is read to its end, so that the
    /// decompressor checks its checksum and a corrupt archive is not taken
    /// for a good one. Every error is marked as the archive's.
    pub(crate) fn close(self, consumed: Result<()>) -> Result<()> {
        let Members {
            store,
            reader,
            origin,
            compression,
            undecided,
        } = self;
        let result = consumed.and_then(|()| {
            if let Some(key) = undecided {
                bail!("member {key} was neither kept nor taken");
            }
            if let Origin::Streamed = origin {
                io::copy(&mut reader.into_inner(), &mut io::sink())
                    .context("the compressed stream is corrupt")?;
            }
            Ok(())
        });
        store.fail_as_archive(result, compression)
    }
}

impl Entry<'_, '_> {
    /// Its name in the archive (clean).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// What it is to a checkpoint.
    pub(crate) fn role(&self) -> Role {
        self.role
    }

    /// Its size in the archive.
    pub(crate) fn size(&self) -> u64 {
        self.header.size
    }

    /// The label its blob has.
    pub(crate) fn label(&self) -> String {
        format!("{}:{}", self.members.store.label, self.key)
    }

    /// Whether its bytes can be read only now, as they stream by (from a
    /// compressed archive), rather than where they lie.
    pub(crate) fn streamed(&self) -> bool {
        matches!(self.members.origin, Origin::Streamed)
    }

    /// For a pages member: the pagemap that names it and the bytes that
    /// pagemap claims, where both are known by now.
    pub(crate) fn pagemap(&self) -> Option<(String, u64)> {
        let Role::Pages(id) = self.role else {
            return None;
        };
        let store = &*self.members.store;
        let pagemap = store.learnt.pagemaps.get(&id)?;
        let plan = store.pages_plan(id, &store.learnt, PageUse::All)?;
        Some((pagemap.clone(), plan.claimed))
    }

    /// How many members other than pages files have been kept before it:
    /// what decodes from the archive read so far changes only when this
    /// does.
    pub(crate) fn described(&self) -> usize {
        self.members.store.described
    }

    /// The members kept before it as a store of their own, for decoding
    /// what the archive has described by now: the images in its directory,
    /// and each pages file the pagemaps read so far name that is not read
    /// yet, as a streamed member of unknown length (its pages can be laid
    /// out, not read).
    pub(crate) fn snapshot(&self) -> ArchiveStore {
        let prefix = self.key.rfind('/').map_or("", |i| &self.key[..=i]);
        let store = &*self.members.store;
        let named: Vec<u32> = store.learnt.pagemaps.keys().copied().collect();
        store.snapshot(prefix, &named)
    }

    /// Its bytes, for as long as it is current.
    pub(crate) fn data(&mut self) -> &mut dyn Read {
        &mut self.members.reader
    }

    /// Has the store keep it as an ordinary open does.
    pub(crate) fn keep(mut self) -> Result<()> {
        self.decided = true;
        let members = &mut *self.members;
        let store = &mut *members.store;
        let (m, key, role) = (&self.header, self.key.as_str(), self.role);
        if let Some(member) =
            store.keep_member(&mut members.reader, m, key, role, &members.origin)?
        {
            store.record(key, role, member);
        }
        Ok(())
    }

    /// Records that the reader took what it uses of this pages member, the
    /// first `used` bytes (those its pagemap claims), as they streamed by:
    /// nothing here can read them. The rest is read past.
    pub(crate) fn went_by(mut self, used: u64) -> Result<()> {
        self.decided = true;
        let label = self.label();
        let store = &mut *self.members.store;
        if self.header.size > used {
            store.warnings.push(
                Warning::new(
                    WarningKind::EntryIgnored,
                    format!(
                        "{label}: {} bytes past the {used} its pagemap claims are used by no pagemap entry; not unpacked",
                        self.header.size - used
                    ),
                )
                .about(label.clone()),
            );
        }
        let blob = Blob {
            label,
            path: PathBuf::new(),
            offset: 0,
            len: used,
            remote: None,
        };
        store.record(&self.key, self.role, Member::Streamed(blob));
        Ok(())
    }
}

impl Drop for Entry<'_, '_> {
    fn drop(&mut self) {
        if !self.decided {
            self.members.undecided = Some(self.key.clone());
        }
    }
}

/// The compression of the archive `blob`, by its first bytes: an error
/// if it is none that criu2core reads.
fn sniff_window(blob: &Blob) -> Result<Compression> {
    let sub = BlobReader::open(blob).with_context(|| format!("{}: cannot open", blob.label))?;
    let head =
        read_head(sub, HEAD_BYTES).with_context(|| format!("{}: cannot read", blob.label))?;
    archive_compression(&head, &blob.label)
}

/// The first `n` bytes of `r` (fewer at its end), and `r` after them.
fn peek<R: Read>(mut r: R, n: u64) -> io::Result<(Vec<u8>, R)> {
    let head = read_head(&mut r, n)?;
    Ok((head, r))
}

/// `dec` read on a thread of its own, a few chunks ahead of the reader.
fn read_ahead(dec: impl Read + Send + 'static, label: &str) -> Result<ReadAhead> {
    ReadAhead::new(dec).with_context(|| format!("{label}: cannot start a thread to inflate it"))
}

/// Reads the rootfs diff lying in `blob` (a plain tar used in place, or a
/// gzip or zstd one whose wanted files are unpacked into `spill`).
pub(crate) fn read_diff(blob: &Blob, wanted: &Wanted, spill: &mut Spill) -> Result<DiffIndex> {
    let label = &blob.label;
    let sub = || BlobReader::open(blob).with_context(|| format!("{label}: cannot open"));
    let head = read_head(sub()?, HEAD_BYTES).with_context(|| format!("{label}: cannot read"))?;
    let compression = layer_compression(&head, label)?;
    if blob.len == 0 {
        return Ok(DiffIndex {
            label: label.clone(),
            ..DiffIndex::default()
        });
    }
    if compression == Compression::None {
        let mut r = TarReader::new(tar::Seekable(BufReader::new(sub()?)), Some(blob.len));
        return record_members(&mut r, label, wanted, &mut |m, _| {
            Ok(Blob {
                label: format!("{label}:{}", display_bytes(&m.name)),
                path: blob.path.clone(),
                offset: blob.offset + m.data_offset,
                len: m.size,
                remote: blob.remote.clone(),
            })
        });
    }
    let mut dec = decoder(sub()?, compression, label)?;
    let index = {
        let mut r = TarReader::new(tar::Stream(&mut dec), None);
        let index = record_members(&mut r, label, wanted, &mut |m, data| {
            spill.copy_out(data, m.size, &format!("{label}:{}", display_bytes(&m.name)))
        })?;
        io::copy(&mut r.into_inner(), &mut io::sink())?;
        index
    };
    io::copy(&mut dec, &mut io::sink()).with_context(|| format!("{label}: corrupt"))?;
    Ok(index)
}

/// What [`record_members`] calls to keep a wanted file: it gets the
/// member and the reader positioned at its data.
type Keep<'k> = dyn FnMut(&tar::Member, &mut dyn Read) -> Result<Blob> + 'k;

/// Reads the members of a rootfs diff, recording those a checkpoint can
/// use: the wanted files (kept through `keep`), the directories, links and
/// other members on the way to them, and the whiteouts that delete them or
/// hide what is above them. A member with `..` in its path is skipped
/// with a warning, never used; so is a sparse one that is wanted (it would
/// have to be expanded). The later of two members with one path wins, as
/// when the tar is unpacked.
fn record_members<S: Source>(
    r: &mut TarReader<S>,
    label: &str,
    wanted: &Wanted,
    keep: &mut Keep<'_>,
) -> Result<DiffIndex> {
    let mut out = DiffIndex {
        label: label.to_string(),
        ..DiffIndex::default()
    };
    let mut dotdot = Vec::new();
    let mut dotdot_count = 0usize;
    while let Some(m) = r
        .next_member()
        .with_context(|| format!("{label}: cannot read"))?
    {
        if m.index >= MAX_DIFF_MEMBERS {
            return Err(fault(
                ErrorKind::Limit,
                format!("{label}: more than {MAX_DIFF_MEMBERS} members, more than criu2core reads"),
            ));
        }
        let Some(key) = clean_key(&m.name) else {
            dotdot_count += 1;
            if dotdot.len() < NAMED_BAD_MEMBERS {
                dotdot.push(format!("#{} {:?}", m.index, display_bytes(&m.name)));
            }
            continue;
        };
        if !relevant(wanted, &key) {
            continue;
        }
        let mut m = m;
        match m.kind {
            Kind::File if wanted.is_file(&key) => {
                let blob = keep(&m, r)?;
                out.recorded.copies.insert(member_u32(m.index)?, blob);
            }
            Kind::Sparse { .. } if wanted.is_file(&key) => {
                out.warnings.push(
                    Warning::new(
                        WarningKind::Unsupported,
                        format!(
                            "{label}: {} is a sparse file, which criu2core does not expand; its pages come from --root or --image, if given",
                            display_bytes(&m.name)
                        ),
                    )
                    .about(display_bytes(&m.name)),
                );
                m.kind = Kind::Other(b'S');
            }
            _ => {}
        }
        out.recorded.members.push(m);
    }
    if dotdot_count > 0 {
        let more = dotdot_count - dotdot.len();
        out.warnings.push(
            Warning::new(
                WarningKind::UnsafePath,
                format!(
                    "{label}: {dotdot_count} member{} with '..' in {} path skipped: {}{}",
                    if dotdot_count == 1 { "" } else { "s" },
                    if dotdot_count == 1 { "its" } else { "their" },
                    dotdot.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            )
            .about(label),
        );
    }
    Ok(out)
}

/// Whether diff member `key` matters to the files `wanted` keeps: one of
/// them, a whiteout of one (`.wh.NAME`), or an opaque directory
/// (`.wh..opq`) over them.
fn relevant(wanted: &Wanted, key: &[u8]) -> bool {
    let (dir, base) = match key.iter().rposition(|&b| b == b'/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => (&key[..0], key),
    };
    match base.strip_prefix(b".wh.") {
        // An opaque directory hides what is below it.
        Some(b".wh..opq") => wanted.keeps(dir) && !wanted.is_file(dir),
        Some(target) => {
            let mut t = dir.to_vec();
            if !t.is_empty() {
                t.push(b'/');
            }
            t.extend_from_slice(target);
            wanted.keeps(&t)
        }
        None => wanted.keeps(key),
    }
}

/// A member's index as a view keeps it.
fn member_u32(index: usize) -> Result<u32> {
    u32::try_from(index).context("more members than a diff has")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(
            clean_path(b"./checkpoint//pstree.img").unwrap().unwrap(),
            b"checkpoint/pstree.img"
        );
        assert_eq!(clean_path(b"./").unwrap(), None);
        assert!(clean_path(b"/etc/passwd").is_err());
        assert!(clean_path(b"checkpoint/../../x").is_err());
    }

    #[test]
    fn links_must_stay_inside() {
        assert!(check_link(b"checkpoint", b"../config.dump").is_ok());
        assert!(check_link(b"checkpoint", b"../../etc").is_err());
        assert!(check_link(b"", b"/etc/passwd").is_err());
        assert!(check_link(b"", b"a/../../b").is_err());
    }

    /// A zstd archive of `members` (name, bytes) in `dir`.
    fn zstd_archive(dir: &Path, members: &[(&[u8], &[u8])]) -> Blob {
        let entries: Vec<_> = members.iter().map(|&(n, d)| (n, Kind::File, d)).collect();
        let tar = tar::tests::build(&entries);
        let path = dir.join("a.tar.zst");
        fs::write(&path, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
        whole_archive(&path).unwrap()
    }

    #[test]
    fn a_reader_takes_what_it_uses_of_a_member_and_the_store_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let pages: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
        let blob = zstd_archive(
            dir.path(),
            &[
                (b"checkpoint/core-1.img", b"core"),
                (b"checkpoint/pages-1.img", &pages),
                (b"checkpoint/pstree.img", b"tree"),
            ],
        );
        let mut store = ArchiveStore::new(&blob.label, &ArchiveOptions::default());
        let mut members = store.members_of(&blob, &Cancel::new()).unwrap();
        let mut seen = Vec::new();
        while let Some(mut m) = members.next_member().unwrap() {
            assert!(m.streamed());
            seen.push((m.key().to_string(), m.role(), m.described()));
            if m.role() == Role::Pages(1) {
                // No pagemap came before it.
                assert_eq!(m.pagemap(), None);
                let mut head = vec![0; 4096];
                m.data().read_exact(&mut head).unwrap();
                assert_eq!(head, pages[..4096]);
                m.went_by(4096).unwrap();
            } else {
                m.keep().unwrap();
            }
        }
        members.close(Ok(())).unwrap();
        assert_eq!(
            seen,
            [
                ("checkpoint/core-1.img".into(), Role::Metadata, 0),
                ("checkpoint/pages-1.img".into(), Role::Pages(1), 1),
                ("checkpoint/pstree.img".into(), Role::Metadata, 1),
            ]
        );
        let store = store.finish().unwrap();
        // The member after the one half read is whole.
        assert_eq!(store.read("pstree.img").unwrap().unwrap(), b"tree");
        let taken = store.blob("pages-1.img").unwrap().unwrap();
        assert!(taken.path.as_os_str().is_empty() && taken.len == 4096);
        assert!(store.read("pages-1.img").is_err());
        let w = format!("{:?}", store.warnings());
        assert!(w.contains("4096 bytes past the 4096"), "{w}");
    }

    #[test]
    fn a_member_neither_kept_nor_taken_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blob = zstd_archive(
            dir.path(),
            &[(b"pstree.img", b"tree"), (b"core-1.img", b"core")],
        );
        let mut store = ArchiveStore::new(&blob.label, &ArchiveOptions::default());
        let mut members = store.members_of(&blob, &Cancel::new()).unwrap();
        drop(members.next_member().unwrap());
        let e = format!("{:#}", members.next_member().err().unwrap());
        assert!(e.contains("pstree.img was neither kept nor taken"), "{e}");
    }

    #[test]
    fn members_are_kept_by_role() {
        for (name, r) in [
            ("checkpoint/pstree.img", Role::Metadata),
            ("pstree.img", Role::Metadata),
            ("checkpoint/core-101.img", Role::Metadata),
            ("checkpoint/ipcns-shm-9.img", Role::Metadata),
            ("config.dump", Role::Metadata),
            ("checkpoint/pagemap-1.img", Role::Pagemap),
            ("checkpoint/pagemap-shmem-77.img", Role::Pagemap),
            ("checkpoint/pages-3.img", Role::Pages(3)),
            ("rootfs-diff.tar", Role::RootfsDiff),
            ("checkpoint/pages-x.img", Role::Unused),
            ("checkpoint/ghost-file-1a.img", Role::Ghost),
            ("checkpoint/ghost-file-.img", Role::Unused),
            ("checkpoint/core-.img", Role::Unused),
            ("checkpoint/fdinfo-2.img", Role::Metadata),
            ("checkpoint/tcp-stream-3bd2c.img", Role::Metadata),
            ("checkpoint/tcp-stream-xyz.img", Role::Unused),
            ("checkpoint/mountpoints-9.img", Role::Metadata),
            ("checkpoint/tty-info.img", Role::Metadata),
            ("checkpoint/fs-12.img", Role::Metadata),
            ("checkpoint/sub/pstree.img", Role::Unused),
            ("stats-dump", Role::Unused),
            ("checkpoint/core-99999999999.img", Role::Unused),
        ] {
            assert_eq!(role(name), r, "{name}");
        }
    }
}
