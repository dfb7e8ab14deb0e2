//! Walking an image container to its images: an OCI layout's index.json
//! through indexes and manifests, and a docker-archive's manifest.json.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use super::archive::{
    clean_member, media_type, Annotations, Descriptor, ImageInfo, ImageKind, Inner, Loc, Platform,
};
use super::digest::{Algorithm, Digest, Expect};
use super::{
    MAX_CONFIG_BYTES, MAX_DESCRIPTORS, MAX_INDEX_BYTES, MAX_INDEX_DEPTH, MAX_LAYERS,
    MAX_WALK_BYTES, MAX_WALK_DIFF_IDS,
};
use crate::error::{fault, ErrorKind};

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
            annotations: Arc::new(self.annotations.unwrap_or_default()),
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

/// An index or a manifest as the walk keeps it: read once, its
/// descriptors made once and shared by every image that uses them.
struct Node {
    /// An index's descriptors (`None` for a manifest).
    manifests: Option<Vec<Descriptor>>,
    /// A manifest's config and layers.
    config: Option<Descriptor>,
    layers: Vec<Descriptor>,
    annotations: Annotations,
    artifact_type: bool,
}

impl Node {
    /// Makes the descriptors of `raw` (read from `label`).
    fn new(raw: RawNode, label: &str) -> Result<Node> {
        let descriptors = |list: Vec<RawDescriptor>, what: &str| {
            list.into_iter()
                .enumerate()
                .map(|(i, d)| {
                    d.descriptor()
                        .with_context(|| format!("{label}: {what} #{i}"))
                })
                .collect::<Result<Vec<_>>>()
        };
        let manifests = raw
            .manifests
            .map(|m| descriptors(m, "descriptor"))
            .transpose()?;
        let raw_layers = raw.layers.unwrap_or_default();
        if manifests.is_none() && raw_layers.len() > MAX_LAYERS {
            return Err(crate::error::fault(
                crate::ErrorKind::Limit,
                format!(
                    "{label}: {} layers (at most {MAX_LAYERS})",
                    raw_layers.len()
                ),
            ));
        }
        let (config, layers) = match (&manifests, raw.config) {
            (None, Some(c)) => (
                Some(c.descriptor().with_context(|| format!("{label}: config"))?),
                descriptors(raw_layers, "layer")?,
            ),
            _ => (None, Vec::new()),
        };
        Ok(Node {
            manifests,
            config,
            layers,
            annotations: Arc::new(raw.annotations.unwrap_or_default()),
            artifact_type: raw.artifact_type.is_some(),
        })
    }
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

/// Bytes of a map's keys and values.
fn map_bytes(m: &BTreeMap<String, String>) -> u64 {
    m.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// Bytes of a list of names.
fn names_bytes(names: &[String]) -> u64 {
    names.iter().map(|n| n.len() as u64).sum()
}

/// What descriptors pass on to what they lead to.
#[derive(Clone, Default)]
struct Inherit {
    names: Vec<String>,
    annotations: Annotations,
    platform: Option<Platform>,
    parent: Option<Digest>,
}

impl Inherit {
    /// What `d` passes on, and the bytes of names and annotations copied
    /// to make it (a descriptor without annotations copies no map).
    fn through(&self, d: &Descriptor) -> (Inherit, u64) {
        let mut next = self.clone();
        let mut copied = names_bytes(&next.names);
        for key in [
            "io.containerd.image.name",
            "org.opencontainers.image.ref.name",
        ] {
            if let Some(n) = d.annotations.get(key) {
                if !next.names.contains(n) {
                    copied += n.len() as u64;
                    next.names.push(n.clone());
                }
            }
        }
        if !d.annotations.is_empty() {
            let mut merged = (*self.annotations).clone();
            merged.extend(d.annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
            copied += map_bytes(&merged);
            next.annotations = Arc::new(merged);
        }
        if d.platform.is_some() {
            next.platform = d.platform.clone();
        }
        (next, copied)
    }
}

/// A config as the walk keeps it: its platform and diff_ids, shared.
type Config = (Option<Platform>, Arc<[Digest]>);

/// Reads an OCI layout's index.json and everything it leads to.
pub(super) struct Walker<'a> {
    inner: &'a Inner,
    /// Descriptors visited ([`MAX_DESCRIPTORS`]).
    visited: usize,
    /// Bytes of annotations and names copied ([`MAX_WALK_BYTES`]).
    held: u64,
    /// diff_ids of the configs read ([`MAX_WALK_DIFF_IDS`]).
    diff_ids: usize,
    nodes: HashMap<Digest, Arc<Node>>,
    configs: HashMap<Digest, Config>,
    pub(super) images: Vec<ImageInfo>,
}

impl<'a> Walker<'a> {
    pub(super) fn new(inner: &'a Inner) -> Walker<'a> {
        Walker {
            inner,
            visited: 0,
            held: 0,
            diff_ids: 0,
            nodes: HashMap::new(),
            configs: HashMap::new(),
            images: Vec::new(),
        }
    }

    /// Counts `n` more descriptors visited, read from `label`.
    fn visit(&mut self, n: usize, label: &str) -> Result<()> {
        self.visited = self.visited.saturating_add(n);
        if self.visited > MAX_DESCRIPTORS {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{label}: more than {MAX_DESCRIPTORS} descriptors in all (MAX_DESCRIPTORS)"
                ),
            ));
        }
        Ok(())
    }

