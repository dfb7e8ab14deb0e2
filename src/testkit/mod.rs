//! Test tooling, behind the `testkit` feature, which the tests, benchmarks,
//! fuzz targets and examples enable: writing CRIU images (a checkpoint of
//! any size, or one message at a time) and reaching the decoders a fuzz
//! target drives directly. None of it is part of the library's stable
//! interface: it names CRIU's generated messages ([`proto`]) and the
//! crate's internals, and changes with them.

pub mod synth;
mod writer;

pub use crate::criu::{magic, proto};
pub use writer::{image_bytes, CheckpointWriter, PageSpan};

/// Pagemap entry flags (`PE_*`) and VMA status bits, as CRIU writes them.
pub mod flags {
    pub use crate::criu::memory::status;
    pub use crate::criu::pagemap::{PE_LAZY, PE_PARENT, PE_PRESENT};
}

/// The decoders fuzz targets feed directly.
pub mod decode {
    pub use crate::archive::{ArchiveOptions, ArchiveStore, Diff};
    pub use crate::criu::image::{Image, ImageReader};
    pub use crate::criu::pagemap::{Cursor, PagemapReader};
    pub use crate::criu::store::{DirStore, ImageStore};
    pub use crate::rootfs_diff::{index_diff, DiffIndex};
    pub use crate::tar::{Stream, TarReader};
}

/// How batch names output directories.
pub mod naming {
    pub use crate::batch::naming::{
        choose_names, output_name, InputId, Occupant, MAX_OUTPUT_NAME, RESERVED_NAMES,
    };
    pub use crate::outdir::is_safe_component;
}

/// Path handling the fuzz targets drive: the root directory resolver, the
/// file view over layers and a root, and the sysroot writer.
pub mod paths {
    use std::path::Path;

    pub use crate::rootfs::{clean_key, FileView, RootFs};

    /// A sysroot being written (`--sysroot`), reached for tests.
    pub struct Sysroot(crate::sysroot::Sysroot);

    impl Sysroot {
        /// Makes `dir` if missing, and opens it.
        pub fn create(dir: &Path) -> crate::Result<Sysroot> {
            crate::sysroot::Sysroot::create(dir, None, None, &crate::Cancel::default())
                .map(Sysroot)
                .map_err(crate::Error::new)
        }

        /// Writes the file at `path` from `view`, with the view's links
        /// on the way and the top directory's links that lead to it, as
        /// for a process's mapped file.
        pub fn add_file(&self, view: &FileView, path: &[u8]) -> crate::Result<()> {
            self.0.add_path(view, path).map_err(crate::Error::new)
        }
    }

    /// A clean path split into its directory and last component.
    pub fn split(path: &[u8]) -> (&[u8], &[u8]) {
        crate::sysroot::split(path)
    }

    /// The relative link target from directory `from` to `to`.
    pub fn relative(from: &[u8], to: &[u8]) -> Vec<u8> {
        crate::sysroot::relative(from, to)
    }
}

/// Container images' internals the tests and fuzz targets build or check
/// by hand: digests, media types, layers, Podman's `deleted.files`.
pub mod oci {
    pub use crate::oci::archive::media_type;
    pub use crate::oci::digest::{Algorithm, Digest};
    pub use crate::oci::layers::{parse_deleted_files, Layer};
}
