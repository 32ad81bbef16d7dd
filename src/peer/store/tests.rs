//! The store's unit tests.

use super::*;

pub(super) fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tp-store-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn empty_files_have_no_pieces() {
    let dir = temp_dir("empty");
    fs::write(dir.join("empty"), b"").unwrap();
    let store = Store::open(&dir, None).unwrap();
    let meta = store.share_existing("empty").unwrap();
    assert_eq!((meta.size, meta.pieces()), (0, 0));
    assert_eq!(
        meta.sha1.to_string(),
        "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn publish_never_replaces_a_file_that_appeared_meanwhile() {
    let dir = temp_dir("publish");
    let store = Store::open(&dir, Some(1024)).unwrap();
    fs::write(dir.join("src"), b"the real content").unwrap();
    let (mut meta, hashes) = hash_file(&dir.join("src"), "x.txt", 1024).unwrap();
    meta.name = "x.txt".into();
    fs::write(store.part_path("x.txt"), b"the real content").unwrap();
    fs::write(dir.join("x.txt"), b"someone else's").unwrap();
    let err = store.publish(&meta, Arc::new(hashes.clone())).unwrap_err();
    assert!(err.contains("appeared while downloading"), "{err}");
    assert_eq!(fs::read(dir.join("x.txt")).unwrap(), b"someone else's");
    assert_eq!(
        fs::read(store.part_path("x.txt")).unwrap(),
        b"the real content"
    );
    fs::remove_file(dir.join("x.txt")).unwrap();
    store.publish(&meta, Arc::new(hashes)).unwrap();
    assert_eq!(fs::read(dir.join("x.txt")).unwrap(), b"the real content");
    assert!(!store.part_path("x.txt").exists());
    assert!(matches!(
        store.get("x.txt").unwrap().holding,
        Holding::Complete
    ));
    fs::remove_dir_all(dir).unwrap();
}
