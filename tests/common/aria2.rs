//! aria2c, the real BitTorrent client the tests run against: started on loopback only (no DHT,
//! no local discovery, no peer exchange), its output kept in its folder, killed by its handle
//! when dropped. Tests skip, saying why, where it is not installed.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bounds every wait; never reached when things work.
const PATIENCE: Duration = Duration::from_secs(240);

/// Whether aria2c is installed; says so when it is not.
pub fn have_aria2c() -> bool {
    let ok = Command::new("aria2c")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: aria2c is not installed (apt-get install aria2)");
    }
    ok
}

/// aria2c on loopback only, talking to the torrent's tracker and the peers it names.
pub struct Aria2(pub Child);

impl Aria2 {
    /// aria2c for `torrent` in `dir`, with `extra` options after the loopback-only ones.
    pub fn start(torrent: &Path, dir: &Path, extra: &[&str]) -> Aria2 {
        let log = fs::File::create(dir.join("aria2c.out")).unwrap();
        let child = Command::new("aria2c")
            .arg(torrent)
            .arg(format!("--dir={}", dir.display()))
            .args([
                // Every socket on loopback.
                "--interface=127.0.0.1",
                // A range below Linux's ephemeral ports (32768-60999), so no outgoing
                // connection can be holding the port aria2c picks; it binds the first free
                // one and tells the tracker which.
                "--listen-port=20000-32000",
                "--no-conf=true",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--disable-ipv6=true",
                "--file-allocation=none",
                "--summary-interval=0",
                "--console-log-level=warn",
                "--log-level=info",
                "--bt-tracker-interval=1",
            ])
            .arg(format!("--log={}", dir.join("aria2c.log").display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Aria2(child)
    }

    /// A leecher: exits once its copy is complete and verified.
    pub fn leecher(torrent: &Path, dir: &Path) -> Aria2 {
        Aria2::start(torrent, dir, &["--seed-time=0"])
    }

    /// A seeder of the data already in `dir`: hashes it first, then seeds until killed.
    pub fn seeder(torrent: &Path, dir: &Path) -> Aria2 {
        Aria2::start(
            torrent,
            dir,
            &[
                "--seed-ratio=0.0",
                "--check-integrity=true",
                "--bt-seed-unverified=false",
            ],
        )
    }

    /// Wait for a leecher to exit; panics (with its log) if it fails or takes too long.
    pub fn wait_done(&mut self, dir: &Path) {
        let end = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                let log = fs::read_to_string(dir.join("aria2c.out")).unwrap_or_default();
                assert!(status.success(), "aria2c failed: {status}\n{log}");
                return;
            }
            assert!(
                Instant::now() < end,
                "aria2c did not finish in {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Aria2 {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
