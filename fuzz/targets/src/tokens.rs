//! Tokens and keys as text: access tokens, client assertions, refresh tokens
//! and API keys.

use hmac::{Hmac, Mac as _};
use latchkey::assertion::{AssertionRejection, MAX_LIFETIME_SECS, VerifiedAssertion};
use latchkey::credentials::{PresentedSecret, key_prefix, parse_api_key};
use latchkey::crypto::b64url_decode;
use latchkey::domain::{ApiKeyId, Principal};
use latchkey::error::ApiError;
use latchkey::jwt::{ACCESS_TOKEN_TYP, AccessClaims, LEEWAY_SECS, TokenRejection, dangerous};
use latchkey::refresh_token::MAX_EMBEDDED_CLAIMS;
use latchkey::service::api_keys::KeyRejection;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use crate::fixture::{AUDIENCE, ISSUER, KEY_ID, NOW, fixture};
use crate::{Outcome, assert_refused, text};

/// The signing input and the decoded signature of a compact JWS that a
/// verifier accepted (so it has both).
fn signed_parts(token: &str) -> (&str, Vec<u8>) {
    let (signing_input, signature) = token.rsplit_once('.').expect("an accepted token has a signature part");
    (signing_input, b64url_decode(signature).expect("an accepted signature is base64url"))
}

/// `AccessTokenVerifier::verify` with the fixed keys, plus what must hold of
/// whatever it accepts.
pub(crate) fn verify_access_token(token: &str) -> Result<AccessClaims, TokenRejection> {
    let f = fixture();
    let claims = f.verifier.verify(token, &f.verifying)?;
    // Signed by the fixed key it names, as AWS-LC checks it directly.
    let (header, body) = dangerous::decode_unverified(token).expect("an accepted token decodes");
    let kid = header["kid"].as_str().expect("an accepted token names its key");
    let key = &f.public_keys[kid];
    let (signing_input, signature) = signed_parts(token);
    assert!(key.signed(signing_input.as_bytes(), &signature), "accepted a token the fixed key {kid} did not sign");
    assert_eq!(header["alg"], key.algorithm.as_str(), "accepted another algorithm than the key's");
    // `at+jwt`, or its long form (RFC 9068 §4), in any case.
    let typ = header["typ"].as_str().map(str::to_ascii_lowercase).expect("an accepted token has a typ");
    assert_eq!(typ.strip_prefix("application/").unwrap_or(&typ), ACCESS_TOKEN_TYP);
    assert_eq!(serde_json::from_value::<AccessClaims>(body).ok().as_ref(), Some(&claims), "claims differ");
    assert_eq!((claims.iss.as_str(), claims.aud.as_str(), claims.env.as_str()), (ISSUER, AUDIENCE, "test"));
    assert!(claims.exp + LEEWAY_SECS >= latchkey::time::now_secs(), "accepted an expired token");
    // A test token is refused by a live deployment.
    assert_eq!(f.live_verifier.verify(token, &f.verifying), Err(TokenRejection::WrongEnvironment));
    Ok(claims)
}

/// The access-token verifier (JWT parsing, header, signature, claims).
pub fn access_token(data: &[u8]) -> Outcome {
    match verify_access_token(&text(data)) {
        Ok(_) => Outcome::Accepted,
        Err(rejection) => assert_refused(&ApiError::from(rejection)),
    }
}

/// `AssertionVerifier::verify` at the fixed clock, plus what must hold of
/// whatever it accepts.
pub(crate) fn verify_assertion(token: &str) -> Result<VerifiedAssertion, AssertionRejection> {
    let f = fixture();
    let verified = f.assertions.verify(token, &f.secrets, NOW)?;
    // HS256 under one of the key's secrets, as a separate HMAC checks it.
    let (signing_input, signature) = signed_parts(token);
    let signed = f.secrets.assertion_keys(&verified.key_id).iter().any(|key| {
        let mut mac = <Hmac<Sha256>>::new_from_slice(key.expose_secret().as_bytes()).expect("any key length");
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).is_ok()
    });
    assert!(signed, "accepted an assertion no secret of {} signed", verified.key_id);
    let (header, claims) = dangerous::decode_unverified(token).expect("an accepted assertion decodes");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], verified.key_id.as_str());
    assert_eq!(claims["sub"], verified.key_id.as_str());
    let (iat, exp) = (claims["iat"].as_u64().expect("iat"), claims["exp"].as_u64().expect("exp"));
    assert!(iat <= exp && exp - iat <= MAX_LIFETIME_SECS, "lifetime {iat}..{exp}");
    assert!(iat <= NOW + LEEWAY_SECS && NOW < exp + LEEWAY_SECS, "accepted outside {iat}..{exp}");
    assert_eq!(verified.expires_at, exp + LEEWAY_SECS);
    // Another deployment derives other secrets, and the same token names the
    // same replay id every time.
    assert_eq!(f.assertions.verify(token, &f.stranger_secrets, NOW), Err(AssertionRejection::BadSignature));
    assert_eq!(f.assertions.verify(token, &f.secrets, NOW).as_ref(), Ok(&verified));
    Ok(verified)
}

