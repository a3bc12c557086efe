//! Refresh families: one item per login session, holding the generation of
//! the only refresh token that may be used next.
//!
//! Rotation is one conditional UpdateItem: it succeeds only for the current
//! generation of a live, unrevoked family, and a failed condition hands back
//! the item as it is (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), so the
//! service can tell reuse from a grace-window retry without a second read.

use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

use super::{Item, ItemReader, Table, WRITE_ID, applied, key, n, s, unavailable, update_returning, written_by};
use crate::domain::{Principal, Stage};
use crate::error::StoreError;
use crate::refresh_token::FamilyId;

const SK: &str = "FAMILY";

fn family_key(family: FamilyId) -> Item {
    key(format!("REFRESH#{}", family.to_key_string()), SK)
}

/// A refresh family as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    pub family: FamilyId,
    /// Who the family's access tokens are for; fixed at login.
    pub principal: Principal,
    pub env: Stage,
    pub generation: u64,
    pub created_at: u64,
    pub rotated_at_ms: Option<u64>,
    /// Sliding expiry, pushed forward by each rotation; the TTL attribute.
    pub expires_at: u64,
    pub absolute_expires_at: u64,
    pub revoked_at: Option<u64>,
}

impl RefreshFamily {
    /// A new family (a login or an exchange) at generation 0: sliding
    /// lifetime `ttl`, hard cap `absolute_ttl`, both in seconds from `now`.
    pub fn start(principal: Principal, env: Stage, now: u64, ttl: u64, absolute_ttl: u64) -> Self {
        Self {
            family: FamilyId::generate(),
            principal,
            env,
            generation: 0,
            created_at: now,
            rotated_at_ms: None,
            expires_at: now + ttl,
            absolute_expires_at: now + absolute_ttl,
            revoked_at: None,
        }
    }

    /// When the current refresh token stops working.
    pub fn valid_until(&self) -> u64 {
        self.expires_at.min(self.absolute_expires_at)
    }
}

/// What a rotation attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented generation was current: the family now stands at the next.
    Rotated(RefreshFamily),
    /// The condition failed; the family as it is now, if it exists at all.
    Rejected(Option<RefreshFamily>),
}

#[derive(Debug, Clone)]
pub struct RefreshFamilyStore {
    table: Table,
}

impl RefreshFamilyStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    fn family_item(family: &RefreshFamily) -> Item {
        let mut item = family_key(family.family);
        item.insert("sub".into(), s(&family.principal.sub));
        item.insert("tenant_id".into(), s(&family.principal.tenant_id));
        item.insert("scope".into(), s(&family.principal.scope));
        item.insert("env".into(), s(family.env.as_str()));
        if let Some(client_id) = &family.principal.client_id {
            item.insert("client_id".into(), s(client_id));
        }
        item.insert("generation".into(), n(family.generation));
        item.insert("created_at".into(), n(family.created_at));
        item.insert("expires_at".into(), n(family.expires_at));
        item.insert("absolute_expires_at".into(), n(family.absolute_expires_at));
        item
    }

    /// Stores a new family. With `also`, the write and that operation commit
    /// together in one transaction (still one round trip).
    pub async fn insert(&self, family: &RefreshFamily, also: Option<TransactWriteItem>) -> Result<(), StoreError> {
        let item = Self::family_item(family);
        let Some(also) = also else {
            return if self.table.put_if_absent(item).await? {
                Ok(())
            } else {
                // 128 random bits collided: not in this universe, but not a 500 either.
                Err(StoreError::Unavailable { operation: "PutItem", source: "refresh family id collision".into() })
            };
        };
        self.table
            .client
            .transact_write_items()
            .transact_items(self.table.put_new_step(item)?)
            .transact_items(also)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| unavailable("TransactWriteItems", e))
    }

    /// Moves the family from `presented` to `presented + 1` if `presented` is
    /// current and the family is live. One UpdateItem either way. A rotation
    /// the SDK re-sent after losing the answer to its applied first attempt
    /// finds its own [`WRITE_ID`] and is still a rotation, not reuse.
    pub async fn rotate(
        &self,
        family: FamilyId,
        presented: u64,
        now_secs: u64,
        now_millis: u64,
        new_expires_at: u64,
    ) -> Result<RotateOutcome, StoreError> {
        let write_id = crate::crypto::random_id();
        let result = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(family_key(family)))
            .update_expression(
                "SET #generation = :next, rotated_at_ms = :now_ms, expires_at = :expires, #write_id = :write_id",
            )
            .condition_expression(
                "#generation = :presented AND attribute_not_exists(revoked_at) \
                 AND expires_at > :now AND absolute_expires_at > :now",
            )
            .expression_attribute_names("#generation", "generation")
            .expression_attribute_names("#write_id", WRITE_ID)
            .expression_attribute_values(":write_id", s(&write_id))
            .expression_attribute_values(":presented", n(presented))
            .expression_attribute_values(":next", n(presented.saturating_add(1)))
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":now_ms", n(now_millis))
            .expression_attribute_values(":expires", n(new_expires_at))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        Ok(match update_returning(result, "REFRESH")? {
            Ok(item) => RotateOutcome::Rotated(parse_family(family, &item)?),
            // Our own rotation, applied by an earlier attempt; unless the
            // family has been revoked since, which the caller must hear.
            Err(Some(item)) if written_by(&item, &write_id) && !item.contains_key("revoked_at") => {
                RotateOutcome::Rotated(parse_family(family, &item)?)
            }
            Err(old) => RotateOutcome::Rejected(old.as_ref().map(|item| parse_family(family, item)).transpose()?),
        })
    }

    /// Revokes the family; `Ok(false)` if it does not exist or was already
    /// revoked.
    pub async fn revoke(&self, family: FamilyId, reason: &str, now_secs: u64) -> Result<bool, StoreError> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(family_key(family)))
            .update_expression("SET revoked_at = :now, revoke_reason = :reason")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":now", n(now_secs))
            .expression_attribute_values(":reason", s(reason))
            .send()
            .await;
        applied(result)
    }

    /// Reads a family (admin and tests; the request paths never need to).
    pub async fn get(&self, family: FamilyId) -> Result<Option<RefreshFamily>, StoreError> {
        self.table.get(family_key(family)).await?.map(|item| parse_family(family, &item)).transpose()
    }
}

fn parse_family(family: FamilyId, item: &Item) -> Result<RefreshFamily, StoreError> {
    let reader = ItemReader::new(item);
    Ok(RefreshFamily {
        family,
        principal: Principal {
            sub: reader.string("sub")?.to_owned(),
            tenant_id: reader.string("tenant_id")?.to_owned(),
            scope: reader.opt_string("scope")?.unwrap_or_default().to_owned(),
            client_id: reader.opt_string("client_id")?.map(str::to_owned),
        },
        env: reader.string("env")?.parse().map_err(|e: String| StoreError::corrupt("REFRESH", e))?,
        generation: reader.number("generation")?,
        created_at: reader.number("created_at")?,
        rotated_at_ms: reader.opt_number("rotated_at_ms")?,
        expires_at: reader.number("expires_at")?,
        absolute_expires_at: reader.number("absolute_expires_at")?,
        revoked_at: reader.opt_number("revoked_at")?,
    })
}
