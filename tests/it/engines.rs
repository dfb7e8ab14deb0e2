//! Checkpoints from every engine, end to end through the CLI: each format
//! is built from a fixture following the engines' documented layouts (the
//! facts cited at each builder), and must convert, inspect and batch as the
//! Podman archive of the same images does: the same cores, byte for byte.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use crate::common::*;
use crate::container_images::{checkpoint_images, containerd_export, gzip, sha256, write_blob};
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
/// should name as the engine, the container's name, its pod, its image).
fn every_format(
    fx: &Fixture,
    base: &Path,
) -> Vec<(
    PathBuf,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)> {
    let inputs = base.join("inputs");
    fs::create_dir_all(&inputs).unwrap();
    let mut out = Vec::new();
    // containerd's ctr image export, as a tar and as a layout directory;
    // its rw layer is also the CRI archive's rootfs-diff.tar.
    let ctr = containerd_export(fx, &base.join("ctr"), CONTAINERD_SPEC.as_bytes());
    let cri = inputs.join("containerd-cri.tar");
    fs::write(&cri, containerd_cri_archive(&fx.images(), &ctr.rw)).unwrap();
    let docker_io = "docker.io/library/victim:latest";
    out.push((cri, "containerd", "victim", "victim-pod", docker_io));
    let tar = inputs.join("ctr-export.tar");
    fs::rename(&ctr.tar, &tar).unwrap();
    // The same, compressed: recognised by content at any nesting.
    let zst = inputs.join("ctr-export.tar.zst");
    fs::write(&zst, compress(&fs::read(&tar).unwrap(), "tar.zst")).unwrap();
    let layout = inputs.join("ctr-layout");
    fs::rename(&ctr.layout, &layout).unwrap();
    for p in [tar, zst, layout] {
        out.push((p, "containerd", "victim", "victim-pod", docker_io));
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
        out.push((
            to,
            "CRI-O",
            "victim",
            "victim-pod",
            "quay.io/example/victim:1.0",
        ));
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
            out.push((to, "Podman", "victim-ctr", "", "localhost/victim:latest"));
        }
    }
    // Docker's checkpoint directory, in place.
    out.push((
        docker_checkpoint(&fx.images(), base),
        "Docker",
        "victim",
        "",
        "victim:latest",
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
            "{what}: core.{} differs from the reference's",
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
        for (i, (input, engine, ctr, pod, image)) in formats.iter().enumerate() {
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
            assert_eq!(c["image"], *image, "{what}: {c:#}");
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
        image_gives_the_cores_root_gives,
        an_image_past_max_spill_is_a_limit,
        hostile_checkpoint_images_and_container_images_fail_cleanly,
        grep_read_and_inspect_take_the_image,
        standalone_cores_and_a_ready_sysroot needs [Need::Tool("gdb"), Need::Tool("eu-unstrip"), Need::Drgn],
    ]
}

/// Bytes no real file holds: the lower layer's versions of every file.
const DECOY: &[u8] = b"DECOY-LOWER-LAYER: replaced by the upper layer, never in a core";

/// Every entry under `dir`, relative, parents first.
fn walk(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<_> = fs::read_dir(dir.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let r = rel.join(n);
        out.push(r.clone());
        let m = fs::symlink_metadata(dir.join(&r)).unwrap();
        if m.is_dir() {
            walk(dir, &r, out);
        }
    }
}

fn tar_dir(b: &mut tar::Builder<Vec<u8>>, name: &str) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, format!("{}/", name.trim_end_matches('/')), &[][..])
        .unwrap();
}

fn tar_link(b: &mut tar::Builder<Vec<u8>>, name: &str, target: &Path) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, name, target).unwrap();
}

