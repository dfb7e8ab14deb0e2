//! A core is evidence: a file under --root (or in an image, or among a
//! container's changed files) reaches a core, a sysroot, `read` or
//! `grep --files` only if it is the file CRIU recorded — its size, and its
//! build-id where one was recorded — and a file deleted while open is
//! taken from the checkpoint itself (real CRIU 4.2 fixtures).

use std::path::{Path, PathBuf};

use crate::common::*;
use libtest_mimic::Trial;
use serde_json::Value;

/// The static fixture's executable, as files.img records it.
const EXE: &str = "srv/victim/victim-static";
const EXE_SIZE: u64 = 877_920;
/// Bytes a decoy holds in its first page, which the real file does not.
const DECOY: &[u8] = b"DECOY_BYTES_4711";

/// A root holding, at the static fixture's executable path, `bytes`.
fn decoy_root(tag: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch(&format!("trust-{tag}"));
    let root = dir.join("root");
    std::fs::create_dir_all(root.join(EXE).parent().unwrap()).unwrap();
    std::fs::write(root.join(EXE), bytes).unwrap();
    root
}

/// Where the 20 bytes of an executable's build-id are: after its
/// NT_GNU_BUILD_ID note's head (namesz 4, descsz 20, type 3, "GNU").
fn build_id_at(b: &[u8]) -> usize {
    let head = [4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
    b.windows(head.len())
        .position(|w| w == head)
        .expect("a build-id note")
        + head.len()
}

/// The real executable with DECOY written into its first page (which the
/// process maps) and, with `other_id`, one byte of its build-id changed.
fn doctored(other_id: bool) -> Vec<u8> {
    let fx = fixture("static");
    let mut b = std::fs::read(fx.sysroot().join(EXE)).unwrap();
    assert_eq!(b.len() as u64, EXE_SIZE);
    b[0x800..0x800 + DECOY.len()].copy_from_slice(DECOY);
    if other_id {
        let at = build_id_at(&b);
        b[at] ^= 0xff;
    }
    b
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Converts the static fixture with `root` and a sysroot; the report.
fn convert_with(tag: &str, root: &Path) -> (PathBuf, PathBuf, Value, String) {
    let fx = fixture("static");
    let dir = scratch(&format!("trust-{tag}-out"));
    let (out, sysroot) = (dir.join("cores"), dir.join("sysroot"));
    let o = convert_ok(&[
        &"convert",
        &fx.images(),
        &"--root",
        &root,
        &"--sysroot",
        &sysroot,
        &"--json",
        &"-o",
        &out,
    ]);
    (
        out,
        sysroot,
        json(&o),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Checks that a decoy at the executable's path was used nowhere, and
/// that every output says why in the words `why`.
fn refused(tag: &str, bytes: &[u8], why: &str) {
    let fx = fixture("static");
    let root = decoy_root(tag, bytes);
    let (out, sysroot, report, stderr) = convert_with(tag, &root);
    let pid = fx.processes[0].pid;
    let said =
        format!("/{EXE}: not the file the checkpoint recorded ({why}): its pages are left out");
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    let input = &report["inputs"][0];
    assert_schema("convert.schema.json", &report);
    let w = &input["warnings"][0];
    assert_eq!(w["message"], format!("pid {pid}: {said}"));
    assert_eq!(
        (&w["kind"], &w["file"]),
        (&"file_mismatch".into(), &format!("/{EXE}").into())
    );
    let core = &input["cores"][0];
    assert_eq!(core["files"][0]["path"], format!("/{EXE}"));
    assert_eq!(core["files"][0]["status"], "mismatch");
    assert_eq!(core["files"][0]["detail"], why);
    // gdb is not pointed at the decoy.
    let gdb = core["gdb_command"].as_str().unwrap();
    assert!(gdb.contains(" -c ") && !gdb.contains(EXE), "{gdb}");
    assert!(!sysroot.join(EXE).exists(), "the decoy reached the sysroot");
    // The core is the one made with no root at all.
    let plain = convert_fixture(&fx, "plain", &[]);
    let name = format!("core.{pid}");
    assert!(
        std::fs::read(out.join(&name)).unwrap() == std::fs::read(plain.join(&name)).unwrap(),
        "the core differs from the one made without a root"
    );
    // read and grep --files do not return its bytes.
    let pid_s = pid.to_string();
    let images = fx.images();
    let root_s = root.to_str().unwrap();
    let r = criu2core([
        "read",
        images.to_str().unwrap(),
        "--root",
        root_s,
        "-p",
        &pid_s,
        "0x400800",
        "16",
    ]);
    assert!(!r.status.success() && r.stdout.is_empty(), "{r:?}");
    let g = criu2core([
        "grep",
        "--files",
        "--root",
        root_s,
        "DECOY_BYTES_4711",
        images.to_str().unwrap(),
    ]);
    assert_eq!(g.status.code(), Some(1), "{g:?}");
    // inspect says so.
    let i = criu2core(["inspect", images.to_str().unwrap(), "--root", root_s]);
    let text = String::from_utf8_lossy(&i.stdout);
    assert!(
        text.contains(&format!("/{EXE} (5 mappings, 760.0 KiB; mismatch: {why})")),
        "{text}"
    );
}

/// The real file with extra bytes: the same build-id, another size.
fn a_decoy_of_another_size_is_refused() {
    let mut bytes = doctored(false);
    bytes.extend_from_slice(b"trailing bytes");
    let why = format!("recorded {EXE_SIZE} bytes, found {} bytes", bytes.len());
    refused("size", &bytes, &why);
}

/// The same size, another build-id.
fn a_decoy_with_another_build_id_is_refused() {
    let fx = fixture("static");
    let real = std::fs::read(fx.sysroot().join(EXE)).unwrap();
    let bytes = doctored(true);
    let at = build_id_at(&real);
    let id = |b: &[u8]| -> String { b[at..at + 20].iter().map(|x| format!("{x:02x}")).collect() };
    let why = format!("recorded build-id {}, found {}", id(&real), id(&bytes));
    refused("build-id", &bytes, &why);
}

/// The file CRIU recorded is used and said to be verified, and a file
/// whose size and build-id match is used even where other bytes differ
/// (what CRIU records cannot tell those apart): DECOY is found there.
fn the_recorded_file_is_verified_and_used() {
    let fx = fixture("static");
    let images = fx.images();
    let sysroot = fx.sysroot();
    let i = criu2core([
        "inspect",
        images.to_str().unwrap(),
        "--root",
        sysroot.to_str().unwrap(),
        "--json",
    ]);
    let v = json(&i);
    let f = &v["processes"][0]["memory"]["files"][0];
    assert_eq!(f["status"], "verified", "{f}");
    assert_eq!(f["detail"], "matches the recorded size, build-id");
    let root = decoy_root("same", &doctored(false));
    let g = criu2core([
        "grep",
        "--files",
        "--root",
        root.to_str().unwrap(),
        "DECOY_BYTES_4711",
        images.to_str().unwrap(),
    ]);
    assert_eq!(g.status.code(), Some(0), "{g:?}");
}

/// The ghost fixture: a deleted executable and library are read from the
/// checkpoint with no root: inspect says so, grep --files finds their
/// read-only strings at the addresses gcore's core has them (grep alone,
/// which searches memory, does not), read returns them, and --sysroot
/// writes the files as they were.
fn deleted_files_come_from_the_checkpoint() {
    let fx = fixture("ghost");
    let images = fx.images();
    let img = images.to_str().unwrap();
    let i = criu2core(["inspect", img]);
    let text = String::from_utf8_lossy(&i.stdout);
    for (path, size) in [
        ("/srv/ghost/ghost", 29680),
        ("/srv/ghost/lib/libghost.so", 26832),
    ] {
        let want = format!(
            "{path} (deleted) (5 mappings, 28.0 KiB; ghost: deleted; kept in the checkpoint, {size} bytes)"
        );
        assert!(text.contains(&want), "{want}\n{text}");
    }
    let p = &fx.processes[0];
    let gcore: Vec<(String, u64)> = find_in_core(&fx.gcore(p), &fx.markers);
    for marker in ["GHOST_RODATA_3377", "GHOST_EXE_RODATA_5519"] {
        let at: Vec<u64> = gcore
            .iter()
            .filter(|(m, _)| m == marker)
            .map(|(_, a)| *a)
            .collect();
        assert_eq!(at.len(), 1, "{marker} in gcore's core: {at:?}");
        let g = criu2core(["grep", "--files", "--json", marker, img]);
        let hits: Vec<u64> = String::from_utf8_lossy(&g.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| v["address"].as_u64().unwrap())
            .collect();
        assert_eq!(hits, at, "{marker}: {g:?}");
        let memory_only = criu2core(["grep", marker, img]);
        assert_eq!(memory_only.status.code(), Some(1), "{memory_only:?}");
        let r = criu2core([
            "read",
            img,
            "-p",
            &p.pid.to_string(),
            &format!("{:#x}", at[0]),
            &marker.len().to_string(),
        ]);
        assert_eq!(r.stdout, marker.as_bytes(), "{r:?}");
    }
    let dir = scratch("trust-ghost");
    let sysroot = dir.join("sysroot");
    let o = convert_ok(&[
        &"convert",
        &images,
        &"--sysroot",
        &sysroot,
        &"-o",
        &dir.join("cores"),
        &"--json",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("no --image or --root to take the files the checkpoint does not hold from"),
        "{stderr}"
    );
    let report = json(&o);
    assert_schema("convert.schema.json", &report);
    assert!(
        report["inputs"][0]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["kind"] == "no_root" && w["file"].is_null()),
        "{report}"
    );
    for f in ["srv/ghost/ghost", "srv/ghost/lib/libghost.so"] {
        assert!(
            std::fs::read(sysroot.join(f)).unwrap() == std::fs::read(fx.sysroot().join(f)).unwrap(),
            "{f}"
        );
    }
}

pub fn tests() -> Vec<Trial> {
    trials![
        a_decoy_of_another_size_is_refused,
        a_decoy_with_another_build_id_is_refused,
        the_recorded_file_is_verified_and_used,
        deleted_files_come_from_the_checkpoint,
    ]
}
