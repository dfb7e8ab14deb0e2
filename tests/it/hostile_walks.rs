//! Hostile images, roots and listings that cost work rather than bytes:
//! an OCI layout whose walk would copy its annotations for every image,
//! paths whose resolution would take hours, keys of object listings.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::hostile::run_measured;
use libtest_mimic::Trial;
use serde_json::{json, Value};

/// An OCI layout directory with one small image; gives its manifest's
/// descriptor.
fn layout_with_one_image(dir: &Path) -> Value {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let blob = |bytes: &[u8], media_type: &str| {
        let d = crate::container_images::write_blob(dir, bytes);
        json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
    };
    let layer = blob(b"", "application/vnd.oci.image.layer.v1.tar");
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}});
    let config = blob(
        config.to_string().as_bytes(),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]});
    blob(
        manifest.to_string().as_bytes(),
        "application/vnd.oci.image.manifest.v1+json",
    )
}

/// An index.json with a `big`-byte annotation of its own, listing
/// `manifest` `n` times, each for another platform and, if `annotated`,
/// with an annotation of its own (which makes a new map of everything
/// the entry inherits).
fn index_json(dir: &Path, manifest: &Value, n: usize, big: usize, annotated: bool) {
    let entries: Vec<Value> = (0..n)
        .map(|i| {
            let mut d = manifest.clone();
            d["platform"] = json!({"architecture": format!("arch{i}"), "os": "linux"});
            if annotated {
                d["annotations"] = json!({"entry": i.to_string()});
            }
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "manifests": entries,
        "annotations": {"big": "x".repeat(big)}});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

fn a_layout_that_lists_one_manifest_many_times_takes_little_memory() {
    let top = scratch("walk-annotations");
    let example = repo().join("gdb-fixtures/example.tar.zst");
    // Shared: 400 images each inheriting a 1 MiB annotation (400 MiB
    // when each kept its own copy).
    let shared = top.join("shared");
    let m = layout_with_one_image(&shared);
    index_json(&shared, &m, 400, 1 << 20, false);
    let run = run_measured(
        &[
            "inspect".as_ref(),
            example.as_os_str(),
            "--image".as_ref(),
            shared.as_os_str(),
        ],
        None,
    );
    assert!(
        !run.stderr().contains("MAX_WALK_BYTES"),
        "shared maps refused: {}",
        run.stderr()
    );
    assert!(run.rss_kb < 48 << 10, "peak RSS {} KiB", run.rss_kb);
    assert!(run.cpu < Duration::from_secs(20), "took {:?}", run.cpu);
    // Copied: each entry's own annotation makes a new 1 MiB map.
    let copied = top.join("copied");
    let m = layout_with_one_image(&copied);
    index_json(&copied, &m, 400, 1 << 20, true);
    let run = run_measured(
        &[
            "inspect".as_ref(),
            example.as_os_str(),
            "--image".as_ref(),
            copied.as_os_str(),
        ],
        None,
    );
    assert!(!run.ok(), "accepted: {}", run.stderr());
    for w in [
        "index.json",
        "more than 16777216 bytes in all (MAX_WALK_BYTES)",
    ] {
        assert!(
            run.stderr().contains(w),
            "does not say {w:?}: {}",
            run.stderr()
        );
    }
    assert!(run.rss_kb < 64 << 10, "peak RSS {} KiB", run.rss_kb);
    assert!(run.cpu < Duration::from_secs(20), "took {:?}", run.cpu);
}

/// A symbolic link at `name` pointing at itself, in a tar.
fn self_link(name: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    let base = Path::new(name).file_name().unwrap();
    b.append_link(&mut h, name, base).unwrap();
    b.into_inner().unwrap()
}

fn a_link_loop_at_a_mapped_path_is_a_warning() {
    let fx = fixture("mt-pie");
    let top = scratch("link-loop");
    // In the container's rootfs diff: the executable loops.
    let diff = self_link("srv/victim/victim");
    let ckpt = top.join("ckpt.tar");
    fs::write(
        &ckpt,
        podman_tar(&fx.images(), |b| tar_file(b, "rootfs-diff.tar", &diff)),
    )
    .unwrap();
    let out = top.join("out");
    let o = criu2core([
        "convert".as_ref(),
        ckpt.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("/srv/victim/victim: more than 40 symbolic links in")
            && err.contains("ckpt.tar")
            && err.contains("left out"),
        "{err}"
    );
    assert!(fs::read_dir(&out).unwrap().count() > 0, "no core");
    // Under --root: libc loops.
    let root = top.join("root");
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    fs::create_dir_all(&lib).unwrap();
    std::os::unix::fs::symlink("libc.so.6", lib.join("libc.so.6")).unwrap();
    let out = top.join("out-root");
    let o = criu2core([
        "convert".as_ref(),
        fx.images().as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--json".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("libc.so.6: more than 40 symbolic links under") && err.contains("root"),
        "{err}"
    );
    // In JSON: a link loop, about the path the process mapped.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_schema("convert.schema.json", &v);
    let w: Vec<_> = v["inputs"][0]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "link_loop")
        .collect();
    assert!(
        !w.is_empty()
            && w.iter().all(|w| w["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("/libc.so.6"))),
        "{v}"
    );
}

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    trials![
        a_layout_that_lists_one_manifest_many_times_takes_little_memory,
        a_link_loop_at_a_mapped_path_is_a_warning,
    ]
}
