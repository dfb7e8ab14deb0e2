//! The command line: `criu2core convert | inspect | grep | read | batch |
//! completions | man`, shared by the `criu2core` binary and the checkpointctl plugin.

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::batch::{self, BatchOptions, EachOptions, InputSummary};
use crate::cancel::Cancel;
use crate::convert::{ConvertOptions, Outcome, ProcessReport};
use crate::criu::{LoadOptions, Loaded};
use crate::grep::{Format, GrepOptions, Mode};
use crate::input::{self, OpenOptions};
use crate::inspect::{self, human_bytes};
use crate::search::{Filter, Glob, Pattern, PatternOptions};
use crate::text::{escape, json_for_terminal, EscapingWriter};

/// Writes `text` to stdout. When the reader has gone away (`| head`), the
/// process ends as a SIGPIPE would end it, without a panic.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        r => r.context("cannot write to stdout"),
    }
}

/// CRIU image versions this release reads.
pub const IMAGE_VERSIONS: &str =
    "CRIU image format v2 (CRIU 3.x and 4.x; v1.1 images of CRIU 1.x-2.x too)";

fn long_version() -> &'static str {
    let arches: Vec<&str> = crate::arch::Arch::ALL.iter().map(|a| a.name()).collect();
    let text = format!(
        "{}\nreads:         {IMAGE_VERSIONS}\narchitectures: {} (on any host)",
        env!("CARGO_PKG_VERSION"),
        arches.join(", ")
    );
    Box::leak(text.into_boxed_str())
}

/// Convert CRIU checkpoints into ELF core files for gdb, lldb, eu-stack and drgn.
#[derive(Parser)]
#[command(name = "criu2core", version, long_version = long_version(), about, long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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
several inputs, each gets a subdirectory of OUT_DIR named after it (the
README gives the rule).

After each core, convert prints the gdb command that opens it. With --root
that is gdb -iex 'set sysroot ROOT' ROOT/EXE CORE: the sysroot must be set
with -iex (before the core is loaded), not -ex, or gdb cannot place a
position-independent program.

Examples:
  criu2core convert -i /var/lib/criu/dump -o cores
  criu2core convert checkpoint-web_default-app-2026-11-24T10:00:00Z.tar -o cores
  criu2core convert dump/ -o cores -p 1 --root /srv/rootfs
  gdb -iex 'set sysroot /srv/rootfs' /srv/rootfs/usr/bin/app cores/core.1")]
    Convert(ConvertArgs),
    /// Show a checkpoint's container, processes and memory.
    #[command(after_help = "\
Examples:
  criu2core inspect checkpoint.tar.zst
  criu2core inspect --env /var/lib/criu/dump
  criu2core inspect --sockets checkpoint.tar.zst
  criu2core inspect --json checkpoint.tar | jq '.processes[].argv'
  criu2core inspect --json --sockets ck.tar | jq '.processes[].sockets[].remote.address'")]
    Inspect(InspectArgs),
    /// Search the memory of checkpointed processes.
    #[command(after_help = "\
Searches each process's memory as its core would hold it: dumped pages,
shared memory, pages of parent dumps; never across an unmapped gap or an
anonymous hole CRIU did not dump. A line per match: input, pid, comm,
address, and the mapping [start-end prot kind path +file-offset].

Exit status: 0 something matched, 1 nothing did, 2 an error.

Examples:
  criu2core grep RANDOM_1432_KEY checkpoint.tar.zst
  criu2core grep -E 'AKIA[0-9A-Z]{16}' --kind heap --kind anon /var/lib/kubelet/checkpoints
  criu2core grep --utf16 -i password -C 32 dump/
  criu2core grep --hex 'de ad be ef' --prot rw --json dump/ | jq .address")]
    Grep(GrepArgs),
    /// Write the bytes at an address of a checkpointed process's memory.
    #[command(after_help = "\
Writes raw bytes to stdout (refused when stdout is a terminal: use
--hexdump, or redirect). Addresses are hexadecimal with 0x, else decimal.

Examples:
  criu2core read dump/ --pid 1 0x7f3a5c000000 64 --hexdump
  criu2core read dump/ --pid 1 --mapping 0x55a1500d50c0 > data.bin")]
    Read(ReadArgs),
    /// Convert many checkpoints in parallel, resumably, with a summary.
    #[command(after_help = "\
