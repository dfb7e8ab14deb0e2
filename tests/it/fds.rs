//! `inspect --fds --sockets --mounts`: open files, sockets and mounts of
//! real CRIU 4.2 checkpoints. `gdb-fixtures/net.tar.zst` is a process that
//! held an established loopback TCP connection (both ends, bytes queued
//! in each direction), TCP listeners on IPv4 and IPv6, a connected UDP
//! socket, a named unix listener, a unix socket pair, a pipe, an eventfd,
//! a pty pair and a file at offset 5, dumped with `--tcp-established` in a
//! mount namespace of its own (see gdb-fixtures/README.md). What the
//! report says is checked against what the program did, and against
//! CRIU's own decoder (`crit show`) where it is installed; the images of
//! CRIU releases before files.img give the same report.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::common::*;
use crate::Need;
use criu2core::testkit::{magic, proto, CheckpointWriter};
use libtest_mimic::Trial;
use serde_json::Value;

fn inspect_json(args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let o = criu2core(&all);
    assert!(
        o.status.success(),
        "inspect {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("inspect.schema.json", &v);
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The fds, sockets and mounts of the net fixture are what its program
/// made.
fn net_fixture_reports_what_the_program_held() {
    let fx = fixture("net");
    let v = inspect_json(&["--all", s(&fx.images())]);
    let p = &v["processes"][0];
    let fds = p["fds"].as_array().unwrap();
    let kinds: Vec<(u64, &str)> = fds
        .iter()
        .map(|f| (f["fd"].as_u64().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, "file"),
            (1, "file"),
            (2, "file"),
            (3, "tcp"),
            (4, "tcp"),
            (5, "tcp"),
            (6, "tcp6"),
            (7, "udp"),
            (8, "unix/stream"),
            (9, "unix/stream"),
            (10, "unix/stream"),
            (11, "pipe"),
            (12, "pipe"),
            (13, "eventfd"),
            (14, "tty"),
            (15, "tty"),
            (16, "file"),
        ]
    );
    let fd = |n: usize| &fds[n];
    assert_eq!(
        (&fd(16)["path"], &fd(16)["mode"], &fd(16)["pos"]),
        (
            &Value::from("/tmp/netvictim.txt"),
            &Value::from("rw"),
            &Value::from(5)
        )
    );
    assert_eq!(fd(13)["detail"], "counter 42");
    assert_eq!(fd(11)["inode"], fd(12)["inode"]);
    assert_eq!(
        (&fd(11)["mode"], &fd(12)["mode"]),
        (&Value::from("r"), &Value::from("w"))
    );
    assert_eq!(fd(14)["detail"], "/dev/pts/ptmx (pty 0, master)");
    assert_eq!(fd(15)["detail"], "/dev/pts/0 (pty 0)");
    assert_eq!(p["cwd"], "/app");
    let socks: BTreeMap<u64, &Value> = p["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["fd"].as_u64().unwrap(), s))
        .collect();
    assert_eq!(
        socks.keys().copied().collect::<Vec<_>>(),
        [3, 4, 5, 6, 7, 8, 9, 10]
    );
    let addr = |fd: u64, end: &str| {
        socks[&fd][end]["address"]
            .as_str()
            .unwrap_or("-")
            .to_string()
    };
    assert_eq!(
        (socks[&3]["state"].as_str(), addr(3, "local").as_str()),
        (Some("LISTEN"), "127.0.0.1:47011")
    );
    assert_eq!(socks[&3]["backlog"], 16);
    assert!(socks[&3]["remote"].is_null());
    // The connection: the client's ends are the server's, crossed.
    let (cli, srv) = (socks[&4], socks[&5]);
    assert_eq!(cli["state"], "ESTABLISHED");
    assert_eq!(cli["remote"]["address"], "127.0.0.1:47011");
    assert_eq!(cli["local"], srv["remote"]);
    assert_eq!(cli["remote"], srv["local"]);
    assert_ne!(cli["local"]["port"], 0);
    // Bytes written and never read: the request sits in the server's
    // receive queue, the response in the client's.
    let request = "GET /exfil?key=NET_SECRET_9931 HTTP/1.0\r\n\r\n".len();
    let response = "HTTP/1.0 200 OK\r\n\r\n".len();
    assert_eq!(
        (&srv["recv_queue"], &srv["send_queue"]),
        (&Value::from(request), &Value::from(0))
    );
    assert_eq!(
        (&cli["recv_queue"], &cli["send_queue"]),
        (&Value::from(response), &Value::from(0))
    );
    assert_eq!(
        (socks[&6]["family"].as_str(), addr(6, "local").as_str()),
        (Some("inet6"), "[::1]:47012")
    );
    assert_eq!(socks[&6]["state"], "LISTEN");
    assert_eq!(
        (
            socks[&7]["protocol"].as_str(),
            addr(7, "local").as_str(),
            addr(7, "remote").as_str()
        ),
        (Some("udp"), "127.0.0.1:47013", "127.0.0.1:53")
    );
    assert_eq!(
        (socks[&8]["state"].as_str(), addr(8, "local").as_str()),
        (Some("LISTEN"), "/tmp/netvictim.sock")
    );
    assert_eq!(socks[&9]["peer_inode"], socks[&10]["inode"]);
    assert_eq!(socks[&10]["peer_inode"], socks[&9]["inode"]);
    // The mounts of its namespace, parents first.
    let ns = &v["mounts"][0];
    assert_eq!(
        (&ns["id"], &ns["processes"]),
        (&Value::from(9), &serde_json::json!([28981]))
    );
    let mounts: Vec<(&str, &str, bool, Option<&str>)> = ns["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountpoint"].as_str().unwrap(),
                m["type"].as_str().unwrap(),
                m["read_only"].as_bool().unwrap(),
                m["external"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("/", "tmpfs", false, None),
            ("/dev", "tmpfs", false, None),
            ("/dev/null", "devtmpfs", false, Some("devnull")),
            ("/dev/pts", "devpts", false, None),
            ("/proc", "proc", false, None),
            ("/tmp", "tmpfs", false, None),
            ("/usr", "unsupported", true, Some("usr")),
        ]
    );
    // Without the options, none of it.
    let plain = inspect_json(&[s(&fx.images())]);
    let q = &plain["processes"][0];
    assert!(q["fds"].is_null() && q["sockets"].is_null() && plain["mounts"].is_null());
}

/// The text report: one line per descriptor, a socket table as ss lays it
/// out, the mount table.
fn text_report_of_fds_sockets_and_mounts() {
    let fx = fixture("net");
    let o = criu2core(["inspect", "--fds", "--sockets", "--mounts", s(&fx.images())]);
    assert!(o.status.success());
    let t = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = t.lines().map(str::trim_end).collect();
    for want in [
        "  fds      0    file        /dev/null (r, pos 0)",
        "           3    tcp         LISTEN 127.0.0.1:47011",
        "           13   eventfd     counter 42",
        "           16   file        /tmp/netvictim.txt (rw, pos 5, size 12)",
        "  cwd      /app",
        "  sockets  FD   PROTO        STATE       RECV-Q SEND-Q  LOCAL                    REMOTE",
        "           3    tcp          LISTEN           -     16  127.0.0.1:47011          *",
        "           6    tcp6         LISTEN           -      4  [::1]:47012              *",
        "           7    udp          ESTAB            -      -  127.0.0.1:47013          127.0.0.1:53",
        "mount namespace 9 (pid 28981)",
        "  64    63     unsupported  /usr                 /dev/vda     ro,discard,resv_strict,resuid=65534,resgid=65534 (root /usr) (external usr)",
    ] {
        assert!(lines.contains(&want), "no line {want:?} in:\n{t}");
    }
    let est: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("tcp          ESTABLISHED"))
        .collect();
    assert_eq!(est.len(), 2, "{t}");
    assert!(
        est.iter().any(|l| l.contains("    19      0  127.0.0.1:")),
        "{t}"
    );
    assert!(
        est.iter()
            .any(|l| l.contains("    43      0  127.0.0.1:47011")),
        "{t}"
    );
}

