//! `--sysroot DIR`: the files a core's NT_FILE names (the executable, its
//! shared libraries, the dynamic loader), written under DIR at their paths
//! from the file view (`--image` or `--root`), so that `gdb -iex 'set
//! sysroot DIR' DIR/EXE CORE` needs nothing else.
//!
//! Besides each file at its path as the process saw it: the names gdb asks
//! for, which the dynamic loader's link map holds ([`crate::linkmap`]:
//! `/lib/x86_64-linux-gnu/libtinfo.so.6` where the process mapped
//! `libtinfo.so.6.4`), the program interpreter the executable's PT_INTERP
//! names, and the view's symbolic links on the way to them and in the top
//! directory (`/lib -> usr/lib` on a merged-/usr system), made relative so
//! they stay inside DIR.
//!
//! A file's bytes are written once: another name the view has for the
//! same file is a symbolic link where the view's is one, else a hard link
//! to the first copy, inside DIR. A copy is a reflink of the bytes where
//! the filesystem allows (FICLONE), else a copy (copy_file_range), made
//! with mode 0644 (never a link to the source, nor its setuid bits). What
//! a sysroot holds is bounded ([`Sysroot::create`]); past the bound, and
//! once cancelled, nothing more is written.
//!
//! Writing never leaves DIR: paths come from checkpoints and are only keys
//! (bytes, cleaned: no `..`, no empty or `.` components); every directory
//! is opened below DIR's own descriptor with `O_NOFOLLOW`, so a symbolic
//! link in DIR that criu2core did not make is refused, not followed; each
//! file is made under a temporary name (`.criu2core-PID-N.partial`; those
//! of runs that have ended are removed from each directory written into)
//! and renamed into place. A path DIR already holds with other contents is
//! left alone, with a warning.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::blobio::BlobReader;
use crate::cancel::Cancel;
use crate::error::{fault, ErrorKind};
use crate::model::{Blob, FileContents, FileInfo, FileStatus, MappingKind, Process};
use crate::rootfs::{clean_key, FileView};
use crate::stdext::{lock, read_full};
use crate::text::escape_bytes;
use crate::verify::Elf;
use crate::warning::{Warning, WarningKind};

/// Longest PT_INTERP path read (Linux's PATH_MAX).
const MAX_INTERP: u64 = 4096;

/// Why a file gdb needs is not written: the view has nothing at its path.
const NOT_FOUND: &str = "not in the image or root; gdb will lack it";

/// Most program headers read to find PT_INTERP.
const MAX_PHDRS: u64 = 4096;
/// Bytes copied between checks for cancellation.
const COPY_CHUNK: usize = 64 << 20;

/// A sysroot being written.
pub(crate) struct Sysroot {
    dir: PathBuf,
    fd: OwnedFd,
    cancel: Cancel,
    /// The most bytes of copies it may hold.
    budget: u64,
    state: Mutex<State>,
}

/// What a sysroot holds so far.
#[derive(Default)]
struct State {
    /// Paths (as processes saw them) written or found written.
    done: HashSet<Vec<u8>>,
    /// Links made.
    links: HashSet<Vec<u8>>,
    /// Files placed (copied, linked, or found there with the bytes).
    placed: HashMap<Vec<u8>, Source>,
    /// Each source's first copy, by where its bytes are.
    copies: HashMap<Source, Vec<u8>>,
    /// Bytes of the copies written.
    written: u64,
    /// Directories cleared of stale temporary files.
    swept: HashSet<Vec<u8>>,
    /// Whether the bound was met: nothing more is written.
    full: bool,
}

