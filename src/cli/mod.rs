//! The command line: `criu2core convert | inspect | diff | grep | read | batch |
//! completions | man`, and the checkpointctl plugin's `checkpointctl
//! coredump`. Both
//! binaries include this module; the library does the work, this parses
//! options, prints results, draws the progress bar, sets up logging and
//! signal handling, and decides the exit status.

mod args;
mod diff;
mod diff_text;
mod grep_print;
mod inspect_text;
mod logging;
mod output;
mod progress;
mod signals;
mod text;
mod watch;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use criu2core::batch::{self, BatchOptions, ConvertOptions, InputSummary, Listener, Status};
use criu2core::grep::{self, GrepOptions, Mode};
use criu2core::inspect::InspectOptions;
use criu2core::search::{Filter, Glob, Pattern, PatternOptions};
use criu2core::{Cancel, LoadOptions, Loaded, OpenOptions, PageUse};
use grep_print::Format;
use text::{escape, json_for_terminal, HexdumpWriter};

use args::{
    BatchArgs, Cli, Command, ConvertArgs, GrepArgs, InspectArgs, Only, PluginCli, ReadArgs, Spill,
    SummaryArgs, YaraArgs,
};
use logging::init_logging;
use output::{emit, emit_line, error_line, input_error, print_report};
use signals::{broken_pipe, finish, handle_signals};

/// What `convert --json` prints.
#[derive(serde::Serialize)]
struct ConvertReport {
    schema: &'static str,
    inputs: Vec<InputSummary>,
}

/// Prints what `convert` does as it does it.
struct Printer<'a> {
    quiet: bool,
    cancel: &'a Cancel,
}

impl Listener for Printer<'_> {
    fn warning(&mut self, warning: &criu2core::Warning) {
        error_line(&format!("warning: {warning}"));
    }

    fn process(&mut self, report: &batch::ProcessReport) {
        print_report(report, self.quiet);
    }

    fn failed(&mut self, input: &InputSummary) {
        // Failed processes were reported as they failed; whole-input
        // errors here.
        if !self.cancel.is_cancelled() {
            error_line(input.error.as_deref().unwrap_or("failed"));
        }
    }

    fn image(&mut self, used: &criu2core::ImageUse) {
        if !self.quiet || used.matches == Some(false) {
            error_line(&used.describe());
        }
    }
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
    let mut opts = ConvertOptions::default();
    opts.pids.clone_from(&args.pids);
    opts.root.clone_from(&args.root);
    opts.image.clone_from(&args.image);
    opts.sysroot.clone_from(&args.sysroot);
    opts.force = args.force;
    opts.spill = args.spill.options();
    opts.cancel = cancel.clone();
    opts.compression = args.compress.unwrap_or_default();
    let mut printer = Printer {
        quiet: args.quiet || args.json,
        cancel,
    };
    let summaries = batch::convert(&inputs, &args.out_dir, &opts, &mut printer)?;
    if args.json {
        let report = ConvertReport {
            schema: batch::CONVERT_SCHEMA,
            inputs: summaries.clone(),
        };
        emit(&(json_for_terminal(&serde_json::to_string_pretty(&report)?) + "\n"))?;
    }
    Ok(summaries.iter().all(|s| s.status == Status::Ok))
}

/// Opens one input, unpacking what `pages` needs of a compressed archive
/// as `spill` allows.
fn open_input(
    path: &Path,
    spill: &Spill,
    pages: PageUse,
    cancel: &Cancel,
) -> Result<criu2core::Checkpoint> {
    let mut opts = OpenOptions::default().pages(pages).cancel(cancel);
    opts.spill = spill.options();
    Ok(criu2core::open(path, &opts)?)
}

