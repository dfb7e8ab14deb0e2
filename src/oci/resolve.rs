//! Resolving paths in a tree of paths with symbolic links, as the kernel
//! resolves them with the tree as the root: a layer view's, an image
//! archive's members, a root directory's. Resolution costs lookups from a
//! budget (`Lookups`, one per input), checks cancellation as it spends
//! them, and (in a tree that no longer changes, [`Resolver`]) remembers
//! where each symbolic link and each directory it resolved leads, so that
//! many paths through one costly chain of links cost it once.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::{MAX_LINKS, MAX_PATH_BYTES};
use crate::cancel::Cancel;
use crate::error::{fault, ErrorKind};
use crate::paths::{self, DotDot};
pub(crate) use crate::paths::{components, pop_component, push_component};
use crate::stdext::lock;

/// Most lookups resolving the paths of one input may cost (a lookup in a
/// root directory costs one per component of the path looked up, what
/// the kernel walks).
pub const MAX_RESOLVE_LOOKUPS: u64 = 1 << 25;
/// Most bytes the links and directories a [`Resolver`] remembers may
/// take; past it, it remembers no more (resolving costs more, never more
/// than `MAX_RESOLVE_LOOKUPS`).
const MAX_MEMO_BYTES: u64 = 64 << 20;
/// Most paths a [`Resolver`] keeps the reason for when they could not be
/// resolved.
const MAX_UNRESOLVED: usize = 4096;

/// What a path is in a tree of paths.
pub(crate) enum Lookup<'a> {
    Missing,
    Dir,
    File,
    Symlink(Cow<'a, [u8]>),
    Other,
}

/// A tree of relative paths (`a/b/c`, the root is empty) with symbolic links.
pub(crate) trait Tree {
    fn lookup(&self, key: &[u8]) -> Lookup<'_>;

    /// What looking `key` up costs, in lookups.
    fn cost(&self, _key: &[u8]) -> u64 {
        1
    }
}

/// `path` made relative to the root with `..` clamped there, lexically.
pub(crate) fn clean(path: &[u8]) -> Result<Vec<u8>> {
    if path.contains(&0) {
        bail!("path contains a NUL byte");
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(crate::error::fault(
            crate::ErrorKind::Limit,
            format!("path of {} bytes (at most {MAX_PATH_BYTES})", path.len()),
        ));
    }
    Ok(paths::clean(path, DotDot::Clamp).unwrap_or_default())
}

/// Resolves `path` in `tree` the way the kernel resolves a path with the
/// tree as its root: symbolic links are followed (absolute ones from the
/// root, the last component only if `follow_last`), `..` stops at the
/// root, at most `MAX_LINKS` links. Gives the key reached, or `None` if a
/// component is missing (unless `create`, which takes missing components
/// as directories to be made) or is not a directory.
pub(crate) fn walk<T: Tree + ?Sized>(
    tree: &T,
    path: &[u8],
    follow_last: bool,
    create: bool,
) -> Result<Option<Vec<u8>>> {
    let mut budget = u64::MAX;
    let cancel = Cancel::default();
    Ok(walk_counted(tree, path, follow_last, create, &mut budget, &cancel)?.map(|(k, _)| k))
}

/// [`walk`], taking one from `budget` for each lookup (an error when it
/// runs out), stopping once `cancel` is set, and saying whether it
/// followed a link.
pub(crate) fn walk_counted<T: Tree + ?Sized>(
    tree: &T,
    path: &[u8],
    follow_last: bool,
    create: bool,
    budget: &mut u64,
    cancel: &Cancel,
) -> Result<Option<(Vec<u8>, bool)>> {
    let mut todo: VecDeque<Vec<u8>> = components(path).map(<[u8]>::to_vec).collect();
    let mut done: Vec<u8> = Vec::with_capacity(path.len());
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == b".." {
            pop_component(&mut done);
            continue;
        }
        *budget = budget
            .checked_sub(1)
            .context("paths too costly to resolve")?;
        if *budget % 1024 == 0 {
            cancel.check()?;
        }
        let before = done.len();
        push_component(&mut done, &c);
        let last = todo.is_empty();
        match tree.lookup(&done) {
            Lookup::Symlink(target) if !last || follow_last => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(crate::error::fault(
                        crate::ErrorKind::Limit,
                        format!(
                            "{}: more than {MAX_LINKS} symbolic links",
                            path.escape_ascii()
                        ),
                    ));
                }
                if target.is_empty() {
                    return Ok(None);
                }
                let target = target.into_owned();
                done.truncate(before);
                if target.starts_with(b"/") {
                    done.clear();
                }
                for t in components(&target).rev() {
                    todo.push_front(t.to_vec());
                }
            }
            Lookup::Dir | Lookup::Symlink(_) => {}
            Lookup::File | Lookup::Other if last => {}
            Lookup::File | Lookup::Other => return Ok(None),
            Lookup::Missing if create => {}
            Lookup::Missing => return Ok(None),
        }
    }
    Ok(Some((done, links > 0)))
}

