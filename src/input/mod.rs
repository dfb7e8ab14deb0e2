//! Opening what a user points criu2core at — a CRIU image directory
//! (Docker's checkpoints among them), an unpacked container checkpoint (a
//! directory with `checkpoint/`), a checkpoint archive (.tar, .tar.gz,
//! .tar.zst as Podman, CRI-O and the kubelet on CRI-O or containerd write
//! it), or a checkpoint image (containerd's `ctr image export`, or one made
//! for Kubernetes restore, as an OCI layout, OCI archive or docker-archive)
//! — as a [`Checkpoint`]: its process tree, container and warnings, and
//! its processes loaded on demand. Every kind of input is told apart by
//! content and opened here ([`InputKind`], [`detect`], [`open`]); the file
//! view file pages come from is made here too ([`Checkpoint::load`],
//! [`LoadOptions`]).

mod checkpoint_image;
mod open_files;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

pub use crate::archive::PageUse;
use crate::archive::{self, ArchiveOptions, ArchiveStore, Diff};
use crate::cancel::Cancel;
pub use crate::compress::Compression;
use crate::container::ContainerInfo;
use crate::criu::store::{DirStore, ImageStore};
use crate::criu::Images;
use crate::error::{fault, Error, ErrorKind};
use crate::model::{display_bytes, Blob, Loaded, TreeEntry};
use crate::oci::{ArchiveFormat, ImageArchive, Layer, LayerView, Wanted};
use crate::rootfs::{FileView, RootFs};
use crate::rootfs_diff::{self, DiffIndex};
use crate::spill::{Spill, SpillOptions};
use crate::stdext::lock;
use crate::warning::{Warning, WarningKind};

pub use checkpoint_image::ImageUse;
pub(crate) use open_files::OpenFiles;

/// Largest config.dump or spec.dump read: a container's description takes
/// a few dozen KiB. A larger one is left out, with a warning.
pub const MAX_CONTAINER_DUMP_BYTES: u64 = 1 << 20;

/// What kind of input it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputKind {
    /// A directory of CRIU images.
    Images,
    /// A directory laid out as an unpacked container checkpoint.
    CheckpointDir,
    /// A checkpoint archive.
    Archive(Compression),
    /// A checkpoint image: an OCI layout (directory or archive) or a
    /// docker-archive holding containerd's checkpoint or one made for
    /// Kubernetes restore.
    Image(ArchiveFormat),
}

impl InputKind {
    /// What kind of checkpoint `path` is (a path, or an object-storage
    /// URL), from a look at it rather than a full read; `None` if it is no
    /// checkpoint.
    pub fn detect(path: impl AsRef<Path>) -> crate::Result<Option<InputKind>> {
        detect(path.as_ref()).map_err(Error::new)
    }

    /// A short name: "images", "checkpoint-dir", "tar", "tar.gz",
    /// "tar.zst", or for checkpoint images "oci-layout", "oci-archive"
    /// (".gz", ".zst"), "docker-archive" (".gz", ".zst"), "docker-dir".
    pub fn name(self) -> String {
        match self {
            InputKind::Images => "images".into(),
            InputKind::CheckpointDir => "checkpoint-dir".into(),
            InputKind::Archive(c) => c.suffix().into(),
            InputKind::Image(f) => f.name(),
        }
    }
}

/// An opened checkpoint: its process tree, the container around it, what
/// is wrong with it, and its processes, loaded one at a time
/// ([`Checkpoint::load`]). What a compressed archive unpacked is removed
/// when it is dropped.
pub struct Checkpoint {
    path: PathBuf,
    kind: InputKind,
    pub(crate) images: Images,
    container: Option<ContainerInfo>,
    /// The files the container changed (its rootfs-diff.tar) that the
    /// checkpoint's processes mapped, if it has a diff.
    rootfs_diff: Option<DiffIndex>,
    /// What Podman's `deleted.files` says the container removed.
    deleted: Vec<String>,
    warnings: Vec<Warning>,
    /// How an image given to [`Checkpoint::load`] is read: where it may
    /// copy files, how much, and the cancellation it stops for.
    image_opts: crate::oci::Options,
    /// Copies of the diff's files, where no archive holds them.
    _spill: Option<Spill>,
    /// The file views [`Checkpoint::load`] made, kept while the checkpoint
    /// is: a process loaded through one reads the files it unpacked (a
    /// compressed layer's) until the checkpoint is dropped.
    views: Mutex<Vec<(LoadOptions, Option<Arc<FileView>>)>>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("processes", &self.images.tree.len())
            .finish()
    }
}

