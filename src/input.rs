//! Opening what a user points criu2core at — a CRIU image directory, an
//! unpacked container checkpoint (a directory with `checkpoint/`), or a
//! checkpoint archive (.tar, .tar.gz, .tar.zst, recognised by content) —
//! as a [`Checkpoint`]: its process tree, container and warnings, and its
//! processes loaded on demand. Every kind of input is told apart and opened
//! here ([`InputKind`], [`detect`], [`open`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::archive::{self, ArchiveOptions, ArchiveStore, Diff, DiffIndex};
pub use crate::archive::{Compression, PageUse};
use crate::cancel::Cancel;
use crate::container::ContainerInfo;
use crate::criu::store::{DirStore, ImageStore};
use crate::criu::Images;
use crate::error::{fault, Error, ErrorKind};
use crate::model::{Blob, Loaded, TreeEntry};
use crate::rootfs::{FileRoots, RootFs};

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
}

impl InputKind {
    /// What kind of checkpoint `path` is (a path, or an object-storage
    /// URL), from a look at it rather than a full read; `None` if it is no
    /// checkpoint.
    pub fn detect(path: impl AsRef<Path>) -> crate::Result<Option<InputKind>> {
        detect(path.as_ref()).map_err(Error::new)
    }

    /// A short name: "images", "checkpoint-dir", "tar", "tar.gz", "tar.zst".
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Images => "images",
            InputKind::CheckpointDir => "checkpoint-dir",
            InputKind::Archive(c) => c.suffix(),
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
    warnings: Vec<String>,
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
    /// Where compressed archives are unpacked (the system temporary
    /// directory if `None`); what is unpacked is removed when the
    /// checkpoint is dropped.
    pub spill_dir: Option<PathBuf>,
    /// The most bytes unpacked there (default: half of its free space).
    pub max_spill: Option<u64>,
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
        self.spill_dir = Some(dir.into());
        self
    }

    /// Unpacks at most `bytes` from a compressed archive.
    pub fn max_spill(mut self, bytes: u64) -> OpenOptions {
        self.max_spill = Some(bytes);
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
}

/// How to load a process.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoadOptions {
    /// A root filesystem (a sysroot, a container's rootfs) to read the
    /// unmodified pages of mapped files from, so that a core holds them.
    pub root: Option<PathBuf>,
    /// Whether to read mapped files from the archive's rootfs-diff.tar
    /// (the files the container changed), before `root` (default: yes).
    pub rootfs_diff: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions {
            root: None,
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

    /// Whether to read mapped files from the archive's rootfs-diff.tar.
    pub fn rootfs_diff(mut self, use_it: bool) -> LoadOptions {
        self.rootfs_diff = use_it;
        self
    }
}

