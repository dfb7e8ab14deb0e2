//! What a checkpoint can put on a terminal. A process chooses its own
//! command line, environment and name, and an archive's metadata and member
//! names come from whoever wrote it: escape sequences that clear the screen
//! or retitle the terminal, and newlines that forge rows, must reach the
//! terminal as escapes. These tests look at the bytes criu2core writes, not
//! at its wording; JSON output must keep the text exact.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use criu2core::testkit::proto;
use libtest_mimic::Trial;

/// What no byte stream for a terminal may hold: ESC, BEL, CSI as a C1
/// character (in UTF-8), a right-to-left override, and a line that begins
/// with text the checkpoint put after a newline.
fn assert_inert(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    for (bad, name) in [
        ("\x1b", "ESC"),
        ("\x07", "BEL"),
        ("\u{9b}", "C1 CSI"),
        ("\u{202e}", "RLO"),
        ("\x7f", "DEL"),
    ] {
        assert!(
            !text.contains(bad),
            "{what}: raw {name} on the terminal:\n{text:?}"
        );
    }
    assert!(
        !text.lines().any(|l| l.trim_start().starts_with("FORGED")),
        "{what}: a newline from the checkpoint forged a row:\n{text}"
    );
    assert!(
        std::str::from_utf8(out).is_ok(),
        "{what}: invalid UTF-8 on the terminal"
    );
}

/// The argv bytes replaced in mt-pie's memory (24 bytes, one argument):
/// an OSC title sequence, a forged row, a C1 CSI and an RLO.
const ARGV: &[u8] = b"\x1b]0;PWN\x07\nFORGED\xc2\x9b2J\xe2\x80\xae  ";
/// The environment value replaced (15 bytes): clear screen, a forged row,
/// BEL, DEL and a byte that is not UTF-8.
const ENV: &[u8] = b"\x1b[2J\nFORGED\x07\x7f\xff ";
/// The process's name.
const COMM: &str = "vic\x1b]2;T\x07\nFORGED";
/// The executable's path.
const EXE: &str = "/srv/victim/\x1b[31mvictim\nFORGED";

/// mt-pie's images with hostile text in its name, command line,
/// environment and executable path.
fn hostile_images(base: &Path) -> PathBuf {
    let fx = fixture("mt-pie");
    let images = base.join("images");
    copy_dir(&fx.images(), &images);
    let pages = images.join("pages-2.img");
    let mut data = fs::read(&pages).unwrap();
    for (old, new) in [
        (
            &b"with\0a\0long\0command\0line\0that"[..],
            [ARGV, b"\0that"].concat(),
        ),
        (&b"ENV_MARKER_5150"[..], ENV.to_vec()),
    ] {
        assert_eq!(old.len(), new.len());
        let at = memchr::memmem::find(&data, old).expect("text in the fixture's memory");
        data[at..at + old.len()].copy_from_slice(&new);
    }
    fs::write(&pages, data).unwrap();
    edit_image::<proto::Core>(&images.join("core-12155.img"), 0, |_, c| {
        c.tc.as_mut().unwrap().comm = COMM.into();
    });
    edit_image::<proto::FileEntry>(&images.join("files.img"), 0, |_, f| {
        if let Some(reg) = f.reg.as_mut().filter(|r| r.name == b"/srv/victim/victim") {
            reg.name = EXE.into();
        }
    });
    images
}

