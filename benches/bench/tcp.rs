//! The plain TCP copy baselines of cases 1, 2 and 3: one file over one connection
//! (`tcp_copy`: `sendfile` out, positioned writes in, optionally written to disk as a download
//! does, optionally through the delaying relay) and one file fanned out to n receivers at once
//! (`tcp_fanout`): the same bytes into the same files with no protocol and no hashing. Also
//! the accept loop the bench's own small servers run on.

use std::fs;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use super::Res;
use super::common::secs;
use torrentphile::relay::Relay;

/// An accept loop on 127.0.0.1 that ends when dropped.
pub struct Acceptor {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Acceptor {
    /// Accept on a free loopback port, calling `handle` for each connection.
    pub fn start(handle: impl Fn(TcpStream) + Send + 'static) -> Res<Acceptor> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (addr, stop) = (listener.local_addr()?, Arc::new(AtomicBool::new(false)));
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    _ if stop2.load(Ordering::SeqCst) => break,
                    Ok(conn) => handle(conn),
                    Err(_) => break,
                }
            }
        });
        Ok(Acceptor { addr, stop })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A delaying relay (`torrentphile::relay`) on a free port in front of `target`.
pub fn relay(target: SocketAddr, one_way: Duration) -> Res<Relay> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(Relay::start(listener, &target.to_string(), one_way)?)
}

/// Receive everything `conn` sends into `file` as fast as std allows: one reused 1 MiB
/// buffer, each read written where it belongs with a positioned write; bytes received.
pub fn receive_into(mut conn: &TcpStream, file: &fs::File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let (mut buf, mut at) = (vec![0u8; 1 << 20], 0u64);
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(at),
            Ok(n) => {
                file.write_all_at(&buf[..n], at)?;
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Copy `src` over one TCP connection into a file in `dir`, optionally through a relay with
/// `delay` each way, and with `durable` write it to disk as a download does (a side thread
/// `fdatasync`s every 250 ms, then one `fsync` at the end);
/// seconds. The best plain copy std gives: `io::copy` from a file into a socket is `sendfile`
/// from the page cache on Linux, and the receiver is `receive_into`.
pub fn tcp_copy(src: &Path, dir: &Path, delay: Option<Duration>, durable: bool) -> Res<f64> {
    let dst = dir.join("tcp-copy.bin");
    let (done_tx, done_rx) = mpsc::channel();
    let dst2 = dst.clone();
    let sink = Acceptor::start(move |conn| {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        let copied = fs::File::create(&dst2).and_then(|f| {
            if !durable {
                return receive_into(&conn, &f);
            }
            // As a download does: a side thread writes the file out every 250 ms while it
            // grows, so the last fsync has little left.
            let done = AtomicBool::new(false);
            let n = thread::scope(|s| {
                let flusher = s.spawn(|| {
                    while !done.load(Ordering::SeqCst) {
                        thread::park_timeout(Duration::from_millis(250));
                        let _ = f.sync_data();
                    }
                });
                let n = receive_into(&conn, &f);
                done.store(true, Ordering::SeqCst);
                flusher.thread().unpark();
                n
            })?;
            f.sync_all()?;
            Ok(n)
        });
        let _ = done_tx.send(copied.map_err(|e| e.to_string()));
    })?;
    let via = delay.map(|d| relay(sink.addr, d)).transpose()?;
    let t = Instant::now();
    let mut conn = TcpStream::connect(via.as_ref().map_or(sink.addr, Relay::addr))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    let sent = io::copy(&mut fs::File::open(src)?, &mut conn)?;
    drop(conn);
    let got = done_rx.recv_timeout(Duration::from_secs(120))??;
    let took = secs(t);
    let _ = fs::remove_file(&dst);
    if got != sent {
        return Err(format!("tcp copy: sent {sent} bytes, received {got}").into());
    }
    Ok(took)
}

/// `src` sent to `n` receivers at once, one connection and one sender thread each, every
/// receiver writing its own file as `tcp_copy` does when durable; seconds until the last
/// file is on disk.
pub fn tcp_fanout(src: &Path, dir: &Path, n: usize) -> Res<f64> {
    let (done_tx, done_rx) = mpsc::channel();
    let out = dir.join("fanout");
    fs::create_dir_all(&out)?;
    let out2 = out.clone();
    let next = Arc::new(Mutex::new(0usize));
    let sink = Acceptor::start(move |conn| {
        let (done_tx, out) = (done_tx.clone(), out2.clone());
        let k = {
            let mut next = next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *next += 1;
            *next
        };
        thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
            let copied = fs::File::create(out.join(format!("{k}.bin"))).and_then(|f| {
                let done = AtomicBool::new(false);
                let got = thread::scope(|s| {
                    let flusher = s.spawn(|| {
                        while !done.load(Ordering::SeqCst) {
                            thread::park_timeout(Duration::from_millis(250));
                            let _ = f.sync_data();
                        }
                    });
                    let got = receive_into(&conn, &f);
                    done.store(true, Ordering::SeqCst);
                    flusher.thread().unpark();
                    got
                })?;
                f.sync_all()?;
                Ok(got)
            });
            let _ = done_tx.send(copied.map_err(|e| e.to_string()));
        });
    })?;
    let size = fs::metadata(src)?.len();
    let t = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|_| {
            let (src, addr) = (src.to_path_buf(), sink.addr);
            thread::spawn(move || -> io::Result<u64> {
                let mut conn = TcpStream::connect(addr)?;
                conn.set_write_timeout(Some(Duration::from_secs(60)))?;
                io::copy(&mut fs::File::open(src)?, &mut conn)
            })
        })
        .collect();
    for sender in senders {
        let sent = sender.join().map_err(|_| "a fan-out sender panicked")??;
        if sent != size {
            return Err(format!("fan-out: sent {sent} bytes of {size}").into());
        }
    }
    for _ in 0..n {
        let got = done_rx.recv_timeout(Duration::from_secs(120))??;
        if got != size {
            return Err(format!("fan-out: received {got} bytes of {size}").into());
        }
    }
    let took = secs(t);
    let _ = fs::remove_dir_all(&out);
    Ok(took)
}
