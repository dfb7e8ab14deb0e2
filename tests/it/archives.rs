//! Checkpoint archives (Podman/CRI-O/kubelet layout, each compression),
//! hostile archives, inspect and batch.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use libtest_mimic::Trial;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(args: &[&str]) -> std::process::Output {
    criu2core(args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes the fixture's Podman-layout archive in each compression.
fn archives(fx: &Fixture, dir: &Path) -> Vec<PathBuf> {
    fs::create_dir_all(dir).unwrap();
    let tar = podman_tar(&fx.images(), |_| {});
    ["tar", "tar.gz", "tar.zst"]
        .iter()
        .map(|kind| {
            // Names that say nothing: the kind is recognised by content.
            let p = dir.join(format!(
                "checkpoint-{}-{}.bin",
                fx.name,
                kind.replace('.', "-")
            ));
            fs::write(&p, compress(&tar, kind)).unwrap();
            p
        })
        .collect()
}

fn archives_give_the_same_cores_as_directories() {
    for name in FIXTURES {
        let fx = fixture(name);
        let base = scratch(&format!("archives-{name}"));
        let from_dir = convert_fixture(&fx, "archive-ref", &[]);
        let tmp = base.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        for ar in archives(&fx, &base.join("in")) {
            let out = base.join(format!("out-{}", ar.file_name().unwrap().to_str().unwrap()));
            let o = run(&["convert", s(&ar), "-o", s(&out), "--tmpdir", s(&tmp)]);
            assert!(o.status.success(), "{}: {}", ar.display(), stderr(&o));
            for p in &fx.processes {
                let a = fs::read(from_dir.join(format!("core.{}", p.pid))).unwrap();
                let b = fs::read(out.join(format!("core.{}", p.pid))).unwrap();
                assert!(
                    a == b,
                    "{}: core.{} differs from the directory's",
                    ar.display(),
                    p.pid
                );
            }
            // The unpacked page files are gone.
            assert_eq!(
                fs::read_dir(&tmp).unwrap().count(),
                0,
                "{} left temporary files",
                ar.display()
            );
        }
    }
}

fn unpacked_checkpoint_directories_and_bare_image_archives() {
    let fx = fixture("mt-pie");
    let base = scratch("layouts");
    let reference = convert_fixture(&fx, "layout-ref", &[]);
    // A checkpoint archive someone unpacked.
    let dir = base.join("unpacked");
    copy_dir(&fx.images(), &dir.join("checkpoint"));
    fs::write(dir.join("config.dump"), CONFIG_DUMP).unwrap();
    let o = run(&["convert", s(&dir), "-o", s(&base.join("a"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A tar of the images themselves, with ./ prefixes.
    let mut b = tar::Builder::new(Vec::new());
    for e in fs::read_dir(fx.images()).unwrap() {
        let e = e.unwrap();
        tar_file(
            &mut b,
            &format!("./{}", e.file_name().to_str().unwrap()),
            &fs::read(e.path()).unwrap(),
        );
    }
    let bare = base.join("bare.tgz");
    fs::write(&bare, compress(&b.into_inner().unwrap(), "tar.gz")).unwrap();
    let o = run(&["convert", s(&bare), "-o", s(&base.join("b"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = fs::read(reference.join("core.12155")).unwrap();
    assert!(fs::read(base.join("a/core.12155")).unwrap() == want);
    assert!(fs::read(base.join("b/core.12155")).unwrap() == want);
}

fn several_inputs_get_one_directory_each() {
    let fx = fixture("fork-shared");
    let base = scratch("multi");
    let ars = archives(&fx, &base.join("in"));
    let out = base.join("out");
    let o = run(&["convert", s(&ars[0]), s(&ars[2]), "-o", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Four cores, each with its line and the gdb command under it.
    let text = stdout(&o);
    let gdb = text.lines().filter(|l| l.starts_with("  gdb ")).count();
    assert_eq!((text.lines().count(), gdb), (8, 4), "{text}");
    for ar in [&ars[0], &ars[2]] {
        let name = ar.file_name().unwrap().to_str().unwrap();
        assert!(
            out.join(name).join("core.12223").exists()
                && out.join(name).join("core.12225").exists()
        );
    }
}

fn rootfs_diff_takes_precedence_over_root() {
    let fx = fixture("mt-pie");
    let base = scratch("rootfs-diff");
    // The container changed libc: its copy in rootfs-diff.tar differs from
    // the sysroot's in the bytes at the stopped threads' pc.
    let libc_path = "usr/lib/x86_64-linux-gnu/libc.so.6";
    let mut libc = fs::read(fx.sysroot().join(libc_path)).unwrap();
    let pc_off = 0x26000 + (0x7fdd_d00b_72ea - 0x7fdd_cffe_5000);
    libc[pc_off..pc_off + 2].copy_from_slice(&[0xcc, 0xcc]); // int3 int3
    let mut diff = tar::Builder::new(Vec::new());
    tar_file(&mut diff, libc_path, &libc);
    let diff = diff.into_inner().unwrap();
    for kind in ["tar", "tar.zst"] {
        let tar = podman_tar(&fx.images(), |b| tar_file(b, "rootfs-diff.tar", &diff));
        let ar = base.join(format!("ckpt.{kind}"));
        fs::write(&ar, compress(&tar, kind)).unwrap();
        let out = base.join(format!("out-{kind}"));
        let o = run(&["convert", s(&ar), "-o", s(&out), "--root", s(&fx.sysroot())]);
        assert!(o.status.success(), "{}", stderr(&o));
        let core = out.join("core.12155");
        let empty = base.join("empty");
        fs::create_dir_all(&empty).unwrap();
        let g = gdb(
            Some(&empty),
            None,
            &core,
            &["x/2i $pc".into(), "x/i 0x7fddcffbf000".into()],
        );
        assert!(
            g.contains(":\tint3"),
            "{kind}: the diff's libc was not used:\n{g}"
        );
        // Files the diff does not hold still come from --root: ld.so's text.
        let g = gdb(Some(&empty), None, &core, &["x/4xb 0x7fddd01b5000".into()]);
        assert!(
            !g.contains("0x00\t0x00\t0x00\t0x00"),
            "{kind}: ld.so not read from --root:\n{g}"
        );
    }
}

/// A tar member with a raw name and type, bypassing the tar crate's checks.
fn raw_member(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
    size: u64,
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn hostile_archives_are_refused_without_touching_anything_outside() {
    let fx = fixture("mt-pie");
    let base = scratch("hostile");
    let tmp = base.join("tmp");
    let out = base.join("out");
    fs::create_dir_all(&tmp).unwrap();
    let victim = base.join("outside");
    type Extra = Box<dyn Fn(&mut tar::Builder<Vec<u8>>)>;
    let sentinel = victim.to_str().unwrap().as_bytes().to_vec();
    let cases: Vec<(&str, Extra, &str)> = vec![
        (
            "absolute",
            Box::new(move |b| raw_member(b, &sentinel, tar::EntryType::Regular, b"", b"x", 1)),
            "is absolute",
        ),
        (
            "dotdot",
            Box::new(|b| {
                raw_member(
                    b,
                    b"checkpoint/../../outside",
                    tar::EntryType::Regular,
                    b"",
                    b"x",
                    1,
                )
            }),
            "contains '..'",
        ),
        (
            "symlink",
            Box::new(|b| {
                raw_member(
                    b,
                    b"checkpoint/evil",
                    tar::EntryType::Symlink,
                    b"../../../etc/passwd",
                    b"",
                    0,
                )
            }),
            "outside the archive",
        ),
        (
            "abs-symlink",
            Box::new(|b| raw_member(b, b"evil", tar::EntryType::Symlink, b"/etc/passwd", b"", 0)),
            "absolute path",
        ),
        (
            "hardlink",
            Box::new(|b| raw_member(b, b"evil", tar::EntryType::Link, b"../outside", b"", 0)),
            "outside the archive",
        ),
        (
            "device",
            Box::new(|b| raw_member(b, b"checkpoint/dev", tar::EntryType::Char, b"", b"", 0)),
            "device or fifo",
        ),
        (
            "fifo",
            Box::new(|b| raw_member(b, b"fifo", tar::EntryType::Fifo, b"", b"", 0)),
            "device or fifo",
        ),
        (
            "duplicate",
            Box::new(|b| tar_file(b, "checkpoint/pstree.img", b"again")),
            "appears twice",
        ),
    ];
    for (what, extra, want) in cases {
        let tar = podman_tar(&fx.images(), |b| extra(b));
        for kind in ["tar", "tar.zst"] {
            let ar = base.join(format!("{what}.{kind}"));
            fs::write(&ar, compress(&tar, kind)).unwrap();
            let o = run(&["convert", s(&ar), "-o", s(&out), "--tmpdir", s(&tmp)]);
            let err = stderr(&o);
            assert!(!o.status.success(), "{what}.{kind} was accepted");
            assert!(
                err.contains(want) && err.contains(&format!("{what}.{kind}")),
                "{what}.{kind}: {err}"
            );
            assert!(!victim.exists(), "{what}.{kind} wrote outside");
            assert_eq!(
                fs::read_dir(&tmp).unwrap().count(),
                0,
                "{what}.{kind} left temporary files"
            );
            assert!(
                !out.exists() || fs::read_dir(&out).unwrap().count() == 0,
                "{what}.{kind} wrote cores"
            );
        }
    }

    // Sizes that lie and truncated archives: an error naming the member.
    let good = podman_tar(&fx.images(), |_| {});
    let pos = memchr::memmem::find(&good, b"checkpoint/pages-2.img").unwrap();
    for kind in ["tar", "tar.gz", "tar.zst"] {
        let cut = compress(&good[..pos + 512 + 1000], kind);
        let ar = base.join(format!("truncated.{kind}"));
        fs::write(&ar, cut).unwrap();
        let o = run(&["convert", s(&ar), "-o", s(&out), "--tmpdir", s(&tmp)]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("pages-2.img"),
            "truncated {kind}: {}",
            stderr(&o)
        );
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    }
    // A corrupt compressed stream.
    let mut zst = compress(&good, "tar.zst");
    let mid = zst.len() / 2;
    zst[mid..mid + 64].fill(0x55);
    let ar = base.join("corrupt.tar.zst");
    fs::write(&ar, zst).unwrap();
    let o = run(&["convert", s(&ar), "-o", s(&out), "--tmpdir", s(&tmp)]);
    assert!(
        !o.status.success() && stderr(&o).contains("corrupt.tar.zst"),
        "{}",
        stderr(&o)
    );
    // Not an archive at all.
    let junk = base.join("junk.tar");
    fs::write(&junk, b"hello").unwrap();
    let o = run(&["convert", s(&junk), "-o", s(&out)]);
    assert!(
        !o.status.success() && stderr(&o).contains("not a checkpoint"),
        "{}",
        stderr(&o)
    );
}

fn tids(fx: &Fixture) -> usize {
    fs::read_to_string(fx.dir.join("tids.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

fn inspect_text_and_json() {
    let schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo().join("docs/inspect.schema.json")).unwrap())
            .unwrap();
    for name in FIXTURES {
        let fx = fixture(name);
        let base = scratch(&format!("inspect-{name}"));
        let ar = &archives(&fx, &base)[2];
        for (input, container) in [(fx.images(), false), (ar.clone(), true)] {
            // Text: the full command line, thread counts, the environment on request.
            let o = run(&["inspect", s(&input)]);
            assert!(o.status.success(), "{}", stderr(&o));
            let text = stdout(&o);
            for p in &fx.processes {
                assert!(
                    text.contains(p.cmdline.trim_end()),
                    "{name}: no full command line:\n{text}"
                );
                assert!(
                    text.contains(&format!("pid {} ({})", p.pid, p.comm)),
                    "{text}"
                );
            }
            assert!(text.contains(&format!("{} thread", tids(&fx))), "{text}");
            assert!(!text.contains("ENV_MARKER_5150"));
            assert_eq!(
                text.contains("victim-ctr") && text.contains("Podman"),
                container,
                "{text}"
            );
            let o = run(&["inspect", "--env", s(&input)]);
            assert!(
                stdout(&o).contains("SECRET_TOKEN=ENV_MARKER_5150"),
                "{}",
                stdout(&o)
            );

            // JSON: valid against the schema, and saying the same.
            for env in [false, true] {
                let mut args = vec!["inspect", "--json", s(&input)];
                if env {
                    args.push("--env");
                }
                let o = run(&args);
                assert!(o.status.success(), "{}", stderr(&o));
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let mut errs = Vec::new();
                validate(&schema, &v, "$", &mut errs);
                assert!(errs.is_empty(), "{name}: {errs:#?}");
                assert_eq!(v["checkpoint"]["threads"], tids(&fx));
                assert_eq!(v["checkpoint"]["arch"], "x86_64");
                assert_eq!(v["container"].is_null(), !container);
                if container {
                    assert_eq!(v["container"]["name"], "victim-ctr");
                    assert_eq!(v["input"]["kind"], "tar.zst");
                }
                for (p, j) in fx.processes.iter().zip(v["processes"].as_array().unwrap()) {
                    assert_eq!(j["pid"], p.pid);
                    let argv: Vec<&str> = j["argv"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap())
                        .collect();
                    assert_eq!(argv.join(" "), p.cmdline.trim_end());
                    let env_has = j["environment"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|x| x == "SECRET_TOKEN=ENV_MARKER_5150"));
                    assert_eq!(env_has, env, "{name}: environment {}", j["environment"]);
                    assert!(j["memory"]["files"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["path"] == p.exe));
                    assert!(j["memory"]["dumped_bytes"].as_u64().unwrap() > 0);
                }
            }
        }
    }
    // The validator itself rejects what the schema forbids.
    let mut errs = Vec::new();
    validate(
        &schema,
        &serde_json::json!({"schema": "criu2core.inspect/7", "extra": 1}),
        "$",
        &mut errs,
    );
    assert!(errs.len() >= 5, "{errs:?}");
}

/// The reaper fixture's zombie (task state 2, as CRIU writes it) in
/// inspect's JSON and in batch's summary.json, first run and rerun.
fn zombies_in_inspect_json_and_the_batch_summary() {
    let fx = fixture("reaper");
    let exit = serde_json::json!({
        "wait_status": 768, "exit_status": 3, "signal": null, "core_dumped": false
    });
    let schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo().join("docs/inspect.schema.json")).unwrap())
            .unwrap();
    let o = run(&["inspect", "--json", s(&fx.images())]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut errs = Vec::new();
    validate(&schema, &v, "$", &mut errs);
    assert!(errs.is_empty(), "{errs:#?}");
    let states: Vec<&str> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["running", "zombie", "stopped"]);
    let z = &v["processes"][1];
    assert_eq!(
        (&z["pid"], &z["comm"], &z["exit"]),
        (&29664.into(), &"reaper".into(), &exit)
    );
    assert!(v["processes"][0]["exit"].is_null());

    let out = scratch("batch-reaper");
    for (round, status) in [(1, "ok"), (2, "skipped")] {
        let o = run(&["batch", s(&fx.images()), "-o", s(&out)]);
        assert!(o.status.success(), "round {round}: {}", stderr(&o));
        let sum = summary(&out);
        let input = &sum["inputs"][0];
        assert_eq!(input["status"], status, "round {round}: {sum}");
        assert_eq!(
            input["zombies"],
            serde_json::json!([{"pid": 29664, "comm": "reaper", "exit": exit}]),
            "round {round}"
        );
        let cores: Vec<u64> = input["cores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(cores, [29661, 29665], "round {round}");
    }
}

fn summary(out: &Path) -> serde_json::Value {
    let v = serde_json::from_slice(&fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_schema("batch.schema.json", &v);
    v
}

fn batch_converts_many_in_parallel_resumably() {
    let base = scratch("batch");
    let inputs = base.join("inputs");
    fs::create_dir_all(&inputs).unwrap();
    let mut expected = Vec::new();
    for (name, kind) in [
        ("mt-pie", "tar.zst"),
        ("fork-shared", "tar"),
        ("static", "tar.gz"),
    ] {
        let fx = fixture(name);
        let p = inputs.join(format!("checkpoint-{name}.{kind}"));
        fs::write(&p, compress(&podman_tar(&fx.images(), |_| {}), kind)).unwrap();
        expected.push((
            format!("checkpoint-{name}"),
            fx.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
        ));
    }
    let fx = fixture("fork-shared");
    copy_dir(&fx.images(), &inputs.join("fork-dir"));
    expected.push(("fork-dir".into(), vec![12223, 12225]));
    fs::write(
        inputs.join("broken.tar"),
        b"not a checkpoint archive, but named like one",
    )
    .unwrap();
    let mut junk = podman_tar(&fixture("mt-pie").images(), |_| {});
    junk.truncate(20000);
    fs::write(inputs.join("checkpoint-cut.tar"), junk).unwrap();
    fs::write(inputs.join("notes.txt"), b"ignored: not a checkpoint").unwrap();

    let out = base.join("par");
    let o = run(&["batch", s(&inputs), "-o", s(&out), "-j", "2"]);
    assert!(!o.status.success(), "a failed input must fail the run");
    let sm = summary(&out);
    assert_eq!(sm["schema"], "criu2core.batch/6");
    assert_eq!(
        (
            sm["ok"].as_u64(),
            sm["failed"].as_u64(),
            sm["skipped"].as_u64()
        ),
        (Some(4), Some(1), Some(0)),
        "{sm:#}"
    );
    let items = sm["inputs"].as_array().unwrap();
    assert_eq!(items.len(), 5, "junk files are no inputs: {sm:#}");
    let failed: Vec<_> = items.iter().filter(|i| i["status"] == "failed").collect();
    assert!(failed[0]["input"]
        .as_str()
        .unwrap()
        .ends_with("checkpoint-cut.tar"));
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("checkpoint-cut.tar"),
        "{}",
        failed[0]["error"]
    );
    for (name, pids) in &expected {
        let item = items
            .iter()
            .find(|i| {
                i["output"]
                    .as_str()
                    .is_some_and(|o| o.ends_with(name.as_str()))
            })
            .unwrap();
        assert_eq!(item["status"], "ok", "{item:#}");
        assert_eq!(item["processes"], pids.len());
        assert!(item["duration_ms"].is_u64());
        for pid in pids {
            let core = out.join(name).join(format!("core.{pid}"));
            let c = item["cores"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["pid"] == *pid)
                .unwrap();
            assert_eq!(
                c["size"].as_u64().unwrap(),
                fs::metadata(&core).unwrap().len()
            );
        }
    }

    // A second run skips what is complete and retries what failed.
    let stamp = fs::metadata(out.join("checkpoint-mt-pie/core.12155"))
        .unwrap()
        .modified()
        .unwrap();
    let o = run(&["batch", s(&inputs), "-o", s(&out), "-j", "2", "-q"]);
    assert!(!o.status.success());
    let sm = summary(&out);
    assert_eq!(
        (
            sm["ok"].as_u64(),
            sm["failed"].as_u64(),
            sm["skipped"].as_u64()
        ),
        (Some(0), Some(1), Some(4)),
        "{sm:#}"
    );
    assert_eq!(
        fs::metadata(out.join("checkpoint-mt-pie/core.12155"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp
    );
    // A changed input is converted again.
    let mt = inputs.join("checkpoint-mt-pie.tar.zst");
    let bytes = fs::read(&mt).unwrap();
    fs::write(&mt, &bytes).unwrap();
    fs::remove_file(inputs.join("checkpoint-cut.tar")).unwrap();
    let o = run(&["batch", s(&inputs), "-o", s(&out), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sm = summary(&out);
    assert_eq!(
        (sm["ok"].as_u64(), sm["skipped"].as_u64()),
        (Some(1), Some(3)),
        "{sm:#}"
    );
    // --force converts everything again.
    let o = run(&["batch", s(&inputs), "-o", s(&out), "-q", "--force"]);
    assert!(o.status.success());
    assert_eq!(summary(&out)["ok"].as_u64(), Some(4));

    // One at a time gives the same cores as two at a time.
    let serial = base.join("serial");
    let o = run(&["batch", s(&inputs), "-o", s(&serial), "-j", "1", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, pids) in &expected {
        for pid in pids {
            let a = fs::read(out.join(name).join(format!("core.{pid}"))).unwrap();
            let b = fs::read(serial.join(name).join(format!("core.{pid}"))).unwrap();
            assert!(a == b, "{name}/core.{pid} differs between -j 2 and -j 1");
        }
    }
}

fn every_subcommand_has_examples_in_its_help() {
    for sub in ["convert", "inspect", "batch"] {
        let o = run(&[sub, "--help"]);
        assert!(o.status.success());
        assert!(
            stdout(&o).contains("Examples:\n  criu2core "),
            "{sub} --help has no examples:\n{}",
            stdout(&o)
        );
    }
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        archives_give_the_same_cores_as_directories,
        unpacked_checkpoint_directories_and_bare_image_archives,
        several_inputs_get_one_directory_each,
        rootfs_diff_takes_precedence_over_root,
        hostile_archives_are_refused_without_touching_anything_outside,
        inspect_text_and_json,
        batch_converts_many_in_parallel_resumably,
        zombies_in_inspect_json_and_the_batch_summary,
        every_subcommand_has_examples_in_its_help,
    ]
}
