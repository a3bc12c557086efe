//! Webhook sources and the events accepted from them.
//!
//! - Sources share one partition (`WEBHOOK_SOURCE`): a deployment has a
//!   handful, the webhook function reads one by name with a GetItem (and
//!   caches it), and the CLI lists them all with one Query. Secrets are
//!   sealed (AES-256-GCM, bound to the source and the secret's id): the
//!   verifier needs them in clear, so they cannot be hashed. Rotation is a
//!   read, then an update conditioned on the `version` it read.
//! - An accepted event is one item keyed by (source, dedupe id). Writing it
//!   is the replay check: a conditional PutItem that fails while an
//!   unexpired event with that id exists. One write per delivery, no read.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::tenants::tenant_exists_step;
use super::{Item, ItemReader, Table, applied, failed_conditions, key, n, s, unavailable};
use crate::domain::{TenantId, WebhookSourceName};
use crate::error::StoreError;
use crate::webhook::Scheme;

const SOURCE_PK: &str = "WEBHOOK_SOURCE";

fn source_key(name: &WebhookSourceName) -> Item {
    key(SOURCE_PK.to_owned(), &format!("SOURCE#{name}"))
}

/// One secret of a source, sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// `whs_…`: names the secret in listings and `remove-secret`.
    pub id: String,
    /// AES-256-GCM blob of the secret text; AAD = [`secret_aad`].
    pub sealed: Vec<u8>,
    pub last_four: String,
    pub created_at: u64,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// What a sealed secret is bound to, so a blob copied to another source or
/// slot does not open.
pub fn secret_aad(source: &WebhookSourceName, secret_id: &str) -> Vec<u8> {
    format!("webhook-source/{source}/{secret_id}").into_bytes()
}

/// A configured webhook source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSourceRecord {
    pub name: WebhookSourceName,
    pub tenant_id: TenantId,
    pub schemes: Vec<Scheme>,
    /// Newest first; any of them verifies.
    pub secrets: Vec<SealedSecret>,
    /// Accepted clock difference for signed timestamps, seconds.
    pub tolerance_secs: u64,
    /// How long accepted events (and so their ids, for deduplication) stay.
    pub retention_secs: u64,
    pub created_at: u64,
    pub rotated_at: Option<u64>,
    /// Bumped by every secret change; updates are conditioned on it.
    pub version: u64,
}

/// What adding a source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddSourceOutcome {
    Added,
    NameTaken,
    NoSuchTenant,
}

/// An accepted delivery, as stored for DynamoDB Streams consumers.
#[derive(Debug, Clone)]
pub struct WebhookEvent<'a> {
    pub source: &'a WebhookSourceName,
    pub tenant_id: &'a TenantId,
    pub scheme: Scheme,
    /// The dedupe id: `webhook-id`, or `sha256:<hex>` of the body.
    pub id: &'a str,
    pub received_at: u64,
    /// The sender's signed timestamp, when there was one.
    pub signed_at: Option<u64>,
    /// The headers consumers need (content type, event type, ids).
    pub headers: &'a [(&'static str, String)],
    pub body: &'a [u8],
    /// When DynamoDB may delete it; until then a redelivery is a duplicate.
    pub expires_at: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookSourceStore {
    table: Table,
}

impl WebhookSourceStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    fn item(record: &WebhookSourceRecord) -> Item {
        let mut item = source_key(&record.name);
        item.insert("name".into(), s(record.name.as_str()));
        item.insert("tenant_id".into(), s(record.tenant_id.as_str()));
        item.insert("schemes".into(), AttributeValue::L(record.schemes.iter().map(|x| s(x.as_str())).collect()));
        item.insert("secrets".into(), secrets_attribute(&record.secrets));
        item.insert("tolerance".into(), n(record.tolerance_secs));
        item.insert("retention".into(), n(record.retention_secs));
        item.insert("created_at".into(), n(record.created_at));
        if let Some(at) = record.rotated_at {
            item.insert("rotated_at".into(), n(at));
        }
        item.insert("version".into(), n(record.version));
        item
    }

    /// Adds a source to an existing tenant, unless the name is taken.
    pub async fn insert(&self, record: &WebhookSourceRecord) -> Result<AddSourceOutcome, StoreError> {
        const OP: &str = "TransactWriteItems";
        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(tenant_exists_step(&self.table, &record.tenant_id)?)
            .transact_items(self.table.put_new_step(Self::item(record))?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AddSourceOutcome::Added),
            Err(err) => match failed_conditions(&err).as_slice() {
                [true, ..] => Ok(AddSourceOutcome::NoSuchTenant),
                [_, true] => Ok(AddSourceOutcome::NameTaken),
                _ => Err(unavailable(OP, err)),
            },
        }
    }

    /// One consistent GetItem.
    pub async fn get(&self, name: &WebhookSourceName) -> Result<Option<WebhookSourceRecord>, StoreError> {
        self.table.get(source_key(name)).await?.as_ref().map(parse_source).transpose()
    }

    /// Every source, by name.
    pub async fn list(&self) -> Result<Vec<WebhookSourceRecord>, StoreError> {
        self.table.query_partition(SOURCE_PK).await?.iter().map(parse_source).collect()
    }

    /// Replaces the secrets if the source is still at `record.version`;
    /// `Ok(false)` if it changed (or went) since it was read.
    pub async fn replace_secrets(
        &self,
        record: &WebhookSourceRecord,
        secrets: &[SealedSecret],
        now_secs: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(source_key(&record.name)))
            .update_expression("SET secrets = :secrets, rotated_at = :now, version = :next")
            .condition_expression("version = :version")
            .expression_attribute_values(":secrets", secrets_attribute(secrets))
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":next", n(record.version + 1))
            .expression_attribute_values(":version", n(record.version))
            .send()
            .await;
        applied(result)
    }

    /// Deletes a source (its stored events stay until their TTL);
    /// `Ok(false)` if there was none.
    pub async fn delete(&self, name: &WebhookSourceName) -> Result<bool, StoreError> {
        let result = self
            .table
            .client
            .delete_item()
            .table_name(self.table.name())
            .set_key(Some(source_key(name)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(DeleteItemError::is_conditional_check_failed_exception) => {
                Ok(false)
            }
            Err(err) => Err(unavailable("DeleteItem", err)),
        }
    }
}

