//! deploy/: the Containerfile, the Indexed Job and the DaemonSet, parsed
//! and checked against what the program relies on: every flag they pass
//! exists (as `criu2core <sub> --help` lists it), every variable they set
//! is one the program reads (its help names it) or one their own command
//! line refers to, the Job's shards match its completions, the paths the
//! command uses are mounted (the kubelet's checkpoints read-only), the
//! root filesystem is read-only, and the image's user is not root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::fleet::{Server, S3};
use crate::Need;
use libtest_mimic::Trial;
use serde_norway::Value;

const BIN: &str = env!("CARGO_BIN_EXE_criu2core");

fn manifest(name: &str) -> Value {
    let path = repo().join("deploy").join(name);
    let text = fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v:?}"))
}

/// `criu2core SUB --help`.
fn help(sub: &str) -> String {
    let o = Command::new(BIN).args([sub, "--help"]).output().unwrap();
    assert!(o.status.success(), "{sub} --help");
    String::from_utf8(o.stdout).unwrap()
}

/// The long and short options `criu2core SUB --help` lists.
fn options(sub: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in help(sub).lines() {
        let l = line.trim_start();
        if !l.starts_with('-') {
            continue;
        }
        for word in l.split([' ', ',']) {
            if word.starts_with('-') {
                out.insert(word.split('=').next().unwrap().to_string());
            }
        }
    }
    out
}

/// What a container does, from its spec.
struct Container {
    args: Vec<String>,
    /// name → literal value (`None`: from a secret or a field).
    env: BTreeMap<String, Option<String>>,
    /// mount path → read-only.
    mounts: BTreeMap<String, bool>,
    spec: Value,
}

