//! Opening an image container (OCI layout directory, OCI archive,
//! docker-archive), walking it to its images, and selecting one (see the
//! module documentation of [`crate::oci`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::digest::{check_bytes, Digest, Expect, VerifyingReader};
use super::layers::Layer;
use super::reference::{self, Selector};
use super::resolve::{walk, Lookup, Tree};
use super::walk::Walker;
use super::{
    BlobData, Compression, Options, Spill, MAX_ARCHIVE_MEMBERS, MAX_LINKS, MAX_PATH_BYTES,
    SMALL_MEMBER, SMALL_TOTAL,
};
use crate::compress::{decoder, layer_compression};
use crate::model::Blob;
use crate::paths::{self, DotDot};
use crate::rootfs::RootFs;
use crate::stdext::lock;
use crate::tar::{self, Kind, Seekable, Stream, TarReader};

/// Media types criu2core knows.
pub mod media_type {
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer (an uncompressed tar), as docker-archive layers are.
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// containerd checkpoint: a tar of the CRIU images and runc's
    /// descriptors.json.
    pub const CONTAINERD_CHECKPOINT: &str =
        "application/vnd.containerd.container.criu.checkpoint.criu.tar";
    /// containerd checkpoint: the container's config (a protobuf `Any`
    /// holding the OCI runtime spec as JSON).
    pub const CONTAINERD_CHECKPOINT_CONFIG: &str =
        "application/vnd.containerd.container.checkpoint.config.v1+proto";
    /// containerd checkpoint: the checkpoint options (written by the
    /// tests' checkpoint images; nothing here reads it).
    #[allow(dead_code)]
    pub const CONTAINERD_CHECKPOINT_OPTIONS: &str =
        "application/vnd.containerd.container.checkpoint.options.v1+proto";
    /// containerd checkpoint: the runtime's options (as above).
    #[allow(dead_code)]
    pub const CONTAINERD_CHECKPOINT_RUNTIME_OPTIONS: &str =
        "application/vnd.containerd.container.checkpoint.runtime.options+proto";
    /// containerd's read-write layer of a checkpointed container (older
    /// containerd; newer ones use an OCI gzip layer).
    pub const CONTAINERD_RW: &str = "application/vnd.containerd.container.rw.tar";
}

/// Annotation prefixes of checkpoint images for Kubernetes restore
/// (Podman's `--create-image`, CRI-O's recipe, `checkpointctl build`).
const CHECKPOINT_ANNOTATIONS: [&str; 3] = [
    "io.podman.annotations.checkpoint.",
    "io.kubernetes.cri-o.annotations.checkpoint.",
    "org.criu.checkpoint.",
];

/// What a container holds images as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// An OCI image layout directory.
    OciLayout,
    /// A tar of an OCI image layout.
    OciArchive(Compression),
    /// A docker-archive (`manifest.json`) tar.
    DockerArchive(Compression),
    /// A docker-archive unpacked into a directory.
    DockerDir,
}

impl ArchiveFormat {
    /// A short name: `oci-layout`, `oci-archive` (`.gz`, `.zst`),
    /// `docker-archive` (`.gz`, `.zst`), `docker-dir`.
    pub fn name(self) -> String {
        let suffix = |c: Compression| match c {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        };
        match self {
            ArchiveFormat::OciLayout => "oci-layout".into(),
            ArchiveFormat::OciArchive(c) => format!("oci-archive{}", suffix(c)),
            ArchiveFormat::DockerArchive(c) => format!("docker-archive{}", suffix(c)),
            ArchiveFormat::DockerDir => "docker-dir".into(),
        }
    }
}

/// An OS and architecture an image is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, ...
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Annotations, shared by every image and descriptor that carries them
/// (an index may list one manifest thousands of times).
pub type Annotations = Arc<BTreeMap<String, String>>;

/// A reference to a blob, as a manifest or index gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type (what it claims to be; content decides).
    pub media_type: String,
    /// Its digest; `None` only for docker-archive layers stored under
    /// names that are no digest (their config's diff_ids check them).
    pub digest: Option<Digest>,
    /// Its size in bytes.
    pub size: u64,
    /// Its annotations (shared: every image that uses the descriptor
    /// holds the one map).
    pub annotations: Annotations,
    /// The platform the descriptor names, if any.
    pub platform: Option<Platform>,
    /// Where it is inside the container.
    pub(super) location: String,
}

impl Descriptor {
    /// Where the blob is inside the image container
    /// (`blobs/sha256/<hex>`, or a docker-archive's member path).
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// What an image entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageKind {
    /// A manifest with an image config: a runnable image.
    Image,
    /// A manifest that is no runnable image: signatures, attestations,
    /// other artifacts (chosen only when asked for by reference).
    Artifact,
    /// An index that lists blobs of its own, as a containerd checkpoint
    /// does (its criu.tar, rw layer, config).
    BlobIndex,
}

/// A checkpoint image, as its content says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointImage {
    /// containerd's (`ctr image export` of a checkpoint): a blob of media
    /// type `media_type::CONTAINERD_CHECKPOINT`.
    Containerd,
    /// One made for Kubernetes restore (Podman `--create-image`, CRI-O's
    /// recipe, `checkpointctl build`): a layer holding a checkpoint
    /// archive's tree, annotated as such.
    Archive,
}

/// One image of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// What it is.
    pub kind: ImageKind,
    /// Its names (`org.opencontainers.image.ref.name`,
    /// `io.containerd.image.name`, docker-archive `RepoTags`), as written.
    pub names: Vec<String>,
    /// Digest of its manifest (or blob index); `None` for a docker-archive
    /// without an OCI layout.
    pub digest: Option<Digest>,
    /// Media type of the manifest or index (empty for a docker-archive's).
    pub media_type: String,
    /// Its config.
    pub config: Option<Descriptor>,
    /// Its layers, lowest first.
    pub layers: Vec<Descriptor>,
    /// The other blobs a blob index lists.
    pub blobs: Vec<Descriptor>,
    /// The manifest's (or blob index's) own annotations.
    pub annotations: Annotations,
    /// Annotations of the descriptors and indexes that lead to it, the
    /// nearest winning.
    pub index_annotations: Annotations,
    /// Its platform, from the index or its config.
    pub platform: Option<Platform>,
    /// Digest of the index that lists it, if not `index.json`.
    pub parent: Option<Digest>,
    pub(super) diff_ids: Arc<[Digest]>,
}

impl ImageInfo {
    /// Whether `text` (a reference, an image ID, a name as written) means
    /// this image.
    pub fn matches(&self, text: &str) -> bool {
        let digests: Vec<&Digest> = self
            .digest
            .iter()
            .chain(self.config.as_ref().and_then(|c| c.digest.as_ref()))
            .collect();
        reference::matches(text, &self.names, &digests)
    }

    /// Descriptors of its config, layers and other blobs with this media type.
    pub fn descriptors_by_media_type(&self, media_type: &str) -> Vec<&Descriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.blobs)
            .filter(|d| d.media_type == media_type)
            .collect()
    }

    /// Whether it is a checkpoint image, and which kind.
    pub fn checkpoint(&self) -> Option<CheckpointImage> {
        if !self
            .descriptors_by_media_type(media_type::CONTAINERD_CHECKPOINT)
            .is_empty()
        {
            return Some(CheckpointImage::Containerd);
        }
        self.annotations
            .keys()
            .chain(self.index_annotations.keys())
            .any(|k| CHECKPOINT_ANNOTATIONS.iter().any(|p| k.starts_with(p)))
            .then_some(CheckpointImage::Archive)
    }

    /// One line for messages: names, digest, platform (escaped).
    pub fn describe(&self) -> String {
        let mut s = if self.names.is_empty() {
            "(no name)".to_string()
        } else {
            self.names
                .iter()
                .map(|n| n.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(d) = self
            .digest
            .as_ref()
            .or(self.config.as_ref().and_then(|c| c.digest.as_ref()))
        {
            s += &format!(" {d}");
        }
        if let Some(p) = &self.platform {
            s += &format!(" {}", p.to_string().escape_debug());
        }
        match self.kind {
            ImageKind::Image => {}
            ImageKind::Artifact => s += " (artifact)",
            ImageKind::BlobIndex => s += " (blob index)",
        }
        s
    }
}

/// How the image was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// By the reference asked for.
    Reference(String),
    /// By this hint (what the checkpoint names).
    Hint(String),
    /// The only image there is.
    Only,
}

