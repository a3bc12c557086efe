//! POST /v1/auth/token: API-key credentials in, tokens out.
//!
//! Every grant checks the key's secret (or the assertion's signature)
//! before any DynamoDB call, since the server derives the secret from the
//! key id; forgeries cost nothing. Then one consistent GetItem reads the
//! key. After that:
//! - `client_credentials`: sign and answer (RFC 6749 §5.1, no refresh token);
//! - `api_key`: one PutItem for the new refresh family, signing meanwhile;
//! - jwt-bearer: the assertion's single-use marker is a conditional PutItem
//!   sent together with the GetItem, then the family as for `api_key`.
//!
//! `last_used_at` is stamped at most once a minute per key, concurrently
//! with the critical write, and its failure never fails the exchange.

use std::net::IpAddr;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::assertion::{AssertionRejection, AssertionVerifier};
use crate::config::Config;
use crate::credentials::PresentedSecret;
use crate::domain::{ApiKeyId, Principal, Scopes};
use crate::error::ApiError;
use crate::refresh_token::RefreshTokenCodec;
use crate::service::api_keys::{ApiKeyAuthenticator, KeyRejection};
use crate::service::tokens::{TokenIssuer, TokenResponse, family_response};
use crate::store::{ApiKeyRecord, AssertionStore, RefreshFamily, RefreshFamilyStore, Stores};
use crate::time::now_secs;

/// The path of the token endpoint, also an accepted assertion `aud`.
pub const TOKEN_PATH: &str = "/v1/auth/token";

/// A grant as the token endpoint read it.
#[derive(Debug)]
pub enum Grant {
    /// `grant_type=api_key`: the key id and its secret (bare, or the whole
    /// key string); `workspace`, when given, must be the key's tenant.
    ApiKey { key_id: String, secret: SecretString, workspace: Option<String> },
    /// RFC 6749 §4.4. `basic` when the credentials came in HTTP Basic.
    ClientCredentials { client_id: String, client_secret: SecretString, basic: bool },
    /// RFC 7523 §2.1, or a bare `Authorization: Bearer <assertion>`.
    JwtBearer { assertion: SecretString },
}

#[derive(Debug)]
pub struct ExchangeRequest {
    pub grant: Grant,
    /// Space-separated; narrows the key's scopes, never widens them.
    pub scope: Option<String>,
    pub client_ip: Option<IpAddr>,
}

pub struct ExchangeService {
    authenticator: Arc<ApiKeyAuthenticator>,
    assertions: AssertionStore,
    assertion_verifier: AssertionVerifier,
    families: RefreshFamilyStore,
    codec: Arc<RefreshTokenCodec>,
    issuer: Arc<TokenIssuer>,
    refresh_ttl: u64,
    refresh_absolute_ttl: u64,
}

impl std::fmt::Debug for ExchangeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeService").finish_non_exhaustive()
    }
}

const WRONG_WORKSPACE: &str = "the API key does not belong to this workspace";

impl ExchangeService {
    pub fn new(
        config: &Config,
        stores: &Stores,
        authenticator: Arc<ApiKeyAuthenticator>,
        issuer: Arc<TokenIssuer>,
        codec: Arc<RefreshTokenCodec>,
    ) -> Self {
        let audiences = vec![config.issuer.clone(), format!("{}{TOKEN_PATH}", config.issuer.trim_end_matches('/'))];
        Self {
            authenticator,
            assertions: stores.assertions.clone(),
            assertion_verifier: AssertionVerifier::new(audiences, config.sealing_key.mac_key("assertion-replay/v1")),
            families: stores.refresh_families.clone(),
            codec,
            issuer,
            refresh_ttl: config.refresh_token_ttl.as_secs(),
            refresh_absolute_ttl: config.refresh_absolute_ttl.as_secs(),
        }
    }

