//! Webhook signatures, both directions, with no I/O: the `webhook` function
//! verifies with this module, and a service that sends webhooks signs with it.
//!
//! Two schemes:
//! - [Standard Webhooks](https://www.standardwebhooks.com): headers
//!   `webhook-id`, `webhook-timestamp`, `webhook-signature` (a space-separated
//!   list of `v1,<base64 HMAC-SHA256>`), signed content
//!   `{id}.{timestamp}.{body}`, secret `whsec_<base64>`. Svix sends the same
//!   scheme under `svix-*` header names.
//! - The classic `sha256` scheme: `X-Webhook-Signature: sha256=<hex
//!   HMAC-SHA256(secret, body)>` (GitHub sends the same value as
//!   `X-Hub-Signature-256`). With the optional `X-Webhook-Timestamp: <unix
//!   seconds>` the signed content is `{timestamp}.{body}` instead, so the
//!   timestamp cannot be changed and stale deliveries are refused.
//!
//! Every comparison is constant-time, and verification reads the exact bytes
//! received: never a re-serialised body.
//!
//! ```
//! use latchkey::webhook::{OutboundWebhook, WebhookSecret};
//! let secret = WebhookSecret::generate();
//! let webhook = OutboundWebhook { id: "msg_1", timestamp: 1_700_000_000, body: br#"{"type":"ping"}"# };
//! for (name, value) in webhook.standard_headers(std::slice::from_ref(&secret)).unwrap() {
//!     println!("{name}: {value}");
//! }
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The prefix Standard Webhooks secrets carry.
pub const STANDARD_SECRET_PREFIX: &str = "whsec_";
/// The Standard Webhooks tolerance, and the default for every source.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// Header names, lower case as HTTP/2 and API Gateway deliver them.
pub mod header {
    pub const WEBHOOK_ID: &str = "webhook-id";
    pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
    pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
    /// Svix's names for the same three headers.
    pub const SVIX_ID: &str = "svix-id";
    pub const SVIX_TIMESTAMP: &str = "svix-timestamp";
    pub const SVIX_SIGNATURE: &str = "svix-signature";
    pub const SIGNATURE: &str = "x-webhook-signature";
    pub const TIMESTAMP: &str = "x-webhook-timestamp";
    /// GitHub's name for the `sha256=` signature.
    pub const HUB_SIGNATURE_256: &str = "x-hub-signature-256";
}

/// Bounds that keep parsing cheap whatever a sender puts in a header.
const MAX_ID_LEN: usize = 256;
const MAX_SIGNATURE_HEADER_LEN: usize = 4096;
const MAX_SIGNATURES: usize = 16;