/// Where a file's bytes are: two names with the same source are one file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    File {
        dev: u64,
        ino: u64,
        offset: u64,
        len: u64,
    },
    Object {
        url: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl Source {
    fn of(blob: &Blob) -> Result<Source> {
        if blob.remote.is_some() {
            return Ok(Source::Object {
                url: blob.path.clone(),
                offset: blob.offset,
                len: blob.len,
            });
        }
        let m = std::fs::metadata(&blob.path)
            .with_context(|| format!("{}: cannot open", blob.label))?;
        Ok(Source::File {
            dev: m.dev(),
            ino: m.ino(),
            offset: blob.offset,
            len: blob.len,
        })
    }
}

/// Temporary names in the sysroot, unique within the process.
static TEMP: AtomicU64 = AtomicU64::new(0);

impl Sysroot {
    /// Makes `dir` (and its parents) if missing, and opens it; with `sub`,
    /// the directory `sub` (one name) in it, made below `dir`'s own
    /// descriptor and never through a link. Copies are written until they
    /// hold `budget` bytes (default: half of the space free there).
    pub(crate) fn create(
        dir: &Path,
        sub: Option<&str>,
        budget: Option<u64>,
        cancel: &Cancel,
    ) -> Result<Sysroot> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the sysroot", dir.display()))?;
        let mut dir = std::fs::canonicalize(dir)
            .with_context(|| format!("{}: cannot open the sysroot", dir.display()))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut fd = rfs::open(&dir, flags, Mode::empty())
            .with_context(|| format!("{}: cannot open the sysroot", dir.display()))?;
        if let Some(sub) = sub {
            if !crate::outdir::is_safe_component(sub) {
                bail!("{}: {sub:?} is not one name", dir.display());
            }
            match rfs::mkdirat(&fd, sub, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("{}: cannot make {sub}", dir.display()))
                }
            }
            fd = rfs::openat(&fd, sub, flags | OFlags::NOFOLLOW, Mode::empty()).with_context(
                || {
                    format!(
                        "{}: {sub} is not a directory (a link is not followed)",
                        dir.display()
                    )
                },
            )?;
            dir = dir.join(sub);
        }
        let budget = match budget {
            Some(b) => b,
            None => {
                let st = rfs::fstatvfs(&fd)
                    .with_context(|| format!("{}: cannot read the free space", dir.display()))?;
                st.f_bavail.saturating_mul(st.f_frsize) / 2
            }
        };
        Ok(Sysroot {
            dir,
            fd,
            cancel: cancel.clone(),
            budget,
            state: Mutex::new(State::default()),
        })
    }

    /// The directory (canonical).
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes the files process `p` maps, its executable, the names its
    /// link map holds and its program interpreter: those deleted while
    /// open from the checkpoint, the others from `view` where they are the
    /// files the checkpoint recorded. Gives what could not be written.
    pub(crate) fn add_process(&self, p: &Process, view: Option<&FileView>) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let mut st = lock(&self.state);
        if st.full {
            return warnings;
        }
        let infos: HashMap<&[u8], &FileInfo> =
            p.files.iter().map(|f| (f.path.as_slice(), f)).collect();
        let paths = wanted(p, view, &infos, &mut warnings);
        let mut unsought = false;
        for path in paths {
            if let Err(e) = self.cancel.check() {
                warnings.push(Warning::new(
                    WarningKind::Cancelled,
                    format!("--sysroot: {e}; the files after it are not written"),
                ));
                return warnings;
            }
            let info = infos.get(path.as_slice());
            let not_found = || (WarningKind::FileNotFound, anyhow::anyhow!(NOT_FOUND));
            let not_written = |e| (WarningKind::NotWritten, e);
            let done = match (info.map(|f| (&f.status, &f.contents)), view) {
                (Some((FileStatus::Ghost, Some(c))), _) => {
                    self.add_contents(&mut st, p, &path, c).map_err(not_written)
                }
                (Some((FileStatus::Mismatch { why }, _)), _) => Err((
                    WarningKind::FileMismatch,
                    anyhow::anyhow!("not the file the checkpoint recorded ({why}); not copied"),
                )),
                (Some((FileStatus::Missing, _)), Some(_)) => Err(not_found()),
                (_, Some(view)) => match self.add_file(&mut st, view, &path) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(not_found()),
                    Err(e) => Err(not_written(e)),
                },
                (_, None) => {
                    unsought = true;
                    Ok(())
                }
            };
            if let Err((kind, e)) = done {
                let stop = crate::error::kind_of(&e) == ErrorKind::Limit;
                let kind = if stop { WarningKind::Limit } else { kind };
                warnings.push(
                    Warning::new(kind, format!("--sysroot: {}: {e:#}", escape_bytes(&path)))
                        .about(escape_bytes(&path)),
                );
                if stop {
                    st.full = true;
                    return warnings;
                }
            }
        }
        if unsought {
            warnings.push(Warning::new(
                WarningKind::NoRoot,
                format!(
                    "--sysroot {}: no --image or --root to take the files the checkpoint does not hold from",
                    escape_bytes(self.dir.as_os_str().as_bytes())
                ),
            ));
        }
        if let Some(view) = view {
            if let Err(e) = self.top_links(&mut st, view) {
                warnings.push(Warning::new(
                    WarningKind::NotWritten,
                    format!("--sysroot: {e:#}"),
                ));
            }
        }
        warnings
    }

    /// Writes contents the checkpoint holds (a file deleted while open) at
    /// `path`.
    fn add_contents(
        &self,
        st: &mut State,
        p: &Process,
        path: &[u8],
        c: &FileContents,
    ) -> Result<()> {
        let key = clean_key(path).with_context(|| "a path with '..'")?;
        if st.done.contains(&key) {
            return Ok(());
        }
        let pieces = c
            .pieces
            .iter()
            .map(|piece| {
                let b = p
                    .blob(piece.blob)
                    .context("a file piece of an unknown blob")?;
                let window = b.part(b.label.clone(), piece.blob_offset, piece.len);
                Ok((piece.offset, window))
            })
            .collect::<Result<Vec<_>>>()?;
        match &pieces[..] {
            [(0, whole)] if whole.len == c.size => self.write(st, &key, whole)?,
            _ => self.write_pieces(st, &key, &pieces, c.size)?,
        }
        st.done.insert(key);
        Ok(())
    }

    /// Writes a file of `size` bytes at `key` (clean, relative) below DIR
    /// from `pieces` (offset in the file, bytes); the rest are holes.
    fn write_pieces(
        &self,
        st: &mut State,
        key: &[u8],
        pieces: &[(u64, Blob)],
        size: u64,
    ) -> Result<()> {
        let (parent, base) = split(key);
        if base.is_empty() {
            bail!("no file name");
        }
        let dir = self.open_dir(st, parent)?;
        let name = OsStr::from_bytes(base);
        if rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            bail!("{} already exists; left alone", self.shown(key));
        }
        let bytes: u64 = pieces.iter().map(|(_, b)| b.len).sum();
        self.within_budget(st, key, bytes)?;
        let done = self.copy_in(&dir, parent, name, &|out| {
            pieces
                .iter()
                .try_for_each(|(at, blob)| copy_from(blob, 0, out, *at, &self.cancel))?;
            rfs::ftruncate(out, size).context("cannot set its size")
        });
        done.with_context(|| format!("cannot write {}", self.shown(key)))?;
        st.written += bytes;
        Ok(())
    }

    /// Refuses `bytes` more for `key` where they would take the sysroot
    /// past its bound.
    fn within_budget(&self, st: &State, key: &[u8], bytes: u64) -> Result<()> {
        if st.written.saturating_add(bytes) <= self.budget {
            return Ok(());
        }
        Err(fault(
            ErrorKind::Limit,
            format!(
                "{} ({bytes} bytes) would take the sysroot past {} bytes (half of the space free there when it was opened); it and the files after it are not written",
                self.shown(key),
                self.budget
            ),
        ))
    }

    /// Writes the file at `path` (as the process saw it) from `view`: at
    /// the path it resolves to, and, where that differs, at `path` itself
    /// (with the view's links on the way made in DIR): a symbolic link
    /// where the view has one, else a hard link to the first copy.
    fn add_file(&self, st: &mut State, view: &FileView, path: &[u8]) -> Result<bool> {
        let key = clean_key(path).with_context(|| "a path with '..'")?;
        if st.done.contains(&key) {
            return Ok(true);
        }
        let Some(found) = view.locate(path)? else {
            return Ok(false);
        };
        self.write(st, &found.path, &found.blob)?;
        if found.path != key {
            let (parent, base) = split(&key);
            let dir = self.mirror_links(st, view, parent)?;
            let at = join(&dir, base);
            if at != found.path {
                if view.read_link(&at).is_some() {
                    let (at_dir, _) = split(&at);
                    self.link(st, &at, &relative(at_dir, &found.path))?;
                } else {
                    self.write(st, &at, &found.blob)?;
                }
            }
        }
        st.done.insert(key);
        Ok(true)
    }

    /// [`Sysroot::add_file`] alone, then the top directory's links (for
    /// the fuzz targets).
    #[cfg(feature = "testkit")]
    pub(crate) fn add_path(&self, view: &FileView, path: &[u8]) -> Result<()> {
        let mut st = lock(&self.state);
        if !self.add_file(&mut st, view, path)? {
            bail!("{NOT_FOUND}");
        }
        self.top_links(&mut st, view)
    }

    /// Walks `dir` (a clean path) in the view, making in DIR each symbolic
    /// link met on the way, as a relative link to where the view resolves
    /// it; gives the directory `dir` resolves to.
    fn mirror_links(&self, st: &mut State, view: &FileView, dir: &[u8]) -> Result<Vec<u8>> {
        let mut at: Vec<u8> = Vec::new();
        let mut hops = 0;
        for c in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let next = join(&at, c);
            if view.read_link(&next).is_some() {
                hops += 1;
                if hops > 40 {
                    bail!("too many symbolic links");
                }
                let target = view
                    .resolve_dir(&next)?
                    .context("a link that leads to no directory")?;
                self.link(st, &next, &relative(&at, &target))?;
                at = target;
            } else {
                at = next;
            }
        }
        Ok(at)
    }

    /// Makes in DIR each link of the view's top directory that leads to a
    /// directory holding a file written (`/lib -> usr/lib`), for the
    /// library paths the dynamic loader used.
    fn top_links(&self, st: &mut State, view: &FileView) -> Result<()> {
        let written: Vec<Vec<u8>> = st.done.iter().cloned().collect();
        for name in view.top_links() {
            let Ok(Some(target)) = view.resolve_dir(&name) else {
                continue;
            };
            let under = |w: &Vec<u8>| {
                target.is_empty() || (w.starts_with(&target) && w.get(target.len()) == Some(&b'/'))
            };
            let leads = written.iter().any(|w| {
                under(w)
                    || view
                        .locate(w)
                        .ok()
                        .flatten()
                        .is_some_and(|f| under(&f.path))
            });
            if leads && !target.is_empty() {
                self.link(st, &name, &relative(b"", &target))?;
            }
        }
        Ok(())
    }

    /// Opens the directory `dir` (clean, relative) below DIR, making what
    /// is missing; a symbolic link on the way is refused. The first time
    /// in a run, temporary files of runs that have ended are removed there.
    fn open_dir(&self, st: &mut State, dir: &[u8]) -> Result<OwnedFd> {
        let mut fd = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for c in dir.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let name = OsStr::from_bytes(c);
            match rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot make {}", escape_bytes(dir)))
                }
            }
            fd = rfs::openat(
                &fd,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR => anyhow::anyhow!(
                    "{} in the sysroot is not a directory (a symbolic link there is not followed)",
                    escape_bytes(c)
                ),
                e => anyhow::Error::new(e),
            })
            .with_context(|| format!("cannot open {}", escape_bytes(dir)))?;
        }
        if st.swept.insert(dir.to_vec()) {
            sweep(&fd);
        }
        Ok(fd)
    }

    /// Makes the symbolic link `at` (clean, relative) pointing to `target`
    /// (relative), unless DIR has something there already.
    fn link(&self, st: &mut State, at: &[u8], target: &[u8]) -> Result<()> {
        if st.links.contains(at) {
            return Ok(());
        }
        let (parent, base) = split(at);
        let dir = self.open_dir(st, parent)?;
        match rfs::symlinkat(OsStr::from_bytes(target), &dir, OsStr::from_bytes(base)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot make the link {}", escape_bytes(at)))
            }
        }
        st.links.insert(at.to_vec());
        Ok(())
    }

    /// `key` below DIR, for messages.
    fn shown(&self, key: &[u8]) -> String {
        escape_bytes(self.dir.join(OsStr::from_bytes(key)).as_os_str().as_bytes()).into_owned()
    }

    /// Writes `blob` at `key` (clean, relative) below DIR: a hard link to
    /// the copy of the same source made before, else a new copy.
    fn write(&self, st: &mut State, key: &[u8], blob: &Blob) -> Result<()> {
        let source = Source::of(blob)?;
        match st.placed.get(key) {
            Some(s) if *s == source => return Ok(()),
            Some(_) => bail!(
                "{} already holds a different file; left alone",
                self.shown(key)
            ),
            None => {}
        }
        let (parent, base) = split(key);
        if base.is_empty() {
            bail!("no file name");
        }
        let dir = self.open_dir(st, parent)?;
        let name = OsStr::from_bytes(base);
        match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => {
                let regular = rfs::FileType::from_raw_mode(s.st_mode) == rfs::FileType::RegularFile;
                if regular && same_contents(&dir, name, blob)? {
                    st.copies
                        .entry(source.clone())
                        .or_insert_with(|| key.to_vec());
                    st.placed.insert(key.to_vec(), source);
                    return Ok(());
                }
                bail!(
                    "{} already holds a different file; left alone",
                    self.shown(key)
                );
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e).context("cannot look"),
        }
        if let Some(first) = st.copies.get(&source).cloned() {
            let (first_parent, first_base) = split(&first);
            let from = self.open_dir(st, first_parent)?;
            rfs::linkat(
                &from,
                OsStr::from_bytes(first_base),
                &dir,
                name,
                AtFlags::empty(),
            )
            .with_context(|| {
                format!("cannot link {} to {}", self.shown(key), self.shown(&first))
            })?;
            st.placed.insert(key.to_vec(), source);
            return Ok(());
        }
        self.within_budget(st, key, blob.len)?;
        self.copy_in(&dir, parent, name, &|out| self.fill(out, blob))
            .with_context(|| format!("cannot write {}", self.shown(key)))?;
        st.written += blob.len;
        st.copies.insert(source.clone(), key.to_vec());
        st.placed.insert(key.to_vec(), source);
        Ok(())
    }

    /// Makes `name` of `dir` a new file that `fill` writes, through a
    /// temporary file renamed into place (removed if anything fails).
    fn copy_in(
        &self,
        dir: &OwnedFd,
        parent: &[u8],
        name: &OsStr,
        fill: &dyn Fn(&OwnedFd) -> Result<()>,
    ) -> Result<()> {
        let temp = format!(
            ".{}{}-{}.partial",
            crate::outdir::MARK,
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        );
        let out = rfs::openat(
            dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .context("cannot create a file")?;
        // Where it is (no link on the way), for a second signal to remove.
        let tracked = self.dir.join(OsStr::from_bytes(parent)).join(&temp);
        crate::cancel::track(&tracked);
        let done = fill(&out).and_then(|()| {
            rfs::renameat(dir, temp.as_str(), dir, name).context("cannot rename into place")
        });
        if done.is_err() {
            let _ = rfs::unlinkat(dir, temp.as_str(), AtFlags::empty());
        }
        crate::cancel::untrack(&tracked);
        done
    }

    /// Fills `out` with `blob`'s bytes: an object's through a reader; a
    /// local file's cloned where the filesystem can, else copied in the
    /// kernel. Cancellation is checked between chunks.
    fn fill(&self, out: &OwnedFd, blob: &Blob) -> Result<()> {
        if blob.remote.is_some() {
            return copy_from(blob, 0, out, 0, &self.cancel);
        }
        let src = File::open(&blob.path).with_context(|| format!("{}: cannot open", blob.label))?;
        let whole = blob.offset == 0 && src.metadata().map(|m| m.len()).ok() == Some(blob.len);
        if whole && rfs::ioctl_ficlone(out, &src).is_ok() {
            return Ok(());
        }
        copy(&src, blob, out, &self.cancel)
    }
}

