//! Tenants: the organisations a deployment serves, each with a plan.

use aws_sdk_dynamodb::types::{ConditionCheck, TransactWriteItem};

use super::{Item, ItemReader, Table, applied, build_failed, key, n, s};
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

/// A transaction step that fails unless `tenant` exists.
pub(crate) fn tenant_exists_step(table: &Table, tenant: &TenantId) -> Result<TransactWriteItem, StoreError> {
    let check = ConditionCheck::builder()
        .table_name(table.name())
        .set_key(Some(tenant_key(tenant)))
        .condition_expression("attribute_exists(pk)")
        .build()
        .map_err(|e| build_failed("TransactWriteItems", e))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
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

    /// Changes the tenant's plan; `Ok(false)` if there is no such tenant.
    pub async fn set_plan(&self, tenant: &TenantId, plan: Plan) -> Result<bool, StoreError> {
        let result = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(tenant_key(tenant)))
            .update_expression("SET #plan = :plan")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(":plan", s(plan.as_str()))
            .send()
            .await;
        applied(result)
    }

    /// The tenant, or `None` if it does not exist (one consistent GetItem).
    pub async fn get(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let Some(item) = self.table.get(tenant_key(tenant)).await? else {
            return Ok(None);
        };
        let reader = ItemReader::new(&item);
        let corrupt = |reason: String| StoreError::corrupt("TENANT", reason);
        Ok(Some(TenantRecord {
            tenant_id: TenantId::parse(reader.string("tenant_id")?).map_err(|e| corrupt(e.0))?,
            plan: reader.string("plan")?.parse().map_err(corrupt)?,
            created_at: reader.number("created_at")?,
        }))
    }
}
