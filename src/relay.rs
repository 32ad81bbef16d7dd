//! A delaying TCP relay, for watching what latency does to a protocol (and for the benchmarks
//! and the network tests, on kernels without `tc netem`).
//!
//! Each accepted connection is joined to a new connection to the target. In each direction a
//! reader thread stamps every chunk it reads with "not before now + delay" and hands it to a
//! writer thread, which waits until then and writes it on. Chunks are never spaced out, only
//! held back, so the relay adds latency without capping bandwidth; the bounded channel between
//! the two keeps TCP's back-pressure.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::{Duration, Instant};

use crate::server::Server;

/// Bytes read at once; chunks in flight per direction (bounds memory to about 64 MiB).
const CHUNK: usize = 64 * 1024;
const IN_FLIGHT: usize = 1024;

/// A running relay. Dropping it stops it.
pub struct Relay {
    server: Server,
}

impl Relay {
    /// Relay connections accepted on `listener` to `target`, holding every byte back by `delay`
    /// in each direction (so a round trip through it gains `2 × delay`).
    pub fn start(listener: TcpListener, target: &str, delay: Duration) -> io::Result<Relay> {
        let target: SocketAddr = target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "target has no address"))?;
        let server = Server::spawn(listener, "relay", 4096, move |client| {
            let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
                let _ = client.shutdown(Shutdown::Both);
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ = client.set_nodelay(true);
            let upstream = Arc::new(upstream);
            let down = {
                let (from, to) = (upstream.clone(), client.clone());
                thread::spawn(move || pump(&from, &to, delay))
            };
            pump(&client, &upstream, delay);
            let _ = down.join();
        })?;
        Ok(Relay { server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }
}

/// Copy `from` to `to`, each chunk delayed by `delay`, until `from` ends; then end `to`.
fn pump(from: &Arc<TcpStream>, to: &Arc<TcpStream>, delay: Duration) {
    let (tx, rx): (SyncSender<(Instant, Vec<u8>)>, Receiver<_>) = mpsc::sync_channel(IN_FLIGHT);
    let writer = {
        let to = to.clone();
        thread::spawn(move || {
            for (due, chunk) in rx {
                let wait = due.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    thread::sleep(wait);
                }
                if (&*to).write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match (&**from).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Read);
}

#[cfg(test)]
mod tests {
    use super::*;

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