/// Base64 as the Standard Webhooks libraries read it: padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// A signature scheme a source accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    Standard,
    /// `X-Webhook-Signature: sha256=<hex>`, optional `X-Webhook-Timestamp`.
    Sha256,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Standard => "standard",
            Scheme::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "standard" => Ok(Scheme::Standard),
            "sha256" => Ok(Scheme::Sha256),
            other => Err(format!("scheme must be `standard` or `sha256`, not `{other}`")),
        }
    }
}

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(pub &'static str);

/// A shared webhook secret, as the sender shows it. For the `standard`
/// scheme the HMAC key is the base64 after `whsec_`; for `sha256` it is the
/// text's own bytes, as GitHub and most classic senders use it.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// 256 random bits as `whsec_<base64>`: valid for both schemes.
    pub fn generate() -> Self {
        let key = Zeroizing::new(crate::crypto::random_bytes(32));
        Self(
            format!("{STANDARD_SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(key.as_slice()))
                .into(),
        )
    }

    /// Printable ASCII, up to 256 characters, not starting or ending with a
    /// space (a pasted secret with a stray blank would never match).
    pub fn new(text: impl Into<String>) -> Result<Self, SecretError> {
        let text = text.into();
        if text.is_empty()
            || text.len() > 256
            || !text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            || text.starts_with(' ')
            || text.ends_with(' ')
        {
            return Err(SecretError(
                "a webhook secret is 1-256 printable ASCII characters, without leading or trailing spaces",
            ));
        }
        Ok(Self(text.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The last four characters, for listings.
    pub fn last_four(&self) -> String {
        let text = self.expose();
        text[text.len().saturating_sub(4)..].to_owned()
    }

    /// The Standard Webhooks key: the base64 after an optional `whsec_`.
    pub fn standard_key(&self) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let text = self.expose();
        let encoded = text.strip_prefix(STANDARD_SECRET_PREFIX).unwrap_or(text);
        let key = Zeroizing::new(
            LENIENT_BASE64
                .decode(encoded)
                .map_err(|_| SecretError("a Standard Webhooks secret is base64, optionally prefixed with whsec_"))?,
        );
        if key.is_empty() {
            return Err(SecretError("a Standard Webhooks secret may not be empty"));
        }
        Ok(key)
    }

    /// The classic scheme's key: the secret's bytes as written.
    pub fn sha256_key(&self) -> &[u8] {
        self.expose().as_bytes()
    }

    /// Refuses secrets too weak to register for `schemes`: Standard Webhooks
    /// secrets must decode to 24-64 bytes (the spec's range), classic ones
    /// must be at least 16 characters.
    pub fn check_strength(&self, schemes: &[Scheme]) -> Result<(), SecretError> {
        if schemes.contains(&Scheme::Standard) && !(24..=64).contains(&self.standard_key()?.len()) {
            return Err(SecretError("a Standard Webhooks secret must decode to 24-64 bytes (whsec_ + base64)"));
        }
        if schemes.contains(&Scheme::Sha256) && self.expose().len() < 16 {
            return Err(SecretError("a sha256 webhook secret must be at least 16 characters"));
        }
        Ok(())
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

fn tag(mut mac: HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `v1,<base64>` over `{id}.{timestamp}.{body}`.
pub fn sign_standard(secret: &WebhookSecret, id: &str, timestamp: u64, body: &[u8]) -> Result<String, SecretError> {
    let key = secret.standard_key()?;
    let signature = tag(mac(&key), &[id.as_bytes(), b".", timestamp.to_string().as_bytes(), b".", body]);
    Ok(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(signature)))
}

/// `sha256=<hex>` over the body, or over `{timestamp}.{body}` when a
/// timestamp is sent alongside.
pub fn sign_sha256(secret: &WebhookSecret, timestamp: Option<u64>, body: &[u8]) -> String {
    format!("sha256={}", crate::crypto::hex(&sha256_tag(mac(secret.sha256_key()), timestamp, body)))
}

fn sha256_tag(mac: HmacSha256, timestamp: Option<u64>, body: &[u8]) -> [u8; 32] {
    match timestamp {
        Some(at) => tag(mac, &[at.to_string().as_bytes(), b".", body]),
        None => tag(mac, &[body]),
    }
}

/// A webhook to send: sign it for either scheme.
#[derive(Debug, Clone, Copy)]
pub struct OutboundWebhook<'a> {
    pub id: &'a str,
    /// Unix seconds of this delivery attempt.
    pub timestamp: u64,
    pub body: &'a [u8],
}

impl OutboundWebhook<'_> {
    /// The three Standard Webhooks headers, with one signature per secret
    /// (newest first during a rotation, so either side may move first).
    pub fn standard_headers(&self, secrets: &[WebhookSecret]) -> Result<[(&'static str, String); 3], SecretError> {
        let signatures = secrets
            .iter()
            .map(|secret| sign_standard(secret, self.id, self.timestamp, self.body))
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(SecretError("at least one secret is needed to sign"));
        }
        Ok([
            (header::WEBHOOK_ID, self.id.to_owned()),
            (header::WEBHOOK_TIMESTAMP, self.timestamp.to_string()),
            (header::WEBHOOK_SIGNATURE, signatures.join(" ")),
        ])
    }

    /// `X-Webhook-Timestamp` and `X-Webhook-Signature` for the classic scheme.
    pub fn sha256_headers(&self, secret: &WebhookSecret) -> [(&'static str, String); 2] {
        [
            ("X-Webhook-Timestamp", self.timestamp.to_string()),
            ("X-Webhook-Signature", sign_sha256(secret, Some(self.timestamp), self.body)),
        ]
    }
}

/// One secret, keyed once for verification (a source keeps these cached).
#[derive(Clone)]
pub struct VerifyingKey {
    /// `None` when the secret is not base64, so cannot serve Standard Webhooks.
    standard: Option<HmacSha256>,
    sha256: HmacSha256,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyingKey([redacted])")
    }
}

impl VerifyingKey {
    pub fn new(secret: &WebhookSecret) -> Self {
        Self { standard: secret.standard_key().ok().map(|key| mac(&key)), sha256: mac(secret.sha256_key()) }
    }
}

/// The Standard Webhooks headers of a delivery, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl StandardHeaders<'_> {
    pub fn any(&self) -> bool {
        self.id.is_some() || self.timestamp.is_some() || self.signature.is_some()
    }
}

/// The classic scheme's headers of a delivery, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256Headers<'a> {
    pub signature: Option<&'a str>,
    pub timestamp: Option<&'a str>,
}

/// How much clock difference a source forgives, and the clock to check against.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub now: u64,
    pub tolerance: u64,
}

