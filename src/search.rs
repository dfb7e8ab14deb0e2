//! Searching a process's memory as its core would hold it, at the speed of
//! reading the pages files.
//!
//! The search walks each mapping's page runs ([`Process::walk`]) and
//! reads the bytes of its dumped runs sequentially, a chunk at a time into
//! one reused buffer, never the whole process. Bytes that follow each other
//! in the address space form a *window*: consecutive runs with contents
//! inside one mapping (pages of this dump, of a parent dump, of a shared
//! memory object, and with a root filesystem the unmodified file pages).
//! Between chunks of a window only the bytes a later match or its context
//! can need are carried over, so a match that spans two pagemap entries is
//! found, while nothing matches across a mapping boundary, an unmapped gap,
//! an anonymous hole CRIU did not dump (it reads as zeros in a core but
//! holds nothing) or pages whose contents the checkpoint lacks.
//!
//! Occurrences are reported front to back and do not overlap (as `grep -o`
//! shows them). A literal pattern is found with SIMD substring search
//! (memchr's memmem) and found exactly wherever it is; a regular
//! expression (the regex crate, over bytes) is found in full where it is at
//! most [`Pattern::span`] bytes long: longer matches that cross a chunk
//! boundary may be cut short or missed.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use aho_corasick::{AhoCorasick, MatchKind};
use anyhow::{bail, Context, Result};
use memchr::memmem;
use regex::bytes::{Regex, RegexBuilder};

use crate::blobio::BlobFile;
use crate::cancel::Cancel;
use crate::model::{Mapping, MappingKind, PageSource, Process, Prot};
use crate::stdext::lock;

/// Bytes read from a pages file at a time.
pub(crate) const CHUNK: usize = 1 << 18;
/// Longest regular-expression match found whole across a chunk boundary,
/// unless [`PatternOptions::span`] says otherwise.
pub const DEFAULT_SPAN: usize = 4096;
/// Largest `span` accepted.
pub const MAX_SPAN: usize = 16 << 20;
/// Most bytes of context on each side of a match.
pub const MAX_CONTEXT: usize = 1 << 20;
/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN: usize = 1 << 20;
/// Largest compiled form of a regular expression accepted: the cost of
/// searching each byte grows with it where the regex crate's lazy DFA
/// gives up (`[\w\W]{60000}` took minutes a MiB), so a larger one is
/// refused.
pub const MAX_REGEX_SIZE: usize = 1 << 20;
/// Bytes (plus the span) a regular expression is searched in at a time,
/// cancellation checked between them: at [`MAX_REGEX_SIZE`], well under a
/// second each.
const REGEX_SLICE: usize = 8 << 10;
/// Bytes kept before a regular expression's search start, so that
/// look-behind assertions (`\b`, `^` in multi-line mode) see what precedes
/// it (a UTF-8 character at most).
const LOOK_BEHIND: u64 = 4;

/// How the pattern text is to be read.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PatternOptions {
    /// The pattern is a regular expression over bytes (the regex crate's
    /// syntax; `(?-u)` makes `.` and classes match single bytes).
    pub regex: bool,
    /// The pattern is bytes written in hexadecimal (`de ad be ef`,
    /// `deadbeef`, `0xde 0xad`).
    pub hex: bool,
    /// Letters match either case (for a literal: Unicode case folding of
    /// its UTF-8 form, ASCII folding of its UTF-16 form).
    pub ignore_case: bool,
    /// Also find the UTF-16LE form of a literal, as Java and .NET keep
    /// strings.
    pub utf16: bool,
    /// For regular expressions: longest match guaranteed to be found whole
    /// across a chunk boundary (default [`DEFAULT_SPAN`]).
    pub span: Option<usize>,
}

enum Engine {
    Literal(Box<memmem::Finder<'static>>),
    Regex(Regex),
    /// Several literals (`grep -e A -e B`, `-f FILE`), found in one pass.
    Many(Box<Many>),
}

/// Several literals in one automaton; each automaton pattern is one form
/// (UTF-8, or with --utf16 UTF-16LE) of one of the user's patterns.
struct Many {
    ac: AhoCorasick,
    /// The user's pattern of each automaton pattern.
    of: Vec<usize>,
    /// Whether each automaton pattern is a UTF-16LE form.
    wide: Vec<bool>,
}

/// Most patterns `grep -e`/`-f` take.
pub const MAX_PATTERNS: usize = 100_000;

/// A compiled search pattern.
pub struct Pattern {
    engine: Engine,
    /// Longest match possible, or the span a regular expression is found
    /// within.
    span: usize,
    /// Recognises a whole match that is the UTF-16LE form (with --utf16).
    utf16: Option<Regex>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pattern")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

/// Parses bytes written in hexadecimal: pairs of hex digits, optionally
/// separated by blanks, commas or colons, each optionally prefixed `0x`.
pub(crate) fn parse_hex(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c.is_ascii_whitespace() || c == ',' || c == ':') {
        let w = word
            .strip_prefix("0x")
            .or_else(|| word.strip_prefix("0X"))
            .unwrap_or(word);
        if w.len() % 2 != 0 {
            bail!("hex pattern {text:?}: {word:?} is not a whole number of bytes");
        }
        for pair in w.as_bytes().chunks(2) {
            let s = std::str::from_utf8(pair).unwrap_or("");
            let b = u8::from_str_radix(s, 16)
                .with_context(|| format!("hex pattern {text:?}: {s:?} is not a hex byte"))?;
            out.push(b);
        }
    }
    Ok(out)
}

/// A regular expression that matches exactly `bytes`, ASCII letters in
/// either case where `fold`.
fn bytes_regex(bytes: &[u8], fold: bool) -> String {
    let mut s = String::from(if fold { "(?i-u:" } else { "(?-u:" });
    for b in bytes {
        s.push_str(&format!("\\x{b:02x}"));
    }
    s.push(')');
    s
}

/// The UTF-16LE form of `text`.
fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn compile(re: &str, ignore_case: bool) -> Result<Regex> {
    RegexBuilder::new(re)
        .case_insensitive(ignore_case)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => crate::error::fault(crate::ErrorKind::Limit, format!(
                "the regular expression {re} is too costly to search: compiled, it would exceed {MAX_REGEX_SIZE} bytes (MAX_REGEX_SIZE); use fewer or smaller repetitions, or (?-u) for byte classes"
            )),
            e => anyhow::Error::new(e).context(format!("invalid regular expression {re:?}")),
        })
}

