//! `criu2core yara`: YARA rules (compiled by yara-x) over the memory of
//! every process of many checkpoints, driven by grep's workers and
//! ordered printer (src/grep.rs).
//!
//! The unit a rule's condition sees is one process: its memory as its
//! core would hold it (the runs [`crate::search`] searches, with the same
//! filters), each byte at its virtual address, as `yara -p PID` sees a live
//! process. Offsets in conditions (`@a`, `$a at`, `$a in`) are addresses;
//! counts (`#a`) count over the whole process. Bytes are handed to yara-x's
//! block scanner [`BLOCK`] bytes at a time, blocks of one run overlapping
//! by [`OVERLAP`] bytes, so a string match is found whole if it is at most
//! [`OVERLAP`] bytes long, and none spans two runs (a hole, an unmapped gap
//! or another mapping between). `filesize`, `uint32(...)` and modules that
//! parse a whole file are undefined in this mode.
//!
//! The bytes CRIU saved in a process's socket, pipe and FIFO queues are
//! scanned each queue on its own, as a file ([`scan_bytes`]): offsets are
//! from the queue's start and `filesize` is its length.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cancel::Cancel;
use crate::model::{Mapping, Process};
use crate::search::{read_runs, Filter, RunReader, CHUNK};

/// Bytes handed to the block scanner at a time.
pub const BLOCK: usize = 4 << 20;
/// Bytes each block of a run shares with the one before it: the longest
/// string match found wherever it lies.
pub const OVERLAP: usize = 64 << 10;
/// Matches kept per string and process (yara-x drops the rest).
pub const MAX_MATCHES: usize = 10_000;
/// Largest rule file read.
const MAX_RULE_FILE: u64 = 64 << 20;

/// Compiled rules.
pub struct Rules(yara_x::Rules);

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules").finish_non_exhaustive()
    }
}

/// The rule files of `paths`: each file, and the `.yar`/`.yara` files of
/// each directory (not recursive), in name order.
fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yar" | "yara"))
                })
                .collect();
            if in_dir.is_empty() {
                bail!("{}: no .yar or .yara file", p.display());
            }
            in_dir.sort();
            out.extend(in_dir);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn read_rules(path: &Path) -> Result<String> {
    let f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX_RULE_FILE {
        return Err(crate::error::fault(
            crate::ErrorKind::Limit,
            format!("{}: a rule file over {MAX_RULE_FILE} bytes", path.display()),
        ));
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))
}

impl Rules {
    /// Compiles the rule files `paths` name (files, or directories of
    /// `.yar`/`.yara` files) into one set; an error carries the
    /// compiler's message (file, line).
    pub fn compile(paths: &[PathBuf]) -> crate::Result<Rules> {
        (|| -> Result<Rules> {
            let mut compiler = yara_x::Compiler::new();
            for f in rule_files(paths)? {
                let text = read_rules(&f)?;
                let origin = f.display().to_string();
                let src = yara_x::SourceCode::from(text.as_str()).with_origin(origin.as_str());
                if let Err(e) = compiler.add_source(src) {
                    bail!("{e}");
                }
            }
            Ok(Rules(compiler.build()))
        })()
        .map_err(crate::Error::new)
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.0.iter().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rule that matched a process.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuleHit {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub rule: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its metadata, as JSON.
    pub meta: serde_json::Value,
    /// Its string matches, string by string, each in address order.
    pub strings: Vec<StringHit>,
}

/// One match of one of a rule's strings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StringHit {
    /// The string's identifier (`$a`).
    pub id: String,
    /// Where it starts: an address in memory, an offset in a queue.
    pub addr: u64,
    /// The bytes matched.
    pub bytes: Vec<u8>,
}

/// A process's memory handed to the block scanner: consecutive bytes of
/// one run gather in `buf` (from address `base`) and go in blocks.
struct Feeder<'a, 'r> {
    scanner: &'a mut yara_x::blocks::Scanner<'r>,
    buf: Vec<u8>,
    base: u64,
    mapping: usize,
    open: bool,
    /// Bytes in `buf` not scanned yet.
    fresh: bool,
}

impl Feeder<'_, '_> {
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn scan(&mut self) -> Result<()> {
        if self.fresh {
            let base = usize::try_from(self.base).context("address beyond usize")?;
            self.scanner
                .scan(base, &self.buf)
                .map_err(|e| anyhow::anyhow!("yara: {e}"))?;
            self.fresh = false;
        }
        Ok(())
    }
}

impl RunReader for Feeder<'_, '_> {
    fn continues(&self, mi: usize, addr: u64) -> bool {
        self.open && self.mapping == mi && self.end() == addr
    }

    /// Ends the run: its last bytes are scanned.
    fn end_run(&mut self) -> Result<ControlFlow<()>> {
        if self.open {
            self.scan()?;
        }
        self.open = false;
        self.buf.clear();
        Ok(ControlFlow::Continue(()))
    }

