//! `InlineStr`: an immutable string kept inside the value itself when it is short, and in a
//! shared allocation (`Arc<str>`) when it is long.
//!
//! Why: the registry's hash map of 100,000 file names is far larger than the CPU caches, so a
//! `WHOHAS` pays for every memory line it touches. With an `Arc<str>` key, comparing the name
//! found in the table with the one asked for follows a pointer to a third line; with the
//! name inside the slot, the comparison reads the slot the lookup already loaded. Holder ids
//! (`ip:port`) are kept the same way for the same reason.
//!
//! It hashes, compares and orders exactly as the `str` it holds (so a map keyed by it is
//! searched with a plain `&str`, through `Borrow<str>`). It owns nothing else and must never
//! change once made.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Longest string kept inline: with the length byte and the enum's tag, an `InlineStr` is
/// 24 bytes, no bigger than a `String`.
const INLINE: usize = 22;

/// A string, inline when at most `INLINE` bytes long (`f123.iso`, `127.0.0.1:20000`). Made
/// only from a `&str` (`From`), never changed after.
#[derive(Clone)]
pub struct InlineStr(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl InlineStr {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // The bytes were copied from a `&str` and never changed, so this cannot fail;
            // the empty string is a harmless answer if it ever did.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Shared(text) => text,
        }
    }
}

impl From<&str> for InlineStr {
    fn from(text: &str) -> InlineStr {
        InlineStr(if text.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Repr::Inline {
                len: text.len() as u8,
                bytes,
            }
        } else {
            Repr::Shared(text.into())
        })
    }
}

impl Deref for InlineStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for InlineStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// Hash, equality and order are those of the text (never of the variant), as `Borrow<str>`
// requires: `map.get("name")` must find the key made from "name".
impl Hash for InlineStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for InlineStr {
    fn eq(&self, other: &InlineStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for InlineStr {}

impl PartialOrd for InlineStr {
    fn partial_cmp(&self, other: &InlineStr) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InlineStr {
    fn cmp(&self, other: &InlineStr) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn short_and_long_strings_keep_their_text_and_their_place() {
        let short = InlineStr::from("a".repeat(INLINE).as_str());
        let long = InlineStr::from("a".repeat(INLINE + 1).as_str());
        assert!(matches!(short.0, Repr::Inline { .. }));
        assert!(matches!(long.0, Repr::Shared(_)));
        assert_eq!(short.as_str(), "a".repeat(INLINE));
        assert_eq!(long.as_str(), "a".repeat(INLINE + 1));
        assert_eq!(InlineStr::from("").as_str(), "");
        assert_eq!(std::mem::size_of::<InlineStr>(), 24);
        // Ordered as text: the prefix first, whatever the variants.
        assert!(short < long && InlineStr::from("b") > long);
    }

    #[test]
    fn a_map_keyed_by_it_is_searched_with_a_str() {
        let names = ["f1", "127.0.0.1:20000", &"x".repeat(255), "é", ""];
        let map: HashMap<InlineStr, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (InlineStr::from(*n), i))
            .collect();
        let sorted: BTreeSet<InlineStr> = names.iter().map(|n| InlineStr::from(*n)).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(map.get(*n), Some(&i), "{n}");
            assert!(sorted.contains(*n));
        }
        assert_eq!(map.get("f2"), None);
        let mut want: Vec<&str> = names.to_vec();
        want.sort();
        assert_eq!(sorted.iter().map(|n| n.as_str()).collect::<Vec<_>>(), want);
    }
}