/// An authentic, fresh delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    /// The deduplication key: `webhook-id`, or `sha256:<hex SHA-256 of the
    /// body>` for the classic scheme, whose senders send no signed id.
    pub id: String,
    /// The signed timestamp, when the delivery carried one.
    pub timestamp: Option<u64>,
}

/// Why a delivery was refused. Every variant is a 401; the text tells the
/// sender what to fix and never anything about the secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    #[error("{header} header is malformed: {reason}")]
    MalformedHeader { header: &'static str, reason: &'static str },
    #[error(
        "{header} is {age} s in the past; this source accepts deliveries signed within {tolerance} s \
         (a replay, or a delayed retry that was not re-signed)"
    )]
    Stale { header: &'static str, age: u64, tolerance: u64 },
    #[error("{header} is {ahead} s in the future; this source accepts at most {tolerance} s of clock skew")]
    Future { header: &'static str, ahead: u64, tolerance: u64 },
    #[error("webhook-signature holds no v1 signature")]
    NoSignature,
    #[error("no signature matches this source's secrets (wrong secret, or the body changed after signing)")]
    SignatureMismatch,
    #[error("missing signature: this source expects {0}")]
    Unsigned(&'static str),
}

fn check_timestamp(header: &'static str, raw: &str, freshness: Freshness) -> Result<u64, WebhookRejection> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 15 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookRejection::MalformedHeader { header, reason: "expected integer Unix seconds" });
    }
    let at: u64 = raw.parse().map_err(|_| WebhookRejection::MalformedHeader { header, reason: "out of range" })?;
    let Freshness { now, tolerance } = freshness;
    if at < now && now - at > tolerance {
        return Err(WebhookRejection::Stale { header, age: now - at, tolerance });
    }
    if at > now && at - now > tolerance {
        return Err(WebhookRejection::Future { header, ahead: at - now, tolerance });
    }
    Ok(at)
}

/// Constant-time: whether any expected tag equals any candidate.
fn any_match(expected: &[[u8; 32]], candidates: &[[u8; 32]]) -> bool {
    let mut matched = Choice::from(0);
    for tag in expected {
        for candidate in candidates {
            matched |= tag.ct_eq(candidate);
        }
    }
    matched.into()
}

/// Verifies a Standard Webhooks delivery: headers present and well formed,
/// timestamp within the tolerance, and any `v1` signature made with any key.
pub fn verify_standard<'k>(
    keys: impl IntoIterator<Item = &'k VerifyingKey>,
    headers: &StandardHeaders<'_>,
    body: &[u8],
    freshness: Freshness,
) -> Result<Verified, WebhookRejection> {
    let id = headers.id.ok_or(WebhookRejection::MissingHeader(header::WEBHOOK_ID))?.trim();
    let timestamp = headers.timestamp.ok_or(WebhookRejection::MissingHeader(header::WEBHOOK_TIMESTAMP))?;
    let signature = headers.signature.ok_or(WebhookRejection::MissingHeader(header::WEBHOOK_SIGNATURE))?;
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookRejection::MalformedHeader {
            header: header::WEBHOOK_ID,
            reason: "expected 1-256 printable ASCII characters",
        });
    }
    let timestamp_secs = check_timestamp(header::WEBHOOK_TIMESTAMP, timestamp, freshness)?;
    if signature.len() > MAX_SIGNATURE_HEADER_LEN {
        return Err(WebhookRejection::MalformedHeader { header: header::WEBHOOK_SIGNATURE, reason: "too long" });
    }
    // Other versions (`v1a`, future ones) and unreadable entries are skipped,
    // as the reference libraries do; only a header with no usable `v1` fails.
    let candidates: Vec<[u8; 32]> = signature
        .split_ascii_whitespace()
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| LENIENT_BASE64.decode(encoded).ok()?.try_into().ok())
        .collect();
    if candidates.is_empty() {
        return Err(WebhookRejection::NoSignature);
    }
    let timestamp_text = timestamp.trim().as_bytes();
    let expected: Vec<[u8; 32]> = keys
        .into_iter()
        .filter_map(|key| key.standard.clone())
        .map(|mac| tag(mac, &[id.as_bytes(), b".", timestamp_text, b".", body]))
        .collect();
    if !any_match(&expected, &candidates) {
        return Err(WebhookRejection::SignatureMismatch);
    }
    Ok(Verified { scheme: Scheme::Standard, id: id.to_owned(), timestamp: Some(timestamp_secs) })
}

