//! Container images made by the real tools (buildah, skopeo) from the
//! mt-pie fixture's files, read through every transport into the same
//! layered view; and the two kinds of checkpoint image, containerd's and
//! the one made for Kubernetes restore, read far enough to find the
//! checkpoint in them.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use criu2core::model::Blob;
use criu2core::oci::{
    ArchiveFormat, BlobData, CheckpointImage, ImageArchive, ImageKind, LayerView, Options,
    Selection, Selector,
};
use criu2core::testkit::oci::{media_type, Digest};
use criu2core::Compression;
use serde_json::{json, Value};

use crate::common::*;
use crate::Need;
use libtest_mimic::Trial;

/// buildah with a private store under `dir` (vfs: no mounts, no daemon).
pub struct Buildah {
    dir: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Buildah {
        fs::create_dir_all(dir.join("tmp")).unwrap();
        fs::write(
            dir.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        Buildah {
            dir: dir.to_path_buf(),
        }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("BUILDAH_ISOLATION", "chroot")
            .env("TMPDIR", self.dir.join("tmp"));
        c
    }

    /// Runs buildah; gives its output's last line.
    pub fn run(&self, args: &[&str]) -> String {
        let mut c = self.cmd("buildah");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        let out = c.output().expect("run buildah");
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().last().unwrap_or("").trim().to_string()
    }

    pub fn push(&self, image: &str, dest: &str) {
        let policy = self.dir.join("policy.json");
        self.run(&[
            "push",
            "--signature-policy",
            policy.to_str().unwrap(),
            "-q",
            image,
            dest,
        ]);
    }

    pub fn commit(&self, container: &str, image: &str) {
        let policy = self.dir.join("policy.json");
        self.run(&[
            "commit",
            "--signature-policy",
            policy.to_str().unwrap(),
            "-q",
            container,
            image,
        ]);
    }

    pub fn skopeo(&self, args: &[&str]) {
        let mut c = self.cmd("skopeo");
        c.arg("--insecure-policy").args(args);
        let out = c.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read_blob(b: &Blob) -> Vec<u8> {
    let mut v = Vec::new();
    BlobData::File(b.clone())
        .open()
        .unwrap()
        .read_to_end(&mut v)
        .unwrap();
    v
}

/// The bytes of `path` in the view, or `None`.
fn view_file(v: &LayerView, path: &str) -> Option<Vec<u8>> {
    let f = v.resolve(path).unwrap()?;
    Some(read_blob(&v.materialize(&[f]).unwrap()[0]))
}

/// Every file of the view: path, layer, bytes.
fn whole_view(v: &LayerView) -> Vec<(Vec<u8>, usize, Vec<u8>)> {
    let files: Vec<_> = v.files().collect();
    let blobs = v.materialize(&files).unwrap();
    files
        .iter()
        .zip(&blobs)
        .map(|(f, b)| (f.path().to_vec(), f.layer(), read_blob(b)))
        .collect()
}

fn open_view(path: &Path, sel: &Selector) -> (ImageArchive, LayerView) {
    let ar = ImageArchive::open(path, &Options::default())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let img = ar.select(sel).unwrap();
    let v = LayerView::new(img.layers().unwrap(), &Options::default())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    (ar, v)
}

const DECOY: &[u8] = b"DECOY: the lower layer's version, which the upper layer replaces";

/// The lower layer's tree: the fixture's links, decoys of its binaries,
/// the real dynamic loader, a file to white out and a directory the top
/// layer makes opaque.
fn lower_tree(sysroot: &Path, dir: &Path) {
    fs::create_dir_all(dir.join("usr/lib/x86_64-linux-gnu")).unwrap();
    fs::create_dir_all(dir.join("srv/victim")).unwrap();
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::create_dir_all(dir.join("opt/app/sub")).unwrap();
    for link in ["bin", "lib", "lib64", "sbin"] {
        let target = fs::read_link(sysroot.join(link)).unwrap();
        std::os::unix::fs::symlink(target, dir.join(link)).unwrap();
    }
    fs::write(dir.join("usr/lib/x86_64-linux-gnu/libc.so.6"), DECOY).unwrap();
    fs::write(dir.join("srv/victim/victim"), DECOY).unwrap();
    fs::copy(
        sysroot.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        dir.join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    fs::write(dir.join("etc/whiteout-me"), b"only in the lower layer").unwrap();
    fs::write(dir.join("opt/app/old.conf"), b"old").unwrap();
    fs::write(dir.join("opt/app/sub/deep.conf"), b"deep").unwrap();
}

pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::of(criu2core::testkit::oci::Algorithm::Sha256, bytes)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn write_blob(layout: &Path, bytes: &[u8]) -> Digest {
    let d = sha256(bytes);
    fs::write(layout.join(d.blob_path()), bytes).unwrap();
    d
}

fn read_json(layout: &Path, d: &str) -> Value {
    let d = Digest::parse(d).unwrap();
    serde_json::from_slice(&fs::read(layout.join(d.blob_path())).unwrap()).unwrap()
}

/// Adds a layer (gzip) on top of the only image of an OCI layout
/// directory, as an image builder would: the layer blob, the config's
/// diff_id and history, a new manifest, index.json pointing at it.
fn add_layer(layout: &Path, tar: &[u8]) {
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let mut manifest = read_json(layout, index["manifests"][0]["digest"].as_str().unwrap());
    let mut config = read_json(layout, manifest["config"]["digest"].as_str().unwrap());
    let gz = gzip(tar);
    let layer = write_blob(layout, &gz);
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(sha256(tar).to_string().into());
    if let Some(h) = config["history"].as_array_mut() {
        h.push(json!({"created_by": "criu2core test: an opaque directory"}));
    }
    let config = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = write_blob(layout, &config).to_string().into();
    manifest["config"]["size"] = config.len().into();
    manifest["layers"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": layer.to_string(),
        "size": gz.len(),
    }));
    let manifest = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = write_blob(layout, &manifest).to_string().into();
    index["manifests"][0]["size"] = manifest.len().into();
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// A layer that makes /opt/app opaque and puts one new file in it.
fn opaque_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for d in ["opt/", "opt/app/"] {
        b.append_data(&mut dir.clone(), d, &[][..]).unwrap();
    }
    tar_file(&mut b, "opt/app/.wh..wh..opq", b"");
    tar_file(&mut b, "opt/app/new.conf", b"new");
    b.into_inner().unwrap()
}

fn layers_built_by_buildah_read_alike_through_every_transport() {
    let fx = fixture("mt-pie");
    let sysroot = fx.sysroot();
    let real = |p: &str| fs::read(sysroot.join(p)).unwrap();
    let base = scratch("container-images-layers");
    let b = Buildah::new(&base.join("buildah"));

    // Lower layer: decoys and what the upper layers delete.
    let lower = base.join("lower");
    lower_tree(&sysroot, &lower);
    let c = b.run(&["from", "scratch"]);
    b.run(&["add", &c, s(&lower), "/"]);
    b.commit(&c, "victim-base");
    // Upper layer: the real binaries, and a deleted file (a whiteout).
    let c = b.run(&["from", "localhost/victim-base"]);
    let root = PathBuf::from(b.run(&["mount", &c]));
    for f in ["usr/lib/x86_64-linux-gnu/libc.so.6", "srv/victim/victim"] {
        fs::copy(sysroot.join(f), root.join(f)).unwrap();
    }
    fs::remove_file(root.join("etc/whiteout-me")).unwrap();
    b.run(&["umount", &c]);
    b.run(&["config", "--annotation", "org.example.test=layers", &c]);
    b.commit(&c, "victim");

    // The two-layer image, pushed to each transport by buildah.
    let two = base.join("two");
    fs::create_dir_all(&two).unwrap();
    let oci_dir = two.join("oci");
    let pushed = [
        two.join("image.oci.tar"),
        oci_dir.clone(),
        two.join("image.docker.tar"),
    ];
    b.push(
        "localhost/victim",
        &format!("oci-archive:{}:victim:latest", s(&pushed[0])),
    );
    b.push(
        "localhost/victim",
        &format!("oci:{}:victim:latest", s(&pushed[1])),
    );
    b.push(
        "localhost/victim",
        &format!("docker-archive:{}:localhost/victim:latest", s(&pushed[2])),
    );
    let formats = [
        ArchiveFormat::OciArchive(Compression::None),
        ArchiveFormat::OciLayout,
        ArchiveFormat::DockerArchive(Compression::None),
    ];
    // Selected by what a Podman checkpoint names its image.
    let sel = Selector {
        hints: vec!["localhost/victim:latest".into()],
        ..Default::default()
    };
    let mut views = Vec::new();
    for (p, format) in pushed.iter().zip(formats) {
        let (ar, v) = open_view(p, &sel);
        assert_eq!(ar.format(), format, "{}", p.display());
        assert_eq!(ar.images().len(), 1);
        let info = &ar.images()[0];
        assert_eq!(info.kind, ImageKind::Image);
        assert_eq!(info.platform.as_ref().unwrap().os, "linux");
        assert_eq!(info.layers.len(), 2, "{}", p.display());
        let img = ar.select(&sel).unwrap();
        assert_eq!(
            img.selection(),
            &Selection::Hint("localhost/victim:latest".into()),
            "{}: names {:?}",
            p.display(),
            info.names
        );
        assert_eq!(v.layer_count(), 2);
        // Exactly the upper bytes, through the fixture's links too.
        for (path, want) in [
            (
                "/lib/x86_64-linux-gnu/libc.so.6",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
            ),
            (
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "usr/lib/x86_64-linux-gnu/libc.so.6",
            ),
            ("/srv/victim/victim", "srv/victim/victim"),
            (
                "/lib/../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            ),
        ] {
            assert!(
                view_file(&v, path).unwrap() == real(want),
                "{}: {path} is not the upper layer's",
                p.display()
            );
        }
        assert_eq!(v.resolve("/srv/victim/victim").unwrap().unwrap().layer(), 1);
        assert!(
            v.resolve("/etc/whiteout-me").unwrap().is_none(),
            "{}",
            p.display()
        );
        assert!(v.resolve("/opt/app/old.conf").unwrap().is_some());
        views.push(whole_view(&v));
    }
    assert!(
        views.iter().all(|w| w == &views[0]),
        "the transports differ"
    );
    // A checkpoint's rootfs-diff.tar (what the container wrote, here
    // gzip) and deleted.files (what it removed) on top of the image.
    let mut diff = tar::Builder::new(Vec::new());
    tar_file(&mut diff, "etc/written", b"by the container");
    tar_file(
        &mut diff,
        "usr/lib/x86_64-linux-gnu/libc.so.6",
        b"patched libc",
    );
    let diff_path = two.join("rootfs-diff.tar.gz");
    fs::write(&diff_path, gzip(&diff.into_inner().unwrap())).unwrap();
    let ar = ImageArchive::open(&pushed[0], &Options::default()).unwrap();
    let mut layers = ar.select(&sel).unwrap().layers().unwrap();
    let len = fs::metadata(&diff_path).unwrap().len();
    layers.push(criu2core::testkit::oci::Layer::new(
        "rootfs-diff.tar.gz",
        BlobData::File(Blob {
            label: "rootfs-diff.tar.gz".into(),
            path: diff_path,
            offset: 0,
            len,
            remote: None,
        }),
    ));
    let mut v = LayerView::new(layers, &Options::default()).unwrap();
    for p in criu2core::testkit::oci::parse_deleted_files(br#"["/srv/victim/victim"]"#).unwrap() {
        assert!(v.delete(&p).unwrap());
    }
    assert_eq!(view_file(&v, "/etc/written").unwrap(), b"by the container");
    assert_eq!(
        view_file(&v, "/lib/x86_64-linux-gnu/libc.so.6").unwrap(),
        b"patched libc"
    );
    assert!(v.resolve("/srv/victim/victim").unwrap().is_none());
    // The manifest annotation buildah was told to set.
    let (ar, _) = open_view(&pushed[0], &sel);
    assert_eq!(
        ar.images()[0]
            .annotations
            .get("org.example.test")
            .map(String::as_str),
        Some("layers")
    );

    // A third layer with an opaque directory, then skopeo carries the
    // image to every transport, one with zstd layers.
    let three = base.join("three");
    let oci3 = three.join("oci");
    fs::create_dir_all(&three).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&oci_dir)
        .arg(&oci3)
        .status()
        .unwrap();
    assert!(st.success());
    add_layer(&oci3, &opaque_layer());
    let src = format!("oci:{}:victim:latest", s(&oci3));
    let copies = [
        three.join("image.oci.tar"),
        three.join("image.docker.tar"),
        three.join("zstd"),
    ];
    b.skopeo(&[
        "copy",
        &src,
        &format!("oci-archive:{}:victim:latest", s(&copies[0])),
    ]);
    b.skopeo(&[
        "copy",
        &src,
        &format!("docker-archive:{}:localhost/victim:latest", s(&copies[1])),
    ]);
    b.skopeo(&[
        "copy",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("oci:{}:victim:latest", s(&copies[2])),
    ]);
    let mut views = Vec::new();
    for p in std::iter::once(&oci3).chain(&copies) {
        let (_, v) = open_view(p, &sel);
        assert_eq!(v.layer_count(), 3, "{}", p.display());
        assert!(
            v.resolve("/opt/app/old.conf").unwrap().is_none(),
            "{}",
            p.display()
        );
        assert!(
            v.resolve("/opt/app/sub/deep.conf").unwrap().is_none(),
            "{}",
            p.display()
        );
        assert_eq!(view_file(&v, "/opt/app/new.conf").unwrap(), b"new");
        assert!(v.resolve("/etc/whiteout-me").unwrap().is_none());
        assert!(view_file(&v, "/srv/victim/victim").unwrap() == real("srv/victim/victim"));
        views.push(whole_view(&v));
    }
    assert!(
        views.iter().all(|w| w == &views[0]),
        "the transports differ"
    );
    // The zstd copy really has zstd layers.
    let (ar, _) = open_view(&copies[2], &sel);
    assert!(ar.images()[0]
        .layers
        .iter()
        .all(|l| l.media_type.ends_with("+zstd")));

    // A layer blob whose bytes lie is refused, naming it.
    let lying = three.join("lying");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&oci3)
        .arg(&lying)
        .status()
        .unwrap();
    assert!(st.success());
    let (ar, _) = open_view(&lying, &sel);
    let top = ar.images()[0].layers[2].location().to_string();
    fs::write(lying.join(&top), gzip(b"not the layer")).unwrap();
    let img = ar.select(&sel).unwrap();
    let err = format!(
        "{:#}",
        LayerView::new(img.layers().unwrap(), &Options::default()).unwrap_err()
    );
    assert!(err.contains(&top) && err.contains("mismatch"), "{err}");
}

/// A checkpoint image for Kubernetes restore, built by the recipe CRI-O
/// documents (and Podman's --create-image follows): `buildah from scratch`,
/// the checkpoint archive's tree added at /, annotated with `annotations`
/// (KEY=VALUE), committed, and pushed by buildah as an oci-archive, an OCI
/// layout directory and a docker-archive, under `base/out`. `spec` is its
/// spec.dump. Gives each copy with its transport.
pub fn checkpoint_images(
    fx: &Fixture,
    base: &Path,
    spec: &str,
    annotations: &[&str],
) -> Vec<(PathBuf, &'static str)> {
    let b = Buildah::new(&base.join("buildah"));
    let tree = base.join("tree");
    copy_dir(&fx.images(), &tree.join("checkpoint"));
    fs::write(tree.join("config.dump"), CONFIG_DUMP).unwrap();
    fs::write(tree.join("spec.dump"), spec).unwrap();
    let c = b.run(&["from", "scratch"]);
    b.run(&["add", &c, s(&tree), "/"]);
    for a in annotations {
        b.run(&["config", "--annotation", a, &c]);
    }
    b.commit(&c, "checkpoint-victim");
    let out = base.join("out");
    fs::create_dir_all(&out).unwrap();
    let dests = vec![
        (out.join("ck.oci.tar"), "oci-archive"),
        (out.join("ck-oci"), "oci"),
        (out.join("ck.docker.tar"), "docker-archive"),
    ];
    for (p, transport) in &dests {
        b.push(
            "localhost/checkpoint-victim",
            &format!("{transport}:{}:localhost/checkpoint-victim:latest", s(p)),
        );
    }
    dests
}

fn checkpoint_image_for_kubernetes_restore() {
    let fx = fixture("mt-pie");
    let base = scratch("container-images-checkpoint");
    let dests = checkpoint_images(
        &fx,
        &base,
        SPEC_DUMP,
        &["io.kubernetes.cri-o.annotations.checkpoint.name=victim-ctr"],
    );
    let pstree = fs::read(fx.images().join("pstree.img")).unwrap();
    for (p, transport) in &dests {
        let ar = ImageArchive::open(p, &Options::default()).unwrap();
        let info = &ar.images()[0];
        if *transport != "docker-archive" {
            // docker-archives carry no annotations.
            assert_eq!(
                info.checkpoint(),
                Some(CheckpointImage::Archive),
                "{transport}"
            );
        }
        let img = ar.select(&Selector::default()).unwrap();
        assert_eq!(img.info().layers.len(), 1);
        let v = LayerView::new(img.layers().unwrap(), &Options::default()).unwrap();
        assert!(
            view_file(&v, "checkpoint/pstree.img").unwrap() == pstree,
            "{transport}"
        );
        assert_eq!(
            view_file(&v, "/config.dump").unwrap(),
            CONFIG_DUMP.as_bytes()
        );
    }
}

/// `google.protobuf.Any`, as containerd stores the checkpoint's spec.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// What `ctr image export` writes for a checkpoint (`ctr containers
/// checkpoint --task --rw`) of a fixture, under `base`: an OCI layout
/// (`base/layout`) and a tar of it (`base/export.tar`), whose index.json
/// leads to an index of the checkpoint's blobs: criu.tar (the flat CRIU
/// images and runc's descriptors.json, uncompressed), the rw layer
/// (tar+gzip, holding tmp/state), the spec `spec` in a protobuf Any, the
/// options, and the base image's manifest.
pub struct ContainerdExport {
    /// The layout directory.
    pub layout: PathBuf,
    /// The tar of it.
    pub tar: PathBuf,
    /// The criu.tar blob.
    pub criu: Vec<u8>,
    /// The rw layer blob (gzip).
    pub rw: Vec<u8>,
}

/// Builds a [`ContainerdExport`] of `fx` under `base`.
pub fn containerd_export(fx: &Fixture, base: &Path, spec: &[u8]) -> ContainerdExport {
    let layout = base.join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let desc = |mt: &str, bytes: &[u8]| json!({"mediaType": mt, "digest": write_blob(&layout, bytes).to_string(), "size": bytes.len()});
    // criu.tar: the flat CRIU images and runc's descriptors.json.
    let mut criu = tar::Builder::new(Vec::new());
    let mut names: Vec<_> = fs::read_dir(fx.images())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for n in &names {
        tar_file(&mut criu, n, &fs::read(fx.images().join(n)).unwrap());
    }
    tar_file(
        &mut criu,
        "descriptors.json",
        br#"["/dev/null","pipe:[1]","pipe:[2]"]"#,
    );
    let criu = criu.into_inner().unwrap();
    let mut rw = tar::Builder::new(Vec::new());
    tar_file(&mut rw, "tmp/state", b"written by the container");
    let rw = gzip(&rw.into_inner().unwrap());
    let config = prost::Message::encode_to_vec(&Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
        value: spec.to_vec(),
    });
    // The base image: one layer, its manifest listed in the index too.
    let mut base_layer = tar::Builder::new(Vec::new());
    let exe = &fx.processes[0].exe;
    tar_file(
        &mut base_layer,
        exe.trim_start_matches('/'),
        &fs::read(fx.exe(&fx.processes[0])).unwrap(),
    );
    let base_layer = base_layer.into_inner().unwrap();
    let base_config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(&base_layer).to_string()]}});
    let base_manifest = json!({"schemaVersion": 2, "mediaType": media_type::OCI_MANIFEST,
        "config": desc(media_type::OCI_CONFIG, base_config.to_string().as_bytes()),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", &base_layer)]});
    let mut base_desc = desc(
        media_type::OCI_MANIFEST,
        base_manifest.to_string().as_bytes(),
    );
    base_desc["platform"] = json!({"os": "linux", "architecture": "amd64"});
    let index = json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [
            desc(media_type::CONTAINERD_CHECKPOINT, &criu),
            desc("application/vnd.oci.image.layer.v1.tar+gzip", &rw),
            desc(media_type::CONTAINERD_CHECKPOINT_CONFIG, &config),
            desc(media_type::CONTAINERD_CHECKPOINT_OPTIONS, b"\x08\x01"),
            desc(media_type::CONTAINERD_CHECKPOINT_RUNTIME_OPTIONS, b""),
            base_desc,
        ],
        "annotations": {"io.containerd.checkpoint.runtime": "io.containerd.runc.v2",
                        "io.containerd.checkpoint.snapshotter": "overlayfs"}});
    let mut top = desc(media_type::OCI_INDEX, index.to_string().as_bytes());
    top["annotations"] = json!({"org.opencontainers.image.ref.name": "checkpoint-victim:latest"});
    fs::write(
        layout.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [top]}).to_string(),
    )
    .unwrap();
    // A tar of the layout, as ctr writes it.
    let mut t = tar::Builder::new(Vec::new());
    t.append_dir_all(".", &layout).unwrap();
    let export = base.join("export.tar");
    fs::write(&export, t.into_inner().unwrap()).unwrap();

    ContainerdExport {
        layout,
        tar: export,
        criu,
        rw,
    }
}

