//! Walking an image container to its images: an OCI layout's index.json
//! through indexes and manifests, and a docker-archive's manifest.json.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::archive::{
    clean_member, media_type, Descriptor, ImageInfo, ImageKind, Inner, Loc, Platform,
};
use super::digest::{Algorithm, Digest, Expect};
use super::{MAX_CONFIG_BYTES, MAX_DESCRIPTORS, MAX_INDEX_BYTES, MAX_INDEX_DEPTH, MAX_LAYERS};

#[derive(Clone, Deserialize)]
struct RawPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

impl RawPlatform {
    fn platform(self) -> Option<Platform> {
        (!self.architecture.is_empty() || !self.os.is_empty()).then(|| Platform {
            os: self.os,
            architecture: self.architecture,
            variant: self.variant.filter(|v| !v.is_empty()),
        })
    }
}

#[derive(Clone, Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

impl RawDescriptor {
    fn descriptor(self) -> Result<Descriptor> {
        let digest = Digest::parse(&self.digest)?;
        Ok(Descriptor {
            media_type: self.media_type.unwrap_or_default(),
            location: digest.blob_path(),
            digest: Some(digest),
            size: self.size,
            annotations: self.annotations.unwrap_or_default(),
            platform: self.platform.and_then(RawPlatform::platform),
        })
    }
}

/// An index or a manifest, told apart by content.
#[derive(Deserialize)]
struct RawNode {
    #[serde(default)]
    manifests: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Option<Vec<RawDescriptor>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
struct RawRootfs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(flatten)]
    platform: RawPlatform,
    #[serde(default)]
    rootfs: Option<RawRootfs>,
}

#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawLayout {
    #[serde(rename = "imageLayoutVersion")]
    version: String,
}

fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).with_context(|| format!("{what}: not what it should be"))
}

fn walkable(media_type: &str) -> bool {
    matches!(
        media_type,
        "" | media_type::OCI_INDEX
            | media_type::OCI_MANIFEST
            | media_type::DOCKER_MANIFEST_LIST
            | media_type::DOCKER_MANIFEST
    )
}

/// What descriptors pass on to what they lead to.
#[derive(Clone, Default)]
struct Inherit {
    names: Vec<String>,
    annotations: BTreeMap<String, String>,
    platform: Option<Platform>,
    parent: Option<Digest>,
}

impl Inherit {
    fn through(&self, d: &Descriptor) -> Inherit {
        let mut next = self.clone();
        for key in [
            "io.containerd.image.name",
            "org.opencontainers.image.ref.name",
        ] {
            if let Some(n) = d.annotations.get(key) {
                if !next.names.contains(n) {
                    next.names.push(n.clone());
                }
            }
        }
        next.annotations
            .extend(d.annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        if d.platform.is_some() {
            next.platform = d.platform.clone();
        }
        next
    }
}

/// Reads an OCI layout's index.json and everything it leads to.
pub(super) struct Walker<'a> {
    inner: &'a Inner,
    visited: usize,
    nodes: HashMap<Digest, Arc<RawNode>>,
    pub(super) images: Vec<ImageInfo>,
}

impl<'a> Walker<'a> {
    pub(super) fn new(inner: &'a Inner) -> Walker<'a> {
        Walker {
            inner,
            visited: 0,
            nodes: HashMap::new(),
            images: Vec::new(),
        }
    }
}

impl Walker<'_> {
    pub(super) fn index_json(&mut self) -> Result<()> {
        let label = self.inner.member_label(b"index.json");
        if let Some(b) = self
            .inner
            .read_small("oci-layout", &Expect::default(), MAX_INDEX_BYTES)?
        {
            let layout: RawLayout = parse_json(&b, &self.inner.member_label(b"oci-layout"))?;
            if !layout.version.starts_with("1.") {
                bail!(
                    "{}: image layout version {} (criu2core reads 1.x)",
                    self.inner.label,
                    layout.version.escape_debug()
                );
            }
        }
        let bytes = self
            .inner
            .read_small("index.json", &Expect::default(), MAX_INDEX_BYTES)?
            .with_context(|| format!("{label}: missing"))?;
        let node: RawNode = parse_json(&bytes, &label)?;
        let list = node
            .manifests
            .with_context(|| format!("{label}: no \"manifests\""))?;
        let top = Inherit {
            annotations: node.annotations.unwrap_or_default(),
            ..Default::default()
        };
        self.children(list, &top, 1, &mut Vec::new(), &label)?;
        Ok(())
    }