/// Verifies a classic delivery: `sha256=<hex>` over the body, or over
/// `{timestamp}.{body}` (and fresh) when `X-Webhook-Timestamp` is present.
pub fn verify_sha256<'k>(
    keys: impl IntoIterator<Item = &'k VerifyingKey>,
    headers: &Sha256Headers<'_>,
    body: &[u8],
    freshness: Freshness,
) -> Result<Verified, WebhookRejection> {
    let signature = headers.signature.ok_or(WebhookRejection::MissingHeader(header::SIGNATURE))?.trim();
    let malformed =
        WebhookRejection::MalformedHeader { header: header::SIGNATURE, reason: "expected sha256=<64 hex digits>" };
    let hex = match signature.split_once('=') {
        Some((algorithm, hex)) if algorithm.eq_ignore_ascii_case("sha256") => hex,
        _ => return Err(malformed),
    };
    let candidate = decode_hex(hex).ok_or(malformed)?;
    let timestamp = headers.timestamp.map(|raw| check_timestamp(header::TIMESTAMP, raw, freshness)).transpose()?;
    let expected: Vec<[u8; 32]> = keys.into_iter().map(|key| sha256_tag(key.sha256.clone(), timestamp, body)).collect();
    if !any_match(&expected, &[candidate]) {
        return Err(WebhookRejection::SignatureMismatch);
    }
    Ok(Verified { scheme: Scheme::Sha256, id: body_id(body), timestamp })
}