    /// Counts `bytes` more of annotations and names held, made from `label`.
    fn hold(&mut self, bytes: u64, label: &str) -> Result<()> {
        self.held = self.held.saturating_add(bytes);
        if self.held > MAX_WALK_BYTES {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{label}: the images' annotations and names come to more than {MAX_WALK_BYTES} bytes in all (MAX_WALK_BYTES)"
                ),
            ));
        }
        Ok(())
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
        let node = Node::new(parse_json(&bytes, &label)?, &label)?;
        self.hold(map_bytes(&node.annotations), &label)?;
        let list = node
            .manifests
            .with_context(|| format!("{label}: no \"manifests\""))?;
        let top = Inherit {
            annotations: node.annotations,
            ..Default::default()
        };
        self.children(&list, &top, 1, &mut Vec::new(), &label)?;
        Ok(())
    }

    /// Walks the descriptors of an index; gives back those that are
    /// plain blobs.
    fn children(
        &mut self,
        list: &[Descriptor],
        from: &Inherit,
        depth: usize,
        stack: &mut Vec<Digest>,
        label: &str,
    ) -> Result<Vec<Descriptor>> {
        self.visit(list.len(), label)?;
        let (walk_these, blobs): (Vec<&Descriptor>, Vec<&Descriptor>) =
            list.iter().partition(|d| walkable(&d.media_type));
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
            let (next, copied) = base.through(d);
            self.hold(copied, label)?;
            self.node(d, next, depth, stack)?;
        }
        Ok(blobs.into_iter().cloned().collect())
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

    fn read_node(&mut self, d: &Descriptor) -> Result<Option<Arc<Node>>> {
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
            return Err(crate::error::fault(crate::ErrorKind::Limit, format!(
                "{label}: the descriptor says {} bytes, more than any index or manifest may have ({MAX_INDEX_BYTES})",
                d.size
            )));
        }
        let Some(bytes) = self
            .inner
            .read_small(&d.location, &expect, MAX_INDEX_BYTES)?
        else {
            return Ok(None);
        };
        let node = Node::new(parse_json(&bytes, &label)?, &label)?;
        let held = map_bytes(&node.annotations)
            + node
                .manifests
                .iter()
                .flatten()
                .chain(&node.layers)
                .chain(&node.config)
                .map(|d| map_bytes(&d.annotations))
                .sum::<u64>();
        self.hold(held, &label)?;
        let node = Arc::new(node);
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
            return Err(crate::error::fault(
                crate::ErrorKind::Limit,
                format!("{label}: indexes nested more than {MAX_INDEX_DEPTH} deep"),
            ));
        }
        let Some(node) = self.read_node(d)? else {
            tracing::debug!(blob = %label, "manifest or index not in the archive; left out");
            return Ok(());
        };
        match &node.manifests {
            Some(list) => self.index(d, digest, list, &node, inherit, depth, stack),
            None => self.manifest(d, digest, &node, inherit, &label),
        }
    }

    /// An image index: its manifests, walked below it; the blobs it names
    /// directly (if any) as an image of their own.
    #[allow(clippy::too_many_arguments)]
    fn index(
        &mut self,
        d: &Descriptor,
        digest: Digest,
        list: &[Descriptor],
        node: &Node,
        inherit: Inherit,
        depth: usize,
        stack: &mut Vec<Digest>,
    ) -> Result<()> {
        let label = self.inner.member_label(d.location.as_bytes());
        let mut below = inherit.clone();
        below.parent = Some(digest.clone());
        self.hold(names_bytes(&below.names), &label)?;
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
                annotations: node.annotations.clone(),
                index_annotations: inherit.annotations,
                platform: inherit.platform,
                parent: inherit.parent,
                diff_ids: Arc::from([]),
            });
        }
        Ok(())
    }

    /// The platform and diff_ids of the config `config` describes, read
    /// once for all the manifests that use it; `None` if it is not in
    /// the archive.
    fn config(&mut self, config: &Descriptor) -> Result<Option<Config>> {
        let digest = config.digest.clone().context("config without digest")?;
        if let Some(c) = self.configs.get(&digest) {
            return Ok(Some(c.clone()));
        }
        let expect = Expect {
            digest: Some(digest.clone()),
            size: Some(config.size),
        };
        let clabel = self.inner.member_label(config.location.as_bytes());
        let Some(bytes) = self
            .inner
            .read_small(&config.location, &expect, MAX_CONFIG_BYTES)?
        else {
            tracing::debug!(blob = %clabel, "config not in the archive; image left out");
            return Ok(None);
        };
        let c = self.read_config(&bytes, &clabel)?;
        self.configs.insert(digest, c.clone());
        Ok(Some(c))
    }

    /// The platform and diff_ids of an image config, counted against
    /// [`MAX_WALK_DIFF_IDS`].
    fn read_config(&mut self, bytes: &[u8], label: &str) -> Result<Config> {
        let c: RawConfig = parse_json(bytes, label)?;
        let platform = c.platform.platform();
        let ids = c.rootfs.and_then(|r| r.diff_ids).unwrap_or_default();
        if ids.len() > MAX_LAYERS {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{label}: rootfs.diff_ids lists {} layers (at most {MAX_LAYERS})",
                    ids.len()
                ),
            ));
        }
        self.diff_ids += ids.len();
        if self.diff_ids > MAX_WALK_DIFF_IDS {
            return Err(fault(
                ErrorKind::Limit,
                format!("{label}: more than {MAX_WALK_DIFF_IDS} diff_ids in all the configs (MAX_WALK_DIFF_IDS)"),
            ));
        }
        let ids = ids
            .iter()
            .map(|s| Digest::parse(s))
            .collect::<crate::Result<Arc<[_]>>>()
            .with_context(|| format!("{label}: rootfs.diff_ids"))?;
        Ok((platform, ids))
    }

    /// An image manifest: its config (platform, diff_ids) and layers.
    fn manifest(
        &mut self,
        d: &Descriptor,
        digest: Digest,
        node: &Node,
        inherit: Inherit,
        label: &str,
    ) -> Result<()> {
        let Some(config) = &node.config else {
            bail!("{label}: neither an image index nor a manifest");
        };
        self.visit(node.layers.len() + 1, label)?;
        let image_config = matches!(
            config.media_type.as_str(),
            media_type::OCI_CONFIG | media_type::DOCKER_CONFIG
        );
        let mut platform = inherit.platform.clone();
        let mut diff_ids: Arc<[Digest]> = Arc::from([]);
        if image_config {
            let Some((p, ids)) = self.config(config)? else {
                return Ok(());
            };
            platform = platform.or(p);
            diff_ids = ids;
        }
        let annotations = node.annotations.clone();
        let artifact = !image_config
            || node.artifact_type
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
            config: Some(config.clone()),
            layers: node.layers.clone(),
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
            return Err(fault(
                ErrorKind::Limit,
                format!("{label}: more than {MAX_DESCRIPTORS} images"),
            ));
        }
        for (i, e) in entries.into_iter().enumerate() {
            let what = format!("{label}: image #{i}");
            let config_path = String::from_utf8(
                clean_member(e.config.as_bytes()).with_context(|| what.clone())?,
            )?;
            let tags = e.repo_tags.unwrap_or_default();
            let config_digest = path_digest(&config_path, true);
            if oci {
                self.docker_names(config_digest.as_ref(), &tags, &label)?;
                continue;
            }
            self.hold(names_bytes(&tags), &label)?;
            let clabel = self.inner.member_label(config_path.as_bytes());
            let expect = Expect {
                digest: config_digest.clone(),
                size: None,
            };
            let bytes = self
                .inner
                .read_small(&config_path, &expect, MAX_CONFIG_BYTES)?
                .with_context(|| format!("{clabel}: missing"))?;
            let digest = config_digest.unwrap_or_else(|| Digest::of(Algorithm::Sha256, &bytes));
            let (platform, diff_ids) = match self.configs.get(&digest) {
                Some(c) => c.clone(),
                None => {
                    let c = self.read_config(&bytes, &clabel)?;
                    self.configs.insert(digest.clone(), c.clone());
                    c
                }
            };
            let paths = e.layers.unwrap_or_default();
            if paths.len() > MAX_LAYERS {
                return Err(crate::error::fault(
                    crate::ErrorKind::Limit,
                    format!("{what}: {} layers (at most {MAX_LAYERS})", paths.len()),
                ));
            }
            self.visit(paths.len() + 1, &label)?;
            let layers = self.docker_layers(paths, &what)?;
            self.images.push(ImageInfo {
                kind: ImageKind::Image,
                names: tags,
                digest: None,
                media_type: String::new(),
                config: Some(Descriptor {
                    media_type: media_type::DOCKER_CONFIG.to_string(),
                    digest: Some(digest),
                    size: bytes.len() as u64,
                    annotations: Annotations::default(),
                    platform: None,
                    location: config_path,
                }),
                layers,
                blobs: Vec::new(),
                annotations: Annotations::default(),
                index_annotations: Annotations::default(),
                platform,
                parent: None,
                diff_ids,
            });
        }
        Ok(())
    }

    /// Adds `tags` to the names of the images index.json gave whose
    /// config has `config_digest`.
    fn docker_names(
        &mut self,
        config_digest: Option<&Digest>,
        tags: &[String],
        label: &str,
    ) -> Result<()> {
        let Some(config_digest) = config_digest else {
            return Ok(());
        };
        let mut added = 0;
        for img in &mut self.images {
            if img.config.as_ref().and_then(|c| c.digest.as_ref()) == Some(config_digest) {
                for t in tags {
                    if !img.names.contains(t) {
                        added += t.len() as u64;
                        img.names.push(t.clone());
                    }
                }
            }
        }
        self.hold(added, label)
    }

    /// The layer descriptors of a docker-archive image, from their paths.
    fn docker_layers(&mut self, paths: Vec<String>, what: &str) -> Result<Vec<Descriptor>> {
        let mut layers = Vec::with_capacity(paths.len());
        for p in paths {
            let p =
                String::from_utf8(clean_member(p.as_bytes()).with_context(|| what.to_string())?)?;
            let size = match self.inner.locate(&p)? {
                Some((_, Loc::Data(d))) => d.len(),
                Some((_, Loc::Deferred { size, .. })) => size,
                None => bail!("{}: layer missing", self.inner.member_label(p.as_bytes())),
            };
            layers.push(Descriptor {
                media_type: media_type::DOCKER_LAYER.to_string(),
                digest: path_digest(&p, false),
                size,
                annotations: Annotations::default(),
                platform: None,
                location: p,
            });
        }
        Ok(layers)
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
            w.nodes
                .insert(me.clone(), Arc::new(Node::new(node, "x").unwrap()));
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
