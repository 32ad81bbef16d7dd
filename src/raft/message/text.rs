//! The text primitives of the Raft lines: escaping a command for an `ENTRY` line, numbers,
//! `yes`/`no`, printable-line checks, and the parse error. Pure functions on strings; no
//! message knowledge (that is `message.rs`).

use std::fmt;

/// Why a message did not parse: one sentence for an `ERR bad-request` reply or a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) fn bad<T>(message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(message.into()))
}

/// Escape a command for an `ENTRY` line: printable ASCII stays, `\` doubles, the rest is `\xHH`.
pub fn escape(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    for b in command.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

/// Undo [`escape`]; `None` for a dangling `\`, a bad `\x`, or bytes that are not UTF-8.
pub fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if bytes.get(i + 1) == Some(&b'x') {
            let hex = text.get(i + 2..i + 4)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn number(word: &str, what: &str) -> Result<u64, ParseError> {
    // Digits only (Rust's parser would also take a leading `+`), and at most 20 of them.
    if word.is_empty() || word.len() > 20 || !word.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = word.chars().take(24).collect();
        return bad(format!(
            "{what} \"{}\" is not a number",
            shown.escape_default()
        ));
    }
    word.parse()
        .or_else(|_| bad(format!("{what} {word} is too large")))
}

pub(super) fn yes_no(word: &str) -> Result<bool, ParseError> {
    match word {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bad("expected yes or no"),
    }
}

/// A line without its `\n` (and a `\r` from `nc -C`), checked to be printable ASCII.
pub(super) fn clean(line: &str) -> Result<&str, ParseError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if !line.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return bad("the line is not printable ASCII");
    }
    Ok(line)
}