fn container(pod: &Value) -> Container {
    let cs = pod["containers"].as_sequence().unwrap();
    assert_eq!(cs.len(), 1, "one container");
    let c = &cs[0];
    assert!(c.get("command").is_none(), "the image's entrypoint runs");
    let args = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| s(a, "an argument").to_string())
        .collect();
    let env = c["env"]
        .as_sequence()
        .map(|e| {
            e.iter()
                .map(|v| {
                    (
                        s(&v["name"], "env name").to_string(),
                        v.get("value").map(|x| s(x, "env value").to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mounts = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            (
                s(&m["mountPath"], "mountPath").to_string(),
                m.get("readOnly").and_then(Value::as_bool).unwrap_or(false),
            )
        })
        .collect();
    Container {
        args,
        env,
        mounts,
        spec: c.clone(),
    }
}

/// Whether `path` lies on one of the mounts.
fn mounted(c: &Container, path: &str) -> Option<bool> {
    c.mounts
        .iter()
        .filter(|(m, _)| path == m.as_str() || path.starts_with(&format!("{m}/")))
        .map(|(_, &ro)| ro)
        .next()
}

/// The checks both manifests share: the flags exist, the variables are
/// read or referred to, `--tmpdir` is mounted, and the container cannot
/// write its root filesystem or gain privileges.
fn common_checks(c: &Container, pod: &Value) {
    let sub = c.args[0].as_str();
    let known = options(sub);
    for a in c.args.iter().filter(|a| a.starts_with('-')) {
        assert!(known.contains(a), "{sub} has no option {a}: {known:?}");
    }
    let text = help(sub);
    let referred: BTreeSet<&str> = c
        .args
        .iter()
        .flat_map(|a| a.split("$(").skip(1))
        .filter_map(|r| r.split(')').next())
        .collect();
    for r in &referred {
        assert!(c.env.contains_key(*r), "$({r}) is not set");
    }
    for name in c.env.keys() {
        assert!(
            referred.contains(name.as_str()) || text.contains(name.as_str()),
            "{name} is set, but {sub} neither reads it nor is given it"
        );
    }
    // Temporary files (spills) go where a volume is, not into the
    // read-only root.
    let tmp = c
        .args
        .iter()
        .position(|a| a == "--tmpdir")
        .map(|i| c.args[i + 1].clone())
        .expect("--tmpdir");
    assert_eq!(
        mounted(c, &tmp),
        Some(false),
        "{tmp} is not a writable volume"
    );
    let sc = &c.spec["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(
        sc["capabilities"]["drop"].as_sequence().unwrap(),
        &[Value::from("ALL")]
    );
    assert!(sc["capabilities"].get("add").is_none());
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
    assert!(sc
        .get("privileged")
        .is_none_or(|p| p == &Value::Bool(false)));
}

/// The final stage's user in the Containerfile, and the checks on it.
fn containerfile_user() -> String {
    let text = fs::read_to_string(repo().join("deploy/Containerfile")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let final_stage = &lines[last..];
    // A static binary: built for musl, on an empty base.
    assert!(text.contains("unknown-linux-musl") && text.contains("--bin criu2core"));
    assert_eq!(final_stage[0], "FROM scratch");
    let entry = final_stage
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let entry: Vec<String> = serde_json::from_str(entry).unwrap();
    assert!(
        final_stage
            .iter()
            .any(|l| l.starts_with("COPY --from=build") && l.ends_with(&format!(" {}", entry[0]))),
        "the entrypoint {} is the binary copied in",
        entry[0]
    );
    let user = final_stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the final stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {user}: a numeric uid, not root (runAsNonRoot needs a number)"
    );
    // It builds from the repository's root without copying target/ in.
    let ignore = fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
    uid.to_string()
}

fn the_job_converts_shards_of_object_storage_as_the_program_expects() {
    let uid = containerfile_user();
    let job = manifest("job.yaml");
    assert_eq!(job["apiVersion"], Value::from("batch/v1"));
    assert_eq!(job["kind"], Value::from("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], Value::from("Indexed"));
    let completions = spec["completions"].as_u64().unwrap();
    let parallelism = spec["parallelism"].as_u64().unwrap();
    assert!(parallelism >= 1 && parallelism <= completions);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], Value::from("Never"));
    let c = container(pod);
    assert_eq!(c.args[0], "batch");
    common_checks(&c, pod);
    // --shards N, N the Job's completions: each index is one shard, and
    // the index comes from Kubernetes, not from the manifest.
    let i = c
        .args
        .iter()
        .position(|a| a == "--shards")
        .expect("--shards");
    assert_eq!(c.args[i + 1].parse::<u64>().unwrap(), completions);
    assert!(!c.args.iter().any(|a| a == "--shard"));
    assert!(!c.env.contains_key("JOB_COMPLETION_INDEX"));
    assert!(help("batch").contains("JOB_COMPLETION_INDEX"));
    // Inputs and output in object storage, credentials from a secret.
    let o = c.args.iter().position(|a| a == "--out-dir").unwrap();
    assert!(c.args[o + 1].starts_with("s3://"));
    assert!(c.args[1].starts_with("s3://"));
    for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert_eq!(c.env.get(k), Some(&None), "{k} from a secret");
    }
    // Not root: the pod says so, as the image's user.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], Value::Bool(true));
    assert_eq!(psc["runAsUser"].as_u64().unwrap().to_string(), uid);
}

fn the_daemonset_watches_the_kubelets_checkpoints_read_only() {
    let ds = manifest("daemonset.yaml");
    assert_eq!(ds["apiVersion"], Value::from("apps/v1"));
    assert_eq!(ds["kind"], Value::from("DaemonSet"));
    let spec = &ds["spec"];
    assert_eq!(
        spec["selector"]["matchLabels"],
        spec["template"]["metadata"]["labels"]
    );
    let pod = &spec["template"]["spec"];
    let c = container(pod);
    assert_eq!(c.args[0], "watch");
    common_checks(&c, pod);
    // The directory watched is the node's, mounted read-only from the host.
    let dir = c.args[1].as_str();
    assert_eq!(dir, "/var/lib/kubelet/checkpoints");
    assert_eq!(mounted(&c, dir), Some(true), "{dir} mounted read-only");
    let mount = c.spec["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == dir)
        .unwrap();
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["hostPath"]["path"], Value::from(dir));
    // The output is per node, in object storage: the node's name comes
    // from the downward API.
    let o = c.args.iter().position(|a| a == "--out-dir").unwrap();
    assert!(c.args[o + 1].starts_with("s3://") && c.args[o + 1].contains("$(NODE_NAME)"));
    let node = c.spec["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .unwrap();
    assert_eq!(
        node["valueFrom"]["fieldRef"]["fieldPath"],
        Value::from("spec.nodeName")
    );
    // Root (the archives are root's alone), with no capability at all.
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(0));
}

pub fn tests() -> Vec<Trial> {
    trials![
        the_job_converts_shards_of_object_storage_as_the_program_expects,
        the_daemonset_watches_the_kubelets_checkpoints_read_only,
        the_image_is_laid_out_as_the_containerfile_says
            needs [Need::Tool("podman"), Need::Tool("buildah"), Need::Tool("runc")],
        the_image_converts_a_checkpoint_as_the_host_binary_does
            needs [Need::Tool("podman"), Need::Tool("buildah"), Need::Tool("runc")],
        the_jobs_pods_convert_their_shards_into_object_storage
            needs [Need::Tool("podman"), Need::Tool("buildah"), Need::Tool("runc"), Need::S3Server],
        the_daemonsets_pod_converts_an_archive_dropped_into_its_directory
            needs [Need::Tool("podman"), Need::Tool("buildah"), Need::Tool("runc"), Need::S3Server],
    ]
}

// ---------------------------------------------------------------------------
// The image, built and run for real.

/// The tag the tests build scripts/build-image's image under.
const TEST_IMAGE: &str = "localhost/criu2core:test";

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

/// The image, built once per run by scripts/build-image (the dev profile:
/// what the host's tests built shares nothing with a static build, and
/// dev compiles fastest), into this target directory. Its binary is the
/// one the yara tests may run, built first, once ([`static_criu2core`]):
/// the script's own build then finds it done. The script leaves an image
/// that already holds the same binary as it is.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        static_criu2core();
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
        ok(Command::new(repo().join("scripts/build-image"))
            .args(["--profile", "dev", "--tag", TEST_IMAGE])
            .env("CARGO_TARGET_DIR", target)
            .output()
            .unwrap());
    });
    TEST_IMAGE
}