/// A member of an image archive tar.
#[derive(Debug, Clone)]
enum Member {
    Data {
        index: u32,
        offset: u64,
        size: u64,
        memory: Option<Arc<[u8]>>,
    },
    Symlink(Box<[u8]>),
    HardLink(Vec<u8>),
    Dir,
    Other,
}

struct Members(BTreeMap<Vec<u8>, Member>);

impl Tree for Members {
    fn lookup(&self, key: &[u8]) -> Lookup<'_> {
        if key.is_empty() {
            return Lookup::Dir;
        }
        match self.0.get(key) {
            Some(Member::Data { .. } | Member::HardLink(_)) => Lookup::File,
            Some(Member::Symlink(t)) => Lookup::Symlink(std::borrow::Cow::Borrowed(t)),
            Some(Member::Dir) => Lookup::Dir,
            Some(Member::Other) => Lookup::Other,
            None => {
                let lo = [key, b"/"].concat();
                let hi = [key, b"0"].concat();
                if self.0.range(lo..hi).next().is_some() {
                    Lookup::Dir
                } else {
                    Lookup::Missing
                }
            }
        }
    }
}

enum Source {
    Dir(RootFs),
    Tar {
        path: PathBuf,
        compression: Compression,
        members: Members,
    },
}

pub(super) struct Inner {
    pub(super) label: String,
    source: Source,
    opts: Options,
    /// Keys of the blobs whose digest has been checked.
    verified: Mutex<HashSet<Vec<u8>>>,
    spill: Mutex<Spill<Vec<u8>>>,
}

/// Where a path of the container is.
pub(super) enum Loc {
    Data(BlobData),
    /// In a compressed archive, not copied out yet.
    Deferred {
        index: u32,
        size: u64,
    },
}

/// A member path made relative and clean, or an error if it is absolute
/// or has `..`.
pub(super) fn clean_member(path: &[u8]) -> Result<Vec<u8>> {
    let shown = || path.escape_ascii().to_string();
    if path.starts_with(b"/") {
        bail!("path {} is absolute", shown());
    }
    if path.len() > MAX_PATH_BYTES || path.contains(&0) {
        bail!("path {} is too long or has a NUL byte", shown());
    }
    paths::clean(path, DotDot::Reject).with_context(|| format!("path {} contains '..'", shown()))
}

impl Inner {
    /// An image layout directory, opened for a test of the walk.
    #[cfg(test)]
    pub(super) fn test_dir(path: &Path) -> Inner {
        Inner {
            label: path.display().to_string(),
            source: Source::Dir(RootFs::new(path).unwrap()),
            opts: Options::default(),
            verified: Mutex::new(HashSet::new()),
            spill: Mutex::new(Spill::default()),
        }
    }

    pub(super) fn member_label(&self, key: &[u8]) -> String {
        format!("{}:{}", self.label, key.escape_ascii())
    }

    /// Finds a path of the container (links followed inside it).
    pub(super) fn locate(&self, path: &str) -> Result<Option<(Vec<u8>, Loc)>> {
        let rel = clean_member(path.as_bytes())?;
        match &self.source {
            Source::Dir(root) => {
                let Ok(rel_str) = std::str::from_utf8(&rel) else {
                    return Ok(None);
                };
                Ok(root.resolve(rel_str)?.map(|(full, len)| {
                    let key = full.as_os_str().as_encoded_bytes().to_vec();
                    let data = BlobData::File(Blob {
                        label: self.member_label(&rel),
                        path: full,
                        offset: 0,
                        len,
                        remote: None,
                    });
                    (key, Loc::Data(data))
                }))
            }
            Source::Tar {
                path,
                compression,
                members,
            } => {
                let mut key = rel;
                for _ in 0..=MAX_LINKS {
                    let Some(k) = walk(members, &key, true, false)? else {
                        return Ok(None);
                    };
                    match members.0.get(&k) {
                        Some(Member::HardLink(t)) => key = t.clone(),
                        Some(Member::Data {
                            index,
                            offset,
                            size,
                            memory,
                        }) => {
                            let label = self.member_label(&k);
                            let loc = if let Some(m) = memory {
                                Loc::Data(BlobData::Memory(m.clone()))
                            } else if *compression == Compression::None {
                                Loc::Data(BlobData::File(Blob {
                                    label,
                                    path: path.clone(),
                                    offset: *offset,
                                    len: *size,
                                    remote: None,
                                }))
                            } else if let Some(b) = lock(&self.spill).copies.get(&k) {
                                Loc::Data(BlobData::File(b.clone()))
                            } else {
                                Loc::Deferred {
                                    index: *index,
                                    size: *size,
                                }
                            };
                            return Ok(Some((k, loc)));
                        }
                        _ => return Ok(None),
                    }
                }
                bail!("{}: too many hard links", self.member_label(&key))
            }
        }
    }

    pub(super) fn exists(&self, path: &str) -> Result<bool> {
        Ok(self.locate(path)?.is_some())
    }

    /// Copies members of a compressed archive out, in one pass, checking
    /// each against what it must be.
    fn spill(&self, wanted: &[(Vec<u8>, Expect)]) -> Result<()> {
        let Source::Tar {
            path, compression, ..
        } = &self.source
        else {
            return Ok(());
        };
        let mut todo: BTreeMap<u32, (Vec<u8>, Expect)> = BTreeMap::new();
        let mut need = lock(&self.spill).used();
        for (key, expect) in wanted {
            let Some((k, Loc::Deferred { index, size })) =
                self.locate(&String::from_utf8_lossy(key))?
            else {
                continue;
            };
            if todo.contains_key(&index) {
                continue;
            }
            need = need.saturating_add(size);
            lock(&self.spill).check(&self.opts, need, &self.member_label(&k))?;
            todo.insert(index, (k, expect.clone()));
        }
        let Some(&last) = todo.keys().next_back() else {
            return Ok(());
        };
        // Held from here on; `locate` takes it too, so not before.
        let mut spill = lock(&self.spill);
        let file = File::open(path).with_context(|| format!("{}: cannot open", self.label))?;
        let file = self.opts.cancel.reader(file);
        let dec = decoder(
            BufReader::with_capacity(1 << 16, file),
            *compression,
            &self.label,
        )?;
        let mut tar = TarReader::new(Stream(dec), None);
        while let Some(h) = tar
            .next_member()
            .with_context(|| format!("{}: broken archive", self.label))?
        {
            let index = member_index(h.index)?;
            if index > last {
                break;
            }
            let Some((key, expect)) = todo.remove(&index) else {
                continue;
            };
            let label = self.member_label(&key);
            let mut check = VerifyingReader::new(&mut tar, label.clone(), expect.clone());
            spill.copy(&self.opts, key.clone(), label, h.size, &mut check)?;
            if !expect.is_empty() {
                lock(&self.verified).insert(key);
            }
        }
        if let Some((key, _)) = todo.into_values().next() {
            bail!(
                "{}: the archive changed while it was read",
                self.member_label(&key)
            );
        }
        Ok(())
    }

    /// Where a blob is, copied out first if it must be.
    fn data(&self, path: &str) -> Result<Option<(Vec<u8>, BlobData)>> {
        match self.locate(path)? {
            None => Ok(None),
            Some((k, Loc::Data(d))) => Ok(Some((k, d))),
            Some((k, Loc::Deferred { .. })) => {
                self.spill(&[(k, Expect::default())])?;
                match self.locate(path)? {
                    Some((k, Loc::Data(d))) => Ok(Some((k, d))),
                    _ => bail!("{}: cannot copy {path} out", self.label),
                }
            }
        }
    }