fn inspect_and_convert_escape_what_the_process_chose() {
    let base = scratch("terminal-process");
    let images = hostile_images(&base);
    let dir = images.to_str().unwrap();
    let out = base.join("cores");
    let original = fixture("mt-pie").images();
    let runs: [(&str, Vec<&str>); 4] = [
        ("inspect --env", vec!["inspect", "--env", dir]),
        ("diff", vec!["diff", original.to_str().unwrap(), dir]),
        ("convert", vec!["convert", dir, "-o", out.to_str().unwrap()]),
        (
            "convert -vvv",
            vec!["convert", dir, "-o", out.to_str().unwrap(), "-f", "-vvv"],
        ),
    ];
    for (what, args) in runs {
        let o = criu2core(&args);
        assert_inert(&format!("{what} (stdout)"), &o.stdout);
        assert_inert(&format!("{what} (stderr)"), &o.stderr);
        if what == "diff" {
            assert_eq!(o.status.code(), Some(1));
            let text = String::from_utf8_lossy(&o.stdout);
            for shown in [
                r"  comm: victim -> vic\x1b]2;T\x07\nFORGED",
                r"\x1b]0;PWN\x07\nFORGED\u{9b}2J\u{202e}",
                r"SECRET_TOKEN=\x1b[2J\nFORGED\x07\x7f\xff",
                r" -> /srv/victim/\x1b[31mvictim\nFORGED",
            ] {
                assert!(text.contains(shown), "{shown} not shown:\n{text}");
            }
        }
        if what == "inspect --env" {
            assert!(o.status.success());
            // The text is there, as escapes.
            let text = String::from_utf8_lossy(&o.stdout);
            for shown in [
                r"\x1b]0;PWN\x07\nFORGED\u{9b}2J\u{202e}",
                r"\x1b[2J\nFORGED\x07\x7f\xff",
                r"vic\x1b]2;T\x07\nFORGED",
                r"/srv/victim/\x1b[31mvictim\nFORGED",
            ] {
                // (the model keeps the environment's bytes: the byte that
                // is not UTF-8 shows as \xff)
                assert!(text.contains(shown), "{shown} not shown:\n{text}");
            }
        }
        if what == "convert" {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let text = String::from_utf8_lossy(&o.stdout);
            // The executable is not on this machine: the core alone, and
            // a warning naming it, escaped.
            assert!(text.contains("\n  gdb -c "), "{text}");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                err.contains(r"the executable /srv/victim/\\x1b[31mvictim\\nFORGED is not"),
                "{err}"
            );
        }
    }

    // JSON keeps every character, escaped as JSON escapes it.
    let o = criu2core(["inspect", "--json", "--env", dir]);
    assert!(o.status.success());
    assert_inert("inspect --json", &o.stdout);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &v["processes"][0];
    assert_eq!(p["comm"], COMM);
    assert_eq!(p["exe"], EXE);
    assert_eq!(p["argv"][1], String::from_utf8_lossy(ARGV).as_ref());
    let o = criu2core(["convert", "--json", dir, "-o", out.to_str().unwrap(), "-f"]);
    assert_inert("convert --json", &o.stdout);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cmd = v["inputs"][0]["cores"][0]["gdb_command"].as_str().unwrap();
    assert!(cmd.starts_with("gdb -c "), "{cmd}");
}

fn archive_metadata_and_member_names_are_escaped() {
    let fx = fixture("mt-pie");
    let base = scratch("terminal-archive");
    // config.dump with a hostile container name and image.
    let config = serde_json::json!({
        "id": "4f1c0de7\u{1b}[2J\u{7}a9b24b5e8f7d",
        "name": "ctr\u{1b}]0;PWN\u{7}\nFORGED",
        "rootfsImageName": "img\u{9b}1m\u{202e}",
        "runtime": "crun",
        "createdTime": "2026-11-20T10:00:00Z",
        "checkpointedTime": "2026-11-20T11:22:33Z"
    })
    .to_string();
    let tar = podman_tar_with(&fx.images(), &config, |_| {});
    let ar = base.join("checkpoint.tar");
    fs::write(&ar, &tar).unwrap();
    let o = criu2core(["inspect", ar.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_inert("inspect of an archive", &o.stdout);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(r"container    ctr\x1b]0;PWN\x07\nFORGED  engine"),
        "{text}"
    );
    assert!(text.contains(r"image img\u{9b}1m\u{202e}"), "{text}");
    let o = criu2core(["inspect", "--json", ar.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["container"]["name"], "ctr\u{1b}]0;PWN\u{7}\nFORGED");

    // An error that names a member (a fifo, which no checkpoint holds):
    // the name is escaped too.
    let mut b = tar::Builder::new(Vec::new());
    let evil = "checkpoint/\x1b]0;PWN\x07\nFORGED";
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_data(&mut h, evil, &[][..]).unwrap();
    let dup = base.join("dup.tar");
    fs::write(&dup, b.into_inner().unwrap()).unwrap();
    for cmd in ["inspect", "convert"] {
        let o = criu2core(
            [
                cmd,
                dup.to_str().unwrap(),
                "-o",
                base.join("x").to_str().unwrap(),
            ]
            .iter()
            .take(if cmd == "inspect" { 2 } else { 4 }),
        );
        assert!(!o.status.success());
        assert_inert(&format!("{cmd} error"), &o.stderr);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(r"\x1b]0;PWN\x07\nFORGED"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        inspect_and_convert_escape_what_the_process_chose,
        archive_metadata_and_member_names_are_escaped,
    ]
}
