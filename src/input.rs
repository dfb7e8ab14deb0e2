//! Opening what a user points criu2core at: a CRIU image directory, an
//! unpacked container checkpoint (a directory with `checkpoint/`), or a
//! checkpoint archive (.tar, .tar.gz, .tar.zst, recognised by content).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::archive::{self, ArchiveStore, Compression};
use crate::container::ContainerInfo;
use crate::criu::store::{DirStore, ImageStore};
use crate::criu::Checkpoint;
use crate::model::Blob;
use crate::rootfs::{FileRoots, RootFs};

/// What kind of input it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A directory of CRIU images.
    Images,
    /// A directory laid out as an unpacked container checkpoint.
    CheckpointDir,
    /// A checkpoint archive.
    Archive(Compression),
}

impl InputKind {
    /// A short name: "images", "checkpoint-dir", "tar", "tar.gz", "tar.zst".
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Images => "images",
            InputKind::CheckpointDir => "checkpoint-dir",
            InputKind::Archive(c) => c.suffix(),
        }
    }
}

/// An opened checkpoint with what surrounds it.
pub struct Input {
    /// The path given.
    pub path: PathBuf,
    /// What it is.
    pub kind: InputKind,
    /// The CRIU checkpoint.
    pub checkpoint: Checkpoint,
    /// The container, where the input says.
    pub container: Option<ContainerInfo>,
    /// The files the container changed (rootfs-diff.tar), if present.
    pub rootfs_diff: Option<Blob>,
    /// What is wrong with the input as a whole but did not stop it being
    /// read: for the user to see before the processes' own warnings.
    pub warnings: Vec<String>,
}

/// Options for opening inputs.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where compressed archives' page files are unpacked (system temporary
    /// directory if `None`); removed when the input is dropped.
    pub spill_dir: Option<PathBuf>,
}

/// What a path is, without opening it fully: `None` if it is no checkpoint.
pub fn detect(path: &Path) -> Result<Option<InputKind>> {
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

fn read_opt(path: &Path) -> Option<Vec<u8>> {
    let meta = fs::metadata(path).ok()?;
    (meta.is_file() && meta.len() <= 16 << 20)
        .then(|| fs::read(path).ok())
        .flatten()
}

/// Opens a checkpoint in any of the forms criu2core reads.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Input> {
    let kind = detect(path)?.with_context(|| {
        format!(
            "{}: not a checkpoint (no pstree.img or checkpoint/pstree.img, and not a tar/tar.gz/tar.zst archive)",
            path.display()
        )
    })?;
    let (store, container, rootfs_diff): (Arc<dyn ImageStore>, _, _) = match kind {
        InputKind::Images => (Arc::new(DirStore::open(path)?), None, None),
        InputKind::CheckpointDir => {
            let diff = path.join("rootfs-diff.tar");
            let rootfs_diff = fs::metadata(&diff)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| Blob {
                    label: diff.display().to_string(),
                    path: diff.clone(),
                    offset: 0,
                    len: m.len(),
                });
            let container = ContainerInfo::from_dumps(
                read_opt(&path.join("config.dump")).as_deref(),
                read_opt(&path.join("spec.dump")).as_deref(),
            );
            (
                Arc::new(DirStore::open(path.join("checkpoint"))?),
                container,
                rootfs_diff,
            )
        }
        InputKind::Archive(_) => {
            let ar = ArchiveStore::open(path, opts.spill_dir.as_deref())?;
            let container = if ar.is_container_checkpoint() {
                ContainerInfo::from_dumps(
                    ar.read_member("config.dump")?.as_deref(),
                    ar.read_member("spec.dump")?.as_deref(),
                )
            } else {
                None
            };
            let diff = ar.rootfs_diff();
            (Arc::new(ar), container, diff)
        }
    };
    let checkpoint = Checkpoint::open(store)?;
    tracing::info!(path = %path.display(), kind = kind.name(), processes = checkpoint.tree.len(), "opened checkpoint");
    Ok(Input {
        path: path.to_path_buf(),
        kind,
        checkpoint,
        container,
        rootfs_diff,
        warnings: Vec::new(),
    })
}

impl Input {
    /// Where file-backed pages can be read from: the container's changed
    /// files first, then `root`. `None` if neither exists.
    pub fn file_roots(&self, root: Option<&Path>) -> Result<Option<FileRoots>> {
        let mut roots = FileRoots::default();
        if let Some(diff) = &self.rootfs_diff {
            match archive::sniff_blob(diff)? {
                true => roots.diff = archive::index_tar(diff)?,
                false => bail!("{}: not an uncompressed tar", diff.label),
            }
        }
        if let Some(r) = root {
            roots.dir = Some(RootFs::new(r)?);
        }
        Ok((!roots.is_empty()).then_some(roots))
    }
}

/// The name of the directory a batch or multi-input run writes an input's
/// cores into: its file name without archive suffixes.
pub fn output_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    for suffix in [".tar.zst", ".tar.gz", ".tgz", ".tzst", ".tar"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            if !stem.is_empty() {
                return stem.to_string();
            }
        }
    }
    name
}
