//! Requests: the `Request` value of every verb both servers answer, its parser and its line.

use std::fmt;

use super::{
    AccountRequest, ErrCode, Meta, ProtoError, accounts, meta, name, number, truncate, words,
};

/// Every request of both servers. The tracker answers the first group, a peer the second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `REGISTER <port>`: "I serve on this port"; lives as long as this connection.
    Register { port: u16 },
    /// `REGISTER <port> <host>`: "I serve on this port; others reach me at `host`" (an IP
    /// address, never a name: the tracker resolves nothing). For a peer whose connection to
    /// the tracker comes from an address other hosts cannot use (loopback, `--advertise`).
    RegisterAs { port: u16, host: std::net::IpAddr },
    /// `UPLOAD <name> <size> <piece-size> <sha1> <root>`: "I hold all of this file".
    Upload(Meta),
    /// `PARTIAL <name>`: "I am downloading this file and serve the pieces I have".
    Partial { name: String },
    /// `REMOVE <name>`: "I no longer hold this file" (stop sharing).
    Remove { name: String },
    /// `WHOHAS <name>`: who holds the file, fully or partly.
    WhoHas { name: String },
    /// `INFO <name>`: what the file is (size, piece size, hashes).
    Info { name: String },
    /// `LIST`: the first page of the files the tracker knows, as a data block.
    List,
    /// `LIST <after>`: the next page, the files whose names sort after `after`.
    ListAfter { after: String },
    /// `HELLO <peer-id>`: a downloader tells a peer who it is (for upload accounting).
    Hello { id: String },
    /// `GET <name> [<offset> <length>]`: the whole file, or a byte range of it.
    Get {
        name: String,
        range: Option<(u64, u64)>,
    },
    /// `PIECE <name> <index>`: one piece.
    Piece { name: String, index: u32 },
    /// `HAVE <name>`: which pieces this peer holds, as a bitfield of 0/1.
    Have { name: String },
    /// `HASHES <name>`: the piece-hash list, one hex SHA-1 per line, as a data block.
    Hashes { name: String },
    /// `STANDBY <port>`: "I can run an interim tracker on this port if every tracker goes";
    /// the tracker answers with the standby addresses of the peers registered now (the list the
    /// peers elect an interim tracker from: `peer/interim.rs`). Needs a registration.
    Standby { port: u16 },
    /// `PING`: are you there (the heartbeat).
    Ping,
    /// `HELP`: the verbs this server knows.
    Help,
    /// `BYE`: close this connection (and, on the tracker, forget this peer).
    Bye,
    /// Accounts, groups, group files and tickets (`protocol/accounts.rs`).
    Account(AccountRequest),
}

