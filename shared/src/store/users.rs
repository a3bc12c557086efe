//! Users: one item per email (emails are unique within a deployment).

use super::tenants::tenant_exists_step;
use super::{Item, ItemReader, Table, failed_conditions, key, n, s, unavailable};
use crate::domain::{Email, Scopes, TenantId, UserId};
use crate::error::StoreError;
use crate::password::PasswordHashString;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub email: Email,
    pub password_hash: PasswordHashString,
    pub scopes: Scopes,
    pub created_at: u64,
}

/// Why a user could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddUserOutcome {
    Added,
    EmailTaken,
    NoSuchTenant,
}

pub(crate) fn user_key(email: &Email) -> Item {
    key(format!("USER#{email}"), "PROFILE")
}

#[derive(Debug, Clone)]
pub struct UserStore {
    table: Table,
}

impl UserStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Adds a user to an existing tenant, atomically refusing a taken email
    /// or a missing tenant (one transaction).
    pub async fn insert(&self, user: &UserRecord) -> Result<AddUserOutcome, StoreError> {
        let mut item = user_key(&user.email);
        item.insert("user_id".into(), s(user.user_id.as_str()));
        item.insert("tenant_id".into(), s(user.tenant_id.as_str()));
        item.insert("email".into(), s(user.email.as_str()));
        item.insert("password_hash".into(), s(user.password_hash.as_str()));
        item.insert("scope".into(), s(user.scopes.to_string()));
        item.insert("created_at".into(), n(user.created_at));

        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(tenant_exists_step(&self.table, &user.tenant_id)?)
            .transact_items(self.table.put_new_step(item)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AddUserOutcome::Added),
            Err(err) => match failed_conditions(&err).as_slice() {
                [true, ..] => Ok(AddUserOutcome::NoSuchTenant),
                [_, true] => Ok(AddUserOutcome::EmailTaken),
                _ => Err(unavailable("TransactWriteItems", err)),
            },
        }
    }

    pub async fn get(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        self.table.get(user_key(email)).await?.as_ref().map(parse_user).transpose()
    }
}

pub(crate) fn parse_user(item: &Item) -> Result<UserRecord, StoreError> {
    let reader = ItemReader::new(item);
    let corrupt = |reason: String| StoreError::corrupt("USER", reason);
    Ok(UserRecord {
        user_id: UserId::parse(reader.string("user_id")?).map_err(|e| corrupt(e.0))?,
        tenant_id: TenantId::parse(reader.string("tenant_id")?).map_err(|e| corrupt(e.0))?,
        email: Email::parse(reader.string("email")?).map_err(|e| corrupt(e.0))?,
        password_hash: PasswordHashString::from_stored(reader.string("password_hash")?.to_owned()),
        scopes: Scopes::parse(reader.opt_string("scope")?.unwrap_or_default()).map_err(|e| corrupt(e.0))?,
        created_at: reader.number("created_at")?,
    })
}