    pub async fn exchange(&self, request: ExchangeRequest) -> Result<TokenResponse, ApiError> {
        let requested =
            request.scope.as_deref().map(Scopes::parse).transpose().map_err(|e| ApiError::InvalidScope(e.0))?;
        let now = now_secs();
        match request.grant {
            Grant::ApiKey { key_id, secret, workspace } => {
                let fail = |rejection: KeyRejection| rejection.into_api_error();
                let record =
                    self.check_secret_and_load(&key_id, &secret, request.client_ip, now).await?.map_err(fail)?;
                if workspace.is_some_and(|ws| ws != record.tenant_id.as_str()) {
                    return Err(ApiError::InvalidCredentials(WRONG_WORKSPACE));
                }
                let principal = principal(&record, requested.as_ref())?;
                self.with_refresh_token(&record, principal, now).await
            }
            Grant::ClientCredentials { client_id, client_secret, basic } => {
                let fail = |rejection: KeyRejection| match rejection {
                    KeyRejection::IpNotAllowed => ApiError::IpNotAllowed,
                    other => ApiError::InvalidClient { message: other.description(), basic },
                };
                let record = self
                    .check_secret_and_load(&client_id, &client_secret, request.client_ip, now)
                    .await?
                    .map_err(fail)?;
                let principal = principal(&record, requested.as_ref())?;
                let (access, ()) =
                    tokio::join!(self.issuer.issue(&principal, now), self.authenticator.stamp_last_used(&record, now));
                Ok(TokenIssuer::response(access?, None))
            }
            Grant::JwtBearer { assertion } => {
                let record = self.check_assertion_and_load(&assertion, request.client_ip, now).await?;
                let principal = principal(&record, requested.as_ref())?;
                self.with_refresh_token(&record, principal, now).await
            }
        }
    }

    /// Reads the key id and secret as sent, then [`ApiKeyAuthenticator::authenticate`].
    async fn check_secret_and_load(
        &self,
        key_id: &str,
        secret: &SecretString,
        client_ip: Option<IpAddr>,
        now: u64,
    ) -> Result<Result<ApiKeyRecord, KeyRejection>, ApiError> {
        let Ok(id) = ApiKeyId::parse(key_id.trim()) else {
            return Ok(Err(KeyRejection::Unknown));
        };
        let Some(presented) = PresentedSecret::read(&id, secret.expose_secret()) else {
            return Ok(Err(KeyRejection::Unknown));
        };
        Ok(self.authenticator.authenticate(&id, &presented, client_ip, now).await?)
    }

    /// Verifies the assertion (no DynamoDB), then reads the key and marks the
    /// assertion used, both at once.
    async fn check_assertion_and_load(
        &self,
        assertion: &SecretString,
        client_ip: Option<IpAddr>,
        now: u64,
    ) -> Result<ApiKeyRecord, ApiError> {
        let verified = self.assertion_verifier.verify(assertion.expose_secret(), self.authenticator.secrets()?, now)?;
        let (record, fresh) = tokio::join!(
            self.authenticator.load(&verified.key_id, now),
            self.assertions.claim(&verified.replay_id, verified.expires_at, now)
        );
        let record = self.authenticator.admit(record?, None, client_ip, now).map_err(|rejection| match rejection {
            KeyRejection::IpNotAllowed => ApiError::IpNotAllowed,
            other => ApiError::InvalidToken(other.description()),
        })?;
        if !fresh? {
            tracing::warn!(key_id = %record.id, "replayed client assertion refused");
            return Err(AssertionRejection::Replayed.into());
        }
        Ok(record)
    }

    /// Starts a refresh family for the key and answers with both tokens. The
    /// access token is signed while the family's PutItem is in flight.
    async fn with_refresh_token(
        &self,
        record: &ApiKeyRecord,
        principal: Principal,
        now: u64,
    ) -> Result<TokenResponse, ApiError> {
        let family =
            RefreshFamily::start(principal, self.issuer.stage(), now, self.refresh_ttl, self.refresh_absolute_ttl);
        let signing = self.issuer.issue_in_background(&family.principal, now).await?;
        let (stored, ()) =
            tokio::join!(self.families.insert(&family, None), self.authenticator.stamp_last_used(record, now));
        stored?;
        let access = signing.wait().await?;
        tracing::info!(key_id = %record.id, tid = %record.tenant_id, "API key exchanged");
        Ok(family_response(&self.codec, &family, access))
    }
}

/// Who the tokens are for: the key itself, with its scopes narrowed to
/// `requested` when given.
fn principal(record: &ApiKeyRecord, requested: Option<&Scopes>) -> Result<Principal, ApiError> {
    let scopes = match requested {
        Some(requested) if !requested.is_empty() => {
            if let Some(missing) = requested.iter().find(|scope| !record.scopes.contains(scope)) {
                return Err(ApiError::InvalidScope(format!("scope `{missing}` is not granted to this API key")));
            }
            requested.to_string()
        }
        _ => record.scopes.to_string(),
    };
    Ok(Principal {
        sub: record.id.to_string(),
        tenant_id: record.tenant_id.to_string(),
        scope: scopes,
        client_id: Some(record.id.to_string()),
    })
}
