//! API keys: two items per key, written and revoked together in one
//! transaction.
//!
//! - `APIKEY#<id>` / `KEY` is what an exchange reads: one consistent GetItem
//!   by the id the client sends.
//! - `TENANT#<tid>` / `APIKEY#<id>` is the tenant's listing: one Query, which
//!   can never return another tenant's key. It also carries `last_used_at`,
//!   so the exchange's usage stamp never touches the item the hot path reads.
//!
//! Revoked keys, and keys past their own expiry, stay listed for
//! [`RETENTION_SECS`] and then DynamoDB's TTL removes both items.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

use super::tenants::tenant_exists_step;
use super::{Item, ItemReader, Table, applied, build_failed, failed_conditions, key, n, s, unavailable};
use crate::domain::{ApiKeyId, IpNetwork, Label, RateLimitOverride, Scopes, Stage, TenantId};
use crate::error::StoreError;

/// How long a revoked or expired key stays visible before its items expire.
pub const RETENTION_SECS: u64 = 30 * 24 * 60 * 60;

fn main_key(id: &ApiKeyId) -> Item {
    key(format!("APIKEY#{id}"), "KEY")
}

fn index_key(tenant: &TenantId, id: &ApiKeyId) -> Item {
    key(format!("TENANT#{tenant}"), &format!("APIKEY#{id}"))
}

/// An API key as stored (never the secret: only its keyed hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: Label,
    pub scopes: Scopes,
    pub env: Stage,
    /// Keyed hash of the secret (see [`crate::credentials`]).
    pub secret_hash: String,
    /// The secret's last four characters, for listings.
    pub last_four: String,
    /// When the key stops working, if it expires.
    pub valid_until: Option<u64>,
    /// Empty: any address.
    pub allowed_ips: Vec<IpNetwork>,
    /// An administrator's limit for this key instead of the tenant's plan.
    pub rate_limit: Option<RateLimitOverride>,
    pub created_at: u64,
    /// Listing items only; at most a minute stale.
    pub last_used_at: Option<u64>,
    pub revoked_at: Option<u64>,
}

impl ApiKeyRecord {
    /// Whether the key is past its own expiry.
    pub fn is_expired(&self, now_secs: u64) -> bool {
        self.valid_until.is_some_and(|until| until <= now_secs)
    }

    /// When DynamoDB may delete the key's items.
    fn purge_at(&self) -> Option<u64> {
        self.valid_until.map(|until| until.saturating_add(RETENTION_SECS))
    }
}

/// Why a key could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddApiKeyOutcome {
    Added,
    NoSuchTenant,
}

/// What a revocation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeApiKeyOutcome {
    /// Revoked now, at this time.
    Revoked(u64),
    /// It already was, at this time.
    AlreadyRevoked(u64),
    /// No such key in this tenant.
    NotFound,
}

/// One page of a tenant's keys, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPage {
    pub keys: Vec<ApiKeyRecord>,
    /// Pass as `after` for the next page.
    pub next: Option<ApiKeyId>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyStore {
    table: Table,
}

