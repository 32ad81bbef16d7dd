//! HMAC-SHA1 (RFC 2104), checked against every test case of RFC 2202 section 3.
//!
//! This module owns the keyed hash and nothing else: SHA-1 itself comes from `crate::sha1`, and
//! callers compare MACs with [`super::ct::eq`], never `==`. It keeps no key after use beyond
//! the two pre-keyed hash states it needs, and it never prints a key or a MAC.
//!
//! HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)), where K' is the key padded with zeros
//! to SHA-1's 64-byte block, or first hashed if it is longer than a block.

use crate::sha1::Sha1;

/// SHA-1's block size in bytes: keys are padded (or hashed down) to this.
pub const BLOCK: usize = 64;
/// Length of an HMAC-SHA1 output in bytes.
pub const LEN: usize = 20;

/// An HMAC-SHA1 key made ready: the inner and outer hash states with the padded key already
/// absorbed. Cloning it is cheap, which is what lets PBKDF2 run thousands of HMACs with one key
/// at two SHA-1 blocks each.
#[derive(Clone)]
pub struct HmacSha1 {
    inner: Sha1,
    outer: Sha1,
}

impl HmacSha1 {
    /// Prepare a MAC with `key` (any length).
    pub fn new(key: &[u8]) -> HmacSha1 {
        let mut padded = [0u8; BLOCK];
        if key.len() > BLOCK {
            padded[..LEN].copy_from_slice(&Sha1::from(key).digest().bytes());
        } else {
            padded[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha1::new();
        let mut outer = Sha1::new();
        inner.update(&padded.map(|b| b ^ 0x36));
        outer.update(&padded.map(|b| b ^ 0x5c));
        HmacSha1 { inner, outer }
    }

    /// Feed message bytes (may be called several times).
    pub fn update(&mut self, data: &[u8]) {
        self.inner.update(data);
    }

    /// The MAC of everything fed so far.
    pub fn finish(&self) -> [u8; LEN] {
        let mut outer = self.outer.clone();
        outer.update(&self.inner.digest().bytes());
        outer.digest().bytes()
    }

    /// The MAC of `data` alone, leaving this prepared key untouched for the next message.
    pub fn mac(&self, data: &[u8]) -> [u8; LEN] {
        let mut one = self.clone();
        one.update(data);
        one.finish()
    }
}

impl std::fmt::Debug for HmacSha1 {
    /// Never shows key material.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("HmacSha1(<key hidden>)")
    }
}

/// HMAC-SHA1 of `data` under `key`.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; LEN] {
    HmacSha1::new(key).mac(data)
}

#[cfg(test)]
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2202 section 3, test cases 1 to 7: key, data, digest.
    #[test]
    fn rfc2202_all_seven_cases() {
        let key4: Vec<u8> = (0x01..=0x19).collect();
        let cases: [(Vec<u8>, Vec<u8>, &str); 7] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
            ),
            (
                key4,
                vec![0xcd; 50],
                "4c9007f4026250c6bc8414f9bf50c86c2d7235da",
            ),
            (
                vec![0x0c; 20],
                b"Test With Truncation".to_vec(),
                "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            ),
            (
                vec![0xaa; 80],
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"
                    .to_vec(),
                "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
            ),
        ];
        for (i, (key, data, want)) in cases.iter().enumerate() {
            assert_eq!(hex(&hmac_sha1(key, data)), *want, "RFC 2202 case {}", i + 1);
        }
    }

    #[test]
    fn rfc2202_case5_truncated_to_96_bits() {
        // The RFC also lists the 96-bit truncation of case 5.
        let mac = hmac_sha1(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(hex(&mac[..12]), "4c1a03424b55e07fe7f27be1");
    }

    #[test]
    fn streaming_equals_one_shot_at_every_split() {
        let key = b"a key of some length";
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = hmac_sha1(key, &data);
        let prepared = HmacSha1::new(key);
        for cut in 0..=data.len() {
            let mut m = prepared.clone();
            m.update(&data[..cut]);
            m.update(&data[cut..]);
            assert_eq!(m.finish(), whole, "split at {cut}");
        }
        // A 64-byte key is used as is, a 65-byte key is hashed first: both boundaries differ.
        assert_ne!(hmac_sha1(&[1; 64], b"x"), hmac_sha1(&[1; 65], b"x"));
    }

    #[test]
    fn debug_hides_the_key() {
        let shown = format!("{:?}", HmacSha1::new(b"hunter2"));
        assert!(!shown.contains("hunter2"));
    }
}