impl Pattern {
    /// Compiles `text` as `opts` say.
    pub fn new(text: &str, opts: &PatternOptions) -> crate::Result<Pattern> {
        (|| -> Result<Pattern> {
            if text.len() > MAX_PATTERN {
                return Err(crate::error::fault(
                    crate::ErrorKind::Limit,
                    format!("the pattern is longer than {MAX_PATTERN} bytes"),
                ));
            }
            if opts.regex && (opts.hex || opts.utf16) {
                bail!("a regular expression (-E) cannot be combined with --hex or --utf16");
            }
            if opts.hex && opts.ignore_case {
                bail!("-i does not apply to --hex patterns");
            }
            let span = opts.span.unwrap_or(DEFAULT_SPAN);
            if span == 0 || span > MAX_SPAN {
                bail!("--span must be between 1 and {MAX_SPAN}");
            }
            if opts.regex {
                if text.is_empty() {
                    bail!("the pattern is empty");
                }
                return Ok(Pattern {
                    engine: Engine::Regex(compile(text, opts.ignore_case)?),
                    span,
                    utf16: None,
                });
            }
            let bytes = if opts.hex {
                parse_hex(text)?
            } else {
                text.as_bytes().to_vec()
            };
            if bytes.is_empty() {
                bail!("the pattern is empty");
            }
            let wide = opts.utf16.then(|| match opts.hex {
                // Bytes as they are, each widened as a Latin-1 character.
                true => bytes.iter().flat_map(|&b| [b, 0]).collect::<Vec<u8>>(),
                false => utf16le(text),
            });
            if !opts.ignore_case && wide.is_none() {
                return Ok(Pattern {
                    span: bytes.len(),
                    engine: Engine::Literal(Box::new(memmem::Finder::new(&bytes).into_owned())),
                    utf16: None,
                });
            }
            // Case folding in UTF-8 can change a character's length (K and
            // the Kelvin sign): four bytes per character bound every variant.
            let mut re = if opts.ignore_case {
                format!("(?i:{})", regex::escape(text))
            } else {
                bytes_regex(&bytes, false)
            };
            let mut longest = if opts.ignore_case {
                text.chars().count() * 4
            } else {
                bytes.len()
            };
            let mut utf16 = None;
            if let Some(w) = &wide {
                let form = bytes_regex(w, opts.ignore_case);
                re = format!("{re}|{form}");
                longest = longest.max(w.len());
                utf16 = Some(compile(&format!("^(?:{form})$"), false)?);
            }
            Ok(Pattern {
                engine: Engine::Regex(compile(&re, false)?),
                span: longest,
                utf16,
            })
        })()
        .map_err(crate::Error::new)
    }

    /// Compiles several patterns to be found in one pass, each occurrence
    /// of each reported as a search for it alone would report it (the
    /// union of single-pattern searches; [`Match::pattern`] says which).
    /// Literals and `--hex` only (`-i` folds ASCII letters); one pattern
    /// is [`Pattern::new`].
    pub fn many(texts: &[String], opts: &PatternOptions) -> crate::Result<Pattern> {
        if texts.len() == 1 {
            return Pattern::new(&texts[0], opts);
        }
        (|| -> Result<Pattern> {
            if texts.is_empty() {
                bail!("no pattern");
            }
            if texts.len() > MAX_PATTERNS {
                return Err(crate::error::fault(
                    crate::ErrorKind::Limit,
                    format!("more than {MAX_PATTERNS} patterns"),
                ));
            }
            if opts.regex {
                bail!("several patterns are literals (or --hex): -E takes one, joined with |");
            }
            let (mut forms, mut of, mut wide) = (Vec::new(), Vec::new(), Vec::new());
            let mut total = 0;
            for (i, text) in texts.iter().enumerate() {
                let bytes = if opts.hex {
                    parse_hex(text)?
                } else {
                    text.as_bytes().to_vec()
                };
                if bytes.is_empty() {
                    bail!("pattern {} is empty", i + 1);
                }
                total += bytes.len();
                if opts.utf16 {
                    let w = match opts.hex {
                        true => bytes.iter().flat_map(|&b| [b, 0]).collect(),
                        false => utf16le(text),
                    };
                    forms.push(w);
                    of.push(i);
                    wide.push(true);
                }
                forms.push(bytes);
                of.push(i);
                wide.push(false);
            }
            if total > 16 * MAX_PATTERN {
                bail!(
                    "the patterns add up to more than {} bytes",
                    16 * MAX_PATTERN
                );
            }
            let span = forms.iter().map(Vec::len).max().unwrap_or(1);
            let ac = AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(opts.ignore_case)
                .build(&forms)
                .context("cannot compile the patterns")?;
            Ok(Pattern {
                engine: Engine::Many(Box::new(Many { ac, of, wide })),
                span,
                utf16: None,
            })
        })()
        .map_err(crate::Error::new)
    }

    /// The longest match found whole wherever it lies: a literal's length,
    /// or the span a regular expression is guaranteed within.
    pub fn span(&self) -> usize {
        self.span
    }

    /// How many patterns it finds ([`Pattern::many`]).
    pub fn count(&self) -> usize {
        match &self.engine {
            Engine::Many(m) => m.of.iter().max().map_or(0, |n| n + 1),
            _ => 1,
        }
    }

    /// Whether the pattern is a regular expression (with its bounded span)
    /// rather than a literal.
    fn is_regex(&self) -> bool {
        matches!(self.engine, Engine::Regex(_)) && self.utf16.is_none()
    }

    /// The first match in `hay` that starts at or after `from`, as a range
    /// of `hay` (context before `from` is seen by look-behind assertions).
    /// A regular expression is searched [`REGEX_SLICE`] bytes of starts at
    /// a time (a match found whole where it is at most the span long),
    /// `cancel` checked before each.
    fn find(&self, hay: &[u8], from: usize, cancel: &Cancel) -> Result<Option<(usize, usize)>> {
        cancel.check()?;
        let r = match &self.engine {
            Engine::Literal(f) => {
                return Ok(f
                    .find(&hay[from..])
                    .map(|i| (from + i, from + i + f.needle().len())))
            }
            Engine::Regex(r) => r,
            // Searched by `Window::scan_many`, never here.
            Engine::Many(_) => return Ok(None),
        };
        let mut start = from;
        loop {
            let slice_end = start.saturating_add(REGEX_SLICE).min(hay.len());
            let limit = slice_end.saturating_add(self.span).min(hay.len());
            let m = r.find_at(&hay[..limit], start);
            if let Some(m) = m.filter(|m| m.start() < slice_end || limit == hay.len()) {
                return Ok(Some((m.start(), m.end())));
            }
            if limit == hay.len() {
                return Ok(None);
            }
            start = slice_end;
            cancel.check()?;
        }
    }

    /// Whether `m`, a whole match, is the UTF-16LE form.
    pub fn is_utf16(&self, m: &[u8]) -> bool {
        self.utf16.as_ref().is_some_and(|r| r.is_match(m))
    }
}

/// A kind of mapping as `--kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Private anonymous memory.
    Anon,
    /// The brk heap.
    Heap,
    /// The main thread's stack.
    Stack,
    /// Mapped files.
    File,
    /// Shared anonymous memory, memfds and System V segments.
    Shmem,
    /// The vDSO.
    Vdso,
    /// Anything else (AIO rings and the like).
    Other,
}

impl Kind {
    /// Every kind, by name.
    pub const NAMES: [(&'static str, Kind); 7] = [
        ("anon", Kind::Anon),
        ("heap", Kind::Heap),
        ("stack", Kind::Stack),
        ("file", Kind::File),
        ("shmem", Kind::Shmem),
        ("vdso", Kind::Vdso),
        ("other", Kind::Other),
    ];

    fn parse(name: &str) -> crate::Result<Kind> {
        Kind::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .with_context(|| {
                let names: Vec<&str> = Kind::NAMES.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown mapping kind {name:?} (one of {})",
                    names.join(", ")
                )
            })
            .map_err(crate::Error::new)
    }

    /// The kind of a mapping.
    pub fn of(k: MappingKind) -> Kind {
        match k {
            MappingKind::Anonymous => Kind::Anon,
            MappingKind::Heap => Kind::Heap,
            MappingKind::Stack => Kind::Stack,
            MappingKind::File => Kind::File,
            MappingKind::SharedAnonymous | MappingKind::Memfd | MappingKind::SysvShm => Kind::Shmem,
            MappingKind::Vdso => Kind::Vdso,
            MappingKind::Vvar | MappingKind::Vsyscall | MappingKind::Other => Kind::Other,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        Kind::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("other", |(n, _)| *n)
    }
}

impl std::str::FromStr for Kind {
    type Err = crate::Error;