/// How to open a checkpoint.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Where compressed archives (and the layers of a checkpoint image)
    /// are unpacked, and how much; what is unpacked is removed when the
    /// checkpoint is dropped.
    pub spill: SpillOptions,
    /// Which page data will be used: all of it to write cores, only the
    /// command lines and environments to inspect.
    pub pages: PageUse,
    /// Stops reading an archive once set (the partly unpacked files are
    /// removed).
    pub cancel: Cancel,
}

impl OpenOptions {
    /// Unpacks compressed archives into `dir`.
    pub fn spill_dir(mut self, dir: impl Into<PathBuf>) -> OpenOptions {
        self.spill.dir = Some(dir.into());
        self
    }

    /// Unpacks at most `bytes` from a compressed archive.
    pub fn max_spill(mut self, bytes: u64) -> OpenOptions {
        self.spill.max = Some(bytes);
        self
    }

    /// Unpacks only the page data `pages` says will be used.
    pub fn pages(mut self, pages: PageUse) -> OpenOptions {
        self.pages = pages;
        self
    }

    /// Stops reading once `cancel` is set.
    pub fn cancel(mut self, cancel: &Cancel) -> OpenOptions {
        self.cancel = cancel.clone();
        self
    }

    /// How a checkpoint archive is read.
    pub(crate) fn archive_options(&self) -> ArchiveOptions {
        ArchiveOptions {
            spill: self.spill.clone(),
            pages: self.pages,
            cancel: self.cancel.clone(),
        }
    }
}

/// A container image to read the container's unmodified files from:
/// an OCI layout directory, an OCI archive or a docker-archive, and which
/// of its images (`--image FILE:NAME:TAG`, `--image FILE@sha256:...`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageRef {
    /// The layout directory or archive.
    pub path: PathBuf,
    /// The image in it: a reference, a tag, a digest; `None` to take the
    /// one the checkpoint names, else the only one.
    pub reference: Option<String>,
}

impl ImageRef {
    /// The image at `path`, chosen as the checkpoint says.
    pub fn new(path: impl Into<PathBuf>) -> ImageRef {
        ImageRef {
            path: path.into(),
            reference: None,
        }
    }

    /// Reads `FILE`, `FILE:REFERENCE` or `FILE@DIGEST`: the longest prefix
    /// that exists as a file or directory is the path, what follows the
    /// `:` or `@` after it the image (a path that exists whole is taken
    /// whole).
    pub fn parse(text: &str) -> ImageRef {
        if Path::new(text).exists() {
            return ImageRef::new(text);
        }
        let cuts = text
            .char_indices()
            .filter(|&(_, c)| c == ':' || c == '@')
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        for &i in cuts.iter().rev() {
            let (path, rest) = text.split_at(i);
            if !path.is_empty() && Path::new(path).exists() {
                // What follows the ':' or '@'.
                let reference = &rest[1..];
                return ImageRef {
                    path: path.into(),
                    reference: (!reference.is_empty()).then(|| reference.to_string()),
                };
            }
        }
        ImageRef::new(text)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        match &self.reference {
            Some(r) if r.starts_with("sha256:") || r.starts_with("sha512:") => write!(f, "@{r}"),
            Some(r) => write!(f, ":{r}"),
            None => Ok(()),
        }
    }
}

/// How to load a process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// A root filesystem (a sysroot, a container's rootfs) to read the
    /// unmodified pages of mapped files from, so that a core holds them.
    pub root: Option<PathBuf>,
    /// The container's image, whose layers (under the container's changed
    /// files) supply the unmodified pages of mapped files. Not with `root`.
    pub image: Option<ImageRef>,
    /// Whether to read mapped files from the archive's rootfs-diff.tar
    /// (the files the container changed), before `root` (default: yes).
    pub rootfs_diff: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            root: None,
            image: None,
            rootfs_diff: true,
        }
    }
}