/// Parse one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, ProtoError> {
    let words = words(line)?;
    let Some((&verb, args)) = words.split_first() else {
        return Err(ProtoError::bad("empty line; try HELP"));
    };
    let arity = |n: usize, syntax: &str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(ProtoError::bad(format!("usage: {syntax}")))
        }
    };
    let request = match verb {
        "REGISTER" => {
            if !(1..=2).contains(&args.len()) {
                return Err(ProtoError::bad("usage: REGISTER <port> [host]"));
            }
            let port = number(args[0], "port")?;
            if port == 0 {
                return Err(ProtoError::bad("port 0 is not a port a peer can serve on"));
            }
            match args.get(1) {
                None => Request::Register { port },
                Some(host) => Request::RegisterAs {
                    port,
                    host: host.parse().map_err(|_| {
                        ProtoError::bad(format!(
                            "REGISTER host {:?} is not an IP address (like 192.168.1.20)",
                            truncate(host, 64)
                        ))
                    })?,
                },
            }
        }
        "UPLOAD" => {
            arity(5, "UPLOAD <name> <size> <piece-size> <sha1> <root>")?;
            Request::Upload(meta(args)?)
        }
        "PARTIAL" => {
            arity(1, "PARTIAL <name>")?;
            Request::Partial {
                name: name(args[0])?,
            }
        }
        "REMOVE" => {
            arity(1, "REMOVE <name>")?;
            Request::Remove {
                name: name(args[0])?,
            }
        }
        "WHOHAS" => {
            arity(1, "WHOHAS <name>")?;
            Request::WhoHas {
                name: name(args[0])?,
            }
        }
        "INFO" => {
            arity(1, "INFO <name>")?;
            Request::Info {
                name: name(args[0])?,
            }
        }
        "LIST" => match args[..] {
            [] => Request::List,
            [after] => Request::ListAfter {
                after: name(after)?,
            },
            _ => return Err(ProtoError::bad("usage: LIST [<after>]")),
        },
        "HELLO" => {
            arity(1, "HELLO <peer-id>")?;
            Request::Hello {
                id: truncate(args[0], 64).to_string(),
            }
        }
        "GET" => {
            if args.len() != 1 && args.len() != 3 {
                return Err(ProtoError::bad("usage: GET <name> [<offset> <length>]"));
            }
            let range = match args {
                [_, offset, len] => Some((number(offset, "offset")?, number(len, "length")?)),
                _ => None,
            };
            Request::Get {
                name: name(args[0])?,
                range,
            }
        }
        "PIECE" => {
            arity(2, "PIECE <name> <index>")?;
            Request::Piece {
                name: name(args[0])?,
                index: number(args[1], "piece index")?,
            }
        }
        "HAVE" => {
            arity(1, "HAVE <name>")?;
            Request::Have {
                name: name(args[0])?,
            }
        }
        "HASHES" => {
            arity(1, "HASHES <name>")?;
            Request::Hashes {
                name: name(args[0])?,
            }
        }
        "STANDBY" => {
            arity(1, "STANDBY <port>")?;
            let port = number(args[0], "port")?;
            if port == 0 {
                return Err(ProtoError::bad("port 0 is not a port a peer can listen on"));
            }
            Request::Standby { port }
        }
        "PING" => {
            arity(0, "PING")?;
            Request::Ping
        }
        "HELP" => Request::Help,
        "BYE" | "QUIT" => Request::Bye,
        other => {
            if let Some(parsed) = accounts::parse(other, args) {
                return parsed;
            }
            return Err(ProtoError::new(
                ErrCode::UnknownVerb,
                format!("unknown verb {:?}; try HELP", truncate(other, 32)),
            ));
        }
    };
    Ok(request)
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Request::Register { port } => write!(f, "REGISTER {port}"),
            Request::RegisterAs { port, host } => write!(f, "REGISTER {port} {host}"),
            Request::Upload(meta) => write!(f, "UPLOAD {meta}"),
            Request::Partial { name } => write!(f, "PARTIAL {name}"),
            Request::Remove { name } => write!(f, "REMOVE {name}"),
            Request::WhoHas { name } => write!(f, "WHOHAS {name}"),
            Request::Info { name } => write!(f, "INFO {name}"),
            Request::List => write!(f, "LIST"),
            Request::ListAfter { after } => write!(f, "LIST {after}"),
            Request::Hello { id } => write!(f, "HELLO {id}"),
            Request::Get { name, range: None } => write!(f, "GET {name}"),
            Request::Get {
                name,
                range: Some((offset, len)),
            } => write!(f, "GET {name} {offset} {len}"),
            Request::Piece { name, index } => write!(f, "PIECE {name} {index}"),
            Request::Have { name } => write!(f, "HAVE {name}"),
            Request::Hashes { name } => write!(f, "HASHES {name}"),
            Request::Standby { port } => write!(f, "STANDBY {port}"),
            Request::Ping => write!(f, "PING"),
            Request::Help => write!(f, "HELP"),
            Request::Bye => write!(f, "BYE"),
            Request::Account(request) => write!(f, "{request}"),
        }
    }
}