/// The classic scheme's deduplication key.
pub fn body_id(body: &[u8]) -> String {
    format!("sha256:{}", crate::crypto::hex(&Sha256::digest(body)))
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16);
        *slot = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    //! The Standard Webhooks cases are the reference libraries' own tests
    //! (standard-webhooks/standard-webhooks, `libraries/python/tests` and
    //! `libraries/go/webhook_test.go`), with their secret, id and payload.
    use super::*;

    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
    const SECRET: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: u64 = 1_795_435_200;
    const FRESH: Freshness = Freshness { now: NOW, tolerance: 300 };

    fn secret(text: &str) -> WebhookSecret {
        WebhookSecret::new(text).expect("valid secret")
    }

    /// A delivery signed the way the reference test helper does.
    struct Delivery {
        timestamp: String,
        signature: String,
    }

    impl Delivery {
        fn at(timestamp: u64) -> Self {
            Self {
                timestamp: timestamp.to_string(),
                signature: sign_standard(&secret(SECRET), MSG_ID, timestamp, PAYLOAD).expect("signs"),
            }
        }

        fn headers(&self) -> StandardHeaders<'_> {
            StandardHeaders { id: Some(MSG_ID), timestamp: Some(&self.timestamp), signature: Some(&self.signature) }
        }
    }

    fn verify(secret_text: &str, headers: &StandardHeaders<'_>) -> Result<Verified, WebhookRejection> {
        verify_standard([&VerifyingKey::new(&secret(secret_text))], headers, PAYLOAD, FRESH)
    }

    #[test]
    fn the_reference_sign_vector() {
        let signature =
            sign_standard(&secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), MSG_ID, 1_614_265_330, PAYLOAD)
                .expect("signs");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_valid_signature_is_valid_with_and_without_the_prefix() {
        let delivery = Delivery::at(NOW);
        let verified = verify(SECRET, &delivery.headers()).expect("valid");
        assert_eq!(verified, Verified { scheme: Scheme::Standard, id: MSG_ID.into(), timestamp: Some(NOW) });
        verify(&format!("whsec_{SECRET}"), &delivery.headers()).expect("valid with whsec_");
    }

    #[test]
    fn missing_headers_are_named() {
        let delivery = Delivery::at(NOW);
        for (missing, expected) in [
            (StandardHeaders { id: None, ..delivery.headers() }, header::WEBHOOK_ID),
            (StandardHeaders { timestamp: None, ..delivery.headers() }, header::WEBHOOK_TIMESTAMP),
            (StandardHeaders { signature: None, ..delivery.headers() }, header::WEBHOOK_SIGNATURE),
        ] {
            assert_eq!(verify(SECRET, &missing), Err(WebhookRejection::MissingHeader(expected)));
        }
    }

    #[test]
    fn an_invalid_timestamp_is_malformed() {
        let delivery = Delivery::at(NOW);
        for bad in ["hello", "", "-5", "1.5", "99999999999999999999"] {
            let headers = StandardHeaders { timestamp: Some(bad), ..delivery.headers() };
            assert!(
                matches!(verify(SECRET, &headers), Err(WebhookRejection::MalformedHeader { .. })),
                "{bad:?}: {:?}",
                verify(SECRET, &headers)
            );
        }
    }

    #[test]
    fn invalid_and_partial_signatures_fail() {
        let delivery = Delivery::at(NOW);
        let invalid = StandardHeaders {
            signature: Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
            ..delivery.headers()
        };
        assert_eq!(verify(SECRET, &invalid), Err(WebhookRejection::SignatureMismatch));
        let partial = StandardHeaders { signature: Some("v1,"), ..delivery.headers() };
        assert_eq!(verify(SECRET, &partial), Err(WebhookRejection::NoSignature));
        let truncated = &delivery.signature[..delivery.signature.len() - 4];
        let truncated = StandardHeaders { signature: Some(truncated), ..delivery.headers() };
        assert!(verify(SECRET, &truncated).is_err());
        let other_version = delivery.signature.replacen("v1,", "v2,", 1);
        let other_version = StandardHeaders { signature: Some(&other_version), ..delivery.headers() };
        assert_eq!(verify(SECRET, &other_version), Err(WebhookRejection::NoSignature));
    }

    #[test]
    fn tolerance_is_300_seconds_either_way() {
        for offset in [-300i64, 0, 300] {
            let delivery = Delivery::at(NOW.checked_add_signed(offset).expect("in range"));
            verify(SECRET, &delivery.headers()).unwrap_or_else(|e| panic!("{offset}: {e}"));
        }
        let old = Delivery::at(NOW - 301);
        assert_eq!(
            verify(SECRET, &old.headers()),
            Err(WebhookRejection::Stale { header: header::WEBHOOK_TIMESTAMP, age: 301, tolerance: 300 })
        );
        let new = Delivery::at(NOW + 301);
        assert_eq!(
            verify(SECRET, &new.headers()),
            Err(WebhookRejection::Future { header: header::WEBHOOK_TIMESTAMP, ahead: 301, tolerance: 300 })
        );
        let message = verify(SECRET, &old.headers()).expect_err("stale").to_string();
        assert!(message.contains("301 s in the past"), "{message}");
    }

    #[test]
    fn any_listed_signature_may_match() {
        let delivery = Delivery::at(NOW);
        let list = [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            &delivery.signature,
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        ]
        .join(" ");
        verify(SECRET, &StandardHeaders { signature: Some(&list), ..delivery.headers() }).expect("valid multi-sig");
    }

    #[test]
    fn unpadded_secrets_decode_like_the_reference_libraries() {
        for (given, padded) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS="),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr=="),
        ] {
            let signature = sign_standard(&secret(padded), MSG_ID, NOW, PAYLOAD).expect("signs");
            let timestamp = NOW.to_string();
            let headers =
                StandardHeaders { id: Some(MSG_ID), timestamp: Some(&timestamp), signature: Some(&signature) };
            verify(given, &headers).unwrap_or_else(|e| panic!("{given}: {e}"));
            verify(&format!("whsec_{given}"), &headers).unwrap_or_else(|e| panic!("whsec_{given}: {e}"));
        }
    }

    #[test]
    fn empty_and_non_base64_secrets_cannot_sign_standard() {
        assert!(WebhookSecret::new("").is_err());
        assert!(secret("whsec_").standard_key().is_err());
        assert!(secret("not*base64").standard_key().is_err());
        // …and cannot verify either, whatever the signature says.
        let delivery = Delivery::at(NOW);
        assert_eq!(verify("not*base64", &delivery.headers()), Err(WebhookRejection::SignatureMismatch));
    }

    #[test]
    fn a_changed_id_timestamp_or_body_breaks_the_signature() {
        let delivery = Delivery::at(NOW);
        let key = VerifyingKey::new(&secret(SECRET));
        let other_id = StandardHeaders { id: Some("msg_other"), ..delivery.headers() };
        assert_eq!(verify(SECRET, &other_id), Err(WebhookRejection::SignatureMismatch));
        let later = (NOW + 1).to_string();
        let other_time = StandardHeaders { timestamp: Some(&later), ..delivery.headers() };
        assert_eq!(verify(SECRET, &other_time), Err(WebhookRejection::SignatureMismatch));
        assert_eq!(
            verify_standard([&key], &delivery.headers(), br#"{"test": 2432232315}"#, FRESH),
            Err(WebhookRejection::SignatureMismatch)
        );
    }

    #[test]
    fn rotation_signs_with_every_secret_and_verifies_with_any() {
        let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
        let webhook = OutboundWebhook { id: "msg_rotate", timestamp: NOW, body: b"{}" };
        let [id, timestamp, signature] = webhook.standard_headers(&[new.clone(), old.clone()]).expect("signs");
        assert_eq!(signature.1.split(' ').count(), 2);
        let headers = StandardHeaders { id: Some(&id.1), timestamp: Some(&timestamp.1), signature: Some(&signature.1) };
        for only in [&old, &new] {
            verify_standard([&VerifyingKey::new(only)], &headers, b"{}", FRESH).expect("either secret verifies");
        }
        let stranger = VerifyingKey::new(&WebhookSecret::generate());
        assert_eq!(verify_standard([&stranger], &headers, b"{}", FRESH), Err(WebhookRejection::SignatureMismatch));
    }

    /// The README's sender example, kept compiling and verifying.
    #[test]
    fn the_readme_sender_example_verifies() {
        use std::time::{SystemTime, UNIX_EPOCH};
        fn webhook_headers(
            secrets: &[WebhookSecret],
            id: &str,
            body: &[u8],
        ) -> Result<Vec<(&'static str, String)>, Box<dyn std::error::Error>> {
            let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            let webhook = OutboundWebhook { id, timestamp, body };
            Ok(webhook.standard_headers(secrets)?.to_vec())
        }
        let secret = WebhookSecret::generate();
        let headers = webhook_headers(std::slice::from_ref(&secret), "msg_readme", b"{}").expect("signs");
        let value = |name| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        let received = StandardHeaders {
            id: value(header::WEBHOOK_ID),
            timestamp: value(header::WEBHOOK_TIMESTAMP),
            signature: value(header::WEBHOOK_SIGNATURE),
        };
        let freshness = Freshness { now: crate::time::now_secs(), tolerance: 300 };
        verify_standard([&VerifyingKey::new(&secret)], &received, b"{}", freshness).expect("verifies");
        assert!(webhook_headers(&[], "msg_readme", b"{}").is_err(), "no secret, no signature");
    }

    #[test]
    fn the_classic_scheme_matches_githubs_documented_example() {
        // docs.github.com, "Validating webhook deliveries": this secret and
        // payload give this X-Hub-Signature-256.
        let secret = secret("It's a Secret to Everybody");
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign_sha256(&secret, None, b"Hello, World!"), expected);
        let headers = Sha256Headers { signature: Some(expected), timestamp: None };
        let verified = verify_sha256([&VerifyingKey::new(&secret)], &headers, b"Hello, World!", FRESH).expect("valid");
        assert_eq!(verified.id, body_id(b"Hello, World!"));
        assert_eq!(verified.timestamp, None);
        let upper = expected.to_ascii_uppercase();
        let headers = Sha256Headers { signature: Some(&upper), timestamp: None };
        verify_sha256([&VerifyingKey::new(&secret)], &headers, b"Hello, World!", FRESH).expect("hex case-insensitive");
        assert_eq!(
            verify_sha256([&VerifyingKey::new(&secret)], &headers, b"Hello, World?", FRESH),
            Err(WebhookRejection::SignatureMismatch)
        );
    }

    #[test]
    fn a_classic_timestamp_is_signed_and_checked() {
        let secret = secret("classic-secret-0123456789");
        let key = VerifyingKey::new(&secret);
        let signed = sign_sha256(&secret, Some(NOW), b"{}");
        let now = NOW.to_string();
        let headers = Sha256Headers { signature: Some(&signed), timestamp: Some(&now) };
        assert_eq!(verify_sha256([&key], &headers, b"{}", FRESH).expect("valid").timestamp, Some(NOW));
        // Moving the timestamp (to dodge the window) breaks the signature.
        let moved = (NOW + 10).to_string();
        let headers = Sha256Headers { signature: Some(&signed), timestamp: Some(&moved) };
        assert_eq!(verify_sha256([&key], &headers, b"{}", FRESH), Err(WebhookRejection::SignatureMismatch));
        // A body-only signature does not pass once a timestamp is claimed.
        let body_only = sign_sha256(&secret, None, b"{}");
        let headers = Sha256Headers { signature: Some(&body_only), timestamp: Some(&now) };
        assert_eq!(verify_sha256([&key], &headers, b"{}", FRESH), Err(WebhookRejection::SignatureMismatch));
        let old = sign_sha256(&secret, Some(NOW - 301), b"{}");
        let then = (NOW - 301).to_string();
        let headers = Sha256Headers { signature: Some(&old), timestamp: Some(&then) };
        assert!(matches!(verify_sha256([&key], &headers, b"{}", FRESH), Err(WebhookRejection::Stale { .. })));
    }

    #[test]
    fn malformed_classic_signatures_are_refused() {
        let key = VerifyingKey::new(&secret("classic-secret-0123456789"));
        for bad in ["", "sha256=", "sha1=abcd", "sha256=zz", &format!("sha256={}", "a".repeat(63)), "deadbeef"] {
            let headers = Sha256Headers { signature: Some(bad), timestamp: None };
            assert!(
                matches!(verify_sha256([&key], &headers, b"{}", FRESH), Err(WebhookRejection::MalformedHeader { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn registration_refuses_weak_secrets() {
        assert!(WebhookSecret::generate().check_strength(&[Scheme::Standard, Scheme::Sha256]).is_ok());
        assert!(secret(SECRET).check_strength(&[Scheme::Standard]).is_ok(), "24 bytes is the minimum");
        assert!(secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS").check_strength(&[Scheme::Standard]).is_err());
        assert!(secret("short").check_strength(&[Scheme::Sha256]).is_err());
        assert!(secret("It's a Secret to Everybody").check_strength(&[Scheme::Sha256]).is_ok());
        assert!(WebhookSecret::new(" padded").is_err());
        assert!(WebhookSecret::new("line\nbreak").is_err());
        assert_eq!(format!("{:?}", WebhookSecret::generate()), "WebhookSecret([redacted])");
    }
}