    /// Reads a small blob whole (at most `max` bytes) and checks it.
    pub(super) fn read_small(
        &self,
        path: &str,
        expect: &Expect,
        max: u64,
    ) -> Result<Option<Vec<u8>>> {
        let label = self.member_label(path.as_bytes());
        let size = match self.locate(path)? {
            None => return Ok(None),
            Some((_, Loc::Data(d))) => d.len(),
            Some((_, Loc::Deferred { size, .. })) => size,
        };
        if let Some(want) = expect.size {
            if want != size {
                bail!(
                    "{label}: size mismatch: the descriptor says {want} bytes, the blob has {size}"
                );
            }
        }
        if size > max {
            bail!("{label}: {size} bytes, more than such a file may have ({max})");
        }
        let Some((key, data)) = self.data(path)? else {
            return Ok(None);
        };
        let mut bytes = Vec::with_capacity(size as usize);
        data.open()?
            .take(max)
            .read_to_end(&mut bytes)
            .with_context(|| format!("{label}: cannot read"))?;
        if bytes.len() as u64 != size {
            bail!("{label}: ends after {} of {size} bytes", bytes.len());
        }
        check_bytes(&label, &bytes, expect)?;
        if expect.digest.is_some() {
            lock(&self.verified).insert(key);
        }
        Ok(Some(bytes))
    }
}

/// An image container, opened.
pub struct ImageArchive {
    inner: Arc<Inner>,
    format: ArchiveFormat,
    images: Vec<ImageInfo>,
}

impl fmt::Debug for ImageArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageArchive")
            .field("label", &self.inner.label)
            .field("format", &self.format)
            .field("images", &self.images.len())
            .finish()
    }
}

impl ImageArchive {
    /// Opens `path`: an OCI image layout directory, a tar of one (plain,
    /// gzip or zstd), or a docker-archive, recognised by content; reads
    /// and checks its index, manifests and configs.
    pub fn open(path: &Path, opts: &Options) -> crate::Result<ImageArchive> {
        (|| -> Result<ImageArchive> {
            let label = path.display().to_string();
            let meta = fs::metadata(path).with_context(|| format!("{label}: cannot open"))?;
            let source = if meta.is_dir() {
                Source::Dir(RootFs::new(path)?)
            } else if meta.is_file() {
                index_tar(path, &label, meta.len(), &opts.cancel)
                    .with_context(|| format!("{label}: not a readable image archive"))?
            } else {
                bail!("{label}: neither a directory nor a file");
            };
            let inner = Inner {
                label: label.clone(),
                source,
                opts: opts.clone(),
                verified: Mutex::new(HashSet::new()),
                spill: Mutex::new(Spill::default()),
            };
            let compression = match &inner.source {
                Source::Dir(_) => None,
                Source::Tar { compression, .. } => Some(*compression),
            };
            let oci = inner.exists("index.json")?;
            let docker = inner.exists("manifest.json")?;
            let format = match (oci, docker, compression) {
                (true, _, None) => ArchiveFormat::OciLayout,
                (true, _, Some(c)) => ArchiveFormat::OciArchive(c),
                (false, true, None) => ArchiveFormat::DockerDir,
                (false, true, Some(c)) => ArchiveFormat::DockerArchive(c),
                // Not one at all, which callers trying kinds in turn
                // tell from one that is broken.
                (false, false, _) => {
                    return Err(crate::error::fault(
                        crate::error::ErrorKind::NotACheckpoint,
                        format!("{label}: not an OCI image layout, OCI archive or docker-archive (no index.json or manifest.json)"),
                    ))
                }
            };
            let mut w = Walker::new(&inner);
            if oci {
                w.index_json()?;
            }
            if docker {
                w.docker(oci)?;
            }
            let images = w.images;
            tracing::debug!(archive = %label, ?format, images = images.len(), "read image archive");
            Ok(ImageArchive {
                inner: Arc::new(inner),
                format,
                images,
            })
        })()
        .map_err(crate::Error::new)
    }

    /// What it is.
    pub fn format(&self) -> ArchiveFormat {
        self.format
    }

    /// The images it holds, in the order it lists them.
    pub fn images(&self) -> &[ImageInfo] {
        &self.images
    }

    /// Chooses one image: the one `sel.reference` names; else the one the
    /// first matching hint names; else the only image (artifacts aside).
    /// Of a compressed archive, the chosen image's blobs are copied out.
    pub fn select(&self, sel: &Selector) -> crate::Result<SelectedImage> {
        self.select_with(sel, true).map_err(crate::Error::new)
    }

    /// [`select`](Self::select), copying the chosen image's blobs out of a
    /// compressed archive only if `copy`.
    pub(crate) fn select_with(&self, sel: &Selector, copy: bool) -> Result<SelectedImage> {
        {
            let label = &self.inner.label;
            let arch_ok = |i: &&ImageInfo| match (&sel.architecture, &i.platform) {
                (Some(a), Some(p)) => &p.architecture == a,
                _ => true,
            };
            let candidates: Vec<&ImageInfo> = self.images.iter().filter(arch_ok).collect();
            let usable: Vec<&ImageInfo> = candidates
                .iter()
                .copied()
                .filter(|i| i.kind != ImageKind::Artifact)
                .collect();
            // One line: messages are escaped for the terminal, where a
            // newline would show as `\n`.
            let list = |v: &[&ImageInfo]| match v {
                [] => "nothing".to_string(),
                v => v
                    .iter()
                    .map(|i| i.describe())
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            let (chosen, selection) = if let Some(r) = &sel.reference {
                let all: Vec<&ImageInfo> = candidates
                    .iter()
                    .copied()
                    .filter(|i| i.matches(r))
                    .collect();
                let images: Vec<&ImageInfo> = all
                    .iter()
                    .copied()
                    .filter(|i| i.kind != ImageKind::Artifact)
                    .collect();
                let m = if images.is_empty() { all } else { images };
                match m.as_slice() {
                    [one] => (*one, Selection::Reference(r.clone())),
                    [] => bail!(
                        "{label}: no image matches {}; it holds {}",
                        r.escape_debug(),
                        list(&candidates)
                    ),
                    many => bail!(
                        "{label}: {} matches {} images (name one by digest, or give an architecture): {}",
                        r.escape_debug(),
                        many.len(),
                        list(many)
                    ),
                }
            } else {
                let by_hint = sel.hints.iter().find_map(|h| {
                    let m: Vec<&ImageInfo> =
                        usable.iter().copied().filter(|i| i.matches(h)).collect();
                    (m.len() == 1).then(|| (m[0], Selection::Hint(h.clone())))
                });
                match (by_hint, usable.as_slice()) {
                    (Some(found), _) => found,
                    (None, [one]) => (*one, Selection::Only),
                    (None, []) if candidates.is_empty() => bail!("{label}: holds no image"),
                    (None, []) => bail!(
                        "{label}: holds no image, only artifacts: {}",
                        list(&candidates)
                    ),
                    (None, many) => bail!(
                        "{label}: holds {} images; choose one with NAME:TAG or NAME@sha256:...: {}",
                        many.len(),
                        list(many)
                    ),
                }
            };
            let hint_match = sel.hints.iter().find(|h| chosen.matches(h)).cloned();
            if let (
                Source::Tar {
                    compression: Compression::Gzip | Compression::Zstd,
                    ..
                },
                true,
            ) = (&self.inner.source, copy)
            {
                let wanted: Vec<(Vec<u8>, Expect)> = chosen
                    .config
                    .iter()
                    .chain(&chosen.layers)
                    .chain(&chosen.blobs)
                    .map(|d| {
                        (
                            d.location.as_bytes().to_vec(),
                            Expect {
                                digest: d.digest.clone(),
                                size: Some(d.size),
                            },
                        )
                    })
                    .collect();
                self.inner.spill(&wanted)?;
            }
            tracing::debug!(archive = %label, image = %chosen.describe(), ?selection, "selected image");
            Ok(SelectedImage {
                info: chosen.clone(),
                selection,
                hint_match,
                inner: self.inner.clone(),
            })
        }
    }
}

impl ImageArchive {
    /// Whether its blobs lie uncompressed in files (a layout directory,
    /// an uncompressed tar), where they can be used in place.
    pub(crate) fn in_place(&self) -> bool {
        !matches!(
            self.inner.source,
            Source::Tar {
                compression: Compression::Gzip | Compression::Zstd,
                ..
            }
        )
    }