/// `crit show` (CRIU's own decoder) as JSON.
fn crit(img: &Path) -> Value {
    let o = std::process::Command::new("crit")
        .args(["show"])
        .arg(img)
        .output()
        .expect("run crit");
    assert!(
        o.status.success(),
        "crit show {}: {}",
        img.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every fixture's descriptors as crit decodes them: the same numbers,
/// kinds, paths, socket addresses, ports and states, and mounts.
fn fds_agree_with_crit() {
    for name in ["mt-pie", "fork-shared", "reaper", "net"] {
        let fx = fixture(name);
        let images = fx.images();
        let v = inspect_json(&["--all", s(&images)]);
        let files: BTreeMap<u64, Value> = crit(&images.join("files.img"))["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["id"].as_u64().unwrap(), e.clone()))
            .collect();
        let mut checked = 0;
        for p in v["processes"].as_array().unwrap() {
            if p["state"] == "zombie" {
                continue;
            }
            let pid = p["pid"].as_u64().unwrap();
            let ids = crit(&images.join(format!("ids-{pid}.img")));
            let table = ids["entries"][0]["files_id"].as_u64().unwrap();
            let fdinfo = crit(&images.join(format!("fdinfo-{table}.img")));
            let theirs: Vec<&Value> = fdinfo["entries"].as_array().unwrap().iter().collect();
            let ours = p["fds"].as_array().unwrap();
            let mut their_fds: Vec<u64> =
                theirs.iter().map(|e| e["fd"].as_u64().unwrap()).collect();
            their_fds.sort();
            let our_fds: Vec<u64> = ours.iter().map(|f| f["fd"].as_u64().unwrap()).collect();
            assert_eq!(our_fds, their_fds, "{name} pid {pid}");
            for e in theirs {
                let n = e["fd"].as_u64().unwrap();
                let f = ours.iter().find(|f| f["fd"] == n).unwrap();
                let file = &files[&e["id"].as_u64().unwrap()];
                let kind = f["type"].as_str().unwrap();
                match e["type"].as_str().unwrap() {
                    "REG" => {
                        assert!(kind == "file" || kind == "dir", "{name} fd {n}: {kind}");
                        assert_eq!(f["path"], file["reg"]["name"], "{name} fd {n}");
                        assert_eq!(f["pos"], file["reg"]["pos"], "{name} fd {n}");
                    }
                    "PIPE" => {
                        assert_eq!(kind, "pipe");
                        assert_eq!(f["inode"], file["pipe"]["pipe_id"]);
                    }
                    "INETSK" => {
                        let isk = &file["isk"];
                        let sock = p["sockets"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|s| s["fd"] == n)
                            .unwrap();
                        assert_eq!(sock["inode"], isk["ino"]);
                        assert_eq!(sock["local"]["port"], isk["src_port"], "{name} fd {n}");
                        assert_eq!(sock["local"]["ip"], isk["src_addr"][0], "{name} fd {n}");
                        assert_eq!(
                            sock["protocol"].as_str().unwrap(),
                            isk["proto"].as_str().unwrap().to_lowercase()
                        );
                        let state = isk["state"].as_str().unwrap();
                        let ours = sock["state"].as_str().unwrap();
                        assert!(
                            ours == state || (state == "ESTABLISHED" && ours == "ESTAB"),
                            "{ours} {state}"
                        );
                        if isk["dst_port"] != 0 {
                            assert_eq!(sock["remote"]["port"], isk["dst_port"]);
                            assert_eq!(sock["remote"]["ip"], isk["dst_addr"][0]);
                        }
                    }
                    "UNIXSK" => {
                        assert!(kind.starts_with("unix/"));
                        let sock = p["sockets"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .find(|s| s["fd"] == n)
                            .unwrap();
                        assert_eq!(sock["inode"], file["usk"]["ino"]);
                        let peer = file["usk"]["peer"].as_u64().unwrap();
                        assert_eq!(
                            sock["peer_inode"],
                            if peer == 0 {
                                Value::Null
                            } else {
                                Value::from(peer)
                            }
                        );
                    }
                    "EVENTFD" => {
                        assert_eq!(f["detail"], format!("counter {}", file["efd"]["counter"]))
                    }
                    "TTY" => assert_eq!(kind, "tty"),
                    other => panic!("{name}: fd {n} of type {other} is not compared"),
                }
                checked += 1;
            }
        }
        assert!(checked >= 5, "{name}: {checked} descriptors compared");
        // Mounts, where the checkpoint has them.
        for ns in v["mounts"].as_array().unwrap() {
            let id = ns["id"].as_u64().unwrap();
            let img = images.join(format!("mountpoints-{id}.img"));
            if !img.exists() {
                assert!(ns["mounts"].is_null(), "{name}");
                continue;
            }
            let triples = |list: &Value, id: &str| {
                let mut v: Vec<(u64, String, String)> = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        let text = |k: &str| m[k].as_str().unwrap().to_string();
                        (m[id].as_u64().unwrap(), text("mountpoint"), text("source"))
                    })
                    .collect();
                v.sort();
                v
            };
            let theirs = triples(&crit(&img)["entries"], "mnt_id");
            let ours = triples(&ns["mounts"], "id");
            assert_eq!(ours, theirs, "{name}");
        }
        if name != "net" {
            assert!(
                v["mounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|ns| ns["mounts"].is_null()),
                "{name}"
            );
        }
    }
}

/// The net fixture with its files.img split into the per-kind images of
/// CRIU releases before files.img, and its fd table named after the pid
/// as they named it, gives the same descriptors and sockets.
fn per_kind_images_of_older_criu_give_the_same_report() {
    let fx = fixture("net");
    let dir = scratch("fds-old-images");
    copy_dir(&fx.images(), &dir);
    let raw = read_raw(&dir.join("files.img"));
    let w = CheckpointWriter::create(&dir, 4096).unwrap();
    let (mut reg, mut isk, mut usk, mut pipes, mut efd, mut tty) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for e in &raw.entries {
        let f = <proto::FileDescEntry as prost::Message>::decode(&e[..]).unwrap();
        if let Some(x) = f.reg {
            reg.push(x)
        } else if let Some(x) = f.isk {
            isk.push(x)
        } else if let Some(x) = f.usk {
            usk.push(x)
        } else if let Some(x) = f.pipe {
            pipes.push(x)
        } else if let Some(x) = f.efd {
            efd.push(x)
        } else if let Some(x) = f.tty {
            tty.push(x)
        } else {
            panic!("a file of type {} in the net fixture", f.r#type);
        }
    }
    w.write("reg-files.img", magic::REG_FILES, &reg).unwrap();
    w.write("inetsk.img", magic::INETSK, &isk).unwrap();
    w.write("unixsk.img", magic::UNIXSK, &usk).unwrap();
    w.write("pipes.img", magic::PIPES, &pipes).unwrap();
    w.write("eventfd.img", magic::EVENTFD_FILE, &efd).unwrap();
    w.write("tty.img", magic::TTY_FILES, &tty).unwrap();
    fs::remove_file(dir.join("files.img")).unwrap();
    fs::remove_file(dir.join("ids-28981.img")).unwrap();
    fs::rename(dir.join("fdinfo-2.img"), dir.join("fdinfo-28981.img")).unwrap();
    let old = inspect_json(&["--fds", "--sockets", s(&dir)]);
    let new = inspect_json(&["--fds", "--sockets", s(&fx.images())]);
    for key in ["fds", "sockets", "cwd"] {
        assert_eq!(old["processes"][0][key], new["processes"][0][key], "{key}");
    }
}

/// Names from a checkpoint reach the terminal escaped and JSON exactly;
/// damaged images are errors naming them, never a panic.
fn hostile_names_and_damaged_images() {
    let fx = fixture("net");
    let dir = scratch("fds-hostile");
    copy_dir(&fx.images(), &dir);
    let evil = b"/tmp/\x1b[2J\xff\n".to_vec();
    edit_image::<proto::FileDescEntry>(&dir.join("files.img"), 0, |_, f| {
        if let Some(u) = &mut f.usk {
            if !u.name.is_empty() {
                u.name = evil.clone();
            }
        }
    });
    let o = criu2core(["inspect", "--sockets", "--fds", s(&dir)]);
    assert!(o.status.success());
    assert!(!o.stdout.contains(&0x1b));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains(r"/tmp/\x1b[2J\xff\n"), "{t}");
    let v = inspect_json(&["--sockets", s(&dir)]);
    // Not UTF-8: the exact bytes in base64.
    assert_eq!(
        v["processes"][0]["sockets"][5]["local"]["path"],
        serde_json::json!({"base64": "L3RtcC8bWzJK/wo="})
    );
    // A truncated files.img, a corrupt mount image.
    let files = dir.join("files.img");
    let len = fs::metadata(&files).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&files)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let o = criu2core(["inspect", "--fds", s(&dir)]);
    assert!(!o.status.success());
    let t = String::from_utf8_lossy(&o.stderr);
    assert!(
        t.contains("files.img: offset") && t.contains("truncated"),
        "{t}"
    );
    copy_dir(&fx.images(), &dir);
    fs::write(
        dir.join("mountpoints-9.img"),
        b"\x19\x43\x56\x54\x28\x39\x56\x55\xff\xff",
    )
    .unwrap();
    let o = criu2core(["inspect", "--mounts", s(&dir)]);
    assert!(!o.status.success());
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("mountpoints-9.img"), "{t}");
    // More descriptors than Linux allows by default: refused, named.
    copy_dir(&fx.images(), &dir);
    let many: Vec<proto::FdinfoEntry> = (0..(1u32 << 20) + 1)
        .map(|fd| proto::FdinfoEntry {
            id: 4,
            flags: 0,
            r#type: proto::FdType::Reg as i32,
            fd,
        })
        .collect();
    CheckpointWriter::create(&dir, 4096)
        .unwrap()
        .write("fdinfo-2.img", magic::FDINFO, &many)
        .unwrap();
    let o = criu2core(["inspect", "--fds", s(&dir)]);
    assert!(!o.status.success());
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("fdinfo-2.img: more than 1048576 descriptors"),
        "{t}"
    );
}