Each input (checkpoint, or a directory searched for checkpoints 8 levels
deep) gets OUT_DIR/<name>/, named after it and kept for it on later runs;
OUT_DIR/summary.json says what became of every input there. A later run
skips inputs whose cores are complete, and refuses to replace cores made
with other options, unless --force. Exits non-zero if any input failed.

Examples:
  criu2core batch /var/lib/kubelet/checkpoints -o cores
  criu2core batch a.tar b.tar.zst dump-dir/ -o cores -j 4")]
    Batch(BatchArgs),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  criu2core completions bash > /etc/bash_completion.d/criu2core
  criu2core completions zsh > \"${fpath[1]}/_criu2core\"
  criu2core completions fish > ~/.config/fish/completions/criu2core.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (or write one per subcommand into a directory).
    #[command(after_help = "\
Examples:
  criu2core man | man -l -
  criu2core man --out-dir /usr/local/share/man/man1")]
    Man {
        /// Write criu2core.1 and criu2core-SUBCOMMAND.1 here instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
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
    /// The most a compressed archive may unpack into --tmpdir (K, M, G, T;
    /// default: half of the space free there).
    #[arg(long, value_name = "SIZE", value_parser = input::parse_size)]
    max_spill: Option<u64>,
    /// Print a JSON report (schema criu2core.convert/2) instead of lines.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// A checkpoint: image directory or archive.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// Also show each process's environment.
    #[arg(long)]
    env: bool,
    /// Also show each process's open file descriptors and directories.
    #[arg(long)]
    fds: bool,
    /// Also show each process's sockets: protocol, state, addresses, queues.
    #[arg(long)]
    sockets: bool,
    /// Also show the mounts of each mount namespace.
    #[arg(long)]
    mounts: bool,
    /// All of the above: --env --fds --sockets --mounts.
    #[arg(long)]
    all: bool,
    /// Print JSON (schema in docs/inspect.schema.json).
    #[arg(long)]
    json: bool,
    /// Where compressed archives are unpacked (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
    /// The most a compressed archive may unpack into --tmpdir (K, M, G, T;
    /// default: half of the space free there).
    #[arg(long, value_name = "SIZE", value_parser = input::parse_size)]
    max_spill: Option<u64>,
}

#[derive(Args)]
struct GrepArgs {
    /// What to look for: a literal (default), a regular expression (-E) or hex bytes (--hex).
    #[arg(value_name = "PATTERN")]
    pattern: String,
    /// Checkpoints (image directories, archives), or directories holding them.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,
    /// PATTERN is a regular expression over bytes (the regex crate's syntax).
    #[arg(short = 'E', long = "extended-regexp", visible_alias = "regex")]
    regex: bool,
    /// Letters match either case.
    #[arg(short = 'i', long)]
    ignore_case: bool,
    /// PATTERN is bytes in hex: 'de ad be ef', deadbeef, 0xde,0xad.
    #[arg(long, conflicts_with = "regex")]
    hex: bool,
    /// Also find the UTF-16LE form of PATTERN (Java, .NET and Windows strings).
    #[arg(long, conflicts_with = "regex")]
    utf16: bool,
    /// Only this process (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pids: Vec<u32>,
    /// Only mappings of this kind (repeatable): anon, heap, stack, file, shmem, vdso, other.
    #[arg(long = "kind", value_name = "KIND", value_parser = parse_kind)]
    kinds: Vec<crate::search::Kind>,
    /// Only mappings with this protection: letters (rw: at least readable
    /// and writable) or three columns (r-x: exactly).
    #[arg(long, value_name = "PROT", value_parser = crate::search::ProtFilter::parse)]
    prot: Option<crate::search::ProtFilter>,
    /// Only mappings whose path matches this glob (repeatable; * matches / too).
    #[arg(long = "path", value_name = "GLOB")]
    paths: Vec<String>,
    /// Only addresses from START up to END (hex with 0x, or decimal).
    #[arg(long, value_name = "START-END", value_parser = crate::search::parse_range)]
    range: Option<(u64, u64)>,
    /// Show N bytes of context before and after each match.
    #[arg(short = 'C', long = "context", value_name = "N", default_value_t = 0)]
    context: usize,
    /// Print the number of matches of each process instead.
    #[arg(short = 'c', long, conflicts_with_all = ["list", "hexdump"])]
    count: bool,
    /// Print only the processes with a match.
    #[arg(short = 'l', long = "list", conflicts_with = "hexdump")]
    list: bool,
    /// Stop after N matches in each process.
    #[arg(short = 'm', long = "max-count", value_name = "N")]
    max_count: Option<u64>,
    /// Show each match and its context as a hex dump.
    #[arg(long, conflicts_with = "json")]
    hexdump: bool,
    /// Print JSON Lines (schema in docs/grep.schema.json).
    #[arg(long)]
    json: bool,
    /// Processes searched at once (default: number of CPUs).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
    /// Also search the unmodified pages of mapped files, read from this root filesystem.
    #[arg(long, value_name = "DIR", requires = "files")]
    root: Option<PathBuf>,
    /// Search file pages from --root too (the same in every copy of a program).
    #[arg(long, requires = "root")]
    files: bool,
    /// Longest regular-expression match found whole across a read boundary.
    #[arg(long, value_name = "BYTES")]
    span: Option<usize>,
    /// Colour matches: auto (on a terminal), always, never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
    /// Where compressed archives are unpacked (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
    /// The most a compressed archive may unpack into --tmpdir (K, M, G, T;
    /// default: half of the space free there).
    #[arg(long, value_name = "SIZE", value_parser = input::parse_size)]
    max_spill: Option<u64>,
}

