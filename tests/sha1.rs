//! The SHA-NI path against `sha1_smol`, the reference: every length 0..=200 split at every
//! point, then random lengths up to 4 MiB at random offsets split at random points across
//! `update` calls, over 100,000 cases in all. On a CPU without the SHA extensions it says it
//! skipped that path and checks only the portable wrapper.
//!
//! `Sha1::update_pair` (two messages at once) gets the same treatment: 25,000 random pairs.
//!
//! The random cases draw from one seed, printed at the start and named in every assertion;
//! replay with `TORRENTPHILE_SHA1_SEED=<seed> cargo test --test sha1`.
//!
//! `cargo test --release --test sha1 -- --ignored --nocapture` measures both paths' hash
//! rates over 1 GiB in memory instead (a measurement, never asserted).

use std::time::{Duration, Instant};

use torrentphile::sha1::{Backend, Digest, Sha1};
use torrentphile::util::Rng;

const MIB: usize = 1 << 20;

fn seed() -> u64 {
    let seed = match std::env::var("TORRENTPHILE_SHA1_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("TORRENTPHILE_SHA1_SEED={text:?} is not a u64")),
        Err(_) => Rng::from_time().next_u64(),
    };
    eprintln!("sha1 seed {seed} (replay with TORRENTPHILE_SHA1_SEED={seed})");
    seed
}

/// The hasher under test: SHA-NI where the CPU has it, else our portable wrapper.
fn subject() -> Backend {
    if Backend::ShaNi.is_available() {
        Backend::ShaNi
    } else {
        eprintln!("sha1: this CPU lacks the SHA extensions; skipped the sha-ni path");
        Backend::Portable
    }
}

fn reference(data: &[u8]) -> Digest {
    Digest::from(sha1_smol::Sha1::from(data).digest().bytes())
}

/// Hash `data` on `backend`, one `update` per piece between the sorted `cuts`.
fn hash_in_pieces(backend: Backend, data: &[u8], cuts: &[usize]) -> Digest {
    let mut sha = Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
    let mut at = 0;
    for &cut in cuts.iter().chain([&data.len()]) {
        sha.update(&data[at..cut]);
        at = cut;
    }
    sha.digest()
}

#[test]
fn every_short_length_at_every_split_point() {
    let backend = subject();
    let mut rng = Rng::new(200);
    let mut data = vec![0u8; 200];
    rng.fill(&mut data);
    let mut cases = 0;
    for len in 0..=200 {
        let data = &data[..len];
        let want = reference(data);
        for cut in 0..=len {
            let mut sha = Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
            sha.update(&data[..cut]);
            // A digest midway must not disturb what follows.
            assert_eq!(sha.digest(), reference(&data[..cut]), "len {len} cut {cut}");
            sha.update(&data[cut..]);
            assert_eq!(sha.digest(), want, "len {len} split at {cut}");
            cases += 1;
        }
        // One byte per update, and reset-then-reuse.
        let mut sha = Sha1::from(b"something before the reset");
        sha.reset();
        data.iter().for_each(|b| sha.update(&[*b]));
        assert_eq!(sha.digest(), want, "len {len} byte by byte");
    }
    assert_eq!(cases, 201 * 202 / 2);
}

/// Split points: none, a few anywhere, or a few on and next to 64-byte block boundaries.
fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    let count = rng.below(6);
    let mut cuts: Vec<usize> = (0..count)
        .map(|_| match rng.below(3) {
            0 if len >= 64 => (rng.below(len / 64 + 1) * 64 + rng.below(3)).saturating_sub(1),
            _ => rng.below(len + 1),
        })
        .map(|cut| cut.min(len))
        .collect();
    cuts.sort_unstable();
    cuts
}

#[test]
fn random_lengths_offsets_and_splits_match_sha1_smol() {
    let backend = subject();
    let seed = seed();
    let mut rng = Rng::new(seed);
    // One pool of random bytes; cases hash slices of it at random (so unaligned) offsets.
    let mut pool = vec![0u8; 4 * MIB + 64];
    rng.fill(&mut pool);
    let (mut cases, mut bytes, started) = (0usize, 0usize, Instant::now());
    for case in 0..80_000 {
        // Mostly short (where padding and buffering bugs live), some of many blocks, and a
        // few multi-MiB ones: this keeps a debug build to a few seconds.
        let len = match case {
            0..4 => MIB * (case + 1) + rng.below(64),
            _ => match rng.below(10_000) {
                0..9_500 => rng.below(1025),
                9_500..9_999 => rng.below(8 * 1024 + 1),
                _ => rng.below(4 * MIB + 1),
            },
        };
        let start = rng.below(pool.len() - len + 1);
        let data = &pool[start..start + len];
        let cuts = random_cuts(&mut rng, len);
        let got = hash_in_pieces(backend, data, &cuts);
        assert_eq!(
            got,
            reference(data),
            "case {case}: {len} bytes at offset {start}, updates split at {cuts:?}; \
             replay with TORRENTPHILE_SHA1_SEED={seed}"
        );
        cases += 1;
        bytes += len;
    }
    eprintln!(
        "sha1: {cases} random cases on {}, {:.0} MiB, {:.1}s",
        backend.name(),
        bytes as f64 / MIB as f64,
        started.elapsed().as_secs_f64()
    );
}

