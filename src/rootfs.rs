//! Root filesystems (a sysroot, a container's rootfs, the files a container
//! changed) that supply the contents of file-backed pages a checkpoint does
//! not hold.
//!
//! Paths come from checkpoint images and are not trusted: they are resolved
//! component by component inside the root, symbolic links included, so no
//! path (`..`, absolute link targets, link loops) reaches outside it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use crate::cancel::Cancel;
use crate::model::{display_bytes, Blob, FileStatus, Recorded};
use crate::oci::{LayerView, Lookup, Lookups, Resolver, Step, Tree, MAX_LINKS};
use crate::paths::{self, DotDot};
use crate::stdext::lock;

/// A directory used as `/`.
#[derive(Debug, Clone)]
pub struct RootFs {
    dir: PathBuf,
    resolver: Arc<Resolver>,
}

impl Tree for RootFs {
    fn lookup(&self, key: &[u8]) -> Lookup<'_> {
        let full = self.dir.join(OsStr::from_bytes(key));
        match fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&full) {
                Ok(t) => Lookup::Symlink(Cow::Owned(t.into_os_string().into_vec())),
                Err(_) => Lookup::Missing,
            },
            Ok(m) if m.is_dir() => Lookup::Dir,
            Ok(m) if m.is_file() => Lookup::File,
            Ok(_) => Lookup::Other,
            Err(_) => Lookup::Missing,
        }
    }

    /// The kernel walks every component of the path.
    fn cost(&self, key: &[u8]) -> u64 {
        1 + key.iter().filter(|&&b| b == b'/').count() as u64
    }
}

impl RootFs {
    /// Uses `dir` as the root; it must be a directory.
    pub fn new(dir: impl AsRef<Path>) -> Result<RootFs> {
        let dir = fs::canonicalize(dir.as_ref())
            .with_context(|| format!("{}: cannot open root directory", dir.as_ref().display()))?;
        if !dir.is_dir() {
            bail!("{}: not a directory", dir.display());
        }
        Ok(RootFs {
            dir,
            resolver: Arc::new(Resolver::new(Lookups::new(&Cancel::default()))),
        })
    }

    /// Resolving its paths spends `lookups` (shared with a layer view
    /// over it, which also bring its cancellation).
    pub fn with_lookups(mut self, lookups: Arc<Lookups>) -> RootFs {
        self.resolver = Arc::new(Resolver::new(lookups));
        self
    }

    /// Resolves `path` as the process saw it (bytes, not necessarily
    /// UTF-8) to a regular file inside the root, with its size. `None` if
    /// there is no such file, or more than 40 symbolic links on the way
    /// (then [`unresolved`](Self::unresolved) says so). An error when
    /// resolving paths has cost more than
    /// `MAX_RESOLVE_LOOKUPS`(crate::oci::MAX_RESOLVE_LOOKUPS) lookups
    /// ([`ErrorKind::Limit`](crate::ErrorKind::Limit)), or once cancelled.
    pub fn resolve(&self, path: impl AsRef<[u8]>) -> Result<Option<(PathBuf, u64)>> {
        let Some(full) = self.walk(path.as_ref())? else {
            return Ok(None);
        };
        match fs::metadata(&full) {
            Ok(m) if m.is_file() => Ok(Some((full, m.len()))),
            _ => Ok(None),
        }
    }

    /// Resolves `path` as [`resolve`](Self::resolve) does, to a directory
    /// inside the root: its path relative to the root.
    pub fn resolve_dir(&self, path: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let Some(full) = self.walk(path.as_ref())? else {
            return Ok(None);
        };
        if !fs::metadata(&full).is_ok_and(|m| m.is_dir()) {
            return Ok(None);
        }
        Ok(full
            .strip_prefix(&self.dir)
            .ok()
            .map(|r| r.as_os_str().as_bytes().to_vec()))
    }

    /// Why `path` resolved to nothing, if it was for too many links.
    pub fn unresolved(&self, path: impl AsRef<[u8]>) -> Option<String> {
        self.resolver.unresolved(path.as_ref())
    }

    /// Where `path` leads inside the root, every link followed inside it.
    fn walk(&self, path: &[u8]) -> Result<Option<PathBuf>> {
        let why = || {
            format!(
                "{}: more than {MAX_LINKS} symbolic links under {}",
                display_bytes(path),
                self.dir.display()
            )
        };
        Ok(match self.resolver.resolve(self, path, true, why)? {
            Step::At(key) => Some(self.dir.join(OsStr::from_bytes(&key))),
            Step::Missing | Step::Loop => None,
        })
    }
}

