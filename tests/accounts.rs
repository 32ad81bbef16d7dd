//! Accounts and groups end to end: Mini-Torrent's story through the peer API, and every
//! security property attacked with raw lines (as with nc): strangers learn nothing from a
//! holder, each bad ticket has its own refusal, a member who left is shut out, failed logins
//! slow down that user only, and the state survives restarts, even SIGKILL mid-mutation.

mod common;

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{Client, Process, peer_with, temp_dir, tracker_with};
use torrentphile::auth::base64;
use torrentphile::auth::scram::{self, Credentials};
use torrentphile::peer::Peer;
use torrentphile::tracker::accounts::AccountsConfig;
use torrentphile::tracker::{Tracker, TrackerConfig};

fn config(state: Option<&Path>) -> TrackerConfig {
    TrackerConfig {
        accounts: AccountsConfig {
            state: state.map(Path::to_path_buf),
            iterations: 64,
            ..AccountsConfig::default()
        },
        ..TrackerConfig::default()
    }
}

fn peer(tracker: &Tracker, tag: &str) -> Peer {
    peer_with(tracker, &temp_dir(tag), |c| c.rescan_every = None)
}

/// `SALT` and `CREATE-USER` by hand; the reply to `CREATE-USER`.
fn raw_create(c: &mut Client, user: &str, password: &str) -> String {
    let salt = c.ask(&format!("SALT {user}"));
    let Some(rest) = salt.strip_prefix("ACK salt=") else {
        return salt;
    };
    let (salt, count) = rest.split_once(" i=").unwrap();
    let salt = base64::decode(salt).unwrap();
    let cred = Credentials::derive(password.as_bytes(), &salt, count.parse().unwrap());
    c.ask(&format!(
        "CREATE-USER {user} {} {}",
        base64::encode(&cred.stored_key),
        base64::encode(&cred.server_key)
    ))
}

/// SCRAM by hand; the reply to `PROOF` (or the first refusal).
fn raw_login(c: &mut Client, user: &str, password: &str) -> String {
    let client = scram::Client::new(user, "rawclientnonce").unwrap();
    let first = c.ask(&format!("LOGIN {}", client.first_message()));
    let Some(first) = first.strip_prefix("ACK ") else {
        return first;
    };
    let (last, _) = client.respond(first, password.as_bytes()).unwrap();
    c.ask(&format!("PROOF {}", last.message()))
}

/// A raw tracker connection logged in as a new user.
fn raw_user(tracker: &Tracker, user: &str) -> Client {
    let mut c = Client::connect(tracker.addr());
    assert_eq!(
        raw_create(&mut c, user, "pw"),
        format!("ACK created user {user}")
    );
    assert!(raw_login(&mut c, user, "pw").starts_with(&format!("ACK WELCOME {user} v=")));
    c
}

fn ok(result: Result<String, String>) -> String {
    result.unwrap_or_else(|e| panic!("refused: {e}"))
}

