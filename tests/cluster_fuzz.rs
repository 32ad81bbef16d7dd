//! Bad input on the cluster port, like `tests/fuzz` does for the client verbs: random and
//! mutated lines as a first line (not `CLUSTER`: `STATUS`/`STATE` or one `ERR` a line), bad
//! `CLUSTER` handshakes and mutated `PROOF`s (an `ERR`, at most after the `ACK`, and the
//! connection closes), and, after a good handshake (the members share a cluster key and the
//! test holds it too), random and mutated Raft lines (`VOTE`, `APPEND` + `ENTRY` lines ...),
//! which close the connection at the first bad one. Also the pure parser on the same lines.
//! Afterwards the three members still elect, commit, and agree.
//!
//! One seed, printed at the start; replay with `TORRENTPHILE_FUZZ_SEED=<seed>`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use torrentphile::auth::accounts::Record;
use torrentphile::raft;
use torrentphile::tracker::TrackerConfig;
use torrentphile::tracker::cluster::{ClusterKey, Side, Transcript, nonce};
use torrentphile::tracker::member::{Member, bind_loopback};
use torrentphile::tracker::replica::SNAPSHOT_EVERY;
use torrentphile::util::Rng;

fn seed() -> u64 {
    let seed = std::env::var("TORRENTPHILE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Rng::from_time().next_u64());
    println!("cluster fuzz seed {seed} (TORRENTPHILE_FUZZ_SEED={seed} to replay)");
    seed
}

/// The handshake's lines (from a connector, then an acceptor's reply), to mutate.
const HANDSHAKES: &[&str] = &[
    "CLUSTER 0123456789abcdef 2 - 0123456789abcdef0123456789abcdef",
    "CLUSTER 0123456789abcdef 2 127.0.0.1:9 0123456789abcdef0123456789abcdef",
    "PROOF 0123456789abcdef0123456789abcdef01234567",
    "ACK cluster 1 0123456789abcdef0123456789abcdef 0123456789abcdef0123456789abcdef01234567",
];

/// Valid cluster lines of every kind, to mutate.
const SHAPES: &[&str] = &[
    "STATUS",
    "STATE",
    "PING",
    "PREVOTE 0 2 0 0",
    "VOTE 0 2 0 0",
    "PREVOTED 0 2 yes",
    "VOTED 0 2 no",
    "APPENDED 0 2 yes 0",
    "APPEND 0 2 0 0 0 1\nENTRY 0 hello",
    "APPEND 0 2 0 0 0 0",
    "SNAPSHOT 0 2 0 0 0 yes 4\naGk=",
    "SNAPSHOT 0 2 5 0 0 no 0\n",
    "SNAPPED 0 2 0 0",
];

fn mutate(rng: &mut Rng, line: &str) -> String {
    let mut bytes = line.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => {
                let alphabet = b"0123456789 -\n\r\t\0\xffAPPENDVOTE";
                bytes.insert(at, alphabet[rng.below(alphabet.len())]);
            }
            2 if at < bytes.len() => bytes[at] = rng.next_u64() as u8,
            3 => bytes
                .splice(at..at, b"99999999999999999999".iter().copied())
                .for_each(drop),
            _ => bytes.splice(at..at, b" ".iter().copied()).for_each(drop),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn random_line(rng: &mut Rng) -> String {
    let mut b = vec![0u8; rng.below(80)];
    rng.fill(&mut b);
    String::from_utf8_lossy(&b).replace('\n', " ")
}

/// Send `lines` on one connection after `first`, then read whatever comes back until the
/// server closes or goes quiet; never hangs (every read has a timeout).
fn poke(addr: &str, first: &str, lines: &[String]) -> String {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut text = format!("{first}\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let _ = s.write_all(text.as_bytes());
    let mut got = Vec::new();
    let _ = s.take(1 << 16).read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// Connect to `addr` (member 1) as member `from`, do the keyed handshake right, send `lines`,
/// and read what comes back until the member closes or goes quiet.
fn poke_as_member(addr: &str, fingerprint: &str, from: u64, key: &ClusterKey, lines: &[String]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let nonce_c = nonce().unwrap();
    let _ = s.write_all(format!("CLUSTER {fingerprint} {from} - {nonce_c}\n").as_bytes());
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut ack = String::new();
    let _ = r.read_line(&mut ack);
    let words: Vec<&str> = ack.split_whitespace().collect();
    let ["ACK", "cluster", "1", nonce_s, mac_s] = words[..] else {
        panic!("no keyed ACK: {ack:?}");
    };
    let t = Transcript {
        fingerprint,
        connector: from,
        acceptor: 1,
        nonce_c: &nonce_c,
        nonce_s,
    };
    key.check(Side::Acceptor, &t, mac_s).unwrap();
    let mut text = format!("PROOF {}\n", key.mac(Side::Connector, &t));
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    let _ = s.write_all(text.as_bytes());
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let mut rest = Vec::new();
    let _ = r.take(1 << 16).read_to_end(&mut rest);
}

#[test]
fn the_cluster_port_survives_bad_lines_and_the_members_still_agree() {
    let mut rng = Rng::new(seed());
    let (cps, clients, config) = bind_loopback(3).unwrap();
    let fingerprint = config.fingerprint();
    let mut key_bytes = [0u8; 32];
    rng.fill(&mut key_bytes);
    let hex: String = key_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = ClusterKey::parse(&hex, "(fuzz key)").unwrap();
    let addrs: Vec<String> = cps
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let root =
        std::env::temp_dir().join(format!("torrentphile-cluster-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let members: Vec<Member> = cps
        .into_iter()
        .zip(clients)
        .enumerate()
        .map(|(i, (cp, client))| {
            let state = root.join(format!("m{}", i + 1));
            Member::start_keyed(
                config.clone(),
                i as u64 + 1,
                &state,
                (cp, client),
                TrackerConfig::default(),
                SNAPSHOT_EVERY,
                Some(key.clone()),
            )
            .unwrap()
        })
        .collect();
    // The pure parser: never panics, on shapes, mutations and noise.
    for _ in 0..5_000 {
        let shape = SHAPES[rng.below(SHAPES.len())];
        let _ = raft::parse(&mutate(&mut rng, shape));
        let handshake = HANDSHAKES[rng.below(HANDSHAKES.len())];
        let _ = raft::parse(&mutate(&mut rng, handshake));
        let _ = raft::parse(&random_line(&mut rng));
    }
    for round in 0..60 {
        let addr = &addrs[rng.below(3)];
        match round % 3 {
            // Not a member: every line gets one reply line.
            0 => {
                let lines: Vec<String> = (0..5).map(|_| mutate(&mut rng, "STATE")).collect();
                let shape = SHAPES[rng.below(SHAPES.len())];
                let first = mutate(&mut rng, shape).replace('\n', " ");
                if first.starts_with("CLUSTER") {
                    continue;
                }
                let got = poke(addr, &first, &lines);
                for line in got.lines() {
                    assert!(
                        line.starts_with("ACK ") || line.starts_with("ERR "),
                        "round {round}: {line:?}"
                    );
                }
            }
            // A bad handshake: a hello with a mutated fingerprint, id or nonce, then maybe a
            // mutated PROOF and a VOTE with a huge term: an ERR (after the ACK at most), then
            // the connection closes and the VOTE is never read.
            1 => {
                let n = nonce().unwrap();
                let hello = match rng.below(3) {
                    0 => format!(
                        "CLUSTER {} {} -",
                        mutate(&mut rng, &fingerprint),
                        rng.below(5)
                    ),
                    1 => format!(
                        "CLUSTER {fingerprint} {} - {}",
                        2 + rng.below(2),
                        mutate(&mut rng, &n)
                    ),
                    _ => {
                        let shape = HANDSHAKES[rng.below(2)];
                        mutate(&mut rng, shape)
                    }
                };
                let proof = mutate(&mut rng, HANDSHAKES[2]).replace('\n', " ");
                let vote = "VOTE 1000000000 2 1000000000 1000000000".to_string();
                let got = poke(addr, &hello.replace('\n', " "), &[proof, vote]);
                let lines: Vec<&str> = got.lines().collect();
                let words: Vec<&str> = hello.split_whitespace().collect();
                if words.first() == Some(&"CLUSTER") && (4..=5).contains(&words.len()) {
                    // A hello: at most the ACK and the ERR; the VOTE is never answered.
                    assert!(lines.len() <= 2, "round {round}: {got:?}");
                    for (i, line) in lines.iter().enumerate() {
                        let ok = line.starts_with("ERR ") || (i == 0 && line.starts_with("ACK "));
                        assert!(ok, "round {round}: {got:?}");
                    }
                    if lines.len() == 2 {
                        assert!(
                            lines[1].starts_with("ERR invalid-proof "),
                            "round {round}: {got:?}"
                        );
                    }
                } else {
                    // Mutated into something else: a client's lines, one reply each.
                    for line in &lines {
                        assert!(
                            line.starts_with("ACK ") || line.starts_with("ERR "),
                            "round {round}: {got:?}"
                        );
                    }
                }
            }
            // A good handshake (as member 2 or 3, to member 1's port), then valid but stale
            // Raft lines (term 0 is older than any member's: nothing changes) and one line the
            // parser refuses, which closes the connection. (Whoever holds the key is trusted:
            // a forged message with a newer term would be obeyed.)
            _ => {
                let mut lines: Vec<String> = (0..rng.below(4))
                    .map(|_| SHAPES[3 + rng.below(SHAPES.len() - 3)].to_string())
                    .collect();
                let bad = loop {
                    let shape = SHAPES[3 + rng.below(SHAPES.len() - 3)];
                    let m = mutate(&mut rng, shape);
                    if raft::parse(&m).is_err() {
                        break m;
                    }
                };
                lines.push(bad);
                let from = 2 + rng.below(2);
                poke_as_member(&addrs[0], &fingerprint, from as u64, &key, &lines);
            }
        }
    }
    // Afterwards: a leader, a committed record, and every member applies it.
    let end = Instant::now() + Duration::from_secs(30);
    let record = Record::CreateGroup {
        group: "g".into(),
        admin: "nobody".into(),
    };
    loop {
        let leader = members.iter().find(|m| m.cluster().is_leader());
        // A record that no longer applies (no such admin) still commits, and is skipped the
        // same way everywhere: what counts is that it commits.
        if let Some(m) = leader
            && let Some(r) = m.replica().mutate(&record)
            && !matches!(r, Err(torrentphile::tracker::replica::Refusal::Cluster(_)))
        {
            break;
        }
        assert!(Instant::now() < end, "no commit after the fuzzing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<String> = addrs
            .iter()
            .map(|a| {
                let mut s = TcpStream::connect(a).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(b"STATE\n").unwrap();
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line).unwrap();
                line
            })
            .collect();
        if views.iter().all(|v| v.contains(" skipped=1 ")) && views.windows(2).all(|w| w[0] == w[1])
        {
            break;
        }
        assert!(Instant::now() < end, "members disagree: {views:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(members);
    let _ = std::fs::remove_dir_all(&root);
}
