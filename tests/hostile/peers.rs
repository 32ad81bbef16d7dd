//! How many holders one `PEERS` reply lists, and which (issue 14: a popular or poisoned file
//! must not make a reply unbounded, and an honest holder among many must still be listed).
//! `WHOHAS` over real connections from 127.0.0.0/8; `GWHOHAS`'s loopback rule through the
//! accounts service's `handle`, with a LAN address as the asker and no socket at all.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpStream};

use super::bind::{connect_from, lo};
use crate::common::*;
use torrentphile::auth::base64;
use torrentphile::auth::scram::{self, Credentials};
use torrentphile::protocol::{MAX_REPLY_LINE, Request, parse_request};
use torrentphile::tracker::accounts::{AccountsConfig, Auth, AuthConn};
use torrentphile::tracker::holders::{PARTIAL_SHARE, PEERS_PER_REPLY};
use torrentphile::tracker::{Limits, TrackerConfig};

const SHA: &str = "0a4d55a8d778e5022fab701977c5d840bbc486d0";

/// A raw line connection from `127.0.0.n`.
struct Raw(TcpStream, BufReader<TcpStream>);

impl Raw {
    fn from(n: u8, addr: std::net::SocketAddr) -> Raw {
        let s = connect_from(lo(n), addr).unwrap();
        s.set_read_timeout(Some(HANG)).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        Raw(s, r)
    }

    fn ask(&mut self, line: &str) -> String {
        self.0.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        self.1.read_line(&mut reply).unwrap();
        assert!(reply.len() <= MAX_REPLY_LINE, "{} bytes", reply.len());
        reply.trim_end().to_string()
    }
}

fn words(reply: &str) -> Vec<String> {
    let rest = reply
        .strip_prefix("PEERS ")
        .unwrap_or_else(|| panic!("{reply}"));
    rest.split(' ').map(String::from).collect()
}

#[test]
fn two_hundred_holders_are_listed_fifty_at_a_time_and_every_one_within_five_asks() {
    let tracker = tracker_with(TrackerConfig {
        max_conns_per_addr: 1000,
        limits: Limits {
            peers_per_addr: 1000,
            ..Limits::default()
        },
        ..TrackerConfig::default()
    });
    let addr = tracker.addr();
    // 180 full holders and 20 partial ones, from ten loopback addresses.
    let mut holders = Vec::new();
    let mut all = HashSet::new();
    for n in 0..200u16 {
        let mut c = Raw::from(2 + (n % 10) as u8, addr);
        let ack = c.ask(&format!("REGISTER {}", 20_000 + n));
        let id = ack.strip_prefix("ACK ").unwrap().split(' ').next().unwrap();
        let line = if n < 180 {
            format!("UPLOAD popular.bin 1 1024 {SHA} {SHA}")
        } else {
            "PARTIAL popular.bin".to_string()
        };
        assert!(c.ask(&line).starts_with("ACK popular.bin"), "{line}");
        all.insert(if n < 180 {
            id.to_string()
        } else {
            format!("{id}-partial")
        });
        holders.push(c);
    }
    assert_eq!(
        tracker.registry().who_has("popular.bin").unwrap().len(),
        200
    );

    // An asker that is not a holder: 40 full and 10 partial per reply, so 180 / 40 asks
    // (five) cover the full holders and two the partial ones.
    let mut asker = Raw::from(20, addr);
    let mut seen = HashSet::new();
    for _ in 0..5 {
        let reply = asker.ask("WHOHAS popular.bin");
        let listed = words(&reply);
        assert_eq!(listed.len(), PEERS_PER_REPLY, "{reply}");
        let partial = listed.iter().filter(|w| w.ends_with("-partial")).count();
        assert_eq!(partial, PARTIAL_SHARE, "{reply}");
        // Full holders first, then partial ones.
        assert!(
            listed[..listed.len() - partial]
                .iter()
                .all(|w| !w.ends_with("-partial"))
        );
        for w in &listed {
            assert!(all.contains(w), "{w} is no holder");
        }
        seen.extend(listed);
    }
    assert_eq!(seen, all, "five asks did not list every holder");

    // A holder asking is never listed to itself once the reply is capped.
    let me = holders[7].ask("REGISTER 20007");
    assert!(me.starts_with("ACK"), "{me}");
    holders[7].ask(&format!("UPLOAD popular.bin 1 1024 {SHA} {SHA}"));
    let id = me
        .strip_prefix("ACK ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let mut seen = HashSet::new();
    for _ in 0..6 {
        let listed = words(&holders[7].ask("WHOHAS popular.bin"));
        assert!(listed.len() <= PEERS_PER_REPLY);
        assert!(!listed.contains(&id), "{id} was listed to itself");
        seen.extend(listed);
    }
    assert_eq!(seen.len(), 199, "six asks did not list every other holder");
    // One line of ~25 bytes per holder: far under the reply limit.
    let line = asker.ask("WHOHAS popular.bin");
    assert!(line.len() < PEERS_PER_REPLY * 32, "{}", line.len());
}

/// A logged-in account connection of the accounts service, talked to without a socket.
struct Account<'a> {
    auth: &'a Auth,
    conn: AuthConn,
    ip: IpAddr,
}

