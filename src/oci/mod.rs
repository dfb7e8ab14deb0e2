//! Container images: OCI image layouts (a directory, or a tar of one as
//! `buildah push oci-archive:` and `ctr image export` write), and
//! docker-archives (`docker save`, `podman save`), read without extracting
//! them, and the file view their layers make.
//!
//! - [`ImageArchive`] opens one of these by content, never by name, lists
//!   the images it holds and selects one ([`Selector`]). A
//!   [`SelectedImage`] gives its layers in order and its other
//!   descriptors by media type — where a containerd checkpoint image keeps
//!   its `criu.tar`, a Podman checkpoint image its checkpoint layer.
//! - [`LayerView`] applies a list of tar layers (an image's, then a
//!   checkpoint's `rootfs-diff.tar`) and Podman's `deleted.files`, resolves
//!   paths as a process inside saw them, and hands out the files' bytes
//!   as [`Blob`]s: in place where a layer is an uncompressed file, or
//!   copied out of a compressed layer in one streaming pass.
//!
//! # Reading an image layout
//!
//! `index.json` (at most `MAX_INDEX_BYTES`) is walked through nested image
//! indexes and manifests, by media type: an index (OCI, or Docker's
//! manifest list) is read and its descriptors walked; a manifest (OCI, or
//! Docker's schema 2) is an image, and so is an index that lists blobs
//! which are neither (a containerd checkpoint). A descriptor without a
//! media type, or one that lies about it, is classified by what the blob
//! holds (`manifests` makes an index, `config` a manifest). Walks go at
//! most `MAX_INDEX_DEPTH` deep and visit at most `MAX_DESCRIPTORS`
//! descriptors; an index that contains itself, directly or not, is an
//! error. Each index, manifest and config is read once and what it holds
//! is shared by every image that uses it; the annotations and names merged
//! or copied for them count against `MAX_WALK_BYTES`, configs' diff_ids
//! against `MAX_WALK_DIFF_IDS` (past either, [`ErrorKind::Limit`]).
//!
//! [`ErrorKind::Limit`]: crate::ErrorKind::Limit
//!
//! Blobs are only ever looked up as `blobs/<algorithm>/<hex>` from
//! a validated digest (sha256 or sha512): a descriptor naming anything
//! else is refused, so no descriptor reaches outside `blobs/`. Every blob
//! read is checked against its descriptor's size and digest (a mismatch
//! is an error naming the blob), each byte hashed once: JSON blobs
//! (indexes, manifests at most `MAX_INDEX_BYTES`, configs at most
//! `MAX_CONFIG_BYTES`) when they are read, layers while [`LayerView`]
//! indexes them (also against the config's `rootfs.diff_ids`), other
//! blobs by [`SelectedImage::blob`]. A manifest whose blob is absent (a
//! multi-platform index exported for one platform) is left out of the
//! list.
//!
//! A docker-archive's `manifest.json` (`[{"Config", "RepoTags",
//! "Layers"}]`, paths inside the archive) gives one image per entry, its
//! config checked against the digest its name carries (`<hex>.json`,
//! `blobs/sha256/<hex>`), its layers against the config's `diff_ids`.
//! Newer `docker save` writes an OCI layout too: then `index.json` is
//! walked and the `RepoTags` are added to the names of the image with the
//! same config.
//!
//! In an uncompressed tar, blobs are used where they lie. A gzip or zstd
//! compressed tar is read once to list it and keep the small members
//! (JSON); selecting an image reads it once more to copy that image's
//! blobs into a private temporary directory, at most the cap of
//! `Options::spill` in all (past it, [`ErrorKind::Limit`]); the image's
//! layers keep that directory while they, or a view made of them, are.
//! Symbolic and hard links between members (a docker-archive has them) are
//! followed inside the archive only; members with absolute paths or `..`
//! are refused.
//!
//! # Names
//!
//! An image's names come from the `org.opencontainers.image.ref.name` and
//! `io.containerd.image.name` annotations of the descriptors that lead to
//! it (through indexes that only list other indexes and manifests), or a
//! docker-archive's `RepoTags`. A reference matches a name when, after
//! normalising both, their repositories and tags are equal, where:
//! a first component with a `.` or `:`, or `localhost`, is a registry
//! (`index.docker.io` and `registry-1.docker.io` are `docker.io`); a
//! reference without a registry matches that repository in any registry
//! (`victim:1` matches `localhost/victim:1` and `docker.io/library/victim:1`,
//! as Podman names local images `localhost/...`); `library/` is implied
//! for one-component Docker Hub names; a missing tag is `latest`. A
//! reference with a digest (`NAME@sha256:...`, `sha256:...`, or the 64 hex
//! digits of an image ID as Podman's `rootfsImageRef` has it) matches the
//! image whose manifest or config has that digest, whatever the name.
//! Text equal to a name also matches it.
//!
//! # Layers
//!
//! Each layer is a tar, plain, gzip or zstd as its first bytes say
//! (whatever its media type claims). Its members are indexed in one pass
//! (path, type, size, link target, and the data offset), at most
//! `MAX_LAYER_MEMBERS` per layer, `MAX_VIEW_ENTRIES` in the view,
//! `MAX_LAYERS` layers, paths of at most `MAX_PATH_BYTES`. They are
//! applied as the OCI image spec says a changeset is: a `.wh.NAME` member
//! deletes `NAME` (and all under it) from lower layers, `.wh..wh..opq`
//! hides all that lower layers put in its directory, and neither touches
//! what its own layer holds; a member replaces what lower layers had at
//! its path (a directory over a directory merges). Parent directories of a
//! member resolve through the symbolic links of the view, as extracting
//! the layer would; resolving them costs at most `MAX_WALK_LOOKUPS`
//! lookups per view (none for a member that follows one of the same
//! directory), and a whiteout costs the paths it deletes. Paths asked of a
//! view once it is made (and of a root directory under it) resolve through
//! `Lookups` of the input's own, at most `MAX_RESOLVE_LOOKUPS`, each
//! link and directory once; a path through more than `MAX_LINKS` links
//! resolves to nothing, and the view says why
//! ([`LayerView::unresolved`]). Member paths
//! are only keys: `..` and `/` are clamped at the view's root, whiteouts
//! of `.` or `..` and other `.wh..wh.` names are ignored, and nothing is
//! ever written under a name from an image.
//!
//! [`Blob`]: crate::model::Blob