/// The two layers of an image of `sysroot`: the lower one (gzip) holds
/// the tree with a decoy in place of every file, a file the upper layer
/// whites out and a directory it makes opaque; the upper one (plain tar)
/// the real files, the whiteout, the opaque directory, and the program
/// interpreter at its PT_INTERP path (/lib64 leads to usr/lib64), as an
/// installed system has it.
fn image_layers(sysroot: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut entries = Vec::new();
    walk(sysroot, Path::new(""), &mut entries);
    let mut lower = tar::Builder::new(Vec::new());
    let mut upper = tar::Builder::new(Vec::new());
    for r in &entries {
        let full = sysroot.join(r);
        let name = r.to_str().unwrap();
        let m = fs::symlink_metadata(&full).unwrap();
        if m.file_type().is_symlink() {
            tar_link(&mut lower, name, &fs::read_link(&full).unwrap());
        } else if m.is_dir() {
            tar_dir(&mut lower, name);
            tar_dir(&mut upper, name);
        } else {
            tar_file(&mut lower, name, DECOY);
            tar_file(&mut upper, name, &fs::read(&full).unwrap());
        }
    }
    for d in ["etc", "opt", "opt/app", "opt/app/sub"] {
        tar_dir(&mut lower, d);
    }
    tar_file(&mut lower, "etc/whiteout-me", DECOY);
    tar_file(&mut lower, "opt/app/old.conf", DECOY);
    tar_file(&mut lower, "opt/app/sub/deep.conf", DECOY);
    for d in ["etc", "opt", "opt/app"] {
        tar_dir(&mut upper, d);
    }
    tar_file(&mut upper, "etc/.wh.whiteout-me", b"");
    tar_file(&mut upper, "opt/app/.wh..wh..opq", b"");
    tar_file(&mut upper, "opt/app/new.conf", b"new");
    let ld = "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
    if sysroot.join(ld).is_file() {
        tar_dir(&mut upper, "usr/lib64");
        tar_link(
            &mut upper,
            "usr/lib64/ld-linux-x86-64.so.2",
            Path::new("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        );
    }
    (
        gzip(&lower.into_inner().unwrap()),
        upper.into_inner().unwrap(),
    )
}

/// The image of `sysroot` named `localhost/victim:latest` (as
/// [`CONFIG_DUMP`] names it), under `base`: an OCI layout directory, an
/// OCI archive (a tar of it) and a docker-archive (`docker save`'s
/// manifest.json with Config and Layers).
fn images_of(sysroot: &Path, base: &Path) -> Vec<PathBuf> {
    let (lower_gz, upper) = image_layers(sysroot);
    let lower = {
        use std::io::Read;
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(&lower_gz[..])
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    let layout = base.join("oci");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&lower).to_string(), sha256(&upper).to_string()]}})
    .to_string();
    let desc = |mt: &str, bytes: &[u8]| json!({"mediaType": mt, "digest": write_blob(&layout, bytes).to_string(), "size": bytes.len()});
    let manifest =
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config.as_bytes()),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", &lower_gz),
                   desc("application/vnd.oci.image.layer.v1.tar", &upper)]})
        .to_string();
    let mut top = desc(
        "application/vnd.oci.image.manifest.v1+json",
        manifest.as_bytes(),
    );
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "localhost/victim:latest"});
    fs::write(
        layout.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
    )
    .unwrap();
    let mut t = tar::Builder::new(Vec::new());
    t.append_dir_all(".", &layout).unwrap();
    let oci_tar = base.join("image.oci.tar");
    fs::write(&oci_tar, t.into_inner().unwrap()).unwrap();
    // docker save: layers as <id>/layer.tar, the config as <hex>.json.
    let mut d = tar::Builder::new(Vec::new());
    let cfg_name = format!(
        "{}.json",
        sha256(config.as_bytes())
            .to_string()
            .trim_start_matches("sha256:")
    );
    tar_file(&mut d, &cfg_name, config.as_bytes());
    let mut names = Vec::new();
    for (i, l) in [&lower_gz, &upper].iter().enumerate() {
        let n = format!("{i}{}/layer.tar", "0".repeat(63));
        tar_file(&mut d, &n, l);
        names.push(n);
    }
    tar_file(
        &mut d,
        "manifest.json",
        json!([{"Config": cfg_name, "RepoTags": ["localhost/victim:latest"], "Layers": names}])
            .to_string()
            .as_bytes(),
    );
    let docker = base.join("image.docker.tar");
    fs::write(&docker, d.into_inner().unwrap()).unwrap();
    vec![layout, oci_tar, docker]
}

