//! Signing keys: the private half sealed with the deployment's sealing key,
//! the public half as a JWK. All keys share one partition, so one Query
//! loads the whole key set.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Item, ItemReader, Table, applied, key, n, s};
use crate::error::StoreError;
use crate::jwt::SigningAlgorithm;

const PK: &str = "SIGNING_KEY";

#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// AES-256-GCM blob of the private key's DER, bound to `kid`.
    pub sealed_private_key: Vec<u8>,
    pub created_at: u64,
    /// Not used to sign before this time, so caches of the JWKS (API
    /// Gateway keeps one up to two hours) see the key before any token does.
    pub active_from: u64,
    /// When the key was retired: it signs nothing from then on.
    pub retired_at: Option<u64>,
    /// Set when a successor is added or the key is retired: the last moment
    /// a token it signed can be valid. Published until then, gone after.
    pub expires_at: Option<u64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("active_from", &self.active_from)
            .field("retired_at", &self.retired_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SigningKeyStore {
    table: Table,
}

impl SigningKeyStore {
    pub fn new(table: Table) -> Self {
        Self { table }
    }

    /// Every key that has not expired, oldest first.
    pub async fn list(&self, now_secs: u64) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut records = Vec::new();
        for item in self.table.query_partition(PK).await? {
            if !ItemReader::new(&item).is_expired(now_secs)? {
                records.push(parse_key(&item)?);
            }
        }
        records.sort_by(|a, b| (a.active_from, a.created_at, &a.kid).cmp(&(b.active_from, b.created_at, &b.kid)));
        Ok(records)
    }

    /// Stores a new key; `Ok(false)` if the kid is taken.
    pub async fn insert(&self, record: &SigningKeyRecord) -> Result<bool, StoreError> {
        let mut item = key(PK.to_owned(), &format!("KID#{}", record.kid));
        item.insert("kid".into(), s(&record.kid));
        item.insert("alg".into(), s(record.algorithm.as_str()));
        item.insert("public_jwk".into(), s(&record.public_jwk));
        item.insert("private_key".into(), AttributeValue::B(Blob::new(record.sealed_private_key.clone())));
        item.insert("created_at".into(), n(record.created_at));
        item.insert("active_from".into(), n(record.active_from));
        if let Some(retired_at) = record.retired_at {
            item.insert("retired_at".into(), n(retired_at));
        }
        if let Some(expires_at) = record.expires_at {
            item.insert("expires_at".into(), n(expires_at));
        }
        self.table.put_if_absent(item).await
    }

    /// Sets the key's expiry to `expires_at` (never later than one already
    /// set) and, with `retired_at`, stops it signing. `Ok(false)` when the key
    /// does not exist or already expires sooner.
    pub async fn set_expiry(&self, kid: &str, expires_at: u64, retired_at: Option<u64>) -> Result<bool, StoreError> {
        let update = if retired_at.is_some() {
            "SET expires_at = :expires, retired_at = if_not_exists(retired_at, :retired)"
        } else {
            "SET expires_at = :expires"
        };
        let result = self
            .table
            .client
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key(PK.to_owned(), &format!("KID#{kid}"))))
            .update_expression(update)
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(expires_at) OR expires_at >= :expires)",
            )
            .set_expression_attribute_values(Some(
                std::iter::once((":expires".to_owned(), n(expires_at)))
                    .chain(retired_at.map(|at| (":retired".to_owned(), n(at))))
                    .collect(),
            ))
            .send()
            .await;
        applied(result)
    }
}

fn parse_key(item: &Item) -> Result<SigningKeyRecord, StoreError> {
    let reader = ItemReader::new(item);
    Ok(SigningKeyRecord {
        kid: reader.string("kid")?.to_owned(),
        algorithm: reader.string("alg")?.parse().map_err(|e: String| StoreError::corrupt("SIGNING_KEY", e))?,
        public_jwk: reader.string("public_jwk")?.to_owned(),
        sealed_private_key: reader.bytes("private_key")?.to_vec(),
        created_at: reader.number("created_at")?,
        active_from: reader.number("active_from")?,
        retired_at: reader.opt_number("retired_at")?,
        expires_at: reader.opt_number("expires_at")?,
    })
}
