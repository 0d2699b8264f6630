//! Installation tokens are encrypted at rest with XChaCha20-Poly1305 (RustCrypto).
//!
//! The workspace id is bound as associated data, so a ciphertext copied to another
//! workspace's row does not decrypt. Stored form: `v1.<base64 nonce||ciphertext>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox, SecretString};

const PREFIX: &str = "v1.";
const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct TokenCipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher([redacted])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("stored token is not in the v1 format")]
    Format,
    #[error("stored token does not decrypt with TOKEN_ENCRYPTION_KEY (wrong key, or tampered)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

impl TokenCipher {
    pub fn new(key: &SecretBox<[u8; 32]>) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(key.expose_secret().into()),
        }
    }

    /// A cipher with a random key that lives only as long as the process (development only).
    pub fn ephemeral() -> Self {
        Self {
            aead: XChaCha20Poly1305::new(&XChaCha20Poly1305::generate_key(&mut OsRng)),
        }
    }

    pub fn encrypt(&self, workspace_id: &str, token: &SecretString) -> Result<String, CryptoError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
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
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn decrypt(&self, workspace_id: &str, stored: &str) -> Result<SecretString, CryptoError> {
        let raw = stored.strip_prefix(PREFIX).ok_or(CryptoError::Format)?;
        let bytes = B64.decode(raw).map_err(|_| CryptoError::Format)?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError::Format);
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let pt = self
            .aead
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
        assert!(stored.starts_with("v1."));
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
            CryptoError::Decrypt
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
}