#[test]
fn mini_torrent_story_with_strangers_refused_at_the_tracker_and_the_holder() {
    let tracker = tracker_with(config(None));
    let (alice, bob, carol) = (
        peer(&tracker, "alice"),
        peer(&tracker, "bob"),
        peer(&tracker, "carol"),
    );
    let src = temp_dir("src").join("notes.txt");
    fs::write(&src, "group notes: meet at 10\n").unwrap();

    ok(alice.create_user("alice", "alice-pw"));
    assert_eq!(ok(alice.login("alice", "alice-pw")), "logged in as alice");
    let create =
        alice.account(torrentphile::protocol::AccountRequest::CreateGroup { group: "g1".into() });
    assert_eq!(ok(create), "created group g1; you are its admin");
    alice.upload_group(&src, "g1").unwrap();

    use torrentphile::protocol::AccountRequest as R;
    ok(bob.create_user("bob", "bob-pw"));
    ok(bob.login("bob", "bob-pw"));
    let files = bob.account(R::Files { group: "g1".into() });
    assert!(files.unwrap_err().starts_with("not-member "));
    assert_eq!(
        ok(bob.account(R::Join { group: "g1".into() })),
        "asked to join g1; its admin must accept"
    );
    assert_eq!(
        ok(alice.account(R::Requests { group: "g1".into() })),
        "requests: bob"
    );
    let accept = alice.account(R::Accept {
        group: "g1".into(),
        user: "bob".into(),
    });
    assert_eq!(ok(accept), "bob is now a member of g1");
    assert_eq!(
        ok(bob.account(R::Files { group: "g1".into() })),
        "files: notes.txt"
    );
    let dest = temp_dir("bob-dest");
    ok(bob.download_group("g1", "notes.txt", &dest));
    assert_eq!(
        fs::read(dest.join("notes.txt")).unwrap(),
        fs::read(&src).unwrap()
    );
    let shown: Vec<String> = bob.groups().downloads().iter().map(|d| d.line()).collect();
    assert_eq!(shown, ["[C] [g1] notes.txt"]);

    // Carol is no member: the tracker refuses her...
    ok(carol.create_user("carol", "carol-pw"));
    ok(carol.login("carol", "carol-pw"));
    let err = carol
        .download_group("g1", "notes.txt", &temp_dir("carol"))
        .unwrap_err();
    assert!(err.starts_with("not-member "), "{err}");
    // ... and so does alice's peer, when she talks to it directly: nothing, not even a size.
    let mut raw = Client::connect(alice.addr());
    for verb in ["GET", "HAVE", "HASHES"] {
        let reply = raw.ask(&format!("{verb} notes.txt"));
        assert_eq!(reply, "ERR not-found this peer does not hold notes.txt");
    }
    assert_eq!(
        raw.ask("PIECE notes.txt 0"),
        "ERR not-found this peer does not hold notes.txt"
    );
    let sha = "dc3568154e339e0670a8a5d286ab2c810e9cb962";
    let forged = format!("TICKET carol g1 notes.txt {sha} 127.0.0.1 99999999999 {sha}");
    assert!(raw.ask(&forged).starts_with("ERR ticket-forged "));
    assert_eq!(
        raw.ask("GET notes.txt"),
        "ERR not-found this peer does not hold notes.txt"
    );

    // One live session per user.
    let mut again = Client::connect(tracker.addr());
    assert!(raw_login(&mut again, "alice", "alice-pw").starts_with("ERR logged-in "));

    // Alice logs out: the tracker stops listing her for g1; back in, she is listed again.
    let alice_id = alice.wait_registered(Duration::from_secs(5)).unwrap();
    let bob_id = bob.wait_registered(Duration::from_secs(5)).unwrap();
    ok(alice.logout());
    let who = bob.ask_tracker(torrentphile::protocol::Request::Account(R::GWhoHas {
        group: "g1".into(),
        name: "notes.txt".into(),
    }));
    assert_eq!(ok(who), format!("PEERS {bob_id}"));
    let grant = bob.account(R::Grant {
        group: "g1".into(),
        name: "notes.txt".into(),
        holder: alice_id.clone(),
    });
    assert!(grant.unwrap_err().starts_with("not-found "));
    ok(alice.login("alice", "alice-pw"));
    let who = bob.ask_tracker(torrentphile::protocol::Request::Account(R::GWhoHas {
        group: "g1".into(),
        name: "notes.txt".into(),
    }));
    let mut want = [alice_id.clone(), bob_id.clone()];
    want.sort();
    assert_eq!(ok(who), format!("PEERS {}", want.join(" ")));
    let ticket = ok(bob.account(R::Grant {
        group: "g1".into(),
        name: "notes.txt".into(),
        holder: alice_id,
    }));
    let mut at_alice = Client::connect(alice.addr());
    assert_eq!(at_alice.ask(&ticket), "ACK ticket g1 notes.txt for bob");
    assert_eq!(at_alice.data("GET notes.txt"), fs::read(&src).unwrap());
}