fn inspect(args: &InspectArgs, cancel: &Cancel) -> Result<bool> {
    let ckpt = open_input(&args.input, &args.spill, PageUse::Strings, cancel)?;
    let opts = InspectOptions::default()
        .env(args.env || args.all)
        .fds(args.fds || args.all)
        .sockets(args.sockets || args.all)
        .mounts(args.mounts || args.all);
    let mut report = if args.root.is_some() || args.image.is_some() {
        let mut load = LoadOptions::default();
        load.root.clone_from(&args.root);
        load.image.clone_from(&args.image);
        ckpt.inspect_files(&opts, &load)?
    } else {
        ckpt.inspect(&opts)
    };
    if let Some(image) = &args.image {
        report.image = Some(ckpt.choose_image(image)?);
    }
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(&report)?) + "\n"))?;
    } else {
        emit(&inspect_text::report_text(&report))?;
    }
    let mounts_ok = report.mounts.iter().flatten().all(|ns| ns.error.is_none());
    Ok(report.processes.iter().all(|p| p.error.is_none()) && mounts_ok)
}

fn grep(args: &GrepArgs, cancel: &Cancel) -> Result<u8> {
    let mut pattern = PatternOptions::default();
    pattern.regex = args.regex;
    pattern.hex = args.hex;
    pattern.ignore_case = args.ignore_case;
    pattern.utf16 = args.utf16;
    pattern.span = args.span;
    let (texts, inputs) = grep_patterns(args)?;
    let pattern = Pattern::many(&texts, &pattern)?;
    let color = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut opts = GrepOptions::new(pattern);
    only(&args.only, &mut opts);
    opts.context = args.context;
    opts.max_count = args.max_count;
    opts.mode = if args.count {
        Mode::Count
    } else if args.list {
        Mode::List
    } else {
        Mode::Matches
    };
    let printer = grep_print::Printer {
        mode: opts.mode,
        format: if args.json {
            Format::Json
        } else if args.hexdump {
            Format::Hexdump
        } else {
            Format::Text
        },
        color: color && !args.json,
        patterns: opts.pattern.count() > 1,
        ..grep_print::Printer::default()
    };
    opts.jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    opts.files = args.files;
    opts.memory_only = args.memory_only;
    opts.root.clone_from(&args.root);
    opts.image.clone_from(&args.image);
    opts.spill = args.spill.options();
    opts.cancel = cancel.clone();
    let outcome = run_grep(&inputs, &opts, &printer)?;
    Ok(outcome.exit_status())
}

/// Runs grep's search over `inputs`, `printer` rendering what it finds on
/// stdout, its errors on stderr.
fn run_grep(
    inputs: &[PathBuf],
    opts: &GrepOptions,
    printer: &grep_print::Printer,
) -> Result<grep::Outcome> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 << 10, stdout.lock());
    let render = |e: &grep::Event<'_>, text: &mut String| printer.render(e, text);
    Ok(grep::grep(inputs, opts, &render, &mut out, &mut |e| {
        error_line(e)
    })?)
}

/// The processes, mappings and addresses `--pid`, `--kind`, `--prot`,
/// `--path` and `--range` leave to grep or yara.
fn only(args: &Only, opts: &mut GrepOptions) {
    let mut filter = Filter::default();
    filter.kinds.clone_from(&args.kinds);
    filter.prot = args.prot;
    filter.paths = args.paths.iter().map(|g| Glob::new(g)).collect();
    filter.range = args.range;
    opts.filter = filter;
    opts.pids.clone_from(&args.pids);
}

/// `criu2core yara`: grep's search with rules for a pattern.
#[cfg(feature = "yara")]
fn yara(args: &YaraArgs, cancel: &Cancel) -> Result<u8> {
    let mut paths = vec![args.rules.clone()];
    paths.extend(args.more_rules.iter().cloned());
    let rules = criu2core::yara::Rules::compile(&paths)?;
    // The pattern is not used: the rules are run instead.
    let unused = Pattern::new("-", &PatternOptions::default())?;
    let mut opts = GrepOptions::new(unused);
    opts.rules = Some(Arc::new(rules));
    only(&args.only, &mut opts);
    opts.mode = match (args.count, args.list) {
        (true, _) => Mode::Count,
        (_, true) => Mode::List,
        _ => Mode::Matches,
    };
    let printer = grep_print::Printer {
        mode: opts.mode,
        format: if args.json {
            Format::Json
        } else {
            Format::Text
        },
        yara: true,
        meta: args.meta,
        ..grep_print::Printer::default()
    };
    opts.jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    opts.files = args.files;
    opts.memory_only = args.memory_only;
    opts.root.clone_from(&args.root);
    opts.image.clone_from(&args.image);
    opts.spill = args.spill.options();
    opts.cancel = cancel.clone();
    let outcome = run_grep(&args.inputs, &opts, &printer)?;
    Ok(outcome.exit_status())
}

