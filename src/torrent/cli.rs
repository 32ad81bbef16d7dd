//! `torrentphile torrent create|show`: the command line over `create` and `metainfo`.
//!
//! Owns option parsing, reading and writing .torrent files, and the messages a user sees.
//! Exit codes: 0 done, 1 a failure (unreadable input, invalid torrent, output exists), 2 a
//! usage error. Never decides what goes in a torrent: that is `create`.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use getopts::{Matches, Options};

use super::create::{self, CreateOptions, Style};
use super::metainfo::{MAX_TORRENT_BYTES, Metainfo};

const USAGE: &str = "\
usage: torrentphile torrent create [options] PATH
       torrentphile torrent show FILE

create: make a .torrent of a file or a folder; the same options as mktorrent where they
        overlap, and for the same input the same bytes (with --created-by \"mktorrent 1.1\").
show:   print what a .torrent describes: name, info-hash, pieces, files, trackers.";

/// Run `torrent ...`; `args` is what follows the word `torrent`. Returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("create") => create_cmd(&args[1..]),
        Some("show") => show_cmd(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err((format!("unknown torrent command {other:?}\n\n{USAGE}"), 2)),
        None => Err((USAGE.to_string(), 2)),
    };
    match result {
        Ok(()) => 0,
        Err((msg, code)) => {
            eprintln!("torrentphile torrent: {msg}");
            code
        }
    }
}

type Fail = (String, i32);

fn usage(msg: impl Into<String>) -> Fail {
    (msg.into(), 2)
}

fn failure(msg: impl Into<String>) -> Fail {
    (msg.into(), 1)
}

/// Parse `args` with `opts` plus `--help`; `Ok(None)` means the help was printed.
fn parse(opts: &mut Options, args: &[String], brief: &str) -> Result<Option<Matches>, Fail> {
    crate::cli::parse_or_help(opts, args, brief).map_err(usage)
}

fn create_cmd(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    opts.optmulti(
        "a",
        "announce",
        "tracker URL; commas make one tier, each -a another",
        "URL",
    );
    opts.optopt("c", "comment", "a comment", "TEXT");
    opts.optflag("d", "no-date", "write no creation date");
    opts.optflag("f", "force", "overwrite the output file");
    opts.optopt(
        "l",
        "piece-length",
        "piece length 2^N, N in 15..=28 (default 18)",
        "N",
    );
    opts.optopt(
        "n",
        "name",
        "torrent name (default: the basename of PATH)",
        "NAME",
    );
    opts.optopt(
        "o",
        "output",
        "the .torrent to write (default NAME.torrent)",
        "FILE",
    );
    opts.optflag("p", "private", "set the private flag");
    opts.optopt("t", "threads", "hashing threads (default: every core)", "N");
    opts.optopt(
        "",
        "like",
        "mktorrent (default) or transmission: whose layout",
        "TOOL",
    );
    opts.optopt(
        "",
        "created-by",
        "the created-by text (default torrentphile VERSION)",
        "TEXT",
    );
    let brief = "usage: torrentphile torrent create [options] PATH";
    let Some(m) = parse(&mut opts, args, brief)? else {
        return Ok(());
    };
    let [target] = m.free.as_slice() else {
        return Err(usage(format!(
            "give exactly one PATH to share\n\n{}",
            opts.usage(brief)
        )));
    };
    let style = match m.opt_str("like").as_deref() {
        None | Some("mktorrent") => Style::Mktorrent,
        Some("transmission") => Style::Transmission,
        Some(other) => {
            return Err(usage(format!(
                "--like {other:?}: use --like mktorrent or --like transmission"
            )));
        }
    };
    let piece_length_log2 = match m.opt_str("l") {
        None => None,
        Some(s) => match s.parse::<u32>() {
            Ok(n @ 15..=28) => Some(n),
            _ => return Err(usage(format!("-l {s:?}: give a number from 15 to 28"))),
        },
    };
    let threads = match m.opt_str("t") {
        None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        Some(s) => match s.parse::<usize>() {
            Ok(n @ 1..=256) => n,
            _ => return Err(usage(format!("-t {s:?}: give a number from 1 to 256"))),
        },
    };
    let announce = m
        .opt_strs("a")
        .iter()
        .map(|a| a.split(',').map(str::to_string).collect())
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let options = CreateOptions {
        announce,
        piece_length_log2,
        private: m.opt_present("p"),
        name: m.opt_str("n"),
        comment: m.opt_str("c"),
        creation_date: (!m.opt_present("d")).then_some(now),
        created_by: m
            .opt_str("created-by")
            .unwrap_or_else(|| format!("torrentphile {}", env!("CARGO_PKG_VERSION"))),
        style,
        threads,
    };
    let target = Path::new(target);
    let bytes = create::create(target, &options).map_err(|e| {
        failure(format!(
            "cannot make a torrent of {}: {e}",
            target.display()
        ))
    })?;
    let torrent = Metainfo::parse(&bytes).map_err(|e| {
        failure(format!(
            "made an invalid torrent of {}: {e}",
            target.display()
        ))
    })?;
    let output = match m.opt_str("o") {
        Some(o) => PathBuf::from(o),
        None => PathBuf::from(format!("{}.torrent", torrent.name)),
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!m.opt_present("f"))
        .open(&output)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => failure(format!(
                "{} already exists: remove it, choose another -o, or pass -f",
                output.display()
            )),
            _ => failure(format!("cannot write {}: {e}", output.display())),
        })?;
    file.write_all(&bytes)
        .map_err(|e| failure(format!("cannot write {}: {e}", output.display())))?;
    println!(
        "wrote {}: {} pieces of {} bytes, info-hash {}",
        output.display(),
        torrent.piece_count(),
        torrent.piece_length,
        torrent.info_hash_hex()
    );
    Ok(())
}

