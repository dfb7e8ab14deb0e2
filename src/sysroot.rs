//! `--sysroot DIR`: the files a core's NT_FILE names (the executable, its
//! shared libraries, the dynamic loader), written under DIR at their paths
//! from the file view (`--image` or `--root`), so that `gdb -iex 'set
//! sysroot DIR' DIR/EXE CORE` needs nothing else.
//!
//! Besides each file at its path as the process saw it, the program
//! interpreter the executable's PT_INTERP names (gdb loads it by that path,
//! `/lib64/ld-linux-x86-64.so.2`, to find the shared libraries), and the
//! view's symbolic links on the way to it and in the top directory
//! (`/lib -> usr/lib` on a merged-/usr system: the dynamic loader's list
//! names libraries by such paths), made relative so they stay inside DIR.
//!
//! Writing never leaves DIR: paths come from checkpoints and are only keys
//! (bytes, cleaned: no `..`, no empty or `.` components); every directory
//! is opened below DIR's own descriptor with `O_NOFOLLOW`, so a symbolic
//! link in DIR that criu2core did not make is refused, not followed; each
//! file is made under a temporary name and renamed into place. A file is
//! a reflink of its bytes where the filesystem allows (FICLONE), else a
//! hard link to them (a whole file on the same filesystem), else a copy
//! (copy_file_range). A path DIR already holds with other contents is
//! left alone, with a warning.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::blobio::BlobReader;
use crate::model::{display_bytes, Blob, FileContents, FileInfo, FileStatus, MappingKind, Process};
use crate::rootfs::{clean_key, FileView};

/// Longest PT_INTERP path read (Linux's PATH_MAX).
const MAX_INTERP: u64 = 4096;
/// Most program headers read to find PT_INTERP.
const MAX_PHDRS: u64 = 4096;

/// A sysroot being written.
pub(crate) struct Sysroot {
    dir: PathBuf,
    fd: OwnedFd,
    /// Paths written (or found written) so far, and links made.
    done: Mutex<HashSet<Vec<u8>>>,
    links: Mutex<HashSet<Vec<u8>>>,
}

/// Temporary names in the sysroot, unique within the process.
static TEMP: AtomicU64 = AtomicU64::new(0);

