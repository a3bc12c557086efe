//! Refresh-token rotation and revocation (RFC 7009).
//!
//! A refresh is one conditional UpdateItem. When the condition fails, the
//! family as it is decides the answer, without another read:
//! - the token is the one just rotated away and the grace window is open:
//!   the same successor again (a client retrying a lost response);
//! - the token is older (reuse, a sign of theft): the whole family is
//!   revoked, so the thief's and the victim's tokens both die;
//! - revoked, expired or unknown: 401.
//!
//! A family an API key started (exchange) also ends when the key is revoked
//! or expires: its refresh reads the key alongside the rotation.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use crate::config::Config;
use crate::domain::{ApiKeyId, Principal};
use crate::error::ApiError;
use crate::refresh_token::RefreshTokenCodec;
use crate::service::tokens::{TokenIssuer, TokenResponse, family_response};
use crate::store::{ApiKeyStore, RefreshFamily, RefreshFamilyStore, RotateOutcome, Stores};
use crate::time::{now_millis, now_secs};

/// POST /v1/auth/refresh body.
#[derive(Debug, Deserialize)]
pub struct RefreshRequest {
    pub refresh_token: SecretString,
}

/// POST /v1/auth/revoke body (RFC 7009 §2.1).
#[derive(Debug, Deserialize)]
pub struct RevokeRequest {
    pub token: SecretString,
    /// Accepted and ignored: every token we can revoke is a refresh token.
    #[serde(default)]
    pub token_type_hint: Option<String>,
}

const INVALID: &str = "the refresh token is invalid";
const EXPIRED: &str = "the refresh token has expired";
const REVOKED: &str = "the refresh token has been revoked";
const KEY_GONE: &str = "the API key this session came from has been revoked or has expired";
const REUSED: &str = "the refresh token was already used; the session has been revoked";

pub struct RefreshService {
    families: RefreshFamilyStore,
    api_keys: ApiKeyStore,
    codec: Arc<RefreshTokenCodec>,
    issuer: Arc<TokenIssuer>,
    refresh_ttl: u64,
    grace: Duration,
}

impl std::fmt::Debug for RefreshService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshService")
            .field("refresh_ttl", &self.refresh_ttl)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl RefreshService {
    pub fn new(config: &Config, stores: &Stores, issuer: Arc<TokenIssuer>, codec: Arc<RefreshTokenCodec>) -> Self {
        Self {
            families: stores.refresh_families.clone(),
            api_keys: stores.api_keys.clone(),
            codec,
            issuer,
            refresh_ttl: config.refresh_token_ttl.as_secs(),
            grace: config.refresh_grace,
        }
    }

    pub async fn refresh(&self, request: RefreshRequest) -> Result<TokenResponse, ApiError> {
        // Forged or malformed tokens are refused without touching DynamoDB.
        let claim = self.codec.open(&request.refresh_token).ok_or(ApiError::InvalidToken(INVALID))?;
        let (now, now_ms) = (now_secs(), now_millis());
        // Sign the next access token on another thread while the write is in
        // flight; it is used only if the write succeeds for the same principal.
        let speculative = match &claim.claims {
            Some(principal) => Some((principal.clone(), self.issuer.issue_in_background(principal, now).await?)),
            None => None,
        };
        // A session an API key started ends with the key: read the key while
        // the rotation is in flight (no extra latency, one more read).
        let key_id = claim.claims.as_ref().and_then(api_key_of);
        let key_lookup = async {
            match &key_id {
                Some(id) => self.api_keys.get(id, now).await.map(Some),
                None => Ok(None),
            }
        };
        let (outcome, key) = tokio::join!(
            self.families.rotate(claim.family, claim.generation, now, now_ms, now + self.refresh_ttl),
            key_lookup
        );
        let family = match outcome? {
            RotateOutcome::Rotated(family) => family,
            RotateOutcome::Rejected(None) => return Err(ApiError::InvalidToken(INVALID)),
            RotateOutcome::Rejected(Some(family)) => {
                return self.rejected(family, claim.generation, now, now_ms).await;
            }
        };
        if let Some(id) = api_key_of(&family.principal) {
            let record = if key_id.as_ref() == Some(&id) { key? } else { Some(self.api_keys.get(&id, now).await?) };
            let live = record.flatten().is_some_and(|r| r.revoked_at.is_none() && !r.is_expired(now));
            if !live {
                self.families.revoke(family.family, "api_key_revoked", now).await?;
                tracing::info!(family = ?family.family, key_id = %id, "refresh refused: the API key is revoked or expired");
                return Err(ApiError::InvalidToken(KEY_GONE));
            }
        }
        let access = match speculative {
            Some((signed_for, signing)) if signed_for == family.principal => signing.wait().await?,
            _ => self.issuer.issue(&family.principal, now).await?,
        };
        Ok(family_response(&self.codec, &family, access))
    }

    /// Answers a rotation whose condition failed, given the family as it is.
    async fn rejected(
        &self,
        family: RefreshFamily,
        presented: u64,
        now: u64,
        now_ms: u64,
    ) -> Result<TokenResponse, ApiError> {
        if family.revoked_at.is_some() {
            return Err(ApiError::InvalidToken(REVOKED));
        }
        if family.valid_until() <= now {
            return Err(ApiError::InvalidToken(EXPIRED));
        }
        if family.generation <= presented {
            // A generation we never issued: only a forged MAC could get here.
            return Err(ApiError::InvalidToken(INVALID));
        }
        let within_grace = !self.grace.is_zero()
            && family.generation == presented + 1
            && family.rotated_at_ms.is_some_and(|at| now_ms.saturating_sub(at) <= duration_ms(self.grace));
        if within_grace {
            tracing::info!(family = ?family.family, "refresh retried within the grace window");
            return self.respond(&family, now).await;
        }
        self.families.revoke(family.family, "reuse_detected", now).await?;
        tracing::warn!(family = ?family.family, presented, current = family.generation, "refresh token reuse: family revoked");
        Err(ApiError::InvalidToken(REUSED))
    }

    /// A new access token plus the family's current refresh token.
    async fn respond(&self, family: &RefreshFamily, now: u64) -> Result<TokenResponse, ApiError> {
        let access = self.issuer.issue(&family.principal, now).await?;
        Ok(family_response(&self.codec, family, access))
    }

    /// RFC 7009: revokes the token's family. Unknown, malformed and
    /// already-revoked tokens succeed too, so revocation leaks nothing.
    pub async fn revoke(&self, request: RevokeRequest) -> Result<(), ApiError> {
        let Some(claim) = self.codec.open(&request.token) else {
            return Ok(());
        };
        if self.families.revoke(claim.family, "revoked_by_client", now_secs()).await? {
            tracing::info!(family = ?claim.family, "refresh family revoked");
        }
        Ok(())
    }
}

/// The API key a family's tokens were issued to, if an API key started it
/// (its `sub` and `client_id` are both the key id).
fn api_key_of(principal: &Principal) -> Option<ApiKeyId> {
    let client_id = principal.client_id.as_deref()?;
    if principal.sub != client_id {
        return None;
    }
    ApiKeyId::parse(client_id).ok()
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
