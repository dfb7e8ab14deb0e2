//! Which members of a checkpoint archive criu2core keeps, and how: the
//! checkpoint's [`MemberPolicy`] that the archive layer (`src/archive.rs`,
//! which knows nothing of CRIU) asks as it reads. It names each member's
//! role by its name, learns from the mm images and pagemaps kept so far how
//! much of each pages file is used, finds the image directory, and names
//! the rootfs-diff files the checkpoint's file images want. The archive's
//! members are CRIU images through [`ImageStore`], and checkpoint archives
//! are opened here with this policy.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use prost::Message;

use crate::archive::{
    whole_archive, ArchiveOptions, ArchiveStore, Kept, MemberPolicy, PageUse, PagesPlan, Role,
};
use crate::criu::files::FileTable;
use crate::criu::image::{Image, ImageReader};
use crate::criu::pagemap::{self, PagemapReader, MAX_ENTRY_BYTES};
use crate::criu::store::{ImageStore, MAX_IMAGE_BYTES};
use crate::criu::{self, magic, proto};
use crate::error::{fault, ErrorKind};
use crate::model::{Blob, MAX_STRINGS_BYTES};
use crate::oci::Wanted;

/// The number in an image name such as `core-<n>.img`.
fn image_number(base: &str, prefix: &str) -> Option<u32> {
    let digits = base.strip_prefix(prefix)?.strip_suffix(".img")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The hexadecimal number in an image name such as `tcp-stream-<x>.img`.
fn image_hex(base: &str, prefix: &str) -> Option<u32> {
    let digits = base.strip_prefix(prefix)?.strip_suffix(".img")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// The images `inspect --fds --sockets --mounts` decodes (criu::fds,
/// criu::mounts), besides those memory decoding needs.
const FILE_IMAGES: [&str; 15] = [
    "tty-info.img",
    "sk-queues.img",
    "pipes-data.img",
    "fifo-data.img",
    "inetsk.img",
    "unixsk.img",
    "packetsk.img",
    "netlinksk.img",
    "pipes.img",
    "fifo.img",
    "eventfd.img",
    "signalfd.img",
    "timerfd.img",
    "tty.img",
    "ns-files.img",
];

/// The role of an image named `base` (no directory).
fn image_role(base: &str) -> Role {
    let num = |prefix| image_number(base, prefix);
    match base {
        "inventory.img" | "pstree.img" | "files.img" | "reg-files.img" | "memfd.img"
        | "remap-fpath.img" => Role::Metadata,
        _ if FILE_IMAGES.contains(&base) => Role::Metadata,
        _ if num("core-").is_some() || num("mm-").is_some() || num("ipcns-shm-").is_some() => {
            Role::Metadata
        }
        _ if ["ids-", "fs-", "fdinfo-", "mountpoints-"]
            .iter()
            .any(|p| num(p).is_some())
            || image_hex(base, "tcp-stream-").is_some() =>
        {
            Role::Metadata
        }
        _ if num("pagemap-").is_some() || num("pagemap-shmem-").is_some() => Role::Pagemap,
        _ if image_hex(base, "ghost-file-").is_some() => Role::Ghost,
        _ => num("pages-").map_or(Role::Unused, Role::Pages),
    }
}

/// The role of a member by its clean name: images at the top (a tar of
/// bare images) or under `checkpoint/`, and a container checkpoint's
/// files at the top.
fn role(name: &str) -> Role {
    match name {
        "config.dump" | "spec.dump" | "deleted.files" => Role::Metadata,
        "rootfs-diff.tar" => Role::RootfsDiff,
        _ => match name.strip_prefix("checkpoint/").unwrap_or(name) {
            base if base.contains('/') => Role::Unused,
            base => image_role(base),
        },
    }
}

/// A process's page size (AT_PAGESZ, if its mm image says) and where its
/// argv and environment are.
type MmFacts = (Option<u64>, [(u64, u64); 2]);

/// The checkpoint's member policy: what the reading of an archive has
/// learnt so far, to bound the page data it unpacks by what the
/// checkpoint can use.
#[derive(Default)]
pub(crate) struct Checkpoint {
    /// Per pid: its page size (AT_PAGESZ) and where its argv and
    /// environment are.
    mm: HashMap<u32, MmFacts>,
    /// The pagemap member naming each pages file.
    pagemaps: HashMap<u32, String>,
    /// Whether some pagemap's head could not be read (so which pages files
    /// are named by none cannot be told).
    unreadable_pagemap: bool,
}

impl MemberPolicy for Checkpoint {
    fn role(&self, name: &str) -> Role {
        role(name)
    }

    fn metadata_limit(&self) -> u64 {
        MAX_IMAGE_BYTES
    }

    /// Notes what bounds page data: each process's page size and strings
    /// (from its mm image, when it is held in memory) and which pagemap
    /// names each pages file.
    fn learn(&mut self, key: &str, kept: &Kept) {
        let base = key.rsplit('/').next().unwrap_or(key);
        if let Some(pid) = image_number(base, "mm-") {
            let Some(data) = kept.in_memory(key) else {
                return;
            };
            let Ok(mut img) = Image::parse(key, data, magic::MM) else {
                return;
            };
            if let Ok(Some((_, bytes))) = img.next_raw() {
                if let Ok(mm) = proto::MmHead::decode(bytes) {
                    let ranges = [(mm.arg_start, mm.arg_end), (mm.env_start, mm.env_end)]
                        .map(|(a, b)| (a, b.min(a.saturating_add(MAX_STRINGS_BYTES))));
                    self.mm.insert(pid, (criu::page_size_hint(&mm), ranges));
                }
            }
        } else if role(key) == Role::Pagemap {
            let head = kept.reader(key).and_then(|(rd, len)| {
                ImageReader::new(key, rd, len, magic::PAGEMAP, MAX_ENTRY_BYTES)?
                    .expect::<proto::PagemapHead>()
            });
            match head {
                Ok(head) => {
                    self.pagemaps.insert(head.pages_id, key.to_string());
                }
                Err(_) => self.unreadable_pagemap = true,
            }
        }
    }

    /// How much of `pages-<id>.img` the checkpoint can use, where its
    /// pagemap (and its process's page size) are known by now.
    fn pages_plan(&self, id: u32, pages: PageUse, kept: &Kept) -> Option<PagesPlan> {
        let key = self.pagemaps.get(&id)?;
        let base = key.rsplit('/').next().unwrap_or(key);
        let mm = image_number(base, "pagemap-").and_then(|pid| self.mm.get(&pid));
        // A shared-memory pagemap counts in the pages of the processes
        // that map it, which share one page size.
        let page_size = match mm {
            Some(&(ps, _)) => ps?,
            None => self.mm.values().filter_map(|m| m.0).max()?,
        };
        let wanted = match (pages, mm) {
            (PageUse::Strings, Some((_, ranges))) => &ranges[..],
            _ => &[],
        };
        let (rd, len) = kept.reader(key).ok()?;
        let img = ImageReader::new(key, rd, len, magic::PAGEMAP, MAX_ENTRY_BYTES).ok()?;
        let c = pagemap::claims(PagemapReader::new(img, page_size).ok()?, wanted).ok()?;
        if c.pages_id != id {
            return None;
        }
        Some(PagesPlan {
            claimed: c.bytes,
            ranges: (pages == PageUse::Strings).then_some(c.ranges),
        })
    }

    fn named_by(&self, id: u32) -> Option<&str> {
        self.pagemaps.get(&id).map(String::as_str)
    }

    fn named_pages(&self) -> Vec<u32> {
        self.pagemaps.keys().copied().collect()
    }

    fn pages_member(&self, id: u32) -> String {
        format!("pages-{id}.img")
    }

    fn unnamed(&self, id: u32) -> Option<String> {
        (!self.pagemaps.contains_key(&id) && !self.unreadable_pagemap)
            .then(|| "no pagemap names it".to_string())
    }

    /// `checkpoint/` for a container checkpoint, `""` for a tar of bare
    /// images; an archive with neither `pstree.img` is no checkpoint.
    fn member_dir(&self, kept: &Kept) -> Result<String> {
        if kept.contains("checkpoint/pstree.img") {
            Ok("checkpoint/".into())
        } else if kept.contains("pstree.img") {
            Ok(String::new())
        } else {
            Err(fault(
                ErrorKind::NotACheckpoint,
                format!(
                    "{}: no CRIU images (neither checkpoint/pstree.img nor pstree.img)",
                    kept.label()
                ),
            ))
        }
    }

    /// The clean paths of every regular file the checkpoint's file images
    /// (read so far) name, or `None` if there are none yet.
    fn wanted_files(&self, kept: &Kept) -> Result<Option<Wanted>> {
        for prefix in ["checkpoint/", ""] {
            let known = ["files.img", "reg-files.img"]
                .iter()
                .any(|n| kept.contains(&format!("{prefix}{n}")));
            if !known {
                continue;
            }
            let table = FileTable::load(&View { kept, prefix })?;
            return Ok(Some(Wanted::new::<[u8]>(table.regular_names())));
        }
        Ok(None)
    }

    fn fresh(&self) -> Box<dyn MemberPolicy> {
        Box::new(Checkpoint::default())
    }
}

/// The members an archive kept under `prefix` as a store of CRIU images.
struct View<'a> {
    kept: &'a Kept,
    prefix: &'a str,
}

impl ImageStore for View<'_> {
    fn location(&self) -> String {
        if self.prefix.is_empty() {
            self.kept.label().to_string()
        } else {
            format!(
                "{}:{}",
                self.kept.label(),
                self.prefix.trim_end_matches('/')
            )
        }
    }

    fn names(&self) -> Result<Vec<String>> {
        Ok(self
            .kept
            .keys()
            .filter_map(|k| k.strip_prefix(self.prefix))
            .filter(|k| !k.contains('/'))
            .map(String::from)
            .collect())
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.kept
            .read(&format!("{}{name}", self.prefix), MAX_IMAGE_BYTES)
    }

    fn blob(&self, name: &str) -> Result<Option<Blob>> {
        let key = format!("{}{name}", self.prefix);
        match self.kept.file(&key) {
            Some(b) => Ok(Some(b)),
            None if self.kept.in_memory(&key).is_some() => Err(anyhow!(
                "{}: {name} is not stored as a file",
                self.kept.label()
            )),
            None => Ok(None),
        }
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + Sync>, u64)>> {
        let key = format!("{}{name}", self.prefix);
        if !self.kept.contains(&key) {
            return Ok(None);
        }
        self.kept.reader(&key).map(Some)
    }

    fn parent(&self) -> Result<Option<Arc<dyn ImageStore>>> {
        Ok(None)
    }
}