#[test]
fn every_bad_ticket_is_refused_with_its_own_code() {
    use torrentphile::protocol::AccountRequest as R;
    let tracker = tracker_with(config(None));
    let alice = peer(&tracker, "t-alice");
    ok(alice.create_user("alice", "pw"));
    ok(alice.login("alice", "pw"));
    let dir = temp_dir("t-src");
    for (group, text) in [("g1", "one\n"), ("g2", "two\n")] {
        ok(alice.account(R::CreateGroup {
            group: group.into(),
        }));
        fs::create_dir_all(dir.join(group)).unwrap();
        let path = dir.join(group).join("notes.txt");
        fs::write(&path, text).unwrap();
        alice.upload_group(&path, group).unwrap();
    }
    fs::write(dir.join("x.txt"), "x\n").unwrap();
    alice.upload_group(&dir.join("x.txt"), "g1").unwrap();
    let alice_id = alice.wait_registered(Duration::from_secs(5)).unwrap();
    let mut dave = raw_user(&tracker, "dave");
    for group in ["g1", "g2"] {
        dave.ask(&format!("JOIN {group}"));
        ok(alice.account(R::Accept {
            group: group.into(),
            user: "dave".into(),
        }));
    }
    let grant = |dave: &mut Client, group: &str, name: &str| {
        let reply = dave.ask(&format!("GRANT {group} {name} {alice_id}"));
        reply
            .strip_prefix("ACK ")
            .unwrap_or_else(|| panic!("{reply}"))
            .to_string()
    };
    let at_alice = || Client::connect(alice.addr());

    // Each field altered: forged.
    let ticket = grant(&mut dave, "g1", "notes.txt");
    let altered = ticket.replacen("notes.txt", "x.txt", 1);
    assert!(at_alice().ask(&altered).starts_with("ERR ticket-forged "));
    let mut mac = ticket.clone();
    let last = mac.pop().unwrap();
    mac.push(if last == '0' { '1' } else { '0' });
    assert!(at_alice().ask(&mac).starts_with("ERR ticket-forged "));
    // Good for notes.txt, not for x.txt on the same connection.
    let mut c = at_alice();
    assert_eq!(c.ask(&ticket), "ACK ticket g1 notes.txt for dave");
    assert_eq!(c.data("GET notes.txt"), b"one\n");
    assert!(c.ask("GET x.txt").starts_with("ERR ticket-file "));
    assert!(c.ask("HAVE x.txt").starts_with("ERR ticket-file "));
    // A ticket for g2's notes.txt opens g2's, never g1's; once alice stops sharing it there,
    // the ticket opens nothing.
    let g2 = grant(&mut dave, "g2", "notes.txt");
    let mut c2 = at_alice();
    assert_eq!(c2.ask(&g2), "ACK ticket g2 notes.txt for dave");
    assert_eq!(c2.data("GET notes.txt"), b"two\n");
    ok(alice.stop_share_group("g2", "notes.txt"));
    assert!(at_alice().ask(&g2).starts_with("ERR ticket-group "));
    // Dave leaves g1: his fresh ticket is refused, and he gets no new one.
    let fresh = grant(&mut dave, "g1", "notes.txt");
    assert_eq!(dave.ask("LEAVE g1"), "ACK left g1");
    assert!(at_alice().ask(&fresh).starts_with("ERR ticket-revoked "));
    let reply = dave.ask(&format!("GRANT g1 notes.txt {alice_id}"));
    assert!(reply.starts_with("ERR not-member "), "{reply}");
}

