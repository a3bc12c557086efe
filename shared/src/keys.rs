//! The signing key ring: which key signs now, which public keys verify, and
//! rotation. A function instance loads the ring with one Query and keeps it
//! for `key_cache_ttl`, or until a pre-published key's activation time
//! arrives, whichever is first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use crate::crypto::{Sealer, random_id};
use crate::error::{ApiError, StoreError};
use crate::jwt::{LEEWAY_SECS, SigningAlgorithm, SigningKey, VerifyingKey, generate_key_pair};
use crate::store::{SigningKeyRecord, SigningKeyStore};
use crate::time::{now_secs, rfc3339};

/// Default wait between publishing a rotated-in key and signing with it:
/// API Gateway's JWT authorizer caches a JWKS for up to two hours.
pub const DEFAULT_PREPUBLISH: Duration = Duration::from_secs(2 * 60 * 60);

/// How old the cached key set must be before a token with an unknown `kid`
/// makes an instance reload it.
pub const UNKNOWN_KID_RELOAD_AFTER: Duration = Duration::from_secs(10);

/// A loaded snapshot of the ring.
#[derive(Debug)]
pub struct KeySet {
    loaded_at: Instant,
    /// The newest active key, unsealed; `None` before the first key exists.
    pub signing: Option<Arc<SigningKey>>,
    /// Every published key by kid, active or pre-published.
    pub verifying: HashMap<String, VerifyingKey>,
    /// The records, oldest first (for JWKS and admin listings).
    pub records: Vec<SigningKeyRecord>,
    /// When the next pre-published key starts signing.
    next_activation: Option<u64>,
}

impl KeySet {
    fn is_fresh(&self, ttl: Duration, now: u64) -> bool {
        self.loaded_at.elapsed() < ttl && self.next_activation.is_none_or(|at| at > now)
    }
}

pub struct KeyRing {
    store: SigningKeyStore,
    /// `None` in a verify-only instance: it loads public keys only.
    sealer: Option<Sealer>,
    algorithm: SigningAlgorithm,
    /// How long a key must stay published after it stops signing here:
    /// instances that loaded it keep signing with it until their key cache
    /// expires, and each token they sign is acceptable for the access-token
    /// lifetime plus the verification leeway.
    publish_after_last_use: Duration,
    cache_ttl: Duration,
    cache: RwLock<Option<Arc<KeySet>>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("algorithm", &self.algorithm)
            .field("cache_ttl", &self.cache_ttl)
            .finish_non_exhaustive()
    }
}

/// Whether the sealing key can open a key record: if not, the deployment's
/// `LATCHKEY_SEALING_KEY` is not the one that sealed it.
fn unseal_error(kid: &str) -> ApiError {
    ApiError::Internal(
        format!("signing key {kid} cannot be unsealed: is LATCHKEY_SEALING_KEY the one it was created with?").into(),
    )
}

impl KeyRing {
    /// `algorithm` is what a key generated on demand uses; `access_token_ttl`
    /// how long the tokens it signs live; `cache_ttl` how long every
    /// instance of the deployment keeps a loaded key set.
    pub fn new(
        store: SigningKeyStore,
        sealer: Sealer,
        algorithm: SigningAlgorithm,
        access_token_ttl: Duration,
        cache_ttl: Duration,
    ) -> Self {
        let publish_after_last_use = cache_ttl + access_token_ttl + Duration::from_secs(LEEWAY_SECS);
        Self { store, sealer: Some(sealer), algorithm, publish_after_last_use, cache_ttl, cache: RwLock::new(None) }
    }

    /// A ring that only verifies: it reads the public keys and never opens a
    /// private one (a team's Lambda running the middleware has no sealing
    /// key).
    pub fn verify_only(store: SigningKeyStore, cache_ttl: Duration) -> Self {
        Self {
            store,
            sealer: None,
            algorithm: SigningAlgorithm::Rs256,
            publish_after_last_use: Duration::ZERO,
            cache_ttl,
            cache: RwLock::new(None),
        }
    }

    fn sealer(&self) -> Result<&Sealer, ApiError> {
        self.sealer
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this instance only verifies tokens (no LATCHKEY_SEALING_KEY)".into()))
    }

    /// Reads the table on every call instead of caching (the admin CLI),
    /// while rotation still allows for the deployment's instances' caches.
    #[must_use]
    pub fn uncached(mut self) -> Self {
        self.cache_ttl = Duration::ZERO;
        self
    }

