//! What the command line prints: results on stdout, errors and warnings
//! on stderr, everything that comes from a checkpoint escaped.

use std::borrow::Cow;
use std::path::Path;

use anyhow::{Context, Result};
use criu2core::batch::{Outcome, ProcessReport};

use super::text::{escape, escape_bytes, human_bytes};

/// Writes `text` to stdout. When the reader has gone away (`| head`), the
/// process ends as a SIGPIPE would end it, without a panic.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        r => r.context("cannot write to stdout"),
    }
}

/// Writes `line` and a newline to stdout.
pub fn emit_line(line: String) {
    // A failed write to stdout other than a closed pipe cannot be reported
    // anywhere better than stderr.
    if let Err(e) = emit(&(line + "\n")) {
        error_line(&format!("{e:#}"));
    }
}

/// Writes `msg` to stderr after the program's name, escaped for a terminal
/// (errors and warnings quote names from checkpoints).
pub fn error_line(msg: &str) {
    eprintln!("criu2core: {}", escape(msg));
}

/// An input's error as one line: `INPUT: ERROR`, or the error alone where
/// it begins with the input's path already (as given, or a file inside
/// it), so that the path is said once.
pub fn input_error(input: &str, error: Option<&str>) -> String {
    let error = error.unwrap_or("failed");
    // The input's path, then the end, a path inside it, or a member of it
    // (`IN:blobs/...`).
    let names_it = |head: &str, path: &str| {
        head.strip_prefix(path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ':']))
    };
    let named = error.split_once(": ").is_some_and(|(head, _)| {
        let abs = std::path::absolute(head).map(|h| h.display().to_string());
        abs.is_ok_and(|h| names_it(&h, input)) || Path::new(input).ends_with(head)
    });
    if named {
        error.to_string()
    } else {
        format!("{input}: {error}")
    }
}

/// What `convert` prints for one process: its core and the gdb command
/// that opens it, a zombie's end, or why it failed (always).
pub fn print_report(r: &ProcessReport, quiet: bool) {
    for w in &r.warnings {
        error_line(&format!("warning: pid {}: {w}", r.pid));
    }
    let comm = r.comm.as_deref().map_or(Cow::Borrowed("?"), escape);
    match &r.outcome {
        Outcome::Written {
            stats,
            threads,
            gdb_command,
            ..
        } if !quiet => emit_line(format!(
            "{}: pid {} ({comm}), {} thread{}, {} ({} of memory contents){}",
            escape_bytes(stats.path.as_os_str().as_encoded_bytes()),
            r.pid,
            threads,
            if *threads == 1 { "" } else { "s" },
            human_bytes(stats.size),
            human_bytes(stats.copied),
            // Quoted for a shell in a form safe to print: escaping it
            // again would change the command.
            gdb_command
                .as_deref()
                .map_or(String::new(), |c| format!("\n  {c}")),
        )),
        Outcome::Zombie { exit } if !quiet => emit_line(format!(
            "pid {} ({comm}): zombie, {exit}; no core (a zombie has no memory or registers)",
            r.pid
        )),
        Outcome::Failed(e) => error_line(&format!("pid {}: {e}", r.pid)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::input_error;

    #[test]
    fn an_input_is_named_once() {
        let cwd = std::env::current_dir().unwrap();
        let input = cwd.join("ckpt").display().to_string();
        for (error, want) in [
            ("ckpt: cannot open: gone", "ckpt: cannot open: gone"),
            (
                "ckpt/pstree.img: offset 0: bad",
                "ckpt/pstree.img: offset 0: bad",
            ),
            (&format!("{input}: bad")[..], &format!("{input}: bad")[..]),
            (
                "pid 3 is not in it",
                &format!("{input}: pid 3 is not in it"),
            ),
            ("other: bad", &format!("{input}: other: bad")),
            (
                "ckpt:blobs/sha256/ab: no images",
                "ckpt:blobs/sha256/ab: no images",
            ),
            ("ckpt2: bad", &format!("{input}: ckpt2: bad")),
        ] {
            assert_eq!(input_error(&input, Some(error)), want);
        }
    }
}
