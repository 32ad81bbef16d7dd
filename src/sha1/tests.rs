//! SHA-1's unit tests: the FIPS 180 vectors on every path this CPU has, and the streaming API.

use super::*;

/// FIPS 180 test vectors (the NIST "SHA1ShortMsg"-style examples and the million a's).
const VECTORS: &[(&str, usize, &str)] = &[
    ("abc", 1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("", 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    (
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        1,
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
    ),
    ("a", 1_000_000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
];

/// The backends this CPU runs; says so when it has to skip SHA-NI.
fn backends() -> Vec<Backend> {
    if Backend::ShaNi.is_available() {
        vec![Backend::Portable, Backend::ShaNi]
    } else {
        eprintln!("sha1: this CPU lacks the SHA extensions; skipped the sha-ni path");
        vec![Backend::Portable]
    }
}

#[test]
fn fips_180_vectors_on_every_backend() {
    for backend in backends() {
        for &(text, times, want) in VECTORS {
            let data = text.repeat(times);
            let got = Sha1::with_backend(backend).map(|mut sha| {
                sha.update(data.as_bytes());
                sha.digest().to_string()
            });
            assert_eq!(
                got.as_deref(),
                Some(want),
                "{backend:?} on {text:?} x{times}"
            );
        }
    }
}

#[test]
fn new_uses_the_best_backend_and_reset_keeps_it() {
    let mut sha = Sha1::from("abc");
    assert_eq!(sha.backend(), Backend::best());
    assert_eq!(sha.backend().name(), backend());
    sha.reset();
    assert_eq!(sha.backend(), Backend::best());
    assert_eq!(sha.hexdigest(), VECTORS[1].2);
    assert_eq!(Sha1::portable().backend(), Backend::Portable);
}

#[test]
fn digest_can_be_taken_midway() {
    for backend in backends() {
        let mut sha = Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
        sha.update(b"ab");
        assert_eq!(sha.digest(), Sha1::from("ab").digest(), "{backend:?}");
        sha.update(b"c");
        assert_eq!(sha.hexdigest(), VECTORS[0].2, "{backend:?}");
    }
}

#[test]
fn digest_text_round_trips_and_matches_sha1_smol() {
    let digest = Sha1::from("abc").digest();
    let text = digest.to_string();
    assert_eq!(text, sha1_smol::Sha1::from("abc").digest().to_string());
    assert_eq!(text.parse(), Ok(digest));
    assert_eq!(text.to_uppercase().parse(), Ok(digest));
    assert_eq!(format!("{digest:?}"), format!("Digest({text})"));
    assert_eq!(Digest::from(digest.bytes()), digest);
    assert_eq!(digest.bytes()[..3], [0xa9, 0x99, 0x3e]);
}

#[test]
fn digest_parse_rejects_everything_but_40_hex_digits() {
    let good = "a9993e364706816aba3e25717850c26c9cd0d89d";
    for bad in [
        "",
        &good[1..],
        &format!("{good}0"),
        &good.replace('e', "g"),
        // sha1_smol takes these: u32::from_str_radix allows a sign.
        &format!("+{}", &good[1..]),
        &format!("{}+0000000", &good[..32]),
        // 40 bytes with a two-byte character across a word boundary: an error, no panic.
        &format!("{}é{}", &good[..7], &good[9..]),
        &good.replace('a', " "),
    ] {
        assert_eq!(bad.parse::<Digest>(), Err(DigestParseError), "{bad:?}");
    }
}

#[test]
fn digests_order_like_their_bytes_and_like_sha1_smol() {
    let texts = ["ff", "0f", "00", "10", "a", "b"];
    let mut ours: Vec<Digest> = texts.iter().map(|t| Sha1::from(t).digest()).collect();
    let mut theirs: Vec<_> = texts
        .iter()
        .map(|t| sha1_smol::Sha1::from(t).digest())
        .collect();
    ours.sort();
    theirs.sort();
    let ours: Vec<String> = ours.iter().map(Digest::to_string).collect();
    let theirs: Vec<String> = theirs.iter().map(|d| d.to_string()).collect();
    assert_eq!(ours, theirs);
}
