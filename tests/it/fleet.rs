//! At fleet scale: batch, convert and inspect from and to object storage
//! (a real S3 server, moto's, on 127.0.0.1 with a port of its own for each
//! test), giving the same cores as local runs; a failed upload that leaves
//! no object; resume on S3; `--compress zstd`; shards that together
//! convert each input once and `criu2core summary` merging them; and
//! `criu2core watch`, which converts an archive dropped into a directory
//! once it is complete, and only once, however it arrives; and the output
//! directory's lock (a lease object in S3), which keeps a second writer
//! out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;
use crate::Need;
use criu2core::testkit::synth::{self, Spec};
use libtest_mimic::Trial;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_criu2core");

/// A synthetic checkpoint of one process (pid 1) with `bytes` of pages,
/// as the bytes of a Podman archive of kind `kind` ("tar", "tar.zst", ...).
fn archive(dir: &Path, seed: u64, bytes: u64, kind: &str) -> Vec<u8> {
    let images = dir.join(format!("images-{seed}"));
    fs::create_dir_all(&images).unwrap();
    synth::synthesize(
        &images,
        &Spec {
            seed,
            processes: 1,
            threads: 2,
            vmas: 12,
            bytes,
            holes: 4,
            ..Default::default()
        },
    )
    .unwrap();
    compress(&podman_tar(&images, |_| {}), kind)
}

/// Every file under `dir`, relative path → bytes.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The cores (`NAME/core.PID`, `.zst` decompressed) in a tree.
pub fn cores(t: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    t.iter()
        .filter(|(k, _)| k.contains("/core."))
        .map(|(k, v)| match k.strip_suffix(".zst") {
            Some(plain) => (plain.to_string(), zstd::decode_all(&v[..]).unwrap()),
            None => (k.clone(), v.clone()),
        })
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    o
}

/// The summary (`summary.json` or a shard's) in `dir`, checked against
/// docs/batch.schema.json.
fn summary_in(dir: &Path, name: &str) -> Value {
    let v: Value = serde_json::from_slice(&fs::read(dir.join(name)).unwrap()).unwrap();
    assert_schema("batch.schema.json", &v);
    v
}

