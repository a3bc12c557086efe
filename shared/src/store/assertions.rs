//! Used client assertions (RFC 7523 jwt-bearer grant): one item per
//! assertion, kept until the assertion expires, so each is accepted once.

use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::{Table, key, n, unavailable};
use crate::error::StoreError;

#[derive(Debug, Clone)]
pub struct AssertionStore {
    table: Table,
}

impl AssertionStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Records `fingerprint` (a keyed hash naming the assertion) as used
    /// until `expires_at`; `Ok(false)` if it already was. A leftover item
    /// past its TTL that DynamoDB has not deleted yet counts as absent.
    pub async fn claim(&self, fingerprint: &str, expires_at: u64, now_secs: u64) -> Result<bool, StoreError> {
        let mut item = key(format!("ASSERTION#{fingerprint}"), "USED");
        item.insert("expires_at".into(), n(expires_at));
        let result = self
            .table
            .client
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now_secs))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
                Ok(false)
            }
            Err(err) => Err(unavailable("PutItem", err)),
        }
    }
}