impl ArchiveStore {
    /// The archive's images, in its image directory.
    fn view(&self) -> View<'_> {
        View {
            kept: self.kept(),
            prefix: self.member_dir(),
        }
    }

    /// Opens the checkpoint archive at `path`. Members are only ever keys:
    /// nothing is written under a name from the archive. Reading stops
    /// (and what was unpacked is removed) once `opts.cancel` is set.
    pub fn open(path: &Path, opts: &ArchiveOptions) -> Result<ArchiveStore> {
        ArchiveStore::open_window(&whole_archive(path)?, opts)
    }

    /// Opens the checkpoint archive that is the byte range `blob` of a
    /// file (a layer or blob inside an image): plain, gzip or zstd by its
    /// first bytes. A plain one is used in place.
    pub(crate) fn open_window(blob: &Blob, opts: &ArchiveOptions) -> Result<ArchiveStore> {
        ArchiveStore::read_window(blob, opts, Box::new(Checkpoint::default()))
    }

    /// Opens a checkpoint archive that arrives as a stream (a member of a
    /// compressed archive): plain, gzip or zstd by its first bytes, read
    /// once to its end. What it keeps of page data is unpacked.
    pub(crate) fn open_stream(
        label: &str,
        stream: impl Read,
        opts: &ArchiveOptions,
    ) -> Result<ArchiveStore> {
        ArchiveStore::read_stream(label, stream, opts, Box::new(Checkpoint::default()))
    }

    /// A checkpoint archive with nothing read yet, for
    /// [`add_stream`](Self::add_stream) and
    /// [`add_diff_stream`](Self::add_diff_stream) (a checkpoint whose parts
    /// are separate blobs), then [`finish`](Self::finish).
    pub(crate) fn new(label: &str, opts: &ArchiveOptions) -> ArchiveStore {
        ArchiveStore::with_policy(label, opts, Box::new(Checkpoint::default()))
    }
}

