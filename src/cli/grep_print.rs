//! How `criu2core grep` and `criu2core yara` print what the library's
//! grep finds: a line per match for a terminal (text escaped, the match
//! optionally coloured), a hex dump of each match and its context, or
//! JSON Lines (docs/grep.schema.json, docs/yara.schema.json).

use std::fmt::Write as _;

use criu2core::grep::{Event, Mode, Place, Queue, Who};
use criu2core::inspect::{Bytes, MappingInfo};
use criu2core::model::Mapping;
use criu2core::search::Match;
use serde::Serialize;

use super::text::{escape, escape_bytes, escape_invalid_utf8, hex, json_for_terminal, Hexdump};

/// Identifies the JSON Lines that `grep --json` prints.
const SCHEMA: &str = "criu2core.grep/1";
/// Identifies the JSON Lines that `yara --json` prints.
#[cfg(feature = "yara")]
const YARA_SCHEMA: &str = "criu2core.yara/2";

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Format {
    /// Lines for a terminal, text escaped.
    #[default]
    Text,
    /// A hex dump of each match and its context.
    Hexdump,
    /// JSON Lines.
    Json,
}

/// What grep's or yara's output looks like.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Printer {
    /// What is reported of each process.
    pub mode: Mode,
    /// How.
    pub format: Format,
    /// Matches in colour (text only).
    pub color: bool,
    /// More than one pattern: JSON says which matched.
    pub patterns: bool,
    /// Rules' output (yara's), not a pattern's.
    pub yara: bool,
    /// With rules: each rule's metadata too.
    #[cfg(feature = "yara")]
    pub meta: bool,
}

impl Printer {
    /// Appends the output of `event` to `out`.
    pub fn render(&self, event: &Event<'_>, out: &mut String) {
        match *event {
            Event::Match { who, place, hit } => self.found(who, place, hit, out),
            Event::Count { who, count } => out.push_str(&self.count(who, count)),
            Event::Listed { who } if self.yara => out.push_str(&self.yara_count(who, None)),
            Event::Listed { who } => out.push_str(&self.count(who, 1)),
            #[cfg(feature = "yara")]
            Event::Rule {
                who,
                place,
                rule,
                string,
            } => out.push_str(&self.rule(who, place, rule, string)),
            #[cfg(feature = "yara")]
            Event::RuleCount { who, rule, count } => {
                out.push_str(&self.yara_count(who, Some((rule, count))))
            }
            _ => {}
        }
    }

    /// A match, in memory or in a queue.
    fn found(&self, who: Who<'_>, place: Place<'_>, hit: &Match, out: &mut String) {
        let line = match (place, self.format) {
            (Place::Memory(Some(m)), Format::Json) => json_line(&MatchJson {
                schema: SCHEMA,
                input: who.input,
                pid: who.pid,
                comm: Bytes(who.comm.to_vec()),
                address: hit.addr,
                length: hit.bytes.len(),
                mapping: MappingInfo::of(m),
                bytes: MatchBytesJson::of(hit, self.patterns),
            }),
            (Place::Queue(q), Format::Json) => json_line(&QueueMatchJson {
                schema: SCHEMA,
                input: who.input,
                pid: who.pid,
                comm: Bytes(who.comm.to_vec()),
                fd: q.fd,
                source: q.source,
                object: Bytes(q.object.to_vec()),
                offset: hit.addr,
                length: hit.bytes.len(),
                bytes: MatchBytesJson::of(hit, self.patterns),
            }),
            (Place::Memory(m), _) => {
                let at = m.map(|m| mapping_text(m, hit.addr)).unwrap_or_default();
                let line = format!("{} {:#x} {at}", who_text(who), hit.addr);
                self.match_body(line, hit)
            }
            (Place::Queue(q), _) => {
                let line = format!("{} {} +{:#x}", who_text(who), queue_text(q), hit.addr);
                self.match_body(line, hit)
            }
        };
        out.push_str(&line);
    }

    /// `line` (where the match is), then the match: a hex dump of it and
    /// its context, or `: before match after` with the match coloured.
    fn match_body(&self, mut line: String, hit: &Match) -> String {
        if self.format == Format::Hexdump {
            line.push_str(":\n");
            let mut h = Hexdump::new(hit.addr - hit.before.len() as u64, "  ");
            h.feed(&hit.before, &mut line);
            h.feed(&hit.bytes, &mut line);
            h.feed(&hit.after, &mut line);
            h.finish(&mut line);
            return line;
        }
        let (on, off) = if self.color {
            ("\x1b[1;31m", "\x1b[0m")
        } else {
            ("", "")
        };
        // A UTF-16 match shows decoded, and says so at the end.
        let (shown, note) = if hit.utf16 {
            (escape(&match_text(hit)).into_owned(), " (UTF-16LE)")
        } else {
            (escape_bytes(&hit.bytes).into_owned(), "")
        };
        let _ = writeln!(
            line,
            ": {}{on}{shown}{off}{}{note}",
            escape_bytes(&hit.before),
            escape_bytes(&hit.after)
        );
        line
    }

