//! Converting the processes of checkpoints into cores: one input's
//! processes into a directory ([`convert_input`]), and the inputs of
//! `criu2core convert` ([`convert`]): one input's cores into the output
//! directory itself, several inputs each into a directory of its own,
//! named and recorded as batch names and records them.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::job::Job;
use super::naming::{choose_names, occupant, InputId};
use super::summary::{CoreOptions, FileCheck, InputSummary, Status};
use super::{absolute, no_name, unique_ids};
use crate::cancel::Cancel;
use crate::coredump::{CoreCompression, CorePlan, CoreStats};
use crate::error::{fault, Error, ErrorKind};
use crate::input::{
    self, Checkpoint, Compression, ImageRef, ImageUse, InputKind, LoadOptions, OpenOptions, PageUse,
};
use crate::model::{display_bytes, ExitStatus, Loaded, Process};
use crate::outdir::OutDir;
use crate::spill::SpillOptions;
use crate::sysroot::Sysroot;
use crate::warning::{Warning, WarningKind};

/// How to convert the processes of a checkpoint.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ConvertOptions {
    /// Only these processes (all if empty).
    pub pids: Vec<u32>,
    /// Root filesystem for unmodified file-backed pages (files in an
    /// archive's rootfs-diff.tar take precedence).
    pub root: Option<PathBuf>,
    /// The container's image, whose layers (under the archive's
    /// rootfs-diff.tar) supply unmodified file-backed pages. Not with
    /// `root`.
    pub image: Option<ImageRef>,
    /// Where to write every file the cores map (and the program
    /// interpreter), at its path, for gdb's `set sysroot`.
    pub sysroot: Option<PathBuf>,
    /// Replace existing cores.
    pub force: bool,
    /// Where compressed archives are unpacked, and how much each may.
    pub spill: SpillOptions,
    /// Stops the conversion between processes and extents once set.
    pub cancel: Cancel,
    /// How cores are stored (`--compress`).
    pub compression: CoreCompression,
    /// The directory of `sysroot` this input's files go into, where
    /// several inputs share one (each its own: one input's files never
    /// stand in for another's).
    pub(crate) sysroot_sub: Option<String>,
}

impl ConvertOptions {
    /// Reads file pages from the container's image.
    pub fn image(mut self, image: ImageRef) -> ConvertOptions {
        self.image = Some(image);
        self
    }

    /// Writes the files the cores map under `dir`.
    pub fn sysroot(mut self, dir: impl Into<PathBuf>) -> ConvertOptions {
        self.sysroot = Some(dir.into());
        self
    }

    /// How each input is opened.
    pub(crate) fn open_options(&self) -> OpenOptions {
        OpenOptions {
            spill: self.spill.clone(),
            pages: PageUse::All,
            cancel: self.cancel.clone(),
        }
    }
}

/// What became of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A core was written.
    Written {
        /// The core.
        stats: CoreStats,
        /// Number of threads in it.
        threads: usize,
        /// The shell command that opens it in gdb, its words quoted for a
        /// POSIX shell in a form that is safe to print as it is (see
        /// `shell_quote`); for a zstd-compressed core,
        /// decompressing it first; `None` for a core in object storage.
        gdb_command: Option<String>,
        /// The files the process mapped, checked against what the
        /// checkpoint recorded.
        files: Vec<FileCheck>,
    },
    /// A zombie: nothing to write.
    Zombie {
        /// How it ended.
        exit: ExitStatus,
    },
    /// Conversion failed, for this reason.
    Failed(String),
}

/// One process's conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessReport {
    /// Its pid.
    pub pid: u32,
    /// Its command name, where known.
    pub comm: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// Warnings from decoding.
    pub warnings: Vec<Warning>,
}

/// Hears how [`convert`] goes, as it goes.
pub trait Listener {
    /// What is wrong with an input as a whole (each process's warnings
    /// come with its report).
    fn warning(&mut self, _warning: &Warning) {}
    /// A process is done.
    fn process(&mut self, _report: &ProcessReport) {}
    /// An input failed as a whole (it could not be opened, or had no free
    /// name).
    fn failed(&mut self, _input: &InputSummary) {}
    /// Which image `--image` gave for an input, and whether it is the one
    /// the checkpoint names.
    fn image(&mut self, _used: &ImageUse) {}
}