    /// Loads the key set during cold start, where Lambda gives the function a
    /// full CPU, instead of on the first request. A failure is only logged:
    /// the first request retries and answers 503 if it must.
    pub async fn warm_up(&self) {
        if let Err(err) = self.current().await {
            tracing::warn!(error = %crate::error::error_chain(&err), "signing keys not loaded at cold start");
        }
    }

    /// The algorithm new keys get by default.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The current key set, from cache when fresh.
    pub async fn current(&self) -> Result<Arc<KeySet>, ApiError> {
        let now = now_secs();
        if let Some(set) = self.cache.read().await.as_ref().filter(|s| s.is_fresh(self.cache_ttl, now)) {
            return Ok(Arc::clone(set));
        }
        self.reload().await
    }

    /// The key set to verify a token naming `kid`: the cached one, reloaded
    /// when it lacks `kid` (a key rotated in since it loaded), but at most
    /// once per [`UNKNOWN_KID_RELOAD_AFTER`], so made-up kids cannot turn
    /// every request into a Query.
    pub async fn verifying_set_for(&self, kid: &str) -> Result<Arc<KeySet>, ApiError> {
        let set = self.current().await?;
        if set.verifying.contains_key(kid) || set.loaded_at.elapsed() < UNKNOWN_KID_RELOAD_AFTER {
            return Ok(set);
        }
        let cache = self.cache.write().await;
        if let Some(set) = cache.as_ref().filter(|s| s.loaded_at.elapsed() < UNKNOWN_KID_RELOAD_AFTER) {
            // Another request reloaded while this one waited for the lock.
            return Ok(Arc::clone(set));
        }
        self.load_into(cache).await
    }

    /// Loads the ring from the table, replacing the cache.
    pub async fn reload(&self) -> Result<Arc<KeySet>, ApiError> {
        let cache = self.cache.write().await;
        self.load_into(cache).await
    }

    async fn load_into(
        &self,
        mut cache: tokio::sync::RwLockWriteGuard<'_, Option<Arc<KeySet>>>,
    ) -> Result<Arc<KeySet>, ApiError> {
        let now = now_secs();
        let records = self.store.list(now).await?;
        let mut verifying = HashMap::with_capacity(records.len());
        for record in &records {
            let key = VerifyingKey::from_jwk(record.kid.clone(), record.algorithm, &record.public_jwk)
                .map_err(|reason| ApiError::from(StoreError::corrupt(format!("SIGNING_KEY/{}", record.kid), reason)))?;
            verifying.insert(record.kid.clone(), key);
        }
        let signer_record = signer(&records, now, self.publish_after_last_use.as_secs());
        let signing = match (signer_record, &self.sealer) {
            (Some(record), Some(sealer)) => {
                let der = sealer
                    .unseal(&record.sealed_private_key, record.kid.as_bytes())
                    .map_err(|_| unseal_error(&record.kid))?;
                let key = SigningKey::from_pkcs8(record.kid.clone(), record.algorithm, &der).map_err(|reason| {
                    ApiError::from(StoreError::corrupt(format!("SIGNING_KEY/{}", record.kid), reason))
                })?;
                Some(Arc::new(key))
            }
            _ => None,
        };
        let next_activation = records.iter().map(|r| r.active_from).filter(|at| *at > now).min();
        let set = Arc::new(KeySet { loaded_at: Instant::now(), signing, verifying, records, next_activation });
        *cache = Some(Arc::clone(&set));
        Ok(set)
    }

    /// The key to sign with now. The very first call on a new table creates
    /// the first key (active at once: no token can be cached anywhere yet).
    pub async fn signing_key(&self) -> Result<Arc<SigningKey>, ApiError> {
        self.sealer()?;
        if let Some(key) = self.current().await?.signing.clone() {
            return Ok(key);
        }
        // Another instance may have created it since this one loaded.
        if let Some(key) = self.reload().await?.signing.clone() {
            return Ok(key);
        }
        self.add_key(self.algorithm, Duration::ZERO).await?;
        self.reload()
            .await?
            .signing
            .clone()
            .ok_or_else(|| ApiError::Internal("no active signing key after creating one".into()))
    }

