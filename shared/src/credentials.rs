//! API-key and app secrets: how they are made, shown once, and checked.
//!
//! An API key is `sk_<env>_<id>_<secret>`: `env` is `test` or `live`, `id` 26
//! base32 characters, `secret` 52 base32 characters (256 bits). The secret is
//! not random but derived, `HMAC-SHA256(K_secret, id)` with `K_secret` an HKDF
//! subkey of `LATCHKEY_SEALING_KEY`, and it is never stored. That is what lets
//! the server check a client-signed HS256 assertion (whose key is the secret)
//! without keeping the secret anywhere, and refuse a forged secret or
//! assertion before any DynamoDB call. The table holds only a keyed hash of
//! the secret (`HMAC-SHA256(K_check, secret)`), which the exchange also checks.
//!
//! App secrets (`X-App-Secret`) are random and only their keyed hash is kept.
//!
//! Every comparison is constant time.

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;

use crate::crypto::{MacKey, SealingKey, base32, hex, random_bytes};
use crate::domain::{ApiKeyId, Stage};

/// Length of the secret part of an API key.
pub const SECRET_CHARS: usize = 52;
/// Characters of the secret shown in listings.
pub const LAST_CHARS: usize = 4;

/// 32 bytes as 52 lower-case base32 characters.
fn base32_256(bytes: &[u8; 32]) -> String {
    let (high, low) = bytes.split_at(16);
    let high = u128::from_be_bytes(high.try_into().expect("16 bytes"));
    let low = u128::from_be_bytes(low.try_into().expect("16 bytes"));
    base32(high) + &base32(low)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// The prefix of every key of `env`: `sk_test_` or `sk_live_`.
pub fn key_prefix(env: Stage) -> &'static str {
    match env {
        Stage::Test => "sk_test_",
        Stage::Live => "sk_live_",
    }
}

/// `sk_<env>_<id>_<secret>`.
fn compose_key(env: Stage, id: &ApiKeyId, secret: &SecretString) -> SecretString {
    format!("{}{id}_{}", key_prefix(env), secret.expose_secret()).into()
}

/// An API key string taken apart. Only the shape is checked here.
#[derive(Debug)]
pub struct ParsedApiKey {
    pub env: Stage,
    pub id: ApiKeyId,
    pub secret: SecretString,
}

/// Parses `sk_<env>_<id>_<secret>`; `None` for anything else.
pub fn parse_api_key(text: &str) -> Option<ParsedApiKey> {
    let text = text.trim();
    let (env, rest) = if let Some(rest) = text.strip_prefix(key_prefix(Stage::Live)) {
        (Stage::Live, rest)
    } else {
        (Stage::Test, text.strip_prefix(key_prefix(Stage::Test))?)
    };
    let (id, secret) = rest.split_once('_')?;
    let id = ApiKeyId::parse(id).ok()?;
    if secret.len() != SECRET_CHARS || !secret.is_ascii() {
        return None;
    }
    Some(ParsedApiKey { env, id, secret: secret.to_owned().into() })
}

/// Checks a presented API-key secret against the keyed hash stored in the
/// key's record. This is all a verifier needs: holding it does not let
/// anyone derive a key's secret (that takes [`ApiKeySecrets`], i.e. the
/// sealing key). Exported as `LATCHKEY_VERIFIER_KEY` for a team's own
/// Lambda running the middleware.
#[derive(Clone)]
pub struct StoredSecretCheck(MacKey);

impl std::fmt::Debug for StoredSecretCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoredSecretCheck([redacted])")
    }
}

impl StoredSecretCheck {
    pub fn new(sealing_key: &SealingKey) -> Self {
        Self(sealing_key.mac_key("api-key-check/v1"))
    }

