//! Case 3, latency: a download through a relay that holds every chunk 25 ms each way (RTT
//! 50 ms). Baselines in the same run: a plain TCP copy through the same relay (goal >= 0.8x)
//! and the same download without the relay (what the delay costs).

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use super::common::{TempDir, random_file, rate, start_peer, start_tracker, timed_download};
use super::report::{Section, best_run, median, target};
use super::servers::read_replies;
use super::tcp::{relay, tcp_copy};
use super::{Bench, MIB, Res};
use torrentphile::protocol::Request;

/// Case 3: a download through the 50 ms RTT relay.
pub fn latency(b: &mut Bench, s: &mut Section) -> Res<()> {
    let (size, one_way) = (b.scale.latency, Duration::from_millis(25));
    let dir = TempDir::new(b.root.join("latency"))?;
    let seed_dir = dir.0.join("seed");
    let (file, ..) = random_file(&seed_dir, "far.bin", size)?;
    // The seeder registers with a throwaway tracker, so the real one lists only the relay.
    let elsewhere = start_tracker()?;
    let seeder = start_peer(elsewhere.addr(), &seed_dir)?;
    let meta = seeder
        .store()
        .get("far.bin")
        .ok_or("the seeder lacks far.bin")?
        .meta
        .clone();
    let link = relay(seeder.addr(), one_way)?;
    let tracker = start_tracker()?;
    let fake = TcpStream::connect(tracker.addr())?;
    fake.set_read_timeout(Some(Duration::from_secs(10)))?;
    let port = link.addr().port();
    let lines = format!(
        "{}\n{}\n",
        Request::Register { port },
        Request::Upload(meta)
    );
    (&fake).write_all(lines.as_bytes())?;
    let answer = read_replies(&fake, 2)?;
    if answer.lines().any(|l| !l.starts_with("ACK")) {
        return Err(format!("registering the relay: {answer}").into());
    }
    // One download through the relay first, not timed (see case 1).
    timed_download(tracker.addr(), &dir.0.join("warm-up"), "far.bin")?;
    let (mut copy, mut down, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..b.scale.runs {
        copy.push(rate(size, tcp_copy(&file, &dir.0, Some(one_way), true)?));
        (&fake).write_all(b"PING\n")?; // keep the fake registration alive
        read_replies(&fake, 1)?;
        let (t, _) = timed_download(tracker.addr(), &dir.0.join(format!("dl{r}")), "far.bin")?;
        down.push(rate(size, t));
        // The same download without the relay: what the delay costs, hashing aside.
        let (t, _) = timed_download(elsewhere.addr(), &dir.0.join(format!("near{r}")), "far.bin")?;
        direct.push(rate(size, t));
    }
    let (cm, dm, nm) = (median(&copy), median(&down), median(&direct));
    let best_r = best_run(&down) / best_run(&copy);
    s.row("plain TCP copy through the relay", "MB/s", copy);
    s.row("download without the relay", "MB/s", direct);
    let row = s.row("download through the relay", "MB/s", down);
    row.vs = format!(
        "{:.2}x tcp copy via relay, {:.2}x the download without it",
        dm / cm,
        dm / nm
    );
    row.target = target(">= 0.8x tcp copy", dm >= 0.8 * cm);
    let r = dm / cm;
    let what = "through the 50 ms relay vs a plain TCP copy through it";
    b.goal_best(what, r, best_r, ">= 0.8x", r >= 0.8);
    s.note(format!(
        "{} MiB file. The relay (torrentphile::relay) holds every chunk {one_way:?} each way \
         (RTT 50 ms) without capping bandwidth; it splits TCP, so the protocol's round trips feel \
         the delay but kernel windows do not. The downloader reaches the seeder through a \
         registration of the relay's port made on the tracker over a raw connection. The TCP \
         copy writes its file to disk as a download does.",
        size / MIB
    ));
    Ok(())
}
