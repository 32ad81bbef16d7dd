//! .torrent files: byte-identical to mktorrent, same info-hash as Transmission, strict
//! validation, hashing across file boundaries, a bencode fuzz with an allocation bound.
//! Tests that need mktorrent or transmission-cli print why they skip when those are missing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use torrentphile::torrent::bencode::{self, Value};
use torrentphile::torrent::cli;
use torrentphile::torrent::create::{self, CreateOptions, MKTORRENT_CREATED_BY, Style};
use torrentphile::torrent::metainfo::{Metainfo, MetainfoError};
use torrentphile::util::Rng;

mod common;

// ---- an allocator that counts this thread's live bytes, for the fuzz's memory bound ----

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // try_with: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add_signed(delta);
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: defers every allocation to System unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes this thread held while running `f`, above what it held before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(Cell::get) - base)
}

// ---- helpers ----

fn tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
    if !found {
        println!("skipped: {name} is not installed (apt-get install mktorrent transmission-cli)");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A folder with nested dirs, spaces, non-ASCII names, an empty file, a dotfile, names that
/// sort differently by case and by signedness; sizes chosen so pieces cross files.
fn sample_folder(root: &Path) -> PathBuf {
    let d = root.join("My Share");
    fs::create_dir_all(d.join("sub/deeper")).unwrap();
    fs::create_dir_all(d.join("with space")).unwrap();
    fs::create_dir_all(d.join(".git")).unwrap();
    common::random_file(&d.join("a.bin"), 100_000, 1);
    common::random_file(&d.join("with space/b c.txt"), 70_001, 2);
    common::random_file(&d.join("sub/deeper/x"), 33_000, 3);
    common::random_file(&d.join("sub/q"), 5, 4);
    common::random_file(&d.join("Zed"), 40_000, 5);
    common::random_file(&d.join("café.txt"), 32_768, 6);
    common::random_file(&d.join("Ünïcode ñame"), 1_000, 7);
    common::random_file(&d.join("b-a"), 12, 8);
    common::random_file(&d.join(".hidden"), 9, 9);
    common::random_file(&d.join(".git/config"), 10, 10);
    fs::write(d.join("empty"), b"").unwrap();
    d
}

fn ours(target: &Path, out: &Path, extra: &[&str]) -> Vec<u8> {
    let _ = fs::remove_file(out);
    let mut a = args(&["create", "-o", out.to_str().unwrap()]);
    a.extend(args(extra));
    a.push(target.to_str().unwrap().to_string());
    assert_eq!(cli::main(&a), 0, "torrent {a:?}");
    fs::read(out).unwrap()
}

fn mktorrent(target: &Path, out: &Path, extra: &[&str]) -> Vec<u8> {
    let _ = fs::remove_file(out);
    run(Command::new("mktorrent")
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(target));
    fs::read(out).unwrap()
}

fn transmission_hash(file: &Path) -> String {
    let text = run(Command::new("transmission-show").arg(file));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Hash: "))
        .expect("a Hash line")
        .to_string()
}

// ---- against mktorrent ----

#[test]
fn byte_identical_to_mktorrent() {
    if !tool("mktorrent") {
        return;
    }
    let dir = common::temp_dir("torrent-mk");
    let folder = sample_folder(&dir);
    let single = dir.join("one file.bin");
    common::random_file(&single, 300_001, 11);
    let cases: Vec<(&Path, Vec<&str>)> = vec![
        (&single, vec!["-d", "-a", "http://127.0.0.1:6969/announce"]),
        (&single, vec!["-d", "-l", "15"]),
        (
            &folder,
            vec!["-d", "-a", "http://127.0.0.1:6969/announce", "-l", "15"],
        ),
        (
            &folder,
            vec!["-d", "-p", "-c", "a comment, with é", "-l", "16"],
        ),
        (
            &folder,
            vec![
                "-d",
                "-a",
                "http://127.0.0.1:1/a,http://127.0.0.1:2/b",
                "-a",
                "udp://127.0.0.1:3",
                "-n",
                "renamed",
            ],
        ),
        (
            &folder,
            vec![
                "-d",
                "-a",
                "http://127.0.0.1:1/a",
                "-a",
                "http://127.0.0.1:2/b",
            ],
        ),
    ];
    for (target, extra) in cases {
        let theirs = mktorrent(target, &dir.join("m.torrent"), &extra);
        let mut mine_args = extra.clone();
        mine_args.extend(["--created-by", MKTORRENT_CREATED_BY]);
        let mine = ours(target, &dir.join("o.torrent"), &mine_args);
        assert!(
            mine == theirs,
            "{extra:?} on {}:\nours   {}\ntheirs {}",
            target.display(),
            String::from_utf8_lossy(&mine[..mine.len().min(400)]),
            String::from_utf8_lossy(&theirs[..theirs.len().min(400)])
        );
    }
    // With a creation date: the same bytes given mktorrent's own timestamp.
    let theirs = mktorrent(&folder, &dir.join("m.torrent"), &[]);
    let date = Metainfo::parse(&theirs)
        .unwrap()
        .creation_date
        .expect("a date");
    let opts = CreateOptions {
        creation_date: Some(date),
        ..mk_options(Style::Mktorrent)
    };
    assert!(create::create(&folder, &opts).unwrap() == theirs);
}

fn mk_options(style: Style) -> CreateOptions {
    CreateOptions {
        announce: Vec::new(),
        piece_length_log2: None,
        private: false,
        name: None,
        comment: None,
        creation_date: None,
        created_by: MKTORRENT_CREATED_BY.into(),
        style,
        threads: 3,
    }
}

// ---- against Transmission ----

#[test]
fn info_hash_equals_transmission() {
    if !tool("transmission-show") || !tool("transmission-create") {
        return;
    }
    let dir = common::temp_dir("torrent-tr");
    let folder = sample_folder(&dir);
    // transmission-show agrees with the hash we compute for our own file.
    let mine = ours(&folder, &dir.join("o.torrent"), &["-l", "15", "-p"]);
    let t = Metainfo::parse(&mine).unwrap();
    assert_eq!(transmission_hash(&dir.join("o.torrent")), t.info_hash_hex());

    // --like transmission gives transmission-create's info-hash, public and private.
    for private in [false, true] {
        let out = dir.join("t.torrent");
        let _ = fs::remove_file(&out);
        let mut cmd = Command::new("transmission-create");
        cmd.arg("-o")
            .arg(&out)
            .arg("-t")
            .arg("http://127.0.0.1:6969/announce");
        if private {
            cmd.arg("-p");
        }
        run(cmd.arg(&folder));
        let theirs = Metainfo::parse(&fs::read(&out).unwrap()).unwrap();
        assert_eq!(theirs.info_hash_hex(), transmission_hash(&out));
        let mut extra = vec!["--like", "transmission"];
        if private {
            extra.push("-p");
        }
        let mine = Metainfo::parse(&ours(&folder, &dir.join("o.torrent"), &extra)).unwrap();
        assert_eq!(mine.files, theirs.files, "file order and selection");
        assert_eq!(
            mine.info_hash_hex(),
            theirs.info_hash_hex(),
            "private={private}"
        );
    }
}

/// transmission's size formatting (libtransmission/utils.c, formatter_get_size_str): the
/// largest unit not above the size, starting at kilo; 2 decimals below 100, else 1.
fn tr_size(bytes: u64, kilo: f64, units: [&str; 4]) -> String {
    let mut i = 0;
    while i < 3 && bytes as f64 >= kilo.powi(i as i32 + 2) {
        i += 1;
    }
    let value = bytes as f64 / kilo.powi(i as i32 + 1);
    let precision = if value < 100.0 { 2 } else { 1 };
    format!("{value:.precision$} {}", units[i])
}

#[test]
fn show_states_what_transmission_show_states() {
    if !tool("transmission-show") || !tool("mktorrent") {
        return;
    }
    let dir = common::temp_dir("torrent-show");
    let folder = sample_folder(&dir);
    let file = dir.join("m.torrent");
    mktorrent(
        &folder,
        &file,
        &[
            "-p",
            "-l",
            "15",
            "-a",
            "http://127.0.0.1:1/a,http://127.0.0.1:2/b",
            "-a",
            "http://127.0.0.1:3/c",
        ],
    );
    let theirs = run(Command::new("transmission-show").arg(&file));
    let t = Metainfo::parse(&fs::read(&file).unwrap()).unwrap();
    let shown = cli::describe(&t);
    let field = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .to_string()
    };
    assert_eq!(field(&theirs, "Name:"), field(&shown, "Name:"));
    assert_eq!(field(&theirs, "Hash:"), field(&shown, "Info-hash:"));
    assert_eq!(field(&theirs, "Piece Count:"), field(&shown, "Pieces:"));
    assert_eq!(
        field(&theirs, "Piece Size:"),
        tr_size(t.piece_length, 1024.0, ["KiB", "MiB", "GiB", "TiB"])
    );
    assert_eq!(
        field(&theirs, "Total Size:"),
        tr_size(t.total_length, 1000.0, ["kB", "MB", "GB", "TB"])
    );
    assert_eq!(field(&theirs, "Privacy:"), "Private torrent");
    assert_eq!(field(&shown, "Private:"), "yes");
    // Trackers: every URL, tier by tier.
    let their_urls: Vec<&str> = theirs
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("http"))
        .collect();
    let our_urls: Vec<String> = t.trackers.concat();
    assert_eq!(their_urls, our_urls);
    assert!(
        shown.contains("  tier 2: http://127.0.0.1:3/c\n"),
        "{shown}"
    );
    // Files: transmission-show lists them sorted, as NAME/PATH (SIZE).
    let files_at = theirs.find("\nFILES\n").expect("a FILES section");
    let mut their_files: Vec<String> = theirs[files_at..]
        .lines()
        .skip(2)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let mut our_files: Vec<String> = (0..t.files.len())
        .map(|i| {
            let size = tr_size(t.files[i].length, 1000.0, ["kB", "MB", "GB", "TB"]);
            format!("{} ({size})", t.file_path(i).display())
        })
        .collect();
    their_files.sort();
    our_files.sort();
    assert_eq!(their_files, our_files);
    assert!(shown.contains("\n  100000 My Share/a.bin\n"), "{shown}");
}

