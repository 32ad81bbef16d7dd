//! SHA-1 (FIPS 180-4), the one hasher the crate uses: the CPU's SHA extensions where it has
//! them, `sha1_smol` everywhere else.
//!
//! Verifying pieces is SHA-1 over every byte we download, so its speed bounds a transfer.
//! x86-64 CPUs with the SHA extensions ("SHA-NI") hash about three times faster than the best
//! portable code; [`Sha1::new`] asks the CPU once per process and picks that path when it can.
//! `sha1_smol` stays the portable path and the reference the tests compare against.
//!
//! This module owns padding, buffering of partial blocks, and the [`Digest`] type (its hex
//! text is the wire format). It must never hold unchecked code itself: every intrinsic call is in `ni.rs`,
//! which only compresses whole blocks. The API mirrors `sha1_smol`'s, so a call site changes
//! by a rename.

use std::fmt;
use std::str::FromStr;

#[cfg(target_arch = "x86_64")]
mod ni;

/// Other architectures: no SHA-NI, and a proof type that can never be made.
#[cfg(not(target_arch = "x86_64"))]
mod ni {
    #[derive(Clone, Copy, Debug)]
    pub enum ShaNi {}
    pub fn detect() -> Option<ShaNi> {
        None
    }
    pub fn compress(cpu: ShaNi, _: &mut [u32; 5], _: &[u8]) {
        match cpu {}
    }
    pub fn compress_pair(cpu: ShaNi, _: &mut [u32; 5], _: &[u8], _: &mut [u32; 5], _: &[u8]) {
        match cpu {}
    }
}

/// FIPS 180-4 §5.3.1: the initial hash value.
const INITIAL: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// Which code computes the hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sha1_smol`: plain Rust, runs anywhere.
    Portable,
    /// The x86-64 SHA extensions, through `std::arch` intrinsics.
    ShaNi,
}

impl Backend {
    /// The fastest backend this CPU can run (asked once per process, then cached).
    pub fn best() -> Backend {
        if ni::detect().is_some() {
            Backend::ShaNi
        } else {
            Backend::Portable
        }
    }

    /// Whether this CPU can run `self`.
    pub fn is_available(self) -> bool {
        self == Backend::Portable || ni::detect().is_some()
    }

    /// A name for reports: "sha-ni" or "sha1_smol (portable)".
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "sha1_smol (portable)",
            Backend::ShaNi => "sha-ni",
        }
    }
}

/// The name of the backend [`Sha1::new`] uses on this CPU: "sha-ni" or "sha1_smol (portable)".
pub fn backend() -> &'static str {
    Backend::best().name()
}

/// A SHA-1 computation in progress: feed it bytes with [`update`](Sha1::update), read the
/// hash of everything so far with [`digest`](Sha1::digest).
#[derive(Clone)]
pub struct Sha1 {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Portable(sha1_smol::Sha1),
    Ni(NiSha1),
}

/// The SHA-NI path's state: the chaining value plus the partial block not yet compressed.
#[derive(Clone)]
struct NiSha1 {
    cpu: ni::ShaNi,
    state: [u32; 5],
    block: [u8; 64],
    /// How many bytes of `block` hold input (always < 64 between calls).
    filled: usize,
    /// Bytes hashed so far; FIPS 180-4 appends it, in bits, to the padding.
    len: u64,
}

impl Sha1 {
    /// An empty hash on the fastest backend this CPU has.
    pub fn new() -> Sha1 {
        match ni::detect() {
            Some(cpu) => Sha1::ni(cpu),
            None => Sha1::portable(),
        }
    }

    /// An empty hash on `sha1_smol`, whatever the CPU (for benchmarks and differential tests).
    pub fn portable() -> Sha1 {
        Sha1 {
            engine: Engine::Portable(sha1_smol::Sha1::new()),
        }
    }

    /// An empty hash on `backend`, or `None` if this CPU cannot run it.
    pub fn with_backend(backend: Backend) -> Option<Sha1> {
        match backend {
            Backend::Portable => Some(Sha1::portable()),
            Backend::ShaNi => ni::detect().map(Sha1::ni),
        }
    }

    fn ni(cpu: ni::ShaNi) -> Sha1 {
        Sha1 {
            engine: Engine::Ni(NiSha1 {
                cpu,
                state: INITIAL,
                block: [0; 64],
                filled: 0,
                len: 0,
            }),
        }
    }

    /// The hash of `data`, ready to [`digest`](Sha1::digest) or extend.
    pub fn from<D: AsRef<[u8]>>(data: D) -> Sha1 {
        let mut sha = Sha1::new();
        sha.update(data.as_ref());
        sha
    }

