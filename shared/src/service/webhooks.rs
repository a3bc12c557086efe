//! Inbound webhooks (POST /v1/webhooks/{source}) and the administration of
//! their sources.
//!
//! Accepting a delivery costs one DynamoDB write: the source (its secrets
//! unsealed and keyed) comes from a per-instance cache, the signature and
//! timestamp are checked in memory, and the event is stored with a
//! conditional PutItem that doubles as the replay check. A redelivery of an
//! id already stored answers 200 `duplicate` and writes nothing.

use std::sync::Arc;

use serde::Serialize;

use crate::cache::TtlCache;
use crate::config::Config;
use crate::crypto::Sealer;
use crate::domain::{TenantId, WebhookSourceName};
use crate::error::{ApiError, StoreError};
use crate::store::webhooks::secret_aad;
use crate::store::{
    AddSourceOutcome, SealedSecret, Stores, WebhookEvent, WebhookEventStore, WebhookSourceRecord, WebhookSourceStore,
};
use crate::time::rfc3339;
use crate::webhook::{
    Freshness, Scheme, Sha256Headers, StandardHeaders, Verified, VerifyingKey, WebhookRejection, WebhookSecret,
    verify_sha256, verify_standard,
};

/// The path prefix of the webhook endpoint.
pub const WEBHOOK_PATH_PREFIX: &str = "/v1/webhooks/";
/// The 404 text for a source that does not exist.
pub const NO_SUCH_SOURCE: &str = "no webhook source by that name";
/// Request headers kept with a stored event, for consumers: what the body
/// is, who sent it, and the event type or delivery id some senders put only
/// in headers. Signatures are not kept: once verified they tell nothing.
pub const STORED_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "svix-id",
    "svix-timestamp",
    "x-webhook-timestamp",
    "x-github-event",
    "x-github-delivery",
];
/// Secrets a source may hold at once: the current one and a few being
/// rotated out.
pub const MAX_SECRETS: usize = 4;
pub const DEFAULT_RETENTION_SECS: u64 = 7 * 24 * 60 * 60;
pub const TOLERANCE_RANGE_SECS: std::ops::RangeInclusive<u64> = 10..=3600;
const MAX_RETENTION_SECS: u64 = 365 * 24 * 60 * 60;
/// Cached sources (found or not) per instance; past this the cache starts over.
const MAX_CACHED_SOURCES: usize = 1024;

/// A delivery as the HTTP adapter read it.
#[derive(Debug)]
pub struct Delivery<'a> {
    pub source: &'a str,
    pub standard: StandardHeaders<'a>,
    pub sha256: Sha256Headers<'a>,
    /// The [`STORED_HEADERS`] present, to keep with the event.
    pub headers: Vec<(&'static str, String)>,
    /// The exact bytes received.
    pub body: &'a [u8],
}

/// The answer to an accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub received: bool,
    pub id: String,
    /// Present (and true) when the id was already stored: nothing was written.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// A source ready to verify: secrets unsealed and keyed.
struct VerifyingSource {
    name: WebhookSourceName,
    tenant_id: TenantId,
    schemes: Vec<Scheme>,
    keys: Vec<VerifyingKey>,
    tolerance_secs: u64,
    retention_secs: u64,
}

impl VerifyingSource {
    fn verify(&self, delivery: &Delivery<'_>, now_secs: u64) -> Result<Verified, WebhookRejection> {
        let freshness = Freshness { now: now_secs, tolerance: self.tolerance_secs };
        let accepts = |scheme| self.schemes.contains(&scheme);
        if accepts(Scheme::Standard) && delivery.standard.any() {
            verify_standard(&self.keys, &delivery.standard, delivery.body, freshness)
        } else if accepts(Scheme::Sha256) && delivery.sha256.signature.is_some() {
            verify_sha256(&self.keys, &delivery.sha256, delivery.body, freshness)
        } else {
            Err(WebhookRejection::Unsigned(match (accepts(Scheme::Standard), accepts(Scheme::Sha256)) {
                (true, true) => {
                    "Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) or \
                     X-Webhook-Signature: sha256=<hex>"
                }
                (true, false) => "Standard Webhooks headers: webhook-id, webhook-timestamp and webhook-signature",
                _ => "X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>",
            }))
        }
    }
}