fn show_cmd(args: &[String]) -> Result<(), Fail> {
    let brief = "usage: torrentphile torrent show FILE";
    let mut opts = Options::new();
    let Some(m) = parse(&mut opts, args, brief)? else {
        return Ok(());
    };
    let [path] = m.free.as_slice() else {
        return Err(usage(format!(
            "give exactly one .torrent FILE\n\n{}",
            opts.usage(brief)
        )));
    };
    let torrent = read_torrent(Path::new(path))?;
    print!("{}", describe(&torrent));
    Ok(())
}

/// Read and parse a .torrent; on any failure, a sentence naming the file.
pub fn load_torrent(path: &Path) -> Result<Metainfo, String> {
    read_torrent(path).map_err(|(msg, _)| msg)
}

/// Read and parse a .torrent, with a message naming the file on any failure.
fn read_torrent(path: &Path) -> Result<Metainfo, Fail> {
    let file = fs::File::open(path)
        .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_TORRENT_BYTES {
        return Err(failure(format!(
            "{} is larger than {MAX_TORRENT_BYTES} bytes: not a .torrent we accept",
            path.display()
        )));
    }
    Metainfo::parse(&bytes).map_err(|e| {
        failure(format!(
            "{} is not a valid .torrent: {e} (make it again with `torrentphile torrent create`)",
            path.display()
        ))
    })
}

/// The facts `torrent show` prints, one per line, sizes in bytes.
pub fn describe(t: &Metainfo) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("Name: {}", t.name));
    line(format!("Info-hash: {}", t.info_hash_hex()));
    line(format!("Piece size: {}", t.piece_length));
    line(format!("Pieces: {}", t.piece_count()));
    line(format!("Total size: {}", t.total_length));
    line(format!("Private: {}", if t.private { "yes" } else { "no" }));
    if let Some(c) = &t.created_by {
        line(format!("Created by: {c}"));
    }
    if let Some(d) = t.creation_date {
        line(format!("Creation date: {d}"));
    }
    if let Some(c) = &t.comment {
        line(format!("Comment: {c}"));
    }
    line(format!("Trackers: {}", t.trackers.len()));
    for (i, tier) in t.trackers.iter().enumerate() {
        for url in tier {
            line(format!("  tier {}: {url}", i + 1));
        }
    }
    line(format!("Files: {}", t.files.len()));
    for (i, f) in t.files.iter().enumerate() {
        line(format!("  {} {}", f.length, t.file_path(i).display()));
    }
    out
}