    /// Which backend this hash runs on.
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Portable(_) => Backend::Portable,
            Engine::Ni(_) => Backend::ShaNi,
        }
    }

    /// Start over with no input, on the same backend.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::Portable(sha) => sha.reset(),
            Engine::Ni(sha) => *self = Sha1::ni(sha.cpu),
        }
    }

    /// Append `data` to the message. Calls may split the message anywhere.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.engine {
            Engine::Portable(sha) => sha.update(data),
            Engine::Ni(sha) => sha.update(data),
        }
    }

    /// Append `data` to `self` and `other_data` to `other`: the same as two calls to
    /// [`update`](Sha1::update), but where both run on SHA-NI their whole blocks go through
    /// the CPU together, about twice the rate of one after the other.
    pub fn update_pair(&mut self, data: &[u8], other: &mut Sha1, other_data: &[u8]) {
        match (&mut self.engine, &mut other.engine) {
            (Engine::Ni(x), Engine::Ni(y)) => NiSha1::update_pair(x, data, y, other_data),
            _ => {
                self.update(data);
                other.update(other_data);
            }
        }
    }

    /// The hash of everything given so far (the computation can go on afterwards).
    pub fn digest(&self) -> Digest {
        match &self.engine {
            Engine::Portable(sha) => Digest(sha.digest().bytes()),
            Engine::Ni(sha) => sha.digest(),
        }
    }

    /// The digest as 40 lowercase hex digits.
    pub fn hexdigest(&self) -> String {
        self.digest().to_string()
    }
}

impl Default for Sha1 {
    fn default() -> Sha1 {
        Sha1::new()
    }
}

impl fmt::Debug for Sha1 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Sha1")
            .field("backend", &self.backend().name())
            .field("digest_so_far", &self.digest())
            .finish()
    }
}

impl NiSha1 {
    fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            ni::compress(self.cpu, &mut self.state, &self.block);
            self.filled = 0;
        }
        // Every whole block in one call; only the tail waits in `block` for more input.
        let whole = data.len() - data.len() % 64;
        if whole > 0 {
            ni::compress(self.cpu, &mut self.state, &data[..whole]);
        }
        let tail = &data[whole..];
        self.block[..tail.len()].copy_from_slice(tail);
        self.filled = tail.len();
    }

    /// Top up each partial block alone, then the blocks both messages have in pairs, then
    /// each rest alone.
    fn update_pair(x: &mut NiSha1, mut xs: &[u8], y: &mut NiSha1, mut ys: &[u8]) {
        xs = x.top_up(xs);
        ys = y.top_up(ys);
        if x.filled == 0 && y.filled == 0 {
            let both = xs.len().min(ys.len()) / 64 * 64;
            if both > 0 {
                x.len = x.len.wrapping_add(both as u64);
                y.len = y.len.wrapping_add(both as u64);
                ni::compress_pair(x.cpu, &mut x.state, &xs[..both], &mut y.state, &ys[..both]);
                xs = &xs[both..];
                ys = &ys[both..];
            }
        }
        x.update(xs);
        y.update(ys);
    }

    /// Complete a partial block from the front of `data`; the rest of `data` is returned.
    fn top_up<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.filled == 0 {
            return data;
        }
        let head = (64 - self.filled).min(data.len());
        self.update(&data[..head]);
        &data[head..]
    }

    /// FIPS 180-4 §5.1.1: pad with one 1 bit, zeros, and the length in bits as 64 big-endian
    /// bits, to a whole number of blocks; compress a copy, so `self` can take more input.
    fn digest(&self) -> Digest {
        let mut last = [0u8; 128];
        last[..self.filled].copy_from_slice(&self.block[..self.filled]);
        last[self.filled] = 0x80;
        let end = if self.filled < 56 { 64 } else { 128 };
        last[end - 8..end].copy_from_slice(&self.len.wrapping_mul(8).to_be_bytes());
        let mut state = self.state;
        ni::compress(self.cpu, &mut state, &last[..end]);
        let mut out = [0u8; 20];
        for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        Digest(out)
    }
}

/// A SHA-1 hash: 20 bytes, written as 40 lowercase hex digits. Orders like its bytes.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 20]);

impl Digest {
    /// The 20 bytes, most significant first (as FIPS 180-4 writes them).
    pub fn bytes(&self) -> [u8; 20] {
        self.0
    }
}

impl From<[u8; 20]> for Digest {
    fn from(bytes: [u8; 20]) -> Digest {
        Digest(bytes)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 40];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 15)];
        }
        // Only ASCII hex digits went in, so this never fails.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// The text given to [`Digest::from_str`] was not exactly 40 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigestParseError;

impl fmt::Display for DigestParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SHA-1 digest is exactly 40 hex digits")
    }
}

impl std::error::Error for DigestParseError {}

impl FromStr for Digest {
    type Err = DigestParseError;

    /// Exactly 40 hex digits, either case. Nothing else: no sign, no spaces, no `0x`.
    fn from_str(text: &str) -> Result<Digest, DigestParseError> {
        let text = text.as_bytes();
        if text.len() != 40 {
            return Err(DigestParseError);
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(DigestParseError),
        };
        let mut out = [0u8; 20];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Ok(Digest(out))
    }
}

#[cfg(test)]
mod tests;