impl LoadOptions {
    /// Reads unmodified file pages from the root filesystem `dir`.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> LoadOptions {
        self.root = Some(dir.into());
        self
    }

    /// Reads unmodified file pages from the container's image.
    pub fn image(mut self, image: ImageRef) -> LoadOptions {
        self.image = Some(image);
        self
    }

    /// Whether to read mapped files from the archive's rootfs-diff.tar.
    pub fn rootfs_diff(mut self, use_it: bool) -> LoadOptions {
        self.rootfs_diff = use_it;
        self
    }
}

/// What a path is, without opening it fully: `None` if it is no checkpoint.
/// A tar is taken for a checkpoint archive until it is opened (an OCI
/// archive or docker-archive is then read as a checkpoint image); an image
/// layout directory is taken for a checkpoint image if its index says so.
pub fn detect(path: &Path) -> Result<Option<InputKind>> {
    if let Some(url) = crate::blobio::url_of(path) {
        // An object is read as an archive; a prefix holds inputs (image
        // directories are read only from a filesystem).
        let loc = crate::remote::Location::parse(url)?;
        if loc.head()?.is_none() {
            return Ok(None);
        }
        return Ok(crate::compress::tar_compression(&loc.read_head(512)?).map(InputKind::Archive));
    }
    let meta = fs::metadata(path).with_context(|| format!("{}: cannot open", path.display()))?;
    if meta.is_dir() {
        Ok(if path.join("pstree.img").is_file() {
            Some(InputKind::Images)
        } else if path.join("checkpoint/pstree.img").is_file() {
            Some(InputKind::CheckpointDir)
        } else if path.join("index.json").is_file() || path.join("manifest.json").is_file() {
            checkpoint_image::detect_dir(path)?
        } else {
            None
        })
    } else if meta.is_file() {
        Ok(archive::sniff(path)?.map(InputKind::Archive))
    } else {
        Ok(None)
    }
}

/// `name` in the directory `dir`, if it is there: a regular file (or a
/// directory, for `want_dir`), or a symbolic link to one that stays inside
/// `dir`. A link that leaves `dir` is an error, as a linked image is: what
/// a checkpoint directory holds must come from the checkpoint.
fn inside(dir: &Path, name: &str, want_dir: bool) -> Result<Option<PathBuf>> {
    let path = dir.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot stat", path.display())),
    };
    let real = if meta.file_type().is_symlink() {
        let target = fs::canonicalize(&path)
            .with_context(|| format!("{}: symbolic link to nowhere", path.display()))?;
        let base =
            fs::canonicalize(dir).with_context(|| format!("{}: cannot open", dir.display()))?;
        if !target.starts_with(&base) {
            bail!(
                "{}: symbolic link out of the checkpoint directory (to {}); refused",
                path.display(),
                target.display()
            );
        }
        target
    } else {
        path.clone()
    };
    let meta = fs::metadata(&real).with_context(|| format!("{}: cannot stat", path.display()))?;
    if want_dir && !meta.is_dir() {
        bail!("{}: not a directory", path.display());
    }
    if !want_dir && !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    Ok(Some(real))
}

/// A container description (config.dump, spec.dump) of at most
/// [`MAX_CONTAINER_DUMP_BYTES`], or a warning about why it is left out.
fn container_dump(
    name: &str,
    data: Result<Option<Vec<u8>>>,
    warnings: &mut Vec<Warning>,
) -> Option<Vec<u8>> {
    match data {
        Ok(Some(d)) if d.len() as u64 <= MAX_CONTAINER_DUMP_BYTES => Some(d),
        Ok(Some(d)) => {
            warnings.push(
                Warning::new(
                    WarningKind::Limit,
                    format!(
                        "{name}: {} bytes, more than any container description takes ({MAX_CONTAINER_DUMP_BYTES}); left out",
                        d.len()
                    ),
                )
                .about(name),
            );
            None
        }
        Ok(None) => None,
        Err(e) => {
            // One too big in a checkpoint directory is refused before it
            // is read.
            let kind = WarningKind::unread(&e);
            warnings.push(Warning::new(kind, format!("{e:#}; left out")).about(name));
            None
        }
    }
}

/// A file of a checkpoint directory, read whole if it is small enough for
/// a container description (its size is checked before it is read).
fn read_small(path: &Path) -> Result<Option<Vec<u8>>> {
    let len = fs::metadata(path)
        .with_context(|| format!("{}: cannot stat", path.display()))?
        .len();
    if len > MAX_CONTAINER_DUMP_BYTES {
        return Err(crate::error::fault(crate::ErrorKind::Limit, format!(
            "{}: {len} bytes, more than any container description takes ({MAX_CONTAINER_DUMP_BYTES})",
            path.display()
        )));
    }
    let mut data = Vec::new();
    use std::io::Read;
    fs::File::open(path)
        .and_then(|f| f.take(MAX_CONTAINER_DUMP_BYTES).read_to_end(&mut data))
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(Some(data))
}

