//! Servers as child processes and the line clients that load them (cases 4, 5 and 11):
//! `torrentphile tracker` with its per-address caps lifted (every bench client is 127.0.0.1),
//! many connections opened and PINGed from a few threads, and the baseline server of cases 4
//! and 5, the echo server: this bench binary run with `--echo-server`, a thread per
//! connection echoing what it reads. Measures nothing itself.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use super::common::Proc;
use super::{BIN, Res};

/// `torrentphile tracker` as a child process, at most `max_conns` connections.
pub fn spawn_tracker(max_conns: usize) -> Res<(Proc, SocketAddr)> {
    let mut cmd = Command::new(BIN);
    let n = max_conns.to_string();
    cmd.args([
        "tracker",
        "--port",
        "0",
        "--timeout",
        "600",
        "--max-conns",
        &n,
    ]);
    // Every bench client comes from 127.0.0.1: lift the per-address caps to the global one.
    cmd.args(["--max-conns-per-addr", &n, "--max-peers-per-addr", &n]);
    spawn_listening(cmd.args(["--max-files-per-addr", "100000000"]))
}

/// Start a server process that says `listening on ADDR` first: the process and the address.
pub fn spawn_listening(cmd: &mut Command) -> Res<(Proc, SocketAddr)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    Ok((
        proc,
        addr.ok_or_else(|| format!("the tracker said {line:?}"))?,
    ))
}

/// Read from `stream` until `k` lines have arrived (the replies to what was sent).
pub fn read_replies(mut stream: &TcpStream, k: usize) -> Res<String> {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    while got.iter().filter(|&&c| c == b'\n').count() < k {
        let n = stream.read(&mut buf)?;
        if n == 0 || got.len() > 1 << 20 {
            return Err("the tracker closed the connection".into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Open `n` connections (4 threads), send each `lines(i)`, and check its `k` replies.
pub fn open_conns(
    addr: SocketAddr,
    n: usize,
    k: usize,
    lines: impl Fn(usize) -> String + Sync,
) -> Result<Vec<TcpStream>, String> {
    let one = |i: usize| -> Res<TcpStream> {
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        (&c).write_all(lines(i).as_bytes())?;
        match read_replies(&c, k)?.lines().find(|l| l.starts_with("ERR")) {
            Some(err) => Err(format!("connection {i}: {err}").into()),
            None => Ok(c),
        }
    };
    let chunk = move |t: usize| -> Result<Vec<TcpStream>, String> {
        (t..n)
            .step_by(4)
            .map(|i| one(i).map_err(|e| e.to_string()))
            .collect()
    };
    thread::scope(|s| {
        let workers: Vec<_> = (0..4).map(|t| s.spawn(move || chunk(t))).collect();
        let mut all = Vec::with_capacity(n);
        for w in workers {
            all.extend(w.join().map_err(|_| "a worker panicked")??);
        }
        Ok(all)
    })
}

/// Send PING on every connection, then expect `answer` (PONG, or PING from an echo) on each.
pub fn ping_all(conns: &[TcpStream], answer: &str) -> Res<()> {
    for mut c in conns {
        c.write_all(b"PING\n")?;
    }
    for c in conns {
        if !read_replies(c, 1)?.starts_with(answer) {
            return Err(format!("PING was not answered {answer}").into());
        }
    }
    Ok(())
}

/// The baseline of case 5, run as a child process (this bench binary with `--echo-server`):
/// the barest std server there is, a thread per connection with the tracker's stack size
/// (`server::CONN_STACK`), each echoing what it reads through `io::copy`. Never returns.
pub fn echo_server() -> ! {
    let listener = match TcpListener::bind("127.0.0.1:0").and_then(|l| Ok((l.local_addr()?, l))) {
        Ok((addr, l)) => {
            println!("listening on {addr}");
            let _ = io::stdout().flush();
            l
        }
        Err(e) => {
            eprintln!("echo server: {e}");
            std::process::exit(1);
        }
    };
    for conn in listener.incoming().flatten() {
        let _ = thread::Builder::new()
            .name("echo-conn".into())
            .stack_size(torrentphile::server::CONN_STACK)
            .spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(600)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
                let _ = io::copy(&mut &conn, &mut &conn);
            });
    }
    std::process::exit(0)
}