/// The RFC 7523 client-assertion verifier.
pub fn client_assertion(data: &[u8]) -> Outcome {
    match verify_assertion(&text(data)) {
        Ok(_) => Outcome::Accepted,
        Err(rejection) => assert_refused(&ApiError::from(rejection)),
    }
}

/// `RefreshTokenCodec::open` (test stage), plus what must hold of whatever
/// it opens.
pub(crate) fn open_refresh_token(presented: &str) -> Outcome {
    let f = fixture();
    let secret: SecretString = presented.to_owned().into();
    let Some(claim) = f.refresh_test.open(&secret) else {
        return Outcome::Refused;
    };
    assert_eq!(f.refresh_live.open(&secret), None, "a test-stage refresh token opened in live");
    // What opens is exactly what `mint` makes: re-minting gives the same
    // text. Claims that did not fit were left out; any oversized ones mint
    // the same token.
    let principal = claim.claims.clone().unwrap_or_else(|| Principal {
        sub: String::new(),
        tenant_id: String::new(),
        scope: "s".repeat(MAX_EMBEDDED_CLAIMS),
        client_id: None,
    });
    let again = f.refresh_test.mint(claim.family, claim.generation, &principal);
    assert_eq!(again.expose_secret(), presented, "opened a refresh token that mint does not make");
    Outcome::Accepted
}

/// The refresh-token parser.
pub fn refresh_token(data: &[u8]) -> Outcome {
    open_refresh_token(&text(data))
}

/// What the service decides about a whole API key string before reading
/// DynamoDB: its shape, then whether the secret is the one derived for its
/// id. Accepted: a real key of the fixed deployment.
pub(crate) fn check_key_string(key: &str) -> Result<(), ApiError> {
    let f = fixture();
    let unknown = || KeyRejection::Unknown.into_api_error();
    let parsed = parse_api_key(key).ok_or_else(unknown)?;
    let secret = parsed.secret.expose_secret();
    assert_eq!(format!("{}{}_{secret}", key_prefix(parsed.env), parsed.id), key.trim(), "parse does not round-trip");
    assert_eq!(ApiKeyId::parse(parsed.id.as_str()).as_ref(), Ok(&parsed.id));
    if !f.secrets.matches(&parsed.id, &parsed.secret) {
        return Err(unknown());
    }
    assert_eq!(f.secrets.key_string(&parsed.id, parsed.env).expose_secret(), key.trim(), "a forged key matched");
    assert!(f.secrets.matches_stored(&parsed.secret, &f.secrets.check_hash(&parsed.secret)));
    assert!(!f.stranger_secrets.matches(&parsed.id, &parsed.secret), "a key matched another deployment");
    Ok(())
}

/// What the exchange decides about a key id and a presented secret (bare or
/// a whole key string) before reading DynamoDB.
pub(crate) fn check_presented_secret(key_id: &str, presented: &str) -> Result<(), ApiError> {
    let f = fixture();
    let unknown = || KeyRejection::Unknown.into_api_error();
    let id = ApiKeyId::parse(key_id.trim()).map_err(|_| unknown())?;
    let read = PresentedSecret::read(&id, presented).ok_or_else(unknown)?;
    if read.env.is_some() {
        assert_eq!(parse_api_key(presented).map(|parsed| parsed.id), Some(id.clone()), "another key's string read");
    }
    if !f.secrets.matches(&id, &read.secret) {
        return Err(unknown());
    }
    assert_eq!(read.secret.expose_secret(), f.secrets.secret(&id).expose_secret(), "a forged secret matched");
    Ok(())
}

/// The API-key parsers: the input as a whole key string, and as the secret
/// presented for the fixed key id. Accepted when either is genuine.
pub fn api_key(data: &[u8]) -> Outcome {
    let presented = text(data);
    let whole = check_key_string(&presented);
    let for_fixed_id = check_presented_secret(KEY_ID, &presented);
    match (whole, for_fixed_id) {
        (Ok(()), _) | (_, Ok(())) => Outcome::Accepted,
        (Err(err), Err(_)) => assert_refused(&err),
    }
}