impl Listener for () {}

/// Opens the checkpoint at `path` and writes its processes' cores into
/// `out_dir`: a compressed checkpoint archive in one pass
/// ([`super::onepass`]), any other input opened, then converted. Once it
/// is read, `s` gets its process count and warnings and `listener` hears
/// the warnings; then `listener` hears of each process as it is done. A
/// process that fails does not stop the others; an error that concerns
/// the whole input (or a cancellation) is returned.
pub(crate) fn open_and_convert(
    path: &Path,
    out_dir: &OutDir,
    opts: &ConvertOptions,
    s: &mut InputSummary,
    listener: &mut dyn Listener,
) -> Result<Vec<ProcessReport>> {
    // A bug that one input finds fails that input, never the whole run:
    // the others go on and the summary is written.
    let converted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        open_and_convert_unguarded(path, out_dir, opts, s, listener)
    }));
    converted.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(anyhow::anyhow!(
            "{}: criu2core failed on this input (an internal error, a panic: {why}); please report it",
            path.display()
        ))
    })
}

/// [`open_and_convert`] without its guard.
fn open_and_convert_unguarded(
    path: &Path,
    out_dir: &OutDir,
    opts: &ConvertOptions,
    s: &mut InputSummary,
    listener: &mut dyn Listener,
) -> Result<Vec<ProcessReport>> {
    #[cfg(test)]
    tests::panic_if_asked(path);
    // With --image, file pages come from the image's layers, read once the
    // archive is: the layouts made as it streams by would not hold. A
    // compressed core, or one uploaded to object storage, is written front
    // to back: pages cannot be put in their places ahead of the rest.
    let one_pass =
        opts.image.is_none() && opts.compression == CoreCompression::None && out_dir.is_local();
    let mut pass = match one_pass.then(|| input::detect(path)) {
        Some(Ok(Some(kind @ InputKind::Archive(Compression::Gzip | Compression::Zstd)))) => {
            Some((super::onepass::OnePass::new(out_dir, opts), kind))
        }
        _ => None,
    };
    let ckpt = match &mut pass {
        Some((pass, kind)) => pass.open(path, *kind)?,
        None => input::open_input(path, &opts.open_options())?,
    };
    s.processes = ckpt.processes().len();
    ckpt.warnings().iter().for_each(|w| listener.warning(w));
    s.warnings.extend(ckpt.warnings().iter().cloned());
    match pass {
        Some((pass, _)) => pass.finish(&ckpt, &mut s.image, listener),
        None => convert_input(&ckpt, out_dir, opts, &mut s.image, listener),
    }
}

/// Writes the cores of `ckpt`'s processes into `out_dir`, calling `report`
/// as each process is done. A process that fails does not stop the others;
/// an error that concerns the whole input (or a cancellation) is returned.
pub(crate) fn convert_input(
    ckpt: &Checkpoint,
    out_dir: &OutDir,
    opts: &ConvertOptions,
    used: &mut Option<ImageUse>,
    listener: &mut dyn Listener,
) -> Result<Vec<ProcessReport>> {
    convert_input_with(ckpt, opts, used, listener, &mut |p| {
        write_core(p, out_dir, opts)
    })
}

/// Writes the core of `p` into `out_dir` as `opts` say, the ordinary way:
/// planned, then its headers and notes, then every extent copied.
pub(crate) fn write_core(
    p: &Process,
    out_dir: &OutDir,
    opts: &ConvertOptions,
) -> Result<CoreStats> {
    opts.cancel.check()?;
    let path = out_dir.join(&opts.compression.core_name(p.pid))?;
    let plan = CorePlan::new(p).with_context(|| format!("writing {}", path.display()))?;
    plan.with_cancel(&opts.cancel)
        .write_in(out_dir, opts.force, opts.compression)
}

