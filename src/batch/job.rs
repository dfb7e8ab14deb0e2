//! One input converted into a directory of its own in the output
//! directory: claimed with a record, skipped when complete, refused when
//! made with other options, cleaned of stale cores, and recorded as it
//! ended.

use std::time::Instant;

use anyhow::{bail, Result};

use super::convert::{open_and_convert, ConvertOptions, Listener};
use super::naming::InputId;
use super::record::{
    fingerprint, from_record, intact, is_core_name, read_record, write_record, Record, RECORD,
    RECORD_SCHEMA,
};
use super::summary::{CoreOptions, InputSummary, Status};
use crate::outdir::OutDir;

/// How an input is converted into its own directory.
pub(crate) struct Job<'a> {
    pub id: &'a InputId,
    pub out: &'a OutDir,
    pub name: &'a str,
    pub options: &'a CoreOptions,
    /// How each process is converted (for batch, `force` is set: an
    /// input's own cores are replaced once they are found stale).
    pub convert: ConvertOptions,
    /// batch: skip what is complete, replace cores of the same input, and
    /// refuse other options without force. convert: none of that.
    pub batch: bool,
    pub force: bool,
}

impl Job<'_> {
    /// Converts the input; `listener` hears what is wrong with it as a
    /// whole, and each process as it is done.
    pub(crate) fn run(&self, listener: &mut dyn Listener) -> InputSummary {
        let start = Instant::now();
        let dir_path = self.out.path().join(self.name);
        let mut s = InputSummary::new(&self.id.path, Some(&dir_path), self.options.clone());
        let mut claimed = None;
        let mut fresh = false;
        let result = self.convert(&mut s, &mut claimed, &mut fresh, listener);
        if let Err(e) = result {
            s.status = Status::Failed;
            s.error = Some(if self.convert.cancel.is_cancelled() {
                "interrupted".into()
            } else {
                format!("{e:#}")
            });
        }
        s.duration_ms = start.elapsed().as_millis() as u64;
        if let Some(dir) = claimed {
            self.finish(&dir, &mut s, fresh);
        }
        if s.output.is_some() && !matches!(self.out.existing_subdir(self.name), Ok(Some(_))) {
            s.output = None;
        }
        tracing::info!(input = %s.input, status = %s.status, ms = s.duration_ms, "input done");
        s
    }

    /// Converts, leaving in `claimed` the directory once it holds this
    /// input's record (`fresh` if this run made it).
    fn convert(
        &self,
        s: &mut InputSummary,
        claimed: &mut Option<OutDir>,
        fresh: &mut bool,
        listener: &mut dyn Listener,
    ) -> Result<()> {
        self.convert.cancel.check()?;
        let fp = fingerprint(&self.id.path)?;
        let existing = self.out.existing_subdir(self.name)?;
        let previous = existing.as_ref().and_then(read_record);
        if let (Some(dir), Some(rec)) = (&existing, &previous) {
            if rec.input_sha256 != self.id.sha256 {
                bail!(
                    "{}: holds the cores of another input ({}); left alone",
                    dir.path().display(),
                    rec.summary.input
                );
            }
            // Only this run writes here now (the output directory is locked).
            dir.remove_partials(None)?;
            if self.batch && rec.summary.options != *self.options && !self.force {
                // The cores there stay this input's, as they were made.
                *s = from_record(rec, dir);
                bail!(
                    "{}: holds cores of this input made with {}; this run asks for {}: use --force to replace them",
                    dir.path().display(),
                    rec.summary.options.describe(),
                    self.options.describe()
                );
            }
            if self.batch
                && rec.complete
                && rec.fingerprint == fp
                && !self.force
                && intact(dir, rec)
            {
                *s = from_record(rec, dir);
                s.status = Status::Skipped;
                s.error = None;
                return Ok(());
            }
        }
        let dir = self.out.subdir(self.name)?;
        *fresh = previous.is_none();
        if self.batch {
            // Cores of an earlier conversion of this input (changed since,
            // other options, or unfinished) must not mix with the new ones.
            for f in dir.files()?.iter().filter(|f| is_core_name(f)) {
                dir.remove_file(f)?;
            }
        }
        let mut pending = s.clone();
        pending.error = Some("not finished".into());
        write_record(
            &dir,
            &Record {
                schema: RECORD_SCHEMA.into(),
                input_sha256: self.id.sha256.clone(),
                fingerprint: fp,
                complete: false,
                version: env!("CARGO_PKG_VERSION").into(),
                summary: pending,
            },
        )?;
        let dir = claimed.insert(dir);
        // A shared --sysroot: this input's files in a directory of its own.
        let mut convert = self.convert.clone();
        if convert.sysroot.is_some() {
            convert.sysroot_sub = Some(self.name.to_string());
        }
        let reports = open_and_convert(&self.id.path, dir, &convert, s, listener)?;
        s.add_reports(&reports)?;
        s.status = Status::Ok;
        Ok(())
    }

    /// Leaves the record saying how the input ended; a directory this run
    /// made and wrote no core into is removed again.
    fn finish(&self, dir: &OutDir, s: &mut InputSummary, fresh: bool) {
        let done = || -> Result<()> {
            if fresh && s.cores.is_empty() && s.status == Status::Failed {
                dir.remove_file(RECORD)?;
                dir.remove_partials(None)?;
                dir.remove_if_empty()?;
                return Ok(());
            }
            let Some(mut rec) = read_record(dir) else {
                bail!("{}: its record went missing", dir.path().display());
            };
            rec.complete = s.status == Status::Ok;
            rec.summary = s.clone();
            write_record(dir, &rec)
        };
        if let Err(e) = done() {
            s.status = Status::Failed;
            let e = format!("{e:#}");
            s.error = Some(match s.error.take() {
                Some(first) => format!("{first}; {e}"),
                None => e,
            });
        }
    }
}
