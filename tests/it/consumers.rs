//! Every consumer reads our cores as it reads gcore's: eu-stack, lldb,
//! drgn, readelf, eu-readelf and file, for the i386 fixture too (but for
//! drgn, which does not unwind i386 cores). Each check runs where the tool
//! is installed and says so on stderr where it is not (.ci/run installs all).
//! Also: the checkpointctl plugin protocol, completions, man page, version
//! and JSON outputs.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::Need;
use libtest_mimic::Trial;

fn sh(cmd: &mut Command) -> (bool, String, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Our cores of a fixture.
fn cores(name: &str) -> (Fixture, PathBuf) {
    let fx = fixture(name);
    let out = convert_fixture(&fx, "consumers", &[]);
    (fx, out)
}

/// Our cores of a fixture made with --root: like a kernel core, they carry
/// the ELF headers of mapped files, which tools that identify modules from
/// the core's memory (libdwfl's eu-stack, drgn) need for static programs.
fn cores_with_root(name: &str) -> (Fixture, PathBuf) {
    let fx = fixture(name);
    let root = fx.sysroot();
    let out = convert_fixture(&fx, "consumers-root", &["--root", root.to_str().unwrap()]);
    (fx, out)
}

/// tid → function names, from eu-stack's output.
fn eu_stack(core: &Path, exe: &Path) -> BTreeMap<u32, Vec<String>> {
    let (_, out, _) = sh(Command::new("eu-stack")
        .arg("--core")
        .arg(core)
        .arg("-e")
        .arg(exe));
    let mut map: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut tid = None;
    for l in out.lines() {
        if let Some(t) = l.strip_prefix("TID ") {
            tid = t.trim_end_matches(':').parse().ok();
            map.entry(tid.unwrap_or(0)).or_default();
        } else if let (Some(t), true) = (tid, l.starts_with('#')) {
            map.entry(t)
                .or_default()
                .push(l.split_whitespace().nth(2).unwrap_or("").to_string());
        }
    }
    map
}

fn eu_stack_shows_the_same_threads_and_functions() {
    let names = FIXTURES.iter().chain(&["i386"]);
    for (name, with_root) in names.flat_map(|n| [(*n, true), (*n, false)]) {
        // Without the ELF headers, libdwfl cannot place a static program.
        if name == "static" && !with_root {
            continue;
        }
        let (fx, out) = if with_root {
            cores_with_root(name)
        } else {
            cores(name)
        };
        for p in &fx.processes {
            let g = eu_stack(&fx.gcore(p), &fx.exe(p));
            let o = eu_stack(&out.join(format!("core.{}", p.pid)), &fx.exe(p));
            assert!(
                g.values().any(|f| f.len() > 2),
                "{name}: eu-stack shows nothing for gcore's core: {g:?}"
            );
            assert_eq!(g, o, "{name} pid {} (--root: {with_root})", p.pid);
        }
    }
}

/// (tids, function names of every frame by thread) from lldb.
fn lldb(core: &Path, exe: &Path) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let (_, out, _) = sh(Command::new(lldb_program().expect("lldb"))
        .arg("--batch")
        .arg("--no-lldbinit")
        .arg("-o")
        .arg(format!(
            "target create --core {} {}",
            core.display(),
            exe.display()
        ))
        .arg("-o")
        .arg("thread list")
        .arg("-o")
        .arg("bt all"));
    let mut tids = Vec::new();
    let mut frames: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for l in out.lines() {
        let t = l.trim_start_matches(['*', ' ']);
        if let Some(rest) = t.strip_prefix("thread #") {
            if let Some(tid) = rest.split("tid = ").nth(1) {
                tids.push(tid.split(',').next().unwrap_or("").to_string());
            } else {
                current = rest.split(',').next().unwrap_or("").to_string();
            }
        } else if t.starts_with("frame #") {
            let f = t
                .split('`')
                .nth(1)
                .map(|s| s.split([' ', '(']).next().unwrap_or("").to_string());
            frames
                .entry(current.clone())
                .or_default()
                .push(f.unwrap_or_default());
        }
    }
    (tids, frames)
}