    /// `info` (one of its images) as chosen, without copying anything out.
    pub(crate) fn chosen(&self, info: &ImageInfo) -> SelectedImage {
        SelectedImage {
            info: info.clone(),
            selection: Selection::Only,
            hint_match: None,
            inner: self.inner.clone(),
        }
    }

    /// Hands `f` the bytes of each blob of `wanted`, as a stream checked
    /// against its descriptor (a mismatch is an error naming the blob, at
    /// the end of the stream), in the order they lie: of a compressed
    /// archive in one pass over it, copying nothing out.
    pub(crate) fn stream_blobs(
        &self,
        wanted: &[&Descriptor],
        f: &mut dyn FnMut(&Descriptor, &mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        let expect = |d: &Descriptor| Expect {
            digest: d.digest.clone(),
            size: Some(d.size),
        };
        let run = |d: &Descriptor,
                   r: &mut dyn Read,
                   f: &mut dyn FnMut(&Descriptor, &mut dyn Read) -> Result<()>|
         -> Result<()> {
            let label = self.inner.member_label(d.location.as_bytes());
            let mut check = VerifyingReader::new(r, label.clone(), expect(d));
            f(d, &mut check)?;
            io::copy(&mut check, &mut io::sink())
                .with_context(|| format!("{label}: cannot read"))?;
            check
                .finish()
                .with_context(|| format!("{label}: broken blob"))?;
            Ok(())
        };
        let mut todo: BTreeMap<u32, &Descriptor> = BTreeMap::new();
        for d in wanted {
            let label = self.inner.member_label(d.location.as_bytes());
            match self.inner.locate(&d.location)? {
                None => bail!("{label}: missing"),
                Some((_, Loc::Data(data))) => run(d, &mut data.open()?, f)?,
                Some((_, Loc::Deferred { index, .. })) => {
                    todo.insert(index, d);
                }
            }
        }
        let Some(&last) = todo.keys().next_back() else {
            return Ok(());
        };
        let Source::Tar {
            path, compression, ..
        } = &self.inner.source
        else {
            bail!("{}: nothing to stream", self.inner.label);
        };
        let file =
            File::open(path).with_context(|| format!("{}: cannot open", self.inner.label))?;
        let file = self.inner.opts.cancel.reader(file);
        let dec = decoder(
            BufReader::with_capacity(1 << 16, file),
            *compression,
            &self.inner.label,
        )?;
        let mut tar = TarReader::new(Stream(dec), None);
        while let Some(h) = tar
            .next_member()
            .with_context(|| format!("{}: broken archive", self.inner.label))?
        {
            let index = member_index(h.index)?;
            if index > last {
                break;
            }
            if let Some(d) = todo.remove(&index) {
                run(d, &mut (&mut tar).take(h.size), f)?;
            }
        }
        if let Some(d) = todo.into_values().next() {
            bail!(
                "{}: the archive changed while it was read",
                self.inner.member_label(d.location.as_bytes())
            );
        }
        Ok(())
    }
}

/// Lists the members of an image archive tar.
fn index_tar(path: &Path, label: &str, len: u64, cancel: &crate::Cancel) -> Result<Source> {
    let open = || File::open(path).with_context(|| format!("{label}: cannot open"));
    let mut head = Vec::new();
    open()?.take(8).read_to_end(&mut head)?;
    let compression = layer_compression(&head, label)?;
    let mut members = BTreeMap::new();
    let reader = BufReader::with_capacity(1 << 16, cancel.reader(open()?));
    match compression {
        Compression::None => {
            add_members(
                TarReader::new(Seekable(reader), Some(len)),
                &mut members,
                false,
            )?;
        }
        _ => {
            let mut dec = decoder(reader, compression, label)?;
            add_members(TarReader::new(Stream(&mut dec), None), &mut members, true)?;
            io::copy(&mut dec, &mut io::sink()).context("the compressed stream is corrupt")?;
        }
    }
    Ok(Source::Tar {
        path: path.to_path_buf(),
        compression,
        members: Members(members),
    })
}

/// A member's position as the image module keeps it.
fn member_index(index: usize) -> Result<u32> {
    u32::try_from(index).context("more members than a tar of an image has")
}

fn add_members<S: tar::Source>(
    mut tar: TarReader<S>,
    members: &mut BTreeMap<Vec<u8>, Member>,
    keep_small: bool,
) -> Result<()> {
    let mut small_total = 0u64;
    while let Some(h) = tar.next_member()? {
        let at = || format!("member #{} {}", h.index, h.name.escape_ascii());
        let key = clean_member(&h.name).with_context(at)?;
        if key.is_empty() {
            continue;
        }
        if members.len() >= MAX_ARCHIVE_MEMBERS {
            return Err(crate::error::fault(
                crate::ErrorKind::Limit,
                format!("more than {MAX_ARCHIVE_MEMBERS} members"),
            ));
        }
        let member = match h.kind {
            Kind::Dir => Member::Dir,
            Kind::Symlink => {
                if h.link.len() > MAX_PATH_BYTES || h.link.contains(&0) {
                    bail!("{}: bad link target", at());
                }
                Member::Symlink(h.link.clone().into())
            }
            Kind::HardLink => Member::HardLink(clean_member(&h.link).with_context(at)?),
            Kind::Device | Kind::Fifo | Kind::Sparse { .. } | Kind::Other(_) => Member::Other,
            Kind::File => {
                let memory = if keep_small
                    && h.size <= SMALL_MEMBER
                    && small_total + h.size <= SMALL_TOTAL
                {
                    let mut buf = Vec::with_capacity(h.size as usize);
                    tar.read_to_end(&mut buf).with_context(at)?;
                    small_total += h.size;
                    Some(buf.into())
                } else {
                    None
                };
                Member::Data {
                    index: member_index(h.index)?,
                    offset: h.data_offset,
                    size: h.size,
                    memory,
                }
            }
        };
        match members.get(&key) {
            Some(Member::Dir) if matches!(member, Member::Dir) => {}
            Some(_) => bail!("{} appears twice", at()),
            None => {
                members.insert(key, member);
            }
        }
    }
    Ok(())
}

/// The image [`ImageArchive::select`] chose.
#[derive(Clone)]
pub struct SelectedImage {
    info: ImageInfo,
    selection: Selection,
    hint_match: Option<String>,
    inner: Arc<Inner>,
}

impl fmt::Debug for SelectedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectedImage")
            .field("image", &self.info.describe())
            .field("selection", &self.selection)
            .field("hint_match", &self.hint_match)
            .finish()
    }
}

impl SelectedImage {
    /// The image.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }

    /// How it was chosen.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The first hint that names this image: whether it is the image the
    /// checkpoint names.
    pub fn hint_match(&self) -> Option<&str> {
        self.hint_match.as_deref()
    }

    /// Its layers, lowest first, for [`LayerView`](super::LayerView): each
    /// with the digest and size its descriptor gives and the config's
    /// diff_id, checked as the view reads it.
    pub fn layers(&self) -> crate::Result<Vec<Layer>> {
        (|| -> Result<Vec<Layer>> {
            let ids = &self.info.diff_ids;
            if !ids.is_empty() && ids.len() != self.info.layers.len() {
                bail!(
                    "{}: the config lists {} diff_ids for {} layers",
                    self.inner.label,
                    ids.len(),
                    self.info.layers.len()
                );
            }
            let verified = lock(&self.inner.verified).clone();
            let mut out = Vec::with_capacity(self.info.layers.len());
            for (i, d) in self.info.layers.iter().enumerate() {
                let label = self.inner.member_label(d.location.as_bytes());
                let (key, data) = self
                    .inner
                    .data(&d.location)?
                    .with_context(|| format!("{label}: layer missing"))?;
                // Copies out of a compressed archive live in its
                // temporary directory: the layer keeps it.
                let mut layer = Layer::new(label, data).keeping(self.inner.clone());
                if !verified.contains(&key) {
                    layer = layer.expect(Expect {
                        digest: d.digest.clone(),
                        size: Some(d.size),
                    });
                }
                if let Some(id) = ids.get(i) {
                    layer = layer.diff_id(id.clone());
                }
                out.push(layer);
            }
            Ok(out)
        })()
        .map_err(crate::Error::new)
    }

