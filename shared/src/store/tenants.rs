//! Tenants: the organisations a deployment serves, each with a plan.

use super::{Item, ItemReader, Table, key, n, s};
use crate::domain::{Plan, TenantId};
use crate::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub plan: Plan,
    pub created_at: u64,
}

pub(crate) fn tenant_key(tenant: &TenantId) -> Item {
    key(format!("TENANT#{tenant}"), "PROFILE")
}

#[derive(Debug, Clone)]
pub struct TenantStore {
    table: Table,
}

impl TenantStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Adds a tenant; `Ok(false)` if one with that id exists already.
    pub async fn insert(&self, tenant: &TenantRecord) -> Result<bool, StoreError> {
        let mut item = tenant_key(&tenant.tenant_id);
        item.insert("tenant_id".into(), s(tenant.tenant_id.as_str()));
        item.insert("plan".into(), s(tenant.plan.as_str()));
        item.insert("created_at".into(), n(tenant.created_at));
        self.table.put_if_absent(item).await
    }

    pub async fn get(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        self.table.get(tenant_key(tenant)).await?.as_ref().map(parse_tenant).transpose()
    }
}

fn parse_tenant(item: &Item) -> Result<TenantRecord, StoreError> {
    let reader = ItemReader::new(item);
    let corrupt = |reason: String| StoreError::corrupt("TENANT", reason);
    Ok(TenantRecord {
        tenant_id: TenantId::parse(reader.string("tenant_id")?).map_err(|e| corrupt(e.0))?,
        plan: reader.string("plan")?.parse().map_err(corrupt)?,
        created_at: reader.number("created_at")?,
    })
}
