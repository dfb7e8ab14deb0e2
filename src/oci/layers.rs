//! The file view an ordered list of tar layers makes (see the module
//! documentation of [`crate::oci`] for the rules and limits).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::digest::{Digest, Expect, VerifyingReader};
use super::resolve::{
    clean, components, pop_component, push_component, walk_counted, Lookup, Lookups, Resolver,
    Step, Tree,
};
use super::{
    BlobData, Compression, Options, Spill, MAX_LAYERS, MAX_LAYER_MEMBERS, MAX_LINKS,
    MAX_PATH_BYTES, MAX_VIEW_ENTRIES, MAX_WALK_LOOKUPS,
};
use crate::blobio::BlobReader;
use crate::compress::{decoder, layer_compression};
use crate::error::{fault, ErrorKind};
use crate::model::Blob;
use crate::tar::{self, Kind, Seekable, Source, Stream, TarReader};

/// A path as bytes: `str`, `[u8]`, `OsStr`, `Path` and their owned forms
/// (paths from checkpoints need not be UTF-8).
pub trait PathBytes {
    /// The bytes of the path.
    fn path_bytes(&self) -> &[u8];
}

impl PathBytes for [u8] {
    fn path_bytes(&self) -> &[u8] {
        self
    }
}

impl PathBytes for Vec<u8> {
    fn path_bytes(&self) -> &[u8] {
        self
    }
}

impl PathBytes for str {
    fn path_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PathBytes for String {
    fn path_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PathBytes for std::ffi::OsStr {
    fn path_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PathBytes for std::ffi::OsString {
    fn path_bytes(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PathBytes for std::path::Path {
    fn path_bytes(&self) -> &[u8] {
        self.as_os_str().as_bytes()
    }
}

impl PathBytes for std::path::PathBuf {
    fn path_bytes(&self) -> &[u8] {
        self.as_os_str().as_bytes()
    }
}

/// The paths a view is asked for, and the directories above them: a layer
/// limited to these ([`Layer::only`]) keeps nothing else, so that a
/// layer of many files nobody asks for (a container's diff from a
/// hostile host) costs no memory.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    files: HashSet<Vec<u8>>,
    dirs: HashSet<Vec<u8>>,
}

impl Wanted {
    /// The paths (as a process saw them; cleaned as the view cleans
    /// member paths) and every directory above them.
    pub fn new<P: PathBytes + ?Sized>(paths: impl IntoIterator<Item = impl AsRef<P>>) -> Wanted {
        let mut w = Wanted::default();
        for p in paths {
            let Ok(key) = clean(p.as_ref().path_bytes()) else {
                continue;
            };
            let mut dir = key.clone();
            while !dir.is_empty() {
                pop_component(&mut dir);
                if !w.dirs.insert(dir.clone()) {
                    break;
                }
            }
            w.files.insert(key);
        }
        w
    }

    /// Whether `key` (a clean path) is one of the paths.
    pub fn is_file(&self, key: &[u8]) -> bool {
        self.files.contains(key)
    }

    /// Whether `key` is one of the paths or a directory above one.
    pub fn keeps(&self, key: &[u8]) -> bool {
        key.is_empty() || self.files.contains(key) || self.dirs.contains(key)
    }

    /// How many paths there are.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A layer read once as it streamed by (inside a compressed archive):
/// its members' headers and private copies of the files that were wanted,
/// by member index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorded {
    pub(crate) members: Vec<tar::Member>,
    pub(crate) copies: HashMap<u32, Blob>,
}

/// One layer: a tar, plain or compressed, with what its bytes must be.
#[derive(Debug, Clone)]
pub struct Layer {
    label: String,
    data: BlobData,
    expect: Expect,
    diff_id: Option<Digest>,
    only: Option<Arc<Wanted>>,
    recorded: Option<Arc<Recorded>>,
    keep: KeepAlive,
}

/// What a layer's bytes lie in, kept while the layer, or a view made of
/// it, is: the image archive whose temporary directory holds the copies
/// of its compressed blobs.
#[derive(Clone, Default)]
pub(super) struct KeepAlive(Option<Arc<dyn std::any::Any + Send + Sync>>);

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "kept" } else { "none" })
    }
}

impl Layer {
    /// A layer whose bytes are `data`; `label` names it in messages.
    pub fn new(label: impl Into<String>, data: BlobData) -> Layer {
        Layer {
            label: label.into(),
            data,
            expect: Expect::default(),
            diff_id: None,
            only: None,
            recorded: None,
            keep: KeepAlive::default(),
        }
    }

    /// Keeps `owner` (what the layer's bytes lie in) while the layer, or a
    /// view made of it, is.
    pub(super) fn keeping(mut self, owner: Arc<dyn std::any::Any + Send + Sync>) -> Layer {
        self.keep = KeepAlive(Some(owner));
        self
    }

    /// A layer already read: its members and the copies of its wanted
    /// files (no other file of it can be read).
    pub(crate) fn recorded(label: impl Into<String>, recorded: Recorded) -> Layer {
        Layer {
            recorded: Some(Arc::new(recorded)),
            ..Layer::new(label, BlobData::Memory(Arc::from(&[][..])))
        }
    }

    /// Keeps of this layer only the paths of `wanted` and the directories
    /// above them (its whiteouts still delete from the layers below).
    pub fn only(mut self, wanted: Arc<Wanted>) -> Layer {
        self.only = Some(wanted);
        self
    }

    /// Requires the stored bytes to have this digest and/or size.
    pub fn expect(mut self, expect: Expect) -> Layer {
        self.expect = expect;
        self
    }

    /// Requires the uncompressed tar to have this digest (an image
    /// config's `rootfs.diff_ids` entry).
    pub fn diff_id(mut self, digest: Digest) -> Layer {
        self.diff_id = Some(digest);
        self
    }

    /// How messages name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where its bytes are.
    pub fn data(&self) -> &BlobData {
        &self.data
    }
}

/// Where a regular file's bytes are in its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Data {
    layer: u32,
    member: u32,
    offset: u64,
    size: u64,
    sparse: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File(Data),
    Symlink(Box<[u8]>),
    /// Present but not a regular file: a device, a fifo, a broken hard link.
    Other,
}

/// Whether `x` is `key` or one of its ancestors (the root is everyone's).
fn is_ancestor_or_self(x: &[u8], key: &[u8]) -> bool {
    x.is_empty() || key == x || (key.starts_with(x) && key.get(x.len()) == Some(&b'/'))
}

