//! Installation tokens and other stored credentials are encrypted at rest with
//! XChaCha20-Poly1305 (RustCrypto), under a keyring.
//!
//! The workspace id is bound as associated data, so a ciphertext copied to another
//! workspace's row does not decrypt. Stored form: `v2.<key id>.<base64 nonce||ciphertext>`,
//! where the key id is derived from the key itself (the first 8 hex digits of a SHA-256 of
//! it), so that keys need no names and a ciphertext says which key opens it. The first key of
//! the ring encrypts; every key decrypts. `v1.<base64>` (before key ids) is still read, trying
//! each key. `clockify-addons rotate-key` re-encrypts everything under the first key, after
//! which older keys can leave the ring.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};

const V1: &str = "v1.";
const V2: &str = "v2.";
const NONCE_LEN: usize = 24;

#[derive(Clone)]
struct RingKey {
    id: String,
    aead: XChaCha20Poly1305,
}

/// The keyring: the first key encrypts, every key decrypts.
#[derive(Clone)]
pub struct TokenCipher {
    keys: Vec<RingKey>,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCipher")
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("stored value is not in the v1 or v2 format")]
    Format,
    #[error(
        "stored value is encrypted with key {0}, which is in neither TOKEN_ENCRYPTION_KEY nor TOKEN_ENCRYPTION_PREVIOUS_KEYS"
    )]
    UnknownKey(String),
    #[error(
        "stored value does not decrypt with the token encryption keys (wrong key, or tampered)"
    )]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// The id of a key: the first 8 hex digits of SHA-256("clockify-addons key id" || key).
pub fn key_id(key: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"clockify-addons key id\n");
    h.update(key);
    hex::encode(&h.finalize()[..4])
}

impl TokenCipher {
    /// A ring of one key.
    pub fn new(key: &SecretBox<[u8; 32]>) -> Self {
        Self::ring(std::slice::from_ref(key))
    }

    /// A ring: `keys[0]` encrypts, all decrypt. Duplicates are dropped.
    pub fn ring(keys: &[SecretBox<[u8; 32]>]) -> Self {
        let mut ring: Vec<RingKey> = Vec::with_capacity(keys.len());
        for k in keys {
            let id = key_id(k.expose_secret());
            if !ring.iter().any(|r| r.id == id) {
                ring.push(RingKey {
                    id,
                    aead: XChaCha20Poly1305::new(k.expose_secret().into()),
                });
            }
        }
        assert!(!ring.is_empty(), "a keyring needs at least one key");
        Self { keys: ring }
    }

    /// A cipher with a random key that lives only as long as the process (development only).
    pub fn ephemeral() -> Self {
        let key: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
        Self::new(&SecretBox::new(Box::new(key)))
    }

