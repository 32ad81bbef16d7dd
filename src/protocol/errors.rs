//! The `ERR` codes (one table: code and wire word) and `ProtoError`, the parse failure that
//! becomes an `ERR` reply as it is.

use std::str::FromStr;

use super::Reply;

/// The error codes, defined once (PROTOCOL.md lists them with their meaning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrCode {
    BadRequest,
    UnknownVerb,
    BadName,
    TooLong,
    NotFound,
    Conflict,
    NotRegistered,
    Range,
    Unavailable,
    Busy,
    Timeout,
    Internal,
    // Accounts and groups (issue 9).
    NotLoggedIn,
    LoggedIn,
    SlowDown,
    InvalidProof,
    BadLogin,
    Exists,
    NoUser,
    NoGroup,
    NotMember,
    NotAdmin,
    NoRequest,
    AdminStays,
    NotOwner,
    Storage,
    TicketForged,
    TicketExpired,
    TicketAddress,
    TicketFile,
    TicketGroup,
    TicketRevoked,
    /// A quota of the tracker: registrations per address, files per peer, per address or in
    /// all. The connection goes on.
    Limit,
    /// A tracker that follows its cluster's leader refuses what only the leader may do; the
    /// message starts with the leader's address (or `none`).
    NotLeader,
}

const ERR_CODES: [(ErrCode, &str); 34] = [
    (ErrCode::BadRequest, "bad-request"),
    (ErrCode::UnknownVerb, "unknown-verb"),
    (ErrCode::BadName, "bad-name"),
    (ErrCode::TooLong, "too-long"),
    (ErrCode::NotFound, "not-found"),
    (ErrCode::Conflict, "conflict"),
    (ErrCode::NotRegistered, "not-registered"),
    (ErrCode::Range, "range"),
    (ErrCode::Unavailable, "unavailable"),
    (ErrCode::Busy, "busy"),
    (ErrCode::Timeout, "timeout"),
    (ErrCode::Internal, "internal"),
    (ErrCode::NotLoggedIn, "not-logged-in"),
    (ErrCode::LoggedIn, "logged-in"),
    (ErrCode::SlowDown, "slow-down"),
    (ErrCode::InvalidProof, "invalid-proof"),
    (ErrCode::BadLogin, "bad-login"),
    (ErrCode::Exists, "exists"),
    (ErrCode::NoUser, "no-user"),
    (ErrCode::NoGroup, "no-group"),
    (ErrCode::NotMember, "not-member"),
    (ErrCode::NotAdmin, "not-admin"),
    (ErrCode::NoRequest, "no-request"),
    (ErrCode::AdminStays, "admin-stays"),
    (ErrCode::NotOwner, "not-owner"),
    (ErrCode::Storage, "storage"),
    (ErrCode::TicketForged, "ticket-forged"),
    (ErrCode::TicketExpired, "ticket-expired"),
    (ErrCode::TicketAddress, "ticket-address"),
    (ErrCode::TicketFile, "ticket-file"),
    (ErrCode::TicketGroup, "ticket-group"),
    (ErrCode::TicketRevoked, "ticket-revoked"),
    (ErrCode::Limit, "limit"),
    (ErrCode::NotLeader, "not-leader"),
];

impl ErrCode {
    pub fn as_str(self) -> &'static str {
        ERR_CODES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("internal", |(_, s)| s)
    }
}

impl FromStr for ErrCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ERR_CODES
            .iter()
            .find(|(_, name)| *name == s)
            .map(|(c, _)| *c)
            .ok_or(())
    }
}

/// Why a line could not be parsed; becomes the `ERR` reply as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoError {
    pub code: ErrCode,
    pub message: String,
}

impl ProtoError {
    pub fn new(code: ErrCode, message: impl Into<String>) -> Self {
        ProtoError {
            code,
            message: message.into(),
        }
    }
    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self::new(ErrCode::BadRequest, message)
    }
    pub fn into_reply(self) -> Reply {
        Reply::Err(self.code, self.message)
    }
}
