//! Opening what a user points criu2core at: a CRIU image directory, an
//! unpacked container checkpoint (a directory with `checkpoint/`), or a
//! checkpoint archive (.tar, .tar.gz, .tar.zst, recognised by content).

use std::fs;
#[cfg(test)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::archive::{self, ArchiveStore, Compression};
use crate::cancel::Cancel;
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
}

/// Options for opening inputs.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Where compressed archives' page files are unpacked (system temporary
    /// directory if `None`); removed when the input is dropped.
    pub spill_dir: Option<PathBuf>,
    /// Stops reading an archive once set (the partly unpacked files are
    /// removed).
    pub cancel: Cancel,
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
            let ar = ArchiveStore::open_cancellable(path, opts.spill_dir.as_deref(), &opts.cancel)?;
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

/// Suffixes taken off an input's file name to make its output name
/// (compared without regard to ASCII case).
pub const ARCHIVE_SUFFIXES: [&str; 6] =
    [".tar.zst", ".tar.zstd", ".tar.gz", ".tgz", ".tzst", ".tar"];
/// Names batch keeps for its own files in an output directory besides
/// dot-names (compared without regard to ASCII case).
pub const RESERVED_NAMES: [&str; 1] = ["summary.json"];
/// Longest output name before a digest suffix, in bytes.
pub const MAX_OUTPUT_NAME: usize = 200;

/// The name of the directory a batch or multi-input run writes an input's
/// cores into, before any digest suffix: the input's file name without an
/// archive suffix, with every character but ASCII letters, digits and
/// punctuation (except `/`) and non-ASCII letters and digits replaced by
/// `_`, `_` put before a leading `.` and before a reserved name (see
/// [`RESERVED_NAMES`]), cut to [`MAX_OUTPUT_NAME`] bytes; `checkpoint`
/// where nothing is left. Always a single safe path component
/// ([`crate::outdir::is_safe_component`]) that starts with neither `.`
/// nor a reserved name. Pass a canonical path: `..` has no file name.
pub fn output_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.as_str();
    for suffix in ARCHIVE_SUFFIXES {
        let cut = name.len().saturating_sub(suffix.len());
        if cut > 0 && name.is_char_boundary(cut) && name[cut..].eq_ignore_ascii_case(suffix) {
            stem = &name[..cut];
            break;
        }
    }
    let mut out = String::with_capacity(stem.len());
    for c in stem.chars() {
        let keep = if c.is_ascii() {
            c.is_ascii_graphic() && c != '/'
        } else {
            c.is_alphanumeric()
        };
        let c = if keep { c } else { '_' };
        if out.len() + c.len_utf8() > MAX_OUTPUT_NAME {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        return "checkpoint".into();
    }
    if out.starts_with('.') || RESERVED_NAMES.iter().any(|r| out.eq_ignore_ascii_case(r)) {
        out.insert(0, '_');
        while out.len() > MAX_OUTPUT_NAME {
            out.pop();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_safe_whatever_the_input_is_called() {
        let cases: [(&[u8], &str); 16] = [
            (b"checkpoint-web.tar.zst", "checkpoint-web"),
            (b"dump", "dump"),
            (b"a.TAR.GZ", "a"),
            (b"x.tgz", "x"),
            (b"...tar.zst", "_.."),
            (b"..tar", "_."),
            (b".tar", "_.tar"),
            (b"..tar.gz", "_."),
            (b"...tgz", "_.."),
            (b"summary.json.tar", "_summary.json"),
            (b"SUMMARY.JSON", "_SUMMARY.JSON"),
            (b".criu2core.lock.tar", "_.criu2core.lock"),
            (b"a\x1b[2Jb\nc.tar", "a_[2Jb_c"),
            (b"sp ace\x7f\xff.tar", "sp_ace__"),
            (b"caf\xc3\xa9-\xe2\x80\xae.tar", "caf\u{e9}-_"),
            (b"ab\x00", "ab_"),
        ];
        for (raw, want) in cases {
            let p = Path::new(std::ffi::OsStr::from_bytes(raw));
            let got = output_name(p);
            assert_eq!(got, want, "{raw:?}");
            assert!(crate::outdir::is_safe_component(&got), "{raw:?}");
        }
        assert_eq!(output_name(Path::new("/")), "checkpoint");
        assert_eq!(output_name(Path::new("a/..")), "checkpoint");
        // Found by fuzz/naming: a long dot-name, '_' put before it, was
        // one byte over the bound.
        let dots = format!(".{}", "a".repeat(300));
        assert_eq!(output_name(Path::new(&dots)).len(), MAX_OUTPUT_NAME);
        assert!(output_name(Path::new(&dots)).starts_with("_."));
        let long = "é".repeat(300);
        let got = output_name(Path::new(&long));
        assert!(got.len() <= MAX_OUTPUT_NAME && got.chars().all(|c| c == 'é'));
    }
}