/// [`convert_input`], each process's core written by `write`.
pub(crate) fn convert_input_with(
    ckpt: &Checkpoint,
    opts: &ConvertOptions,
    used: &mut Option<ImageUse>,
    listener: &mut dyn Listener,
    write: &mut dyn FnMut(&Process) -> Result<CoreStats>,
) -> Result<Vec<ProcessReport>> {
    let all = ckpt.pids();
    for pid in &opts.pids {
        if !all.contains(pid) {
            return Err(fault(
                ErrorKind::NoSuchProcess,
                format!("pid {pid} is not in the checkpoint (it has {all:?})"),
            ));
        }
    }
    let pids = if opts.pids.is_empty() {
        all
    } else {
        opts.pids.clone()
    };
    let mut load = LoadOptions::default();
    load.root.clone_from(&opts.root);
    load.image.clone_from(&opts.image);
    let view = ckpt.file_view(&load)?;
    if let Some(u) = view.as_ref().and_then(|(_, u)| u.as_ref()) {
        listener.image(u);
        *used = Some(u.clone());
    }
    let sysroot = opts
        .sysroot
        .as_deref()
        .map(|d| Sysroot::create(d, opts.sysroot_sub.as_deref(), None, &opts.cancel))
        .transpose()?;
    let mut out = Vec::with_capacity(pids.len());
    for pid in pids {
        opts.cancel.check()?;
        let view = view.as_ref().map(|(v, _)| v);
        let r = convert_process(ckpt, pid, view, sysroot.as_ref(), opts, write);
        listener.process(&r);
        out.push(r);
    }
    Ok(out)
}

/// Loads process `pid` and has `write` write its core.
fn convert_process(
    ckpt: &Checkpoint,
    pid: u32,
    roots: Option<&crate::rootfs::FileView>,
    sysroot: Option<&Sysroot>,
    opts: &ConvertOptions,
    write: &mut dyn FnMut(&Process) -> Result<CoreStats>,
) -> ProcessReport {
    let mut r = ProcessReport {
        pid,
        comm: None,
        outcome: Outcome::Failed(String::new()),
        warnings: Vec::new(),
    };
    r.outcome = match ckpt.load_with(pid, roots, true) {
        Err(e) => Outcome::Failed(format!("{e:#}")),
        Ok(Loaded::Zombie(z)) => {
            r.comm = Some(display_bytes(&z.comm).into_owned());
            Outcome::Zombie { exit: z.exit }
        }
        Ok(Loaded::Process(p)) => {
            r.comm = Some(display_bytes(&p.comm).into_owned());
            r.warnings = p.warnings.clone();
            match write(&p) {
                Ok(stats) => {
                    let mut gdb_root = opts.root.clone();
                    if let Some(s) = sysroot {
                        r.warnings.extend(s.add_process(&p, roots));
                        // As given, as --root is (the core's path is too).
                        gdb_root = match (&opts.sysroot, &opts.sysroot_sub) {
                            (Some(d), Some(sub)) => Some(d.join(sub)),
                            (Some(d), None) => Some(d.clone()),
                            _ => Some(s.path().to_path_buf()),
                        };
                    }
                    let exe = match exe_for_gdb(trusted_exe(&p), gdb_root.as_deref()) {
                        Ok(exe) => Some(exe),
                        Err(why) => {
                            r.warnings.extend(why);
                            None
                        }
                    };
                    Outcome::Written {
                        gdb_command: gdb_command(&stats.path, exe.as_deref(), gdb_root.as_deref()),
                        files: FileCheck::of(&p),
                        stats,
                        threads: p.threads.len(),
                    }
                }
                Err(e) => Outcome::Failed(format!("{e:#}")),
            }
        }
    };
    r
}

/// ```
/// use criu2core::batch::{self, ConvertOptions, Status};
///
/// let out = tempfile::tempdir()?;
/// let inputs = ["gdb-fixtures/example.tar.zst".into()];
/// let done = batch::convert(&inputs, out.path(), &ConvertOptions::default(), &mut ())?;
/// assert_eq!(done[0].status, Status::Ok);
/// assert_eq!(done[0].cores[0].pid, 12155);
/// assert!(out.path().join("core.12155").is_file());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `criu2core convert`: one input's cores go into `out_dir` itself;
/// several inputs get a directory each, named and recorded as batch names
/// and records them (but nothing is skipped, and existing cores are
/// replaced only with `force`). `listener` hears each process as it is
/// done. Returns each input's summary; an error is one that stopped the
/// whole run (the output directory, a cancellation).
pub fn convert(
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &ConvertOptions,
    listener: &mut dyn Listener,
) -> crate::Result<Vec<InputSummary>> {
    convert_inputs(inputs, out_dir, opts, listener).map_err(Error::new)
}

