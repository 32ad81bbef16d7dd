//! The holder lists' unit tests: the index against a plain map, windows, the loopback rule.

use super::*;

fn lo() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

fn lan() -> IpAddr {
    "192.168.1.7".parse().unwrap()
}

fn ask(h: &Holders, ip: IpAddr, me: Option<&str>, turn: u64) -> Vec<String> {
    let asker = Asker { ip, me, turn };
    h.pick("f", &asker)
        .unwrap()
        .iter()
        .map(|h| h.to_string())
        .collect()
}

#[test]
fn insert_promote_remove_keep_the_index_right() {
    let mut h = Holders::new();
    assert!(h.insert("a:1", false));
    assert!(h.insert("b:1", true));
    assert!(!h.insert("b:1", false), "a full holder stays full");
    assert!(!h.insert("a:1", true), "promoted, not new");
    assert!(h.insert("c:1", true));
    assert_eq!((h.full(), h.partial()), (3, 0));
    assert!(h.remove("a:1"));
    assert!(!h.remove("a:1"));
    // The swap moved c:1; removing it must find it.
    assert!(h.remove("c:1"));
    assert_eq!(ask(&h, lo(), None, 0), ["b:1"]);
    assert!(h.remove("b:1"));
    assert!(h.is_empty());
}

#[test]
fn the_index_past_a_few_holders_agrees_with_a_plain_map() {
    let mut h = Holders::new();
    let mut model = std::collections::BTreeMap::new();
    let id = |n: u32| format!("10.0.{}.{}:9000", n / 7, n % 7);
    // Grow past SCAN_UP_TO, shrink below it, grow again: every step checked.
    let steps = (0..40u32)
        .map(|n| (n, n % 3 != 0))
        .chain((0..40).filter(|n| n % 2 == 0).map(|n| (n, false)))
        .chain((0..40).step_by(3).map(|n| (n + 100, true)));
    for (i, (n, full)) in steps.enumerate() {
        if (40..60).contains(&i) {
            assert_eq!(h.remove(&id(n)), model.remove(&id(n)).is_some());
        } else {
            let new = !model.contains_key(&id(n));
            assert_eq!(h.insert(&id(n), full), new);
            *model.entry(id(n)).or_insert(full) |= full;
        }
        assert_eq!(h.len(), model.len());
        let want: Vec<Holder> = model
            .iter()
            .map(|(a, f)| Holder {
                addr: a.clone(),
                partial: !f,
            })
            .collect();
        let mut got = h.all();
        got.sort_by(|a, b| a.addr.cmp(&b.addr));
        assert_eq!(got, want, "step {i}");
        for a in model.keys() {
            assert!(h.find(a).is_some(), "{a} lost at step {i}");
        }
    }
}

#[test]
fn everyone_is_listed_while_they_fit_the_asker_too() {
    let mut h = Holders::new();
    h.insert("c:1", true);
    h.insert("a:1", false);
    h.insert("b:1", true);
    assert_eq!(ask(&h, lo(), Some("b:1"), 7), ["b:1", "c:1", "a:1-partial"]);
}