fn lldb_loads_lists_and_backtraces_threads() {
    for name in FIXTURES.iter().chain(&["i386"]) {
        let (fx, out) = cores(name);
        for p in &fx.processes {
            let (gt, gf) = lldb(&fx.gcore(p), &fx.exe(p));
            let (ot, of) = lldb(&out.join(format!("core.{}", p.pid)), &fx.exe(p));
            assert!(
                !gt.is_empty() && gf.values().any(|f| f.len() > 2),
                "{name}: lldb reads nothing from gcore: {gt:?} {gf:?}"
            );
            assert_eq!(gt, ot, "{name} pid {}: thread lists", p.pid);
            assert_eq!(gf, of, "{name} pid {}: backtraces", p.pid);
        }
    }
}

fn drgn_reads_a_global_and_the_threads() {
    let py = drgn_python().expect("drgn");
    let script = repo().join("scripts/drgn-threads.py");
    let tids = |s: &str| {
        let mut t: Vec<String> = s
            .lines()
            .filter_map(|l| l.split_once(" ["))
            .map(|(tid, _)| tid.to_string())
            .collect();
        t.sort();
        t
    };
    for name in FIXTURES {
        let (fx, out) = cores(name);
        for p in &fx.processes {
            let run = |core: &Path| sh(Command::new(&py).arg(&script).arg(core).arg(fx.sysroot()));
            let (ok, o, err) = run(&out.join(format!("core.{}", p.pid)));
            assert!(ok, "{name}: drgn failed: {err}");
            let (_, g, _) = run(&fx.gcore(p));
            assert!(o.contains("secret = b'RANDOM_1432_KEY'"), "{name}: {o}");
            assert_eq!(tids(&o), tids(&g), "{name} pid {}", p.pid);
            assert!(tids(&o).contains(&p.pid.to_string()), "{o}");
        }
    }
}

/// `TOOL -n ARGS CORE`'s listing of the notes, which it must print
/// without complaint.
fn note_listing(tool: &str, args: &[&str], core: &Path) -> String {
    let (ok, o, e) = sh(Command::new(tool).arg("-n").args(args).arg(core));
    assert!(ok && e.is_empty(), "{tool} complained: {e}");
    o
}

fn readelf_and_eu_readelf_list_every_note_without_complaint() {
    let (fx, out) = cores("mt-pie");
    let core = out.join(format!("core.{}", fx.processes[0].pid));
    let want = [
        "NT_PRSTATUS",
        "NT_PRPSINFO",
        "NT_SIGINFO",
        "NT_AUXV",
        "NT_FILE",
        "NT_FPREGSET",
        "NT_X86_XSTATE",
    ];
    {
        let o = note_listing("readelf", &["-l", "-W"], &core);
        for n in want {
            assert!(o.contains(n), "readelf does not list {n}:\n{o}");
        }
        assert!(
            !o.to_lowercase().contains("unknown") && !o.contains("warning"),
            "{o}"
        );
        assert_eq!(o.matches("NT_PRSTATUS").count(), 4);
    }
    {
        let o = note_listing("eu-readelf", &[], &core);
        for n in [
            "PRSTATUS",
            "PRPSINFO",
            "SIGINFO",
            "AUXV",
            "FILE",
            "FPREGSET",
            "X86_XSTATE",
        ] {
            assert!(
                o.contains(&format!(" {n}")),
                "eu-readelf does not list {n}:\n{o}"
            );
        }
        assert!(
            o.contains("psargs: ./victim with a long command line"),
            "{o}"
        );
        assert!(
            o.contains("sighold: <10,15>"),
            "blocked SIGUSR1 and SIGTERM: {o}"
        );
        assert!(!o.contains("unknown") && !o.contains("invalid"), "{o}");
    }
}