    /// A line of `-c` or `-l`.
    fn count(&self, who: Who<'_>, count: u64) -> String {
        match (self.format, self.mode) {
            (Format::Json, _) => json_line(&CountJson {
                schema: SCHEMA,
                input: who.input,
                pid: who.pid,
                comm: Bytes(who.comm.to_vec()),
                count,
            }),
            (_, Mode::Count) => format!("{}: {count}\n", who_text(who)),
            _ => who_text(who) + "\n",
        }
    }

    /// A line of `yara -c` (a rule and its count) or `-l`.
    fn yara_count(&self, who: Who<'_>, count: Option<(&str, u64)>) -> String {
        #[cfg(feature = "yara")]
        if self.format == Format::Json {
            return json_line(&YaraCountJson {
                schema: YARA_SCHEMA,
                input: who.input,
                pid: who.pid,
                comm: Bytes(who.comm.to_vec()),
                rule: count.map(|(r, _)| r),
                count: count.map(|(_, n)| n),
            });
        }
        let head = who_text(who);
        match count {
            Some((rule, n)) => format!("{head} {}: {n}\n", escape_bytes(rule.as_bytes())),
            None => head + "\n",
        }
    }

    /// The line of a rule that matched, with one of its string matches or
    /// none.
    #[cfg(feature = "yara")]
    fn rule(
        &self,
        who: Who<'_>,
        place: Place<'_>,
        h: &criu2core::yara::RuleHit,
        s: Option<&criu2core::yara::StringHit>,
    ) -> String {
        if self.format == Format::Json {
            return rule_json(who, place, h, self.meta, s);
        }
        let mut rule = format!("{}:{}", h.namespace, h.rule);
        if !h.tags.is_empty() {
            let _ = write!(rule, " [{}]", h.tags.join(","));
        }
        if self.meta {
            let _ = write!(rule, " {}", h.meta);
        }
        let head = format!("{} {}", who_text(who), escape_bytes(rule.as_bytes()));
        match s {
            None => format!("{head}{}\n", rule_place(place, None)),
            Some(s) => format!(
                "{head} {}{}: {}\n",
                escape_bytes(s.id.as_bytes()),
                rule_place(place, Some(s)),
                escape_bytes(&s.bytes)
            ),
        }
    }
}

/// Where a string match is, in a text line: `0xADDR [mapping]`, or `fd N
/// source [object] +0xOFFSET`; for a rule without string matches, nothing
/// in memory and the queue in a queue.
#[cfg(feature = "yara")]
fn rule_place(place: Place<'_>, s: Option<&criu2core::yara::StringHit>) -> String {
    match (place, s) {
        (Place::Memory(m), Some(s)) => {
            let m = m.map(|m| mapping_text(m, s.addr));
            format!(" {:#x} {}", s.addr, m.unwrap_or_default())
        }
        (Place::Memory(_), None) => String::new(),
        (Place::Queue(q), s) => {
            let mut t = format!(" {}", queue_text(q));
            if let Some(s) = s {
                let _ = write!(t, " +{:#x}", s.addr);
            }
            t
        }
    }
}

/// The JSON line of a rule that matched, with one of its string matches
/// or none.
#[cfg(feature = "yara")]
fn rule_json(
    who: Who<'_>,
    place: Place<'_>,
    h: &criu2core::yara::RuleHit,
    meta: bool,
    s: Option<&criu2core::yara::StringHit>,
) -> String {
    let (queue, memory) = match place {
        Place::Queue(q) => (Some(q), None),
        Place::Memory(m) => (None, Some(m)),
    };
    json_line(&YaraHitJson {
        schema: YARA_SCHEMA,
        input: who.input,
        pid: who.pid,
        comm: Bytes(who.comm.to_vec()),
        namespace: &h.namespace,
        rule: &h.rule,
        tags: &h.tags,
        meta: meta.then_some(&h.meta),
        string: s.map(|s| s.id.as_str()),
        fd: queue.map(|q| q.fd),
        source: queue.map(|q| q.source),
        object: queue.map(|q| Bytes(q.object.to_vec())),
        offset: s.filter(|_| queue.is_some()).map(|s| s.addr),
        address: s.filter(|_| memory.is_some()).map(|s| s.addr),
        length: s.map(|s| s.bytes.len()),
        mapping: memory
            .flatten()
            .filter(|_| s.is_some())
            .map(MappingInfo::of),
        text: s.map(|s| escape_invalid_utf8(&s.bytes).into_owned()),
        match_hex: s.map(|s| hex(&s.bytes)),
    })
}

