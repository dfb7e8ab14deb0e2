//! batch's progress bar, drawn on stderr when it is a terminal.

use criu2core::batch::Progress;
use indicatif::{ProgressBar, ProgressStyle};

use super::text::escape;

/// An indicatif bar that counts inputs and names the one last started.
pub struct Bar(ProgressBar);

impl Bar {
    /// A bar not yet drawn.
    pub fn new() -> Bar {
        let style = ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Bar(ProgressBar::no_length().with_style(style))
    }
}

impl Progress for Bar {
    fn start(&self, inputs: usize) {
        self.0.set_length(inputs as u64);
    }

    fn input_started(&self, name: &str) {
        // The name comes from the input's file name.
        self.0.set_message(escape(name).into_owned());
    }

    fn input_done(&self) {
        self.0.inc(1);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}