fn readelf_and_eu_readelf_read_every_i386_note() {
    let (fx, out) = cores("i386");
    let core = out.join(format!("core.{}", fx.processes[0].pid));
    {
        let o = note_listing("readelf", &["-W"], &core);
        for (n, count) in [
            ("NT_PRSTATUS", 4),
            ("NT_PRPSINFO", 1),
            ("NT_SIGINFO", 1),
            ("NT_AUXV", 1),
            ("NT_FILE", 1),
            ("NT_FPREGSET", 4),
            ("NT_PRXFPREG", 4),
            ("NT_X86_XSTATE", 4),
            ("NT_386_TLS", 4),
        ] {
            assert_eq!(o.matches(n).count(), count, "{n} in:\n{o}");
        }
        assert!(!o.to_lowercase().contains("unknown"), "{o}");
    }
    {
        // eu-readelf knows the i386 layouts and decodes every field.
        let o = note_listing("eu-readelf", &[], &core);
        for want in [
            "psargs: /srv/compat/compat with a command line long enough",
            "sighold: <10,15>",
            "orig_eax: 3, fpvalid: 1",
            "ds: 0x002b  es: 0x002b  fs: 0x0000  gs: 0x0063  cs: 0x0023  ss: 0x002b",
            "index: 12, base: 0x",
            "index: 13, base: 0x00000000, limit: 0x00000000, flags: 0x00000028",
            "PLATFORM: 0x",
        ] {
            assert!(o.contains(want), "eu-readelf does not show {want:?}:\n{o}");
        }
        assert!(!o.contains("unknown") && !o.contains("invalid"), "{o}");
    }
}

fn file_identifies_the_core_and_its_program() {
    let (fx, out) = cores("fork-shared");
    for p in &fx.processes {
        let (_, o, _) = sh(Command::new("file").arg(out.join(format!("core.{}", p.pid))));
        assert!(o.contains("ELF 64-bit LSB core file, x86-64"), "{o}");
        assert!(o.contains("from './victim parent-and-child"), "{o}");
    }
    let (fx, out) = cores("i386");
    let (_, o, _) = sh(Command::new("file").arg(out.join(format!("core.{}", fx.processes[0].pid))));
    assert!(o.contains("ELF 32-bit LSB core file, Intel 80386"), "{o}");
    assert!(
        o.contains("from '/srv/compat/compat with a command line"),
        "{o}"
    );
    assert!(o.contains("platform: 'i686'"), "{o}");
}

/// The plugin through a stand-in checkpointctl ([`CHECKPOINTCTL`]).
fn checkpointctl_coredump_plugin() {
    let fx = fixture("mt-pie");
    let base = scratch("plugin");
    let bin = base.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let ctl = bin.join("checkpointctl");
    fs::write(&ctl, CHECKPOINTCTL).unwrap();
    fs::set_permissions(&ctl, fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = PathBuf::from(env!("CARGO_BIN_EXE_checkpointctl-coredump"));
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        plugin.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let ar = base.join("checkpoint.tar");
    fs::write(&ar, podman_tar(&fx.images(), |_| {})).unwrap();

    let (ok, o, e) = sh(Command::new(&ctl).arg("plugins").env("PATH", &path));
    assert!(ok, "{e}");
    assert!(
        o.contains("coredump: Write ELF core files"),
        "checkpointctl does not see the plugin: {o}"
    );
    let out = base.join("cores");
    let (ok, o, e) = sh(Command::new(&ctl)
        .arg("coredump")
        .arg(&ar)
        .arg("-o")
        .arg(&out)
        .env("PATH", &path));
    assert!(ok, "{e}");
    assert!(
        o.contains("core.12155: pid 12155 (victim), 4 threads"),
        "{o}"
    );
    let reference = convert_fixture(&fx, "plugin-ref", &[]);
    assert!(
        fs::read(out.join("core.12155")).unwrap()
            == fs::read(reference.join("core.12155")).unwrap()
    );
    let (ok, _, e) = sh(Command::new(&ctl)
        .arg("coredump")
        .arg("--help")
        .env("PATH", &path));
    assert!(ok && e.is_empty());
}

fn completions_man_page_and_version() {
    for shell in ["bash", "zsh", "fish"] {
        let o = criu2core(["completions", shell]);
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        for sub in ["convert", "inspect", "batch"] {
            assert!(text.contains(sub), "{shell} completion lacks {sub}");
        }
        if shell == "bash" {
            let dir = scratch("completions");
            let f = dir.join("c.bash");
            fs::write(&f, &o.stdout).unwrap();
            let (ok, _, e) = sh(Command::new("bash").arg("-n").arg(&f));
            assert!(ok, "bash completion does not parse: {e}");
        }
    }
    let o = criu2core(["man"]);
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.contains(".TH criu2core 1") && page.contains("convert"),
        "{page}"
    );
    let dir = scratch("man");
    let o = criu2core(["man", "--out-dir", dir.to_str().unwrap()]);
    assert!(o.status.success());
    for p in [
        "criu2core.1",
        "criu2core-convert.1",
        "criu2core-inspect.1",
        "criu2core-batch.1",
    ] {
        assert!(
            fs::read_to_string(dir.join(p)).unwrap().contains(".TH"),
            "{p}"
        );
    }
    // Every page a page refers to was written.
    for e in fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let plain = text.replace("\\-", "-");
        for (i, _) in plain.match_indices("criu2core-") {
            let name: String = plain[i..]
                .chars()
                .take_while(|&c| c.is_ascii_alphanumeric() || c == '-')
                .collect();
            if !plain[i + name.len()..].starts_with("(1)") {
                continue;
            }
            assert!(
                dir.join(format!("{name}.1")).exists(),
                "{} refers to {name}(1), which was not written",
                path.display()
            );
        }
    }
    let o = criu2core(["--version"]);
    let v = String::from_utf8_lossy(&o.stdout);
    for want in [
        env!("CARGO_PKG_VERSION"),
        "image format v2",
        "x86_64",
        "i386",
        "aarch64",
        "riscv64",
        "ppc64le",
        "s390x",
        "arm",
        "mips64el",
        "loongarch64",
    ] {
        assert!(v.contains(want), "--version does not name {want}: {v}");
    }
}

