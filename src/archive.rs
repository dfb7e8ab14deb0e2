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

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::blobio::{self, BlobReader};
use crate::cancel::Cancel;
use crate::compress::{
    archive_compression, decoder, peek, read_head, tar_compression, Compression, HEAD_BYTES,
};
use crate::error::{fault, kind_of, ErrorKind, Fault};
use crate::model::{display_bytes, Blob};
use crate::oci::Wanted;
use crate::paths::{self, DotDot};
use crate::readahead::ReadAhead;
use crate::rootfs_diff::{read_diff, read_diff_stream, DiffIndex};
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

/// A checkpoint archive opened for reading (its opening, through the
/// checkpoint's [`MemberPolicy`], and its images are in `criu::members`).
pub struct ArchiveStore {
    kept: Kept,
    prefix: String,
    diff: Option<Diff>,
    warnings: Vec<Warning>,
    spill: Spill,
    policy: Box<dyn MemberPolicy>,
    /// Pages members unpacked whole because what bounds them was not
    /// known yet: bounded once the archive is read.
    unbounded: Vec<(String, u32)>,
    pages: PageUse,
    /// Metadata held in memory so far.
    small_total: u64,
    /// Members kept that are not pages files.
    described: usize,
}

impl std::fmt::Debug for ArchiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveStore")
            .field("label", &self.kept.label)
            .field("members", &self.kept.members.len())
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

/// What a member is to the reader of an archive, by its name (its
/// [`MemberPolicy`] says): it decides how the member is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A small member read whole (an image, config.dump, spec.dump):
    /// kept in memory while it fits.
    Metadata,
    /// A member that says how much of some pages member is used (a
    /// pagemap).
    Pagemap,
    /// Bulk page data, numbered (`pages-<id>.img`): unpacked no further
    /// than its plan ([`PagesPlan`]) says, or taken by the reader as it
    /// streams by.
    Pages(u32),
    /// The container's changed files.
    RootfsDiff,
    /// A member kept whole as a file (a file deleted while open: file
    /// pages and sysroots read it in place).
    Ghost,
    /// Anything else: read past, never stored.
    Unused,
}

/// What the archive layer asks of whoever reads an archive's members
/// (for a checkpoint, `criu::members::Checkpoint`): which members to keep
/// and how, what the members kept so far tell of those to come, and which
/// files of the rootfs diff are wanted. The archive layer keeps the
/// mechanics: reading, keeping in memory, in place or spilled, and the
/// member stream.
pub(crate) trait MemberPolicy: Send + Sync {
    /// The role of a member by its clean name.
    fn role(&self, name: &str) -> Role;
    /// The most bytes a [`Role::Metadata`] member may have.
    fn metadata_limit(&self) -> u64;
    /// Notes what member `key`, just kept, tells of the members to come.
    fn learn(&mut self, key: &str, kept: &Kept);
    /// How much of pages member `id` is used, where what was learnt says
    /// by now.
    fn pages_plan(&self, id: u32, pages: PageUse, kept: &Kept) -> Option<PagesPlan>;
    /// The member that names pages member `id`, if one kept so far does.
    fn named_by(&self, id: u32) -> Option<&str>;
    /// The pages members that members kept so far name.
    fn named_pages(&self) -> Vec<u32>;
    /// The name of pages member `id` in the member directory.
    fn pages_member(&self, id: u32) -> String;
    /// Why pages member `id` is of no use, if it is: nothing read names it
    /// (asked once the archive is read).
    fn unnamed(&self, id: u32) -> Option<String>;
    /// The directory (a prefix, `""` or ending in `/`) holding the members
    /// the reader uses, or why the archive is not what it reads.
    fn member_dir(&self, kept: &Kept) -> Result<String>;
    /// The clean paths of the rootfs diff's files the members kept so far
    /// name, or `None` if none of them says yet.
    fn wanted_files(&self, kept: &Kept) -> Result<Option<Wanted>>;
    /// The same policy with nothing learnt.
    fn fresh(&self) -> Box<dyn MemberPolicy>;
}

/// What a pages member may be unpacked as.
pub(crate) struct PagesPlan {
    /// The bytes that are used (its pagemap claims).
    pub(crate) claimed: u64,
    /// Only these ranges are written (inspect), if set.
    pub(crate) ranges: Option<Vec<(u64, u64)>>,
}

/// The members an archive has kept so far, by clean name.
pub(crate) struct Kept {
    label: String,
    members: BTreeMap<String, Member>,
}

