//! Configuration: every knob comes from one environment variable, parsed once
//! at cold start into [`Config`]. The README's configuration table lists the
//! same variables with the same defaults; keep the two in step.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::credentials::StoredSecretCheck;
use crate::crypto::SealingKey;
use crate::domain::{Scopes, Stage};
use crate::jwt::SigningAlgorithm;

/// Why configuration could not be loaded. Always fatal at cold start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{name} must be set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where and how to reach the one DynamoDB table. The endpoint and region come
/// from the standard AWS variables (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub table_name: String,
    /// Whole-operation timeout, retries included.
    pub operation_timeout: Duration,
    /// Timeout of one HTTP attempt.
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_attempts: u32,
}

/// Login failure throttling, per account (keyed by the email tried, whether or
/// not it exists) and per client IP.
#[derive(Debug, Clone)]
pub struct LoginThrottlePolicy {
    /// Failures per account before the first lockout.
    pub account_max_failures: u32,
    /// Failures per client IP before the first lockout.
    pub ip_max_failures: u32,
    /// First lockout; each further failure doubles it.
    pub lockout_base: Duration,
    pub lockout_max: Duration,
    /// A counter is forgotten after this long without failures.
    pub failure_window: Duration,
}

impl LoginThrottlePolicy {
    /// How long to lock after the `failures`-th failure against `threshold`,
    /// or `None` while under it: base, 2×base, 4×base… capped at the max.
    pub fn lockout_for(&self, failures: u32, threshold: u32) -> Option<Duration> {
        let over = failures.checked_sub(threshold)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(self.lockout_base.saturating_mul(factor).min(self.lockout_max))
    }
}

/// Everything a Latchkey function needs, loaded from the environment.
pub struct Config {
    pub store: StoreConfig,
    pub stage: Stage,
    pub issuer: String,
    pub audience: String,
    pub signing_algorithm: SigningAlgorithm,
    pub access_token_ttl: Duration,
    /// Sliding lifetime: each rotation extends a refresh family by this much.
    pub refresh_token_ttl: Duration,
    /// Hard cap on a refresh family's life from the login that started it.
    pub refresh_absolute_ttl: Duration,
    /// Window in which a retry with the immediately previous refresh token gets
    /// the same successor instead of revoking the family. 0 disables it.
    pub refresh_grace: Duration,
    pub sealing_key: SealingKey,
    pub max_body_bytes: usize,
    pub login_throttle: LoginThrottlePolicy,
    /// How long a function instance trusts its cached signing keys.
    pub key_cache_ttl: Duration,
    /// Largest inbound webhook body; bounded so an event fits one DynamoDB
    /// item (400 KB).
    pub webhook_max_body_bytes: usize,
    /// How long the webhook function trusts a cached source (its secrets):
    /// a removed secret stops verifying within this time. 0 disables it.
    pub webhook_source_cache_ttl: Duration,
    /// How long the authorizer, `/v1/verify` and the middleware trust a
    /// cached API key or tenant plan: a revoked key is refused within this
    /// time. 0 disables it.
    pub auth_cache_ttl: Duration,
    /// Whether requests with an access token count against the tenant's
    /// limit too (one UpdateItem each). Off: access tokens are verified with
    /// no DynamoDB call and only API-key requests are counted.
    pub rate_limit_access_tokens: bool,
    /// `Cache-Control: max-age` of the JWKS and discovery documents.
    pub jwks_max_age: Duration,
    /// Scopes the authorizer requires per API Gateway route key
    /// (`"GET /orders"`); routes not listed need none.
    pub route_scopes: HashMap<String, Scopes>,
}

