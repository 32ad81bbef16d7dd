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
use crate::protocol::{AccountRequest, Request, check_name};

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
    /// Mini-Torrent's account and group commands (`create_user`, `login`, ... ).
    Group(GroupCommand),
}

/// The account and group commands, with Mini-Torrent's names and argument order.
#[derive(Debug, PartialEq, Eq)]
pub enum GroupCommand {
    CreateUser(String, String),
    Login(String, String),
    Logout,
    /// A one-line tracker verb: create_group, join_group, leave_group, list_requests,
    /// accept_request, list_groups, list_files <group>.
    Ask(AccountRequest),
    Upload(PathBuf, String),
    Download(String, String, PathBuf),
    StopShare(String, String),
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
  quit              leave the tracker and exit
groups (Mini-Torrent's commands):
  create_user USER PASSWORD          login USER PASSWORD        logout
  create_group GROUP   join_group GROUP   leave_group GROUP   list_groups
  list_requests GROUP                accept_request GROUP USER
  list_files GROUP                   upload_file PATH GROUP
  download_file GROUP NAME DEST      stop_share GROUP NAME      show_downloads";

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
    let n = |k: usize, what: &str| {
        if args.len() == k {
            Ok(())
        } else {
            Err(format!("error: {verb} takes {what} (usage: {verb} {what})"))
        }
    };
    let a = |i: usize| args[i].to_string();
    use GroupCommand as G;
    let command = match verb {
        "help" | "?" => Command::Help,
        "upload_file" if args.len() == 2 => Command::Group(G::Upload(PathBuf::from(args[0]), a(1))),
        "share" if args.first() == Some(&"--torrent") => match args {
            [_, file] => Command::ShareTorrent(PathBuf::from(file)),
            _ => return Err("error: usage: share --torrent FILE".into()),
        },
        "share" | "upload_file" => Command::Share(PathBuf::from(one("PATH")?)),
        "download_file" if args.len() == 3 => {
            Command::Group(G::Download(a(0), a(1), PathBuf::from(args[2])))
        }
        "get" | "download_file" => Command::Get(one("NAME")?),
        "list_files" if args.len() == 1 => {
            Command::Group(G::Ask(AccountRequest::Files { group: a(0) }))
        }
        "list" | "list_files" => Command::List,
        "peers" | "whohas" => Command::Peers(one("NAME")?),
        "status" | "show_downloads" => Command::Status,
        "stop_share" if args.len() == 2 => Command::Group(G::StopShare(a(0), a(1))),
        "stop_share" => Command::StopShare(one("NAME")?),
        "quit" | "exit" => Command::Quit,
        "create_user" => {
            n(2, "USER PASSWORD")?;
            Command::Group(G::CreateUser(a(0), a(1)))
        }
        "login" => {
            n(2, "USER PASSWORD")?;
            Command::Group(G::Login(a(0), a(1)))
        }
        "logout" => {
            n(0, "")?;
            Command::Group(G::Logout)
        }
        "create_group" | "join_group" | "leave_group" | "list_requests" => {
            n(1, "GROUP")?;
            let group = a(0);
            Command::Group(G::Ask(match verb {
                "create_group" => AccountRequest::CreateGroup { group },
                "join_group" => AccountRequest::Join { group },
                "leave_group" => AccountRequest::Leave { group },
                _ => AccountRequest::Requests { group },
            }))
        }
        "accept_request" => {
            n(2, "GROUP USER")?;
            Command::Group(G::Ask(AccountRequest::Accept {
                group: a(0),
                user: a(1),
            }))
        }
        "list_groups" => {
            n(0, "")?;
            Command::Group(G::Ask(AccountRequest::Groups))
        }
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
            for d in peer.groups().downloads() {
                println!("{}", d.line());
            }
        }
        Command::Group(command) => println!("{}", run_group(peer, command)),
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

/// Run one group command; its one result line.
pub fn run_group(peer: &Arc<Peer>, command: GroupCommand) -> String {
    let result = match command {
        GroupCommand::CreateUser(user, password) => peer.create_user(&user, &password),
        GroupCommand::Login(user, password) => peer.login(&user, &password),
        GroupCommand::Logout => peer.logout(),
        GroupCommand::Ask(request) => peer.account(request),
        GroupCommand::Upload(path, group) => peer.upload_group(&path, &group).map(|meta| {
            format!(
                "sharing {} in {group} as {} ({} bytes)",
                path.display(),
                meta.name,
                meta.size
            )
        }),
        GroupCommand::Download(group, name, dest) => peer.download_group(&group, &name, &dest),
        GroupCommand::StopShare(group, name) => peer.stop_share_group(&group, &name),
    };
    match result {
        Ok(line) => line,
        Err(e) => format!("error: {e}"),
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
        assert_eq!(
            parse("upload_file /tmp/x g1"),
            Ok(Some(Command::Group(GroupCommand::Upload(
                "/tmp/x".into(),
                "g1".into()
            ))))
        );
        assert_eq!(
            parse("download_file g1 a.txt /tmp"),
            Ok(Some(Command::Group(GroupCommand::Download(
                "g1".into(),
                "a.txt".into(),
                "/tmp".into()
            ))))
        );
        assert_eq!(
            parse("accept_request g1 bob"),
            Ok(Some(Command::Group(GroupCommand::Ask(
                AccountRequest::Accept {
                    group: "g1".into(),
                    user: "bob".into()
                }
            ))))
        );
        assert_eq!(
            parse("logout"),
            Ok(Some(Command::Group(GroupCommand::Logout)))
        );
        assert!(parse("login alice").is_err());
        assert!(parse("frobnicate").is_err());
    }
}
