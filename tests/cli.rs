//! The command line as a new user meets it: usage errors at once (exit 2), a peer that serves
//! whether or not anyone types at it, a shell that says why it refuses, a `get` that stops
//! cleanly on Ctrl-C, and a simulation that never deletes a folder it did not make.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Behaviour, FakePeer, temp_dir, tracker};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_torrentphile"))
}

fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Start the binary with piped stdin and stdout; returns it once it printed `listening on`.
fn start_piped(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut first = String::new();
    out.read_line(&mut first).expect("a first line");
    assert!(first.starts_with("listening on "), "first line {first:?}");
    (child, out)
}

#[test]
fn version_and_usage_errors_exit_at_once() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("torrentphile {}", env!("CARGO_PKG_VERSION"))
    );

    let dir = temp_dir("cli-usage");
    let d = dir.to_str().expect("utf-8 temp path");
    let cases: &[(&[&str], &str)] = &[
        (
            &["get", "a.txt", "--dir", d, "--tracker", "nowhere"],
            "HOST:PORT",
        ),
        (
            &["get", "a.txt", "--dir", d, "--tracker", "127.0.0.1:0"],
            "HOST:PORT",
        ),
        (&["get", "a.txt", "b.txt", "--dir", d], "one too many"),
        (&["get", "--dir", d], "needs the name"),
        (
            &["get", "a.txt", "--dir", d, "--workers", "0"],
            "--workers must be at least 1",
        ),
        (
            &["get", "a.txt", "--dir", d, "--timeout", "0"],
            "--timeout must be",
        ),
        (
            &["peer", "--dir", d, "stray"],
            "takes no argument \"stray\"",
        ),
        (&["tracker", "--timeout", "0"], "--timeout must be"),
        (&["tracker", "extra"], "takes no argument"),
        (
            &["relay", "--to", "127.0.0.1:1", "--delay", "-5"],
            "--delay",
        ),
        (&["sim", "again"], "takes no argument"),
    ];
    // Exit 2 is the proof of "at once": the old way retried the tracker for 10 s, then
    // failed with exit 1.
    for (args, expect) in cases {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("torrentphile: "), "{args:?}: {err}");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
    }
    // Nothing was created in the folder by a refused command.
    assert!(fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none()));
}

