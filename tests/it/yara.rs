//! `criu2core yara`: real rules (text, hex with wildcards and jumps, a
//! regular expression, conditions on counts and offsets, rules that must
//! not match) over the real fixtures, every string match's address held
//! against gcore's core of the same live process, and a rule that does not
//! compile refused with the compiler's message; the bytes CRIU saved in
//! a socket's queue scanned and attributed to their descriptor. Without
//! the yara feature the command says how to get it.
//!
//! The tests run a criu2core with the feature ([`Need::Yara`]): the
//! tests' own with `cargo test --features yara`, else (CI) the static one
//! scripts/build-static builds.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use crate::common::*;
use crate::Need;
use libtest_mimic::Trial;
use serde_json::Value;

fn yara(args: &[&str]) -> std::process::Output {
    Command::new(yara_criu2core())
        .arg("yara")
        .args(args)
        .output()
        .expect("run criu2core yara")
}

/// `yara --json ARGS`, which must exit with `status`: its lines, each
/// checked against the schema.
fn yara_json(args: &[&str], status: i32) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = yara(&all);
    assert_eq!(
        o.status.code(),
        Some(status),
        "yara {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert_schema("yara.schema.json", &v);
            v
        })
        .collect()
}

/// The addresses of `needle` in gcore's core of process `pid` of `fx`.
fn in_core(fx: &Fixture, pid: u32, needle: &str) -> BTreeSet<u64> {
    let p = fx.processes.iter().find(|p| p.pid == pid).unwrap();
    find_in_core(&fx.gcore(p), &[needle.to_string()])
        .into_iter()
        .map(|(_, a)| a)
        .collect()
}

/// The rules of the test, for a process in which ENV_MARKER_5150 sits
/// `count` times, first at `first`.
fn rules(count: usize, first: u64) -> String {
    format!(
        r#"
rule text_heap : marker {{
    meta: note = "a text string"
    strings: $a = "HEAP_MARKER_77"
    condition: $a
}}
rule hex_wildcards_and_jumps {{
    // SPARSE_ ?? then 1 to 5 bytes then ST: SPARSE_FIRST and SPARSE_LAST.
    strings: $h = {{ 53 50 41 52 53 45 5F ?? [1-5] 53 54 }}
    condition: $h
}}
rule regex_argv {{
    strings: $r = /ARGV_T[A-Z]{{2}}L/
    condition: $r
}}
rule count_and_offset {{
    strings: $e = "ENV_MARKER_5150"
    condition: #e == {count} and $e at {first:#x} and @e[1] == {first:#x}
}}
rule wrong_count {{
    strings: $e = "ENV_MARKER_5150"
    condition: #e == {}
}}
rule absent {{
    strings: $n = "NOT_IN_ANY_CHECKPOINT_4242"
    condition: $n
}}
rule no_strings {{
    condition: true
}}
"#,
        count + 1
    )
}