fn convert_inputs(
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &ConvertOptions,
    listener: &mut dyn Listener,
) -> Result<Vec<InputSummary>> {
    check_file_options(opts.root.as_deref(), opts.image.as_ref())?;
    let made = crate::outdir::first_missing(out_dir);
    let out = OutDir::create(out_dir)?;
    // What runs that were killed left here (their own names say whose).
    out.remove_stale_partials();
    let done = convert_into(inputs, &out, opts, listener);
    // A run that wrote nothing leaves no directory it made behind.
    let wrote = done
        .as_ref()
        .is_ok_and(|all| all.iter().any(|s| !s.cores.is_empty()));
    if let (Some(top), false) = (&made, wrote) {
        out.remove_made(top);
    }
    done
}

/// [`convert_inputs`] into `out`, made.
fn convert_into(
    inputs: &[PathBuf],
    out: &OutDir,
    opts: &ConvertOptions,
    listener: &mut dyn Listener,
) -> Result<Vec<InputSummary>> {
    let options = CoreOptions::new(opts.root.as_deref(), opts.image.as_ref(), &opts.pids);
    if let [single] = inputs {
        return Ok(vec![convert_one(single, out, opts, options, listener)]);
    }
    if !opts.pids.is_empty() {
        bail!("pids apply to one input at a time");
    }
    let _lock = super::lock::take(out, super::Writer::Whole, "convert")?;
    let ids = unique_ids(inputs.iter());
    let refs: Vec<&InputId> = ids.iter().collect();
    let names = choose_names(&refs, &mut |n| occupant(out, n));
    let mut summaries = Vec::new();
    for (id, name) in ids.iter().zip(&names) {
        let s = match name {
            None => no_name(id, options.clone()),
            Some(name) => Job {
                id,
                out,
                name,
                options: &options,
                convert: opts.clone(),
                batch: false,
                force: opts.force,
            }
            .run(listener),
        };
        if s.status == Status::Failed && s.cores.is_empty() {
            listener.failed(&s);
        }
        summaries.push(s);
        if opts.cancel.is_cancelled() {
            break;
        }
    }
    Ok(summaries)
}

/// The path of `p`'s executable, unless the file found there is not the
/// one the checkpoint recorded.
fn trusted_exe(p: &Process) -> Option<&[u8]> {
    let exe = p.exe.as_deref()?;
    let name = exe.strip_suffix(b" (deleted)").unwrap_or(exe);
    let mismatch = p
        .files
        .iter()
        .any(|f| f.path == name && matches!(f.status, crate::model::FileStatus::Mismatch { .. }));
    (!mismatch).then_some(exe)
}

/// Refuses file options that do not go together: `--root` and `--image`
/// (both name the container's files). `--sysroot` alone takes what the
/// checkpoint holds: deleted files and the container's changed files.
pub(crate) fn check_file_options(root: Option<&Path>, image: Option<&ImageRef>) -> Result<()> {
    if root.is_some() && image.is_some() {
        bail!("--root and --image both name the container's files: give one");
    }
    Ok(())
}

/// Converts one input into `out` itself.
fn convert_one(
    path: &Path,
    out: &OutDir,
    opts: &ConvertOptions,
    options: CoreOptions,
    listener: &mut dyn Listener,
) -> InputSummary {
    let start = Instant::now();
    let mut s = InputSummary::new(&absolute(path), Some(out.path()), options);
    let result = open_and_convert(path, out, opts, &mut s, listener);
    match result {
        Ok(reports) => match s.add_reports(&reports) {
            Ok(()) => s.status = Status::Ok,
            Err(e) => s.error = Some(format!("{e:#}")),
        },
        Err(e) => {
            s.error = Some(format!("{e:#}"));
            listener.failed(&s);
        }
    }
    s.duration_ms = start.elapsed().as_millis() as u64;
    s
}

