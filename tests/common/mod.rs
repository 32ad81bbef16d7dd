//! Helpers shared by the end-to-end tests: servers on 127.0.0.1:0 in fresh temp folders, a
//! raw protocol client (what `nc` does), and file helpers.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use torrentphile::conn::Timeouts;
use torrentphile::peer::{Peer, PeerConfig};
use torrentphile::tracker::{Tracker, TrackerConfig};

/// A fresh, empty folder for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "torrentphile-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

pub fn tracker() -> Tracker {
    tracker_with(TrackerConfig::default())
}

pub fn tracker_with(config: TrackerConfig) -> Tracker {
    Tracker::start(listener(), config).unwrap()
}

/// Short timeouts so a failing peer costs a test seconds, not minutes.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(3);

pub fn peer(tracker: &Tracker, dir: &Path) -> Peer {
    peer_with(tracker, dir, |_| {})
}

/// A peer on port 0 serving `dir`, registered before this returns.
pub fn peer_with(tracker: &Tracker, dir: &Path, tune: impl FnOnce(&mut PeerConfig)) -> Peer {
    let mut config = PeerConfig::new(&tracker.addr().to_string(), dir);
    config.timeouts = Timeouts::uniform(TEST_TIMEOUT);
    config.download.timeouts = config.timeouts;
    tune(&mut config);
    let peer = Peer::start(listener(), config).unwrap();
    peer.wait_registered(Duration::from_secs(10)).unwrap();
    peer
}

/// Write `size` seeded pseudo-random bytes; returns their SHA-1.
pub fn random_file(path: &Path, size: u64, seed: u64) -> String {
    torrentphile::sim::write_random(path, size, seed).unwrap();
    sha1_file(path)
}

pub fn sha1_file(path: &Path) -> String {
    torrentphile::sim::sha1_file(path).unwrap()
}

/// Names of the visible files in a folder, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Poll an observable condition until it holds (bounded). For state that changes in another
/// process or thread with no event to wait on, such as the tracker noticing a closed socket.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A raw protocol client: what a student does with `nc`.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: impl std::net::ToSocketAddrs) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// One reply line without its newline; "" at EOF.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end_matches('\n').to_string()
    }

    /// Send one line, read one line.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.line()
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf).unwrap();
        buf
    }

    /// Send a request answered by `DATA <len>` and return the data.
    pub fn data(&mut self, line: &str) -> Vec<u8> {
        let reply = self.ask(line);
        let len: usize = reply
            .strip_prefix("DATA ")
            .unwrap_or_else(|| panic!("{line} answered {reply}"))
            .parse()
            .unwrap();
        self.bytes(len)
    }

    /// True once the server has closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// The holders the tracker lists for `name` (empty when none).
pub fn who_has(tracker: &Tracker, name: &str) -> Vec<String> {
    let reply = Client::connect(tracker.addr()).ask(&format!("WHOHAS {name}"));
    match reply.strip_prefix("PEERS") {
        Some(rest) => rest.split_whitespace().map(String::from).collect(),
        None => Vec::new(),
    }
}

/// How a `FakePeer` answers `PIECE`.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Serves every piece correctly.
    Good,
    /// Flips a byte in every piece it sends.
    Corrupt,
    /// Serves `n` pieces, then sends half of the next one and closes (a peer dying mid-transfer).
    DieAfter(u32),
    /// Serves `n` pieces, then sends a `DATA` header and nothing more, keeping the connection
    /// open (a stalled peer).
    StallAfter(u32),
    /// Serves every piece correctly, pausing this long before each (a slow link).
    Slow(Duration),
}

/// A hand-written peer with one file and a chosen misbehaviour, registered with a tracker the
/// way any peer is (its registration lives as long as its tracker connection).
pub struct FakePeer {
    pub addr: String,
    _tracker_conn: Client,
    _listener_thread: std::thread::JoinHandle<()>,
}

