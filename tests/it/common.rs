//! Shared helpers for the integration tests: the real CRIU fixtures in
//! gdb-fixtures/, unpacked once per build, and ways to run criu2core and gdb.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// One process of a fixture, as processes.tsv describes it.
#[derive(Debug, Clone)]
pub struct FixtureProcess {
    pub pid: u32,
    pub host_pid: u32,
    pub comm: String,
    /// The command line with NULs shown as spaces (trailing NUL included).
    pub cmdline: String,
    /// Path of the executable inside the sysroot.
    pub exe: String,
}

/// An unpacked fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub processes: Vec<FixtureProcess>,
    pub markers: Vec<String>,
    /// Zombies (zombies.txt, where the fixture has one): pids with no
    /// gcore core and no core of ours.
    pub zombies: Vec<u32>,
}

impl Fixture {
    pub fn images(&self) -> PathBuf {
        self.dir.join("images")
    }
    pub fn sysroot(&self) -> PathBuf {
        self.dir.join("sysroot")
    }
    pub fn gcore(&self, p: &FixtureProcess) -> PathBuf {
        self.dir.join(format!("gcore/core.{}", p.host_pid))
    }
    pub fn exe(&self, p: &FixtureProcess) -> PathBuf {
        self.sysroot().join(p.exe.trim_start_matches('/'))
    }
}

pub const FIXTURES: [&str; 3] = ["mt-pie", "fork-shared", "static"];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory for this test binary's run.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Unpacks `archive` (a .tar.zst holding one directory `name`; GNU tar keeps
/// sparse files sparse) under the target directory, once, and returns where.
pub fn unpack(archive: &Path, name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    // One directory per version of the archive, so a regenerated fixture is
    // never served from a stale copy.
    let meta = fs::metadata(archive).unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let version = base.join(format!("{name}.{}-{mtime}", meta.len()));
    let dir = version.join(name);
    if !dir.exists() {
        fs::create_dir_all(&version).unwrap();
        let tmp = tempfile::tempdir_in(&version).unwrap();
        let st = Command::new("tar")
            .arg("--zstd")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(tmp.path())
            .status()
            .expect("run tar");
        assert!(st.success(), "cannot unpack {}", archive.display());
        // Another test binary may have won the race; either copy is fine.
        let _ = fs::rename(tmp.path().join(name), &dir);
    }
    dir
}

/// Unpacks gdb-fixtures/NAME.tar.zst under the target directory, once.
pub fn fixture(name: &str) -> Fixture {
    let dir = unpack(&repo().join(format!("gdb-fixtures/{name}.tar.zst")), name);
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
    let exes: BTreeMap<u32, String> = read("exe.txt")
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(pid, path)| (pid.parse().unwrap(), path.to_string()))
        .collect();
    let processes = read("processes.tsv")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '\t').collect();
            let pid = f[0].parse().unwrap();
            FixtureProcess {
                pid,
                host_pid: f[1].parse().unwrap(),
                comm: f[2].to_string(),
                cmdline: f[3].to_string(),
                exe: exes[&pid].clone(),
            }
        })
        .collect();
    let markers = read("markers.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let zombies = fs::read_to_string(dir.join("zombies.txt"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    Fixture {
        name: name.to_string(),
        dir,
        processes,
        markers,
        zombies,
    }
}

/// Runs criu2core with `args`.
pub fn criu2core<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_criu2core"))
        .args(args)
        .output()
        .expect("run criu2core")
}

/// The static dev criu2core that scripts/build-static builds (with the
/// yara feature, as releases and the image ship it) into this target
/// directory, built at most once per run; scripts/build-image, which the
/// deploy tests run, builds the same binary.
pub fn static_criu2core() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
        let o = Command::new(repo().join("scripts/build-static"))
            .args(["--profile", "dev"])
            .env("CARGO_TARGET_DIR", target)
            .output()
            .expect("run scripts/build-static");
        assert!(
            o.status.success(),
            "scripts/build-static: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
    })
}

/// A criu2core with the yara feature: the tests' own where they were built
/// with `--features yara`, else [`static_criu2core`] (see `Need::Yara`).
pub fn yara_criu2core() -> PathBuf {
    if cfg!(feature = "yara") {
        PathBuf::from(env!("CARGO_BIN_EXE_criu2core"))
    } else {
        static_criu2core().to_path_buf()
    }
}