    /// The ids of the ring's keys, the encrypting one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key that encrypts.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Whether a stored value is encrypted under the primary key (else `rotate-key` would
    /// re-encrypt it).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(V2)
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(id, _)| id == self.primary_id())
    }

    pub fn encrypt(&self, workspace_id: &str, token: &SecretString) -> Result<String, CryptoError> {
        let key = &self.keys[0];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = key
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: workspace_id.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(format!("{V2}{}.{}", key.id, B64.encode(out)))
    }

    pub fn decrypt(&self, workspace_id: &str, stored: &str) -> Result<SecretString, CryptoError> {
        if let Some(rest) = stored.strip_prefix(V2) {
            let (id, body) = rest.split_once('.').ok_or(CryptoError::Format)?;
            let key = self
                .keys
                .iter()
                .find(|k| k.id == id)
                .ok_or_else(|| CryptoError::UnknownKey(id.chars().take(16).collect()))?;
            return open(&key.aead, workspace_id, body);
        }
        let body = stored.strip_prefix(V1).ok_or(CryptoError::Format)?;
        let mut last = CryptoError::Decrypt;
        for key in &self.keys {
            match open(&key.aead, workspace_id, body) {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Re-encrypts a stored value under the primary key; `None` when it already is.
    pub fn reencrypt(
        &self,
        workspace_id: &str,
        stored: &str,
    ) -> Result<Option<String>, CryptoError> {
        if self.is_current(stored) {
            return Ok(None);
        }
        let plain = self.decrypt(workspace_id, stored)?;
        self.encrypt(workspace_id, &plain).map(Some)
    }
}

fn open(
    aead: &XChaCha20Poly1305,
    workspace_id: &str,
    body: &str,
) -> Result<SecretString, CryptoError> {
    let bytes = B64.decode(body).map_err(|_| CryptoError::Format)?;
    if bytes.len() <= NONCE_LEN {
        return Err(CryptoError::Format);
    }
    let (nonce, ct) = bytes.split_at(NONCE_LEN);
    let pt = aead
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: workspace_id.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    let text = String::from_utf8(pt).map_err(|_| CryptoError::Decrypt)?;
    Ok(SecretString::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new([b; 32]))
    }

    #[test]
    fn round_trip_and_never_plaintext() {
        let c = TokenCipher::new(&key(7));
        let token = SecretString::from("eyJhbGciOiJSUzI1NiJ9.secret".to_owned());
        let stored = c.encrypt("ws1", &token).unwrap();
        assert!(!stored.contains("secret"));
        assert!(stored.starts_with(&format!("v2.{}.", key_id(&[7; 32]))));
        assert_eq!(
            c.decrypt("ws1", &stored).unwrap().expose_secret(),
            token.expose_secret()
        );
        // Fresh nonce every time.
        assert_ne!(stored, c.encrypt("ws1", &token).unwrap());
    }

    #[test]
    fn wrong_key_workspace_or_tampering_fail() {
        let c = TokenCipher::new(&key(7));
        let stored = c
            .encrypt("ws1", &SecretString::from("t".to_owned()))
            .unwrap();
        assert_eq!(
            TokenCipher::new(&key(8))
                .decrypt("ws1", &stored)
                .unwrap_err(),
            CryptoError::UnknownKey(key_id(&[7; 32]))
        );
        assert_eq!(c.decrypt("ws2", &stored).unwrap_err(), CryptoError::Decrypt);
        let mut tampered = stored.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            c.decrypt("ws1", &String::from_utf8(tampered).unwrap())
                .is_err()
        );
        assert_eq!(
            c.decrypt("ws1", "plaintext").unwrap_err(),
            CryptoError::Format
        );
    }

    /// Encrypts the way the first release did (no key id).
    fn v1(key: &[u8; 32], ws: &str, plain: &str) -> String {
        let aead = XChaCha20Poly1305::new(key.into());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: ws.as_bytes(),
                },
            )
            .unwrap();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("v1.{}", B64.encode(out))
    }

    #[test]
    fn a_ring_reads_every_key_and_writes_with_the_first() {
        let old = TokenCipher::new(&key(1));
        let stored_old = old
            .encrypt("ws1", &SecretString::from("a".to_owned()))
            .unwrap();
        let legacy = v1(&[1; 32], "ws1", "b");
        let ring = TokenCipher::ring(&[key(2), key(1)]);
        assert_eq!(ring.key_ids(), vec![key_id(&[2; 32]), key_id(&[1; 32])]);
        assert_eq!(
            ring.decrypt("ws1", &stored_old).unwrap().expose_secret(),
            "a"
        );
        assert_eq!(ring.decrypt("ws1", &legacy).unwrap().expose_secret(), "b");
        assert!(!ring.is_current(&stored_old));
        assert!(!ring.is_current(&legacy));
        let fresh = ring.reencrypt("ws1", &stored_old).unwrap().unwrap();
        assert!(ring.is_current(&fresh));
        assert_eq!(ring.reencrypt("ws1", &fresh).unwrap(), None);
        // Once everything is re-encrypted the old key can go.
        let new_only = TokenCipher::new(&key(2));
        assert_eq!(
            new_only.decrypt("ws1", &fresh).unwrap().expose_secret(),
            "a"
        );
        let err = new_only.decrypt("ws1", &stored_old).unwrap_err();
        assert_eq!(err, CryptoError::UnknownKey(key_id(&[1; 32])));
        assert!(err.to_string().contains("TOKEN_ENCRYPTION_PREVIOUS_KEYS"));
    }
}
