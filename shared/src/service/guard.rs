//! The decision in front of a team's own API: who is calling, may they call
//! this route, and are they within their rate limit. The authorizer function,
//! `POST /v1/verify` and the Rust middleware ([`Guard::authorize`]) all call
//! [`Guard::check`], so they decide alike.
//!
//! Cost per decision, once an instance is warm:
//! - an access token: verified against the cached public keys, no DynamoDB
//!   call (unless `LATCHKEY_RATE_LIMIT_ACCESS_TOKENS` counts it: one
//!   UpdateItem);
//! - an API key: the secret checked without DynamoDB, the key record and the
//!   tenant's plan from a per-instance cache (`LATCHKEY_AUTH_CACHE_SECONDS`,
//!   so a revocation applies within that time), then one conditional
//!   UpdateItem to count the request, unless the plan is unlimited.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lambda_http::Request;
use lambda_http::http::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::cache::TtlCache;
use crate::config::{Config, ConfigError, GuardConfig};
use crate::domain::{Plan, Scopes, TenantId};
use crate::error::ApiError;
use crate::http::{Authorization, authorization_header, client_ip};
use crate::keys::KeyRing;
use crate::rate_limit::{RateLimitStatus, window};
use crate::service::api_keys::{ApiKeyAuthenticator, Caller, Freshness, Identity, ScopeList};
use crate::service::tokens::TokenIssuer;
use crate::store;
use crate::store::{CountOutcome, RateLimitStore, RateSubject, Stores, TenantStore};
use crate::time::now_secs;

/// Tenants whose plan an instance caches before the cache starts over.
const MAX_CACHED_PLANS: usize = 10_000;

pub const NO_CREDENTIALS: &str =
    "an access token (Authorization: Bearer) or an API key (X-API-Key with X-Tenant-ID) is required";
const MISSING_SCOPE: &str = "the credential lacks a scope this route requires";
const NO_SUCH_TENANT: &str = "the credential's tenant does not exist";

/// A credential as the caller presented it.
#[derive(Debug)]
pub enum Credential {
    /// `Authorization: Bearer <access token>`.
    Bearer(SecretString),
    /// `X-API-Key` with `X-Tenant-ID`.
    ApiKey { key: SecretString, tenant: String },
}

impl Credential {
    /// Reads a bearer access token, or `X-API-Key` with `X-Tenant-ID`; never
    /// both.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        let api_key = headers.get("x-api-key").map(|value| value.to_str().unwrap_or_default());
        match (authorization_header(headers)?, api_key) {
            (Some(Authorization::Bearer(token)), None) => Ok(Credential::Bearer(token)),
            (Some(_), Some(_)) => {
                Err(ApiError::InvalidRequest("send either an Authorization header or X-API-Key, not both".into()))
            }
            (Some(_), None) => Err(ApiError::InvalidToken("the Authorization header must use the Bearer scheme")),
            (None, Some(key)) => {
                let tenant = headers
                    .get("x-tenant-id")
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| ApiError::InvalidRequest("X-Tenant-ID is required with X-API-Key".into()))?;
                Ok(Credential::ApiKey { key: key.to_owned().into(), tenant: tenant.trim().to_owned() })
            }
            (None, None) => Err(ApiError::CredentialsRequired(NO_CREDENTIALS)),
        }
    }
}

/// An admitted request: who is calling, and where it left its rate limit
/// (`None`: not counted, because the plan is unlimited or the credential is
/// an access token that is not metered).
#[derive(Debug, Clone)]
pub struct Admission {
    pub caller: Caller,
    pub rate_limit: Option<RateLimitStatus>,
}

impl Admission {
    pub fn identity(&self) -> Identity {
        self.caller.identity()
    }

    /// Adds `X-RateLimit-Limit`, `-Remaining` and `-Reset` to a response.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        if let Some(status) = &self.rate_limit {
            status.write_headers(headers);
        }
    }
}

/// Decides requests to the team's own API.
pub struct Guard {
    issuer: Arc<TokenIssuer>,
    authenticator: Arc<ApiKeyAuthenticator>,
    tenants: TenantStore,
    counters: RateLimitStore,
    plans: TtlCache<TenantId, Option<Plan>>,
    rate_limit_access_tokens: bool,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("plan_cache_ttl", &self.plans.ttl())
            .field("rate_limit_access_tokens", &self.rate_limit_access_tokens)
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub fn new(
        config: &Config,
        stores: &Stores,
        issuer: Arc<TokenIssuer>,
        authenticator: Arc<ApiKeyAuthenticator>,
    ) -> Self {
        Self::assemble(stores, issuer, authenticator, config.auth_cache_ttl, config.rate_limit_access_tokens)
    }

