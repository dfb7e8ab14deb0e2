//! `criu2core diff A B`: opens both checkpoints, compares them, and prints
//! the report as text or JSON (or nothing, with --quiet).

use anyhow::Result;
use criu2core::diff::DiffOptions;
use criu2core::{Cancel, LoadOptions, PageUse};

use super::args::DiffArgs;
use super::diff_text::diff_text;
use super::open_input;
use super::output::emit;
use super::text::json_for_terminal;

/// Compares A with B and prints what differs; whether they are the same.
pub fn diff(args: &DiffArgs, cancel: &Cancel) -> Result<bool> {
    let a = open_input(&args.a, &args.spill, PageUse::All, cancel)?;
    let b = open_input(&args.b, &args.spill, PageUse::All, cancel)?;
    let mut load = LoadOptions::default();
    load.root.clone_from(&args.root);
    load.image.clone_from(&args.image);
    let opts = DiffOptions::default().load(load).cancel(cancel);
    let report = criu2core::diff::diff(&a, &b, &opts)?;
    if args.json {
        emit(&(json_for_terminal(&serde_json::to_string_pretty(&report)?) + "\n"))?;
    } else if !args.quiet {
        emit(&diff_text(&report))?;
    }
    Ok(report.same)
}
