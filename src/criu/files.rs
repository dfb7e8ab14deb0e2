//! The files a checkpoint's processes had mapped: files.img (or the older
//! reg-files.img), memfd.img and remap-fpath.img, reduced to what memory
//! decoding needs: a path for each file id, and the shared-memory object
//! behind each memfd.

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::error::{fault, ErrorKind};
use prost::Message;

use super::image::ImageReader;
use super::magic;
use super::store::ImageStore;
use crate::model::Recorded;
use crate::proto;

/// Most entries each of files.img, reg-files.img, memfd.img and
/// remap-fpath.img may have: a million open files (the kernel's default
/// limit of descriptors for one process, `nr_open`), across a checkpoint.
/// What is held of each is a few dozen bytes and, for a regular file, its
/// path.
pub const MAX_FILE_ENTRIES: usize = 1 << 20;

/// Longest entry of those images: a path (at most PATH_MAX) and a few
/// numbers take far less.
pub const MAX_FILE_ENTRY_BYTES: usize = 64 << 10;

/// What a file id in files.img refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// A regular file, by its path in the task's mount namespace.
    Regular {
        /// Path (bytes: a path need not be UTF-8).
        name: Vec<u8>,
        /// What CRIU recorded to tell this file from another.
        recorded: RawRecorded,
    },
    /// A memfd (or CRIU's memfd stand-in for shared anonymous memory).
    Memfd {
        /// Key into memfd.img.
        inode_id: u64,
    },
}

/// Where a file unlinked while open is to be found (remap-fpath.img).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remap {
    /// CRIU linked the file back under another name, the regular file
    /// with this id in files.img (a `link_remap.N` beside the original).
    Linked(u32),
    /// The checkpoint holds the contents, in `ghost-file-<id>.img`.
    Ghost(u32),
}

/// The files of a checkpoint that memory can map: regular files and
/// memfds (sockets, pipes and the like are passed over, not held).
#[derive(Debug, Default)]
pub struct FileTable {
    files: HashMap<u32, FileRef>,
    memfd: HashMap<u64, proto::MemfdInode>,
    remaps: HashMap<u32, Remap>,
}

/// The facts a reg_file_entry records about its file, as recorded: the
/// build-id's bytes packed into words in the dumping machine's byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecorded {
    size: Option<u64>,
    build_id: Vec<u32>,
    checksum: Option<u32>,
}

impl RawRecorded {
    fn new(reg: &proto::RegFile) -> RawRecorded {
        RawRecorded {
            size: reg.size,
            build_id: reg.build_id.clone(),
            checksum: reg.checksum,
        }
    }

    /// The facts in the model's terms, the build-id unpacked in the byte
    /// order of the machine that dumped it (`big_endian`).
    pub fn to_model(&self, big_endian: bool) -> Recorded {
        let build_id = (!self.build_id.is_empty()).then(|| {
            self.build_id
                .iter()
                .flat_map(|w| {
                    if big_endian {
                        w.to_be_bytes()
                    } else {
                        w.to_le_bytes()
                    }
                })
                .collect()
        });
        Recorded {
            size: self.size,
            build_id,
            checksum: self.checksum,
        }
    }
}

/// Calls `f` with each entry of image `name`, read as a stream, never held
/// whole; more than [`MAX_FILE_ENTRIES`] entries is an error.
fn each<M: Message + Default>(
    store: &dyn ImageStore,
    name: &str,
    magic: u32,
    mut f: impl FnMut(M),
) -> Result<()> {
    let Some((stream, len)) = store.open(name)? else {
        return Ok(());
    };
    let label = format!("{}/{name}", store.location());
    let mut img = ImageReader::new(label.clone(), stream, len, magic, MAX_FILE_ENTRY_BYTES)?;
    let mut count = 0;
    while let Some(m) = img.entry::<M>()? {
        count += 1;
        if count > MAX_FILE_ENTRIES {
            return Err(fault(
                ErrorKind::Limit,
                format!(
                    "{label}: offset {}: more than {MAX_FILE_ENTRIES} entries, more than criu2core reads",
                    img.offset()
                ),
            ));
        }
        f(m);
    }
    Ok(())
}

impl FileTable {
    /// Reads the file images of `store`, each as a stream; missing images
    /// mean no such files.
    pub fn load(store: &dyn ImageStore) -> Result<FileTable> {
        let mut t = FileTable::default();
        each(store, "files.img", magic::FILES, |e: proto::FileEntry| {
            let r = match (e.reg, e.memfd) {
                (Some(reg), _) => FileRef::Regular {
                    recorded: RawRecorded::new(&reg),
                    name: reg.name,
                },
                (None, Some(m)) => FileRef::Memfd {
                    inode_id: u64::from(m.inode_id),
                },
                (None, None) => return,
            };
            t.files.insert(e.id, r);
        })?;
        each(
            store,
            "reg-files.img",
            magic::REG_FILES,
            |reg: proto::RegFile| {
                t.files.entry(reg.id).or_insert(FileRef::Regular {
                    recorded: RawRecorded::new(&reg),
                    name: reg.name,
                });
            },
        )?;
        each(
            store,
            "memfd.img",
            magic::MEMFD_INODE,
            |m: proto::MemfdInode| {
                t.memfd.insert(m.inode_id, m);
            },
        )?;
        each(
            store,
            "remap-fpath.img",
            magic::REMAP_FPATH,
            |r: proto::RemapFilePath| {
                // LINKED (0) and GHOST (1) remaps stand for files that were
                // unlinked while open; PROCFS (2) does not.
                let remap = match r.remap_type.unwrap_or(0) {
                    0 => Remap::Linked(r.remap_id),
                    1 => Remap::Ghost(r.remap_id),
                    _ => return,
                };
                t.remaps.insert(r.orig_id, remap);
            },
        )?;
        Ok(t)
    }

