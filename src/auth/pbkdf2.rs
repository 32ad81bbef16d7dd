//! PBKDF2 with HMAC-SHA1 as its PRF (RFC 8018 section 5.2, first published in RFC 2898),
//! checked against the test vectors of RFC 6070.
//!
//! This module owns password stretching: it turns a password and a per-user salt into key
//! material at a cost set by the iteration count. It never keeps, logs or returns the password,
//! and it reads no randomness itself (salts are the caller's, so results are reproducible).
//!
//! DK = T_1 || T_2 || ..., cut to `dk_len`, where T_i = U_1 ^ U_2 ^ ... ^ U_c,
//! U_1 = HMAC(P, S || INT_32_BE(i)) and U_j = HMAC(P, U_{j-1}).

use super::hmac::{HmacSha1, LEN};

/// Fill `out` with PBKDF2-HMAC-SHA1 of `password` and `salt` at `iterations` rounds.
///
/// An iteration count of 0 is not valid PBKDF2; it is treated as 1 so that this function has no
/// failure case. Callers reject 0 where the count comes from input (SCRAM, account records).
pub fn pbkdf2_hmac_sha1(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let prf = HmacSha1::new(password);
    for (index, chunk) in out.chunks_mut(LEN).enumerate() {
        // Block numbers start at 1. `out` longer than (2^32 - 1) blocks is unreachable in
        // practice (80 GiB of output), so the cast is safe for any buffer a caller can have.
        let block = index as u32 + 1;
        let mut first = prf.clone();
        first.update(salt);
        first.update(&block.to_be_bytes());
        let mut u = first.finish();
        let mut t = u;
        for _ in 1..iterations {
            u = prf.mac(&u);
            for (acc, x) in t.iter_mut().zip(u) {
                *acc ^= x;
            }
        }
        chunk.copy_from_slice(&t[..chunk.len()]);
    }
}

/// PBKDF2-HMAC-SHA1 with one SHA-1-sized output: what SCRAM-SHA-1 calls `Hi()`.
pub fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    pbkdf2_hmac_sha1(password, salt, iterations, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hmac::hex;

    fn dk(password: &[u8], salt: &[u8], iterations: u32, len: usize) -> String {
        let mut out = vec![0u8; len];
        pbkdf2_hmac_sha1(password, salt, iterations, &mut out);
        hex(&out)
    }

    /// RFC 6070 section 2, every vector but the 16,777,216-iteration one (below, ignored).
    #[test]
    fn rfc6070_vectors() {
        assert_eq!(
            dk(b"password", b"salt", 1, 20),
            "0c60c80f961f0e71f3a9b524af6012062fe037a6"
        );
        assert_eq!(
            dk(b"password", b"salt", 2, 20),
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"
        );
        assert_eq!(
            dk(b"password", b"salt", 4096, 20),
            "4b007901b765489abead49d926f721d065a429c1"
        );
        // Two blocks, the second cut to 5 bytes.
        assert_eq!(
            dk(
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                25
            ),
            "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"
        );
        // NUL bytes in both password and salt; output shorter than one block.
        assert_eq!(
            dk(b"pass\0word", b"sa\0lt", 4096, 16),
            "56fa6aa75548099dcc37d7f03425e0c3"
        );
    }

    #[test]
    #[ignore = "16,777,216 iterations: about 20 s in a debug build"]
    fn rfc6070_sixteen_million_iterations() {
        assert_eq!(
            dk(b"password", b"salt", 16_777_216, 20),
            "eefe3d61cd4da4e4e9945b3d6ba2158c2634e984"
        );
    }

    #[test]
    fn hi_is_the_one_block_form_and_zero_means_one() {
        assert_eq!(
            hex(&hi(b"password", b"salt", 2)),
            dk(b"password", b"salt", 2, 20)
        );
        assert_eq!(hi(b"password", b"salt", 0), hi(b"password", b"salt", 1));
        // A longer output starts with the shorter one (blocks are independent).
        assert!(dk(b"p", b"s", 3, 45).starts_with(&dk(b"p", b"s", 3, 20)));
    }
}
