//! criu2core turns CRIU checkpoints into ELF core files that gdb, lldb,
//! eu-stack and drgn read as they read a core the kernel wrote.
//!
//! Data flows one way: an image store ([`criu::store`]) → CRIU image
//! decoding ([`criu`]) → the process model ([`model`]) → note building
//! ([`notes`], [`arch`]) → the ELF core writer ([`elf`]), tied together by
//! [`convert`].

pub mod arch;
pub mod archive;
pub mod batch;
pub mod container;
pub mod convert;
pub mod criu;
pub mod elf;
pub mod input;
pub mod inspect;
pub mod model;
pub mod notes;
pub mod rootfs;

/// Messages of CRIU's image format, generated from `proto/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/criu.rs"));
}
