//! SHA-1 block compression with the x86-64 SHA extensions ("SHA-NI"), through `std::arch`.
//!
//! This file holds all of the SHA-1 module's `unsafe` code: one block, the call into the
//! function compiled for the SHA extensions. That call is sound only on a CPU that has them,
//! so the only way to reach it is through a [`ShaNi`] value, and the only way to get one is
//! [`detect`], which asks the CPU. Padding, buffering and the public API live in `sha1.rs`;
//! this file must never do more than turn 64-byte blocks into a new state.
//!
//! The rounds follow FIPS 180-4 §6.1.2 as Intel's SHA extensions split them: `sha1rnds4` does
//! four rounds on A..D given the next four message words with E added to the first,
//! `sha1nexte` derives that E (A of four rounds earlier, rotated left by 30), and `sha1msg1` /
//! `sha1msg2` compute the message schedule W16..W79 four words at a time.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_extract_epi32, _mm_set_epi8, _mm_set_epi32, _mm_set_epi64x,
    _mm_sha1msg1_epu32, _mm_sha1msg2_epu32, _mm_sha1nexte_epu32, _mm_sha1rnds4_epu32,
    _mm_shuffle_epi8, _mm_xor_si128,
};
use std::sync::OnceLock;

/// Proof that this CPU has the SHA, SSE2, SSSE3 and SSE4.1 extensions. Only [`detect`] makes
/// one (the field is private), so holding one means the check has been done and passed.
#[derive(Clone, Copy, Debug)]
pub struct ShaNi(());

/// Ask the CPU once (the answer is cached for the process), and hand out the proof if it has
/// every extension [`compress`] uses.
pub fn detect() -> Option<ShaNi> {
    static HAS_ALL: OnceLock<bool> = OnceLock::new();
    let has_all = *HAS_ALL.get_or_init(|| {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse2")
            && is_x86_feature_detected!("ssse3")
            && is_x86_feature_detected!("sse4.1")
    });
    has_all.then_some(ShaNi(()))
}

/// Run the compression function over every 64-byte block of `blocks`, in order, in one call
/// (so a long `update` pays for the feature check and the call once, not per block).
///
/// Panics if `blocks.len()` is not a multiple of 64: the caller buffers partial blocks.
pub fn compress(cpu: ShaNi, state: &mut [u32; 5], blocks: &[u8]) {
    assert!(
        blocks.len().is_multiple_of(64),
        "SHA-1 compresses whole 64-byte blocks"
    );
    let _ = cpu;
    // SAFETY: `compress_blocks` is compiled with `sha,sse2,ssse3,sse4.1` enabled, so calling
    // it is sound only on a CPU that has all four. `cpu: ShaNi` exists only if `detect` above
    // saw all four with `is_x86_feature_detected!`. The function itself does no pointer work:
    // it reads `blocks` and `state` through safe slice indexing.
    unsafe { compress_blocks(state, blocks) }
}

/// The whole multi-block loop, compiled for the SHA extensions so the intrinsics inline.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_blocks(state: &mut [u32; 5], blocks: &[u8]) {
    // The instructions keep A in the highest 32-bit lane and D in the lowest; E sits alone in
    // the highest lane of its own register.
    let mut abcd = _mm_set_epi32(
        state[0] as i32,
        state[1] as i32,
        state[2] as i32,
        state[3] as i32,
    );
    let mut e = _mm_set_epi32(state[4] as i32, 0, 0, 0);
    // Reverse all 16 bytes: the block's big-endian words come out as numbers, and the first
    // word lands in the highest lane, where `sha1rnds4` wants it.
    let reverse = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

    for block in blocks.chunks_exact(64) {
        let load = |i: usize| {
            let half = |at: usize| {
                let bytes: [u8; 8] = block[at..at + 8].try_into().unwrap_or([0; 8]);
                i64::from_le_bytes(bytes)
            };
            _mm_shuffle_epi8(_mm_set_epi64x(half(16 * i + 8), half(16 * i)), reverse)
        };
        // The last four schedule vectors: W[4j..4j+4] for j = g-4 .. g-1, at index j % 4.
        let mut w: [__m128i; 4] = [load(0), load(1), load(2), load(3)];
        let (abcd_before, e_before) = (abcd, e);

        // Rounds 0-3 take E as it is; later groups derive it from A of the group before.
        let mut e_plus_w = _mm_add_epi32(e, w[0]);
        let mut abcd_prev = abcd;
        abcd = rounds(abcd, e_plus_w, 0);
        for g in 1..20 {
            if g >= 4 {
                // W[g] from W[g-4], W[g-3], W[g-2], W[g-1] (FIPS 180-4 §6.1.2 step 1).
                let x = _mm_sha1msg1_epu32(w[g % 4], w[(g + 1) % 4]);
                let x = _mm_xor_si128(x, w[(g + 2) % 4]);
                w[g % 4] = _mm_sha1msg2_epu32(x, w[(g + 3) % 4]);
            }
            e_plus_w = _mm_sha1nexte_epu32(abcd_prev, w[g % 4]);
            abcd_prev = abcd;
            abcd = rounds(abcd, e_plus_w, g / 5);
        }

        // FIPS 180-4 §6.1.2 step 4: add the working variables into the state.
        e = _mm_sha1nexte_epu32(abcd_prev, e_before);
        abcd = _mm_add_epi32(abcd, abcd_before);
    }

    state[0] = _mm_extract_epi32::<3>(abcd) as u32;
    state[1] = _mm_extract_epi32::<2>(abcd) as u32;
    state[2] = _mm_extract_epi32::<1>(abcd) as u32;
    state[3] = _mm_extract_epi32::<0>(abcd) as u32;
    state[4] = _mm_extract_epi32::<3>(e) as u32;
}

/// Four rounds of function group `f` (0: Ch, rounds 0-19; 1: Parity; 2: Maj; 3: Parity).
/// The instruction takes the group as an immediate, hence the match.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds(abcd: __m128i, e_plus_w: __m128i, f: usize) -> __m128i {
    match f {
        0 => _mm_sha1rnds4_epu32::<0>(abcd, e_plus_w),
        1 => _mm_sha1rnds4_epu32::<1>(abcd, e_plus_w),
        2 => _mm_sha1rnds4_epu32::<2>(abcd, e_plus_w),
        _ => _mm_sha1rnds4_epu32::<3>(abcd, e_plus_w),
    }
}
