//! Trackers as real processes in a cluster: `torrentphile tracker --cluster FILE --id N
//! --state DIR`, killed with SIGKILL during a stream of account mutations (`SALT` +
//! `CREATE-USER`, `LOGIN` + `PROOF`, `CREATE-GROUP`, `JOIN`) from several clients that follow
//! `ERR not-leader ADDR`. The checker holds every acknowledged mutation against each member's
//! `STATE` (its applied records, in order, read on the cluster port). Also: each start-up
//! mistake is refused with one line.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use torrentphile::auth::base64;
use torrentphile::auth::scram::{self, Credentials};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torrentphile"))
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "torrentphile-cluster-proc-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free port now (it may be taken again before the tracker binds it: rare, and the test
/// then fails at start, loudly).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Member {
    child: Child,
    cluster_addr: String,
    client_addr: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster key next to the cluster file `file`, made by `torrentphile cluster-key` the
/// first time it is asked for.
fn key_for(file: &Path) -> PathBuf {
    let key = file.with_file_name("cluster.key");
    if !key.exists() {
        let out = bin().arg("cluster-key").arg(&key).output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    key
}

fn start(file: &Path, id: u64, state: &Path, cluster_addr: &str) -> Member {
    let mut child = bin()
        .args(["tracker", "--port", "0", "--iterations", "1", "--cluster"])
        .arg(file)
        .args(["--id", &id.to_string(), "--state"])
        .arg(state)
        .arg("--cluster-key")
        .arg(key_for(file))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    let client_addr = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_string();
    Member {
        child,
        cluster_addr: cluster_addr.to_string(),
        client_addr,
    }
}

/// Send one line to a cluster port and read the reply.
fn ask(addr: &str, line: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).ok()?;
    Some(reply.trim_end().to_string())
}

/// One connection to a tracker; every error is an answer (`None`), never a panic.
struct Line(BufReader<TcpStream>);

impl Line {
    fn connect(addr: &str) -> Option<Line> {
        let s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
        Some(Line(BufReader::new(s)))
    }

    fn ask(&mut self, line: &str) -> Option<String> {
        self.0
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .ok()?;
        let mut reply = String::new();
        match self.0.read_line(&mut reply) {
            Ok(n) if n > 0 => Some(reply.trim_end().to_string()),
            _ => None,
        }
    }
}

/// A client that follows the leader: it tries the named leader first, then every tracker.
struct Session {
    trackers: Vec<String>,
    hint: Option<String>,
    line: Option<Line>,
    user: String,
}

impl Session {
    /// Connect to a tracker that takes `LOGIN` (the leader) and log in; false if none did.
    fn reconnect(&mut self) -> bool {
        self.line = None;
        let mut order: Vec<String> = self.hint.take().into_iter().collect();
        order.extend(self.trackers.iter().cloned());
        for addr in order {
            let Some(mut line) = Line::connect(&addr) else {
                continue;
            };
            match login(&mut line, &self.user) {
                Ok(()) => {
                    self.line = Some(line);
                    return true;
                }
                Err(Some(leader)) => self.hint = Some(leader),
                Err(None) => {}
            }
        }
        false
    }

    /// `Some(reply)` from the leader, retried until one answers (`None`: 30 s without one).
    fn mutate(&mut self, request: &str) -> Option<String> {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if self.line.is_none() && !self.reconnect() {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
            let reply = self.line.as_mut().and_then(|l| l.ask(request));
            match reply {
                Some(r) if r.starts_with("ERR not-leader ") || r.starts_with("ERR timeout") => {
                    self.hint = leader_of(&r);
                    self.line = None;
                }
                Some(r) => return Some(r),
                None => self.line = None,
            }
        }
        None
    }
}

/// The address in `ERR not-leader ADDR ...`, if one is named.
fn leader_of(reply: &str) -> Option<String> {
    let addr = reply.strip_prefix("ERR not-leader ")?.split(' ').next()?;
    (addr != "none:").then(|| addr.to_string())
}

