//! Signals and exit statuses: SIGINT, SIGTERM and SIGHUP cancel the work
//! in hand, and end the process with 128 + their number.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use criu2core::Cancel;

use super::output::error_line;

/// A signal this soon after the first is the same interrupt delivered
/// twice (`timeout` signals the process and then its process group).
const AGAIN: Duration = Duration::from_secs(1);

/// Installs the process's signal handlers: SIGINT, SIGTERM and SIGHUP set
/// `cancel` to their number, so that the work in hand stops and removes
/// its temporary files; another one, a second or more after the first,
/// ends the process at once with 128 + its number, after removing the
/// temporary files being written ([`Cancel::remove_temporaries`]). SIGXFSZ
/// is caught and does nothing, so a write past `ulimit -f` fails with
/// "File too large" instead of killing the process.
pub fn handle_signals(cancel: &Cancel) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
    use signal_hook::flag;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    const STOP: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];
    for sig in STOP {
        flag::register_usize(sig, cancel.flag(), sig as usize)?;
    }
    let mut signals = signal_hook::iterator::Signals::new(STOP)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first: Option<Instant> = None;
            for sig in signals.forever() {
                match first {
                    None => first = Some(Instant::now()),
                    Some(t) if t.elapsed() < AGAIN => {}
                    Some(_) => {
                        Cancel::remove_temporaries();
                        eprintln!("criu2core: interrupted again (signal {sig}): stopped at once");
                        std::process::exit(128 + sig);
                    }
                }
            }
        })?;
    flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))?;
    Ok(())
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
pub fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let io = c.downcast_ref::<std::io::Error>().or_else(|| {
            c.downcast_ref::<criu2core::Error>()
                .and_then(criu2core::Error::io_error)
        });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The exit status for `result`: 128 + the signal's number once a signal
/// cancelled the work.
pub fn finish(result: Result<bool>, cancel: &Cancel) -> ExitCode {
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