/// Input → status, of a summary.
fn statuses(sm: &Value) -> BTreeMap<String, String> {
    sm["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["input"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The S3 server

/// moto's S3 server: MOTO_SERVER, target/s3-venv (where .ci/run installs
/// it) or PATH.
pub fn moto_server() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(repo().join("target/s3-venv/bin/moto_server"));
    if on_path("moto_server") {
        candidates.push("moto_server".into());
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The Python beside moto_server, which has boto3 (moto needs it).
fn moto_python() -> PathBuf {
    let server = moto_server().unwrap();
    match server.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(bin) => bin.join("python3"),
        None => "python3".into(),
    }
}

/// An object-storage server of a test's own: its own operations (the
/// tool's) and criu2core configured to use it.
pub trait Server {
    /// Runs one of the server's tool operations (mb, up, down, ...).
    fn tool(&self, args: &[&str]) -> String;
    /// Runs criu2core against the server.
    fn run(&self, args: &[&str]) -> Output;
}

/// A moto S3 server of the test's own on 127.0.0.1, stopped when dropped.
pub struct S3 {
    child: Child,
    port: u16,
}

impl S3 {
    pub fn start() -> S3 {
        let server = moto_server().expect("moto_server");
        let (child, port) = serve("moto_server", |port| {
            let mut c = Command::new(&server);
            c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            c
        });
        S3 { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// criu2core with the S3 configuration for `endpoint`.
    pub fn criu2core(endpoint: &str) -> Command {
        let mut c = Command::new(BIN);
        c.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
        c
    }
}

impl Server for S3 {
    fn tool(&self, args: &[&str]) -> String {
        let o = Command::new(moto_python())
            .arg("-c")
            .arg(S3_TOOL)
            .arg(self.endpoint())
            .args(args)
            .output()
            .unwrap();
        text(&ok(o).stdout)
    }

    fn run(&self, args: &[&str]) -> Output {
        S3::criu2core(&self.endpoint()).args(args).output().unwrap()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server `command` makes for a port, on a free port of this
/// machine's choosing on loopback only; waits until it accepts connections.
fn serve(name: &str, command: impl Fn(u16) -> Command) -> (Child, u16) {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = command(port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{name} did not start");
}

/// Operations on the S3 server, through boto3, for the tests to set up
/// and look at what criu2core did: mb BUCKET; up BUCKET PREFIX DIR; down
/// BUCKET PREFIX DIR; ls BUCKET PREFIX; rm BUCKET KEY; put BUCKET KEY
/// TEXT; putfile BUCKET KEY FILE; cat BUCKET KEY; uploads BUCKET.
const S3_TOOL: &str = r#"
import os, sys, boto3
ep, op, bucket = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
def keys(prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            yield o["Key"]
if op == "mb":
    s3.create_bucket(Bucket=bucket)
elif op == "up":
    prefix, d = sys.argv[4], sys.argv[5]
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            s3.upload_file(p, bucket, prefix + os.path.relpath(p, d))
elif op == "down":
    prefix, d = sys.argv[4], sys.argv[5]
    for k in keys(prefix):
        p = os.path.join(d, k[len(prefix):])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        s3.download_file(bucket, k, p)
elif op == "ls":
    for k in keys(sys.argv[4]):
        print(k)
elif op == "putfile":
    s3.put_object(Bucket=bucket, Key=sys.argv[4], Body=open(sys.argv[5], "rb").read())
elif op == "rm":
    s3.delete_object(Bucket=bucket, Key=sys.argv[4])
elif op == "put":
    s3.put_object(Bucket=bucket, Key=sys.argv[4], Body=sys.argv[5].encode())
elif op == "cat":
    sys.stdout.write(s3.get_object(Bucket=bucket, Key=sys.argv[4])["Body"].read().decode())
elif op == "uploads":
    for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        print(u["Key"])
"#;

// ---------------------------------------------------------------------------

/// Two checkpoints in `base/in`: a plain tar (read where it lies, by
/// ranged reads) and a `.tar.zst` in a subdirectory (read in one stream);
/// and the cores a local batch makes of them.
fn two_inputs(base: &Path, seed: u64) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let input = base.join("in");
    fs::create_dir_all(input.join("sub")).unwrap();
    fs::write(input.join("a.tar"), archive(base, seed, 3 << 20, "tar")).unwrap();
    fs::write(
        input.join("sub/b.tar.zst"),
        archive(base, seed + 1, 2 << 20, "tar.zst"),
    )
    .unwrap();
    let local = base.join("local");
    ok(criu2core([
        "batch".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        local.as_os_str(),
    ]));
    let want = cores(&tree(&local));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        ["a/core.1", "b/core.1"],
        "{:?}",
        tree(&local).keys()
    );
    (input, want)
}

/// Uploads `input` under `checkpoints/` of the bucket `ckpt` on `server`,
/// runs `batch FROM -o TO` there, checks that it converted both inputs to
/// the cores `want` (downloaded into `got`), and gives its summary.
fn batch_round_trip(
    server: &dyn Server,
    input: &Path,
    from: &str,
    to: &str,
    want: &BTreeMap<String, Vec<u8>>,
    got: &Path,
) -> Value {
    server.tool(&["mb", "ckpt"]);
    server.tool(&["up", "ckpt", "checkpoints/", input.to_str().unwrap()]);
    let o = ok(server.run(&["batch", from, "-o", to]));
    assert!(
        text(&o.stdout).starts_with("2 inputs: 2 converted, 0 already complete, 0 failed"),
        "{}",
        text(&o.stdout)
    );
    server.tool(&["down", "ckpt", "cores/", got.to_str().unwrap()]);
    assert_eq!(
        &cores(&tree(got)),
        want,
        "{from} → {to}: cores differ from local ones"
    );
    summary_in(got, "summary.json")
}

fn s3_inputs_and_outputs_give_the_same_cores_as_local() {
    let base = scratch("fleet-s3-same");
    let (input, want) = two_inputs(&base, 1);
    // Not a checkpoint: its first bytes say so, and it is left out.
    fs::write(input.join("notes.txt"), "not a checkpoint").unwrap();
    let s3 = S3::start();
    let got = base.join("got");
    let from = "s3://ckpt/checkpoints/";
    let sm = batch_round_trip(&s3, &input, from, "s3://ckpt/cores/", &want, &got);
    assert_eq!(sm["out_dir"], "s3://ckpt/cores");
    assert_eq!(
        statuses(&sm),
        BTreeMap::from([
            ("s3://ckpt/checkpoints/a.tar".to_string(), "ok".to_string()),
            (
                "s3://ckpt/checkpoints/sub/b.tar.zst".to_string(),
                "ok".to_string()
            ),
        ])
    );
    for e in sm["inputs"].as_array().unwrap() {
        for c in e["cores"].as_array().unwrap() {
            assert!(c["path"].as_str().unwrap().starts_with("s3://ckpt/cores/"));
            // No gdb command for a core gdb cannot open where it is.
            assert!(c["gdb_command"].is_null(), "{c}");
        }
    }

    // Resume: what is complete is skipped; a core gone is made again.
    let o = ok(s3.run(&["batch", "s3://ckpt/checkpoints/", "-o", "s3://ckpt/cores"]));
    assert!(
        text(&o.stdout).starts_with("2 inputs: 0 converted, 2 already complete"),
        "{}",
        text(&o.stdout)
    );
    s3.tool(&["rm", "ckpt", "cores/a/core.1"]);
    let o = ok(s3.run(&["batch", "s3://ckpt/checkpoints/", "-o", "s3://ckpt/cores/"]));
    assert!(
        text(&o.stdout).starts_with("2 inputs: 1 converted, 1 already complete"),
        "{}",
        text(&o.stdout)
    );
    let again = base.join("again");
    s3.tool(&["down", "ckpt", "cores/", again.to_str().unwrap()]);
    assert_eq!(cores(&tree(&again)), want);

    // Compressed, to object storage and locally: the same cores.
    ok(s3.run(&[
        "batch",
        "s3://ckpt/checkpoints/",
        "-o",
        "s3://ckpt/zst/",
        "--compress",
        "zstd",
    ]));
    let zst = base.join("zst");
    s3.tool(&["down", "ckpt", "zst/", zst.to_str().unwrap()]);
    let t = tree(&zst);
    assert!(t.contains_key("a/core.1.zst") && !t.contains_key("a/core.1"));
    assert_eq!(cores(&t), want);
    let sm = summary_in(&zst, "summary.json");
    let e = &sm["inputs"][0];
    let name = e["output"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(
        e["cores"][0]["compressed_size"].as_u64(),
        Some(t[&format!("{name}/core.1.zst")].len() as u64)
    );
    let local_zst = base.join("local-zst");
    ok(criu2core([
        "batch".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        local_zst.as_os_str(),
        "--compress".as_ref(),
        "zstd".as_ref(),
    ]));
    assert_eq!(cores(&tree(&local_zst)), want);
    // Its gdb command decompresses it first, and then opens it.
    let sm = summary_in(&local_zst, "summary.json");
    let cmd = sm["inputs"][0]["cores"][0]["gdb_command"].as_str().unwrap();
    let zst = sm["inputs"][0]["cores"][0]["path"].as_str().unwrap();
    let plain = zst.strip_suffix(".zst").unwrap();
    assert!(
        cmd.starts_with(&format!("zstd -dq {zst} && gdb ")) && cmd.ends_with(&format!(" {plain}")),
        "{cmd}"
    );

    // convert and inspect read an object as they read a file.
    let one = base.join("one");
    ok(s3.run(&[
        "convert",
        "s3://ckpt/checkpoints/a.tar",
        "-o",
        one.to_str().unwrap(),
    ]));
    assert_eq!(fs::read(one.join("core.1")).unwrap(), want["a/core.1"]);
    let o = ok(s3.run(&[
        "convert",
        "s3://ckpt/checkpoints/a.tar",
        "-o",
        "s3://ckpt/one/",
    ]));
    assert!(
        text(&o.stdout).starts_with("s3://ckpt/one/core.1: pid 1 (synth)")
            && !text(&o.stdout).contains("gdb"),
        "{}",
        text(&o.stdout)
    );
    let o = ok(s3.run(&["inspect", "s3://ckpt/checkpoints/sub/b.tar.zst", "--json"]));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(text(&o.stdout).contains("\"pid\": 1"), "{v}");
    // grep and read too.
    let local_tar = input.join("a.tar");
    let o = ok(s3.run(&["grep", "synth", "s3://ckpt/checkpoints/a.tar"]));
    let hits = text(&o.stdout);
    let local = ok(criu2core([
        "grep".as_ref(),
        "synth".as_ref(),
        local_tar.as_os_str(),
    ]));
    assert!(!hits.is_empty());
    assert_eq!(
        hits.replace("s3://ckpt/checkpoints/a.tar", "A"),
        text(&local.stdout).replace(local_tar.to_str().unwrap(), "A")
    );
    let addr = hits
        .split_whitespace()
        .find(|w| w.starts_with("0x"))
        .unwrap()
        .to_string();
    let o = ok(s3.run(&[
        "read",
        "--pid",
        "1",
        "s3://ckpt/checkpoints/a.tar",
        &addr,
        "5",
    ]));
    assert_eq!(o.stdout, b"synth");
    // A prefix that holds no checkpoint fails as a directory would.
    let o = s3.run(&["batch", "s3://ckpt/nothing/", "-o", "s3://ckpt/cores2/"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("holds no checkpoint"),
        "{}",
        text(&o.stderr)
    );
}

/// A proxy to 127.0.0.1:`upstream` that passes everything but the second
/// and later parts of multipart uploads: those it cuts off half-way, as a
/// server dying mid-upload would. Returns its port and how many it cut.
fn part_cutting_proxy(upstream: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cuts = Arc::new(AtomicUsize::new(0));
    let counter = cuts.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(Shutdown::Both);
            });
            let counter = counter.clone();
            std::thread::spawn(move || pass_requests(client, server, &counter));
        }
    });
    (port, cuts)
}

/// Passes HTTP requests from `client` to `server`, one at a time, cutting
/// off uploads of parts after the first.
fn pass_requests(client: TcpStream, mut server: TcpStream, cuts: &AtomicUsize) {
    let mut r = BufReader::new(client.try_clone().unwrap());
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let h = text(&head);
        let len: u64 = h
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let first = h.lines().next().unwrap_or("");
        let part: u64 = first
            .split_once("partNumber=")
            .and_then(|(_, rest)| rest.split(['&', ' ']).next()?.parse().ok())
            .unwrap_or(0);
        if first.starts_with("PUT") && part >= 2 {
            let _ = server.write_all(&head);
            let _ = std::io::copy(&mut (&mut r).take(len / 2), &mut server);
            cuts.fetch_add(1, Ordering::SeqCst);
            let _ = server.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        if server.write_all(&head).is_err()
            || std::io::copy(&mut (&mut r).take(len), &mut server).is_err()
        {
            return;
        }
    }
}

fn a_failed_upload_leaves_no_object_and_a_failed_entry() {
    let base = scratch("fleet-s3-cut");
    let input = base.join("big.tar");
    // A core of three parts or more: the first goes up, the rest fail.
    fs::write(&input, archive(&base, 5, 24 << 20, "tar")).unwrap();
    let s3 = S3::start();
    s3.tool(&["mb", "ckpt"]);
    let (proxy, cuts) = part_cutting_proxy(s3.port);
    let o = S3::criu2core(&format!("http://127.0.0.1:{proxy}"))
        .args(["batch", input.to_str().unwrap(), "-o", "s3://ckpt/cores/"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(cuts.load(Ordering::SeqCst) > 0, "no upload was cut");
    let keys = s3.tool(&["ls", "ckpt", "cores/"]);
    assert!(
        !keys.lines().any(|k| k.contains("core.")),
        "a core object after a failed upload: {keys}"
    );
    // The upload was aborted, not left behind.
    assert_eq!(s3.tool(&["uploads", "ckpt"]).trim(), "");
    let got = base.join("got");
    s3.tool(&["down", "ckpt", "cores/", got.to_str().unwrap()]);
    let sm = summary_in(&got, "summary.json");
    let e = &sm["inputs"][0];
    assert_eq!(e["status"], "failed", "{sm}");
    assert_eq!(sm["failed"], 1);
    assert!(e["cores"].as_array().unwrap().is_empty());
    let stderr = text(&o.stderr);
    assert!(stderr.contains("core.1"), "{stderr}");
}

// ---------------------------------------------------------------------------

fn shards_convert_each_input_once_and_summary_merges_them() {
    let base = scratch("fleet-shards");
    let input = base.join("in");
    fs::create_dir_all(&input).unwrap();
    let names: Vec<String> = (0..7).map(|i| format!("c{i}.tar")).collect();
    for (i, n) in names.iter().enumerate() {
        fs::write(
            input.join(n),
            archive(&base, 10 + i as u64, 64 << 10, "tar"),
        )
        .unwrap();
    }
    let out = base.join("out");
    let shard_of = |out: &Path, k: u64, reversed: bool| -> BTreeSet<String> {
        let mut args: Vec<PathBuf> = names.iter().map(|n| input.join(n)).collect();
        if reversed {
            args.reverse();
        }
        let o = Command::new(BIN)
            .arg("batch")
            .args(&args)
            .arg("-o")
            .arg(out)
            .args(["--shard", &format!("{k}/3")])
            .output()
            .unwrap();
        ok(o);
        let sm = summary_in(out, &format!("summary-{k}-of-3.json"));
        assert_eq!(sm["shard"]["shard"]["index"], k);
        assert_eq!(sm["shard"]["listed"].as_array().unwrap().len(), names.len());
        statuses(&sm).into_keys().collect()
    };
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for k in 0..3 {
        for i in shard_of(&out, k, false) {
            assert!(seen.insert(i.clone(), k).is_none(), "{i} in two shards");
        }
    }
    assert_eq!(seen.len(), names.len(), "{seen:?}");
    assert!(!out.join("summary.json").exists());
    // The same split whatever the order the inputs are listed in.
    let other = base.join("reversed");
    for k in 0..3 {
        for i in shard_of(&other, k, true) {
            assert_eq!(seen[&i], k);
        }
    }
    // --shards N takes K from a Kubernetes Indexed Job's index.
    let job = base.join("job");
    let o = Command::new(BIN)
        .arg("batch")
        .arg(&input)
        .arg("-o")
        .arg(&job)
        .args(["--shards", "3"])
        .env("JOB_COMPLETION_INDEX", "1")
        .output()
        .unwrap();
    ok(o);
    let mine: BTreeSet<String> = statuses(&summary_in(&job, "summary-1-of-3.json"))
        .into_keys()
        .collect();
    let want: BTreeSet<String> = seen
        .iter()
        .filter(|(_, &k)| k == 1)
        .map(|(i, _)| i.clone())
        .collect();
    assert_eq!(mine, want);
    let o = Command::new(BIN)
        .arg("batch")
        .arg(&input)
        .args(["-o", job.to_str().unwrap(), "--shards", "3"])
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("JOB_COMPLETION_INDEX"));

    // Merged: every input once, all converted.
    let o = ok(criu2core(["summary".as_ref(), out.as_os_str()]));
    assert!(
        text(&o.stdout)
            .starts_with("7 inputs: 7 converted, 0 already complete, 0 failed, 0 missing"),
        "{}",
        text(&o.stdout)
    );
    let sm = summary_in(&out, "summary.json");
    assert_eq!(statuses(&sm).len(), names.len());
    assert_eq!(sm["ok"], 7);
    assert!(sm.get("missing").is_none());
    assert_eq!(cores(&tree(&out)).len(), names.len());

    // A shard that never ran: its inputs are missing, and it is named.
    let part = base.join("part");
    for k in [0, 2] {
        shard_of(&part, k, false);
    }
    let o = criu2core(["summary".as_ref(), part.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("shards that wrote no summary: 1"), "{err}");
    let sm = summary_in(&part, "summary.json");
    let missing: BTreeSet<String> = sm["missing"]
        .as_array()
        .map(|m| m.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    assert_eq!(missing, want);
    for m in &missing {
        assert!(err.contains(&format!("{m}: missing")), "{err}");
    }
}

// ---------------------------------------------------------------------------

fn mtime(p: &Path) -> SystemTime {
    fs::metadata(p).unwrap().modified().unwrap()
}

/// Waits up to a minute for `cond`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status of `name`'s entry in OUT/summary.json, if it has one.
fn watched(out: &Path, name: &str) -> Option<String> {
    let bytes = fs::read(out.join("summary.json")).ok()?;
    let sm: Value = serde_json::from_slice(&bytes).ok()?;
    statuses(&sm)
        .into_iter()
        .find(|(i, _)| i.ends_with(&format!("/{name}")))
        .map(|(_, s)| s)
}

fn watch_converts_an_archive_once_it_is_complete_and_once() {
    let base = scratch("fleet-watch");
    let dir = base.join("checkpoints");
    let out = base.join("out");
    fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(BIN)
        .arg("watch")
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .args(["--settle", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A first archive, written at once: the watcher is up once it is in.
    fs::write(dir.join("first.tar"), archive(&base, 20, 64 << 10, "tar")).unwrap();
    wait_for("first.tar", || watched(&out, "first.tar").is_some());
    assert_eq!(watched(&out, "first.tar").as_deref(), Some("ok"));

    // Written slowly, in place, as the kubelet does, with pauses longer
    // than --settle: not touched while its writer has it open.
    let bytes = archive(&base, 21, 256 << 10, "tar");
    let slow = dir.join("slow.tar");
    let mut f = fs::File::create(&slow).unwrap();
    for chunk in bytes.chunks(bytes.len() / 4 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1600));
        assert_eq!(
            watched(&out, "slow.tar"),
            None,
            "converted while being written"
        );
        assert!(!out.join("slow").exists());
    }
    drop(f);
    wait_for("slow.tar", || watched(&out, "slow.tar").is_some());
    assert_eq!(watched(&out, "slow.tar").as_deref(), Some("ok"));
    let core = out.join("slow/core.1");
    let made = mtime(&core);
    let standalone = base.join("standalone");
    ok(criu2core([
        "convert".as_ref(),
        slow.as_os_str(),
        "-o".as_ref(),
        standalone.as_os_str(),
    ]));
    assert_eq!(
        fs::read(&core).unwrap(),
        fs::read(standalone.join("core.1")).unwrap()
    );
    // Once: nothing happens to it later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(mtime(&core), made);

    // SIGTERM ends it cleanly.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}; {stdout}");
    for name in ["first.tar", "slow.tar"] {
        let lines: Vec<&str> = stdout.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(lines.len(), 1, "{name}: {stdout}");
        assert!(lines[0].contains(": converted (1 core)"), "{stdout}");
    }

    // Restarted, it resumes: what is converted stays as it is.
    let o = ok(Command::new(BIN)
        .arg("watch")
        .arg(&dir)
        .arg("-o")
        .arg(&out)
        .arg("--once")
        .output()
        .unwrap());
    let stdout = text(&o.stdout);
    assert_eq!(stdout.matches("already converted").count(), 2, "{stdout}");
    assert_eq!(mtime(&core), made);
}

/// Starts `criu2core watch DIR -o OUT --settle 1` with `extra` arguments.
fn start_watch(dir: &Path, out: &str, extra: &[&str], env: Option<&str>) -> Child {
    let mut c = match env {
        Some(endpoint) => S3::criu2core(endpoint),
        None => Command::new(BIN),
    };
    c.arg("watch")
        .arg(dir)
        .args(["-o", out, "--settle", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ends a watch with SIGTERM; its stdout and stderr.
fn stop_watch(mut child: Child) -> (String, String) {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}; {stdout}; {stderr}");
    (stdout, stderr)
}

/// Two writers into one output directory never run at once: a watch holds
/// OUT's lock, and a batch, a shard of it, and shards of another split are
/// refused, deleting nothing (a shard used to lock only its own lock file,
/// and the two removed each other's cores); shards of one split share it.
fn a_second_writer_is_refused_and_deletes_nothing() {
    use criu2core::batch::{lock, Writer};
    let base = scratch("fleet-lock");
    let dir = base.join("checkpoints");
    fs::create_dir_all(&dir).unwrap();
    let out = base.join("out");
    let watch = start_watch(&dir, out.to_str().unwrap(), &[], None);
    fs::write(dir.join("web.tar"), archive(&base, 30, 64 << 10, "tar")).unwrap();
    wait_for("web.tar", || watched(&out, "web.tar").is_some());
    let core = out.join("web/core.1");
    let (bytes, made) = (fs::read(&core).unwrap(), mtime(&core));
    let input = dir.join("web.tar");
    let batch = |extra: &[&str]| {
        Command::new(BIN)
            .arg("batch")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    for extra in [&[][..], &["--shard", "0/1"], &["--shard", "1/2"], &["-f"]] {
        let o = batch(extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(
            err.contains("another criu2core run (watch, pid ")
                && err.contains("is writing into this output directory"),
            "{extra:?}: {err}"
        );
        assert_eq!(
            (fs::read(&core).unwrap(), mtime(&core)),
            (bytes.clone(), made)
        );
    }
    stop_watch(watch);

    // Shards of one split write together; nothing else writes beside them.
    let shard = lock(&out, Writer::Shards(2), "batch").unwrap();
    for extra in [&[][..], &["--shard", "0/1"], &["--shard", "0/3"]] {
        let o = batch(extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        assert!(
            text(&o.stderr).contains("(a shard of batch split 2 ways, pid "),
            "{}",
            text(&o.stderr)
        );
    }
    for k in ["0/2", "1/2"] {
        ok(batch(&["--shard", k]));
    }
    // Nor is a merge of their summaries made while they run.
    let o = criu2core(["summary".as_ref(), out.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("(a shard of batch split 2 ways, pid "),
        "{}",
        text(&o.stderr)
    );
    drop(shard);
    ok(criu2core(["summary".as_ref(), out.as_os_str()]));
    ok(batch(&[]));
    assert_eq!(fs::read(&core).unwrap(), bytes);
}

/// watch converts an archive however it arrives: renamed into DIR, linked
/// into it, or copied and then given another mode before it settled (each
/// used to be taken as still being written, for ever).
fn watch_converts_archives_that_are_renamed_linked_or_chmodded_in() {
    use std::os::unix::fs::PermissionsExt;
    let base = scratch("fleet-watch-arrivals");
    let dir = base.join("checkpoints");
    let staging = base.join("staging");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&staging).unwrap();
    let out = base.join("out");
    // No rescans: the events alone must do it.
    let watch = start_watch(&dir, out.to_str().unwrap(), &["--rescan", "0"], None);
    fs::write(dir.join("first.tar"), archive(&base, 40, 64 << 10, "tar")).unwrap();
    wait_for("first.tar", || watched(&out, "first.tar").is_some());
    for (i, name) in ["moved.tar", "linked.tar", "chmodded.tar"]
        .iter()
        .enumerate()
    {
        fs::write(
            staging.join(name),
            archive(&base, 41 + i as u64, 64 << 10, "tar"),
        )
        .unwrap();
    }
    fs::rename(staging.join("moved.tar"), dir.join("moved.tar")).unwrap();
    fs::hard_link(staging.join("linked.tar"), dir.join("linked.tar")).unwrap();
    fs::copy(staging.join("chmodded.tar"), dir.join("chmodded.tar")).unwrap();
    fs::set_permissions(dir.join("chmodded.tar"), fs::Permissions::from_mode(0o600)).unwrap();
    for name in ["moved.tar", "linked.tar", "chmodded.tar"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while watched(&out, name).is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(watched(&out, name).as_deref(), Some("ok"), "{name}");
    }
    let (stdout, _) = stop_watch(watch);
    assert_eq!(
        stdout.matches(": converted (1 core)").count(),
        4,
        "{stdout}"
    );

    // A writer that wrote it whole and went silent without closing it is
    // taken to be gone after a whole --rescan period.
    let watch = start_watch(&dir, out.to_str().unwrap(), &["--rescan", "2"], None);
    fs::write(dir.join("second.tar"), archive(&base, 44, 64 << 10, "tar")).unwrap();
    wait_for("second.tar", || watched(&out, "second.tar").is_some());
    let mut open = fs::File::create(dir.join("left-open.tar")).unwrap();
    open.write_all(&archive(&base, 45, 64 << 10, "tar"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        watched(&out, "left-open.tar"),
        None,
        "taken while its writer was fresh"
    );
    wait_for("left-open.tar", || watched(&out, "left-open.tar").is_some());
    assert_eq!(watched(&out, "left-open.tar").as_deref(), Some("ok"));
    drop(open);
    stop_watch(watch);
}

/// A prefix in object storage is locked by a lease object: a writer finds
/// another's unexpired lease and is refused, a shard joins a lease of its
/// own split, an expired lease (a killed run's) is taken over, and the
/// lease is gone once its last holder is; watch holds one while it runs.
fn s3_prefix_lease_keeps_a_second_writer_out() {
    let base = scratch("fleet-s3-lease");
    let input = base.join("web.tar");
    fs::write(&input, archive(&base, 50, 64 << 10, "tar")).unwrap();
    let s3 = S3::start();
    s3.tool(&["mb", "ckpt"]);
    let key = "cores/.criu2core.lock";
    let lease = |shards: &str, expires: u64| {
        format!(
            r#"{{"holders":[{{"command":"batch",{shards}"pid":4242,"host":"node-7","owner":"node-7/4242/1","expires":{expires}}}]}}"#
        )
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let batch = |extra: &[&str]| {
        let mut args = vec!["batch", input.to_str().unwrap(), "-o", "s3://ckpt/cores/"];
        args.extend_from_slice(extra);
        s3.run(&args)
    };
    // Another whole batch's, unexpired: refused, nothing written.
    s3.tool(&["put", "ckpt", key, &lease("", now + 3600)]);
    for extra in [&[][..], &["--shard", "0/1"]] {
        let o = batch(extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        let err = text(&o.stderr);
        assert!(
            err.contains("s3://ckpt/cores/.criu2core.lock: another criu2core run (batch, pid 4242 on node-7) is writing"),
            "{err}"
        );
    }
    assert_eq!(s3.tool(&["ls", "ckpt", "cores/"]).trim(), key);
    // A shard of split 2's: another shard of 2 joins it and leaves it as
    // it was; a whole batch is refused.
    let shards = lease(r#""shards":2,"#, now + 3600);
    s3.tool(&["put", "ckpt", key, &shards]);
    assert_eq!(batch(&[]).status.code(), Some(1));
    ok(batch(&["--shard", "0/2"]));
    ok(batch(&["--shard", "1/2"]));
    let left: Value = serde_json::from_str(&s3.tool(&["cat", "ckpt", key])).unwrap();
    assert_eq!(left, serde_json::from_str::<Value>(&shards).unwrap());
    // Expired: taken over, and removed at the end.
    s3.tool(&["put", "ckpt", key, &lease("", now - 1)]);
    let o = ok(batch(&["-f"]));
    assert!(
        text(&o.stdout).starts_with("1 input: 1 converted"),
        "{}",
        text(&o.stdout)
    );
    assert!(!s3
        .tool(&["ls", "ckpt", "cores/"])
        .contains(".criu2core.lock"));

    // watch holds one for as long as it runs.
    let dir = base.join("checkpoints");
    fs::create_dir_all(&dir).unwrap();
    let watch = start_watch(&dir, "s3://ckpt/cores/", &[], Some(&s3.endpoint()));
    wait_for("the lease", || {
        s3.tool(&["ls", "ckpt", "cores/"]).contains(key)
    });
    let o = batch(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("(watch, pid "),
        "{}",
        text(&o.stderr)
    );
    stop_watch(watch);
    assert!(!s3
        .tool(&["ls", "ckpt", "cores/"])
        .contains(".criu2core.lock"));
    ok(batch(&[]));
}

/// --sysroot from a plain tar read where it lies in the bucket: the
/// program its rootfs-diff holds is written from the object, as from the
/// same tar on disk (it was left out when the sysroot opened objects as
/// local paths).
fn s3_sysroot_from_a_plain_tar_in_the_bucket() {
    let base = scratch("fleet-s3-sysroot");
    let input = base.join("in");
    fs::create_dir_all(&input).unwrap();
    let packed = fs::read(repo().join("gdb-fixtures/example.tar.zst")).unwrap();
    let tar = input.join("example.tar");
    fs::write(&tar, zstd::decode_all(&packed[..]).unwrap()).unwrap();
    let empty = base.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let convert = |run: &dyn Fn(&[&str]) -> Output, from: &str, name: &str| {
        let (out, sysroot) = (base.join(format!("out-{name}")), base.join(name));
        ok(run(&[
            "convert",
            from,
            "-o",
            out.to_str().unwrap(),
            "--root",
            empty.to_str().unwrap(),
            "--sysroot",
            sysroot.to_str().unwrap(),
        ]));
        (tree(&out), tree(&sysroot))
    };
    let local = convert(
        &|a| criu2core(a.iter().map(std::ffi::OsStr::new)),
        tar.to_str().unwrap(),
        "local",
    );
    assert!(
        local.1.contains_key("srv/victim/victim"),
        "{:?}",
        local.1.keys()
    );
    let s3 = S3::start();
    s3.tool(&["mb", "ckpt"]);
    s3.tool(&["up", "ckpt", "", input.to_str().unwrap()]);
    let remote = convert(&|a| s3.run(a), "s3://ckpt/example.tar", "remote");
    assert_eq!(remote.1, local.1, "the sysroot from the object differs");
    assert_eq!(remote.0, local.0, "the cores from the object differ");
}

// ---------------------------------------------------------------------------
// Azure Blob Storage: Azurite's blob service

/// Azurite's blob service (npm's azurite): AZURITE_BLOB, target/azurite
/// (where .ci/run installs it) or PATH.
pub fn azurite_blob() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("AZURITE_BLOB")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(repo().join("target/azurite/node_modules/.bin/azurite-blob"));
    if on_path("azurite-blob") {
        candidates.push("azurite-blob".into());
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A Python with Azure's SDK (azure-storage-blob) for the tests' own
/// operations: target/s3-venv's, where .ci/run installs it beside moto.
pub fn azure_python() -> Option<PathBuf> {
    let py = repo().join("target/s3-venv/bin/python3");
    Command::new(&py)
        .args(["-c", "import azure.storage.blob"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(py)
}

/// Azurite's well-known development account (its documented default).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// An Azurite blob server of the test's own on 127.0.0.1, stopped when
/// dropped; its data lives in memory.
struct Azure {
    child: Child,
    port: u16,
}

impl Azure {
    fn start() -> Azure {
        let server = azurite_blob().expect("azurite-blob");
        let (child, port) = serve("azurite-blob", |port| {
            let mut c = Command::new(&server);
            c.args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .args(["--inMemoryPersistence", "--silent", "--disableTelemetry"])
                .arg("--skipApiVersionCheck");
            c
        });
        Azure { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Server for Azure {
    fn tool(&self, args: &[&str]) -> String {
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};\
             AccountKey={AZURITE_KEY};BlobEndpoint={}/{AZURITE_ACCOUNT};",
            self.endpoint()
        );
        let o = Command::new(azure_python().unwrap())
            .arg("-c")
            .arg(AZURE_TOOL)
            .arg(conn)
            .args(args)
            .output()
            .unwrap();
        text(&ok(o).stdout)
    }

    // criu2core as object_store's Azure emulator settings point it here.
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AZURE_") {
                c.env_remove(k);
            }
        }
        c.env("AZURE_STORAGE_USE_EMULATOR", "true")
            .env("AZURITE_BLOB_STORAGE_URL", self.endpoint())
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Azure {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Operations on the Azure server, through Azure's SDK: mb CONTAINER; up
/// CONTAINER PREFIX DIR; down CONTAINER PREFIX DIR.
const AZURE_TOOL: &str = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
conn, op, name = sys.argv[1], sys.argv[2], sys.argv[3]
c = BlobServiceClient.from_connection_string(conn)
if op == "mb":
    c.create_container(name)
    sys.exit(0)
cc = c.get_container_client(name)
prefix, d = sys.argv[4], sys.argv[5]
if op == "up":
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as data:
                cc.upload_blob(prefix + os.path.relpath(p, d), data)
elif op == "down":
    for b in cc.list_blobs(name_starts_with=prefix):
        p = os.path.join(d, b.name[len(prefix):])
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as out:
            out.write(cc.download_blob(b.name).readall())
"#;

fn az_inputs_and_outputs_give_the_same_cores_as_local() {
    let base = scratch("fleet-az-same");
    let (input, want) = two_inputs(&base, 3);
    let az = Azure::start();
    // The container's root as the input: a bucket's root names no object.
    let sm = batch_round_trip(
        &az,
        &input,
        "az://ckpt/",
        "az://ckpt/cores/",
        &want,
        &base.join("got"),
    );
    assert_eq!(sm["out_dir"], "az://ckpt/cores");

    // Resume on Azure too.
    let o = ok(az.run(&["batch", "az://ckpt/", "-o", "az://ckpt/cores/"]));
    assert!(
        text(&o.stdout).starts_with("2 inputs: 0 converted, 2 already complete, 0 failed"),
        "{}",
        text(&o.stdout)
    );
    // One object read where it lies.
    let o = ok(az.run(&["inspect", "--json", "az://ckpt/checkpoints/a.tar"]));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("inspect.schema.json", &v);
    assert_eq!(v["input"]["path"], "az://ckpt/checkpoints/a.tar", "{v}");
    assert_eq!(v["checkpoint"]["processes"], 1, "{v}");
}

/// Keys with `#`, `%`, `\` and non-ASCII convert (each encoded once);
/// keys no object-store path can name (`.`, `..`, an empty segment, a
/// control character) are failed inputs, and the rest still convert; a
/// store's error is said once.
fn awkward_keys_convert_or_fail_each_on_its_own() {
    let s3 = S3::start();
    s3.tool(&["mb", "ckpt"]);
    let example = repo().join("gdb-fixtures/example.tar.zst");
    let good = [
        "in/plain.tar.zst",
        "in/hash#pct%41back\\slash.tar.zst",
        "in/caf\u{e9}.tar.zst",
    ];
    let bad = [
        "in/./x.tar.zst",
        "in//y.tar.zst",
        "in/../z.tar.zst",
        "in/ctl\u{1}.tar.zst",
    ];
    for k in good.iter().chain(&bad) {
        s3.tool(&["putfile", "ckpt", k, example.to_str().unwrap()]);
    }
    let out = scratch("awkward-keys");
    let o = s3.run(&["batch", "s3://ckpt/in", "-o", out.to_str().unwrap()]);
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("7 inputs: 3 converted, 0 already complete, 4 failed"),
        "{stdout}{stderr}"
    );
    for k in ["in/./", "in//", "in/../", "in/ctl\\x01.tar.zst"] {
        assert!(
            stderr.contains(&format!("key \"{k}\": no object-storage path can name it")),
            "{k}: {stderr}"
        );
    }
    let sm = summary_in(&out, "summary.json");
    let st = statuses(&sm);
    assert_eq!(st.values().filter(|s| *s == "ok").count(), 3, "{st:?}");
    assert_eq!(st.values().filter(|s| *s == "failed").count(), 4, "{st:?}");
    // A bucket that is not there: the store's words once.
    let o = s3.run(&[
        "batch",
        "s3://nobucket/in",
        "-o",
        out.join("x").to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert_eq!(err.matches("NoSuchBucket").count(), 1, "{err}");
}

pub fn tests() -> Vec<Trial> {
    trials![
        awkward_keys_convert_or_fail_each_on_its_own needs [Need::S3Server],
        s3_inputs_and_outputs_give_the_same_cores_as_local needs [Need::S3Server],
        s3_sysroot_from_a_plain_tar_in_the_bucket needs [Need::S3Server],
        az_inputs_and_outputs_give_the_same_cores_as_local needs [Need::AzureServer],
        a_failed_upload_leaves_no_object_and_a_failed_entry needs [Need::S3Server],
        shards_convert_each_input_once_and_summary_merges_them,
        watch_converts_an_archive_once_it_is_complete_and_once,
        a_second_writer_is_refused_and_deletes_nothing needs [Need::Tool("kill")],
        watch_converts_archives_that_are_renamed_linked_or_chmodded_in needs [Need::Tool("kill")],
        s3_prefix_lease_keeps_a_second_writer_out needs [Need::S3Server, Need::Tool("kill")],
    ]
}