/// Each rule over each process of mt-pie: the string matches are where
/// gcore's core holds them, the conditions on counts and offsets see
/// addresses, and the rules that must not match do not.
fn rules_match_where_gcore_holds_the_strings() {
    let fx = fixture("mt-pie");
    let images = fx.images();
    let dir = images.parent().unwrap().join("yara-rules");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut checked = 0;
    for p in fx.processes.iter().filter(|p| !fx.zombies.contains(&p.pid)) {
        let env = in_core(&fx, p.pid, "ENV_MARKER_5150");
        let first = *env.iter().next().expect("ENV_MARKER_5150 in gcore's core");
        let file = dir.join(format!("{}.yar", p.pid));
        fs::write(&file, rules(env.len(), first)).unwrap();
        let pid = p.pid.to_string();
        let o = yara(&[
            "--json",
            "-p",
            &pid,
            file.to_str().unwrap(),
            images.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let lines: Vec<Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for v in &lines {
            assert_schema("yara.schema.json", v);
        }
        let got = |rule: &str| -> BTreeSet<u64> {
            lines
                .iter()
                .filter(|v| v["rule"] == rule)
                .filter_map(|v| v["address"].as_u64())
                .collect()
        };
        let rules: BTreeSet<&str> = lines.iter().map(|v| v["rule"].as_str().unwrap()).collect();
        assert!(
            !rules.contains("wrong_count") && !rules.contains("absent"),
            "{rules:?}"
        );
        assert!(rules.contains("no_strings") && rules.contains("count_and_offset"));
        assert_eq!(got("text_heap"), in_core(&fx, p.pid, "HEAP_MARKER_77"));
        let sparse: BTreeSet<u64> = in_core(&fx, p.pid, "SPARSE_FIRST")
            .union(&in_core(&fx, p.pid, "SPARSE_LAST"))
            .copied()
            .collect();
        assert_eq!(got("hex_wildcards_and_jumps"), sparse);
        assert_eq!(got("regex_argv"), in_core(&fx, p.pid, "ARGV_TAIL"));
        assert_eq!(got("count_and_offset"), env);
        for v in lines.iter().filter(|v| v["address"].is_u64()) {
            let (a, s, e) = (
                v["address"].as_u64().unwrap(),
                v["mapping"]["start"].as_u64().unwrap(),
                v["mapping"]["end"].as_u64().unwrap(),
            );
            assert!(s <= a && a < e, "{v}");
        }
        let tagged = lines.iter().find(|v| v["rule"] == "text_heap").unwrap();
        assert_eq!(tagged["tags"], serde_json::json!(["marker"]));
        checked += sparse.len() + env.len();
    }
    assert!(checked > 0, "nothing checked");
    // -c per process and rule, -l the processes, and text lines.
    let file = dir.join(format!("{}.yar", fx.processes[0].pid));
    let (f, i) = (file.to_str().unwrap(), images.to_str().unwrap());
    let o = yara(&["-c", f, i]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(" text_heap: "), "{text}");
    let o = yara(&["-l", f, i]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        fx.processes.len()
    );
    let o = yara(&[f, i]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("default:text_heap [marker] $a 0x"), "{text}");
    // None matching: exit 1.
    let none = dir.join("none.yar");
    fs::write(
        &none,
        "rule absent { strings: $n = \"NOT_IN_ANY_CHECKPOINT_4242\" condition: $n }",
    )
    .unwrap();
    let o = yara(&[none.to_str().unwrap(), i]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

/// A rule that does not compile: the compiler's message (file, line), exit 2.
fn a_bad_rule_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yar");
    fs::write(
        &bad,
        "rule ok { condition: true }\nrule bad { strings: $a = \"x\" condition: $b }\n",
    )
    .unwrap();
    let o = yara(&[bad.to_str().unwrap(), dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yar:2"), "{err}");
    assert!(o.stdout.is_empty());
}

/// Built without the feature, the command says how to get it.
fn without_the_feature_the_command_says_so() {
    let o = criu2core(["yara", "rules.yar", "dump"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--features yara"));
}

/// The queued bytes of the `net` fixture (a request the server never read,
/// in its TCP receive queue, and the reply in the client's): each queue is
/// scanned on its own, as a file (offsets from its start, `filesize` its
/// length), its matches attributed to the descriptor as grep attributes
/// them; `--memory-only` leaves them out.
fn queued_bytes_are_scanned_and_attributed_to_their_descriptor() {
    let fx = fixture("net");
    let images = fx.images();
    let img = images.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("net.yar");
    fs::write(
        &rules,
        r#"
rule secret { strings: $s = "NET_SECRET_9931" condition: $s }
rule request_at_start { strings: $g = "GET /exfil?key=" condition: $g at 0 }
rule small_reply { strings: $r = "HTTP/1.0 200 OK" condition: $r at 0 and filesize < 65536 }
"#,
    )
    .unwrap();
    let r = rules.to_str().unwrap();
    let all = yara_json(&[r, img], 0);
    let (queued, memory): (Vec<&Value>, Vec<&Value>) =
        all.iter().partition(|v| v.get("fd").is_some());
    for v in &queued {
        assert!(
            v.get("address").is_none() && v.get("mapping").is_none(),
            "{v}"
        );
    }
    for v in &memory {
        assert!(v["address"].is_u64(), "{v}");
    }
    // grep finds the same secret at the same places: the queue's hit is
    // the same descriptor, queue, object and offset.
    let grep = criu2core(["grep", "--json", "NET_SECRET_9931", img]);
    let grep: Vec<Value> = String::from_utf8_lossy(&grep.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let key = |v: &Value| {
        ["pid", "fd", "source", "object", "offset", "address"]
            .map(|k| v.get(k).cloned().unwrap_or(Value::Null))
    };
    let secret: Vec<_> = all
        .iter()
        .filter(|v| v["rule"] == "secret")
        .map(key)
        .collect();
    assert_eq!(secret, grep.iter().map(key).collect::<Vec<_>>());
    let q: Vec<&&Value> = queued.iter().filter(|v| v["rule"] == "secret").collect();
    assert_eq!(q.len(), 1, "{all:#?}");
    let q = q[0];
    assert_eq!(
        (&q["source"], &q["offset"], &q["length"]),
        (&Value::from("tcp-recv"), &Value::from(15), &Value::from(15))
    );
    assert!(
        q["object"].as_str().unwrap().starts_with("tcp 127.0.0.1:"),
        "{q}"
    );
    // The request and the reply each start their queue (offset 0), which
    // no address in memory is.
    for (rule, text) in [
        ("request_at_start", "GET /exfil?key="),
        ("small_reply", "HTTP/1.0 200 OK"),
    ] {
        let got: Vec<&Value> = all.iter().filter(|v| v["rule"] == rule).collect();
        assert_eq!(got.len(), 1, "{rule}: {all:#?}");
        assert_eq!(
            (&got[0]["offset"], &got[0]["match"]),
            (&Value::from(0), &Value::from(text))
        );
        assert_eq!(got[0]["source"], "tcp-recv");
    }
    // --memory-only: the memory matches alone, the same.
    let only = yara_json(&["--memory-only", r, img], 0);
    assert_eq!(only.iter().collect::<Vec<_>>(), memory);
    // -c counts both; text lines name the descriptor.
    let o = yara(&["-c", r, img]);
    let counts = String::from_utf8_lossy(&o.stdout).into_owned();
    let secret_count = all.iter().filter(|v| v["rule"] == "secret").count();
    assert!(
        counts.contains(&format!(" secret: {secret_count}\n")),
        "{counts}"
    );
    let o = yara(&[r, img]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("default:secret $s fd "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&format!(" fd {} tcp-recv [tcp 127.0.0.1:", q["fd"])),
        "{line}"
    );
    assert!(line.ends_with("] +0xf: NET_SECRET_9931"), "{line}");
}

pub fn tests() -> Vec<Trial> {
    let mut tests = trials![
        rules_match_where_gcore_holds_the_strings needs [Need::Yara, Need::Tool("tar"), Need::Tool("zstd")],
        queued_bytes_are_scanned_and_attributed_to_their_descriptor needs [Need::Yara, Need::Tool("tar"), Need::Tool("zstd")],
        a_bad_rule_is_refused_with_its_line needs [Need::Yara],
    ];
    // The tests' own criu2core lacks the feature: it says how to get it.
    if !cfg!(feature = "yara") {
        tests.extend(trials![without_the_feature_the_command_says_so]);
    }
    tests
}