/// A regular file of a [`LayerView`], as [`LayerView::resolve`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    path: Box<[u8]>,
    data: Data,
}

impl FileRef {
    /// Its path in the view, all links resolved (relative to the root).
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.data.size
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.data.size == 0
    }

    /// The layer it comes from (0 is the lowest).
    pub fn layer(&self) -> usize {
        self.data.layer as usize
    }
}

struct LayerState {
    label: String,
    data: BlobData,
    compression: Compression,
    recorded: Option<Arc<Recorded>>,
    /// Keeps the layer's bytes where they lie.
    _keep: KeepAlive,
}

type Map = BTreeMap<Vec<u8>, Node>;

/// The files of a stack of layers, as a container sees them.
pub struct LayerView {
    layers: Vec<LayerState>,
    /// What the layers indexed so far make.
    entries: Map,
    /// What the layer being indexed puts over that. Kept apart so that
    /// whiteouts, which delete from lower layers only, visit nothing else:
    /// each lower path is visited once, when it is deleted.
    current: Map,
    /// The last parent directory resolved while indexing (raw, resolved),
    /// when no link was followed: members of one directory come together.
    parent: Option<(Vec<u8>, Vec<u8>)>,
    /// Lookups left for resolving members' parents.
    budget: u64,
    /// What the layer being indexed keeps, if not everything.
    only: Option<Arc<Wanted>>,
    opts: Options,
    spill: Mutex<Spill<(u32, u32)>>,
    /// Resolves paths once the view is made.
    resolver: Resolver,
}

impl std::fmt::Debug for LayerView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerView")
            .field("layers", &self.layers.len())
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl Tree for LayerView {
    fn lookup(&self, key: &[u8]) -> Lookup<'_> {
        if key.is_empty() {
            return Lookup::Dir;
        }
        match self.node(key) {
            Some(n) => match n {
                Node::Dir => Lookup::Dir,
                Node::File(_) => Lookup::File,
                Node::Symlink(t) => Lookup::Symlink(std::borrow::Cow::Borrowed(t)),
                Node::Other => Lookup::Other,
            },
            // A directory no member names, made for what is under it.
            None if self.has_children(key) => Lookup::Dir,
            None => Lookup::Missing,
        }
    }
}

/// The keys under `key`: from `key/` up to (not including) `key0`.
fn under(key: &[u8]) -> (Vec<u8>, Vec<u8>) {
    ([key, b"/"].concat(), [key, b"0"].concat())
}

/// Removes `key`'s descendants from `map` (everything for the root);
/// costs what it removes.
fn remove_under(map: &mut Map, key: &[u8]) {
    if key.is_empty() {
        map.clear();
        return;
    }
    let (lo, hi) = under(key);
    let doomed: Vec<Vec<u8>> = map.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in doomed {
        map.remove(&k);
    }
}

impl LayerView {
    /// Indexes `layers`, lowest first, each in one pass that also checks
    /// its digest, size and diff_id; `opts` bounds what
    /// [`materialize`](Self::materialize) copies.
    pub fn new(layers: Vec<Layer>, opts: &Options) -> crate::Result<LayerView> {
        (|| -> Result<LayerView> {
            if layers.len() > MAX_LAYERS {
                return Err(crate::error::fault(
                    crate::ErrorKind::Limit,
                    format!("{} layers (at most {MAX_LAYERS})", layers.len()),
                ));
            }
            let mut view = LayerView {
                layers: Vec::with_capacity(layers.len()),
                entries: BTreeMap::new(),
                current: BTreeMap::new(),
                parent: None,
                budget: MAX_WALK_LOOKUPS,
                only: None,
                opts: opts.clone(),
                spill: Mutex::new(Spill::default()),
                resolver: Resolver::new(Lookups::new(&opts.cancel)),
            };
            for (i, layer) in layers.into_iter().enumerate() {
                view.add_layer(i as u32, layer)?;
            }
            Ok(view)
        })()
        .map_err(crate::Error::new)
    }

    fn add_layer(&mut self, i: u32, layer: Layer) -> Result<()> {
        let what = layer.label.clone();
        self.only = layer.only.clone();
        if let Some(rec) = &layer.recorded {
            for (n, h) in rec.members.iter().enumerate() {
                if n >= MAX_LAYER_MEMBERS as usize {
                    return Err(crate::error::fault(
                        crate::ErrorKind::Limit,
                        format!("{what}: more than {MAX_LAYER_MEMBERS} members"),
                    ));
                }
                if n % 4096 == 0 {
                    self.opts.cancel.check()?;
                }
                self.apply(i, h).with_context(|| {
                    format!("{what}: member #{} {}", h.index, h.name.escape_ascii())
                })?;
            }
            self.end_layer();
            self.layers.push(LayerState {
                label: layer.label,
                data: layer.data,
                compression: Compression::None,
                recorded: Some(rec.clone()),
                _keep: layer.keep,
            });
            return Ok(());
        }
        let compression = layer_compression(&layer.data.head(8)?, &what)?;
        let unchecked = layer.expect.is_empty() && layer.diff_id.is_none();
        match (&layer.data, compression) {
            // Nothing to verify: seek over the data of a plain tar.
            (BlobData::File(b), Compression::None) if unchecked => {
                let sub = BlobReader::open(b).with_context(|| format!("{what}: cannot open"))?;
                let sub = self.opts.cancel.reader(sub);
                let tar = TarReader::new(Seekable(io::BufReader::new(sub)), Some(b.len));
                self.index(i, tar, &what)?;
            }
            _ => {
                // An uncompressed layer's diff_id is its digest: hash once.
                let diff_id = layer.diff_id.clone().filter(|d| {
                    compression != Compression::None || Some(d) != layer.expect.digest.as_ref()
                });
                let data = self.opts.cancel.reader(layer.data.open()?);
                let mut raw = VerifyingReader::new(data, &what, layer.expect.clone());
                {
                    let dec = decoder(&mut raw, compression, &what)?;
                    let mut plain = VerifyingReader::new(
                        dec,
                        format!("{what} (uncompressed, against the config's diff_id)"),
                        Expect {
                            digest: diff_id,
                            size: None,
                        },
                    );
                    self.index(i, TarReader::new(Stream(&mut plain), None), &what)?;
                    // What follows the end of the tar counts for the diff_id.
                    plain
                        .finish()
                        .with_context(|| format!("{what}: broken layer"))?;
                }
                raw.finish()
                    .with_context(|| format!("{what}: broken layer"))?;
            }
        }
        tracing::debug!(layer = %what, ?compression, entries = self.entries.len(), "indexed layer");
        self.layers.push(LayerState {
            label: layer.label,
            data: layer.data,
            compression,
            recorded: None,
            _keep: layer.keep,
        });
        Ok(())
    }