/// Without the yara feature: says how to get it.
#[cfg(not(feature = "yara"))]
fn yara(_: &YaraArgs, _: &Cancel) -> Result<u8> {
    bail!("this criu2core was built without YARA support: build it with --features yara (cargo install --locked --path . --features yara)")
}

/// grep's patterns (PATTERN, or those of -e and -f) and its inputs.
fn grep_patterns(args: &GrepArgs) -> Result<(Vec<String>, Vec<PathBuf>)> {
    let mut texts = args.patterns.clone();
    for f in &args.pattern_files {
        let all = std::fs::read(f).with_context(|| format!("{}: cannot read", f.display()))?;
        let all = String::from_utf8(all)
            .with_context(|| format!("{}: patterns are not UTF-8 (use --hex)", f.display()))?;
        texts.extend(all.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    let mut inputs = args.inputs.clone();
    match &args.pattern {
        Some(p) if args.patterns.is_empty() && args.pattern_files.is_empty() => {
            texts.push(p.clone())
        }
        Some(p) => inputs.insert(0, PathBuf::from(p)),
        None => {}
    }
    if texts.is_empty() {
        bail!("no pattern: give PATTERN, -e PATTERN or -f FILE");
    }
    if inputs.is_empty() {
        bail!("no INPUT: give a checkpoint or a directory of checkpoints");
    }
    Ok((texts, inputs))
}

fn read(args: &ReadArgs, cancel: &Cancel) -> Result<bool> {
    if !args.hexdump && std::io::stdout().is_terminal() {
        bail!("refusing to write raw memory to a terminal: use --hexdump, or redirect stdout (> FILE, | xxd)");
    }
    let ckpt = open_input(&args.input, &args.spill, PageUse::All, cancel)?;
    let mut load = LoadOptions::default();
    load.root.clone_from(&args.root);
    load.image.clone_from(&args.image);
    let p = match ckpt.load(args.pid, &load)? {
        Loaded::Process(p) => p,
        _ => bail!("pid {} is a zombie: it has no memory left", args.pid),
    };
    let what = match (args.mapping, args.addr) {
        (Some(a), _) => criu2core::read::What::Mapping(a),
        (None, Some(a)) => criu2core::read::What::Range(a, args.len.unwrap_or(256)),
        (None, None) => bail!("give ADDR or --mapping ADDR"),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut opts = criu2core::read::ReadOptions::default();
    opts.zeros = args.zeros;
    opts.cancel = cancel.clone();
    let context = || format!("{}: pid {}", ckpt.path().display(), args.pid);
    if args.hexdump {
        let (addr, _) = what.range(&p).with_context(context)?;
        let mut dump = HexdumpWriter::new(addr, &mut out);
        criu2core::read::write(&p, what, &opts, &mut dump).with_context(context)?;
        dump.finish().context("cannot write to stdout")?;
    } else {
        criu2core::read::write(&p, what, &opts, &mut out).with_context(context)?;
    }
    Ok(true)
}

/// The shard `--shard K/N` names, or with `--shards N` the one
/// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's) names.
fn shard(args: &BatchArgs) -> Result<Option<batch::Shard>> {
    if let Some(s) = args.shard {
        return Ok(Some(s));
    }
    let Some(n) = args.shards else {
        return Ok(None);
    };
    let k = std::env::var("JOB_COMPLETION_INDEX")
        .context("--shards N takes the shard's index from JOB_COMPLETION_INDEX, which is not set (use --shard K/N elsewhere)")?;
    let k: u64 = k
        .trim()
        .parse()
        .with_context(|| format!("JOB_COMPLETION_INDEX={k:?}: not a shard index"))?;
    Ok(Some(batch::Shard::new(k, n)?))
}

fn batch(args: &BatchArgs, cancel: &Cancel) -> Result<bool> {
    let mut opts = BatchOptions::default();
    opts.shard = shard(args)?;
    opts.compression = args.compress.unwrap_or_default();
    opts.jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    opts.force = args.force;
    opts.root.clone_from(&args.root);
    opts.image.clone_from(&args.image);
    opts.sysroot.clone_from(&args.sysroot);
    opts.spill = args.spill.options();
    opts.cancel = cancel.clone();
    if !args.quiet && !args.json && std::io::stderr().is_terminal() {
        opts.progress = Some(Arc::new(progress::Bar::new()));
    }
    let done = batch::run(&args.inputs, &args.out_dir, &opts)?;
    let (summary, run) = (&done.summary, &done.summary.run);
    let name = opts
        .shard
        .map_or(batch::SUMMARY.to_string(), |s| s.summary_name());
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(summary)?) + "\n"))?;
    } else if !args.quiet {
        let shard = match opts.shard {
            Some(s) => format!(
                "shard {}/{} ({} of {} listed): ",
                s.index,
                s.count,
                run.inputs,
                summary.shard.as_ref().map_or(0, |l| l.listed.len())
            ),
            None => String::new(),
        };
        emit_line(format!(
            "{shard}{} input{}: {} converted, {} already complete, {} failed; summary in {}",
            run.inputs,
            if run.inputs == 1 { "" } else { "s" },
            run.ok,
            run.skipped,
            run.failed,
            escape(&Path::new(&summary.out_dir).join(name).display().to_string())
        ));
    }
    for s in done.this_run.iter().filter(|s| s.status == Status::Failed) {
        error_line(&input_error(&s.input, s.error.as_deref()));
    }
    Ok(run.failed == 0)
}

