//! The `groups` scenario: Mini-Torrent's story of users and groups, told on one machine with
//! every protocol line narrated (secrets redacted by the trace).
//!
//! alice creates a user and a group and uploads a file; bob asks to join and alice accepts;
//! bob downloads it; carol, no member, is refused by the tracker and by alice's peer when she
//! talks to it directly; alice logs out (bob gets no ticket for her, and a ticket minted
//! before is refused) and back in (a fresh ticket opens the file again). Each step checks
//! its outcome; any surprise ends the run with an error naming the step. This module only
//! drives public peer and tracker APIs; it never reaches into their state.

use std::fs;
use std::time::{Duration, Instant};

use super::{SimConfig, fresh_dir, listen, sha1_file};
use crate::conn::{Conn, Timeouts, Trace};
use crate::peer::{Peer, PeerConfig};
use crate::protocol::{AccountRequest as R, Reply, Request};
use crate::tracker::accounts::AccountsConfig;
use crate::tracker::{Tracker, TrackerConfig};

/// PBKDF2 iterations in the story: low so that it runs in a blink even in a debug build; a
/// real tracker uses `--iterations` (default 100000).
const STORY_ITERATIONS: u32 = 4096;

/// The file alice shares with her group.
const FILE: &str = "notes.txt";
const GROUP: &str = "g1";

/// Run the story; its one-line result.
pub fn run(config: &SimConfig) -> Result<String, String> {
    let say = |text: &str| {
        if config.narrate {
            crate::util::say(text);
        }
    };
    Trace::to_stdout(config.narrate);
    let result = story(config, &say);
    Trace::to_stdout(false);
    result
}

fn trace(config: &SimConfig, label: &str) -> Trace {
    if config.narrate {
        Trace::on(label)
    } else {
        Trace::off()
    }
}

