//! Case 11, cluster: three in-process tracker members; the time from killing the leader to
//! the next acknowledged mutation, the refill of a new leader by re-announcing peers, and the
//! acknowledged mutation rate with 1 and with 3 members. The first two have absolute targets
//! (<= 2 s); the 1-member rate is the baseline of the 3-member one.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::common::{TempDir, secs};
use super::report::{Section, median, target};
use super::servers::open_conns;
use super::{Bench, MIB, Res};
use torrentphile::protocol::{Digest, Meta, Request};
use torrentphile::tracker::TrackerConfig;

/// In-process members (`tracker::member`), killed the way a crash looks to the others: the
/// listener and every connection closed, no goodbye. Figures: time from the kill to the next
/// acknowledged mutation (a client that follows `ERR not-leader`), the refill of a new leader
/// by re-registering peers, and the acknowledged mutation rate with 1 and with 3 members.
pub fn cluster_case(b: &mut Bench, s: &mut Section) -> Res<()> {
    use torrentphile::tracker::member::{Member, bind_loopback};
    let dir = TempDir::new(b.root.join("cluster"))?;
    let start = |n: usize, tag: &str| -> Res<(Vec<Option<Member>>, Vec<SocketAddr>)> {
        let (cps, clients, config) = bind_loopback(n)?;
        let mut members = Vec::new();
        let mut addrs = Vec::new();
        for (i, (cp, client)) in cps.into_iter().zip(clients).enumerate() {
            addrs.push(client.local_addr()?);
            let mut t = TrackerConfig::one_host();
            t.accounts.iterations = 1;
            let state = dir.0.join(format!("{tag}-{}", i + 1));
            members.push(Some(Member::start(
                config.clone(),
                i as u64 + 1,
                &state,
                cp,
                client,
                t,
            )?));
        }
        Ok((members, addrs))
    };
    let leader = |m: &[Option<Member>]| {
        m.iter()
            .position(|x| x.as_ref().is_some_and(|x| x.cluster().is_leader()))
    };
    let wait_leader = |m: &[Option<Member>]| -> Res<usize> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = leader(m) {
                return Ok(i);
            }
            if Instant::now() > end {
                return Err("no leader in 20 s".into());
            }
            thread::sleep(Duration::from_millis(2));
        }
    };
    // One acknowledged CREATE-USER on whichever tracker leads (following ERR not-leader).
    let create = |addrs: &[SocketAddr], user: &str| -> bool {
        for addr in addrs {
            let Ok(c) = TcpStream::connect_timeout(addr, Duration::from_secs(1)) else {
                continue;
            };
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(&c);
            let mut line = String::new();
            if (&c).write_all(format!("SALT {user}\n").as_bytes()).is_err()
                || r.read_line(&mut line).is_err()
            {
                continue;
            }
            if !line.starts_with("ACK salt=") {
                continue;
            }
            let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
            line.clear();
            let sent = (&c).write_all(format!("CREATE-USER {user} {key} {key}\n").as_bytes());
            if sent.is_ok()
                && r.read_line(&mut line).is_ok()
                && line.starts_with("ACK created user")
            {
                return true;
            }
        }
        false
    };
    // 1. kill the leader, time to the next acknowledged mutation.
    let runs = if b.scale.quick { 3 } else { 20 };
    let mut failover = Vec::new();
    for run in 0..runs {
        let (mut members, addrs) = start(3, &format!("f{run}"))?;
        wait_leader(&members)?;
        if !create(&addrs, "before") {
            return Err("no mutation acknowledged before the kill".into());
        }
        let old = wait_leader(&members)?;
        let t = Instant::now();
        if let Some(m) = members[old].as_mut() {
            m.kill();
        }
        members[old] = None;
        let mut n = 0;
        while !create(&addrs, &format!("after{n}")) {
            n += 1;
            if t.elapsed() > Duration::from_secs(30) {
                return Err("no mutation acknowledged 30 s after the kill".into());
            }
        }
        failover.push(secs(t));
    }
    let mut sorted = failover.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    s.row(
        format!("kill the leader → next acknowledged mutation, p50 over {runs} runs"),
        "s",
        failover,
    )
    .target = target("≤ 2 s", median(&sorted) <= 2.0);
    s.note(format!(
        "failover p99 (max of {runs}): {p99:.3} s; 3 members, default timing (election 0.5-1 s)"
    ));
    // 2. refill: peers re-register and re-announce to the new leader.
    let (peers, files) = if b.scale.quick {
        (200, 20)
    } else {
        (1_000, 100)
    };
    let (mut members, addrs) = start(3, "refill")?;
    let first = wait_leader(&members)?;
    let announce = |addr: SocketAddr| -> Res<Vec<TcpStream>> {
        let digest: Digest = "0".repeat(40).parse().map_err(|_| "digest")?;
        let lines = |p: usize| {
            let mut text = format!("REGISTER {}\n", 20_000 + p);
            for f in 0..files {
                let meta = Meta {
                    name: format!("p{p}f{f}"),
                    size: MIB,
                    piece_size: 1 << 18,
                    sha1: digest,
                    root: digest,
                };
                text.push_str(&format!("{}\n", Request::Upload(meta)));
            }
            text
        };
        // The registrations live as long as their connections.
        Ok(open_conns(addr, peers, files + 1, lines)?)
    };
    let old_conns = announce(addrs[first])?;
    let t = Instant::now();
    if let Some(m) = members[first].as_mut() {
        m.kill();
    }
    members[first] = None;
    let new = wait_leader(&members)?;
    let elected = secs(t);
    drop(old_conns);
    let r = Instant::now();
    let conns = announce(addrs[new])?;
    let refill = secs(r);
    let held = members[new]
        .as_ref()
        .map_or(0, |m| m.tracker().registry().file_count());
    s.row(
        format!("refill a new leader: {peers} peers × {files} files re-announced"),
        "s",
        vec![refill],
    )
    .target = target("≤ 2 s", refill <= 2.0);
    s.note(format!("refill: election {elected:.3} s after the kill, then {refill:.3} s for the peers (4 threads, pipelined), {held} files held"));
    drop(conns);
    drop(members);
    // 3. acknowledged mutations per second, 1 member and 3 members, 4 clients each.
    let measure = b.scale.measure;
    let mut lone = None;
    for n in [1, 3] {
        let (members, addrs) = start(n, &format!("rate{n}"))?;
        let l = wait_leader(&members)?;
        let only = [addrs[l]];
        let count = std::sync::atomic::AtomicUsize::new(0);
        thread::scope(|sc| {
            for c in 0..4 {
                let (count, only) = (&count, &only);
                sc.spawn(move || {
                    let t = Instant::now();
                    let mut k = 0;
                    while t.elapsed() < measure {
                        if create(only, &format!("r{c}x{k}")) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        k += 1;
                    }
                });
            }
        });
        let rate = count.load(Ordering::Relaxed) as f64 / measure.as_secs_f64();
        let row = s.row(
            format!("acknowledged CREATE-USER per second, {n} member(s), 4 clients"),
            "/s",
            vec![rate],
        );
        match lone {
            None => lone = Some(rate),
            Some(one) => row.vs = format!("{:.2}x 1 member", rate / one.max(f64::MIN_POSITIVE)),
        }
        drop(members);
    }
    s.note("each mutation is durable on a majority's disk (fsync) before its ACK; a new connection per mutation");
    Ok(())
}
