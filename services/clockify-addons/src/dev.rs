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

/// Reads `name` from `dir`, or creates it with `make()`. Creation is atomic (write aside, then
/// hard-link into place), so a `dev` and a `sign` started together agree on one key.
fn load_or_create(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing);
    }
    let contents = make()?;
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, &contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(contents),
        // Another process won the race: use its key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display())),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The development key pair, created on first use.
pub fn key_pair(dir: &Path) -> anyhow::Result<DevKeyPair> {
    let pem = load_or_create(dir, SIGNING_KEY, || {
        Ok(DevKeyPair::generate()
            .context("cannot generate an RSA key")?
            .private_pem)
    })?;
    DevKeyPair::from_private_pem(&pem).with_context(|| {
        format!(
            "{} is not a PKCS#8 RSA key",
            dir.join(SIGNING_KEY).display()
        )
    })
}

fn encryption_key(dir: &Path) -> anyhow::Result<String> {
    let key = load_or_create(dir, ENCRYPTION_KEY, || {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    })?;
    Ok(key.trim().to_owned())
}

/// The environment `dev` serves with; variables already set win.
pub fn environment(dir: &Path, def: &AddonDefinition, port: u16) -> anyhow::Result<Env> {
    let pair = key_pair(dir)?;
    let mut env = Env::from_process();
    env.set("ADDON_MODE", "development");
    env.set_default("ADDON_LISTEN_ADDR", format!("127.0.0.1:{port}"));
    env.set_default(
        "DATABASE_URL",
        format!("sqlite://{}/{}.db?mode=rwc", dir.display(), def.slug),
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
