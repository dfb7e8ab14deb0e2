//! The `criu2core` command.

fn main() -> std::process::ExitCode {
    criu2core::cli::run(std::env::args_os())
}
