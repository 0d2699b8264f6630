//! Verification of the tokens Clockify signs (RS256 only), and signing for development and tests.
//!
//! Every rejection carries a static reason (logged, counted); the token itself is never logged.

use std::collections::HashSet;

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

pub const HEADER_LIFECYCLE: &str = "x-addon-lifecycle-token";
pub const HEADER_SIGNATURE: &str = "clockify-signature";
pub const HEADER_EVENT_TYPE: &str = "clockify-webhook-event-type";
pub const HEADER_ADDON_TOKEN: &str = "x-addon-token";

/// What a token is presented for. All Clockify tokens share the claims below; user tokens
/// (iframes) are short-lived and must carry `exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Lifecycle,
    Webhook,
    User,
    Installation,
}

/// Claims of a Clockify add-on token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClockifyClaims {
    pub iss: String,
    pub sub: String,
    #[serde(rename = "type")]
    pub token_type: String,
    pub workspace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pto_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// A token id; the signer sets a fresh one so that two tokens are never the same string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl ClockifyClaims {
    /// Only user tokens (the iframe's `auth_token`) carry the viewer's role, theme and
    /// language: a token with any of them is a user token, whatever it is presented as.
    pub fn is_user_shaped(&self) -> bool {
        self.workspace_role.is_some() || self.theme.is_some() || self.language.is_some()
    }

    /// Owners and admins may run write operations from the UI.
    pub fn is_admin(&self) -> bool {
        matches!(
            self.workspace_role.as_deref(),
            Some("OWNER" | "ADMIN" | "WORKSPACE_ADMIN")
        )
    }
}

/// Why a request was refused. `reason()` is a fixed label for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token was presented")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is not signed with RS256")]
    Algorithm,
    #[error("the token signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token issuer is not clockify")]
    Issuer,
    #[error("the token subject is not this add-on")]
    Subject,
    #[error("the token type is not addon")]
    Type,
    #[error("the token names no workspace")]
    NoWorkspace,
    #[error("the token is for another workspace")]
    WorkspaceMismatch,
    #[error("a user token must expire")]
    NoExpiry,
    #[error("the token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("a user token is required here (it carries workspaceRole and expires)")]
    NotUserToken,
    #[error("a user token is not accepted here")]
    UserToken,
    #[error("an installation or webhook token is not a lifecycle token")]
    NotLifecycleToken,
    #[error("the token was revoked when the add-on was deleted from the workspace")]
    Revoked,
    #[error("the webhook token was not issued to this installation")]
    UnknownWebhookToken,
    #[error("the add-on is not installed in this workspace")]
    NotInstalled,
    #[error("the signature does not verify for this workspace and source")]
    BadSignature,
    #[error("webhook-timestamp is outside the tolerance window (a replay, or a clock that is off)")]
    StaleTimestamp,
}

impl AuthError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::Issuer => "issuer",
            Self::Subject => "subject",
            Self::Type => "type",
            Self::NoWorkspace => "no_workspace",
            Self::WorkspaceMismatch => "workspace_mismatch",
            Self::NoExpiry => "no_expiry",
            Self::NotYetValid => "not_yet_valid",
            Self::NotUserToken => "not_user_token",
            Self::UserToken => "user_token",
            Self::NotLifecycleToken => "not_lifecycle_token",
            Self::Revoked => "revoked",
            Self::UnknownWebhookToken => "unknown_webhook_token",
            Self::NotInstalled => "not_installed",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// Verifies Clockify tokens against one RSA public key.
///
/// Clockify sends the same webhook token with every delivery of a webhook and it never
/// expires, so verified webhook tokens are kept in a bounded cache keyed by their SHA-256: the
/// RSA check runs once per token, not once per delivery. An entry whose token carries `exp` is
/// dropped once it expires.
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    addon_key: String,
    validation: Validation,
    webhook_cache:
        std::sync::Arc<quick_cache::sync::Cache<[u8; 32], std::sync::Arc<ClockifyClaims>>>,
}

/// Verified webhook tokens kept per process.
const WEBHOOK_CACHE_ENTRIES: usize = 10_000;

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("addon_key", &self.addon_key)
            .finish()
    }
}

impl TokenVerifier {
    pub fn new(public_key_pem: &str, addon_key: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        let key = DecodingKey::from_rsa_pem(public_key_pem.as_bytes())?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.leeway = 30;
        // Webhook tokens never expire: `exp` is checked when present, required only for user tokens.
        validation.required_spec_claims = HashSet::new();
        Ok(Self {
            key,
            addon_key: addon_key.to_owned(),
            validation,
            webhook_cache: std::sync::Arc::new(quick_cache::sync::Cache::new(
                WEBHOOK_CACHE_ENTRIES,
            )),
        })
    }

    /// Verifies a webhook token, from the cache when this token was verified before.
    pub fn verify_webhook(&self, token: &str) -> Result<std::sync::Arc<ClockifyClaims>, AuthError> {
        use sha2::{Digest, Sha256};
        let token = token.trim();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.webhook_cache.get(&key) {
            match claims.exp {
                Some(exp) if exp + (self.validation.leeway as i64) < crate::time::now_secs() => {
                    self.webhook_cache.remove(&key);
                }
                _ => return Ok(claims),
            }
        }
        let claims = std::sync::Arc::new(self.verify(token, TokenKind::Webhook)?);
        self.webhook_cache.insert(key, claims.clone());
        Ok(claims)
    }