    fn index<S: Source>(&mut self, i: u32, mut tar: TarReader<S>, what: &str) -> Result<()> {
        while let Some(h) = tar
            .next_member()
            .with_context(|| format!("{what}: broken tar"))?
        {
            if h.index >= MAX_LAYER_MEMBERS as usize {
                return Err(crate::error::fault(
                    crate::ErrorKind::Limit,
                    format!("{what}: more than {MAX_LAYER_MEMBERS} members"),
                ));
            }
            self.apply(i, &h).with_context(|| {
                format!("{what}: member #{} {}", h.index, h.name.escape_ascii())
            })?;
        }
        self.end_layer();
        Ok(())
    }

    /// Puts what the layer just indexed over the layers below it.
    fn end_layer(&mut self) {
        let layer = std::mem::take(&mut self.current);
        self.entries.extend(layer);
        self.parent = None;
        self.only = None;
    }

    fn apply(&mut self, i: u32, h: &tar::Member) -> Result<()> {
        let path = clean(&h.name)?;
        if path.is_empty() {
            return Ok(());
        }
        let (parent, base) = match path.iter().rposition(|&b| b == b'/') {
            Some(p) => (&path[..p], &path[p + 1..]),
            None => (&path[..0], &path[..]),
        };
        if let Some(target) = base.strip_prefix(b".wh.") {
            // A whiteout under something that is not a directory has
            // nothing to delete.
            let Some(dir) = self.parent_dir(parent)? else {
                return Ok(());
            };
            if target == b".wh..opq" {
                self.touch(&dir);
                remove_under(&mut self.entries, &dir);
            } else if !(target.is_empty()
                || target == b"."
                || target == b".."
                || target.starts_with(b".wh."))
            {
                let mut key = dir;
                push_component(&mut key, target);
                self.touch(&key);
                self.entries.remove(&key);
                remove_under(&mut self.entries, &key);
            }
            return Ok(());
        }
        let mut key = self
            .parent_dir(parent)?
            .context("a parent directory is not a directory in the view")?;
        push_component(&mut key, base);
        if self.only.as_ref().is_some_and(|w| !w.keeps(&key)) {
            return Ok(());
        }
        let node = match h.kind {
            Kind::Dir => Node::Dir,
            Kind::File | Kind::Sparse { .. } => Node::File(Data {
                layer: i,
                // Below MAX_LAYER_MEMBERS, checked by the caller.
                member: h.index as u32,
                offset: h.data_offset,
                size: h.size,
                sparse: matches!(h.kind, Kind::Sparse { .. }),
            }),
            Kind::Symlink => {
                if h.link.len() > MAX_PATH_BYTES || h.link.contains(&0) {
                    bail!("bad symbolic link target");
                }
                Node::Symlink(h.link.clone().into())
            }
            // A hard link shares what its target is (link(2) does not
            // follow a last symbolic link); a link to nothing is a file
            // that cannot be read, never a way to what lies below.
            Kind::HardLink => match self.walk_budgeted(&clean(&h.link)?, false, false)? {
                Some((t, _)) => match self.node(&t) {
                    Some(n @ (Node::File(_) | Node::Symlink(_))) => n.clone(),
                    _ => Node::Other,
                },
                None => Node::Other,
            },
            Kind::Device | Kind::Fifo | Kind::Other(_) => Node::Other,
        };
        self.insert(key, node)
    }

    /// Where the directory `parent` (a cleaned member path) is, resolved
    /// through the view's links as extracting would; `None` if it is not
    /// a directory.
    fn parent_dir(&mut self, parent: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some((raw, key)) = &self.parent {
            if raw == parent {
                return Ok(Some(key.clone()));
            }
        }
        let Some((key, linked)) = self.walk_budgeted(parent, true, true)? else {
            return Ok(None);
        };
        if !matches!(self.lookup(&key), Lookup::Dir | Lookup::Missing) {
            return Ok(None);
        }
        // Without links, only the directories on the way were looked at:
        // the answer holds until one of them changes (see `touch`).
        self.parent = (!linked).then(|| (parent.to_vec(), key.clone()));
        Ok(Some(key))
    }

    /// [`walk_counted`] on the view's budget.
    fn walk_budgeted(
        &mut self,
        path: &[u8],
        follow_last: bool,
        create: bool,
    ) -> Result<Option<(Vec<u8>, bool)>> {
        let mut budget = self.budget;
        let cancel = self.opts.cancel.clone();
        let found = walk_counted(self, path, follow_last, create, &mut budget, &cancel);
        self.budget = budget;
        if found.is_err() && budget == 0 {
            return Err(fault(
                ErrorKind::Limit,
                format!("the layers' paths cost more than {MAX_WALK_LOOKUPS} lookups to resolve (MAX_WALK_LOOKUPS)"),
            ));
        }
        found
    }

    /// Notes a change at `key` (or under it).
    fn touch(&mut self, key: &[u8]) {
        if self
            .parent
            .as_ref()
            .is_some_and(|(_, k)| is_ancestor_or_self(key, k))
        {
            self.parent = None;
        }
    }

    /// Puts a member of the layer being indexed at `key`: a directory
    /// over a directory merges with it; anything else replaces what was
    /// there, and all under it.
    fn insert(&mut self, key: Vec<u8>, node: Node) -> Result<()> {
        let dir_over_dir = matches!(node, Node::Dir) && matches!(self.node(&key), Some(Node::Dir));
        if !dir_over_dir {
            self.touch(&key);
            self.entries.remove(&key);
            self.current.remove(&key);
            if !matches!(node, Node::Dir) {
                remove_under(&mut self.entries, &key);
                remove_under(&mut self.current, &key);
            }
        }
        if self.entries.len() + self.current.len() >= MAX_VIEW_ENTRIES {
            return Err(crate::error::fault(
                crate::ErrorKind::Limit,
                format!("more than {MAX_VIEW_ENTRIES} paths in the view"),
            ));
        }
        self.current.insert(key, node);
        Ok(())
    }

    /// What is at `key`: the current layer's, else the lower layers'.
    fn node(&self, key: &[u8]) -> Option<&Node> {
        self.current.get(key).or_else(|| self.entries.get(key))
    }