    /// Descriptors of its config, layers and other blobs with this media type.
    pub fn descriptors_by_media_type(&self, media_type: &str) -> Vec<&Descriptor> {
        self.info.descriptors_by_media_type(media_type)
    }

    /// Where the blob of `d` is, after checking it against `d` (hashed
    /// once, however often it is asked for): in place in the archive
    /// where it lies uncompressed, else a private copy.
    pub fn blob(&self, d: &Descriptor) -> crate::Result<BlobData> {
        (|| -> Result<BlobData> {
            let label = self.inner.member_label(d.location.as_bytes());
            let (key, data) = self
                .inner
                .data(&d.location)?
                .with_context(|| format!("{label}: missing"))?;
            if !lock(&self.inner.verified).contains(&key) {
                let expect = Expect {
                    digest: d.digest.clone(),
                    size: Some(d.size),
                };
                let r = self.inner.opts.cancel.reader(data.open()?);
                VerifyingReader::new(r, label, expect.clone()).finish()?;
                if expect.digest.is_some() {
                    lock(&self.inner.verified).insert(key);
                }
            }
            Ok(data)
        })()
        .map_err(crate::Error::new)
    }

    /// Where the blob of `d` is, unchecked (to look at its first bytes).
    pub(crate) fn unchecked_blob(&self, d: &Descriptor) -> Result<BlobData> {
        let label = self.inner.member_label(d.location.as_bytes());
        Ok(self
            .inner
            .data(&d.location)?
            .with_context(|| format!("{label}: missing"))?
            .1)
    }

    /// Reads the blob of `d` as a stream, checked as it goes: reading
    /// past the size `d` gives, or to the end of bytes that are not what
    /// `d` says, is an error naming the blob. For one pass over a blob
    /// too big to check before it is used.
    pub fn open_blob(&self, d: &Descriptor) -> crate::Result<Box<dyn Read + Send>> {
        (|| -> Result<Box<dyn Read + Send>> {
            let label = self.inner.member_label(d.location.as_bytes());
            let (_, data) = self
                .inner
                .data(&d.location)?
                .with_context(|| format!("{label}: missing"))?;
            let expect = Expect {
                digest: d.digest.clone(),
                size: Some(d.size),
            };
            let r = self.inner.opts.cancel.reader(data.open()?);
            Ok(Box::new(VerifyingReader::new(r, label, expect)))
        })()
        .map_err(crate::Error::new)
    }

    /// The bytes of a small blob (at most `max`), checked against `d`.
    pub fn read_blob(&self, d: &Descriptor, max: u64) -> crate::Result<Vec<u8>> {
        (|| -> Result<Vec<u8>> {
            let expect = Expect {
                digest: d.digest.clone(),
                size: Some(d.size),
            };
            self.inner
                .read_small(&d.location, &expect, max)?
                .with_context(|| {
                    format!(
                        "{}: missing",
                        self.inner.member_label(d.location.as_bytes())
                    )
                })
        })()
        .map_err(crate::Error::new)
    }
}

#[cfg(test)]
mod tests {
    use super::super::digest::Algorithm;
    use super::super::LayerView;
    use super::*;
    use crate::spill::SpillOptions;
    use crate::tar::tests::build;
    use serde_json::{json, Value};
    use std::io::Write;

    const F: Kind = Kind::File;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// An OCI image layout being built in a temporary directory.
    struct Layout {
        dir: tempfile::TempDir,
    }

    impl Layout {
        fn new() -> Layout {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
            fs::write(
                dir.path().join("oci-layout"),
                r#"{"imageLayoutVersion":"1.0.0"}"#,
            )
            .unwrap();
            Layout { dir }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        /// Stores a blob; gives its descriptor.
        fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
            let d = Digest::of(Algorithm::Sha256, bytes);
            fs::write(self.path().join(d.blob_path()), bytes).unwrap();
            json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
        }

        fn json(&self, media_type: &str, v: &Value) -> Value {
            self.blob(media_type, v.to_string().as_bytes())
        }

        /// An image of these layer tars (stored as given); gives the
        /// manifest's descriptor.
        fn image(&self, layers: &[(&str, Vec<u8>)], uncompressed: &[&[u8]]) -> Value {
            let diff_ids: Vec<String> = uncompressed
                .iter()
                .map(|u| Digest::of(Algorithm::Sha256, u).to_string())
                .collect();
            let config = self.json(
                media_type::OCI_CONFIG,
                &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}),
            );
            let layers: Vec<Value> = layers.iter().map(|(mt, b)| self.blob(mt, b)).collect();
            self.json(
                media_type::OCI_MANIFEST,
                &json!({"schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST, "config": config, "layers": layers}),
            )
        }

        fn index(&self, manifests: Vec<Value>) {
            fs::write(
                self.path().join("index.json"),
                json!({"schemaVersion": 2, "manifests": manifests}).to_string(),
            )
            .unwrap();
        }

        fn open(&self) -> Result<ImageArchive> {
            Ok(ImageArchive::open(self.path(), &Options::default())?)
        }
    }

