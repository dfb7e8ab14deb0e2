//! Checkpoints that come as container images, and the images `--image`
//! names.
//!
//! A checkpoint image is found in an OCI layout (directory or archive) or a
//! docker-archive by content:
//!
//! - **containerd's** (`ctr containers checkpoint --task --rw` then `ctr
//!   image export`): an image index listing a blob of media type
//!   `application/vnd.containerd.container.criu.checkpoint.criu.tar` (an
//!   uncompressed tar of the flat CRIU images and runc's
//!   `descriptors.json`, written by containerd's `archive.Diff`: a sorted
//!   walk, so `core-*`, ..., `mm-*`, `pagemap-*`, `pages-*`, `pstree.img`
//!   in name order), the rw layer (`application/vnd.oci.image.layer.v1.tar+gzip`,
//!   or containerd's older `...container.rw.tar`), and
//!   `...checkpoint.config.v1+proto` (a protobuf `Any` whose value is the
//!   OCI runtime spec). The criu.tar is read as a tar of bare images and
//!   the rw layer as the rootfs diff.
//! - **for Kubernetes restore** (`podman container checkpoint
//!   --create-image`, CRI-O's buildah recipe, `checkpointctl build`): an
//!   image whose layer holds a checkpoint archive's tree at `/`
//!   (`checkpoint/`, `config.dump`, `spec.dump`, `rootfs-diff.tar`, ...),
//!   annotated `io.podman.annotations.checkpoint.*`,
//!   `io.kubernetes.cri-o.annotations.checkpoint.*` or
//!   `org.criu.checkpoint.*` (a docker-archive carries no annotations: its
//!   only image is taken, and its layer read as a checkpoint archive). The
//!   image's top layer is read as a checkpoint archive.
//!
//! Blobs are checked against their descriptors' digests and sizes. Where
//! they lie uncompressed (a layout directory, an uncompressed archive)
//! they are hashed once and then used in place, page data included;
//! inside a compressed archive they are read in one pass over it, as the
//! checkpoint archive they hold is read, unpacking only page data.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{archive_parts, InputKind, OpenOptions, Parts, MAX_CONTAINER_DUMP_BYTES};
use crate::archive::ArchiveStore;
use crate::container::ContainerInfo;
use crate::error::{fault, ErrorKind};
use crate::input::ImageRef;
use crate::model::Blob;
use crate::oci::{
    media_type, BlobData, CheckpointImage, Descriptor, ImageArchive, ImageInfo, ImageKind,
    SelectedImage, Selection, Selector,
};
use crate::warning::{Warning, WarningKind};

/// `google.protobuf.Any`, as containerd stores a checkpoint's spec.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Media types of a layer (a containerd checkpoint's rw layer has one).
fn is_layer(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
        || mt == media_type::CONTAINERD_RW
}

/// How images are read for a checkpoint opened with `opts`.
pub(super) fn options(opts: &OpenOptions) -> crate::oci::Options {
    let mut o = crate::oci::Options::default();
    o.spill.clone_from(&opts.spill);
    o.cancel = opts.cancel.clone();
    o
}

/// Whether the image layout or docker-archive directory `dir` holds a
/// checkpoint image: one its index marks as such, or a sole image whose
/// top layer's first members are a checkpoint archive's. An OCI layout
/// (it has `oci-layout`) that cannot be read is an error saying why;
/// any other unreadable directory is no checkpoint.
pub(super) fn detect_dir(dir: &Path) -> Result<Option<InputKind>> {
    match ImageArchive::open(dir, &crate::oci::Options::default()) {
        Ok(ar) => Ok(checkpoint_in(&ar)),
        Err(e) if dir.join("oci-layout").is_file() => Err(e.into()),
        Err(_) => Ok(None),
    }
}

/// [`detect_dir`] of a directory that opened.
fn checkpoint_in(ar: &ImageArchive) -> Option<InputKind> {
    let yes = Some(InputKind::Image(ar.format()));
    if ar.images().iter().any(|i| i.checkpoint().is_some()) {
        return yes;
    }
    let usable: Vec<&ImageInfo> = ar
        .images()
        .iter()
        .filter(|i| i.kind == ImageKind::Image)
        .collect();
    let [one] = usable.as_slice() else {
        return None;
    };
    let layer = one.layers.last()?;
    let data = ar.chosen(one).unchecked_blob(layer).ok()?;
    looks_like_checkpoint(&data).then_some(yes?)
}

/// Whether the first members of the tar (plain, gzip or zstd) in `data`
/// are a checkpoint archive's.
fn looks_like_checkpoint(data: &BlobData) -> bool {
    let Ok(raw) = data.open() else {
        return false;
    };
    let mut head = Vec::new();
    let Ok(_) = raw.take(8).read_to_end(&mut head) else {
        return false;
    };
    let Ok(compression) = crate::compress::layer_compression(&head, "layer") else {
        return false;
    };
    let Ok(raw) = data.open() else {
        return false;
    };
    let Ok(dec) = crate::compress::decoder(raw, compression, "layer") else {
        return false;
    };
    let mut tar = crate::tar::TarReader::new(crate::tar::Stream(dec), None);
    for _ in 0..256 {
        let Ok(Some(m)) = tar.next_member() else {
            return false;
        };
        let name = m.name.strip_prefix(b"./").unwrap_or(&m.name);
        if name.starts_with(b"checkpoint/") || name == b"pstree.img" || name == b"inventory.img" {
            return true;
        }
    }
    false
}

