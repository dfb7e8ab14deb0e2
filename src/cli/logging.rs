//! Diagnostics on stderr, through tracing.

use super::text::EscapingWriter;

/// Sends diagnostics to stderr: warnings by default, more with each -v,
/// or whatever RUST_LOG asks for.
pub fn init_logging(verbose: u8) {
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
