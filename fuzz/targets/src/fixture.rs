//! The fixed deployment every target checks against: signing keys, sealing
//! key, API key id, webhook secrets and clock. All of it is fuzz-only and
//! public; it lives in memory, so no target touches DynamoDB.

use std::collections::HashMap;
use std::sync::LazyLock;

use aws_lc_rs::signature::{self, KeyPair as _};
use latchkey::assertion::AssertionVerifier;
use latchkey::credentials::ApiKeySecrets;
use latchkey::crypto::{SealingKey, b64url};
use latchkey::domain::{ApiKeyId, Stage};
use latchkey::jwt::{AccessTokenVerifier, SigningAlgorithm, SigningKey, VerifyingKey};
use latchkey::refresh_token::RefreshTokenCodec;
use latchkey::webhook::{self, WebhookSecret};

pub const ISSUER: &str = "https://auth.latchkey.test";
pub const AUDIENCE: &str = "https://api.latchkey.test";
/// The clock of the targets that take one (assertions, webhooks): the API
/// Gateway fixtures' 2026-11-23T12:00:00Z.
pub const NOW: u64 = 1_795_435_200;
/// `exp` of the seed access tokens (2100-01-01): the access-token verifier
/// reads the real clock, so the seeds must stay valid.
pub const FAR_FUTURE: u64 = 4_102_444_800;
/// `LATCHKEY_MAX_BODY_BYTES`' default.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
pub const SEALING_KEY: [u8; 32] = *b"latchkey-fuzz-only-sealing-key!!";
/// Another deployment's sealing key: nothing the fixed one made may pass there.
const STRANGER_SEALING_KEY: [u8; 32] = [0x5a; 32];
/// The API key whose secret the seeds use.
pub const KEY_ID: &str = "aaaabbbbccccddddeeeeffff23";
/// The Standard Webhooks reference libraries' test secret (24 bytes).
pub const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret rotated in next to it (32 bytes).
pub const ROTATED_SECRET: &str = "whsec_bGF0Y2hrZXktZnV6ei1yb3RhdGVkLXNlY3JldC0zMmI=";
/// GitHub's documented example secret, for the classic `sha256=` scheme.
pub const CLASSIC_SECRET: &str = "It's a Secret to Everybody";

/// PKCS#8 keys made once with `openssl genpkey` (see fuzz/README.md).
const SIGNING_KEYS: [(&str, SigningAlgorithm, &[u8]); 3] = [
    ("fuzz-rs256", SigningAlgorithm::Rs256, include_bytes!("../keys/rs256.pk8")),
    ("fuzz-es256", SigningAlgorithm::Es256, include_bytes!("../keys/es256.pk8")),
    ("fuzz-eddsa", SigningAlgorithm::EdDsa, include_bytes!("../keys/eddsa.pk8")),
];

/// A public key as AWS-LC verifies it directly, without `jsonwebtoken`: the
/// targets' second opinion on every accepted signature.
#[derive(Debug)]
pub struct PublicKey {
    pub algorithm: SigningAlgorithm,
    bytes: Vec<u8>,
}

impl PublicKey {
    pub fn signed(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &'static dyn signature::VerificationAlgorithm = match self.algorithm {
            SigningAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            SigningAlgorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            SigningAlgorithm::EdDsa => &signature::ED25519,
        };
        signature::UnparsedPublicKey::new(algorithm, &self.bytes).verify(message, signature).is_ok()
    }
}

#[derive(Debug)]
pub struct Fixture {
    /// Test stage, as the service verifies access tokens.
    pub verifier: AccessTokenVerifier,
    pub live_verifier: AccessTokenVerifier,
    /// kid → key, as the key ring hands the verifier.
    pub verifying: HashMap<String, VerifyingKey>,
    pub public_keys: HashMap<String, PublicKey>,
    pub signers: Vec<SigningKey>,
    pub key_id: ApiKeyId,
    pub secrets: ApiKeySecrets,
    pub stranger_secrets: ApiKeySecrets,
    pub assertions: AssertionVerifier,
    pub refresh_test: RefreshTokenCodec,
    pub refresh_live: RefreshTokenCodec,
    pub webhook_secrets: Vec<WebhookSecret>,
    pub webhook_keys: Vec<webhook::VerifyingKey>,
}

