//! LABS.md, executed: every lab's commands run exactly as written (in bash, in a fresh folder,
//! with a free tracker port `TPORT` and the next three ports free too), and every line of the
//! lab's `expect` block must appear in what they printed. A lab whose commands are marked
//! `manual` (they edit the source) is checked only for the line its `sed` changes still being
//! there. The intro's count of labs ("Ten short labs") must be the number of `## Lab` sections.
//!
//! Two lines of the setup are for people and are skipped here: `cargo build` (the test already
//! has its binary) and the `PATH` export (the test puts its own binary first instead).

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::BuildHasher;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use std::os::unix::process::CommandExt;

/// One lab: its title, the commands (all its `sh` blocks), the lines to expect, and the
/// commands a person runs by hand.
#[derive(Debug, Default)]
struct Lab {
    title: String,
    script: String,
    expect: Vec<String>,
    manual: String,
}

/// The fenced blocks of LABS.md: the setup, then one `Lab` per `## Lab` section.
fn parse_labs(text: &str) -> (String, Vec<Lab>) {
    let mut setup = String::new();
    let mut labs: Vec<Lab> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## Lab ") {
            labs.push(Lab {
                title: title.to_string(),
                ..Lab::default()
            });
            continue;
        }
        let Some(tag) = line.strip_prefix("```") else {
            continue;
        };
        let tag = tag.trim();
        let mut body = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push_str(l);
            body.push('\n');
        }
        match (tag, labs.last_mut()) {
            ("sh setup", _) => setup = body,
            ("sh", Some(lab)) => lab.script.push_str(&body),
            ("sh manual", Some(lab)) => lab.manual.push_str(&body),
            ("expect", Some(lab)) => lab
                .expect
                .extend(body.lines().filter(|l| !l.is_empty()).map(String::from)),
            _ => {}
        }
    }
    (setup, labs)
}

/// Ports a lab may use: `TPORT` and the `LAB_PORTS - 1` after it (Lab 10's cluster ports are
/// `TPORT+1` to `TPORT+3`: a cluster file names them before anything binds, so `:0` cannot
/// do).
const LAB_PORTS: u16 = 4;

/// A `TPORT` whose next `LAB_PORTS - 1` ports are free as well. Taken below the kernel's
/// usual ephemeral range (32768 and up), where `bind :0` and outgoing connections of other
/// tests on this machine do not land between this check and the lab's bind.
fn free_ports() -> u16 {
    let random = RandomState::new();
    for attempt in 0..1000u64 {
        let span = u64::from(12_000 - LAB_PORTS);
        let base = 20_000 + u16::try_from(random.hash_one(attempt) % span).expect("fits");
        if (0..LAB_PORTS).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {LAB_PORTS} free consecutive ports on 127.0.0.1 between 20000 and 32000");
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("torrentphile-lab-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create a temp folder");
    dir
}

/// Run one lab's commands in bash; returns everything they printed (stdout and stderr).
fn run_lab(setup: &str, lab: &Lab, n: usize) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_torrentphile"))
        .parent()
        .expect("the binary has a folder")
        .to_path_buf();
    let lab_dir = temp_dir(&n.to_string());
    let setup: String = setup
        .lines()
        .filter(|l| !l.starts_with("cargo build") && !l.starts_with("export PATH="))
        .map(|l| format!("{l}\n"))
        .collect();
    let log = lab_dir.join("lab-output.txt");
    let out = fs::File::create(&log).expect("create the log");
    let err = out.try_clone().expect("clone the log");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -u\n{setup}\n{}", lab.script))
        .env("PATH", path)
        .env("TPORT", free_ports().to_string())
        .env("LAB", &lab_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let pgid = child.id();
    // A watchdog: a lab that hangs is killed (its whole process group) after 90 s.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(90)).is_err() {
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{pgid}")])
                .status();
        }
    });
    let status = child.wait().expect("wait for bash");
    let _ = done_tx.send(());
    let _ = watchdog.join();
    // Whatever the lab left running goes with its group.
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "lab {}: the commands failed ({status}):\n{text}",
        lab.title
    );
    let _ = fs::remove_dir_all(&lab_dir);
    text
}

#[test]
fn every_lab_shows_what_it_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = fs::read_to_string(root.join("LABS.md")).expect("LABS.md is readable");
    let (setup, labs) = parse_labs(&text);
    assert!(!setup.is_empty(), "LABS.md has a `sh setup` block");
    let words = [
        "No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten",
        "Eleven", "Twelve",
    ];
    let count = words.get(labs.len()).copied().unwrap_or("Many");
    assert!(
        text.contains(&format!("\n{count} short labs")),
        "LABS.md has {} labs: its intro should say \"{count} short labs\"",
        labs.len()
    );
    assert!(labs.len() >= 10, "at least ten labs, found {}", labs.len());
    // Tools some labs use, and the Debian package each comes in.
    let tools = [
        ("nc ", "nc", "netcat-openbsd"),
        ("mktorrent ", "mktorrent", "mktorrent"),
        ("aria2c ", "aria2c", "aria2"),
    ];
    for (i, lab) in labs.iter().enumerate() {
        assert!(
            !lab.script.is_empty() || !lab.manual.is_empty(),
            "lab {} has no commands",
            lab.title
        );
        if !lab.manual.is_empty() {
            check_planted_bug(root, lab);
        }
        if lab.script.is_empty() {
            continue;
        }
        assert!(
            !lab.expect.is_empty(),
            "lab {} says what to expect",
            lab.title
        );
        let missing = tools
            .iter()
            .find(|(word, tool, _)| lab.script.contains(word) && !have(tool));
        if let Some((_, tool, package)) = missing {
            println!(
                "skipped lab {}: {tool} is not installed (apt-get install {package}; make test does it as root)",
                lab.title
            );
            continue;
        }
        let output = run_lab(&setup, lab, i + 1);
        for line in &lab.expect {
            assert!(
                output.contains(line.as_str()),
                "lab {}: expected {line:?} in what it printed:\n{output}",
                lab.title
            );
        }
        println!("lab {}: ok", lab.title);
    }
}

/// A `sed -i 's/FROM/TO/' FILE` line of a manual lab: FILE must still hold FROM, or the lab
/// would plant nothing.
fn check_planted_bug(root: &Path, lab: &Lab) {
    for line in lab.manual.lines() {
        let Some(rest) = line.strip_prefix("sed -i 's/") else {
            continue;
        };
        let (from, rest) = rest.split_once('/').expect("sed s/FROM/TO/");
        let file = rest
            .rsplit_once("' ")
            .map(|(_, f)| f.trim())
            .expect("sed ... FILE");
        let source = fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("lab {}: cannot read {file}: {e}", lab.title));
        let from = from.replace("\\&", "&");
        assert_eq!(
            source.matches(&from).count(),
            1,
            "lab {}: {file} should hold {from:?} exactly once",
            lab.title
        );
    }
}

#[test]
fn the_lab_parser_finds_blocks() {
    let text = "x\n```sh setup\nA=1\n```\n## Lab 1: one\n```sh\necho hi\n```\n```expect\nhi\n```\n";
    let (setup, labs) = parse_labs(text);
    assert_eq!(setup, "A=1\n");
    assert_eq!(labs.len(), 1);
    assert_eq!(labs[0].title, "1: one");
    assert_eq!(labs[0].script, "echo hi\n");
    assert_eq!(labs[0].expect, vec!["hi".to_string()]);
}