#[test]
fn a_peer_without_shell_serves_and_never_reads_stdin() {
    let t = tracker();
    let dir = temp_dir("cli-noshell");
    fs::write(dir.join("hello.txt"), b"hello\n").expect("write");
    let taddr = t.addr().to_string();
    let (mut child, _out) = start_piped(&[
        "peer",
        "--dir",
        dir.to_str().expect("utf-8"),
        "--port",
        "0",
        "--tracker",
        &taddr,
    ]);
    // If the peer read a shell from stdin it would quit on this line.
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"quit\n")
        .expect("write to the peer's stdin");
    common::eventually(
        "the peer announces hello.txt",
        Duration::from_secs(20),
        || !common::who_has(&t, "hello.txt").is_empty(),
    );
    assert!(child.try_wait().expect("wait").is_none(), "the peer exited");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_shell_echoes_paths_and_says_why_it_refuses() {
    let t = tracker();
    let dir = temp_dir("cli-shell");
    let src = temp_dir("cli-shell-src").join("notes.txt");
    fs::write(&src, b"some notes\n").expect("write");
    let taddr = t.addr().to_string();
    let (mut child, mut out) = start_piped(&[
        "peer",
        "--dir",
        dir.to_str().expect("utf-8"),
        "--port",
        "0",
        "--tracker",
        &taddr,
        "--shell",
    ]);
    let script = format!(
        "share {}\nget ../etc/passwd\nget nobody-has-this.txt\nfrobnicate\nget\nquit\n",
        src.display()
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(script.as_bytes()).expect("write script");
    drop(stdin);
    let mut text = String::new();
    out.read_to_string(&mut text)
        .expect("read the shell's output");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{text}");
    assert!(
        text.contains(&format!("sharing {} as notes.txt (11 bytes", src.display())),
        "{text}"
    );
    assert!(text.contains("error: get ../etc/passwd: "), "{text}");
    assert!(
        text.contains("error: get nobody-has-this.txt: no peer holds"),
        "{text}"
    );
    assert!(
        text.contains("error: unknown command \"frobnicate\""),
        "{text}"
    );
    assert!(text.contains("error: get takes NAME"), "{text}");
    // It never claimed to start a download it was going to refuse.
    assert!(!text.contains("downloading"), "{text}");
}

#[test]
fn ctrl_c_ends_a_stalled_get_cleanly_and_keeps_the_part_file() {
    let t = tracker();
    let src = temp_dir("cli-int-src").join("big.bin");
    common::random_file(&src, 4 << 20, 7);
    // A holder that starts every piece and never finishes one.
    let _fake = FakePeer::start(&t, &src, "big.bin", 1 << 18, Behaviour::StallAfter(0));
    let dir = temp_dir("cli-int");
    let taddr = t.addr().to_string();
    let child = bin()
        .args([
            "get",
            "big.bin",
            "--dir",
            dir.to_str().expect("utf-8"),
            "--tracker",
            &taddr,
            "--timeout",
            "30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("get starts");
    // Wait until the download has really begun: its part file exists.
    common::eventually("the part file appears", Duration::from_secs(20), || {
        dir.join(".torrentphile/big.bin.part").exists()
    });
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("torrentphile: get interrupted at big.bin"),
        "{err}"
    );
    assert!(err.contains("run the same get to resume"), "{err}");
    assert!(!dir.join("big.bin").exists(), "nothing published");
    assert!(dir.join(".torrentphile/big.bin.part").exists());
}

#[test]
fn sim_refuses_a_folder_it_did_not_make_and_clears_its_own() {
    let root = temp_dir("cli-sim");
    let mine = root.join("10000");
    fs::create_dir_all(&mine).expect("mkdir");
    fs::write(mine.join("thesis.tex"), b"a user's own work\n").expect("write");
    let args = [
        "sim",
        "--root",
        root.to_str().expect("utf-8"),
        "--tracker-port",
        "0",
        "--base-port",
        "0",
        "--quiet",
    ];
    let out = run(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("was not made by a simulation"), "{err}");
    assert_eq!(
        fs::read(mine.join("thesis.tex")).expect("the user's file is still there"),
        b"a user's own work\n"
    );

    // Moved away, the simulation runs, twice: the second run clears what the first made.
    fs::rename(&mine, root.join("moved")).expect("rename");
    for _ in 0..2 {
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "10000: test1.txt test3.txt | 10001: (empty) | 10002: test1.txt | 10003: test3.txt | 10004: test1.txt test3.txt"
        );
    }
    assert!(root.join("moved/thesis.tex").exists());
}

#[test]
fn the_sims_narration_never_shows_a_receive_before_its_send() {
    let root = temp_dir("cli-sim-order");
    let out = run(&[
        "sim",
        "--root",
        root.to_str().expect("utf-8"),
        "--tracker-port",
        "0",
        "--base-port",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // Between peers both ends are traced: every line received must have been sent before.
    // (The tracker is not traced in the simulation, so its lines are left out.)
    let peer_to_peer = [
        "HELLO ",
        "HAVE ",
        "PIECE ",
        "HASHES ",
        "ACK hello",
        "BITFIELD ",
        "DATA ",
        "<",
    ];
    let mut sent: std::collections::HashMap<String, i64> = Default::default();
    let mut checked = 0;
    for line in text.lines() {
        // `  [   12.345 ms] 10002 > 127.0.0.1:40933  PIECE test1.txt 0`
        let Some((_, rest)) = line.split_once(" ms] ") else {
            continue;
        };
        let mut words = rest.splitn(3, ' ');
        let (_label, arrow) = (words.next(), words.next());
        let Some((_, body)) = words.next().and_then(|r| r.split_once("  ")) else {
            continue;
        };
        if !peer_to_peer.iter().any(|p| body.starts_with(p)) {
            continue;
        }
        let count = sent.entry(body.to_string()).or_default();
        match arrow {
            Some(">") => *count += 1,
            Some("<") => {
                *count -= 1;
                assert!(
                    *count >= 0,
                    "{body:?} was received before it was sent:\n{text}"
                );
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(
        checked >= 20,
        "only {checked} peer-to-peer lines in:\n{text}"
    );
}