impl ApiKeyStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    fn attributes(record: &ApiKeyRecord) -> Item {
        let mut item = Item::new();
        item.insert("key_id".into(), s(record.id.as_str()));
        item.insert("tenant_id".into(), s(record.tenant_id.as_str()));
        item.insert("name".into(), s(record.name.as_str()));
        item.insert("scope".into(), s(record.scopes.to_string()));
        item.insert("env".into(), s(record.env.as_str()));
        item.insert("secret_hash".into(), s(&record.secret_hash));
        item.insert("last_four".into(), s(&record.last_four));
        item.insert("created_at".into(), n(record.created_at));
        if let Some(until) = record.valid_until {
            item.insert("valid_until".into(), n(until));
        }
        if let Some(purge) = record.purge_at() {
            item.insert("expires_at".into(), n(purge));
        }
        if !record.allowed_ips.is_empty() {
            let networks = record.allowed_ips.iter().map(|net| AttributeValue::S(net.to_string())).collect();
            item.insert("allowed_ips".into(), AttributeValue::L(networks));
        }
        if let Some(limit) = record.rate_limit {
            item.insert("rate_limit".into(), rate_limit_value(limit));
        }
        if let Some(at) = record.revoked_at {
            item.insert("revoked_at".into(), n(at));
        }
        item
    }

    /// Adds a key to an existing tenant: both items and the tenant check in
    /// one transaction.
    pub async fn insert(&self, record: &ApiKeyRecord) -> Result<AddApiKeyOutcome, StoreError> {
        const OP: &str = "TransactWriteItems";
        let mut main = Self::attributes(record);
        main.extend(main_key(&record.id));
        let mut index = Self::attributes(record);
        index.extend(index_key(&record.tenant_id, &record.id));
        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(tenant_exists_step(&self.table, &record.tenant_id)?)
            .transact_items(self.table.put_new_step(main)?)
            .transact_items(self.table.put_new_step(index)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AddApiKeyOutcome::Added),
            Err(err) => match failed_conditions(&err).as_slice() {
                [true, ..] => Ok(AddApiKeyOutcome::NoSuchTenant),
                [_, true, ..] | [_, _, true] => {
                    // 128 random bits collided: not in this universe, but not a 500 either.
                    Err(StoreError::Unavailable { operation: OP, source: "API key id collision".into() })
                }
                _ => Err(unavailable(OP, err)),
            },
        }
    }

    /// The key as the exchange sees it: one consistent GetItem. Keys whose
    /// items have expired (their TTL passed) read as absent.
    pub async fn get(&self, id: &ApiKeyId, now_secs: u64) -> Result<Option<ApiKeyRecord>, StoreError> {
        let Some(item) = self.table.get(main_key(id)).await? else {
            return Ok(None);
        };
        if ItemReader::new(&item).is_expired(now_secs)? {
            return Ok(None);
        }
        parse_key(&item).map(Some)
    }

    /// One page (at most `limit`) of the tenant's keys after `after`.
    pub async fn list(
        &self,
        tenant: &TenantId,
        limit: i32,
        after: Option<&ApiKeyId>,
        now_secs: u64,
    ) -> Result<ApiKeyPage, StoreError> {
        let output = self
            .table
            .client
            .query()
            .table_name(self.table.name())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(format!("TENANT#{tenant}")))
            .expression_attribute_values(":prefix", s("APIKEY#"))
            .set_exclusive_start_key(after.map(|id| index_key(tenant, id)))
            .consistent_read(true)
            .limit(limit)
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        let mut keys = Vec::new();
        for item in output.items() {
            if !ItemReader::new(item).is_expired(now_secs)? {
                keys.push(parse_key(item)?);
            }
        }
        let next = match output.last_evaluated_key().and_then(|k| k.get("sk")) {
            Some(AttributeValue::S(sk)) => sk.strip_prefix("APIKEY#").and_then(|id| ApiKeyId::parse(id).ok()),
            _ => None,
        };
        Ok(ApiKeyPage { keys, next })
    }

    /// Revokes the tenant's key `id`: both items in one transaction, so the
    /// exchange refuses it from the next request on. Another tenant's key
    /// reads as not found.
    pub async fn revoke(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        now_secs: u64,
    ) -> Result<RevokeApiKeyOutcome, StoreError> {
        const OP: &str = "TransactWriteItems";
        let update = |key: Item| {
            Update::builder()
                .table_name(self.table.name())
                .set_key(Some(key))
                .update_expression("SET revoked_at = :now, expires_at = :purge")
                .condition_expression("tenant_id = :tenant AND attribute_not_exists(revoked_at)")
                .expression_attribute_values(":now", n(now_secs))
                .expression_attribute_values(":purge", n(now_secs.saturating_add(RETENTION_SECS)))
                .expression_attribute_values(":tenant", s(tenant.as_str()))
                .build()
                .map_err(|e| build_failed(OP, e))
        };
        if self.update_both(tenant, id, update).await? {
            return Ok(RevokeApiKeyOutcome::Revoked(now_secs));
        }
        // Missing, another tenant's, or already revoked: read to tell which.
        Ok(match self.get(id, now_secs).await? {
            Some(record) if record.tenant_id == *tenant => match record.revoked_at {
                Some(at) => RevokeApiKeyOutcome::AlreadyRevoked(at),
                None => RevokeApiKeyOutcome::NotFound,
            },
            _ => RevokeApiKeyOutcome::NotFound,
        })
    }

    /// Sets (or with `None` removes) the key's own rate limit on both items;
    /// `Ok(false)` when the tenant has no such key.
    pub async fn set_rate_limit(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        limit: Option<RateLimitOverride>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "TransactWriteItems";
        let update = |key: Item| {
            let builder = Update::builder()
                .table_name(self.table.name())
                .set_key(Some(key))
                .condition_expression("tenant_id = :tenant")
                .expression_attribute_values(":tenant", s(tenant.as_str()));
            match limit {
                Some(limit) => builder
                    .update_expression("SET rate_limit = :limit")
                    .expression_attribute_values(":limit", rate_limit_value(limit)),
                None => builder.update_expression("REMOVE rate_limit"),
            }
            .build()
            .map_err(|e| build_failed(OP, e))
        };
        self.update_both(tenant, id, update).await
    }

    /// Applies `update` to both of the key's items (main and listing) in one
    /// transaction; `Ok(false)` when a condition failed and nothing changed.
    async fn update_both(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        update: impl Fn(Item) -> Result<Update, StoreError>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "TransactWriteItems";
        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update(main_key(id))?).build())
            .transact_items(TransactWriteItem::builder().update(update(index_key(tenant, id))?).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if failed_conditions(&err).contains(&true) => Ok(false),
            Err(err) => Err(unavailable(OP, err)),
        }
    }

    /// Stamps `last_used_at` on the listing item unless it was stamped after
    /// `stale_before`. `Ok(false)` when nothing was written.
    pub async fn touch(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        now_secs: u64,
        stale_before: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(index_key(tenant, id)))
            .update_expression("SET last_used_at = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(last_used_at) OR last_used_at < :stale)",
            )
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":stale", n(stale_before))
            .send()
            .await;
        applied(result)
    }
}

