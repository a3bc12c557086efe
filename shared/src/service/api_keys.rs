//! API keys: authenticating with one (exchange, `/v1/me`), and self-service
//! creation, listing and revocation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::cache::TtlCache;
use crate::config::Config;
use crate::credentials::{ApiKeySecrets, LAST_CHARS, PresentedSecret, StoredSecretCheck, key_prefix, parse_api_key};
use crate::domain::{ApiKeyId, IpNetwork, Label, RateLimitOverride, Scopes, Stage, TenantId, UserId, parse_allow_list};
use crate::error::{ApiError, StoreError};
use crate::jwt::AccessClaims;
use crate::service::guard::Guard;
use crate::service::tokens::TokenIssuer;
use crate::store::{AddApiKeyOutcome, ApiKeyRecord, ApiKeyStore, RevokeApiKeyOutcome, Stores};
use crate::time::{now_secs, rfc3339};

/// `last_used_at` is stamped at most this often per key.
pub const LAST_USED_RESOLUTION_SECS: u64 = 60;
/// Longest lifetime a key can be created with (5 years).
pub const MAX_KEY_LIFETIME_SECS: u64 = 5 * 365 * 24 * 60 * 60;
/// Page size of `GET /v1/api-keys`.
pub const MAX_PAGE: i32 = 100;

/// Why a key was refused; each caller maps it to its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// Unknown id, wrong secret, or another tenant's key.
    Unknown,
    Revoked,
    Expired,
    /// A key of the other environment.
    WrongEnvironment(Stage),
    IpNotAllowed,
}

impl KeyRejection {
    pub fn description(self) -> &'static str {
        match self {
            KeyRejection::Unknown => "the API key id or secret is incorrect",
            KeyRejection::Revoked => "the API key has been revoked",
            KeyRejection::Expired => "the API key has expired",
            KeyRejection::WrongEnvironment(Stage::Test) => "this is a test API key; this deployment serves live",
            KeyRejection::WrongEnvironment(Stage::Live) => "this is a live API key; this deployment serves test",
            KeyRejection::IpNotAllowed => "requests from this IP address are not allowed for this API key",
        }
    }

    /// The SPEC's answer: 403 for the IP allow list, 401 otherwise.
    pub fn into_api_error(self) -> ApiError {
        match self {
            KeyRejection::IpNotAllowed => ApiError::IpNotAllowed,
            other => ApiError::InvalidCredentials(other.description()),
        }
    }
}

/// How fresh the key record behind a decision must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// One consistent GetItem: a revocation applies at once (exchange, `/v1/me`).
    Consistent,
    /// The per-instance cache (`LATCHKEY_AUTH_CACHE_SECONDS`): the authorizer,
    /// `/v1/verify` and the middleware, where a read per request would cost
    /// more than a revocation that takes up to the cache time.
    Cached,
}

/// Checks API keys: the secret without DynamoDB, then the record for
/// revocation, expiry, environment and IP.
pub struct ApiKeyAuthenticator {
    store: ApiKeyStore,
    cache: TtlCache<ApiKeyId, Option<ApiKeyRecord>>,
    /// `None` in a verify-only instance (a team's Lambda holding only
    /// `LATCHKEY_VERIFIER_KEY`): it cannot derive secrets, so it skips the
    /// early check and relies on the stored hash.
    secrets: Option<ApiKeySecrets>,
    check: StoredSecretCheck,
    stage: Stage,
    /// When this instance last stamped each key's `last_used_at`.
    stamped: Mutex<HashMap<ApiKeyId, u64>>,
}

impl std::fmt::Debug for ApiKeyAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyAuthenticator").field("stage", &self.stage).finish_non_exhaustive()
    }
}

/// Stamps kept per instance before the map is cleared (bounds memory).
const MAX_STAMPS: usize = 10_000;
/// Key records cached per instance before the cache starts over.
const MAX_CACHED_KEYS: usize = 10_000;

