//! Base64 (RFC 4648 section 4: the standard alphabet, with `=` padding), checked against the
//! test vectors of RFC 4648 section 10.
//!
//! SCRAM carries salts, proofs and signatures in base64, and account records carry salts and
//! keys in it. This module owns that encoding and nothing else. Decoding is strict so that one
//! value has exactly one text: no whitespace, no missing or extra padding, no characters outside
//! the alphabet, and no stray bits in the last character (RFC 4648 section 3.5: "decoders MAY
//! chose to reject an encoding if the pad bits have not been set to zero"; we do).

use std::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a text is not canonical base64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base64Error {
    /// The length is not a multiple of 4.
    Length,
    /// A byte outside the alphabet (at this offset).
    Char(usize),
    /// `=` somewhere other than the last one or two places.
    Padding,
    /// The last character carries bits that the padding says are unused.
    TrailingBits,
}

impl fmt::Display for Base64Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Base64Error::Length => f.write_str("base64 length is not a multiple of 4"),
            Base64Error::Char(at) => write!(f, "byte {at} is not a base64 character"),
            Base64Error::Padding => f.write_str("base64 padding is misplaced"),
            Base64Error::TrailingBits => f.write_str("base64 has stray bits before its padding"),
        }
    }
}

impl std::error::Error for Base64Error {}

/// Encode `bytes` as padded standard base64.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        // A chunk of k bytes gives k + 1 characters, then padding up to 4.
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(v as u32)
}

/// Decode canonical padded standard base64; anything else is an error.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return Err(Base64Error::Length);
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, quad) in text.chunks(4).enumerate() {
        let last = q + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) || quad[..4 - pad].contains(&b'=') {
            return Err(Base64Error::Padding);
        }
        let mut n = 0u32;
        for (i, &c) in quad[..4 - pad].iter().enumerate() {
            n |= value(c).ok_or(Base64Error::Char(q * 4 + i))? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        let keep = 3 - pad;
        // Bits below the last kept byte must be zero, or two texts would decode the same.
        if n & ((1 << (8 * (3 - keep))) - 1) != 0 {
            return Err(Base64Error::TrailingBits);
        }
        out.extend_from_slice(&bytes[1..1 + keep]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::Rng;

    /// RFC 4648 section 10, the BASE64 vectors.
    #[test]
    fn rfc4648_section10_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).as_deref(), Ok(plain.as_bytes()), "{coded}");
        }
    }

    #[test]
    fn both_ends_of_the_alphabet() {
        assert_eq!(encode(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(decode("+/+/"), Ok(vec![0xfb, 0xff, 0xbf]));
        assert_eq!(encode(&[0, 0, 0]), "AAAA");
    }

    #[test]
    fn strict_decoding_rejects_every_non_canonical_text() {
        assert_eq!(decode("Zg="), Err(Base64Error::Length));
        assert_eq!(decode("Zg"), Err(Base64Error::Length));
        assert_eq!(decode("Zm9v\n"), Err(Base64Error::Length));
        assert_eq!(decode("Zm 9"), Err(Base64Error::Char(2)));
        assert_eq!(decode("Zm9-"), Err(Base64Error::Char(3)));
        assert_eq!(decode("Zm9_"), Err(Base64Error::Char(3)));
        assert_eq!(decode("Z==="), Err(Base64Error::Padding));
        assert_eq!(decode("===="), Err(Base64Error::Padding));
        assert_eq!(decode("Zg==Zm9v"), Err(Base64Error::Padding));
        assert_eq!(decode("Z=g="), Err(Base64Error::Padding));
        // "Zh==" and "Zm9=" carry set bits the padding says are unused.
        assert_eq!(decode("Zh=="), Err(Base64Error::TrailingBits));
        assert_eq!(decode("Zm9="), Err(Base64Error::TrailingBits));
        assert_eq!(decode("Zm8="), Ok(b"fo".to_vec()));
    }

    #[test]
    fn round_trip_random_bytes() {
        let mut rng = Rng::new(4648);
        for len in 0..300 {
            let mut bytes = vec![0u8; len];
            rng.fill(&mut bytes);
            let text = encode(&bytes);
            assert_eq!(text.len(), len.div_ceil(3) * 4);
            assert_eq!(decode(&text), Ok(bytes), "length {len}");
        }
    }

    #[test]
    fn random_texts_decode_only_if_they_re_encode_the_same() {
        // Fuzz the decoder with texts over the alphabet plus `=` and a few strays: whatever it
        // accepts must be canonical, i.e. encode back to the very same text.
        let chars = b"AZaz09+/=gQw-_ \n";
        let mut rng = Rng::new(10);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let len = rng.below(13);
            let text: String = (0..len)
                .map(|_| chars[rng.below(chars.len())] as char)
                .collect();
            if let Ok(bytes) = decode(&text) {
                accepted += 1;
                assert_eq!(encode(&bytes), text);
            }
        }
        assert!(
            accepted > 100,
            "the fuzz should hit valid texts too ({accepted})"
        );
    }
}
