//! Checkpoints from every engine, end to end through the CLI: each format
//! is built from a fixture following the engines' documented layouts (the
//! facts cited at each builder), and must convert, inspect and batch as the
//! Podman archive of the same images does: the same cores, byte for byte.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use crate::common::*;
use crate::container_images::{checkpoint_images, containerd_export};
use crate::Need;
use libtest_mimic::Trial;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn text(o: &Output) -> String {
    let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
    t.push_str(&String::from_utf8_lossy(&o.stderr));
    t
}

/// The spec containerd's CRI plugin writes: no `io.container.manager`
/// (checkpointctl takes such a spec as containerd's), the pod's names in
/// `io.kubernetes.cri.*` annotations.
const CONTAINERD_SPEC: &str = r#"{"ociVersion":"1.1.0","process":{"args":["/srv/victim/victim"]},"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"victim","io.kubernetes.cri.image-name":"docker.io/library/victim:latest","io.kubernetes.cri.sandbox-name":"victim-pod","io.kubernetes.cri.sandbox-namespace":"prod"}}"#;

/// containerd's config.dump (crmetadata.ContainerConfig).
const CONTAINERD_CONFIG: &str = r#"{"id":"9c0f3e5d7a1b4c2e8f6d5a4b3c2d1e0f9c0f3e5d7a1b4c2e8f6d5a4b3c2d1e0f","name":"victim","rootfsImage":"docker.io/library/victim:latest","rootfsImageRef":"sha256:5b0e3ab2a2a5e8c1f7d4c3b2a1908f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d","rootfsImageName":"docker.io/library/victim:latest","runtime":"io.containerd.runc.v2","createdTime":"2026-11-20T10:00:00.123456789Z","checkpointedTime":"2026-11-20T11:00:00Z","restored":false,"restoredTime":"0001-01-01T00:00:00Z"}"#;

/// CRI-O's spec.dump: `io.container.manager` is `cri-o`, the container's
/// metadata and the pod in `io.kubernetes.*` annotations.
const CRIO_SPEC: &str = r#"{"ociVersion":"1.0.2-dev","annotations":{"io.container.manager":"cri-o","io.kubernetes.cri-o.Metadata":"{\"name\":\"victim\"}","io.kubernetes.cri-o.ImageName":"quay.io/example/victim:1.0","io.kubernetes.pod.name":"victim-pod","io.kubernetes.pod.namespace":"prod"}}"#;

/// Appends a member to a tar as containerd's `archive.Diff` writes one
/// (PAX format: a PAX record carries the nanosecond mtime).
fn pax_member(b: &mut tar::Builder<Vec<u8>>, name: &str, data: Option<&[u8]>) {
    b.append_pax_extensions([("mtime", &b"1795000000.123456789"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mtime(1_795_000_000);
    match data {
        Some(d) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_size(d.len() as u64);
            b.append_data(&mut h, name, d).unwrap();
        }
        None => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o700);
            h.set_size(0);
            b.append_data(&mut h, name, &[][..]).unwrap();
        }
    }
}

