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
pub(crate) fn needs_escape(c: char) -> bool {
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
pub(crate) fn escape(s: &str) -> Cow<'_, str> {
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
pub(crate) fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
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
}
