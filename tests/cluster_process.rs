//! Trackers as real processes in a cluster: `torrentphile tracker --cluster FILE --id N
//! --state DIR`, killed with SIGKILL. Commands are proposed with the `NOTE` test hook on the
//! cluster port (`TORRENTPHILE_TEST_NOTES=1`), and every member prints `applied <text>` for
//! each committed one, which the checker holds against what was acknowledged. Also: each
//! start-up mistake is refused with one line.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
    applied: Arc<Mutex<Vec<String>>>,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(file: &Path, id: u64, state: &Path, cluster_addr: &str) -> Member {
    let mut child = bin()
        .args(["tracker", "--port", "0", "--cluster"])
        .arg(file)
        .args(["--id", &id.to_string(), "--state"])
        .arg(state)
        .env("TORRENTPHILE_TEST_NOTES", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("listening on "), "{first:?}");
    let applied = Arc::new(Mutex::new(Vec::new()));
    let sink = applied.clone();
    thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Some(text) = line.strip_prefix("applied ") {
                sink.lock().unwrap().push(text.to_string());
            }
        }
    });
    Member {
        child,
        cluster_addr: cluster_addr.to_string(),
        applied,
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

/// Propose `text` on whichever member acknowledges it, within 30 s. Returns the member.
fn note(members: &[Option<Member>], text: &str) -> usize {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, m) in members.iter().enumerate() {
            let Some(m) = m else { continue };
            if ask(&m.cluster_addr, &format!("NOTE {text}")).as_deref() == Some("ACK committed") {
                return i;
            }
        }
        assert!(Instant::now() < end, "{text} was never acknowledged");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkill_the_leader_of_three_processes_and_keep_every_acknowledged_note() {
    let dir = temp("kill");
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
    let mut members: Vec<Option<Member>> = (0..3)
        .map(|i| {
            Some(start(
                &file,
                i as u64 + 1,
                &dir.join(format!("s{}", i + 1)),
                &addrs[i],
            ))
        })
        .collect();
    let mut acked = Vec::new();
    let mut leader = 0;
    for i in 0..10 {
        let text = format!("n{i}");
        leader = note(&members, &text);
        acked.push(text);
    }
    members[leader] = None; // SIGKILL
    for i in 10..20 {
        let text = format!("n{i}");
        note(&members, &text);
        acked.push(text);
    }
    // Every live member applies every acknowledged note, in order, and nothing else (each
    // note was acknowledged once; a retried one may appear twice, never out of order).
    let end = Instant::now() + Duration::from_secs(30);
    for m in members.iter().flatten() {
        loop {
            let applied = m.applied.lock().unwrap().clone();
            let mut at = 0;
            let in_order = acked
                .iter()
                .all(|a| match applied[at..].iter().position(|x| x == a) {
                    Some(k) => {
                        at += k + 1;
                        true
                    }
                    None => false,
                });
            if in_order {
                break;
            }
            assert!(
                Instant::now() < end,
                "a member applied {applied:?}, acked {acked:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    // And the live members agree on one history: one's applied list is a prefix of the other's.
    let logs: Vec<Vec<String>> = members
        .iter()
        .flatten()
        .map(|m| m.applied.lock().unwrap().clone())
        .collect();
    let (a, b) = (&logs[0], &logs[1]);
    let n = a.len().min(b.len());
    assert_eq!(a[..n], b[..n], "two members applied different histories");
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