fn parse_kind(s: &str) -> Result<crate::search::Kind> {
    crate::search::Kind::parse(s)
}

#[derive(Args)]
struct ReadArgs {
    /// A checkpoint: image directory or archive.
    #[arg(value_name = "INPUT")]
    input: PathBuf,
    /// The process.
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pid: u32,
    /// Where to start (hex with 0x, or decimal).
    #[arg(value_name = "ADDR", value_parser = crate::search::parse_address, required_unless_present = "mapping")]
    addr: Option<u64>,
    /// How many bytes (default 256).
    #[arg(value_name = "LEN", value_parser = crate::search::parse_address)]
    len: Option<u64>,
    /// Read the whole mapping that holds this address.
    #[arg(long, value_name = "ADDR", value_parser = crate::search::parse_address, conflicts_with_all = ["addr", "len"])]
    mapping: Option<u64>,
    /// Write a hex dump instead of raw bytes.
    #[arg(long)]
    hexdump: bool,
    /// Read anonymous pages CRIU did not dump as zeros, as a core holds them.
    #[arg(long)]
    zeros: bool,
    /// Root filesystem to read unmodified file-backed pages from.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Where compressed archives are unpacked (default: $TMPDIR).
    #[arg(long, value_name = "DIR")]
    tmpdir: Option<PathBuf>,
    /// The most a compressed archive may unpack into --tmpdir (K, M, G, T;
    /// default: half of the space free there).
    #[arg(long, value_name = "SIZE", value_parser = input::parse_size)]
    max_spill: Option<u64>,
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
    /// Convert again inputs whose cores are already complete, and replace
    /// cores made with other options.
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
    /// The most each compressed archive may unpack into --tmpdir (K, M, G,
    /// T; default: half of the space free there when it is opened).
    #[arg(long, value_name = "SIZE", value_parser = input::parse_size)]
    max_spill: Option<u64>,
    /// Print the summary (as in summary.json) on stdout.
    #[arg(long)]
    json: bool,
}

fn emit_line(line: String) {
    // A failed write to stdout other than a closed pipe cannot be reported
    // anywhere better than stderr.
    if let Err(e) = emit(&(line + "\n")) {
        error_line(&format!("{e:#}"));
    }
}

/// Writes `msg` to stderr after the program's name, escaped for a terminal
/// (errors and warnings quote names from checkpoints).
fn error_line(msg: &str) {
    eprintln!("criu2core: {}", escape(msg));
}

