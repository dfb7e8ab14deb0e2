//! The command line: `criu2core convert | inspect | batch | completions |
//! man`, and the checkpointctl plugin's `checkpointctl coredump`. Both
//! binaries include this module; the library does the work, this parses
//! options, prints results, draws the progress bar, sets up logging and
//! signal handling, and decides the exit status.

mod args;
mod logging;
mod output;
mod progress;
mod signals;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use criu2core::batch::{self, BatchOptions, ConvertOptions, InputSummary, Listener, Status};
use criu2core::inspect::InspectOptions;
use criu2core::text::{escape, json_for_terminal};
use criu2core::{Cancel, OpenOptions, PageUse};

use args::{BatchArgs, Cli, Command, ConvertArgs, InspectArgs, PluginCli};
use logging::init_logging;
use output::{emit, emit_line, error_line, print_report};
use signals::{finish, handle_signals};

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
    fn warning(&mut self, text: &str) {
        error_line(&format!("warning: {text}"));
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
    opts.force = args.force;
    opts.spill_dir.clone_from(&args.tmpdir);
    opts.max_spill = args.max_spill;
    opts.cancel = cancel.clone();
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

fn inspect(args: &InspectArgs, cancel: &Cancel) -> Result<bool> {
    let mut opts = OpenOptions::default()
        .pages(PageUse::Strings)
        .cancel(cancel);
    opts.spill_dir.clone_from(&args.tmpdir);
    opts.max_spill = args.max_spill;
    let ckpt = criu2core::open(&args.input, &opts)?;
    let report = ckpt.inspect(&InspectOptions::default().env(args.env));
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(&report)?) + "\n"))?;
    } else {
        emit(&report.to_text())?;
    }
    Ok(report.processes.iter().all(|p| p.error.is_none()))
}

fn batch(args: &BatchArgs, cancel: &Cancel) -> Result<bool> {
    let mut opts = BatchOptions::default();
    opts.jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    opts.force = args.force;
    opts.root.clone_from(&args.root);
    opts.spill_dir.clone_from(&args.tmpdir);
    opts.max_spill = args.max_spill;
    opts.cancel = cancel.clone();
    if !args.quiet && !args.json && std::io::stderr().is_terminal() {
        opts.progress = Some(Arc::new(progress::Bar::new()));
    }
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
    for s in done.this_run.iter().filter(|s| s.status == Status::Failed) {
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
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "criu2core", &mut buf);
            emit(&String::from_utf8_lossy(&buf)).map(|()| true)
        }
        Command::Man { out_dir } => man(out_dir.as_deref()),
    };
    finish(result, &cancel)
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
