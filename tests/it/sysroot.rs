//! `--sysroot`: the names gdb asks for (the dynamic loader's link map) are
//! written, each file's bytes once (other names as links, as the root had
//! them), copies never share an inode or setuid bits with the root, a
//! batch gives each input a sysroot of its own, and warnings show bytes
//! that are not UTF-8 as `\xNN`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use crate::Need;
use criu2core::testkit::flags::status;
use criu2core::testkit::proto;
use criu2core::testkit::synth::{self, Spec};
use libtest_mimic::Trial;

const BIN: &str = env!("CARGO_BIN_EXE_criu2core");

fn run(args: &[&OsStr], cwd: &Path) -> (bool, String, String) {
    let o = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// mt-pie as a system with a versioned libc is: the root's
/// `libc.so.6` a link to `libc-2.36.so`, which the process maps (its
/// files.img names it, as /proc/PID/maps would); the dynamic loader's
/// link map still names `/lib/x86_64-linux-gnu/libc.so.6`, the name gdb
/// asks the sysroot for. Without that name in the sysroot gdb shows libc
/// as not loaded; with it, every library is loaded and the backtraces are
/// whole.
fn the_link_maps_names_are_written_so_gdb_loads_every_library() {
    let fx = fixture("mt-pie");
    let base = scratch("sysroot-link-map");
    let root = complete_sysroot(&fx, &base);
    let dir = root.join("usr/lib/x86_64-linux-gnu");
    fs::rename(dir.join("libc.so.6"), dir.join("libc-2.36.so")).unwrap();
    std::os::unix::fs::symlink("libc-2.36.so", dir.join("libc.so.6")).unwrap();
    let images = base.join("images");
    copy_dir(&fx.images(), &images);
    let mut renamed = 0;
    edit_image::<proto::FileEntry>(&images.join("files.img"), 0, |_, e| {
        if let Some(r) = &mut e.reg {
            if r.name == b"/usr/lib/x86_64-linux-gnu/libc.so.6" {
                r.name = b"/usr/lib/x86_64-linux-gnu/libc-2.36.so".to_vec();
                renamed += 1;
            }
        }
    });
    assert_eq!(renamed, 1);
    let (ok, out, err) = run(
        &[
            "convert".as_ref(),
            "images".as_ref(),
            "--root".as_ref(),
            "sysroot".as_ref(),
            "--sysroot".as_ref(),
            "sys".as_ref(),
            "-o".as_ref(),
            "cores".as_ref(),
        ],
        &base,
    );
    assert!(ok, "{err}");
    // The link map's name is the root's link, a link in the sysroot too.
    let sys = base.join("sys");
    let link = sys.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    assert_eq!(
        fs::read_link(&link).unwrap_or_default(),
        Path::new("libc-2.36.so"),
        "{err}"
    );
    assert!(sys.join("lib/x86_64-linux-gnu/libc.so.6").is_file());
    assert!(sys.join("lib64/ld-linux-x86-64.so.2").is_file());
    let cmd = out.lines().nth(1).unwrap().trim_start();
    let ask = " -nx -batch -ex 'thread apply all bt' -ex 'info sharedlibrary'\n";
    let (ok, g) = run_hiding(
        &["/srv"],
        &base,
        &format!("test ! -e /srv/victim/victim\n{cmd}{ask}"),
    );
    assert!(ok, "{g}");
    let libs: Vec<&str> = g
        .lines()
        .filter(|l| l.contains(".so") && !l.contains("libthread_db"))
        .collect();
    assert!(
        libs.len() == 2 && libs.iter().all(|l| l.contains(" Yes ")),
        "not every library loaded:\n{g}"
    );
    assert!(!g.contains("?? ()") && g.contains("start_thread"), "{g}");
}

/// A synthetic checkpoint whose process maps, besides its executable,
/// `names` (one page each), all as files of the root.
fn mapping(base: &Path, names: &[String]) -> PathBuf {
    let images = base.join("images");
    synth::synthesize(
        &images,
        &Spec {
            seed: 5,
            processes: 1,
            threads: 1,
            vmas: 8,
            bytes: 64 << 10,
            holes: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut img = read_raw(&images.join("files.img"));
    for (i, n) in names.iter().enumerate() {
        let id = 100 + i as u32;
        img.entries
            .push(prost::Message::encode_to_vec(&proto::FileEntry {
                r#type: proto::FdType::Reg as i32,
                id,
                reg: Some(proto::RegFile {
                    id,
                    name: n.clone().into_bytes(),
                    ..Default::default()
                }),
                memfd: None,
            }));
    }
    write_raw(&images.join("files.img"), &img);
    let pid = synth::pid(0);
    edit_image::<proto::Mm>(&images.join(format!("mm-{pid}.img")), 0, |_, mm| {
        for i in 0..names.len() as u64 {
            let start = 0x7e00_0000_0000 + i * synth::PAGE;
            mm.vmas.push(proto::Vma {
                start,
                end: start + synth::PAGE,
                pgoff: 0,
                shmid: 100 + i,
                prot: 1,
                flags: 0x2,
                status: status::REGULAR | status::FILE_PRIVATE,
                fd: -1,
                madv: None,
                fdflags: None,
            });
        }
        mm.vmas.sort_by_key(|v| v.start);
    });
    images
}

/// The files under `dir` (not following links): path, inode, size of
/// the regular ones, and link targets.
fn tree(dir: &Path) -> Vec<(PathBuf, u64, u64, Option<PathBuf>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                let link = fs::read_link(e.path()).ok();
                out.push((e.path(), m.ino(), m.len(), link));
            }
        }
    }
    out.sort();
    out
}