    /// The kind a name (`anon`, `heap`, `stack`, ...) names.
    fn from_str(name: &str) -> crate::Result<Kind> {
        Kind::parse(name)
    }
}

/// A protection filter: `rw` (at least readable and writable), `x`, or an
/// exact `r-x` as /proc/PID/maps writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtFilter {
    want: Prot,
    exact: bool,
}

impl ProtFilter {
    fn parse(s: &str) -> crate::Result<ProtFilter> {
        (|| -> Result<ProtFilter> {
            let b = s.as_bytes();
            let bad = || {
                format!("--prot {s:?}: use letters r, w, x (at least those), or three columns as in r-x (exactly)")
            };
            if b.len() == 3 && b.contains(&b'-') {
                let col = |i: usize, c: u8| match b[i] {
                    x if x == c => Ok(true),
                    b'-' => Ok(false),
                    _ => bail!(bad()),
                };
                return Ok(ProtFilter {
                    want: Prot {
                        read: col(0, b'r')?,
                        write: col(1, b'w')?,
                        exec: col(2, b'x')?,
                    },
                    exact: true,
                });
            }
            let mut want = Prot::default();
            if b.is_empty() {
                bail!(bad());
            }
            for c in b {
                match c {
                    b'r' => want.read = true,
                    b'w' => want.write = true,
                    b'x' => want.exec = true,
                    _ => bail!(bad()),
                }
            }
            Ok(ProtFilter { want, exact: false })
        })()
        .map_err(crate::Error::new)
    }

    /// Whether `p` passes.
    pub fn accepts(&self, p: Prot) -> bool {
        if self.exact {
            p == self.want
        } else {
            (!self.want.read || p.read)
                && (!self.want.write || p.write)
                && (!self.want.exec || p.exec)
        }
    }
}

/// A shell-style pattern over a path's bytes: `*` (any bytes, `/`
/// included), `?` (any one byte), `[abc]`, `[a-z]`, `[!a-z]` or `[^a-z]`,
/// and `\` to take the next character as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<u8>);

impl Glob {
    /// A glob from its text.
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.as_bytes().to_vec())
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &[u8]) -> bool {
        let p = &self.0;
        let (mut pi, mut si) = (0, 0);
        // Where to resume after the last `*`: (pattern index, text index).
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            if pi < p.len() {
                match p[pi] {
                    b'*' => {
                        star = Some((pi + 1, si));
                        pi += 1;
                        continue;
                    }
                    b'?' => {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                    b'[' => {
                        if let Some((hit, next)) = class(p, pi, s[si]) {
                            if hit {
                                pi = next;
                                si += 1;
                                continue;
                            }
                        } else if s[si] == b'[' {
                            pi += 1;
                            si += 1;
                            continue;
                        }
                    }
                    b'\\' if pi + 1 < p.len() && p[pi + 1] == s[si] => {
                        pi += 2;
                        si += 1;
                        continue;
                    }
                    b'\\' if pi + 1 < p.len() => {}
                    c if c == s[si] => {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            match &mut star {
                Some((sp, ss)) => {
                    *ss += 1;
                    pi = *sp;
                    si = *ss;
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// Whether byte `c` is in the bracket expression at `p[at]` (`[`), and the
/// index after it; `None` if the bracket is not closed (a plain `[`).
fn class(p: &[u8], at: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = p[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}

/// Which mappings and addresses are searched.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Filter {
    /// Kinds of mapping (any, if empty).
    pub kinds: Vec<Kind>,
    /// Protection.
    pub prot: Option<ProtFilter>,
    /// Paths of mapped files (any mapping, if empty; else only mappings
    /// whose path matches one).
    pub paths: Vec<Glob>,
    /// Only addresses in `start..end`.
    pub range: Option<(u64, u64)>,
}

/// The path a mapping shows, as bytes.
pub(crate) fn mapping_path(m: &Mapping) -> Option<&[u8]> {
    m.file.as_ref().map(|f| f.path.as_slice())
}

impl Filter {
    /// Whether mapping `m` is searched at all.
    pub fn accepts(&self, m: &Mapping) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&Kind::of(m.kind)))
            && self.prot.is_none_or(|p| p.accepts(m.prot))
            && (self.paths.is_empty()
                || mapping_path(m).is_some_and(|path| self.paths.iter().any(|g| g.matches(path))))
            && self
                .range
                .is_none_or(|(start, end)| m.start < end && start < m.end)
    }
}

impl std::str::FromStr for ProtFilter {
    type Err = crate::Error;

    /// Parses `rw` (at least those), or `r-x` (exactly).
    fn from_str(s: &str) -> crate::Result<ProtFilter> {
        ProtFilter::parse(s)
    }
}

/// How much to report.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SearchOptions {
    /// Bytes of context wanted on each side of a match (within its window).
    pub context: usize,
    /// Stop after this many matches in the process.
    pub max_matches: Option<u64>,
    /// Checked between chunks.
    pub cancel: Cancel,
    /// Threads that may search parts of the process at once (0 or 1: the
    /// calling thread alone). The parts are whole runs, so what is found,
    /// and its order, is the same with any number.
    pub threads: usize,
}

/// One occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Match {
    /// Its address.
    pub addr: u64,
    /// Index of its mapping in [`Process::mappings`].
    pub mapping: usize,
    /// The bytes matched.
    pub bytes: Vec<u8>,
    /// Up to [`SearchOptions::context`] bytes before it, within its window.
    pub before: Vec<u8>,
    /// Up to [`SearchOptions::context`] bytes after it, within its window.
    pub after: Vec<u8>,
    /// Whether it is the UTF-16LE form of the pattern.
    pub utf16: bool,
    /// Which pattern it is (index in [`Pattern::many`]'s list; 0 for one).
    pub pattern: usize,
}

/// What a search of one process found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Searched {
    /// Matches reported.
    pub matches: u64,
    /// Bytes searched.
    pub bytes: u64,
}

/// The bytes of one window being searched: `buf` holds the window's bytes
/// from address `base` on.
struct Window<'p> {
    pattern: &'p Pattern,
    /// Checked between searches.
    cancel: Cancel,
    context: u64,
    /// Where the window starts (no context before it).
    start: u64,
    base: u64,
    buf: Vec<u8>,
    /// The next match may start here (matches do not overlap).
    from: u64,
    mapping: usize,
    open: bool,
    /// With several patterns: where each automaton pattern's last match
    /// ended (its next may not start before).
    ends: Vec<u64>,
}