fn summary(args: &SummaryArgs) -> Result<bool> {
    let merged = batch::merge(&args.out_dir, args.shards)?;
    let s = &merged.summary;
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(s)?) + "\n"))?;
    } else if !args.quiet {
        emit_line(format!(
            "{} input{}: {} converted, {} already complete, {} failed, {} missing; summary in {}",
            s.inputs.len() + s.missing.len(),
            if s.inputs.len() + s.missing.len() == 1 {
                ""
            } else {
                "s"
            },
            s.ok,
            s.skipped,
            s.failed,
            s.missing.len(),
            escape(
                &Path::new(&s.out_dir)
                    .join(batch::SUMMARY)
                    .display()
                    .to_string()
            )
        ));
    }
    if !merged.absent_shards.is_empty() {
        let list: Vec<String> = merged.absent_shards.iter().map(u64::to_string).collect();
        error_line(&format!(
            "shards that wrote no summary: {}",
            list.join(", ")
        ));
    }
    for m in &s.missing {
        error_line(&format!("{m}: missing (listed, converted by no shard)"));
    }
    for e in s.inputs.iter().filter(|e| e.status == Status::Failed) {
        error_line(&input_error(&e.input, e.error.as_deref()));
    }
    Ok(merged.complete())
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

/// Runs the command line `args` (the program name first).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if matches!(cli.command, Command::Grep(_)) && grep_short_v(&args) {
        error_line(GREP_V);
        return ExitCode::from(2);
    }
    init_logging(cli.verbose);
    let cancel = Cancel::new();
    let result = match &cli.command {
        Command::Convert(a) => handle_signals(&cancel).and_then(|()| convert(a, &cancel)),
        Command::Inspect(a) => handle_signals(&cancel).and_then(|()| inspect(a, &cancel)),
        Command::Batch(a) => handle_signals(&cancel).and_then(|()| batch(a, &cancel)),
        Command::Summary(a) => summary(a),
        Command::Watch(a) => {
            let result = handle_signals(&cancel).and_then(|()| watch::watch(a, &cancel));
            if let Some(code) = watch_stopped(&result, a.quiet, &cancel) {
                return code;
            }
            result
        }
        Command::Diff(a) => {
            let status = handle_signals(&cancel).and_then(|()| diff::diff(a, &cancel));
            return diff_exit(status, &cancel);
        }
        Command::Read(a) => handle_signals(&cancel).and_then(|()| read(a, &cancel)),
        Command::Grep(a) => {
            let status = handle_signals(&cancel).and_then(|()| grep(a, &cancel));
            return search_exit(status, &cancel);
        }
        Command::Yara(a) => {
            let status = handle_signals(&cancel).and_then(|()| yara(a, &cancel));
            return search_exit(status, &cancel);
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

/// The exit status of a watch that a signal stopped between conversions
/// (a clean end); `None` where no signal stopped it, or it failed.
fn watch_stopped(result: &Result<bool>, quiet: bool, cancel: &Cancel) -> Option<ExitCode> {
    let (Ok(ok), Some(sig)) = (result, cancel.reason()) else {
        return None;
    };
    if !quiet {
        error_line(&format!("stopped (signal {sig})"));
    }
    Some(if *ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// diff(1)'s statuses: 0 the same, 1 different, 2 an error.
fn diff_exit(status: Result<bool>, cancel: &Cancel) -> ExitCode {
    if cancel.reason().is_some() {
        return finish(Ok(false), cancel);
    }
    match status {
        Ok(same) => ExitCode::from(u8::from(!same)),
        Err(e) if broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            error_line(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

/// grep(1)'s statuses, which grep and yara give: 0 found, 1 nothing
/// found, 2 an error.
fn search_exit(status: Result<u8>, cancel: &Cancel) -> ExitCode {
    // A closed pipe stops the workers through `cancel` too.
    if let Err(e) = &status {
        if broken_pipe(e) {
            return ExitCode::from(141);
        }
    }
    if cancel.reason().is_some() {
        return finish(Ok(false), cancel);
    }
    match status {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            error_line(&format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

/// Why `grep -v` is refused.
const GREP_V: &str = "grep: -v is refused here: in grep(1) it selects what does not match, \
which has no meaning for memory (there are no lines to select; -c shows the processes \
with 0 matches); for more diagnostics, write --verbose (or -v before grep: criu2core -v grep ...)";

/// Whether the command line `args` (the program name first) gives `-v`
/// after the `grep` subcommand, alone or in a group of short options
/// (`-iv`), before any `--`: there grep users mean "invert", not
/// `--verbose`.
fn grep_short_v(args: &[OsString]) -> bool {
    let cmd = Cli::command();
    let Some(grep) = cmd.find_subcommand("grep") else {
        return false;
    };
    // Short options of grep that take a value: what follows them in a
    // group (`-C5`) is that value.
    let valued: Vec<char> = grep
        .get_arguments()
        .filter(|a| a.get_action().takes_values())
        .filter_map(clap::Arg::get_short)
        .collect();
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    // Options before the subcommand are the program's own (-v among them).
    if !words.any(|w| !w.starts_with('-')) {
        return false;
    }
    for w in words {
        if w == "--" {
            break;
        }
        let Some(group) = w.strip_prefix('-').filter(|g| !g.starts_with('-')) else {
            continue;
        };
        for c in group.chars() {
            if c == 'v' {
                return true;
            }
            if valued.contains(&c) {
                break;
            }
        }
    }
    false
}

/// Runs the checkpointctl plugin's command line `args` (the program name
/// first): the options and behaviour of `criu2core convert`.
#[allow(dead_code)] // the entry point of src/bin/checkpointctl-coredump.rs
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