/// 40 names for one 1 MiB setuid file in the root, half symbolic links,
/// half hard links, each mapped by a one-page mapping: the sysroot holds
/// the bytes once (one inode with the hard links' names, the symbolic
/// links as links), never the root's inode nor its setuid bit; and a
/// second input in the same batch gets a sysroot of its own.
fn each_file_is_written_once_as_a_copy_and_inputs_keep_their_own() {
    let base = scratch("sysroot-once");
    let n = 40;
    let names: Vec<String> = (0..n).map(|i| format!("/opt/app/l{i}.so")).collect();
    let images = mapping(&base, &names);
    let root = base.join("root");
    let app = root.join("opt/app");
    fs::create_dir_all(&app).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/synth"), vec![0x90u8; 5 * 4096]).unwrap();
    let real = app.join("real.so");
    fs::write(&real, vec![0x5au8; 1 << 20]).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o4755)).unwrap();
    for i in 0..n {
        let l = app.join(format!("l{i}.so"));
        if i % 2 == 0 {
            std::os::unix::fs::symlink("real.so", &l).unwrap();
        } else {
            fs::hard_link(&real, &l).unwrap();
        }
    }
    let sys = base.join("sys");
    let (ok, _, err) = run(
        &[
            "convert".as_ref(),
            images.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
            "--sysroot".as_ref(),
            sys.as_os_str(),
            "-o".as_ref(),
            base.join("cores").as_os_str(),
        ],
        &base,
    );
    assert!(ok, "{err}");
    let files = tree(&sys);
    let root_ino = fs::metadata(&real).unwrap().ino();
    let regular: Vec<_> = files.iter().filter(|f| f.3.is_none()).collect();
    let big: std::collections::BTreeSet<u64> = regular
        .iter()
        .filter(|f| f.2 == 1 << 20)
        .map(|f| f.1)
        .collect();
    assert_eq!(big.len(), 1, "the bytes written more than once: {files:#?}");
    assert!(!big.contains(&root_ino), "a hard link to the root's file");
    for i in 0..n {
        let l = sys.join(format!("opt/app/l{i}.so"));
        let m = fs::symlink_metadata(&l).unwrap();
        assert_eq!(m.file_type().is_symlink(), i % 2 == 0, "{}", l.display());
        let m = fs::metadata(&l).unwrap();
        assert_eq!(m.len(), 1 << 20);
        assert_eq!(m.mode() & 0o6000, 0, "setuid kept: {}", l.display());
    }
    let inodes: std::collections::BTreeMap<u64, u64> = regular.iter().map(|f| (f.1, f.2)).collect();
    let total: u64 = inodes.values().sum();
    assert!(total < 2 << 20, "{total} bytes of files");

    // Two inputs in one batch, one --sysroot: a directory each.
    let other = base.join("other");
    copy_dir(&images, &other);
    let (ok, out, err) = run(
        &[
            "batch".as_ref(),
            images.as_os_str(),
            other.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
            "--sysroot".as_ref(),
            base.join("shared").as_os_str(),
            "-o".as_ref(),
            base.join("batch").as_os_str(),
            "--json".as_ref(),
        ],
        &base,
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut dirs = Vec::new();
    for input in v["inputs"].as_array().unwrap() {
        let cmd = input["cores"][0]["gdb_command"]
            .as_str()
            .unwrap()
            .to_string();
        let output = PathBuf::from(input["output"].as_str().unwrap());
        let name = output.file_name().unwrap().to_str().unwrap().to_string();
        let own = base.join("shared").join(&name);
        assert!(
            cmd.contains(&format!("set sysroot {}", own.display())),
            "{cmd}"
        );
        assert!(own.join("opt/app/real.so").is_file(), "{}", own.display());
        dirs.push(own);
    }
    assert_eq!(dirs.len(), 2);
    assert_ne!(dirs[0], dirs[1]);
}