fn stdout_carries_only_results() {
    let fx = fixture("static");
    let out = scratch("json-out");
    // JSON reports, with diagnostics asked for: they go to stderr.
    let o = criu2core([
        "-vv",
        "convert",
        fx.images().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is only JSON");
    assert_schema("convert.schema.json", &v);
    assert_eq!(v["schema"], "criu2core.convert/5");
    assert_eq!(v["inputs"][0]["cores"][0]["pid"], 12329);
    // Each warning says its kind and the file it is about.
    let w = &v["inputs"][0]["warnings"][0];
    assert_eq!(w["kind"], "file_not_found", "{w}");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("is not on this machine")
            && w["message"]
                .as_str()
                .unwrap()
                .contains(w["file"].as_str().unwrap()),
        "{w}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrote core"),
        "no diagnostics with -vv"
    );
    let o = criu2core([
        "batch",
        fx.images().to_str().unwrap(),
        "-o",
        out.join("b").to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is only JSON");
    assert_schema("batch.schema.json", &v);
    assert_eq!(v["schema"], "criu2core.batch/6");
    assert_eq!(v["ok"], 1);
    let w = &v["inputs"][0]["warnings"][0];
    assert_eq!(w["kind"], "file_not_found", "{w}");
    assert!(
        w["message"].as_str().unwrap().starts_with("pid 12329: ") && w["file"].is_string(),
        "{w}"
    );
    // Without -v, nothing but the result lines.
    let o = criu2core(["inspect", fx.images().to_str().unwrap()]);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        eu_stack_shows_the_same_threads_and_functions needs [Need::Tool("eu-stack"), Need::FixtureLibraries],
        lldb_loads_lists_and_backtraces_threads needs [Need::Lldb, Need::FixtureLibraries],
        drgn_reads_a_global_and_the_threads needs [Need::Drgn],
        readelf_and_eu_readelf_list_every_note_without_complaint needs [Need::Tool("readelf"), Need::Tool("eu-readelf")],
        readelf_and_eu_readelf_read_every_i386_note needs [Need::Tool("readelf"), Need::Tool("eu-readelf")],
        file_identifies_the_core_and_its_program needs [Need::Tool("file")],
        checkpointctl_coredump_plugin,
        completions_man_page_and_version,
        stdout_carries_only_results,
    ]
}