/// podman with the OCI runtime and limits these machines allow: runc (crun
/// fails here) and rlimits no higher than the host's (raising them needs
/// CAP_SYS_RESOURCE). `kube play` takes its limits from this
/// containers.conf, as `run` does.
fn podman() -> Command {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let dir = scratch("deploy-podman-conf");
        let conf = dir.join("containers.conf");
        fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
             [engine]\nruntime = \"runc\"\n",
        )
        .unwrap();
        conf
    });
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", conf).args(["--runtime", "runc"]);
    c
}

/// The final stage of deploy/Containerfile: its instructions, continuation
/// lines joined, comments dropped.
fn containerfile_final_stage() -> Vec<String> {
    let text = fs::read_to_string(repo().join("deploy/Containerfile")).unwrap();
    let mut lines = Vec::new();
    let mut cur = String::new();
    for l in text.lines().map(str::trim) {
        if l.starts_with('#') || (l.is_empty() && cur.is_empty()) {
            continue;
        }
        match l.strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(l);
                lines.push(std::mem::take(&mut cur));
            }
        }
    }
    let last = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    lines.split_off(last)
}

/// `KEY=VALUE` pairs (values unquoted) of ENV, LABEL or ARG instructions.
fn pairs(stage: &[String], instruction: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in stage {
        let Some(rest) = l.strip_prefix(&format!("{instruction} ")) else {
            continue;
        };
        for p in rest.split_whitespace() {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            out.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    out
}

/// The image's configuration and files are the Containerfile's: the same
/// user, environment, entrypoint, default arguments and label names, the
/// binary, the CA bundle and an empty world-writable /tmp and nothing
/// else; its labels name this version and revision.
fn the_image_is_laid_out_as_the_containerfile_says() {
    let image = image();
    let stage = containerfile_final_stage();
    let o = ok(podman().args(["image", "inspect", image]).output().unwrap());
    let inspect: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = &inspect[0]["Config"];
    let user = stage
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert_eq!(config["User"], user);
    let instr_json = |name: &str| -> serde_json::Value {
        let l = stage
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in the Containerfile"));
        serde_json::from_str(l).unwrap()
    };
    assert_eq!(config["Entrypoint"], instr_json("ENTRYPOINT"));
    assert_eq!(config["Cmd"], instr_json("CMD"));
    let env: BTreeMap<String, String> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .filter(|(k, _)| k != "PATH")
        .collect();
    assert_eq!(env, pairs(&stage, "ENV"));
    // The labels: the Containerfile's names; the version this crate's;
    // the revision the one the binary names; the source the repository.
    let labels: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).unwrap();
    let want = pairs(&stage, "LABEL");
    let ours: BTreeSet<&String> = labels
        .keys()
        .filter(|k| k.starts_with("org.opencontainers."))
        .collect();
    assert_eq!(ours, want.keys().collect::<BTreeSet<_>>());
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        pairs(&stage, "ARG")["VERSION"],
        env!("CARGO_PKG_VERSION"),
        "the Containerfile's default VERSION"
    );
    assert_eq!(
        labels["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    assert_eq!(
        want["org.opencontainers.image.source"],
        env!("CARGO_PKG_REPOSITORY")
    );
    let revision = &labels["org.opencontainers.image.revision"];
    let version = ok(podman()
        .args(["run", "--rm", "--network", "none", image, "--version"])
        .output()
        .unwrap());
    let host = ok(Command::new(BIN).arg("--version").output().unwrap());
    let first = |o: &Output| text(&o.stdout).lines().next().unwrap().to_string();
    assert_eq!(first(&version), first(&host));
    assert!(
        first(&version).contains(&format!("({revision})")),
        "{}",
        first(&version)
    );
    // The files: what the Containerfile copies in, nothing more.
    let c = text(&ok(podman().args(["create", image]).output().unwrap()).stdout);
    let c = c.trim();
    let exported = podman().args(["export", c]).output().unwrap();
    ok(podman().args(["rm", c]).output().unwrap());
    let exported = ok(exported);
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(&exported.stdout[..]);
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let h = e.header();
        files.insert(
            path.trim_end_matches('/').to_string(),
            (h.mode().unwrap(), h.uid().unwrap(), h.size().unwrap()),
        );
    }
    let copied: BTreeSet<String> = stage
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .map(|l| l.rsplit(' ').next().unwrap().trim_start_matches('/').into())
        .collect();
    // Directories podman makes for its own mounts may appear empty.
    let made_by_podman = [
        "dev",
        "proc",
        "sys",
        "run",
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
        "run/.containerenv",
        "etc",
    ];
    let listed: BTreeSet<String> = files
        .keys()
        .filter(|p| !made_by_podman.contains(&p.as_str()))
        .filter(|p| !copied.iter().any(|c| c.starts_with(&format!("{p}/"))))
        .cloned()
        .collect();
    assert_eq!(listed, copied, "{files:?}");
    assert_eq!(files["tmp"].0 & 0o7777, 0o1777);
    assert_eq!(files["criu2core"].0 & 0o7777, 0o755);
    let ca = fs::metadata("/etc/ssl/certs/ca-certificates.crt")
        .unwrap()
        .len();
    assert_eq!(files["etc/ssl/certs/ca-certificates.crt"].2, ca);
}

