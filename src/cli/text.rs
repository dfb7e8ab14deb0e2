//! The command line's text for terminals: JSON made safe to print, hex
//! dumps, byte counts, and diagnostics escaped on their way out. The
//! escaping of text from a checkpoint is the library's own file
//! (`src/text.rs`), compiled into both crates: one implementation.

use std::borrow::Cow;
use std::fmt::Write as _;

#[path = "../text.rs"]
mod escaping;

use escaping::needs_escape;
pub(crate) use escaping::{escape, escape_bytes};

/// Bytes from a checkpoint as text for a terminal.
pub(crate) trait Escaped {
    /// Escaped as [`escape_bytes`] escapes them.
    fn escaped(&self) -> Cow<'_, str>;
}

impl Escaped for criu2core::inspect::Bytes {
    fn escaped(&self) -> Cow<'_, str> {
        escape_bytes(&self.0)
    }
}

/// `bytes` as exact text for JSON: valid UTF-8 as it is (JSON escapes
/// control characters itself), a backslash doubled, and each byte that is
/// not part of valid UTF-8 written `\xNN`, so that the text says which
/// bytes they were.
pub(crate) fn escape_invalid_utf8(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.contains('\\') {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// Lower-case hexadecimal of `bytes`, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A hex dump for a terminal, as `hexdump -C` lays it out but with
/// addresses of the process's memory: rows of 16 bytes aligned on 16, hex
/// then the printable ASCII characters (others as `.`), and a row that
/// repeats the one before shown once as `*`. Bytes are fed in pieces of
/// any size; memory stays a row.
#[derive(Debug)]
pub(crate) struct Hexdump {
    indent: &'static str,
    row_addr: u64,
    row: Vec<u8>,
    skip: usize,
    last: Option<Vec<u8>>,
    squeezing: bool,
    next: u64,
}

impl Hexdump {
    /// A dump of bytes starting at address `addr`, each line after `indent`.
    pub fn new(addr: u64, indent: &'static str) -> Hexdump {
        let row_addr = addr & !15;
        Hexdump {
            indent,
            row_addr,
            row: Vec::with_capacity(16),
            skip: (addr - row_addr) as usize,
            last: None,
            squeezing: false,
            next: addr,
        }
    }

    fn line(&self, row: &[u8], skip: usize) -> String {
        let mut o = format!("{}{:016x}  ", self.indent, self.row_addr);
        for i in 0..16usize {
            if i == 8 {
                o.push(' ');
            }
            match i.checked_sub(skip).and_then(|j| row.get(j)) {
                Some(b) => {
                    let _ = write!(o, "{b:02x} ");
                }
                None => o.push_str("   "),
            }
        }
        o.push_str(" |");
        o.extend(std::iter::repeat_n(' ', skip));
        o.extend(row.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        o.push_str("|\n");
        o
    }

    fn flush_row(&mut self, out: &mut String) {
        let row = std::mem::take(&mut self.row);
        let full = self.skip == 0 && row.len() == 16;
        if full && self.last.as_deref() == Some(&row[..]) {
            if !self.squeezing {
                out.push_str(self.indent);
                out.push_str("*\n");
                self.squeezing = true;
            }
        } else {
            out.push_str(&self.line(&row, self.skip));
            self.squeezing = false;
        }
        self.last = full.then_some(row);
        self.skip = 0;
        self.row_addr += 16;
    }

    /// Adds bytes, appending finished lines to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut String) {
        for &b in bytes {
            self.row.push(b);
            if self.skip + self.row.len() == 16 {
                self.flush_row(out);
            }
        }
        self.next += bytes.len() as u64;
    }

    /// Ends the dump: the last partial row, and the end address where the
    /// last row was squeezed.
    pub fn finish(mut self, out: &mut String) {
        if !self.row.is_empty() {
            self.flush_row(out);
        } else if self.squeezing {
            let _ = writeln!(out, "{}{:016x}", self.indent, self.next);
        }
    }
}

/// A writer that shows what it is given as a [`Hexdump`] from an address,
/// on to `out`; [`HexdumpWriter::finish`] ends the dump.
pub(crate) struct HexdumpWriter<W: std::io::Write> {
    dump: Hexdump,
    text: String,
    out: W,
}

impl<W: std::io::Write> HexdumpWriter<W> {
    /// A dump of bytes from `addr`, written to `out`.
    pub fn new(addr: u64, out: W) -> HexdumpWriter<W> {
        HexdumpWriter {
            dump: Hexdump::new(addr, ""),
            text: String::new(),
            out,
        }
    }

    /// Writes the last row, and flushes.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.dump.finish(&mut self.text);
        self.out.write_all(self.text.as_bytes())?;
        self.out.flush()
    }
}

impl<W: std::io::Write> std::io::Write for HexdumpWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.dump.feed(buf, &mut self.text);
        self.out.write_all(self.text.as_bytes())?;
        self.text.clear();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Serialized JSON with the characters JSON leaves raw but a terminal may
/// obey (DEL, C1 controls, bidirectional overrides) written as `\uXXXX`
/// escapes: the same JSON value, safe to print. (Such characters can only
/// be inside strings, where the escape means the same character.)
pub(crate) fn json_for_terminal(json: &str) -> Cow<'_, str> {
    let raw = |c: char| c != '\\' && c > '\x1f' && needs_escape(c);
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if raw(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A writer that passes text on through [`escape_bytes`], keeping only the
/// newline that ends each write: for diagnostics (one event per write),
/// which may quote anything a checkpoint holds.
pub(crate) struct EscapingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, nl) = match buf.strip_suffix(b"\n") {
            Some(b) => (b, "\n"),
            None => (buf, ""),
        };
        let text = escape_bytes(body);
        self.0.write_all(text.as_bytes())?;
        self.0.write_all(nl.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A byte count for people: "281.5 MiB".
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_keeps_valid_utf8_and_names_invalid_bytes() {
        assert_eq!(escape_invalid_utf8(b"a\nb"), "a\nb");
        assert_eq!(escape_invalid_utf8(b"a\\b\xff\x00"), "a\\\\b\\xff\x00");
        assert_eq!(hex(b"\x00\xabZ"), "00ab5a");
    }

    #[test]
    fn hexdumps_align_rows_and_squeeze_repeats() {
        let mut out = String::new();
        let mut h = Hexdump::new(0x1003, "");
        h.feed(b"ABC", &mut out);
        h.feed(&[0; 60], &mut out);
        h.finish(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "0000000000001000           41 42 43 00 00  00 00 00 00 00 00 00 00  |   ABC..........|"
        );
        assert_eq!(lines[1], "0000000000001010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|");
        assert_eq!(lines[2], "*");
        assert_eq!(
            lines[3],
            "0000000000001040  00 00                                             |..|"
        );
        assert_eq!(lines.len(), 4);
        let mut out = String::new();
        let mut h = Hexdump::new(0x2000, "  ");
        h.feed(&[7; 48], &mut out);
        h.finish(&mut out);
        assert_eq!(
            out.lines().collect::<Vec<_>>()[1..],
            ["  *", "  0000000000002030"]
        );
    }

    #[test]
    fn json_keeps_its_value_without_raw_controls() {
        let v = serde_json::json!({"s": "a\u{1b}b\u{7f}c\u{9b}d\u{202e}e\\f\"g ü"});
        let text = serde_json::to_string(&v).unwrap();
        let safe = json_for_terminal(&text);
        assert_eq!(safe, r#"{"s":"a\u001bb\u007fc\u009bd\u202ee\\f\"g ü"}"#);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
    }

    #[test]
    fn the_writer_escapes_all_but_the_final_newline() {
        use std::io::Write;
        let mut w = EscapingWriter(Vec::new());
        w.write_all(b"event \x1b[2J path=/a\nb\n").unwrap();
        assert_eq!(w.0, b"event \\x1b[2J path=/a\\nb\n");
    }

    #[test]
    fn bytes_from_a_checkpoint_show_escaped() {
        let b = criu2core::inspect::Bytes(b"caf\xe9\x1b".to_vec());
        assert_eq!(b.escaped(), "caf\\xe9\\x1b");
    }
}
