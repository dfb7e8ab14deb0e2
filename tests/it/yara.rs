//! `criu2core yara`: real rules (text, hex with wildcards and jumps, a
//! regular expression, conditions on counts and offsets, rules that must
//! not match) over the real fixtures, every string match's address held
//! against gcore's core of the same live process, and a rule that does not
//! compile refused with the compiler's message. Without the yara feature
//! the command says how to get it.

#[cfg(feature = "yara")]
use std::collections::BTreeSet;
#[cfg(feature = "yara")]
use std::fs;

use crate::common::*;
use crate::Need;
use libtest_mimic::Trial;
#[cfg(feature = "yara")]
use serde_json::Value;

fn yara(args: &[&str]) -> std::process::Output {
    let mut all = vec!["yara"];
    all.extend_from_slice(args);
    criu2core(&all)
}

/// The addresses of `needle` in gcore's core of process `pid` of `fx`.
#[cfg(feature = "yara")]
fn in_core(fx: &Fixture, pid: u32, needle: &str) -> BTreeSet<u64> {
    let p = fx.processes.iter().find(|p| p.pid == pid).unwrap();
    find_in_core(&fx.gcore(p), &[needle.to_string()])
        .into_iter()
        .map(|(_, a)| a)
        .collect()
}

/// The rules of the test, for a process in which ENV_MARKER_5150 sits
/// `count` times, first at `first`.
#[cfg(feature = "yara")]
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
#[cfg(feature = "yara")]
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
#[cfg(feature = "yara")]
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
#[cfg(not(feature = "yara"))]
fn without_the_feature_the_command_says_so() {
    let o = yara(&["rules.yar", "dump"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--features yara"));
}

#[cfg(feature = "yara")]
pub fn tests() -> Vec<Trial> {
    trials![
        rules_match_where_gcore_holds_the_strings needs [Need::Tool("tar"), Need::Tool("zstd")],
        a_bad_rule_is_refused_with_its_line,
    ]
}

#[cfg(not(feature = "yara"))]
pub fn tests() -> Vec<Trial> {
    let _ = Need::Tool("tar");
    trials![without_the_feature_the_command_says_so]
}