    /// Walks the descriptors of an index; gives back those that are
    /// plain blobs.
    fn children(
        &mut self,
        list: Vec<RawDescriptor>,
        from: &Inherit,
        depth: usize,
        stack: &mut Vec<Digest>,
        label: &str,
    ) -> Result<Vec<Descriptor>> {
        let mut walk_these = Vec::new();
        let mut blobs = Vec::new();
        for (i, raw) in list.into_iter().enumerate() {
            self.visited += 1;
            if self.visited > MAX_DESCRIPTORS {
                bail!("{label}: more than {MAX_DESCRIPTORS} descriptors in all");
            }
            let d = raw
                .descriptor()
                .with_context(|| format!("{label}: descriptor #{i}"))?;
            if walkable(&d.media_type) {
                walk_these.push(d);
            } else {
                blobs.push(d);
            }
        }
        // The manifests an index of blobs lists (a checkpoint's base
        // image) are images of their own, not named after it.
        let base = if blobs.is_empty() {
            from.clone()
        } else {
            Inherit {
                parent: from.parent.clone(),
                ..Default::default()
            }
        };
        for d in walk_these {
            self.node(&d, base.through(&d), depth, stack)?;
        }
        Ok(blobs)
    }

    /// Adds an image; one listed again (under another tag) only adds
    /// its names.
    fn add(&mut self, image: ImageInfo) {
        let same = self.images.iter_mut().find(|i| {
            i.digest == image.digest && i.platform == image.platform && i.parent == image.parent
        });
        match same {
            Some(i) => {
                for n in image.names {
                    if !i.names.contains(&n) {
                        i.names.push(n);
                    }
                }
            }
            None => self.images.push(image),
        }
    }

    fn read_node(&mut self, d: &Descriptor) -> Result<Option<Arc<RawNode>>> {
        let digest = d.digest.clone().context("descriptor without digest")?;
        if let Some(n) = self.nodes.get(&digest) {
            return Ok(Some(n.clone()));
        }
        let label = self.inner.member_label(d.location.as_bytes());
        let expect = Expect {
            digest: Some(digest.clone()),
            size: Some(d.size),
        };
        if d.size > MAX_INDEX_BYTES {
            bail!(
                "{label}: the descriptor says {} bytes, more than any index or manifest may have ({MAX_INDEX_BYTES})",
                d.size
            );
        }
        let Some(bytes) = self
            .inner
            .read_small(&d.location, &expect, MAX_INDEX_BYTES)?
        else {
            return Ok(None);
        };
        let node: Arc<RawNode> = Arc::new(parse_json(&bytes, &label)?);
        self.nodes.insert(digest, node.clone());
        Ok(Some(node))
    }

    fn node(
        &mut self,
        d: &Descriptor,
        inherit: Inherit,
        depth: usize,
        stack: &mut Vec<Digest>,
    ) -> Result<()> {
        let digest = d.digest.clone().context("descriptor without digest")?;
        let label = self.inner.member_label(d.location.as_bytes());
        if stack.contains(&digest) {
            let chain: Vec<String> = stack.iter().map(|d| d.to_string()).collect();
            bail!(
                "{}: index cycle: {} -> {digest}",
                self.inner.label,
                chain.join(" -> ")
            );
        }
        if depth > MAX_INDEX_DEPTH {
            bail!("{label}: indexes nested more than {MAX_INDEX_DEPTH} deep");
        }
        let Some(node) = self.read_node(d)? else {
            tracing::debug!(blob = %label, "manifest or index not in the archive; left out");
            return Ok(());
        };
        match &node.manifests {
            Some(_) => self.index(d, digest, &node, inherit, depth, stack),
            None => self.manifest(d, digest, &node, inherit, &label),
        }
    }

    /// An image index: its manifests, walked below it; the blobs it names
    /// directly (if any) as an image of their own.
    fn index(
        &mut self,
        d: &Descriptor,
        digest: Digest,
        node: &RawNode,
        inherit: Inherit,
        depth: usize,
        stack: &mut Vec<Digest>,
    ) -> Result<()> {
        let label = self.inner.member_label(d.location.as_bytes());
        let list = node.manifests.clone().unwrap_or_default();
        let mut below = inherit.clone();
        below.parent = Some(digest.clone());
        stack.push(digest.clone());
        let blobs = self.children(list, &below, depth + 1, stack, &label)?;
        stack.pop();
        if !blobs.is_empty() {
            self.add(ImageInfo {
                kind: ImageKind::BlobIndex,
                names: inherit.names,
                digest: Some(digest),
                media_type: d.media_type.clone(),
                config: None,
                layers: Vec::new(),
                blobs,
                annotations: node.annotations.clone().unwrap_or_default(),
                index_annotations: inherit.annotations,
                platform: inherit.platform,
                parent: inherit.parent,
                diff_ids: Vec::new(),
            });
        }
        Ok(())
    }

