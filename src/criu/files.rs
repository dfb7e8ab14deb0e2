//! The files a checkpoint's processes had mapped: files.img (or the older
//! reg-files.img), memfd.img and remap-fpath.img, reduced to what memory
//! decoding needs: a path for each file id, and the shared-memory object
//! behind each memfd.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};

use super::image::Image;
use super::magic;
use super::store::ImageStore;
use crate::proto;

/// What a file id in files.img refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// A regular file, by its path in the task's mount namespace.
    Regular {
        /// Path.
        name: String,
        /// Size when dumped, if recorded.
        size: Option<u64>,
    },
    /// A memfd (or CRIU's memfd stand-in for shared anonymous memory).
    Memfd {
        /// Key into memfd.img.
        inode_id: u64,
    },
    /// Any other kind of file.
    Other(i32),
}

/// Files of a checkpoint.
#[derive(Debug, Default)]
pub struct FileTable {
    files: HashMap<u32, FileRef>,
    memfd: HashMap<u64, proto::MemfdInode>,
    deleted: HashSet<u32>,
}

/// Image `name` of `store`, checked against `magic`, or `None` if the store
/// has no such image.
pub(super) fn read_image(store: &dyn ImageStore, name: &str, magic: u32) -> Result<Option<Image>> {
    match store.read(name)? {
        None => Ok(None),
        Some(data) => Ok(Some(Image::parse(
            format!("{}/{name}", store.location()),
            data,
            magic,
        )?)),
    }
}

impl FileTable {
    /// Reads the file images of `store`; missing images mean no such files.
    pub fn load(store: &dyn ImageStore) -> Result<FileTable> {
        let mut t = FileTable::default();
        if let Some(mut img) = read_image(store, "files.img", magic::FILES)? {
            while let Some(e) = img.entry::<proto::FileEntry>()? {
                let r = match (e.reg, e.memfd) {
                    (Some(reg), _) => FileRef::Regular {
                        name: reg.name,
                        size: reg.size,
                    },
                    (None, Some(m)) => FileRef::Memfd {
                        inode_id: u64::from(m.inode_id),
                    },
                    (None, None) => FileRef::Other(e.r#type),
                };
                t.files.insert(e.id, r);
            }
        }
        if let Some(mut img) = read_image(store, "reg-files.img", magic::REG_FILES)? {
            while let Some(reg) = img.entry::<proto::RegFile>()? {
                t.files.entry(reg.id).or_insert(FileRef::Regular {
                    name: reg.name,
                    size: reg.size,
                });
            }
        }
        if let Some(mut img) = read_image(store, "memfd.img", magic::MEMFD_INODE)? {
            while let Some(m) = img.entry::<proto::MemfdInode>()? {
                t.memfd.insert(m.inode_id, m);
            }
        }
        if let Some(mut img) = read_image(store, "remap-fpath.img", magic::REMAP_FPATH)? {
            while let Some(r) = img.entry::<proto::RemapFilePath>()? {
                // LINKED (0) and GHOST (1) remaps stand for files that were
                // unlinked while open; PROCFS (2) does not.
                if r.remap_type.unwrap_or(0) <= 1 {
                    t.deleted.insert(r.orig_id);
                }
            }
        }
        Ok(t)
    }

    /// The file with this id.
    pub fn get(&self, id: u32) -> Option<&FileRef> {
        self.files.get(&id)
    }

    /// The path of a regular file as the kernel shows it (" (deleted)"
    /// appended for files unlinked while open).
    pub fn regular_path(&self, id: u32) -> Option<String> {
        match self.files.get(&id)? {
            FileRef::Regular { name, .. } if self.deleted.contains(&id) => {
                Some(format!("{name} (deleted)"))
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
            None => anyhow::bail!("files.img has no file id {id}"),
        }
    }
}

/// The path the kernel shows for a memfd: `/memfd:NAME (deleted)`, or for
/// shared anonymous memory (which CRIU records as a memfd named after the
/// shmem file) that file's own path, such as `/dev/zero (deleted)`.
pub fn memfd_path(inode: &proto::MemfdInode) -> String {
    if inode.name.starts_with('/') {
        format!("{} (deleted)", inode.name)
    } else {
        format!("/memfd:{} (deleted)", inode.name)
    }
}

/// The path the kernel shows for a System V shared memory segment.
pub fn sysv_path(key: u32) -> String {
    format!("/SYSV{key:08x} (deleted)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criu::store::DirStore;
    use crate::criu::writer::CheckpointWriter;

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
        assert_eq!(t.regular_path(1).as_deref(), Some("/usr/bin/app"));
        assert_eq!(t.regular_path(2).as_deref(), Some("/tmp/gone (deleted)"));
        assert_eq!(t.regular_path(3), None);
        let inode = t.memfd(3).unwrap();
        assert_eq!(
            (inode.shmid, memfd_path(inode).as_str()),
            (77, "/memfd:jit (deleted)")
        );
        assert!(t.memfd(1).is_err() && t.memfd(4).is_err());
        let zero = proto::MemfdInode {
            name: "/dev/zero".into(),
            ..Default::default()
        };
        assert_eq!(memfd_path(&zero), "/dev/zero (deleted)");
        assert_eq!(sysv_path(0x1234), "/SYSV00001234 (deleted)");
    }

    #[test]
    fn a_checkpoint_without_file_images_has_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTable::load(&DirStore::open(dir.path()).unwrap()).unwrap();
        assert!(t.get(1).is_none());
    }
}