impl<'p> Window<'p> {
    fn new(pattern: &'p Pattern, context: usize, cancel: &Cancel) -> Window<'p> {
        Window {
            pattern,
            cancel: cancel.clone(),
            context: context as u64,
            start: 0,
            base: 0,
            buf: Vec::with_capacity(CHUNK + 2 * context + pattern.span + 64),
            from: 0,
            mapping: 0,
            open: false,
            ends: Vec::new(),
        }
    }

    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Whether bytes at `addr` of mapping `mapping` continue the window.
    fn continues(&self, mapping: usize, addr: u64) -> bool {
        self.open && self.mapping == mapping && self.end() == addr
    }

    fn begin(&mut self, mapping: usize, addr: u64) {
        self.buf.clear();
        self.ends.clear();
        (self.start, self.base, self.from, self.mapping, self.open) =
            (addr, addr, addr, mapping, true);
    }

    /// Reports the matches in the buffer; when not `last`, those whose
    /// extent or context may still grow with the bytes to come are left
    /// for the next round, and the buffer is cut to what it needs.
    fn scan(
        &mut self,
        last: bool,
        found: &mut dyn FnMut(Match) -> Result<ControlFlow<()>>,
    ) -> Result<ControlFlow<()>> {
        if let Engine::Many(many) = &self.pattern.engine {
            return self.scan_many(many, last, found);
        }
        let end = self.end();
        let span = self.pattern.span as u64;
        let regex = self.pattern.is_regex();
        // Bytes after a match that must be here before it is reported.
        let need_after = if regex {
            self.context.max(span)
        } else {
            self.context
        };
        let mut pos = self.from;
        let mut deferred = None;
        let mut flow = ControlFlow::Continue(());
        while pos < end {
            let at = (pos - self.base) as usize;
            let Some((s, e)) = self.pattern.find(&self.buf, at, &self.cancel)? else {
                break;
            };
            let (s, e) = (self.base + s as u64, self.base + e as u64);
            if s == e {
                // An empty match of a regular expression says nothing.
                pos = s + 1;
                continue;
            }
            if !last && e + need_after > end && s + need_after + span >= end {
                deferred = Some(s);
                break;
            }
            let at = |a: u64| (a - self.base) as usize;
            let before_from = s
                .saturating_sub(self.context)
                .max(self.start)
                .max(self.base);
            let after_to = e.saturating_add(self.context).min(end);
            let bytes = self.buf[at(s)..at(e)].to_vec();
            let m = Match {
                addr: s,
                mapping: self.mapping,
                utf16: self.pattern.is_utf16(&bytes),
                bytes,
                before: self.buf[at(before_from)..at(s)].to_vec(),
                after: self.buf[at(e)..at(after_to)].to_vec(),
                pattern: 0,
            };
            self.from = e;
            pos = e;
            flow = found(m)?;
            if flow.is_break() {
                break;
            }
        }
        if last || flow.is_break() {
            self.open = false;
            self.buf.clear();
            return Ok(flow);
        }
        // Where the next round's matches can start: the match left for it,
        // or (none) the last bytes a match can start in and still reach
        // new bytes (for a regular expression, its span).
        let overlap = if regex { span } else { span - 1 };
        self.from = deferred.unwrap_or(self.from.max(end.saturating_sub(overlap)));
        let look_behind = if regex { LOOK_BEHIND } else { 0 };
        let keep_from = self
            .from
            .saturating_sub(self.context + look_behind)
            .max(self.base);
        let cut = (keep_from - self.base) as usize;
        self.buf.drain(..cut);
        self.base = keep_from;
        Ok(flow)
    }
}

/// Searches `data`, bytes held outside the process's memory (a socket's
/// or a pipe's queue), for `pattern`: each match's `addr` is its offset in
/// `data`, its context at most `context` bytes each side; `cancel` is
/// checked as for memory.
pub(crate) fn search_bytes(
    pattern: &Pattern,
    data: &[u8],
    context: usize,
    cancel: &Cancel,
    found: &mut dyn FnMut(Match) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let mut w = Window::new(pattern, context.min(MAX_CONTEXT), cancel);
    w.begin(0, 0);
    w.buf.extend_from_slice(data);
    w.scan(true, found).map(|_| ())
}

impl Window<'_> {
    /// [`Window::scan`] for several literals: every occurrence of each
    /// automaton pattern that does not overlap the one before it (as a
    /// search for it alone finds them), in address order. Matches starting
    /// where a longer one or its context could still reach bytes to come
    /// are left for the next round.
    fn scan_many(
        &mut self,
        many: &Many,
        last: bool,
        found: &mut dyn FnMut(Match) -> Result<ControlFlow<()>>,
    ) -> Result<ControlFlow<()>> {
        let end = self.end();
        let reach = self.pattern.span as u64 - 1 + self.context;
        let cutoff = match last {
            true => end,
            false => end.saturating_sub(reach).max(self.from),
        };
        if self.ends.len() != many.of.len() {
            self.ends = vec![0; many.of.len()];
        }
        let mut hits = Vec::new();
        let from = (self.from - self.base) as usize;
        for m in many.ac.find_overlapping_iter(&self.buf[from..]) {
            let (s, e) = (self.from + m.start() as u64, self.from + m.end() as u64);
            let k = m.pattern().as_usize();
            if s >= cutoff || s < self.ends[k] {
                continue;
            }
            self.ends[k] = e;
            hits.push((s, k, e));
        }
        hits.sort_unstable();
        let mut flow = ControlFlow::Continue(());
        for (s, k, e) in hits {
            let at = |a: u64| (a - self.base) as usize;
            let before_from = s
                .saturating_sub(self.context)
                .max(self.start)
                .max(self.base);
            let after_to = e.saturating_add(self.context).min(end);
            flow = found(Match {
                addr: s,
                mapping: self.mapping,
                bytes: self.buf[at(s)..at(e)].to_vec(),
                before: self.buf[at(before_from)..at(s)].to_vec(),
                after: self.buf[at(e)..at(after_to)].to_vec(),
                utf16: many.wide[k],
                pattern: many.of[k],
            })?;
            if flow.is_break() {
                break;
            }
        }
        if last || flow.is_break() {
            self.open = false;
            self.buf.clear();
            self.ends.clear();
            return Ok(flow);
        }
        self.from = cutoff;
        let keep_from = cutoff.saturating_sub(self.context).max(self.base);
        self.buf.drain(..(keep_from - self.base) as usize);
        self.base = keep_from;
        Ok(flow)
    }
}

/// What reads a process's memory run by run ([`read_runs`]): the bytes of
/// each run of dumped pages come in order, appended to [`RunReader::buf`]
/// in chunks of at most [`CHUNK`] bytes; a run ends where a hole, unknown
/// bytes, an unmapped gap or another mapping comes between.
pub(crate) trait RunReader {
    /// Whether the current run, if any, goes on at `addr` of mapping `mi`.
    fn continues(&self, mi: usize, addr: u64) -> bool;
    /// The current run, if any, ends.
    fn end_run(&mut self) -> Result<ControlFlow<()>>;
    /// A run begins at `addr` of mapping `mi`.
    fn begin(&mut self, mi: usize, addr: u64);
    /// Where the bytes go.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Bytes were appended to [`RunReader::buf`].
    fn after_read(&mut self) -> Result<ControlFlow<()>>;
}

/// Dumped pages to read: `len` bytes at `addr` of mapping `mi`, at
/// `offset` in blob `blob`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    mi: usize,
    addr: u64,
    len: u64,
    blob: usize,
    offset: u64,
}

impl Piece {
    /// Whether `next` continues this piece's bytes in the address space.
    fn continued_by(&self, next: &Piece) -> bool {
        self.mi == next.mi && self.addr + self.len == next.addr
    }
}

