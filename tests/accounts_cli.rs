//! Accounts through the binary: `sim --scenario groups` tells its story and ends with one
//! result line; `get NAME --group` downloads a group file in one shot; `peer --user` logs in
//! at start; password files that are missing, unreadable or empty are CLI errors naming the
//! file; and the password is never printed, not even with `--trace`.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{peer_with, temp_dir, tracker_with};
use torrentphile::peer::Peer;
use torrentphile::protocol::AccountRequest as R;
use torrentphile::tracker::accounts::AccountsConfig;
use torrentphile::tracker::{Tracker, TrackerConfig};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tracker() -> Tracker {
    tracker_with(TrackerConfig {
        accounts: AccountsConfig {
            iterations: 64,
            ..AccountsConfig::default()
        },
        ..TrackerConfig::default()
    })
}

fn peer(tracker: &Tracker, tag: &str) -> Peer {
    peer_with(tracker, &temp_dir(tag), |c| c.rescan_every = None)
}

fn ok(result: Result<String, String>) -> String {
    result.unwrap_or_else(|e| panic!("refused: {e}"))
}

#[test]
fn the_groups_sim_tells_the_story_and_ends_with_one_result_line() {
    let root = temp_dir("sim-groups");
    let out = run(&[
        "sim",
        "--scenario",
        "groups",
        "--root",
        root.to_str().expect("utf-8"),
        "--tracker-port",
        "0",
        "--base-port",
        "0",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    let last = stdout.lines().last().expect("a result line");
    assert!(
        last.starts_with(
            "groups: alice created g1 and shared notes.txt; bob joined and downloaded it; \
             carol refused by the tracker and by alice's peer; alice logged out (no fetch) and in (fetch again); "
        ),
        "{last}"
    );
    for narrated in [
        "alice > ", // the protocol lines themselves
        "SALT alice",
        "CREATE-USER alice <redacted> <redacted>",
        "PROOF <redacted>",
        "CREATE-GROUP g1",
        "ACK created group g1; you are its admin",
        "GUPLOAD g1 notes.txt 51 ",
        "JOIN g1",
        "ACK requests: bob",
        "ACCEPT g1 bob",
        "ACK bob is now a member of g1",
        "GRANT g1 notes.txt ",
        "ACK ticket g1 notes.txt for bob",
        "ERR not-member carol is not a member of group g1",
        "carol (raw) < ",
        "ERR not-found this peer does not hold notes.txt",
        "ERR ticket-forged ",
        "LOGOUT",
        "ACK logged out alice",
        "== bob fetches from alice again: same bytes",
    ] {
        assert!(stdout.contains(narrated), "no {narrated:?} in\n{stdout}");
    }
    for secret in ["alice-pw", "bob-pw", "carol-pw"] {
        assert!(!stdout.contains(secret), "{secret} printed");
    }
    // Carol's direct questions are answered with ERR only: no DATA ever reaches her.
    assert!(
        !stdout
            .lines()
            .any(|l| l.contains("carol (raw) < ") && l.contains("DATA")),
        "{stdout}"
    );
}

/// alice shares `notes.txt` in g1; bob is a member, logged out again so the binary can log in.
fn group_with_member(tracker: &Tracker) -> (Peer, Vec<u8>) {
    let alice = peer(tracker, "cli-alice");
    ok(alice.create_user("alice", "alice-pw"));
    ok(alice.login("alice", "alice-pw"));
    ok(alice.account(R::CreateGroup { group: "g1".into() }));
    let src = temp_dir("cli-src").join("notes.txt");
    let bytes = b"group notes: one shot\n".to_vec();
    fs::write(&src, &bytes).unwrap();
    alice.upload_group(&src, "g1").unwrap();
    let bob = peer(tracker, "cli-bob");
    ok(bob.create_user("bob", "bob pw with spaces"));
    ok(bob.login("bob", "bob pw with spaces"));
    ok(bob.account(R::Join { group: "g1".into() }));
    ok(alice.account(R::Accept {
        group: "g1".into(),
        user: "bob".into(),
    }));
    ok(bob.logout());
    drop(bob);
    (alice, bytes)
}

fn password_file(dir: &Path, contents: &str) -> String {
    let path = dir.join("pw");
    fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn get_with_group_downloads_in_one_shot_and_never_prints_the_password() {
    let tracker = tracker();
    let (_alice, bytes) = group_with_member(&tracker);
    let addr = tracker.addr().to_string();
    let dir = temp_dir("cli-get-group");
    let pw = password_file(&dir, "bob pw with spaces\n");
    let out_dir = temp_dir("cli-get-out");
    let got = run(&[
        "get",
        "notes.txt",
        "--group",
        "g1",
        "--user",
        "bob",
        "--password-file",
        &pw,
        "--dir",
        dir.join("peer").to_str().unwrap(),
        "--tracker",
        &addr,
        "--out",
        out_dir.to_str().unwrap(),
        "--trace",
    ]);
    let (stdout, stderr) = (text(&got.stdout), text(&got.stderr));
    assert!(got.status.success(), "{stderr}");
    assert!(stdout.contains("logged in as bob"), "{stdout}");
    assert!(
        stdout.contains("downloaded notes.txt of g1 (22 bytes)"),
        "{stdout}"
    );
    assert_eq!(fs::read(out_dir.join("notes.txt")).unwrap(), bytes);
    // Kept in the group's folder, not in the public one.
    let kept = dir.join("peer/.groups/g1/notes.txt");
    assert_eq!(fs::read(kept).unwrap(), bytes);
    assert!(!dir.join("peer/notes.txt").exists());
    assert!(stderr.contains("PROOF <redacted>"), "{stderr}");
    assert!(!stdout.contains("pw with") && !stderr.contains("pw with"));

    // The wrong password: refused with the tracker's reason, still not printed.
    let bad = password_file(&temp_dir("cli-get-bad"), "not bob's\n");
    let got = run(&[
        "get",
        "notes.txt",
        "--group",
        "g1",
        "--user",
        "bob",
        "--password-file",
        &bad,
        "--dir",
        temp_dir("cli-get-bad-peer").to_str().unwrap(),
        "--tracker",
        &addr,
    ]);
    let stderr = text(&got.stderr);
    assert_eq!(got.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot log in as bob"), "{stderr}");
    assert!(!stderr.contains("not bob's"), "{stderr}");
}

#[test]
fn password_files_that_are_missing_or_empty_are_errors_naming_them() {
    let dir = temp_dir("cli-pw");
    let d = dir.to_str().unwrap();
    let missing = dir.join("nope");
    let empty = password_file(&dir, "\n");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec![
                "get",
                "x",
                "--group",
                "g",
                "--user",
                "u",
                "--password-file",
                missing.to_str().unwrap(),
                "--dir",
                d,
            ],
            format!("cannot read the password file {}", missing.display()),
        ),
        (
            vec!["peer", "--user", "u", "--password-file", &empty, "--dir", d],
            format!("the password file {empty} is empty"),
        ),
        (
            vec!["get", "x", "--group", "g", "--dir", d],
            "--group needs --user USER and --password-file FILE".into(),
        ),
        (
            vec!["peer", "--user", "u", "--dir", d],
            "--user needs --password-file FILE".into(),
        ),
        (
            vec!["get", "x", "--out", d, "--dir", d],
            "--out goes with --group".into(),
        ),
    ];
    for (args, want) in cases {
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
    if !is_root() {
        let locked = password_file(&temp_dir("cli-pw-locked"), "secret\n");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let out = run(&[
            "peer",
            "--user",
            "u",
            "--password-file",
            &locked,
            "--dir",
            d,
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&format!("cannot read the password file {locked}")));
    }
}

fn is_root() -> bool {
    // Root reads a mode-000 file anyway; the unreadable case is then skipped.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|r| r.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn peer_with_user_logs_in_at_start_and_serves_its_group_files() {
    let tracker = tracker();
    let carol = peer(&tracker, "cli-carol-setup");
    ok(carol.create_user("carol", "carol-pw"));
    drop(carol);
    let dir = temp_dir("cli-peer-login");
    let pw = password_file(&dir, "carol-pw\r\n");
    let addr = tracker.addr().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args([
            "peer",
            "--user",
            "carol",
            "--password-file",
            &pw,
            "--dir",
            dir.join("peer").to_str().unwrap(),
            "--tracker",
            &addr,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = [String::new(), String::new()];
    for line in &mut lines {
        stdout.read_line(line).unwrap();
    }
    assert!(lines[0].starts_with("listening on "), "{lines:?}");
    assert_eq!(lines[1].trim(), "logged in as carol");
    // One live session per user: the peer holds it, so another login is refused.
    let other = peer(&tracker, "cli-carol-other");
    let err = other.login("carol", "carol-pw").unwrap_err();
    assert!(err.starts_with("logged-in "), "{err}");
    let _ = child.kill();
    let _ = child.wait();
}