impl Sysroot {
    /// Makes `dir` (and its parents) if missing, and opens it.
    pub(crate) fn create(dir: &Path) -> Result<Sysroot> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create the sysroot", dir.display()))?;
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("{}: cannot open the sysroot", dir.display()))?;
        let fd = rfs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("{}: cannot open the sysroot", dir.display()))?;
        Ok(Sysroot {
            dir,
            fd,
            done: Mutex::new(HashSet::new()),
            links: Mutex::new(HashSet::new()),
        })
    }

    /// The directory (canonical).
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes the files process `p` maps, its executable and its program
    /// interpreter: those deleted while open from the checkpoint, the
    /// others from `view`, where they are the files the checkpoint
    /// recorded. Gives what could not be written.
    pub(crate) fn add_process(&self, p: &Process, view: Option<&FileView>) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut paths: Vec<&[u8]> = p
            .mappings
            .iter()
            .filter(|m| m.kind == MappingKind::File)
            .filter_map(|m| m.file.as_ref().map(|f| f.path.as_slice()))
            .chain(p.exe.as_deref())
            .map(|path| path.strip_suffix(b" (deleted)").unwrap_or(path))
            .collect();
        paths.sort();
        paths.dedup();
        let mut unsought = false;
        for path in paths {
            let info = p.files.iter().find(|f| f.path == path);
            let done = match (info.map(|f| (&f.status, &f.contents)), view) {
                (Some((FileStatus::Ghost, Some(c))), _) => self.add_contents(p, path, c),
                (Some((FileStatus::Mismatch { why }, _)), _) => Err(anyhow::anyhow!(
                    "not the file the checkpoint recorded ({why}); not copied"
                )),
                (Some((FileStatus::Missing, _)), Some(_)) => Err(anyhow::anyhow!(
                    "not in the image or root; gdb will lack it"
                )),
                (_, Some(view)) => self.add_file(view, path),
                (_, None) => {
                    unsought = true;
                    Ok(())
                }
            };
            if let Err(e) = done {
                warnings.push(format!("--sysroot: {}: {e:#}", display_bytes(path)));
            }
        }
        if unsought {
            warnings.push(format!(
                "--sysroot {}: no --image or --root to take the files the checkpoint does not hold from",
                self.dir.display()
            ));
        }
        let Some(view) = view else {
            return warnings;
        };
        let interp = exe_blob(p, view).and_then(|b| interpreter(&b).ok().flatten());
        if let Some(interp) = interp {
            if let Err(e) = self.add_file(view, &interp) {
                warnings.push(format!(
                    "--sysroot: the program interpreter {}: {e:#}",
                    display_bytes(&interp)
                ));
            }
        }
        if let Err(e) = self.top_links(view) {
            warnings.push(format!("--sysroot: {e:#}"));
        }
        warnings
    }

    /// Writes contents the checkpoint holds (a file deleted while open) at
    /// `path`.
    fn add_contents(&self, p: &Process, path: &[u8], c: &FileContents) -> Result<()> {
        let key = clean_key(path).with_context(|| "a path with '..'")?;
        if self
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let pieces = c
            .pieces
            .iter()
            .map(|piece| {
                let b = p
                    .blob(piece.blob)
                    .context("a file piece of an unknown blob")?;
                let window = Blob {
                    label: b.label.clone(),
                    path: b.path.clone(),
                    offset: b.offset + piece.blob_offset,
                    len: piece.len,
                    remote: b.remote.clone(),
                };
                Ok((piece.offset, window))
            })
            .collect::<Result<Vec<_>>>()?;
        match &pieces[..] {
            [(0, whole)] if whole.len == c.size => self.write(&key, whole)?,
            _ => self.write_pieces(&key, &pieces, c.size)?,
        }
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }

    /// Writes a file of `size` bytes at `key` (clean, relative) below DIR
    /// from `pieces` (offset in the file, bytes); the rest are holes.
    fn write_pieces(&self, key: &[u8], pieces: &[(u64, Blob)], size: u64) -> Result<()> {
        let (parent, base) = split(key);
        if base.is_empty() {
            bail!("no file name");
        }
        let dir = self.open_dir(parent)?;
        let name = OsStr::from_bytes(base);
        if rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            bail!(
                "{} already exists; left alone",
                self.dir.join(OsStr::from_bytes(key)).display()
            );
        }
        let temp = format!(
            ".criu2core-{}-{}.partial",
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        );
        let out = rfs::openat(
            &dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .context("cannot create a file")?;
        let done = pieces
            .iter()
            .try_for_each(|(at, blob)| copy_from(blob, 0, &out, *at))
            .and_then(|()| rfs::ftruncate(&out, size).context("cannot set its size"))
            .and_then(|()| {
                rfs::renameat(&dir, temp.as_str(), &dir, name).context("cannot rename into place")
            });
        if done.is_err() {
            let _ = rfs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        }
        done
    }

    /// Writes the file at `path` (as the process saw it) from `view`: at
    /// the path it resolves to, and, where that differs, at `path` itself,
    /// with the view's links on the way made in DIR.
    pub(crate) fn add_file(&self, view: &FileView, path: &[u8]) -> Result<()> {
        let key = clean_key(path).with_context(|| "a path with '..'")?;
        if self
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(());
        }
        let found = view
            .locate(path)?
            .context("not in the image or root; gdb will lack it")?;
        self.write(&found.path, &found.blob)?;
        if found.path != key {
            // The path itself: the file at its parent, resolved through the
            // view's links, which are made in DIR too.
            let (parent, base) = split(&key);
            let dir = self.mirror_links(view, parent)?;
            let at = join(&dir, base);
            if at != found.path {
                self.write(&at, &found.blob)?;
            }
        }
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        Ok(())
    }

    /// Walks `dir` (a clean path) in the view, making in DIR each symbolic
    /// link met on the way, as a relative link to where the view resolves
    /// it; gives the directory `dir` resolves to.
    fn mirror_links(&self, view: &FileView, dir: &[u8]) -> Result<Vec<u8>> {
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
                self.link(&next, &relative(&at, &target))?;
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
    pub(crate) fn top_links(&self, view: &FileView) -> Result<()> {
        let written: Vec<Vec<u8>> = self
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
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
                self.link(&name, &relative(b"", &target))?;
            }
        }
        Ok(())
    }

    /// Opens the directory `dir` (clean, relative) below DIR, making what
    /// is missing; a symbolic link on the way is refused.
    fn open_dir(&self, dir: &[u8]) -> Result<OwnedFd> {
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
                    return Err(e).with_context(|| format!("cannot make {}", display_bytes(dir)))
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
                    display_bytes(c)
                ),
                e => anyhow::Error::new(e),
            })
            .with_context(|| format!("cannot open {}", display_bytes(dir)))?;
        }
        Ok(fd)
    }

    /// Makes the symbolic link `at` (clean, relative) pointing to `target`
    /// (relative), unless DIR has something there already.
    fn link(&self, at: &[u8], target: &[u8]) -> Result<()> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if links.contains(at) {
            return Ok(());
        }
        let (parent, base) = split(at);
        let dir = self.open_dir(parent)?;
        match rfs::symlinkat(OsStr::from_bytes(target), &dir, OsStr::from_bytes(base)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot make the link {}", display_bytes(at)))
            }
        }
        links.insert(at.to_vec());
        Ok(())
    }

    /// Writes `blob` at `key` (clean, relative) below DIR.
    fn write(&self, key: &[u8], blob: &Blob) -> Result<()> {
        let (parent, base) = split(key);
        if base.is_empty() {
            bail!("no file name");
        }
        let dir = self.open_dir(parent)?;
        let name = OsStr::from_bytes(base);
        match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let regular =
                    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::RegularFile;
                if regular && same_contents(&dir, name, blob)? {
                    return Ok(());
                }
                bail!(
                    "{} already holds a different file; left alone",
                    self.dir.join(OsStr::from_bytes(key)).display()
                );
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e).context("cannot look"),
        }
        let temp = format!(
            ".criu2core-{}-{}.partial",
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        );
        // An object in object storage is copied through a reader; a local
        // file may be cloned, linked or copied in the kernel.
        let src = match blob.remote {
            Some(_) => None,
            None => Some(
                File::open(&blob.path).with_context(|| format!("{}: cannot open", blob.label))?,
            ),
        };
        let whole = src.as_ref().is_some_and(|src| {
            blob.offset == 0 && src.metadata().map(|m| m.len()).ok() == Some(blob.len)
        });
        let out = rfs::openat(
            &dir,
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .context("cannot create a file")?;
        let filled = (|| -> Result<()> {
            let Some(src) = &src else {
                return copy_from(blob, 0, &out, 0);
            };
            if whole && rfs::ioctl_ficlone(&out, src).is_ok() {
                return Ok(());
            }
            if whole {
                let _ = rfs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
                if rfs::linkat(CWD, &blob.path, &dir, temp.as_str(), AtFlags::empty()).is_ok() {
                    return Ok(());
                }
                let again = rfs::openat(
                    &dir,
                    temp.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .context("cannot create a file")?;
                return copy(src, blob, &again);
            }
            copy(src, blob, &out)
        })();
        let done = filled.and_then(|()| {
            rfs::renameat(&dir, temp.as_str(), &dir, name).context("cannot rename into place")
        });
        if done.is_err() {
            let _ = rfs::unlinkat(&dir, temp.as_str(), AtFlags::empty());
        }
        done.with_context(|| {
            format!(
                "cannot write {}",
                self.dir.join(OsStr::from_bytes(key)).display()
            )
        })
    }
}

