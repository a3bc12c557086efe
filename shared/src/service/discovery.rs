//! Discovery: the JWKS (every published public key) and the issuer metadata
//! (RFC 8414) that API Gateway's JWT authorizer and JOSE libraries read.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::error::{ApiError, StoreError};
use crate::service::tokens::TokenIssuer;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Serialize)]
pub struct JwkSet {
    pub keys: Vec<Value>,
}

/// `GET /.well-known/openid-configuration`: the RFC 8414 fields that apply.
/// There is no authorization endpoint, so no `response_types_supported`.
#[derive(Debug, Serialize)]
pub struct IssuerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: [&'static str; 3],
    pub token_endpoint_auth_methods_supported: [&'static str; 2],
    pub revocation_endpoint_auth_methods_supported: [&'static str; 1],
    /// Latchkey issues no ID tokens; this lists the algorithms of the
    /// published keys (its access tokens) for clients that read it.
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
}

/// Serves the discovery documents from the key ring's cache.
#[derive(Debug)]
pub struct DiscoveryService {
    issuer: Arc<TokenIssuer>,
    max_age: Duration,
}

impl DiscoveryService {
    pub fn new(config: &Config, issuer: Arc<TokenIssuer>) -> Self {
        Self { issuer, max_age: config.jwks_max_age }
    }

    /// How long clients may cache the documents.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Every published key: active, pre-published, and retired ones whose
    /// tokens may still be valid. Before the first key exists this creates
    /// it, so a verifier never caches an empty set.
    pub async fn jwks(&self) -> Result<JwkSet, ApiError> {
        self.issuer.keys().signing_key().await?;
        let set = self.issuer.keys().current().await?;
        let keys = set
            .records
            .iter()
            .map(|record| {
                serde_json::from_str(&record.public_jwk)
                    .map_err(|e| StoreError::corrupt(format!("SIGNING_KEY/{}", record.kid), e.to_string()).into())
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(JwkSet { keys })
    }

    pub async fn metadata(&self) -> Result<IssuerMetadata, ApiError> {
        let set = self.issuer.keys().current().await?;
        let mut algorithms: Vec<&'static str> = set.records.iter().map(|r| r.algorithm.as_str()).collect();
        algorithms.push(self.issuer.keys().algorithm().as_str());
        algorithms.sort_unstable();
        algorithms.dedup();
        let base = self.issuer.issuer_url().trim_end_matches('/');
        Ok(IssuerMetadata {
            issuer: self.issuer.issuer_url().to_owned(),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            token_endpoint: format!("{base}/v1/auth/token"),
            revocation_endpoint: format!("{base}/v1/auth/revoke"),
            grant_types_supported: ["client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "api_key"],
            token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
            revocation_endpoint_auth_methods_supported: ["none"],
            id_token_signing_alg_values_supported: algorithms,
        })
    }
}