    /// The paths of every regular file, as files.img records them.
    pub fn regular_names(&self) -> impl Iterator<Item = &[u8]> {
        self.files.values().filter_map(|f| match f {
            FileRef::Regular { name, .. } => Some(name.as_slice()),
            _ => None,
        })
    }

    /// The path of regular file `id` as it was opened, what CRIU
    /// recorded of it, and where it is if it was unlinked while open.
    pub fn regular(&self, id: u32) -> Option<(&[u8], &RawRecorded, Option<Remap>)> {
        match self.files.get(&id)? {
            FileRef::Regular { name, recorded } => {
                Some((name, recorded, self.remaps.get(&id).copied()))
            }
            FileRef::Memfd { .. } => None,
        }
    }

    /// The path of a regular file as the kernel shows it (" (deleted)"
    /// appended for files unlinked while open).
    pub fn regular_path(&self, id: u32) -> Option<Vec<u8>> {
        match self.files.get(&id)? {
            FileRef::Regular { name, .. } if self.remaps.contains_key(&id) => {
                Some([name, DELETED].concat())
            }
            FileRef::Regular { name, .. } => Some(name.clone()),
            _ => None,
        }
    }

    /// The memfd inode behind file `id`.
    pub fn memfd(&self, id: u32) -> Result<&proto::MemfdInode> {
        match self.files.get(&id) {
            Some(FileRef::Memfd { inode_id }) => self
                .memfd
                .get(inode_id)
                .with_context(|| format!("memfd.img has no inode {inode_id} (file id {id})")),
            Some(other) => anyhow::bail!("file id {id} is not a memfd but {other:?}"),
            None => anyhow::bail!("files.img has no regular file or memfd with id {id}"),
        }
    }
}

/// What the kernel appends to the path of a file unlinked while open.
pub const DELETED: &[u8] = b" (deleted)";

/// The path the kernel shows for a memfd: `/memfd:NAME (deleted)`, or for
/// shared anonymous memory (which CRIU records as a memfd named after the
/// shmem file) that file's own path, such as `/dev/zero (deleted)`.
pub fn memfd_path(inode: &proto::MemfdInode) -> Vec<u8> {
    if inode.name.starts_with(b"/") {
        [&inode.name[..], DELETED].concat()
    } else {
        [b"/memfd:", &inode.name[..], DELETED].concat()
    }
}

/// The path the kernel shows for a System V shared memory segment.
pub fn sysv_path(key: u32) -> Vec<u8> {
    format!("/SYSV{key:08x} (deleted)").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::store::DirStore;
    use crate::testkit::CheckpointWriter;

    fn reg(id: u32, name: &str) -> proto::FileEntry {
        proto::FileEntry {
            r#type: proto::FdType::Reg as i32,
            id,
            reg: Some(proto::RegFile {
                id,
                name: name.into(),
                ..Default::default()
            }),
            memfd: None,
        }
    }

    #[test]
    fn paths_as_the_kernel_shows_them() {
        let dir = tempfile::tempdir().unwrap();
        let w = CheckpointWriter::create(dir.path(), 4096).unwrap();
        let memfd = proto::FileEntry {
            r#type: proto::FdType::Memfd as i32,
            id: 3,
            reg: None,
            memfd: Some(proto::MemfdFile {
                id: 3,
                flags: 2,
                pos: 0,
                inode_id: 9,
            }),
        };
        w.files(&[reg(1, "/usr/bin/app"), reg(2, "/tmp/gone"), memfd])
            .unwrap();
        w.memfd(&[proto::MemfdInode {
            name: "jit".into(),
            shmid: 77,
            inode_id: 9,
            ..Default::default()
        }])
        .unwrap();
        let remap = proto::RemapFilePath {
            orig_id: 2,
            remap_id: 5,
            remap_type: Some(1),
        };
        w.write("remap-fpath.img", magic::REMAP_FPATH, &[remap])
            .unwrap();
        let t = FileTable::load(&DirStore::open(dir.path()).unwrap()).unwrap();
        assert_eq!(t.regular_path(1).as_deref(), Some(&b"/usr/bin/app"[..]));
        assert_eq!(
            t.regular_path(2).as_deref(),
            Some(&b"/tmp/gone (deleted)"[..])
        );
        assert_eq!(t.regular_path(3), None);
        let inode = t.memfd(3).unwrap();
        assert_eq!(
            (inode.shmid, &memfd_path(inode)[..]),
            (77, &b"/memfd:jit (deleted)"[..])
        );
        assert!(t.memfd(1).is_err() && t.memfd(4).is_err());
        let zero = proto::MemfdInode {
            name: "/dev/zero".into(),
            ..Default::default()
        };
        assert_eq!(memfd_path(&zero), b"/dev/zero (deleted)");
        assert_eq!(sysv_path(0x1234), b"/SYSV00001234 (deleted)");
    }

    #[test]
    fn a_checkpoint_without_file_images_has_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTable::load(&DirStore::open(dir.path()).unwrap()).unwrap();
        assert!(t.regular_path(1).is_none());
    }
}