/// The shell command that opens `core` in gdb, its words quoted for a
/// POSIX shell in a form that is safe to print (see
/// [`shell_quote`]). With a root filesystem gdb is told to
/// look there for the shared libraries with `-iex`, so that `set sysroot`
/// is in force before the executable and the core are loaded (set later,
/// gdb cannot place a position-independent program whose first page a core
/// does not hold). `exe` is the executable's file here (see
/// [`exe_for_gdb`]); without it gdb gets the core alone (`-c`). A `.zst`
/// core is decompressed beside itself first (gdb reads no compressed
/// cores); a core in object storage has no command (it must be fetched
/// first, by whatever the user fetches with), nor has one whose path
/// cannot be written for a shell.
pub(crate) fn gdb_command(core: &Path, exe: Option<&Path>, root: Option<&Path>) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    if crate::blobio::url_of(core).is_some() {
        return None;
    }
    let q = |b: &[u8]| shell_quote(b).map(std::borrow::Cow::into_owned);
    let mut prefix = String::new();
    let mut core = core.as_os_str().as_bytes();
    if let Some(plain) = core.strip_suffix(b".zst") {
        prefix = format!("zstd -dq {} && ", q(core)?);
        core = plain;
    }
    let mut words = vec!["gdb".to_string()];
    if let Some(root) = root {
        words.push("-iex".into());
        words.push(q(&[b"set sysroot ", root.as_os_str().as_bytes()].concat())?);
    }
    match exe.and_then(|e| q(e.as_os_str().as_bytes())) {
        Some(e) => words.push(e),
        None => words.push("-c".into()),
    }
    words.push(q(core)?);
    Some(prefix + &words.join(" "))
}

/// `word` (any bytes) quoted for a POSIX shell, in a form that is also
/// safe to print as it is: as it is where it holds only characters no
/// shell treats specially; else in single quotes (an embedded single quote
/// as `'\''`); and where it holds what `crate::text::escape_bytes` would escape
/// (control characters, bidirectional overrides, bytes that are not
/// UTF-8), as `"$(printf '...')"` with those bytes written `\ooo`, which
/// the shell turns back into them. `None` for a word of that last kind
/// that ends in a newline (a command substitution drops it).
fn shell_quote(word: &[u8]) -> Option<Cow<'_, str>> {
    use crate::text::needs_escape;
    use std::fmt::Write as _;
    let plain = !word.is_empty()
        && word
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(b));
    if plain {
        return std::str::from_utf8(word).ok().map(Cow::Borrowed);
    }
    match std::str::from_utf8(word) {
        Ok(text) if !text.chars().any(|c| c != '\\' && needs_escape(c)) => {
            return Some(Cow::Owned(format!("'{}'", text.replace('\'', r"'\''"))));
        }
        _ => {}
    }
    if word.ends_with(b"\n") {
        return None;
    }
    // printf's format: `%` and `\` doubled, `'` and every byte a terminal
    // must not see raw as octal escapes (and a leading `-`, which a printf
    // could take for an option).
    let mut out = String::from("\"$(printf '");
    for chunk in word.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '-' if out.ends_with('\'') => out.push_str("\\055"),
                '%' => out.push_str("%%"),
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\047"),
                c if needs_escape(c) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:03o}");
        }
    }
    out.push_str("')\"");
    Some(Cow::Owned(out))
}

