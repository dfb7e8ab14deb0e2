//! Shards: a batch split over N workers (a Kubernetes Indexed Job), each
//! converting the inputs whose identity hashes to its index, and the
//! merge of their summaries ([`merge`], `criu2core summary OUT`).
//!
//! An input's identity is what batch knows it by (its canonical path or
//! its URL); its shard is the first 8 bytes of that identity's SHA-256,
//! read as a big-endian u64, modulo N: the same whatever order the inputs
//! are listed in and whatever the other inputs are. Every shard lists
//! every input and writes `summary-K-of-N.json` with its own inputs'
//! entries and the identities of all it listed, so the merge can tell an
//! input no shard converted (a shard that never ran, or died) from one
//! that failed.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::summary::{InputSummary, RunTotals, Status, Summary};
use super::{SCHEMA, SUMMARY};
use crate::error::Error;
use crate::outdir::OutDir;

/// Most shards of one batch.
pub const MAX_SHARDS: u64 = 100_000;
/// Largest shard summary read back by [`merge`].
const SUMMARY_LIMIT: u64 = 1 << 30;

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u64,
    /// How many shards there are.
    pub count: u64,
}

impl Shard {
    /// Shard `index` of `count` (at most [`MAX_SHARDS`]).
    pub fn new(index: u64, count: u64) -> crate::Result<Shard> {
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(Error::new(anyhow::anyhow!(
                "shard {index} of {count}: the index must be below the count, and the count from 1 to {MAX_SHARDS}"
            )));
        }
        Ok(Shard { index, count })
    }

    fn parse(s: &str) -> crate::Result<Shard> {
        let bad = || Error::new(anyhow::anyhow!("{s:?}: a shard is K/N (as 0/4)"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }

    /// The shard that converts the input whose identity has the SHA-256
    /// `sha256` (hex).
    pub fn of(count: u64, sha256: &str) -> u64 {
        let first = sha256
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        first % count.max(1)
    }

    /// Whether this shard converts the input whose identity has the
    /// SHA-256 `sha256`.
    pub fn owns(&self, sha256: &str) -> bool {
        Shard::of(self.count, sha256) == self.index
    }

    /// Its summary's name: `summary-K-of-N.json`.
    pub fn summary_name(&self) -> String {
        format!("summary-{}-of-{}.json", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    /// Parses `K/N` (as `0/4`).
    fn from_str(s: &str) -> crate::Result<Shard> {
        Shard::parse(s)
    }
}

/// What a shard's summary adds: which shard, and every input the listing
/// had (each shard's own and the others').
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardListing {
    /// The shard that wrote it.
    pub shard: Shard,
    /// The identity (canonical path or URL) of every input listed, sorted.
    pub listed: Vec<String>,
}

/// Whether `name` is a shard's summary: `summary-K-of-N.json`; its K and N.
pub(crate) fn summary_shard(name: &str) -> Option<Shard> {
    let rest = name.strip_prefix("summary-")?.strip_suffix(".json")?;
    let (k, n) = rest.split_once("-of-")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(k) || !digits(n) {
        return None;
    }
    Shard::new(k.parse().ok()?, n.parse().ok()?).ok()
}

/// What merging the summaries of an output directory found.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The summary written as summary.json: every entry of every shard
    /// (and of an earlier summary.json), `missing` the inputs no shard has
    /// an entry for.
    pub summary: Summary,
    /// Shards that wrote no summary.
    pub absent_shards: Vec<u64>,
}

impl Merged {
    /// Whether every listed input converted and every shard reported.
    pub fn complete(&self) -> bool {
        self.summary.failed == 0 && self.summary.missing.is_empty() && self.absent_shards.is_empty()
    }
}

/// Merges every `summary-K-of-N.json` in `out_dir` (and its summary.json,
/// if it has one) into its summary.json: every input's entry (a shard's
/// own over an earlier summary.json's), and `missing`, the inputs some
/// shard listed that none has an entry for. `count` picks N where shards
/// of several counts left summaries. It takes the output directory's lock:
/// refused while a batch, shard or watch writes there.
pub fn merge(out_dir: &std::path::Path, count: Option<u64>) -> crate::Result<Merged> {
    merge_in(out_dir, count).map_err(Error::new)
}

/// The split `count` (or the one split there is), and its shards whose
/// summaries are among `names`.
fn shards_of(out: &OutDir, names: &[String], count: Option<u64>) -> Result<(u64, Vec<Shard>)> {
    let mut shards: BTreeMap<u64, Vec<Shard>> = BTreeMap::new();
    for s in names.iter().filter_map(|n| summary_shard(n)) {
        shards.entry(s.count).or_default().push(s);
    }
    let count = match (count, shards.len()) {
        (Some(n), _) => n,
        (None, 1) => *shards.keys().next().unwrap_or(&1),
        (None, 0) => bail!(
            "{}: no shard summaries (summary-K-of-N.json) to merge",
            out.path().display()
        ),
        (None, _) => bail!(
            "{}: summaries of shards of {} runs ({}); say which with --shards N",
            out.path().display(),
            shards.len(),
            shards
                .keys()
                .map(|n| format!("N={n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok((count, shards.remove(&count).unwrap_or_default()))
}

fn merge_in(out_dir: &std::path::Path, count: Option<u64>) -> Result<Merged> {
    let out = OutDir::open_existing(out_dir)?;
    // Not while a batch or its shards write there: what they are writing
    // would be missed, or summary.json written twice at once.
    let _lock = super::lock::take(&out, super::Writer::Whole, "summary")?;
    let names = out.files()?;
    let (count, found) = shards_of(&out, &names, count)?;
    let read = |name: &str| -> Result<Summary> {
        let bytes = out
            .read_file(name, SUMMARY_LIMIT)?
            .with_context(|| format!("{}: missing or too large", out.shown(name).display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a batch summary", out.shown(name).display()))
    };
    let mut entries: BTreeMap<String, InputSummary> = BTreeMap::new();
    // An earlier whole run's entries first: the shards' own replace them.
    if names.iter().any(|n| n == SUMMARY) {
        if let Ok(old) = read(SUMMARY) {
            for e in old.inputs {
                entries.insert(e.input.clone(), e);
            }
        }
    }
    let mut listed = BTreeSet::new();
    let mut run = RunTotals::default();
    let mut reported = BTreeSet::new();
    for shard in &found {
        let s = read(&shard.summary_name())?;
        if let Some(l) = &s.shard {
            if l.shard != *shard {
                bail!(
                    "{}: written by shard {}/{}",
                    out.shown(&shard.summary_name()).display(),
                    l.shard.index,
                    l.shard.count
                );
            }
            listed.extend(l.listed.iter().cloned());
        }
        reported.insert(shard.index);
        run.inputs += s.run.inputs;
        run.ok += s.run.ok;
        run.failed += s.run.failed;
        run.skipped += s.run.skipped;
        run.duration_ms = run.duration_ms.max(s.run.duration_ms);
        for e in s.inputs {
            entries.insert(e.input.clone(), e);
        }
    }
    let absent_shards: Vec<u64> = (0..count).filter(|k| !reported.contains(k)).collect();
    let missing: Vec<String> = listed
        .iter()
        .filter(|i| !entries.contains_key(*i))
        .cloned()
        .collect();
    let mut inputs: Vec<InputSummary> = entries.into_values().collect();
    inputs.sort_by(|a, b| (&a.output, &a.input).cmp(&(&b.output, &b.input)));
    let n = |st: Status| inputs.iter().filter(|s| s.status == st).count();
    let summary = Summary {
        schema: SCHEMA.into(),
        out_dir: out.path().display().to_string(),
        ok: n(Status::Ok),
        failed: n(Status::Failed),
        skipped: n(Status::Skipped),
        run,
        missing,
        shard: None,
        inputs,
    };
    out.write_file(SUMMARY, &serde_json::to_vec_pretty(&summary)?)?;
    Ok(Merged {
        summary,
        absent_shards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_split_by_identity_alone() {
        assert_eq!(Shard::parse("2/5").unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "1/0", "x/2", "1", "-1/2", "1/100001"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        // The first 8 bytes of the digest, big-endian, modulo N.
        let sha = format!("{:016x}{}", 1_000_003u64, "f".repeat(48));
        assert_eq!(Shard::of(7, &sha), 1_000_003 % 7);
        assert!(Shard::new(1_000_003 % 7, 7).unwrap().owns(&sha));
        assert_eq!(
            summary_shard("summary-3-of-8.json"),
            Some(Shard { index: 3, count: 8 })
        );
        for n in [
            "summary.json",
            "summary-8-of-8.json",
            "summary--of-8.json",
            "summary-1-of-2.json.partial",
        ] {
            assert_eq!(summary_shard(n), None, "{n}");
        }
    }
}