    /// Reads `LATCHKEY_VERIFIER_KEY` (base64 of 32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        MacKey::from_base64(text).map(Self)
    }

    /// The value of `LATCHKEY_VERIFIER_KEY` for this deployment.
    pub fn to_base64(&self) -> String {
        self.0.to_base64()
    }

    /// The keyed hash stored in a key's record.
    pub fn hash(&self, secret: &SecretString) -> String {
        hex(&self.0.sign(&[secret.expose_secret().as_bytes()]))
    }

    /// Whether `presented` hashes to `stored_hash` (constant time).
    pub fn matches(&self, presented: &SecretString, stored_hash: &str) -> bool {
        constant_time_eq(self.hash(presented).as_bytes(), stored_hash.as_bytes())
    }
}

/// Derives, renders and checks API-key secrets for one deployment.
pub struct ApiKeySecrets {
    derive: MacKey,
    check: StoredSecretCheck,
}

impl std::fmt::Debug for ApiKeySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeySecrets")
    }
}

/// A secret as the caller presented it: the bare secret, or a whole key
/// string (whose id and environment must then match).
#[derive(Debug)]
pub struct PresentedSecret {
    pub secret: SecretString,
    /// The environment the key string claimed, if a key string was sent.
    pub env: Option<Stage>,
}

impl PresentedSecret {
    /// Reads what was sent as the secret for key `id`; `None` when it is a
    /// key string for another id.
    pub fn read(id: &ApiKeyId, text: &str) -> Option<Self> {
        if text.starts_with("sk_") {
            let parsed = parse_api_key(text)?;
            return (parsed.id == *id).then_some(Self { secret: parsed.secret, env: Some(parsed.env) });
        }
        Some(Self { secret: text.trim().to_owned().into(), env: None })
    }
}

impl ApiKeySecrets {
    pub fn new(sealing_key: &SealingKey) -> Self {
        Self { derive: sealing_key.mac_key("api-key-secret/v1"), check: StoredSecretCheck::new(sealing_key) }
    }

    /// The stored-hash check alone (what a verifier holds).
    pub fn stored_check(&self) -> &StoredSecretCheck {
        &self.check
    }

    /// The secret of key `id`.
    pub fn secret(&self, id: &ApiKeyId) -> SecretString {
        base32_256(&self.derive.sign(&[id.as_str().as_bytes()])).into()
    }

    /// The whole key string, shown to its creator once.
    pub fn key_string(&self, id: &ApiKeyId, env: Stage) -> SecretString {
        compose_key(env, id, &self.secret(id))
    }

    /// The keyed hash stored in the key's record.
    pub fn check_hash(&self, secret: &SecretString) -> String {
        self.check.hash(secret)
    }

    /// Whether `presented` is the secret of `id`. No DynamoDB call: a forged
    /// secret fails here.
    pub fn matches(&self, id: &ApiKeyId, presented: &SecretString) -> bool {
        constant_time_eq(self.secret(id).expose_secret().as_bytes(), presented.expose_secret().as_bytes())
    }

    /// Whether `presented` hashes to the stored `check_hash`.
    pub fn matches_stored(&self, presented: &SecretString, stored_hash: &str) -> bool {
        self.check.matches(presented, stored_hash)
    }

    /// Every byte string a client may have used as the HMAC key of an HS256
    /// assertion for `id`: the bare secret, or the whole key string (SDKs
    /// differ in which they call "the secret").
    pub fn assertion_keys(&self, id: &ApiKeyId) -> [SecretString; 3] {
        let secret = self.secret(id);
        let live = compose_key(Stage::Live, id, &secret);
        let test = compose_key(Stage::Test, id, &secret);
        [secret, live, test]
    }
}

/// Makes and checks app secrets (`X-App-Secret`).
pub struct AppSecrets {
    check: MacKey,
}

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSecrets")
    }
}

/// Prefix of app secrets, so they are recognisable in a secret scanner.
pub const APP_SECRET_PREFIX: &str = "lks_";