/// A warning about a path that is not UTF-8 shows its bytes as `\xNN`,
/// not U+FFFD.
fn sysroot_warnings_show_bytes_not_replacement_characters() {
    let base = scratch("sysroot-bytes");
    let images = base.join("images");
    synth::synthesize(&images, &Spec::default()).unwrap();
    edit_image::<proto::FileEntry>(&images.join("files.img"), 0, |_, e| {
        if let Some(r) = &mut e.reg {
            // Not UTF-8, and not in the root: a warning names it.
            r.name = b"/usr/bin/syn\xffxxth".to_vec();
        }
    });
    let root = base.join("root");
    fs::create_dir_all(&root).unwrap();
    let (ok, _, err) = run(
        &[
            "convert".as_ref(),
            images.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
            "--sysroot".as_ref(),
            base.join("sys").as_os_str(),
            "-o".as_ref(),
            base.join("cores").as_os_str(),
        ],
        &base,
    );
    assert!(ok, "{err}");
    assert!(
        err.contains(r"--sysroot: /usr/bin/syn\\xffxxth: not in the image or root"),
        "{err}"
    );
    assert!(!err.contains('\u{fffd}'), "{err}");
}

/// Many distinct mapped files, under a limit of open files far below
/// their count: the sysroot opens them as it needs them.
fn many_files_need_few_open_descriptors() {
    let base = scratch("sysroot-many");
    let n = 400;
    let names: Vec<String> = (0..n).map(|i| format!("/opt/many/f{i}")).collect();
    let images = mapping(&base, &names);
    let root = base.join("root");
    fs::create_dir_all(root.join("opt/many")).unwrap();
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    fs::write(root.join("usr/bin/synth"), vec![0x90u8; 5 * 4096]).unwrap();
    for i in 0..n {
        fs::write(root.join(format!("opt/many/f{i}")), format!("file {i}")).unwrap();
    }
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 100; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args([
            "convert".as_ref(),
            images.as_os_str(),
            "--root".as_ref(),
            root.as_os_str(),
            "--sysroot".as_ref(),
            base.join("sys").as_os_str(),
            "-o".as_ref(),
            base.join("cores").as_os_str(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("warning"), "{err}");
    for i in 0..n {
        let f = base.join(format!("sys/opt/many/f{i}"));
        assert_eq!(fs::read_to_string(&f).unwrap(), format!("file {i}"));
    }
}

/// The same in a checkpoint archive's rootfs-diff.tar (plain and zstd):
/// 20 names, hard links and symbolic links, for one 1 MiB file, all
/// mapped; no root at all. The sysroot holds the bytes once.
fn a_rootfs_diff_of_many_names_for_one_file_is_written_once() {
    let base = scratch("sysroot-diff-once");
    let n = 20;
    let mut names: Vec<String> = (0..n).map(|i| format!("/opt/app/l{i}.so")).collect();
    names.push("/opt/app/real.so".into());
    let images = mapping(&base, &names);
    let mut diff = tar::Builder::new(Vec::new());
    tar_file(&mut diff, "usr/bin/synth", &[0x90u8; 5 * 4096]);
    tar_file(&mut diff, "opt/app/real.so", &vec![0x5au8; 1 << 20]);
    for i in 0..n {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        if i % 2 == 0 {
            h.set_entry_type(tar::EntryType::Symlink);
            diff.append_link(&mut h, format!("opt/app/l{i}.so"), "real.so")
                .unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Link);
            diff.append_link(&mut h, format!("opt/app/l{i}.so"), "opt/app/real.so")
                .unwrap();
        }
    }
    let diff = diff.into_inner().unwrap();
    let tar = podman_tar(&images, |b| tar_file(b, "rootfs-diff.tar", &diff));
    let empty = base.join("empty");
    fs::create_dir_all(&empty).unwrap();
    for kind in ["tar", "tar.zst"] {
        let ar = base.join(format!("ck.{kind}"));
        fs::write(&ar, compress(&tar, kind)).unwrap();
        let sys = base.join(format!("sys-{kind}"));
        let (ok, _, err) = run(
            &[
                "convert".as_ref(),
                ar.as_os_str(),
                "--root".as_ref(),
                empty.as_os_str(),
                "--sysroot".as_ref(),
                sys.as_os_str(),
                "-o".as_ref(),
                base.join(format!("cores-{kind}")).as_os_str(),
            ],
            &base,
        );
        assert!(ok, "{kind}: {err}");
        let files = tree(&sys);
        let inodes: std::collections::BTreeMap<u64, u64> = files
            .iter()
            .filter(|f| f.3.is_none())
            .map(|f| (f.1, f.2))
            .collect();
        let big = inodes.values().filter(|&&len| len == 1 << 20).count();
        assert_eq!(big, 1, "{kind}: {files:#?}\n{err}");
        for i in 0..n {
            let l = sys.join(format!("opt/app/l{i}.so"));
            assert_eq!(fs::metadata(&l).unwrap().len(), 1 << 20, "{kind}: {err}");
        }
    }
}

pub fn tests() -> Vec<Trial> {
    trials![
        the_link_maps_names_are_written_so_gdb_loads_every_library
            needs [Need::Tool("gdb"), Need::MountNamespace],
        each_file_is_written_once_as_a_copy_and_inputs_keep_their_own,
        sysroot_warnings_show_bytes_not_replacement_characters,
        many_files_need_few_open_descriptors,
        a_rootfs_diff_of_many_names_for_one_file_is_written_once,
    ]
}