fn print_report(r: &ProcessReport, quiet: bool) {
    for w in &r.warnings {
        error_line(&format!("warning: pid {}: {w}", r.pid));
    }
    let comm = r.comm.as_deref().map_or(Cow::Borrowed("?"), escape);
    match &r.outcome {
        Outcome::Written {
            stats,
            threads,
            gdb_command,
        } if !quiet => emit_line(format!(
            "{}: pid {} ({comm}), {} thread{}, {} ({} of memory contents)\n  {}",
            escape(&stats.path.to_string_lossy()),
            r.pid,
            threads,
            if *threads == 1 { "" } else { "s" },
            human_bytes(stats.size),
            human_bytes(stats.copied),
            escape(gdb_command),
        )),
        Outcome::Zombie { exit } if !quiet => emit_line(format!(
            "pid {} ({comm}): zombie, {exit}; no core (a zombie has no memory or registers)",
            r.pid
        )),
        Outcome::Written { .. } | Outcome::Zombie { .. } => {}
        Outcome::Failed(e) => error_line(&format!("pid {}: {e}", r.pid)),
    }
}

/// What `convert --json` prints.
#[derive(serde::Serialize)]
struct ConvertReport {
    schema: &'static str,
    inputs: Vec<InputSummary>,
}

fn convert(args: &ConvertArgs, cancel: &Cancel) -> Result<bool> {
    let inputs: Vec<PathBuf> = args
        .inputs
        .iter()
        .chain(&args.images_dir)
        .cloned()
        .collect();
    if inputs.len() > 1 && !args.pids.is_empty() {
        bail!("-p/--pid applies to one input at a time");
    }
    let quiet = args.quiet || args.json;
    let summaries = batch::convert_each(
        &inputs,
        &args.out_dir,
        EachOptions {
            convert: ConvertOptions {
                pids: args.pids.clone(),
                root: args.root.clone(),
                force: args.force,
                cancel: cancel.clone(),
            },
            spill_dir: args.tmpdir.clone(),
            max_spill: args.max_spill,
            warn: &mut |w| error_line(&format!("warning: {w}")),
            report: &mut |r| print_report(r, quiet),
            // Failed processes were reported as they failed; whole-input errors here.
            failed: &mut |s| {
                if !cancel.is_cancelled() {
                    error_line(s.error.as_deref().unwrap_or("failed"));
                }
            },
        },
    )?;
    if args.json {
        let report = ConvertReport {
            schema: batch::CONVERT_SCHEMA,
            inputs: summaries.clone(),
        };
        emit(&(json_for_terminal(&serde_json::to_string_pretty(&report)?) + "\n"))?;
    }
    Ok(summaries.iter().all(|s| s.status == "ok"))
}

/// Opens one input, unpacking what `pages` needs of a compressed archive
/// into `tmpdir`, at most `max_spill` bytes.
fn open_input(
    path: &Path,
    tmpdir: &Option<PathBuf>,
    max_spill: Option<u64>,
    pages: input::PageUse,
    cancel: &Cancel,
) -> Result<input::Input> {
    input::open(
        path,
        &OpenOptions {
            spill_dir: tmpdir.clone(),
            max_spill,
            pages,
            cancel: cancel.clone(),
        },
    )
}