fn containerd_checkpoint_image() {
    let fx = fixture("mt-pie");
    let base = scratch("container-images-containerd");
    let spec = br#"{"ociVersion":"1.1.0","process":{"args":["/srv/victim/victim"]}}"#;
    let ContainerdExport {
        tar: export, criu, ..
    } = containerd_export(&fx, &base, spec);
    let ar = ImageArchive::open(&export, &Options::default()).unwrap();
    assert_eq!(ar.format(), ArchiveFormat::OciArchive(Compression::None));
    let kinds: Vec<_> = ar
        .images()
        .iter()
        .map(|i| (i.kind, i.checkpoint()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ImageKind::Image, None),
            (ImageKind::BlobIndex, Some(CheckpointImage::Containerd))
        ]
    );
    // The base image is the index's, but not named after the checkpoint.
    assert!(ar.images()[0].names.is_empty());
    assert_eq!(ar.images()[0].parent, ar.images()[1].digest);
    let img = ar
        .select(&Selector {
            reference: Some("checkpoint-victim".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        img.info().annotations["io.containerd.checkpoint.runtime"],
        "io.containerd.runc.v2"
    );
    let criu_desc = img.descriptors_by_media_type(media_type::CONTAINERD_CHECKPOINT);
    assert_eq!(criu_desc.len(), 1);
    // In place, inside the export, checked against its digest.
    let blob = img.blob(criu_desc[0]).unwrap();
    let file = blob.file().unwrap().clone();
    assert_eq!(file.path, export);
    let mut members = tar::Archive::new(BlobData::File(file).open().unwrap());
    let mut found = false;
    for e in members.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap() == Path::new("pstree.img") {
            let mut got = Vec::new();
            e.read_to_end(&mut got).unwrap();
            assert_eq!(got, fs::read(fx.images().join("pstree.img")).unwrap());
            found = true;
        }
    }
    assert!(found, "no pstree.img in criu.tar");
    // Or read once as a stream, checked as it goes.
    let mut streamed = Vec::new();
    img.open_blob(criu_desc[0])
        .unwrap()
        .read_to_end(&mut streamed)
        .unwrap();
    assert_eq!(streamed, criu);
    // The spec, out of its protobuf Any.
    let cfg = img.descriptors_by_media_type(media_type::CONTAINERD_CHECKPOINT_CONFIG)[0];
    let any: Any = prost::Message::decode(&img.read_blob(cfg, 1 << 20).unwrap()[..]).unwrap();
    assert_eq!(any.value, spec);
    // The rw layer reads as a view.
    let rw_desc = img.descriptors_by_media_type("application/vnd.oci.image.layer.v1.tar+gzip")[0];
    let layer = criu2core::testkit::oci::Layer::new("rw", img.blob(rw_desc).unwrap());
    let v = LayerView::new(vec![layer], &Options::default()).unwrap();
    assert_eq!(
        view_file(&v, "/tmp/state").unwrap(),
        b"written by the container"
    );

    // A criu.tar whose bytes lie is refused when it is asked for.
    let pos = fs::read(&export)
        .unwrap()
        .windows(8)
        .position(|w| w == b"descript")
        .unwrap();
    let mut bytes = fs::read(&export).unwrap();
    bytes[pos] = b'D';
    let lying = base.join("lying.tar");
    fs::write(&lying, bytes).unwrap();
    let ar = ImageArchive::open(&lying, &Options::default()).unwrap();
    let img = ar
        .select(&Selector {
            reference: Some("checkpoint-victim".into()),
            ..Default::default()
        })
        .unwrap();
    let d = img.descriptors_by_media_type(media_type::CONTAINERD_CHECKPOINT)[0].clone();
    let err = img.blob(&d).unwrap_err().to_string();
    assert!(
        err.contains("digest mismatch") && err.contains(d.location()),
        "{err}"
    );
    let err = img
        .open_blob(&d)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("digest mismatch") && err.contains(d.location()),
        "{err}"
    );
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        layers_built_by_buildah_read_alike_through_every_transport
            needs [Need::Tool("buildah"), Need::Tool("skopeo")],
        checkpoint_image_for_kubernetes_restore needs [Need::Tool("buildah"), Need::Tool("skopeo")],
        containerd_checkpoint_image,
    ]
}