/// `SALT` + `CREATE-USER` on `line`: the reply to the last one sent.
fn create_user(line: &mut Line, user: &str) -> Option<String> {
    let salt = line.ask(&format!("SALT {user}"))?;
    let Some(rest) = salt.strip_prefix("ACK salt=") else {
        return Some(salt);
    };
    let (salt, count) = rest.split_once(" i=")?;
    let salt = base64::decode(salt).ok()?;
    let cred = Credentials::derive(b"pw", &salt, count.parse().ok()?);
    line.ask(&format!(
        "CREATE-USER {user} {} {}",
        base64::encode(&cred.stored_key),
        base64::encode(&cred.server_key)
    ))
}

/// SCRAM login as `user` (password `pw`): `Err(Some(leader))` on a follower.
fn login(line: &mut Line, user: &str) -> Result<(), Option<String>> {
    let client = scram::Client::new(user, "processnonce").map_err(|_| None)?;
    let first = line
        .ask(&format!("LOGIN {}", client.first_message()))
        .ok_or(None)?;
    let Some(first) = first.strip_prefix("ACK ") else {
        return Err(leader_of(&first));
    };
    let (last, _) = client.respond(first, b"pw").map_err(|_| None)?;
    let reply = line.ask(&format!("PROOF {}", last.message())).ok_or(None)?;
    if reply.starts_with("ACK WELCOME ") {
        Ok(())
    } else {
        Err(leader_of(&reply))
    }
}

