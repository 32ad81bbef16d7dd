//! Log compaction with trackers as real processes: `tracker --cluster ... --snapshot-every 5
//! --trace`. A follower is SIGKILLed, the leader creates more users than the threshold (and
//! compacts), the follower is started again on its folder and catches up from a `SNAPSHOT`; its
//! `STATE` then equals the leader's, and no trace ever shows a password verifier (the snapshot
//! data is traced by size only, a replicated `CREATE-USER` without its keys).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use torrentphile::auth::base64;

struct Tracker(Child, String);

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start tracker `id` with its trace in `root/trace<id>-<run>`; its client address.
fn start(root: &Path, id: u64, run: u32) -> Tracker {
    let trace = File::create(root.join(format!("trace{id}-{run}"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(["tracker", "--port", "0", "--iterations", "1", "--trace"])
        .args(["--snapshot-every", "5", "--cluster"])
        .arg(root.join("cluster.txt"))
        .args(["--id", &id.to_string(), "--state"])
        .arg(root.join(format!("t{id}")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(trace)
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}"));
    Tracker(child, addr.to_string())
}

/// Send lines on one connection; the last reply (`None` on any failure).
fn ask(addr: &str, lines: &[String]) -> Option<String> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut reply = String::new();
    for line in lines {
        (&s).write_all(format!("{line}\n").as_bytes()).ok()?;
        reply.clear();
        r.read_line(&mut reply).ok()?;
    }
    Some(reply.trim_end().to_string())
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < end, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_follower_catches_up_from_a_snapshot_and_no_trace_shows_a_key() {
    let root: PathBuf = std::env::temp_dir().join(format!(
        "torrentphile-cluster-snapproc-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let cluster: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let text: String = (0..3)
        .map(|i| format!("{} {}\n", i + 1, cluster[i]))
        .collect();
    std::fs::write(root.join("cluster.txt"), text).unwrap();
    let mut trackers: Vec<Option<Tracker>> = (1..=3).map(|id| Some(start(&root, id, 0))).collect();
    let status = |i: usize| ask(&cluster[i], &["STATUS".to_string()]).unwrap_or_default();
    let mut lead = 0;
    until("a leader", || {
        lead = (0..3)
            .find(|&i| status(i).contains(" role=leader "))
            .unwrap_or(9);
        lead < 3
    });
    let behind = (lead + 1) % 3;
    trackers[behind] = None; // SIGKILL
    let addr = trackers[lead].as_ref().unwrap().1.clone();
    let key = |k: u8| base64::encode(&[k.wrapping_mul(7).wrapping_add(101); 20]);
    for k in 0..12u8 {
        let user = format!("user{k}");
        let create = format!("CREATE-USER {user} {} {}", key(k), key(k + 100));
        let reply = ask(&addr, &[format!("SALT {user}"), create]);
        assert_eq!(
            reply.as_deref(),
            Some(format!("ACK created user {user}").as_str())
        );
    }
    trackers[behind] = Some(start(&root, behind as u64 + 1, 1));
    let state = |i: usize| ask(&cluster[i], &["STATE".to_string()]);
    until("the follower's STATE equals the leader's", || {
        let (l, f) = (state(lead), state(behind));
        l.is_some() && l == f && l.as_deref().is_some_and(|s| s.contains("applied=12 "))
    });
    drop(trackers);
    let read = |name: String| std::fs::read_to_string(root.join(name)).unwrap();
    let (leader, follower) = (
        read(format!("trace{}-0", lead + 1)),
        read(format!("trace{}-1", behind + 1)),
    );
    assert!(
        leader.contains("  SNAPSHOT "),
        "the leader sent no snapshot"
    );
    assert!(leader.contains(" bytes of snapshot data>"));
    assert!(follower.contains("  SNAPSHOT ") && follower.contains("  APPENDED "));
    for name in std::fs::read_dir(&root).unwrap().flatten() {
        let name = name.file_name().to_string_lossy().into_owned();
        if name.starts_with("trace") {
            let text = read(name.clone());
            for k in 0..12u8 {
                for secret in [key(k), key(k + 100)] {
                    assert!(!text.contains(&secret), "{name} shows a key: {secret}");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
