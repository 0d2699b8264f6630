//! Local development: a key pair that plays Clockify's signing key, a persistent token
//! encryption key, and an embedded SQLite database, all under one directory.

use std::path::Path;

use addon_core::addon::AddonDefinition;
use addon_core::auth::{DevKeyPair, TokenKind, TokenSigner};
use addon_core::config::Env;
use anyhow::Context as _;
use base64::Engine as _;

const SIGNING_KEY: &str = "dev-signing-key.pem";
const ENCRYPTION_KEY: &str = "token-encryption.key";

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The development key pair, created on first use.
pub fn key_pair(dir: &Path) -> anyhow::Result<DevKeyPair> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(SIGNING_KEY);
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return DevKeyPair::from_private_pem(&pem)
            .with_context(|| format!("{} is not a PKCS#8 RSA key", path.display()));
    }
    let pair = DevKeyPair::generate().context("cannot generate an RSA key")?;
    write_private(&path, &pair.private_pem)?;
    Ok(pair)
}

fn encryption_key(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(ENCRYPTION_KEY);
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(key.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let key = base64::engine::general_purpose::STANDARD.encode(bytes);
    write_private(&path, &key)?;
    Ok(key)
}

/// The environment `dev` serves with; variables already set win.
pub fn environment(dir: &Path, port: u16) -> anyhow::Result<Env> {
    let pair = key_pair(dir)?;
    let mut env = Env::from_process();
    env.set("ADDON_MODE", "development");
    env.set_default("ADDON_LISTEN_ADDR", format!("127.0.0.1:{port}"));
    env.set_default(
        "DATABASE_URL",
        format!("sqlite://{}/api-studio.db?mode=rwc", dir.display()),
    );
    env.set_default("TOKEN_ENCRYPTION_KEY", encryption_key(dir)?);
    env.set_default("LOG_FORMAT", "text");
    if env.get("CLOCKIFY_PUBLIC_KEY_FILE").is_none() {
        env.set_default("CLOCKIFY_PUBLIC_KEY", pair.public_pem);
    }
    Ok(env)
}

pub fn sign(
    dir: &Path,
    def: &AddonDefinition,
    workspace: &str,
    kind: TokenKind,
    api_url: &str,
) -> anyhow::Result<String> {
    let pair = key_pair(dir)?;
    let key = std::env::var("ADDON_KEY").unwrap_or_else(|_| def.defaults.key.to_owned());
    let signer = TokenSigner::from_rsa_pem(&pair.private_pem, &key)?;
    Ok(signer.sign(kind, workspace, api_url)?)
}