    /// Adds a new key that starts signing after `prepublish` (zero: at once).
    /// Every older key stays published until the last token an instance can
    /// sign with it (its key cache may still hold it for `cache_ttl` after
    /// the new key activates) has expired, and disappears after.
    pub async fn add_key(
        &self,
        algorithm: SigningAlgorithm,
        prepublish: Duration,
    ) -> Result<SigningKeyRecord, ApiError> {
        self.sealer()?;
        let now = now_secs();
        let kid = format!("{}-{}", &rfc3339(now)[..10], &random_id()[..10]);
        let generated = {
            let kid = kid.clone();
            tokio::task::spawn_blocking(move || generate_key_pair(algorithm, &kid))
                .await
                .map_err(|err| ApiError::Internal(Box::new(err)))??
        };
        let record = SigningKeyRecord {
            sealed_private_key: self.sealer()?.seal(&generated.private_der, kid.as_bytes()),
            kid,
            algorithm,
            public_jwk: generated.public_jwk.to_string(),
            created_at: now,
            active_from: now + prepublish.as_secs(),
            retired_at: None,
            expires_at: None,
        };
        let predecessors = self.store.list(now).await?;
        if !self.store.insert(&record).await? {
            return Err(ApiError::Internal(format!("signing key id {} already exists", record.kid).into()));
        }
        tracing::info!(kid = %record.kid, alg = %algorithm, active_from = record.active_from, "signing key added");
        let last_valid = record.active_from + self.publish_after_last_use.as_secs();
        for old in predecessors.iter().filter(|old| old.expires_at.is_none_or(|at| at > last_valid)) {
            self.store.set_expiry(&old.kid, last_valid, None).await?;
        }
        Ok(record)
    }

    /// Retires `kid`: it signs nothing from now on (once each instance's key
    /// cache expires) and stays published until every token it signed has
    /// expired, or with `immediately` disappears at
    /// once (a leaked key: its tokens stop verifying as soon as each
    /// instance's key cache expires). Refused when it is the only key that
    /// can sign, unless `force`: the next token then creates a new key that
    /// verifiers with a cached JWKS do not know yet. To replace a key
    /// without that, rotate: [`KeyRing::add_key`] retires its predecessors
    /// on schedule.
    pub async fn retire(&self, kid: &str, immediately: bool, force: bool) -> Result<RetireOutcome, ApiError> {
        let now = now_secs();
        let records = self.store.list(now).await?;
        let Some(record) = records.iter().find(|r| r.kid == kid) else {
            return Ok(RetireOutcome::NotFound);
        };
        let others_can_sign = records
            .iter()
            .any(|r| r.kid != kid && r.active_from <= now && r.retired_at.is_none() && r.expires_at.is_none());
        if signer(&records, now, self.publish_after_last_use.as_secs()).is_some_and(|s| s.kid == kid)
            && !others_can_sign
            && !force
        {
            return Ok(RetireOutcome::OnlySigner);
        }
        let wanted = if immediately { now } else { now + self.publish_after_last_use.as_secs() };
        let expires_at = record.expires_at.map_or(wanted, |at| at.min(wanted));
        if !self.store.set_expiry(kid, expires_at, Some(now)).await? {
            return Ok(RetireOutcome::NotFound);
        }
        tracing::info!(kid, expires_at, immediately, "signing key retired");
        *self.cache.write().await = None;
        Ok(RetireOutcome::Retired { expires_at })
    }
}

/// What [`KeyRing::retire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireOutcome {
    /// Retired; published until `expires_at`.
    Retired {
        expires_at: u64,
    },
    NotFound,
    /// It is the only key that can sign; retiring it needs `force`.
    OnlySigner,
}

/// The key that signs at `now`: of the active, unretired keys that stay
/// published long enough for what it signs now (`publish_after_last_use`),
/// one that no newer key has superseded (no `expires_at`) if there is one,
/// else the one added last (a key added with `--immediate` wins over an
/// older pre-published one). A superseded key whose successor was force-retired
/// does not come back once its remaining publication is too short.
fn signer(records: &[SigningKeyRecord], now: u64, publish_after_last_use: u64) -> Option<&SigningKeyRecord> {
    records
        .iter()
        .filter(|r| r.active_from <= now && r.retired_at.is_none())
        .filter(|r| r.expires_at.is_none_or(|at| at >= now + publish_after_last_use))
        .max_by_key(|r| (r.expires_at.is_none(), r.created_at, r.active_from, r.kid.clone()))
}
