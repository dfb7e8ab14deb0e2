//! Root filesystems (a sysroot, a container's rootfs, the files a container
//! changed) that supply the contents of file-backed pages a checkpoint does
//! not hold.
//!
//! Paths come from checkpoint images and are not trusted: they are resolved
//! component by component inside the root, symbolic links included, so no
//! path (`..`, absolute link targets, link loops) reaches outside it.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::model::{display_bytes, Blob};

/// Most symbolic links followed while resolving one path (as the kernel).
const MAX_LINKS: usize = 40;

/// A directory used as `/`.
#[derive(Debug, Clone)]
pub struct RootFs {
    dir: PathBuf,
}

impl RootFs {
    /// Uses `dir` as the root; it must be a directory.
    pub fn new(dir: impl AsRef<Path>) -> Result<RootFs> {
        let dir = fs::canonicalize(dir.as_ref())
            .with_context(|| format!("{}: cannot open root directory", dir.as_ref().display()))?;
        if !dir.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        Ok(RootFs { dir })
    }

    /// Resolves `path` as the process saw it (bytes, not necessarily
    /// UTF-8) to a regular file inside the root, with its size. `None` if
    /// there is no such file.
    pub fn resolve(&self, path: impl AsRef<[u8]>) -> Result<Option<(PathBuf, u64)>> {
        let path = path.as_ref();
        let mut todo: VecDeque<OsString> = components(Path::new(OsStr::from_bytes(path)));
        let mut done: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            let candidate = self.join(&done).join(&c);
            let meta = match fs::symlink_metadata(&candidate) {
                Ok(m) => m,
                Err(_) => return Ok(None),
            };
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    bail!(
                        "{}: too many symbolic links under {}",
                        display_bytes(path),
                        self.dir.display()
                    );
                }
                let target = fs::read_link(&candidate)
                    .with_context(|| format!("{}: cannot read link", candidate.display()))?;
                if target.is_absolute() {
                    done.clear();
                }
                for t in components(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            } else {
                done.push(c);
            }
        }
        let full = self.join(&done);
        match fs::metadata(&full) {
            Ok(m) if m.is_file() => Ok(Some((full, m.len()))),
            _ => Ok(None),
        }
    }

    fn join(&self, parts: &[OsString]) -> PathBuf {
        let mut p = self.dir.clone();
        p.extend(parts);
        p
    }
}

/// Where the files a process mapped can be found: first the files the
/// container changed (its rootfs-diff.tar, as it saw them), then a root
/// directory.
#[derive(Debug, Clone, Default)]
pub struct FileRoots {
    /// Files by clean relative path ([`clean_key`]), from a rootfs diff.
    pub diff: BTreeMap<Vec<u8>, Blob>,
    /// A root directory.
    pub dir: Option<RootFs>,
}

impl FileRoots {
    /// Whether there is nothing to look in.
    pub fn is_empty(&self) -> bool {
        self.diff.is_empty() && self.dir.is_none()
    }

    /// The contents of `path` as the process saw it, if any layer has it.
    pub fn resolve(&self, path: &[u8]) -> Result<Option<Blob>> {
        if let Some(b) = clean_key(path).and_then(|key| self.diff.get(&key)) {
            return Ok(Some(b.clone()));
        }
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        Ok(dir.resolve(path)?.map(|(full, len)| Blob {
            label: full.display().to_string(),
            path: full,
            offset: 0,
            len,
            remote: None,
        }))
    }
}

/// A path as the key a rootfs diff's members are found by: its normal
/// components joined by `/` (`/` and `.` vanish), or `None` if it has a
/// `..` (which no diff member is stored under).
pub fn clean_key(path: &[u8]) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(path.len());
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => {
                if !key.is_empty() {
                    key.push(b'/');
                }
                key.extend_from_slice(c);
            }
        }
    }
    Some(key)
}

/// The normal and `..` components of a path; `/` and `.` vanish.
fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_links_inside_the_root_only() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret"), b"outside").unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libc.so"), b"libc").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("/usr/lib/libc.so", root.join("abs")).unwrap();
        symlink("../../secret", root.join("escape")).unwrap();
        symlink("/../../secret", root.join("escape2")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = RootFs::new(&root).unwrap();
        let canon = std::fs::canonicalize(&root).unwrap();
        assert_eq!(
            r.resolve("/lib/libc.so").unwrap(),
            Some((canon.join("usr/lib/libc.so"), 4))
        );
        assert_eq!(r.resolve("/abs").unwrap().unwrap().1, 4);
        assert_eq!(
            r.resolve("/../../../usr/lib/libc.so").unwrap().unwrap().1,
            4
        );
        assert_eq!(r.resolve("/escape").unwrap(), None);
        assert_eq!(r.resolve("/escape2").unwrap(), None);
        assert_eq!(r.resolve("/usr/lib").unwrap(), None);
        assert_eq!(r.resolve("/missing").unwrap(), None);
        assert!(r
            .resolve("/loop")
            .unwrap_err()
            .to_string()
            .contains("too many symbolic links"));
    }
}