impl fmt::Debug for Config {
    // Written out so the sealing key can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("store", &self.store)
            .field("stage", &self.stage)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("signing_algorithm", &self.signing_algorithm)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("refresh_absolute_ttl", &self.refresh_absolute_ttl)
            .field("refresh_grace", &self.refresh_grace)
            .field("sealing_key", &"[redacted]")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("login_throttle", &self.login_throttle)
            .field("key_cache_ttl", &self.key_cache_ttl)
            .field("webhook_max_body_bytes", &self.webhook_max_body_bytes)
            .field("webhook_source_cache_ttl", &self.webhook_source_cache_ttl)
            .field("auth_cache_ttl", &self.auth_cache_ttl)
            .field("rate_limit_access_tokens", &self.rate_limit_access_tokens)
            .field("jwks_max_age", &self.jwks_max_age)
            .field("route_scopes", &self.route_scopes)
            .finish()
    }
}

/// The largest webhook body an event item can hold next to its other
/// attributes (DynamoDB items are at most 400 KB).
pub const MAX_WEBHOOK_BODY_BYTES: u64 = 350 * 1024;

/// Maximum grace window the SPEC allows.
pub const MAX_REFRESH_GRACE: Duration = Duration::from_secs(60);

/// A source of variables: the process environment, or a map in tests.
#[derive(Debug)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self { vars: std::env::vars().collect() }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    fn get(&self, name: &'static str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing { name })
    }

    fn parsed<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() }),
        }
    }

    fn bounded(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let value = self.parsed(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                name,
                reason: format!("{value} is outside {}..={}", range.start(), range.end()),
            })
        }
    }

    fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, range).map(Duration::from_secs)
    }

    fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let value = self.parsed(name, default)?;
        if value == 0 {
            return Err(ConfigError::Invalid { name, reason: "must be positive".into() });
        }
        Ok(Duration::from_millis(value))
    }
}

const DAY: u64 = 24 * 60 * 60;

impl StoreConfig {
    /// What the admin CLI needs for table-only commands.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let table_name = env.required("LATCHKEY_TABLE_NAME")?.trim().to_owned();
        if !(3..=255).contains(&table_name.len())
            || !table_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(ConfigError::Invalid {
                name: "LATCHKEY_TABLE_NAME",
                reason: "a DynamoDB table name is 3-255 characters of a-z, A-Z, 0-9, '_', '-', '.'".into(),
            });
        }
        let max_attempts = env.parsed("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", 3u32)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::Invalid {
                name: "LATCHKEY_DYNAMODB_MAX_ATTEMPTS",
                reason: "must be 1..=10".into(),
            });
        }
        Ok(Self {
            table_name,
            operation_timeout: env.millis("LATCHKEY_DYNAMODB_TIMEOUT_MS", 3000)?,
            attempt_timeout: env.millis("LATCHKEY_DYNAMODB_ATTEMPT_TIMEOUT_MS", 1000)?,
            connect_timeout: env.millis("LATCHKEY_DYNAMODB_CONNECT_TIMEOUT_MS", 500)?,
            max_attempts,
        })
    }
}

