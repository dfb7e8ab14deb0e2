//! criu2core turns CRIU checkpoints into ELF core files that gdb, lldb,
//! eu-stack and drgn read as they read a core the kernel wrote, and tells
//! people what a checkpoint holds. This is the library the `criu2core`
//! command is made of.
//!
//! # The library in one page
//!
//! - [`open`] reads any checkpoint — a CRIU image directory, an unpacked
//!   container checkpoint, a Podman, CRI-O or kubelet checkpoint archive
//!   (plain, gzip or zstd) — into a [`Checkpoint`] ([`OpenOptions`]: where
//!   a compressed archive is unpacked, and how much of it).
//! - A [`Checkpoint`] lists its [processes](Checkpoint::processes), its
//!   [container](Checkpoint::container) and what is
//!   [wrong with it](Checkpoint::warnings), and
//!   [loads](Checkpoint::load) a process with the options the command line
//!   has ([`LoadOptions`]: a root filesystem, the archive's rootfs diff)
//!   as a [`Loaded::Process`] or a [`Loaded::Zombie`].
//! - A [`Process`] ([`model`]) has its threads and their registers
//!   ([`model::regs`], one module per architecture), its mappings, and its
//!   memory, described rather than held: [`Process::read_memory`],
//!   [`Process::argv`], [`Process::walk`].
//! - [`CoreWriter`] writes a process's core into a file, any seekable
//!   writer, or `core.<pid>` in a directory (as [`write_core`] does).
//! - [`Checkpoint::inspect`] builds the [`inspect::Report`] that
//!   `criu2core inspect` prints, as text or JSON: processes, memory, and
//!   where asked open files, sockets and mounts. The library gives data
//!   (serde serializes it); the text for a terminal is the command line's.
//! - [`search`] finds bytes in a process's memory as its core would hold
//!   them, streaming the pages files ([`Process::search`]); [`grep`] runs
//!   it over many checkpoints in parallel, handing each find in order to
//!   the caller's renderer, and [`read`] writes an address range, as
//!   `criu2core grep` and `criu2core read` do.
//! - [`batch`] converts many checkpoints into one directory, resumably,
//!   as `criu2core convert` and `criu2core batch` do.
//! - [`oci`] reads container images (OCI layouts and archives,
//!   docker-archives) and the file view their layers make.
//! - [`Cancel`] stops any of it from another thread or a signal handler;
//!   [`Error`] says what went wrong, naming the file and offset, and its
//!   [`ErrorKind`] lets a caller tell a file that is no checkpoint from a
//!   damaged image, an unsupported architecture, a bound exceeded or I/O.
//! - [`limits`] lists the bounds hostile input meets.
//!
//! What each module owns is ARCHITECTURE.md; how the images are decoded
//! and the cores laid out, the manual (docs/).
//!
//! # Example
//!
//! Opens the bundled checkpoint archive, lists its processes and writes
//! their cores. The archive's `rootfs-diff.tar` holds the program the
//! container ran, so the core carries its pages too, as the command line's
//! does:
//!
//! ```
//! use criu2core::{open, CoreWriter, LoadOptions, Loaded, OpenOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ckpt = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
//! let name = ckpt.container().and_then(|c| c.name.as_deref());
//! println!("container {}", name.unwrap_or("-"));
//! let cores = tempfile::tempdir()?;
//! for entry in ckpt.processes() {
//!     match ckpt.load(entry.pid, &LoadOptions::default())? {
//!         Loaded::Process(p) => {
//!             let argv = p.argv()?;
//!             println!("{}: {} threads, {}", p.pid, p.threads.len(), String::from_utf8_lossy(&argv[0]));
//!             let core = CoreWriter::new(&p)?.write_into(cores.path(), false)?;
//!             println!("{}: {} bytes", core.path.display(), core.size);
//!             // Without the rootfs diff, the program's pages are not in it.
//!             let bare = ckpt.load(entry.pid, &LoadOptions::default().rootfs_diff(false))?;
//!             let Loaded::Process(bare) = bare else { unreachable!() };
//!             assert!(p.stored_bytes() > bare.stored_bytes());
//!         }
//!         Loaded::Zombie(z) => println!("{}: zombie, {}", z.pid, z.exit),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The manual's Rust examples (docs/library.md), compiled and run by
/// `cargo test`; the other blocks there are shell sessions and text, which
/// rustdoc leaves alone.
#[cfg(doctest)]
#[doc = include_str!("../docs/library.md")]
pub struct ReadmeDoctests;

mod arch;
mod archive;
pub mod batch;
mod blobio;
mod cancel;
mod compress;
mod container;
mod coredump;
mod criu;
pub mod diff;
mod elf;
mod error;
pub mod grep;
mod input;
pub mod inspect;
mod join;
mod linkmap;
pub mod model;
mod notes;
pub mod oci;
mod outdir;
mod paths;
pub mod read;
mod readahead;
#[cfg(feature = "object-store")]
mod remote;
#[cfg(not(feature = "object-store"))]
#[path = "remote_off.rs"]
mod remote;
mod rootfs;
mod rootfs_diff;
pub mod search;
mod spill;
mod stdext;
mod sysroot;
mod tar;
#[cfg(feature = "testkit")]
pub mod testkit;
mod text;
mod verify;
mod warning;
#[cfg(feature = "yara")]
pub mod yara;

pub use cancel::Cancel;
pub use container::ContainerInfo;
pub use coredump::{write_core, CoreCompression, CoreStats, CoreWriter, Written};
pub use error::{Error, ErrorKind, Result};
pub use input::{
    open, Checkpoint, Compression, ImageRef, ImageUse, InputKind, LoadOptions, OpenOptions, PageUse,
};
pub use model::source::RemoteObject;
pub use model::{Loaded, Process, Zombie};
pub use spill::SpillOptions;
pub use warning::{Warning, WarningKind};

use criu::proto;

/// The bounds criu2core sets on what a checkpoint may claim. Past one, the
/// input (or, for one process's bounds, that process) is refused with an
/// [`ErrorKind::Limit`] error naming the file, the number and the bound.
pub mod limits {
    pub use crate::archive::MAX_MEMBERS;
    pub use crate::criu::files::{MAX_FILE_ENTRIES, MAX_FILE_ENTRY_BYTES};
    pub use crate::criu::memory::{MAX_PARENT_DEPTH, MAX_VMA_BYTES};
    pub use crate::criu::pagemap::MAX_ENTRY_BYTES as MAX_PAGEMAP_ENTRY_BYTES;
    pub use crate::criu::store::MAX_IMAGE_BYTES;
    pub use crate::criu::{MAX_PAGE_SIZE, MAX_PIDS, MAX_THREADS, MAX_VMAS, MIN_PAGE_SIZE};
    pub use crate::diff::MAX_PAGE_RANGES;
    pub use crate::input::MAX_CONTAINER_DUMP_BYTES;
    pub use crate::model::MAX_STRINGS_BYTES;
    pub use crate::rootfs_diff::MAX_DIFF_MEMBERS;
    pub use crate::tar::{MAX_NAME_BYTES, MAX_PAX_BYTES};
}
