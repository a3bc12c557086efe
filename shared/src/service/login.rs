//! Password login: email + password in, token response out.
//!
//! DynamoDB calls on success: one consistent BatchGetItem (the user, both
//! failure counters and the app, when `X-App-Id` is sent) and one write (the new refresh family, in a transaction
//! with clearing the account's counter when it had failures). A wrong
//! password costs the read plus the counter updates.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::{Config, LoginThrottlePolicy};
use crate::credentials::AppSecrets;
use crate::crypto::MacKey;
use crate::domain::{AppId, Email, Password};
use crate::error::ApiError;
use crate::password::verify_password;
use crate::refresh_token::RefreshTokenCodec;
use crate::service::tokens::{Principal, TokenIssuer, TokenResponse, family_response};
use crate::store::{LoginThrottleStore, RefreshFamily, RefreshFamilyStore, Stores, ThrottleKey};
use crate::time::now_secs;

/// POST /v1/auth/login body.
#[derive(Debug, Deserialize)]
pub struct LoginRequest {
    pub email: Email,
    pub password: Password,
}

/// App credentials from `X-App-Id` / `X-App-Secret`.
#[derive(Debug)]
pub struct AppCredentials {
    pub app_id: String,
    pub secret: secrecy::SecretString,
}

pub struct LoginService {
    throttle: LoginThrottleStore,
    families: RefreshFamilyStore,
    throttle_mac: MacKey,
    app_secrets: AppSecrets,
    policy: LoginThrottlePolicy,
    codec: Arc<RefreshTokenCodec>,
    issuer: Arc<TokenIssuer>,
    refresh_ttl: u64,
    refresh_absolute_ttl: u64,
}

impl std::fmt::Debug for LoginService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginService").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// One answer for a wrong password, an unknown email and an app of another
/// tenant.
pub const WRONG_PASSWORD: &str = "the email or password is incorrect";
/// Unknown, revoked or wrong app credentials.
pub const INVALID_APP: &str = "the app id or app secret is incorrect";
const LOCKED: &str = "too many failed login attempts; try again later";

impl LoginService {
    pub fn new(config: &Config, stores: &Stores, issuer: Arc<TokenIssuer>, codec: Arc<RefreshTokenCodec>) -> Self {
        Self {
            throttle: stores.login_throttle.clone(),
            families: stores.refresh_families.clone(),
            throttle_mac: config.sealing_key.mac_key("login-throttle/v1"),
            app_secrets: AppSecrets::new(&config.sealing_key),
            policy: config.login_throttle.clone(),
            codec,
            issuer,
            refresh_ttl: config.refresh_token_ttl.as_secs(),
            refresh_absolute_ttl: config.refresh_absolute_ttl.as_secs(),
        }
    }

    pub async fn login(
        &self,
        request: LoginRequest,
        app: Option<AppCredentials>,
        client_ip: Option<IpAddr>,
    ) -> Result<TokenResponse, ApiError> {
        let app_id = match &app {
            Some(credentials) => {
                Some(AppId::parse(&credentials.app_id).map_err(|_| ApiError::InvalidCredentials(INVALID_APP))?)
            }
            None => None,
        };
        let now = now_secs();
        let account_key = ThrottleKey::account(&self.throttle_mac, &request.email);
        let ip_key = client_ip.map(|ip| ThrottleKey::ip(&self.throttle_mac, ip));
        let state =
            self.throttle.load_attempt(&request.email, &account_key, ip_key.as_ref(), app_id.as_ref(), now).await?;

        // Locked accounts and IPs are refused before any password check, the
        // same way for unknown and known emails.
        let locked = [state.account.locked_for(now), state.ip.locked_for(now)].into_iter().flatten().max();
        if let Some(retry_after) = locked {
            return Err(ApiError::RateLimited { retry_after, message: LOCKED });
        }

        // The app is checked on its own, before the password, so its answer
        // says nothing about the account.
        let app = match app {
            Some(credentials) => {
                let valid = state.app.filter(|record| {
                    record.revoked_at.is_none()
                        && self.app_secrets.matches_stored(&credentials.secret, &record.secret_hash)
                });
                Some(valid.ok_or(ApiError::InvalidCredentials(INVALID_APP))?)
            }
            None => None,
        };

        let user = state.user;
        let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
        if !verify_password(request.password, stored_hash).await? {
            let account =
                self.throttle.record_failure(&account_key, self.policy.account_max_failures, &self.policy, now);
            let ip = async {
                match &ip_key {
                    Some(key) => self
                        .throttle
                        .record_failure(key, self.policy.ip_max_failures, &self.policy, now)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            };
            let (account, ip) = tokio::join!(account, ip);
            let (account, ip) = (account?, ip?);
            tracing::info!(
                account_failures = account.failures,
                ip_failures = ip.map(|s| s.failures),
                locked = account.locked_until.is_some() || ip.is_some_and(|s| s.locked_until.is_some()),
                "login failed"
            );
            return Err(ApiError::InvalidCredentials(WRONG_PASSWORD));
        }
        let user = user.ok_or(ApiError::InvalidCredentials(WRONG_PASSWORD))?;
        if app.as_ref().is_some_and(|app| app.tenant_id != user.tenant_id) {
            // An app of another tenant: as if the password were wrong.
            return Err(ApiError::InvalidCredentials(WRONG_PASSWORD));
        }

        let principal = Principal {
            sub: user.user_id.to_string(),
            tenant_id: user.tenant_id.to_string(),
            scope: user.scopes.to_string(),
            client_id: app.map(|app| app.app_id.to_string()),
        };
        let family =
            RefreshFamily::start(principal, self.issuer.stage(), now, self.refresh_ttl, self.refresh_absolute_ttl);
        // Sign first: if the key ring cannot sign, no family is left behind.
        let access = self.issuer.issue(&family.principal, now).await?;
        let clear_account = if state.account.failures > 0 { Some(self.throttle.clear_op(&account_key)?) } else { None };
        self.families.insert(&family, clear_account).await?;
        tracing::info!(sub = %family.principal.sub, tid = %family.principal.tenant_id, "login succeeded");
        Ok(family_response(&self.codec, &family, access))
    }
}