pub(crate) mod archive;
pub(crate) mod digest;
pub(crate) mod layers;
mod reference;
mod resolve;
mod walk;

use std::io::{self, Read};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::blobio::BlobReader;
pub use crate::compress::Compression;
use crate::model::Blob;
use crate::spill::SpillOptions;

// The facade: open an image archive, pick an image, view its files.
pub use archive::{
    ArchiveFormat, CheckpointImage, Descriptor, ImageArchive, ImageInfo, ImageKind, Platform,
    SelectedImage, Selection,
};
pub use digest::Digest;
pub use layers::{FileRef, LayerView};
pub use reference::Selector;
// The walk's and the resolver's internals.
pub(crate) use archive::media_type;
pub(crate) use layers::{parse_deleted_files, Layer, Recorded, Wanted};
#[cfg(test)]
pub(crate) use resolve::MAX_RESOLVE_LOOKUPS;
pub(crate) use resolve::{Lookup, Lookups, Resolver, Step, Tree};

/// Most bytes of `index.json`, `manifest.json`, an image index or a
/// manifest (registries refuse manifests over 4 MiB).
pub(crate) const MAX_INDEX_BYTES: u64 = 4 << 20;
/// Most bytes of an image config.
pub(crate) const MAX_CONFIG_BYTES: u64 = 16 << 20;
/// Most levels of indexes between `index.json` and a manifest.
pub(crate) const MAX_INDEX_DEPTH: usize = 16;
/// Most descriptors one walk of an image layout visits (each layer of
/// each image it finds counts).
pub(crate) const MAX_DESCRIPTORS: usize = 10_000;
/// Most bytes of annotations and image names one walk holds, all images
/// together: each map made by merging what a descriptor adds to what it
/// inherits counts whole, and so does each copy of a list of names (maps
/// themselves are shared, never copied).
pub(crate) const MAX_WALK_BYTES: u64 = 16 << 20;
/// Most `rootfs.diff_ids` one walk holds, all distinct configs together
/// (a config used by many images is read once and shared).
pub(crate) const MAX_WALK_DIFF_IDS: usize = 65_536;
/// Most layers of one image or view.
pub(crate) const MAX_LAYERS: usize = 256;
/// Most members of one layer.
pub(crate) const MAX_LAYER_MEMBERS: u32 = 1 << 20;
/// Most paths a layer view holds, all layers together.
pub(crate) const MAX_VIEW_ENTRIES: usize = 4 << 20;
/// Longest path or link target in a layer (Linux's PATH_MAX).
pub(crate) const MAX_PATH_BYTES: usize = 4096;
/// Most members of an image archive (a tar of a layout or a docker-archive).
pub(crate) const MAX_ARCHIVE_MEMBERS: usize = 100_000;
/// Most lookups a view may spend resolving its members' parent
/// directories, all layers together (a member costs one lookup per
/// component of its directory, none when it follows a member of the same
/// directory).
pub(crate) const MAX_WALK_LOOKUPS: u64 = 1 << 26;
/// Most symbolic links followed resolving one path (as the kernel).
pub(crate) const MAX_LINKS: usize = 40;

