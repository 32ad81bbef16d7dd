//! The tracker's unit tests: `handle` driven with protocol lines as `nc` would send them,
//! on a registry and clients without any socket, asserting the exact reply lines.
//!
//! Tests only: nothing here may open a socket, sleep or read a clock.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::handle::{Client, Offer, handle};
use super::registry::Registry;
use super::standby::Standbys;
use crate::protocol::{Reply, parse_request};
use crate::server::Answer;

/// A registry and one client on it, talking lines as `nc` would, but without a socket.
struct World {
    registry: Mutex<Registry>,
}

impl World {
    fn new() -> World {
        World {
            registry: Mutex::new(Registry::new()),
        }
    }
    fn client(&self) -> Client {
        Client::new(IpAddr::V4(Ipv4Addr::LOCALHOST), Duration::from_secs(10))
    }
    /// The reply line to `line`, as the wire would carry it.
    fn ask(&self, client: &mut Client, line: &str) -> String {
        let request = parse_request(line.as_bytes()).expect("a well-formed line");
        match handle(&self.registry, client, request) {
            Answer::Line(reply) | Answer::Close(reply) => reply.to_string(),
            Answer::Data(bytes) => String::from_utf8(bytes).expect("text"),
            Answer::File(_) => panic!("the tracker never sends a file"),
        }
    }
}

const SHA: &str = "dc3568154e339e0670a8a5d286ab2c810e9cb962";

fn upload(name: &str, size: u64) -> String {
    format!("UPLOAD {name} {size} 1024 {SHA} {SHA}")
}

#[test]
fn register_upload_whohas_info() {
    let w = World::new();
    let mut a = w.client();
    assert_eq!(
        w.ask(&mut a, "REGISTER 9000"),
        "ACK 127.0.0.1:9000 heartbeat=10"
    );
    assert_eq!(w.ask(&mut a, &upload("f", 27)), format!("ACK f {SHA}"));
    let mut b = w.client();
    assert_eq!(w.ask(&mut b, "WHOHAS f"), "PEERS 127.0.0.1:9000");
    assert_eq!(
        w.ask(&mut b, "INFO f"),
        format!("FILE f 27 1024 {SHA} {SHA}")
    );
    assert_eq!(
        w.ask(&mut b, "LIST"),
        format!("f 27 {SHA} full=1 partial=0\n")
    );
    assert_eq!(w.ask(&mut b, "WHOHAS g"), "ERR not-found no peer holds g");
}

#[test]
fn loopback_holders_are_hidden_from_lan_askers_and_advertise_names_the_lan_address() {
    let w = World::new();
    let lan = |last: u8| {
        Client::new(
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, last)),
            Duration::from_secs(10),
        )
    };
    let (mut local, mut adv, mut asker) = (w.client(), w.client(), lan(7));
    assert_eq!(
        w.ask(&mut local, "REGISTER 9000"),
        "ACK 127.0.0.1:9000 heartbeat=10"
    );
    w.ask(&mut local, &upload("f", 27));
    assert!(
        w.ask(&mut asker, "WHOHAS f")
            .starts_with("ERR not-found f is held only at loopback")
    );
    assert_eq!(
        w.ask(&mut adv, "REGISTER 9001 192.168.1.5"),
        "ACK 192.168.1.5:9001 heartbeat=10"
    );
    w.ask(&mut adv, &upload("f", 27));
    assert_eq!(w.ask(&mut asker, "WHOHAS f"), "PEERS 192.168.1.5:9001");
    assert_eq!(
        w.ask(&mut local, "WHOHAS f"),
        "PEERS 127.0.0.1:9000 192.168.1.5:9001"
    );
    let mut liar = lan(8);
    assert!(
        w.ask(&mut liar, "REGISTER 9002 192.168.1.9")
            .starts_with("ERR bad-request this connection comes from 192.168.1.8")
    );
}

#[test]
fn the_standby_list_follows_the_loopback_rule() {
    let w = World::new();
    let list: Arc<Standbys> = Arc::default();
    let with_list = |mut c: Client, conn: u64| {
        c.standby = Some(Offer {
            list: list.clone(),
            conn,
            offered: None,
        });
        c
    };
    let mut local = with_list(w.client(), 1);
    let lan = Client::new(
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7)),
        Duration::from_secs(10),
    );
    let mut lan = with_list(lan, 2);
    w.ask(&mut local, "REGISTER 9000");
    assert_eq!(
        w.ask(&mut local, "STANDBY 7000"),
        "ACK standby 127.0.0.1:7000"
    );
    w.ask(&mut lan, "REGISTER 9001");
    // The LAN peer is not handed the tracker's loopback; the local one sees both.
    assert_eq!(
        w.ask(&mut lan, "STANDBY 7001"),
        "ACK standby 192.168.1.7:7001"
    );
    assert_eq!(
        w.ask(&mut local, "STANDBY 7000"),
        "ACK standby 127.0.0.1:7000 192.168.1.7:7001"
    );
}

#[test]
fn announcing_needs_a_registration() {
    let w = World::new();
    let mut c = w.client();
    for line in [upload("f", 27).as_str(), "PARTIAL f", "REMOVE f"] {
        assert_eq!(
            w.ask(&mut c, line),
            "ERR not-registered send REGISTER <port> first"
        );
    }
}

#[test]
fn other_content_under_a_shared_name_is_a_conflict() {
    let w = World::new();
    let (mut a, mut b) = (w.client(), w.client());
    w.ask(&mut a, "REGISTER 9000");
    w.ask(&mut b, "REGISTER 9001");
    w.ask(&mut a, &upload("f", 27));
    assert_eq!(
        w.ask(&mut b, &upload("f", 28)),
        format!("ERR conflict f is already shared as size 27, piece size 1024, sha1 {SHA}")
    );
}

#[test]
fn a_live_id_is_not_taken_over_and_re_registering_starts_afresh() {
    let w = World::new();
    let (mut a, mut b) = (w.client(), w.client());
    w.ask(&mut a, "REGISTER 9000");
    w.ask(&mut a, &upload("f", 27));
    assert!(
        w.ask(&mut b, "REGISTER 9000")
            .starts_with("ERR conflict 127.0.0.1:9000 is registered by another connection")
    );
    // The first connection registers again (as another port): its files are dropped.
    w.ask(&mut a, "REGISTER 9002");
    assert_eq!(w.ask(&mut b, "WHOHAS f"), "ERR not-found no peer holds f");
    assert_eq!(
        w.ask(&mut b, "REGISTER 9000"),
        "ACK 127.0.0.1:9000 heartbeat=10"
    );
}

#[test]
fn peer_verbs_help_and_bye() {
    let w = World::new();
    let mut c = w.client();
    assert_eq!(
        w.ask(&mut c, "GET f"),
        "ERR unknown-verb GET is a peer verb; this is the tracker (try HELP)"
    );
    assert_eq!(
        w.ask(&mut c, "HELP"),
        concat!(
            "ACK tracker verbs: REGISTER UPLOAD PARTIAL REMOVE WHOHAS INFO LIST STANDBY SALT ",
            "CREATE-USER LOGIN PROOF LOGOUT CREATE-GROUP JOIN LEAVE REQUESTS ACCEPT GROUPS ",
            "FILES GUPLOAD GREMOVE GWHOHAS GINFO GRANT VOUCH PING HELP BYE"
        )
    );
    let request = parse_request(b"BYE").expect("BYE parses");
    assert!(matches!(
        handle(&w.registry, &mut c, request),
        Answer::Close(Reply::Ack(text)) if text == "bye"
    ));
}
