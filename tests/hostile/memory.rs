//! Issue 14, item 8: the piece size must not multiply a downloader's memory. A first holder
//! with 64 MiB pieces, and `torrentphile get` (the binary, so its memory is its own) watched
//! through /proc/PID/status while it downloads.

use std::fs;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;

/// The bound this test holds a download to, whatever the piece size (issue 14): 64 MiB. A
/// piece streams through chunks of 256 KiB, so the chunk buffers stay within
/// `MEMORY_BUDGET` (32 MiB) even with 64 MiB pieces; the rest is the process's own (binary,
/// stacks, the 1 MiB whole-file hash buffer, socket buffers).
const BOUND_KIB: u64 = 64 * 1024;

fn peak_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_download_of_64_mib_pieces_stays_within_its_memory_bound() {
    let tracker = tracker();
    let src = temp_dir("mem-64m-src");
    let size = (64 << 20) * 2 + (16 << 20);
    let real = random_file(&src.join("big.bin"), size, 64);
    let holder = peer_with(&tracker, &src, |c| c.piece_size = Some(64 << 20));
    eventually("big.bin listed", Duration::from_secs(60), || {
        !who_has(&tracker, "big.bin").is_empty()
    });
    let dir = temp_dir("mem-64m-get");
    let mut child = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(["get", "big.bin", "--dir"])
        .arg(&dir)
        .args(["--tracker", &tracker.addr().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // VmHWM only grows; the last reading before exit is the peak (pieces are held while
    // they are fetched and verified, never in the last milliseconds of publishing).
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "get hung");
        thread::sleep(Duration::from_millis(5));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{out}");
    assert_eq!(sha1_file(&dir.join("big.bin")), real);
    println!(
        "64 MiB pieces, {} MiB file: downloader peak {} KiB (bound {BOUND_KIB} KiB); {out}",
        size >> 20,
        peak
    );
    assert!(peak > 0 && peak < BOUND_KIB, "peak {peak} KiB");
    drop(holder);
    let _ = [src, dir].map(fs::remove_dir_all);
}
