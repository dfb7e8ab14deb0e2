//! Opening what a user points criu2core at: a CRIU image directory, an
//! unpacked container checkpoint (a directory with `checkpoint/`), or a
//! checkpoint archive (.tar, .tar.gz, .tar.zst, recognised by content).

use std::fs;
#[cfg(test)]
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

pub use crate::archive::PageUse;
use crate::archive::{self, ArchiveOptions, ArchiveStore, Compression, Diff, DiffIndex};
use crate::cancel::Cancel;
use crate::container::ContainerInfo;
use crate::criu::store::{DirStore, ImageStore};
use crate::criu::Checkpoint;
use crate::model::Blob;
use crate::rootfs::{FileRoots, RootFs};

/// Largest config.dump or spec.dump read: a container's description takes
/// a few dozen KiB. A larger one is left out, with a warning.
pub const MAX_CONTAINER_DUMP_BYTES: u64 = 1 << 20;

/// Parses a byte count as `--max-spill` takes it: a number, optionally
/// followed by K, M, G or T (powers of 1024; "KiB", "MB" and the like mean
/// the same).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number, with K, M, G or T)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{text:?}: unknown unit (K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

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
    /// The files the container changed (its rootfs-diff.tar) that the
    /// checkpoint's processes mapped, if it has a diff.
    pub rootfs_diff: Option<DiffIndex>,
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
    /// The most bytes unpacked there (default: half of its free space).
    pub max_spill: Option<u64>,
    /// Which page data will be used: all of it to convert, only the
    /// command lines and environments to inspect.
    pub pages: PageUse,
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

/// Opens a checkpoint in any of the forms criu2core reads.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Input> {
    let kind = detect(path)?.with_context(|| {
        format!(
            "{}: not a checkpoint (no pstree.img or checkpoint/pstree.img, and not a tar/tar.gz/tar.zst archive)",
            path.display()
        )
    })?;
    let mut warnings = Vec::new();
    let (store, container, diff): (Arc<dyn ImageStore>, _, _) = match kind {
        InputKind::Images => (Arc::new(DirStore::open(path)?), None, None),
        InputKind::CheckpointDir => {
            let images = inside(path, "checkpoint", true)?
                .with_context(|| format!("{}: no checkpoint directory", path.display()))?;
            let rootfs_diff = match inside(path, "rootfs-diff.tar", false)? {
                Some(diff) => {
                    let len = fs::metadata(&diff)
                        .with_context(|| format!("{}: cannot stat", diff.display()))?
                        .len();
                    Some(Diff::Tar(Blob {
                        label: path.join("rootfs-diff.tar").display().to_string(),
                        path: diff,
                        offset: 0,
                        len,
                    }))
                }
                None => None,
            };
            let mut dump = |name: &str| -> Result<Option<Vec<u8>>> {
                let data = match inside(path, name, false)? {
                    Some(p) => read_small(&p),
                    None => Ok(None),
                };
                Ok(container_dump(name, data, &mut warnings))
            };
            let config = dump("config.dump")?;
            let spec = dump("spec.dump")?;
            let container = ContainerInfo::from_dumps(config.as_deref(), spec.as_deref());
            (Arc::new(DirStore::open(images)?), container, rootfs_diff)
        }
        InputKind::Archive(_) => {
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
                let config =
                    container_dump("config.dump", ar.read_member("config.dump"), &mut warnings);
                let spec = container_dump("spec.dump", ar.read_member("spec.dump"), &mut warnings);
                ContainerInfo::from_dumps(config.as_deref(), spec.as_deref())
            } else {
                None
            };
            let diff = ar.rootfs_diff().cloned();
            (Arc::new(ar), container, diff)
        }
    };
    let checkpoint = Checkpoint::open(store)?;
    let rootfs_diff = match diff {
        None => None,
        Some(Diff::Indexed(ix)) => Some(ix),
        Some(Diff::Tar(blob)) if archive::sniff_blob(&blob)? => {
            Some(archive::index_tar(&blob, &checkpoint.regular_file_keys())?)
        }
        Some(Diff::Tar(blob)) => {
            warnings.push(format!(
                "{}: not an uncompressed tar; the files in it are not used",
                blob.label
            ));
            None
        }
    };
    if let Some(d) = &rootfs_diff {
        warnings.extend(d.warnings.iter().cloned());
    }
    warnings.extend(checkpoint.warnings.iter().cloned());
    tracing::info!(path = %path.display(), kind = kind.name(), processes = checkpoint.tree.len(), "opened checkpoint");
    Ok(Input {
        path: path.to_path_buf(),
        kind,
        checkpoint,
        container,
        rootfs_diff,
        warnings,
    })
}

impl Input {
    /// Where file-backed pages can be read from: the container's changed
    /// files first, then `root`. `None` if neither exists.
    pub fn file_roots(&self, root: Option<&Path>) -> Result<Option<FileRoots>> {
        let mut roots = FileRoots::default();
        if let Some(diff) = &self.rootfs_diff {
            roots.diff = diff.files.clone();
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

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size(" 2 t "), Ok(2 << 40));
        assert!(parse_size("").is_err());
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
