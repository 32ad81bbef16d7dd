//! The peer's prompt: a few words a person types, in the spirit of the seeds' client shells.
//!
//! Each command is parsed by `parse` (pure) and run by `run` against a `Peer`. Downloads run
//! on their own thread, so the prompt stays usable; `status` shows how they are doing. Every
//! command prints one result line; a refusal starts with `error:` and says why.
//!
//! The shell runs only when the peer is started with `--shell` (from a terminal or a pipe): a
//! peer started in the background with `&` must serve, not wait for a terminal it cannot read.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use crate::peer::Peer;
use crate::protocol::{Request, check_name};

/// One shell command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Share(PathBuf),
    /// `share --torrent FILE`: seed what a .torrent describes, from the data beside it.
    ShareTorrent(PathBuf),
    Get(String),
    List,
    Peers(String),
    Status,
    StopShare(String),
    Quit,
}

pub const HELP: &str = "\
commands:
  share PATH        copy or link PATH into this peer's folder and share it
  share --torrent FILE   seed what FILE describes, from the data beside it
  get NAME          download NAME from every peer that has it (in the background)
  list              every file the tracker knows
  peers NAME        who holds NAME (WHOHAS)
  status            downloads in progress and finished (alias: show_downloads)
  stop_share NAME   stop sharing NAME (the file stays in the folder)
  quit              leave the tracker and exit";

/// Parse one typed line; `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else {
        return Ok(None);
    };
    let one = |what: &str| match args {
        [arg] => Ok(arg.to_string()),
        _ => Err(format!("error: {verb} takes {what} (usage: {verb} {what})")),
    };
    let command = match verb {
        "help" | "?" => Command::Help,
        "share" if args.first() == Some(&"--torrent") => match args {
            [_, file] => Command::ShareTorrent(PathBuf::from(file)),
            _ => return Err("error: usage: share --torrent FILE".into()),
        },
        "share" | "upload_file" => Command::Share(PathBuf::from(one("PATH")?)),
        "get" | "download_file" => Command::Get(one("NAME")?),
        "list" | "list_files" => Command::List,
        "peers" | "whohas" => Command::Peers(one("NAME")?),
        "status" | "show_downloads" => Command::Status,
        "stop_share" => Command::StopShare(one("NAME")?),
        "quit" | "exit" | "logout" => Command::Quit,
        other => return Err(format!("error: unknown command {other:?}; type help")),
    };
    Ok(Some(command))
}

/// Why the shell stopped reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// `quit`, or the end of the input (Ctrl-D, or the end of a piped script).
    Quit,
    /// Reading failed, as it does for a process in the background of a terminal: the peer
    /// should go on serving without a prompt.
    Unreadable,
}

/// Read commands from stdin until `quit`, the end of input, or a read error.
pub fn run(peer: &Arc<Peer>) -> Ended {
    let stdin = io::stdin();
    prompt();
    for line in stdin.lock().lines() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                println!(
                    "\ncannot read commands ({e}; is the peer in the background?): serving without a prompt"
                );
                return Ended::Unreadable;
            }
        };
        match parse(&line) {
            Ok(Some(Command::Quit)) => return Ended::Quit,
            Ok(Some(command)) => execute(peer, command),
            Ok(None) => {}
            Err(e) => println!("{e}"),
        }
        prompt();
    }
    Ended::Quit
}

fn prompt() {
    print!("> ");
    let _ = io::stdout().flush();
}

fn execute(peer: &Arc<Peer>, command: Command) {
    match command {
        Command::Help => println!("{HELP}"),
        Command::ShareTorrent(path) => match peer.share_torrent(&path) {
            Ok((t, meta)) => println!(
                "seeding {} as {} ({} bytes, {} pieces, every one checked)",
                t.name,
                meta.name,
                meta.size,
                meta.pieces()
            ),
            Err(e) => println!("error: cannot seed {}: {e}", path.display()),
        },
        Command::Share(path) => match peer.share(&path) {
            Ok(meta) => println!(
                "sharing {} as {} ({} bytes, sha1 {})",
                path.display(),
                meta.name,
                meta.size,
                meta.sha1
            ),
            Err(e) => println!("error: cannot share {}: {e}", path.display()),
        },
        Command::Get(name) => {
            if let Err(why) = refuse_get(peer, &name) {
                println!("error: get {name}: {why}");
                return;
            }
            let peer = peer.clone();
            println!("downloading {name} in the background; `status` shows progress");
            let _ = thread::Builder::new()
                .name("shell-get".into())
                .spawn(move || {
                    match peer.download(&name) {
                        Ok(report) if report.already_here => println!("\n{report}"),
                        Ok(report) => println!("\ndownloaded {report}"),
                        Err(e) => println!("\nerror: get {name}: {e}"),
                    }
                    prompt();
                });
        }
        Command::List => print_answer(peer.ask_tracker(Request::List)),
        Command::Peers(name) => print_answer(peer.ask_tracker(Request::WhoHas { name })),
        Command::Status => {
            let downloads = peer.downloads();
            if downloads.is_empty() {
                println!("no downloads yet");
            }
            for d in downloads {
                println!("{}", d.line());
            }
        }
        Command::StopShare(name) => match peer.stop_share(&name) {
            Ok(()) => println!("stopped sharing {name}"),
            Err(e) => println!("error: stop_share {name}: {e}"),
        },
        Command::Quit => {}
    }
}

/// Why a `get` would be refused at once, checked before it goes to the background: a name that
/// cannot be a file, a download of it already running here, or a name the tracker does not know.
fn refuse_get(peer: &Peer, name: &str) -> Result<(), String> {
    check_name(name).map_err(|e| e.message)?;
    let running = peer
        .downloads()
        .into_iter()
        .any(|d| d.name == name && d.outcome.lock().is_ok_and(|o| o.is_none()));
    if running {
        return Err("already downloading here; `status` shows how far".into());
    }
    let info = peer.ask_tracker(Request::Info { name: name.into() })?;
    match info.strip_prefix("ERR ") {
        Some(err) => Err(err.split_once(' ').map_or(err, |(_, msg)| msg).to_string()),
        None => Ok(()),
    }
}

fn print_answer(answer: Result<String, String>) {
    match answer {
        Ok(text) if text.is_empty() => println!("(nothing)"),
        Ok(text) => println!("{}", text.trim_end()),
        Err(e) => println!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_their_seed_aliases_parse() {
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse("get a.txt"), Ok(Some(Command::Get("a.txt".into()))));
        assert_eq!(parse("show_downloads"), Ok(Some(Command::Status)));
        assert_eq!(
            parse("upload_file /tmp/x"),
            Ok(Some(Command::Share("/tmp/x".into())))
        );
        assert_eq!(
            parse("share --torrent a.torrent"),
            Ok(Some(Command::ShareTorrent("a.torrent".into())))
        );
        assert!(parse("share --torrent").is_err());
        assert!(parse("get").is_err());
        assert!(parse("frobnicate").is_err());
    }
}
