//! A guard on the bytes of every core: the sha256 of each fixture's cores
//! (every architecture, with and without --root) must match
//! `tests/core-hashes.txt`. Refactoring must leave them as they are; a
//! change that means to alter a core updates the recorded hashes
//! (`CRIU2CORE_BLESS=1 cargo test --test it hashes::`) and says why in its
//! commit message.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::*;
use libtest_mimic::Trial;

/// The cases: a name, the fixture archive under gdb-fixtures/, the fixture
/// directory's name, and whether to read file pages from its sysroot.
const CASES: [(&str, &str, &str, bool); 28] = [
    ("mt-pie", "mt-pie.tar.zst", "mt-pie", false),
    ("mt-pie-root", "mt-pie.tar.zst", "mt-pie", true),
    ("fork-shared", "fork-shared.tar.zst", "fork-shared", false),
    (
        "fork-shared-root",
        "fork-shared.tar.zst",
        "fork-shared",
        true,
    ),
    ("static", "static.tar.zst", "static", false),
    ("static-root", "static.tar.zst", "static", true),
    ("i386", "i386.tar.zst", "i386", false),
    ("i386-root", "i386.tar.zst", "i386", true),
    ("reaper", "reaper.tar.zst", "reaper", false),
    ("reaper-root", "reaper.tar.zst", "reaper", true),
    ("aarch64", "arches/aarch64.tar.zst", "aarch64", false),
    ("aarch64-root", "arches/aarch64.tar.zst", "aarch64", true),
    ("riscv64", "arches/riscv64.tar.zst", "riscv64", false),
    ("riscv64-root", "arches/riscv64.tar.zst", "riscv64", true),
    ("ppc64le", "arches/ppc64le.tar.zst", "ppc64le", false),
    ("ppc64le-root", "arches/ppc64le.tar.zst", "ppc64le", true),
    ("s390x", "arches/s390x.tar.zst", "s390x", false),
    ("s390x-root", "arches/s390x.tar.zst", "s390x", true),
    ("armv7", "arches/armv7.tar.zst", "armv7", false),
    ("armv7-root", "arches/armv7.tar.zst", "armv7", true),
    ("mips64el", "arches/mips64el.tar.zst", "mips64el", false),
    ("mips64el-root", "arches/mips64el.tar.zst", "mips64el", true),
    (
        "loongarch64",
        "arches/loongarch64.tar.zst",
        "loongarch64",
        false,
    ),
    (
        "loongarch64-root",
        "arches/loongarch64.tar.zst",
        "loongarch64",
        true,
    ),
    (
        "ppc64le-64k",
        "arches/ppc64le-64k.tar.zst",
        "ppc64le-64k",
        false,
    ),
    (
        "ppc64le-64k-root",
        "arches/ppc64le-64k.tar.zst",
        "ppc64le-64k",
        true,
    ),
    (
        "aarch64-16k",
        "arches/aarch64-16k.tar.zst",
        "aarch64-16k",
        false,
    ),
    (
        "aarch64-16k-root",
        "arches/aarch64-16k.tar.zst",
        "aarch64-16k",
        true,
    ),
];

fn sha256(path: &Path) -> String {
    let o = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(o.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// "case core.PID" → sha256 of every core of every case.
fn current() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (case, archive, name, root) in CASES {
        let dir = unpack(&repo().join("gdb-fixtures").join(archive), name);
        let cores = scratch(&format!("hashes-{case}"));
        let images = dir.join("images");
        let sysroot = dir.join("sysroot");
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"convert", &images, &"-o", &cores];
        if root {
            args.extend([&"--root" as &dyn AsRef<std::ffi::OsStr>, &sysroot]);
        }
        convert_ok(&args);
        let mut names: Vec<String> = fs::read_dir(&cores)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(!names.is_empty(), "{case}: no cores");
        for n in names {
            out.insert(format!("{case} {n}"), sha256(&cores.join(&n)));
        }
    }
    out
}

fn cores_are_byte_for_byte_as_recorded() {
    let file = repo().join("tests/core-hashes.txt");
    let now = current();
    let text: String = now.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    if std::env::var_os("CRIU2CORE_BLESS").is_some() {
        fs::write(&file, &text).unwrap();
        return;
    }
    let recorded = fs::read_to_string(&file).unwrap_or_default();
    let mut diff = Vec::new();
    let old: BTreeMap<String, String> = recorded
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for k in old
        .keys()
        .chain(now.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if old.get(k) != now.get(k) {
            diff.push(format!(
                "{k}: recorded {:?}, now {:?}",
                old.get(k),
                now.get(k)
            ));
        }
    }
    assert!(
        diff.is_empty(),
        "cores differ from tests/core-hashes.txt (a change that means to alter cores \
         re-records them with CRIU2CORE_BLESS=1 and says why):\n{}",
        diff.join("\n")
    );
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![cores_are_byte_for_byte_as_recorded]
}
