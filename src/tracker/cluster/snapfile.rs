//! The snapshot file `DIR/raft/snapshot` (Raft §7): the state machine as of one log entry.
//!
//! One header line, `snapshot <index> <term> <length> <sha1 of the data>`, then the data bytes
//! (opaque here: the tracker's accounts as journal snapshot records). The file is replaced whole
//! (temporary file, fsync, rename, fsync of the folder), so a crash leaves the old one or the
//! new one; anything else found there is damage, and the member refuses to start, naming the
//! file. It owns this format and nothing else: it never decides when to snapshot.

use std::fs;
use std::io;
use std::path::Path;

use crate::raft::Snapshot;
use crate::sha1::Sha1;

/// The file's name in `DIR/raft/`.
pub(super) const NAME: &str = "snapshot";

/// The file's bytes for `snapshot`.
pub(super) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let sum = Sha1::from(&snapshot.data[..]).hexdigest();
    let mut bytes = format!(
        "snapshot {} {} {} {sum}\n",
        snapshot.index,
        snapshot.term,
        snapshot.data.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&snapshot.data);
    bytes
}

/// Parse the file's bytes; `None` if they are not exactly a header and its data.
pub(super) fn decode(bytes: &[u8]) -> Option<Snapshot> {
    let end = bytes.iter().take(200).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..end]).ok()?;
    let data = &bytes[end + 1..];
    let w: Vec<&str> = header.split(' ').collect();
    let [name, index, term, len, sum] = w[..] else {
        return None;
    };
    let number = |s: &str| -> Option<u64> {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (index, term, len) = (number(index)?, number(term)?, number(len)?);
    if name != NAME || len != data.len() as u64 || Sha1::from(data).hexdigest() != sum {
        return None;
    }
    Some(Snapshot {
        index,
        term,
        data: data.to_vec(),
    })
}

/// Read `dir/snapshot`: `Ok(None)` if there is none; an error line naming it if damaged.
pub(super) fn read(dir: &Path) -> Result<Option<Snapshot>, String> {
    let path = dir.join(NAME);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).ok_or_else(|| {
            format!(
                "{} is damaged (it is replaced whole, so this is not a crash): restore the folder from a backup, or delete the whole folder to rejoin the cluster empty",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_back_and_any_damage_is_refused() {
        let s = Snapshot {
            index: 12,
            term: 3,
            data: b"1 abcd0123 CREATE-USER x\n2 0123abcd END 12\n".to_vec(),
        };
        let bytes = encode(&s);
        assert!(bytes.starts_with(b"snapshot 12 3 43 "));
        assert_eq!(decode(&bytes), Some(s.clone()));
        for cut in [0, 10, bytes.len() - 1] {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert_eq!(decode(&flipped), None);
        let mut longer = bytes;
        longer.push(b'x');
        assert_eq!(decode(&longer), None);
    }
}