/// Removes from the directory `dir` the temporary files of criu2core runs
/// that have ended (see [`crate::outdir::is_ours`]).
fn sweep(dir: &OwnedFd) {
    let Ok(mut list) = rfs::Dir::read_from(dir) else {
        return;
    };
    let mut stale = Vec::new();
    while let Some(Ok(e)) = list.read() {
        let Ok(name) = e.file_name().to_str() else {
            continue;
        };
        if e.file_type() != rfs::FileType::RegularFile {
            continue;
        }
        if let Some(pid) = crate::outdir::is_ours(name) {
            if pid != std::process::id() && !crate::outdir::alive(pid) {
                stale.push(name.to_string());
            }
        }
    }
    for name in stale {
        if rfs::unlinkat(dir, name.as_str(), AtFlags::empty()).is_ok() {
            tracing::info!(file = %name, "removed a stale temporary file from the sysroot");
        }
    }
}

/// Copies `blob`'s bytes from `src` into `out`: copy_file_range, else
/// through a buffer; stops once `cancel` is set.
fn copy(src: &File, blob: &Blob, out: &OwnedFd, cancel: &Cancel) -> Result<()> {
    let mut off_in = blob.offset;
    let mut off_out = 0u64;
    let mut left = blob.len;
    while left > 0 {
        cancel.check()?;
        let want = left.min(COPY_CHUNK as u64) as usize;
        match rfs::copy_file_range(src, Some(&mut off_in), out, Some(&mut off_out), want) {
            Ok(0) => bail!("{}: ends early", blob.label),
            Ok(n) => left -= n as u64,
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                return copy_from(blob, off_in - blob.offset, out, off_out, cancel);
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot copy", blob.label)),
        }
    }
    Ok(())
}