impl ApiKeyAuthenticator {
    pub fn new(config: &Config, stores: &Stores) -> Self {
        Self {
            store: stores.api_keys.clone(),
            cache: TtlCache::new(config.auth_cache_ttl, MAX_CACHED_KEYS),
            secrets: Some(ApiKeySecrets::new(&config.sealing_key)),
            check: StoredSecretCheck::new(&config.sealing_key),
            stage: config.stage,
            stamped: Mutex::new(HashMap::new()),
        }
    }

    /// An authenticator that can check keys but not derive or issue them.
    pub fn verify_only(store: ApiKeyStore, check: StoredSecretCheck, stage: Stage, cache_ttl: Duration) -> Self {
        Self {
            store,
            cache: TtlCache::new(cache_ttl, MAX_CACHED_KEYS),
            secrets: None,
            check,
            stage,
            stamped: Mutex::new(HashMap::new()),
        }
    }

    /// The secrets' derivation, which issuing keys and checking assertions
    /// need; a verify-only instance has none.
    pub fn secrets(&self) -> Result<&ApiKeySecrets, ApiError> {
        self.secrets
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this instance only verifies API keys (LATCHKEY_VERIFIER_KEY)".into()))
    }

    /// Whether `presented` is certainly not the secret of `id`, decided
    /// without DynamoDB when this instance can derive secrets.
    fn ruled_out(&self, id: &ApiKeyId, presented: &SecretString) -> bool {
        self.secrets.as_ref().is_some_and(|secrets| !secrets.matches(id, presented))
    }

    /// Checks `presented` as the secret of `id` (no DynamoDB call, so a
    /// forged secret costs nothing), then reads the key and admits it. The
    /// outer error is DynamoDB's; the inner one the key's refusal, for the
    /// caller to word.
    pub async fn authenticate(
        &self,
        id: &ApiKeyId,
        presented: &PresentedSecret,
        client_ip: Option<IpAddr>,
        now: u64,
    ) -> Result<Result<ApiKeyRecord, KeyRejection>, StoreError> {
        if self.ruled_out(id, &presented.secret) {
            return Ok(Err(KeyRejection::Unknown));
        }
        let record = self.load(id, now).await?;
        Ok(self.admit(record, Some(presented), client_ip, now))
    }

