//! The server's half of SCRAM-SHA-1: parse client-first, answer with salt, count and a nonce
//! of its own, and check the client's proof against the stored key in constant time. Pure:
//! the server nonce and the user's stored credentials come from the caller.

use crate::sha1::Sha1;

use super::{
    CHANNEL_BINDING, Credentials, GS2_HEADER, ScramError, SessionKey, attr, check_extensions,
    check_nonce, key_from_base64, unescape_username, xor,
};
use crate::auth::base64;
use crate::auth::ct;
use crate::auth::hmac::{LEN, hmac_sha1};
use std::fmt;

/// A parsed `client-first-message`, before the server has looked up the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name, unescaped.
    pub user: String,
    /// The client's nonce.
    pub nonce: String,
    bare: String,
}

/// Parse `client-first-message` (server side).
pub fn read_client_first(line: &str) -> Result<ClientFirst, ScramError> {
    let Some(bare) = line.strip_prefix(GS2_HEADER) else {
        return Err(if line.starts_with("n,a=") {
            ScramError::AuthzId
        } else if line.starts_with("y,") || line.starts_with("p=") {
            ScramError::ChannelBinding
        } else {
            ScramError::Malformed("gs2 header")
        });
    };
    let mut parts = bare.split(',');
    let first = parts.next();
    if first.is_some_and(|p| p.starts_with("m=")) {
        return Err(ScramError::Extension);
    }
    let user = unescape_username(attr(first, "n")?)?;
    let nonce = attr(parts.next(), "r")?;
    check_extensions(parts)?;
    check_nonce(nonce)?;
    Ok(ClientFirst {
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// The server's side of one exchange, between its first and its final message.
#[derive(Clone)]
pub struct Server {
    nonce: String,
    first_message: String,
    auth_prefix: String,
    stored_key: [u8; LEN],
    server_key: [u8; LEN],
}

/// What a successful login gives the server.
#[derive(Clone, Debug)]
pub struct ServerFinal {
    /// `server-final-message`: `v=<ServerSignature>`.
    pub message: String,
    /// The same key the client's [`super::ClientFinal::read_server_final`] returns.
    pub session: SessionKey,
}

impl Server {
    /// Answer `client_first` for a user with `credentials` (real, or [`Credentials::decoy`]),
    /// adding the caller's fresh random `server_nonce`.
    pub fn new(
        client_first: &ClientFirst,
        credentials: &Credentials,
        server_nonce: &str,
    ) -> Result<Server, ScramError> {
        check_nonce(server_nonce)?;
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let first_message = format!(
            "r={nonce},s={},i={}",
            base64::encode(&credentials.salt),
            credentials.iterations
        );
        Ok(Server {
            auth_prefix: format!("{},{first_message},", client_first.bare),
            nonce,
            first_message,
            stored_key: credentials.stored_key,
            server_key: credentials.server_key,
        })
    }

    /// `server-first-message`: `r=<nonces>,s=<salt>,i=<count>`.
    pub fn first_message(&self) -> &str {
        &self.first_message
    }

    /// Check `client-final-message`: channel binding, the combined nonce (so a final message
    /// captured from another exchange fails here), then the proof, in constant time.
    pub fn read_client_final(&self, line: &str) -> Result<ServerFinal, ScramError> {
        let (without_proof, proof) = line.rsplit_once(",p=").ok_or(ScramError::Malformed("p"))?;
        let proof = key_from_base64(proof, "p")?;
        let mut parts = without_proof.split(',');
        if attr(parts.next(), "c")? != CHANNEL_BINDING {
            return Err(ScramError::ChannelBinding);
        }
        if attr(parts.next(), "r")? != self.nonce {
            return Err(ScramError::Nonce);
        }
        check_extensions(parts)?;
        let auth_message = format!("{}{without_proof}", self.auth_prefix);
        let signature = hmac_sha1(&self.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &signature);
        let stored = Sha1::from(client_key).digest().bytes();
        if !ct::eq(&stored, &self.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac_sha1(&self.server_key, auth_message.as_bytes());
        Ok(ServerFinal {
            message: format!("v={}", base64::encode(&server_signature)),
            session: SessionKey::new(&client_key, &auth_message),
        })
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Server")
            .field("first_message", &self.first_message)
            .finish_non_exhaustive()
    }
}
