//! Access tokens: RFC 9068-style JWTs signed with an asymmetric key.
//!
//! Verification pins everything: the algorithm comes from our key record,
//! never from the token's header (so `alg: none` and HMAC-with-the-public-key
//! confusion cannot work), and issuer, audience, expiry, `typ` and `kid` are
//! all required. The one way to read a token without checking it is fenced
//! off in [`dangerous`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::b64url;
use crate::error::ApiError;

/// `typ` header of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// Clock skew tolerated on `exp`, `nbf` and `iat` (the SPEC allows ≤ 60 s).
pub const LEEWAY_SECS: u64 = 30;

/// The asymmetric algorithms Latchkey signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key: the default, and
    /// the only family API Gateway's built-in JWT authorizer verifies.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RS256" => Ok(SigningAlgorithm::Rs256),
            "ES256" => Ok(SigningAlgorithm::Es256),
            "EdDSA" => Ok(SigningAlgorithm::EdDsa),
            other => Err(format!("signing algorithm must be RS256, ES256 or EdDSA, not `{other}`")),
        }
    }
}

/// A freshly generated key pair: the private half as PKCS#8 DER, the public
/// half as a JWK.
pub struct GeneratedKeyPair {
    pub algorithm: SigningAlgorithm,
    pub private_der: Zeroizing<Vec<u8>>,
    pub public_jwk: serde_json::Value,
}

impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Generates a key pair with AWS-LC. CPU-heavy for RSA (tens of ms): call it
/// from `spawn_blocking` on a request path.
pub fn generate_key_pair(algorithm: SigningAlgorithm, kid: &str) -> Result<GeneratedKeyPair, ApiError> {
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    let failed = |what: &str| ApiError::Internal(format!("{algorithm} key generation failed: {what}").into());
    let (private_der, mut jwk) = match algorithm {
        SigningAlgorithm::Rs256 => {
            let key =
                aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|_| failed("generate"))?;
            let der = key.as_der().map_err(|_| failed("encode"))?;
            let public = key.public_key();
            let jwk = serde_json::json!({
                "kty": "RSA",
                "n": b64url(public.modulus().big_endian_without_leading_zero()),
                "e": b64url(public.exponent().big_endian_without_leading_zero()),
            });
            (Zeroizing::new(der.as_ref().to_vec()), jwk)
        }
        SigningAlgorithm::Es256 => {
            let key =
                aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| failed("generate"))?;
            let der = key.to_pkcs8v1().map_err(|_| failed("encode"))?;
            // Uncompressed SEC1 point: 0x04 ‖ x (32) ‖ y (32).
            let point = key.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err(failed("unexpected public key encoding"));
            }
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..]),
            });
            (Zeroizing::new(der.as_ref().to_vec()), jwk)
        }
        SigningAlgorithm::EdDsa => {
            let key = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(|_| failed("generate"))?;
            let der = key.to_pkcs8v1().map_err(|_| failed("encode"))?;
            let jwk = serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64url(key.public_key().as_ref()) });
            (Zeroizing::new(der.as_ref().to_vec()), jwk)
        }
    };
    jwk["kid"] = kid.into();
    jwk["alg"] = algorithm.as_str().into();
    jwk["use"] = "sig".into();
    Ok(GeneratedKeyPair { algorithm, private_der, public_jwk: jwk })
}

/// The claims of every access token Latchkey issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// Tenant.
    pub tid: String,
    /// Space-separated scopes.
    pub scope: String,
    /// `test` or `live`.
    pub env: String,
    /// The app (login with app credentials) or API key the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// A private key parsed once (when the key ring loads) and ready to sign.
/// Signing happens here rather than in `jsonwebtoken::encode`, which would
/// parse and check the DER key again for every token.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pair: KeyPairKind,
    /// `base64url(header)` and the dot: the same for every token of this key.
    header_prefix: String,
}

enum KeyPairKind {
    Rsa(aws_lc_rs::signature::RsaKeyPair),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 private key; fails unless it is a key for `algorithm`.
    pub fn from_pkcs8(kid: String, algorithm: SigningAlgorithm, der: &[u8]) -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
        let rejected = |e: aws_lc_rs::error::KeyRejected| format!("{algorithm} private key rejected: {e}");
        let pair = match algorithm {
            SigningAlgorithm::Rs256 => KeyPairKind::Rsa(RsaKeyPair::from_pkcs8(der).map_err(rejected)?),
            SigningAlgorithm::Es256 => {
                KeyPairKind::Ecdsa(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(rejected)?)
            }
            SigningAlgorithm::EdDsa => KeyPairKind::Ed25519(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
        };
        let header = serde_json::json!({ "typ": ACCESS_TOKEN_TYP, "alg": algorithm.as_str(), "kid": kid });
        let header_prefix = format!("{}.", b64url(header.to_string().as_bytes()));
        Ok(Self { kid, algorithm, pair, header_prefix })
    }

