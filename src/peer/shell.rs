//! The peer's prompt: a few words a person types, in the spirit of the seeds' client shells.
//!
//! Each command is parsed by `parse` (pure) and run by `run` against a `Peer`. Downloads run
//! on their own thread, so the prompt stays usable; `status` shows how they are doing.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use crate::peer::Peer;
use crate::protocol::Request;

/// One shell command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Share(PathBuf),
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
        _ => Err(format!("usage: {verb} {what}")),
    };
    let command = match verb {
        "help" | "?" => Command::Help,
        "share" | "upload_file" => Command::Share(PathBuf::from(one("PATH")?)),
        "get" | "download_file" => Command::Get(one("NAME")?),
        "list" | "list_files" => Command::List,
        "peers" | "whohas" => Command::Peers(one("NAME")?),
        "status" | "show_downloads" => Command::Status,
        "stop_share" => Command::StopShare(one("NAME")?),
        "quit" | "exit" | "logout" => Command::Quit,
        other => return Err(format!("unknown command {other:?}; type help")),
    };
    Ok(Some(command))
}

/// Read commands from stdin until `quit` or end of input.
pub fn run(peer: &Arc<Peer>) {
    let stdin = io::stdin();
    prompt();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        match parse(&line) {
            Ok(Some(Command::Quit)) => break,
            Ok(Some(command)) => execute(peer, command),
            Ok(None) => {}
            Err(e) => println!("{e}"),
        }
        prompt();
    }
}

fn prompt() {
    print!("> ");
    let _ = io::stdout().flush();
}

fn execute(peer: &Arc<Peer>, command: Command) {
    match command {
        Command::Help => println!("{HELP}"),
        Command::Share(path) => match peer.share(&path) {
            Ok(meta) => println!(
                "sharing {} ({} bytes, sha1 {})",
                meta.name, meta.size, meta.sha1
            ),
            Err(e) => println!("share failed: {e}"),
        },
        Command::Get(name) => {
            let peer = peer.clone();
            println!("downloading {name} in the background; `status` shows progress");
            let _ = thread::Builder::new()
                .name("shell-get".into())
                .spawn(move || {
                    match peer.download(&name) {
                        Ok(report) => println!("\ndownloaded {report}"),
                        Err(e) => println!("\nget {name} failed: {e}"),
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
            Err(e) => println!("stop_share failed: {e}"),
        },
        Command::Quit => {}
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
        assert!(parse("get").is_err());
        assert!(parse("frobnicate").is_err());
    }
}
