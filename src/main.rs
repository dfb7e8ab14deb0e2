//! The `criu2core` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use criu2core::convert;
use criu2core::criu::store::DirStore;
use criu2core::criu::{Checkpoint, LoadOptions, Loaded};
use criu2core::rootfs::RootFs;

/// Convert CRIU checkpoints into ELF core files for gdb, lldb, eu-stack and drgn.
#[derive(Parser)]
#[command(name = "criu2core", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write one core file per process of a checkpoint.
    #[command(after_help = "Examples:\n  \
        criu2core convert -i /var/lib/criu/dump -o cores\n  \
        criu2core convert dump/ -o cores -p 1 --root /srv/rootfs\n  \
        gdb /srv/rootfs/usr/bin/app -ex 'set sysroot /srv/rootfs' cores/core.1")]
    Convert(ConvertArgs),
}

#[derive(Args)]
struct ConvertArgs {
    /// CRIU image directory.
    #[arg(
        value_name = "IMAGES",
        required_unless_present = "images_dir",
        conflicts_with = "images_dir"
    )]
    input: Option<PathBuf>,
    /// CRIU image directory (as criu-coredump's -i).
    #[arg(short = 'i', long = "images-dir", value_name = "IMAGES")]
    images_dir: Option<PathBuf>,
    /// Directory for the core files (created if missing).
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
    /// Convert only this process (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Root filesystem (sysroot or container rootfs) to read unmodified
    /// file-backed pages from, so the core holds them too.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Replace existing core files.
    #[arg(short, long)]
    force: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn convert(args: &ConvertArgs) -> Result<bool> {
    let input = args
        .input
        .as_ref()
        .or(args.images_dir.as_ref())
        .context("no input given")?;
    let store = Arc::new(DirStore::open(input)?);
    let ckpt = Checkpoint::open(store)?;
    let root = args.root.as_ref().map(RootFs::new).transpose()?;
    let pids = if args.pids.is_empty() {
        ckpt.pids()
    } else {
        for pid in &args.pids {
            if !ckpt.pids().contains(pid) {
                bail!(
                    "pid {pid} is not in the checkpoint (it has {:?})",
                    ckpt.pids()
                );
            }
        }
        args.pids.clone()
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("{}: cannot create", args.out_dir.display()))?;
    let mut ok = true;
    for pid in pids {
        if let Err(e) = convert_one(&ckpt, pid, root.as_ref(), &args.out_dir, args) {
            eprintln!("criu2core: pid {pid}: {e:#}");
            ok = false;
        }
    }
    Ok(ok)
}

fn convert_one(
    ckpt: &Checkpoint,
    pid: u32,
    root: Option<&RootFs>,
    out: &Path,
    args: &ConvertArgs,
) -> Result<()> {
    let process = match ckpt.load(pid, LoadOptions { root })? {
        Loaded::Zombie { pid, exit_code } => {
            eprintln!("criu2core: pid {pid} is a zombie (exit code {exit_code}): it has no memory or registers, no core written");
            return Ok(());
        }
        Loaded::Process(p) => p,
    };
    for w in &process.warnings {
        eprintln!("criu2core: warning: pid {pid}: {w}");
    }
    let stats = convert::write_core(&process, out, args.force)?;
    if !args.quiet {
        println!(
            "{}: pid {} ({}), {} thread{}, {} ({} of memory contents)",
            stats.path.display(),
            process.pid,
            process.comm,
            process.threads.len(),
            if process.threads.len() == 1 { "" } else { "s" },
            human(stats.size),
            human(stats.copied),
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Convert(args) => convert(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("criu2core: {e:#}");
            ExitCode::FAILURE
        }
    }
}
