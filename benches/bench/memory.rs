//! Cases 5 and 6, memory. Case 5: the RSS of a `torrentphile tracker` holding 1,000 to
//! 10,000 idle connections, against the echo server (`--echo-server`) holding as many in the
//! same run (goal <= 1.5x). Case 6: the peak RSS of `torrentphile get` fetching a large file
//! from one seeder, an absolute target (< 64 MiB) with no baseline process; its rate, start-up
//! included, is shown beside.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::common::{
    TempDir, fd_limit, free_bytes, pid_kib, random_file, rate, secs, start_peer, start_tracker,
    wait_bounded,
};
use super::report::{Section, num, target};
use super::servers::{open_conns, ping_all, spawn_listening, spawn_tracker};
use super::{BIN, Bench, MIB, Res};

/// Open `n` idle connections to `addr`, PING each twice (all held at once): the server's
/// RSS in KiB before and after, its thread count, and how long opening took.
fn hold_idle(pid: u32, addr: SocketAddr, n: usize, answer: &str) -> Res<(u64, u64, u64, f64)> {
    thread::sleep(Duration::from_millis(200));
    let before = pid_kib(pid, "VmRSS").unwrap_or(0);
    let t = Instant::now();
    let conns = open_conns(addr, n, 1, |_| "PING\n".into())?;
    let opened = secs(t);
    ping_all(&conns, answer)?;
    thread::sleep(Duration::from_millis(300));
    ping_all(&conns, answer)?;
    let after = pid_kib(pid, "VmRSS").unwrap_or(0);
    Ok((before, after, pid_kib(pid, "Threads").unwrap_or(0), opened))
}

/// Case 5: idle connections held by the tracker and by the echo server.
pub fn connections(b: &mut Bench, s: &mut Section) -> Res<()> {
    let limit = fd_limit();
    let me = std::env::current_exe()?;
    for &n in b.scale.conns {
        if n + 300 > limit {
            s.note(format!(
                "{n} connections skipped: the open files limit is {limit}"
            ));
            continue;
        }
        let (echo, addr) = spawn_listening(Command::new(&me).arg("--echo-server"))?;
        let (_, bare, _, _) = hold_idle(echo.0.id(), addr, n, "PING")?;
        drop(echo);
        let (tracker, addr) = spawn_tracker(n + 100)?;
        let (before, after, threads, opened) = hold_idle(tracker.0.id(), addr, n, "PONG")?;
        drop(tracker);
        let grew = after.saturating_sub(before) as f64;
        let row = s.row(
            format!("{n} idle connections: echo server RSS"),
            "MiB",
            vec![bare as f64 / 1024.0],
        );
        row.vs = "baseline".into();
        let ratio = after as f64 / bare.max(1) as f64;
        let row = s.row(
            format!("{n} idle connections: tracker RSS"),
            "MiB",
            vec![after as f64 / 1024.0],
        );
        row.vs = format!(
            "{ratio:.2}x echo; +{:.1} MiB, {:.1} KiB/conn, {threads} threads, opened in \
             {opened:.2}s",
            grew / 1024.0,
            grew / n as f64,
        );
        if n == 10_000 || (b.scale.quick && Some(&n) == b.scale.conns.last()) {
            row.target = target("<= 1.5x echo", ratio <= 1.5);
            let what = format!("{n} idle connections, tracker RSS vs a bare std echo server");
            b.goal(&what, format!("{ratio:.2}x"), "<= 1.5x", ratio <= 1.5);
        }
    }
    s.note(
        "`torrentphile tracker` and the echo server (this bench binary with `--echo-server`: a \
         thread per connection with the tracker's stack size, `io::copy` from the socket to \
         itself) as child processes, connections from the bench process; every connection is \
         PINGed twice once all are open, so all are held at the same time",
    );
    Ok(())
}

// ==== 6. Memory of a downloading peer =========================================================

/// Case 6: the peak RSS of `torrentphile get`.
pub fn memory(b: &mut Bench, s: &mut Section) -> Res<()> {
    let size = b.scale.memory;
    let need = 2 * size + (1 << 30);
    if let Some(free) = free_bytes(Path::new("/tmp")).filter(|&f| f < need) {
        s.note(format!(
            "skipped: {} MiB free in /tmp, {} MiB needed",
            free / MIB,
            need / MIB
        ));
        return Ok(());
    }
    let dir = TempDir::new(b.root.join("memory"))?;
    let seed_dir = dir.0.join("seed");
    random_file(&seed_dir, "huge.bin", size)?;
    let tracker = start_tracker()?;
    let seeder = start_peer(tracker.addr(), &seed_dir)?;
    let dl = dir.0.join("dl");
    let t = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "get",
        "huge.bin",
        "--tracker",
        &tracker.addr().to_string(),
        "--dir",
    ]);
    let mut child = cmd.arg(&dl).stdout(Stdio::null()).spawn()?;
    // VmHWM is a high-water mark, so the last reading before the exit is the peak (it agreed
    // with /usr/bin/time -v within 1%).
    let (mut hwm, limit) = (
        0,
        Duration::from_secs(if b.scale.quick { 120 } else { 400 }),
    );
    wait_bounded(&mut child, limit, |pid| {
        hwm = hwm.max(pid_kib(pid, "VmHWM").unwrap_or(0))
    })?;
    let took = secs(t);
    let got = fs::metadata(dl.join("huge.bin")).map_or(0, |m| m.len());
    if got != size {
        return Err(format!("get left {got} bytes, not {size}").into());
    }
    let mib = hwm as f64 / 1024.0;
    let row = s.row(
        format!("get of a {} MiB file: peak RSS", size / MIB),
        "MiB",
        vec![mib],
    );
    row.vs = format!("{} MB/s with start-up", num(rate(size, took)));
    row.target = target("< 64 MiB", mib < 64.0);
    s.note("`torrentphile get` as a child process, from one in-process seeder; VmHWM polled");
    drop(seeder);
    Ok(())
}