/// From a Podman archive as from its images, and grep finds the secrets
/// of the net fixture in its memory.
fn archives_and_grep_on_the_net_fixture() {
    let fx = fixture("net");
    let dir = scratch("fds-archive");
    let ar = dir.join("net.tar.zst");
    fs::write(&ar, compress(&podman_tar(&fx.images(), |_| {}), "tar.zst")).unwrap();
    let a = inspect_json(&["--all", s(&ar)]);
    let b = inspect_json(&["--all", s(&fx.images())]);
    assert_eq!(a["processes"][0]["sockets"], b["processes"][0]["sockets"]);
    assert_eq!(a["mounts"], b["mounts"]);
    for m in &fx.markers {
        let o = criu2core(["grep", "-c", m, s(&ar)]);
        assert_eq!(o.status.code(), Some(0), "{m}");
    }
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        net_fixture_reports_what_the_program_held needs [Need::Tool("tar"), Need::Tool("zstd")],
        text_report_of_fds_sockets_and_mounts needs [Need::Tool("tar"), Need::Tool("zstd")],
        fds_agree_with_crit needs [Need::Tool("crit"), Need::Tool("tar"), Need::Tool("zstd")],
        per_kind_images_of_older_criu_give_the_same_report needs [Need::Tool("tar"), Need::Tool("zstd")],
        hostile_names_and_damaged_images needs [Need::Tool("tar"), Need::Tool("zstd")],
        archives_and_grep_on_the_net_fixture needs [Need::Tool("tar"), Need::Tool("zstd")],
    ]
}