/// `input: pid N (comm)`, escaped.
fn who_text(who: Who<'_>) -> String {
    format!(
        "{}: pid {} ({})",
        escape_bytes(who.input.as_bytes()),
        who.pid,
        escape_bytes(who.comm)
    )
}

/// `fd N source [object]`, escaped.
fn queue_text(q: Queue<'_>) -> String {
    format!("fd {} {} [{}]", q.fd, q.source, escape_bytes(q.object))
}

/// `[start-end prot kind path +offset]`: where `addr` lies.
fn mapping_text(m: &Mapping, addr: u64) -> String {
    let info = MappingInfo::of(m);
    let mut s = format!("[{:x}-{:x} {} {}", m.start, m.end, info.prot, info.kind);
    if let Some(f) = &m.file {
        let _ = write!(
            s,
            " {} +{:#x}",
            escape_bytes(&f.path),
            f.offset + (addr - m.start)
        );
    }
    s.push(']');
    s
}

/// A JSON line, escaped for a terminal.
fn json_line<T: Serialize>(v: &T) -> String {
    json_for_terminal(&serde_json::to_string(v).unwrap_or_default()).into_owned() + "\n"
}

/// The text of a match: a UTF-16 one decoded.
fn match_text(hit: &Match) -> String {
    if hit.utf16 {
        let units: Vec<u16> = hit
            .bytes
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        escape_invalid_utf8(&hit.bytes).into_owned()
    }
}

/// One JSON line of a match.
#[derive(Serialize)]
struct MatchJson<'a> {
    schema: &'static str,
    input: &'a str,
    pid: u32,
    comm: Bytes,
    address: u64,
    length: usize,
    mapping: MappingInfo,
    #[serde(flatten)]
    bytes: MatchBytesJson,
}

/// One JSON line of a match in a queue.
#[derive(Serialize)]
struct QueueMatchJson<'a> {
    schema: &'static str,
    input: &'a str,
    pid: u32,
    comm: Bytes,
    fd: u32,
    source: &'static str,
    object: Bytes,
    offset: u64,
    length: usize,
    #[serde(flatten)]
    bytes: MatchBytesJson,
}

/// What a JSON line says of a match's bytes and their context, in memory
/// and in a queue alike.
#[derive(Serialize)]
struct MatchBytesJson {
    #[serde(rename = "match")]
    text: String,
    match_hex: String,
    utf16: bool,
    /// Which pattern matched (index in -e/-f order), with several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<usize>,
    before: String,
    before_hex: String,
    after: String,
    after_hex: String,
}

impl MatchBytesJson {
    fn of(hit: &Match, patterns: bool) -> MatchBytesJson {
        MatchBytesJson {
            text: match_text(hit),
            match_hex: hex(&hit.bytes),
            utf16: hit.utf16,
            pattern: patterns.then_some(hit.pattern),
            before: escape_invalid_utf8(&hit.before).into_owned(),
            before_hex: hex(&hit.before),
            after: escape_invalid_utf8(&hit.after).into_owned(),
            after_hex: hex(&hit.after),
        }
    }
}

/// One JSON line of `-c` or `-l`.
#[derive(Serialize)]
struct CountJson<'a> {
    schema: &'static str,
    input: &'a str,
    pid: u32,
    comm: Bytes,
    count: u64,
}

/// One JSON line of a string match (or of a rule matched without one).
#[cfg(feature = "yara")]
#[derive(Serialize)]
struct YaraHitJson<'a> {
    schema: &'static str,
    input: &'a str,
    pid: u32,
    comm: Bytes,
    namespace: &'a str,
    rule: &'a str,
    tags: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a serde_json::Value>,
    string: Option<&'a str>,
    /// With a match in a queue: the descriptor, the queue, what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<Bytes>,
    /// Where a string match starts in the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mapping: Option<MappingInfo>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    match_hex: Option<String>,
}

/// One JSON line of `yara -c` (per process and rule) or `-l`.
#[cfg(feature = "yara")]
#[derive(Serialize)]
struct YaraCountJson<'a> {
    schema: &'static str,
    input: &'a str,
    pid: u32,
    comm: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}