fn rate_limit_value(limit: RateLimitOverride) -> AttributeValue {
    match limit {
        RateLimitOverride::PerHour(per_hour) => n(u64::from(per_hour)),
        RateLimitOverride::Unlimited => s("unlimited"),
    }
}

fn parse_rate_limit(value: Option<&AttributeValue>) -> Result<Option<RateLimitOverride>, String> {
    match value {
        None => Ok(None),
        Some(AttributeValue::N(text)) => match text.parse::<u32>() {
            Ok(per_hour) if per_hour > 0 => Ok(Some(RateLimitOverride::PerHour(per_hour))),
            _ => Err(format!("`rate_limit` {text} is not a positive 32-bit number")),
        },
        Some(AttributeValue::S(text)) if text == "unlimited" => Ok(Some(RateLimitOverride::Unlimited)),
        Some(_) => Err("`rate_limit` is neither a number nor `unlimited`".into()),
    }
}

fn parse_key(item: &Item) -> Result<ApiKeyRecord, StoreError> {
    let reader = ItemReader::new(item);
    let corrupt = |reason: String| StoreError::corrupt("APIKEY", reason);
    let allowed_ips = match item.get("allowed_ips") {
        None => Vec::new(),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|value| match value {
                AttributeValue::S(text) => IpNetwork::parse(text).map_err(|e| corrupt(e.0)),
                _ => Err(corrupt("`allowed_ips` holds a non-string".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(corrupt("`allowed_ips` is not a list".into())),
    };
    Ok(ApiKeyRecord {
        id: ApiKeyId::parse(reader.string("key_id")?).map_err(|e| corrupt(e.0))?,
        tenant_id: TenantId::parse(reader.string("tenant_id")?).map_err(|e| corrupt(e.0))?,
        name: Label::parse(reader.string("name")?).map_err(|e| corrupt(e.0))?,
        scopes: Scopes::parse(reader.opt_string("scope")?.unwrap_or_default()).map_err(|e| corrupt(e.0))?,
        env: reader.string("env")?.parse().map_err(corrupt)?,
        secret_hash: reader.string("secret_hash")?.to_owned(),
        last_four: reader.string("last_four")?.to_owned(),
        valid_until: reader.opt_number("valid_until")?,
        allowed_ips,
        rate_limit: parse_rate_limit(item.get("rate_limit")).map_err(corrupt)?,
        created_at: reader.number("created_at")?,
        last_used_at: reader.opt_number("last_used_at")?,
        revoked_at: reader.opt_number("revoked_at")?,
    })
}