#[test]
fn loopback_holders_are_listed_to_loopback_askers_only() {
    let mut h = Holders::new();
    for id in ["127.0.0.1:9000", "192.168.1.5:9000", "[::1]:9001"] {
        h.insert(id, true);
    }
    h.insert("[::ffff:127.0.0.2]:9002", false);
    assert_eq!(ask(&h, lo(), None, 0).len(), 4);
    assert_eq!(ask(&h, lan(), None, 0), ["192.168.1.5:9000"]);
    assert!(reachable("192.168.1.5:9000", lan()) && reachable("[::1]:9001", lo()));
    assert!(!reachable("127.0.0.1:9000", lan()) && !reachable("[::1]:9001", lan()));
    h.remove("192.168.1.5:9000");
    let err = h
        .pick(
            "f",
            &Asker {
                ip: lan(),
                me: None,
                turn: 0,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, ErrCode::NotFound);
    assert!(err.message.contains("--advertise"), "{}", err.message);
    let none = Holders::new().pick(
        "f",
        &Asker {
            ip: lan(),
            me: None,
            turn: 0,
        },
    );
    assert_eq!(none.unwrap_err().message, "no peer holds f");
}

#[test]
fn past_the_cap_windows_cover_every_holder_and_keep_partials_in_view() {
    let mut h = Holders::new();
    for n in 0..180 {
        h.insert(&format!("10.0.0.{}:{}", n % 200, 1000 + n), true);
    }
    for n in 0..20 {
        h.insert(&format!("10.0.1.{n}:2000"), false);
    }
    let me = "10.0.0.5:1005";
    let mut seen = std::collections::HashSet::new();
    for turn in 0..4 {
        let got = ask(&h, lan(), Some(me), 1_000_000 + turn);
        assert_eq!(got.len(), PEERS_PER_REPLY);
        let partial = got.iter().filter(|g| g.ends_with("-partial")).count();
        assert_eq!(partial, PARTIAL_SHARE, "{got:?}");
        assert!(!got.iter().any(|g| g == me));
        // Full first, each kind sorted.
        let kinds: Vec<bool> = got.iter().map(|g| g.ends_with("-partial")).collect();
        assert!(kinds.windows(2).all(|w| w[0] <= w[1]));
        seen.extend(got);
    }
    // 179 others full in windows of 40: five asks; partial 20 in windows of 10: two.
    assert_eq!(seen.len(), 160 + 20);
    seen.extend(ask(&h, lan(), Some(me), 1_000_004));
    assert_eq!(seen.len(), 179 + 20);
    // Few full holders: the partial ones get the rest of the room.
    let mut h = Holders::new();
    h.insert("10.0.0.1:1", true);
    for n in 0..100 {
        h.insert(&format!("10.0.2.{n}:1"), false);
    }
    let got = ask(&h, lan(), None, 3);
    assert_eq!(got.len(), PEERS_PER_REPLY);
    assert_eq!(got[0], "10.0.0.1:1");
}

#[test]
fn every_holder_stays_in_its_run_through_inserts_promotions_and_removals() {
    // Loopback and LAN holders, full and partial, in a random order of changes, checked
    // against a plain map after every step: each run holds only its kind, the index (past
    // `SCAN_UP_TO`) finds everyone where they are, and each asker sees exactly what it can
    // reach (30 ids: a reply always fits them all).
    let id = |n: usize| match n % 3 {
        0 => format!("127.0.0.{}:{}", 1 + n % 5, 9000 + n),
        _ => format!("10.1.{}.{}:9000", n / 7, n % 7),
    };
    let mut h = Holders::new();
    let mut model = std::collections::BTreeMap::new();
    let mut rng = crate::util::Rng::new(7);
    for step in 0..600 {
        let n = rng.below(30);
        if rng.below(3) == 0 {
            assert_eq!(
                h.remove(&id(n)),
                model.remove(&id(n)).is_some(),
                "step {step}"
            );
        } else {
            let full = rng.below(2) == 0;
            assert_eq!(
                h.insert(&id(n), full),
                !model.contains_key(&id(n)),
                "step {step}"
            );
            *model.entry(id(n)).or_insert(full) |= full;
        }
        assert_eq!(h.len(), model.len());
        assert_eq!(h.full(), model.values().filter(|&&f| f).count());
        for (pos, held) in h.ids.as_slice().iter().enumerate() {
            let run = usize::from(!model[held.as_str()]) * 2 + usize::from(on_loopback(held));
            assert_eq!(h.run_of(pos), run, "{held} at step {step}");
            assert_eq!(h.find(held), Some(pos), "{held} at step {step}");
        }
        for ip in [lo(), lan()] {
            let mut want: Vec<(bool, String)> = model
                .iter()
                .filter(|(held, _)| reachable(held, ip))
                .map(|(held, &full)| (!full, held.clone()))
                .collect();
            want.sort();
            let want: Vec<String> = want
                .into_iter()
                .map(|(partial, addr)| Holder { addr, partial }.to_string())
                .collect();
            match h.pick(
                "f",
                &Asker {
                    ip,
                    me: None,
                    turn: step,
                },
            ) {
                Ok(got) => {
                    let got: Vec<String> = got.iter().map(|g| g.to_string()).collect();
                    assert_eq!(got, want, "{ip} at step {step}");
                }
                Err(e) => assert!(want.is_empty(), "{ip} at step {step}: {}", e.message),
            }
        }
    }
}