/// Copies `blob`'s bytes from `from` (within it) to its end into `out` at
/// `off_out`, through a reader (an object's, or a file's where the kernel
/// cannot copy) that stops once `cancel` is set.
fn copy_from(blob: &Blob, from: u64, out: &OwnedFd, off_out: u64, cancel: &Cancel) -> Result<()> {
    let mut r = BlobReader::open(blob).with_context(|| format!("{}: cannot open", blob.label))?;
    r.seek(SeekFrom::Start(from))?;
    let mut w = File::from(out.as_fd().try_clone_to_owned()?);
    w.seek(SeekFrom::Start(off_out))?;
    let n = io::copy(&mut cancel.reader(r), &mut w)?;
    if n != blob.len - from {
        bail!("{}: ends early", blob.label);
    }
    Ok(())
}

/// Whether the file `name` of `dir` holds exactly `blob`'s bytes.
fn same_contents(dir: &OwnedFd, name: &OsStr, blob: &Blob) -> Result<bool> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut have = File::from(fd);
    if have.metadata()?.len() != blob.len {
        return Ok(false);
    }
    let mut want = BlobReader::open(blob)?;
    let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = have.read(&mut a)?;
        if n == 0 {
            return Ok(true);
        }
        want.read_exact(&mut b[..n])?;
        if a[..n] != b[..n] {
            return Ok(false);
        }
    }
}