    fn has_children(&self, key: &[u8]) -> bool {
        let (lo, hi) = under(key);
        self.current.range(lo.clone()..hi.clone()).next().is_some()
            || self.entries.range(lo..hi).next().is_some()
    }

    /// Deletes `path` and all under it, as a container that removed it
    /// (Podman's `deleted.files`): parents resolve through the view's
    /// links, a last component that is a link is removed itself. Says
    /// whether anything was there.
    pub fn delete<P: PathBytes + ?Sized>(&mut self, path: &P) -> crate::Result<bool> {
        (|| -> Result<bool> {
            let path = clean(path.path_bytes())?;
            let Some(base) = components(&path).next_back() else {
                return Ok(false);
            };
            let parent = &path[..path.len() - base.len()];
            let Some((mut key, _)) = self.walk_budgeted(parent, true, false)? else {
                return Ok(false);
            };
            push_component(&mut key, base);
            let had = self.entries.remove(&key).is_some() | self.has_children(&key);
            remove_under(&mut self.entries, &key);
            self.resolver.forget();
            Ok(had)
        })()
        .map_err(crate::Error::new)
    }

    /// Which layers it is made of, for messages.
    fn describe(&self) -> String {
        match self.layers.as_slice() {
            [] => "an empty view".to_string(),
            [one] => one.label.clone(),
            [first, .., last] => format!(
                "the {} layers {} to {}",
                self.layers.len(),
                first.label,
                last.label
            ),
        }
    }

    /// Resolves `path` with the view's [`Resolver`]: where it leads, or
    /// `None` when it leads nowhere or through too many links (noted for
    /// [`unresolved`](Self::unresolved)).
    fn find(&self, path: &[u8], follow_last: bool) -> Result<Option<Vec<u8>>> {
        let why = || {
            format!(
                "{}: more than {MAX_LINKS} symbolic links in {}",
                path.escape_ascii(),
                self.describe()
            )
        };
        Ok(match self.resolver.resolve(self, path, follow_last, why)? {
            Step::At(key) => Some(key),
            Step::Missing | Step::Loop => None,
        })
    }

    /// Why `path` resolved to nothing, if it was for more than
    /// `MAX_LINKS` links (a loop) rather than nothing being there.
    pub fn unresolved<P: PathBytes + ?Sized>(&self, path: &P) -> Option<String> {
        self.resolver.unresolved(path.path_bytes())
    }

    /// The lookups this view's resolution spends (to share with a root
    /// directory under it).
    pub fn lookups(&self) -> Arc<Lookups> {
        self.resolver.lookups().clone()
    }

    /// Resolves `path` (as a process saw it, as bytes or any path type;
    /// relative paths start at the root) to a regular file of the view:
    /// symbolic links followed inside the view, `..` stopped at its root.
    /// `None` if there is no such file, something that is not a regular
    /// file, or more than `MAX_LINKS` links on the way (then
    /// [`unresolved`](Self::unresolved) says so). An error when resolving
    /// the view's paths has cost more than
    /// `MAX_RESOLVE_LOOKUPS`(super::MAX_RESOLVE_LOOKUPS) lookups
    /// ([`ErrorKind::Limit`](crate::ErrorKind::Limit)), or once cancelled.
    pub fn resolve<P: PathBytes + ?Sized>(&self, path: &P) -> crate::Result<Option<FileRef>> {
        (|| -> Result<Option<FileRef>> {
            let Some(key) = self.find(path.path_bytes(), true)? else {
                return Ok(None);
            };
            Ok(match self.node(&key) {
                Some(Node::File(d)) => Some(FileRef {
                    path: key.into(),
                    data: *d,
                }),
                _ => None,
            })
        })()
        .map_err(crate::Error::new)
    }

    /// The target of the symbolic link at `path` (its parents resolved, the
    /// link itself not followed), if there is one.
    pub fn read_link<P: PathBytes + ?Sized>(&self, path: &P) -> Option<Vec<u8>> {
        let key = self.find(path.path_bytes(), false).ok()??;
        match self.node(&key) {
            Some(Node::Symlink(t)) => Some(t.to_vec()),
            _ => None,
        }
    }

    /// The directory `path` resolves to in the view (relative, links
    /// followed), if it is one.
    pub fn resolve_dir<P: PathBytes + ?Sized>(&self, path: &P) -> crate::Result<Option<Vec<u8>>> {
        (|| -> Result<Option<Vec<u8>>> {
            let Some(key) = self.find(path.path_bytes(), true)? else {
                return Ok(None);
            };
            Ok(matches!(self.lookup(&key), Lookup::Dir).then_some(key))
        })()
        .map_err(crate::Error::new)
    }

    /// The names in the view's top directory that are symbolic links.
    pub fn top_links(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.entries.iter().filter_map(|(k, n)| match n {
            Node::Symlink(_) if !k.contains(&b'/') => Some(k.clone()),
            _ => None,
        })
    }

