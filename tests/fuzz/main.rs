//! Bad input (the hardening issue): random and mutated lines through the parsers and through
//! live servers, byte ranges and piece indices past the end of a file, names that try to leave
//! a peer's folder, holders that lie about a block's length or a file's size, and memory that
//! stays bounded under a stream of overlong lines.
//!
//! The randomized tests draw from one seed, printed when they start and named in every
//! assertion. Replay a failure with `TORRENTPHILE_FUZZ_SEED=<seed> cargo test --test fuzz`.
//!
//! Where to look:
//! - `lines` and `values`: the generators (random, shaped and mutated lines; valid values).
//! - `codec`: lines straight into `parse_request`/`parse_reply`, and values through
//!   `Display` and back.
//! - `framing`: lines through the servers' own read-parse-answer loop, in process: exactly one
//!   reply a line, `ERR too-long` past `MAX_LINE`.
//! - `live`: random lines in random fragments to a running tracker and peer.
//! - `names`: byte ranges, piece indices and names that try to leave the folder.
//! - `liars`: holders that lie about a block's length or a file's size, or refuse pieces
//!   (played by `tests/common`'s `FakePeer`).
//! - `memory`: what a server keeps under floods of long lines and new ids.
//! - `accounts`: account lines on a logged-in tracker connection, and the journal reader on
//!   random, truncated and damaged records.
//!
//! Timing attacks (slow, silent and flooding clients) live in `tests/hostile.rs`.

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod codec;
mod framing;
mod liars;
mod lines;
mod live;
mod memory;
mod names;
mod values;

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::temp_dir;
use torrentphile::conn::Timeouts;
use torrentphile::peer::Peer;
use torrentphile::tracker::Tracker;
use torrentphile::util::Rng;

// At least a million lines through the parsers per run (they are cheap), counting those
// through the servers' line loop and both halves of each value round trip.
const _: () = assert!(
    codec::REQUEST_LINES + codec::REPLY_LINES + 2 * codec::VALUES + framing::LINES >= 1_000_000
);

/// The error codes PROTOCOL.md documents (its "Errors" section), accounts and groups'
/// included.
const CODES: [&str; 34] = [
    "bad-request",
    "unknown-verb",
    "bad-name",
    "too-long",
    "not-found",
    "conflict",
    "not-registered",
    "range",
    "unavailable",
    "busy",
    "timeout",
    "internal",
    "limit",
    "not-leader",
    "not-logged-in",
    "logged-in",
    "slow-down",
    "invalid-proof",
    "bad-login",
    "exists",
    "no-user",
    "no-group",
    "not-member",
    "not-admin",
    "no-request",
    "admin-stays",
    "not-owner",
    "storage",
    "ticket-forged",
    "ticket-expired",
    "ticket-address",
    "ticket-file",
    "ticket-group",
    "ticket-revoked",
];

/// The run's seed: `TORRENTPHILE_FUZZ_SEED` if set (decimal or 0x-hex), else a fixed value
/// mixed with the clock. Printed once.
fn base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = match std::env::var("TORRENTPHILE_FUZZ_SEED") {
            Ok(text) => {
                let text = text.trim();
                let parsed = match text.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => text.parse().ok(),
                };
                parsed.unwrap_or_else(|| panic!("TORRENTPHILE_FUZZ_SEED={text:?} is not a u64"))
            }
            Err(_) => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                0x7450_6869_6c65_2d46 ^ nanos
            }
        };
        eprintln!("fuzz seed {seed} (replay with TORRENTPHILE_FUZZ_SEED={seed})");
        seed
    })
}

/// One test's random stream, derived from the run's seed and the test's name. If the test
/// panics, dropping it prints how to replay the run.
struct Fuzz {
    seed: u64,
    test: &'static str,
    rng: Rng,
    /// One length in this many is far past the line limit (10 to 70 KB). The bulk parser
    /// streams draw ten times as many lines as the others and set this ten times higher, so
    /// a run still sees about as many huge lines without spending most of its time on them.
    huge_one_in: usize,
}

impl Fuzz {
    fn new(test: &'static str) -> Fuzz {
        let seed = base_seed();
        // FNV-1a of the test name, so every test has its own stream from the same seed.
        let tag = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        eprintln!("{test}: TORRENTPHILE_FUZZ_SEED={seed}");
        Fuzz {
            seed,
            test,
            rng: Rng::new(seed ^ tag),
            huge_one_in: 100,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.rng.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.below(items.len())]
    }
}

impl Drop for Fuzz {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{} failed; replay with TORRENTPHILE_FUZZ_SEED={} cargo test --test fuzz {}",
                self.test, self.seed, self.test
            );
        }
    }
}

/// A byte string for assertion messages: escaped, and cut in the middle if long.
fn show(bytes: &[u8]) -> String {
    const KEEP: usize = 120;
    if bytes.len() <= 2 * KEEP {
        return bytes.escape_ascii().to_string();
    }
    format!(
        "{}<... {} bytes ...>{}",
        bytes[..KEEP].escape_ascii(),
        bytes.len() - 2 * KEEP,
        bytes[bytes.len() - KEEP..].escape_ascii()
    )
}

fn printable(text: &str) -> bool {
    printable_or_tab(text.as_bytes(), false)
}

/// Printable ASCII (and tabs, if `tab`). A plain loop: the parser fuzz calls this on every line,
/// and in a debug build iterator adapters cost several times as much per byte.
fn printable_or_tab(bytes: &[u8], tab: bool) -> bool {
    for &b in bytes {
        if !(matches!(b, 0x20..=0x7e) || tab && b == b'\t') {
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The live peer's folder

/// The files the live peer of these tests shares (names are used by the generators so that
/// random requests hit real data too).
const A_BIN: &str = "a.bin";
const A_SIZE: usize = 5000;
const EMPTY: &str = "empty.txt";
const LIVE_PIECE: u32 = 1024;

fn a_bin_bytes() -> Vec<u8> {
    (0..A_SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A tracker and a patient peer sharing a fresh `live_peer_dir`.
fn live_peer(tag: &str) -> (Tracker, PathBuf, Peer) {
    let tracker = common::tracker();
    let dir = live_peer_dir(tag);
    let peer = common::peer_with(&tracker, &dir, patient);
    (tracker, dir, peer)
}

fn live_peer_dir(tag: &str) -> PathBuf {
    let dir = temp_dir(tag);
    fs::write(dir.join(A_BIN), a_bin_bytes()).unwrap();
    fs::write(dir.join(EMPTY), b"").unwrap();
    dir
}

/// Long timeouts for servers a test talks to at its own pace (a loaded machine may pause it).
fn patient(c: &mut torrentphile::peer::PeerConfig) {
    c.piece_size = Some(LIVE_PIECE);
    c.timeouts = Timeouts::uniform(Duration::from_secs(60));
}