/// Where gdb finds executable `exe` (the path the process had): in `root`
/// where there is one, else at that path on this machine; or what to tell
/// the user where it is not there (nothing for a process whose executable
/// was deleted or is not known: the core says so itself).
fn exe_for_gdb(exe: Option<&[u8]>, root: Option<&Path>) -> Result<PathBuf, Option<Warning>> {
    use std::os::unix::ffi::OsStrExt;
    let exe = exe.ok_or(None)?;
    // A deleted executable is not at its path any more; a sysroot that
    // recovered it from the checkpoint has it there.
    let deleted = exe.strip_suffix(b" (deleted)");
    let shown = crate::text::escape_bytes(exe);
    match (root, deleted) {
        (Some(root), Some(path)) => exe_in_root(root, path).ok_or(None),
        (None, Some(_)) => Err(None),
        (Some(root), None) => exe_in_root(root, exe).ok_or_else(|| {
            let message = format!(
                "the executable {shown} is not in {}: gdb will show ?? for its frames",
                crate::text::escape_bytes(root.as_os_str().as_bytes())
            );
            Some(Warning::new(WarningKind::FileNotFound, message).about(shown.clone()))
        }),
        (None, None) => {
            let here = PathBuf::from(std::ffi::OsStr::from_bytes(exe));
            if here.is_file() {
                return Ok(here);
            }
            let message = format!(
                "the executable {shown} is not on this machine: gdb will show ?? for its frames \
                 (give --root DIR or --image IMAGE, with --sysroot DIR)"
            );
            Err(Some(
                Warning::new(WarningKind::FileNotFound, message).about(shown),
            ))
        }
    }
}

