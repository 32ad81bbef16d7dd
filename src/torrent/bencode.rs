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
mod tests {
    use super::*;

    fn err(input: &[u8]) -> Error {
        decode(input).expect_err("should be refused")
    }

    #[test]
    fn bep3_examples() {
        // The examples BEP 3 gives, each way.
        let cases: Vec<(&[u8], Value)> = vec![
            (b"4:spam", Value::Bytes(b"spam")),
            (b"0:", Value::Bytes(b"")),
            (b"i3e", Value::Int(3)),
            (b"i-3e", Value::Int(-3)),
            (b"i0e", Value::Int(0)),
            (
                b"l4:spam4:eggse",
                Value::List(vec![Value::Bytes(b"spam"), Value::Bytes(b"eggs")]),
            ),
            (b"le", Value::List(vec![])),
            (
                b"d3:cow3:moo4:spam4:eggse",
                Value::Dict(vec![
                    (b"cow", Value::Bytes(b"moo")),
                    (b"spam", Value::Bytes(b"eggs")),
                ]),
            ),
            (
                b"d4:spaml1:a1:bee",
                Value::Dict(vec![(
                    b"spam",
                    Value::List(vec![Value::Bytes(b"a"), Value::Bytes(b"b")]),
                )]),
            ),
            (
                b"d9:publisher3:bob17:publisher-webpage15:www.example.com18:publisher.location4:homee",
                Value::Dict(vec![
                    (b"publisher", Value::Bytes(b"bob")),
                    (b"publisher-webpage", Value::Bytes(b"www.example.com")),
                    (b"publisher.location", Value::Bytes(b"home")),
                ]),
            ),
            (b"de", Value::Dict(vec![])),
        ];
        for (bytes, value) in cases {
            assert_eq!(decode(bytes).as_ref(), Ok(&value), "{bytes:?}");
            assert_eq!(encode(&value), bytes);
        }
    }

    #[test]
    fn integer_extremes() {
        assert_eq!(decode(b"i9223372036854775807e"), Ok(Value::Int(i64::MAX)));
        assert_eq!(decode(b"i-9223372036854775808e"), Ok(Value::Int(i64::MIN)));
        assert_eq!(err(b"i9223372036854775808e").what, "integer out of range");
        assert_eq!(encode(&Value::Int(i64::MIN)), b"i-9223372036854775808e");
    }

    #[test]
    fn strict_integers() {
        assert_eq!(
            err(b"i03e"),
            Error {
                offset: 1,
                what: "integer with a leading zero"
            }
        );
        assert_eq!(err(b"i-03e").offset, 2);
        assert_eq!(
            err(b"i-0e"),
            Error {
                offset: 1,
                what: "negative zero"
            }
        );
        assert_eq!(
            err(b"ie"),
            Error {
                offset: 1,
                what: "integer without digits"
            }
        );
        assert_eq!(err(b"i-e").what, "integer without digits");
        assert_eq!(
            err(b"i12"),
            Error {
                offset: 3,
                what: "integer not ended by e"
            }
        );
        assert_eq!(err(b"i+1e").what, "integer without digits");
    }

    #[test]
    fn strict_strings() {
        assert_eq!(
            err(b"03:abc"),
            Error {
                offset: 0,
                what: "string length with a leading zero"
            }
        );
        assert_eq!(
            err(b"5:abc"),
            Error {
                offset: 0,
                what: "string longer than the input"
            }
        );
        assert_eq!(err(b"l99999999999999999999999:ae").offset, 1);
        assert_eq!(
            err(b"3abc"),
            Error {
                offset: 1,
                what: "string length not followed by :"
            }
        );
    }

    #[test]
    fn strict_dictionaries() {
        assert_eq!(
            err(b"d1:b0:1:a0:e"),
            Error {
                offset: 6,
                what: "dictionary keys not sorted"
            }
        );
        assert_eq!(
            err(b"d1:a0:1:a0:e"),
            Error {
                offset: 6,
                what: "duplicate dictionary key"
            }
        );
        assert_eq!(
            err(b"di1e0:e"),
            Error {
                offset: 1,
                what: "dictionary key is not a string"
            }
        );
        // Raw byte order, not text order: 'Z' (0x5a) sorts before 'a' (0x61), 0xff last.
        assert!(decode(b"d1:Z0:1:a0:1:\xff0:e").is_ok());
        assert_eq!(err(b"d1:a0:1:Z0:e").what, "dictionary keys not sorted");
        // A key that is a prefix of the next sorts first.
        assert!(decode(b"d1:a0:2:aa0:e").is_ok());
    }

    #[test]
    fn structure_errors() {
        assert_eq!(
            err(b""),
            Error {
                offset: 0,
                what: "unexpected end of input"
            }
        );
        assert_eq!(
            err(b"l"),
            Error {
                offset: 1,
                what: "unexpected end of input"
            }
        );
        assert_eq!(
            err(b"d"),
            Error {
                offset: 1,
                what: "unexpected end of input in dictionary"
            }
        );
        assert_eq!(
            err(b"i1ei2e"),
            Error {
                offset: 3,
                what: "trailing bytes after the value"
            }
        );
        assert_eq!(
            err(b"x"),
            Error {
                offset: 0,
                what: "expected i, l, d or a digit"
            }
        );
        assert_eq!(err(b"d1:ae").offset, 4);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(decode(&ok).is_ok());
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(
            err(&deep),
            Error {
                offset: MAX_DEPTH,
                what: "nesting too deep"
            }
        );
        let huge = vec![b'l'; 1_000_000];
        assert_eq!(err(&huge).what, "nesting too deep");
    }

    #[test]
    fn encoder_is_canonical() {
        let v = Value::Dict(vec![
            (b"b", Value::Int(1)),
            (b"a", Value::Int(2)),
            (b"b", Value::Int(3)),
        ]);
        assert_eq!(encode(&v), b"d1:ai2e1:bi3ee");
        let input = b"d1:ad1:xli1ei-2e0:ee1:b3:\x00\xff:e";
        assert_eq!(encode(&decode(input).unwrap()), input);
    }

    #[test]
    fn raw_entry_is_the_exact_bytes() {
        let input = b"d4:infod1:ai1ee4:zzzzi0ee";
        assert_eq!(raw_dict_entry(input, b"info"), Ok(Some(&b"d1:ai1ee"[..])));
        assert_eq!(raw_dict_entry(input, b"nope"), Ok(None));
        assert_eq!(
            raw_dict_entry(b"d4:infoi1e", b"info").unwrap_err().offset,
            10
        );
        assert!(raw_dict_entry(b"le", b"info").is_err());
    }
}