impl Config {
    /// Loads from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::from_process())
    }

    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let store = StoreConfig::from_env(env)?;
        let stage = env.parsed("LATCHKEY_STAGE", Stage::Test)?;
        let (issuer, audience) = issuer_and_audience(env)?;
        let sealing_key = SealingKey::from_base64(env.required("LATCHKEY_SEALING_KEY")?)
            .map_err(|reason| ConfigError::Invalid { name: "LATCHKEY_SEALING_KEY", reason: reason.into() })?;

        let refresh_token_ttl = env.seconds("LATCHKEY_REFRESH_TOKEN_TTL", 30 * DAY, 60..=365 * DAY)?;
        let refresh_absolute_ttl = env.seconds("LATCHKEY_REFRESH_ABSOLUTE_TTL", 90 * DAY, 60..=3 * 365 * DAY)?;
        if refresh_absolute_ttl < refresh_token_ttl {
            return Err(ConfigError::Invalid {
                name: "LATCHKEY_REFRESH_ABSOLUTE_TTL",
                reason: "must be at least LATCHKEY_REFRESH_TOKEN_TTL".into(),
            });
        }

        let login_throttle = LoginThrottlePolicy {
            account_max_failures: env.parsed("LATCHKEY_LOGIN_MAX_FAILURES", 5)?,
            ip_max_failures: env.parsed("LATCHKEY_LOGIN_IP_MAX_FAILURES", 50)?,
            lockout_base: env.seconds("LATCHKEY_LOGIN_LOCKOUT_SECONDS", 30, 1..=DAY)?,
            lockout_max: env.seconds("LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS", 900, 1..=DAY)?,
            failure_window: env.seconds("LATCHKEY_LOGIN_FAILURE_WINDOW_SECONDS", 900, 1..=7 * DAY)?,
        };
        for (name, value) in [
            ("LATCHKEY_LOGIN_MAX_FAILURES", login_throttle.account_max_failures),
            ("LATCHKEY_LOGIN_IP_MAX_FAILURES", login_throttle.ip_max_failures),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid { name, reason: "must be at least 1".into() });
            }
        }
        if login_throttle.lockout_max < login_throttle.lockout_base {
            return Err(ConfigError::Invalid {
                name: "LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS",
                reason: "must be at least LATCHKEY_LOGIN_LOCKOUT_SECONDS".into(),
            });
        }

        Ok(Self {
            store,
            stage,
            issuer,
            audience,
            signing_algorithm: env.parsed("LATCHKEY_SIGNING_ALG", SigningAlgorithm::Rs256)?,
            access_token_ttl: env.seconds("LATCHKEY_ACCESS_TOKEN_TTL", 900, 60..=DAY)?,
            refresh_token_ttl,
            refresh_absolute_ttl,
            refresh_grace: env.seconds("LATCHKEY_REFRESH_GRACE_SECONDS", 0, 0..=MAX_REFRESH_GRACE.as_secs())?,
            sealing_key,
            max_body_bytes: usize::try_from(env.bounded("LATCHKEY_MAX_BODY_BYTES", 16 * 1024, 256..=1024 * 1024)?)
                .unwrap_or(usize::MAX),
            login_throttle,
            key_cache_ttl: key_cache_ttl(env)?,
            webhook_max_body_bytes: usize::try_from(env.bounded(
                "LATCHKEY_WEBHOOK_MAX_BODY_BYTES",
                256 * 1024,
                1024..=MAX_WEBHOOK_BODY_BYTES,
            )?)
            .unwrap_or(usize::MAX),
            webhook_source_cache_ttl: env.seconds("LATCHKEY_WEBHOOK_SOURCE_CACHE_SECONDS", 30, 0..=300)?,
            auth_cache_ttl: auth_cache_ttl(env)?,
            rate_limit_access_tokens: rate_limit_access_tokens(env)?,
            jwks_max_age: env.seconds("LATCHKEY_JWKS_MAX_AGE_SECONDS", 300, 0..=3600)?,
            route_scopes: route_scopes(env.get("LATCHKEY_ROUTE_SCOPES"))?,
        })
    }
}

fn issuer_and_audience(env: &Env) -> Result<(String, String), ConfigError> {
    let issuer = env.required("LATCHKEY_ISSUER")?.trim().to_owned();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
        return Err(ConfigError::Invalid { name: "LATCHKEY_ISSUER", reason: "must be an http(s) URL".into() });
    }
    let audience = env.get("LATCHKEY_AUDIENCE").map_or_else(|| issuer.clone(), |a| a.trim().to_owned());
    Ok((issuer, audience))
}

fn key_cache_ttl(env: &Env) -> Result<Duration, ConfigError> {
    env.seconds("LATCHKEY_KEY_CACHE_SECONDS", 300, 1..=DAY)
}

fn auth_cache_ttl(env: &Env) -> Result<Duration, ConfigError> {
    env.seconds("LATCHKEY_AUTH_CACHE_SECONDS", 30, 0..=60)
}

fn rate_limit_access_tokens(env: &Env) -> Result<bool, ConfigError> {
    env.parsed("LATCHKEY_RATE_LIMIT_ACCESS_TOKENS", false)
}