/// A source as listings show it: never a secret, only its id and last four.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookSourceView {
    pub name: WebhookSourceName,
    pub tenant_id: TenantId,
    pub schemes: Vec<Scheme>,
    pub url_path: String,
    pub tolerance_seconds: u64,
    pub retention_seconds: u64,
    pub secrets: Vec<SecretView>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretView {
    pub id: String,
    pub last_four: String,
    pub created_at: String,
}

impl From<&WebhookSourceRecord> for WebhookSourceView {
    fn from(record: &WebhookSourceRecord) -> Self {
        Self {
            name: record.name.clone(),
            tenant_id: record.tenant_id.clone(),
            schemes: record.schemes.clone(),
            url_path: format!("{WEBHOOK_PATH_PREFIX}{}", record.name),
            tolerance_seconds: record.tolerance_secs,
            retention_seconds: record.retention_secs,
            secrets: record
                .secrets
                .iter()
                .map(|s| SecretView {
                    id: s.id.clone(),
                    last_four: s.last_four.clone(),
                    created_at: rfc3339(s.created_at),
                })
                .collect(),
            created_at: rfc3339(record.created_at),
            rotated_at: record.rotated_at.map(rfc3339),
        }
    }
}

/// A source to add.
#[derive(Debug)]
pub struct NewWebhookSource {
    pub name: WebhookSourceName,
    pub tenant_id: TenantId,
    pub schemes: Vec<Scheme>,
    pub secret: WebhookSecret,
    /// Default [`crate::webhook::DEFAULT_TOLERANCE_SECS`].
    pub tolerance_secs: u64,
    /// Default [`DEFAULT_RETENTION_SECS`].
    pub retention_secs: u64,
}