// ---- validation ----

/// A torrent whose info dictionary is `info` (keys sorted by the encoder).
fn torrent_with(info: Vec<(&[u8], Value)>) -> Vec<u8> {
    bencode::encode(&Value::Dict(vec![
        (b"announce", Value::Bytes(b"http://127.0.0.1:1/")),
        (b"info", Value::Dict(info)),
    ]))
}

fn refusal(info: Vec<(&[u8], Value)>) -> String {
    match Metainfo::parse(&torrent_with(info)) {
        Err(MetainfoError::Invalid(msg)) => msg,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn file_entry<'a>(length: i64, path: &[&'a str]) -> Value<'a> {
    Value::Dict(vec![
        (b"length", Value::Int(length)),
        (
            b"path",
            Value::List(path.iter().map(|c| Value::Bytes(c.as_bytes())).collect()),
        ),
    ])
}

#[test]
fn invalid_torrents_are_refused_with_the_reason() {
    let pieces = [7u8; 40];
    let base = |extra: Vec<(&'static [u8], Value<'static>)>| {
        let mut info: Vec<(&[u8], Value)> = vec![
            (b"name", Value::Bytes(b"x")),
            (b"piece length", Value::Int(32768)),
        ];
        info.extend(extra);
        info
    };
    let with_pieces = |p: &'static [u8], extra| {
        let mut info = base(extra);
        info.push((b"pieces", Value::Bytes(p)));
        info
    };
    let p: &'static [u8] = Box::leak(Box::new(pieces));
    // The valid one first, so the refusals below are about what they change.
    assert!(
        Metainfo::parse(&torrent_with(with_pieces(
            p,
            vec![(b"length", Value::Int(40000))]
        )))
        .is_ok()
    );
    assert_eq!(
        refusal(with_pieces(&p[..39], vec![(b"length", Value::Int(40000))])),
        "info.pieces is 39 bytes, not a multiple of 20"
    );
    assert_eq!(
        refusal(with_pieces(p, vec![(b"length", Value::Int(70000))])),
        "info.pieces holds 2 hashes but 70000 bytes in pieces of 32768 need 3"
    );
    assert_eq!(
        refusal(with_pieces(
            p,
            vec![
                (b"length", Value::Int(1)),
                (b"files", Value::List(vec![file_entry(1, &["a"])]))
            ]
        )),
        "info has both length and files"
    );
    assert_eq!(
        refusal(with_pieces(p, vec![])),
        "info has neither length nor files"
    );
    let files = |path: &[&'static str]| {
        with_pieces(
            p,
            vec![(b"files", Value::List(vec![file_entry(40000, path)]))],
        )
    };
    assert!(Metainfo::parse(&torrent_with(files(&["ok dir", "ñ file"]))).is_ok());
    assert_eq!(refusal(files(&[])), "info.files[0].path is empty");
    assert_eq!(
        refusal(files(&["a", ""])),
        "info.files[0].path has an empty path component"
    );
    assert_eq!(
        refusal(files(&["."])),
        "info.files[0].path has a path component \".\""
    );
    assert_eq!(
        refusal(files(&["a", ".."])),
        "info.files[0].path has a path component \"..\""
    );
    assert_eq!(
        refusal(files(&["/etc"])),
        "info.files[0].path has an absolute path component \"/etc\""
    );
    assert_eq!(
        refusal(files(&["a\0b"])),
        "info.files[0].path has a path component holding a NUL byte"
    );
    assert_eq!(
        refusal(files(&["a/b"])),
        "info.files[0].path has a path component with a slash: \"a/b\""
    );
    let twice = with_pieces(
        p,
        vec![(
            b"files",
            Value::List(vec![
                file_entry(1, &["d", "a"]),
                file_entry(39999, &["d", "a"]),
            ]),
        )],
    );
    assert_eq!(refusal(twice), "info.files lists \"d/a\" twice");
    let mut bad_name = files(&["a"]);
    bad_name[0] = (b"name", Value::Bytes(b".."));
    assert_eq!(refusal(bad_name), "info.name has a path component \"..\"");
    // Not bencode at all: the error names the byte.
    let err = Metainfo::parse(b"d8:announcei01ee").unwrap_err();
    assert_eq!(
        err.to_string(),
        "bencode error at byte 12: integer with a leading zero"
    );
}

