//! The DynamoDB adapter: one table, one store per aggregate. Conditions, TTL
//! and the translation of SDK errors stay in this module; services see
//! domain answers and [`StoreError`].
//!
//! # Item shapes
//!
//! One table, partition key `pk` (S), sort key `sk` (S), TTL attribute
//! `expires_at` (N, Unix seconds). DynamoDB deletes expired items lazily, so
//! every read and every condition treats `expires_at <= now` as absent.
//! Numbers are Unix seconds unless the name ends in `_ms`.
//!
//! | aggregate | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | tenant | `TENANT#<tenant_id>` | `PROFILE` | `tenant_id` S, `plan` S (`free`/`pro`/`enterprise`), `created_at` N |
//! | user | `USER#<email>` | `PROFILE` | `user_id` S (`usr_…`), `tenant_id` S, `email` S, `password_hash` S (argon2id PHC), `scope` S (space-separated), `created_at` N |
//! | login throttle | `LOGIN_THROTTLE#account#<hmac(email)>` or `LOGIN_THROTTLE#ip#<hmac(ip)>` | `COUNTER` | `failures` N, `locked_until` N (optional), `expires_at` N |
//! | refresh family | `REFRESH#<family_id>` | `FAMILY` | `sub` S, `tenant_id` S, `scope` S, `env` S, `client_id` S (optional), `generation` N, `created_at` N, `rotated_at_ms` N (optional), `expires_at` N (sliding), `absolute_expires_at` N, `revoked_at` N (optional), `revoke_reason` S (optional) |
//! | API key | `APIKEY#<key_id>` | `KEY` | `key_id` S, `tenant_id` S, `name` S, `scope` S, `env` S, `secret_hash` S (HMAC of the secret), `last_four` S, `valid_until` N (optional: the key's own expiry), `allowed_ips` L of S (optional, CIDR), `rate_limit` N or S `unlimited` (optional: the administrator's override of the plan limit), `created_at` N, `revoked_at` N (optional), `expires_at` N (optional: purge time, 30 d after revocation or expiry) |
//! | API key listing | `TENANT#<tenant_id>` | `APIKEY#<key_id>` | the same attributes, plus `last_used_at` N (optional) |
//! | app | `APP#<app_id>` | `APP` | `app_id` S (`app_…`), `tenant_id` S, `name` S, `secret_hash` S (HMAC of the secret), `created_at` N, `revoked_at` N (optional) |
//! | used assertion | `ASSERTION#<hmac(key_id, jti or token)>` | `USED` | `expires_at` N (the assertion's `exp` plus leeway) |
//! | webhook source | `WEBHOOK_SOURCE` | `SOURCE#<name>` | `name` S, `tenant_id` S, `schemes` L of S (`standard`/`sha256`), `secrets` L of M {`id` S (`whs_…`), `sealed` B (AES-256-GCM, AAD = `webhook-source/<name>/<id>`), `last_four` S, `created_at` N} newest first, `tolerance` N (s), `retention` N (s), `created_at` N, `rotated_at` N (optional), `version` N |
//! | webhook event | `WEBHOOK#<source>#<id>` (`id` = `webhook-id`, or `sha256:<hex>` of the body) | `EVENT` | `event_id` S, `source` S, `tenant_id` S, `scheme` S, `received_at` N, `signed_at` N (optional), `headers` M of S (optional), `body` S (UTF-8) or B, `expires_at` N (`received_at` + the source's retention) |
//! | signing key | `SIGNING_KEY` | `KID#<kid>` | `kid` S, `alg` S, `public_jwk` S (JSON), `private_key` B (sealed, AES-256-GCM, AAD = kid), `created_at` N, `active_from` N, `retired_at` N (optional: stopped signing), `expires_at` N (set when a successor is added or the key is retired: the last moment a token it signed can be valid) |
//! | rate-limit counter | `RATELIMIT#tenant#<tenant_id>` or `RATELIMIT#key#<key_id>` | `WINDOW#<window start>` | `count` N, `expires_at` N (the window's end) |
//!
//! Items written by a single conditional PutItem (tenants, signing keys,
//! used assertions, webhook events, refresh families started without a
//! transaction) and refresh families once rotated also hold `write_id` S, a
//! random id of the last such write: a write the SDK sent again after losing
//! the answer to an applied attempt recognises itself by it (see
//! [`WRITE_ID`]). Transactions need no such id: the SDK gives each one a
//! `ClientRequestToken`, which makes DynamoDB apply a repeat only once.
//!
//! Throttle keys are keyed hashes so that neither an email someone merely
//! tried (sometimes a mistyped password) nor a client IP is stored in clear.
//! Refresh tokens are never stored: see [`crate::refresh_token`]. API-key
//! secrets are never stored either: see [`crate::credentials`].

pub mod api_keys;
pub mod apps;
pub mod assertions;
pub mod login_throttle;
pub mod metrics;
pub mod rate_limits;
pub mod refresh_families;
pub mod schema;
pub mod signing_keys;
pub mod tenants;
pub mod users;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::config::StoreConfig;
use crate::error::StoreError;