impl ImageStore for ArchiveStore {
    fn location(&self) -> String {
        self.view().location()
    }

    fn names(&self) -> Result<Vec<String>> {
        self.view().names()
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.view().read(name)
    }

    fn blob(&self, name: &str) -> Result<Option<Blob>> {
        self.view().blob(name)
    }

    fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send + Sync>, u64)>> {
        self.view().open(name)
    }

    fn parent(&self) -> Result<Option<Arc<dyn ImageStore>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::cancel::Cancel;
    use crate::tar::{self, Kind};

    /// A zstd archive of `members` (name, bytes) in `dir`.
    fn zstd_archive(dir: &Path, members: &[(&[u8], &[u8])]) -> Blob {
        let entries: Vec<_> = members.iter().map(|&(n, d)| (n, Kind::File, d)).collect();
        let tar = tar::tests::build(&entries);
        let path = dir.join("a.tar.zst");
        fs::write(&path, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
        whole_archive(&path).unwrap()
    }

    #[test]
    fn a_reader_takes_what_it_uses_of_a_member_and_the_store_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let pages: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
        let blob = zstd_archive(
            dir.path(),
            &[
                (b"checkpoint/core-1.img", b"core"),
                (b"checkpoint/pages-1.img", &pages),
                (b"checkpoint/pstree.img", b"tree"),
            ],
        );
        let mut store = ArchiveStore::new(&blob.label, &ArchiveOptions::default());
        let mut members = store.members_of(&blob, &Cancel::new()).unwrap();
        let mut seen = Vec::new();
        while let Some(mut m) = members.next_member().unwrap() {
            assert!(m.streamed());
            seen.push((m.key().to_string(), m.role(), m.described()));
            if m.role() == Role::Pages(1) {
                // No pagemap came before it.
                assert_eq!(m.pagemap(), None);
                let mut head = vec![0; 4096];
                m.data().read_exact(&mut head).unwrap();
                assert_eq!(head, pages[..4096]);
                m.went_by(4096).unwrap();
            } else {
                m.keep().unwrap();
            }
        }
        members.close(Ok(())).unwrap();
        assert_eq!(
            seen,
            [
                ("checkpoint/core-1.img".into(), Role::Metadata, 0),
                ("checkpoint/pages-1.img".into(), Role::Pages(1), 1),
                ("checkpoint/pstree.img".into(), Role::Metadata, 1),
            ]
        );
        let store = store.finish().unwrap();
        // The member after the one half read is whole.
        assert_eq!(store.read("pstree.img").unwrap().unwrap(), b"tree");
        let taken = store.blob("pages-1.img").unwrap().unwrap();
        assert!(taken.path.as_os_str().is_empty() && taken.len == 4096);
        assert!(store.read("pages-1.img").is_err());
        let w = format!("{:?}", store.warnings());
        assert!(w.contains("4096 bytes past the 4096"), "{w}");
    }

    #[test]
    fn a_member_neither_kept_nor_taken_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blob = zstd_archive(
            dir.path(),
            &[(b"pstree.img", b"tree"), (b"core-1.img", b"core")],
        );
        let mut store = ArchiveStore::new(&blob.label, &ArchiveOptions::default());
        let mut members = store.members_of(&blob, &Cancel::new()).unwrap();
        drop(members.next_member().unwrap());
        let e = format!("{:#}", members.next_member().err().unwrap());
        assert!(e.contains("pstree.img was neither kept nor taken"), "{e}");
    }

    #[test]
    fn members_are_kept_by_role() {
        for (name, r) in [
            ("checkpoint/pstree.img", Role::Metadata),
            ("pstree.img", Role::Metadata),
            ("checkpoint/core-101.img", Role::Metadata),
            ("checkpoint/ipcns-shm-9.img", Role::Metadata),
            ("config.dump", Role::Metadata),
            ("checkpoint/pagemap-1.img", Role::Pagemap),
            ("checkpoint/pagemap-shmem-77.img", Role::Pagemap),
            ("checkpoint/pages-3.img", Role::Pages(3)),
            ("rootfs-diff.tar", Role::RootfsDiff),
            ("checkpoint/pages-x.img", Role::Unused),
            ("checkpoint/ghost-file-1a.img", Role::Ghost),
            ("checkpoint/ghost-file-.img", Role::Unused),
            ("checkpoint/core-.img", Role::Unused),
            ("checkpoint/fdinfo-2.img", Role::Metadata),
            ("checkpoint/tcp-stream-3bd2c.img", Role::Metadata),
            ("checkpoint/tcp-stream-xyz.img", Role::Unused),
            ("checkpoint/mountpoints-9.img", Role::Metadata),
            ("checkpoint/tty-info.img", Role::Metadata),
            ("checkpoint/fs-12.img", Role::Metadata),
            ("checkpoint/sub/pstree.img", Role::Unused),
            ("stats-dump", Role::Unused),
            ("checkpoint/core-99999999999.img", Role::Unused),
        ] {
            assert_eq!(role(name), r, "{name}");
        }
    }
}