/// Opens a checkpoint in any of the forms criu2core reads: an image
/// directory, an unpacked container checkpoint, or a checkpoint archive
/// (plain, gzip or zstd), told apart by content.
///
/// ```
/// use criu2core::{open, ErrorKind, OpenOptions, PageUse};
///
/// // Unpack no page data but the command lines' (as inspect does).
/// let opts = OpenOptions::default().pages(PageUse::Strings);
/// let ckpt = open("gdb-fixtures/example.tar.zst", &opts)?;
/// assert_eq!(ckpt.kind().name(), "tar.zst");
/// assert_eq!(ckpt.pids(), [12155]);
/// let e = open("Cargo.toml", &opts).unwrap_err();
/// assert_eq!(e.kind(), &ErrorKind::NotACheckpoint);
/// # Ok::<(), criu2core::Error>(())
/// ```
pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> crate::Result<Checkpoint> {
    open_input(path.as_ref(), opts).map_err(Error::new)
}

/// [`open`], its errors as they arose.
pub(crate) fn open_input(path: &Path, opts: &OpenOptions) -> Result<Checkpoint> {
    let mut kind = detect(path)?.ok_or_else(|| {
        fault(
            ErrorKind::NotACheckpoint,
            format!(
                "{}: not a checkpoint (no pstree.img or checkpoint/pstree.img, no checkpoint image, and not a tar/tar.gz/tar.zst archive)",
                path.display()
            ),
        )
    })?;
    let mut warnings = Vec::new();
    let parts = parts_of(path, &mut kind, opts, &mut warnings)?;
    checkpoint(path, kind, parts, opts, warnings)
}

/// [`open`] of the checkpoint archive at `path`, of kind `kind`, whose
/// members its reader has consumed itself ([`ArchiveStore::members_of`])
/// into `read`; a tar that holds no CRIU images is tried as an image
/// archive, as [`open`] tries it.
pub(crate) fn open_read_archive(
    path: &Path,
    mut kind: InputKind,
    opts: &OpenOptions,
    read: Result<ArchiveStore>,
) -> Result<Checkpoint> {
    let mut warnings = Vec::new();
    let parts = archive_or_image(path, &mut kind, opts, &mut warnings, read)?;
    checkpoint(path, kind, parts, opts, warnings)
}

/// The checkpoint input `path` (of kind `kind`) is, from its parts.
fn checkpoint(
    path: &Path,
    kind: InputKind,
    parts: Parts,
    opts: &OpenOptions,
    mut warnings: Vec<Warning>,
) -> Result<Checkpoint> {
    let images = Images::open(parts.store)?;
    let mut spill = None;
    let rootfs_diff = match parts.diff {
        None => None,
        Some(Diff::Indexed(ix)) => Some(ix),
        Some(Diff::Tar(blob)) => read_rootfs_diff(&blob, &images, opts, &mut spill, &mut warnings)?,
    };
    if let Some(d) = &rootfs_diff {
        warnings.extend(d.warnings.iter().cloned());
    }
    warnings.extend(images.warnings.iter().cloned());
    tracing::info!(path = %path.display(), kind = kind.name(), processes = images.tree.len(), "opened checkpoint");
    Ok(Checkpoint {
        path: path.to_path_buf(),
        kind,
        images,
        container: parts.container,
        rootfs_diff,
        deleted: parts.deleted,
        warnings,
        image_opts: checkpoint_image::options(opts),
        _spill: spill,
        views: Mutex::new(Vec::new()),
    })
}

