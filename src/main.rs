//! The `criu2core` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use criu2core::batch::{self, BatchOptions};
use criu2core::convert::{self, ConvertOptions, Outcome, ProcessReport};
use criu2core::input::{self, OpenOptions};
use criu2core::inspect::{self, human_bytes};

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
    #[command(after_help = "\
Inputs are CRIU image directories, unpacked container checkpoints (a
directory with checkpoint/), or checkpoint archives (.tar, .tar.gz, .tar.zst
as Podman, CRI-O and the kubelet write them; recognised by content). With
several inputs, each gets a subdirectory of OUT_DIR named after it.

Examples:
  criu2core convert -i /var/lib/criu/dump -o cores
  criu2core convert checkpoint-web_default-app-2026-11-24T10:00:00Z.tar -o cores
  criu2core convert dump/ -o cores -p 1 --root /srv/rootfs
  gdb /srv/rootfs/usr/bin/app -ex 'set sysroot /srv/rootfs' cores/core.1")]
    Convert(ConvertArgs),
    /// Show a checkpoint's container, processes and memory.
    #[command(after_help = "\
Examples:
  criu2core inspect checkpoint.tar.zst
  criu2core inspect --env /var/lib/criu/dump
  criu2core inspect --json checkpoint.tar | jq '.processes[].argv'")]
    Inspect(InspectArgs),
    /// Convert many checkpoints in parallel, resumably, with a summary.
    #[command(after_help = "\
Each input (checkpoint, or a directory of checkpoints) gets OUT_DIR/<name>/;
OUT_DIR/summary.json says what became of each. A second run skips inputs
whose cores are complete unless --force. Exits non-zero if any input failed.

Examples:
  criu2core batch /var/lib/kubelet/checkpoints -o cores
  criu2core batch a.tar b.tar.zst dump-dir/ -o cores -j 4")]
    Batch(BatchArgs),
}

#[derive(Args)]
struct ConvertArgs {
    /// Checkpoints: image directories or archives.
    #[arg(value_name = "INPUT", required_unless_present = "images_dir")]
    inputs: Vec<PathBuf>,
    /// A checkpoint (as criu-coredump's -i); may be repeated.
    #[arg(short = 'i', long = "images-dir", value_name = "INPUT")]
    images_dir: Vec<PathBuf>,
    /// Directory for the core files (created if missing).
    #[arg(
        short = 'o',
        long = "out-dir",
        value_name = "OUT_DIR",
        default_value = "."
    )]
    out_dir: PathBuf,
    /// Convert only this process (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Root filesystem (sysroot or container rootfs) to read unmodified
    /// file-backed pages from, so the core holds them too. Files in an
    /// archive's rootfs-diff.tar take precedence.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Replace existing core files.
    #[arg(short, long)]
    force: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long)]
    quiet: bool,
    /// Where compressed archives are unpacked while converting (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
}

#[derive(Args)]
struct InspectArgs {
    /// A checkpoint: image directory or archive.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// Also show each process's environment.
    #[arg(long)]
    env: bool,
    /// Print JSON (schema in docs/inspect.schema.json).
    #[arg(long)]
    json: bool,
    /// Where compressed archives are unpacked (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
}

#[derive(Args)]
struct BatchArgs {
    /// Checkpoints, or directories holding them.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,
    /// Directory for the cores and summary.json.
    #[arg(short = 'o', long = "out-dir", value_name = "OUT_DIR")]
    out_dir: PathBuf,
    /// Inputs converted at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
    /// Convert again inputs whose cores are already complete.
    #[arg(short, long)]
    force: bool,
    /// Root filesystem for unmodified file-backed pages.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
    /// Where compressed archives are unpacked (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
}

fn print_report(r: &ProcessReport, quiet: bool) {
    for w in &r.warnings {
        eprintln!("criu2core: warning: pid {}: {w}", r.pid);
    }
    match &r.outcome {
        Outcome::Written { stats, threads } if !quiet => println!(
            "{}: pid {} ({}), {} thread{}, {} ({} of memory contents)",
            stats.path.display(),
            r.pid,
            r.comm.as_deref().unwrap_or("?"),
            threads,
            if *threads == 1 { "" } else { "s" },
            human_bytes(stats.size),
            human_bytes(stats.copied),
        ),
        Outcome::Written { .. } => {}
        Outcome::Zombie { exit_code } => eprintln!(
            "criu2core: pid {} is a zombie (exit code {exit_code}): it has no memory or registers, no core written",
            r.pid
        ),
        Outcome::Failed(e) => eprintln!("criu2core: pid {}: {e}", r.pid),
    }
}

fn convert(args: &ConvertArgs) -> Result<bool> {
    let inputs: Vec<PathBuf> = args
        .inputs
        .iter()
        .chain(&args.images_dir)
        .cloned()
        .collect();
    if inputs.len() > 1 && !args.pids.is_empty() {
        bail!("-p/--pid applies to one input at a time");
    }
    let names = batch::output_names(&inputs);
    let opts = ConvertOptions {
        pids: args.pids.clone(),
        root: args.root.clone(),
        force: args.force,
    };
    let mut ok = true;
    for (path, name) in inputs.iter().zip(&names) {
        let out = if inputs.len() == 1 {
            args.out_dir.clone()
        } else {
            args.out_dir.join(name)
        };
        let result = input::open(
            path,
            &OpenOptions {
                spill_dir: args.tmpdir.clone(),
            },
        )
        .and_then(|inp| {
            convert::convert_input(&inp, &out, &opts, &mut |r| print_report(r, args.quiet))
        });
        match result {
            Ok(reports) => {
                ok &= reports
                    .iter()
                    .all(|r| !matches!(r.outcome, Outcome::Failed(_)))
            }
            Err(e) => {
                eprintln!("criu2core: {e:#}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn inspect(args: &InspectArgs) -> Result<bool> {
    let inp = input::open(
        &args.input,
        &OpenOptions {
            spill_dir: args.tmpdir.clone(),
        },
    )?;
    let report = inspect::inspect(&inp, args.env);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(report.processes.iter().all(|p| p.error.is_none()))
}

fn batch(args: &BatchArgs) -> Result<bool> {
    let inputs = batch::expand_inputs(&args.inputs)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = BatchOptions {
        jobs,
        force: args.force,
        root: args.root.clone(),
        spill_dir: args.tmpdir.clone(),
        progress: !args.quiet,
    };
    let summary = batch::run(&inputs, &args.out_dir, &opts)?;
    if !args.quiet {
        println!(
            "{} input{}: {} converted, {} already complete, {} failed; summary in {}",
            summary.inputs.len(),
            if summary.inputs.len() == 1 { "" } else { "s" },
            summary.ok,
            summary.skipped,
            summary.failed,
            Path::new(&args.out_dir).join("summary.json").display()
        );
    }
    for s in summary.inputs.iter().filter(|s| s.status == "failed") {
        eprintln!(
            "criu2core: {}: {}",
            s.input,
            s.error.as_deref().unwrap_or("failed")
        );
    }
    Ok(summary.failed == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Convert(a) => convert(a),
        Command::Inspect(a) => inspect(a),
        Command::Batch(a) => batch(a),
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
