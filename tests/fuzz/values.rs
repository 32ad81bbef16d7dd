//! Generators of well-formed values (`Meta`, `Request`, `Reply`) with the shapes servers
//! produce, including the edges of every number. They assert nothing; `codec` sends them
//! through `Display` and back, and `gen` mutates their lines.

use torrentphile::auth::ticket::Ticket;
use torrentphile::protocol::{AccountRequest, Digest, Holder, Meta, Reply, Request};

use super::lines::{length, scram_text, valid_id, valid_name};
use super::{A_SIZE, CODES, Fuzz};

fn digest(f: &mut Fuzz) -> Digest {
    let mut bytes = [0u8; 20];
    f.rng.fill(&mut bytes);
    // By hand rather than `format!` per byte: this runs a few hundred thousand times a test.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(40);
    for b in bytes {
        hex.push(HEX[(b >> 4) as usize] as char);
        hex.push(HEX[(b & 15) as usize] as char);
    }
    hex.parse().unwrap()
}

fn valid_meta(f: &mut Fuzz) -> Meta {
    let piece_size = 1u32 << (10 + f.below(17));
    let max = piece_size as u64 * (1 << 16);
    let size = match f.below(5) {
        0 => 0,
        1 => max,
        2 => f.rng.next_u64() % 100_000,
        _ => f.rng.next_u64() % (max + 1),
    };
    Meta {
        name: valid_name(f),
        size,
        piece_size,
        sha1: digest(f),
        root: digest(f),
    }
}

/// A well-formed account request (any word a parser takes, whether or not a tracker would
/// agree with it).
pub(super) fn valid_account_request(f: &mut Fuzz) -> AccountRequest {
    use AccountRequest as R;
    let mut key = || {
        let mut k = [0u8; 20];
        f.rng.fill(&mut k);
        k
    };
    let (stored_key, server_key) = (key(), key());
    let (group, user, name) = (valid_id(f), valid_id(f), valid_name(f));
    let scram = |f: &mut Fuzz| {
        let word: String = String::from_utf8_lossy(&scram_text(f))
            .chars()
            .filter(char::is_ascii_graphic)
            .collect();
        if word.is_empty() {
            "n,,n=a,r=x".into()
        } else {
            word
        }
    };
    let ip = |f: &mut Fuzz| f.pick(&["127.0.0.1", "::1", "10.0.0.7"]).to_string();
    match f.below(19) {
        0 => R::Salt { user },
        1 => R::CreateUser {
            user,
            stored_key,
            server_key,
        },
        2 => R::Login { first: scram(f) },
        3 => R::Proof { last: scram(f) },
        4 => R::Logout,
        5 => R::CreateGroup { group },
        6 => R::Join { group },
        7 => R::Leave { group },
        8 => R::Requests { group },
        9 => R::Accept { group, user },
        10 => R::Groups,
        11 => R::Files { group },
        12 => R::GUpload {
            group,
            meta: valid_meta(f),
        },
        13 => R::GRemove { group, name },
        14 => R::GWhoHas { group, name },
        15 => R::GInfo { group, name },
        16 => R::Grant {
            group,
            name,
            holder: format!("{}:{}", ip(f), 1 + f.below(65535)),
        },
        17 => R::Vouch { group, user },
        _ => R::Ticket(Ticket {
            user,
            group,
            name,
            root: digest(f),
            ip: ip(f),
            expiry: f.rng.next_u64() >> f.below(64),
            mac: stored_key,
        }),
    }
}

/// A well-formed request, as a value.
pub(super) fn valid_request(f: &mut Fuzz) -> Request {
    if f.one_in(5) {
        return Request::Account(valid_account_request(f));
    }
    let name = valid_name(f);
    match f.below(16) {
        0 => Request::Register {
            port: 1 + f.below(65535) as u16,
        },
        1 => Request::Upload(valid_meta(f)),
        2 => Request::Partial { name },
        3 => Request::Remove { name },
        4 => Request::WhoHas { name },
        5 => Request::Info { name },
        6 => Request::List,
        7 => Request::Hello {
            id: name.chars().take(64).collect(),
        },
        8 => Request::Get { name, range: None },
        9 => {
            let mut n = || match f.below(4) {
                0 => f.rng.next_u64(),
                1 => u64::MAX - f.below(3) as u64,
                _ => f.below(A_SIZE + 2) as u64,
            };
            let range = Some((n(), n()));
            Request::Get { name, range }
        }
        10 => Request::Piece {
            name,
            index: match f.below(3) {
                0 => f.rng.next_u64() as u32,
                _ => f.below(8) as u32,
            },
        },
        11 => Request::Have { name },
        12 => Request::Hashes { name },
        13 => Request::Ping,
        14 => Request::Help,
        _ => Request::Bye,
    }
}

/// A well-formed reply, as a value (with the shapes servers produce: holders are addresses).
pub(super) fn valid_reply(f: &mut Fuzz) -> Reply {
    let text = |f: &mut Fuzz| -> String {
        // Printable ASCII, one random byte a character (a plain loop: cheap in a debug build).
        let mut bytes = vec![0u8; length(f).min(5000)];
        f.rng.fill(&mut bytes);
        let mut text = String::with_capacity(bytes.len());
        for b in bytes {
            text.push((0x20 + b % 95) as char);
        }
        text
    };
    match f.below(7) {
        0 => Reply::Ack(text(f)),
        1 => {
            let n = 1 + f.below(6);
            let holders = (0..n)
                .map(|_| Holder {
                    addr: format!("127.0.0.{}:{}", f.below(256), 1 + f.below(65535)),
                    partial: f.one_in(2),
                })
                .collect();
            Reply::Peers(holders)
        }
        2 => Reply::File(valid_meta(f)),
        3 => {
            let len = if f.one_in(10) { 0 } else { length(f) };
            let mut bits = vec![0u8; len];
            f.rng.fill(&mut bits);
            Reply::Bitfield(
                bits.iter()
                    .map(|b| if b & 1 == 1 { '1' } else { '0' })
                    .collect(),
            )
        }
        4 => Reply::Data(f.rng.next_u64() >> f.below(64)),
        5 => Reply::Pong,
        _ => {
            let code = f.pick(&CODES).parse().unwrap();
            Reply::Err(code, text(f))
        }
    }
}