/// What a team's own Lambda needs to run the guard (the Rust middleware):
/// the deployment's table, issuer, audience and stage, and
/// `LATCHKEY_VERIFIER_KEY` instead of the sealing key. With it the Lambda
/// can check tokens and API keys and count requests, but cannot issue a
/// token, derive an API key's secret or open a sealed record.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    pub store: StoreConfig,
    pub stage: Stage,
    pub issuer: String,
    pub audience: String,
    pub key_check: StoredSecretCheck,
    pub key_cache_ttl: Duration,
    pub auth_cache_ttl: Duration,
    pub rate_limit_access_tokens: bool,
}

impl GuardConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::from_process())
    }

    /// `LATCHKEY_VERIFIER_KEY` (from `latchkey sealing-key verifier-key`);
    /// `LATCHKEY_SEALING_KEY` is accepted in its place (local development),
    /// and only the verifier key is derived from it.
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let (issuer, audience) = issuer_and_audience(env)?;
        let key_check = match (env.get("LATCHKEY_VERIFIER_KEY"), env.get("LATCHKEY_SEALING_KEY")) {
            (Some(verifier), _) => StoredSecretCheck::from_base64(verifier)
                .map_err(|reason| ConfigError::Invalid { name: "LATCHKEY_VERIFIER_KEY", reason: reason.into() })?,
            (None, Some(sealing)) => StoredSecretCheck::new(
                &SealingKey::from_base64(sealing)
                    .map_err(|reason| ConfigError::Invalid { name: "LATCHKEY_SEALING_KEY", reason: reason.into() })?,
            ),
            (None, None) => return Err(ConfigError::Missing { name: "LATCHKEY_VERIFIER_KEY" }),
        };
        Ok(Self {
            store: StoreConfig::from_env(env)?,
            stage: env.parsed("LATCHKEY_STAGE", Stage::Test)?,
            issuer,
            audience,
            key_check,
            key_cache_ttl: key_cache_ttl(env)?,
            auth_cache_ttl: auth_cache_ttl(env)?,
            rate_limit_access_tokens: rate_limit_access_tokens(env)?,
        })
    }
}

/// Parses `LATCHKEY_ROUTE_SCOPES`: a JSON object from route key to the
/// scopes it needs, space-separated (`{"POST /orders": "orders:write"}`).
fn route_scopes(raw: Option<&str>) -> Result<HashMap<String, Scopes>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { name: "LATCHKEY_ROUTE_SCOPES", reason };
    let Some(raw) = raw else {
        return Ok(HashMap::new());
    };
    let map: HashMap<String, String> =
        serde_json::from_str(raw).map_err(|e| invalid(format!("must be a JSON object of strings: {e}")))?;
    map.into_iter()
        .map(|(route, scopes)| {
            let parsed = Scopes::parse(&scopes).map_err(|e| invalid(format!("route `{route}`: {}", e.0)))?;
            Ok((route.trim().to_owned(), parsed))
        })
        .collect()
}