/// Members of a compressed image archive kept in memory up to this size
/// each (indexes, manifests and configs are far smaller)...
const SMALL_MEMBER: u64 = 1 << 20;
/// ...and this much in all.
const SMALL_TOTAL: u64 = 64 << 20;

/// Options for reading images.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Where blobs of compressed archives and files of compressed layers
    /// are copied, and how much (per archive and per view); the copies are
    /// removed when the archive or view is dropped.
    pub spill: SpillOptions,
    /// Stops reading archives and layers, and resolving paths, once set.
    pub cancel: crate::Cancel,
}

/// Private copies of members of compressed archives or layers, in a
/// temporary directory removed with it; `K` says which member a copy is.
struct Spill<K> {
    spill: Option<crate::spill::Spill>,
    copies: std::collections::HashMap<K, Blob>,
}

impl<K> Default for Spill<K> {
    fn default() -> Self {
        Spill {
            spill: None,
            copies: std::collections::HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq> Spill<K> {
    /// The spill, made on first use as `opts` say.
    fn spill(&mut self, opts: &Options) -> &mut crate::spill::Spill {
        self.spill
            .get_or_insert_with(|| crate::spill::Spill::new(&opts.spill))
    }

    /// The bytes copied so far.
    fn used(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.used())
    }

    /// Checks that copying until `need` bytes are copied in all stays
    /// within the cap ([`ErrorKind::Limit`] past it; `label` names the
    /// copy that would pass it).
    ///
    /// [`ErrorKind::Limit`]: crate::ErrorKind::Limit
    fn check(&mut self, opts: &Options, need: u64, label: &str) -> Result<()> {
        self.spill(opts).check(need, label)
    }

    /// Copies `data`, which must be `size` bytes, into a new file of the
    /// directory (made on first use in `opts.spill.dir`); `label` names
    /// the member in messages and in the blob.
    fn copy(
        &mut self,
        opts: &Options,
        key: K,
        label: String,
        size: u64,
        data: &mut impl Read,
    ) -> Result<Blob> {
        let blob = self.spill(opts).copy_out(data, size, &label)?;
        self.copies.insert(key, blob.clone());
        Ok(blob)
    }
}

/// Where a blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobData {
    /// A byte range of a file: in place in a layout or uncompressed tar,
    /// or a private copy.
    File(Blob),
    /// In memory (small members of a compressed archive).
    Memory(Arc<[u8]>),
}

impl BlobData {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            BlobData::File(b) => b.len,
            BlobData::Memory(m) => m.len() as u64,
        }
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte range, when the bytes are in a file.
    pub fn file(&self) -> Option<&Blob> {
        match self {
            BlobData::File(b) => Some(b),
            BlobData::Memory(_) => None,
        }
    }

    /// Reads the bytes from the start (unchecked).
    pub fn open(&self) -> crate::Result<Box<dyn Read + Send>> {
        (|| -> Result<Box<dyn Read + Send>> {
            Ok(match self {
                BlobData::File(b) => Box::new(
                    BlobReader::open(b).with_context(|| format!("{}: cannot open", b.label))?,
                ),
                BlobData::Memory(m) => Box::new(io::Cursor::new(m.clone())),
            })
        })()
        .map_err(crate::Error::new)
    }

    /// Up to `n` bytes from the start.
    fn head(&self, n: u64) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open()?.take(n).read_to_end(&mut v)?;
        Ok(v)
    }
}
