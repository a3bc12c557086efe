//! Rate-limit counters: one item per counted subject and fixed hourly
//! window. Counting is one conditional UpdateItem that adds 1 unless the
//! count has reached the limit, so concurrent requests at the edge can never
//! let more than the limit through; a refused request writes nothing.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValue;

use super::{Item, ItemReader, Table, key, n, update_returning};
use crate::domain::{ApiKeyId, TenantId};
use crate::error::StoreError;

/// Whose requests a counter counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateSubject {
    /// Every request of the tenant's credentials without their own limit.
    Tenant(TenantId),
    /// One API key with an administrator-set limit.
    ApiKey(ApiKeyId),
}

impl RateSubject {
    fn partition(&self) -> String {
        match self {
            RateSubject::Tenant(tenant) => format!("RATELIMIT#tenant#{tenant}"),
            RateSubject::ApiKey(id) => format!("RATELIMIT#key#{id}"),
        }
    }
}

/// What counting found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountOutcome {
    /// Counted; `count` includes this request.
    Counted { count: u64 },
    /// The window already holds the limit; nothing written.
    OverLimit,
}

fn counter_key(subject: &RateSubject, window_start: u64) -> Item {
    key(subject.partition(), &format!("WINDOW#{window_start}"))
}

#[derive(Debug, Clone)]
pub struct RateLimitStore {
    table: Table,
}

impl RateLimitStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Counts one request in the window `[window_start, window_end)` unless
    /// `limit` requests are already counted there.
    pub async fn count(
        &self,
        subject: &RateSubject,
        window_start: u64,
        window_end: u64,
        limit: u32,
    ) -> Result<CountOutcome, StoreError> {
        let result = self.count_request(subject, window_start, window_end, limit).send().await;
        Ok(match update_returning(result, "RATELIMIT")? {
            Ok(item) => CountOutcome::Counted { count: ItemReader::new(&item).number("count")? },
            Err(_) => CountOutcome::OverLimit,
        })
    }

    /// The conditional UpdateItem [`count`](Self::count) sends: `ADD` 1
    /// unless the count has reached `limit`, returning the new count. Public
    /// so the benchmark can send the very same request as its floor.
    pub fn count_request(
        &self,
        subject: &RateSubject,
        window_start: u64,
        window_end: u64,
        limit: u32,
    ) -> UpdateItemFluentBuilder {
        self.table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(counter_key(subject, window_start)))
            .update_expression("SET expires_at = :expires ADD #count :one")
            .condition_expression("attribute_not_exists(#count) OR #count < :limit")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(u64::from(limit)))
            .expression_attribute_values(":expires", n(window_end))
            .return_values(ReturnValue::UpdatedNew)
    }

    /// The count in a window (0 when none), for tests and the CLI.
    pub async fn current(&self, subject: &RateSubject, window_start: u64) -> Result<u64, StoreError> {
        match self.table.get(counter_key(subject, window_start)).await? {
            Some(item) => ItemReader::new(&item).number("count"),
            None => Ok(0),
        }
    }
}