/// Two messages hashed together (`Sha1::update_pair`, two blocks per turn on SHA-NI): random
/// lengths, offsets and split points on each, pairs of calls mixed with single `update`s,
/// digests taken midway; both must match `sha1_smol`.
#[test]
fn two_messages_at_once_match_sha1_smol() {
    let backend = subject();
    let seed = seed() ^ 0x7061_6972;
    let mut rng = Rng::new(seed);
    let mut pool = vec![0u8; MIB + 64];
    rng.fill(&mut pool);
    for case in 0..25_000 {
        let len = |rng: &mut Rng| match rng.below(100) {
            0..80 => rng.below(1025),
            80..99 => rng.below(64 * 1024 + 1),
            _ => rng.below(MIB + 1),
        };
        let (lx, ly) = (len(&mut rng), len(&mut rng));
        let (sx, sy) = (
            rng.below(pool.len() - lx + 1),
            rng.below(pool.len() - ly + 1),
        );
        let (x, y) = (&pool[sx..sx + lx], &pool[sy..sy + ly]);
        let new = || Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
        let (mut hx, mut hy) = (new(), new());
        let (mut at_x, mut at_y) = (0, 0);
        // The next cut of a message: its end, anywhere, or on a block boundary.
        let next = |rng: &mut Rng, at: usize, len: usize| {
            let left = len - at;
            at + match rng.below(3) {
                0 => left,
                1 => rng.below(left + 1),
                _ => (rng.below(left / 64 + 1) * 64).min(left),
            }
        };
        while at_x < lx || at_y < ly {
            let (nx, ny) = (next(&mut rng, at_x, lx), next(&mut rng, at_y, ly));
            match rng.below(5) {
                0 => {
                    hx.update(&x[at_x..nx]);
                    at_x = nx;
                }
                1 => {
                    hy.update(&y[at_y..ny]);
                    at_y = ny;
                }
                2 => {
                    // A digest midway must not disturb what follows.
                    assert_eq!(hx.digest(), reference(&x[..at_x]), "case {case}: x midway");
                    assert_eq!(hy.digest(), reference(&y[..at_y]), "case {case}: y midway");
                }
                _ => {
                    hx.update_pair(&x[at_x..nx], &mut hy, &y[at_y..ny]);
                    (at_x, at_y) = (nx, ny);
                }
            }
        }
        assert_eq!(
            (hx.digest(), hy.digest()),
            (reference(x), reference(y)),
            "case {case}: {lx} and {ly} bytes; replay with TORRENTPHILE_SHA1_SEED={}",
            seed ^ 0x7061_6972
        );
    }
}

/// This thread's CPU time so far (Linux): on a shared machine the wall clock also counts
/// the time other processes held the core, CPU time does not (`openssl speed` reports the same).
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Hash rates in MB/s (by wall clock, by CPU time) of `backend` over `data`, fed `chunk`
/// bytes per `update`; the best of 3.
fn rate(backend: Backend, data: &[u8], chunk: usize) -> (f64, f64) {
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let (t, c) = (Instant::now(), cpu_time());
        let mut sha = Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
        data.chunks(chunk).for_each(|c| sha.update(c));
        std::hint::black_box(sha.digest());
        wall = wall.min(t.elapsed().as_secs_f64());
        if let (Some(c0), Some(c1)) = (c, cpu_time()) {
            cpu = cpu.min((c1 - c0).as_secs_f64());
        }
    }
    let mb = data.len() as f64 / 1e6;
    (mb / wall, mb / cpu)
}

#[test]
#[ignore = "a measurement: run with --release -- --ignored --nocapture"]
fn hash_rate_of_one_gib_on_each_path() {
    let mut data = vec![0u8; 1024 * MIB];
    Rng::new(1).fill(&mut data);
    let mut backends = vec![Backend::Portable];
    if Backend::ShaNi.is_available() {
        backends.push(Backend::ShaNi);
    }
    for &backend in &backends {
        for chunk in [data.len(), 256 * 1024, 16 * 1024] {
            let (wall, cpu) = rate(backend, &data, chunk);
            println!(
                "{:>22}: {wall:5.0} MB/s wall, {cpu:5.0} MB/s CPU time  (1 GiB, {} KiB per update)",
                backend.name(),
                chunk / 1024
            );
        }
    }
    // Two messages at once, as a download's hashers run them (`Sha1::update_pair`).
    for backend in backends {
        let (x, y) = data.split_at(data.len() / 2);
        let t = Instant::now();
        let mut hx = Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
        let mut hy = hx.clone();
        hx.update_pair(x, &mut hy, y);
        std::hint::black_box((hx.digest(), hy.digest()));
        println!(
            "{:>22}: {:5.0} MB/s wall  (1 GiB as two messages at once)",
            backend.name(),
            data.len() as f64 / 1e6 / t.elapsed().as_secs_f64()
        );
    }
}