/// Gives `f` the dumped pages of `p` in the mappings and addresses
/// `filter` accepts, front to back, and `None` where a hole or contents the
/// checkpoint lacks come between, until `f` breaks.
fn walk_pieces(
    p: &Process,
    filter: &Filter,
    f: &mut dyn FnMut(Option<Piece>) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let wanted: Vec<bool> = p.mappings.iter().map(|m| filter.accepts(m)).collect();
    let Some(first) = wanted.iter().position(|&w| w) else {
        return Ok(());
    };
    let (lo, hi) = filter.range.unwrap_or((0, u64::MAX));
    p.walk_runs(first, &mut |mi, _m, at, run| {
        if at >= hi {
            // Mappings are in address order: nothing after is wanted.
            return Ok(ControlFlow::Break(()));
        }
        let (s, e) = (at.max(lo), (at + run.len).min(hi));
        match run.source {
            PageSource::Blob { blob, offset } if wanted[mi] && s < e => f(Some(Piece {
                mi,
                addr: s,
                len: e - s,
                blob,
                offset: offset + (s - at),
            })),
            PageSource::Blob { .. } => Ok(ControlFlow::Continue(())),
            // A hole, unknown contents or another mapping ends a run.
            _ => f(None),
        }
    })
}

/// Reads pieces of a process's pages into a [`RunReader`], keeping its
/// files open and a chunk read ahead between pieces.
struct PieceReader<'a> {
    p: &'a Process,
    cancel: &'a Cancel,
    files: HashMap<usize, BlobFile>,
    ahead: ReadAhead,
    /// Bytes read.
    bytes: u64,
}

impl<'a> PieceReader<'a> {
    fn new(p: &'a Process, cancel: &'a Cancel) -> PieceReader<'a> {
        PieceReader {
            p,
            cancel,
            files: HashMap::new(),
            ahead: ReadAhead::default(),
            bytes: 0,
        }
    }

    /// Reads `piece` into `r`, or ends `r`'s run where there is none.
    fn read(&mut self, piece: Option<Piece>, r: &mut dyn RunReader) -> Result<ControlFlow<()>> {
        let Some(pc) = piece else {
            return r.end_run();
        };
        if !r.continues(pc.mi, pc.addr) {
            if r.end_run()?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
            r.begin(pc.mi, pc.addr);
        }
        let b = self
            .p
            .blobs
            .get(pc.blob)
            .context("page run names an unknown blob")?;
        let f = match self.files.entry(pc.blob) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(BlobFile::open(b).with_context(|| format!("{}: cannot open", b.label))?)
            }
        };
        let mut done = 0;
        while done < pc.len {
            self.cancel.check()?;
            let n = (pc.len - done).min(CHUNK as u64) as usize;
            let in_blob = pc.offset + done;
            let at = (pc.blob, b.offset + in_blob, b.offset + b.len);
            self.ahead.append(f, at, r.buf(), n).with_context(|| {
                format!("{}: cannot read {n} bytes at offset {in_blob}", b.label)
            })?;
            self.bytes += n as u64;
            done += n as u64;
            if r.after_read()?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}

/// Reads the dumped pages of `p` in the mappings and addresses `filter`
/// accepts, front to back, into `r`; returns the bytes read, and whether
/// `r` stopped it. The current run is not ended at the end: that is `r`'s.
pub(crate) fn read_runs(
    p: &Process,
    filter: &Filter,
    cancel: &Cancel,
    r: &mut dyn RunReader,
) -> Result<(u64, bool)> {
    let mut reader = PieceReader::new(p, cancel);
    let mut stopped = false;
    walk_pieces(p, filter, &mut |piece| {
        let flow = reader.read(piece, r)?;
        stopped |= flow.is_break();
        Ok(flow)
    })?;
    Ok((reader.bytes, stopped))
}

/// The bytes read last from one blob, a chunk at a time: the runs of a
/// process with many small mappings lie one after the other in its pages
/// file, so one read serves many of them instead of a read each.
#[derive(Default)]
struct ReadAhead {
    /// The blob, and where in its file the bytes start.
    at: Option<(usize, u64)>,
    bytes: Vec<u8>,
}

impl ReadAhead {
    /// Appends to `out` the `n` bytes of blob `blob` (in `f`) at file
    /// offset `offset`, reading a chunk ahead (up to `end`, the blob's end)
    /// when they are not at hand.
    fn append(
        &mut self,
        f: &mut BlobFile,
        (blob, offset, end): (usize, u64, u64),
        out: &mut Vec<u8>,
        n: usize,
    ) -> std::io::Result<()> {
        if let Some(bytes) = self.at_hand(blob, offset, n) {
            out.extend_from_slice(bytes);
            return Ok(());
        }
        if n >= CHUNK / 2 || offset + n as u64 > end {
            let old = out.len();
            out.resize(old + n, 0);
            return f.read_exact_at(&mut out[old..], offset);
        }
        self.at = None;
        let want = (end - offset).min(CHUNK as u64) as usize;
        self.bytes.resize(want, 0);
        f.read_exact_at(&mut self.bytes, offset)?;
        self.at = Some((blob, offset));
        out.extend_from_slice(&self.bytes[..n]);
        Ok(())
    }

    /// The `n` bytes of blob `blob` at file offset `offset`, if read ahead.
    fn at_hand(&self, blob: usize, offset: u64, n: usize) -> Option<&[u8]> {
        let (b, start) = self.at?;
        let from = usize::try_from(offset.checked_sub(start)?).ok()?;
        (b == blob).then(|| self.bytes.get(from..from.checked_add(n)?))?
    }
}

/// A search's window over the runs, reporting matches to its caller.
struct Searching<'a, 'p> {
    win: Window<'p>,
    p: &'a Process,
    found: &'a mut dyn FnMut(&Mapping, Match) -> Result<ControlFlow<()>>,
    max_matches: Option<u64>,
    matches: u64,
    /// Set when the rest of the search is not wanted.
    stop: Option<&'a AtomicBool>,
}

impl<'a, 'p> Searching<'a, 'p> {
    fn new(
        p: &'a Process,
        pattern: &'p Pattern,
        opts: &SearchOptions,
        found: &'a mut dyn FnMut(&Mapping, Match) -> Result<ControlFlow<()>>,
    ) -> Searching<'a, 'p> {
        Searching {
            win: Window::new(pattern, opts.context, &opts.cancel),
            p,
            found,
            max_matches: opts.max_matches,
            matches: 0,
            stop: None,
        }
    }

    /// Searches the window; the last bytes are searched too with `last`.
    fn scan(&mut self, last: bool) -> Result<ControlFlow<()>> {
        let (p, found, max) = (self.p, &mut *self.found, self.max_matches);
        let matches = &mut self.matches;
        self.win.scan(last, &mut |m: Match| {
            *matches += 1;
            let flow = found(&p.mappings[m.mapping], m)?;
            if max.is_some_and(|n| *matches >= n) {
                return Ok(ControlFlow::Break(()));
            }
            Ok(flow)
        })
    }
}

impl RunReader for Searching<'_, '_> {
    fn continues(&self, mi: usize, addr: u64) -> bool {
        self.win.continues(mi, addr)
    }

    fn end_run(&mut self) -> Result<ControlFlow<()>> {
        if !self.win.open {
            return Ok(ControlFlow::Continue(()));
        }
        self.scan(true)
    }

    fn begin(&mut self, mi: usize, addr: u64) {
        self.win.begin(mi, addr);
    }

    fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.win.buf
    }

    fn after_read(&mut self) -> Result<ControlFlow<()>> {
        if self.stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(ControlFlow::Break(()));
        }
        self.scan(false)
    }
}