impl FakePeer {
    /// Serve `path` (hashed with `piece_size`) as `name`.
    pub fn start(
        tracker: &Tracker,
        path: &Path,
        name: &str,
        piece_size: u32,
        how: Behaviour,
    ) -> FakePeer {
        FakePeer::start_announcing(tracker, path, name, piece_size, how, |_| {})
    }

    /// Like `start`, but the `UPLOAD` announces the meta as changed by `tamper` (a liar).
    pub fn start_announcing(
        tracker: &Tracker,
        path: &Path,
        name: &str,
        piece_size: u32,
        how: Behaviour,
        tamper: impl FnOnce(&mut torrentphile::protocol::Meta),
    ) -> FakePeer {
        let (mut meta, hashes) =
            torrentphile::peer::store::hash_file(path, name, piece_size).unwrap();
        tamper(&mut meta);
        let data = fs::read(path).unwrap();
        let listener = listener();
        let port = listener.local_addr().unwrap().port();
        let served = std::sync::Arc::new(AtomicU32::new(0));
        let hashes_text = torrentphile::peer::store::hashes_text(&hashes);
        let meta2 = meta.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (data, meta, hashes_text, served) = (
                    data.clone(),
                    meta2.clone(),
                    hashes_text.clone(),
                    served.clone(),
                );
                std::thread::spawn(move || {
                    serve_fake(stream, &data, &meta, &hashes_text, &served, how)
                });
            }
        });
        let mut conn = Client::connect(tracker.addr());
        assert!(conn.ask(&format!("REGISTER {port}")).starts_with("ACK "));
        assert!(conn.ask(&format!("UPLOAD {meta}")).starts_with("ACK "));
        FakePeer {
            addr: format!("127.0.0.1:{port}"),
            _tracker_conn: conn,
            _listener_thread: thread,
        }
    }
}

fn serve_fake(
    stream: TcpStream,
    data: &[u8],
    meta: &torrentphile::protocol::Meta,
    hashes_text: &str,
    served: &AtomicU32,
    how: Behaviour,
) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        line.clear();
        let out = reader.get_mut();
        let ok = match words.first().map(String::as_str) {
            Some("HELLO") => out.write_all(b"ACK hello\n"),
            Some("HAVE") => out
                .write_all(format!("BITFIELD {}\n", "1".repeat(meta.pieces() as usize)).as_bytes()),
            Some("HASHES") => {
                out.write_all(format!("DATA {}\n{hashes_text}", hashes_text.len()).as_bytes())
            }
            Some("PIECE") => {
                let i: u32 = words[2].parse().unwrap();
                let (start, len) = meta.piece_range(i);
                let mut piece = data[start as usize..(start + len) as usize].to_vec();
                let n = served.fetch_add(1, Ordering::SeqCst);
                match how {
                    Behaviour::Good => {}
                    Behaviour::Slow(pause) => std::thread::sleep(pause),
                    Behaviour::Corrupt => piece[0] ^= 0xff,
                    Behaviour::DieAfter(k) if n >= k => {
                        let _ = out.write_all(format!("DATA {len}\n").as_bytes());
                        let _ = out.write_all(&piece[..piece.len() / 2]);
                        return;
                    }
                    Behaviour::StallAfter(k) if n >= k => {
                        let _ = out.write_all(format!("DATA {len}\n").as_bytes());
                        // Hold the connection open, sending nothing, until the client gives up.
                        let mut sink = Vec::new();
                        let _ = reader.read_to_end(&mut sink);
                        return;
                    }
                    _ => {}
                }
                out.write_all(format!("DATA {len}\n").as_bytes())
                    .and_then(|()| out.write_all(&piece))
            }
            _ => out.write_all(b"ERR unknown-verb fake peer\n"),
        };
        if ok.is_err() {
            return;
        }
    }
}

/// A server process of our own, killed when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Start the `torrentphile` binary with `args` and wait for its `listening on` line.
    pub fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        let addr = ready
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{args:?} printed {ready:?}"))
            .parse()
            .unwrap();
        Process { child, addr }
    }

    /// A field of /proc/<pid>/status, in KiB.
    pub fn kib(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.child.id()))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