    pub fn addon_key(&self) -> &str {
        &self.addon_key
    }

    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<ClockifyClaims, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm);
        }
        let data = jsonwebtoken::decode::<ClockifyClaims>(token, &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Algorithm
                }
                // A token whose claims do not parse was still signed by someone: it is malformed.
                _ => AuthError::Malformed,
            })?;
        let claims = data.claims;
        if claims.iss != "clockify" {
            return Err(AuthError::Issuer);
        }
        if claims.token_type != "addon" {
            return Err(AuthError::Type);
        }
        if claims.sub != self.addon_key {
            return Err(AuthError::Subject);
        }
        if claims.workspace_id.trim().is_empty() {
            return Err(AuthError::NoWorkspace);
        }
        if let Some(iat) = claims.iat
            && iat > crate::time::now_secs() + self.validation.leeway as i64
        {
            return Err(AuthError::NotYetValid);
        }
        // The kind is judged by what Clockify puts in a token, never by where it is presented.
        match kind {
            TokenKind::User => {
                if claims.workspace_role.is_none() {
                    return Err(AuthError::NotUserToken);
                }
                if claims.exp.is_none() {
                    return Err(AuthError::NoExpiry);
                }
            }
            TokenKind::Lifecycle | TokenKind::Webhook | TokenKind::Installation => {
                if claims.is_user_shaped() {
                    return Err(AuthError::UserToken);
                }
            }
        }
        Ok(claims)
    }
}

/// The lifecycle token: `X-Addon-Lifecycle-Token` (documented) or `Clockify-Signature` (Clockify's examples).
pub fn lifecycle_token(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, HEADER_LIFECYCLE).or_else(|| header_str(headers, HEADER_SIGNATURE))
}

/// A user token from `Authorization: Bearer` or the `auth_token` query parameter.
pub fn user_token<'a>(headers: &'a HeaderMap, query_token: Option<&'a str>) -> Option<&'a str> {
    header_str(headers, "authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .or(query_token.filter(|t| !t.is_empty()))
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Signs tokens the way Clockify does; used by `clockify-addons sign` and by tests.
#[derive(Clone)]
pub struct TokenSigner {
    key: EncodingKey,
    addon_key: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("addon_key", &self.addon_key)
            .finish()
    }
}

impl TokenSigner {
    pub fn from_rsa_pem(
        private_key_pem: &str,
        addon_key: &str,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self {
            key: EncodingKey::from_rsa_pem(private_key_pem.as_bytes())?,
            addon_key: addon_key.to_owned(),
        })
    }

    /// The claims Clockify puts in a token of this kind.
    pub fn claims(&self, kind: TokenKind, workspace_id: &str, api_url: &str) -> ClockifyClaims {
        let now = crate::time::now_secs();
        let mut c = ClockifyClaims {
            iss: "clockify".into(),
            sub: self.addon_key.clone(),
            token_type: "addon".into(),
            workspace_id: workspace_id.into(),
            addon_id: Some("dev-addon-id".into()),
            user: Some("dev-user".into()),
            backend_url: Some(api_url.into()),
            reports_url: None,
            pto_url: None,
            language: None,
            theme: None,
            workspace_role: None,
            exp: None,
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().simple().to_string()),
        };
        match kind {
            TokenKind::User => {
                c.language = Some("EN".into());
                c.theme = Some("DEFAULT".into());
                c.workspace_role = Some("OWNER".into());
                c.exp = Some(now + 30 * 60);
            }
            TokenKind::Lifecycle => c.exp = Some(now + 5 * 60),
            TokenKind::Webhook | TokenKind::Installation => {}
        }
        c
    }

    pub fn sign_claims(
        &self,
        claims: &impl Serialize,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &self.key)
    }

    pub fn sign(
        &self,
        kind: TokenKind,
        workspace_id: &str,
        api_url: &str,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.sign_claims(&self.claims(kind, workspace_id, api_url))
    }
}

/// An RSA key pair for local development and tests.
#[derive(Clone)]
pub struct DevKeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

impl std::fmt::Debug for DevKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DevKeyPair([redacted])")
    }
}

impl DevKeyPair {
    pub fn generate() -> Result<Self, rsa::Error> {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
        let private_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| rsa::Error::Internal)?
            .to_string();
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| rsa::Error::Internal)?;
        Ok(Self {
            private_pem,
            public_pem,
        })
    }

    /// Rebuilds the pair from a stored private key.
    pub fn from_private_pem(private_pem: &str) -> Result<Self, rsa::Error> {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
        let private =
            rsa::RsaPrivateKey::from_pkcs8_pem(private_pem).map_err(|_| rsa::Error::Internal)?;
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| rsa::Error::Internal)?;
        Ok(Self {
            private_pem: private_pem.to_owned(),
            public_pem,
        })
    }
}