/// Where the images of input `path` are, what it says of its container,
/// and its rootfs diff, by its kind; `kind` becomes the image's format
/// where the input turns out to be an image archive.
fn parts_of(
    path: &Path,
    kind: &mut InputKind,
    opts: &OpenOptions,
    warnings: &mut Vec<Warning>,
) -> Result<Parts> {
    Ok(match *kind {
        InputKind::Images => Parts {
            store: Arc::new(DirStore::open(path)?),
            container: ContainerInfo::from_images_dir(path),
            diff: None,
            deleted: Vec::new(),
        },
        InputKind::CheckpointDir => checkpoint_dir(path, warnings)?,
        InputKind::Archive(_) => {
            let read = ArchiveStore::open(path, &opts.archive_options());
            archive_or_image(path, kind, opts, warnings, read)?
        }
        InputKind::Image(_) => {
            let ar = ImageArchive::open(path, &checkpoint_image::options(opts))?;
            *kind = InputKind::Image(ar.format());
            checkpoint_image::open(path, &ar, opts, warnings)?
        }
    })
}

/// What the checkpoint archive at `path` holds, `read` being its members
/// as read; a tar with no CRIU images may be an image archive holding a
/// checkpoint image (then `kind` becomes the image's format).
fn archive_or_image(
    path: &Path,
    kind: &mut InputKind,
    opts: &OpenOptions,
    warnings: &mut Vec<Warning>,
    read: Result<ArchiveStore>,
) -> Result<Parts> {
    match read {
        Err(e) if crate::error::kind_of(&e) == ErrorKind::NotACheckpoint => {
            match ImageArchive::open(path, &checkpoint_image::options(opts)) {
                Ok(ar) => {
                    *kind = InputKind::Image(ar.format());
                    checkpoint_image::open(path, &ar, opts, warnings)
                }
                // An image archive that is broken says why.
                Err(ie) if *ie.kind() != ErrorKind::NotACheckpoint => Err(ie.into()),
                Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(ar) => Ok(archive_parts(ar, warnings)),
    }
}

/// Reads a rootfs diff lying in a directory, now that the files the
/// checkpoint maps are known, unpacking them into a spill `spill` is made
/// into. A diff that cannot be read is a warning, unless a limit or a
/// cancellation stopped it.
fn read_rootfs_diff(
    blob: &Blob,
    images: &Images,
    opts: &OpenOptions,
    spill: &mut Option<Spill>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<DiffIndex>> {
    let wanted = match opts.pages {
        PageUse::Strings => Wanted::default(),
        PageUse::All => Wanted::new::<[u8]>(images.regular_names()),
    };
    let s = spill.insert(Spill::new(&opts.spill));
    match rootfs_diff::read_diff(blob, &wanted, s) {
        Ok(ix) => Ok(Some(ix)),
        Err(e)
            if matches!(
                crate::error::kind_of(&e),
                ErrorKind::Limit | ErrorKind::Cancelled(_)
            ) =>
        {
            Err(e)
        }
        Err(e) => {
            warnings.push(
                Warning::new(
                    WarningKind::Unreadable,
                    format!("{e:#}; the files in it are not used"),
                )
                .about(blob.label.clone()),
            );
            Ok(None)
        }
    }
}

/// A warning for each file `p` maps that `view` could not resolve for
/// too many symbolic links (its pages that the checkpoint lacks are left
/// out of the core, as for a file not found).
fn unresolved_files(p: &crate::model::Process, view: &FileView) -> Vec<Warning> {
    let mut seen = std::collections::HashSet::new();
    p.mappings
        .iter()
        .filter_map(|m| m.file.as_ref())
        .filter(|f| seen.insert(f.path.clone()))
        .filter_map(|f| Some((view.unresolved(&f.path)?, display_bytes(&f.path))))
        .map(|(why, path)| {
            Warning::new(
                WarningKind::LinkLoop,
                format!("{why}; the file's pages the checkpoint lacks are left out"),
            )
            .about(path)
        })
        .collect()
}

/// What an input holds besides its images' contents.
struct Parts {
    /// Its images.
    store: Arc<dyn ImageStore>,
    /// Its container, where it says.
    container: Option<ContainerInfo>,
    /// Its rootfs-diff.tar, if it has one.
    diff: Option<Diff>,
    /// The paths its `deleted.files` names.
    deleted: Vec<String>,
}

/// The paths of a `deleted.files`, or a warning.
fn deleted_files(data: Option<Vec<u8>>, warnings: &mut Vec<Warning>) -> Vec<String> {
    match data.map(|d| crate::oci::parse_deleted_files(&d)) {
        None => Vec::new(),
        Some(Ok(paths)) => paths,
        Some(Err(e)) => {
            warnings.push(
                Warning::new(WarningKind::Unreadable, format!("{e:#}; not used"))
                    .about("deleted.files"),
            );
            Vec::new()
        }
    }
}

/// An unpacked container checkpoint: `checkpoint/`, and beside it
/// `config.dump`, `spec.dump`, `rootfs-diff.tar` and `deleted.files`, each
/// a file of the directory (or a link inside it).
fn checkpoint_dir(path: &Path, warnings: &mut Vec<Warning>) -> Result<Parts> {
    let images = inside(path, "checkpoint", true)?
        .with_context(|| format!("{}: no checkpoint directory", path.display()))?;
    let diff = match inside(path, "rootfs-diff.tar", false)? {
        Some(diff) => {
            let len = fs::metadata(&diff)
                .with_context(|| format!("{}: cannot stat", diff.display()))?
                .len();
            Some(Diff::Tar(Blob {
                label: path.join("rootfs-diff.tar").display().to_string(),
                path: diff,
                offset: 0,
                len,
                remote: None,
            }))
        }
        None => None,
    };
    let mut dump = |name: &str| -> Result<Option<Vec<u8>>> {
        let data = match inside(path, name, false)? {
            Some(p) => read_small(&p),
            None => Ok(None),
        };
        Ok(container_dump(name, data, warnings))
    };
    let config = dump("config.dump")?;
    let spec = dump("spec.dump")?;
    let deleted = dump("deleted.files")?;
    Ok(Parts {
        store: Arc::new(DirStore::open(images)?),
        container: ContainerInfo::from_dumps(config.as_deref(), spec.as_deref()),
        diff,
        deleted: deleted_files(deleted, warnings),
    })
}

/// What a checkpoint archive (or a layer holding one) holds.
fn archive_parts(ar: ArchiveStore, warnings: &mut Vec<Warning>) -> Parts {
    warnings.extend(ar.warnings().iter().cloned());
    let container = if ar.is_container_checkpoint() {
        let config = container_dump("config.dump", ar.read_member("config.dump"), warnings);
        let spec = container_dump("spec.dump", ar.read_member("spec.dump"), warnings);
        ContainerInfo::from_dumps(config.as_deref(), spec.as_deref())
    } else {
        None
    };
    let deleted = container_dump("deleted.files", ar.read_member("deleted.files"), warnings);
    let deleted = deleted_files(deleted, warnings);
    let diff = ar.rootfs_diff().cloned();
    Parts {
        store: Arc::new(ar),
        container,
        diff,
        deleted,
    }
}

impl Checkpoint {
    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What kind of input it is.
    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// The container, where the input describes one (config.dump,
    /// spec.dump).
    pub fn container(&self) -> Option<&ContainerInfo> {
        self.container.as_ref()
    }

    /// Every process of the process tree, the root first.
    pub fn processes(&self) -> &[TreeEntry] {
        &self.images.tree
    }

    /// The pid of every process, in tree order, each once.
    pub fn pids(&self) -> Vec<u32> {
        self.images.pids()
    }

    /// The CRIU image format version (inventory.img), if recorded.
    pub fn image_version(&self) -> Option<u32> {
        self.images.inventory.as_ref().map(|i| i.img_version)
    }

    /// What is wrong with the checkpoint as a whole but did not stop it
    /// being read (images no process owns, an inconsistent process tree,
    /// skipped archive members...): for people to see before the
    /// processes' own warnings.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Decodes process `pid`: its threads, registers and memory, with file
    /// pages read from the archive's rootfs-diff.tar and `opts.root` or
    /// `opts.image` as asked. A zombie has neither memory nor registers.
    /// The file view made for `opts` (an image's layers, indexed, and the
    /// files of its compressed layers, copied out) is made once and kept
    /// while the checkpoint is: the processes loaded through it read from
    /// those copies.
    ///
    /// ```
    /// use criu2core::model::Registers;
    /// use criu2core::{open, LoadOptions, Loaded, OpenOptions};
    ///
    /// let ckpt = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
    /// let Loaded::Process(p) = ckpt.load(12155, &LoadOptions::default())? else {
    ///     panic!("a zombie")
    /// };
    /// assert_eq!((p.comm.as_slice(), p.threads.len()), (&b"victim"[..], 4));
    /// let Registers::X86_64(regs) = &p.threads[0].regs else { panic!() };
    /// println!("rip {:#x}", regs.gp[criu2core::model::regs::x86_64::RIP]);
    /// # Ok::<(), criu2core::Error>(())
    /// ```
    pub fn load(&self, pid: u32, opts: &LoadOptions) -> crate::Result<Loaded> {
        let view = self.kept_view(opts).map_err(Error::new)?;
        self.load_with(pid, view.as_deref(), true)
            .map_err(Error::new)
    }

    /// The file view for `opts`, made once and kept while the checkpoint
    /// is (as convert keeps the one it makes while it writes cores).
    fn kept_view(&self, opts: &LoadOptions) -> Result<Option<Arc<FileView>>> {
        let mut views = lock(&self.views);
        if let Some((_, v)) = views.iter().find(|(o, _)| o == opts) {
            return Ok(v.clone());
        }
        let view = self.file_view(opts)?.map(|(v, _)| Arc::new(v));
        views.push((opts.clone(), view.clone()));
        Ok(view)
    }

    /// [`Checkpoint::load`] with the file view made once for many
    /// processes; without `files`, the contents of files the checkpoint
    /// keeps (deleted while open) are left out too.
    pub(crate) fn load_with(
        &self,
        pid: u32,
        view: Option<&FileView>,
        files: bool,
    ) -> Result<Loaded> {
        let mut loaded = self.images.load(
            pid,
            crate::criu::LoadOptions {
                root: view,
                skip_ghosts: !files,
            },
        )?;
        if let (Some(view), Loaded::Process(p)) = (view, &mut loaded) {
            p.warnings.extend(unresolved_files(p, view));
        }
        Ok(loaded)
    }

    /// What the checkpoint names as its container's image: the names and
    /// ids an image given with `--image` is matched against.
    pub fn image_hints(&self) -> Vec<String> {
        self.container
            .as_ref()
            .map(ContainerInfo::image_hints)
            .unwrap_or_default()
    }

    /// Which image of `image` would be used for this checkpoint, and
    /// whether it is the one the checkpoint names (nothing is indexed).
    pub fn choose_image(&self, image: &ImageRef) -> crate::Result<ImageUse> {
        (|| -> Result<ImageUse> {
            let ar = ImageArchive::open(&image.path, &self.image_options())?;
            let (_, used) = checkpoint_image::choose(&ar, image, &self.image_hints(), false)?;
            Ok(used)
        })()
        .map_err(Error::new)
    }

    fn image_options(&self) -> crate::oci::Options {
        self.image_opts.clone()
    }

    /// Where file-backed pages can be read from: the image's layers (with
    /// `opts.image`), under the container's changed files, and under
    /// those the root (`opts.root`); and which image was used. `None` if
    /// there is nothing to read from.
    pub(crate) fn file_view(
        &self,
        opts: &LoadOptions,
    ) -> Result<Option<(FileView, Option<ImageUse>)>> {
        if opts.root.is_some() && opts.image.is_some() {
            bail!("a root directory and an image were both given: give one");
        }
        let iopts = self.image_options();
        let wanted = Arc::new(Wanted::new::<[u8]>(self.images.regular_names()));
        let mut layers: Vec<Layer> = Vec::new();
        let mut used = None;
        if let Some(img) = &opts.image {
            let ar = ImageArchive::open(&img.path, &iopts)?;
            let (sel, u) = checkpoint_image::choose(&ar, img, &self.image_hints(), true)?;
            layers = sel.layers()?;
            used = Some(u);
        }
        let diff = self.rootfs_diff.as_ref().filter(|_| opts.rootfs_diff);
        if let Some(d) = diff {
            layers.push(Layer::recorded(d.label.clone(), d.recorded.clone()).only(wanted.clone()));
        }
        let view = if layers.is_empty() {
            None
        } else {
            let mut v = LayerView::new(layers, &iopts)?;
            if diff.is_some() {
                for p in &self.deleted {
                    v.delete(p)?;
                }
            }
            Some(v)
        };
        // One budget of lookups for the paths of this input, view and root.
        let lookups = match &view {
            Some(v) => v.lookups(),
            None => crate::oci::Lookups::new(&iopts.cancel),
        };
        let dir = opts.root.as_ref().map(RootFs::new).transpose()?;
        let dir = dir.map(|d| d.with_lookups(lookups));
        if view.is_none() && dir.is_none() {
            return Ok(None);
        }
        let fv = FileView::new(view, dir);
        fv.prefetch(self.images.regular_names())?;
        Ok(Some((fv, used)))
    }
}
