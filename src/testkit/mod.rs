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
    pub use crate::archive::{index_diff, ArchiveOptions, ArchiveStore, Diff, DiffIndex};
    pub use crate::criu::image::{Image, ImageReader};
    pub use crate::criu::pagemap::{Cursor, PagemapReader};
    pub use crate::criu::store::{DirStore, ImageStore};
    pub use crate::tar::{Stream, TarReader};
}

/// How batch names output directories.
pub mod naming {
    pub use crate::batch::naming::{
        choose_names, output_name, InputId, Occupant, MAX_OUTPUT_NAME, RESERVED_NAMES,
    };
    pub use crate::outdir::is_safe_component;
}