/// Runs criu2core and insists that it succeeds.
pub fn convert_ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let out = criu2core(args.iter().map(|a| a.as_ref()));
    assert!(
        out.status.success(),
        "criu2core {:?} failed:\n{}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Converts a fixture's images (optionally with --root) into a fresh directory.
/// Each (fixture, tag) is converted once per test binary, however many
/// tests ask for it at once.
pub fn convert_fixture(fx: &Fixture, tag: &str, extra: &[&str]) -> PathBuf {
    static DONE: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let key = format!("{}-{tag}", fx.name);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = done.get(&key) {
        return out.clone();
    }
    let out = scratch(&key);
    let mut args: Vec<std::ffi::OsString> = vec![
        "convert".into(),
        fx.images().into(),
        "-o".into(),
        out.clone().into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let o = criu2core(&args);
    assert!(
        o.status.success(),
        "convert {} failed: {}",
        fx.name,
        String::from_utf8_lossy(&o.stderr)
    );
    done.insert(key, out.clone());
    out
}

/// Runs gdb in batch mode on `core` with `commands` (each its own -ex, so
/// one that fails does not stop the rest), returning everything it printed
/// (stdout and stderr interleaved as a terminal would show them).
pub fn gdb(sysroot: Option<&Path>, exe: Option<&Path>, core: &Path, commands: &[String]) -> String {
    run_gdb("gdb", sysroot, exe, core, commands)
}

/// [`gdb`] with another gdb program (gdb-multiarch).
pub fn run_gdb(
    program: &str,
    sysroot: Option<&Path>,
    exe: Option<&Path>,
    core: &Path,
    commands: &[String],
) -> String {
    let mut args: Vec<String> = [
        "set pagination off",
        "set width 0",
        "set height 0",
        "set confirm off",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(s) = sysroot {
        args.push(format!("set sysroot {}", s.display()));
    }
    if let Some(e) = exe {
        args.push(format!("file {}", e.display()));
    }
    args.push(format!("core-file {}", core.display()));
    args.extend(commands.iter().cloned());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" -nx -batch \"$@\" 2>&1")
        .arg(program);
    for a in &args {
        cmd.arg("-ex").arg(a);
    }
    // Not from the checkout: gdb would find the fixtures' sources there by
    // their relative DWARF paths and warn when the checkout is newer.
    cmd.current_dir(std::env::temp_dir());
    let out = cmd.output().expect("run gdb");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A section of [`sections`] output, empty if gdb never printed it.
pub fn sec<'a>(map: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    map.get(name).map_or("", String::as_str)
}

/// Splits gdb output into sections opened by `echo @@NAME\n` commands.
pub fn sections(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current = String::from("@load");
    let mut body = String::new();
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            map.insert(
                std::mem::replace(&mut current, name.to_string()),
                std::mem::take(&mut body),
            );
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    map.insert(current, body);
    map
}

/// Splits `thread apply all …` output into LWP → lines.
pub fn per_thread(section: &str) -> BTreeMap<u32, Vec<String>> {
    let mut map: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut lwp = None;
    for line in section.lines() {
        if line.starts_with("Thread ") && line.ends_with("):") {
            lwp = line
                .rsplit_once("(LWP ")
                .and_then(|(_, r)| r.split(')').next()?.parse().ok());
            if let Some(l) = lwp {
                map.entry(l).or_default();
            }
            continue;
        }
        if let Some(l) = lwp {
            if !line.trim().is_empty() {
                map.entry(l).or_default().push(line.to_string());
            }
        }
    }
    map
}

/// The ELF program headers of a core: (vaddr, offset, filesz, memsz, flags) of each PT_LOAD.
pub fn loads(core: &Path) -> Vec<(u64, u64, u64, u64, u32)> {
    let data = fs::read(core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| (p.p_vaddr, p.p_offset, p.p_filesz, p.p_memsz, p.p_flags))
        .collect()
}

/// Every (needle, address) where one of `needles` sits in the file data of a core's PT_LOADs.
pub fn find_in_core(core: &Path, needles: &[String]) -> Vec<(String, u64)> {
    let data = fs::read(core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    let mut found = Vec::new();
    for needle in needles {
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        for p in elf
            .program_headers
            .iter()
            .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        {
            let bytes = &data[p.p_offset as usize..(p.p_offset + p.p_filesz) as usize];
            found.extend(
                finder
                    .find_iter(bytes)
                    .map(|i| (needle.clone(), p.p_vaddr + i as u64)),
            );
        }
    }
    found
}

/// The notes of a core: (owner, type, desc).
pub fn notes(core: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let data = fs::read(core).unwrap();
    let elf = goblin::elf::Elf::parse(&data).unwrap();
    let mut out = Vec::new();
    for notes in elf.iter_note_headers(&data).unwrap() {
        let n = notes.unwrap();
        out.push((n.name.to_string(), n.n_type, n.desc.to_vec()));
    }
    out
}

/// pr_psargs of a core's NT_PRPSINFO, up to its NUL.
pub fn prpsinfo_psargs(core: &Path) -> Vec<u8> {
    let ps = notes(core)
        .into_iter()
        .find(|n| n.1 == 3)
        .expect("NT_PRPSINFO")
        .2;
    // pr_psargs is the last 80 bytes in every layout (56..136 on 64-bit
    // targets, 44..124 on i386).
    let args = &ps[ps.len() - 80..];
    args[..args.iter().position(|&b| b == 0).unwrap_or(80)].to_vec()
}

/// A CRIU image split into its header and raw entries.
#[derive(Debug, Clone)]
pub struct RawImage {
    pub header: Vec<u8>,
    pub entries: Vec<Vec<u8>>,
}

const IMG_COMMON: u32 = 0x5456_4319;
const IMG_SERVICE: u32 = 0x5510_5940;

/// Reads an image as header + length-prefixed entries.
pub fn read_raw(path: &Path) -> RawImage {
    let data = fs::read(path).unwrap();
    let first = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let mut pos = if first == IMG_COMMON || first == IMG_SERVICE {
        8
    } else {
        4
    };
    let header = data[..pos].to_vec();
    let mut entries = Vec::new();
    while pos < data.len() {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        entries.push(data[pos + 4..pos + 4 + len].to_vec());
        pos += 4 + len;
    }
    RawImage { header, entries }
}

/// Writes an image back.
pub fn write_raw(path: &Path, img: &RawImage) {
    let mut data = img.header.clone();
    for e in &img.entries {
        data.extend_from_slice(&(e.len() as u32).to_le_bytes());
        data.extend_from_slice(e);
    }
    fs::write(path, data).unwrap();
}

/// Decodes, changes and re-encodes every entry of an image as message `M`.
pub fn edit_image<M: prost::Message + Default>(
    path: &Path,
    skip: usize,
    mut f: impl FnMut(usize, &mut M),
) {
    let mut img = read_raw(path);
    for (i, e) in img.entries.iter_mut().enumerate().skip(skip) {
        let mut m = M::decode(&e[..]).unwrap();
        f(i, &mut m);
        *e = m.encode_to_vec();
    }
    write_raw(path, &img);
}

/// Copies a directory of regular files.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// Podman's config.dump for a test container.
pub const CONFIG_DUMP: &str = r#"{"id":"4f1c0de7a9b24b5e8f7d6c5b4a392817","name":"victim-ctr","rootfsImageName":"localhost/victim:latest","runtime":"crun","createdTime":"2026-11-20T10:00:00.5Z","checkpointedTime":"2026-11-20T11:22:33Z","restoredTime":"0001-01-01T00:00:00Z","restored":false}"#;
/// Podman's spec.dump (the OCI spec; only what identifies the engine).
pub const SPEC_DUMP: &str =
    r#"{"ociVersion":"1.0.2-dev","annotations":{"io.container.manager":"libpod"}}"#;

/// Appends a regular file to a tar being built.
pub fn tar_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

/// A container checkpoint archive of a fixture in Podman's layout, as
/// bytes of a plain tar; `extra` may add members.
pub fn podman_tar(images: &Path, extra: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    podman_tar_with(images, CONFIG_DUMP, extra)
}

/// [`podman_tar`] with `config` as config.dump.
pub fn podman_tar_with(
    images: &Path,
    config: &str,
    extra: impl FnOnce(&mut tar::Builder<Vec<u8>>),
) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut names: Vec<_> = fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for n in names {
        tar_file(
            &mut b,
            &format!("checkpoint/{n}"),
            &fs::read(images.join(&n)).unwrap(),
        );
    }
    tar_file(&mut b, "config.dump", config.as_bytes());
    tar_file(&mut b, "spec.dump", SPEC_DUMP.as_bytes());
    tar_file(
        &mut b,
        "stats-dump",
        &fs::read(images.join("stats-dump")).unwrap_or_default(),
    );
    extra(&mut b);
    b.into_inner().unwrap()
}

/// Compresses tar bytes: "tar", "tar.gz" or "tar.zst".
pub fn compress(tar: &[u8], kind: &str) -> Vec<u8> {
    use std::io::Write;
    match kind {
        "tar" => tar.to_vec(),
        "tar.gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        "tar.zst" => {
            // With frame checksums, as Podman's and CRI-O's zstd writers do.
            let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
            e.include_checksum(true).unwrap();
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        other => panic!("unknown compression {other}"),
    }
}

/// Checks `v` against the subset of JSON Schema our schemas use (type,
/// const, enum, required, properties, additionalProperties, items,
/// propertyNames, oneOf); returns every violation.
pub fn validate(
    schema: &serde_json::Value,
    v: &serde_json::Value,
    at: &str,
    errs: &mut Vec<String>,
) {
    use serde_json::Value;
    let type_ok = |t: &str| match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    };
    match schema.get("type") {
        Some(Value::String(t)) if !type_ok(t) => errs.push(format!("{at}: not {t}: {v}")),
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or(""))) => {
            errs.push(format!("{at}: not any of {ts:?}: {v}"))
        }
        _ => {}
    }
    if let Some(Value::Array(alts)) = schema.get("oneOf") {
        let fits: Vec<Vec<String>> = alts
            .iter()
            .map(|alt| {
                let mut e = Vec::new();
                validate(alt, v, at, &mut e);
                e
            })
            .collect();
        match fits.iter().filter(|e| e.is_empty()).count() {
            1 => {}
            0 => errs.push(format!("{at}: fits none of oneOf: {fits:?}")),
            n => errs.push(format!("{at}: fits {n} of oneOf's alternatives")),
        }
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            errs.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(Value::Array(e)) = schema.get("enum") {
        if !e.contains(v) {
            errs.push(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Value::Object(obj) = v {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap_or("")) {
                errs.push(format!("{at}: missing {r}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, val) in obj {
            if let Some(names) = schema.get("propertyNames") {
                validate(
                    names,
                    &Value::String(k.clone()),
                    &format!("{at}.{k}(name)"),
                    errs,
                );
            }
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, val, &format!("{at}.{k}"), errs),
                (None, Some(Value::Bool(false))) => {
                    errs.push(format!("{at}: unexpected field {k}"))
                }
                (None, Some(s @ Value::Object(_))) => validate(s, val, &format!("{at}.{k}"), errs),
                _ => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, it) in items.iter().enumerate() {
            validate(s, it, &format!("{at}[{i}]"), errs);
        }
    }
}

/// Whether `tool` is a program on PATH.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            fs::metadata(d.join(tool)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// lldb as this machine names it: `lldb`, or Debian's versioned `lldb-NN`
/// (the newest) where no plain `lldb` is installed.
pub fn lldb_program() -> Option<String> {
    if on_path("lldb") {
        return Some("lldb".into());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter_map(|d| fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version: u32 = name.strip_prefix("lldb-")?.parse().ok()?;
            on_path(&name).then_some((version, name))
        })
        .max()
        .map(|(_, name)| name)
}

/// A Python that has drgn with its module API (0.0.25 or later).
pub fn drgn_python() -> Option<String> {
    let mut candidates: Vec<String> = std::env::var("DRGN_PYTHON").into_iter().collect();
    candidates.push(
        repo()
            .join("target/ci-venv/bin/python")
            .display()
            .to_string(),
    );
    candidates.push("python3".into());
    candidates.into_iter().find(|py| {
        Command::new(py)
            .arg("-c")
            .arg("import drgn; drgn.Program().loaded_modules")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Fixtures whose mapped libraries tools read from the host.
pub const HOST_LIBRARY_FIXTURES: [&str; 4] = ["mt-pie", "fork-shared", "static", "i386"];

/// Which shared libraries the fixtures' processes mapped that the host
/// lacks at the same paths, or `None` if it has them all. Debian 12's
/// eu-stack and lldb take no sysroot for a core and read them from the
/// host: for the x86-64 fixtures they are the host's own libc, for the
/// i386 one those of package libc6-i386 (installed by .ci/run). Either
/// tool reads gcore's core and ours from the same files, so a comparison
/// stands whichever build they are.
pub fn missing_fixture_libraries() -> Option<String> {
    let mut missing = Vec::new();
    for name in HOST_LIBRARY_FIXTURES {
        let fx = fixture(name);
        missing.extend(
            ["usr/lib32", "usr/lib/x86_64-linux-gnu"]
                .iter()
                .filter_map(|d| fs::read_dir(fx.sysroot().join(d)).ok())
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".so"))
                .map(|e| Path::new("/").join(e.path().strip_prefix(fx.sysroot()).unwrap()))
                .filter(|p| !p.exists())
                .map(|p| p.display().to_string()),
        );
    }
    missing.sort();
    missing.dedup();
    (!missing.is_empty()).then(|| {
        format!(
            "the host lacks {}, which eu-stack and lldb read (package libc6-i386)",
            missing.join(", ")
        )
    })
}

/// Why a private mount namespace with a tmpfs mount cannot be had here
/// (`unshare -m` needs root or user namespaces), or `None` if it can.
pub fn mount_namespace_unavailable() -> Option<String> {
    let dir = tempfile::tempdir().ok()?;
    let probe = Command::new("unshare")
        .arg("-m")
        .arg("mount")
        .args(["-t", "tmpfs", "none"])
        .arg(dir.path())
        .output();
    match probe {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "no private mount namespace (unshare -m: {})",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("no private mount namespace (unshare: {e})")),
    }
}

/// Runs `script` with sh in a private mount namespace in which each of
/// `hide` that exists is covered by an empty tmpfs, from `cwd`; returns
/// what it printed (stdout and stderr) and whether it succeeded.
pub fn run_hiding(hide: &[&str], cwd: &Path, script: &str) -> (bool, String) {
    let mut full = String::from("set -e\n");
    for d in hide {
        full.push_str(&format!(
            "if [ -d {d} ]; then mount -t tmpfs none {d}; fi\n"
        ));
    }
    full.push_str(script);
    let o = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(&full)
        .current_dir(cwd)
        .output()
        .expect("run unshare");
    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

/// A copy of a fixture's sysroot under `dir`, completed as an installed
/// system is: the program interpreter also at /lib64, its PT_INTERP path
/// (the fixtures hold it only where the processes mapped it).
pub fn complete_sysroot(fx: &Fixture, dir: &Path) -> PathBuf {
    let root = dir.join("sysroot");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fx.sysroot())
        .arg(&root)
        .status()
        .expect("run cp");
    assert!(st.success());
    fs::create_dir_all(root.join("usr/lib64")).unwrap();
    std::os::unix::fs::symlink(
        "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        root.join("usr/lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    root
}

/// A stand-in for checkpointctl that follows its plugin protocol: plugins
/// are `checkpointctl-NAME` executables in PATH that answer
/// `--plugin-description` with one line and exit code 42; `checkpointctl
/// NAME ARGS...` runs `checkpointctl-NAME ARGS...`.
pub const CHECKPOINTCTL: &str = r#"#!/bin/sh
if [ "$1" = "plugins" ]; then
    IFS=:
    for d in $PATH; do
        for p in "$d"/checkpointctl-*; do
            [ -x "$p" ] || continue
            desc=$(timeout 0.5 "$p" --plugin-description 2>/dev/null)
            [ $? -eq 42 ] && echo "${p##*/checkpointctl-}: $desc"
        done
    done
    exit 0
fi
name=$1; shift
exec "checkpointctl-$name" "$@"
"#;

/// Checks `v` against docs/`schema_file` and panics with every violation.
pub fn assert_schema(schema_file: &str, v: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_slice(&fs::read(repo().join("docs").join(schema_file)).unwrap()).unwrap();
    let mut errs = Vec::new();
    validate(&schema, v, "$", &mut errs);
    assert!(
        errs.is_empty(),
        "not valid against {schema_file}: {errs:#?}\n{v:#}"
    );
}