/// What a path is, without opening it fully: `None` if it is no checkpoint.
pub fn detect(path: &Path) -> Result<Option<InputKind>> {
    if let Some(url) = crate::blobio::url_of(path) {
        // An object is read as an archive; a prefix holds inputs (image
        // directories are read only from a filesystem).
        let loc = crate::remote::Location::parse(url)?;
        if loc.head()?.is_none() {
            return Ok(None);
        }
        return Ok(archive::sniff_head(&loc.read_head(512)?).map(InputKind::Archive));
    }
    let meta = fs::metadata(path).with_context(|| format!("{}: cannot open", path.display()))?;
    if meta.is_dir() {
        Ok(if path.join("pstree.img").is_file() {
            Some(InputKind::Images)
        } else if path.join("checkpoint/pstree.img").is_file() {
            Some(InputKind::CheckpointDir)
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
    warnings: &mut Vec<String>,
) -> Option<Vec<u8>> {
    match data {
        Ok(Some(d)) if d.len() as u64 <= MAX_CONTAINER_DUMP_BYTES => Some(d),
        Ok(Some(d)) => {
            warnings.push(format!(
                "{name}: {} bytes, more than any container description takes ({MAX_CONTAINER_DUMP_BYTES}); left out",
                d.len()
            ));
            None
        }
        Ok(None) => None,
        Err(e) => {
            warnings.push(format!("{e:#}; left out"));
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
        bail!(
            "{}: {len} bytes, more than any container description takes ({MAX_CONTAINER_DUMP_BYTES})",
            path.display()
        );
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

fn open_input(path: &Path, opts: &OpenOptions) -> Result<Checkpoint> {
    let kind = detect(path)?.ok_or_else(|| {
        fault(
            ErrorKind::NotACheckpoint,
            format!(
                "{}: not a checkpoint (no pstree.img or checkpoint/pstree.img, and not a tar/tar.gz/tar.zst archive)",
                path.display()
            ),
        )
    })?;
    let mut warnings = Vec::new();
    // Each kind of input: where its images are, what it says of its
    // container, and its rootfs diff.
    let parts = match kind {
        InputKind::Images => Parts {
            store: Arc::new(DirStore::open(path)?),
            container: None,
            diff: None,
        },
        InputKind::CheckpointDir => checkpoint_dir(path, &mut warnings)?,
        InputKind::Archive(_) => archive_input(path, opts, &mut warnings)?,
    };
    let images = Images::open(parts.store)?;
    let rootfs_diff = index_diff(parts.diff, &images, &mut warnings)?;
    warnings.extend(images.warnings.iter().cloned());
    tracing::info!(path = %path.display(), kind = kind.name(), processes = images.tree.len(), "opened checkpoint");
    Ok(Checkpoint {
        path: path.to_path_buf(),
        kind,
        images,
        container: parts.container,
        rootfs_diff,
        warnings,
    })
}

/// What an input holds besides its images' contents.
struct Parts {
    /// Its images.
    store: Arc<dyn ImageStore>,
    /// Its container, where it says.
    container: Option<ContainerInfo>,
    /// Its rootfs-diff.tar, if it has one.
    diff: Option<Diff>,
}

/// An unpacked container checkpoint: `checkpoint/`, and beside it
/// `config.dump`, `spec.dump` and `rootfs-diff.tar`, each a file of the
/// directory (or a link inside it).
fn checkpoint_dir(path: &Path, warnings: &mut Vec<String>) -> Result<Parts> {
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
    Ok(Parts {
        store: Arc::new(DirStore::open(images)?),
        container: ContainerInfo::from_dumps(config.as_deref(), spec.as_deref()),
        diff,
    })
}

/// A checkpoint archive, read (and unpacked as far as `opts` let it) in
/// one pass.
fn archive_input(path: &Path, opts: &OpenOptions, warnings: &mut Vec<String>) -> Result<Parts> {
    let ar = ArchiveStore::open(
        path,
        &ArchiveOptions {
            spill_dir: opts.spill_dir.clone(),
            max_spill: opts.max_spill,
            pages: opts.pages,
            cancel: opts.cancel.clone(),
        },
    )?;
    warnings.extend(ar.warnings().iter().cloned());
    let container = if ar.is_container_checkpoint() {
        let config = container_dump("config.dump", ar.read_member("config.dump"), warnings);
        let spec = container_dump("spec.dump", ar.read_member("spec.dump"), warnings);
        ContainerInfo::from_dumps(config.as_deref(), spec.as_deref())
    } else {
        None
    };
    let diff = ar.rootfs_diff().cloned();
    Ok(Parts {
        store: Arc::new(ar),
        container,
        diff,
    })
}

/// The files of a rootfs diff that the checkpoint's processes had open or
/// mapped, where they lie (a diff that is no plain tar is left out, with
/// a warning).
fn index_diff(
    diff: Option<Diff>,
    images: &Images,
    warnings: &mut Vec<String>,
) -> Result<Option<DiffIndex>> {
    let index = match diff {
        None => None,
        Some(Diff::Indexed(ix)) => Some(ix),
        Some(Diff::Tar(blob)) if archive::sniff_blob(&blob)? => {
            Some(archive::index_tar(&blob, &images.regular_file_keys())?)
        }
        Some(Diff::Tar(blob)) => {
            warnings.push(format!(
                "{}: not an uncompressed tar; the files in it are not used",
                blob.label
            ));
            None
        }
    };
    if let Some(d) = &index {
        warnings.extend(d.warnings.iter().cloned());
    }
    Ok(index)
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
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Decodes process `pid`: its threads, registers and memory, with file
    /// pages read from the archive's rootfs-diff.tar and `opts.root` as
    /// asked. A zombie has neither memory nor registers.
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
        let roots = self.file_roots(opts).map_err(Error::new)?;
        self.load_with(pid, roots.as_ref()).map_err(Error::new)
    }

    /// [`Checkpoint::load`] with the file roots made once for many
    /// processes.
    pub(crate) fn load_with(&self, pid: u32, roots: Option<&FileRoots>) -> Result<Loaded> {
        self.images
            .load(pid, crate::criu::LoadOptions { root: roots })
    }

    /// Where file-backed pages can be read from: the container's changed
    /// files first, then the root. `None` if neither exists.
    pub(crate) fn file_roots(&self, opts: &LoadOptions) -> Result<Option<FileRoots>> {
        let mut roots = FileRoots::default();
        if let (Some(diff), true) = (&self.rootfs_diff, opts.rootfs_diff) {
            roots.diff = diff.files.clone();
        }
        if let Some(r) = &opts.root {
            roots.dir = Some(RootFs::new(r)?);
        }
        Ok((!roots.is_empty()).then_some(roots))
    }
}