/// The paths to write for process `p`: the files it maps and its
/// executable (deleted ones by the name they were opened by), then the
/// names gdb will ask for — those the dynamic loader gave, and the program
/// interpreter — each only where it is a file written under another name
/// (never one the checkpoint did not record). Each once.
fn wanted(
    p: &Process,
    view: Option<&FileView>,
    infos: &HashMap<&[u8], &FileInfo>,
    warnings: &mut Vec<Warning>,
) -> Vec<Vec<u8>> {
    let mut paths: Vec<Vec<u8>> = p
        .mappings
        .iter()
        .filter(|m| m.kind == MappingKind::File)
        .filter_map(|m| m.file.as_ref().map(|f| f.path.clone()))
        .chain(p.exe.clone())
        .map(|path| match path.strip_suffix(b" (deleted)") {
            Some(name) => name.to_vec(),
            None => path,
        })
        .collect();
    paths.sort();
    paths.dedup();
    let mut more: Vec<Vec<u8>> = match crate::linkmap::names(p) {
        Ok(names) => names.into_iter().filter(|n| n.starts_with(b"/")).collect(),
        Err(e) => {
            warnings.push(Warning::new(
                WarningKind::Unreadable,
                format!(
                    "--sysroot: the dynamic loader's list of libraries: {e:#}; only the mapped paths are written"
                ),
            ));
            Vec::new()
        }
    };
    if let Some(view) = view {
        more.extend(exe_blob(p, view).and_then(|b| interpreter(&b).ok().flatten()));
        let used: HashSet<Vec<u8>> = paths
            .iter()
            .filter(|path| {
                infos
                    .get(path.as_slice())
                    .is_some_and(|f| f.contents.is_some())
            })
            .filter_map(|path| view.locate(path).ok().flatten().map(|f| f.path))
            .collect();
        more.retain(|n| {
            infos.contains_key(n.as_slice())
                || view
                    .locate(n)
                    .ok()
                    .flatten()
                    .is_some_and(|f| used.contains(&f.path))
        });
    }
    let mut seen = HashSet::new();
    paths.extend(more);
    paths.retain(|p| seen.insert(p.clone()));
    paths
}

