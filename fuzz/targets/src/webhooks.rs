//! Inbound webhooks: the `webhook` function's request → delivery step, then
//! both signature schemes' header parsing and verification.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac as _};
use lambda_http::Request;
use latchkey::error::ApiError;
use latchkey::service::webhooks::Delivery;
use latchkey::webhook::{
    DEFAULT_TOLERANCE_SECS, Freshness, Scheme, Verified, WebhookRejection, body_id, verify_sha256, verify_standard,
};
use sha2::Sha256;

use crate::fixture::{NOW, fixture};
use crate::{Outcome, assert_refused, message};

/// Where the webhook target's deliveries go.
pub const WEBHOOK_TARGET: &str = "/v1/webhooks/fuzz";

const FRESHNESS: Freshness = Freshness { now: NOW, tolerance: DEFAULT_TOLERANCE_SECS };

/// Base64 as Standard Webhooks senders may write it: padding optional.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn check_timestamp(timestamp: Option<u64>) {
    let at = timestamp.expect("a timestamp was checked");
    assert!(at.abs_diff(NOW) <= DEFAULT_TOLERANCE_SECS, "accepted a timestamp {at} outside the tolerance");
}

/// An accepted Standard Webhooks delivery: one of the first 16 listed `v1`
/// signatures is an HMAC, with one of the fixed secrets, of
/// `{id}.{timestamp}.{body}` as received.
fn check_standard(delivery: &Delivery<'_>, verified: &Verified) {
    let headers = &delivery.standard;
    let id = headers.id.expect("id").trim();
    let timestamp = headers.timestamp.expect("timestamp").trim();
    assert_eq!((verified.scheme, verified.id.as_str()), (Scheme::Standard, id));
    check_timestamp(verified.timestamp);
    let listed: Vec<Vec<u8>> = headers
        .signature
        .expect("signature")
        .split_ascii_whitespace()
        .take(16)
        .filter_map(|entry| LENIENT_BASE64.decode(entry.strip_prefix("v1,")?).ok())
        .collect();
    let signed = fixture().webhook_secrets.iter().filter_map(|secret| secret.standard_key().ok()).any(|key| {
        let expected = hmac_sha256(&key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", delivery.body]);
        listed.iter().any(|candidate| candidate.as_slice() == expected)
    });
    assert!(signed, "accepted a Standard Webhooks delivery no fixed secret signed");
}

/// An accepted classic delivery: `sha256=<hex>` is an HMAC, with one of the
/// fixed secrets, of the body (or `{timestamp}.{body}`).
fn check_sha256(delivery: &Delivery<'_>, verified: &Verified) {
    let headers = &delivery.sha256;
    assert_eq!((verified.scheme, verified.id.clone()), (Scheme::Sha256, body_id(delivery.body)));
    if headers.timestamp.is_some() {
        check_timestamp(verified.timestamp);
    } else {
        assert_eq!(verified.timestamp, None);
    }
    let (_, hex) = headers.signature.expect("signature").trim().split_once('=').expect("sha256=");
    let signed = fixture().webhook_secrets.iter().any(|secret| {
        let key = secret.sha256_key();
        let expected = match verified.timestamp {
            Some(at) => hmac_sha256(key, &[at.to_string().as_bytes(), b".", delivery.body]),
            None => hmac_sha256(key, &[delivery.body]),
        };
        let expected = expected.iter().fold(String::with_capacity(64), |mut out, byte| {
            use std::fmt::Write as _;
            let _ = write!(out, "{byte:02x}");
            out
        });
        expected.eq_ignore_ascii_case(hex)
    });
    assert!(signed, "accepted a sha256 delivery no fixed secret signed");
}

/// A refusal says what to fix and nothing of the secrets.
fn check_rejection(rejection: WebhookRejection) {
    let message = rejection.to_string();
    for secret in &fixture().webhook_secrets {
        assert!(!message.contains(secret.expose()), "a rejection quoted a secret");
    }
    assert_refused(&ApiError::from(rejection));
}

/// `webhook::read_delivery`, then each scheme whose headers are present,
/// verified with the fixed secrets at the fixed clock.
pub(crate) fn check_delivery(req: &Request) -> Outcome {
    let delivery = match webhook::read_delivery(req) {
        Ok(delivery) => delivery,
        Err(err) => return assert_refused(&err),
    };
    let keys = &fixture().webhook_keys;
    let mut outcome = Outcome::Refused;
    if delivery.standard.any() {
        match verify_standard(keys, &delivery.standard, delivery.body, FRESHNESS) {
            Ok(verified) => {
                check_standard(&delivery, &verified);
                outcome = Outcome::Accepted;
            }
            Err(rejection) => check_rejection(rejection),
        }
    }
    if delivery.sha256.signature.is_some() {
        match verify_sha256(keys, &delivery.sha256, delivery.body, FRESHNESS) {
            Ok(verified) => {
                check_sha256(&delivery, &verified);
                outcome = Outcome::Accepted;
            }
            Err(rejection) => check_rejection(rejection),
        }
    }
    outcome
}

/// Webhook header parsing: the input is the delivery's headers and body
/// (see [`message`]), posted to [`WEBHOOK_TARGET`].
pub fn webhook_headers(data: &[u8]) -> Outcome {
    message::request_to("POST", WEBHOOK_TARGET, data).map_or(Outcome::Refused, |req| check_delivery(&req))
}
