//! Bencode (BEP 3, "The BitTorrent Protocol Specification", section "bencoding"): a strict
//! decoder and a canonical encoder.
//!
//! Owns the byte format only: integers, byte strings, lists and dictionaries. It knows nothing
//! about torrents (that is `metainfo`) and never touches a file or a socket.
//!
//! Strict where BEP 3 is: integers have no leading zeros, no `-0` and no empty `ie`; string
//! lengths have no leading zeros and never exceed what is left of the input; dictionary keys
//! are byte strings, sorted as raw bytes and unique; nesting is bounded by [`MAX_DEPTH`]; one
//! value fills the whole input. Every error names its byte offset.
//!
//! Memory: strings borrow from the input, and a list or dictionary grows only as its elements
//! are actually read (each takes at least two input bytes), so a hostile declared length can
//! never make the decoder allocate more than the input itself justifies.

use std::fmt;

/// Deepest nesting of lists and dictionaries accepted. A .torrent needs 5 (root, info, files,
/// one file, its path); the margin leaves room for extensions, the bound keeps the recursive
/// decoder's stack small.
pub const MAX_DEPTH: usize = 64;

/// A decoded value. Strings and keys borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    /// Entries in key order. The decoder guarantees sorted, unique keys; the encoder sorts.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value under `key` if this is a dictionary that has it.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Dict(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Short name of the kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }
}

/// A decoding error: what was wrong and at which byte of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bencode error at byte {}: {}", self.offset, self.what)
    }
}

impl std::error::Error for Error {}

/// Decode exactly one value that fills the whole input.
pub fn decode(input: &[u8]) -> Result<Value<'_>, Error> {
    let mut d = Decoder { input, pos: 0 };
    let v = d.value(0)?;
    d.finish()?;
    Ok(v)
}

/// The raw bytes of the value stored under `key` in the top-level dictionary of `input`,
/// exactly as they appear there (the info-hash is computed over these). The whole input is
/// checked as strictly as [`decode`] checks it.
pub fn raw_dict_entry<'a>(input: &'a [u8], key: &[u8]) -> Result<Option<&'a [u8]>, Error> {
    let mut d = Decoder { input, pos: 0 };
    if d.peek() != Some(b'd') {
        return Err(d.error("top level is not a dictionary"));
    }
    d.pos += 1;
    let mut found = None;
    let mut previous: Option<&[u8]> = None;
    while d.peek() != Some(b'e') {
        let k = d.key(previous)?;
        let start = d.pos;
        d.value(1)?;
        if k == key {
            found = Some(&input[start..d.pos]);
        }
        previous = Some(k);
    }
    d.pos += 1;
    d.finish()?;
    Ok(found)
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn error(&self, what: &'static str) -> Error {
        Error {
            offset: self.pos,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn finish(&self) -> Result<(), Error> {
        if self.pos == self.input.len() {
            Ok(())
        } else {
            Err(self.error("trailing bytes after the value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'i') => self.int().map(Value::Int),
            Some(b'0'..=b'9') => self.bytes().map(Value::Bytes),
            Some(b'l') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nesting too deep"));
                }
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != Some(b'e') {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            Some(b'd') => {
                if depth >= MAX_DEPTH {
                    return Err(self.error("nesting too deep"));
                }
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                while self.peek() != Some(b'e') {
                    let k = self.key(entries.last().map(|(k, _)| *k))?;
                    let v = self.value(depth + 1)?;
                    entries.push((k, v));
                }
                self.pos += 1;
                Ok(Value::Dict(entries))
            }
            Some(_) => Err(self.error("expected i, l, d or a digit")),
        }
    }

    /// A dictionary key: a string greater than the previous key.
    fn key(&mut self, previous: Option<&[u8]>) -> Result<&'a [u8], Error> {
        let at = self.pos;
        match self.peek() {
            None => return Err(self.error("unexpected end of input in dictionary")),
            Some(b'0'..=b'9') => {}
            Some(_) => return Err(self.error("dictionary key is not a string")),
        }
        let k = self.bytes()?;
        if let Some(p) = previous {
            if k == p {
                return Err(Error {
                    offset: at,
                    what: "duplicate dictionary key",
                });
            }
            if k < p {
                return Err(Error {
                    offset: at,
                    what: "dictionary keys not sorted",
                });
            }
        }
        Ok(k)
    }

    fn int(&mut self) -> Result<i64, Error> {
        self.pos += 1; // 'i'
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let mut n: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.pos > digits_at && self.input[digits_at] == b'0' {
                return Err(Error {
                    offset: digits_at,
                    what: "integer with a leading zero",
                });
            }
            // Accumulate negatively so that i64::MIN fits.
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_sub(i64::from(c - b'0')))
                .ok_or_else(|| self.error("integer out of range"))?;
            self.pos += 1;
        }
        if self.pos == digits_at {
            return Err(self.error("integer without digits"));
        }
        if self.peek() != Some(b'e') {
            return Err(self.error("integer not ended by e"));
        }
        if negative && n == 0 {
            return Err(Error {
                offset: digits_at - 1,
                what: "negative zero",
            });
        }
        self.pos += 1;
        if negative {
            Ok(n)
        } else {
            n.checked_neg()
                .ok_or_else(|| self.error("integer out of range"))
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let digits_at = self.pos;
        let mut len: usize = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.pos > digits_at && self.input[digits_at] == b'0' {
                return Err(Error {
                    offset: digits_at,
                    what: "string length with a leading zero",
                });
            }
            len = len
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(c - b'0')))
                .filter(|&n| n <= self.input.len())
                .ok_or(Error {
                    offset: digits_at,
                    what: "string longer than the input",
                })?;
            self.pos += 1;
        }
        if self.peek() != Some(b':') {
            return Err(self.error("string length not followed by :"));
        }
        self.pos += 1;
        if len > self.input.len() - self.pos {
            return Err(Error {
                offset: digits_at,
                what: "string longer than the input",
            });
        }
        let s = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
}

/// Encode in canonical form: dictionary keys sorted as raw bytes (for a duplicate key, the
/// last entry wins), integers and lengths in shortest decimal.
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// [`encode`], appending to `out`.
pub fn encode_into(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(n) => {
            out.push(b'i');
            out.extend_from_slice(n.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(entries) => {
            let mut sorted: Vec<&(&[u8], Value<'_>)> = entries.iter().collect();
            // Stable sort, then keep the last of equal keys.
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'd');
            for (i, (k, v)) in sorted.iter().map(|e| (e.0, &e.1)).enumerate() {
                if sorted.get(i + 1).is_some_and(|next| next.0 == k) {
                    continue;
                }
                encode_bytes(k, out);
                encode_into(v, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests;