/// The core files of a directory, sorted.
fn cores(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("core.")
        })
        .collect();
    v.sort();
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Copies out of an image's compressed layers, and out of a compressed
/// image archive, count against `--max-spill` as an archive's members do:
/// past it the input fails with `ErrorKind::Limit` and a message naming the
/// option (it was a plain error, and a cap of its own, 4 GiB by default).
/// Within it, such an image gives the cores its layout gives.
fn an_image_past_max_spill_is_a_limit() {
    let fx = fixture("mt-pie");
    let base = scratch("engines-image-spill");
    let images = images_of(&fx.sysroot(), &base);
    let zst = base.join("image.oci.tar.zst");
    fs::write(&zst, compress(&fs::read(&images[1]).unwrap(), "tar.zst")).unwrap();
    // Its layers' blobs are copied out of the compressed archive.
    for image in [&zst] {
        let what = image.display();
        let opts = criu2core::OpenOptions::default().max_spill(4096);
        let ckpt = criu2core::open(fx.images(), &opts).unwrap();
        let load = criu2core::LoadOptions::default().image(criu2core::ImageRef::new(image));
        let Err(e) = ckpt.load(fx.processes[0].pid, &load) else {
            panic!("{what}: loaded past the cap");
        };
        assert_eq!(e.kind(), &criu2core::ErrorKind::Limit, "{what}: {e}");
        let o = criu2core([
            "convert",
            s(&fx.images()),
            "-o",
            s(&base.join("out")),
            "--image",
            s(image),
            "--max-spill",
            "4K",
        ]);
        assert!(!o.status.success(), "{what}: accepted");
        assert!(text(&o).contains("(--max-spill;"), "{what}: {}", text(&o));
        // Within it, the same load works, and the cores are the layout's:
        // the copies live as long as the view made of them (they were
        // removed with the archive, before the view read them).
        let ckpt = criu2core::open(fx.images(), &criu2core::OpenOptions::default()).unwrap();
        ckpt.load(fx.processes[0].pid, &load).unwrap();
        let mut cores = Vec::new();
        for (tag, image) in [("zst", image), ("layout", &images[0])] {
            let out = base.join(format!("out-{tag}"));
            let o = criu2core([
                "convert",
                s(&fx.images()),
                "-o",
                s(&out),
                "--image",
                s(image),
            ]);
            assert!(o.status.success(), "{tag}: {}", text(&o));
            cores.push(fs::read(out.join(format!("core.{}", fx.processes[0].pid))).unwrap());
        }
        assert!(cores[0] == cores[1], "{what}: the cores differ");
    }
}