fn step<T>(what: &str, result: Result<T, String>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

/// A refusal expected: the error text, or an error if it was accepted.
fn refused<T: std::fmt::Debug>(what: &str, result: Result<T, String>) -> Result<String, String> {
    match result {
        Err(e) => Ok(e),
        Ok(v) => Err(format!("{what} should have been refused, but got {v:?}")),
    }
}

fn story(config: &SimConfig, say: &dyn Fn(&str)) -> Result<String, String> {
    let started = Instant::now();
    let tracker_config = TrackerConfig {
        accounts: AccountsConfig {
            iterations: STORY_ITERATIONS,
            ..AccountsConfig::default()
        },
        ..TrackerConfig::one_host()
    };
    let tracker = Tracker::start(listen(config.tracker_port)?, tracker_config)
        .map_err(|e| format!("tracker: {e}"))?;
    let tracker_addr = tracker.addr().to_string();
    say(&format!(
        "== tracker listening on {tracker_addr} (accounts in memory, {STORY_ITERATIONS} PBKDF2 iterations)"
    ));
    let mut peers = Vec::new();
    for (i, who) in ["alice", "bob", "carol"].iter().enumerate() {
        let dir = config.root.join(format!("groups-{who}"));
        fresh_dir(&dir)?;
        let port = if config.base_port == 0 {
            0
        } else {
            config.base_port + i as u16
        };
        say(&format!(
            "== {who}'s peer starts with folder {} and registers",
            dir.display()
        ));
        let mut pc = PeerConfig::new(&tracker_addr, &dir);
        pc.label = who.to_string();
        pc.max_conns_per_addr = pc.max_conns;
        pc.trace = trace(config, who);
        pc.download.trace = pc.trace.clone();
        let peer = Peer::start(listen(port)?, pc)?;
        peer.wait_registered(Duration::from_secs(10))?;
        peers.push(peer);
    }
    let (alice, bob, carol) = (&peers[0], &peers[1], &peers[2]);
    let alice_id = alice.wait_registered(Duration::from_secs(10))?;

    say(
        "== alice creates her user (SALT, CREATE-USER: keys derived here, no password sent) and logs in (LOGIN, PROOF: SCRAM-SHA-1)",
    );
    step("alice create_user", alice.create_user("alice", "alice-pw"))?;
    step("alice login", alice.login("alice", "alice-pw"))?;
    say(&format!("== alice creates group {GROUP}; she is its admin"));
    step(
        "alice create_group",
        alice.account(R::CreateGroup {
            group: GROUP.into(),
        }),
    )?;
    // The original lives outside every peer's folder, so nobody shares it publicly.
    let src_dir = config.root.join("groups-src");
    fresh_dir(&src_dir)?;
    let src = src_dir.join(FILE);
    let text = "group notes: the exam is on Friday at 10, room B12\n";
    fs::write(&src, text).map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    say(&format!("== alice uploads {FILE} to {GROUP} (GUPLOAD)"));
    step("alice upload_file", alice.upload_group(&src, GROUP))?;

    say("== bob creates his user, logs in, and asks to join (JOIN)");
    step("bob create_user", bob.create_user("bob", "bob-pw"))?;
    step("bob login", bob.login("bob", "bob-pw"))?;
    let before = refused(
        "bob list_files before joining",
        bob.account(R::Files {
            group: GROUP.into(),
        }),
    )?;
    say(&format!(
        "== bob may not list {GROUP}'s files yet: {before}"
    ));
    step(
        "bob join_group",
        bob.account(R::Join {
            group: GROUP.into(),
        }),
    )?;
    say("== alice lists the requests (REQUESTS) and accepts bob (ACCEPT)");
    let requests = step(
        "alice list_requests",
        alice.account(R::Requests {
            group: GROUP.into(),
        }),
    )?;
    if requests != "requests: bob" {
        return Err(format!("alice's list_requests said {requests:?}"));
    }
    step(
        "alice accept_request",
        alice.account(R::Accept {
            group: GROUP.into(),
            user: "bob".into(),
        }),
    )?;
    say(&format!(
        "== bob downloads {FILE}: GINFO, GWHOHAS, GRANT (a ticket), TICKET at alice's peer, then the pieces"
    ));
    // Where bob wants his copy: not his peer's folder, which would share it publicly.
    let bob_dest = config.root.join("groups-bob-downloads");
    fresh_dir(&bob_dest)?;
    step(
        "bob download_file",
        bob.download_group(GROUP, FILE, &bob_dest),
    )?;
    let copy = fs::read(bob_dest.join(FILE)).map_err(|e| format!("bob's copy: {e}"))?;
    if copy != text.as_bytes() {
        return Err("bob's copy differs from alice's file".into());
    }
    say(&format!(
        "== bob's copy is byte-identical (sha1 {})",
        sha1_file(&bob_dest.join(FILE))?
    ));

    say("== carol creates her user and logs in; she is no member of g1");
    step("carol create_user", carol.create_user("carol", "carol-pw"))?;
    step("carol login", carol.login("carol", "carol-pw"))?;
    let at_tracker = refused(
        "carol's download",
        carol.download_group(GROUP, FILE, &bob_dest),
    )?;
    if !at_tracker.starts_with("not-member ") {
        return Err(format!("the tracker refused carol with {at_tracker:?}"));
    }
    say(&format!("== the tracker refuses carol: {at_tracker}"));
    say("== carol connects to alice's peer directly (as with nc) and asks for the file");
    let mut raw = connect(&alice_id, trace(config, "carol (raw)"))?;
    for line in [
        format!("GET {FILE}"),
        format!("HASHES {FILE}"),
        format!("PIECE {FILE} 0"),
    ] {
        let reply = ask(&mut raw, &line)?;
        if !reply.starts_with("ERR ") {
            return Err(format!("alice's peer answered carol's {line} with {reply}"));
        }
    }
    let zero = "0".repeat(40);
    let forged = format!("TICKET carol {GROUP} {FILE} {zero} 127.0.0.1 99999999999 {zero}");
    let reply = ask(&mut raw, &forged)?;
    if !reply.starts_with("ERR ticket-forged ") {
        return Err(format!(
            "alice's peer answered a forged ticket with {reply}"
        ));
    }
    say("== alice's peer refuses carol: no ticket, nothing served, not even the size");
    drop(raw);

    let ticket = step("bob's ticket before alice logs out", grant(bob, &alice_id))?;
    say("== alice logs out (LOGOUT): the tracker stops listing her, her peer stops serving g1");
    step("alice logout", alice.logout())?;
    let holders = step("bob's GWHOHAS", gwhohas(bob))?;
    if holders.contains(&alice_id) {
        return Err(format!("alice is still listed after logout: {holders}"));
    }
    let no_ticket = refused("a ticket for alice after her logout", grant(bob, &alice_id))?;
    say(&format!(
        "== bob gets no ticket for alice's peer: {no_ticket}"
    ));
    let mut at_alice = connect(&alice_id, trace(config, "bob (fetch)"))?;
    let reply = ask(&mut at_alice, &ticket)?;
    if !reply.starts_with("ERR ") {
        return Err(format!(
            "alice's peer took an old ticket after logout: {reply}"
        ));
    }
    say("== alice's peer refuses even the ticket bob got before: bob can no longer fetch from her");
    drop(at_alice);

    say("== alice logs in again: she is listed and serves again");
    step("alice login again", alice.login("alice", "alice-pw"))?;
    let holders = step("bob's GWHOHAS", gwhohas(bob))?;
    if !holders.contains(&alice_id) {
        return Err(format!("alice is not listed after login: {holders}"));
    }
    let ticket = step("bob's ticket after alice's login", grant(bob, &alice_id))?;
    let mut at_alice = connect(&alice_id, trace(config, "bob (fetch)"))?;
    let reply = ask(&mut at_alice, &ticket)?;
    if !reply.starts_with("ACK ") {
        return Err(format!("alice's peer refused a fresh ticket: {reply}"));
    }
    let bytes = at_alice
        .request_data(
            &Request::Get {
                name: FILE.into(),
                range: None,
            },
            1 << 20,
        )
        .map_err(|e| format!("GET at alice: {e}"))?;
    if bytes != text.as_bytes() {
        return Err("alice served other bytes after logging in again".into());
    }
    say("== bob fetches from alice again: same bytes");
    drop(at_alice);
    drop(peers);
    drop(tracker);
    Ok(format!(
        "groups: alice created {GROUP} and shared {FILE}; bob joined and downloaded it; carol refused by the tracker and by alice's peer; alice logged out (no fetch) and in (fetch again); {:.2}s",
        started.elapsed().as_secs_f64()
    ))
}

fn connect(addr: &str, trace: Trace) -> Result<Conn, String> {
    Conn::connect(addr, Timeouts::default(), trace).map_err(|e| format!("connect {addr}: {e}"))
}

/// Send one line, read one reply line.
fn ask(conn: &mut Conn, line: &str) -> Result<String, String> {
    conn.send_line(line).map_err(|e| e.to_string())?;
    let reply: Reply = conn.read_reply().map_err(|e| e.to_string())?;
    Ok(reply.to_string())
}

fn grant(bob: &Peer, holder: &str) -> Result<String, String> {
    bob.account(R::Grant {
        group: GROUP.into(),
        name: FILE.into(),
        holder: holder.into(),
    })
}

fn gwhohas(bob: &Peer) -> Result<String, String> {
    bob.ask_tracker(Request::Account(R::GWhoHas {
        group: GROUP.into(),
        name: FILE.into(),
    }))
}