/// Create `user` on whichever tracker leads, following redirects; true once acknowledged.
fn create_anywhere(trackers: &[String], user: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    let mut hint: Option<String> = None;
    while Instant::now() < end {
        let mut order: Vec<String> = hint.take().into_iter().collect();
        order.extend(trackers.iter().cloned());
        for addr in order {
            let Some(mut line) = Line::connect(&addr) else {
                continue;
            };
            match create_user(&mut line, user) {
                Some(r) if r == format!("ACK created user {user}") => return true,
                Some(r) if r.starts_with("ERR exists") => return false,
                Some(r) => hint = leader_of(&r).or(hint),
                None => {}
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// This member's applied records (`order=` of `STATE`), or `None` if it does not answer.
fn applied(m: &Member) -> Option<(u64, String, Vec<String>)> {
    let state = ask(&m.cluster_addr, "STATE")?;
    let mut count = 0;
    let mut chain = String::new();
    let mut order = Vec::new();
    for word in state.strip_prefix("ACK ")?.split(' ') {
        if let Some(n) = word.strip_prefix("applied=") {
            count = n.parse().ok()?;
        } else if let Some(c) = word.strip_prefix("chain=") {
            chain = c.to_string();
        } else if let Some(o) = word.strip_prefix("order=") {
            order = o
                .split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
        }
    }
    Some((count, chain, order))
}

/// Is `acked` a subsequence of `order` (each acknowledged record present, in its order)?
fn in_order(acked: &[String], order: &[String]) -> bool {
    let mut at = 0;
    acked
        .iter()
        .all(|a| match order[at..].iter().position(|x| x == a) {
            Some(k) => {
                at += k + 1;
                true
            }
            None => false,
        })
}

/// Three trackers as processes, their cluster file in `dir`.
fn three(dir: &Path) -> Vec<Member> {
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let file = dir.join("cluster.txt");
    let text: String = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{} {a}\n", i + 1))
        .collect();
    std::fs::write(&file, text).unwrap();
    (0..3)
        .map(|i| {
            start(
                &file,
                i as u64 + 1,
                &dir.join(format!("s{}", i + 1)),
                &addrs[i],
            )
        })
        .collect()
}

/// The index of the member that says it leads, waiting up to 10 s for one.
fn leader(members: &[Option<Member>]) -> usize {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let found = members.iter().position(|m| {
            m.as_ref()
                .and_then(|m| ask(&m.cluster_addr, "STATUS"))
                .is_some_and(|s| s.contains(" role=leader "))
        });
        if let Some(i) = found {
            return i;
        }
        assert!(Instant::now() < end, "no leader in 10 s");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_the_leader_during_account_mutations_and_keep_every_acknowledged_one() {
    const CLIENTS: usize = 3;
    const ROUNDS: usize = 8;
    let dir = temp("kill");
    let members = three(&dir);
    let trackers: Vec<String> = members.iter().map(|m| m.client_addr.clone()).collect();
    let members = Arc::new(Mutex::new(
        members.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    // Each client: create its user, log in, then CREATE-GROUP and JOIN (the previous client's
    // group of the round before) in turn. Acknowledged records, per client, in order.
    let done = Arc::new(Mutex::new(0usize));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let trackers = trackers.clone();
            let done = done.clone();
            thread::spawn(move || {
                let user = format!("u{c}");
                let mut acked = Vec::new();
                if create_anywhere(&trackers, &user) {
                    acked.push(format!("CREATE-USER:{user}"));
                }
                let mut s = Session {
                    trackers,
                    hint: None,
                    line: None,
                    user: user.clone(),
                };
                for k in 0..ROUNDS {
                    let group = format!("g{c}x{k}");
                    if s.mutate(&format!("CREATE-GROUP {group}"))
                        == Some(format!("ACK created group {group}; you are its admin"))
                    {
                        acked.push(format!("CREATE-GROUP:{group}:{user}"));
                    }
                    if k > 0 {
                        let other = format!("g{}x{}", (c + 1) % CLIENTS, k - 1);
                        let reply = s.mutate(&format!("JOIN {other}"));
                        if reply
                            == Some(format!("ACK asked to join {other}; its admin must accept"))
                        {
                            acked.push(format!("REQUEST-JOIN:{other}:{user}"));
                        }
                    }
                    *done.lock().unwrap() += 1;
                }
                acked
            })
        })
        .collect();
    // SIGKILL the leader in the middle of the stream.
    let end = Instant::now() + Duration::from_secs(60);
    while *done.lock().unwrap() < CLIENTS * ROUNDS / 3 {
        assert!(Instant::now() < end, "the stream never got going");
        thread::sleep(Duration::from_millis(10));
    }
    let killed_at = Instant::now();
    {
        let mut ms = members.lock().unwrap();
        let old = leader(&ms);
        ms[old] = None; // SIGKILL (Child::kill) and wait
    }
    // A new leader within a few election timeouts (1 s each at most, by default).
    let live: Vec<String> = members
        .lock()
        .unwrap()
        .iter()
        .flatten()
        .map(|m| m.cluster_addr.clone())
        .collect();
    loop {
        if live
            .iter()
            .any(|a| ask(a, "STATUS").is_some_and(|s| s.contains(" role=leader ")))
        {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no new leader in 10 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let acked: Vec<Vec<String>> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    for (c, a) in acked.iter().enumerate() {
        // Most of each client's mutations are acknowledged (a few may be lost to the kill).
        assert!(a.len() >= ROUNDS, "client {c} got only {a:?} acknowledged");
    }
    // Every live member applies every acknowledged mutation, in each client's order, and the
    // live members agree on one history (equal counts give equal chains).
    let members = members.lock().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<_> = members
            .iter()
            .flatten()
            .map(|m| applied(m).unwrap_or_default())
            .collect();
        let all_in = views
            .iter()
            .all(|(_, _, order)| acked.iter().all(|a| in_order(a, order)));
        if all_in && views[0].0 == views[1].0 {
            assert_eq!(
                views[0].1, views[1].1,
                "two members applied different histories"
            );
            assert_eq!(views[0].2, views[1].2);
            break;
        }
        assert!(Instant::now() < end, "members {views:?}, acked {acked:?}");
        thread::sleep(Duration::from_millis(50));
    }
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A peer given the three trackers registers with the leader, logs in, and after a SIGKILL of
/// the leader re-registers with the new one, re-announces its files and logs in again with its
/// kept keys (no password): a group operation works, and the new leader lists its file.
#[test]
fn a_peer_follows_the_new_leader_and_logs_in_again_without_its_password() {
    use torrentphile::peer::{Peer, PeerConfig};
    use torrentphile::protocol::AccountRequest as R;
    let dir = temp("peer");
    let mut members: Vec<Option<Member>> = three(&dir).into_iter().map(Some).collect();
    let trackers: Vec<String> = members
        .iter()
        .flatten()
        .map(|m| m.client_addr.clone())
        .collect();
    let share = dir.join("alice");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::write(share.join("a.txt"), "held by alice\n").unwrap();
    let _ = leader(&members);
    let alice = Peer::start(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        PeerConfig::new(&trackers.join(","), &share),
    )
    .unwrap();
    let alice_id = alice.wait_registered(Duration::from_secs(20)).unwrap();
    alice.create_user("alice", "pw").unwrap();
    alice.login("alice", "pw").unwrap();
    alice
        .account(R::CreateGroup { group: "g1".into() })
        .unwrap();
    let old = leader(&members);
    members[old] = None; // SIGKILL
    // The next group operation goes to the new leader, under the login made again there.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match alice.account(R::CreateGroup { group: "g2".into() }) {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < end, "never acknowledged: {e}"),
        }
        thread::sleep(Duration::from_millis(50));
    }
    let new = leader(&members);
    let addr = members[new].as_ref().unwrap().client_addr.clone();
    let mut line = Line::connect(&addr).unwrap();
    assert_eq!(line.ask("GROUPS").as_deref(), Some("ACK groups: g1 g2"));
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if line.ask("WHOHAS a.txt") == Some(format!("PEERS {alice_id}")) {
            break;
        }
        assert!(Instant::now() < end, "the new leader never heard of a.txt");
        thread::sleep(Duration::from_millis(50));
    }
    drop(alice);
    drop(members);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn start_up_mistakes_are_refused_with_one_line() {
    let dir = temp("refuse");
    let file = dir.join("c.txt");
    let refuse = |contents: &str, id: &str, state: &str| -> String {
        std::fs::write(&file, contents).unwrap();
        let out = bin()
            .args(["tracker", "--port", "0", "--cluster"])
            .arg(&file)
            .args(["--id", id, "--state"])
            .arg(dir.join(state))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let f = file.display();
    let port = free_port();
    let good = format!("1 127.0.0.1:{port}\n2 127.0.0.1:{}\n", port + 1);
    assert_eq!(
        refuse(&good, "3", "a"),
        format!("torrentphile: --id 3 is not in {f} (its members are 1, 2)\n")
    );
    assert_eq!(
        refuse("1 127.0.0.1:9\n1 127.0.0.1:10\n", "1", "a"),
        format!("torrentphile: {f} line 2: duplicate id 1 (line 1 has it already)\n")
    );
    assert_eq!(
        refuse("1 127.0.0.1:9\nthree 127.0.0.1:10\n", "1", "a"),
        format!("torrentphile: {f} line 2: the id \"three\" must be a whole number from 1 up\n")
    );
    // A cluster key others may read, and one too short.
    let key = dir.join("open.key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let k = key.display();
    let refuse_key = |contents: &str| -> String {
        std::fs::write(&file, contents).unwrap();
        let out = bin()
            .args(["tracker", "--port", "0", "--cluster"])
            .arg(&file)
            .args(["--id", "1", "--state"])
            .arg(dir.join("k"))
            .arg("--cluster-key")
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(
        refuse_key(&good),
        format!(
            "torrentphile: the cluster key {k} is open to group or others (mode 0644): chmod 600 {k}\n"
        )
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&key, "0011\n").unwrap();
    assert_eq!(
        refuse_key(&good),
        format!(
            "torrentphile: the cluster key {k} holds 2 bytes; at least 16 are needed: make a new one with `torrentphile cluster-key {k}`\n"
        )
    );
    assert!(
        !dir.join("k").exists(),
        "nothing was written before the key was checked"
    );
    // A state folder written by member 1, given to member 2.
    std::fs::create_dir_all(dir.join("s/raft")).unwrap();
    let fingerprint_line = {
        // Let member 1 write its folder: start and kill it.
        std::fs::write(&file, &good).unwrap();
        let m = start(&file, 1, &dir.join("s"), "unused");
        drop(m);
        std::fs::read_to_string(dir.join("s/raft/member")).unwrap()
    };
    assert!(fingerprint_line.starts_with("member 1 cluster "));
    let err = refuse(&good, "2", "s");
    assert!(
        err.contains("the state folder belongs to another tracker or cluster; give each tracker its own --state folder"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `torrentphile sim --scenario failover` runs to its one result line and exits 0.
#[test]
fn the_failover_simulation_runs_to_its_result_line() {
    let dir = temp("sim");
    let out = bin()
        .args(["sim", "--scenario", "failover", "--root"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("failover: new leader "), "{last}");
    assert!(
        last.contains(" group ops kept, 5 peers refilled in "),
        "{last}"
    );
    assert!(stdout.contains("wins the election for term "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