/// The bytes of `p`'s executable: kept in the checkpoint (whole) if it
/// was deleted, else from `view` if it is the file the checkpoint
/// recorded.
fn exe_blob(p: &Process, view: &FileView) -> Option<Blob> {
    let exe = p.exe.as_deref()?;
    let name = exe.strip_suffix(b" (deleted)").unwrap_or(exe);
    match p.files.iter().find(|f| f.path == name) {
        Some(f) if f.status == FileStatus::Ghost => {
            let c = f.contents.as_ref()?;
            let [piece] = &c.pieces[..] else {
                return None;
            };
            let b = p.blob(piece.blob)?;
            (piece.offset == 0).then(|| b.part(b.label.clone(), piece.blob_offset, piece.len))
        }
        Some(FileInfo {
            status: FileStatus::Mismatch { .. },
            ..
        }) => None,
        _ => view.locate(exe).ok().flatten().map(|f| f.blob),
    }
}

/// `path` split into its directory and its last component.
pub(crate) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&path[..0], path),
    }
}

/// `a/b` (clean relative paths; the root is empty).
fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    [a, b"/", b].concat()
}

/// The relative link target that leads from directory `from` to `to`
/// (both clean and relative to the same root).
pub(crate) fn relative(from: &[u8], to: &[u8]) -> Vec<u8> {
    let comps = |p: &[u8]| -> Vec<Vec<u8>> {
        p.split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    };
    let (f, t) = (comps(from), comps(to));
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out: Vec<Vec<u8>> = vec![b"..".to_vec(); f.len() - common];
    out.extend(t[common..].iter().cloned());
    if out.is_empty() {
        return b".".to_vec();
    }
    out.join(&b'/')
}

/// The program interpreter an ELF file's PT_INTERP names, if it has one.
pub(crate) fn interpreter(blob: &Blob) -> Result<Option<Vec<u8>>> {
    let mut f = BlobReader::open(blob).with_context(|| format!("{}: cannot open", blob.label))?;
    let mut h = [0u8; 64];
    let n = read_full(&mut f, &mut h)?;
    let Some(table) = PhTable::parse(&h[..n], blob.len) else {
        return Ok(None);
    };
    let mut ph = vec![0u8; (table.end - table.off) as usize];
    f.seek(SeekFrom::Start(table.off))?;
    if read_full(&mut f, &mut ph)? != ph.len() {
        return Ok(None);
    }
    let Some((off, size)) = table.interp(&ph) else {
        return Ok(None);
    };
    if size == 0 || size > MAX_INTERP || off.checked_add(size).is_none_or(|x| x > blob.len) {
        return Ok(None);
    }
    let mut path = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(off))?;
    if read_full(&mut f, &mut path)? != path.len() {
        return Ok(None);
    }
    if let Some(nul) = path.iter().position(|&b| b == 0) {
        path.truncate(nul);
    }
    Ok((!path.is_empty()).then_some(path))
}

