//! The client's half of SCRAM-SHA-1: build client-first, check server-first, prove knowledge
//! of the password in client-final, and check the server's signature in server-final. Pure:
//! the nonce and the password (or keys derived from it) come from the caller.

use crate::sha1::Sha1;

use super::{
    CHANNEL_BINDING, ClientKeys, GS2_HEADER, MAX_ITERATIONS, ScramError, SessionKey, attr,
    check_extensions, check_nonce, escape_username, key_from_base64, xor,
};
use crate::auth::base64;
use crate::auth::ct;
use crate::auth::hmac::{LEN, hmac_sha1};

/// A client's login in progress: who, and its nonce.
#[derive(Clone, Debug)]
pub struct Client {
    nonce: String,
    bare: String,
}

/// The server's first message, parsed and checked by [`Client::read_server_first`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFirst {
    /// Client nonce followed by server nonce.
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
    message: String,
}

/// The client's last message and what it expects back.
#[derive(Clone, Debug)]
pub struct ClientFinal {
    message: String,
    server_signature: [u8; LEN],
    session: SessionKey,
}

impl Client {
    /// Start a login as `user` with a fresh random `nonce` (the caller's: 18+ random bytes in
    /// base64 is plenty).
    pub fn new(user: &str, nonce: &str) -> Result<Client, ScramError> {
        if user.is_empty() || user.contains('\0') {
            return Err(ScramError::Username);
        }
        check_nonce(nonce)?;
        Ok(Client {
            nonce: nonce.to_string(),
            bare: format!("n={},r={nonce}", escape_username(user)),
        })
    }

    /// `client-first-message`: `n,,n=<user>,r=<nonce>`.
    pub fn first_message(&self) -> String {
        format!("{GS2_HEADER}{}", self.bare)
    }

    /// Parse and check `server-first-message`: our nonce must start the combined one.
    pub fn read_server_first(&self, line: &str) -> Result<ServerFirst, ScramError> {
        let mut parts = line.split(',');
        let first = parts.next();
        if first.is_some_and(|p| p.starts_with("m=")) {
            return Err(ScramError::Extension);
        }
        let nonce = attr(first, "r")?;
        let salt = attr(parts.next(), "s")?;
        let count = attr(parts.next(), "i")?;
        check_extensions(parts)?;
        check_nonce(nonce)?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = base64::decode(salt).map_err(|_| ScramError::Malformed("s"))?;
        if salt.is_empty() {
            return Err(ScramError::Parameters("empty salt"));
        }
        let digits = !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit());
        let iterations: u32 = digits
            .then(|| count.parse().ok())
            .flatten()
            .ok_or(ScramError::Malformed("i"))?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(ScramError::Parameters("iteration count out of range"));
        }
        Ok(ServerFirst {
            nonce: nonce.to_string(),
            salt,
            iterations,
            message: line.to_string(),
        })
    }

    /// Build `client-final-message` from keys derived for this server-first's salt and count
    /// (see [`ClientKeys::fits`]; with other keys the proof is simply wrong).
    pub fn final_message(&self, server_first: &ServerFirst, keys: &ClientKeys) -> ClientFinal {
        let without_proof = format!("c={CHANNEL_BINDING},r={}", server_first.nonce);
        let auth_message = format!("{},{},{without_proof}", self.bare, server_first.message);
        let stored_key = Sha1::from(keys.client_key).digest().bytes();
        let signature = hmac_sha1(&stored_key, auth_message.as_bytes());
        let proof = xor(&keys.client_key, &signature);
        ClientFinal {
            message: format!("{without_proof},p={}", base64::encode(&proof)),
            server_signature: hmac_sha1(&keys.server_key, auth_message.as_bytes()),
            session: SessionKey::new(&keys.client_key, &auth_message),
        }
    }

    /// Both steps at once from the password: parse server-first, run PBKDF2, build the reply.
    /// Returns the keys too, so the caller can log in again later without the password.
    pub fn respond(
        &self,
        server_first: &str,
        password: &[u8],
    ) -> Result<(ClientFinal, ClientKeys), ScramError> {
        let first = self.read_server_first(server_first)?;
        let keys = ClientKeys::derive(password, &first.salt, first.iterations);
        Ok((self.final_message(&first, &keys), keys))
    }
}

impl ClientFinal {
    /// `client-final-message`: `c=biws,r=<nonces>,p=<proof>`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Check `server-final-message`. Only after this is the server known to be genuine; the
    /// session key is handed out only then.
    pub fn read_server_final(&self, line: &str) -> Result<SessionKey, ScramError> {
        let mut parts = line.split(',');
        let first = parts.next().unwrap_or("");
        if let Some(value) = first.strip_prefix("e=") {
            return Err(ScramError::Server(value.to_string()));
        }
        let signature = key_from_base64(attr(Some(first), "v")?, "v")?;
        check_extensions(parts)?;
        if !ct::eq(&signature, &self.server_signature) {
            return Err(ScramError::ServerSignature);
        }
        Ok(self.session.clone())
    }
}