pub use api_keys::{AddApiKeyOutcome, ApiKeyPage, ApiKeyRecord, ApiKeyStore, RevokeApiKeyOutcome};
pub use apps::{AddAppOutcome, AppRecord, AppStore};
pub use assertions::AssertionStore;
pub use login_throttle::{LoginThrottleStore, ThrottleKey, ThrottleState};
pub use rate_limits::{CountOutcome, RateLimitStore, RateSubject};
pub use refresh_families::{RefreshFamily, RefreshFamilyStore, RotateOutcome};
pub use signing_keys::{SigningKeyRecord, SigningKeyStore};
pub use tenants::{TenantRecord, TenantStore};
pub use users::{UserRecord, UserStore};
pub use webhooks::{
    AddSourceOutcome, SealedSecret, WebhookEvent, WebhookEventStore, WebhookSourceRecord, WebhookSourceStore,
};

pub type Item = HashMap<String, AttributeValue>;

/// Loads the AWS configuration (region, credentials, and
/// `AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local) and builds the client with
/// our timeouts and retries.
pub async fn connect(config: &StoreConfig) -> Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    Client::from_conf(client_config(&sdk, config).build())
}

/// The client configuration, for callers that add to it (tests and the
/// benchmark add a call-counting interceptor).
pub fn client_config(sdk: &SdkConfig, config: &StoreConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(config.operation_timeout)
                .operation_attempt_timeout(config.attempt_timeout)
                .connect_timeout(config.connect_timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(config.max_attempts))
}

/// The one table, shared by every store.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) client: Client,
    pub(crate) name: Arc<str>,
}

impl Table {
    pub fn new(client: Client, name: impl Into<Arc<str>>) -> Self {
        Self { client, name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SDK client (tests use it to set up states no API reaches).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A strongly consistent GetItem.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(self.name())
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("GetItem", e))?;
        Ok(output.item)
    }

    /// Writes `item` unless its key exists; `Ok(false)` if it does.
    pub(crate) async fn put_if_absent(&self, item: Item) -> Result<bool, StoreError> {
        self.put_unless(item, "attribute_not_exists(pk)", None).await
    }

    /// Writes `item` unless an unexpired item with its key exists (one left
    /// past its TTL that DynamoDB has not deleted yet counts as absent);
    /// `Ok(false)` if one does, and nothing is written.
    pub(crate) async fn put_unless_live(&self, item: Item, now_secs: u64) -> Result<bool, StoreError> {
        self.put_unless(item, "attribute_not_exists(pk) OR expires_at <= :now", Some(now_secs)).await
    }

    /// A PutItem under `condition` (which may use `:now`); `Ok(false)` when
    /// the condition fails because of another write. The item carries a
    /// fresh [`WRITE_ID`], so when the SDK re-sends the put after losing the
    /// answer to an attempt that was applied, the condition failing on our
    /// own item still counts as written.
    async fn put_unless(&self, mut item: Item, condition: &str, now_secs: Option<u64>) -> Result<bool, StoreError> {
        let write_id = crate::crypto::random_id();
        item.insert(WRITE_ID.to_owned(), s(&write_id));
        let result = self
            .client
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(now_secs.map(|now| HashMap::from([(":now".to_owned(), n(now))])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(failed.item().is_some_and(|old| written_by(old, &write_id)))
                }
                _ => Err(unavailable("PutItem", err)),
            },
        }
    }

    /// Every item of one partition: consistent Query pages until the last.
    pub(crate) async fn query_partition(&self, pk: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.name())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("Query", e))?;
            let last = output.last_evaluated_key.filter(|last| !last.is_empty());
            items.extend(output.items.unwrap_or_default());
            match last {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(items)
    }

    /// A transaction step that puts `item` unless its key exists.
    pub(crate) fn put_new_step(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| build_failed("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// The attribute a conditional write stores a random id of its own in. The
/// SDK sends a write again when it lost the answer to an attempt (attempt
/// timeout, dropped connection); if that attempt was applied, the repeat
/// fails its condition on the very item it wrote, and only this id tells that
/// from another request's write (DynamoDB hands the item back with the
/// failure, so telling costs no read).
pub const WRITE_ID: &str = "write_id";

/// Whether `item` is the one written with `write_id`.
pub(crate) fn written_by(item: &Item, write_id: &str) -> bool {
    matches!(item.get(WRITE_ID), Some(AttributeValue::S(id)) if id == write_id)
}

/// Which steps of a cancelled transaction failed their condition (empty for
/// any other failure).
pub(crate) fn failed_conditions<R>(err: &SdkError<TransactWriteItemsError, R>) -> Vec<bool> {
    match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code() == Some("ConditionalCheckFailed"))
            .collect(),
        _ => Vec::new(),
    }
}

/// A conditional UpdateItem's result: `Ok(false)` when the condition failed.
pub(crate) fn applied<T, R>(result: Result<T, SdkError<UpdateItemError, R>>) -> Result<bool, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if matches!(err.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
            Ok(false)
        }
        Err(err) => Err(unavailable("UpdateItem", err)),
    }
}

