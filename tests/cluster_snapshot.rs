//! Raft log compaction with real cluster members (in process, real sockets, real disks): a
//! follower is stopped, the leader takes more mutations than the snapshot threshold and
//! compacts its log, the follower comes back and catches up from the leader's snapshot; its
//! state (`STATE`, and the accounts themselves) then equals the leader's, and again after it
//! restarts from its own snapshot and log.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use torrentphile::auth::accounts::Record;
use torrentphile::auth::scram::Credentials;
use torrentphile::tracker::TrackerConfig;
use torrentphile::tracker::cluster::ClusterConfig;
use torrentphile::tracker::member::{Member, bind_loopback};

const EVERY: u64 = 16;
const WAIT: Duration = Duration::from_secs(15);

fn start(
    config: &ClusterConfig,
    id: u64,
    root: &Path,
    ports: (TcpListener, TcpListener),
) -> Member {
    let state = root.join(format!("m{id}"));
    let mut tracker = TrackerConfig::one_host();
    tracker.accounts.iterations = 4096;
    Member::start_with(config.clone(), id, &state, ports, tracker, EVERY).expect("member starts")
}

/// The index of the member that leads, once the live ones agree on one.
fn leader(members: &[Option<Member>]) -> usize {
    let end = Instant::now() + WAIT;
    loop {
        let live: Vec<&Member> = members.iter().flatten().collect();
        if let Some(m) = live.first() {
            m.cluster()
                .wait_for(Duration::from_millis(200), |_, l| l.is_some());
        }
        let found = members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.cluster().is_leader()));
        if let Some(i) = found {
            return i;
        }
        assert!(Instant::now() < end, "no leader within {WAIT:?}");
    }
}

fn user(name: &str) -> Record {
    Record::CreateUser {
        user: name.into(),
        credentials: Credentials {
            salt: vec![9; 16],
            iterations: 4096,
            stored_key: [1; 20],
            server_key: [2; 20],
        },
    }
}

/// Wait until `f` holds (the state is compared, not timed: a deadline only bounds a failure).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < end, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stopped_follower_catches_up_from_the_leaders_snapshot() {
    let root =
        std::env::temp_dir().join(format!("torrentphile-cluster-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (cps, clients, config) = bind_loopback(3).unwrap();
    let addrs: Vec<(String, String)> = cps
        .iter()
        .zip(&clients)
        .map(|(a, b)| {
            (
                a.local_addr().unwrap().to_string(),
                b.local_addr().unwrap().to_string(),
            )
        })
        .collect();
    let mut members: Vec<Option<Member>> = cps
        .into_iter()
        .zip(clients)
        .enumerate()
        .map(|(i, ports)| Some(start(&config, i as u64 + 1, &root, ports)))
        .collect();
    let lead = leader(&members);
    let behind = (lead + 1) % 3;
    members[behind].as_mut().unwrap().kill();
    members[behind] = None;

    // More mutations than the threshold, several times over, with the follower down.
    let l = members[lead].as_ref().unwrap();
    for k in 0..(3 * EVERY + 5) {
        let record = if k % 4 == 3 {
            Record::CreateGroup {
                group: format!("g{k}"),
                admin: format!("u{}", k - 1),
            }
        } else {
            user(&format!("u{k}"))
        };
        let outcome = l.replica().mutate(&record).expect("a cluster");
        assert!(outcome.is_ok(), "mutation {k}: {outcome:?}");
    }
    let compacted = l.cluster().snapshot_index();
    assert!(
        compacted >= 2 * EVERY,
        "the leader compacted only up to {compacted}"
    );
    assert!(root.join(format!("m{}/raft/snapshot", lead + 1)).exists());

    // The follower comes back on the same ports and the same folder.
    let rebind = |i: usize| {
        let (c, p) = &addrs[i];
        (TcpListener::bind(c).unwrap(), TcpListener::bind(p).unwrap())
    };
    members[behind] = Some(start(&config, behind as u64 + 1, &root, rebind(behind)));
    let same = |members: &[Option<Member>]| {
        let (l, f) = (
            members[lead].as_ref().unwrap(),
            members[behind].as_ref().unwrap(),
        );
        l.replica().inspect() == f.replica().inspect()
    };
    until("the follower catches up", || same(&members));
    let f = members[behind].as_ref().unwrap();
    assert!(
        f.cluster().snapshot_index() >= compacted,
        "it caught up without the snapshot (its snapshot: {}, the leader's: {compacted})",
        f.cluster().snapshot_index()
    );
    let l = members[lead].as_ref().unwrap();
    assert_eq!(
        *f.replica().state().lock().unwrap(),
        *l.replica().state().lock().unwrap()
    );
    assert!(
        f.replica()
            .inspect()
            .starts_with(&format!("applied={} skipped=0 ", 3 * EVERY + 5))
    );

    // It restarts from its own snapshot and log to the same state.
    members[behind].as_mut().unwrap().kill();
    members[behind] = Some(start(&config, behind as u64 + 1, &root, rebind(behind)));
    until("the restarted follower reads the same", || same(&members));
    for m in members.iter_mut().flatten() {
        m.kill();
    }
    let _ = std::fs::remove_dir_all(&root);
}