/// Where an ELF file's program header table lies, and how to read it.
struct PhTable {
    /// A 64-bit file (else 32-bit).
    wide: bool,
    /// A big-endian file.
    big: bool,
    /// Where the table starts in the file.
    off: u64,
    /// Where it ends.
    end: u64,
    /// The size of one entry.
    entsize: u64,
}

impl PhTable {
    /// The table of the ELF file that starts with `h`, `len` bytes long;
    /// `None` where `h` is not an ELF header of a known class and byte
    /// order, or its table is empty, too large, or not within the file.
    fn parse(h: &[u8], len: u64) -> Option<PhTable> {
        if h.len() < 52 || &h[..4] != b"\x7fELF" {
            return None;
        }
        let (wide, big) = match (h[4], h[5]) {
            (1, 1) => (false, false),
            (1, 2) => (false, true),
            (2, 1) => (true, false),
            (2, 2) => (true, true),
            _ => return None,
        };
        let elf = Elf { data: h, big };
        let (off, entsize, num) = if wide {
            (elf.u64(32)?, elf.u16(54)?, elf.u16(56)?)
        } else {
            (elf.u32(28)?, elf.u16(42)?, elf.u16(44)?)
        };
        let min = if wide { 56 } else { 32 };
        if entsize < min || num == 0 || num > MAX_PHDRS {
            return None;
        }
        let end = off.checked_add(entsize * num).filter(|&e| e <= len)?;
        Some(PhTable {
            wide,
            big,
            off,
            end,
            entsize,
        })
    }

