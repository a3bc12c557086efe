//! Latchkey's shared crate: configuration, domain types, the DynamoDB store,
//! tokens, errors, telemetry and the services the Lambda functions call.
//!
//! Each function's `main` builds a [`Latchkey`] from the environment once per
//! cold start and hands its handler a borrowed service.

pub mod assertion;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod http;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod rate_limit;
pub mod refresh_token;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod webhook;

use std::sync::Arc;

pub use config::Config;
pub use error::{ApiError, StoreError};

/// The parts of a deployment every function shares, built once at cold start.
#[derive(Debug)]
pub struct Latchkey {
    pub config: Config,
    pub stores: store::Stores,
    pub issuer: Arc<service::TokenIssuer>,
    pub refresh_codec: Arc<refresh_token::RefreshTokenCodec>,
    pub api_key_authenticator: Arc<service::ApiKeyAuthenticator>,
}

impl Latchkey {
    pub fn new(config: Config, client: aws_sdk_dynamodb::Client) -> Self {
        let table = store::Table::new(client, config.store.table_name.as_str());
        let stores = store::Stores::new(&table);
        let keys = Arc::new(keys::KeyRing::new(
            stores.signing_keys.clone(),
            config.sealing_key.sealer(),
            config.signing_algorithm,
            config.access_token_ttl,
            config.key_cache_ttl,
        ));
        let issuer = Arc::new(service::TokenIssuer::new(&config, keys));
        let refresh_codec = Arc::new(refresh_token::RefreshTokenCodec::new(&config.sealing_key, config.stage));
        let api_key_authenticator = Arc::new(service::ApiKeyAuthenticator::new(&config, &stores));
        Self { config, stores, issuer, refresh_codec, api_key_authenticator }
    }

    /// Loads config from the environment and connects to DynamoDB.
    pub async fn from_env() -> Result<Self, config::ConfigError> {
        let config = Config::from_env()?;
        let client = store::connect(&config.store).await;
        Ok(Self::new(config, client))
    }

    /// Loads the signing keys during cold start (see [`keys::KeyRing::warm_up`]).
    pub async fn warm_up(&self) {
        self.issuer.keys().warm_up().await;
    }

    pub fn login_service(&self) -> service::LoginService {
        service::LoginService::new(
            &self.config,
            &self.stores,
            Arc::clone(&self.issuer),
            Arc::clone(&self.refresh_codec),
        )
    }

    pub fn refresh_service(&self) -> service::RefreshService {
        service::RefreshService::new(
            &self.config,
            &self.stores,
            Arc::clone(&self.issuer),
            Arc::clone(&self.refresh_codec),
        )
    }

    pub fn exchange_service(&self) -> service::ExchangeService {
        service::ExchangeService::new(
            &self.config,
            &self.stores,
            Arc::clone(&self.api_key_authenticator),
            Arc::clone(&self.issuer),
            Arc::clone(&self.refresh_codec),
        )
    }

    pub fn webhook_service(&self) -> service::WebhookService {
        service::WebhookService::new(&self.config, &self.stores)
    }

    pub fn discovery_service(&self) -> service::DiscoveryService {
        service::DiscoveryService::new(&self.config, Arc::clone(&self.issuer))
    }

    /// The decision behind the authorizer, `/v1/verify` and the middleware.
    pub fn guard(&self) -> service::Guard {
        service::Guard::new(
            &self.config,
            &self.stores,
            Arc::clone(&self.issuer),
            Arc::clone(&self.api_key_authenticator),
        )
    }

    pub fn api_key_service(&self) -> service::ApiKeyService {
        service::ApiKeyService::new(
            &self.config,
            &self.stores,
            Arc::clone(&self.api_key_authenticator),
            Arc::clone(&self.issuer),
        )
    }
}
