//! The transcripts of the README and of the manual's pages (docs/*.md)
//! are real output: each fenced block after a
//! `<!-- transcript: NAME -->` line is run, command by command, on the
//! bundled example as `scripts/demo` builds it (`scripts/demo-archive`, the
//! same script), and what the README shows must be what the commands
//! print. A line `...` stands for any number of lines; absolute paths of
//! the test's directory show as `/…`, and trailing blanks are ignored.
//! A `$ gdb ...` command is run in batch mode with the `(gdb) QUESTION`
//! lines that follow it as commands, each echoed first, as scripts/demo
//! runs gdb. Where a private mount namespace can be had, everything runs
//! with /srv (where the example's recorded executable lived) hidden, as on
//! a machine that never had it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::Need;
use libtest_mimic::Trial;

/// A transcript block of the README or a page of the manual (docs/).
struct Block {
    name: String,
    /// The file it is in, relative to the repository.
    file: String,
    /// Its first line's number in that file.
    line: usize,
    lines: Vec<String>,
}

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The README and the manual's pages (docs/*.md), each with its path.
fn documents() -> Vec<(String, String)> {
    let mut docs = vec![("README.md".to_string(), readme())];
    let mut pages: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    pages.retain(|p| p.extension().is_some_and(|e| e == "md"));
    pages.sort();
    for p in pages {
        let name = format!("docs/{}", p.file_name().unwrap().to_string_lossy());
        docs.push((name, fs::read_to_string(&p).unwrap()));
    }
    docs
}

/// Every transcript block of the README and the manual, in order.
fn blocks() -> Vec<Block> {
    let mut out = Vec::new();
    for (file, text) in documents() {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let Some(name) = lines[i]
                .strip_prefix("<!-- transcript: ")
                .and_then(|r| r.strip_suffix(" -->"))
            else {
                i += 1;
                continue;
            };
            assert!(
                lines.get(i + 1).is_some_and(|l| l.starts_with("```")),
                "{file}:{}: a transcript marker not followed by a code block",
                i + 1
            );
            let start = i + 2;
            let end = (start..lines.len())
                .find(|&j| lines[j].starts_with("```"))
                .unwrap_or_else(|| panic!("{file}:{}: unclosed block", i + 1));
            out.push(Block {
                name: name.to_string(),
                file: file.clone(),
                line: start + 1,
                lines: lines[start..end].iter().map(|l| l.to_string()).collect(),
            });
            i = end + 1;
        }
    }
    out
}

/// One command of a block and what the README says it prints.
struct Step {
    command: String,
    /// For gdb: the questions asked after loading.
    questions: Vec<String>,
    expected: Vec<String>,
}

fn steps(block: &Block) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    for l in &block.lines {
        if let Some(cmd) = l.strip_prefix("$ ") {
            out.push(Step {
                command: cmd.to_string(),
                questions: Vec::new(),
                expected: Vec::new(),
            });
            continue;
        }
        let step = out.last_mut().unwrap_or_else(|| {
            panic!(
                "{}:{}: transcript {} does not start with a command",
                block.file, block.line, block.name
            )
        });
        if step.command.starts_with("gdb ") {
            if let Some(q) = l.strip_prefix("(gdb) ") {
                step.questions.push(q.to_string());
            }
        }
        step.expected.push(l.clone());
    }
    // A blank line before the next command only separates them.
    for step in &mut out {
        while step.expected.last().is_some_and(|l| l.trim().is_empty()) {
            step.expected.pop();
        }
    }
    out
}

/// Whether `expected` (with `...` lines matching any run of lines) matches
/// `actual`.
fn matches(expected: &[String], actual: &[String]) -> bool {
    // reach[j]: expected[..i] can match actual[..j].
    let mut reach = vec![false; actual.len() + 1];
    reach[0] = true;
    for e in expected {
        let mut next = vec![false; actual.len() + 1];
        if e == "..." {
            let mut any = false;
            for j in 0..=actual.len() {
                any |= reach[j];
                next[j] = any;
            }
        } else {
            for j in 0..actual.len() {
                if reach[j] && actual[j] == *e {
                    next[j + 1] = true;
                }
            }
        }
        reach = next;
    }
    reach[actual.len()]
}

fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A directory with the example as scripts/demo leaves it before its
/// first command, or (`after_demo`) after its conversions.
fn example(name: &str, after_demo: bool) -> PathBuf {
    let base = scratch(&format!("readme-{name}"));
    let st = Command::new(repo().join("scripts/demo-archive"))
        .arg("target/demo")
        .current_dir(&base)
        .status()
        .expect("run scripts/demo-archive");
    assert!(st.success(), "scripts/demo-archive failed");
    if after_demo {
        let ar = "target/demo/checkpoint-victim.tar.zst";
        for extra in [
            &["-o", "target/demo/cores"][..],
            &[
                "-o",
                "target/demo/cores-root",
                "--root",
                "target/demo/mt-pie/sysroot",
            ],
        ] {
            let o = Command::new(env!("CARGO_BIN_EXE_criu2core"))
                .args(["convert", ar])
                .args(extra)
                .current_dir(&base)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    // The fixtures and scripts, for commands that name them.
    for dir in ["gdb-fixtures", "scripts"] {
        std::os::unix::fs::symlink(repo().join(dir), base.join(dir)).unwrap();
    }
    // What checkpointctl does with a plugin, for the plugin's transcript.
    let bin = base.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let ctl = bin.join("checkpointctl");
    fs::write(&ctl, CHECKPOINTCTL).unwrap();
    fs::set_permissions(&ctl, fs::Permissions::from_mode(0o755)).unwrap();
    base
}

/// Runs a step's command in `base` as a user's shell would, stdout and
/// stderr together, and returns its lines as the README shows them.
fn run(base: &Path, step: &Step) -> Vec<String> {
    let mut cmd = step.command.clone();
    if let Some(rest) = cmd.strip_prefix("lldb ") {
        cmd = format!("{} {rest}", lldb_program().expect("lldb"));
    }
    // The Python that has drgn, which need not be the first python3.
    if let Some(rest) = cmd.strip_prefix("python3 ") {
        cmd = format!("{} {rest}", shell_word(&drgn_python().expect("drgn")));
    }
    if cmd.starts_with("gdb ") {
        cmd.push_str(" -nx -batch");
        for q in &step.questions {
            cmd.push_str(&format!(
                " -ex {} -ex {}",
                shell_word(&format!("echo (gdb) {q}\\n")),
                shell_word(q)
            ));
        }
    }
    let bins: Vec<String> = [
        PathBuf::from(env!("CARGO_BIN_EXE_criu2core")),
        PathBuf::from(env!("CARGO_BIN_EXE_checkpointctl-coredump")),
    ]
    .iter()
    .map(|b| b.parent().unwrap().display().to_string())
    .chain([base.join("bin").display().to_string()])
    .collect();
    let script = format!(
        "export PATH={}:\"$PATH\"\n{{ {cmd}\n}} 2>&1\n",
        shell_word(&bins.join(":"))
    );
    let text = if mount_namespace_unavailable().is_none() {
        run_hiding(&["/srv"], base, &format!("test ! -e /srv/victim\n{script}")).1
    } else {
        let o = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(base)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let abs = base.display().to_string();
    text.lines()
        .map(|l| l.replace(&abs, "/…").trim_end().to_string())
        .collect()
}

/// Runs transcript `name` (there must be one) and compares.
fn check(name: &str, after_demo: bool) {
    let blocks: Vec<Block> = blocks().into_iter().filter(|b| b.name == name).collect();
    assert!(
        !blocks.is_empty(),
        "neither README.md nor docs/ has transcript {name}"
    );
    let base = example(name, after_demo);
    let mut problems = Vec::new();
    for b in &blocks {
        for step in steps(b) {
            let actual = run(&base, &step);
            let expected: Vec<String> = step
                .expected
                .iter()
                .map(|l| l.trim_end().to_string())
                .collect();
            if !matches(&expected, &actual) {
                problems.push(format!(
                    "{}:{} ({name}): `{}` prints:\n{}\n",
                    b.file,
                    b.line,
                    step.command,
                    actual.join("\n")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The transcripts, by name, and whether they start where scripts/demo
/// ends (cores converted) rather than where it starts.
const TRANSCRIPTS: [(&str, bool); 13] = [
    ("intro", false),
    ("demo", false),
    ("image", false),
    ("trust", false),
    ("reaper", false),
    ("sockets", false),
    ("secrets", false),
    ("diff", false),
    ("eu-stack", true),
    ("lldb", true),
    ("drgn", true),
    ("readelf", true),
    ("checkpointctl", true),
];

fn every_transcript_is_checked_and_no_stale_advice_remains() {
    for b in blocks() {
        assert!(
            TRANSCRIPTS.iter().any(|t| t.0 == b.name),
            "{}:{}: transcript {} is checked by no test",
            b.file,
            b.line,
            b.name
        );
    }
    let text = readme();
    // gdb runs -ex after loading the core: too late for the sysroot.
    // Nor in any gdb command line it shows, wherever the -ex comes.
    for line in text.lines() {
        let cmd = line.trim_start().trim_start_matches("$ ");
        assert!(
            !(cmd.starts_with("gdb ") && cmd.contains("-ex 'set sysroot")),
            "README advises gdb -ex 'set sysroot ...': {line}"
        );
    }
    assert!(
        text.contains("cargo install --locked --path ."),
        "README installs without --locked"
    );
    // Nor does --help, nor the demo.
    let help = String::from_utf8_lossy(&criu2core(["convert", "--help"]).stdout).into_owned();
    let demo = fs::read_to_string(repo().join("scripts/demo")).unwrap();
    for (what, text) in [("convert --help", &help), ("scripts/demo", &demo)] {
        assert!(
            !text.contains("-ex 'set sysroot"),
            "{what} advises -ex 'set sysroot'"
        );
    }
    assert!(help.contains("gdb -iex 'set sysroot"), "{help}");
}

fn matching_treats_dots_as_any_lines() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(matches(&v(&["a", "...", "d"]), &v(&["a", "b", "c", "d"])));
    assert!(matches(&v(&["a", "...", "d"]), &v(&["a", "d"])));
    assert!(!matches(&v(&["a", "d"]), &v(&["a", "b", "d"])));
    assert!(!matches(&v(&["a", "..."]), &v(&["b"])));
    assert!(!matches(&v(&["a"]), &v(&["a", "b"])));
}

fn intro() {
    check("intro", false);
}
fn demo() {
    check("demo", false);
}
fn reaper() {
    check("reaper", false);
}
fn image() {
    check("image", false);
}
fn trust() {
    check("trust", false);
}
fn sockets() {
    check("sockets", false);
}
fn secrets() {
    check("secrets", false);
}
fn diff() {
    check("diff", false);
}
fn eu_stack() {
    check("eu-stack", true);
}
fn lldb() {
    check("lldb", true);
}
fn drgn() {
    check("drgn", true);
}
fn readelf() {
    check("readelf", true);
}
fn checkpointctl() {
    check("checkpointctl", true);
}

/// This module's tests.
/// ARCHITECTURE.md names every entry of src/ (a directory as `src/NAME/`),
/// and every path it names in backquotes exists; the README stays short,
/// with the install step near its top, and links only pages that exist.
fn the_module_map_and_the_manual_match_the_tree() {
    let map = fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    for e in fs::read_dir(repo().join("src")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let named = if e.file_type().unwrap().is_dir() {
            format!("`src/{name}/`")
        } else {
            format!("`src/{name}`")
        };
        assert!(
            map.contains(&named),
            "ARCHITECTURE.md does not name {named}"
        );
    }
    for cap in map.split('`').skip(1).step_by(2) {
        let top = [
            "src/",
            "proto/",
            "docs/",
            "deploy/",
            "examples/",
            "scripts/",
            "gdb-fixtures/",
            "fuzz/",
            "tests/",
        ];
        if top.iter().any(|t| cap.starts_with(t)) && !cap.contains(' ') {
            assert!(
                repo().join(cap).exists(),
                "ARCHITECTURE.md names {cap}, which is not there"
            );
        }
    }
    let readme = readme();
    let lines: Vec<&str> = readme.lines().collect();
    assert!(
        lines.len() <= 600,
        "README.md has {} lines (at most 600)",
        lines.len()
    );
    let install = lines
        .iter()
        .position(|l| l.contains("cargo install --locked --path ."))
        .expect("README.md has no install step");
    assert!(
        install < 120,
        "README.md's install step is at line {}",
        install + 1
    );
    for (file, text) in documents() {
        let base = repo().join(&file);
        let dir = base.parent().unwrap().to_path_buf();
        for link in text.split("](").skip(1) {
            let target = link.split(')').next().unwrap().split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.contains(' ') {
                continue;
            }
            assert!(
                dir.join(target).exists(),
                "{file} links {target}, which is not there"
            );
        }
    }
}

/// Where the files under `dir` (recursively) name any of `words`, as
/// "FILE names WORD".
fn naming(dir: &Path, words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            found.extend(naming(&p, words));
            continue;
        }
        found.extend(naming_file(&p, words));
    }
    found
}

/// Where file `p` names any of `words`, as "FILE names WORD".
fn naming_file(p: &Path, words: &[&str]) -> Vec<String> {
    let text = fs::read_to_string(p).unwrap();
    let named = words.iter().filter(|w| text.contains(**w));
    named
        .map(|w| format!("{} names {w}", p.display()))
        .collect()
}

/// The process model opens nothing and names no input module, as
/// ARCHITECTURE.md says: it reads page data through the file source that
/// whoever builds a process hands it; nor does it name CRIU's decoding.
fn the_model_opens_nothing() {
    let words = [
        "crate::blobio",
        "crate::input",
        "crate::archive",
        "crate::remote",
        "crate::criu",
        "crate::proto",
        "File::open",
        "std::fs",
    ];
    let found = naming(&repo().join("src/model"), &words);
    assert!(found.is_empty(), "{found:#?}");
}

/// inspect and diff report on the model (open files, sockets and mounts
/// among it), as ARCHITECTURE.md says: neither reads CRIU's decoding.
fn inspect_and_diff_print_the_model() {
    for dir in ["src/inspect", "src/diff"] {
        let found = naming(&repo().join(dir), &["crate::criu", "crate::proto"]);
        assert!(found.is_empty(), "{found:#?}");
    }
}

/// The archive layer knows nothing of CRIU, as ARCHITECTURE.md says:
/// which members to keep, and how, it asks of a member policy (the
/// checkpoint's is in `src/criu/members.rs`).
fn the_archive_layer_knows_nothing_of_criu() {
    let found = naming_file(
        &repo().join("src/archive.rs"),
        &["crate::criu", "crate::proto"],
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// The library prints nothing, as ARCHITECTURE.md says: its reports and
/// grep's finds are data, and the printers and the terminal helpers (JSON
/// made safe to print, hex dumps, byte counts, escaped diagnostics) are
/// the command line's; only the escaping of checkpoint text is shared, a
/// private module of the library that the command line compiles in too.
fn the_library_prints_nothing() {
    let words = [
        "pub mod text",
        "fn to_text",
        "fn json_for_terminal",
        "fn human_bytes",
        "struct Hexdump",
        "struct EscapingWriter",
        "struct MatchJson",
    ];
    let mut found = Vec::new();
    for e in fs::read_dir(repo().join("src")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !["cli", "bin", "main.rs"].contains(&name.as_str()) {
            found.extend(match p.is_dir() {
                true => naming(&p, &words),
                false => naming_file(&p, &words),
            });
        }
    }
    assert!(found.is_empty(), "{found:#?}");
    let lib = fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("\nmod text;"),
        "src/lib.rs: text is not private"
    );
}

pub fn tests() -> Vec<Trial> {
    trials![
        the_module_map_and_the_manual_match_the_tree,
        the_model_opens_nothing,
        inspect_and_diff_print_the_model,
        the_archive_layer_knows_nothing_of_criu,
        the_library_prints_nothing,
        every_transcript_is_checked_and_no_stale_advice_remains,
        matching_treats_dots_as_any_lines,
        intro needs [Need::Tool("gdb"), Need::Tool("zstd")],
        demo needs [Need::Tool("gdb"), Need::Tool("zstd")],
        image needs [Need::Tool("gdb"), Need::Tool("zstd"), Need::MountNamespace],
        reaper needs [Need::Tool("zstd")],
        trust needs [Need::Tool("gdb"), Need::Tool("zstd")],
        sockets needs [Need::Tool("zstd")],
        secrets needs [Need::Tool("zstd")],
        diff needs [Need::Tool("zstd")],
        eu_stack needs [Need::Tool("eu-stack"), Need::Tool("zstd"), Need::FixtureLibraries],
        lldb needs [Need::Lldb, Need::Tool("zstd"), Need::FixtureLibraries],
        drgn needs [Need::Drgn, Need::Tool("zstd")],
        readelf needs [Need::Tool("readelf"), Need::Tool("file"), Need::Tool("zstd")],
        checkpointctl needs [Need::Tool("zstd")],
    ]
}
