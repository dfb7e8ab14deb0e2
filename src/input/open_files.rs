//! What a checkpoint's processes had open and the mounts they saw, decoded
//! into the model when asked for: inspect asks, a conversion does not.

use anyhow::Result;

use super::Checkpoint;
use crate::criu::fds::FileTables;
use crate::criu::memory::MAX_PARENT_DEPTH;
use crate::criu::mounts;
use crate::model::fds::ProcessFiles;
use crate::model::mounts::Mount;
use crate::model::Arch;

/// The open files of a checkpoint's processes: its file images, decoded
/// once for all of them.
pub(crate) struct OpenFiles<'a> {
    ckpt: &'a Checkpoint,
    tables: FileTables,
}

impl OpenFiles<'_> {
    /// What process `pid`, whose architecture is `arch`, had open.
    pub(crate) fn process(&self, pid: u32, arch: Arch) -> Result<ProcessFiles> {
        let store = self.ckpt.images.store();
        self.tables.process(&**store, pid, arch.big_endian())
    }
}

impl Checkpoint {
    /// The file images, decoded: what each process had open is read
    /// through them ([`OpenFiles::process`]).
    pub(crate) fn open_files(&self) -> Result<OpenFiles<'_>> {
        Ok(OpenFiles {
            ckpt: self,
            tables: FileTables::load(&**self.images.store())?,
        })
    }

    /// The mounts of mount namespace `ns`, each after the one it is
    /// mounted on; `None` if the checkpoint holds none for it.
    pub(crate) fn mounts(&self, ns: u32) -> Result<Option<Vec<Mount>>> {
        mounts::load(&**self.images.store(), ns)
    }

    /// Where the images of the parent dumps of an incremental chain are,
    /// the parent first, as far as they can be followed.
    pub(crate) fn parent_dumps(&self) -> Vec<String> {
        let mut current = self.images.store().clone();
        let mut seen = vec![current.location()];
        while seen.len() <= MAX_PARENT_DEPTH {
            let Ok(Some(parent)) = current.parent() else {
                break;
            };
            let loc = parent.location();
            if seen.contains(&loc) {
                break;
            }
            seen.push(loc);
            current = parent;
        }
        seen.split_off(1)
    }
}