fn secrets_attribute(secrets: &[SealedSecret]) -> AttributeValue {
    AttributeValue::L(
        secrets
            .iter()
            .map(|secret| {
                AttributeValue::M(
                    [
                        ("id".to_owned(), s(&secret.id)),
                        ("sealed".to_owned(), AttributeValue::B(Blob::new(secret.sealed.clone()))),
                        ("last_four".to_owned(), s(&secret.last_four)),
                        ("created_at".to_owned(), n(secret.created_at)),
                    ]
                    .into(),
                )
            })
            .collect(),
    )
}

fn parse_source(item: &Item) -> Result<WebhookSourceRecord, StoreError> {
    let reader = ItemReader::new(item);
    let corrupt = |reason: String| StoreError::corrupt("WEBHOOK_SOURCE", reason);
    let list = |name: &str| match item.get(name) {
        Some(AttributeValue::L(values)) => Ok(values.as_slice()),
        _ => Err(corrupt(format!("`{name}` is missing or not a list"))),
    };
    let schemes = list("schemes")?
        .iter()
        .map(|value| match value {
            AttributeValue::S(text) => text.parse().map_err(corrupt),
            _ => Err(corrupt("`schemes` holds a non-string".into())),
        })
        .collect::<Result<_, _>>()?;
    let secrets = list("secrets")?
        .iter()
        .map(|value| {
            let AttributeValue::M(map) = value else {
                return Err(corrupt("`secrets` holds a non-map".into()));
            };
            let secret = ItemReader::new(map);
            Ok(SealedSecret {
                id: secret.string("id")?.to_owned(),
                sealed: secret.bytes("sealed")?.to_vec(),
                last_four: secret.string("last_four")?.to_owned(),
                created_at: secret.number("created_at")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(WebhookSourceRecord {
        name: WebhookSourceName::parse(reader.string("name")?).map_err(|e| corrupt(e.0))?,
        tenant_id: TenantId::parse(reader.string("tenant_id")?).map_err(|e| corrupt(e.0))?,
        schemes,
        secrets,
        tolerance_secs: reader.number("tolerance")?,
        retention_secs: reader.number("retention")?,
        created_at: reader.number("created_at")?,
        rotated_at: reader.opt_number("rotated_at")?,
        version: reader.number("version")?,
    })
}

/// Accepted webhook events.
#[derive(Debug, Clone)]
pub struct WebhookEventStore {
    table: Table,
}

/// The key of an accepted event.
pub fn event_key(source: &WebhookSourceName, id: &str) -> Item {
    key(format!("WEBHOOK#{source}#{id}"), "EVENT")
}

impl WebhookEventStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Stores the event unless an unexpired one with its id exists:
    /// `Ok(true)` stored, `Ok(false)` a duplicate (nothing written).
    pub async fn insert(&self, event: &WebhookEvent<'_>) -> Result<bool, StoreError> {
        self.table.put_unless_live(event_item(event), event.received_at).await
    }
}

/// The item an accepted event is stored as (the benchmark writes the same
/// item raw, as the floor of [`WebhookEventStore::insert`]).
pub fn event_item(event: &WebhookEvent<'_>) -> Item {
    let mut item = event_key(event.source, event.id);
    item.insert("event_id".into(), s(event.id));
    item.insert("source".into(), s(event.source.as_str()));
    item.insert("tenant_id".into(), s(event.tenant_id.as_str()));
    item.insert("scheme".into(), s(event.scheme.as_str()));
    item.insert("received_at".into(), n(event.received_at));
    if let Some(at) = event.signed_at {
        item.insert("signed_at".into(), n(at));
    }
    if !event.headers.is_empty() {
        let headers = event.headers.iter().map(|(name, value)| ((*name).to_owned(), s(value))).collect();
        item.insert("headers".into(), AttributeValue::M(headers));
    }
    // Text stays readable in the stream; anything else goes as binary.
    let body = match std::str::from_utf8(event.body) {
        Ok(text) => s(text),
        Err(_) => AttributeValue::B(Blob::new(event.body)),
    };
    item.insert("body".into(), body);
    item.insert("expires_at".into(), n(event.expires_at));
    item
}
