//! Tenants: the organisations a deployment serves, each with a plan.

use super::{Item, Table, key, n, s};
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
}