#[test]
fn failed_logins_slow_down_that_user_while_others_log_in() {
    let tracker = tracker_with(config(None));
    let mut c = Client::connect(tracker.addr());
    raw_create(&mut c, "alice", "right");
    raw_create(&mut c, "bob", "bobs");
    for _ in 0..3 {
        assert!(raw_login(&mut c, "alice", "wrong").starts_with("ERR invalid-proof "));
    }
    let slowed = raw_login(&mut c, "alice", "right");
    assert!(
        slowed.starts_with("ERR slow-down too many failed logins"),
        "{slowed}"
    );
    let mut b = Client::connect(tracker.addr());
    assert!(raw_login(&mut b, "bob", "bobs").starts_with("ACK WELCOME bob "));
    // An unknown user runs the whole exchange and fails like a wrong password.
    let mut x = Client::connect(tracker.addr());
    assert!(raw_login(&mut x, "nobody", "x").starts_with("ERR invalid-proof "));
    // A captured PROOF cannot be replayed: the server's nonce is new each time.
    let client = scram::Client::new("bob", "samenonce").unwrap();
    assert_eq!(b.ask("LOGOUT"), "ACK logged out bob");
    let mut y = Client::connect(tracker.addr());
    let first = y.ask(&format!("LOGIN {}", client.first_message()));
    let (last, _) = client
        .respond(first.strip_prefix("ACK ").unwrap(), b"bobs")
        .unwrap();
    let proof = format!("PROOF {}", last.message());
    assert!(y.ask(&proof).starts_with("ACK WELCOME bob "));
    y.ask("LOGOUT");
    let mut z = Client::connect(tracker.addr());
    z.ask(&format!("LOGIN {}", client.first_message()));
    assert!(z.ask(&proof).starts_with("ERR bad-login "));
}

#[test]
fn accounts_survive_a_restart_and_peers_log_in_again_by_themselves() {
    use torrentphile::protocol::AccountRequest as R;
    let state = temp_dir("state");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        Tracker::start(listener, config(Some(&state))).unwrap()
    };
    let mut tracker = start();
    let alice = peer(&tracker, "r-alice");
    ok(alice.create_user("alice", "pw"));
    ok(alice.login("alice", "pw"));
    ok(alice.account(R::CreateGroup { group: "g1".into() }));
    let src = temp_dir("r-src").join("a.txt");
    fs::write(&src, "kept\n").unwrap();
    alice.upload_group(&src, "g1").unwrap();
    tracker.stop();
    drop(tracker);
    let tracker = start();
    alice.wait_registered(Duration::from_secs(10)).unwrap();
    // The peer logged in again with its kept keys and re-announced a.txt in g1.
    let mut bob = raw_user(&tracker, "bob");
    assert_eq!(bob.ask("GROUPS"), "ACK groups: g1");
    bob.ask("JOIN g1");
    common::eventually("alice logged in again", Duration::from_secs(10), || {
        alice
            .account(R::Accept {
                group: "g1".into(),
                user: "bob".into(),
            })
            .is_ok()
    });
    let alice_id = alice.wait_registered(Duration::from_secs(5)).unwrap();
    assert_eq!(bob.ask("GWHOHAS g1 a.txt"), format!("PEERS {alice_id}"));
}

/// SIGKILL the tracker binary at random moments while clients create users and groups;
/// after each restart, every acknowledged mutation is there.
#[test]
fn sigkill_during_concurrent_mutations_loses_nothing_acknowledged() {
    let state = temp_dir("kill");
    let state_arg = state.to_str().unwrap().to_string();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut rng = torrentphile::util::Rng::from_time();
    for round in 0..=8 {
        let args = [
            "tracker",
            "--port",
            "0",
            "--iterations",
            "1",
            "--state",
            &state_arg,
        ];
        let mut tracker = Process::start(&args);
        // Everything acknowledged before is still there.
        let mut check = Client::connect(tracker.addr);
        for user in acked.lock().unwrap().iter() {
            let reply = check.ask(&format!("SALT {user}"));
            assert!(
                reply.starts_with("ERR exists "),
                "round {round}: {user} lost: {reply}"
            );
        }
        drop(check);
        if round == 8 {
            break;
        }
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (addr, acked) = (tracker.addr, acked.clone());
                thread::spawn(move || {
                    for i in 0.. {
                        let user = format!("u{round}x{w}x{i}");
                        let created = std::panic::catch_unwind(|| {
                            let mut c = Client::connect(addr);
                            raw_create(&mut c, &user, "pw")
                        });
                        match created {
                            Ok(reply) if reply.starts_with("ACK created") => {
                                acked.lock().unwrap().push(user)
                            }
                            _ => return,
                        }
                    }
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(20 + rng.below(200) as u64));
        let _ = tracker.child.kill();
        let _ = tracker.child.wait();
        for w in workers {
            let _ = w.join();
        }
    }
    assert!(
        acked.lock().unwrap().len() > 8,
        "too few mutations to mean anything"
    );
}