    /// A compact JWS of `claims` under the header `{typ: at+jwt, alg, kid}`.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, ApiError> {
        let claims = serde_json::to_vec(claims).map_err(|e| ApiError::Internal(Box::new(e)))?;
        self.sign_payload(&self.header_prefix, &claims)
    }

    fn sign_payload(&self, header_prefix: &str, payload: &[u8]) -> Result<String, ApiError> {
        let mut token = String::with_capacity(header_prefix.len() + payload.len() * 4 / 3 + 400);
        token.push_str(header_prefix);
        token.push_str(&b64url(payload));
        let failed = || ApiError::Internal(format!("signing with key {} failed", self.kid).into());
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let signature = match &self.pair {
            KeyPairKind::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, token.as_bytes(), &mut signature)
                    .map_err(|_| failed())?;
                signature
            }
            KeyPairKind::Ecdsa(pair) => pair.sign(&rng, token.as_bytes()).map_err(|_| failed())?.as_ref().to_vec(),
            KeyPairKind::Ed25519(pair) => pair.sign(token.as_bytes()).as_ref().to_vec(),
        };
        token.push('.');
        token.push_str(&b64url(&signature));
        Ok(token)
    }
}

/// A public key ready to verify, with its algorithm pinned.
pub struct VerifyingKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    decoding: DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    pub fn from_jwk(kid: String, algorithm: SigningAlgorithm, jwk_json: &str) -> Result<Self, String> {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(jwk_json).map_err(|e| format!("public JWK: {e}"))?;
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("public JWK: {e}"))?;
        Ok(Self { kid, algorithm, decoding })
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenRejection {
    Malformed,
    WrongType,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuerOrAudience,
    MissingClaims,
    WrongEnvironment,
}

impl TokenRejection {
    /// Safe to return to the caller.
    pub fn description(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "the access token is malformed",
            TokenRejection::WrongType => "the access token is not an access token (typ must be at+jwt)",
            TokenRejection::UnknownKey => "the access token was signed with an unknown key",
            TokenRejection::BadSignature => "the access token signature or algorithm is invalid",
            TokenRejection::Expired => "the access token has expired",
            TokenRejection::NotYetValid => "the access token is not valid yet",
            TokenRejection::WrongIssuerOrAudience => "the access token was issued for another issuer or audience",
            TokenRejection::MissingClaims => "the access token is missing required claims",
            TokenRejection::WrongEnvironment => "the access token was issued for another environment",
        }
    }
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for TokenRejection {}

impl From<TokenRejection> for ApiError {
    fn from(rejection: TokenRejection) -> Self {
        ApiError::InvalidToken(rejection.description())
    }
}

/// Verifies access tokens for one issuer, audience and environment.
#[derive(Debug, Clone)]
pub struct AccessTokenVerifier {
    issuer: String,
    audience: String,
    env: String,
}

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

impl AccessTokenVerifier {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, env: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), audience: audience.into(), env: env.into() }
    }

    /// The key id a token names, before verification (to find its key).
    pub fn kid_of(token: &str) -> Result<String, TokenRejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejection::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
        // RFC 9068 §4: `at+jwt`, or its long form `application/at+jwt`;
        // media type names are case-blind (RFC 7515 §4.1.9).
        let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
        let typ = typ.as_deref().map(|typ| typ.strip_prefix("application/").unwrap_or(typ));
        if typ != Some(ACCESS_TOKEN_TYP) {
            return Err(TokenRejection::WrongType);
        }
        // Latchkey understands no JOSE extension, so RFC 7515 §4.1.11 has it
        // refuse any token that names one.
        if header.crit.is_some() {
            return Err(TokenRejection::Malformed);
        }
        header.kid.ok_or(TokenRejection::UnknownKey)
    }

    /// Verifies `token` against the key set; `keys` maps kid to key.
    pub fn verify(&self, token: &str, keys: &HashMap<String, VerifyingKey>) -> Result<AccessClaims, TokenRejection> {
        let kid = Self::kid_of(token)?;
        let key = keys.get(&kid).ok_or(TokenRejection::UnknownKey)?;
        let mut validation = Validation::new(key.algorithm.jwt_algorithm());
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::ExpiredSignature => TokenRejection::Expired,
                ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
                ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenRejection::WrongIssuerOrAudience,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => TokenRejection::MissingClaims,
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenRejection::BadSignature
                }
                _ => TokenRejection::Malformed,
            }
        })?;
        if data.header.alg != key.algorithm.jwt_algorithm() {
            return Err(TokenRejection::BadSignature);
        }
        let claims = data.claims;
        if claims.iat > crate::time::now_secs() + LEEWAY_SECS {
            return Err(TokenRejection::NotYetValid);
        }
        if claims.env != self.env {
            return Err(TokenRejection::WrongEnvironment);
        }
        Ok(claims)
    }
}