/// A real checkpoint archive (the bundled example, a Podman archive of a
/// CRIU dump) converted in the image as the Job runs it (read-only root,
/// user 65532, every capability dropped, no privilege escalation, no
/// network, /tmp a tmpfs, the checkpoint mounted read-only) gives the
/// host binary's cores byte for byte.
fn the_image_converts_a_checkpoint_as_the_host_binary_does() {
    let image = image();
    let base = scratch("deploy-image-convert");
    let input = base.join("in");
    fs::create_dir_all(&input).unwrap();
    fs::copy(
        repo().join("gdb-fixtures/example.tar.zst"),
        input.join("example.tar.zst"),
    )
    .unwrap();
    let host = base.join("host");
    ok(Command::new(BIN)
        .args([
            "convert".as_ref(),
            input.join("example.tar.zst").as_os_str(),
        ])
        .args(["-o".as_ref(), host.as_os_str()])
        .output()
        .unwrap());
    let out = base.join("container");
    fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(65532), Some(65532)).unwrap();
    let o = ok(podman()
        .args(["run", "--rm", "--network", "none"])
        .args(["--read-only", "--read-only-tmpfs=false"])
        .args(["--user", "65532:65532", "--cap-drop", "all"])
        .args(["--security-opt", "no-new-privileges"])
        .args(["--tmpfs", "/tmp:rw,mode=1777,size=256m"])
        .arg("-v")
        .arg(format!("{}:/checkpoints:ro", input.display()))
        .arg("-v")
        .arg(format!("{}:/out", out.display()))
        .args([image, "convert", "/checkpoints/example.tar.zst"])
        .args(["-o", "/out/cores", "--tmpdir", "/tmp"])
        .output()
        .unwrap());
    let got = crate::fleet::tree(&out.join("cores"));
    let want = crate::fleet::tree(&host);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{}",
        text(&o.stdout)
    );
    assert!(want.keys().filter(|k| k.starts_with("core.")).count() >= 1);
    for (k, v) in &want {
        assert!(got[k] == *v, "{k} differs from the host's");
    }
    // Written by the image's user, not root.
    let owner = fs::metadata(out.join("cores")).unwrap().uid();
    assert_eq!(owner, 65532);
}