    pub async fn load(&self, id: &ApiKeyId, now: u64) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.store.get(id, now).await
    }

    /// Decides on a loaded record. `presented` is checked against the stored
    /// hash too when given (an assertion proves the secret by its signature).
    pub fn admit(
        &self,
        record: Option<ApiKeyRecord>,
        presented: Option<&PresentedSecret>,
        client_ip: Option<IpAddr>,
        now: u64,
    ) -> Result<ApiKeyRecord, KeyRejection> {
        let record = record.ok_or(KeyRejection::Unknown)?;
        if let Some(presented) = presented {
            if !self.check.matches(&presented.secret, &record.secret_hash) {
                return Err(KeyRejection::Unknown);
            }
            if presented.env.is_some_and(|env| env != record.env) {
                // A key string whose prefix was edited.
                return Err(KeyRejection::Unknown);
            }
        }
        if record.revoked_at.is_some() {
            return Err(KeyRejection::Revoked);
        }
        if record.is_expired(now) {
            return Err(KeyRejection::Expired);
        }
        if record.env != self.stage {
            return Err(KeyRejection::WrongEnvironment(record.env));
        }
        if !ip_allowed(&record.allowed_ips, client_ip) {
            return Err(KeyRejection::IpNotAllowed);
        }
        Ok(record)
    }

    /// Reads a whole key string (`X-API-Key`) for `tenant` and checks it:
    /// the secret first (no DynamoDB call), then the record, read
    /// consistently or from the per-instance cache as `freshness` says.
    pub async fn authenticate_key_string(
        &self,
        key: &str,
        tenant: &str,
        client_ip: Option<IpAddr>,
        freshness: Freshness,
    ) -> Result<ApiKeyRecord, ApiError> {
        let unknown = || KeyRejection::Unknown.into_api_error();
        let parsed = parse_api_key(key).ok_or_else(unknown)?;
        if self.ruled_out(&parsed.id, &parsed.secret) {
            return Err(unknown());
        }
        let now = now_secs();
        let record = match freshness {
            Freshness::Consistent => self.load(&parsed.id, now).await?,
            Freshness::Cached => self.cache.get_or_load(&parsed.id, self.load(&parsed.id, now)).await?,
        };
        if record.as_ref().is_some_and(|record| record.tenant_id.as_str() != tenant) {
            return Err(unknown());
        }
        let presented = PresentedSecret { secret: parsed.secret, env: Some(parsed.env) };
        self.admit(record, Some(&presented), client_ip, now).map_err(KeyRejection::into_api_error)
    }

    /// Stamps `last_used_at` if this instance has not in the last minute.
    /// Best effort: a failure is logged, never returned, and it never runs
    /// before the caller's critical write.
    pub async fn stamp_last_used(&self, record: &ApiKeyRecord, now: u64) {
        {
            let mut stamped = self.stamped.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if stamped.get(&record.id).is_some_and(|at| now < at + LAST_USED_RESOLUTION_SECS) {
                return;
            }
            if stamped.len() >= MAX_STAMPS {
                stamped.clear();
            }
            stamped.insert(record.id.clone(), now);
        }
        let stale_before = now.saturating_sub(LAST_USED_RESOLUTION_SECS - 1);
        if let Err(err) = self.store.touch(&record.tenant_id, &record.id, now, stale_before).await {
            tracing::warn!(key_id = %record.id, error = %crate::error::error_chain(&err), "last_used_at not stamped");
        }
    }
}

fn ip_allowed(allowed: &[IpNetwork], client_ip: Option<IpAddr>) -> bool {
    allowed.is_empty() || client_ip.is_some_and(|ip| allowed.iter().any(|net| net.contains(ip)))
}

/// Who is calling the keys function.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A verified access token.
    Token(AccessClaims),
    /// An API key with its tenant (`X-API-Key` + `X-Tenant-ID`).
    ApiKey(ApiKeyRecord),
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Serialize)]
pub struct Identity {
    pub sub: String,
    pub tid: String,
    pub scope: String,
    pub env: Stage,
    /// When the token or key stops working (RFC 3339); `null` for a key
    /// without expiry.
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `access_token` or `api_key`.
    pub credential: &'static str,
}

impl Caller {
    pub fn identity(&self) -> Identity {
        match self {
            Caller::Token(claims) => Identity {
                sub: claims.sub.clone(),
                tid: claims.tid.clone(),
                scope: claims.scope.clone(),
                env: claims.env.parse().unwrap_or(Stage::Test),
                expires_at: Some(rfc3339(claims.exp)),
                client_id: claims.client_id.clone(),
                credential: "access_token",
            },
            Caller::ApiKey(record) => Identity {
                sub: record.id.to_string(),
                tid: record.tenant_id.to_string(),
                scope: record.scopes.to_string(),
                env: record.env,
                expires_at: record.valid_until.map(rfc3339),
                client_id: Some(record.id.to_string()),
                credential: "api_key",
            },
        }
    }
}

/// Scopes as a JSON array or a space-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ScopeList {
    List(Vec<String>),
    Text(String),
}

impl ScopeList {
    pub fn parse(&self) -> Result<Scopes, ApiError> {
        match self {
            ScopeList::List(items) => Scopes::from_iter_checked(items.iter().map(String::as_str)),
            ScopeList::Text(text) => Scopes::parse(text),
        }
        .map_err(|e| ApiError::InvalidRequest(e.0))
    }
}