/// A conditional UpdateItem that asks for values back (`ReturnValues` on
/// success, `ReturnValuesOnConditionCheckFailure = ALL_OLD` on failure):
/// `Ok(Ok(attributes))` when it applied, `Ok(Err(the item as it stood))`
/// when the condition failed (`None`: there was no item).
pub(crate) fn update_returning<R>(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
    aggregate: &'static str,
) -> Result<Result<Item, Option<Item>>, StoreError>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(output) => {
            output.attributes.map(Ok).ok_or_else(|| StoreError::corrupt(aggregate, "UpdateItem returned no attributes"))
        }
        Err(err) => match err.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(Err(failed.item().cloned())),
            _ => Err(unavailable("UpdateItem", err)),
        },
    }
}

/// Every store over one table.
#[derive(Debug, Clone)]
pub struct Stores {
    pub tenants: TenantStore,
    pub users: UserStore,
    pub login_throttle: LoginThrottleStore,
    pub refresh_families: RefreshFamilyStore,
    pub signing_keys: SigningKeyStore,
    pub api_keys: ApiKeyStore,
    pub apps: AppStore,
    pub assertions: AssertionStore,
    pub webhook_sources: WebhookSourceStore,
    pub webhook_events: WebhookEventStore,
    pub rate_limits: RateLimitStore,
}

impl Stores {
    pub fn new(table: &Table) -> Self {
        Self {
            tenants: TenantStore::new(table.clone()),
            users: UserStore::new(table.clone()),
            login_throttle: LoginThrottleStore::new(table.clone()),
            refresh_families: RefreshFamilyStore::new(table.clone()),
            signing_keys: SigningKeyStore::new(table.clone()),
            api_keys: ApiKeyStore::new(table.clone()),
            apps: AppStore::new(table.clone()),
            assertions: AssertionStore::new(table.clone()),
            webhook_sources: WebhookSourceStore::new(table.clone()),
            webhook_events: WebhookEventStore::new(table.clone()),
            rate_limits: RateLimitStore::new(table.clone()),
        }
    }
}

/// Any SDK failure we do not answer as a domain outcome. Throttling,
/// timeouts and a dead endpoint mean "try again" (503); a table that does not
/// exist is a deployment mistake that retrying will not fix (500, logged).
pub(crate) fn unavailable<E, R>(operation: &'static str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if err.code() == Some("ResourceNotFoundException") {
        return StoreError::Misconfigured { operation, source: Box::new(err) };
    }
    StoreError::Unavailable { operation, source: Box::new(err) }
}

/// A request the SDK refused to build (a required field missing): a bug, but
/// one that must not panic a request.
pub(crate) fn build_failed(operation: &'static str, err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable { operation, source: Box::new(err) }
}

pub(crate) fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk)), ("sk".to_owned(), AttributeValue::S(sk.to_owned()))])
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Typed reads from an item, failing as [`StoreError::Corrupt`].
pub(crate) struct ItemReader<'a> {
    item: &'a Item,
}

impl<'a> ItemReader<'a> {
    pub(crate) fn new(item: &'a Item) -> Self {
        Self { item }
    }

    fn describe(&self) -> String {
        match (self.item.get("pk"), self.item.get("sk")) {
            (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                // Keys of user items hold an email: show only the prefix.
                let kind = pk.split('#').next().unwrap_or_default();
                format!("{kind}#…/{sk}")
            }
            _ => "(no key)".to_owned(),
        }
    }

    pub(crate) fn string(&self, name: &str) -> Result<&'a str, StoreError> {
        self.opt_string(name)?.ok_or_else(|| StoreError::corrupt(self.describe(), format!("missing `{name}`")))
    }

    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<&'a str>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(_) => Err(StoreError::corrupt(self.describe(), format!("`{name}` is not a string"))),
        }
    }

    pub(crate) fn number(&self, name: &str) -> Result<u64, StoreError> {
        self.opt_number(name)?.ok_or_else(|| StoreError::corrupt(self.describe(), format!("missing `{name}`")))
    }

    pub(crate) fn opt_number(&self, name: &str) -> Result<Option<u64>, StoreError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value
                .parse()
                .map(Some)
                .map_err(|_| StoreError::corrupt(self.describe(), format!("`{name}` is not an unsigned integer"))),
            Some(_) => Err(StoreError::corrupt(self.describe(), format!("`{name}` is not a number"))),
        }
    }

    pub(crate) fn bytes(&self, name: &str) -> Result<&'a [u8], StoreError> {
        match self.item.get(name) {
            Some(AttributeValue::B(blob)) => Ok(blob.as_ref()),
            _ => Err(StoreError::corrupt(self.describe(), format!("`{name}` is missing or not binary"))),
        }
    }

    /// Whether the item's TTL has passed (DynamoDB may not have deleted it yet).
    pub(crate) fn is_expired(&self, now_secs: u64) -> Result<bool, StoreError> {
        Ok(self.opt_number("expires_at")?.is_some_and(|at| at <= now_secs))
    }
}
