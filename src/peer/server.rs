//! The peer's server: answers `GET`, `PIECE`, `HAVE`, `HASHES` from other peers (and from
//! people with `nc`).
//!
//! `handle` decides what to send from the store (and, for file bytes, the opened file) and
//! returns it as a `server::Answer`; `server::line_loop` puts it on the wire. File bytes go
//! from disk to the socket with `sendfile` (`Conn::send_file`), never through our memory;
//! pieces of a file still downloading are served as soon as they are verified. This file
//! never touches a socket.

use std::sync::Arc;

use crate::conn::Conn;
use crate::peer::store::{self, Entry, Holding, Store, hashes_text};
use crate::protocol::{ErrCode, ProtoError, Reply, Request, Role};
use crate::server::{Answer, FilePart, line_loop};

/// One connection, as the peer's server sees it.
#[derive(Debug)]
pub struct Client {
    /// Whom the bytes sent on this connection are counted to: the connection's address,
    /// until a `HELLO` names the downloader.
    pub who: String,
}

/// Serve one connection until it closes.
pub fn serve_connection(store: &Arc<Store>, conn: &mut Conn) {
    let mut client = Client {
        who: conn.remote().to_string(),
    };
    conn.trace_event("connected");
    line_loop(conn, Role::Peer, |conn: &mut Conn, request| {
        let answer = handle(store, &mut client, request);
        conn.set_name(&client.who);
        answer
    });
    conn.trace_event("disconnected");
}

/// Serve one connection that may present tickets for group files (`peer::groups`): those
/// requests are answered by the groups, everything else as by `serve_connection`.
pub fn serve_connection_with(
    store: &Arc<Store>,
    groups: &crate::peer::groups::Groups,
    conn: &mut Conn,
) {
    let mut client = Client {
        who: conn.remote().to_string(),
    };
    let ip = conn.remote().ip().to_string();
    let mut grants = crate::peer::groups::GroupConn::default();
    conn.trace_event("connected");
    line_loop(conn, Role::Peer, |conn: &mut Conn, request| {
        let answer = match groups.intercept(&mut grants, &mut client, &ip, &request) {
            Some(answer) => answer,
            None => handle(store, &mut client, request),
        };
        conn.set_name(&client.who);
        answer
    });
    conn.trace_event("disconnected");
}

/// Decide the answer to one request from the store alone; for file bytes, open the file and
/// check it is still the one announced.
pub fn handle(store: &Arc<Store>, client: &mut Client, request: Request) -> Answer {
    match answer(store, client, request) {
        Ok(answer) => answer,
        Err(e) => Answer::Line(e.into_reply()),
    }
}

fn answer(store: &Arc<Store>, client: &mut Client, request: Request) -> Result<Answer, ProtoError> {
    let lookup = |name: &str| {
        store.get(name).ok_or_else(|| {
            ProtoError::new(ErrCode::NotFound, format!("this peer does not hold {name}"))
        })
    };
    let answer = match request {
        Request::Hello { id } => {
            client.who = id.clone();
            Answer::Line(Reply::Ack(format!("hello {id}")))
        }
        Request::Get { name, range } => {
            let entry = lookup(&name)?;
            if entry.layout.is_some() {
                return Err(ProtoError::new(
                    ErrCode::Unavailable,
                    format!("{name} is a torrent's data, spread over its files; ask PIECE"),
                ));
            }
            if let Holding::Partial(_) = entry.holding {
                return Err(ProtoError::new(
                    ErrCode::Unavailable,
                    format!("{name} is still downloading here; ask HAVE and PIECE instead"),
                ));
            }
            let size = entry.meta.size;
            let (offset, len) = range.unwrap_or((0, size));
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(ProtoError::new(
                    ErrCode::Range,
                    format!("{name} has {size} bytes; {offset}+{len} is past its end"),
                ));
            }
            file_answer(store, client, &entry, offset, len)?
        }
        Request::Piece { name, index } => {
            let entry = lookup(&name)?;
            let pieces = entry.meta.pieces();
            if index >= pieces {
                let why = match pieces {
                    0 => format!("{name} is empty: it has no pieces"),
                    n => format!("{name} has {n} pieces (0 to {})", n - 1),
                };
                return Err(ProtoError::new(ErrCode::Range, why));
            }
            if let Holding::Partial(have) = &entry.holding
                && !have.has(index)
            {
                return Err(ProtoError::new(
                    ErrCode::Unavailable,
                    format!("piece {index} of {name} is not here yet"),
                ));
            }
            let (offset, len) = entry.meta.piece_range(index);
            file_answer(store, client, &entry, offset, len)?
        }
        Request::Have { name } => {
            let entry = lookup(&name)?;
            let bits = match &entry.holding {
                Holding::Complete => "1".repeat(entry.meta.pieces() as usize),
                Holding::Partial(have) => have.bits(),
            };
            Answer::Line(Reply::Bitfield(bits))
        }
        Request::Hashes { name } => {
            let entry = lookup(&name)?;
            Answer::Data(hashes_text(&entry.hashes).into_bytes())
        }
        Request::Ping => Answer::Line(Reply::Pong),
        Request::Help => Answer::Line(Reply::Ack(Role::Peer.help())),
        Request::Bye => Answer::bye(),
        // `line_loop` answers these before they get here (`check_verb`); a caller that hands
        // one over directly gets the same answer.
        // A ticket is answered by `groups::intercept` before it gets here; without a login
        // there is nothing it could open.
        Request::Account(crate::protocol::AccountRequest::Ticket(_)) => {
            return Err(ProtoError::new(
                ErrCode::TicketForged,
                "this peer serves no group files now",
            ));
        }
        Request::Account(other) => {
            let line = other.to_string();
            let verb = line.split(' ').next().unwrap_or_default();
            return Err(Role::Peer.foreign_verb(verb));
        }
        Request::Register { .. }
        | Request::RegisterAs { .. }
        | Request::Standby { .. }
        | Request::Upload(_)
        | Request::Partial { .. }
        | Request::Remove { .. }
        | Request::WhoHas { .. }
        | Request::Info { .. }
        | Request::List
        | Request::ListAfter { .. } => {
            let line = request.to_string();
            let verb = line.split(' ').next().unwrap_or_default();
            return Err(Role::Peer.foreign_verb(verb));
        }
    };
    Ok(answer)
}