/// Where executable `exe` is under `root`: `root/exe` as given where that
/// is the file, else the file it resolves to inside the root.
fn exe_in_root(root: &Path, exe: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let fs = crate::rootfs::RootFs::new(root).ok()?;
    let (found, _) = fs.resolve(exe).ok()??;
    let rel = exe
        .iter()
        .position(|&b| b != b'/')
        .map_or(&exe[..0], |i| &exe[i..]);
    let literal = root.join(std::ffi::OsStr::from_bytes(rel));
    if std::fs::canonicalize(&literal).is_ok_and(|c| c == found) {
        Some(literal)
    } else {
        Some(found)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// The input whose conversion panics, in the test that needs one.
    static PANICS: Mutex<Option<PathBuf>> = Mutex::new(None);

    /// Panics (as a bug would) if `path` is the input a test asked that of.
    pub(crate) fn panic_if_asked(path: &Path) {
        let asked = PANICS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if asked.is_some_and(|p| p == path) {
            panic!("a bug this input finds");
        }
    }

    #[test]
    fn a_panic_fails_its_input_alone_and_the_summary_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let ins = dir.path().join("in");
        std::fs::create_dir_all(&ins).unwrap();
        for name in ["good.tar.zst", "buggy.tar.zst"] {
            std::fs::copy("gdb-fixtures/example.tar.zst", ins.join(name)).unwrap();
        }
        let buggy = std::fs::canonicalize(ins.join("buggy.tar.zst")).unwrap();
        *PANICS.lock().unwrap() = Some(buggy.clone());
        let out = dir.path().join("out");
        let opts = crate::batch::BatchOptions {
            jobs: 2,
            ..Default::default()
        };
        let done = crate::batch::run(std::slice::from_ref(&ins), &out, &opts);
        *PANICS.lock().unwrap() = None;
        let done = done.unwrap();
        let written: crate::batch::Summary =
            serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!((written.run.ok, written.run.failed), (1, 1), "{written:#?}");
        let failed = written
            .inputs
            .iter()
            .find(|s| s.status == Status::Failed)
            .unwrap();
        assert_eq!(failed.input, buggy.display().to_string());
        let e = failed.error.as_deref().unwrap();
        assert!(e.contains("a panic: a bug this input finds"), "{e}");
        assert!(out.join("good/core.12155").is_file());
        // Its directory is gone again (it got no core), the good one's kept.
        assert!(!out.join("buggy").exists());
        assert_eq!(done.this_run.len(), 2);
    }

    #[test]
    fn gdb_commands_quote_every_path_and_use_the_root() {
        let gdb_command = |c: &Path, e: Option<&str>, r: Option<&Path>| {
            super::gdb_command(c, e.map(Path::new), r).unwrap()
        };
        let core = Path::new("out dir/core.7");
        // A compressed core is decompressed first; one in object storage
        // has no command.
        assert_eq!(
            gdb_command(Path::new("out dir/core.7.zst"), Some("/usr/bin/app"), None),
            "zstd -dq 'out dir/core.7.zst' && gdb /usr/bin/app 'out dir/core.7'"
        );
        assert_eq!(
            super::gdb_command(Path::new("s3://b/out/core.7"), Some(Path::new("/a")), None),
            None
        );
        assert_eq!(
            gdb_command(core, Some("/usr/bin/app"), None),
            "gdb /usr/bin/app 'out dir/core.7'"
        );
        assert_eq!(gdb_command(core, None, None), "gdb -c 'out dir/core.7'");
        let root = Path::new("it's root");
        assert_eq!(
            gdb_command(core, Some("it's root/usr/bin/app"), Some(root)),
            r"gdb -iex 'set sysroot it'\''s root' 'it'\''s root/usr/bin/app' 'out dir/core.7'"
        );
    }

    #[test]
    fn the_executable_is_found_in_the_root_or_here_or_said_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("it's root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/app"), b"").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", root.join("abs")).unwrap();
        let find = |e: &str| exe_for_gdb(Some(e.as_bytes()), Some(&root));
        assert_eq!(find("/usr/bin/app").unwrap(), root.join("usr/bin/app"));
        // Through a relative link in the root: the path as given.
        assert_eq!(find("/bin/app").unwrap(), root.join("bin/app"));
        // Through an absolute one, which the host would resolve outside
        // the root: the file it resolves to inside.
        let canon = std::fs::canonicalize(root.join("usr/bin/app")).unwrap();
        assert_eq!(find("/abs/app").unwrap(), canon);
        // Not in the root: no executable rather than a wrong one, and why.
        let why = find("/opt/none").unwrap_err().unwrap();
        assert!(why.message.contains("/opt/none is not in"), "{why}");
        assert_eq!(
            (why.kind, why.file.as_deref()),
            (WarningKind::FileNotFound, Some("/opt/none"))
        );
        // Without a root: the path here, if there is a file there.
        let here = std::env::current_exe().unwrap();
        let here_b = here.as_os_str().as_encoded_bytes();
        assert_eq!(exe_for_gdb(Some(here_b), None).unwrap(), here);
        let why = exe_for_gdb(Some(b"/victim-static\xff"), None)
            .unwrap_err()
            .unwrap()
            .message;
        assert!(
            why.contains("/victim-static\\xff is not on this machine")
                && why.contains("--root")
                && why.contains("--image")
                && why.contains("--sysroot"),
            "{why}"
        );
        // Deleted, or not known: nothing to say.
        assert_eq!(exe_for_gdb(Some(b"/tmp/x (deleted)"), None), Err(None));
        assert_eq!(exe_for_gdb(None, None), Err(None));
    }

    #[test]
    fn shell_quoting_survives_any_word() {
        use crate::text::needs_escape;
        let q = |w: &[u8]| shell_quote(w).map(Cow::into_owned);
        assert_eq!(q(b"cores/core.12").unwrap(), "cores/core.12");
        assert_eq!(q(b"").unwrap(), "''");
        assert_eq!(q(b"a b").unwrap(), "'a b'");
        assert_eq!(q(b"it's").unwrap(), r"'it'\''s'");
        assert_eq!(q(b"$(rm -rf ~)").unwrap(), "'$(rm -rf ~)'");
        assert_eq!(q(b"set sysroot /x").unwrap(), "'set sysroot /x'");
        assert_eq!(q(br"a\b").unwrap(), r"'a\b'");
        assert_eq!(
            q(b"it's \x1b[2J%\\\xff\n.").unwrap(),
            r#""$(printf 'it\047s \033[2J%%\\\377\012.')""#
        );
        assert_eq!(q(b"x\n"), None);
        // What the shell makes of each is the word itself, and what is
        // printed holds nothing a terminal obeys.
        let words: [&[u8]; 8] = [
            b"plain",
            b"it's a 'b' \"c\" $HOME `x` \\",
            b"\xff\xfe not utf-8 '",
            b"\x1b]0;t\x07 \n forged %s %%",
            "bidi \u{202e} c1 \u{9b} ü".as_bytes(),
            b"-n\x01",
            b"\\0101 \\n",
            b"",
        ];
        for w in words {
            let quoted = q(w).unwrap();
            assert!(
                quoted.chars().all(|c| c == '\\' || !needs_escape(c)),
                "{quoted}"
            );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {quoted}"))
                .output()
                .unwrap();
            assert_eq!(o.stdout, w, "{quoted}");
        }
    }
}