fn inspect(args: &InspectArgs, cancel: &Cancel) -> Result<bool> {
    let inp = open_input(
        &args.input,
        &args.tmpdir,
        args.max_spill,
        input::PageUse::Strings,
        cancel,
    )?;
    let report = inspect::inspect(
        &inp,
        &inspect::InspectOptions {
            env: args.env || args.all,
            fds: args.fds || args.all,
            sockets: args.sockets || args.all,
            mounts: args.mounts || args.all,
        },
    );
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(&report)?) + "\n"))?;
    } else {
        emit(&report.to_text())?;
    }
    let mounts_ok = report.mounts.iter().flatten().all(|ns| ns.error.is_none());
    Ok(report.processes.iter().all(|p| p.error.is_none()) && mounts_ok)
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn grep(args: &GrepArgs, cancel: &Cancel) -> Result<u8> {
    use std::io::IsTerminal;
    let pattern = Pattern::new(
        &args.pattern,
        &PatternOptions {
            regex: args.regex,
            hex: args.hex,
            ignore_case: args.ignore_case,
            utf16: args.utf16,
            span: args.span,
        },
    )?;
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let opts = GrepOptions {
        pattern,
        filter: Filter {
            kinds: args.kinds.clone(),
            prot: args.prot,
            paths: args.paths.iter().map(|g| Glob::new(g)).collect(),
            range: args.range,
        },
        pids: args.pids.clone(),
        context: args.context,
        max_count: args.max_count,
        mode: if args.count {
            Mode::Count
        } else if args.list {
            Mode::List
        } else {
            Mode::Matches
        },
        format: if args.json {
            Format::Json
        } else if args.hexdump {
            Format::Hexdump
        } else {
            Format::Text
        },
        color: color && !args.json,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        root: args.root.clone(),
        spill_dir: args.tmpdir.clone(),
        max_spill: args.max_spill,
        cancel: cancel.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let outcome = crate::grep::grep(&args.inputs, &opts, &mut out, &mut |e| error_line(e))?;
    Ok(outcome.exit_status())
}

fn read(args: &ReadArgs, cancel: &Cancel) -> Result<bool> {
    use std::io::IsTerminal;
    if !args.hexdump && std::io::stdout().is_terminal() {
        bail!("refusing to write raw memory to a terminal: use --hexdump, or redirect stdout (> FILE, | xxd)");
    }
    let inp = open_input(
        &args.input,
        &args.tmpdir,
        args.max_spill,
        input::PageUse::All,
        cancel,
    )?;
    let roots = inp.file_roots(args.root.as_deref())?;
    let p = match inp.checkpoint.load(
        args.pid,
        LoadOptions {
            root: roots.as_ref(),
        },
    )? {
        Loaded::Process(p) => p,
        Loaded::Zombie { .. } => bail!("pid {} is a zombie: it has no memory left", args.pid),
    };
    let what = match (args.mapping, args.addr) {
        (Some(a), _) => crate::read::What::Mapping(a),
        (None, Some(a)) => crate::read::What::Range(a, args.len.unwrap_or(256)),
        (None, None) => bail!("give ADDR or --mapping ADDR"),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    crate::read::write(
        &p,
        what,
        &crate::read::ReadOptions {
            zeros: args.zeros,
            hexdump: args.hexdump,
            cancel: cancel.clone(),
        },
        &mut out,
    )
    .with_context(|| format!("{}: pid {}", inp.path.display(), args.pid))?;
    Ok(true)
}

fn batch(args: &BatchArgs, cancel: &Cancel) -> Result<bool> {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = BatchOptions {
        jobs,
        force: args.force,
        root: args.root.clone(),
        spill_dir: args.tmpdir.clone(),
        max_spill: args.max_spill,
        progress: !args.quiet && !args.json,
        cancel: cancel.clone(),
    };
    let done = batch::run(&args.inputs, &args.out_dir, &opts)?;
    let (summary, run) = (&done.summary, &done.summary.run);
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(summary)?) + "\n"))?;
    } else if !args.quiet {
        emit_line(format!(
            "{} input{}: {} converted, {} already complete, {} failed; summary in {}",
            run.inputs,
            if run.inputs == 1 { "" } else { "s" },
            run.ok,
            run.skipped,
            run.failed,
            escape(
                &Path::new(&summary.out_dir)
                    .join(batch::SUMMARY)
                    .display()
                    .to_string()
            )
        ));
    }
    for s in done.this_run.iter().filter(|s| s.status == "failed") {
        error_line(&format!(
            "{}: {}",
            s.input,
            s.error.as_deref().unwrap_or("failed")
        ));
    }
    Ok(run.failed == 0)
}