/// The lookups resolving one input's paths may still cost, and the
/// cancellation checked as they are spent; shared by the layer view and
/// the root directory of one input.
#[derive(Debug)]
pub struct Lookups {
    left: AtomicU64,
    cancel: Cancel,
}

impl Lookups {
    /// `MAX_RESOLVE_LOOKUPS` lookups, stopping once `cancel` is set.
    pub fn new(cancel: &Cancel) -> Arc<Lookups> {
        Lookups::with_budget(MAX_RESOLVE_LOOKUPS, cancel)
    }

    /// `n` lookups, stopping once `cancel` is set.
    pub(crate) fn with_budget(n: u64, cancel: &Cancel) -> Arc<Lookups> {
        Arc::new(Lookups {
            left: AtomicU64::new(n),
            cancel: cancel.clone(),
        })
    }

    /// How many are left.
    pub fn left(&self) -> u64 {
        self.left.load(Ordering::Relaxed)
    }

    /// Takes `n` lookups: cancelled, or a [`ErrorKind::Limit`](crate::ErrorKind::Limit) error when
    /// fewer are left.
    fn spend(&self, n: u64) -> Result<()> {
        self.cancel.check()?;
        let taken = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(n));
        if taken.is_err() {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "its paths cost more than {MAX_RESOLVE_LOOKUPS} lookups to resolve (MAX_RESOLVE_LOOKUPS)"
                ),
            ));
        }
        Ok(())
    }
}

/// Where resolving a path (or a link, or a directory) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// At this key.
    At(Vec<u8>),
    /// A component is missing, or not a directory.
    Missing,
    /// More than `MAX_LINKS` symbolic links.
    Loop,
}

/// A step and the links it followed.
type Memo = (Step, usize);

/// Resolves paths in a tree that no longer changes, remembering where
/// each symbolic link and each directory it resolved leads (in at most
/// `MAX_MEMO_BYTES`), and why each path it could not resolve could not be.
pub(crate) struct Resolver {
    lookups: Arc<Lookups>,
    links: Mutex<HashMap<Vec<u8>, Memo>>,
    dirs: Mutex<HashMap<Vec<u8>, Memo>>,
    memo_bytes: AtomicU64,
    unresolved: Mutex<BTreeMap<Vec<u8>, String>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("lookups", &self.lookups)
            .finish()
    }
}

impl Resolver {
    /// A resolver spending `lookups`.
    pub(crate) fn new(lookups: Arc<Lookups>) -> Resolver {
        Resolver {
            lookups,
            links: Mutex::default(),
            dirs: Mutex::default(),
            memo_bytes: AtomicU64::new(0),
            unresolved: Mutex::default(),
        }
    }

    /// The budget it spends.
    pub(crate) fn lookups(&self) -> &Arc<Lookups> {
        &self.lookups
    }

    /// Forgets what it remembered (the tree changed).
    pub(crate) fn forget(&mut self) {
        self.links
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.dirs
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.memo_bytes.store(0, Ordering::Relaxed);
    }

    /// Why `path` could not be resolved, if it could not (too many links).
    pub(crate) fn unresolved(&self, path: &[u8]) -> Option<String> {
        lock(&self.unresolved).get(path).cloned()
    }