/// The checkpoint image of `ar`: the one its index marks as a checkpoint,
/// else its only image.
fn checkpoint_image<'a>(ar: &'a ImageArchive, path: &Path) -> Result<&'a ImageInfo> {
    let list = |v: &[&ImageInfo]| {
        v.iter()
            .map(|i| format!("\n  {}", i.describe()))
            .collect::<String>()
    };
    let marked: Vec<&ImageInfo> = ar
        .images()
        .iter()
        .filter(|i| i.checkpoint().is_some())
        .collect();
    match marked.as_slice() {
        [one] => return Ok(one),
        [] => {}
        many => bail!(
            "{}: holds {} checkpoint images; give one at a time:{}",
            path.display(),
            many.len(),
            list(many)
        ),
    }
    let usable: Vec<&ImageInfo> = ar
        .images()
        .iter()
        .filter(|i| i.kind == ImageKind::Image)
        .collect();
    match usable.as_slice() {
        [one] => Ok(one),
        other => Err(fault(
            ErrorKind::NotACheckpoint,
            format!(
                "{}: not a checkpoint: an image {} holding no checkpoint image{}",
                path.display(),
                ar.format().name(),
                list(other)
            ),
        )),
    }
}

/// Opens the checkpoint in the image container `ar` (at `path`).
pub(super) fn open(
    path: &Path,
    ar: &ImageArchive,
    opts: &OpenOptions,
    warnings: &mut Vec<Warning>,
) -> Result<Parts> {
    let info = checkpoint_image(ar, path)?;
    tracing::debug!(image = %info.describe(), "checkpoint image");
    match info.checkpoint() {
        Some(CheckpointImage::Containerd) => containerd(path, ar, info, opts, warnings),
        _ => restore_image(path, ar, info, opts, warnings),
    }
}

/// How messages name a blob of the container at `path`.
fn blob_label(path: &Path, d: &Descriptor) -> String {
    format!("{}:{}", path.display(), d.location())
}

/// A blob as checked bytes in a file, with the label messages give it.
fn checked_file(sel: &SelectedImage, d: &Descriptor, label: String) -> Result<BlobData> {
    Ok(match sel.blob(d)? {
        BlobData::File(b) => BlobData::File(Blob { label, ..b }),
        m => m,
    })
}

/// containerd's checkpoint: criu.tar as a tar of bare images, the rw layer
/// as the rootfs diff, the spec out of the config blob.
fn containerd(
    path: &Path,
    ar: &ImageArchive,
    info: &ImageInfo,
    opts: &OpenOptions,
    warnings: &mut Vec<Warning>,
) -> Result<Parts> {
    let sel = ar.chosen(info);
    let criu = *info
        .descriptors_by_media_type(media_type::CONTAINERD_CHECKPOINT)
        .first()
        .with_context(|| format!("{}: no criu.tar", path.display()))?;
    let rw = info.blobs.iter().find(|d| is_layer(&d.media_type));
    let aopts = opts.archive_options();
    let mut store = ArchiveStore::new(&blob_label(path, criu), &aopts);
    if ar.in_place() {
        match checked_file(&sel, criu, blob_label(path, criu))? {
            BlobData::File(b) => store.add_window(&b, &opts.cancel)?,
            m => store.add_stream(m.open()?)?,
        }
        if let Some(rw) = rw {
            match checked_file(&sel, rw, blob_label(path, rw))? {
                BlobData::File(b) => store.set_diff(b)?,
                m => store.add_diff_stream(&blob_label(path, rw), &mut m.open()?, rw.size)?,
            }
        }
    } else {
        let wanted: Vec<&Descriptor> = std::iter::once(criu).chain(rw).collect();
        ar.stream_blobs(&wanted, &mut |d, r| {
            let mut r = opts.cancel.reader(r);
            if d == criu {
                store.add_stream(&mut r)
            } else {
                store.add_diff_stream(&blob_label(path, d), &mut r, d.size)
            }
        })?;
    }
    let store = store.finish()?;
    let spec = match info
        .descriptors_by_media_type(media_type::CONTAINERD_CHECKPOINT_CONFIG)
        .first()
    {
        None => None,
        Some(d) => {
            let any = sel
                .read_blob(d, MAX_CONTAINER_DUMP_BYTES)
                .map_err(anyhow::Error::new)
                .and_then(|b| {
                    <Any as prost::Message>::decode(&b[..])
                        .with_context(|| format!("{}: not a protobuf Any", blob_label(path, d)))
                });
            match any {
                Ok(a) => Some(a.value),
                Err(e) => {
                    warnings.push(
                        Warning::new(
                            WarningKind::unread(&e),
                            format!("{e:#}; the container's spec is not used"),
                        )
                        .about(blob_label(path, d)),
                    );
                    None
                }
            }
        }
    };
    let mut parts = archive_parts(store, warnings);
    parts.container = Some(ContainerInfo::from_containerd_image(info, spec.as_deref()));
    Ok(parts)
}