impl Kept {
    /// How messages name the archive.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Whether member `key` is kept.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.members.contains_key(key)
    }

    /// The names kept, sorted.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// Member `key`'s bytes, where it is held in memory.
    pub(crate) fn in_memory(&self, key: &str) -> Option<Arc<[u8]>> {
        match self.members.get(key) {
            Some(Member::Small(data)) => Some(data.clone()),
            _ => None,
        }
    }

    /// Where member `key`'s bytes lie, where it is kept as a file (or
    /// went by): `None` for one held in memory or not kept.
    pub(crate) fn file(&self, key: &str) -> Option<Blob> {
        match self.members.get(key) {
            Some(Member::Large(b) | Member::Streamed(b)) => Some(b.clone()),
            _ => None,
        }
    }

    /// A member's bytes as a stream, with their length.
    pub(crate) fn reader(&self, key: &str) -> Result<(Box<dyn Read + Send + Sync>, u64)> {
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

    /// A member's bytes whole, `None` if it is not kept; one kept as a
    /// file of more than `limit` bytes is refused.
    pub(crate) fn read(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        match self.members.get(key) {
            None => Ok(None),
            Some(Member::Small(b)) => Ok(Some(b.to_vec())),
            Some(Member::Streamed(b)) => bail!("{}: went by unkept", b.label),
            Some(Member::Large(b)) => {
                if b.len > limit {
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

/// The name and role of member `m` where a checkpoint can use it; `None`
/// for a member that is read past (directories, links that stay inside
/// the archive, names that are no image's). Paths that leave the archive,
/// devices and fifos, sparse members a checkpoint would use and metadata
/// images too large for any are refused.
fn wanted(m: &tar::Member, policy: &dyn MemberPolicy) -> Result<Option<(String, Role)>> {
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
    let role = policy.role(&key);
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
    let limit = policy.metadata_limit();
    if role == Role::Metadata && m.size > limit {
        return Err(fault(
            ErrorKind::Limit,
            format!(
                "member {key}: {} bytes is larger than any metadata image should be (limit {limit})",
                m.size
            ),
        ));
    }
    Ok(Some((key, role)))
}

impl ArchiveStore {
    /// Opens the archive that is the byte range `blob` of a file (a layer
    /// or blob inside an image), its members kept as `policy` says: plain,
    /// gzip or zstd by its first bytes. A plain one is used in place.
    pub(crate) fn read_window(
        blob: &Blob,
        opts: &ArchiveOptions,
        policy: Box<dyn MemberPolicy>,
    ) -> Result<ArchiveStore> {
        let mut store = ArchiveStore::with_policy(&blob.label, opts, policy);
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
    /// archive), its members kept as `policy` says: plain, gzip or zstd by
    /// its first bytes, read once to its end. What it keeps of page data is
    /// unpacked.
    pub(crate) fn read_stream(
        label: &str,
        stream: impl Read,
        opts: &ArchiveOptions,
        policy: Box<dyn MemberPolicy>,
    ) -> Result<ArchiveStore> {
        let mut store = ArchiveStore::with_policy(label, opts, policy);
        store.add_stream(stream)?;
        store.finish()
    }

    /// An archive with nothing read yet whose members are kept as `policy`
    /// says, for [`add_stream`](Self::add_stream) and
    /// [`add_diff_stream`](Self::add_diff_stream) (a checkpoint whose
    /// parts are separate blobs), then [`finish`](Self::finish).
    pub(crate) fn with_policy(
        label: &str,
        opts: &ArchiveOptions,
        policy: Box<dyn MemberPolicy>,
    ) -> ArchiveStore {
        ArchiveStore {
            kept: Kept {
                label: label.to_string(),
                members: BTreeMap::new(),
            },
            prefix: String::new(),
            diff: None,
            warnings: Vec::new(),
            spill: Spill::new(&opts.spill),
            policy,
            unbounded: Vec::new(),
            pages: opts.pages,
            small_total: 0,
            described: 0,
        }
    }

    /// Reads the members of a tar arriving as a stream (plain, gzip or
    /// zstd by its first bytes), to the stream's end.
    pub(crate) fn add_stream(&mut self, stream: impl Read) -> Result<()> {
        let (head, rest) = peek(stream, HEAD_BYTES)
            .with_context(|| format!("{}: cannot read", self.kept.label))?;
        let compression = archive_compression(&head, &self.kept.label)?;
        let stream = io::Cursor::new(head).chain(rest);
        let dec = decoder(stream, compression, &self.kept.label);
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
                    self.kept.label,
                    compression.suffix()
                ),
            ))
        })
    }

    /// Ends the reading: cuts pages files unpacked before their pagemap
    /// came by, finds the images, and reads the rootfs diff if it was not
    /// read as it streamed by.
    pub(crate) fn finish(mut self) -> Result<ArchiveStore> {
        self.bound_unbounded()?;
        tracing::debug!(
            archive = %self.kept.label,
            members = self.kept.members.len(),
            unpacked = self.spill.used(),
            "read archive"
        );
        self.prefix = self.policy.member_dir(&self.kept)?;
        if let Some(Diff::Tar(blob)) = &self.diff {
            let blob = blob.clone();
            let wanted = match self.pages {
                PageUse::Strings => Wanted::default(),
                PageUse::All => self.policy.wanted_files(&self.kept)?.unwrap_or_default(),
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
        self.kept.members.insert(key.to_string(), member);
        self.policy.learn(key, &self.kept);
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
        let label = format!("{}:{key}", self.kept.label);
        let in_place = |blob: &Blob| blob.part(label.clone(), m.data_offset, m.size);
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
        let mut members = self.kept.members.clone();
        for id in pending {
            let key = format!("{prefix}{}", self.policy.pages_member(*id));
            members.entry(key.clone()).or_insert_with(|| {
                Member::Streamed(Blob {
                    label: format!("{}:{key}", self.kept.label),
                    path: PathBuf::new(),
                    offset: 0,
                    len: u64::MAX,
                    remote: None,
                })
            });
        }
        ArchiveStore {
            kept: Kept {
                label: self.kept.label.clone(),
                members,
            },
            prefix: prefix.to_string(),
            diff: None,
            warnings: Vec::new(),
            spill: Spill::new(&SpillOptions {
                dir: None,
                max: Some(0),
            }),
            policy: self.policy.fresh(),
            unbounded: Vec::new(),
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
        let plan = self.policy.pages_plan(id, self.pages, &self.kept);
        let (blob, excess) = self.unpack(r, m, label, plan.as_ref())?;
        match &plan {
            None => self.unbounded.push((key.to_string(), id)),
            Some(p) if excess > 0 => {
                let w = self.unused_tail(label, id, excess, p.claimed, "not unpacked");
                self.warnings.push(w);
            }
            Some(_) => {}
        }
        Ok(blob)
    }

    /// The warning for the `excess` bytes of pages member `id` (`label`)
    /// past the `claimed` ones that the member naming it uses: `fate` says
    /// what became of them.
    fn unused_tail(&self, label: &str, id: u32, excess: u64, claimed: u64, fate: &str) -> Warning {
        let by = self.policy.named_by(id).unwrap_or("the member naming it");
        Warning::new(
            WarningKind::EntryIgnored,
            format!("{label}: {excess} bytes past the {claimed} that {by} claims are used by none of its entries; {fate}"),
        )
        .about(label)
    }

    /// Pages files unpacked before their pagemap was known: cut to what
    /// it claims, now that it is, or dropped if no pagemap names them.
    fn bound_unbounded(&mut self) -> Result<()> {
        for (key, id) in std::mem::take(&mut self.unbounded) {
            if let Some(why) = self.policy.unnamed(id) {
                if let Some(Member::Large(blob)) = self.kept.members.remove(&key) {
                    fs::remove_file(&blob.path)
                        .with_context(|| format!("{}: cannot remove", blob.path.display()))?;
                    let what =
                        format!("{}: {why}; its {} bytes are not used", blob.label, blob.len);
                    self.warnings
                        .push(Warning::new(WarningKind::EntryIgnored, what).about(blob.label));
                }
                continue;
            }
            let Some(plan) = self.policy.pages_plan(id, self.pages, &self.kept) else {
                continue;
            };
            let Some(Member::Large(blob)) = self.kept.members.get_mut(&key) else {
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
                let label = blob.label.clone();
                let w = self.unused_tail(&label, id, excess, plan.claimed, "dropped");
                self.warnings.push(w);
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
            PageUse::All => self.policy.wanted_files(&self.kept)?,
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
        let index = read_diff_stream(stream, label, &wanted, &mut self.spill)?;
        Ok(Diff::Indexed(index))
    }

    /// Whether the archive has a container checkpoint's layout (images
    /// under `checkpoint/`) rather than bare images.
    pub fn is_container_checkpoint(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Reads a member outside the image directory (config.dump, spec.dump...).
    pub fn read_member(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.kept.read(name, self.policy.metadata_limit())
    }

    /// The members kept, for the reader's [`MemberPolicy`] and for views
    /// of them.
    pub(crate) fn kept(&self) -> &Kept {
        &self.kept
    }

    /// The directory (a prefix) holding the members the reader uses, as
    /// its policy found it.
    pub(crate) fn member_dir(&self) -> &str {
        &self.prefix
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
            let Some((key, role)) = wanted(&m, &*self.store.policy)? else {
                continue;
            };
            let store = &*self.store;
            if store.kept.contains(&key) || (role == Role::RootfsDiff && store.diff.is_some()) {
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
        format!("{}:{}", self.members.store.kept.label, self.key)
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
        let pagemap = store.policy.named_by(id)?;
        let plan = store.policy.pages_plan(id, PageUse::All, &store.kept)?;
        Some((pagemap.to_string(), plan.claimed))
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
        store.snapshot(prefix, &store.policy.named_pages())
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
        if let (Role::Pages(id), true) = (self.role, self.header.size > used) {
            let excess = self.header.size - used;
            let w = store.unused_tail(&label, id, excess, used, "not unpacked");
            store.warnings.push(w);
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

/// `dec` read on a thread of its own, a few chunks ahead of the reader.
fn read_ahead(dec: impl Read + Send + 'static, label: &str) -> Result<ReadAhead> {
    ReadAhead::new(dec).with_context(|| format!("{label}: cannot start a thread to inflate it"))
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
}