/// The public half of a PKCS#8 key: raw bytes for AWS-LC, and the JWK the
/// key ring stores (the same fields `jwt::generate_key_pair` writes).
fn public_half(kid: &str, algorithm: SigningAlgorithm, der: &[u8]) -> (Vec<u8>, serde_json::Value) {
    let (bytes, mut jwk) = match algorithm {
        SigningAlgorithm::Rs256 => {
            let pair = signature::RsaKeyPair::from_pkcs8(der).expect("fixed RSA key");
            let public = pair.public_key();
            let jwk = serde_json::json!({
                "kty": "RSA",
                "n": b64url(public.modulus().big_endian_without_leading_zero()),
                "e": b64url(public.exponent().big_endian_without_leading_zero()),
            });
            (public.as_ref().to_vec(), jwk)
        }
        SigningAlgorithm::Es256 => {
            let pair = signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .expect("fixed P-256 key");
            let point = pair.public_key().as_ref().to_vec();
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..]),
            });
            (point, jwk)
        }
        SigningAlgorithm::EdDsa => {
            let pair = signature::Ed25519KeyPair::from_pkcs8(der).expect("fixed Ed25519 key");
            let point = pair.public_key().as_ref().to_vec();
            let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64url(&point) });
            (point, jwk)
        }
    };
    jwk["kid"] = kid.into();
    jwk["alg"] = algorithm.as_str().into();
    jwk["use"] = "sig".into();
    (bytes, jwk)
}

fn build() -> Fixture {
    let mut verifying = HashMap::new();
    let mut public_keys = HashMap::new();
    let mut signers = Vec::new();
    for (kid, algorithm, der) in SIGNING_KEYS {
        let (bytes, jwk) = public_half(kid, algorithm, der);
        let key = VerifyingKey::from_jwk(kid.to_owned(), algorithm, &jwk.to_string()).expect("fixed JWK");
        verifying.insert(kid.to_owned(), key);
        public_keys.insert(kid.to_owned(), PublicKey { algorithm, bytes });
        signers.push(SigningKey::from_pkcs8(kid.to_owned(), algorithm, der).expect("fixed signing key"));
    }
    let sealing = SealingKey::from_bytes(SEALING_KEY);
    // As `ExchangeService::new` builds it.
    let audiences = vec![ISSUER.to_owned(), format!("{ISSUER}{}", latchkey::service::exchange::TOKEN_PATH)];
    let webhook_secrets: Vec<WebhookSecret> = [STANDARD_SECRET, ROTATED_SECRET, CLASSIC_SECRET]
        .into_iter()
        .map(|text| WebhookSecret::new(text).expect("fixed webhook secret"))
        .collect();
    Fixture {
        verifier: AccessTokenVerifier::new(ISSUER, AUDIENCE, Stage::Test.as_str()),
        live_verifier: AccessTokenVerifier::new(ISSUER, AUDIENCE, Stage::Live.as_str()),
        verifying,
        public_keys,
        signers,
        key_id: ApiKeyId::parse(KEY_ID).expect("fixed key id"),
        secrets: ApiKeySecrets::new(&sealing),
        stranger_secrets: ApiKeySecrets::new(&SealingKey::from_bytes(STRANGER_SEALING_KEY)),
        assertions: AssertionVerifier::new(audiences, sealing.mac_key("assertion-replay/v1")),
        refresh_test: RefreshTokenCodec::new(&sealing, Stage::Test),
        refresh_live: RefreshTokenCodec::new(&sealing, Stage::Live),
        webhook_keys: webhook_secrets.iter().map(webhook::VerifyingKey::new).collect(),
        webhook_secrets,
    }
}

/// Built on first use, then shared by every execution.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: LazyLock<Fixture> = LazyLock::new(build);
    &FIXTURE
}