/// Where the files a process mapped are read from, the one place file
/// pages come from: a layered view (an image's layers with `--image`,
/// then the container's rootfs diff with its whiteouts and Podman's
/// `deleted.files`), and below it a root directory (`--root`). A path the
/// view lacks (never one it deletes from an image's layers: those are
/// gone) is looked up in the root directory, and the file it resolves to
/// there is taken from the view where the diff replaced it.
///
/// Files are found once and remembered; [`FileView::prefetch`] finds many
/// at once, copying those of compressed layers out in one pass per layer.
#[derive(Debug, Default)]
pub struct FileView {
    layers: Option<LayerView>,
    dir: Option<RootFs>,
    found: Mutex<HashMap<Vec<u8>, Option<Found>>>,
    checked: Mutex<HashMap<(Vec<u8>, Recorded), Checked>>,
}

/// Whether a file is the one recorded, and where it is if it is used.
type Checked = (FileStatus, Option<Found>);

/// A file of a view: where it is in the view (relative, links resolved)
/// and where its bytes are.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its path in the view, relative to its root, all links resolved.
    pub path: Vec<u8>,
    /// Its bytes.
    pub blob: Blob,
}

impl FileView {
    /// A view of `layers` over the directory `dir`.
    pub fn new(layers: Option<LayerView>, dir: Option<RootFs>) -> FileView {
        FileView {
            layers,
            dir,
            found: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Option<Found>>> {
        lock(&self.found)
    }

    /// Finds `paths` at once: of the layered view, the files of each
    /// compressed layer are copied out in one pass over it.
    pub fn prefetch<'p>(&self, paths: impl IntoIterator<Item = &'p [u8]>) -> Result<()> {
        let Some(layers) = &self.layers else {
            return Ok(());
        };
        let mut refs = Vec::new();
        let mut keys = Vec::new();
        for p in paths {
            if self.cache().contains_key(p) {
                continue;
            }
            if let Some(f) = layers.resolve(p)? {
                keys.push(p.to_vec());
                refs.push(f);
            }
        }
        let blobs = layers.materialize(&refs)?;
        let mut cache = self.cache();
        for ((key, f), blob) in keys.into_iter().zip(&refs).zip(blobs) {
            cache.insert(
                key,
                Some(Found {
                    path: f.path().to_vec(),
                    blob,
                }),
            );
        }
        Ok(())
    }

    /// Where `path` (as the process saw it) is and its contents, if they
    /// are the file `recorded` describes; whether they are, either way.
    /// Each path is checked once.
    pub fn checked(&self, path: &[u8], recorded: &Recorded) -> Result<(FileStatus, Option<Found>)> {
        let key = (path.to_vec(), recorded.clone());
        if let Some(known) = lock(&self.checked).get(&key) {
            return Ok(known.clone());
        }
        let outcome = match self.locate(path)? {
            None => (FileStatus::Missing, None),
            Some(found) => {
                let status = crate::verify::check(&found.blob, recorded)?;
                let used = !matches!(status, FileStatus::Mismatch { .. });
                (status, used.then_some(found))
            }
        };
        lock(&self.checked).insert(key, outcome.clone());
        Ok(outcome)
    }

    /// Where `path` (as the process saw it) is, and its contents.
    pub fn locate(&self, path: &[u8]) -> Result<Option<Found>> {
        if let Some(known) = self.cache().get(path) {
            return Ok(known.clone());
        }
        let found = self.find(path)?;
        self.cache().insert(path.to_vec(), found.clone());
        Ok(found)
    }

    fn in_layers(&self, path: &[u8]) -> Result<Option<Found>> {
        let Some(layers) = &self.layers else {
            return Ok(None);
        };
        let Some(f) = layers.resolve(path)? else {
            return Ok(None);
        };
        let blob = layers.materialize(std::slice::from_ref(&f))?.remove(0);
        Ok(Some(Found {
            path: f.path().to_vec(),
            blob,
        }))
    }

    fn find(&self, path: &[u8]) -> Result<Option<Found>> {
        if let Some(f) = self.in_layers(path)? {
            return Ok(Some(f));
        }
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let Some((full, len)) = dir.resolve(path)? else {
            return Ok(None);
        };
        let rel = full
            .strip_prefix(&dir.dir)
            .map(|r| r.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        // The file the root's links lead to, as the container changed it.
        if !rel.is_empty() && rel != path {
            if let Some(f) = self.in_layers(&rel)? {
                return Ok(Some(f));
            }
        }
        Ok(Some(Found {
            path: rel,
            blob: Blob {
                label: full.display().to_string(),
                path: full,
                offset: 0,
                len,
                remote: None,
            },
        }))
    }

    /// Why `path` (as the process saw it) was not found, when it was for
    /// too many symbolic links rather than nothing being there.
    pub fn unresolved(&self, path: &[u8]) -> Option<String> {
        let in_layers = self.layers.as_ref().and_then(|l| l.unresolved(path));
        in_layers.or_else(|| self.dir.as_ref().and_then(|d| d.unresolved(path)))
    }

    /// The directory `path` resolves to (relative to the root), if it is one.
    pub fn resolve_dir(&self, path: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(l) = &self.layers {
            if let Some(k) = l.resolve_dir(path)? {
                return Ok(Some(k));
            }
        }
        match &self.dir {
            Some(d) => d.resolve_dir(path),
            None => Ok(None),
        }
    }

    /// What `path` is in the view without following a last link: the
    /// target of a symbolic link, if it is one.
    pub fn read_link(&self, path: &[u8]) -> Option<Vec<u8>> {
        if let Some(t) = self.layers.as_ref().and_then(|l| l.read_link(path)) {
            return Some(t);
        }
        let dir = self.dir.as_ref()?;
        let key = clean_key(path)?;
        let p = dir.dir.join(OsStr::from_bytes(&key));
        fs::read_link(p)
            .ok()
            .map(|t| t.as_os_str().as_bytes().to_vec())
    }

    /// The names in the view's top directory that are symbolic links
    /// (`/lib -> usr/lib` on a merged-/usr system).
    pub fn top_links(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        if let Some(l) = &self.layers {
            names.extend(l.top_links());
        }
        if let Some(d) = &self.dir {
            if let Ok(rd) = fs::read_dir(&d.dir) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_symlink()) {
                        names.push(e.file_name().as_bytes().to_vec());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// A path as the key a rootfs diff's members are found by: its normal
/// components joined by `/` (`/` and `.` vanish), or `None` if it has a
/// `..` (which no diff member is stored under).
pub fn clean_key(path: &[u8]) -> Option<Vec<u8>> {
    paths::clean(path, DotDot::Reject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_costly_chain_of_links_is_followed_once_and_bounded() {
        // 38 links, each through 800 `d/..` pairs to the next: 30,000
        // lookups for each name from scratch.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("d")).unwrap();
        std::fs::create_dir_all(root.path().join("dir")).unwrap();
        for i in 0..38 {
            let next = if i == 37 {
                "dir".to_string()
            } else {
                format!("l{}", i + 1)
            };
            let target = format!("{}{next}", "d/../".repeat(800));
            symlink(target, root.path().join(format!("l{i}"))).unwrap();
        }
        for i in 0..200 {
            std::fs::write(root.path().join(format!("dir/f{i}")), b"x").unwrap();
        }
        let lookups = Lookups::new(&Cancel::default());
        let r = RootFs::new(root.path())
            .unwrap()
            .with_lookups(lookups.clone());
        let start = std::time::Instant::now();
        for i in 0..200 {
            assert!(r.resolve(format!("/l0/f{i}")).unwrap().is_some());
        }
        let spent = crate::oci::MAX_RESOLVE_LOOKUPS - lookups.left();
        assert!(spent < 40_000, "{spent} lookups");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        // Paths that each walk 500 directories down, each spelled anew
        // (remembering cannot help), run out of the input's budget: a
        // Limit.
        let deep = "a/".repeat(500);
        std::fs::create_dir_all(root.path().join(&deep)).unwrap();
        let err = (0..10_000)
            .map(|i| r.resolve(format!("/{deep}x{i}/../f")))
            .find_map(Result::err)
            .expect("never ran out");
        let err = crate::Error::new(err);
        assert_eq!(err.kind(), &crate::ErrorKind::Limit, "{err}");
        assert!(err.to_string().contains("(MAX_RESOLVE_LOOKUPS)"), "{err}");
        // Cancelled, it stops.
        let cancel = Cancel::new();
        let r = RootFs::new(root.path())
            .unwrap()
            .with_lookups(Lookups::new(&cancel));
        cancel.cancel(2);
        let err = crate::Error::new(r.resolve("/l0/f1").unwrap_err());
        assert_eq!(err.kind(), &crate::ErrorKind::Cancelled(2));
    }

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
        // A loop leads nowhere, and the root says why.
        assert_eq!(r.resolve("/loop").unwrap(), None);
        let why = r.unresolved("/loop").unwrap();
        assert!(
            why.contains("/loop: more than 40 symbolic links under"),
            "{why}"
        );
        assert_eq!(r.unresolved("/missing"), None);
    }
}
