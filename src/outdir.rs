//! The output directory. Everything convert and batch write — cores,
//! records, summary.json, temporary files — goes through [`OutDir`], which
//! joins only single, checked names to its own path ([`OutDir::join`]), so
//! nothing derived from an input's name can land outside it.
//!
//! An output directory may also be a prefix in object storage
//! (`s3://bucket/prefix/`): the same names under the same rules, each
//! entry an object (a "directory" is the prefix its objects share, and
//! exists while it holds one). Objects appear whole or not at all (a put,
//! or a multipart upload completed only once the core is written), so
//! there are no temporary names. Its lock (the batch module's, taken by every
//! writer of several inputs) is a lease object there, a file here.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tempfile::NamedTempFile;

use crate::remote::{self, Location};

/// Suffix of every temporary file written into an output directory; a
/// file named `.*.partial` there is debris of an interrupted run.
pub const PARTIAL: &str = ".partial";
/// The lock of an output directory: a file, or a lease object in object
/// storage (the batch module's lock takes it).
pub const LOCK: &str = ".criu2core.lock";
/// What names a temporary file as criu2core's: `criu2core-<pid>-` then a
/// unique part, before [`PARTIAL`].
pub const MARK: &str = "criu2core-";

/// The pid of the criu2core process that made the temporary file `name`,
/// if it is one of ours (`.<anything>criu2core-<pid>-<unique>.partial`).
pub fn is_ours(name: &str) -> Option<u32> {
    let body = name.strip_prefix('.')?.strip_suffix(PARTIAL)?;
    let (_, tail) = body.rsplit_once(MARK)?;
    let (pid, unique) = tail.split_once('-')?;
    if unique.is_empty() || unique.contains('/') {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// Whether process `pid` is running (on this machine, as /proc shows it);
/// true where that cannot be told (no /proc), so that nothing is removed.
pub(crate) fn alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Removes the temporary files of ours (see [`is_ours`]) in the local
/// directory `dir` whose process has ended: what a run killed before it
/// could clean up left (SIGKILL, a power cut). Files of running processes,
/// and anything else, are left alone. Gives the names removed.
pub(crate) fn remove_stale(dir: &Path) -> Vec<String> {
    let Ok(list) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in list.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        let Some(pid) = is_ours(&name) else {
            continue;
        };
        let stale = pid != std::process::id() && !alive(pid);
        if stale && e.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(e.path()).is_ok() {
            tracing::info!(dir = %dir.display(), file = %name, "removed a stale temporary file");
            removed.push(name);
        }
    }
    removed
}

/// Whether `name` can name an entry directly inside an output directory:
/// one path component, not `.` or `..`, without `/`, NUL or other control
/// characters, at most 255 bytes.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.chars().any(|c| c == '/' || c.is_control())
}

/// The first of the local directory `path` and its parents that does not
/// exist: what [`OutDir::create`] would make, and
/// [`OutDir::remove_made`] removes again; `None` where `path` exists or is
/// in object storage.
pub fn first_missing(path: &Path) -> Option<PathBuf> {
    if crate::blobio::url_of(path).is_some() {
        return None;
    }
    let abs = std::path::absolute(path).ok()?;
    let mut top = None;
    for a in abs.ancestors() {
        if fs::symlink_metadata(a).is_ok() {
            break;
        }
        top = Some(a.to_path_buf());
    }
    top
}

/// A directory criu2core writes into, by its canonical path (or its URL).
#[derive(Debug, Clone)]
pub struct OutDir {
    path: PathBuf,
    /// The same directory as the user named it, for what is printed.
    shown: PathBuf,
    /// The prefix in object storage, where it is one (`path` is then its
    /// URL, never used as a path).
    remote: Option<Location>,
}

impl PartialEq for OutDir {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for OutDir {}

impl OutDir {
    /// The directory at `path`, created (with its parents) if missing; or
    /// the prefix `path` names where it is an object-storage URL.
    pub fn create(path: &Path) -> Result<OutDir> {
        if let Some(url) = crate::blobio::url_of(path) {
            let loc = Location::parse(url)?;
            if loc.head()?.is_some() {
                bail!("{url}: an object, not a prefix to write into");
            }
            let url = PathBuf::from(loc.url());
            return Ok(OutDir {
                shown: url.clone(),
                path: url,
                remote: Some(loc),
            });
        }
        if fs::metadata(path).is_ok_and(|m| !m.is_dir()) {
            bail!(
                "{}: not a directory (a file is there); name a directory to write into",
                path.display()
            );
        }
        fs::create_dir_all(path).with_context(|| format!("{}: cannot create", path.display()))?;
        let canonical = fs::canonicalize(path)
            .with_context(|| format!("{}: cannot resolve", path.display()))?;
        if !canonical.is_dir() {
            bail!("{}: not a directory", path.display());
        }
        Ok(OutDir {
            path: canonical,
            shown: path.to_path_buf(),
            remote: None,
        })
    }