/// POST /v1/api-keys body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    #[serde(default)]
    pub scopes: Option<ScopeList>,
    /// Must be this deployment's stage (the default).
    #[serde(default)]
    pub environment: Option<Stage>,
    /// Lifetime in seconds; none: the key does not expire.
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub allowed_ips: Option<Vec<String>>,
}

/// A key to add (from the API or the CLI), already validated.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub tenant_id: TenantId,
    pub name: Label,
    pub scopes: Scopes,
    pub env: Stage,
    pub valid_until: Option<u64>,
    pub allowed_ips: Vec<IpNetwork>,
    /// Set by an administrator only (the CLI); the API never lets a tenant
    /// raise its own limit.
    pub rate_limit: Option<RateLimitOverride>,
}

/// A key as listed: never the secret.
#[derive(Debug, Serialize)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    /// The key's public start: `sk_<env>_<id>_`.
    pub prefix: String,
    /// The secret's last four characters.
    pub last_four: String,
    pub scopes: Vec<String>,
    pub environment: Stage,
    pub expires_at: Option<String>,
    pub allowed_ips: Vec<String>,
    /// The key's own hourly limit (`"500/h"`, `"unlimited"`); `null`: the
    /// tenant's plan limit applies.
    pub rate_limit: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(record: &ApiKeyRecord) -> Self {
        Self {
            id: record.id.to_string(),
            name: record.name.to_string(),
            prefix: format!("{}{}_", key_prefix(record.env), record.id),
            last_four: record.last_four.clone(),
            scopes: record.scopes.iter().map(str::to_owned).collect(),
            environment: record.env,
            expires_at: record.valid_until.map(rfc3339),
            allowed_ips: record.allowed_ips.iter().map(ToString::to_string).collect(),
            rate_limit: record.rate_limit.map(|limit| limit.to_string()),
            created_at: rfc3339(record.created_at),
            last_used_at: record.last_used_at.map(rfc3339),
            revoked_at: record.revoked_at.map(rfc3339),
        }
    }
}

/// The answer to a creation: the view plus the key, shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    #[serde(serialize_with = "expose")]
    pub key: SecretString,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

#[derive(Debug, Serialize)]
pub struct ApiKeyList {
    pub keys: Vec<ApiKeyView>,
    /// Pass as `?cursor=` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RevokedApiKey {
    pub id: String,
    pub revoked_at: String,
}

/// The keys function's operations.
pub struct ApiKeyService {
    store: ApiKeyStore,
    guard: Guard,
    authenticator: Arc<ApiKeyAuthenticator>,
    issuer: Arc<TokenIssuer>,
    stage: Stage,
}

impl std::fmt::Debug for ApiKeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyService").field("stage", &self.stage).finish_non_exhaustive()
    }
}

const NO_SUCH_KEY: &str = "no such API key";
const MANAGE_WITH_USER_TOKEN: &str = "API keys are managed with a user's access token";
const NEEDS_WRITE: &str = "this operation needs the keys:write scope";
const NEEDS_READ: &str = "listing API keys needs the keys:read or keys:write scope";

impl ApiKeyService {
    pub fn new(
        config: &Config,
        stores: &Stores,
        authenticator: Arc<ApiKeyAuthenticator>,
        issuer: Arc<TokenIssuer>,
    ) -> Self {
        let guard = Guard::new(config, stores, Arc::clone(&issuer), Arc::clone(&authenticator));
        Self { store: stores.api_keys.clone(), guard, authenticator, issuer, stage: config.stage }
    }

