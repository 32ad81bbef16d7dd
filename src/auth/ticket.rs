//! Tickets: the tracker's permission, for one downloader, to fetch one group file from one
//! holder. Pure: minting and checking take the key, the clock reading and the address from the
//! caller.
//!
//! A ticket names the downloader (`user`), the `group`, the file (`name` and its `root`, so a
//! ticket for one version does not open another), the downloader's IP address as the holder
//! will see it, and an expiry (seconds since the Unix epoch). Its MAC is HMAC-SHA1 over those
//! words under the holder's ticket key, [`TicketKey`], derived from the holder's SCRAM session
//! key: the tracker and that holder both know it, and it never crossed the wire. So a ticket
//! cannot be forged or altered by anyone else, and it opens nothing at any other holder (or at
//! the same holder after it logged in again).
//!
//! On the wire it is the peer verb `TICKET <user> <group> <name> <root> <ip> <expiry> <mac>`
//! (the MAC is 40 hex digits, never printed in traces). Revocation (a member who left while a
//! ticket is still fresh) is not a property of the ticket: the holder asks the tracker
//! (`VOUCH`) once per ticket.

use std::fmt;

use super::ct;
use super::hmac::{HmacSha1, LEN};
use super::scram::SessionKey;
use crate::protocol::Digest;

/// How long a ticket is good for after it is minted (it is needed only to open a connection).
pub const LIFETIME_SECS: u64 = 120;

/// The key a holder's tickets are MACed with: HMAC(session key, "torrentphile ticket key").
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey([u8; LEN]);

impl TicketKey {
    /// Derive the ticket key from a SCRAM session key (both sides do this).
    pub fn from_session(session: &SessionKey) -> TicketKey {
        TicketKey(HmacSha1::new(session.as_bytes()).mac(b"torrentphile ticket key"))
    }

    /// A key from raw bytes (tests).
    pub fn from_bytes(bytes: [u8; LEN]) -> TicketKey {
        TicketKey(bytes)
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("TicketKey(<hidden>)")
    }
}

/// One ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub user: String,
    pub group: String,
    pub name: String,
    pub root: Digest,
    /// The downloader's address, as the tracker saw it (`127.0.0.1`, `::1`).
    pub ip: String,
    /// Seconds since the Unix epoch after which the ticket is refused.
    pub expiry: u64,
    pub mac: [u8; LEN],
}

/// Why a holder refuses a ticket; `code` is the `ERR` word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketError {
    /// The MAC does not match: forged, altered, or for another holder or session.
    Forged,
    Expired,
    /// Presented from another address than the one it was minted for.
    Address,
}

impl TicketError {
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::Forged => "ticket-forged",
            TicketError::Expired => "ticket-expired",
            TicketError::Address => "ticket-address",
        }
    }
}

impl fmt::Display for TicketError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            TicketError::Forged => "this ticket was not minted for this peer by the tracker",
            TicketError::Expired => "this ticket has expired; ask the tracker for a new one",
            TicketError::Address => "this ticket was minted for another address",
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse 40 lowercase hex digits.
pub fn parse_mac(word: &str) -> Option<[u8; LEN]> {
    if word.len() != 2 * LEN || !word.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&word[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Ticket {
    /// The words the MAC covers: everything but the MAC.
    fn body(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.user, self.group, self.name, self.root, self.ip, self.expiry
        )
    }

    /// A ticket MACed with `key` (the tracker, with the holder's key).
    pub fn mint(
        key: &TicketKey,
        user: &str,
        group: &str,
        name: &str,
        root: Digest,
        ip: &str,
        expiry: u64,
    ) -> Ticket {
        let mut ticket = Ticket {
            user: user.into(),
            group: group.into(),
            name: name.into(),
            root,
            ip: ip.into(),
            expiry,
            mac: [0; LEN],
        };
        ticket.mac = HmacSha1::new(&key.0).mac(ticket.body().as_bytes());
        ticket
    }

    /// Is this ticket one `key`'s owner minted, still fresh at `now`, presented from `ip`?
    /// The MAC is checked first (in constant time), so a forged ticket learns nothing else.
    pub fn verify(&self, key: &TicketKey, now: u64, ip: &str) -> Result<(), TicketError> {
        let want = HmacSha1::new(&key.0).mac(self.body().as_bytes());
        if !ct::eq(&want, &self.mac) {
            return Err(TicketError::Forged);
        }
        if now > self.expiry {
            return Err(TicketError::Expired);
        }
        if self.ip != ip {
            return Err(TicketError::Address);
        }
        Ok(())
    }
}

impl fmt::Display for Ticket {
    /// The peer line, `TICKET <user> <group> <name> <root> <ip> <expiry> <mac>`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TICKET {} {}", self.body(), hex(&self.mac))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "15268ab69a2950190ab6dfdd823b2fd4362d043d";

    fn key(n: u8) -> TicketKey {
        TicketKey::from_bytes([n; LEN])
    }

    fn ticket() -> Ticket {
        let root = ROOT.parse().unwrap();
        Ticket::mint(&key(1), "bob", "g1", "notes.txt", root, "127.0.0.1", 1000)
    }

    #[test]
    fn a_fresh_ticket_from_its_address_passes() {
        assert_eq!(ticket().verify(&key(1), 1000, "127.0.0.1"), Ok(()));
        let line = ticket().to_string();
        assert!(line.starts_with(&format!("TICKET bob g1 notes.txt {ROOT} 127.0.0.1 1000 ")));
        assert_eq!(
            parse_mac(line.rsplit(' ').next().unwrap()),
            Some(ticket().mac)
        );
    }

    #[test]
    fn every_altered_field_is_forged() {
        let good = ticket();
        let other: Digest = "dc3568154e339e0670a8a5d286ab2c810e9cb962".parse().unwrap();
        let altered = [
            Ticket {
                user: "eve".into(),
                ..good.clone()
            },
            Ticket {
                group: "g2".into(),
                ..good.clone()
            },
            Ticket {
                name: "other.txt".into(),
                ..good.clone()
            },
            Ticket {
                root: other,
                ..good.clone()
            },
            Ticket {
                ip: "127.0.0.2".into(),
                ..good.clone()
            },
            Ticket {
                expiry: 99999,
                ..good.clone()
            },
            Ticket {
                mac: [0; LEN],
                ..good.clone()
            },
        ];
        for t in altered {
            assert_eq!(t.verify(&key(1), 0, &t.ip), Err(TicketError::Forged), "{t}");
        }
        // Another holder's key (or the same holder after a new login) refuses it too.
        assert_eq!(
            good.verify(&key(2), 0, "127.0.0.1"),
            Err(TicketError::Forged)
        );
    }

    #[test]
    fn expired_and_other_address_have_their_own_errors() {
        assert_eq!(
            ticket().verify(&key(1), 1001, "127.0.0.1"),
            Err(TicketError::Expired)
        );
        assert_eq!(
            ticket().verify(&key(1), 10, "127.0.0.2"),
            Err(TicketError::Address)
        );
        assert_eq!(TicketError::Expired.code(), "ticket-expired");
    }

    #[test]
    fn macs_parse_as_lowercase_hex_only() {
        assert_eq!(parse_mac(&"ab".repeat(20)), Some([0xab; LEN]));
        assert_eq!(parse_mac(&"AB".repeat(20)), None);
        assert_eq!(parse_mac("abc"), None);
        assert_eq!(parse_mac(&"zz".repeat(20)), None);
    }
}