/// A checkpoint image for Kubernetes restore: its top layer is a
/// checkpoint archive.
fn restore_image(
    path: &Path,
    ar: &ImageArchive,
    info: &ImageInfo,
    opts: &OpenOptions,
    warnings: &mut Vec<Warning>,
) -> Result<Parts> {
    let sel = ar.chosen(info);
    let layer = info
        .layers
        .last()
        .with_context(|| format!("{}: the image has no layer", path.display()))?;
    let label = blob_label(path, layer);
    let aopts = opts.archive_options();
    let store = if ar.in_place() {
        match checked_file(&sel, layer, label.clone())? {
            BlobData::File(b) => ArchiveStore::open_window(&b, &aopts)?,
            m => ArchiveStore::open_stream(&label, m.open()?, &aopts)?,
        }
    } else {
        let mut store = ArchiveStore::new(&label, &aopts);
        ar.stream_blobs(&[layer], &mut |_, r| {
            store.add_stream(opts.cancel.reader(r))
        })?;
        store.finish()?
    };
    let mut parts = archive_parts(store, warnings);
    parts.container = Some(ContainerInfo::with_image_annotations(
        parts.container.take(),
        info,
    ));
    Ok(parts)
}

/// The image `--image` used, as convert reports it and inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageUse {
    /// The layout directory or archive given.
    pub path: String,
    /// The chosen image's names.
    pub names: Vec<String>,
    /// Its manifest's digest.
    pub digest: Option<String>,
    /// How it was chosen: `reference` (the one asked for), `checkpoint`
    /// (the one the checkpoint names), `only` (the only one there).
    pub chosen_by: String,
    /// What the checkpoint names its image (config.dump's
    /// `rootfsImageName`, `rootfsImageRef`, ...).
    pub checkpoint_names: Vec<String>,
    /// Whether it is the image the checkpoint names; `None` where the
    /// checkpoint names none.
    pub matches: Option<bool>,
}

impl ImageUse {
    /// One line for people (escape it before a terminal): which image,
    /// and whether it is the checkpoint's.
    pub fn describe(&self) -> String {
        let names = if self.names.is_empty() {
            "(no name)".to_string()
        } else {
            self.names.join(", ")
        };
        let digest = self
            .digest
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        let named = self.checkpoint_names.join(", ");
        let verdict = match self.matches {
            Some(true) => format!("the image the checkpoint names ({named})"),
            Some(false) => format!("NOT the image the checkpoint names ({named})"),
            None => "the checkpoint names no image".to_string(),
        };
        format!(
            "image {}: {names}{digest} (chosen: {}); {verdict}",
            self.path, self.chosen_by
        )
    }
}

/// A reference as `--image FILE:REF` gives it: a bare tag (`FILE:1.0`)
/// names the one image with that tag.
fn reference(ar: &ImageArchive, r: &str) -> String {
    if r.contains(['/', ':', '@']) || ar.images().iter().any(|i| i.matches(r)) {
        return r.to_string();
    }
    let tagged: Vec<&String> = ar
        .images()
        .iter()
        .flat_map(|i| &i.names)
        .filter(|n| {
            n.rsplit_once(':')
                .is_some_and(|(repo, t)| t == r && !repo.is_empty())
        })
        .collect();
    match tagged.as_slice() {
        [one] => (*one).clone(),
        _ => r.to_string(),
    }
}

/// Chooses the image of `ar` that `img` asks for, else the one `hints`
/// (what the checkpoint names) name, else its only one; `copy` copies
/// its blobs out of a compressed archive, to read its layers.
pub(super) fn choose(
    ar: &ImageArchive,
    img: &ImageRef,
    hints: &[String],
    copy: bool,
) -> Result<(SelectedImage, ImageUse)> {
    let sel = Selector {
        reference: img.reference.as_deref().map(|r| reference(ar, r)),
        hints: hints.to_vec(),
        ..Default::default()
    };
    let s = ar.select_with(&sel, copy)?;
    let info = s.info();
    let used = ImageUse {
        path: img.path.display().to_string(),
        names: info.names.clone(),
        digest: info
            .digest
            .as_ref()
            .or(info.config.as_ref().and_then(|c| c.digest.as_ref()))
            .map(|d| d.to_string()),
        chosen_by: match s.selection() {
            Selection::Reference(_) => "reference",
            Selection::Hint(_) => "checkpoint",
            _ => "only",
        }
        .to_string(),
        checkpoint_names: hints.to_vec(),
        matches: (!hints.is_empty()).then(|| s.hint_match().is_some()),
    };
    Ok((s, used))
}
