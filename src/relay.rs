//! A delaying TCP relay, for watching what latency does to a protocol (and for the benchmarks
//! and the network tests, on kernels without `tc netem`).
//!
//! Each accepted connection is joined to a new connection to the target. In each direction a
//! reader thread stamps every chunk it reads with "not before now + delay" and hands it to a
//! writer thread, which waits until then and writes it on. Chunks are never spaced out, only
//! held back, so the relay adds latency without capping bandwidth; the bounded channel between
//! the two keeps TCP's back-pressure.
//!
//! Every socket has read and write timeouts: a relayed connection on which nothing moves, in
//! either direction, for `IDLE` (60 s) is closed, and so is one whose receiver stops reading
//! for that long. Stopping the relay closes every connection and joins its threads.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::server::Server;

/// Bytes read at once; chunks in flight per direction (bounds memory to about 64 MiB).
const CHUNK: usize = 64 * 1024;
const IN_FLIGHT: usize = 1024;

/// A relayed connection on which no byte has moved, in either direction, for this long is
/// closed (both sides). It is also how long one write may block on a side that stopped
/// reading.
pub const IDLE: Duration = Duration::from_secs(60);

/// How long connecting to the target may take.
const CONNECT: Duration = Duration::from_secs(5);

/// The target-side sockets of open relayed connections, so that a stop shuts them down too
/// (the server shuts down the client sides). `None` once stopping: no new one is opened.
type Upstreams = Arc<Mutex<Option<HashMap<u64, Arc<TcpStream>>>>>;

fn lock(upstreams: &Upstreams) -> MutexGuard<'_, Option<HashMap<u64, Arc<TcpStream>>>> {
    upstreams.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running relay. Dropping it stops it: every relayed connection is closed and its threads
/// joined.
pub struct Relay {
    server: Server,
    upstreams: Upstreams,
}

impl Relay {
    /// Relay connections accepted on `listener` to `target`, holding every byte back by `delay`
    /// in each direction (so a round trip through it gains `2 × delay`). A connection idle for
    /// `IDLE` is closed.
    pub fn start(listener: TcpListener, target: &str, delay: Duration) -> io::Result<Relay> {
        Relay::start_with_idle(listener, target, delay, IDLE)
    }

