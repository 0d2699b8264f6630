//! One RSA key pair per test binary, playing Clockify's signing key.

use std::sync::OnceLock;

use addon_core::auth::{DevKeyPair, TokenSigner};

pub fn keys() -> &'static DevKeyPair {
    static KEYS: OnceLock<DevKeyPair> = OnceLock::new();
    KEYS.get_or_init(|| DevKeyPair::generate().expect("RSA key generation"))
}

/// Signs tokens for the add-on key `addon_key`.
pub fn signer(addon_key: &str) -> TokenSigner {
    TokenSigner::from_rsa_pem(&keys().private_pem, addon_key).expect("signer from generated key")
}
