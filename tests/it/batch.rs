//! batch and convert's outputs: names that stay inside the output
//! directory whatever an input is called and wherever it sits on the
//! command line, records that keep one input's cores from replacing
//! another's or mixing with other options' cores, recursion into
//! directories, a summary of everything in the output directory with
//! absolute paths, bad inputs that fail alone, signals and file-size limits
//! that leave no debris, the checkpointctl plugin's help, and every JSON
//! output against its schema.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use crate::Need;
use criu2core::testkit::synth::{self, Spec};
use libtest_mimic::Trial;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_criu2core");

/// A small synthetic checkpoint (pid 1) in `images`; `seed` makes its
/// memory, and so its core, differ from another's.
fn small(images: &Path, seed: u64) -> PathBuf {
    synth::synthesize(
        images,
        &Spec {
            seed,
            processes: 1,
            threads: 1,
            vmas: 10,
            bytes: 256 << 10,
            holes: 4,
            ..Default::default()
        },
    )
    .unwrap();
    images.to_path_buf()
}

fn run(args: &[&OsStr]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// summary.json of `out`, checked against docs/batch.schema.json.
fn summary(out: &Path) -> Value {
    let v: Value = serde_json::from_slice(&fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_schema("batch.schema.json", &v);
    v
}

fn entries(sm: &Value) -> &Vec<Value> {
    sm["inputs"].as_array().unwrap()
}

/// Input → output directory, from a summary.
fn placement(sm: &Value) -> BTreeMap<String, String> {
    entries(sm)
        .iter()
        .map(|e| {
            (
                e["input"].as_str().unwrap().to_string(),
                e["output"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// Every file under `dir` (relative path → modification time), links not followed.
fn files(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, SystemTime>) {
        // Entries may come and go while a conversion runs.
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, m.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.is_dir() {
        walk(dir, dir, &mut out);
    }
    out
}

fn partials(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

/// No terminal control bytes but newlines in what a run printed.
fn assert_plain_terminal_text(o: &Output) {
    for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        let bad: Vec<u8> = bytes
            .iter()
            .copied()
            .filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
            .collect();
        assert!(
            bad.is_empty(),
            "{what} carries control bytes {bad:?}:\n{}",
            text(bytes)
        );
    }
}

fn archive_bytes(images: &Path, name: &[u8]) -> Vec<u8> {
    let kind = if name.ends_with(b".tar.zst") {
        "tar.zst"
    } else if name.ends_with(b".tar.gz") || name.ends_with(b".tgz") {
        "tar.gz"
    } else {
        "tar"
    };
    compress(&podman_tar(images, |_| {}), kind)
}

fn hostile_names_stay_inside_the_output_directory() {
    let base = scratch("batch-names");
    let images = small(&base.join("src/images"), 1);
    let inputs = base.join("in");
    fs::create_dir_all(&inputs).unwrap();
    let names: [&[u8]; 10] = [
        b"...tar.zst",
        b"..tar",
        b".tar",
        b"..tar.gz",
        b"...tgz",
        b"summary.json.tar",
        b".criu2core.lock.tar",
        b".criu2core.json.tar",
        b"esc\x1b]0;owned\x07\n\x1b[2J.tar",
        b"\xff\xfe.tar",
    ];
    for n in names {
        fs::write(inputs.join(OsStr::from_bytes(n)), archive_bytes(&images, n)).unwrap();
    }
    // What an earlier run left beside OUT, which a `..` name would replace.
    fs::write(base.join("core.1"), b"precious").unwrap();
    let out = base.join("out");
    let o = run(&[os("batch"), os(&inputs), os("-o"), os(&out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_plain_terminal_text(&o);
    assert_eq!(fs::read(base.join("core.1")).unwrap(), b"precious");
    let beside: BTreeSet<_> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        beside,
        BTreeSet::from(["core.1", "in", "out", "src"].map(String::from))
    );

    let sm = summary(&out);
    let canon = fs::canonicalize(&out).unwrap();
    let items = entries(&sm);
    assert_eq!(items.len(), names.len(), "{sm:#}");
    let mut dirs = BTreeSet::new();
    for e in items {
        assert_eq!(e["status"], "ok", "{e:#}");
        let dir = PathBuf::from(e["output"].as_str().unwrap());
        assert_eq!(dir.parent(), Some(canon.as_path()), "{e:#}");
        assert!(
            dirs.insert(dir.clone()),
            "two inputs share {}",
            dir.display()
        );
        assert_eq!(e["cores"][0]["path"], dir.join("core.1").to_str().unwrap());
        assert!(dir.join("core.1").is_file());
    }
    // OUT holds batch's own files and one directory per input, nothing else.
    for e in fs::read_dir(&out).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let ty = fs::symlink_metadata(e.path()).unwrap().file_type();
        match name.as_str() {
            "summary.json" | ".criu2core.lock" => assert!(ty.is_file(), "{name}"),
            _ => assert!(ty.is_dir() && dirs.contains(&e.path()), "{name} in OUT"),
        }
    }

    // convert with several inputs names them the same way.
    let out2 = base.join("out2");
    let o = run(&[
        os("convert"),
        os(&inputs.join("...tar.zst")),
        os(&inputs.join("..tar")),
        os(&inputs.join(OsStr::from_bytes(names[8]))),
        os("-o"),
        os(&out2),
        os("--json"),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_plain_terminal_text(&o);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("convert.schema.json", &v);
    let canon2 = fs::canonicalize(&out2).unwrap();
    for e in v["inputs"].as_array().unwrap() {
        let dir = PathBuf::from(e["output"].as_str().unwrap());
        assert_eq!(dir.parent(), Some(canon2.as_path()), "{e:#}");
        assert!(dir.join("core.1").is_file());
    }
    assert_eq!(fs::read(base.join("core.1")).unwrap(), b"precious");
}

/// Two checkpoints both called `images`, with different memory.
fn namesakes(base: &Path) -> (PathBuf, PathBuf) {
    (
        small(&base.join("a/images"), 1),
        small(&base.join("b/images"), 2),
    )
}

fn reordering_the_inputs_moves_nothing() {
    let base = scratch("batch-order");
    let (a, b) = namesakes(&base);
    let out = base.join("out");
    let o = run(&[os("batch"), os(&a), os(&b), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let first = placement(&summary(&out));
    assert_eq!(first.len(), 2);
    let stamps = files(&out);
    let o = run(&[os("batch"), os(&b), os(&a), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sm = summary(&out);
    assert_eq!(sm["run"]["skipped"], 2, "{sm:#}");
    assert_eq!(placement(&sm), first);
    for (f, t) in &stamps {
        // The cores (the lock file says who last took it: rewritten).
        if f.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("core.")
        {
            assert_eq!(files(&out)[f], *t, "{} was written again", f.display());
        }
    }
    // A fresh directory gets the same names in the other order.
    let out2 = base.join("out2");
    let o = run(&[os("batch"), os(&b), os(&a), os("-o"), os(&out2), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let name = |p: &String| Path::new(p).file_name().unwrap().to_owned();
    let second = placement(&summary(&out2));
    for (input, dir) in &first {
        assert_eq!(name(dir), name(&second[input]));
    }
}

fn a_later_batch_keeps_what_an_earlier_one_wrote() {
    let base = scratch("batch-later");
    let (a, b) = namesakes(&base);
    let out = base.join("out");
    let o = run(&[os("batch"), os(&a), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let a_core = fs::read(out.join("images/core.1")).unwrap();
    for extra in [None, Some("--force")] {
        let mut args = vec![os("batch"), os(&b), os("-o"), os(&out), os("-q")];
        args.extend(extra.map(os));
        let o = run(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            fs::read(out.join("images/core.1")).unwrap() == a_core,
            "a's core was replaced"
        );
        let sm = summary(&out);
        let at = placement(&sm);
        assert_eq!(at.len(), 2, "the summary forgot an input: {sm:#}");
        let canon = |p: &Path| fs::canonicalize(p).unwrap().display().to_string();
        assert_eq!(Path::new(&at[&canon(&a)]).file_name().unwrap(), "images");
        let b_dir = PathBuf::from(&at[&canon(&b)]);
        let b_name = b_dir.file_name().unwrap().to_str().unwrap();
        assert!(
            b_name.len() == "images-".len() + 8
                && b_name.starts_with("images-")
                && b_name[7..].bytes().all(|c| c.is_ascii_hexdigit()),
            "{b_name}"
        );
        assert!(fs::read(b_dir.join("core.1")).unwrap() != a_core);
    }
    // While another run holds OUT, a second one writes nothing.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(out.join(".criu2core.lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let before = fs::read(out.join("summary.json")).unwrap();
    let stamps = files(&out);
    let o = run(&[
        os("batch"),
        os(&a),
        os(&b),
        os("-o"),
        os(&out),
        os("-f"),
        os("-q"),
    ]);
    assert!(!o.status.success());
    assert_eq!(fs::read(out.join("summary.json")).unwrap(), before);
    assert_eq!(files(&out), stamps);
    drop(lock);
}

fn filesz_total(core: &Path) -> u64 {
    loads(core).iter().map(|l| l.2).sum()
}

fn options_are_part_of_what_is_complete() {
    let fx = fixture("static");
    let pid = fx.processes[0].pid;
    let base = scratch("batch-options");
    let out = base.join("out");
    let core = out.join(format!("images/core.{pid}"));
    let images = fx.images();
    let batch = |extra: &[&str]| {
        let mut args = vec![os("batch"), os(&images), os("-o"), os(&out), os("-q")];
        args.extend(extra.iter().map(os));
        run(&args)
    };
    let root = fx.sysroot();
    let root = root.to_str().unwrap();
    let o = batch(&[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let plain = fs::read(&core).unwrap();
    let stamp = fs::metadata(&core).unwrap().modified().unwrap();
    // Other options: refused without --force, and the cores stay.
    let o = batch(&["--root", root]);
    assert!(!o.status.success());
    assert!(!o.stderr.is_empty());
    let sm = summary(&out);
    assert_eq!(entries(&sm)[0]["status"], "failed", "{sm:#}");
    assert!(entries(&sm)[0]["options"]["root"].is_null(), "{sm:#}");
    assert_eq!(entries(&sm)[0]["cores"][0]["size"], plain.len());
    assert_eq!(fs::metadata(&core).unwrap().modified().unwrap(), stamp);
    // With --force they are made again, now with the root's file pages.
    let o = batch(&["--root", root, "--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(fs::read(&core).unwrap() != plain);
    let with_root = filesz_total(&core);
    assert!(with_root > loads_of(&plain), "no file pages were added");
    let sm = summary(&out);
    assert_eq!(
        entries(&sm)[0]["options"]["root"],
        fs::canonicalize(root).unwrap().to_str().unwrap()
    );
    // The same options again: complete.
    let o = batch(&["--root", root]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(summary(&out)["run"]["skipped"], 1);
    // Back to no --root: refused again, the --root cores stay.
    let o = batch(&[]);
    assert!(!o.status.success());
    assert_eq!(filesz_total(&core), with_root);
}

/// Sum of PT_LOAD p_filesz of a core held in memory.
fn loads_of(core: &[u8]) -> u64 {
    let elf = goblin::elf::Elf::parse(core).unwrap();
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| p.p_filesz)
        .sum()
}

fn directories_are_searched_in_depth_without_following_links() {
    let base = scratch("batch-depth");
    let images = small(&base.join("src/images"), 3);
    let tar = archive_bytes(&images, b"x.tar");
    let top = base.join("top");
    let put = |rel: &str| {
        let p = top.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &tar).unwrap();
        p
    };
    let mut want = BTreeSet::new();
    want.insert(put("ns1/pod-a/checkpoint-a.tar"));
    copy_dir(&images, &top.join("ns2/app/images"));
    want.insert(top.join("ns2/app/images"));
    // Eight levels below the directory named: found; nine: not.
    want.insert(put("d1/d2/d3/d4/d5/d6/d7/at-8.tar"));
    put("d1/d2/d3/d4/d5/d6/d7/d8/at-9.tar");
    // A checkpoint directory is one input, not searched further.
    copy_dir(&images, &top.join("img"));
    put("img/inner.tar");
    want.insert(top.join("img"));
    // Links lead out of the tree: not followed.
    let far = base.join("outside");
    fs::create_dir_all(&far).unwrap();
    fs::write(far.join("far.tar"), &tar).unwrap();
    std::os::unix::fs::symlink(&far, top.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(far.join("far.tar"), top.join("link.tar")).unwrap();
    fs::write(top.join("notes.txt"), b"not a checkpoint").unwrap();
    let out = base.join("out");
    let o = run(&[os("batch"), os(&top), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sm = summary(&out);
    let got: BTreeSet<PathBuf> = entries(&sm)
        .iter()
        .map(|e| PathBuf::from(e["input"].as_str().unwrap()))
        .collect();
    let want: BTreeSet<PathBuf> = want.iter().map(|p| fs::canonicalize(p).unwrap()).collect();
    assert_eq!(got, want, "{sm:#}");
    assert_eq!(sm["run"]["ok"], 4);
}

fn summary_paths_are_absolute() {
    let base = scratch("batch-paths");
    small(&base.join("in/images"), 4);
    let o = Command::new(BIN)
        .args(["batch", "in", "-o", "out", "-q"])
        .current_dir(&base)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sm = summary(&base.join("out"));
    let canon = fs::canonicalize(base.join("out")).unwrap();
    assert_eq!(sm["out_dir"], canon.to_str().unwrap());
    let check = |e: &Value| {
        for p in [&e["input"], &e["output"], &e["cores"][0]["path"]] {
            let p = Path::new(p.as_str().unwrap());
            assert!(p.is_absolute() && p.exists(), "{}", p.display());
        }
    };
    entries(&sm).iter().for_each(check);
    let o = Command::new(BIN)
        .args(["convert", "in/images", "-o", "out2", "--json"])
        .current_dir(&base)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("convert.schema.json", &v);
    check(&v["inputs"][0]);
}

/// Runs `cmd` with a time limit (a fifo opened by mistake would block forever).
fn run_bounded(args: &[&OsStr]) -> Output {
    let mut all = vec![os("120"), os(BIN)];
    all.extend_from_slice(args);
    let o = Command::new("timeout").args(&all).output().unwrap();
    assert_ne!(o.status.code(), Some(124), "timed out: {}", text(&o.stderr));
    o
}

fn bad_inputs_fail_alone() {
    let base = scratch("batch-bad");
    let good = small(&base.join("good/images"), 5);
    let fifo = base.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let empty = base.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let notes = base.join("notes.txt");
    fs::write(&notes, b"not a checkpoint").unwrap();
    let missing = base.join("missing");
    let out = base.join("out");
    let o = run_bounded(&[
        os("batch"),
        os(&missing),
        os(&fifo),
        os(&good),
        os("/dev/null"),
        os(&notes),
        os(&empty),
        os("-o"),
        os(&out),
        os("-q"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(out.join("images/core.1").is_file());
    let sm = summary(&out);
    assert_eq!(
        (
            sm["run"]["inputs"].as_u64(),
            sm["run"]["ok"].as_u64(),
            sm["run"]["failed"].as_u64()
        ),
        (Some(6), Some(1), Some(5)),
        "{sm:#}"
    );
    for e in entries(&sm).iter().filter(|e| e["status"] == "failed") {
        assert!(e["output"].is_null() && e["error"].is_string(), "{e:#}");
    }
    let top: BTreeSet<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        top,
        BTreeSet::from([".criu2core.lock", "images", "summary.json"].map(String::from))
    );
}

/// Hostile inputs beside a good one: an archive that is no archive, one
/// cut off mid-way through its pages (its conversion fails after it has
/// begun), and one whose pages image is truncated. The good one converts,
/// the batch ends with exit status 1, and summary.json records all four.
fn a_batch_with_hostile_inputs_still_writes_its_summary() {
    let base = scratch("batch-hostile");
    let images = small(&base.join("src/images"), 7);
    let ins = base.join("in");
    fs::create_dir_all(&ins).unwrap();
    let whole = archive_bytes(&images, b"x.tar.zst");
    fs::write(ins.join("good.tar.zst"), &whole).unwrap();
    let mut garbage = b"\x28\xb5\x2f\xfd".to_vec();
    garbage.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    fs::write(ins.join("corrupt.tar.zst"), garbage).unwrap();
    let plain = archive_bytes(&images, b"x.tar");
    fs::write(ins.join("cut.tar"), &plain[..plain.len() * 3 / 4]).unwrap();
    let pages = fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("pages-")
        })
        .unwrap();
    let len = fs::metadata(&pages).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&pages)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    fs::write(
        ins.join("short-pages.tar"),
        archive_bytes(&images, b"x.tar"),
    )
    .unwrap();
    let out = base.join("out");
    let o = run_bounded(&[os("batch"), os(&ins), os("-o"), os(&out), os("-q")]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let sm = summary(&out);
    let by_name: BTreeMap<String, String> = entries(&sm)
        .iter()
        .map(|e| {
            let input = e["input"].as_str().unwrap();
            let name = input.rsplit('/').next().unwrap().to_string();
            (name, e["status"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        by_name,
        BTreeMap::from(
            [
                ("corrupt.tar.zst", "failed"),
                ("cut.tar", "failed"),
                ("good.tar.zst", "ok"),
                ("short-pages.tar", "failed"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        ),
        "{sm:#}"
    );
    for e in entries(&sm).iter().filter(|e| e["status"] == "failed") {
        assert!(e["error"].is_string(), "{e:#}");
    }
    assert!(out.join("good/core.1").is_file());
}

/// Spawns `cmd`, sends it `sig` once `ready` holds, and returns how it ended.
fn interrupt(cmd: &mut Command, sig: &str, ready: impl Fn() -> bool) -> ExitStatus {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("it ended ({st}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "never got ready");
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap()
}

/// Whether a compressed archive is being unpacked into `tmp`.
fn unpacking(tmp: &Path) -> bool {
    fs::read_dir(tmp).unwrap().flatten().any(|d| {
        fs::read_dir(d.path())
            .map(|mut m| m.any(|f| f.is_ok_and(|f| f.metadata().is_ok_and(|m| m.len() > 0))))
            .unwrap_or(false)
    })
}

fn interrupts_remove_partial_cores_and_unpacked_archives() {
    let base = scratch("batch-interrupt");
    // Two processes and 128 MiB of pages: long enough to be caught at work.
    let ck = base.join("ck");
    synth::synthesize(
        &ck.join("checkpoint"),
        &Spec {
            seed: 11,
            processes: 2,
            threads: 1,
            vmas: 64,
            bytes: 128 << 20,
            holes: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let ar = base.join("ck.tar.zst");
    let st = Command::new("sh")
        .arg("-c")
        .arg("tar -C \"$0\" -cf - checkpoint | zstd -q -1 > \"$1\"")
        .arg(&ck)
        .arg(&ar)
        .status()
        .unwrap();
    assert!(st.success());
    let tmp = base.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let listing = |d: &Path| files(d).into_keys().collect::<Vec<_>>();

    // SIGINT while the archive is unpacked: nothing left in TMPDIR or OUT.
    let out = base.join("out-int");
    let st = interrupt(
        Command::new(BIN)
            .args([
                os("convert"),
                os(&ar),
                os("-o"),
                os(&out),
                os("--tmpdir"),
                os(&tmp),
            ])
            .env("TMPDIR", &tmp),
        "INT",
        || unpacking(&tmp),
    );
    assert_eq!(st.code(), Some(130), "{st}");
    assert_eq!(
        fs::read_dir(&tmp).unwrap().count(),
        0,
        "TMPDIR keeps {:?}",
        listing(&tmp)
    );
    assert!(listing(&out).is_empty(), "{:?}", listing(&out));

    // SIGTERM while a core is written: no partial core; a core that was
    // finished before is whole.
    let out = base.join("out-term");
    let st = interrupt(
        Command::new(BIN).args([os("convert"), os(&ck), os("-o"), os(&out)]),
        "TERM",
        || !partials(&out).is_empty(),
    );
    assert_eq!(st.code(), Some(143), "{st}");
    assert!(partials(&out).is_empty(), "{:?}", listing(&out));
    for f in listing(&out) {
        let core = out.join(&f);
        let len = fs::metadata(&core).unwrap().len();
        assert!(
            loads(&core).iter().all(|l| l.1 + l.2 <= len),
            "{} is cut short",
            f.display()
        );
    }

    // SIGHUP during batch; the next run converts the input again.
    let out = base.join("out-hup");
    let st = interrupt(
        Command::new(BIN).args([os("batch"), os(&ck), os("-o"), os(&out), os("-q")]),
        "HUP",
        || out.join("ck").is_dir() && !partials(&out).is_empty(),
    );
    assert_eq!(st.code(), Some(129), "{st}");
    assert!(partials(&out).is_empty(), "{:?}", listing(&out));
    let o = run(&[os("batch"), os(&ck), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(entries(&summary(&out))[0]["status"], "ok");

    // SIGKILL cannot be handled and leaves a partial core; the next run
    // removes it and converts the input again.
    let out = base.join("out-kill");
    let st = interrupt(
        Command::new(BIN).args([os("batch"), os(&ck), os("-o"), os(&out), os("-q")]),
        "KILL",
        || out.join("ck").is_dir() && !partials(&out).is_empty(),
    );
    assert_eq!(st.code(), None);
    assert!(!partials(&out).is_empty());
    let o = run(&[os("batch"), os(&ck), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sm = summary(&out);
    assert_eq!(entries(&sm)[0]["status"], "ok", "{sm:#}");
    assert!(partials(&out).is_empty(), "{:?}", listing(&out));
    // And a complete input's directory is swept too.
    fs::write(out.join("ck/.core.1.AbCdEf.partial"), b"debris").unwrap();
    let o = run(&[os("batch"), os(&ck), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(summary(&out)["run"]["skipped"], 1);
    assert!(partials(&out).is_empty(), "{:?}", listing(&out));
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
}

fn a_file_size_limit_fails_the_write_not_the_process() {
    let base = scratch("batch-fsize");
    let images = small(&base.join("images"), 6);
    for sub in ["convert", "batch"] {
        let out = base.join(format!("out-{sub}"));
        // 128 blocks of 512 bytes: the core is larger.
        let o = Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 128; exec \"$0\" \"$@\"")
            .args([os(BIN), os(sub), os(&images), os("-o"), os(&out)])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{sub}: {}", o.status);
        assert!(!o.stderr.is_empty(), "{sub}: nothing on stderr");
        let left: Vec<_> = files(&out)
            .into_keys()
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("core.") || n.ends_with(".partial")
            })
            .collect();
        assert!(left.is_empty(), "{sub} left {left:?}");
    }
}

fn the_plugin_says_what_it_does_and_does_what_it_says() {
    let plugin = env!("CARGO_BIN_EXE_checkpointctl-coredump");
    let o = Command::new(plugin).arg("--help").output().unwrap();
    assert!(o.status.success());
    let help = text(&o.stdout);
    let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(
        usage.starts_with("Usage: checkpointctl coredump [OPTIONS]") && !usage.contains("convert"),
        "{usage}"
    );
    assert!(!help.contains("criu2core convert"), "{help}");
    let examples: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Examples:")
        .filter(|l| l.starts_with("  checkpointctl"))
        .collect();
    assert!(!examples.is_empty(), "{help}");
    assert!(examples
        .iter()
        .all(|l| l.starts_with("  checkpointctl coredump ") && !l.contains("coredump convert")));
    // As the usage says: inputs and options straight after the plugin's name.
    let base = scratch("batch-plugin");
    let images = small(&base.join("images"), 7);
    let ar = base.join("checkpoint.tar.zst");
    fs::write(&ar, archive_bytes(&images, b".tar.zst")).unwrap();
    let out = base.join("cores");
    let o = Command::new(plugin)
        .args([os(&ar), os("-o"), os(&out), os("--json")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("convert.schema.json", &v);
    assert!(out.join("core.1").is_file());
    let o = Command::new(plugin).arg("--version").output().unwrap();
    assert!(o.status.success() && text(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
}

fn the_schemas_refuse_what_they_do_not_describe() {
    let base = scratch("batch-schema");
    let images = small(&base.join("images"), 8);
    let out = base.join("out");
    let o = run(&[os("batch"), os(&images), os("-o"), os(&out), os("--json")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let printed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("batch.schema.json", &printed);
    assert_eq!(printed, summary(&out), "--json and summary.json differ");
    let schema: Value =
        serde_json::from_slice(&fs::read(repo().join("docs/batch.schema.json")).unwrap()).unwrap();
    let mut bad = printed.clone();
    bad["inputs"][0]["status"] = "weird".into();
    bad["inputs"][0]["cores"][0]["extra"] = 1.into();
    bad["run"] = Value::Null;
    let mut errs = Vec::new();
    validate(&schema, &bad, "$", &mut errs);
    assert!(errs.len() >= 3, "{errs:#?}");
}

/// This module's tests.
/// A convert that fails as a whole (missing input, not a checkpoint, a
/// bad --root, an unknown -p, several bad inputs) leaves no output
/// directory it made (nor its parents it made), and one that existed
/// stays; -o naming a file says it is not a directory; an error names
/// its input once, in batch too.
fn a_failed_convert_leaves_no_directory_and_names_its_input_once() {
    let fx = fixture("mt-pie");
    let base = scratch("convert-fails-clean");
    let images = fx.images();
    let images = images.to_str().unwrap();
    let missing = base.join("missing");
    let missing = missing.to_str().unwrap();
    let junk = base.join("junk");
    fs::create_dir_all(&junk).unwrap();
    let junk = junk.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &[missing],
        &[junk],
        &[images, "--root", missing],
        &[images, "-p", "5"],
        &[junk, missing],
    ];
    for (i, case) in cases.iter().enumerate() {
        let out = base.join(format!("out{i}/a/b"));
        let o = criu2core(
            ["convert", "-o", out.to_str().unwrap()]
                .iter()
                .chain(case.iter()),
        );
        assert!(!o.status.success(), "{case:?}");
        assert!(
            !base.join(format!("out{i}")).exists(),
            "{case:?} left {}",
            out.display()
        );
        let err = String::from_utf8_lossy(&o.stderr);
        for line in err.lines() {
            for name in [missing, junk] {
                assert!(line.matches(name).count() <= 1, "{line}");
            }
        }
    }
    // An existing directory stays, empty or not.
    let kept = base.join("kept");
    fs::create_dir_all(&kept).unwrap();
    let o = criu2core(["convert", missing, "-o", kept.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(kept.is_dir());
    // A file where the directory should be.
    let file = base.join("file");
    fs::write(&file, b"x").unwrap();
    let o = criu2core(["convert", images, "-o", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("not a directory"),
        "{err}"
    );
    assert_eq!(fs::read(&file).unwrap(), b"x");
    // batch names a missing input once.
    let o = criu2core(["batch", missing, "-o", base.join("b").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.matches("missing").count() == 1,
        "{err}"
    );
}

/// The same interrupt delivered twice at once (as `timeout -s INT`
/// signals the process and its group) stops the run as one does, removing
/// its partial core; and a convert into a directory where runs that were
/// killed left temporary files removes those of ours whose process has
/// ended, and nothing else.
fn two_signals_at_once_and_stale_partials_leave_nothing() {
    let base = scratch("two-signals");
    let ck = base.join("ck");
    synth::synthesize(
        &ck,
        &Spec {
            seed: 12,
            processes: 2,
            threads: 1,
            vmas: 64,
            bytes: 128 << 20,
            holes: 0,
            ..Default::default()
        },
    )
    .unwrap();
    for round in 0..3 {
        let out = base.join(format!("out{round}"));
        let mut child = Command::new(BIN)
            .args([os("convert"), os(&ck), os("-o"), os(&out)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while partials(&out).is_empty() {
            assert!(child.try_wait().unwrap().is_none(), "ended too soon");
            assert!(Instant::now() < deadline, "never got ready");
            std::thread::sleep(Duration::from_millis(1));
        }
        let pid = child.id().to_string();
        let st = Command::new("kill")
            .args(["-s", "INT", &pid, &pid])
            .status()
            .unwrap();
        assert!(st.success());
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(130), "{st}");
        assert!(
            partials(&out).is_empty(),
            "round {round}: {:?}",
            partials(&out)
        );
    }

    // Debris of a run that ended, of one still running (this test), and
    // of others.
    let images = small(&base.join("small"), 3);
    let out = base.join("debris");
    fs::create_dir_all(&out).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let mine = std::process::id();
    let names = [
        format!(".core.1.criu2core-{dead}-AbC123.partial"),
        format!(".core.1.criu2core-{mine}-AbC123.partial"),
        ".core.1.AbCdEf.partial".to_string(),
        ".notes.partial".to_string(),
    ];
    for n in &names {
        fs::write(out.join(n), b"debris").unwrap();
    }
    let o = run(&[os("convert"), os(&images), os("-o"), os(&out), os("-q")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!out.join(&names[0]).exists());
    for n in &names[1..] {
        assert!(out.join(n).exists(), "{n} removed");
    }
}

pub fn tests() -> Vec<Trial> {
    trials![
        hostile_names_stay_inside_the_output_directory,
        reordering_the_inputs_moves_nothing,
        a_later_batch_keeps_what_an_earlier_one_wrote,
        options_are_part_of_what_is_complete,
        directories_are_searched_in_depth_without_following_links,
        summary_paths_are_absolute,
        bad_inputs_fail_alone needs [Need::Tool("mkfifo"), Need::Tool("timeout")],
        a_batch_with_hostile_inputs_still_writes_its_summary needs [Need::Tool("timeout")],
        interrupts_remove_partial_cores_and_unpacked_archives needs [Need::Tool("tar"), Need::Tool("zstd"), Need::Tool("kill")],
        a_file_size_limit_fails_the_write_not_the_process,
        the_plugin_says_what_it_does_and_does_what_it_says,
        the_schemas_refuse_what_they_do_not_describe,
        a_failed_convert_leaves_no_directory_and_names_its_input_once,
        two_signals_at_once_and_stale_partials_leave_nothing needs [Need::Tool("kill")],
    ]
}
