//! The peer server's answer for the bytes of a torrent's entry (a `Layout` over several
//! files): a piece inside one file goes out with `sendfile` like any file's; a piece that
//! crosses a file boundary is read into memory (at most one piece, 64 MiB at most) and sent
//! as a data block.
//!
//! A seeded torrent is served only while each file is the version that was verified (size,
//! inode, mtime, as for plain files); one that changed ends the seeding and the tracker is
//! told. Never touches a socket.

use std::sync::Arc;

use crate::peer::server::Client;
use crate::peer::store::{Entry, FileStamp, Layout, Store};
use crate::protocol::{ErrCode, ProtoError};
use crate::server::{Answer, FilePart};

fn changed(store: &Store, name: &str) -> ProtoError {
    store.file_changed(name);
    ProtoError::new(
        ErrCode::Unavailable,
        format!("{name} changed on disk since it was shared; no longer shared here"),
    )
}

/// `len` bytes of the torrent `entry` from `offset`.
pub fn layout_answer(
    store: &Arc<Store>,
    client: &Client,
    entry: &Entry,
    layout: &Layout,
    offset: u64,
    len: u64,
) -> Result<Answer, ProtoError> {
    let name = &entry.meta.name;
    let internal =
        |e: std::io::Error| ProtoError::new(ErrCode::Internal, format!("cannot read {name}: {e}"));
    if let Some(opened) = layout.within_one(offset, len) {
        let (file, at, part) = opened.map_err(internal)?;
        let md = file.metadata().map_err(internal)?;
        if md.len() != part.length || part.stamp.is_some_and(|s| s != FileStamp::of(&md)) {
            return Err(changed(store, name));
        }
        let (store, who) = (store.clone(), client.who.clone());
        return Ok(Answer::File(FilePart {
            file,
            offset: at,
            len,
            on_sent: Some(Box::new(move || store.count_upload(&who, len))),
        }));
    }
    // Across files: check each file it touches, then read the piece.
    for (i, _, _) in layout.spans(offset, len) {
        let part = &layout.parts()[i];
        let md = std::fs::symlink_metadata(&part.path).map_err(internal)?;
        if md.len() != part.length || part.stamp.is_some_and(|s| s != FileStamp::of(&md)) {
            return Err(changed(store, name));
        }
    }
    let mut buf = vec![0u8; len as usize];
    layout.read_exact_at(&mut buf, offset).map_err(internal)?;
    store.count_upload(&client.who, len);
    Ok(Answer::Data(buf))
}