/// Searches the memory of `p` for `pattern` in the mappings `filter`
/// accepts, calling `found` with each match in address order until it
/// breaks or [`SearchOptions::max_matches`] are reported.
pub(crate) fn search_process(
    p: &Process,
    pattern: &Pattern,
    filter: &Filter,
    opts: &SearchOptions,
    found: &mut dyn FnMut(&Mapping, Match) -> Result<ControlFlow<()>>,
) -> Result<Searched> {
    if opts.context > MAX_CONTEXT {
        bail!(
            "-C {} is more context than {MAX_CONTEXT} bytes",
            opts.context
        );
    }
    if opts.max_matches == Some(0) {
        return Ok(Searched::default());
    }
    if opts.threads > 1 {
        return search_in_parts(p, pattern, filter, opts, PART_BYTES, found);
    }
    let mut s = Searching::new(p, pattern, opts, found);
    let (bytes, stopped) = read_runs(p, filter, &opts.cancel, &mut s)?;
    if !stopped {
        let _ = s.end_run()?;
    }
    Ok(Searched {
        bytes,
        matches: s.matches,
    })
}

/// Dumped bytes in a part of a process searched by one thread of several.
const PART_BYTES: u64 = 8 << 20;
/// A part's matches are handed over in batches of about this many bytes.
const BATCH_BYTES: usize = 256 << 10;
/// Most matches in one batch.
const BATCH_MATCHES: usize = 256;

/// A part of a process: pieces of whole windows, so that it is searched
/// exactly as one pass over the process would search them.
type Part = Vec<Option<Piece>>;

/// What a thread searching a part hands over.
enum Handed {
    Matches(Vec<(usize, Match)>),
    Done(Result<Searched>),
}

/// Searches `p` on `opts.threads` threads: this one reports the matches in
/// address order; one walks the runs and cuts them into parts of about
/// `part_bytes` at window boundaries; the others search the parts.
fn search_in_parts(
    p: &Process,
    pattern: &Pattern,
    filter: &Filter,
    opts: &SearchOptions,
    part_bytes: u64,
    found: &mut dyn FnMut(&Mapping, Match) -> Result<ControlFlow<()>>,
) -> Result<Searched> {
    let threads = opts.threads.max(1);
    let (work_tx, work_rx) = sync_channel::<(Part, SyncSender<Handed>)>(threads);
    let (order_tx, order_rx) = sync_channel::<Receiver<Handed>>(2 * threads + 2);
    let work_rx = Mutex::new(work_rx);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut searchers = 0;
        for _ in 0..threads {
            let searcher = std::thread::Builder::new()
                .spawn_scoped(scope, || search_parts(p, pattern, opts, &work_rx, &stop));
            searchers += usize::from(searcher.is_ok());
        }
        let (stop, order_tx) = (&stop, order_tx);
        let cutter = (searchers > 0).then(|| {
            std::thread::Builder::new().spawn_scoped(scope, move || {
                cut_parts(p, filter, part_bytes, stop, work_tx, order_tx)
            })
        });
        let result = match cutter {
            Some(Ok(_)) => take_in_order(p, order_rx, opts.max_matches, found),
            // No thread could be started: search in this one.
            _ => {
                drop(order_rx);
                let mut one = opts.clone();
                one.threads = 1;
                search_process(p, pattern, filter, &one, found)
            }
        };
        stop.store(true, Ordering::SeqCst);
        result
    })
}

/// Walks the runs of `p`, sending each part to be searched and, in order,
/// where its matches will come.
fn cut_parts(
    p: &Process,
    filter: &Filter,
    part_bytes: u64,
    stop: &AtomicBool,
    work: SyncSender<(Part, SyncSender<Handed>)>,
    order: SyncSender<Receiver<Handed>>,
) {
    let send = |part: Part| -> ControlFlow<()> {
        let (tx, rx) = sync_channel(1);
        if stop.load(Ordering::Relaxed) || order.send(rx).is_err() || work.send((part, tx)).is_err()
        {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    };
    let mut cutter = Cutter::new(part_bytes);
    let walked = walk_pieces(p, filter, &mut |piece| match cutter.push(piece) {
        Some(part) => Ok(send(part)),
        None => Ok(ControlFlow::Continue(())),
    });
    let part = cutter.part;
    match walked {
        Ok(()) if !part.is_empty() => {
            let _ = send(part);
        }
        Ok(()) => {}
        Err(e) => {
            // The error takes its place after the parts before it.
            let (tx, rx) = sync_channel(1);
            if order.send(rx).is_ok() {
                let _ = tx.send(Handed::Done(Err(e)));
            }
        }
    }
}

/// Gathers pieces into parts of at least `part_bytes` bytes that end
/// only where a window does.
struct Cutter {
    part_bytes: u64,
    part: Part,
    bytes: u64,
    last: Option<Piece>,
}

impl Cutter {
    fn new(part_bytes: u64) -> Cutter {
        Cutter {
            part_bytes,
            part: Vec::new(),
            bytes: 0,
            last: None,
        }
    }

    /// Adds `piece`; returns the part it ends, if it ends one.
    fn push(&mut self, piece: Option<Piece>) -> Option<Part> {
        let window_ends = match (self.last, piece) {
            (Some(l), Some(n)) => !l.continued_by(&n),
            _ => true,
        };
        let done = (self.bytes >= self.part_bytes && window_ends).then(|| {
            self.bytes = 0;
            std::mem::take(&mut self.part)
        });
        self.bytes += piece.map_or(0, |pc| pc.len);
        self.last = piece;
        self.part.push(piece);
        done
    }
}

/// A searching thread: searches the parts it is given, handing over each
/// part's matches in batches, until there are no more.
fn search_parts(
    p: &Process,
    pattern: &Pattern,
    opts: &SearchOptions,
    work: &Mutex<Receiver<(Part, SyncSender<Handed>)>>,
    stop: &AtomicBool,
) {
    let mut reader = PieceReader::new(p, &opts.cancel);
    loop {
        let Ok((part, tx)) = lock(work).recv() else {
            return;
        };
        let before = reader.bytes;
        let (mut batch, mut bytes) = (Vec::new(), 0usize);
        let hand = |batch: &mut Vec<(usize, Match)>, bytes: &mut usize| -> bool {
            *bytes = 0;
            let gone = tx.send(Handed::Matches(std::mem::take(batch))).is_err();
            stop.fetch_or(gone, Ordering::SeqCst);
            !gone
        };
        let mut found = |_: &Mapping, hit: Match| -> Result<ControlFlow<()>> {
            bytes += hit.bytes.len() + hit.before.len() + hit.after.len() + 64;
            batch.push((hit.mapping, hit));
            let full = bytes >= BATCH_BYTES || batch.len() >= BATCH_MATCHES;
            Ok(match full && !hand(&mut batch, &mut bytes) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            })
        };
        let mut s = Searching::new(p, pattern, opts, &mut found);
        s.stop = Some(stop);
        let result = search_part(&part, &mut reader, &mut s).map(|matches| Searched {
            matches,
            bytes: reader.bytes - before,
        });
        if !batch.is_empty() && !hand(&mut batch, &mut bytes) {
            continue;
        }
        let _ = tx.send(Handed::Done(result));
    }
}

/// Searches the pieces of one part; returns the matches found.
fn search_part(part: &Part, reader: &mut PieceReader, s: &mut Searching) -> Result<u64> {
    for &piece in part {
        if reader.read(piece, s)?.is_break() {
            return Ok(s.matches);
        }
    }
    let _ = s.end_run()?;
    Ok(s.matches)
}