/// Why an administrative change was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookSourceError {
    #[error("{0}")]
    Invalid(String),
    #[error("no tenant {0}")]
    NoSuchTenant(TenantId),
    #[error("a webhook source named {0} exists")]
    NameTaken(WebhookSourceName),
    #[error("no webhook source named {0}")]
    NoSuchSource(WebhookSourceName),
    #[error("webhook source {source_name} has no secret {secret_id}")]
    NoSuchSecret { source_name: WebhookSourceName, secret_id: String },
    #[error("webhook source {0} holds {MAX_SECRETS} secrets already: remove an old one first")]
    TooManySecrets(WebhookSourceName),
    #[error("{0} is the source's only secret: rotate in a new one before removing it")]
    LastSecret(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct WebhookService {
    sources: WebhookSourceStore,
    events: WebhookEventStore,
    sealer: Sealer,
    cache: TtlCache<WebhookSourceName, Option<Arc<VerifyingSource>>>,
    max_body_bytes: usize,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService")
            .field("cache_ttl", &self.cache.ttl())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl WebhookService {
    pub fn new(config: &Config, stores: &Stores) -> Self {
        Self {
            sources: stores.webhook_sources.clone(),
            events: stores.webhook_events.clone(),
            sealer: config.sealing_key.sealer(),
            cache: TtlCache::new(config.webhook_source_cache_ttl, MAX_CACHED_SOURCES),
            max_body_bytes: config.webhook_max_body_bytes,
        }
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Verifies a delivery and stores it once.
    pub async fn receive(&self, delivery: Delivery<'_>, now_secs: u64) -> Result<Receipt, ApiError> {
        if delivery.body.len() > self.max_body_bytes {
            return Err(ApiError::PayloadTooLarge { limit: self.max_body_bytes });
        }
        let name = WebhookSourceName::parse(delivery.source).map_err(|_| ApiError::NotFound(NO_SUCH_SOURCE))?;
        let source = self.verifying_source(&name).await?.ok_or(ApiError::NotFound(NO_SUCH_SOURCE))?;
        let verified = source.verify(&delivery, now_secs)?;
        let event = WebhookEvent {
            source: &source.name,
            tenant_id: &source.tenant_id,
            scheme: verified.scheme,
            id: &verified.id,
            received_at: now_secs,
            signed_at: verified.timestamp,
            headers: &delivery.headers,
            body: delivery.body,
            expires_at: now_secs.saturating_add(source.retention_secs),
        };
        let stored = self.events.insert(&event).await?;
        Ok(Receipt { received: true, id: verified.id, duplicate: !stored })
    }

    /// The source from the cache, or one GetItem (a missing source is
    /// cached too, so unknown names cannot make every request a read).
    async fn verifying_source(&self, name: &WebhookSourceName) -> Result<Option<Arc<VerifyingSource>>, StoreError> {
        self.cache
            .get_or_load(name, async {
                Ok(match self.sources.get(name).await? {
                    Some(record) => Some(Arc::new(self.unseal(&record)?)),
                    None => None,
                })
            })
            .await
    }

    fn open(&self, name: &WebhookSourceName, sealed: &SealedSecret) -> Result<WebhookSecret, StoreError> {
        let corrupt = |reason: &str| StoreError::corrupt(format!("WEBHOOK_SOURCE/{name}"), reason.to_owned());
        let text = self
            .sealer
            .unseal(&sealed.sealed, &secret_aad(name, &sealed.id))
            .map_err(|_| corrupt("a secret does not open (wrong LATCHKEY_SEALING_KEY?)"))?;
        let text = String::from_utf8(text.to_vec()).map_err(|_| corrupt("a secret is not text"))?;
        WebhookSecret::new(text).map_err(|e| corrupt(e.0))
    }

    fn unseal(&self, record: &WebhookSourceRecord) -> Result<VerifyingSource, StoreError> {
        let keys = record
            .secrets
            .iter()
            .map(|sealed| self.open(&record.name, sealed).map(|secret| VerifyingKey::new(&secret)))
            .collect::<Result<_, _>>()?;
        Ok(VerifyingSource {
            name: record.name.clone(),
            tenant_id: record.tenant_id.clone(),
            schemes: record.schemes.clone(),
            keys,
            tolerance_secs: record.tolerance_secs,
            retention_secs: record.retention_secs,
        })
    }

    fn seal(&self, name: &WebhookSourceName, secret: &WebhookSecret, now_secs: u64) -> SealedSecret {
        let id = format!("whs_{}", &crate::crypto::random_id()[..16]);
        SealedSecret {
            sealed: self.sealer.seal(secret.expose().as_bytes(), &secret_aad(name, &id)),
            id,
            last_four: secret.last_four(),
            created_at: now_secs,
        }
    }

    /// Changes here show at once in this instance; other instances see them
    /// when their cached copy expires.
    fn forget(&self, name: &WebhookSourceName) {
        self.cache.remove(name);
    }

    /// Registers a source.
    pub async fn add_source(
        &self,
        new: NewWebhookSource,
        now_secs: u64,
    ) -> Result<WebhookSourceView, WebhookSourceError> {
        let mut schemes = new.schemes;
        schemes.sort_by_key(|scheme| scheme.as_str());
        schemes.dedup();
        if schemes.is_empty() {
            return Err(WebhookSourceError::Invalid("a source needs at least one scheme".into()));
        }
        new.secret.check_strength(&schemes).map_err(|e| WebhookSourceError::Invalid(e.0.into()))?;
        if !TOLERANCE_RANGE_SECS.contains(&new.tolerance_secs) {
            return Err(WebhookSourceError::Invalid(format!(
                "tolerance must be {}-{} seconds",
                TOLERANCE_RANGE_SECS.start(),
                TOLERANCE_RANGE_SECS.end()
            )));
        }
        // A delivery is fresh for up to 2 × tolerance after the first one
        // with its id arrived; the stored event must outlive that window.
        let min_retention = (2 * new.tolerance_secs).max(3600);
        if !(min_retention..=MAX_RETENTION_SECS).contains(&new.retention_secs) {
            return Err(WebhookSourceError::Invalid(format!(
                "retention must be {min_retention}-{MAX_RETENTION_SECS} seconds (at least an hour and twice the \
                 tolerance, so a redelivery inside the tolerance window is always seen as a duplicate)"
            )));
        }
        let record = WebhookSourceRecord {
            secrets: vec![self.seal(&new.name, &new.secret, now_secs)],
            name: new.name,
            tenant_id: new.tenant_id,
            schemes,
            tolerance_secs: new.tolerance_secs,
            retention_secs: new.retention_secs,
            created_at: now_secs,
            rotated_at: None,
            version: 1,
        };
        match self.sources.insert(&record).await? {
            AddSourceOutcome::Added => {
                self.forget(&record.name);
                Ok(WebhookSourceView::from(&record))
            }
            AddSourceOutcome::NameTaken => Err(WebhookSourceError::NameTaken(record.name)),
            AddSourceOutcome::NoSuchTenant => Err(WebhookSourceError::NoSuchTenant(record.tenant_id)),
        }
    }

    async fn load(&self, name: &WebhookSourceName) -> Result<WebhookSourceRecord, WebhookSourceError> {
        self.sources.get(name).await?.ok_or_else(|| WebhookSourceError::NoSuchSource(name.clone()))
    }

    /// Reads, changes and writes back a source's secrets, retrying when
    /// another admin changed them in between.
    async fn change_secrets(
        &self,
        name: &WebhookSourceName,
        now_secs: u64,
        change: impl Fn(&WebhookSourceRecord) -> Result<Vec<SealedSecret>, WebhookSourceError>,
    ) -> Result<WebhookSourceView, WebhookSourceError> {
        for _ in 0..5 {
            let mut record = self.load(name).await?;
            let secrets = change(&record)?;
            if self.sources.replace_secrets(&record, &secrets, now_secs).await? {
                self.forget(name);
                record.secrets = secrets;
                record.rotated_at = Some(now_secs);
                record.version += 1;
                return Ok(WebhookSourceView::from(&record));
            }
        }
        Err(StoreError::Unavailable { operation: "UpdateItem", source: "webhook source kept changing".into() }.into())
    }

    /// Adds `secret` as the newest secret; the others keep verifying until
    /// they are removed. Returns the new secret's id and the source.
    pub async fn rotate_secret(
        &self,
        name: &WebhookSourceName,
        secret: &WebhookSecret,
        now_secs: u64,
    ) -> Result<(String, WebhookSourceView), WebhookSourceError> {
        let sealed = self.seal(name, secret, now_secs);
        let id = sealed.id.clone();
        let view = self
            .change_secrets(name, now_secs, |record| {
                secret.check_strength(&record.schemes).map_err(|e| WebhookSourceError::Invalid(e.0.into()))?;
                if record.secrets.len() >= MAX_SECRETS {
                    return Err(WebhookSourceError::TooManySecrets(name.clone()));
                }
                Ok(std::iter::once(sealed.clone()).chain(record.secrets.iter().cloned()).collect())
            })
            .await?;
        Ok((id, view))
    }

    /// Removes one secret; deliveries signed with it fail from then on (in
    /// other instances, once their cache expires). The last one stays.
    pub async fn remove_secret(
        &self,
        name: &WebhookSourceName,
        secret_id: &str,
        now_secs: u64,
    ) -> Result<WebhookSourceView, WebhookSourceError> {
        self.change_secrets(name, now_secs, |record| {
            if !record.secrets.iter().any(|s| s.id == secret_id) {
                return Err(WebhookSourceError::NoSuchSecret {
                    source_name: name.clone(),
                    secret_id: secret_id.to_owned(),
                });
            }
            if record.secrets.len() == 1 {
                return Err(WebhookSourceError::LastSecret(secret_id.to_owned()));
            }
            Ok(record.secrets.iter().filter(|s| s.id != secret_id).cloned().collect())
        })
        .await
    }

    /// Every source, or one tenant's.
    pub async fn list_sources(&self, tenant: Option<&TenantId>) -> Result<Vec<WebhookSourceView>, StoreError> {
        Ok(self
            .sources
            .list()
            .await?
            .iter()
            .filter(|record| tenant.is_none_or(|t| record.tenant_id == *t))
            .map(WebhookSourceView::from)
            .collect())
    }

    /// Deletes a source. Events already stored stay until their TTL.
    pub async fn delete_source(&self, name: &WebhookSourceName) -> Result<(), WebhookSourceError> {
        let deleted = self.sources.delete(name).await?;
        self.forget(name);
        if deleted { Ok(()) } else { Err(WebhookSourceError::NoSuchSource(name.clone())) }
    }

    /// The source's secrets in clear, newest first, for signing test
    /// deliveries (`latchkey webhook sign`).
    pub async fn signing_secrets(
        &self,
        name: &WebhookSourceName,
    ) -> Result<(WebhookSourceView, Vec<WebhookSecret>), WebhookSourceError> {
        let record = self.load(name).await?;
        let secrets = record.secrets.iter().map(|sealed| self.open(name, sealed)).collect::<Result<_, _>>()?;
        Ok((WebhookSourceView::from(&record), secrets))
    }
}