    /// The decision `POST /v1/verify` reports.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Verifies a bearer access token (signature, issuer, audience, expiry,
    /// environment) against the cached signing keys: no DynamoDB call unless
    /// the token names a key this instance has not loaded yet.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Caller, ApiError> {
        Ok(Caller::Token(self.issuer.verify(token).await?))
    }

    /// `X-API-Key` + `X-Tenant-ID`.
    pub async fn authenticate_api_key(
        &self,
        key: &str,
        tenant: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        self.authenticator
            .authenticate_key_string(key, tenant, client_ip, Freshness::Consistent)
            .await
            .map(Caller::ApiKey)
    }

    /// The tenant a user's token may manage keys for, given the scope needed,
    /// and the scopes the token holds.
    fn managing_tenant(
        caller: &Caller,
        allowed: &[&'static str],
        message: &'static str,
    ) -> Result<(TenantId, Scopes), ApiError> {
        let Caller::Token(claims) = caller else {
            return Err(ApiError::InsufficientScope { message: MANAGE_WITH_USER_TOKEN, scope: "keys:write".into() });
        };
        if UserId::parse(&claims.sub).is_err() {
            return Err(ApiError::InsufficientScope { message: MANAGE_WITH_USER_TOKEN, scope: "keys:write".into() });
        }
        let scopes = Scopes::parse(&claims.scope).unwrap_or_default();
        if !allowed.iter().any(|scope| scopes.contains(scope)) {
            return Err(ApiError::InsufficientScope { message, scope: allowed[0].into() });
        }
        let tenant =
            TenantId::parse(&claims.tid).map_err(|_| ApiError::InvalidToken("the access token's tid is malformed"))?;
        Ok((tenant, scopes))
    }

    /// POST /v1/api-keys. A key never gets a scope its creator lacks.
    pub async fn create(&self, caller: &Caller, request: CreateApiKeyRequest) -> Result<CreatedApiKey, ApiError> {
        let (tenant_id, held) = Self::managing_tenant(caller, &["keys:write"], NEEDS_WRITE)?;
        let scopes = match &request.scopes {
            Some(list) => list.parse()?,
            None => Scopes::default(),
        };
        if let Some(missing) = scopes.iter().find(|scope| !held.contains(scope)) {
            return Err(ApiError::InvalidScope(format!(
                "cannot grant scope `{missing}`: the access token does not hold it"
            )));
        }
        let env = request.environment.unwrap_or(self.stage);
        if env != self.stage {
            return Err(ApiError::InvalidRequest(format!(
                "this deployment serves {}; it cannot create {env} keys",
                self.stage
            )));
        }
        let now = now_secs();
        let valid_until = match request.expires_in {
            None => None,
            Some(secs) if (60..=MAX_KEY_LIFETIME_SECS).contains(&secs) => Some(now + secs),
            Some(_) => {
                return Err(ApiError::InvalidRequest(format!(
                    "expires_in must be 60..={MAX_KEY_LIFETIME_SECS} seconds"
                )));
            }
        };
        let allowed_ips = parse_allow_list(request.allowed_ips.iter().flatten().map(String::as_str))
            .map_err(|e| ApiError::InvalidRequest(e.0))?;
        let name = Label::parse(&request.name).map_err(|e| ApiError::InvalidRequest(e.0))?;
        let new = NewApiKey { tenant_id, name, scopes, env, valid_until, allowed_ips, rate_limit: None };
        match self.add(new, now).await? {
            Some(created) => Ok(created),
            None => Err(ApiError::InvalidToken("the access token's tenant does not exist")),
        }
    }

    /// Adds a key and returns it with its secret; `None` if the tenant does
    /// not exist. The CLI's `api-key create` calls this too.
    pub async fn add(&self, new: NewApiKey, now: u64) -> Result<Option<CreatedApiKey>, ApiError> {
        let id = ApiKeyId::generate();
        let secrets = self.authenticator.secrets()?;
        let secret = secrets.secret(&id);
        let text = secret.expose_secret();
        let record = ApiKeyRecord {
            secret_hash: secrets.check_hash(&secret),
            last_four: text[text.len() - LAST_CHARS..].to_owned(),
            id,
            tenant_id: new.tenant_id,
            name: new.name,
            scopes: new.scopes,
            env: new.env,
            valid_until: new.valid_until,
            allowed_ips: new.allowed_ips,
            rate_limit: new.rate_limit,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        match self.store.insert(&record).await? {
            AddApiKeyOutcome::Added => {
                tracing::info!(key_id = %record.id, tid = %record.tenant_id, env = %record.env, "API key created");
                let key = secrets.key_string(&record.id, record.env);
                Ok(Some(CreatedApiKey { view: ApiKeyView::from(&record), key }))
            }
            AddApiKeyOutcome::NoSuchTenant => Ok(None),
        }
    }

    /// GET /v1/api-keys: the caller's tenant only.
    pub async fn list(
        &self,
        caller: &Caller,
        limit: Option<i32>,
        cursor: Option<&str>,
    ) -> Result<ApiKeyList, ApiError> {
        let (tenant, _) = Self::managing_tenant(caller, &["keys:read", "keys:write"], NEEDS_READ)?;
        self.list_tenant(&tenant, limit, cursor).await
    }

    /// One page of a tenant's keys (the CLI's `api-key list` too).
    pub async fn list_tenant(
        &self,
        tenant: &TenantId,
        limit: Option<i32>,
        cursor: Option<&str>,
    ) -> Result<ApiKeyList, ApiError> {
        let limit = limit.unwrap_or(MAX_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::InvalidRequest(format!("limit must be 1..={MAX_PAGE}")));
        }
        let after = cursor
            .map(|c| {
                ApiKeyId::parse(c).map_err(|_| ApiError::InvalidRequest("cursor is not one this API returned".into()))
            })
            .transpose()?;
        let page = self.store.list(tenant, limit, after.as_ref(), now_secs()).await?;
        Ok(ApiKeyList {
            keys: page.keys.iter().map(ApiKeyView::from).collect(),
            next_cursor: page.next.map(|id| id.to_string()),
        })
    }

    /// DELETE /v1/api-keys/{id}: 404 for another tenant's or an unknown key;
    /// revoking twice answers with the first revocation.
    pub async fn revoke(&self, caller: &Caller, id: &str) -> Result<RevokedApiKey, ApiError> {
        let (tenant, _) = Self::managing_tenant(caller, &["keys:write"], NEEDS_WRITE)?;
        self.revoke_in_tenant(&tenant, id).await
    }

    /// Sets a key's own rate limit, or with `None` returns it to the
    /// tenant's plan (the CLI's `api-key set-rate-limit`). Applies to
    /// decisions once cached copies of the key expire.
    pub async fn set_rate_limit_in_tenant(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: Option<RateLimitOverride>,
    ) -> Result<(), ApiError> {
        let id = ApiKeyId::parse(id).map_err(|_| ApiError::NotFound(NO_SUCH_KEY))?;
        if !self.store.set_rate_limit(tenant, &id, limit).await? {
            return Err(ApiError::NotFound(NO_SUCH_KEY));
        }
        tracing::info!(key_id = %id, tid = %tenant, rate_limit = ?limit, "API key rate limit set");
        Ok(())
    }

    pub async fn revoke_in_tenant(&self, tenant: &TenantId, id: &str) -> Result<RevokedApiKey, ApiError> {
        let id = ApiKeyId::parse(id).map_err(|_| ApiError::NotFound(NO_SUCH_KEY))?;
        match self.store.revoke(tenant, &id, now_secs()).await? {
            RevokeApiKeyOutcome::Revoked(at) => {
                tracing::info!(key_id = %id, tid = %tenant, "API key revoked");
                Ok(RevokedApiKey { id: id.to_string(), revoked_at: rfc3339(at) })
            }
            RevokeApiKeyOutcome::AlreadyRevoked(at) => {
                Ok(RevokedApiKey { id: id.to_string(), revoked_at: rfc3339(at) })
            }
            RevokeApiKeyOutcome::NotFound => Err(ApiError::NotFound(NO_SUCH_KEY)),
        }
    }
}
