//! Apps: first-party clients that log users in with `X-App-Id` and
//! `X-App-Secret`. One item per app; only the secret's keyed hash is kept.
//! Login reads the app in the same BatchGetItem as the user.

use super::tenants::tenant_exists_step;
use super::{Item, ItemReader, Table, failed_conditions, key, n, s, unavailable};
use crate::domain::{AppId, Label, TenantId};
use crate::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub app_id: AppId,
    pub tenant_id: TenantId,
    pub name: Label,
    /// Keyed hash of the secret (see [`crate::credentials::AppSecrets`]).
    pub secret_hash: String,
    pub created_at: u64,
    pub revoked_at: Option<u64>,
}

/// Why an app could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddAppOutcome {
    Added,
    NoSuchTenant,
}

pub(crate) fn app_key(app: &AppId) -> Item {
    key(format!("APP#{app}"), "APP")
}

#[derive(Debug, Clone)]
pub struct AppStore {
    table: Table,
}

impl AppStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Adds an app to an existing tenant (one transaction with the check).
    pub async fn insert(&self, app: &AppRecord) -> Result<AddAppOutcome, StoreError> {
        const OP: &str = "TransactWriteItems";
        let mut item = app_key(&app.app_id);
        item.insert("app_id".into(), s(app.app_id.as_str()));
        item.insert("tenant_id".into(), s(app.tenant_id.as_str()));
        item.insert("name".into(), s(app.name.as_str()));
        item.insert("secret_hash".into(), s(&app.secret_hash));
        item.insert("created_at".into(), n(app.created_at));
        let result = self
            .table
            .client
            .transact_write_items()
            .transact_items(tenant_exists_step(&self.table, &app.tenant_id)?)
            .transact_items(self.table.put_new_step(item)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(AddAppOutcome::Added),
            Err(err) => match failed_conditions(&err).as_slice() {
                [true, ..] => Ok(AddAppOutcome::NoSuchTenant),
                // 128 random bits collided: not in this universe, but not a 500 either.
                [_, true] => Err(StoreError::Unavailable { operation: OP, source: "app id collision".into() }),
                _ => Err(unavailable(OP, err)),
            },
        }
    }

    pub async fn get(&self, app: &AppId) -> Result<Option<AppRecord>, StoreError> {
        self.table.get(app_key(app)).await?.as_ref().map(parse_app).transpose()
    }
}

pub(crate) fn parse_app(item: &Item) -> Result<AppRecord, StoreError> {
    let reader = ItemReader::new(item);
    let corrupt = |reason: String| StoreError::corrupt("APP", reason);
    Ok(AppRecord {
        app_id: AppId::parse(reader.string("app_id")?).map_err(|e| corrupt(e.0))?,
        tenant_id: TenantId::parse(reader.string("tenant_id")?).map_err(|e| corrupt(e.0))?,
        name: Label::parse(reader.string("name")?).map_err(|e| corrupt(e.0))?,
        secret_hash: reader.string("secret_hash")?.to_owned(),
        created_at: reader.number("created_at")?,
        revoked_at: reader.opt_number("revoked_at")?,
    })
}
