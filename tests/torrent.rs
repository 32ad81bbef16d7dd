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
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
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
    run(Command::new("mktorrent").args(extra).arg("-o").arg(out).arg(target));
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
        (&folder, vec!["-d", "-a", "http://127.0.0.1:6969/announce", "-l", "15"]),
        (&folder, vec!["-d", "-p", "-c", "a comment, with é", "-l", "16"]),
        (
            &folder,
            vec![
                "-d", "-a", "http://127.0.0.1:1/a,http://127.0.0.1:2/b", "-a",
                "udp://127.0.0.1:3", "-n", "renamed",
            ],
        ),
        (&folder, vec!["-d", "-a", "http://127.0.0.1:1/a", "-a", "http://127.0.0.1:2/b"]),
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
    let date = Metainfo::parse(&theirs).unwrap().creation_date.expect("a date");
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
        cmd.arg("-o").arg(&out).arg("-t").arg("http://127.0.0.1:6969/announce");
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
        assert_eq!(mine.info_hash_hex(), theirs.info_hash_hex(), "private={private}");
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
        &["-p", "-l", "15", "-a", "http://127.0.0.1:1/a,http://127.0.0.1:2/b", "-a", "http://127.0.0.1:3/c"],
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
    assert_eq!(field(&theirs, "Piece Size:"), tr_size(t.piece_length, 1024.0, ["KiB", "MiB", "GiB", "TiB"]));
    assert_eq!(field(&theirs, "Total Size:"), tr_size(t.total_length, 1000.0, ["kB", "MB", "GB", "TB"]));
    assert_eq!(field(&theirs, "Privacy:"), "Private torrent");
    assert_eq!(field(&shown, "Private:"), "yes");
    // Trackers: every URL, tier by tier.
    let their_urls: Vec<&str> = theirs.lines().map(str::trim).filter(|l| l.starts_with("http")).collect();
    let our_urls: Vec<String> = t.trackers.concat();
    assert_eq!(their_urls, our_urls);
    assert!(shown.contains("  tier 2: http://127.0.0.1:3/c\n"), "{shown}");
    // Files: transmission-show lists them sorted, as NAME/PATH (SIZE).
    let files_at = theirs.find("\nFILES\n").expect("a FILES section");
    let mut their_files: Vec<String> =
        theirs[files_at..].lines().skip(2).map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
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