    /// The existing directory (or object-storage prefix) at `path`.
    pub fn open_existing(path: &Path) -> Result<OutDir> {
        if crate::blobio::url_of(path).is_none() && !path.is_dir() {
            bail!("{}: not a directory", path.display());
        }
        OutDir::create(path)
    }

    /// Its canonical path (for a prefix in object storage, its URL).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The object `name` of a prefix in object storage (checked as
    /// [`OutDir::join`] checks it).
    pub(crate) fn object(&self, name: &str) -> Result<Option<Location>> {
        self.join(name)?;
        Ok(self.remote.as_ref().map(|r| r.join(name)))
    }

    /// Entry `name` as the user would spell it (the directory as named on
    /// the command line, then `name`), for messages; not checked.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.shown.join(name)
    }

    /// The path of entry `name` of this directory. The one gate every write
    /// passes: a name that is not a single safe component (see
    /// [`is_safe_component`]) is refused.
    pub fn join(&self, name: &str) -> Result<PathBuf> {
        if !is_safe_component(name) {
            bail!(
                "{}: refusing to write {name:?}, which is not a single name inside it",
                self.path.display()
            );
        }
        Ok(self.path.join(name))
    }

    /// The real directory `name` inside this one, if there is one (a link
    /// to a directory is not one).
    pub fn existing_subdir(&self, name: &str) -> Result<Option<OutDir>> {
        let path = self.join(name)?;
        if let Some(obj) = self.object(name)? {
            return Ok(obj.has_objects()?.then(|| OutDir {
                path,
                shown: self.shown(name),
                remote: Some(obj),
            }));
        }
        Ok(fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_dir())
            .then(|| OutDir {
                path,
                shown: self.shown(name),
                remote: None,
            }))
    }

    /// The directory `name` inside this one, created if missing. A link or
    /// anything else but a real directory under that name is refused.
    pub fn subdir(&self, name: &str) -> Result<OutDir> {
        let path = self.join(name)?;
        if let Some(obj) = self.object(name)? {
            if obj.head()?.is_some() {
                bail!(
                    "{}: an object, not a prefix; refusing to write into it",
                    obj.url()
                );
            }
            return Ok(OutDir {
                path,
                shown: self.shown(name),
                remote: Some(obj),
            });
        }
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", path.display())),
        }
        match self.existing_subdir(name)? {
            Some(d) => Ok(d),
            None => bail!(
                "{}: not a directory (a link or a file); refusing to write into it",
                path.display()
            ),
        }
    }

    /// Undoes [`OutDir::create`] for a run that wrote nothing into a
    /// directory it made: removes the lock file, then this directory and
    /// its parents up to `top` (see [`first_missing`]) while they are
    /// empty.
    pub fn remove_made(&self, top: &Path) {
        if self.remote.is_some() {
            return;
        }
        let _ = fs::remove_file(self.path.join(LOCK));
        let top = match (top.parent(), top.file_name()) {
            (Some(parent), Some(name)) => fs::canonicalize(parent).map(|p| p.join(name)),
            _ => return,
        };
        let Ok(top) = top else {
            return;
        };
        let mut dir = self.path.as_path();
        while dir.starts_with(&top) && fs::remove_dir(dir).is_ok() {
            match dir.parent() {
                Some(parent) if dir != top => dir = parent,
                _ => break,
            }
        }
    }

    /// Whether it is a directory of a filesystem (not a prefix in object
    /// storage): one that holds temporary files.
    pub(crate) fn is_local(&self) -> bool {
        self.remote.is_none()
    }

    /// Whether nothing at all is named `name` here (not even a dangling link).
    pub fn is_free(&self, name: &str) -> Result<bool> {
        if let Some(obj) = self.object(name)? {
            return Ok(obj.head()?.is_none() && !obj.has_objects()?);
        }
        Ok(fs::symlink_metadata(self.join(name)?).is_err())
    }

    /// The size of the file (not a link) or object `name`, if there is one.
    pub fn file_size(&self, name: &str) -> Result<Option<u64>> {
        if let Some(obj) = self.object(name)? {
            return Ok(obj.head()?.map(|m| m.size));
        }
        Ok(fs::symlink_metadata(self.join(name)?)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len()))
    }

    /// A multipart upload to the object `name` of a prefix in object
    /// storage (`None` for a local directory): nothing appears under the
    /// name until it is finished.
    pub(crate) fn upload(&self, name: &str) -> Result<Option<remote::Upload>> {
        self.object(name)?.map(|o| o.upload()).transpose()
    }

    /// Names of the real directories (prefixes) here, sorted.
    pub fn subdirs(&self) -> Result<Vec<String>> {
        if let Some(r) = &self.remote {
            return Ok(r.list()?.dirs);
        }
        let mut names = Vec::new();
        let list = || format!("{}: cannot list", self.path.display());
        for e in fs::read_dir(&self.path).with_context(list)? {
            let e = e.with_context(list)?;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if let Ok(n) = e.file_name().into_string() {
                    names.push(n);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes this directory if it is empty (a prefix needs nothing:
    /// it is gone with its last object).
    pub fn remove_if_empty(&self) -> Result<()> {
        if self.remote.is_none() && self.is_empty()? {
            fs::remove_dir(&self.path)
                .with_context(|| format!("{}: cannot remove", self.path.display()))?;
        }
        Ok(())
    }

    /// A new temporary file `.<stem>.criu2core-<pid>-XXXXXX.partial` here
    /// (see [`is_ours`]), removed when dropped unless
    /// [`OutDir::persist`]ed, and by [`crate::Cancel::remove_temporaries`].
    pub fn temp_file(&self, stem: &str) -> Result<NamedTempFile> {
        let prefix = format!(".{stem}.{MARK}{}-", std::process::id());
        self.join(&format!("{prefix}{PARTIAL}"))?;
        if self.remote.is_some() {
            bail!(
                "{}: no temporary files in object storage",
                self.path.display()
            );
        }
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(PARTIAL)
            .tempfile_in(&self.path)
            .with_context(|| format!("{}: cannot create a temporary file", self.path.display()))?;
        crate::cancel::track(tmp.path());
        Ok(tmp)
    }

    /// Removes the temporary files of criu2core runs that have ended (see
    /// [`remove_stale`]); gives their names.
    pub fn remove_stale_partials(&self) -> Vec<String> {
        if self.remote.is_some() {
            return Vec::new();
        }
        remove_stale(&self.path)
    }

    /// Renames a complete temporary file of this directory to `name`; an
    /// existing `name` is replaced only if `replace`.
    pub fn persist(&self, tmp: NamedTempFile, name: &str, replace: bool) -> Result<PathBuf> {
        let path = self.join(name)?;
        crate::cancel::untrack(tmp.path());
        if replace {
            tmp.persist(&path)
                .map_err(|e| e.error)
                .with_context(|| format!("cannot rename into {}", path.display()))?;
        } else {
            tmp.persist_noclobber(&path)
                .map_err(|e| e.error)
                .with_context(|| {
                    format!(
                        "cannot rename into {} (use --force to replace it)",
                        path.display()
                    )
                })?;
        }
        Ok(path)
    }

    /// Writes `bytes` to `name` (mode 0644: summaries and records, not
    /// memory) through a temporary file, replacing what was there only once
    /// the new contents are complete.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(obj) = self.object(name)? {
            obj.put(bytes.to_vec())?;
            return self.join(name);
        }
        let mut tmp = self.temp_file(name)?;
        tmp.as_file_mut()
            .write_all(bytes)
            .and_then(|()| {
                tmp.as_file()
                    .set_permissions(fs::Permissions::from_mode(0o644))
            })
            .with_context(|| format!("{}: cannot write", tmp.path().display()))?;
        self.persist(tmp, name, true)
    }

    /// The contents of the regular file `name` (not a link), if there is
    /// one of at most `limit` bytes.
    pub fn read_file(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        if let Some(obj) = self.object(name)? {
            return obj.read_all(limit);
        }
        let path = self.join(name)?;
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let mut buf = Vec::new();
        File::open(&path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut buf))
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Ok((buf.len() as u64 <= limit).then_some(buf))
    }

    /// Removes the file (or link) `name`, if there is one.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        if let Some(obj) = self.object(name)? {
            return obj.delete();
        }
        let path = self.join(name)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("{}: cannot remove", path.display()))
            }
            _ => Ok(()),
        }
    }

    /// Names of the entries here that are regular files, sorted.
    pub fn files(&self) -> Result<Vec<String>> {
        if let Some(r) = &self.remote {
            return Ok(r.list()?.objects.into_iter().map(|(n, _)| n).collect());
        }
        let mut names = Vec::new();
        let list = || format!("{}: cannot list", self.path.display());
        for e in fs::read_dir(&self.path).with_context(list)? {
            let e = e.with_context(list)?;
            if e.file_type().is_ok_and(|t| t.is_file()) {
                if let Ok(n) = e.file_name().into_string() {
                    names.push(n);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether the directory has no entries at all.
    pub fn is_empty(&self) -> Result<bool> {
        if let Some(r) = &self.remote {
            return Ok(!r.has_objects()?);
        }
        Ok(fs::read_dir(&self.path)
            .with_context(|| format!("{}: cannot list", self.path.display()))?
            .next()
            .is_none())
    }

    /// Removes the temporary files an interrupted run left here: every
    /// `.*.partial`, or with `of`, only those of [`OutDir::temp_file`]`(of)`;
    /// returns their names. Call it only while holding the lock.
    pub fn remove_partials(&self, of: Option<&str>) -> Result<Vec<String>> {
        if self.remote.is_some() {
            // Objects have no temporary names: an unfinished upload is
            // aborted, and one a killed run left is no object.
            return Ok(Vec::new());
        }
        let prefix = match of {
            Some(stem) => format!(".{stem}."),
            None => ".".into(),
        };
        let stale: Vec<String> = self
            .files()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix) && n.ends_with(PARTIAL))
            .collect();
        for n in &stale {
            self.remove_file(n)?;
            tracing::info!(dir = %self.path.display(), file = %n, "removed a stale temporary file");
        }
        Ok(stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_safe_names_are_joined() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(&dir.path().join("out")).unwrap();
        for bad in [
            "", ".", "..", "a/b", "/etc", "a\0b", "a\nb", "\x1b[31m", "a\u{85}",
        ] {
            assert!(out.join(bad).is_err(), "{bad:?}");
            assert!(out.subdir(bad).is_err(), "{bad:?}");
            assert!(out.write_file(bad, b"x").is_err(), "{bad:?}");
        }
        assert!(out.join(&"x".repeat(256)).is_err());
        for good in ["...", "core.1", "images-1a2b3c4d", "_..", "ünï"] {
            assert_eq!(out.join(good).unwrap(), out.path().join(good));
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn links_are_not_directories_to_write_into() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(&dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path(), out.path().join("link")).unwrap();
        assert!(out.subdir("link").is_err());
        assert!(out.existing_subdir("link").unwrap().is_none());
        assert!(!out.is_free("link").unwrap());
        let sub = out.subdir("sub").unwrap();
        assert_eq!(out.subdir("sub").unwrap(), sub);
        assert!(sub.is_empty().unwrap());
    }

    #[test]
    fn files_are_replaced_whole_and_partials_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::create(dir.path()).unwrap();
        out.write_file("summary.json", b"one").unwrap();
        out.write_file("summary.json", b"two").unwrap();
        assert_eq!(out.read_file("summary.json", 16).unwrap().unwrap(), b"two");
        assert_eq!(out.read_file("summary.json", 2).unwrap(), None);
        let kept = out
            .temp_file("core.7")
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        fs::write(out.path().join(".notes.partial.txt"), b"").unwrap();
        let summary = out
            .temp_file("summary.json")
            .unwrap()
            .into_temp_path()
            .keep()
            .unwrap();
        assert_eq!(out.remove_partials(Some("summary.json")).unwrap().len(), 1);
        assert!(kept.exists() && !summary.exists());
        let swept = out.remove_partials(None).unwrap();
        assert_eq!(swept.len(), 1);
        assert!(!kept.exists());
        assert_eq!(out.files().unwrap(), [".notes.partial.txt", "summary.json"]);
    }
}