/// Copies `blob`'s bytes from `src` into `out`: copy_file_range, else
/// through a buffer.
fn copy(src: &File, blob: &Blob, out: &OwnedFd) -> Result<()> {
    let mut off_in = blob.offset;
    let mut off_out = 0u64;
    let mut left = blob.len;
    while left > 0 {
        let want = left.min(1 << 30) as usize;
        match rfs::copy_file_range(src, Some(&mut off_in), out, Some(&mut off_out), want) {
            Ok(0) => bail!("{}: ends early", blob.label),
            Ok(n) => left -= n as u64,
            Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                return copy_from(blob, off_in - blob.offset, out, off_out);
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot copy", blob.label)),
        }
    }
    Ok(())
}

/// Copies `blob`'s bytes from `from` (within it) to its end into `out` at
/// `off_out`, through a reader (an object's, or a file's where the kernel
/// cannot copy).
fn copy_from(blob: &Blob, from: u64, out: &OwnedFd, off_out: u64) -> Result<()> {
    let mut r = BlobReader::open(blob).with_context(|| format!("{}: cannot open", blob.label))?;
    r.seek(SeekFrom::Start(from))?;
    let mut w = File::from(out.as_fd().try_clone_to_owned()?);
    w.seek(SeekFrom::Start(off_out))?;
    let n = io::copy(&mut r, &mut w)?;
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
            (piece.offset == 0).then(|| Blob {
                label: b.label.clone(),
                path: b.path.clone(),
                offset: b.offset + piece.blob_offset,
                len: piece.len,
                remote: b.remote.clone(),
            })
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
    if n < 52 || &h[..4] != b"\x7fELF" {
        return Ok(None);
    }
    let (wide, le) = match (h[4], h[5]) {
        (1, 1) => (false, true),
        (1, 2) => (false, false),
        (2, 1) => (true, true),
        (2, 2) => (true, false),
        _ => return Ok(None),
    };
    let u16_at = |b: &[u8], o: usize| {
        let v = [b[o], b[o + 1]];
        u64::from(if le {
            u16::from_le_bytes(v)
        } else {
            u16::from_be_bytes(v)
        })
    };
    let u32_at = |b: &[u8], o: usize| {
        let v = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        u64::from(if le {
            u32::from_le_bytes(v)
        } else {
            u32::from_be_bytes(v)
        })
    };
    let u64_at = |b: &[u8], o: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        if le {
            u64::from_le_bytes(v)
        } else {
            u64::from_be_bytes(v)
        }
    };
    let (phoff, phentsize, phnum) = if wide {
        if n < 64 {
            return Ok(None);
        }
        (u64_at(&h, 32), u16_at(&h, 54), u16_at(&h, 56))
    } else {
        (u32_at(&h, 28), u16_at(&h, 42), u16_at(&h, 44))
    };
    let min = if wide { 56 } else { 32 };
    if phentsize < min || phnum == 0 || phnum > MAX_PHDRS {
        return Ok(None);
    }
    let Some(end) = phoff
        .checked_add(phentsize * phnum)
        .filter(|&e| e <= blob.len)
    else {
        return Ok(None);
    };
    let mut ph = vec![0u8; (end - phoff) as usize];
    f.seek(SeekFrom::Start(phoff))?;
    if read_full(&mut f, &mut ph)? != ph.len() {
        return Ok(None);
    }
    for e in ph.chunks_exact(phentsize as usize) {
        if u32_at(e, 0) != 3 {
            continue;
        }
        let (off, size) = if wide {
            (u64_at(e, 8), u64_at(e, 32))
        } else {
            (u32_at(e, 4), u32_at(e, 16))
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
        return Ok((!path.is_empty()).then_some(path));
    }
    Ok(None)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
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
        let s = Sysroot::create(&root).unwrap();
        s.write(b"usr/lib/x", &blob).unwrap();
        assert_eq!(std::fs::read(root.join("usr/lib/x")).unwrap(), b"world");
        // Again, the same: fine; other bytes: left alone.
        s.write(b"usr/lib/x", &blob).unwrap();
        let other = Blob {
            offset: 0,
            ..blob.clone()
        };
        assert!(s.write(b"usr/lib/x", &other).is_err());
        // Through a link DIR holds: refused, nothing written outside.
        let err = s.write(b"evil/x", &blob).unwrap_err();
        assert!(format!("{err:#}").contains("not followed"), "{err:#}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        // A whole file: linked or cloned or copied, the same bytes.
        let whole = Blob {
            offset: 0,
            len: 11,
            ..blob
        };
        s.write(b"whole", &whole).unwrap();
        assert_eq!(std::fs::read(root.join("whole")).unwrap(), b"hello world");
        // No temporary files left.
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(names
            .iter()
            .all(|n| !n.to_string_lossy().contains("partial")));
    }
}