    /// Resolves `path` in `tree` as [`walk`] does (`create` aside); a loop
    /// of links is [`Step::Loop`], noted with `why` for
    /// [`unresolved`](Self::unresolved).
    pub(crate) fn resolve<T: Tree + ?Sized>(
        &self,
        tree: &T,
        path: &[u8],
        follow_last: bool,
        why: impl FnOnce() -> String,
    ) -> Result<Step> {
        let comps: Vec<&[u8]> = components(path).collect();
        let step = match comps.split_last() {
            None => Step::At(Vec::new()),
            Some((last, dir)) => {
                let (step, mut links) = self.dir(tree, dir)?;
                match step {
                    Step::At(key) => self.follow(tree, key, &[last], follow_last, &mut links, 0)?,
                    other => other,
                }
            }
        };
        if step == Step::Loop {
            let mut u = lock(&self.unresolved);
            if u.len() < MAX_UNRESOLVED {
                u.insert(path.to_vec(), why());
            }
        }
        Ok(step)
    }

    /// Where the directory of components `dir` leads, from the root.
    fn dir<T: Tree + ?Sized>(&self, tree: &T, dir: &[&[u8]]) -> Result<Memo> {
        let key = dir.join(&b'/');
        if let Some(m) = lock(&self.dirs).get(&key) {
            return Ok(m.clone());
        }
        let mut links = 0;
        let step = self.follow(tree, Vec::new(), dir, true, &mut links, 0)?;
        let memo = (step, links);
        self.remember(&self.dirs, key, &memo);
        Ok(memo)
    }

    fn remember(&self, map: &Mutex<HashMap<Vec<u8>, Memo>>, key: Vec<u8>, memo: &Memo) {
        let size = key.len()
            + match &memo.0 {
                Step::At(k) => k.len(),
                _ => 0,
            }
            + 64;
        let used = self.memo_bytes.fetch_add(size as u64, Ordering::Relaxed);
        if used + size as u64 <= MAX_MEMO_BYTES {
            lock(map).insert(key, memo.clone());
        }
    }

    /// Walks `comps` from `done`, counting the links it follows into
    /// `links`; `depth` is how many links are being followed around it.
    fn follow<T: Tree + ?Sized>(
        &self,
        tree: &T,
        mut done: Vec<u8>,
        comps: &[&[u8]],
        follow_last: bool,
        links: &mut usize,
        depth: usize,
    ) -> Result<Step> {
        for (i, &c) in comps.iter().enumerate() {
            if c == b".." {
                pop_component(&mut done);
                continue;
            }
            let before = done.len();
            push_component(&mut done, c);
            self.lookups.spend(tree.cost(&done))?;
            let last = i + 1 == comps.len();
            match tree.lookup(&done) {
                Lookup::Symlink(target) if !last || follow_last => {
                    let parent = done[..before].to_vec();
                    let (to, used) = self.link(tree, &done, parent, &target, depth + 1)?;
                    *links += 1 + used;
                    if *links > MAX_LINKS {
                        return Ok(Step::Loop);
                    }
                    match to {
                        Step::At(k) => done = k,
                        other => return Ok(other),
                    }
                }
                Lookup::Dir | Lookup::Symlink(_) => {}
                Lookup::File | Lookup::Other if last => {}
                Lookup::File | Lookup::Other | Lookup::Missing => return Ok(Step::Missing),
            }
        }
        Ok(Step::At(done))
    }

    /// Where the link at `key` (in the directory `parent`) leads, every
    /// link on the way followed, and how many that took; remembered.
    fn link<T: Tree + ?Sized>(
        &self,
        tree: &T,
        key: &[u8],
        parent: Vec<u8>,
        target: &[u8],
        depth: usize,
    ) -> Result<Memo> {
        if let Some(m) = lock(&self.links).get(key) {
            return Ok(m.clone());
        }
        if depth > MAX_LINKS {
            // Not remembered: how deep it is nested is not the link's own.
            return Ok((Step::Loop, 0));
        }
        if target.is_empty() {
            return Ok((Step::Missing, 0));
        }
        let start = if target.starts_with(b"/") {
            Vec::new()
        } else {
            parent
        };
        let comps: Vec<&[u8]> = components(target).collect();
        let mut used = 0;
        let step = self.follow(tree, start, &comps, true, &mut used, depth)?;
        let memo = (step, used);
        // A loop found nested in other links may be theirs; at the top it
        // is the link's own.
        if memo.0 != Step::Loop || depth == 1 {
            self.remember(&self.links, key.to_vec(), &memo);
        }
        Ok(memo)
    }
}
