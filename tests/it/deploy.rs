//! deploy/: the Containerfile, the Indexed Job and the DaemonSet, parsed
//! and checked against what the program relies on: every flag they pass
//! exists (as `criu2core <sub> --help` lists it), every variable they set
//! is one the program reads (its help names it) or one their own command
//! line refers to, the Job's shards match its completions, the paths the
//! command uses are mounted (the kubelet's checkpoints read-only), the
//! root filesystem is read-only, and the image's user is not root.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Command;

use crate::common::*;
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
    ]
}