impl Account<'_> {
    /// The reply to `line` from a connection registered as `peer`.
    fn ask_as(&mut self, peer: Option<&str>, line: &str) -> String {
        let Ok(Request::Account(request)) = parse_request(line.as_bytes()) else {
            panic!("not an account line: {line}");
        };
        self.auth
            .handle(&mut self.conn, self.ip, peer, request)
            .to_string()
    }

    fn ask(&mut self, line: &str) -> String {
        self.ask_as(None, line)
    }
}

fn account<'a>(auth: &'a Auth, serial: u64, ip: &str, user: &str) -> Account<'a> {
    let mut a = Account {
        auth,
        conn: AuthConn::new(serial),
        ip: ip.parse().unwrap(),
    };
    let salt = a.ask(&format!("SALT {user}"));
    let rest = salt.strip_prefix("ACK salt=").expect(&salt);
    let (salt, count) = rest.split_once(" i=").unwrap();
    let salt = base64::decode(salt).unwrap();
    let cred = Credentials::derive(b"pw", &salt, count.parse().unwrap());
    let created = a.ask(&format!(
        "CREATE-USER {user} {} {}",
        base64::encode(&cred.stored_key),
        base64::encode(&cred.server_key)
    ));
    assert!(created.starts_with("ACK created"), "{created}");
    let client = scram::Client::new(user, "peersnonce").unwrap();
    let first = a.ask(&format!("LOGIN {}", client.first_message()));
    let (last, _) = client
        .respond(first.strip_prefix("ACK ").expect(&first), b"pw")
        .unwrap();
    let welcome = a.ask(&format!("PROOF {}", last.message()));
    assert!(welcome.starts_with("ACK WELCOME"), "{welcome}");
    a
}

#[test]
fn gwhohas_lists_loopback_holders_to_loopback_askers_only_and_caps_its_reply() {
    let (auth, _) = Auth::open(AccountsConfig {
        iterations: 64,
        test_seed: Some(14),
        ..AccountsConfig::default()
    })
    .unwrap();
    let mut alice = account(&auth, 1, "127.0.0.1", "alice");
    let mut bob = account(&auth, 2, "192.168.1.7", "bob");
    let mut carol = account(&auth, 3, "127.0.0.1", "carol");
    assert!(alice.ask("CREATE-GROUP g1").starts_with("ACK"));
    for (who, name) in [(&mut bob, "bob"), (&mut carol, "carol")] {
        assert!(who.ask("JOIN g1").starts_with("ACK"));
        assert!(alice.ask(&format!("ACCEPT g1 {name}")).starts_with("ACK"));
    }
    let gupload = format!("GUPLOAD g1 notes.txt 13 1024 {SHA} {SHA}");
    // Alice's peer on the tracker's machine registered over loopback.
    assert!(
        alice
            .ask_as(Some("127.0.0.1:9000"), &gupload)
            .starts_with("ACK")
    );
    let to_bob = bob.ask("GWHOHAS g1 notes.txt");
    assert!(
        to_bob.starts_with("ERR not-found notes.txt is held only at loopback")
            && to_bob.contains("--advertise"),
        "{to_bob}"
    );
    assert_eq!(carol.ask("GWHOHAS g1 notes.txt"), "PEERS 127.0.0.1:9000");
    // With --advertise the same peer is listed by its LAN address, to both.
    assert!(
        alice
            .ask_as(Some("192.168.1.5:9000"), &gupload)
            .starts_with("ACK")
    );
    assert_eq!(bob.ask("GWHOHAS g1 notes.txt"), "PEERS 192.168.1.5:9000");
    assert_eq!(
        carol.ask("GWHOHAS g1 notes.txt"),
        "PEERS 127.0.0.1:9000 192.168.1.5:9000"
    );
    // Sixty holders: fifty a reply, every one within two asks.
    for n in 0..60 {
        let holder = format!("192.168.2.{n}:9000");
        assert!(alice.ask_as(Some(&holder), &gupload).starts_with("ACK"));
    }
    let mut seen = HashSet::new();
    for _ in 0..2 {
        let listed = words(&bob.ask("GWHOHAS g1 notes.txt"));
        assert_eq!(listed.len(), PEERS_PER_REPLY);
        assert!(listed.iter().all(|w| !w.starts_with("127.")));
        seen.extend(listed);
    }
    assert_eq!(seen.len(), 61);
}
