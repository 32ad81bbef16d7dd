//! The accept loop's and the reply path's tests: caps, eviction, a stop that joins every thread.

use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;

use super::*;
use crate::conn::{Conn, Timeouts, Trace};
use crate::protocol::{Request, Role};

/// Counts itself out when its thread ends (its `Drop` runs inside the thread).
struct Live(Arc<AtomicUsize>);
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A server whose handler blocks reading its socket until it ends; `live` counts handler
/// threads, and every handler says on `started` that it is running.
fn blocking_server(live: &Arc<AtomicUsize>) -> (Server, mpsc::Receiver<()>) {
    let (started, ready) = mpsc::channel();
    let started = Mutex::new(started);
    let live = live.clone();
    let server = Server::spawn(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        "test",
        100,
        move |stream| {
            live.fetch_add(1, Ordering::SeqCst);
            let _guard = Live(live.clone());
            let _ = started.lock().unwrap().send(());
            let mut buf = [0u8; 64];
            while matches!((&*stream).read(&mut buf), Ok(n) if n > 0) {}
        },
    )
    .unwrap();
    (server, ready)
}

#[test]
fn stop_ends_and_joins_every_connection_thread() {
    let live = Arc::new(AtomicUsize::new(0));
    let (mut server, ready) = blocking_server(&live);
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    for _ in 0..3 {
        ready.recv().unwrap();
    }
    assert_eq!(live.load(Ordering::SeqCst), 3);
    // The clients stay open and silent: only stop's shutdown ends the handlers.
    server.stop();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "a connection thread outlived stop"
    );
    drop(clients);
}

#[test]
fn ended_connections_are_joined_at_the_next_accept() {
    let live = Arc::new(AtomicUsize::new(0));
    let (server, ready) = blocking_server(&live);
    for _ in 0..20 {
        let c = TcpStream::connect(server.addr()).unwrap();
        ready.recv().unwrap();
        drop(c);
    }
    let c = TcpStream::connect(server.addr()).unwrap();
    ready.recv().unwrap();
    // The slots of the 20 closed connections were joined and dropped at later accepts,
    // except those whose threads had not quite ended yet: they do not pile up.
    let slots = lock(&server.open).slots.len();
    assert!(slots < 10, "{slots} slots kept for 1 open connection");
    drop(c);
}

#[test]
fn the_cap_counts_served_connections_not_slots_waiting_to_be_joined() {
    let mut conns = Conns::default();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for id in 0..3 {
        let slot = Slot {
            stream: None,
            thread: Some(thread::spawn(|| {})),
        };
        conns.slots.insert(id, slot);
        conns.table.add(id, ip);
    }
    // Connection 1's thread ended: it leaves the table at once, its slot at the next accept.
    conns.ended.push(1);
    conns.table.remove(1);
    assert_eq!(conns.live(), 2);
    let ended = conns.take_ended();
    assert_eq!((ended.len(), conns.slots.len(), conns.live()), (1, 2, 2));
    for t in ended
        .into_iter()
        .chain(conns.slots.into_values().filter_map(|s| s.thread))
    {
        t.join().unwrap();
    }
}

/// A toy server speaking the peer's verbs through `line_loop`.
fn echo_server(role: Role) -> Server {
    Server::spawn(
        TcpListener::bind("127.0.0.1:0").unwrap(),
        "test",
        10,
        move |stream| {
            let Ok(mut conn) = Conn::new(stream, Timeouts::default(), Trace::off()) else {
                return;
            };
            line_loop(&mut conn, role, |_, request| match request {
                Request::Bye => Answer::bye(),
                other => Answer::Line(Reply::Ack(other.to_string())),
            });
        },
    )
    .unwrap()
}

fn exchange(server: &Server, lines: &str) -> Vec<String> {
    let mut c = TcpStream::connect(server.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(lines.as_bytes()).unwrap();
    BufReader::new(c).lines().map(|l| l.unwrap()).collect()
}

#[test]
fn pipelined_requests_get_every_reply_in_order_even_when_the_client_stops_writing() {
    let peer = echo_server(Role::Peer);
    let names: Vec<String> = (0..2000).map(|i| format!("f{i}")).collect();
    let burst: String = names.iter().map(|n| format!("HAVE {n}\n")).collect();
    // No BYE: the client half-closes after its burst, so the last replies are the ones
    // queued when the server reads the end of the stream.
    let mut c = TcpStream::connect(peer.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(burst.as_bytes()).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let got: Vec<String> = BufReader::new(c).lines().map(|l| l.unwrap()).collect();
    let want: Vec<String> = names.iter().map(|n| format!("ACK HAVE {n}")).collect();
    assert_eq!(got, want);
}

#[test]
fn a_verb_of_the_other_server_is_unknown_before_its_arguments_are_read() {
    let peer = echo_server(Role::Peer);
    assert_eq!(
        exchange(&peer, "REGISTER abc\nUPLOAD x\nPING\nBYE\n"),
        [
            "ERR unknown-verb REGISTER is a tracker verb; this is a peer (try HELP)",
            "ERR unknown-verb UPLOAD is a tracker verb; this is a peer (try HELP)",
            "ACK PING",
            "ACK bye",
        ]
    );
    let tracker = echo_server(Role::Tracker);
    assert_eq!(
        exchange(&tracker, "GET ../x 1\nREGISTER abc\nQUIT\n"),
        [
            "ERR unknown-verb GET is a peer verb; this is the tracker (try HELP)",
            "ERR bad-request port \"abc\" is not a valid number",
            "ACK bye",
        ]
    );
}
