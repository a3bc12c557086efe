//! Used client assertions (RFC 7523 jwt-bearer grant): one item per
//! assertion, kept until the assertion expires, so each is accepted once.

use super::{Table, key, n};
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
        self.table.put_unless_live(item, now_secs).await
    }
}