#[test]
fn info_hash_is_over_the_raw_info_bytes() {
    // Keys we do not know (and mktorrent's `source`) are part of the hash.
    let info = b"d6:lengthi3e4:name1:x12:piece lengthi32768e6:pieces20:aaaaaaaaaaaaaaaaaaaa6:source3:abc9:x_unknownli1ei2eee";
    let file = [b"d8:announce3:url4:info".as_slice(), info, b"e"].concat();
    let t = Metainfo::parse(&file).unwrap();
    assert_eq!(
        t.info_hash,
        torrentphile::sha1::Sha1::from(&info[..]).digest().bytes()
    );
    assert_eq!(t.trackers, vec![vec!["url".to_string()]]);
}

#[test]
fn four_gib_at_32_kib_has_131072_pieces() {
    let count = 131_072usize;
    let pieces = vec![0u8; count * 20];
    let half = 2i64 << 30;
    let file = torrent_with(vec![
        (
            b"files",
            Value::List(vec![
                file_entry(half - 10, &["a"]),
                file_entry(0, &["empty"]),
                file_entry(half + 10, &["b"]),
            ]),
        ),
        (b"name", Value::Bytes(b"big")),
        (b"piece length", Value::Int(32768)),
        (b"pieces", Value::Bytes(&pieces)),
    ]);
    let t = Metainfo::parse(&file).unwrap();
    assert_eq!(t.piece_count(), 131_072);
    assert_eq!(t.total_length, 4 << 30);
    assert_eq!(t.piece_size(count - 1), 32768);
    assert_eq!(t.piece_size(count), 0);
    // The piece in the middle crosses from `a` to `b`, skipping the empty file.
    let mid = (half as usize) / 32768 - 1;
    assert_eq!(
        t.piece_spans(mid),
        vec![(0, half as u64 - 32768, 32758), (2, 0, 10)]
    );
    assert_eq!(t.piece_spans(0), vec![(0, 0, 32768)]);
    assert_eq!(
        t.piece_spans(count - 1),
        vec![(2, half as u64 + 10 - 32768, 32768)]
    );
    assert_eq!(t.files[2].offset, half as u64 - 10);
    assert_eq!(t.file_path(2), PathBuf::from("big/b"));
}

