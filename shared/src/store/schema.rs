//! Creating the table: `pk`/`sk` strings, on-demand billing, TTL on
//! `expires_at`. Idempotent, so `latchkey table create` can run on every
//! deploy and every dev start.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{Table, build_failed, unavailable};
use crate::error::StoreError;

pub const TTL_ATTRIBUTE: &str = "expires_at";

/// What `create_table` found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableCreation {
    Created,
    AlreadyExisted,
}

/// Creates the table if it does not exist, waits until it is active, and
/// makes sure TTL is on.
pub async fn create_table(table: &Table) -> Result<TableCreation, StoreError> {
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| build_failed("CreateTable", e))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| build_failed("CreateTable", e))
    };
    let created = table
        .client
        .create_table()
        .table_name(table.name())
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    let outcome = match created {
        Ok(_) => TableCreation::Created,
        Err(err)
            if err.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
            ) =>
        {
            TableCreation::AlreadyExisted
        }
        Err(err) => return Err(unavailable("CreateTable", err)),
    };
    wait_until_active(table).await?;
    enable_ttl(table).await?;
    Ok(outcome)
}

async fn wait_until_active(table: &Table) -> Result<(), StoreError> {
    for _ in 0..120 {
        let described = table
            .client
            .describe_table()
            .table_name(table.name())
            .send()
            .await
            .map_err(|e| unavailable("DescribeTable", e))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(StoreError::Unavailable {
        operation: "DescribeTable",
        source: "table did not become ACTIVE within 60 s".into(),
    })
}

async fn enable_ttl(table: &Table) -> Result<(), StoreError> {
    let current = table
        .client
        .describe_time_to_live()
        .table_name(table.name())
        .send()
        .await
        .map_err(|e| unavailable("DescribeTimeToLive", e))?;
    let description = current.time_to_live_description();
    let status = description.and_then(|d| d.time_to_live_status());
    let attribute = description.and_then(|d| d.attribute_name());
    if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling))
        && attribute == Some(TTL_ATTRIBUTE)
    {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL_ATTRIBUTE)
        .build()
        .map_err(|e| build_failed("UpdateTimeToLive", e))?;
    table
        .client
        .update_time_to_live()
        .table_name(table.name())
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| unavailable("UpdateTimeToLive", e))?;
    Ok(())
}

/// Deletes the table (tests clean up after themselves with this).
pub async fn delete_table(table: &Table) -> Result<(), StoreError> {
    match table.client.delete_table().table_name(table.name()).send().await {
        Ok(_) => Ok(()),
        Err(err)
            if err.as_service_error().is_some_and(
                aws_sdk_dynamodb::operation::delete_table::DeleteTableError::is_resource_not_found_exception,
            ) =>
        {
            Ok(())
        }
        Err(err) => Err(unavailable("DeleteTable", err)),
    }
}