    fn begin(&mut self, mi: usize, addr: u64) {
        (self.base, self.mapping, self.open) = (addr, mi, true);
    }

    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// A full block is scanned, its last [`OVERLAP`] bytes kept.
    fn after_read(&mut self) -> Result<ControlFlow<()>> {
        self.fresh = true;
        if self.buf.len() >= BLOCK {
            self.scan()?;
            let cut = self.buf.len() - OVERLAP;
            self.buf.drain(..cut);
            self.base += cut as u64;
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Runs `rules` over the memory of `p` in the mappings `filter` accepts;
/// returns the rules that matched, in the rule set's order.
pub fn scan_process(
    p: &Process,
    rules: &Rules,
    filter: &Filter,
    cancel: &Cancel,
) -> crate::Result<Vec<RuleHit>> {
    scan(p, rules, filter, cancel).map_err(crate::Error::new)
}

fn scan(p: &Process, rules: &Rules, filter: &Filter, cancel: &Cancel) -> Result<Vec<RuleHit>> {
    let mut scanner = yara_x::blocks::Scanner::new(&rules.0);
    scanner.max_matches_per_pattern(MAX_MATCHES);
    let mut feed = Feeder {
        scanner: &mut scanner,
        buf: Vec::with_capacity(BLOCK + CHUNK),
        base: 0,
        mapping: 0,
        open: false,
        fresh: false,
    };
    read_runs(p, filter, cancel, &mut feed)?;
    let _ = feed.end_run()?;
    let results = scanner.finish().map_err(|e| anyhow::anyhow!("yara: {e}"))?;
    Ok(results.matching_rules().map(|r| rule_hit(&r)).collect())
}

/// Runs `rules` over `data`, bytes CRIU saved outside memory (a socket's
/// or a pipe's queue), as over a file: a string match's
/// [`StringHit::addr`] is its offset in `data`, and `filesize` is defined.
pub fn scan_bytes(rules: &Rules, data: &[u8]) -> crate::Result<Vec<RuleHit>> {
    let mut scanner = yara_x::Scanner::new(&rules.0);
    scanner.max_matches_per_pattern(MAX_MATCHES);
    let results = scanner
        .scan(data)
        .map_err(|e| crate::Error::new(anyhow::anyhow!("yara: {e}")))?;
    Ok(results.matching_rules().map(|r| rule_hit(&r)).collect())
}

fn rule_hit(r: &yara_x::Rule<'_, '_>) -> RuleHit {
    let mut strings = Vec::new();
    for pat in r.patterns() {
        for m in pat.matches() {
            strings.push(StringHit {
                id: pat.identifier().to_string(),
                addr: m.range().start as u64,
                bytes: m.data().to_vec(),
            });
        }
    }
    RuleHit {
        namespace: r.namespace().to_string(),
        rule: r.identifier().to_string(),
        tags: r.tags().map(|t| t.identifier().to_string()).collect(),
        meta: r.metadata().into_json(),
        strings,
    }
}

/// The mapping of `p` that holds `addr`.
pub(crate) fn mapping_at(p: &Process, addr: u64) -> Option<&Mapping> {
    let i = p.mappings.partition_point(|m| m.end <= addr);
    p.mappings.get(i).filter(|m| m.start <= addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` at `base` as a run is fed: chunk by chunk, then closed.
    fn feed(rules: &yara_x::Rules, base: u64, data: &[u8]) -> Vec<(String, u64)> {
        let mut scanner = yara_x::blocks::Scanner::new(rules);
        let mut f = Feeder {
            scanner: &mut scanner,
            buf: Vec::new(),
            base,
            mapping: 0,
            open: true,
            fresh: false,
        };
        for chunk in data.chunks(CHUNK) {
            f.buf.extend_from_slice(chunk);
            let _ = f.after_read().unwrap();
        }
        let _ = f.end_run().unwrap();
        let results = scanner.finish().unwrap();
        let mut out = Vec::new();
        for r in results.matching_rules() {
            for h in rule_hit(&r).strings {
                out.push((r.identifier().to_string(), h.addr));
            }
        }
        out
    }

    #[test]
    fn strings_across_block_boundaries_are_found_once_at_their_address() {
        let rules = yara_x::compile(
            r#"rule a { strings: $a = "NEEDLE_ACROSS" condition: #a == 3 }
               rule far { strings: $b = { 4C 4F 4E 47 [60000-62000] 45 4E 44 } condition: $b }"#,
        )
        .unwrap();
        let base = 0x7f00_0000_0000u64;
        let mut data = vec![0u8; 3 * BLOCK + 12345];
        // Across the first block's end, inside the overlap, and past it.
        for at in [BLOCK - 5, BLOCK - OVERLAP / 2, 2 * BLOCK - OVERLAP + 1] {
            data[at..at + 13].copy_from_slice(b"NEEDLE_ACROSS");
        }
        // A 61 KiB match that crosses the second block's end.
        let long = 2 * BLOCK - 30_000;
        data[long..long + 4].copy_from_slice(b"LONG");
        data[long + 4 + 61_000..long + 4 + 61_003].copy_from_slice(b"END");
        let got = feed(&rules, base, &data);
        let want: Vec<(String, u64)> = [BLOCK - OVERLAP / 2, BLOCK - 5, 2 * BLOCK - OVERLAP + 1]
            .iter()
            .map(|&a| ("a".to_string(), base + a as u64))
            .chain([("far".to_string(), base + long as u64)])
            .collect();
        assert_eq!(got, want);
    }
}