    /// A manifest's layer descriptors (at most [`MAX_LAYERS`]).
    fn layers(&mut self, node: &RawNode, label: &str) -> Result<Vec<Descriptor>> {
        let raw = node.layers.as_deref().unwrap_or_default();
        if raw.len() > MAX_LAYERS {
            bail!("{label}: {} layers (at most {MAX_LAYERS})", raw.len());
        }
        let mut layers = Vec::with_capacity(raw.len());
        for (i, l) in raw.iter().enumerate() {
            self.visited += 1;
            layers.push(
                l.clone()
                    .descriptor()
                    .with_context(|| format!("{label}: layer #{i}"))?,
            );
        }
        Ok(layers)
    }

    /// An image manifest: its config (platform, diff_ids) and layers.
    fn manifest(
        &mut self,
        d: &Descriptor,
        digest: Digest,
        node: &RawNode,
        inherit: Inherit,
        label: &str,
    ) -> Result<()> {
        let Some(config) = &node.config else {
            bail!("{label}: neither an image index nor a manifest");
        };
        let config = config
            .clone()
            .descriptor()
            .with_context(|| format!("{label}: config"))?;
        let layers = self.layers(node, label)?;
        let image_config = matches!(
            config.media_type.as_str(),
            media_type::OCI_CONFIG | media_type::DOCKER_CONFIG
        );
        let mut platform = inherit.platform.clone();
        let mut diff_ids = Vec::new();
        if image_config {
            let expect = Expect {
                digest: config.digest.clone(),
                size: Some(config.size),
            };
            let clabel = self.inner.member_label(config.location.as_bytes());
            let Some(bytes) = self
                .inner
                .read_small(&config.location, &expect, MAX_CONFIG_BYTES)?
            else {
                tracing::debug!(blob = %clabel, "config not in the archive; image left out");
                return Ok(());
            };
            let (p, ids) = read_config(&bytes, &clabel)?;
            platform = platform.or(p);
            diff_ids = ids;
        }
        let annotations = node.annotations.clone().unwrap_or_default();
        let artifact = !image_config
            || node.artifact_type.is_some()
            || annotations.contains_key("vnd.docker.reference.type")
            || inherit
                .annotations
                .contains_key("vnd.docker.reference.type")
            || platform.as_ref().is_some_and(|p| p.os == "unknown");
        self.add(ImageInfo {
            kind: if artifact {
                ImageKind::Artifact
            } else {
                ImageKind::Image
            },
            names: inherit.names,
            digest: Some(digest),
            media_type: d.media_type.clone(),
            config: Some(config),
            layers,
            blobs: Vec::new(),
            annotations,
            index_annotations: inherit.annotations,
            platform,
            parent: inherit.parent,
            diff_ids,
        });
        Ok(())
    }
}

/// The platform and diff_ids of an image config.
fn read_config(bytes: &[u8], label: &str) -> Result<(Option<Platform>, Vec<Digest>)> {
    let c: RawConfig = parse_json(bytes, label)?;
    let platform = c.platform.platform();
    let ids = c
        .rootfs
        .and_then(|r| r.diff_ids)
        .unwrap_or_default()
        .iter()
        .map(|s| Digest::parse(s))
        .collect::<crate::Result<Vec<_>>>()
        .with_context(|| format!("{label}: rootfs.diff_ids"))?;
    Ok((platform, ids))
}

/// The digest a docker-archive path carries: `blobs/<alg>/<hex>`, or
/// (`config` only) `<hex>.json`.
fn path_digest(path: &str, config: bool) -> Option<Digest> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["blobs", alg, hex] => Digest::parse(&format!("{alg}:{hex}")).ok(),
        [name] if config => Digest::parse(&format!("sha256:{}", name.strip_suffix(".json")?)).ok(),
        _ => None,
    }
}