// ---- hashing, on disk ----

#[test]
fn pieces_cross_files_and_any_thread_count_agrees() {
    let dir = common::temp_dir("torrent-hash");
    let folder = sample_folder(&dir);
    let mut first: Option<Vec<u8>> = None;
    for threads in [1, 2, 5] {
        let opts = CreateOptions {
            piece_length_log2: Some(15),
            threads,
            ..mk_options(Style::Mktorrent)
        };
        let bytes = create::create(&folder, &opts).unwrap();
        assert!(
            first.get_or_insert_with(|| bytes.clone()) == &bytes,
            "threads={threads}"
        );
    }
    let t = Metainfo::parse(&first.unwrap()).unwrap();
    // Read the files back through the torrent's own paths (spaces, non-ASCII) and hash the
    // concatenation piece by piece, the simple way.
    let mut all = Vec::new();
    for i in 0..t.files.len() {
        all.extend(fs::read(dir.join(t.file_path(i))).unwrap());
    }
    assert_eq!(all.len() as u64, t.total_length);
    let expected: Vec<[u8; 20]> = all
        .chunks(32768)
        .map(|c| torrentphile::sha1::Sha1::from(c).digest().bytes())
        .collect();
    assert_eq!(t.pieces, expected);
    assert!(t.files.iter().any(|f| f.path == ["Ünïcode ñame"]));
    assert!(
        t.files.iter().any(|f| f.path == [".git", "config"]),
        "mktorrent keeps dotfiles"
    );
    // Every piece's spans add up to its size and point inside real files.
    for i in 0..t.piece_count() {
        let spans = t.piece_spans(i);
        assert_eq!(spans.iter().map(|s| s.2).sum::<u64>(), t.piece_size(i));
        assert!(
            spans
                .iter()
                .all(|&(f, off, len)| off + len <= t.files[f].length)
        );
    }
}

