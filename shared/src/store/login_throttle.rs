//! Login failure counters, per account and per client IP, and the one read a
//! login makes.
//!
//! Counters are keyed by a keyed hash of the email tried (whether or not the
//! account exists, so unknown emails lock out exactly like known ones) and of
//! the client IP. A counter expires `failure_window` after its last failure.

use std::net::IpAddr;
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, KeysAndAttributes, ReturnValue, TransactWriteItem};

use super::AppRecord;
use super::apps::{app_key, parse_app};
use super::users::{parse_user, user_key};
use super::{Item, ItemReader, Table, UserRecord, build_failed, key, n, unavailable};
use crate::config::LoginThrottlePolicy;
use crate::crypto::MacKey;
use crate::domain::{AppId, Email};
use crate::error::StoreError;

const SK: &str = "COUNTER";

/// Which counter: one account's or one IP's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pk: String,
}

impl ThrottleKey {
    pub fn account(mac: &MacKey, email: &Email) -> Self {
        Self { pk: format!("LOGIN_THROTTLE#account#{}", mac.fingerprint(email.as_str().as_bytes())) }
    }

    pub fn ip(mac: &MacKey, ip: IpAddr) -> Self {
        Self { pk: format!("LOGIN_THROTTLE#ip#{}", mac.fingerprint(ip.to_string().as_bytes())) }
    }

    fn item_key(&self) -> Item {
        key(self.pk.clone(), SK)
    }
}

/// A counter as read: absent and expired counters read as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: u32,
    pub locked_until: Option<u64>,
}

impl ThrottleState {
    /// Time left on a lockout, if one is running.
    pub fn locked_for(&self, now_secs: u64) -> Option<Duration> {
        self.locked_until.filter(|until| *until > now_secs).map(|until| Duration::from_secs(until - now_secs))
    }
}

/// Everything a login needs, read in one round trip.
#[derive(Debug, Clone, Default)]
pub struct LoginAttemptState {
    pub user: Option<UserRecord>,
    /// The app named by `X-App-Id`, when one was and it exists.
    pub app: Option<AppRecord>,
    pub account: ThrottleState,
    pub ip: ThrottleState,
}

#[derive(Debug, Clone)]
pub struct LoginThrottleStore {
    table: Table,
}

/// Extra BatchGetItem rounds for keys DynamoDB left unprocessed (it does so
/// only under throttling).
const BATCH_RETRIES: usize = 2;

impl LoginThrottleStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Reads the user, both counters and the app with one consistent
    /// BatchGetItem.
    pub async fn load_attempt(
        &self,
        email: &Email,
        account: &ThrottleKey,
        ip: Option<&ThrottleKey>,
        app: Option<&AppId>,
        now_secs: u64,
    ) -> Result<LoginAttemptState, StoreError> {
        let mut keys = vec![user_key(email), account.item_key()];
        keys.extend(ip.map(ThrottleKey::item_key));
        keys.extend(app.map(app_key));
        let mut items = Vec::new();
        for _ in 0..=BATCH_RETRIES {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut keys)))
                .consistent_read(true)
                .build()
                .map_err(|e| build_failed("BatchGetItem", e))?;
            let output = self
                .table
                .client
                .batch_get_item()
                .request_items(self.table.name(), request)
                .send()
                .await
                .map_err(|e| unavailable("BatchGetItem", e))?;
            if let Some(found) = output.responses().and_then(|r| r.get(self.table.name())) {
                items.extend(found.iter().cloned());
            }
            keys = output
                .unprocessed_keys()
                .and_then(|u| u.get(self.table.name()))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if keys.is_empty() {
                break;
            }
        }
        if !keys.is_empty() {
            return Err(StoreError::Unavailable {
                operation: "BatchGetItem",
                source: "DynamoDB left keys unprocessed after retries".into(),
            });
        }

        let mut state = LoginAttemptState::default();
        for item in &items {
            let Some(AttributeValue::S(pk)) = item.get("pk") else {
                continue;
            };
            if pk.starts_with("USER#") {
                state.user = Some(parse_user(item)?);
            } else if pk.starts_with("APP#") {
                state.app = Some(parse_app(item)?);
            } else if *pk == account.pk {
                state.account = parse_counter(item, now_secs)?;
            } else if ip.is_some_and(|ip| *pk == ip.pk) {
                state.ip = parse_counter(item, now_secs)?;
            }
        }
        Ok(state)
    }

    /// Counts one failure and, at or over `threshold`, starts a lockout of
    /// the length the policy gives for the new count. Returns the new state.
    pub async fn record_failure(
        &self,
        counter: &ThrottleKey,
        threshold: u32,
        policy: &LoginThrottlePolicy,
        now_secs: u64,
    ) -> Result<ThrottleState, StoreError> {
        let window_end = now_secs + policy.failure_window.as_secs();
        let increment = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(counter.item_key()))
            .update_expression("ADD failures :one SET expires_at = :window_end")
            .condition_expression("attribute_not_exists(expires_at) OR expires_at > :now")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":window_end", n(window_end))
            .expression_attribute_values(":now", n(now_secs))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let mut state = match increment {
            Ok(output) => parse_counter(output.attributes().unwrap_or(&Item::new()), now_secs)?,
            Err(err) if matches!(err.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
                // A counter whose window ended but which DynamoDB has not
                // deleted yet: start over at one.
                let mut item = counter.item_key();
                item.insert("failures".into(), n(1));
                item.insert("expires_at".into(), n(window_end));
                self.table
                    .client
                    .put_item()
                    .table_name(self.table.name())
                    .set_item(Some(item))
                    .send()
                    .await
                    .map_err(|e| unavailable("PutItem", e))?;
                ThrottleState { failures: 1, locked_until: None }
            }
            Err(err) => return Err(unavailable("UpdateItem", err)),
        };

        if let Some(lockout) = policy.lockout_for(state.failures, threshold) {
            let until = now_secs + lockout.as_secs();
            let locked = self
                .table
                .client
                .update_item()
                .table_name(self.table.name())
                .set_key(Some(counter.item_key()))
                .update_expression("SET locked_until = :until, expires_at = :expires")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(locked_until) OR locked_until < :until)",
                )
                .expression_attribute_values(":until", n(until))
                .expression_attribute_values(":expires", n(until + policy.failure_window.as_secs()))
                .send()
                .await;
            match locked {
                Ok(_) => state.locked_until = Some(until),
                // A concurrent failure already set a later lockout.
                Err(err)
                    if matches!(err.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {}
                Err(err) => return Err(unavailable("UpdateItem", err)),
            }
        }
        Ok(state)
    }

    /// Deleting a counter, as part of the transaction that completes a
    /// successful login.
    pub(crate) fn clear_op(&self, counter: &ThrottleKey) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table.name())
            .set_key(Some(counter.item_key()))
            .build()
            .map_err(|e| build_failed("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }
}

fn parse_counter(item: &Item, now_secs: u64) -> Result<ThrottleState, StoreError> {
    let reader = ItemReader::new(item);
    if reader.is_expired(now_secs)? {
        return Ok(ThrottleState::default());
    }
    Ok(ThrottleState {
        failures: u32::try_from(reader.opt_number("failures")?.unwrap_or(0)).unwrap_or(u32::MAX),
        locked_until: reader.opt_number("locked_until")?,
    })
}