impl Walker<'_> {
    /// Reads a docker-archive's manifest.json: images of their own, or
    /// (`oci`) names for the images index.json gave.
    pub(super) fn docker(&mut self, oci: bool) -> Result<()> {
        let label = self.inner.member_label(b"manifest.json");
        let bytes = self
            .inner
            .read_small("manifest.json", &Expect::default(), MAX_INDEX_BYTES)?
            .with_context(|| format!("{label}: missing"))?;
        let entries: Vec<DockerEntry> = parse_json(&bytes, &label)?;
        if entries.len() > MAX_DESCRIPTORS {
            bail!("{label}: more than {MAX_DESCRIPTORS} images");
        }
        for (i, e) in entries.into_iter().enumerate() {
            let what = format!("{label}: image #{i}");
            let config_path = String::from_utf8(
                clean_member(e.config.as_bytes()).with_context(|| what.clone())?,
            )?;
            let tags = e.repo_tags.unwrap_or_default();
            let config_digest = path_digest(&config_path, true);
            if oci {
                for img in &mut self.images {
                    let same = img.config.as_ref().and_then(|c| c.digest.as_ref())
                        == config_digest.as_ref();
                    if same && config_digest.is_some() {
                        for t in &tags {
                            if !img.names.contains(t) {
                                img.names.push(t.clone());
                            }
                        }
                    }
                }
                continue;
            }
            let clabel = self.inner.member_label(config_path.as_bytes());
            let expect = Expect {
                digest: config_digest.clone(),
                size: None,
            };
            let bytes = self
                .inner
                .read_small(&config_path, &expect, MAX_CONFIG_BYTES)?
                .with_context(|| format!("{clabel}: missing"))?;
            let (platform, diff_ids) = read_config(&bytes, &clabel)?;
            let digest = config_digest.unwrap_or_else(|| Digest::of(Algorithm::Sha256, &bytes));
            let paths = e.layers.unwrap_or_default();
            if paths.len() > MAX_LAYERS {
                bail!("{what}: {} layers (at most {MAX_LAYERS})", paths.len());
            }
            let mut layers = Vec::with_capacity(paths.len());
            for p in paths {
                let p =
                    String::from_utf8(clean_member(p.as_bytes()).with_context(|| what.clone())?)?;
                let size = match self.inner.locate(&p)? {
                    Some((_, Loc::Data(d))) => d.len(),
                    Some((_, Loc::Deferred { size, .. })) => size,
                    None => bail!("{}: layer missing", self.inner.member_label(p.as_bytes())),
                };
                layers.push(Descriptor {
                    media_type: media_type::DOCKER_LAYER.to_string(),
                    digest: path_digest(&p, false),
                    size,
                    annotations: BTreeMap::new(),
                    platform: None,
                    location: p,
                });
            }
            self.images.push(ImageInfo {
                kind: ImageKind::Image,
                names: tags,
                digest: None,
                media_type: String::new(),
                config: Some(Descriptor {
                    media_type: media_type::DOCKER_CONFIG.to_string(),
                    digest: Some(digest),
                    size: bytes.len() as u64,
                    annotations: BTreeMap::new(),
                    platform: None,
                    location: config_path,
                }),
                layers,
                blobs: Vec::new(),
                annotations: BTreeMap::new(),
                index_annotations: BTreeMap::new(),
                platform,
                parent: None,
                diff_ids,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_walk_refuses_cycles() {
        // Digests that are checked make a cycle impossible (each index
        // would hold the other's hash; archive.rs tests that made-up ones
        // are caught); the walk refuses one anyway, here past the check.
        let dir = tempfile::tempdir().unwrap();
        let inner = Inner::test_dir(dir.path());
        let mut w = Walker::new(&inner);
        let a = Digest::of(Algorithm::Sha256, b"a");
        let b = Digest::of(Algorithm::Sha256, b"b");
        let desc = |d: &Digest| json!({"mediaType": media_type::OCI_INDEX, "digest": d.to_string(), "size": 20});
        for (me, other) in [(&a, &b), (&b, &a)] {
            let node: RawNode =
                serde_json::from_value(json!({"manifests": [desc(other)]})).unwrap();
            w.nodes.insert(me.clone(), Arc::new(node));
        }
        let d = RawDescriptor::deserialize(desc(&a))
            .unwrap()
            .descriptor()
            .unwrap();
        let err = w
            .node(&d, Inherit::default(), 1, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("index cycle: {a} -> {b} -> {a}")),
            "{err}"
        );
    }
}