    fn assemble(
        stores: &Stores,
        issuer: Arc<TokenIssuer>,
        authenticator: Arc<ApiKeyAuthenticator>,
        cache_ttl: Duration,
        rate_limit_access_tokens: bool,
    ) -> Self {
        Self {
            issuer,
            authenticator,
            tenants: stores.tenants.clone(),
            counters: stores.rate_limits.clone(),
            plans: TtlCache::new(cache_ttl, MAX_CACHED_PLANS),
            rate_limit_access_tokens,
        }
    }

    /// The guard a team's own Lambda runs: from [`GuardConfig`] (no sealing
    /// key; see there), connected to the deployment's table.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = GuardConfig::from_env()?;
        let client = store::connect(&config.store).await;
        Ok(Self::verify_only(&config, client))
    }

    /// A guard that verifies and counts but can issue nothing.
    pub fn verify_only(config: &GuardConfig, client: aws_sdk_dynamodb::Client) -> Self {
        let stores = Stores::new(&store::Table::new(client, config.store.table_name.as_str()));
        let keys = Arc::new(KeyRing::verify_only(stores.signing_keys.clone(), config.key_cache_ttl));
        let issuer = TokenIssuer::verify_only(keys, &config.issuer, &config.audience, config.stage);
        let authenticator = ApiKeyAuthenticator::verify_only(
            stores.api_keys.clone(),
            config.key_check.clone(),
            config.stage,
            config.auth_cache_ttl,
        );
        Self::assemble(
            &stores,
            Arc::new(issuer),
            Arc::new(authenticator),
            config.auth_cache_ttl,
            config.rate_limit_access_tokens,
        )
    }

    /// Loads the public keys during cold start (see [`KeyRing::warm_up`]).
    pub async fn warm_up(&self) {
        self.issuer.keys().warm_up().await;
    }

    /// The middleware: decides a request to a team's own Rust Lambda from
    /// its headers and source address, requiring every scope in `required`.
    /// On `Err`, answer with [`crate::http::error_response`] (401, 403, 429
    /// with `Retry-After` and the rate-limit headers, or 503); on `Ok`, add
    /// [`Admission::write_headers`] to the response.
    pub async fn authorize(&self, req: &Request, required: &Scopes) -> Result<Admission, ApiError> {
        let credential = Credential::from_headers(req.headers())?;
        self.check(&credential, client_ip(req), required).await
    }

    /// The decision: the credential is valid, allowed from `client_ip`,
    /// holds every `required` scope, and is within its rate limit (which this
    /// request then uses one of).
    pub async fn check(
        &self,
        credential: &Credential,
        client_ip: Option<IpAddr>,
        required: &Scopes,
    ) -> Result<Admission, ApiError> {
        let now = now_secs();
        let (caller, subject, limit) = match credential {
            Credential::Bearer(token) => {
                let claims = self.issuer.verify(token.expose_secret()).await?;
                require_scopes(&Scopes::parse(&claims.scope).unwrap_or_default(), required)?;
                if !self.rate_limit_access_tokens {
                    return Ok(Admission { caller: Caller::Token(claims), rate_limit: None });
                }
                let tenant = TenantId::parse(&claims.tid)
                    .map_err(|_| ApiError::InvalidToken("the access token's tid is malformed"))?;
                let plan = self.plan(&tenant).await?.ok_or(ApiError::InvalidToken(NO_SUCH_TENANT))?;
                (Caller::Token(claims), RateSubject::Tenant(tenant), plan.hourly_limit())
            }
            Credential::ApiKey { key, tenant } => {
                let record = self
                    .authenticator
                    .authenticate_key_string(key.expose_secret(), tenant, client_ip, Freshness::Cached)
                    .await?;
                require_scopes(&record.scopes, required)?;
                let (subject, limit) = if let Some(limit) = record.rate_limit {
                    (RateSubject::ApiKey(record.id.clone()), limit.hourly_limit())
                } else {
                    let plan =
                        self.plan(&record.tenant_id).await?.ok_or(ApiError::InvalidCredentials(NO_SUCH_TENANT))?;
                    (RateSubject::Tenant(record.tenant_id.clone()), plan.hourly_limit())
                };
                (Caller::ApiKey(record), subject, limit)
            }
        };
        let rate_limit = match limit {
            Some(limit) => Some(self.count(&subject, limit, now).await?),
            None => None,
        };
        Ok(Admission { caller, rate_limit })
    }

    async fn plan(&self, tenant: &TenantId) -> Result<Option<Plan>, ApiError> {
        let load = async { Ok::<_, ApiError>(self.tenants.get(tenant).await?.map(|record| record.plan)) };
        self.plans.get_or_load(tenant, load).await
    }

    /// Counts this request in the current window, or refuses it with 429.
    async fn count(&self, subject: &RateSubject, limit: u32, now: u64) -> Result<RateLimitStatus, ApiError> {
        let (start, end) = window(now);
        match self.counters.count(subject, start, end, limit).await? {
            CountOutcome::Counted { count } => {
                let remaining = u64::from(limit).saturating_sub(count);
                Ok(RateLimitStatus { limit, remaining: u32::try_from(remaining).unwrap_or(0), reset: end })
            }
            CountOutcome::OverLimit => {
                Err(ApiError::QuotaExceeded(RateLimitStatus { limit, remaining: 0, reset: end }))
            }
        }
    }
}