    /// The file range (offset, size) of the first PT_INTERP entry among
    /// the table's bytes `ph`.
    fn interp(&self, ph: &[u8]) -> Option<(u64, u64)> {
        ph.chunks_exact(self.entsize as usize).find_map(|data| {
            let e = Elf {
                data,
                big: self.big,
            };
            if e.u32(0)? != 3 {
                return None;
            }
            if self.wide {
                Some((e.u64(8)?, e.u64(32)?))
            } else {
                Some((e.u32(4)?, e.u32(16)?))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        assert_eq!(relative(b"", b"usr/lib"), b"usr/lib");
        assert_eq!(
            relative(b"usr/lib64", b"usr/lib/x86_64-linux-gnu"),
            b"../lib/x86_64-linux-gnu"
        );
        assert_eq!(relative(b"a/b", b"a/b"), b".");
        assert_eq!(relative(b"a/b/c", b"x"), b"../../../x");
    }

    /// An ELF header, one PT_INTERP program header and the path, as a
    /// linker lays them out (64-bit, `le` or big-endian).
    fn elf(le: bool, interp: &[u8]) -> Vec<u8> {
        let u16b = |v: u16| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let u32b = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let u64b = |v: u64| if le { v.to_le_bytes() } else { v.to_be_bytes() };
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = if le { 1 } else { 2 };
        h[32..40].copy_from_slice(&u64b(64));
        h[54..56].copy_from_slice(&u16b(56));
        h[56..58].copy_from_slice(&u16b(1));
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&u32b(3));
        ph[8..16].copy_from_slice(&u64b(120));
        ph[32..40].copy_from_slice(&u64b(interp.len() as u64 + 1));
        h.extend(ph);
        h.extend(interp);
        h.push(0);
        h
    }

    #[test]
    fn the_interpreter_from_pt_interp() {
        let dir = tempfile::tempdir().unwrap();
        for le in [true, false] {
            let f = dir.path().join(format!("elf-{le}"));
            let bytes = elf(le, b"/lib64/ld-linux-x86-64.so.2");
            std::fs::write(&f, &bytes).unwrap();
            let b = Blob {
                label: "elf".into(),
                path: f.clone(),
                offset: 0,
                len: bytes.len() as u64,
                remote: None,
            };
            assert_eq!(
                interpreter(&b).unwrap().as_deref(),
                Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
            );
            // Cut short, or a path running past the end: none.
            let cut = Blob {
                len: 100,
                ..b.clone()
            };
            assert_eq!(interpreter(&cut).unwrap(), None);
        }
        // Not ELF: none; the test program itself has one (dynamically linked).
        let me = std::env::current_exe().unwrap();
        let len = std::fs::metadata(&me).unwrap().len();
        let b = Blob {
            label: "me".into(),
            path: me,
            offset: 0,
            len,
            remote: None,
        };
        assert!(interpreter(&b)
            .unwrap()
            .is_some_and(|p| p.starts_with(b"/")));
        let text = dir.path().join("text");
        std::fs::write(&text, vec![b'x'; 200]).unwrap();
        let b = Blob {
            label: "t".into(),
            path: text,
            offset: 0,
            len: 200,
            remote: None,
        };
        assert_eq!(interpreter(&b).unwrap(), None);
    }

    #[test]
    fn writes_stay_inside_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sysroot");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello world").unwrap();
        let blob = Blob {
            label: "src".into(),
            path: src.clone(),
            offset: 6,
            len: 5,
            remote: None,
        };
        let s = Sysroot::create(&root, None, None, &Cancel::new()).unwrap();
        let st = &mut State::default();
        s.write(st, b"usr/lib/x", &blob).unwrap();
        assert_eq!(std::fs::read(root.join("usr/lib/x")).unwrap(), b"world");
        // Again, the same: fine; other bytes: left alone.
        s.write(st, b"usr/lib/x", &blob).unwrap();
        let other = Blob {
            offset: 0,
            ..blob.clone()
        };
        assert!(s.write(st, b"usr/lib/x", &other).is_err());
        // Through a link DIR holds: refused, nothing written outside.
        let err = s.write(st, b"evil/x", &blob).unwrap_err();
        assert!(format!("{err:#}").contains("not followed"), "{err:#}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A whole file: cloned or copied, the same bytes, not the source's
        // inode, and without its setuid bit.
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o4755)).unwrap();
        let whole = Blob {
            offset: 0,
            len: 11,
            ..blob
        };
        s.write(st, b"whole", &whole).unwrap();
        assert_eq!(std::fs::read(root.join("whole")).unwrap(), b"hello world");
        let (copy, orig) = (
            std::fs::metadata(root.join("whole")).unwrap(),
            std::fs::metadata(&src).unwrap(),
        );
        assert_ne!(copy.ino(), orig.ino());
        assert_eq!(copy.mode() & 0o7777, 0o644);
        // Another name for the same source: a hard link to the copy.
        s.write(st, b"usr/other", &whole).unwrap();
        let again = std::fs::metadata(root.join("usr/other")).unwrap();
        assert_eq!(again.ino(), copy.ino());
        // No temporary files left.
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names
            .iter()
            .all(|n| !n.to_string_lossy().contains("partial")));
    }

    #[test]
    fn past_the_budget_or_once_cancelled_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![7u8; 100]).unwrap();
        let blob = |offset: u64| Blob {
            label: "src".into(),
            path: src.clone(),
            offset,
            len: 60,
            remote: None,
        };
        let cancel = Cancel::new();
        let s = Sysroot::create(&dir.path().join("sys"), None, Some(100), &cancel).unwrap();
        let st = &mut State::default();
        s.write(st, b"a", &blob(0)).unwrap();
        // The same bytes again cost nothing; other bytes past the bound
        // are refused as a limit.
        s.write(st, b"b", &blob(0)).unwrap();
        let e = s.write(st, b"c", &blob(40)).unwrap_err();
        assert_eq!(crate::error::kind_of(&e), ErrorKind::Limit, "{e:#}");
        assert!(!dir.path().join("sys/c").exists());
        // Cancelled: the copy stops, and leaves nothing.
        let s = Sysroot::create(&dir.path().join("sys2"), None, None, &cancel).unwrap();
        cancel.cancel(2);
        let e = s.write(&mut State::default(), b"d", &blob(1)).unwrap_err();
        assert!(
            e.chain().any(|c| c.is::<crate::cancel::Cancelled>()),
            "{e:#}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sys2"))
            .unwrap()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn stale_temporary_files_of_ended_runs_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sys");
        let lib = root.join("usr/lib");
        std::fs::create_dir_all(&lib).unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let stale = lib.join(format!(".criu2core-{dead}-3.partial"));
        let live = lib.join(format!(".criu2core-{}-9.partial", std::process::id()));
        let other = lib.join(".other.partial");
        for f in [&stale, &live, &other] {
            std::fs::write(f, b"x").unwrap();
        }
        let src = dir.path().join("src");
        std::fs::write(&src, b"bytes").unwrap();
        let s = Sysroot::create(&root, None, None, &Cancel::new()).unwrap();
        let blob = Blob {
            label: "src".into(),
            path: src,
            offset: 0,
            len: 5,
            remote: None,
        };
        s.write(&mut State::default(), b"usr/lib/x", &blob).unwrap();
        assert!(!stale.exists() && live.exists() && other.exists());
    }
}