/// The checkpoint archive the kubelet's checkpoint API gets from
/// containerd >= 2.0 (internal/cri/server/container_checkpoint_linux.go):
/// `archive.Diff` of a directory, so a PAX tar in a sorted walk, relative
/// names, directories ending in `/`. checkpoint/ (criu.tar unpacked flat:
/// the CRIU images and runc's descriptors.json) comes first, then
/// config.dump, container.log, dump.log, rootfs-diff.tar (the rw layer
/// blob copied byte for byte: gzip under a .tar name), spec.dump,
/// stats-dump, status, status.dump. No deleted.files, network.status or
/// devshm-checkpoint.tar.
fn containerd_cri_archive(images: &Path, rw_gzip: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    pax_member(&mut b, "checkpoint/", None);
    let mut names: Vec<String> = fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .chain(["descriptors.json".to_string()])
        .collect();
    names.sort();
    for n in &names {
        let data = if n == "descriptors.json" {
            br#"["/dev/null","pipe:[1]","pipe:[2]"]"#.to_vec()
        } else {
            fs::read(images.join(n)).unwrap()
        };
        pax_member(&mut b, &format!("checkpoint/{n}"), Some(&data));
    }
    let status = br#"{"id":"victim","metadata":{"name":"victim"},"state":"CONTAINER_RUNNING"}"#;
    for (name, data) in [
        ("config.dump", CONTAINERD_CONFIG.as_bytes()),
        (
            "container.log",
            &b"2026-11-20T10:00:01Z stdout F started\n"[..],
        ),
        (
            "dump.log",
            &b"(00.000000) Dumping finished successfully\n"[..],
        ),
        ("rootfs-diff.tar", rw_gzip),
        ("spec.dump", CONTAINERD_SPEC.as_bytes()),
        (
            "stats-dump",
            &fs::read(images.join("stats-dump")).unwrap_or_default()[..],
        ),
        ("status", &br#"{"Pid":4242}"#[..]),
        ("status.dump", &status[..]),
    ] {
        pax_member(&mut b, name, Some(data));
    }
    b.into_inner().unwrap()
}

/// What `docker checkpoint create CTR NAME` leaves: the CRIU images and
/// runc's descriptors.json in
/// /var/lib/docker/containers/ID/checkpoints/NAME, beside the container's
/// config.v2.json and hostconfig.json. Gives the checkpoint directory.
fn docker_checkpoint(images: &Path, base: &Path) -> PathBuf {
    let id = "d0cce7".repeat(10) + "d0cc";
    let container = base.join("docker/containers").join(&id);
    let dir = container.join("checkpoints/ck1");
    copy_dir(images, &dir);
    fs::write(
        dir.join("descriptors.json"),
        br#"["/dev/null","pipe:[1]","pipe:[2]"]"#,
    )
    .unwrap();
    fs::write(
        container.join("config.v2.json"),
        json!({"ID": id, "Name": "/victim", "Created": "2026-11-20T10:00:00Z",
               "Image": "sha256:".to_string() + &"ab".repeat(32),
               "Config": {"Image": "victim:latest"}})
        .to_string(),
    )
    .unwrap();
    fs::write(container.join("hostconfig.json"), r#"{"Runtime":"runc"}"#).unwrap();
    dir
}

/// Every engine's format of `fx`, under `base`: (input, what inspect
/// should name as the engine, the container's name, its pod).
fn every_format(
    fx: &Fixture,
    base: &Path,
) -> Vec<(PathBuf, &'static str, &'static str, &'static str)> {
    let inputs = base.join("inputs");
    fs::create_dir_all(&inputs).unwrap();
    let mut out = Vec::new();
    // containerd's ctr image export, as a tar and as a layout directory;
    // its rw layer is also the CRI archive's rootfs-diff.tar.
    let ctr = containerd_export(fx, &base.join("ctr"), CONTAINERD_SPEC.as_bytes());
    let cri = inputs.join("containerd-cri.tar");
    fs::write(&cri, containerd_cri_archive(&fx.images(), &ctr.rw)).unwrap();
    out.push((cri, "containerd", "victim", "victim-pod"));
    let tar = inputs.join("ctr-export.tar");
    fs::rename(&ctr.tar, &tar).unwrap();
    // The same, compressed: recognised by content at any nesting.
    let zst = inputs.join("ctr-export.tar.zst");
    fs::write(&zst, compress(&fs::read(&tar).unwrap(), "tar.zst")).unwrap();
    let layout = inputs.join("ctr-layout");
    fs::rename(&ctr.layout, &layout).unwrap();
    for p in [tar, zst, layout] {
        out.push((p, "containerd", "victim", "victim-pod"));
    }
    // CRI-O's buildah recipe and Podman's --create-image, through every
    // transport buildah pushes to.
    let crio = checkpoint_images(
        fx,
        &base.join("crio"),
        CRIO_SPEC,
        &["io.kubernetes.cri-o.annotations.checkpoint.name=victim"],
    );
    for (p, transport) in crio {
        let to = inputs.join(format!("crio-{transport}"));
        fs::rename(p, &to).unwrap();
        out.push((to, "CRI-O", "victim", "victim-pod"));
    }
    let podman = checkpoint_images(
        fx,
        &base.join("podman"),
        SPEC_DUMP,
        &[
            "io.podman.annotations.checkpoint.name=victim-ctr",
            "io.podman.annotations.checkpoint.rawImageName=localhost/victim:latest",
            "io.podman.annotations.checkpoint.runtime.name=crun",
        ],
    );
    for (p, transport) in podman {
        if transport == "oci-archive" {
            let to = inputs.join("podman-create-image.oci.tar");
            fs::rename(p, &to).unwrap();
            out.push((to, "Podman", "victim-ctr", ""));
        }
    }
    // Docker's checkpoint directory, in place.
    out.push((
        docker_checkpoint(&fx.images(), base),
        "Docker",
        "victim",
        "",
    ));
    out
}

fn same_cores(fx: &Fixture, want: &Path, got: &Path, what: &str) {
    for p in &fx.processes {
        let a = fs::read(want.join(format!("core.{}", p.pid))).unwrap();
        let b = fs::read(got.join(format!("core.{}", p.pid)))
            .unwrap_or_else(|e| panic!("{what}: core.{}: {e}", p.pid));
        assert!(
            a == b,
            "{what}: core.{} differs from the Podman archive's",
            p.pid
        );
    }
}

fn every_engine_converts_inspects_and_batches_as_podman() {
    for name in ["mt-pie", "fork-shared"] {
        let fx = fixture(name);
        let base = scratch(&format!("engines-{name}"));
        let tmp = base.join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        // The reference: the Podman archive of the same images.
        let podman = base.join("podman.tar");
        fs::write(&podman, podman_tar(&fx.images(), |_| {})).unwrap();
        let want = base.join("want");
        convert_ok(&[&"convert", &podman, &"-o", &want]);
        same_cores(&fx, &convert_fixture(&fx, "engines-dir", &[]), &want, "dir");

        let formats = every_format(&fx, &base);
        for (i, (input, engine, ctr, pod)) in formats.iter().enumerate() {
            let what = input.display().to_string();
            let out = base.join(format!("out-{i}"));
            let o = criu2core(["convert", s(input), "-o", s(&out), "--tmpdir", s(&tmp)]);
            assert!(o.status.success(), "{what}: {}", text(&o));
            same_cores(&fx, &want, &out, &what);
            assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "{what} left files");

            let o = criu2core(["inspect", "--json", s(input)]);
            assert!(o.status.success(), "{what}: {}", text(&o));
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_schema("inspect.schema.json", &v);
            let c = &v["container"];
            assert_eq!(c["engine"], *engine, "{what}: {c:#}");
            assert_eq!(c["name"], *ctr, "{what}: {c:#}");
            if !pod.is_empty() {
                assert_eq!(c["pod"], *pod, "{what}: {c:#}");
                assert_eq!(c["namespace"], "prod", "{what}: {c:#}");
            }
            assert_eq!(v["checkpoint"]["processes"], fx.processes.len(), "{what}");
            let o = criu2core(["inspect", s(input)]);
            assert!(
                text(&o).contains(&format!("engine {engine}")),
                "{what}: {}",
                text(&o)
            );
        }
        // What each engine records of the image and times.
        let v: Value =
            serde_json::from_slice(&criu2core(["inspect", "--json", s(&formats[0].0)]).stdout)
                .unwrap();
        let c = &v["container"];
        assert_eq!(c["image"], "docker.io/library/victim:latest");
        assert!(c["image_ref"]
            .as_str()
            .unwrap()
            .starts_with("sha256:5b0e3a"));
        assert_eq!(c["runtime"], "io.containerd.runc.v2");
        assert_eq!(c["created"], "2026-11-20T10:00:00.123456789Z");
        assert_eq!(c["checkpointed"], "2026-11-20T11:00:00Z");
        let v: Value =
            serde_json::from_slice(&criu2core(["inspect", "--json", s(&formats[1].0)]).stdout)
                .unwrap();
        assert_eq!(v["container"]["runtime"], "io.containerd.runc.v2");
        assert_eq!(
            v["container"]["checkpoint_image"],
            "checkpoint-victim:latest"
        );

        // batch over a directory of every format at once (the Docker
        // checkpoint lies outside it, in Docker's tree).
        let inputs = base.join("inputs");
        let bout = base.join("batch");
        let o = criu2core([
            "batch",
            s(&inputs),
            "-o",
            s(&bout),
            "-j",
            "2",
            "--tmpdir",
            s(&tmp),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let sm: Value =
            serde_json::from_slice(&fs::read(bout.join("summary.json")).unwrap()).unwrap();
        assert_schema("batch.schema.json", &sm);
        let n = formats.len() - 1;
        assert_eq!(sm["ok"], n, "{sm:#}");
        let items = sm["inputs"].as_array().unwrap();
        assert_eq!(items.len(), n, "{sm:#}");
        for item in items {
            let what = item["input"].as_str().unwrap();
            same_cores(
                &fx,
                &want,
                Path::new(item["output"].as_str().unwrap()),
                what,
            );
        }
    }
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        every_engine_converts_inspects_and_batches_as_podman
            needs [Need::Tool("buildah"), Need::Tool("skopeo")],
    ]
}