#[test]
fn cli_exit_codes_and_messages() {
    let dir = common::temp_dir("torrent-cli");
    let file = dir.join("data.bin");
    common::random_file(&file, 1000, 3);
    let out = dir.join("out.torrent");
    let f = file.to_str().unwrap();
    let o = out.to_str().unwrap();
    assert_eq!(cli::main(&[]), 2);
    assert_eq!(cli::main(&args(&["bogus"])), 2);
    assert_eq!(cli::main(&args(&["create"])), 2);
    assert_eq!(cli::main(&args(&["create", "-l", "29", f])), 2);
    assert_eq!(cli::main(&args(&["create", "--like", "qbittorrent", f])), 2);
    assert_eq!(cli::main(&args(&["show"])), 2);
    assert_eq!(
        cli::main(&args(&["create", "-o", o, "/nonexistent/path"])),
        1
    );
    assert_eq!(cli::main(&args(&["create", "-o", o, f])), 0);
    assert_eq!(
        cli::main(&args(&["create", "-o", o, f])),
        1,
        "refuses to overwrite"
    );
    assert_eq!(cli::main(&args(&["create", "-f", "-o", o, f])), 0);
    assert_eq!(cli::main(&args(&["show", o])), 0);
    assert_eq!(cli::main(&args(&["show", "/nonexistent.torrent"])), 1);
    assert_eq!(cli::main(&args(&["show", f])), 1, "not a torrent");
    let t = Metainfo::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(t.name, "data.bin");
    assert!(t.created_by.unwrap().starts_with("torrentphile "));
    assert!(t.creation_date.is_some());
}