    fn named(mut d: Value, name: &str) -> Value {
        d["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        d
    }

    fn two_layers() -> (Vec<u8>, Vec<u8>) {
        (
            build(&[(b"etc/os-release", F, b"lower"), (b"bin/sh", F, b"sh")]),
            build(&[(b"etc/os-release", F, b"upper")]),
        )
    }

    fn read(v: &LayerView, path: &str) -> Option<Vec<u8>> {
        let f = v.resolve(path).unwrap()?;
        let b = v.materialize(&[f]).unwrap().remove(0);
        BlobData::File(b).head(u64::MAX).ok()
    }

    #[test]
    fn an_image_and_its_view() {
        let l = Layout::new();
        let (lower, upper) = two_layers();
        // The media types lie about compression: content decides.
        let m = l.image(
            &[
                ("application/vnd.oci.image.layer.v1.tar+gzip", lower.clone()),
                ("application/vnd.oci.image.layer.v1.tar", gzip(&upper)),
            ],
            &[&lower, &upper],
        );
        l.index(vec![named(m, "app:1")]);
        let ar = l.open().unwrap();
        assert_eq!(ar.format(), ArchiveFormat::OciLayout);
        assert_eq!(ar.images().len(), 1);
        let info = &ar.images()[0];
        assert_eq!(info.names, ["app:1"]);
        assert_eq!(info.platform.as_ref().unwrap().to_string(), "linux/amd64");
        assert_eq!(info.kind, ImageKind::Image);
        let img = ar.select(&Selector::default()).unwrap();
        assert_eq!(img.selection(), &Selection::Only);
        assert_eq!(img.hint_match(), None);
        let layers = img.layers().unwrap();
        // The plain layer lies in place in the layout.
        assert_eq!(
            layers[0].data().file().unwrap().path,
            l.path().join(info.layers[0].location())
        );
        let v = LayerView::new(layers, &Options::default()).unwrap();
        assert_eq!(read(&v, "/etc/os-release").unwrap(), b"upper");
        assert_eq!(read(&v, "/bin/sh").unwrap(), b"sh");
        // Hints say whether it is the image a checkpoint names.
        let sel = Selector {
            hints: vec!["localhost/other:1".into(), "docker.io/library/app:1".into()],
            ..Default::default()
        };
        let img = ar.select(&sel).unwrap();
        assert_eq!(
            img.selection(),
            &Selection::Hint("docker.io/library/app:1".into())
        );
        assert_eq!(img.hint_match(), Some("docker.io/library/app:1"));
    }

    fn open_err(l: &Layout) -> String {
        format!("{:#}", l.open().unwrap_err())
    }

    #[test]
    fn blobs_that_lie() {
        let (lower, upper) = two_layers();
        // A manifest whose bytes are not what its digest says.
        let l = Layout::new();
        let m = l.image(&[("", lower.clone())], &[&lower]);
        let path = l.path().join(
            Digest::parse(m["digest"].as_str().unwrap())
                .unwrap()
                .blob_path(),
        );
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] = b' ';
        fs::write(&path, &bytes).unwrap();
        l.index(vec![m.clone()]);
        let err = open_err(&l);
        assert!(
            err.contains("digest mismatch")
                && err.contains(&path.file_name().unwrap().to_string_lossy().to_string()),
            "{err}"
        );
        // A descriptor whose size lies.
        let l = Layout::new();
        let mut m = l.image(&[("", lower.clone())], &[&lower]);
        m["size"] = json!(m["size"].as_u64().unwrap() + 1);
        l.index(vec![m]);
        assert!(open_err(&l).contains("size mismatch"), "{}", open_err(&l));
        // One that claims more than any manifest may have is refused unread.
        let l = Layout::new();
        let mut m = l.image(&[("", lower.clone())], &[&lower]);
        m["size"] = json!(1u64 << 40);
        l.index(vec![m]);
        assert!(
            open_err(&l).contains("more than any index or manifest"),
            "{}",
            open_err(&l)
        );
        // A layer whose digest, or whose diff_id, lies fails the view,
        // naming the layer.
        let l = Layout::new();
        let m = l.image(&[("", lower.clone())], &[&upper]);
        l.index(vec![m]);
        let layers = l
            .open()
            .unwrap()
            .select(&Selector::default())
            .unwrap()
            .layers()
            .unwrap();
        let err = format!(
            "{:#}",
            LayerView::new(layers, &Options::default()).unwrap_err()
        );
        assert!(err.contains("diff_id"), "{err}");
        let l = Layout::new();
        let m = l.image(&[("", lower.clone())], &[&lower]);
        l.index(vec![m]);
        let ar = l.open().unwrap();
        let loc = ar.images()[0].layers[0].location().to_string();
        fs::write(l.path().join(&loc), &upper).unwrap();
        let layers = ar.select(&Selector::default()).unwrap().layers().unwrap();
        let err = format!(
            "{:#}",
            LayerView::new(layers, &Options::default()).unwrap_err()
        );
        assert!(err.contains(&loc) && err.contains("mismatch"), "{err}");
    }

    #[test]
    fn descriptors_stay_in_blobs() {
        let secret = b"{\"manifests\": []}";
        let outer = tempfile::tempdir().unwrap();
        fs::write(outer.path().join("secret"), secret).unwrap();
        for digest in [
            "sha256:../../../secret",
            "sha256:/etc/passwd",
            "/etc/passwd",
            "../secret",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha384:38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
        ] {
            let l = Layout::new();
            l.index(vec![json!({"mediaType": media_type::OCI_INDEX, "digest": digest, "size": secret.len()})]);
            let err = open_err(&l);
            assert!(err.contains("descriptor #0") && err.contains("digest"), "{digest}: {err}");
        }
        // A blob that is a link out of the layout is not followed out.
        let l = Layout::new();
        let d = Digest::of(Algorithm::Sha256, secret);
        std::os::unix::fs::symlink(outer.path().join("secret"), l.path().join(d.blob_path()))
            .unwrap();
        l.index(vec![json!({"mediaType": media_type::OCI_INDEX, "digest": d.to_string(), "size": secret.len()})]);
        assert!(l.open().unwrap().images().is_empty());
    }

    #[test]
    fn cycles_and_depth() {
        // Real digests make a cycle impossible (each index would hold the
        // other's hash); made-up ones are caught as lies.
        let l = Layout::new();
        let a = Digest::of(Algorithm::Sha256, b"a");
        let b = Digest::of(Algorithm::Sha256, b"b");
        let desc = |d: &Digest| json!({"mediaType": media_type::OCI_INDEX, "digest": d.to_string(), "size": 0});
        for (me, other) in [(&a, &b), (&b, &a)] {
            let body = json!({"manifests": [desc(other)]}).to_string();
            let mut d = desc(other);
            d["size"] = json!(body.len());
            let body = json!({"manifests": [d]}).to_string();
            fs::write(l.path().join(me.blob_path()), body).unwrap();
        }
        let mut top = desc(&a);
        top["size"] = json!(fs::metadata(l.path().join(a.blob_path())).unwrap().len());
        l.index(vec![top]);
        assert!(open_err(&l).contains("digest mismatch"), "{}", open_err(&l));

        // 100 indexes nested in each other, each with a true digest.
        let l = Layout::new();
        let (lower, _) = two_layers();
        let mut d = l.image(&[("", lower.clone())], &[&lower]);
        for _ in 0..100 {
            d = l.json(
                media_type::OCI_INDEX,
                &json!({"schemaVersion": 2, "manifests": [d]}),
            );
        }
        l.index(vec![d]);
        assert!(
            open_err(&l).contains("nested more than 16 deep"),
            "{}",
            open_err(&l)
        );
        // An index that lists one manifest 20,000 times.
        let l = Layout::new();
        let m = l.image(&[("", lower.clone())], &[&lower]);
        let many = l.json(
            media_type::OCI_INDEX,
            &json!({"manifests": vec![m; 20_000]}),
        );
        l.index(vec![many]);
        assert!(
            open_err(&l).contains("more than 10000 descriptors"),
            "{}",
            open_err(&l)
        );
    }

