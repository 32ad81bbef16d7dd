//! The other end of [`super::announce`]: the request a BitTorrent client sends to an HTTP
//! tracker, and the tracker's bencoded answer read back into a [`Reply`].
//!
//! Owns the client's half of the format. Never touches a socket (the caller writes the
//! request and reads the body, bounded by [`MAX_REPLY`]) and never decides whom to connect to.
//! Used to announce our peers to a tracker that is not ours, and by the tests to check that
//! what our tracker writes is what a client reads.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::announce::{Announce, AnnounceError, Event, Reply, SwarmPeer, percent_encode};
use crate::torrent::bencode::{self, Value};

/// The largest tracker answer read: 200 peers in a non-compact list fit in 20 KB.
pub const MAX_REPLY: usize = 64 * 1024;

/// The request head for `announce` to the tracker at `host` (as in the Host header, e.g.
/// `127.0.0.1:8000`), path `/announce`.
pub fn request(announce: &Announce, host: &str) -> Vec<u8> {
    let event = match announce.event {
        Event::Regular => "",
        Event::Started => "&event=started",
        Event::Completed => "&event=completed",
        Event::Stopped => "&event=stopped",
    };
    format!(
        "GET /announce?info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}\
         &compact={}&no_peer_id={}&numwant={}{event} HTTP/1.0\r\nHost: {host}\r\n\r\n",
        percent_encode(&announce.info_hash),
        percent_encode(&announce.peer_id),
        announce.port,
        announce.uploaded,
        announce.downloaded,
        announce.left,
        u8::from(announce.compact),
        u8::from(announce.no_peer_id),
        announce.numwant,
    )
    .into_bytes()
}

/// Read a tracker's bencoded answer (the HTTP body). A `failure reason` comes back as the
/// error, with the tracker's own text.
pub fn parse_reply(body: &[u8]) -> Result<Reply, AnnounceError> {
    let bad = |what: &str| AnnounceError(format!("tracker answer: {what}"));
    if body.len() > MAX_REPLY {
        return Err(bad(&format!("over {MAX_REPLY} bytes")));
    }
    let root = bencode::decode(body).map_err(|e| bad(&e.to_string()))?;
    if let Some(reason) = root.get(b"failure reason") {
        return Err(match reason {
            Value::Bytes(text) => AnnounceError(String::from_utf8_lossy(text).into_owned()),
            _ => bad("failure reason is not a string"),
        });
    }
    let count = |key: &str, required: bool| match root.get(key.as_bytes()) {
        Some(Value::Int(n)) => u32::try_from(*n).map_err(|_| bad(&format!("{key} {n}"))),
        None if !required => Ok(0),
        _ => Err(bad(&format!("{key} is missing or not an integer"))),
    };
    let mut peers = Vec::new();
    match root.get(b"peers") {
        Some(Value::Bytes(compact)) => peers.extend(compact_peers(compact, 6)?),
        Some(Value::List(list)) => {
            for entry in list {
                peers.push(dict_peer(entry).ok_or_else(|| bad("a peer entry is malformed"))?);
            }
        }
        _ => return Err(bad("peers is missing")),
    }
    if let Some(v6) = root.get(b"peers6") {
        match v6 {
            Value::Bytes(compact) => peers.extend(compact_peers(compact, 18)?),
            _ => return Err(bad("peers6 is not a string")),
        }
    }
    Ok(Reply {
        interval: count("interval", true)?,
        complete: count("complete", false)?,
        incomplete: count("incomplete", false)?,
        peers,
    })
}

/// BEP 23 / BEP 7: `width` is 6 (IPv4) or 18 (IPv6) bytes per peer, port last.
fn compact_peers(bytes: &[u8], width: usize) -> Result<Vec<SwarmPeer>, AnnounceError> {
    if !bytes.len().is_multiple_of(width) {
        return Err(AnnounceError(format!(
            "tracker answer: compact peers of {} bytes, not a multiple of {width}",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|c| {
            let (ip, port) = c.split_at(width - 2);
            let ip = match <[u8; 4]>::try_from(ip) {
                Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
                Err(_) => {
                    let mut v6 = [0u8; 16];
                    v6.copy_from_slice(ip);
                    IpAddr::V6(Ipv6Addr::from(v6))
                }
            };
            SwarmPeer {
                addr: SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])),
                peer_id: None,
            }
        })
        .collect())
}

/// BEP 3's long form: `{ip, port, peer id}`.
fn dict_peer(entry: &Value<'_>) -> Option<SwarmPeer> {
    let ip = match entry.get(b"ip")? {
        Value::Bytes(text) => std::str::from_utf8(text).ok()?.parse::<IpAddr>().ok()?,
        _ => return None,
    };
    let port = match entry.get(b"port")? {
        Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    let peer_id = match entry.get(b"peer id") {
        Some(Value::Bytes(id)) => Some(<[u8; 20]>::try_from(*id).ok()?),
        Some(_) => return None,
        None => None,
    };
    Some(SwarmPeer {
        addr: SocketAddr::new(ip, port),
        peer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::super::announce::{DEFAULT_NUMWANT, parse_request, reply_body};
    use super::*;

    fn sample() -> Announce {
        Announce {
            info_hash: [0x25; 20],
            peer_id: *b"-TP0001-\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xfe\xff",
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            compact: true,
            no_peer_id: false,
            event: Event::Completed,
            numwant: DEFAULT_NUMWANT,
        }
    }

    #[test]
    fn our_request_parses_back_exactly() {
        let a = sample();
        let head = request(&a, "127.0.0.1:8000");
        assert!(head.starts_with(b"GET /announce?info_hash=%25%25%25"));
        assert_eq!(parse_request(&head), Ok(a));
    }

    #[test]
    fn replies_read_back_compact_and_long() {
        let reply = Reply {
            interval: 900,
            complete: 3,
            incomplete: 4,
            peers: vec![
                SwarmPeer {
                    addr: "127.0.0.1:6881".parse().unwrap(),
                    peer_id: Some([b'p'; 20]),
                },
                SwarmPeer {
                    addr: "[::1]:7000".parse().unwrap(),
                    peer_id: Some([b'q'; 20]),
                },
            ],
        };
        let mut a = sample();
        let long = parse_reply(&reply_body(&reply, &{
            a.compact = false;
            a.clone()
        }));
        assert_eq!(long, Ok(reply.clone()));
        a.compact = true;
        let compact = parse_reply(&reply_body(&reply, &a)).unwrap();
        let ids: Vec<_> = compact.peers.iter().map(|p| p.peer_id).collect();
        assert_eq!(ids, vec![None, None]);
        let addrs: Vec<_> = compact.peers.iter().map(|p| p.addr).collect();
        let want: Vec<_> = reply.peers.iter().map(|p| p.addr).collect();
        assert_eq!(addrs, want);
    }

    #[test]
    fn failures_and_malformed_answers() {
        assert_eq!(
            parse_reply(b"d14:failure reason9:not todaye")
                .unwrap_err()
                .0,
            "not today"
        );
        assert_eq!(
            parse_reply(b"d8:intervali10e5:peers5:abcdee")
                .unwrap_err()
                .0,
            "tracker answer: compact peers of 5 bytes, not a multiple of 6"
        );
        assert!(parse_reply(b"d5:peers0:e").is_err(), "no interval");
        assert!(parse_reply(b"not bencode").is_err());
    }
}