// ---- fuzz ----

fn random_value(rng: &mut Rng, depth: usize, out: &mut Vec<u8>) {
    match rng.below(if depth > 6 { 2 } else { 4 }) {
        0 => out.extend(format!("i{}e", rng.next_u64() as i64 >> rng.below(64)).as_bytes()),
        1 => {
            let len = rng.below(12);
            out.extend(format!("{len}:").as_bytes());
            (0..len).for_each(|_| out.push(b"ab\x00\xffz:ie0"[rng.below(9)]));
        }
        2 => {
            out.push(b'l');
            (0..rng.below(5)).for_each(|_| random_value(rng, depth + 1, out));
            out.push(b'e');
        }
        _ => {
            out.push(b'd');
            let mut keys: Vec<Vec<u8>> = (0..rng.below(5))
                .map(|_| vec![b'a' + rng.below(4) as u8; 1 + rng.below(2)])
                .collect();
            if rng.below(2) == 0 {
                keys.sort();
                keys.dedup();
            }
            for k in keys {
                out.extend(format!("{}:", k.len()).as_bytes());
                out.extend(&k);
                random_value(rng, depth + 1, out);
            }
            out.push(b'e');
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..rng.below(3) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = rng.next_u64() as u8;
            }
            1 => input.truncate(at),
            2 => input
                .splice(at..at, b"99999999999999999:".iter().copied())
                .for_each(drop),
            3 => input
                .splice(at..at, std::iter::repeat_n(b'l', rng.below(200)))
                .for_each(drop),
            4 => input
                .splice(at..at, b"d1:b0:1:a0:e".iter().copied())
                .for_each(drop),
            _ => input.insert(at, b"0123456789ield:-"[rng.below(16)]),
        }
    }
}

#[test]
fn fuzz_bencode_never_panics_and_allocates_in_proportion() {
    let seed = std::env::var("TORRENT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Rng::from_time().next_u64());
    println!("fuzz seed {seed} (rerun with TORRENT_FUZZ_SEED={seed})");
    let mut rng = Rng::new(seed);
    let mut accepted = 0;
    let mut input = Vec::new();
    for case in 0..100_000 {
        input.clear();
        random_value(&mut rng, 0, &mut input);
        if case % 4 != 0 {
            mutate(&mut rng, &mut input);
        }
        let (result, peak) = peak_during(|| bencode::decode(&input));
        assert!(
            peak <= 64 * input.len() + 4096,
            "seed {seed} case {case}: {peak} bytes for {} input",
            input.len()
        );
        if let Ok(value) = result {
            accepted += 1;
            // Strict decoding accepts only canonical bytes, so encoding gives them back.
            assert_eq!(bencode::encode(&value), input, "seed {seed} case {case}");
            if let Value::Dict(entries) = &value
                && let Some((k, v)) = entries.first()
            {
                let raw = bencode::raw_dict_entry(&input, k).unwrap().unwrap();
                assert_eq!(&bencode::decode(raw).unwrap(), v);
            }
        }
        let _ = Metainfo::parse(&input);
    }
    assert!(
        accepted > 10_000,
        "the generator should make many valid cases: {accepted}"
    );
    // Declared lengths far beyond the input allocate nothing.
    let (r, peak) = peak_during(|| bencode::decode(b"l18446744073709551615:e"));
    assert!(r.is_err() && peak == 0, "{peak}");
}