    #[test]
    fn what_a_walk_holds_is_bounded() {
        let kind = |l: &Layout| crate::Error::new(l.open().unwrap_err()).kind().clone();
        let (lower, _) = two_layers();
        // Entries that each merge their annotation into a 1 MiB one.
        let l = Layout::new();
        let m = l.image(&[("", lower.clone())], &[&lower]);
        let entries: Vec<Value> = (0..40)
            .map(|i| {
                let mut d = m.clone();
                d["annotations"] = json!({"entry": i.to_string()});
                d
            })
            .collect();
        let mut many = l.json(media_type::OCI_INDEX, &json!({"manifests": entries}));
        many["annotations"] = json!({"big": "x".repeat(1 << 20)});
        l.index(vec![many]);
        assert_eq!(kind(&l), crate::ErrorKind::Limit);
        assert!(
            open_err(&l).contains("(MAX_WALK_BYTES)"),
            "{}",
            open_err(&l)
        );
        // A config of more diff_ids than an image may have layers.
        let l = Layout::new();
        let ids: Vec<String> = (0..300u32)
            .map(|i| Digest::of(Algorithm::Sha256, &i.to_le_bytes()).to_string())
            .collect();
        let config = l.json(
            media_type::OCI_CONFIG,
            &json!({"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": ids}}),
        );
        let m = l.json(
            media_type::OCI_MANIFEST,
            &json!({"config": config, "layers": []}),
        );
        l.index(vec![m]);
        assert_eq!(kind(&l), crate::ErrorKind::Limit);
        assert!(
            open_err(&l).contains("rootfs.diff_ids lists 300 layers (at most 256)"),
            "{}",
            open_err(&l)
        );
        // One config of 200 diff_ids, used by 300 manifests: read once,
        // held once.
        let l = Layout::new();
        let config = l.json(
            media_type::OCI_CONFIG,
            &json!({"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": ids[..200]}}),
        );
        let manifests: Vec<Value> = (0..300)
            .map(|i| {
                l.json(
                    media_type::OCI_MANIFEST,
                    &json!({"config": config, "layers": [], "annotations": {"n": i.to_string()}}),
                )
            })
            .collect();
        l.index(manifests);
        let ar = l.open().unwrap();
        assert_eq!(ar.images().len(), 300);
        let first = &ar.images()[0].diff_ids;
        assert!(ar.images().iter().all(|i| Arc::ptr_eq(&i.diff_ids, first)));
        // Descriptors count, layers of each image included.
        let l = Layout::new();
        let m = l.image(&[("", lower.clone())], &[&lower]);
        let many = l.json(
            media_type::OCI_INDEX,
            &json!({"manifests": vec![m; 20_000]}),
        );
        l.index(vec![many]);
        assert_eq!(kind(&l), crate::ErrorKind::Limit);
    }

    #[test]
    fn lists_of_images_in_messages_are_one_line() {
        let l = Layout::new();
        let artifact = |n: u32| {
            let config = l.json("application/vnd.example.config+json", &json!({ "n": n }));
            named(
                l.json(
                    media_type::OCI_MANIFEST,
                    &json!({"config": config, "layers": []}),
                ),
                &format!("sig:{n}"),
            )
        };
        l.index(vec![artifact(1), artifact(2)]);
        let err = format!(
            "{:#}",
            l.open().unwrap().select(&Selector::default()).unwrap_err()
        );
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("holds no image, only artifacts: "), "{err}");
        assert!(
            err.contains("sig:1") && err.contains("; ") && err.contains("sig:2"),
            "{err}"
        );
        let (lower, upper) = two_layers();
        let l = Layout::new();
        let a = l.image(&[("", lower.clone())], &[&lower]);
        let b = l.image(&[("", upper.clone())], &[&upper]);
        l.index(vec![named(a, "a:1"), named(b, "b:1")]);
        let err = format!(
            "{:#}",
            l.open().unwrap().select(&Selector::default()).unwrap_err()
        );
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn choosing_among_images() {
        let l = Layout::new();
        let (lower, upper) = two_layers();
        let a = l.image(&[("", lower.clone())], &[&lower]);
        let b = l.image(&[("", upper.clone())], &[&upper]);
        // A multi-platform index named once, with an arm64 manifest that
        // was not exported, and an attestation.
        let arm_layer = build(&[(b"arm", F, b"arm")]);
        let mut arm = l.image(&[("", arm_layer.clone())], &[&arm_layer]);
        fs::remove_file(
            l.path().join(
                Digest::parse(arm["digest"].as_str().unwrap())
                    .unwrap()
                    .blob_path(),
            ),
        )
        .unwrap();
        arm["platform"] = json!({"os": "linux", "architecture": "arm64"});
        let mut amd = a.clone();
        amd["platform"] = json!({"os": "linux", "architecture": "amd64"});
        let mut att = l.image(&[("", upper.clone())], &[&upper]);
        att["platform"] = json!({"os": "unknown", "architecture": "unknown"});
        let multi = l.json(
            media_type::OCI_INDEX,
            &json!({"manifests": [amd, arm, att]}),
        );
        l.index(vec![
            named(multi, "quay.io/team/multi:2"),
            named(b.clone(), "localhost/b:1"),
        ]);
        let ar = l.open().unwrap();
        let kinds: Vec<_> = ar
            .images()
            .iter()
            .map(|i| (i.kind, i.names.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ImageKind::Image, vec!["quay.io/team/multi:2".to_string()]),
                (
                    ImageKind::Artifact,
                    vec!["quay.io/team/multi:2".to_string()]
                ),
                (ImageKind::Image, vec!["localhost/b:1".to_string()]),
            ]
        );
        assert!(ar.images()[0].parent.is_some());
        let sel = |r: &str| Selector {
            reference: Some(r.into()),
            ..Default::default()
        };
        assert_eq!(
            ar.select(&sel("b:1")).unwrap().info().names,
            ["localhost/b:1"]
        );
        assert_eq!(
            ar.select(&sel("team/multi:2"))
                .unwrap()
                .info()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            "amd64"
        );
        let id = ar.images()[2]
            .config
            .as_ref()
            .unwrap()
            .digest
            .clone()
            .unwrap();
        assert_eq!(
            ar.select(&sel(id.hex())).unwrap().info().names,
            ["localhost/b:1"]
        );
        let err = ar.select(&sel("nothing:1")).unwrap_err().to_string();
        assert!(
            err.contains("no image matches") && err.contains("localhost/b:1"),
            "{err}"
        );
        let err = ar.select(&Selector::default()).unwrap_err().to_string();
        assert!(err.contains("holds 2 images"), "{err}");
        let only_arm = Selector {
            architecture: Some("arm64".into()),
            ..Default::default()
        };
        assert!(ar
            .select(&only_arm)
            .unwrap_err()
            .to_string()
            .contains("no image"));
        // Names in the archive are escaped in messages.
        let l = Layout::new();
        let a = l.image(&[("", lower.clone())], &[&lower]);
        let b = l.image(&[("", upper.clone())], &[&upper]);
        l.index(vec![named(a, "x\u{1b}[2J"), named(b, "y")]);
        let err = l
            .open()
            .unwrap()
            .select(&Selector::default())
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains('\u{1b}') && err.contains("x\\u{1b}[2J"),
            "{err}"
        );
    }

    #[test]
    fn one_image_many_names() {
        // Two tags of one image, and a docker save that writes both an OCI
        // layout and manifest.json: one image with every name.
        let l = Layout::new();
        let (lower, _) = two_layers();
        let m = l.image(&[("", lower.clone())], &[&lower]);
        let mut containerd = m.clone();
        containerd["annotations"] = json!({"io.containerd.image.name": "docker.io/library/app:1",
            "org.opencontainers.image.ref.name": "1"});
        l.index(vec![named(m.clone(), "app:latest"), containerd]);
        let manifest: Value = serde_json::from_slice(
            &fs::read(
                l.path().join(
                    Digest::parse(m["digest"].as_str().unwrap())
                        .unwrap()
                        .blob_path(),
                ),
            )
            .unwrap(),
        )
        .unwrap();
        let config = Digest::parse(manifest["config"]["digest"].as_str().unwrap()).unwrap();
        let layer = Digest::parse(manifest["layers"][0]["digest"].as_str().unwrap()).unwrap();
        fs::write(
            l.path().join("manifest.json"),
            json!([{"Config": config.blob_path(), "RepoTags": ["app:2"], "Layers": [layer.blob_path()]}]).to_string(),
        )
        .unwrap();
        let ar = l.open().unwrap();
        assert_eq!(ar.format(), ArchiveFormat::OciLayout);
        assert_eq!(ar.images().len(), 1);
        assert_eq!(
            ar.images()[0].names,
            ["app:latest", "docker.io/library/app:1", "1", "app:2"]
        );
        for r in ["app", "app:1", "app:2", config.hex()] {
            let sel = Selector {
                reference: Some(r.into()),
                ..Default::default()
            };
            assert!(ar.select(&sel).is_ok(), "{r}");
        }
    }

    /// A tar of a directory's files (regular files and links).
    fn tar_dir(dir: &Path) -> Vec<u8> {
        let mut b = ::tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        b.append_dir_all(".", dir).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn archives_of_a_layout() {
        let l = Layout::new();
        let (_, upper) = two_layers();
        // More than an archive keeps in memory, and hard to compress.
        let mut big = vec![0u8; 3 << 19];
        let mut x: u32 = 1;
        for b in big.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 24) as u8;
        }
        let lower = build(&[(b"big", F, &big), (b"bin/sh", F, b"sh")]);
        let m = l.image(
            &[("", lower.clone()), ("", gzip(&upper))],
            &[&lower, &upper],
        );
        l.index(vec![named(m, "app:1")]);
        let out = tempfile::tempdir().unwrap();
        let tar = tar_dir(l.path());
        for (name, bytes) in [
            ("plain", tar.clone()),
            ("gz", gzip(&tar)),
            ("zst", zstd::encode_all(&tar[..], 3).unwrap()),
        ] {
            let path = out.path().join(name);
            fs::write(&path, &bytes).unwrap();
            let spill = out.path().join(format!("spill-{name}"));
            fs::create_dir(&spill).unwrap();
            let opts = Options {
                spill: SpillOptions {
                    dir: Some(spill.clone()),
                    max: None,
                },
                ..Default::default()
            };
            let ar = ImageArchive::open(&path, &opts).unwrap();
            let img = ar.select(&Selector::default()).unwrap();
            let layers = img.layers().unwrap();
            let v = LayerView::new(layers.clone(), &opts).unwrap();
            assert_eq!(read(&v, "etc/os-release").unwrap(), b"upper", "{name}");
            let sh = v
                .materialize(&[v.resolve("bin/sh").unwrap().unwrap()])
                .unwrap()
                .remove(0);
            if name == "plain" {
                // In place, inside the archive itself.
                assert_eq!(ar.format(), ArchiveFormat::OciArchive(Compression::None));
                assert_eq!(sh.path, path);
                assert_eq!(&tar[sh.offset as usize..][..2], b"sh");
            } else {
                assert!(sh.path.starts_with(&spill), "{name}: {}", sh.path.display());
                // The big layer was copied out of the archive, and read
                // in place there.
                let big_file = v
                    .materialize(&[v.resolve("big").unwrap().unwrap()])
                    .unwrap()
                    .remove(0);
                assert!(
                    big_file.path.starts_with(&spill) && big_file.offset > 0,
                    "{big_file:?}"
                );
                assert_eq!(BlobData::File(big_file).head(u64::MAX).unwrap(), big);
                // A cap too small for the image's blobs is an error naming one.
                let mut tiny = opts.clone();
                tiny.spill.max = Some(1 << 20);
                let err = ImageArchive::open(&path, &tiny)
                    .unwrap()
                    .select(&Selector::default())
                    .unwrap_err();
                assert_eq!(err.kind(), &crate::ErrorKind::Limit, "{err}");
                assert!(err.to_string().contains("more than 1048576 bytes"), "{err}");
            }
            drop((v, layers, img, ar));
            assert_eq!(
                fs::read_dir(&spill).unwrap().count(),
                0,
                "{name}: copies left behind"
            );
        }
        // Not an image archive at all.
        let path = out.path().join("other.tar");
        fs::write(&path, build(&[(b"hello", F, b"x")])).unwrap();
        let err = ImageArchive::open(&path, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an OCI image layout"), "{err}");
        fs::write(&path, b"garbage that is no tar at all, not even close").unwrap();
        assert!(ImageArchive::open(&path, &Options::default()).is_err());
    }

    #[test]
    fn damaged_archives_never_panic() {
        // Every few bytes of an OCI archive changed in turn (headers,
        // index.json, manifest, config, layers): errors or images, no
        // panics, whatever is asked of them next.
        let l = Layout::new();
        let (lower, upper) = two_layers();
        let m = l.image(
            &[("", lower.clone()), ("", gzip(&upper))],
            &[&lower, &upper],
        );
        l.index(vec![named(m, "app:1")]);
        let tar = tar_dir(l.path());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let mut x: u32 = 11;
        for i in (0..tar.len()).step_by(5) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let mut bad = tar.clone();
            bad[i] ^= (x >> 24) as u8 | 1;
            fs::write(&path, &bad).unwrap();
            let Ok(ar) = ImageArchive::open(&path, &Options::default()) else {
                continue;
            };
            let Ok(img) = ar.select(&Selector::default()) else {
                continue;
            };
            for d in img.info().layers.iter().chain(&img.info().config) {
                let _ = img.blob(d);
            }
            if let Ok(v) = img
                .layers()
                .and_then(|l| LayerView::new(l, &Options::default()))
            {
                let _ = v.materialize(&v.files().collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn hostile_archive_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let index = br#"{"manifests":[]}"#;
        for (members, want) in [
            (
                vec![(&b"../index.json"[..], F, &index[..])],
                "contains '..'",
            ),
            (vec![(&b"/index.json"[..], F, &index[..])], "is absolute"),
            (
                vec![
                    (&b"index.json"[..], F, &index[..]),
                    (b"./index.json", F, &index[..]),
                ],
                "appears twice",
            ),
        ] {
            fs::write(&path, build(&members)).unwrap();
            let err = format!(
                "{:#}",
                ImageArchive::open(&path, &Options::default()).unwrap_err()
            );
            assert!(err.contains(want), "{err}");
        }
        // Links between members are followed inside the archive only.
        fs::write(
            &path,
            build(&[(b"index.json", Kind::Symlink, b"../../../../etc/hostname")]),
        )
        .unwrap();
        let err = ImageArchive::open(&path, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no index.json or manifest.json"), "{err}");
        fs::write(
            &path,
            build(&[
                (b"real", F, index),
                (b"index.json", Kind::Symlink, b"/real"),
            ]),
        )
        .unwrap();
        assert!(ImageArchive::open(&path, &Options::default())
            .unwrap()
            .images()
            .is_empty());
    }

    #[test]
    fn docker_archives() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper) = two_layers();
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
            Digest::of(Algorithm::Sha256, &lower).to_string(),
            Digest::of(Algorithm::Sha256, &upper).to_string(),
        ]}})
        .to_string();
        let cfg_name = format!(
            "{}.json",
            Digest::of(Algorithm::Sha256, config.as_bytes()).hex()
        );
        let manifest = |cfg: &str, layers: &[&str]| {
            json!([{"Config": cfg, "RepoTags": ["docker.io/library/app:1"], "Layers": layers}])
                .to_string()
        };
        // Old docker save: <id>/layer.tar, a repeated layer as a link to
        // the first.
        let path = dir.path().join("d.tar");
        let write = |layers: &[&str]| {
            let m = manifest(&cfg_name, layers);
            let members: [(&[u8], Kind, &[u8]); 5] = [
                (b"aaa/layer.tar", F, &lower),
                (b"bbb/layer.tar", F, &upper),
                (cfg_name.as_bytes(), F, config.as_bytes()),
                (b"manifest.json", F, m.as_bytes()),
                (b"ccc/layer.tar", Kind::Symlink, b"../aaa/layer.tar"),
            ];
            fs::write(&path, build(&members)).unwrap();
        };
        write(&["aaa/layer.tar", "bbb/layer.tar"]);
        let ar = ImageArchive::open(&path, &Options::default()).unwrap();
        assert_eq!(ar.format(), ArchiveFormat::DockerArchive(Compression::None));
        let img = ar
            .select(&Selector {
                reference: Some("app:1".into()),
                ..Default::default()
            })
            .unwrap();
        let v = LayerView::new(img.layers().unwrap(), &Options::default()).unwrap();
        assert_eq!(read(&v, "etc/os-release").unwrap(), b"upper");
        // Layers reached through links, as containers/image writes them.
        write(&["ccc/layer.tar", "bbb/layer.tar"]);
        let ar = ImageArchive::open(&path, &Options::default()).unwrap();
        let v = LayerView::new(
            ar.select(&Selector::default()).unwrap().layers().unwrap(),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(read(&v, "bin/sh").unwrap(), b"sh");
        // A config whose name is a digest it does not have; paths leaving
        // the archive.
        for (cfg, layers, want) in [
            (
                format!("{}.json", "0".repeat(64)),
                vec!["aaa/layer.tar"],
                "digest mismatch",
            ),
            (cfg_name.clone(), vec!["../aaa/layer.tar"], "contains '..'"),
            ("/etc/passwd".to_string(), vec![], "is absolute"),
        ] {
            let m = manifest(&cfg, &layers);
            fs::write(
                &path,
                build(&[
                    (b"aaa/layer.tar", F, &lower),
                    (cfg.trim_start_matches('/').as_bytes(), F, config.as_bytes()),
                    (b"manifest.json", F, m.as_bytes()),
                ]),
            )
            .unwrap();
            let err = format!(
                "{:#}",
                ImageArchive::open(&path, &Options::default()).unwrap_err()
            );
            assert!(err.contains(want), "{want}: {err}");
        }
    }
}