/// Reports the parts' matches part by part, until `found` breaks or
/// `max` are reported.
fn take_in_order(
    p: &Process,
    parts: Receiver<Receiver<Handed>>,
    max: Option<u64>,
    found: &mut dyn FnMut(&Mapping, Match) -> Result<ControlFlow<()>>,
) -> Result<Searched> {
    let mut total = Searched::default();
    for rx in parts {
        loop {
            // A part whose thread ended without a word.
            let handed = rx.recv().context("a search thread stopped")?;
            match handed {
                Handed::Done(searched) => {
                    total.bytes += searched?.bytes;
                    break;
                }
                Handed::Matches(batch) => {
                    for (mi, hit) in batch {
                        total.matches += 1;
                        let flow = found(&p.mappings[mi], hit)?;
                        if flow.is_break() || max.is_some_and(|n| total.matches >= n) {
                            return Ok(total);
                        }
                    }
                }
            }
        }
    }
    Ok(total)
}

impl Process {
    /// Searches the memory of the process for `pattern` in the mappings
    /// `filter` accepts, as its core would hold it, streaming the pages
    /// files: `found` gets each match in address order until it breaks or
    /// [`SearchOptions::max_matches`] are reported.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use criu2core::search::{Filter, Kind, Pattern, PatternOptions, SearchOptions};
    /// use criu2core::{open, LoadOptions, Loaded, OpenOptions};
    ///
    /// let ckpt = open("gdb-fixtures/example.tar.zst", &OpenOptions::default())?;
    /// let Loaded::Process(p) = ckpt.load(12155, &LoadOptions::default())? else { panic!() };
    /// let mut opts = PatternOptions::default();
    /// opts.regex = true;
    /// let marker = Pattern::new(r"HEAP_MARKER_\d+", &opts)?;
    /// let mut heap = Filter::default();
    /// heap.kinds = vec![Kind::Heap, Kind::Anon];
    /// let mut found = Vec::new();
    /// p.search(&marker, &heap, &SearchOptions::default(), &mut |_, hit| {
    ///     found.push((hit.addr, hit.bytes));
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(found[0].1, b"HEAP_MARKER_77");
    /// assert_eq!(p.read_memory(found[0].0, 14)?, b"HEAP_MARKER_77");
    /// # Ok::<(), criu2core::Error>(())
    /// ```
    pub fn search(
        &self,
        pattern: &Pattern,
        filter: &Filter,
        opts: &SearchOptions,
        found: &mut dyn FnMut(&Mapping, Match) -> ControlFlow<()>,
    ) -> crate::Result<Searched> {
        search_process(self, pattern, filter, opts, &mut |m, hit| Ok(found(m, hit)))
            .map_err(crate::Error::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_the_shell_does_with_slashes_as_any_byte() {
        let m = |p: &str, s: &str| Glob::new(p).matches(s.as_bytes());
        assert!(m("*libc*", "/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(m("/usr/lib/*.so.?", "/usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(!m("/usr/lib/*.so.?", "/usr/lib/libc.so.16"));
        assert!(m("[!a]b", "cb") && !m("[!a]b", "ab") && m("[^a]b", "cb"));
        assert!(m("[a-c]x", "bx") && !m("[a-c]x", "dx"));
        assert!(m("[]]", "]") && m("a[", "a["));
        assert!(m("\\*", "*") && !m("\\*", "a"));
        assert!(m("*", "") && m("**a**", "xxaxx") && !m("a*b", "acbd"));
    }

    #[test]
    fn prot_filters_take_letters_or_exact_columns() {
        let rw = Prot {
            read: true,
            write: true,
            exec: false,
        };
        let rx = Prot {
            read: true,
            write: false,
            exec: true,
        };
        assert!(ProtFilter::parse("rw").unwrap().accepts(rw));
        assert!(!ProtFilter::parse("rw").unwrap().accepts(rx));
        assert!(ProtFilter::parse("x").unwrap().accepts(rx));
        assert!(ProtFilter::parse("r-x").unwrap().accepts(rx));
        assert!(!ProtFilter::parse("r--").unwrap().accepts(rx));
        assert!(ProtFilter::parse("q").is_err() && ProtFilter::parse("").is_err());
        assert!(ProtFilter::parse("x-r").is_err());
    }

    #[test]
    fn hex_patterns_and_addresses_parse() {
        assert_eq!(parse_hex("de ad be ef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            parse_hex("0xdead,0xBE:ef").unwrap(),
            [0xde, 0xad, 0xbe, 0xef]
        );
        assert!(parse_hex("abc").is_err() && parse_hex("zz").is_err());
    }

    /// Runs a window over `data` fed in pieces of `piece` bytes.
    fn run(pattern: &Pattern, data: &[u8], piece: usize, context: usize) -> Vec<Match> {
        let mut w = Window::new(pattern, context, &Cancel::default());
        let mut out = Vec::new();
        w.begin(0, 0x1000);
        for chunk in data.chunks(piece) {
            w.buf.extend_from_slice(chunk);
            let _ = w
                .scan(false, &mut |m| {
                    out.push(m);
                    Ok(ControlFlow::Continue(()))
                })
                .unwrap();
        }
        let _ = w
            .scan(true, &mut |m| {
                out.push(m);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
        out
    }

    fn regex(re: &str) -> crate::Result<Pattern> {
        Pattern::new(
            re,
            &PatternOptions {
                regex: true,
                ..Default::default()
            },
        )
    }

    #[test]
    fn costly_regular_expressions_are_refused() {
        for re in [r"[\w\W]{60000}", r"(?-u)[\x00-\xff]{60000}"] {
            let err = regex(re).unwrap_err().to_string();
            assert!(err.contains("too costly to search"), "{err}");
            assert!(err.contains("(MAX_REGEX_SIZE)"), "{err}");
        }
        assert!(regex(r"[\w\W]{500}").is_ok());
        assert!(regex(r"\b\w+@\w+\.com\b").is_ok());
    }

    #[test]
    fn a_slow_regular_expression_stops_when_cancelled() {
        // Accepted, but each byte costs much: a MiB takes minutes.
        let pattern = regex(r"(?-u)[\x00-\xff]{2000}").unwrap();
        let cancel = Cancel::new();
        let c = cancel.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut w = Window::new(&pattern, 0, &c);
            w.begin(0, 0x1000);
            w.buf = b"the quick brown fox ".repeat(50_000);
            let r = w.scan(false, &mut |_| Ok(ControlFlow::Continue(())));
            let _ = tx.send(r.map(|_| ()));
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        cancel.cancel(15);
        let done = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("still searching 5 s after the cancellation");
        assert!(done.unwrap_err().is::<crate::cancel::Cancelled>());
    }

    /// Every match of `pattern` in pid 12155 of the example archive, with
    /// `threads` threads and `max` matches at most.
    fn example_matches(pattern: &Pattern, threads: usize, max: Option<u64>) -> Vec<Match> {
        let p = example_process();
        let opts = SearchOptions {
            context: 3,
            max_matches: max,
            threads,
            ..Default::default()
        };
        let mut found = Vec::new();
        p.search(pattern, &Filter::default(), &opts, &mut |_, m| {
            found.push(m);
            ControlFlow::Continue(())
        })
        .unwrap();
        found
    }

    fn example_process() -> Process {
        let ckpt = crate::open("gdb-fixtures/example.tar.zst", &Default::default()).unwrap();
        let crate::Loaded::Process(p) = ckpt.load(12155, &Default::default()).unwrap() else {
            panic!("pid 12155 is a process")
        };
        *p
    }

    #[test]
    fn threads_find_what_one_pass_finds_in_the_same_order() {
        let libc = Pattern::new("libc", &PatternOptions::default()).unwrap();
        let one = example_matches(&libc, 1, None);
        assert!(one.len() > 20, "{} matches", one.len());
        for threads in [2, 3, 8] {
            assert_eq!(
                example_matches(&libc, threads, None),
                one,
                "{threads} threads"
            );
        }
        // Stopping after some matches keeps the first ones.
        assert_eq!(example_matches(&libc, 3, Some(7)), one[..7]);
        // With a part for every window (parts of a byte at least), taken
        // by three threads.
        let p = example_process();
        for max in [None, Some(7)] {
            let opts = SearchOptions {
                context: 3,
                max_matches: max,
                threads: 3,
                ..Default::default()
            };
            let mut found = Vec::new();
            search_in_parts(&p, &libc, &Filter::default(), &opts, 1, &mut |_, m| {
                found.push(m);
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
            assert_eq!(found, one[..max.map_or(one.len(), |n| n as usize)]);
        }
    }

    #[test]
    fn a_part_never_ends_inside_a_window() {
        let piece = |mi, addr, blob| {
            Some(Piece {
                mi,
                addr,
                len: 0x1000,
                blob,
                offset: 0,
            })
        };
        // Two blobs' pages that follow each other in one mapping are one
        // window; a hole or another mapping ends it.
        let (a, b, c, d) = (
            piece(0, 0x1000, 0),
            piece(0, 0x2000, 1),
            piece(1, 0x3000, 0),
            piece(2, 0x5000, 0),
        );
        let mut cutter = Cutter::new(1);
        let mut parts: Vec<Part> = [a, b, None, c, d]
            .into_iter()
            .filter_map(|pc| cutter.push(pc))
            .collect();
        parts.push(cutter.part);
        let shown = format!("{parts:?}");
        assert_eq!(shown, format!("{:?}", [vec![a, b], vec![None, c], vec![d]]));
    }

    #[test]
    fn parts_hold_every_piece_in_order_and_end_only_where_windows_do() {
        let p = example_process();
        let mut pieces = Vec::new();
        walk_pieces(&p, &Filter::default(), &mut |pc| {
            pieces.push(pc);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        let (work_tx, work_rx) = sync_channel(1000);
        let (order_tx, _order_rx) = sync_channel(1000);
        let stop = AtomicBool::new(false);
        cut_parts(&p, &Filter::default(), 64 << 10, &stop, work_tx, order_tx);
        let parts: Vec<Part> = work_rx.try_iter().map(|(part, _)| part).collect();
        assert!(parts.len() > 3, "{} parts", parts.len());
        let ends_window = |a: &Option<Piece>, b: &Option<Piece>| match (a, b) {
            (Some(a), Some(b)) => !a.continued_by(b),
            _ => true,
        };
        for w in parts.windows(2) {
            let (last, first) = (w[0].last().unwrap(), &w[1][0]);
            assert!(ends_window(last, first), "{last:?} then {first:?}");
        }
        let joined: Vec<_> = parts.concat().iter().map(|pc| format!("{pc:?}")).collect();
        let all: Vec<_> = pieces.iter().map(|pc| format!("{pc:?}")).collect();
        assert_eq!(joined, all);
    }

    #[test]
    fn matches_are_the_same_however_the_bytes_arrive() {
        let mut data = Vec::new();
        for i in 0..400u32 {
            data.extend_from_slice(format!("xx{i}SECRETyy-AAAA-").as_bytes());
        }
        let cases = [
            (
                Pattern::new("SECRET", &PatternOptions::default()).unwrap(),
                400,
            ),
            (
                Pattern::new(
                    "secret",
                    &PatternOptions {
                        ignore_case: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
                400,
            ),
            (
                Pattern::new(
                    "[0-9]+SEC",
                    &PatternOptions {
                        regex: true,
                        ..Default::default()
                    },
                )
                .unwrap(),
                400,
            ),
            // Non-overlapping: AAAA holds two AA, not three.
            (Pattern::new("AA", &PatternOptions::default()).unwrap(), 800),
        ];
        for (p, count) in &cases {
            let whole = run(p, &data, data.len(), 5);
            assert_eq!(whole.len(), *count, "{p:?}");
            for piece in [1, 2, 3, 7, 64, 1000] {
                assert_eq!(run(p, &data, piece, 5), whole, "{p:?} in pieces of {piece}");
            }
        }
        let m = &run(&cases[0].0, &data, 3, 4)[1];
        assert_eq!(
            (m.addr, &m.before[..], &m.bytes[..], &m.after[..]),
            (0x1000 + 20, &b"-xx1"[..], &b"SECRET"[..], &b"yy-A"[..])
        );
    }

    #[test]
    fn several_patterns_find_the_union_of_single_searches() {
        let mut data = Vec::new();
        for i in 0..300u32 {
            data.extend_from_slice(format!("xx{i}SECRETyy-AAAA-key{i}-").as_bytes());
        }
        // Overlapping patterns, one inside another, one overlapping itself.
        let texts: Vec<String> = ["SECRET", "CRET", "AA", "y-A", "key1", "nothere"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let opts = PatternOptions::default();
        let many = Pattern::many(&texts, &opts).unwrap();
        let mut union = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let one = Pattern::new(t, &opts).unwrap();
            for mut m in run(&one, &data, data.len(), 3) {
                m.pattern = i;
                union.push(m);
            }
        }
        union.sort_by_key(|m| (m.addr, m.pattern));
        assert_eq!(union.len(), 300 * 4 + 300 + 111);
        for piece in [1, 2, 5, 7, 64, 1000, data.len()] {
            let got = run(&many, &data, piece, 3);
            assert_eq!(got, union, "in pieces of {piece}");
        }
        let mut ci = PatternOptions {
            ignore_case: true,
            utf16: true,
            ..Default::default()
        };
        let texts = vec!["secret".to_string(), "KEY".to_string()];
        let got = run(
            &Pattern::many(&texts, &ci).unwrap(),
            b"SeCrEt K\0e\0Y\0",
            2,
            0,
        );
        let seen: Vec<_> = got.iter().map(|m| (m.addr, m.pattern, m.utf16)).collect();
        assert_eq!(seen, [(0x1000, 0, false), (0x1007, 1, true)]);
        ci.regex = true;
        assert!(Pattern::many(&texts, &ci).is_err());
    }

    #[test]
    fn context_stays_inside_the_window_and_utf16_is_told_apart() {
        let p = Pattern::new(
            "Key",
            &PatternOptions {
                utf16: true,
                ..Default::default()
            },
        )
        .unwrap();
        let data = b"Key..K\0e\0y\0";
        let got = run(&p, data, 2, 100);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].addr, got[0].utf16), (0x1000, false));
        assert_eq!((got[1].addr, got[1].utf16), (0x1005, true));
        assert_eq!(got[0].before, b"");
        assert_eq!(got[1].before, b"Key..");
        assert_eq!(got[0].after, b"..K\0e\0y\0");
    }

    #[test]
    fn patterns_are_checked() {
        let o = |regex, hex, utf16, ignore_case| PatternOptions {
            regex,
            hex,
            utf16,
            ignore_case,
            span: None,
        };
        assert!(Pattern::new("a", &o(true, false, true, false)).is_err());
        assert!(Pattern::new("aa", &o(false, true, false, true)).is_err());
        assert!(Pattern::new("", &o(false, false, false, false)).is_err());
        assert!(Pattern::new("(", &o(true, false, false, false)).is_err());
        let hex = Pattern::new("41 42", &o(false, true, true, false)).unwrap();
        assert!(hex.is_utf16(b"A\0B\0") && !hex.is_utf16(b"AB"));
    }
}