impl AppSecrets {
    pub fn new(sealing_key: &SealingKey) -> Self {
        Self { check: sealing_key.mac_key("app-secret-check/v1") }
    }

    /// A new random secret (256 bits) and the hash to store.
    pub fn generate(&self) -> (SecretString, String) {
        let bytes: [u8; 32] = random_bytes(32).try_into().expect("32 bytes");
        let secret: SecretString = format!("{APP_SECRET_PREFIX}{}", base32_256(&bytes)).into();
        let hash = self.hash(&secret);
        (secret, hash)
    }

    fn hash(&self, secret: &SecretString) -> String {
        hex(&self.check.sign(&[secret.expose_secret().as_bytes()]))
    }

    pub fn matches_stored(&self, presented: &SecretString, stored_hash: &str) -> bool {
        constant_time_eq(self.hash(presented).as_bytes(), stored_hash.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> ApiKeySecrets {
        ApiKeySecrets::new(&SealingKey::from_bytes([3u8; 32]))
    }

    #[test]
    fn key_strings_round_trip_and_check() {
        let secrets = secrets();
        let id = ApiKeyId::generate();
        let key = secrets.key_string(&id, Stage::Live);
        let text = key.expose_secret();
        assert!(text.starts_with("sk_live_"));
        assert_eq!(text.len(), "sk_live_".len() + 26 + 1 + SECRET_CHARS);
        let parsed = parse_api_key(text).expect("parses");
        assert_eq!((parsed.env, &parsed.id), (Stage::Live, &id));
        assert!(secrets.matches(&id, &parsed.secret));
        let hash = secrets.check_hash(&parsed.secret);
        assert!(secrets.matches_stored(&parsed.secret, &hash));
        assert!(!hash.contains(parsed.secret.expose_secret()));

        let other = ApiKeyId::generate();
        assert!(!secrets.matches(&other, &parsed.secret), "a secret belongs to one id");
        let other_deployment = ApiKeySecrets::new(&SealingKey::from_bytes([4u8; 32]));
        assert!(!other_deployment.matches(&id, &parsed.secret), "and to one sealing key");
    }

    #[test]
    fn presented_secrets_may_be_bare_or_whole_keys() {
        let secrets = secrets();
        let id = ApiKeyId::generate();
        let whole = secrets.key_string(&id, Stage::Test);
        let presented = PresentedSecret::read(&id, whole.expose_secret()).expect("own key");
        assert_eq!(presented.env, Some(Stage::Test));
        assert!(secrets.matches(&id, &presented.secret));
        let bare = PresentedSecret::read(&id, secrets.secret(&id).expose_secret()).expect("bare");
        assert_eq!(bare.env, None);
        assert!(secrets.matches(&id, &bare.secret));
        assert!(PresentedSecret::read(&ApiKeyId::generate(), whole.expose_secret()).is_none(), "another id");
    }

    #[test]
    fn malformed_key_strings_are_refused() {
        let secret = "a".repeat(SECRET_CHARS);
        let id = "a".repeat(26);
        assert!(parse_api_key(&format!("sk_live_{id}_{secret}")).is_some());
        for bad in [
            format!("sk_prod_{id}_{secret}"),
            format!("sk_live_{id}{secret}"),
            format!("sk_live_{id}_{secret}x"),
            format!("sk_live_{}_{secret}", "A".repeat(26)),
            format!("pk_live_{id}_{secret}"),
            String::new(),
        ] {
            assert!(parse_api_key(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn app_secrets_are_random_and_checked_by_hash() {
        let apps = AppSecrets::new(&SealingKey::from_bytes([5u8; 32]));
        let (secret, hash) = apps.generate();
        let (other, _) = apps.generate();
        assert_ne!(secret.expose_secret(), other.expose_secret());
        assert!(secret.expose_secret().starts_with(APP_SECRET_PREFIX));
        assert!(apps.matches_stored(&secret, &hash));
        assert!(!apps.matches_stored(&other, &hash));
    }
}
