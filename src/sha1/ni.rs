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

/// [`compress`] for two messages at once: `xs` into `x` and `ys` into `y`, which must be the
/// same whole number of blocks. About twice the rate of two calls to [`compress`].
///
/// Panics if the lengths differ or are not multiples of 64.
pub fn compress_pair(cpu: ShaNi, x: &mut [u32; 5], xs: &[u8], y: &mut [u32; 5], ys: &[u8]) {
    assert!(
        xs.len() == ys.len() && xs.len().is_multiple_of(64),
        "SHA-1 pairs compress the same number of whole blocks"
    );
    let _ = cpu;
    // SAFETY: as in `compress`: the function is compiled for `sha,sse2,ssse3,sse4.1`, and
    // `cpu: ShaNi` proves this CPU has them; the function reads its slices by safe indexing.
    unsafe { compress_blocks_pair(x, xs, y, ys) }
}

/// Four rounds with function group `$f` (0: Ch, rounds 0-19; 1: Parity; 2: Maj; 3: Parity)
/// and message words `$w`; E is A of the group before, rotated (`sha1nexte`).
macro_rules! four_rounds {
    ($f:literal, $abcd:ident, $prev:ident, $w:expr) => {{
        let e_plus_w = _mm_sha1nexte_epu32($prev, $w);
        $prev = $abcd;
        $abcd = _mm_sha1rnds4_epu32::<$f>($abcd, e_plus_w);
    }};
}

/// The next four message words (FIPS 180-4 §6.1.2 step 1) from the last sixteen, `$w0`
/// oldest, stored over `$w0`; then four rounds with them.
macro_rules! next_four {
    ($f:literal, $abcd:ident, $prev:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident) => {{
        $w0 = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32($w0, $w1), $w2), $w3);
        four_rounds!($f, $abcd, $prev, $w0);
    }};
}

/// One 64-byte block into `$abcd`/`$e` (FIPS 180-4 §6.1.2 steps 1-4).
macro_rules! one_block {
    ($abcd:ident, $e:ident, $block:expr, $reverse:expr) => {{
        let block: &[u8] = $block;
        let load = |i: usize| {
            let half = |at: usize| {
                let bytes: [u8; 8] = block[at..at + 8].try_into().unwrap_or([0; 8]);
                i64::from_le_bytes(bytes)
            };
            _mm_shuffle_epi8(_mm_set_epi64x(half(16 * i + 8), half(16 * i)), $reverse)
        };
        let (mut w0, mut w1, mut w2, mut w3) = (load(0), load(1), load(2), load(3));
        let (abcd_before, e_before) = ($abcd, $e);
        // `prev` is A..D as it was before the group just done: `sha1nexte` takes E from it.
        let mut prev = $abcd;

        // Rounds 0-15 take the block's own words; rounds 0-3 take E as it is.
        $abcd = _mm_sha1rnds4_epu32::<0>($abcd, _mm_add_epi32($e, w0));
        four_rounds!(0, $abcd, prev, w1); // 4-7
        four_rounds!(0, $abcd, prev, w2); // 8-11
        four_rounds!(0, $abcd, prev, w3); // 12-15
        // Rounds 16-79 compute their words first, each in place of the one 16 words older.
        // Written out, not looped, so every immediate is a constant and W stays in registers.
        next_four!(0, $abcd, prev, w0, w1, w2, w3); // 16-19
        next_four!(1, $abcd, prev, w1, w2, w3, w0); // 20-23
        next_four!(1, $abcd, prev, w2, w3, w0, w1);
        next_four!(1, $abcd, prev, w3, w0, w1, w2);
        next_four!(1, $abcd, prev, w0, w1, w2, w3);
        next_four!(1, $abcd, prev, w1, w2, w3, w0); // 36-39
        next_four!(2, $abcd, prev, w2, w3, w0, w1); // 40-43
        next_four!(2, $abcd, prev, w3, w0, w1, w2);
        next_four!(2, $abcd, prev, w0, w1, w2, w3);
        next_four!(2, $abcd, prev, w1, w2, w3, w0);
        next_four!(2, $abcd, prev, w2, w3, w0, w1); // 56-59
        next_four!(3, $abcd, prev, w3, w0, w1, w2); // 60-63
        next_four!(3, $abcd, prev, w0, w1, w2, w3);
        next_four!(3, $abcd, prev, w1, w2, w3, w0);
        next_four!(3, $abcd, prev, w2, w3, w0, w1);
        next_four!(3, $abcd, prev, w3, w0, w1, w2); // 76-79

        // FIPS 180-4 §6.1.2 step 4: add the working variables into the state.
        $e = _mm_sha1nexte_epu32(prev, e_before);
        $abcd = _mm_add_epi32($abcd, abcd_before);
    }};
}

/// Reverse all 16 bytes: a block's big-endian words come out as numbers, and the first word
/// lands in the highest lane, where `sha1rnds4` wants it.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn reverse_bytes() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

/// The state in registers: A in the highest 32-bit lane of `abcd` and D in the lowest; E
/// alone in the highest lane of its own register, as the instructions keep them.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_state(state: &[u32; 5]) -> (__m128i, __m128i) {
    let abcd = _mm_set_epi32(
        state[0] as i32,
        state[1] as i32,
        state[2] as i32,
        state[3] as i32,
    );
    (abcd, _mm_set_epi32(state[4] as i32, 0, 0, 0))
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn store_state(state: &mut [u32; 5], abcd: __m128i, e: __m128i) {
    state[0] = _mm_extract_epi32::<3>(abcd) as u32;
    state[1] = _mm_extract_epi32::<2>(abcd) as u32;
    state[2] = _mm_extract_epi32::<1>(abcd) as u32;
    state[3] = _mm_extract_epi32::<0>(abcd) as u32;
    state[4] = _mm_extract_epi32::<3>(e) as u32;
}

/// The whole multi-block loop, compiled for the SHA extensions so the intrinsics inline.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_blocks(state: &mut [u32; 5], blocks: &[u8]) {
    let reverse = reverse_bytes();
    let (mut abcd, mut e) = load_state(state);
    for block in blocks.chunks_exact(64) {
        one_block!(abcd, e, block, reverse);
    }
    store_state(state, abcd, e);
}

/// Two independent messages, a block of each per turn. One message's rounds are a chain, each
/// `sha1rnds4` waiting for the last; the other's rounds fill the gaps, so two hashes cost
/// little more than one.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_blocks_pair(x: &mut [u32; 5], xs: &[u8], y: &mut [u32; 5], ys: &[u8]) {
    let reverse = reverse_bytes();
    let (mut abcd_x, mut e_x) = load_state(x);
    let (mut abcd_y, mut e_y) = load_state(y);
    for (bx, by) in xs.chunks_exact(64).zip(ys.chunks_exact(64)) {
        one_block!(abcd_x, e_x, bx, reverse);
        one_block!(abcd_y, e_y, by, reverse);
    }
    store_state(x, abcd_x, e_x);
    store_state(y, abcd_y, e_y);
}