fn image_gives_the_cores_root_gives() {
    for name in FIXTURES {
        let fx = fixture(name);
        let base = scratch(&format!("engines-image-{name}"));
        let want = convert_fixture(&fx, "root", &["--root", s(&fx.sysroot())]);
        let images = images_of(&fx.sysroot(), &base);
        let podman = base.join("podman.tar.gz");
        fs::write(
            &podman,
            compress(&podman_tar(&fx.images(), |_| {}), "tar.gz"),
        )
        .unwrap();
        for input in [fx.images(), podman.clone()] {
            for (i, image) in images.iter().enumerate() {
                let what = format!("{} --image {}", input.display(), image.display());
                let out = base.join(format!(
                    "out-{i}-{}",
                    input.file_name().unwrap().to_str().unwrap()
                ));
                let o = criu2core(["convert", s(&input), "-o", s(&out), "--image", s(image)]);
                assert!(o.status.success(), "{what}: {}", text(&o));
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(err.contains("localhost/victim:latest"), "{what}: {err}");
                if input == podman {
                    assert!(!err.contains("names no image"), "{what}: {err}");
                }
                for p in &fx.processes {
                    let core = out.join(format!("core.{}", p.pid));
                    let got = fs::read(&core).unwrap();
                    assert!(
                        got == fs::read(want.join(format!("core.{}", p.pid))).unwrap(),
                        "{what}: core.{} differs from --root's",
                        p.pid
                    );
                    assert!(!contains(&got, DECOY), "{what}: a decoy reached the core");
                }
            }
        }
        // batch takes --image and --sysroot as convert does, and records
        // the image among the options its cores were made with.
        let inputs = base.join("batch-in");
        fs::create_dir_all(&inputs).unwrap();
        fs::rename(&podman, inputs.join("podman.tar.gz")).unwrap();
        copy_dir(&fx.images(), &inputs.join("dir"));
        let bout = base.join("batch");
        let sys = base.join("batch-sysroot");
        let o = criu2core([
            "batch",
            s(&inputs),
            "-o",
            s(&bout),
            "--image",
            s(&images[2]),
            "--sysroot",
            s(&sys),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let sm: Value =
            serde_json::from_slice(&fs::read(bout.join("summary.json")).unwrap()).unwrap();
        assert_schema("batch.schema.json", &sm);
        assert_eq!(sm["ok"], 2, "{sm:#}");
        for item in sm["inputs"].as_array().unwrap() {
            assert!(
                item["options"]["image"]
                    .as_str()
                    .is_some_and(|i| i.ends_with("image.docker.tar")),
                "{item:#}"
            );
            same_cores(
                &fx,
                &want,
                Path::new(item["output"].as_str().unwrap()),
                "batch",
            );
        }
        // Each input's files in a sysroot of its own, named as its output.
        let exe = fx.processes[0].exe.trim_start_matches('/');
        for item in sm["inputs"].as_array().unwrap() {
            let output = Path::new(item["output"].as_str().unwrap());
            let own = sys.join(output.file_name().unwrap());
            assert!(
                fs::read(own.join(exe)).unwrap() == fs::read(fx.sysroot().join(exe)).unwrap(),
                "{name}: batch --sysroot"
            );
        }
        // --root and --image together are refused.
        let o = criu2core([
            "convert",
            s(&fx.images()),
            "-o",
            s(&base.join("both")),
            "--image",
            s(&images[0]),
            "--root",
            s(&fx.sysroot()),
        ]);
        assert!(!o.status.success());
        assert!(
            text(&o).contains("--image") && text(&o).contains("--root"),
            "{}",
            text(&o)
        );
        assert!(!base.join("both").exists() || cores(&base.join("both")).is_empty());
    }
}

/// The files of NT_FILE of a (64-bit) core: count, page size, count
/// (start, end, offset) triples, then the names, each NUL-terminated.
fn nt_file_paths(core: &Path) -> Vec<String> {
    const NT_FILE: u32 = 0x4649_4c45;
    let (_, _, desc) = notes(core)
        .into_iter()
        .find(|(owner, t, _)| owner == "CORE" && *t == NT_FILE)
        .expect("no NT_FILE");
    let count = u64::from_le_bytes(desc[..8].try_into().unwrap()) as usize;
    let names = &desc[16 + 24 * count..];
    let mut paths: Vec<String> = names
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(paths.len(), count, "{}", core.display());
    paths.sort();
    paths.dedup();
    paths
}

/// Prints the build-id of each module drgn finds loaded in a core.
const DRGN_BUILD_IDS: &str = "import sys, drgn
p = drgn.Program()
p.set_core_dump(sys.argv[1])
for m, _ in p.loaded_modules():
    print(m.build_id.hex() if m.build_id else '-')
";

/// The modules elfutils finds in a core by itself: address, size and
/// build-id of each.
fn build_ids(core: &Path) -> Vec<String> {
    let o = std::process::Command::new("eu-unstrip")
        .arg("-n")
        .arg(format!("--core={}", core.display()))
        .output()
        .expect("run eu-unstrip");
    assert!(o.status.success(), "{}", text(&o));
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

fn standalone_cores_and_a_ready_sysroot() {
    for name in FIXTURES {
        let fx = fixture(name);
        let base = scratch(&format!("engines-sysroot-{name}"));
        let images = images_of(&fx.sysroot(), &base);
        fs::write(base.join("podman.tar"), podman_tar(&fx.images(), |_| {})).unwrap();
        let run = |args: &[&str]| {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_criu2core"))
                .args(args)
                .current_dir(&base)
                .output()
                .unwrap();
            assert!(o.status.success(), "{args:?}: {}", text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let image = images[1].file_name().unwrap().to_str().unwrap();
        let args = [
            "convert",
            "podman.tar",
            "-o",
            "cores",
            "--image",
            image,
            "--sysroot",
            "sys",
        ];
        let stdout = run(&args);
        // The printed command opens each core with the sysroot.
        let exe = fx.processes[0].exe.trim_start_matches('/').to_string();
        for p in &fx.processes {
            let cmd = format!("gdb -iex 'set sysroot sys' sys/{exe} cores/core.{}", p.pid);
            assert!(stdout.contains(&format!("\n  {cmd}\n")), "{stdout}");
        }
        let mut json_args = args.to_vec();
        json_args.extend(["--json", "--force"]);
        let v: Value = serde_json::from_str(&run(&json_args)).unwrap();
        assert_schema("convert.schema.json", &v);
        for c in v["inputs"][0]["cores"].as_array().unwrap() {
            assert_eq!(
                c["gdb_command"],
                format!(
                    "gdb -iex 'set sysroot sys' sys/{exe} cores/core.{}",
                    c["pid"]
                ),
                "{v:#}"
            );
        }
        // The sysroot holds every mapped file, as the image has it.
        let sys = base.join("sys");
        for p in &fx.processes {
            let core = base.join(format!("cores/core.{}", p.pid));
            let files = nt_file_paths(&core);
            assert!(!files.is_empty());
            for f in files.iter().filter(|f| !f.contains("(deleted)")) {
                let got = fs::read(sys.join(f.trim_start_matches('/')))
                    .unwrap_or_else(|e| panic!("{name}: {f} not in the sysroot: {e}"));
                let want = fs::read(fx.sysroot().join(f.trim_start_matches('/'))).unwrap();
                assert!(got == want, "{name}: {f} is not the image's");
            }
        }
        if name != "static" {
            // The program interpreter at its PT_INTERP path, through links.
            assert!(sys.join("lib64/ld-linux-x86-64.so.2").is_file(), "{name}");
        }
        fs::create_dir_all(base.join("reference")).unwrap();
        let root = complete_sysroot(&fx, &base.join("reference"));
        let empty = base.join("empty");
        fs::create_dir_all(&empty).unwrap();
        for p in &fx.processes {
            let core = base.join(format!("cores/core.{}", p.pid));
            // No files at all: the code at every thread's pc is in the core.
            let g = gdb(
                Some(&empty),
                None,
                &core,
                &["thread apply all x/16xb $pc".to_string()],
            );
            let threads = per_thread(&g);
            assert!(!threads.is_empty(), "{name}: {g}");
            for (lwp, lines) in &threads {
                let bytes: Vec<&str> = lines
                    .iter()
                    .filter_map(|l| l.split_once(':').map(|(_, b)| b))
                    .flat_map(str::split_whitespace)
                    .collect();
                assert!(
                    bytes.len() == 16 && bytes.iter().any(|b| *b != "0x00"),
                    "{name}: LWP {lwp}: no code at pc: {lines:?}\n{g}"
                );
            }
            // The build-ids of every module are in the core (the ELF
            // header pages the kernel writes), as in gdb's gcore.
            let ids = build_ids(&core);
            assert_eq!(ids, build_ids(&fx.gcore(p)), "{name}");
            // drgn finds the same modules' build-ids in the core alone.
            let py = drgn_python().expect("drgn");
            let o = std::process::Command::new(py)
                .arg("-c")
                .arg(DRGN_BUILD_IDS)
                .arg(&core)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", text(&o));
            let mut drgn_ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(String::from)
                .collect();
            drgn_ids.sort();
            let mut want: Vec<String> = ids
                .iter()
                .map(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .unwrap()
                        .split('@')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect();
            want.sort();
            assert_eq!(drgn_ids, want, "{name}");
            // The sysroot written gives the backtraces the fixture's own
            // sysroot gives, and gdb finds the core matches its program.
            let bt = ["thread apply all bt".to_string()];
            let ours = gdb(Some(&sys), Some(&sys.join(&exe)), &core, &bt);
            let theirs = gdb(Some(&root), Some(&root.join(&exe)), &core, &bt);
            assert!(!ours.contains("may not match"), "{name}: {ours}");
            assert!(!ours.contains("?? ()"), "{name}: {ours}");
            assert_eq!(per_thread(&ours), per_thread(&theirs), "{name}");
            assert_eq!(per_thread(&ours).len(), threads.len());
        }
    }
}

/// Replaces the blob `old` of an OCI layout by `new` wherever a
/// descriptor names it, up through the indexes and manifests to
/// index.json (each rewritten blob gets its true digest): how a layout
/// with one changed blob looks when everything above it is consistent.
/// `size` overrides the size its descriptors give.
fn replace_blob(layout: &Path, old: &str, new: &[u8], size: Option<usize>) {
    let new_digest = write_blob(layout, new).to_string();
    let mut todo = vec![(old.to_string(), new_digest, size.unwrap_or(new.len()))];
    while let Some((from, to, len)) = todo.pop() {
        let index = layout.join("index.json");
        let mut files = vec![index.clone()];
        for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            files.push(e.unwrap().path());
        }
        for f in files {
            let Ok(mut v) = serde_json::from_slice::<Value>(&fs::read(&f).unwrap()) else {
                continue;
            };
            let mut hit = false;
            fix_descriptors(&mut v, &from, &to, len, &mut hit);
            if !hit {
                continue;
            }
            let bytes = serde_json::to_vec(&v).unwrap();
            if f == index {
                fs::write(&f, bytes).unwrap();
            } else {
                let old = format!("sha256:{}", f.file_name().unwrap().to_str().unwrap());
                let d = write_blob(layout, &bytes).to_string();
                todo.push((old, d, bytes.len()));
            }
        }
    }
}

fn fix_descriptors(v: &mut Value, from: &str, to: &str, len: usize, hit: &mut bool) {
    match v {
        Value::Object(m) => {
            if m.get("digest").and_then(Value::as_str) == Some(from) {
                m.insert("digest".into(), to.into());
                m.insert("size".into(), len.into());
                *hit = true;
            }
            for x in m.values_mut() {
                fix_descriptors(x, from, to, len, hit);
            }
        }
        Value::Array(a) => {
            for x in a {
                fix_descriptors(x, from, to, len, hit);
            }
        }
        _ => {}
    }
}

/// Converts `input` (with `extra` arguments) into a fresh directory and
/// gives whether it worked, what it said, and the cores it left.
fn try_convert(
    base: &Path,
    tag: &str,
    input: &Path,
    extra: &[&str],
) -> (bool, String, Vec<PathBuf>) {
    let out = base.join(format!("out-{tag}"));
    let tmp = base.join(format!("tmp-{tag}"));
    fs::create_dir_all(&tmp).unwrap();
    let mut args = vec!["convert", s(input), "-o", s(&out), "--tmpdir", s(&tmp)];
    args.extend(extra);
    let o = criu2core(&args);
    assert!(
        o.status.code().is_some_and(|c| c < 100),
        "{tag}: killed or panicked: {}",
        text(&o)
    );
    assert!(!text(&o).contains("panicked"), "{tag}: {}", text(&o));
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "{tag}: left files");
    let cores = if out.exists() {
        cores(&out)
    } else {
        Vec::new()
    };
    (o.status.success(), text(&o), cores)
}

fn hostile_checkpoint_images_and_container_images_fail_cleanly() {
    let fx = fixture("mt-pie");
    let base = scratch("engines-hostile");
    let want = convert_fixture(&fx, "engines-dir", &[]).join("core.12155");
    let ctr = containerd_export(&fx, &base.join("ctr"), CONTAINERD_SPEC.as_bytes());
    let criu_digest = sha256(&ctr.criu).to_string();
    let fresh = |tag: &str| {
        let l = base.join(format!("layout-{tag}"));
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(&ctr.layout)
            .arg(&l)
            .status()
            .unwrap();
        assert!(st.success());
        l
    };
    let refused = |tag: &str, input: &Path, extra: &[&str], says: &[&str]| {
        let (ok, t, cores) = try_convert(&base, tag, input, extra);
        assert!(!ok, "{tag}: accepted");
        assert!(cores.is_empty(), "{tag}: wrote {cores:?}");
        for w in says {
            assert!(t.contains(w), "{tag}: does not say {w:?}: {t}");
        }
    };

    // A criu.tar whose bytes lie about its digest.
    let l = fresh("digest");
    let blob = l
        .join("blobs/sha256")
        .join(criu_digest.trim_start_matches("sha256:"));
    let mut bytes = fs::read(&blob).unwrap();
    let at = memchr::memmem::find(&bytes, b"descriptors").unwrap();
    bytes[at] = b'D';
    fs::write(&blob, bytes).unwrap();
    refused("digest", &l, &[], &["digest mismatch", &criu_digest[7..]]);
    // One whose size lies (every digest above it true).
    let l = fresh("size");
    replace_blob(&l, &criu_digest, &ctr.criu, Some(ctr.criu.len() - 512));
    refused("size", &l, &[], &[&criu_digest[7..]]);
    // A descriptor that points outside blobs/.
    let l = fresh("outside");
    let index = l.join("index.json");
    let t = fs::read_to_string(&index).unwrap();
    let top = serde_json::from_str::<Value>(&t).unwrap()["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    fs::write(
        &index,
        t.replace(&top, "sha256:../../../../../../etc/passwd"),
    )
    .unwrap();
    refused("outside", &l, &[], &["index.json"]);
    // Two indexes that list each other (their digests must lie).
    let l = fresh("cycle");
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let idx = |to: &str| {
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                              "digest": format!("sha256:{to}"), "size": 237}]})
        .to_string()
    };
    // True sizes: only the digests lie.
    assert_eq!(idx(&a).len(), 237);
    fs::write(l.join("blobs/sha256").join(&a), idx(&b)).unwrap();
    fs::write(l.join("blobs/sha256").join(&b), idx(&a)).unwrap();
    fs::write(
        l.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
               "digest": format!("sha256:{a}"), "size": 237}]})
        .to_string(),
    )
    .unwrap();
    refused("cycle", &l, &[], &["digest mismatch", &a]);
    // Indexes nested 100 deep, each digest true.
    let l = fresh("deep");
    let mut d = json!({"mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": serde_json::from_str::<Value>(&fs::read_to_string(l.join("index.json")).unwrap()).unwrap()["manifests"][0]["digest"].clone(),
        "size": serde_json::from_str::<Value>(&fs::read_to_string(l.join("index.json")).unwrap()).unwrap()["manifests"][0]["size"].clone()});
    for _ in 0..100 {
        let bytes = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [d]}).to_string();
        d = json!({"mediaType": "application/vnd.oci.image.index.v1+json",
                   "digest": write_blob(&l, bytes.as_bytes()).to_string(), "size": bytes.len()});
    }
    fs::write(
        l.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [d]}).to_string(),
    )
    .unwrap();
    refused("deep", &l, &[], &["deep"]);
    // Media types that lie about compression: the criu.tar gzipped under
    // the plain media type, the rw layer plain under +gzip. Content wins.
    let l = fresh("mediatype");
    replace_blob(&l, &criu_digest, &gzip(&ctr.criu), None);
    let rw_plain = {
        use std::io::Read;
        let mut v = Vec::new();
        flate2::read::GzDecoder::new(&ctr.rw[..])
            .read_to_end(&mut v)
            .unwrap();
        v
    };
    replace_blob(&l, &sha256(&ctr.rw).to_string(), &rw_plain, None);
    let (ok, t, cores) = try_convert(&base, "mediatype", &l, &[]);
    assert!(ok, "{t}");
    assert!(fs::read(&cores[0]).unwrap() == fs::read(&want).unwrap());

    // A containerd archive whose (gzip) rootfs-diff whites out `..` and
    // names a member above its root: ignored, the cores as they are.
    let mut rw = tar::Builder::new(Vec::new());
    tar_dir(&mut rw, "srv");
    tar_file(&mut rw, "srv/.wh...", b"");
    tar_file(&mut rw, ".wh...", b"");
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_cksum();
    rw.append(&h, &b"evil"[..]).unwrap();
    let cri = base.join("cri-dotdot.tar");
    fs::write(
        &cri,
        containerd_cri_archive(&fx.images(), &gzip(&rw.into_inner().unwrap())),
    )
    .unwrap();
    let (ok, t, cores) = try_convert(&base, "cri-dotdot", &cri, &[]);
    assert!(
        ok && t.contains("\"../escape\"") && t.contains("skipped"),
        "{t}"
    );
    assert!(fs::read(&cores[0]).unwrap() == fs::read(&want).unwrap());
    assert!(!base.join("escape").exists() && !base.parent().unwrap().join("escape").exists());
    // The archive in gzip 100 times over: one level is read, the rest is
    // not a tar, refused cleanly.
    let mut deep = fs::read(&cri).unwrap();
    for _ in 0..100 {
        deep = gzip(&deep);
    }
    let deep_path = base.join("deep.tar.gz");
    fs::write(&deep_path, deep).unwrap();
    refused("gzip-100", &deep_path, &[], &["deep.tar.gz"]);

    // Container images (--image): a whiteout of `..`, a layer whose
    // digest lies, links out of the view.
    let secret = base.join("host-secret");
    fs::write(&secret, b"HOST-SECRET: never in a core").unwrap();
    let root_core = convert_fixture(&fx, "root", &["--root", s(&fx.sysroot())]).join("core.12155");
    let image_with = |tag: &str, top: Vec<u8>| {
        let dir = base.join(format!("image-{tag}"));
        fs::create_dir_all(&dir).unwrap();
        let layout = images_of(&fx.sysroot(), &dir).remove(0);
        // A third layer on top, as an image builder adds one.
        let idx: Value =
            serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let md = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
        let mpath = layout.join("blobs/sha256").join(&md[7..]);
        let mut m: Value = serde_json::from_slice(&fs::read(&mpath).unwrap()).unwrap();
        let cd = m["config"]["digest"].as_str().unwrap().to_string();
        let mut c: Value =
            serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&cd[7..])).unwrap())
                .unwrap();
        c["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(sha256(&top).to_string().into());
        let c = c.to_string();
        m["config"] = json!({"mediaType": "application/vnd.oci.image.config.v1+json",
                             "digest": write_blob(&layout, c.as_bytes()).to_string(), "size": c.len()});
        m["layers"].as_array_mut().unwrap().push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": write_blob(&layout, &top).to_string(), "size": top.len()}),
        );
        replace_blob(&layout, &md, m.to_string().as_bytes(), None);
        layout
    };
    let mut t = tar::Builder::new(Vec::new());
    tar_dir(&mut t, "srv");
    tar_file(&mut t, "srv/.wh...", b"");
    let l = image_with("dotdot", t.into_inner().unwrap());
    let (ok, t, cores) = try_convert(&base, "dotdot", &fx.images(), &["--image", s(&l)]);
    if ok {
        // Ignored: the view is the image's, nothing above / was touched.
        assert!(
            fs::read(&cores[0]).unwrap() == fs::read(&root_core).unwrap(),
            "{t}"
        );
    } else {
        assert!(cores.is_empty() && t.contains(".wh..."), "{t}");
    }
    let mut t = tar::Builder::new(Vec::new());
    for d in ["usr", "usr/lib", "usr/lib/x86_64-linux-gnu"] {
        tar_dir(&mut t, d);
    }
    tar_link(&mut t, "usr/lib/x86_64-linux-gnu/libc.so.6", &secret);
    let up = "../".repeat(40) + s(&secret).trim_start_matches('/');
    tar_link(
        &mut t,
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        Path::new(&up),
    );
    let l = image_with("links", t.into_inner().unwrap());
    let (ok, t, cores) = try_convert(&base, "links", &fx.images(), &["--image", s(&l)]);
    assert!(ok, "{t}");
    let core = fs::read(&cores[0]).unwrap();
    assert!(
        !contains(&core, b"HOST-SECRET"),
        "a host file reached the core"
    );
    assert!(!contains(&core, DECOY));
    // The lying layer: its bytes changed under a true-looking manifest.
    let l = image_with("lying", b"x".repeat(1024));
    let m: Value = serde_json::from_slice(&fs::read(l.join("index.json")).unwrap()).unwrap();
    let md = m["manifests"][0]["digest"].as_str().unwrap();
    let m: Value =
        serde_json::from_slice(&fs::read(l.join("blobs/sha256").join(&md[7..])).unwrap()).unwrap();
    let ld = m["layers"][0]["digest"].as_str().unwrap();
    let p = l.join("blobs/sha256").join(&ld[7..]);
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    fs::write(&p, bytes).unwrap();
    refused(
        "lying-layer",
        &fx.images(),
        &["--image", s(&l)],
        &[&ld[7..]],
    );
}