// ---------------------------------------------------------------------------
// The manifests, played by podman.

/// The Secret both manifests take their credentials from (moto's), as
/// the podman secret `kube play` looks `secretKeyRef`s up in: podman
/// 4.3 reads it as a JSON object of base64 values.
fn s3_secret() {
    static MADE: OnceLock<()> = OnceLock::new();
    MADE.get_or_init(|| {
        let file = scratch("deploy-secret").join("criu2core-s3.json");
        // "dGVzdA==": "test", base64.
        fs::write(
            &file,
            r#"{"access-key-id":"dGVzdA==","secret-access-key":"dGVzdA=="}"#,
        )
        .unwrap();
        let _ = podman().args(["secret", "rm", "criu2core-s3"]).output();
        ok(podman()
            .args(["secret", "create", "criu2core-s3"])
            .arg(&file)
            .output()
            .unwrap());
    });
}

/// A Pod named `name` made of a workload's pod template exactly as written,
/// but for what a cluster would supply: the image (the one built here),
/// the host directories (`host_paths`: manifest path → here), the host's
/// network (moto listens on its 127.0.0.1), and `env` added to the
/// container's (what Kubernetes sets, and the endpoint variables the
/// manifests' comments name for a store other than AWS).
fn pod_of(
    workload: &Value,
    name: &str,
    env: &[(&str, String)],
    host_paths: &[(&str, &Path)],
) -> Value {
    let template = &workload["spec"]["template"];
    let mut spec = template["spec"].clone();
    spec["hostNetwork"] = Value::Bool(true);
    let c = &mut spec["containers"][0];
    c["image"] = Value::from(image());
    let list = c["env"].as_sequence_mut().unwrap();
    for (k, v) in env {
        let mut e = serde_norway::Mapping::new();
        e.insert("name".into(), Value::from(*k));
        e.insert("value".into(), Value::from(v.as_str()));
        list.push(Value::Mapping(e));
    }
    for v in spec["volumes"].as_sequence_mut().unwrap() {
        if let Some(p) = v.get_mut("hostPath") {
            let (_, here) = host_paths
                .iter()
                .find(|(m, _)| p["path"] == *m)
                .expect("a host path to substitute");
            p["path"] = Value::from(here.to_str().unwrap());
        }
    }
    let mut meta = serde_norway::Mapping::new();
    meta.insert("name".into(), Value::from(name));
    meta.insert("labels".into(), template["metadata"]["labels"].clone());
    let mut pod = serde_norway::Mapping::new();
    pod.insert("apiVersion".into(), Value::from("v1"));
    pod.insert("kind".into(), Value::from("Pod"));
    pod.insert("metadata".into(), Value::Mapping(meta));
    pod.insert("spec".into(), spec);
    Value::Mapping(pod)
}

/// Plays `pod` (written to `dir`) with `podman kube play`; gives the name
/// of its one container, or podman's complaint.
fn play(pod: &Value, dir: &Path) -> Result<String, String> {
    let name = pod["metadata"]["name"].as_str().unwrap();
    let file = dir.join(format!("{name}.yaml"));
    fs::write(&file, serde_norway::to_string(pod).unwrap()).unwrap();
    remove_pod(name);
    let o = podman().args(["kube", "play"]).arg(&file).output().unwrap();
    if !o.status.success() {
        remove_pod(name);
        return Err(text(&o.stderr));
    }
    let c = pod["spec"]["containers"][0]["name"].as_str().unwrap();
    Ok(format!("{name}-{c}"))
}

/// Held by each `kube play` test: podman 4.3 backs an emptyDir with a
/// named volume called as the emptyDir is (`tmp` in both manifests), which
/// pods played side by side would share.
static KUBE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for `container` to exit; its exit code and its log.
fn exit_of(container: &str) -> (i32, String) {
    let o = ok(podman().args(["wait", container]).output().unwrap());
    let code = text(&o.stdout).trim().parse().unwrap();
    let log = podman().args(["logs", container]).output().unwrap();
    (code, format!("{}{}", text(&log.stdout), text(&log.stderr)))
}