/// Reading a token without verifying it. Only for display (`latchkey token
/// inspect`); nothing here may decide access.
pub mod dangerous {
    /// The header and claims of `token` as JSON, unverified.
    pub fn decode_unverified(token: &str) -> Option<(serde_json::Value, serde_json::Value)> {
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let decode = |part: &str| -> Option<serde_json::Value> {
            serde_json::from_slice(&crate::crypto::b64url_decode(part)?).ok()
        };
        Some((decode(header)?, decode(claims)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example.com".into(),
            sub: "usr_1".into(),
            aud: "https://api.example.com".into(),
            exp: now + 900,
            iat: now,
            jti: "j1".into(),
            tid: "acme".into(),
            scope: "read write".into(),
            env: "test".into(),
            client_id: None,
        }
    }

    fn keypair(algorithm: SigningAlgorithm, kid: &str) -> (SigningKey, HashMap<String, VerifyingKey>) {
        let pair = generate_key_pair(algorithm, kid).expect("generates");
        let signer = SigningKey::from_pkcs8(kid.into(), algorithm, &pair.private_der).expect("parses");
        let verifier = VerifyingKey::from_jwk(kid.into(), algorithm, &pair.public_jwk.to_string()).expect("jwk");
        (signer, HashMap::from([(kid.to_owned(), verifier)]))
    }

    fn verifier() -> AccessTokenVerifier {
        AccessTokenVerifier::new("https://auth.example.com", "https://api.example.com", "test")
    }

    #[test]
    fn every_algorithm_signs_and_verifies_with_typ_and_kid() {
        for algorithm in [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let (signer, keys) = keypair(algorithm, "k1");
            let now = crate::time::now_secs();
            let token = signer.sign(&claims(now)).expect("signs");
            let header = jsonwebtoken::decode_header(&token).expect("header");
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some("k1"));
            assert_eq!(verifier().verify(&token, &keys).expect("verifies"), claims(now), "{algorithm}");
        }
    }

    #[test]
    fn forged_and_mismatched_tokens_are_refused() {
        let (signer, keys) = keypair(SigningAlgorithm::Es256, "k1");
        let now = crate::time::now_secs();

        let mut expired = claims(now - 4000);
        expired.exp = now - 120;
        assert_eq!(verifier().verify(&signer.sign(&expired).expect("signs"), &keys), Err(TokenRejection::Expired));

        let mut other_aud = claims(now);
        other_aud.aud = "https://evil.example.com".into();
        assert_eq!(
            verifier().verify(&signer.sign(&other_aud).expect("signs"), &keys),
            Err(TokenRejection::WrongIssuerOrAudience)
        );

        let mut live = claims(now);
        live.env = "live".into();
        assert_eq!(
            verifier().verify(&signer.sign(&live).expect("signs"), &keys),
            Err(TokenRejection::WrongEnvironment)
        );

        let (other_signer, _) = keypair(SigningAlgorithm::Es256, "k1");
        let forged = other_signer.sign(&claims(now)).expect("signs");
        assert_eq!(verifier().verify(&forged, &keys), Err(TokenRejection::BadSignature));

        // alg: none, with our kid and typ.
        let none_header = b64url(br#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#);
        let body = b64url(serde_json::to_string(&claims(now)).expect("json").as_bytes());
        assert!(verifier().verify(&format!("{none_header}.{body}."), &keys).is_err());

        // HS256 keyed with the public JWK text: algorithm confusion.
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("k1".into());
        let confused =
            jsonwebtoken::encode(&header, &claims(now), &jsonwebtoken::EncodingKey::from_secret(b"public key bytes"))
                .expect("signs");
        assert_eq!(verifier().verify(&confused, &keys), Err(TokenRejection::BadSignature));

        assert_eq!(verifier().verify("not.a.jwt", &keys), Err(TokenRejection::Malformed));
        assert_eq!(verifier().verify(&"a".repeat(MAX_TOKEN_BYTES + 1), &keys), Err(TokenRejection::Malformed));
    }

    #[test]
    fn tokens_without_the_access_typ_or_a_known_kid_are_refused() {
        let (signer, keys) = keypair(SigningAlgorithm::EdDsa, "k1");
        let now = crate::time::now_secs();
        let header = format!("{}.", b64url(br#"{"alg":"EdDSA","kid":"k1"}"#));
        let plain_jwt = signer.sign_payload(&header, &serde_json::to_vec(&claims(now)).expect("json")).expect("signs");
        assert_eq!(verifier().verify(&plain_jwt, &keys), Err(TokenRejection::WrongType));
        let (other, _) = keypair(SigningAlgorithm::EdDsa, "k2");
        assert_eq!(
            verifier().verify(&other.sign(&claims(now)).expect("signs"), &keys),
            Err(TokenRejection::UnknownKey)
        );
    }

    #[test]
    fn dangerous_decode_reads_without_checking() {
        let (signer, _) = keypair(SigningAlgorithm::EdDsa, "k9");
        let token = signer.sign(&claims(1)).expect("signs");
        let (header, body) = dangerous::decode_unverified(&token).expect("decodes");
        assert_eq!(header["kid"], "k9");
        assert_eq!(body["tid"], "acme");
        assert!(dangerous::decode_unverified("a.b").is_none());
    }
}