fn grep_read_and_inspect_take_the_image() {
    let fx = fixture("mt-pie");
    let base = scratch("engines-grep");
    let images = images_of(&fx.sysroot(), &base);
    let podman = base.join("podman.tar");
    fs::write(&podman, podman_tar(&fx.images(), |_| {})).unwrap();
    let input = s(&podman);
    let run = |args: &[&str]| {
        let o = criu2core(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let sysroot = fx.sysroot();
    let root = ["--root", s(&sysroot)];
    // grep --files finds in the image's files what it finds in --root's.
    let grep = |with: &[&str]| {
        let mut a = vec!["grep", "--files", "--json", "GLIBC_2.3", input];
        a.extend(with);
        run(&a)
    };
    let want = grep(&root);
    let hits: Vec<Value> = want
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        hits.iter()
            .any(|h| h["mapping"]["path"] == "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        "{want}"
    );
    for image in &images {
        assert_eq!(grep(&["--image", s(image)]), want, "{}", image.display());
    }
    // read gives the file's bytes from the image as from --root.
    let libc = hits
        .iter()
        .find(|h| h["mapping"]["path"] == "/usr/lib/x86_64-linux-gnu/libc.so.6")
        .unwrap();
    let addr = libc["address"].as_u64().unwrap().to_string();
    let pid = libc["pid"].as_u64().unwrap().to_string();
    let read = |with: &[&str]| {
        let o = criu2core(
            ["read", "-p", &pid, input, &addr, "64"]
                .iter()
                .chain(with)
                .copied()
                .collect::<Vec<_>>(),
        );
        assert!(o.status.success(), "{}", text(&o));
        o.stdout
    };
    let bytes = read(&root);
    assert!(contains(&bytes, b"GLIBC_2.3"), "{bytes:?}");
    assert_eq!(read(&["--image", s(&images[1])]), bytes);
    // The image scripts/demo-image makes (its one layer gzip-compressed,
    // so read from a copy the image's view unpacks): the same bytes.
    let demo = base.join("demo.oci.tar");
    let st = std::process::Command::new(repo().join("scripts/demo-image"))
        .args([&sysroot, Path::new("localhost/victim:latest"), &demo])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(read(&["--image", s(&demo)]), bytes);
    // Without either, the file's pages are not there to read.
    let o = criu2core(["read", "-p", &pid, input, &addr, "64"]);
    assert!(
        !o.status.success() && text(&o).contains("--image IMAGE"),
        "{}",
        text(&o)
    );

    // inspect says which image would be used and whether it is the one the
    // checkpoint names (config.dump's rootfsImageName).
    let v: Value = serde_json::from_str(&run(&[
        "inspect",
        "--json",
        input,
        "--image",
        s(&images[1]),
    ]))
    .unwrap();
    assert_schema("inspect.schema.json", &v);
    assert_eq!(v["container"]["image"], "localhost/victim:latest");
    let img = &v["image"];
    let t = run(&["inspect", input, "--image", s(&images[1])]);
    assert!(t.contains("localhost/victim:latest"), "{t}");
    let other = podman_tar_with(
        &fx.images(),
        &CONFIG_DUMP.replace("localhost/victim:latest", "quay.io/other/app:2"),
        |_| {},
    );
    let other_path = base.join("other.tar");
    fs::write(&other_path, other).unwrap();
    let w: Value = serde_json::from_str(&run(&[
        "inspect",
        "--json",
        s(&other_path),
        "--image",
        s(&images[1]),
    ]))
    .unwrap();
    assert_eq!(
        (&img["matches"], &img["chosen_by"], &img["names"][0]),
        (
            &json!(true),
            &json!("checkpoint"),
            &json!("localhost/victim:latest")
        ),
        "{v:#}"
    );
    assert_eq!(
        (&w["image"]["matches"], &w["image"]["checkpoint_names"][0]),
        (&json!(false), &json!("quay.io/other/app:2")),
        "{w:#}"
    );
    let t = run(&["inspect", s(&other_path), "--image", s(&images[1])]);
    assert!(t.contains("does NOT match the checkpoint's image"), "{t}");
}