/// `POST /v1/verify`: a resource server asks about its caller's credential.
/// The credential comes in these fields or, when they are absent, in the
/// request's own `Authorization` or `X-API-Key` + `X-Tenant-ID` headers.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[serde(default)]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub api_key: Option<SecretString>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Scopes the route requires (space-separated or a list).
    #[serde(default)]
    pub scope: Option<ScopeList>,
    /// The end client's address as the resource server saw it, for a key's
    /// IP allow list; default: the address this request came from.
    #[serde(default)]
    pub ip: Option<String>,
}

/// The answer of `POST /v1/verify` (200): valid with who is calling, or
/// invalid with the same error code the endpoint would have answered with.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub valid: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// `null` when the request was not counted (unlimited plan, or an access
    /// token while access tokens are not metered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<Option<RateLimitStatus>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

impl Verdict {
    pub fn rate_limit(&self) -> Option<&RateLimitStatus> {
        self.ratelimit.as_ref().and_then(Option::as_ref)
    }
}

impl Guard {
    /// `POST /v1/verify`. A refused credential is a valid answer (200,
    /// `valid: false`); over the limit is 429, a malformed request 400 and
    /// DynamoDB trouble 503.
    pub async fn verify(
        &self,
        request: VerifyRequest,
        headers: &HeaderMap,
        source_ip: Option<IpAddr>,
    ) -> Result<Verdict, ApiError> {
        if request.tenant_id.is_some() && request.api_key.is_none() {
            return Err(ApiError::InvalidRequest("tenant_id goes with api_key in the body".into()));
        }
        let in_headers = headers.contains_key("authorization") || headers.contains_key("x-api-key");
        let credential = match (request.token, request.api_key) {
            (Some(_), Some(_)) => {
                return Err(ApiError::InvalidRequest("send either token or api_key, not both".into()));
            }
            (None, None) => Credential::from_headers(headers),
            (_, _) if in_headers => {
                return Err(ApiError::InvalidRequest(
                    "send the credential in the body or in the headers, not both".into(),
                ));
            }
            (Some(token), None) => Ok(Credential::Bearer(token)),
            (None, Some(key)) => match request.tenant_id {
                Some(tenant) => Ok(Credential::ApiKey { key, tenant }),
                None => return Err(ApiError::InvalidRequest("tenant_id is required with api_key".into())),
            },
        };
        let ip = match request.ip.as_deref() {
            Some(text) => Some(
                text.trim()
                    .parse()
                    .map_err(|_| ApiError::InvalidRequest("ip must be an IPv4 or IPv6 address".into()))?,
            ),
            None => source_ip,
        };
        let required = match &request.scope {
            Some(list) => list.parse()?,
            None => Scopes::default(),
        };
        let decision = match credential {
            Ok(credential) => self.check(&credential, ip, &required).await,
            Err(err) => Err(err),
        };
        match decision {
            Ok(admission) => Ok(Verdict {
                valid: true,
                identity: Some(admission.identity()),
                ratelimit: Some(admission.rate_limit),
                error: None,
                error_description: None,
            }),
            Err(err) if is_refusal(&err) => Ok(Verdict {
                valid: false,
                identity: None,
                ratelimit: None,
                error: Some(err.error_code()),
                error_description: Some(err.public_description()),
            }),
            Err(err) => Err(err),
        }
    }
}

/// A decision about the credential itself (401 or 403), as opposed to a
/// malformed request, a used-up limit or an outage.
fn is_refusal(err: &ApiError) -> bool {
    matches!(
        err,
        ApiError::InvalidToken(_)
            | ApiError::InvalidCredentials(_)
            | ApiError::CredentialsRequired(_)
            | ApiError::IpNotAllowed
            | ApiError::InsufficientScope { .. }
    )
}

fn require_scopes(held: &Scopes, required: &Scopes) -> Result<(), ApiError> {
    match required.iter().find(|scope| !held.contains(scope)) {
        Some(missing) => Err(ApiError::InsufficientScope { message: MISSING_SCOPE, scope: missing.to_owned().into() }),
        None => Ok(()),
    }
}
