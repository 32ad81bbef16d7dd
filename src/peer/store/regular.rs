//! Opening a shared file for reading without trusting what is at its path: only a regular
//! file is read, and `open` never blocks (a FIFO put in place of a shared file would block a
//! plain `open` until a writer came, hanging the serving thread for good).
//!
//! Owns `open_regular`. Never decides which path to open, never writes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Linux's `O_NONBLOCK` (the same value on x86-64 and arm64): `open` of a FIFO returns at
/// once instead of waiting for a writer. It changes nothing for a regular file's reads.
const O_NONBLOCK: i32 = 0o4000;

/// Open `path` for reading if, and only if, it is a regular file (a symlink to one is
/// followed, as sharing allows). Anything else (FIFO, device, socket, folder) is refused with
/// `InvalidInput` naming what it is, after an `open` that cannot block; the type is checked
/// on the opened descriptor (`fstat`), so a swap between check and open cannot slip through.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{} is not a regular file ({}); only regular files are read",
            path.display(),
            describe(&kind)
        ),
    ))
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::Command;

    #[test]
    fn a_fifo_is_refused_without_blocking_and_a_file_is_read() {
        let dir = crate::peer::store::tests::temp_dir("regular");
        let file = dir.join("f.txt");
        std::fs::write(&file, b"hello").unwrap();
        let mut text = String::new();
        open_regular(&file)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello");
        let fifo = dir.join("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped the FIFO case: mkfifo is not available");
            return;
        }
        // No writer ever comes: a blocking open would hang this test.
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let err = open_regular(&dir).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
