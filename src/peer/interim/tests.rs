//! The interim tracker's unit tests: the election rule without sockets, the list, the gate.

use super::*;

fn list(addrs: &[&str]) -> Vec<String> {
    addrs.iter().map(|a| a.to_string()).collect()
}

#[test]
fn the_lowest_live_address_wins_and_is_the_same_from_any_order() {
    let a = list(&["127.0.0.1:9000", "127.0.0.1:800", "127.0.0.2:1", "[::1]:5"]);
    let mut b = a.clone();
    b.reverse();
    let dead = ["127.0.0.1:800"];
    let alive = |x: &str| !dead.contains(&x);
    assert_eq!(elect(&a, alive), Some("127.0.0.1:9000".into()));
    assert_eq!(elect(&b, alive), Some("127.0.0.1:9000".into()));
    // Numeric, not text, order: 800 < 9000; IPv4 before IPv6.
    assert_eq!(elect(&a, |_| true), Some("127.0.0.1:800".into()));
    assert_eq!(
        elect(&list(&["[::1]:1", "10.0.0.9:9"]), |_| true),
        Some("10.0.0.9:9".into())
    );
}

#[test]
fn asks_lowest_first_once_each_and_stops_at_the_first_answer() {
    let a = list(&[
        "127.0.0.1:3",
        "bogus",
        "127.0.0.1:1",
        "127.0.0.1:2",
        "127.0.0.1:1",
    ]);
    let mut asked = Vec::new();
    let choice = elect(&a, |x| {
        asked.push(x.to_string());
        x == "127.0.0.1:2"
    });
    assert_eq!(choice, Some("127.0.0.1:2".into()));
    assert_eq!(asked, list(&["127.0.0.1:1", "127.0.0.1:2"]));
}

#[test]
fn nobody_alive_or_no_list_elects_nobody() {
    assert_eq!(elect(&[], |_| true), None);
    assert_eq!(elect(&list(&["127.0.0.1:1"]), |_| false), None);
}

#[test]
fn the_list_is_read_from_the_standby_reply_only() {
    let reply = Reply::Ack("standby 127.0.0.1:5 [::1]:6 junk".into());
    assert_eq!(parse_list(&reply), Some(list(&["127.0.0.1:5", "[::1]:6"])));
    assert_eq!(parse_list(&Reply::Ack("127.0.0.1:5".into())), None);
    assert_eq!(parse_list(&Reply::Pong), None);
}

#[test]
fn a_standby_bound_to_every_address_is_named_as_the_tracker_lists_its_peer() {
    let any: SocketAddr = "0.0.0.0:7000".parse().expect("addr");
    let lan: IpAddr = "10.0.0.5".parse().expect("ip");
    assert_eq!(
        listed_standby(Some(lan), any).as_deref(),
        Some("10.0.0.5:7000")
    );
    assert_eq!(listed_standby(None, any), None);
    let lo: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
    assert_eq!(listed_standby(None, lo).as_deref(), Some("127.0.0.1:7000"));
    // With it, a LAN peer no longer sorts itself first: 10.0.0.5 is above 10.0.0.2.
    let list = vec!["10.0.0.2:7000".to_string()];
    let mut candidates = list.clone();
    candidates.extend(listed_standby(Some(lan), any));
    assert_eq!(
        elect(&candidates, |_| true).as_deref(),
        Some("10.0.0.2:7000")
    );
}

#[test]
fn a_dormant_standby_points_elsewhere_until_elected() {
    let s = Standby::start(IpAddr::from([127, 0, 0, 1]), Trace::off(), "t").expect("standby");
    let (probe, register) = (
        Request::WhoHas {
            name: "interim-probe".into(),
        },
        Request::Register { port: 9000 },
    );
    let refusal = s.shared.check(&register).expect_err("dormant");
    assert_eq!(
        refusal.into_reply().to_string(),
        "ERR not-leader none: this peer runs no interim tracker now"
    );
    s.point_to(Some("127.0.0.1:8000"));
    assert!(s.shared.check(&register).is_err());
    // Its own peer lost every tracker too: a probe does not open it, a REGISTER (another
    // peer elected it) does.
    s.point_to(None);
    s.set_trackers_gone(true);
    assert!(s.shared.check(&probe).is_err());
    assert!(!s.is_interim());
    assert!(s.shared.check(&register).is_ok());
    assert!(s.is_interim());
    assert!(s.point_to(Some("127.0.0.1:8000")), "it was the interim");
    assert!(!s.is_interim());
    assert!(answers_ping(&s.addr().to_string(), &Trace::off()));
}
