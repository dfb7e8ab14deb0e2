//! `checkpointctl coredump CHECKPOINT.tar [OPTIONS]`: a checkpointctl
//! plugin. checkpointctl runs `checkpointctl-<name>` executables found in
//! PATH; asked `--plugin-description`, a plugin prints one line and exits
//! with code 42. Everything else is `criu2core convert`, under the
//! plugin's own name in its usage and help.

#![forbid(unsafe_code)]

use std::process::ExitCode;

// The command line criu2core has; the plugin runs its `convert` alone.
#[allow(dead_code)]
#[path = "../cli/mod.rs"]
mod cli;

/// checkpointctl's exit code for "this is my description".
const DESCRIPTION_EXIT: u8 = 42;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--plugin-description") {
        println!("Write ELF core files of a checkpoint's processes for gdb (criu2core convert)");
        return ExitCode::from(DESCRIPTION_EXIT);
    }
    cli::run_plugin(args)
}