fn man(out_dir: Option<&Path>) -> Result<bool> {
    // Pages for what is written: clap's `help` subcommand would be listed
    // as criu2core-help(1), a page nobody writes (`--help` says the same).
    let cmd = Cli::command().disable_help_subcommand(true);
    let Some(dir) = out_dir else {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut buf)?;
        emit(&String::from_utf8_lossy(&buf))?;
        return Ok(true);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let mut pages = vec![("criu2core".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("criu2core-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("{}: cannot write", path.display()))?;
        emit_line(path.display().to_string());
    }
    Ok(true)
}

/// Sends diagnostics to stderr: warnings by default, more with each -v,
/// or whatever RUST_LOG asks for.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "criu2core=info",
        2 => "criu2core=debug",
        _ => "criu2core=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Events quote what checkpoints hold: every control character is shown
    // escaped, so there are no colours either.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| EscapingWriter(std::io::stderr()))
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Installs the process's signal handlers: SIGINT, SIGTERM and SIGHUP set
/// `cancel` to their number, so that the work in hand stops and removes
/// its temporary files; a second one ends the process at once with
/// 128 + its number. SIGXFSZ is caught and does nothing, so a write past
/// `ulimit -f` fails with "File too large" instead of killing the process.
fn handle_signals(cancel: &Cancel) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
    use signal_hook::flag;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // The shutdown first: it acts only once a first signal has armed it.
        flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&armed))?;
        flag::register(sig, Arc::clone(&armed))?;
        flag::register_usize(sig, cancel.flag(), sig as usize)?;
    }
    flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))?;
    Ok(())
}

/// The exit status for `result`: 128 + the signal's number once a signal
/// cancelled the work.
fn finish(result: Result<bool>, cancel: &Cancel) -> ExitCode {
    if let Some(sig) = cancel.reason() {
        eprintln!("criu2core: interrupted (signal {sig}); its temporary files are removed");
        let status = sig.checked_add(128).and_then(|s| u8::try_from(s).ok());
        return ExitCode::from(status.unwrap_or(130));
    }
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        // The reader has gone (`| head`): end as a SIGPIPE would end it.
        Err(e) if broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            error_line(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// Runs the command line `args` (the program name first).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    init_logging(cli.verbose);
    let cancel = Cancel::new();
    let result = match &cli.command {
        Command::Convert(a) => handle_signals(&cancel).and_then(|()| convert(a, &cancel)),
        Command::Inspect(a) => handle_signals(&cancel).and_then(|()| inspect(a, &cancel)),
        Command::Batch(a) => handle_signals(&cancel).and_then(|()| batch(a, &cancel)),
        Command::Read(a) => handle_signals(&cancel).and_then(|()| read(a, &cancel)),
        Command::Grep(a) => {
            // grep's own statuses: 0 found, 1 nothing found, 2 an error.
            let status = handle_signals(&cancel).and_then(|()| grep(a, &cancel));
            // A closed pipe stops the workers through `cancel` too.
            if let Err(e) = &status {
                if broken_pipe(e) {
                    return ExitCode::from(141);
                }
            }
            if cancel.reason().is_some() {
                return finish(Ok(false), &cancel);
            }
            return match status {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    error_line(&format!("{e:#}"));
                    ExitCode::from(2)
                }
            };
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "criu2core", &mut buf);
            emit(&String::from_utf8_lossy(&buf)).map(|()| true)
        }
        Command::Man { out_dir } => man(out_dir.as_deref()),
    };
    finish(result, &cancel)
}

/// `checkpointctl coredump`: criu2core convert as a checkpointctl plugin.
#[derive(Parser)]
#[command(
    name = "checkpointctl-coredump",
    bin_name = "checkpointctl coredump",
    version,
    about = "Write one ELF core file per process of a checkpoint, for gdb, lldb, eu-stack and drgn.",
    after_help = "\
Inputs are checkpoint archives (.tar, .tar.gz, .tar.zst as Podman, CRI-O
and the kubelet write them; recognised by content), unpacked container
checkpoints and CRIU image directories. With several inputs, each gets a
subdirectory of OUT_DIR named after it (criu2core's README gives the rule).

Examples:
  checkpointctl coredump checkpoint-web_default-app-2026-11-24T10:00:00Z.tar -o cores
  checkpointctl coredump checkpoint.tar.zst -o cores -p 1 --root /srv/rootfs
  gdb -iex 'set sysroot /srv/rootfs' /srv/rootfs/usr/bin/app cores/core.1"
)]
struct PluginCli {
    /// More diagnostics on stderr (-v, -vv, -vvv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    convert: ConvertArgs,
}

/// Runs the checkpointctl plugin's command line `args` (the program name
/// first): the options and behaviour of `criu2core convert`.
pub fn run_plugin<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match PluginCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    init_logging(cli.verbose);
    let cancel = Cancel::new();
    let result = handle_signals(&cancel).and_then(|()| convert(&cli.convert, &cancel));
    finish(result, &cancel)
}