/// `len` bytes of `entry`'s file from `offset`, if the file on disk is still the one that was
/// hashed and announced; a file that changed is no longer shared (and the tracker is told).
fn file_answer(
    store: &Arc<Store>,
    client: &Client,
    entry: &Entry,
    offset: u64,
    len: u64,
) -> Result<Answer, ProtoError> {
    if let Some(layout) = &entry.layout {
        return crate::peer::torrent_serve::layout_answer(
            store, client, entry, layout, offset, len,
        );
    }
    let name = &entry.meta.name;
    // Never a blocking open, never anything but a regular file (a FIFO in its place is a
    // changed file, not a hung thread).
    let file =
        match store::open_regular(&store.data_path(entry)) {
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => None,
            opened => Some(opened.and_then(|f| Ok((f.metadata()?, f))).map_err(|e| {
                ProtoError::new(ErrCode::Internal, format!("cannot read {name}: {e}"))
            })?),
        };
    match file {
        Some((md, file)) if store::unchanged(entry, &md) => {
            let (store, who) = (store.clone(), client.who.clone());
            Ok(Answer::File(FilePart {
                file,
                offset,
                len,
                on_sent: Some(Box::new(move || store.count_upload(&who, len))),
            }))
        }
        _ => {
            store.file_changed(name);
            Err(ProtoError::new(
                ErrCode::Unavailable,
                format!("{name} changed on disk since it was shared; no longer shared here"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Read;
    use std::path::PathBuf;

    use super::*;
    use crate::peer::store::PieceSet;
    use crate::protocol::{Meta, parse_request};

    /// A store in a fresh folder holding `test1.txt` (27 bytes, one piece) and a partial
    /// `big.bin` of 3 pieces of 1024 bytes of which only piece 1 is here.
    fn world(tag: &str) -> (Arc<Store>, PathBuf) {
        let dir = std::env::temp_dir().join(format!("tp-peer-server-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch folder");
        fs::write(dir.join("test1.txt"), "Hello, Torrentphile peers!\n").expect("write");
        let store = Arc::new(Store::open(&dir, Some(1024)).expect("store"));
        store.share_existing("test1.txt").expect("shared");
        let meta = Meta {
            name: "big.bin".into(),
            size: 3000,
            ..store.get("test1.txt").expect("entry").meta.clone()
        };
        fs::write(store.part_path("big.bin"), vec![7u8; 3000]).expect("part file");
        let have = Arc::new(PieceSet::new(3));
        have.set(1);
        let hashes = Arc::new(vec![meta.sha1; 3]);
        store.begin_partial(&meta, hashes, have);
        (store, dir)
    }

    fn ask(store: &Arc<Store>, client: &mut Client, line: &str) -> Answer {
        let request = parse_request(line.as_bytes()).expect("a well-formed line");
        handle(store, client, request)
    }

    fn line(answer: Answer) -> String {
        match answer {
            Answer::Line(reply) | Answer::Close(reply) => reply.to_string(),
            other => panic!("expected a line, got {other:?}"),
        }
    }

    /// The bytes a file answer would send, and its `on_sent` run.
    fn file_bytes(answer: Answer) -> Vec<u8> {
        let Answer::File(part) = answer else {
            panic!("expected a file, got {answer:?}");
        };
        let mut bytes = vec![0; part.len as usize];
        let mut file = &part.file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(part.offset)).expect("seek");
        file.read_exact(&mut bytes).expect("read");
        if let Some(on_sent) = part.on_sent {
            on_sent();
        }
        bytes
    }

    fn client() -> Client {
        Client {
            who: "127.0.0.1:5555".into(),
        }
    }

    #[test]
    fn get_sends_ranges_and_refuses_what_is_past_the_end() {
        let (store, dir) = world("get");
        let mut c = client();
        assert_eq!(
            file_bytes(ask(&store, &mut c, "GET test1.txt 7 12")),
            b"Torrentphile"
        );
        assert_eq!(file_bytes(ask(&store, &mut c, "GET test1.txt 27 0")), b"");
        assert_eq!(
            line(ask(&store, &mut c, "GET test1.txt 20 10")),
            "ERR range test1.txt has 27 bytes; 20+10 is past its end"
        );
        assert_eq!(
            line(ask(&store, &mut c, "GET test1.txt 1 18446744073709551615")),
            "ERR range test1.txt has 27 bytes; 1+18446744073709551615 is past its end"
        );
        assert_eq!(
            line(ask(&store, &mut c, "GET big.bin")),
            "ERR unavailable big.bin is still downloading here; ask HAVE and PIECE instead"
        );
        assert_eq!(
            line(ask(&store, &mut c, "GET nope.txt")),
            "ERR not-found this peer does not hold nope.txt"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn piece_serves_verified_pieces_only_and_counts_the_upload() {
        let (store, dir) = world("piece");
        let mut c = client();
        assert_eq!(
            line(ask(&store, &mut c, "PIECE big.bin 3")),
            "ERR range big.bin has 3 pieces (0 to 2)"
        );
        assert_eq!(
            line(ask(&store, &mut c, "PIECE big.bin 0")),
            "ERR unavailable piece 0 of big.bin is not here yet"
        );
        assert_eq!(line(ask(&store, &mut c, "HELLO me")), "ACK hello me");
        assert_eq!(
            file_bytes(ask(&store, &mut c, "PIECE big.bin 1")),
            vec![7u8; 1024]
        );
        assert_eq!(
            file_bytes(ask(&store, &mut c, "PIECE test1.txt 0")).len(),
            27
        );
        assert_eq!(store.uploads().get("me"), Some(&(1024 + 27)));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn have_lists_the_verified_pieces() {
        let (store, dir) = world("have");
        let mut c = client();
        assert_eq!(line(ask(&store, &mut c, "HAVE big.bin")), "BITFIELD 010");
        assert_eq!(line(ask(&store, &mut c, "HAVE test1.txt")), "BITFIELD 1");
        assert_eq!(
            line(ask(&store, &mut c, "HAVE x")),
            "ERR not-found this peer does not hold x"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_changed_file_is_no_longer_served() {
        let (store, dir) = world("changed");
        let mut c = client();
        fs::write(dir.join("test1.txt"), "shorter\n").expect("rewrite");
        assert_eq!(
            line(ask(&store, &mut c, "GET test1.txt")),
            "ERR unavailable test1.txt changed on disk since it was shared; no longer shared here"
        );
        assert!(store.get("test1.txt").is_none());
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn tracker_verbs_help_and_bye() {
        let (store, dir) = world("verbs");
        let mut c = client();
        assert_eq!(
            line(ask(&store, &mut c, "WHOHAS test1.txt")),
            "ERR unknown-verb WHOHAS is a tracker verb; this is a peer (try HELP)"
        );
        assert_eq!(
            line(ask(&store, &mut c, "HELP")),
            "ACK peer verbs: HELLO GET PIECE HAVE HASHES TICKET PING HELP BYE"
        );
        assert!(matches!(ask(&store, &mut c, "BYE"), Answer::Close(_)));
        let _ = fs::remove_dir_all(dir);
    }
}
