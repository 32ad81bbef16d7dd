//! Replies: the `Reply` value of every status line, its parser and its line.

use std::fmt;

use super::{ErrCode, Holder, Meta, ProtoError, meta, number, truncate};

/// Every reply line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `ACK <text>`: success.
    Ack(String),
    /// `PEERS <holder> ...`: the holders of a file (never empty: no holder is `ERR not-found`).
    Peers(Vec<Holder>),
    /// `FILE <name> <size> <piece-size> <sha1> <root>`.
    File(Meta),
    /// `BITFIELD <bits>`: one `0` or `1` per piece.
    Bitfield(String),
    /// `DATA <len>`: exactly `len` raw bytes follow.
    Data(u64),
    /// `PONG`.
    Pong,
    /// `ERR <code> <message>`.
    Err(ErrCode, String),
}

/// Parse one reply line (without its newline).
pub fn parse_reply(line: &[u8]) -> Result<Reply, ProtoError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|_| ProtoError::bad("reply is not ASCII"))?;
    let (status, rest) = text.split_once(' ').unwrap_or((text, ""));
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let reply = match status {
        "ACK" => Reply::Ack(rest.to_string()),
        "PEERS" => Reply::Peers(
            args.iter()
                .map(|a| match a.strip_suffix("-partial") {
                    Some(addr) => Holder {
                        addr: addr.to_string(),
                        partial: true,
                    },
                    None => Holder {
                        addr: a.to_string(),
                        partial: false,
                    },
                })
                .collect(),
        ),
        "FILE" if args.len() == 5 => Reply::File(meta(&args)?),
        // An empty file has an empty bitfield: the line is just `BITFIELD`.
        "BITFIELD" if args.len() <= 1 && rest.bytes().all(|b| b == b'0' || b == b'1') => {
            Reply::Bitfield(rest.to_string())
        }
        "DATA" if args.len() == 1 => Reply::Data(number(args[0], "length")?),
        "PONG" => Reply::Pong,
        "ERR" => {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            let code = code.parse().unwrap_or(ErrCode::Internal);
            Reply::Err(code, message.to_string())
        }
        _ => {
            return Err(ProtoError::bad(format!(
                "unexpected reply \"{}\"",
                truncate(text, 64).escape_default()
            )));
        }
    };
    Ok(reply)
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Reply::Ack(text) if text.is_empty() => write!(f, "ACK"),
            Reply::Ack(text) => write!(f, "ACK {text}"),
            Reply::Peers(holders) => {
                write!(f, "PEERS")?;
                holders.iter().try_for_each(|h| write!(f, " {h}"))
            }
            Reply::File(meta) => write!(f, "FILE {meta}"),
            Reply::Bitfield(bits) if bits.is_empty() => write!(f, "BITFIELD"),
            Reply::Bitfield(bits) => write!(f, "BITFIELD {bits}"),
            Reply::Data(len) => write!(f, "DATA {len}"),
            Reply::Pong => write!(f, "PONG"),
            Reply::Err(code, message) => write!(f, "ERR {} {message}", code.as_str()),
        }
    }
}
