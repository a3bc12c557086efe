//! Client assertions for the jwt-bearer grant (RFC 7523): a short-lived JWT
//! a machine client signs with HS256 under its API-key secret.
//!
//! Everything here is decided without DynamoDB, because the server derives
//! the secret from the key id (see [`crate::credentials`]): a forged,
//! expired or over-long assertion costs no database call. Replay (each
//! assertion once) and the key's own state (revoked, expired, environment,
//! allowed IPs) are checked by the exchange afterwards.
//!
//! Pinned: the header's `alg` must be exactly `HS256` (so `none`, RS256 and
//! friends are refused before any key is touched), `kid` must be an API key
//! id, `sub` must equal `kid`, `iat` and `exp` are required with `exp` at
//! most [`MAX_LIFETIME_SECS`] after `iat`. `iss` is the client's choice; `aud`
//! is optional but, when present, must name this issuer or its token
//! endpoint. `crit` is refused (no extension is understood).

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;

use crate::credentials::ApiKeySecrets;
use crate::crypto::{MacKey, b64url_decode, hex};
use crate::domain::ApiKeyId;
use crate::error::ApiError;
use crate::jwt::{LEEWAY_SECS, MAX_TOKEN_BYTES};

/// Longest `exp - iat` accepted.
pub const MAX_LIFETIME_SECS: u64 = 600;
/// Longest `jti` accepted.
const MAX_JTI_CHARS: usize = 256;

/// Why an assertion was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionRejection {
    Malformed,
    WrongAlgorithm,
    NoKeyId,
    BadSignature,
    SubjectMismatch,
    MissingClaims,
    Expired,
    IssuedInFuture,
    NotYetValid,
    LifetimeTooLong,
    WrongAudience,
    Replayed,
}

impl AssertionRejection {
    pub fn description(self) -> &'static str {
        match self {
            AssertionRejection::Malformed => "the assertion is not a well-formed JWT",
            AssertionRejection::WrongAlgorithm => "the assertion must be signed with HS256",
            AssertionRejection::NoKeyId => "the assertion's kid header must be an API key id",
            AssertionRejection::BadSignature => "the assertion signature is invalid",
            AssertionRejection::SubjectMismatch => "the assertion's sub must equal its kid",
            AssertionRejection::MissingClaims => "the assertion must carry sub, iat and exp",
            AssertionRejection::Expired => "the assertion has expired",
            AssertionRejection::IssuedInFuture => "the assertion's iat is in the future",
            AssertionRejection::NotYetValid => "the assertion is not valid yet (nbf)",
            AssertionRejection::LifetimeTooLong => "the assertion's exp must be at most 600 seconds after its iat",
            AssertionRejection::WrongAudience => "the assertion's aud names another server",
            AssertionRejection::Replayed => "the assertion was already used",
        }
    }
}

impl fmt::Display for AssertionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl From<AssertionRejection> for ApiError {
    fn from(rejection: AssertionRejection) -> Self {
        ApiError::InvalidToken(rejection.description())
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    nbf: Option<u64>,
    aud: Option<Audience>,
    jti: Option<String>,
}

/// An assertion whose signature and claims checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub key_id: ApiKeyId,
    pub expires_at: u64,
    /// Names this assertion for replay protection: a keyed hash of the key
    /// id and the `jti` (or, without one, the signature).
    pub replay_id: String,
}

/// Verifies assertions for one deployment.
pub struct AssertionVerifier {
    audiences: Vec<String>,
    replay_mac: MacKey,
}

impl fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionVerifier").field("audiences", &self.audiences).finish_non_exhaustive()
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, AssertionRejection> {
    let bytes = b64url_decode(part).ok_or(AssertionRejection::Malformed)?;
    // The whole segment must be UTF-8 (RFC 7519 §7.2): `from_slice` checks
    // only the strings it keeps and skips ignored members unchecked.
    let text = std::str::from_utf8(&bytes).map_err(|_| AssertionRejection::Malformed)?;
    serde_json::from_str(text).map_err(|_| AssertionRejection::Malformed)
}

impl AssertionVerifier {
    /// `audiences` are the values an `aud` claim may name (the issuer and the
    /// token endpoint's URL).
    pub fn new(audiences: Vec<String>, replay_mac: MacKey) -> Self {
        Self { audiences, replay_mac }
    }