fn remove_pod(name: &str) {
    let _ = podman().args(["pod", "rm", "-f", "-t", "0", name]).output();
}

/// Checkpoint archives for the Job: the bundled example (a real CRIU
/// dump) and synthetic ones of three compressions.
fn archives_dir(base: &Path) -> PathBuf {
    let dir = base.join("archives");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(
        repo().join("gdb-fixtures/example.tar.zst"),
        dir.join("example.tar.zst"),
    )
    .unwrap();
    for (seed, kind) in [(1u64, "tar"), (2, "tar.gz"), (3, "tar.zst")] {
        let images = base.join(format!("images-{seed}"));
        fs::create_dir_all(&images).unwrap();
        criu2core::testkit::synth::synthesize(
            &images,
            &criu2core::testkit::synth::Spec {
                seed,
                processes: 1,
                threads: 2,
                vmas: 8,
                bytes: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        let bytes = compress(&podman_tar(&images, |_| {}), kind);
        fs::write(dir.join(format!("synth-{seed}.{kind}")), bytes).unwrap();
    }
    dir
}

/// The endpoint variables for moto, as the manifests' comments say to set
/// them for a store other than AWS.
fn endpoint_env(s3: &S3) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", s3.endpoint()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// deploy/job.yaml's pod template, played once per completion index with
/// JOB_COMPLETION_INDEX set as an Indexed Job sets it: the shards convert
/// the archives under s3://checkpoints/incoming/ into
/// s3://checkpoints/cores/, each exits 0, `criu2core summary` merges their
/// summaries, and the cores are the host's own batch's.
fn the_jobs_pods_convert_their_shards_into_object_storage() {
    let _one_at_a_time = KUBE.lock().unwrap_or_else(|e| e.into_inner());
    let job = manifest("job.yaml");
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let base = scratch("deploy-kube-job");
    let input = archives_dir(&base);
    let local = base.join("local");
    ok(Command::new(BIN)
        .args([
            "batch".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            local.as_os_str(),
        ])
        .output()
        .unwrap());
    let want = crate::fleet::cores(&crate::fleet::tree(&local));
    assert_eq!(want.len(), 4, "one core an archive: {:?}", want.keys());

    let s3 = S3::start();
    s3.tool(&["mb", "checkpoints"]);
    s3.tool(&["up", "checkpoints", "incoming/", input.to_str().unwrap()]);
    s3_secret();
    let pods: Vec<String> = (0..completions)
        .map(|i| format!("criu2core-convert-{i}-{}", std::process::id()))
        .collect();
    let mut containers = Vec::new();
    for (i, name) in pods.iter().enumerate() {
        let mut env = endpoint_env(&s3);
        env.push(("JOB_COMPLETION_INDEX", i.to_string()));
        containers.push(play(&pod_of(&job, name, &env, &[]), &base).unwrap());
    }
    let exits: Vec<(i32, String)> = containers.iter().map(|c| exit_of(c)).collect();
    for name in &pods {
        remove_pod(name);
    }
    for (i, (code, log)) in exits.iter().enumerate() {
        assert_eq!(*code, 0, "shard {i}:\n{log}");
    }
    let summary = ok(S3::criu2core(&s3.endpoint())
        .args(["summary", "s3://checkpoints/cores/"])
        .output()
        .unwrap());
    let said = text(&summary.stdout);
    assert!(
        said.starts_with("4 inputs: 4 converted, 0 already complete, 0 failed, 0 missing"),
        "{said}"
    );
    let keys = s3.tool(&["ls", "checkpoints", "cores/"]);
    for k in 0..completions {
        assert!(
            keys.contains(&format!("cores/summary-{k}-of-{completions}.json")),
            "{keys}"
        );
    }
    assert!(keys.contains("cores/summary.json"), "{keys}");
    let got_dir = base.join("got");
    s3.tool(&["down", "checkpoints", "cores/", got_dir.to_str().unwrap()]);
    let got = crate::fleet::cores(&crate::fleet::tree(&got_dir));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(got[k] == *v, "{k} differs from the host's");
    }
}

/// deploy/daemonset.yaml's pod template, played with the kubelet's
/// checkpoint directory replaced by one of the test's: an archive dropped
/// there (root's alone, as the kubelet leaves it) is converted into
/// s3://checkpoints/cores/NODE/, the host's cores byte for byte; the pod
/// stops cleanly (exit 0) when told to.
fn the_daemonsets_pod_converts_an_archive_dropped_into_its_directory() {
    let _one_at_a_time = KUBE.lock().unwrap_or_else(|e| e.into_inner());
    let ds = manifest("daemonset.yaml");
    let base = scratch("deploy-kube-watch");
    let watched = base.join("checkpoints");
    fs::create_dir_all(&watched).unwrap();
    let archive = repo().join("gdb-fixtures/example.tar.zst");
    let host = base.join("host");
    ok(Command::new(BIN)
        .args([
            "convert".as_ref(),
            archive.as_os_str(),
            "-o".as_ref(),
            host.as_os_str(),
        ])
        .output()
        .unwrap());
    let want = crate::fleet::tree(&host);

    let s3 = S3::start();
    s3.tool(&["mb", "checkpoints"]);
    s3_secret();
    let name = format!("criu2core-watch-{}", std::process::id());
    let dir = ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let mut pod = pod_of(&ds, &name, &endpoint_env(&s3), &[(dir.as_str(), &watched)]);
    let container = match play(&pod, &base) {
        Ok(c) => c,
        // Debian 12's podman (4.3.1) resolves no `spec.nodeName` field
        // reference, nor expands `$(VAR)` in args, both of which the
        // kubelet does: there, and only there, the test does the
        // kubelet's part (a node name of its own, in both places).
        Err(e) if e.contains("fieldPath spec.nodeName is either not valid or not supported") => {
            eprintln!(
                "deploy: podman resolves no spec.nodeName; NODE_NAME given, and expanded, here"
            );
            let c = &mut pod["spec"]["containers"][0];
            for e in c["env"].as_sequence_mut().unwrap() {
                if e["name"] == "NODE_NAME" {
                    e.as_mapping_mut().unwrap().remove("valueFrom");
                    e["value"] = Value::from("node-1");
                }
            }
            for a in c["args"].as_sequence_mut().unwrap() {
                *a = Value::from(a.as_str().unwrap().replace("$(NODE_NAME)", "node-1"));
            }
            play(&pod, &base).unwrap()
        }
        Err(e) => panic!("podman kube play: {e}"),
    };
    // The kubelet writes the archive under its final name, root's alone.
    let dropped = watched.join("checkpoint-web_default-app-2026-12-07T10:00:00Z.tar.zst");
    fs::write(&dropped, fs::read(&archive).unwrap()).unwrap();
    fs::set_permissions(&dropped, fs::Permissions::from_mode(0o600)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut keys = String::new();
    while Instant::now() < deadline {
        keys = s3.tool(&["ls", "checkpoints", "cores/"]);
        if keys.lines().filter(|k| k.contains("/core.")).count() >= want.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    ok(podman()
        .args(["pod", "stop", "-t", "30", &name])
        .output()
        .unwrap());
    let (code, log) = exit_of(&container);
    remove_pod(&name);
    assert_eq!(code, 0, "{log}\nobjects:\n{keys}");
    assert!(
        keys.contains("/core."),
        "no core written:\n{log}\nobjects:\n{keys}"
    );
    let got_dir = base.join("got");
    s3.tool(&["down", "checkpoints", "cores/", got_dir.to_str().unwrap()]);
    let got = crate::fleet::cores(&crate::fleet::tree(&got_dir));
    let stem = "checkpoint-web_default-app-2026-12-07T10:00:00Z";
    let node_dirs: BTreeSet<String> = got
        .keys()
        .map(|k| k.split('/').next().unwrap().to_string())
        .collect();
    assert_eq!(node_dirs.len(), 1, "one node: {:?}", got.keys());
    let node = node_dirs.into_iter().next().unwrap();
    for (k, v) in &want {
        let key = format!("{node}/{stem}/{k}");
        assert!(
            got.get(&key) == Some(v),
            "{key} missing or not the host's: {:?}",
            got.keys()
        );
    }
    assert!(
        !node.is_empty() && !node.contains("$("),
        "NODE_NAME substituted: {node}"
    );
}
