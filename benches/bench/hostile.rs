//! Bench case: the honest download of issue 14 under attack, next to the same download
//! alone, in the same run: (1) while a connection flood from 8 loopback "hosts" fills the
//! holder's connection cap, (2) among 50 fake holders that refuse every piece. Times are
//! reported, never asserted (the tests in tests/hostile/ show the download finishes).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use super::bind::{connect_from, lo};
use super::common::{random_file, start_tracker, timed_download};
use super::report::Section;
use super::{Bench, MIB, Res};
use torrentphile::peer::store::hashes_text;
use torrentphile::peer::{Peer, PeerConfig};
use torrentphile::protocol::{Digest, Meta, Request};

/// The holder's caps in this case: 256 connections, 32 per address (8 flooding hosts fill it).
const CAP: usize = 256;
const PER_ADDR: usize = 32;

/// A fake holder: registers, announces `meta`, lists every piece in `HAVE`, serves `HASHES`,
/// and refuses every `PIECE`. Lives until `stop`.
fn fake_holder(
    tracker: SocketAddr,
    meta: &Meta,
    hashes: &str,
    stop: &Arc<AtomicBool>,
) -> Res<TcpStream> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let (bits, hashes, stop) = (
        "1".repeat(meta.pieces() as usize),
        hashes.to_string(),
        stop.clone(),
    );
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let (bits, hashes) = (bits.clone(), hashes.clone());
            thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                let mut w = match conn.try_clone() {
                    Ok(w) => w,
                    Err(_) => return,
                };
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    let reply = match line.split(' ').next() {
                        Some("HELLO") => "ACK hello\n".to_string(),
                        Some("HAVE") => format!("BITFIELD {bits}\n"),
                        Some("HASHES") => format!("DATA {}\n{hashes}", hashes.len()),
                        _ => "ERR unavailable this fake refuses\n".to_string(),
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut conn = TcpStream::connect(tracker)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let upload = Request::Upload(meta.clone()).to_string();
    conn.write_all(format!("REGISTER {port}\n{upload}\n").as_bytes())?;
    let mut reader = BufReader::new(conn.try_clone()?);
    for _ in 0..2 {
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
        if !reply.starts_with("ACK") {
            return Err(format!("a fake's announce was answered {reply:?}").into());
        }
    }
    Ok(conn)
}

/// Idle connections from 127.0.0.2..=9 to `target`, `PER_ADDR` each; those the holder
/// keeps, in a list (evicted ones close on its side).
fn flood(target: SocketAddr) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for host in 2..10u8 {
        for _ in 0..PER_ADDR {
            if let Ok(s) = connect_from(lo(host), target) {
                held.push(s);
            }
        }
    }
    held
}

pub fn hostile(b: &mut Bench, s: &mut Section) -> Res<()> {
    let size = if b.scale.quick { 4 * MIB } else { 64 * MIB };
    let dir = b.root.join("hostile");
    let tracker = start_tracker()?;
    let taddr = tracker.addr();
    let (_, meta, hashes) = random_file(&dir.join("src"), "h.bin", size)?;
    let mut config = PeerConfig::new(&taddr.to_string(), &dir.join("src"));
    config.max_conns = CAP;
    config.max_conns_per_addr = PER_ADDR;
    let holder = Peer::start(TcpListener::bind("127.0.0.1:0")?, config)?;
    holder.wait_registered(Duration::from_secs(10))?;
    let alone = timed_download(taddr, &dir.join("d0"), "h.bin")?.0;
    let conns = flood(holder.addr());
    let flooded = timed_download(taddr, &dir.join("d1"), "h.bin")?.0;
    let held = conns.len();
    drop(conns);
    let stop = Arc::new(AtomicBool::new(false));
    let hashes_text: String = hashes_text(&hashes as &[Digest]);
    let fakes = (0..50)
        .map(|_| fake_holder(taddr, &meta, &hashes_text, &stop))
        .collect::<Res<Vec<_>>>()?;
    let among = timed_download(taddr, &dir.join("d2"), "h.bin")?.0;
    stop.store(true, Ordering::SeqCst);
    drop(fakes);
    let mib = size / MIB;
    s.row(format!("{mib} MiB download, alone"), "s", vec![alone]);
    s.row(
        format!("the same while 8 hosts flood the holder's {CAP} slots"),
        "s",
        vec![flooded],
    )
    .vs = format!(
        "{:.1}x alone; {held} flood connections opened",
        flooded / alone.max(1e-6)
    );
    s.row(
        "the same among 50 fakes refusing every piece",
        "s",
        vec![among],
    )
    .vs = format!("{:.1}x alone", among / alone.max(1e-6));
    s.note(format!(
        "in-process tracker and holder (caps {CAP} connections, {PER_ADDR} per address); the flood \
         is idle connections from 127.0.0.2-9 (bound with tests/hostile/bind.rs), the fakes answer \
         HAVE with every piece and PIECE with ERR unavailable"
    ));
    drop(holder);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
