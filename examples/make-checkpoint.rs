//! Writes a synthetic CRIU checkpoint (see `criu2core::testkit::synth`):
//!
//! ```text
//! cargo run --release --example make-checkpoint -- OUT_DIR [--size 4G] [--vmas 20000]
//!     [--processes 1] [--threads 4] [--seed 1] [--holes 4] [--compressible]
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

use criu2core::testkit::synth::{self, Spec};

/// Write a synthetic CRIU checkpoint, deterministic from its seed.
#[derive(Parser)]
struct Args {
    /// Directory for the images (created).
    out: PathBuf,
    /// Dumped page bytes in all (K, M, G suffixes).
    #[arg(long, default_value = "64M", value_parser = size)]
    size: u64,
    /// Mappings per process.
    #[arg(long, default_value_t = 1000)]
    vmas: u32,
    /// Processes.
    #[arg(long, default_value_t = 1)]
    processes: u32,
    /// Threads per process.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One page in N of the anonymous mappings is left untouched (0: none).
    #[arg(long, default_value_t = 4)]
    holes: u32,
    /// Page contents that compress about 3.5:1, as real memory does
    /// (default: random bytes, which do not compress).
    #[arg(long)]
    compressible: bool,
}

fn size(s: &str) -> Result<u64> {
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: u64 = num.parse().with_context(|| format!("not a size: {s}"))?;
    match n.checked_mul(1 << shift) {
        Some(v) => Ok(v),
        None => bail!("size too large: {s}"),
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let spec = Spec {
        seed: a.seed,
        processes: a.processes,
        threads: a.threads,
        vmas: a.vmas,
        bytes: a.size,
        holes: a.holes,
        compressible: a.compressible,
    };
    let s = synth::synthesize(&a.out, &spec)?;
    println!(
        "{}: {} process(es), {} mappings, {} bytes mapped, {} bytes of pages",
        a.out.display(),
        s.pids.len(),
        s.vmas,
        s.mapped_bytes,
        s.page_bytes
    );
    Ok(())
}
