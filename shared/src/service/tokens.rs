//! Issuing access tokens and the token response every grant returns.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};

use crate::config::Config;
use crate::crypto::random_id;
use crate::domain::Stage;
use crate::error::ApiError;
use crate::jwt::{AccessClaims, AccessTokenVerifier, SigningKey};
use crate::keys::KeyRing;
use crate::refresh_token::RefreshTokenCodec;
use crate::store::RefreshFamily;
use crate::time::rfc3339;

pub use crate::domain::Principal;

/// The SPEC's token response (RFC 6749 §5.1 plus `expires_at`).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    #[serde(serialize_with = "expose")]
    pub access_token: SecretString,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// RFC 3339.
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    pub refresh_token: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<u64>,
    pub scope: String,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

#[allow(clippy::ref_option)]
fn expose_opt<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

/// The token response for a family: `access` plus the family's current
/// refresh token.
pub fn family_response(codec: &RefreshTokenCodec, family: &RefreshFamily, access: IssuedAccessToken) -> TokenResponse {
    let refresh = codec.mint(family.family, family.generation, &family.principal);
    TokenIssuer::response(access, Some((refresh, family.valid_until())))
}

/// An access token being signed on the blocking pool.
#[derive(Debug)]
pub struct BackgroundToken(tokio::task::JoinHandle<Result<IssuedAccessToken, ApiError>>);

impl BackgroundToken {
    pub async fn wait(self) -> Result<IssuedAccessToken, ApiError> {
        self.0.await.map_err(|err| ApiError::Internal(Box::new(err)))?
    }
}

fn sign_claims(key: &SigningKey, claims: AccessClaims) -> Result<IssuedAccessToken, ApiError> {
    Ok(IssuedAccessToken {
        token: key.sign(&claims)?.into(),
        issued_at: claims.iat,
        expires_at: claims.exp,
        scope: claims.scope,
    })
}

/// Signs access tokens for one issuer, audience and stage.
#[derive(Debug)]
pub struct TokenIssuer {
    keys: Arc<KeyRing>,
    issuer: String,
    audience: String,
    stage: Stage,
    access_ttl: Duration,
    verifier: AccessTokenVerifier,
}

/// A signed access token and when it expires.
#[derive(Debug)]
pub struct IssuedAccessToken {
    pub token: SecretString,
    pub issued_at: u64,
    pub expires_at: u64,
    pub scope: String,
}

impl TokenIssuer {
    pub fn new(config: &Config, keys: Arc<KeyRing>) -> Self {
        Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            stage: config.stage,
            access_ttl: config.access_token_ttl,
            verifier: AccessTokenVerifier::new(&config.issuer, &config.audience, config.stage.as_str()),
        }
    }

    /// An issuer that only verifies (its key ring holds no private key).
    pub fn verify_only(keys: Arc<KeyRing>, issuer: &str, audience: &str, stage: Stage) -> Self {
        Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            stage,
            access_ttl: Duration::ZERO,
            verifier: AccessTokenVerifier::new(issuer, audience, stage.as_str()),
        }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// A verifier for the tokens this issuer signs.
    pub fn verifier(&self) -> AccessTokenVerifier {
        self.verifier.clone()
    }

    /// The issuer URL (`iss`).
    pub fn issuer_url(&self) -> &str {
        &self.issuer
    }

    /// Verifies an access token this deployment issued, with the cached
    /// public keys (no DynamoDB call unless it names a key not yet loaded).
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        let kid = AccessTokenVerifier::kid_of(token)?;
        let set = self.keys.verifying_set_for(&kid).await?;
        Ok(self.verifier.verify(token, &set.verifying)?)
    }

    /// Signs an access token issued at `now` (Unix seconds).
    pub async fn issue(&self, principal: &Principal, now: u64) -> Result<IssuedAccessToken, ApiError> {
        let key = self.keys.signing_key().await?;
        sign_claims(&key, self.claims(principal, now))
    }

    /// Like [`issue`](Self::issue), but the signing runs on the blocking pool
    /// so the caller can wait on DynamoDB meanwhile.
    pub async fn issue_in_background(&self, principal: &Principal, now: u64) -> Result<BackgroundToken, ApiError> {
        let key = self.keys.signing_key().await?;
        let claims = self.claims(principal, now);
        Ok(BackgroundToken(tokio::task::spawn_blocking(move || sign_claims(&key, claims))))
    }

    fn claims(&self, principal: &Principal, now: u64) -> AccessClaims {
        AccessClaims {
            iss: self.issuer.clone(),
            sub: principal.sub.clone(),
            aud: self.audience.clone(),
            exp: now + self.access_ttl.as_secs(),
            iat: now,
            jti: random_id(),
            tid: principal.tenant_id.clone(),
            scope: principal.scope.clone(),
            env: self.stage.as_str().to_owned(),
            client_id: principal.client_id.clone(),
        }
    }

    /// Builds the token response around a freshly issued access token;
    /// lifetimes count from the moment it was issued.
    pub fn response(access: IssuedAccessToken, refresh: Option<(SecretString, u64)>) -> TokenResponse {
        let now = access.issued_at;
        let (refresh_token, refresh_expires_in) = match refresh {
            Some((token, valid_until)) => (Some(token), Some(valid_until.saturating_sub(now))),
            None => (None, None),
        };
        TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_at.saturating_sub(now),
            expires_at: rfc3339(access.expires_at),
            refresh_token,
            refresh_expires_in,
            scope: access.scope,
        }
    }
}