    /// Every regular file of the view, in path order.
    pub fn files(&self) -> impl Iterator<Item = FileRef> + '_ {
        self.entries.iter().filter_map(|(k, n)| match n {
            Node::File(d) => Some(FileRef {
                path: k.clone().into(),
                data: *d,
            }),
            _ => None,
        })
    }

    /// How many layers it has.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// The bytes of `files` (from this view), in the same order: in place
    /// where the layer is an uncompressed file, else copied, once, into a
    /// private temporary directory that lives as long as the view, in one
    /// streaming pass per layer. Fails naming the file when the copies
    /// would pass the cap `Options::spill` sets ([`crate::ErrorKind::Limit`]).
    pub fn materialize(&self, files: &[FileRef]) -> crate::Result<Vec<Blob>> {
        (|| -> Result<Vec<Blob>> {
            let mut out: Vec<Option<Blob>> = vec![None; files.len()];
            let mut wanted: BTreeMap<u32, BTreeMap<u32, &FileRef>> = BTreeMap::new();
            for (n, f) in files.iter().enumerate() {
                match self.in_place(f)? {
                    Some(b) => out[n] = Some(b),
                    None => {
                        wanted
                            .entry(f.data.layer)
                            .or_default()
                            .insert(f.data.member, f);
                    }
                }
            }
            let mut spill = self.spill.lock().unwrap_or_else(|e| e.into_inner());
            let mut need = spill.used();
            for (&layer, members) in &wanted {
                for (&member, f) in members {
                    if spill.copies.contains_key(&(layer, member)) {
                        continue;
                    }
                    need = need.saturating_add(f.data.size);
                    let label = format!(
                        "{}:{}",
                        self.layers[layer as usize].label,
                        f.path.escape_ascii()
                    );
                    spill.check(&self.opts, need, &label)?;
                }
            }
            for (&layer, members) in &wanted {
                self.copy_out(&mut spill, layer, members)?;
            }
            for (n, f) in files.iter().enumerate() {
                if out[n].is_none() {
                    out[n] = spill.copies.get(&(f.data.layer, f.data.member)).cloned();
                }
            }
            out.into_iter()
                .map(|b| b.context("a file was not copied"))
                .collect()
        })()
        .map_err(crate::Error::new)
    }

    /// File `f`'s bytes where they already lie: the copy kept when its
    /// layer streamed by, or its range of an uncompressed layer; `None`
    /// where it must be copied out of a compressed layer.
    fn in_place(&self, f: &FileRef) -> Result<Option<Blob>> {
        let l = self
            .layers
            .get(f.layer())
            .context("a file that is not from this view")?;
        let label = format!("{}:{}", l.label, f.path.escape_ascii());
        if f.data.sparse {
            bail!("{label}: a sparse file in a layer, which criu2core does not read");
        }
        if let Some(rec) = &l.recorded {
            let copy = rec
                .copies
                .get(&f.data.member)
                .with_context(|| format!("{label}: not kept when its layer streamed by"))?;
            return Ok(Some(Blob {
                label,
                ..copy.clone()
            }));
        }
        let (BlobData::File(b), Compression::None) = (&l.data, l.compression) else {
            return Ok(None);
        };
        if f.data
            .offset
            .checked_add(f.data.size)
            .is_none_or(|e| e > b.len)
        {
            bail!("{label}: not from this view");
        }
        Ok(Some(Blob {
            path: b.path.clone(),
            offset: b
                .offset
                .checked_add(f.data.offset)
                .with_context(|| format!("{label}: not from this view"))?,
            label,
            len: f.data.size,
            remote: b.remote.clone(),
        }))
    }

    /// One pass over a layer, copying the wanted members not copied yet.
    fn copy_out(
        &self,
        spill: &mut Spill<(u32, u32)>,
        layer: u32,
        members: &BTreeMap<u32, &FileRef>,
    ) -> Result<()> {
        let todo: BTreeMap<u32, &FileRef> = members
            .iter()
            .filter(|(&m, _)| !spill.copies.contains_key(&(layer, m)))
            .map(|(&m, &f)| (m, f))
            .collect();
        let Some(&last) = todo.keys().next_back() else {
            return Ok(());
        };
        let l = &self.layers[layer as usize];
        let data = self.opts.cancel.reader(l.data.open()?);
        let dec = decoder(data, l.compression, &l.label)?;
        let mut tar = TarReader::new(Stream(dec), None);
        let mut found = 0;
        while let Some(h) = tar
            .next_member()
            .with_context(|| format!("{}: broken tar", l.label))?
        {
            let Ok(index) = u32::try_from(h.index) else {
                break;
            };
            if index > last {
                break;
            }
            let Some(f) = todo.get(&index) else {
                continue;
            };
            let label = format!("{}:{}", l.label, f.path.escape_ascii());
            if h.data_offset != f.data.offset || h.size != f.data.size {
                bail!("{label}: the layer changed since it was indexed");
            }
            spill.copy(&self.opts, (layer, index), label, h.size, &mut tar)?;
            found += 1;
        }
        if found != todo.len() {
            bail!("{}: the layer changed since it was indexed", l.label);
        }
        Ok(())
    }
}