    pub fn verify(
        &self,
        token: &str,
        secrets: &ApiKeySecrets,
        now: u64,
    ) -> Result<VerifiedAssertion, AssertionRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AssertionRejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_part), Some(claims_part), Some(signature_part), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionRejection::Malformed);
        };
        let header: Header = decode_json(header_part)?;
        if header.alg != "HS256" {
            return Err(AssertionRejection::WrongAlgorithm);
        }
        if header.crit.is_some() {
            return Err(AssertionRejection::Malformed);
        }
        let key_id =
            header.kid.as_deref().and_then(|kid| ApiKeyId::parse(kid).ok()).ok_or(AssertionRejection::NoKeyId)?;
        let signature = b64url_decode(signature_part).ok_or(AssertionRejection::Malformed)?;
        let signed = &token[..header_part.len() + 1 + claims_part.len()];
        // Every candidate is tried (each check is constant time).
        let matched = secrets.assertion_keys(&key_id).iter().fold(false, |found, key| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret().as_bytes())
                .expect("HMAC accepts any key length");
            mac.update(signed.as_bytes());
            mac.verify_slice(&signature).is_ok() | found
        });
        if !matched {
            return Err(AssertionRejection::BadSignature);
        }

        let claims: Claims = decode_json(claims_part)?;
        let (Some(sub), Some(iat), Some(exp)) = (claims.sub.as_deref(), claims.iat, claims.exp) else {
            return Err(AssertionRejection::MissingClaims);
        };
        if sub != key_id.as_str() {
            return Err(AssertionRejection::SubjectMismatch);
        }
        if exp < iat || exp - iat > MAX_LIFETIME_SECS {
            return Err(AssertionRejection::LifetimeTooLong);
        }
        if iat > now + LEEWAY_SECS {
            return Err(AssertionRejection::IssuedInFuture);
        }
        if exp + LEEWAY_SECS <= now {
            return Err(AssertionRejection::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(AssertionRejection::NotYetValid);
        }
        let named = match &claims.aud {
            None => true,
            Some(Audience::One(aud)) => self.audiences.contains(aud),
            Some(Audience::Many(auds)) => auds.iter().any(|aud| self.audiences.contains(aud)),
        };
        if !named {
            return Err(AssertionRejection::WrongAudience);
        }
        let replay_id = match claims.jti.as_deref() {
            Some(jti) if jti.is_empty() || jti.chars().count() > MAX_JTI_CHARS => {
                return Err(AssertionRejection::Malformed);
            }
            Some(jti) => self.replay_mac.sign(&[key_id.as_str().as_bytes(), b"jti", jti.as_bytes()]),
            None => self.replay_mac.sign(&[key_id.as_str().as_bytes(), b"sig", &signature]),
        };
        let replay_id = hex(&replay_id[..20]);
        Ok(VerifiedAssertion { key_id, expires_at: exp + LEEWAY_SECS, replay_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{SealingKey, b64url};
    use crate::domain::Stage;
    use secrecy::SecretString;

    const ISSUER: &str = "https://auth.example.com";

    fn setup() -> (ApiKeySecrets, AssertionVerifier, ApiKeyId) {
        let sealing = SealingKey::from_bytes([9u8; 32]);
        let verifier = AssertionVerifier::new(vec![ISSUER.into()], sealing.mac_key("assertion-replay/v1"));
        (ApiKeySecrets::new(&sealing), verifier, ApiKeyId::generate())
    }

    fn sign(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
        let signed = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key");
        mac.update(signed.as_bytes());
        format!("{signed}.{}", b64url(&mac.finalize().into_bytes()))
    }

    fn header(id: &ApiKeyId) -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": id.as_str()})
    }

    fn claims(id: &ApiKeyId, iat: u64, exp: u64) -> serde_json::Value {
        serde_json::json!({"sub": id.as_str(), "iat": iat, "exp": exp, "iss": "sdk"})
    }

    #[test]
    fn accepts_the_bare_secret_or_the_whole_key_as_hmac_key() {
        let (secrets, verifier, id) = setup();
        let now = 1_800_000_000;
        for key in [secrets.secret(&id), secrets.key_string(&id, Stage::Live), secrets.key_string(&id, Stage::Test)] {
            let token = sign(&header(&id), &claims(&id, now, now + 300), key.expose_secret().as_bytes());
            let accepted = verifier.verify(&token, &secrets, now).expect("valid");
            assert_eq!(accepted.key_id, id);
            assert_eq!(accepted.expires_at, now + 300 + LEEWAY_SECS);
        }
    }

    #[test]
    fn refuses_every_broken_assertion_for_its_reason() {
        let (secrets, verifier, id) = setup();
        let now = 1_800_000_000;
        let secret: SecretString = secrets.secret(&id);
        let key = secret.expose_secret().as_bytes();
        let check = |token: &str| verifier.verify(token, &secrets, now).expect_err("refused");

        let mut none = header(&id);
        none["alg"] = "none".into();
        let unsigned = format!(
            "{}.{}.",
            b64url(none.to_string().as_bytes()),
            b64url(claims(&id, now, now + 60).to_string().as_bytes())
        );
        assert_eq!(check(&unsigned), AssertionRejection::WrongAlgorithm);
        let mut rs = header(&id);
        rs["alg"] = "RS256".into();
        assert_eq!(check(&sign(&rs, &claims(&id, now, now + 60), key)), AssertionRejection::WrongAlgorithm);
        let mut lower = header(&id);
        lower["alg"] = "hs256".into();
        assert_eq!(check(&sign(&lower, &claims(&id, now, now + 60), key)), AssertionRejection::WrongAlgorithm);

        assert_eq!(check(&sign(&header(&id), &claims(&id, now, now + 60), b"guess")), AssertionRejection::BadSignature);
        let other = ApiKeyId::generate();
        assert_eq!(
            check(&sign(&header(&other), &claims(&other, now, now + 60), key)),
            AssertionRejection::BadSignature,
            "another key's kid"
        );
        assert_eq!(
            check(&sign(&header(&id), &claims(&other, now, now + 60), key)),
            AssertionRejection::SubjectMismatch
        );
        assert_eq!(check(&sign(&header(&id), &claims(&id, now - 700, now - 100), key)), AssertionRejection::Expired);
        assert_eq!(
            check(&sign(&header(&id), &claims(&id, now, now + 660), key)),
            AssertionRejection::LifetimeTooLong,
            "11 minutes"
        );
        assert_eq!(
            check(&sign(&header(&id), &claims(&id, now + 120, now + 300), key)),
            AssertionRejection::IssuedInFuture
        );
        let mut no_exp = claims(&id, now, now);
        no_exp.as_object_mut().expect("object").remove("exp");
        assert_eq!(check(&sign(&header(&id), &no_exp, key)), AssertionRejection::MissingClaims);
        let mut aud = claims(&id, now, now + 60);
        aud["aud"] = "https://elsewhere.example.com".into();
        assert_eq!(check(&sign(&header(&id), &aud, key)), AssertionRejection::WrongAudience);
        aud["aud"] = serde_json::json!(["x", ISSUER]);
        assert!(verifier.verify(&sign(&header(&id), &aud, key), &secrets, now).is_ok());
        let mut crit = header(&id);
        crit["crit"] = serde_json::json!(["exp"]);
        assert_eq!(check(&sign(&crit, &claims(&id, now, now + 60), key)), AssertionRejection::Malformed);
        let mut no_kid = header(&id);
        no_kid.as_object_mut().expect("object").remove("kid");
        assert_eq!(check(&sign(&no_kid, &claims(&id, now, now + 60), key)), AssertionRejection::NoKeyId);
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!", &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(verifier.verify(garbage, &secrets, now).is_err(), "{garbage:.20}");
        }
    }

    #[test]
    fn replay_ids_follow_the_jti_or_the_exact_token() {
        let (secrets, verifier, id) = setup();
        let now = 1_800_000_000;
        let secret = secrets.secret(&id);
        let key = secret.expose_secret().as_bytes();
        let mut with_jti = claims(&id, now, now + 60);
        with_jti["jti"] = "abc".into();
        let first = verifier.verify(&sign(&header(&id), &with_jti, key), &secrets, now).expect("valid");
        with_jti["exp"] = (now + 90).into();
        let second = verifier.verify(&sign(&header(&id), &with_jti, key), &secrets, now).expect("valid");
        assert_eq!(first.replay_id, second.replay_id, "same jti, same replay id");
        let a = verifier.verify(&sign(&header(&id), &claims(&id, now, now + 60), key), &secrets, now).expect("ok");
        let b = verifier.verify(&sign(&header(&id), &claims(&id, now, now + 61), key), &secrets, now).expect("ok");
        assert_ne!(a.replay_id, b.replay_id, "without jti, each token is its own");
    }
}
