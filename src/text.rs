//! Text from a checkpoint, made safe to print.
//!
//! A process chooses its own command line, environment and thread names,
//! and a checkpoint archive's metadata and file names come from whoever
//! wrote it: printed raw, an escape sequence could clear or retitle the
//! terminal and a newline could forge a line of output. [`escape`] shows
//! such characters as escapes instead; JSON output needs none of this, as
//! JSON escapes them itself.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must be shown as an escape: a C0 or C1 control character,
/// DEL, a backslash (so that escapes are unambiguous), or a Unicode
/// bidirectional override or isolate (which reorder the rest of a line).
fn needs_escape(c: char) -> bool {
    matches!(c,
        '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\\'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

/// `s` for a terminal: control characters (C0, DEL, C1), backslashes and
/// bidirectional overrides shown as escapes (`\x1b`, `\n`, `\t`, `\\`,
/// `\u{9b}`, `\u{202e}`); everything else as it is.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `bytes` for a terminal, as [`escape`] shows text, with each byte that
/// is not part of valid UTF-8 shown as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return escape(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&escape(chunk.valid()));
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
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

/// `word` (any bytes) quoted for a POSIX shell, in a form that is also
/// safe to print as it is: as it is where it holds only characters no
/// shell treats specially; else in single quotes (an embedded single quote
/// as `'\''`); and where it holds what [`escape_bytes`] would escape
/// (control characters, bidirectional overrides, bytes that are not
/// UTF-8), as `"$(printf '...')"` with those bytes written `\ooo`, which
/// the shell turns back into them. `None` for a word of that last kind
/// that ends in a newline (a command substitution drops it).
pub(crate) fn shell_quote(word: &[u8]) -> Option<Cow<'_, str>> {
    let plain = !word.is_empty()
        && word
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(b));
    if plain {
        return std::str::from_utf8(word).ok().map(Cow::Borrowed);
    }
    match std::str::from_utf8(word) {
        Ok(text) if !text.chars().any(|c| c != '\\' && needs_escape(c)) => {
            return Some(Cow::Owned(format!("'{}'", text.replace('\'', r"'\''"))));
        }
        _ => {}
    }
    if word.ends_with(b"\n") {
        return None;
    }
    // printf's format: `%` and `\` doubled, `'` and every byte a terminal
    // must not see raw as octal escapes (and a leading `-`, which a printf
    // could take for an option).
    let mut out = String::from("\"$(printf '");
    for chunk in word.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '-' if out.ends_with('\'') => out.push_str("\\055"),
                '%' => out.push_str("%%"),
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\047"),
                c if needs_escape(c) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\{b:03o}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:03o}");
        }
    }
    out.push_str("')\"");
    Some(Cow::Owned(out))
}

/// Serialized JSON with the characters JSON leaves raw but a terminal may
/// obey (DEL, C1 controls, bidirectional overrides) written as `\uXXXX`
/// escapes: the same JSON value, safe to print. (Such characters can only
/// be inside strings, where the escape means the same character.)
pub fn json_for_terminal(json: &str) -> Cow<'_, str> {
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
pub struct EscapingWriter<W>(pub W);

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
pub fn human_bytes(bytes: u64) -> String {
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
    fn control_characters_become_escapes() {
        assert_eq!(escape("plain /usr/bin/ls"), "plain /usr/bin/ls");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape("\x1b]0;title\x07a\nb\tc\\d\re\x7f\0"),
            "\\x1b]0;title\\x07a\\nb\\tc\\\\d\\re\\x7f\\x00"
        );
        // C1 controls (CSI as one character) and bidi overrides.
        assert_eq!(escape("\u{9b}2J \u{85}"), "\\u{9b}2J \\u{85}");
        assert_eq!(escape("a\u{202e}b\u{2066}c"), "a\\u{202e}b\\u{2066}c");
        // Other non-ASCII text stays.
        assert_eq!(escape("naïve ü € \u{a0}"), "naïve ü € \u{a0}");
    }

    #[test]
    fn invalid_utf8_bytes_become_hex_escapes() {
        assert_eq!(escape_bytes(b"ok"), "ok");
        assert_eq!(escape_bytes(b"a\xff\xfeb\x1b"), "a\\xff\\xfeb\\x1b");
        // A C1 control written as its UTF-8 bytes is escaped as a character.
        assert_eq!(escape_bytes(b"\xc2\x9b\xc3"), "\\u{9b}\\xc3");
        let all: Vec<u8> = (0..=255).collect();
        let shown = escape_bytes(&all);
        assert!(shown
            .chars()
            .all(|c| !c.is_control() && !('\u{80}'..='\u{9f}').contains(&c)));
    }

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
    fn shell_quoting_survives_any_word() {
        let q = |w: &[u8]| shell_quote(w).map(Cow::into_owned);
        assert_eq!(q(b"cores/core.12").unwrap(), "cores/core.12");
        assert_eq!(q(b"").unwrap(), "''");
        assert_eq!(q(b"a b").unwrap(), "'a b'");
        assert_eq!(q(b"it's").unwrap(), r"'it'\''s'");
        assert_eq!(q(b"$(rm -rf ~)").unwrap(), "'$(rm -rf ~)'");
        assert_eq!(q(b"set sysroot /x").unwrap(), "'set sysroot /x'");
        assert_eq!(q(br"a\b").unwrap(), r"'a\b'");
        assert_eq!(
            q(b"it's \x1b[2J%\\\xff\n.").unwrap(),
            r#""$(printf 'it\047s \033[2J%%\\\377\012.')""#
        );
        assert_eq!(q(b"x\n"), None);
        // What the shell makes of each is the word itself, and what is
        // printed holds nothing a terminal obeys.
        let words: [&[u8]; 8] = [
            b"plain",
            b"it's a 'b' \"c\" $HOME `x` \\",
            b"\xff\xfe not utf-8 '",
            b"\x1b]0;t\x07 \n forged %s %%",
            "bidi \u{202e} c1 \u{9b} ü".as_bytes(),
            b"-n\x01",
            b"\\0101 \\n",
            b"",
        ];
        for w in words {
            let quoted = q(w).unwrap();
            assert!(
                quoted.chars().all(|c| c == '\\' || !needs_escape(c)),
                "{quoted}"
            );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {quoted}"))
                .output()
                .unwrap();
            assert_eq!(o.stdout, w, "{quoted}");
        }
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
}