/// The paths of Podman's `deleted.files` (a JSON array of strings).
pub fn parse_deleted_files(bytes: &[u8]) -> crate::Result<Vec<String>> {
    serde_json::from_slice(bytes)
        .context("deleted.files: not a JSON array of paths")
        .map_err(crate::Error::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::SpillOptions;
    use crate::tar::tests::build;
    use std::io::{Read, Write};

    type Member<'a> = (&'a [u8], Kind, &'a [u8]);

    fn mem(label: &str, members: &[Member]) -> Layer {
        Layer::new(label, BlobData::Memory(build(members).into()))
    }

    fn view(layers: Vec<Layer>) -> LayerView {
        LayerView::new(layers, &Options::default()).unwrap()
    }

    #[test]
    fn parent_lookups_are_bounded() {
        // Members of two deep directories: listed directory by directory,
        // each directory is resolved once; alternating, every member
        // costs the whole depth, and the budget runs out.
        let deep = |c: char| (0..50).map(|i| format!("{c}{i}/")).collect::<String>();
        let names = |alternate: bool| -> Vec<Vec<u8>> {
            (0..2000)
                .map(|i| {
                    let dir = if alternate { i % 2 } else { i / 1000 };
                    format!("{}f{i}", deep(if dir == 0 { 'a' } else { 'b' })).into_bytes()
                })
                .collect()
        };
        for alternate in [false, true] {
            let names = names(alternate);
            let members: Vec<Member> = names.iter().map(|n| (&n[..], F, &b"x"[..])).collect();
            let mut v = LayerView {
                layers: Vec::new(),
                entries: BTreeMap::new(),
                current: BTreeMap::new(),
                parent: None,
                budget: 10_000,
                only: None,
                opts: Options::default(),
                spill: Mutex::new(Spill::default()),
                resolver: Resolver::new(Lookups::new(&Default::default())),
            };
            let got = v.add_layer(0, mem("deep", &members));
            if alternate {
                let err = format!("{:#}", got.unwrap_err());
                assert!(err.contains("(MAX_WALK_LOOKUPS)"), "{err}");
            } else {
                got.unwrap();
                assert_eq!(v.files().count(), 2000);
                assert!(v.budget > 9_000, "{} lookups", 10_000 - v.budget);
            }
        }
    }

    fn read(v: &LayerView, path: &str) -> Option<Vec<u8>> {
        let f = v.resolve(path).unwrap()?;
        let b = v.materialize(std::slice::from_ref(&f)).unwrap().remove(0);
        let mut s = Vec::new();
        BlobReader::open(&b).unwrap().read_to_end(&mut s).unwrap();
        Some(s)
    }

    const F: Kind = Kind::File;
    const D: Kind = Kind::Dir;
    const S: Kind = Kind::Symlink;
    const H: Kind = Kind::HardLink;

    #[test]
    fn whiteouts_and_opaque_directories() {
        let lower = mem(
            "lower",
            &[
                (b"etc/", D, b""),
                (b"etc/passwd", F, b"lower passwd"),
                (b"etc/gone", F, b"deleted"),
                (b"etc/dir/a", F, b"a"),
                (b"opq/old", F, b"old"),
                (b"opq/sub/old", F, b"old"),
                (b"keep/x", F, b"x"),
                (b"same", F, b"lower same"),
            ],
        );
        let upper = mem(
            "upper",
            &[
                (b"etc/passwd", F, b"upper passwd"),
                (b"etc/.wh.gone", F, b""),
                (b"etc/.wh.dir", F, b""),
                // A whiteout in the layer that also has the file: the file
                // stays, before or after the whiteout.
                (b"same", F, b"upper same"),
                (b".wh.same", F, b""),
                (b".wh.new", F, b""),
                (b"new", F, b"new"),
                (b"opq/", D, b""),
                (b"opq/.wh..wh..opq", F, b""),
                (b"opq/fresh", F, b"fresh"),
            ],
        );
        let v = view(vec![lower, upper]);
        assert_eq!(read(&v, "/etc/passwd").unwrap(), b"upper passwd");
        assert_eq!(read(&v, "etc/passwd").unwrap(), b"upper passwd");
        assert!(v.resolve("/etc/gone").unwrap().is_none());
        assert!(v.resolve("/etc/dir/a").unwrap().is_none());
        assert_eq!(read(&v, "/same").unwrap(), b"upper same");
        assert_eq!(read(&v, "/new").unwrap(), b"new");
        assert!(v.resolve("/opq/old").unwrap().is_none());
        assert!(v.resolve("/opq/sub/old").unwrap().is_none());
        assert_eq!(read(&v, "/opq/fresh").unwrap(), b"fresh");
        assert_eq!(read(&v, "/keep/x").unwrap(), b"x");
        assert_eq!(v.resolve("/etc/passwd").unwrap().unwrap().layer(), 1);
        // Whiteout markers are not files of the view.
        let names: Vec<Vec<u8>> = v.files().map(|f| f.path().to_vec()).collect();
        assert!(
            names.iter().all(|n| !n.windows(4).any(|w| w == b".wh.")),
            "{names:?}"
        );
        // A third layer brings a whited-out file back.
        let v = view(vec![
            mem("l0", &[(b"a/b", F, b"0")]),
            mem("l1", &[(b".wh.a", F, b"")]),
            mem("l2", &[(b"a/c", F, b"2")]),
        ]);
        assert!(v.resolve("a/b").unwrap().is_none());
        assert_eq!(read(&v, "a/c").unwrap(), b"2");
    }

    #[test]
    fn replacing_types() {
        let v = view(vec![
            mem("l0", &[(b"d/f", F, b"f"), (b"x", F, b"x"), (b"s", S, b"d")]),
            // A file over a directory hides what was in it; a directory
            // over a file replaces it; a directory over a link too.
            mem(
                "l1",
                &[
                    (b"d", F, b"now a file"),
                    (b"x/", D, b""),
                    (b"x/y", F, b"y"),
                    (b"s/", D, b""),
                ],
            ),
        ]);
        assert_eq!(read(&v, "d").unwrap(), b"now a file");
        assert!(v.resolve("d/f").unwrap().is_none());
        assert_eq!(read(&v, "x/y").unwrap(), b"y");
        assert!(v.resolve("s/f").unwrap().is_none());
    }

    #[test]
    fn hostile_names() {
        let v = view(vec![
            mem(
                "l0",
                &[
                    (b"etc/passwd", F, b"p"),
                    (b"a/b", F, b"b"),
                    (b"top", F, b"t"),
                ],
            ),
            mem(
                "l1",
                &[
                    // Whiteouts of `..` and `.` delete nothing.
                    (b"a/.wh...", F, b""),
                    (b"a/.wh..", F, b""),
                    (b".wh..", F, b""),
                    (b".wh.", F, b""),
                    (b"etc/.wh..wh.plnk", F, b""),
                    // `..` in member names stays inside the view.
                    (b"../../../escaped", F, b"e"),
                    (b"a/../../../etc/../top", F, b"new top"),
                ],
            ),
        ]);
        assert_eq!(read(&v, "/etc/passwd").unwrap(), b"p");
        assert_eq!(read(&v, "/a/b").unwrap(), b"b");
        assert_eq!(read(&v, "/escaped").unwrap(), b"e");
        assert_eq!(read(&v, "/top").unwrap(), b"new top");
        // A member under a file is an error naming it.
        let err = LayerView::new(
            vec![mem("l", &[(b"f", F, b""), (b"f/x", F, b"")])],
            &Options::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("l: member #1 f/x"), "{err:#}");
        // Member paths with NUL bytes or too long are refused.
        assert!(clean(b"a\0b").is_err());
        assert!(clean(&vec![b'a'; MAX_PATH_BYTES + 1]).is_err());
        assert_eq!(clean(b"/./a//b/../../../c/").unwrap(), b"c");
    }

    /// A chain of 38 links, each through 800 `d/..` pairs to the next,
    /// the last to `dir`, which holds `n` files: `l0/f<i>` costs 30,000
    /// lookups to resolve from scratch.
    type OwnedMember = (Vec<u8>, Kind, Vec<u8>);

    fn costly_chain(n: usize) -> (Vec<OwnedMember>, Vec<String>) {
        let mut m: Vec<OwnedMember> =
            vec![(b"d/".to_vec(), D, vec![]), (b"dir/".to_vec(), D, vec![])];
        for i in 0..38 {
            let next = if i == 37 {
                "dir".to_string()
            } else {
                format!("l{}", i + 1)
            };
            let target = format!("{}{next}", "d/../".repeat(800));
            m.push((format!("l{i}").into_bytes(), S, target.into_bytes()));
        }
        let names: Vec<String> = (0..n).map(|i| format!("/l0/f{i}")).collect();
        for i in 0..n {
            m.push((format!("dir/f{i}").into_bytes(), F, b"x".to_vec()));
        }
        (m, names)
    }

    #[test]
    fn a_costly_chain_of_links_is_followed_once() {
        let (members, names) = costly_chain(300);
        let members: Vec<Member> = members
            .iter()
            .map(|(p, k, d)| (&p[..], *k, &d[..]))
            .collect();
        let v = view(vec![mem("chain", &members)]);
        let start = std::time::Instant::now();
        for n in &names {
            assert!(v.resolve(n.as_str()).unwrap().is_some(), "{n}");
        }
        // 9 million lookups without remembering where links lead.
        let spent = crate::oci::MAX_RESOLVE_LOOKUPS - v.lookups().left();
        assert!(spent < 40_000, "{spent} lookups");
        assert!(start.elapsed() < std::time::Duration::from_secs(3));
        // Cancelled, it stops.
        let cancel = crate::Cancel::new();
        let opts = Options {
            cancel: cancel.clone(),
            ..Options::default()
        };
        let v = LayerView::new(vec![mem("chain", &members)], &opts).unwrap();
        cancel.cancel(2);
        let err = v.resolve("/l0/f1").unwrap_err();
        assert_eq!(err.kind(), &crate::ErrorKind::Cancelled(2));
    }

    #[test]
    fn symlinks_stay_inside() {
        let v = view(vec![mem(
            "l",
            &[
                (b"usr/lib/libc.so.6", F, b"libc"),
                (b"lib", S, b"usr/lib"),
                (b"abs", S, b"/usr/lib/libc.so.6"),
                (b"up", S, b"../../../../usr/lib/libc.so.6"),
                (b"rootup", S, b"/../../usr/lib"),
                (b"etc/shadow", S, b"../../../../../secret"),
                (b"etc/passwd", S, b"../../../../../etc/passwd"),
                (b"loop", S, b"loop"),
                (b"ping", S, b"pong"),
                (b"pong", S, b"/ping"),
                (b"empty", S, b""),
                (b"dirlink", S, b"usr/lib"),
                (b"hard", H, b"usr/lib/libc.so.6"),
                (b"hardlink-to-link", H, b"lib"),
                (b"hard-missing", H, b"nowhere"),
                (b"fifo", Kind::Fifo, b""),
            ],
        )]);
        for p in [
            "/lib/libc.so.6",
            "/abs",
            "/up",
            "rootup/libc.so.6",
            "/usr/../../lib/./libc.so.6",
            "hard",
            "hardlink-to-link/libc.so.6",
        ] {
            assert_eq!(read(&v, p).as_deref(), Some(&b"libc"[..]), "{p}");
        }
        assert_eq!(
            v.resolve("/lib/libc.so.6").unwrap().unwrap().path(),
            b"usr/lib/libc.so.6"
        );
        // A link out of the view leads to the view's own /secret, which
        // does not exist; one to the host's /etc/passwd leads to itself.
        assert!(v.resolve("/etc/shadow").unwrap().is_none());
        // A loop leads nowhere, and the view says why.
        for p in ["/loop", "/ping", "/etc/passwd"] {
            assert!(v.resolve(p).unwrap().is_none(), "{p}");
            let why = v.unresolved(p).unwrap();
            assert!(why.contains("more than 40 symbolic links in l"), "{why}");
        }
        assert_eq!(v.unresolved("/lib/libc.so.6"), None);
        for p in [
            "/empty",
            "/dirlink",
            "/usr",
            "/",
            "",
            "/hard-missing",
            "/fifo",
            "/usr/lib/libc.so.6/x",
        ] {
            assert!(v.resolve(p).unwrap().is_none(), "{p}");
        }
        // A member whose parent is a link lands where the link points, as
        // extracting the layer would put it.
        let v = view(vec![
            mem("l0", &[(b"usr/lib/", D, b""), (b"lib", S, b"/usr/lib")]),
            mem("l1", &[(b"lib/libnew.so", F, b"new")]),
        ]);
        assert_eq!(
            v.resolve("/usr/lib/libnew.so").unwrap().unwrap().path(),
            b"usr/lib/libnew.so"
        );
    }

    #[test]
    fn whiteouts_cost_what_they_delete() {
        // A layer that whites out the same directory 20,000 times over
        // 20,000 files of its own: each whiteout visits only what lower
        // layers have there (once), never the layer's own files.
        let names: Vec<Vec<u8>> = (0..20_000)
            .map(|i| format!("d/f{i}").into_bytes())
            .collect();
        let mut upper: Vec<Member> = names.iter().map(|n| (&n[..], F, &b"x"[..])).collect();
        upper.extend(std::iter::repeat_n((&b".wh.d"[..], F, &b""[..]), 20_000));
        upper.extend(std::iter::repeat_n(
            (&b"d/.wh..wh..opq"[..], F, &b""[..]),
            20_000,
        ));
        let start = std::time::Instant::now();
        let v = view(vec![mem("l0", &[(b"d/lower", F, b"l")]), mem("l1", &upper)]);
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
        assert_eq!(v.files().count(), 20_000);
        assert!(v.resolve("d/lower").unwrap().is_none());
    }

    #[test]
    fn damaged_layers_never_panic() {
        // Every byte of a small layer (long names, PAX, links, whiteouts)
        // changed in turn, plain and as gzip: errors or views, no panics.
        let long = [b"x/".repeat(60).as_slice(), b"f"].concat();
        let tar = build(&[
            (b"d/", D, b""),
            (b"d/f", F, b"data"),
            (&long, F, b"deep"),
            (b"d/.wh.g", F, b""),
            (b"d/.wh..wh..opq", F, b""),
            (b"s", S, &[b"../".repeat(50).as_slice(), b"d"].concat()),
            (b"h", H, b"d/f"),
        ]);
        let mut x: u32 = 7;
        for (i, _) in tar.iter().enumerate().step_by(3) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let mut bad = tar.clone();
            bad[i] ^= (x >> 24) as u8 | 1;
            for bytes in [bad.clone(), gzip(&bad)] {
                let layers = vec![
                    mem("l0", &[(b"d/g", F, b"g")]),
                    Layer::new("bad", BlobData::Memory(bytes.into())),
                ];
                if let Ok(v) = LayerView::new(layers, &Options::default()) {
                    for f in v.files().collect::<Vec<_>>() {
                        let _ = v.materialize(&[f]);
                    }
                    let _ = v.resolve("s/f");
                }
            }
        }
    }

    #[test]
    fn paths_are_bytes() {
        let v = view(vec![mem(
            "l",
            &[(b"dir/\xff\xfe", F, b"latin"), (b"l\x80", S, b"dir")],
        )]);
        let os = std::ffi::OsStr::from_bytes(b"/l\x80/\xff\xfe");
        for f in [
            v.resolve(&b"/dir/\xff\xfe"[..]).unwrap(),
            v.resolve(os).unwrap(),
            v.resolve(std::path::Path::new(os)).unwrap(),
        ] {
            assert_eq!(f.unwrap().path(), b"dir/\xff\xfe");
        }
        // Messages show such names escaped.
        let err = LayerView::new(
            vec![mem("l", &[(b"\x1b[2J", F, b""), (b"\x1b[2J/x", F, b"")])],
            &Options::default(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("\\x1b[2J/x"), "{err:#}");
    }

    #[test]
    fn deleted_files() {
        let mut v = view(vec![mem(
            "l",
            &[
                (b"a/b", F, b"b"),
                (b"a/c", F, b"c"),
                (b"d/e", F, b"e"),
                (b"l", S, b"d"),
            ],
        )]);
        let paths = parse_deleted_files(br#"["/a/b", "/l/e", "/nothing"]"#).unwrap();
        let deleted: Vec<bool> = paths.iter().map(|p| v.delete(p).unwrap()).collect();
        assert_eq!(deleted, [true, true, false]);
        assert!(v.resolve("/a/b").unwrap().is_none());
        assert!(v.resolve("/d/e").unwrap().is_none());
        assert!(v.resolve("/a/c").unwrap().is_some());
        assert!(v.delete("/a").unwrap());
        assert!(v.resolve("/a/c").unwrap().is_none());
        assert!(parse_deleted_files(b"{}").is_err());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn indexing_a_layer_stops_once_cancelled() {
        let tar = build(&[(b"big", F, &vec![0u8; 4 << 20][..])]);
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let cancel = crate::Cancel::new();
        cancel.cancel(2);
        let opts = Options {
            cancel,
            ..Options::default()
        };
        for data in [zst, tar] {
            let layer = Layer::new("l", BlobData::Memory(data.into()));
            let err = LayerView::new(vec![layer], &opts).unwrap_err();
            assert_eq!(err.kind(), &crate::ErrorKind::Cancelled(2), "{err}");
        }
    }

    #[test]
    fn compression_by_content_and_digests() {
        let tar = build(&[(b"f", F, b"contents"), (b"g", F, b"more")]);
        let gz = gzip(&tar);
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let sha = |b: &[u8]| Digest::of(crate::oci::digest::Algorithm::Sha256, b);
        for (name, bytes) in [("plain", &tar), ("gzip", &gz), ("zstd", &zst)] {
            let layer = Layer::new(name, BlobData::Memory(bytes.clone().into()))
                .expect(Expect {
                    digest: Some(sha(bytes)),
                    size: Some(bytes.len() as u64),
                })
                .diff_id(sha(&tar));
            let v = view(vec![layer]);
            assert_eq!(read(&v, "g").unwrap(), b"more", "{name}");
            // The wrong digest, size or diff_id is an error naming the layer.
            let bad = Layer::new(name, BlobData::Memory(bytes.clone().into())).expect(Expect {
                digest: Some(sha(b"other")),
                size: None,
            });
            let err = format!(
                "{:#}",
                LayerView::new(vec![bad], &Options::default()).unwrap_err()
            );
            assert!(err.contains(&format!("{name}: digest mismatch")), "{err}");
            let bad = Layer::new(name, BlobData::Memory(bytes.clone().into())).expect(Expect {
                digest: None,
                size: Some(bytes.len() as u64 - 1),
            });
            let err = format!(
                "{:#}",
                LayerView::new(vec![bad], &Options::default()).unwrap_err()
            );
            assert!(err.contains(&format!("{name}: size mismatch")), "{err}");
            let bad = Layer::new(name, BlobData::Memory(bytes.clone().into())).diff_id(sha(b"x"));
            let err = format!(
                "{:#}",
                LayerView::new(vec![bad], &Options::default()).unwrap_err()
            );
            assert!(err.contains("against the config's diff_id"), "{err}");
        }
        // A corrupt compressed stream is an error, not a shorter layer.
        let mut broken = gz.clone();
        let n = broken.len();
        broken[n - 5] ^= 0xff;
        assert!(LayerView::new(
            vec![Layer::new("x", BlobData::Memory(broken.into()))],
            &Options::default()
        )
        .is_err());
        let err = LayerView::new(
            vec![Layer::new(
                "x",
                BlobData::Memory(b"BZh91AY&SY".to_vec().into()),
            )],
            &Options::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bzip2"), "{err}");
    }

    #[test]
    fn in_place_and_copies() {
        let dir = tempfile::tempdir().unwrap();
        let tar = build(&[(b"a", F, b"aaaa"), (b"b", F, b"bb")]);
        let plain = dir.path().join("plain");
        let mut padded = b"HEAD".to_vec();
        padded.extend(&tar);
        std::fs::write(&plain, &padded).unwrap();
        let gz = dir.path().join("gz");
        std::fs::write(&gz, gzip(&build(&[(b"c", F, b"cccccc"), (b"d", F, b"d")]))).unwrap();
        let blob = |p: &std::path::Path, offset: u64| {
            let len = std::fs::metadata(p).unwrap().len() - offset;
            BlobData::File(Blob {
                label: p.display().to_string(),
                path: p.to_path_buf(),
                offset,
                len,
                remote: None,
            })
        };
        let spill = dir.path().join("spill");
        std::fs::create_dir(&spill).unwrap();
        let opts = Options {
            spill: SpillOptions {
                dir: Some(spill.clone()),
                max: Some(6),
            },
            cancel: Default::default(),
        };
        let v = LayerView::new(
            vec![
                Layer::new("plain", blob(&plain, 4)),
                Layer::new("gz", blob(&gz, 0)),
            ],
            &opts,
        )
        .unwrap();
        let a = v.resolve("a").unwrap().unwrap();
        let c = v.resolve("c").unwrap().unwrap();
        let d = v.resolve("d").unwrap().unwrap();
        let got = v.materialize(&[a.clone(), c.clone()]).unwrap();
        // In place in the plain layer: the file's range of the layer file.
        assert_eq!(got[0].path, plain);
        assert_eq!(&padded[got[0].offset as usize..][..4], b"aaaa");
        assert!(got[1].path.starts_with(&spill));
        assert_eq!(std::fs::read(&got[1].path).unwrap(), b"cccccc");
        // Copied once: asking again costs nothing; the cap is then reached.
        assert_eq!(v.materialize(&[c]).unwrap()[0], got[1]);
        let err = v.materialize(&[d]).unwrap_err();
        assert_eq!(err.kind(), &crate::ErrorKind::Limit, "{err}");
        let err = err.to_string();
        assert!(
            err.contains("gz:d") && err.contains("more than 6 bytes"),
            "{err}"
        );
        drop(v);
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "copies left behind"
        );
    }
}
