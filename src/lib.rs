//! criu2core turns CRIU checkpoints into ELF core files that gdb, lldb,
//! eu-stack and drgn read as they read a core the kernel wrote.
//!
//! Data flows one way: an input (image directory or checkpoint archive,
//! [`input`], [`archive`]) → CRIU image decoding ([`criu`]) → the process
//! model ([`model`]: threads, registers, mappings, and page runs walked on
//! demand rather than held) → note
//! building ([`notes`], one module per architecture in [`arch`]) → the ELF
//! core writer ([`elf`]), tied together by [`convert`]. Container images
//! (OCI layouts and archives, docker-archives) and the file view their
//! layers make are read by [`image`].
//!
//! The same model serves forensics without a core: [`search`] finds bytes
//! in a process's memory as its core would hold it, streaming the pages
//! files ([`grep`] runs it over many checkpoints in parallel, [`read`]
//! reads an address range), and [`criu::fds`], [`criu::sockets`] and
//! [`criu::mounts`] decode open files, sockets and mounts for [`inspect`].
//!
//! # Reading a checkpoint and writing cores
//!
//! ```no_run
//! use criu2core::criu::{LoadOptions, Loaded};
//!
//! # fn main() -> anyhow::Result<()> {
//! let input = criu2core::open("checkpoint-web_default-app.tar.zst".as_ref())?;
//! for pid in input.checkpoint.pids() {
//!     match input.checkpoint.load(pid, LoadOptions::default())? {
//!         Loaded::Process(p) => {
//!             println!("{} {:?}: {} threads", p.pid, p.read_strings(p.arg_range)?, p.threads.len());
//!             let core = criu2core::write_core(&p, "cores".as_ref(), false)?;
//!             println!("wrote {}", core.path.display());
//!         }
//!         Loaded::Zombie { pid, .. } => println!("{pid} is a zombie"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # A whole checkpoint, end to end
//!
//! This builds a one-thread checkpoint with [`criu::writer`], reads it back
//! into the process model, and writes its core:
//!
//! ```
//! use criu2core::criu::pagemap::PE_PRESENT;
//! use criu2core::criu::writer::{CheckpointWriter, PageSpan};
//! use criu2core::criu::{LoadOptions, Loaded};
//! use criu2core::proto;
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let w = CheckpointWriter::create(dir.path().join("images"), 4096)?;
//! w.inventory()?;
//! w.pstree(&[proto::PstreeEntry { pid: 1, ppid: 0, pgid: 1, sid: 1, threads: vec![1] }])?;
//! let regs = proto::X86Regs { ip: 0x40_1000, sp: 0x7ff0_0ff0, cs: 0x33, ss: 0x2b, ..Default::default() };
//! let fpregs = proto::X86Fpregs { st_space: vec![0; 32], xmm_space: vec![0; 64], ..Default::default() };
//! w.core(1, &proto::Core {
//!     mtype: proto::core::Arch::X8664 as i32,
//!     x86: Some(proto::ThreadInfoX86 { clear_tid_addr: 0, gpregs: regs, fpregs, tls: vec![] }),
//!     tc: Some(proto::TaskCore { task_state: 1, comm: "app".into(), ..Default::default() }),
//!     ..Default::default()
//! })?;
//! // One page of stack: anonymous, private (status VMA_AREA_REGULAR | VMA_ANON_PRIVATE).
//! let stack = proto::Vma { start: 0x7ff0_0000, end: 0x7ff0_1000, prot: 3, flags: 0x22, status: 0x201, fd: -1, ..Default::default() };
//! w.mm(1, &proto::Mm { vmas: vec![stack], arg_start: 0x7ff0_0f00, arg_end: 0x7ff0_0f04, ..Default::default() })?;
//! let mut page = vec![0u8; 4096];
//! page[0xf00..0xf04].copy_from_slice(b"app\0");
//! w.pagemap("pagemap-1.img", 1, [PageSpan { vaddr: 0x7ff0_0000, nr_pages: 1, flags: PE_PRESENT, data: &page }])?;
//!
//! let input = criu2core::open(&dir.path().join("images"))?;
//! let Loaded::Process(p) = input.checkpoint.load(1, LoadOptions::default())? else { unreachable!() };
//! assert_eq!(p.read_strings(p.arg_range)?, ["app"]);
//! let core = criu2core::write_core(&p, dir.path(), false)?;
//! assert_eq!(&std::fs::read(&core.path)?[..4], b"\x7fELF");
//! # Ok(()) }
//! ```

pub mod arch;
pub mod archive;
pub mod batch;
pub mod cancel;
pub mod cli;
pub mod container;
pub mod convert;
pub mod criu;
pub mod elf;
pub mod grep;
pub mod image;
pub mod input;
pub mod inspect;
pub mod model;
pub mod notes;
pub mod outdir;
pub mod read;
pub mod rootfs;
pub mod search;
pub mod synth;
pub mod text;

pub use convert::write_core;
pub use input::Input;
pub use model::Process;

/// Opens a checkpoint: an image directory, an unpacked container
/// checkpoint, or a checkpoint archive (compressed archives are unpacked
/// into the system temporary directory while the [`Input`] lives).
pub fn open(path: &std::path::Path) -> anyhow::Result<Input> {
    input::open(path, &input::OpenOptions::default())
}

/// Messages of CRIU's image format, generated from `proto/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/criu.rs"));
}