    /// `start`, closing connections idle for `idle` instead of `IDLE`.
    pub fn start_with_idle(
        listener: TcpListener,
        target: &str,
        delay: Duration,
        idle: Duration,
    ) -> io::Result<Relay> {
        let target: SocketAddr = target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no address"))?;
        let upstreams: Upstreams = Arc::new(Mutex::new(Some(HashMap::new())));
        let open = upstreams.clone();
        let serial = Arc::new(AtomicU64::new(0));
        let server = Server::spawn(listener, "relay", 4096, move |client| {
            let id = serial.fetch_add(1, Ordering::Relaxed);
            let upstream = TcpStream::connect_timeout(&target, CONNECT).map(Arc::new);
            let registered = upstream.as_ref().is_ok_and(|upstream| {
                let mut open = lock(&open);
                open.as_mut()
                    .map(|map| map.insert(id, upstream.clone()))
                    .is_some()
            });
            match upstream {
                Ok(upstream) if registered => {
                    relay(&client, &upstream, delay, idle);
                    if let Some(map) = lock(&open).as_mut() {
                        map.remove(&id);
                    }
                }
                _ => {
                    let _ = client.shutdown(Shutdown::Both);
                }
            }
        })?;
        Ok(Relay { server, upstreams })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Close every relayed connection and wait for their threads.
    pub fn stop(&mut self) {
        if let Some(map) = lock(&self.upstreams).take() {
            for upstream in map.values() {
                let _ = upstream.shutdown(Shutdown::Both);
            }
        }
        self.server.stop();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// When a relayed connection last moved a byte, in either direction.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }
    fn quiet_for(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

/// Relay one connection in both directions until both have ended or it has been idle for
/// `idle`.
fn relay(client: &Arc<TcpStream>, upstream: &Arc<TcpStream>, delay: Duration, idle: Duration) {
    for s in [client, upstream] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(idle));
        let _ = s.set_write_timeout(Some(idle));
    }
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: 0.into(),
    });
    let down = {
        let (from, to, activity) = (upstream.clone(), client.clone(), activity.clone());
        thread::Builder::new()
            .name("relay-down".into())
            .spawn(move || pump(&from, &to, delay, idle, &activity))
    };
    pump(client, upstream, delay, idle, &activity);
    match down {
        Ok(down) => {
            let _ = down.join();
        }
        Err(_) => {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

/// A chunk read and not yet written on: when it may go, the buffer, and how much of it is
/// the chunk.
type Held = (Instant, Vec<u8>, usize);

/// Copy `from` to `to`, each chunk delayed by `delay`, until `from` ends; then end `to`. If
/// the whole connection has been idle for `idle`, shut both sides down.
///
/// The relay stands in for a network, which costs the hosts at its ends no CPU: so each
/// chunk is read straight into a buffer that the writer hands back once it has written it
/// (no copy, no allocation per chunk), and what the relay costs stays small next to what it
/// measures.
fn pump(
    from: &Arc<TcpStream>,
    to: &Arc<TcpStream>,
    delay: Duration,
    idle: Duration,
    activity: &Arc<Activity>,
) {
    let (tx, rx): (SyncSender<Held>, Receiver<Held>) = mpsc::sync_channel(IN_FLIGHT);
    // Written buffers go back to the reader; at most `IN_FLIGHT + 2` are ever allocated.
    let (spare_tx, spare) = mpsc::channel::<Vec<u8>>();
    let writer = {
        let (to, activity) = (to.clone(), activity.clone());
        thread::Builder::new()
            .name("relay-writer".into())
            .spawn(move || {
                for (due, chunk, n) in rx {
                    let wait = due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        thread::sleep(wait);
                    }
                    // A write blocked for `idle` (the receiver stopped reading) fails here.
                    if (&*to).write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    activity.touch();
                    let _ = spare_tx.send(chunk);
                }
                let _ = to.shutdown(Shutdown::Write);
            })
    };
    loop {
        let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        match (&**from).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                activity.touch();
                if tx.send((Instant::now() + delay, buf, n)).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // Quiet this way; the other way may be busy. Wait for what is left of `idle`.
                let left = idle.saturating_sub(activity.quiet_for());
                if left.is_zero() {
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    break;
                }
                let _ = from.set_read_timeout(Some(left));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(tx);
    if let Ok(writer) = writer {
        let _ = writer.join();
    }
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_relayed_connection_is_closed_on_both_sides() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = target.local_addr().unwrap().to_string();
        let relay = Relay::start_with_idle(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            &target_addr,
            Duration::ZERO,
            Duration::from_millis(200),
        )
        .unwrap();
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        let (mut upstream, _) = target.accept().unwrap();
        // Generous client timeouts: the test fails (instead of hanging) if the relay never
        // closes, and asserts no speed.
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        upstream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        upstream.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        // Now nobody says anything: both sides see the connection end.
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
        assert_eq!(upstream.read_to_end(&mut rest).unwrap(), 0);
    }

    #[test]
    fn stop_closes_open_relayed_connections_and_returns() {
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = target.local_addr().unwrap().to_string();
        let relay = Relay::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            &target_addr,
            Duration::ZERO,
        )
        .unwrap();
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        let (mut upstream, _) = target.accept().unwrap();
        c.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        upstream.read_exact(&mut got).unwrap();
        // Both ends stay open and silent; stop must not wait for them to idle out (IDLE is
        // 60 s: the bound below is half of it, a readiness wait, not a speed claim).
        let (done, stopped) = mpsc::channel();
        thread::spawn(move || {
            let mut relay = relay;
            relay.stop();
            let _ = done.send(());
        });
        assert!(stopped.recv_timeout(IDLE / 2).is_ok(), "stop hung");
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut rest = Vec::new();
        match c.read_to_end(&mut rest) {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        }
    }

    #[test]
    fn bytes_pass_through_unchanged_and_late() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_addr = echo.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).unwrap(),
                }
            }
        });
        let relay = Relay::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            &echo_addr,
            Duration::from_millis(30),
        )
        .unwrap();
        let mut c = TcpStream::connect(relay.addr()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let started = Instant::now();
        let writer = {
            let mut c = c.try_clone().unwrap();
            let data = data.clone();
            thread::spawn(move || {
                c.write_all(&data).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back, data);
        // A round trip crosses the relay twice each way's delay: it cannot be faster.
        assert!(started.elapsed() >= Duration::from_millis(60));
    }
}