/// Encodes a fresh random sealing key the way `LATCHKEY_SEALING_KEY` expects.
pub fn generate_sealing_key_base64() -> String {
    use base64::Engine as _;
    let key = zeroize::Zeroizing::new(crate::crypto::random_bytes(32));
    base64::engine::general_purpose::STANDARD.encode(key.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("LATCHKEY_TABLE_NAME", "latchkey-test"),
            ("LATCHKEY_ISSUER", "https://auth.example.com"),
            ("LATCHKEY_SEALING_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ]
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = Config::from(&Env::from_pairs(base())).expect("valid config");
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * DAY));
        assert_eq!(config.refresh_grace, Duration::ZERO);
        assert_eq!(config.audience, "https://auth.example.com");
        assert_eq!(config.signing_algorithm, SigningAlgorithm::Rs256);
        assert_eq!(config.stage, Stage::Test);
        assert_eq!(config.webhook_max_body_bytes, 256 * 1024);
        assert_eq!(config.webhook_source_cache_ttl, Duration::from_secs(30));
        assert_eq!(config.auth_cache_ttl, Duration::from_secs(30));
        assert!(!config.rate_limit_access_tokens);
        assert_eq!(config.jwks_max_age, Duration::from_secs(300));
        assert!(config.route_scopes.is_empty());
    }

    #[test]
    fn route_scopes_and_the_authorizer_cache_are_checked() {
        let mut vars = base();
        vars.push(("LATCHKEY_ROUTE_SCOPES", r#"{"POST /orders": "orders:write orders:read", "GET /health": ""}"#));
        let config = Config::from(&Env::from_pairs(vars)).expect("valid route scopes");
        assert_eq!(config.route_scopes["POST /orders"].to_string(), "orders:read orders:write");
        assert!(config.route_scopes["GET /health"].is_empty());
        let mut vars = base();
        vars.push(("LATCHKEY_ROUTE_SCOPES", r#"["orders:read"]"#));
        let err = Config::from(&Env::from_pairs(vars)).expect_err("not an object");
        assert!(err.to_string().contains("LATCHKEY_ROUTE_SCOPES"), "{err}");
        let mut vars = base();
        vars.push(("LATCHKEY_AUTH_CACHE_SECONDS", "61"));
        let err = Config::from(&Env::from_pairs(vars)).expect_err("over the SPEC's 60 s");
        assert!(err.to_string().contains("LATCHKEY_AUTH_CACHE_SECONDS"), "{err}");
    }

    #[test]
    fn webhook_bodies_must_fit_one_item() {
        let mut vars = base();
        vars.push(("LATCHKEY_WEBHOOK_MAX_BODY_BYTES", "409600"));
        let err = Config::from(&Env::from_pairs(vars)).expect_err("over the item limit");
        assert!(err.to_string().contains("LATCHKEY_WEBHOOK_MAX_BODY_BYTES"), "{err}");
    }

    #[test]
    fn grace_window_is_capped_at_sixty_seconds() {
        let mut vars = base();
        vars.push(("LATCHKEY_REFRESH_GRACE_SECONDS", "61"));
        let err = Config::from(&Env::from_pairs(vars)).expect_err("61 s is over the cap");
        assert!(err.to_string().contains("LATCHKEY_REFRESH_GRACE_SECONDS"), "{err}");
    }

    #[test]
    fn missing_and_malformed_values_name_the_variable() {
        let err = Config::from(&Env::from_pairs(vec![("LATCHKEY_TABLE_NAME", "t-1")])).expect_err("missing");
        assert_eq!(err.to_string(), "LATCHKEY_ISSUER must be set");
        let mut vars = base();
        vars.push(("LATCHKEY_SIGNING_ALG", "HS256"));
        let err = Config::from(&Env::from_pairs(vars)).expect_err("HS256 is not allowed");
        assert!(err.to_string().contains("LATCHKEY_SIGNING_ALG"), "{err}");
        let mut vars = base();
        vars[2] = ("LATCHKEY_SEALING_KEY", "c2hvcnQ=");
        let err = Config::from(&Env::from_pairs(vars)).expect_err("short key");
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_sealing_key() {
        let config = Config::from(&Env::from_pairs(base())).expect("valid config");
        let shown = format!("{config:?}");
        assert!(!shown.contains("AAECAwQF"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn lockout_doubles_from_the_threshold_and_caps() {
        let policy = LoginThrottlePolicy {
            account_max_failures: 5,
            ip_max_failures: 50,
            lockout_base: Duration::from_secs(30),
            lockout_max: Duration::from_secs(900),
            failure_window: Duration::from_secs(900),
        };
        assert_eq!(policy.lockout_for(4, 5), None);
        assert_eq!(policy.lockout_for(5, 5), Some(Duration::from_secs(30)));
        assert_eq!(policy.lockout_for(6, 5), Some(Duration::from_secs(60)));
        assert_eq!(policy.lockout_for(9, 5), Some(Duration::from_secs(480)));
        assert_eq!(policy.lockout_for(10, 5), Some(Duration::from_secs(900)));
        assert_eq!(policy.lockout_for(200, 5), Some(Duration::from_secs(900)));
    }
}
