//! The JWT attack suite (issue #8): forged, tampered and malformed tokens
//! against every door that accepts one, with the exact answer each gives.
//!
//! - Access tokens: one table, each case run against `GET /v1/me`,
//!   `POST /v1/verify` (token in the `Authorization` header, and in the JSON
//!   body), the API Gateway authorizer and the Rust middleware
//!   (`protected-api`). A refusal is 401 `invalid_token` with the exact
//!   description and `WWW-Authenticate: Bearer error="invalid_token", …`
//!   (RFC 6750 §3.1), `{valid: false, error, error_description}` from
//!   `/v1/verify` (200, as openapi.yaml documents), and a deny with no
//!   context from the authorizer; it costs no DynamoDB call.
//! - Client assertions: one table, each case run against both forms of the
//!   jwt-bearer grant on `POST /v1/auth/token` (`grant_type` + `assertion`
//!   form body, and a bare `Authorization: Bearer <assertion>`). A refusal is
//!   401 `invalid_token` with the exact description (the README's documented
//!   deviation from RFC 7523's 400 `invalid_grant`) and costs no DynamoDB
//!   call; each assertion works once.
//!
//! The forgeries start from real material: a real login token, the public
//! key as `/.well-known/jwks.json` serves it, and, where an attack needs a
//! correctly signed token with a bad claim, the deployment's own private key
//! unsealed from its table record. Controls made the same way are accepted,
//! so each refusal is the attack's doing, not the forging's. Every door call
//! has an upper bound that turns a hang into a failure; a panic fails the test.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use lambda_http::http::StatusCode;
use latchkey::assertion::AssertionRejection;
use latchkey::crypto::{b64url, b64url_decode, random_id};
use latchkey::domain::ApiKeyId;
use latchkey::jwt::{LEEWAY_SECS, MAX_TOKEN_BYTES, SigningAlgorithm, TokenRejection, generate_key_pair};
use latchkey::keys::UNKNOWN_KID_RELOAD_AFTER;
use latchkey::service::Guard;
use latchkey::time::now_secs;
use latchkey_tests::{
    AUDIENCE, CLIENT_IP, ISSUER, TENANT, TestApp, TestKey, TestResponse, bearer, client_assertion, futures_join_all,
    get, request,
};
use serde_json::{Value, json};

/// The authorizer's route (no route scopes configured) and the middleware's.
const ROUTE: &str = "GET /orders";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const FORM: &str = "application/x-www-form-urlencoded";
/// Far above any honest answer: only there to turn a hang into a failure.
const NO_HANG: Duration = Duration::from_secs(5);
/// What `Credential::from_headers` answers for an `Authorization` header
/// that is not a printable `Bearer …` (e.g. raw non-ASCII bytes).
const NOT_BEARER: &str = "the Authorization header must use the Bearer scheme";

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(NO_HANG, future).await.unwrap_or_else(|_| panic!("{what}: no answer within {NO_HANG:?}"))
}

// ---------------------------------------------------------------------------
// Forging: compact JWS by hand, DER for the public key encodings.

fn seg(bytes: &[u8]) -> String {
    b64url(bytes)
}

fn json_seg(value: &Value) -> String {
    seg(value.to_string().as_bytes())
}

/// `header.payload.signature` with the signature over the segments exactly
/// as given (so non-canonical segments are still correctly signed).
fn jws(header: &str, payload: &str, algorithm: Algorithm, key: &EncodingKey) -> String {
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, algorithm).expect("signs");
    format!("{message}.{signature}")
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(u8::try_from(content.len()).expect("short form"));
    } else {
        let len = content.len().to_be_bytes();
        let significant: Vec<u8> = len.iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | u8::try_from(significant.len()).expect("few length bytes"));
        out.extend_from_slice(&significant);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let bytes: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::with_capacity(bytes.len() + 1);
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(&bytes);
    der(0x02, &content)
}

/// One DER element: its tag, its content and what follows it.
fn der_read(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let (tag, first) = (input[0], input[1]);
    let (len, start) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        (input[2..2 + count].iter().fold(0, |len, b| len << 8 | usize::from(*b)), 2 + count)
    };
    (tag, &input[start..start + len], &input[start + len..])
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (what
/// jsonwebtoken's RSA signer takes).
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_read(pkcs8);
    let (_, _, rest) = der_read(info); // version
    let (_, _, rest) = der_read(rest); // algorithm
    let (tag, key, _) = der_read(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    key.to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let text = STANDARD.encode(der);
    let lines: Vec<&str> = text.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// The public RSA key of a JWK as an attacker would feed it to HMAC.
struct PublicEncodings {
    pkcs1_der: Vec<u8>,
    spki_der: Vec<u8>,
    n: Vec<u8>,
    n_text: String,
    jwk_text: String,
}

impl PublicEncodings {
    fn of(jwk: &Value) -> Self {
        let part = |name: &str| b64url_decode(jwk[name].as_str().expect("RSA JWK")).expect("base64url");
        let (n, e) = (part("n"), part("e"));
        let pkcs1_der = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
        let rsa_encryption = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
        let algorithm = der(0x30, &rsa_encryption);
        let spki_der = der(0x30, &[algorithm, der(0x03, &[&[0u8][..], &pkcs1_der].concat())].concat());
        Self { pkcs1_der, spki_der, n, n_text: jwk["n"].as_str().expect("n").to_owned(), jwk_text: jwk.to_string() }
    }

    fn hmac_keys(&self) -> Vec<(&'static str, Vec<u8>)> {
        let spki_pem = pem("PUBLIC KEY", &self.spki_der);
        vec![
            ("the SPKI PEM", spki_pem.clone().into_bytes()),
            ("the SPKI PEM without its final newline", spki_pem.trim_end().as_bytes().to_vec()),
            ("the PKCS#1 PEM", pem("RSA PUBLIC KEY", &self.pkcs1_der).into_bytes()),
            ("the SPKI DER", self.spki_der.clone()),
            ("the PKCS#1 DER", self.pkcs1_der.clone()),
            ("the JWK's n bytes", self.n.clone()),
            ("the JWK's n text", self.n_text.clone().into_bytes()),
            ("the JWK as served", self.jwk_text.clone().into_bytes()),
        ]
    }
}

/// A freshly generated key pair, as an attacker holds it.
struct Attacker {
    kid: String,
    rsa: EncodingKey,
    jwk: Value,
    spki_der: Vec<u8>,
    ec: EncodingKey,
    ed: EncodingKey,
}

impl Attacker {
    fn new() -> Self {
        let kid = format!("attacker-{}", &random_id()[..8]);
        let rsa = generate_key_pair(SigningAlgorithm::Rs256, &kid).expect("RSA key pair");
        let ec = generate_key_pair(SigningAlgorithm::Es256, &kid).expect("EC key pair");
        let ed = generate_key_pair(SigningAlgorithm::EdDsa, &kid).expect("Ed25519 key pair");
        Self {
            spki_der: PublicEncodings::of(&rsa.public_jwk).spki_der,
            rsa: EncodingKey::from_rsa_der(&pkcs1_of(&rsa.private_der)),
            jwk: rsa.public_jwk,
            ec: EncodingKey::from_ec_der(&ec.private_der),
            ed: EncodingKey::from_ed_der(&ed.private_der),
            kid,
        }
    }
}

/// The real material every access-token forgery starts from.
struct Kit {
    kid: String,
    /// A real login token of a user holding `orders:read` (so that the
    /// middleware's route admits it).
    token: String,
    header: Value,
    claims: Value,
    /// The deployment's signing key, unsealed from its table record.
    signing: EncodingKey,
    public: PublicEncodings,
    attacker: Attacker,
}

impl Kit {
    async fn new(app: &TestApp) -> Self {
        let token = app.user_token(TENANT, "mallory@example.com", "orders:read keys:write").await;
        let (header, claims) = latchkey::jwt::dangerous::decode_unverified(&token).expect("a JWT");
        let kid = header["kid"].as_str().expect("kid").to_owned();
        let set = app.latchkey.issuer.keys().current().await.expect("key set");
        let record = set.records.iter().find(|r| r.kid == kid).expect("the token's key record");
        let pkcs8 = app
            .latchkey
            .config
            .sealing_key
            .sealer()
            .unseal(&record.sealed_private_key, kid.as_bytes())
            .expect("the private key unseals");
        let jwks = app.discovery_request(get("/.well-known/jwks.json", &[])).await;
        assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.body);
        let jwk = jwks.json()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .cloned()
            .expect("the served JWK");
        let public = PublicEncodings::of(&jwk);
        // The hand-built DER is the served key: both encodings verify the real token.
        let (message, signature) = token.rsplit_once('.').expect("three segments");
        for der in [&public.pkcs1_der, &public.spki_der] {
            let key = DecodingKey::from_rsa_der(der);
            assert!(jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::RS256).expect("runs"));
        }
        app.calls.take();
        Self {
            kid,
            token,
            header,
            claims,
            signing: EncodingKey::from_rsa_der(&pkcs1_of(&pkcs8)),
            public,
            attacker: Attacker::new(),
        }
    }

    fn signature(&self) -> &str {
        self.token.rsplit_once('.').expect("three segments").1
    }

    /// `header` and `claims` signed RS256 with the deployment's key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        jws(&json_seg(header), &json_seg(claims), Algorithm::RS256, &self.signing)
    }

    /// Raw header and claims bytes signed RS256 with the deployment's key.
    fn sign_raw(&self, header: &[u8], claims: &[u8]) -> String {
        jws(&seg(header), &seg(claims), Algorithm::RS256, &self.signing)
    }

    fn with_claims(&self, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.claims.clone();
        change(claims.as_object_mut().expect("claims object"));
        self.sign(&self.header, &claims)
    }

    fn with_header(&self, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut header = self.header.clone();
        change(header.as_object_mut().expect("header object"));
        self.sign(&header, &self.claims)
    }

    fn header_with(&self, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut header = self.header.clone();
        change(header.as_object_mut().expect("header object"));
        header
    }
}

/// `{` + `member` + `,` + the rest of the object: a duplicate that comes first.
fn duplicate_first(object: &Value, member: &str) -> Vec<u8> {
    format!("{{{member},{}", &object.to_string()[1..]).into_bytes()
}

/// The object with `member` added last: a duplicate that comes last.
fn duplicate_last(object: &Value, member: &str) -> Vec<u8> {
    let text = object.to_string();
    format!("{},{member}}}", &text[..text.len() - 1]).into_bytes()
}

/// The JSON text of `object` with `MARKER` replaced by `bytes` (which need
/// not be UTF-8).
fn splice(object: &Value, bytes: &[u8]) -> Vec<u8> {
    let text = object.to_string();
    let at = text.find(MARKER).expect("marker present");
    [&text.as_bytes()[..at], bytes, &text.as_bytes()[at + MARKER.len()..]].concat()
}

const MARKER: &str = "@@MARKER@@";

/// `value` with a filler member grown until its base64url text needs
/// padding, then padded: a segment only a lenient decoder reads.
fn padded_seg(value: &Value) -> String {
    let mut value = value.clone();
    let mut filler = String::new();
    loop {
        value["filler"] = filler.clone().into();
        let text = json_seg(&value);
        if !text.len().is_multiple_of(4) {
            return format!("{text}{}", "=".repeat(4 - text.len() % 4));
        }
        filler.push('a');
    }
}

/// `value` with six `~` (so some aligned triple encodes to `-`), in the
/// standard base64 alphabet instead of base64url.
fn standard_alphabet_seg(value: &Value) -> String {
    let mut value = value.clone();
    value["filler"] = "~~~~~~".into();
    let text = json_seg(&value);
    assert!(text.contains(['-', '_']), "the filler puts a URL-only character in {text}");
    to_standard_alphabet(&text)
}

fn to_standard_alphabet(text: &str) -> String {
    text.replace('-', "+").replace('_', "/")
}

/// Replaces the first ASCII letter of `segment` with `é` (raw UTF-8 bytes
/// in the token text).
fn with_non_ascii(segment: &str) -> String {
    let at = segment.find(|c: char| c.is_ascii_alphabetic()).expect("a letter");
    format!("{}é{}", &segment[..at], &segment[at + 1..])
}

/// The claims with a filler member sized so that the signed token is the
/// longest that fits in `MAX_TOKEN_BYTES` (`fits`) or the shortest above it.
fn sized_claims(kit: &Kit, fits: bool) -> Value {
    let signature_len = kit.signature().len();
    let header_len = json_seg(&kit.header).len();
    let length = |claims: &Value| header_len + 1 + json_seg(claims).len() + 1 + signature_len;
    let mut claims = kit.claims.clone();
    let mut filler = String::new();
    loop {
        claims["filler"] = filler.clone().into();
        let next = {
            let mut next = claims.clone();
            next["filler"] = format!("{filler}a").into();
            next
        };
        if length(&next) > MAX_TOKEN_BYTES {
            return if fits { claims } else { next };
        }
        filler.push('a');
    }
}

// ---------------------------------------------------------------------------
// Access tokens: the table and the doors.

/// What a door must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accepted,
    /// Refused with this `error_description`.
    Refused(&'static str),
    /// `/v1/verify` with the token in its JSON body: the body is over the
    /// size limit (413) before the token is looked at.
    BodyTooLarge,
}

use Expect::{Accepted, BodyTooLarge, Refused};

fn rejected(rejection: TokenRejection) -> Expect {
    Refused(rejection.description())
}

struct TokenCase {
    name: String,
    token: String,
    /// In an `Authorization: Bearer` header (`/v1/me`, `/v1/verify`, the
    /// authorizer, the middleware).
    header: Expect,
    /// In `/v1/verify`'s JSON body, `{"token": …}`.
    body: Expect,
}

fn case(name: impl Into<String>, token: String, expect: Expect) -> TokenCase {
    TokenCase { name: name.into(), token, header: expect, body: expect }
}

impl TokenCase {
    /// The header form reads differently (it trims, and needs printable ASCII).
    fn in_header(mut self, expect: Expect) -> Self {
        self.header = expect;
        self
    }

    fn in_body(mut self, expect: Expect) -> Self {
        self.body = expect;
        self
    }
}

#[allow(clippy::too_many_lines)]
fn access_token_cases(kit: &Kit, elsewhere: &str, refresh_token: &str, assertion: &str) -> Vec<TokenCase> {
    let now = now_secs();
    let kid = kit.kid.as_str();
    let claims_seg = json_seg(&kit.claims);
    let header_seg = json_seg(&kit.header);
    let real = kit.token.clone();
    // The segments exactly as issued (re-serialising would reorder members).
    let (real_h, rest) = real.split_once('.').expect("segments");
    let (real_c, real_s) = rest.split_once('.').expect("segments");
    let attacker = &kit.attacker;
    let mut cases = vec![
        // Time edges first: the accepted side of `exp` and the refused side
        // of `nbf`/`iat` hold for a few seconds only; the other sides are
        // exact and hold forever (time only moves on).
        case(
            "exp 10 s inside the leeway",
            kit.with_claims(|c| drop(c.insert("exp".into(), (now - LEEWAY_SECS + 10).into()))),
            Accepted,
        ),
        case(
            "exp one second beyond the leeway",
            kit.with_claims(|c| drop(c.insert("exp".into(), (now - LEEWAY_SECS - 1).into()))),
            rejected(TokenRejection::Expired),
        ),
        case(
            "expired an hour ago",
            kit.with_claims(|c| drop(c.insert("exp".into(), (now - 3600).into()))),
            rejected(TokenRejection::Expired),
        ),
        case(
            "nbf at the edge of the leeway",
            kit.with_claims(|c| drop(c.insert("nbf".into(), (now + LEEWAY_SECS).into()))),
            Accepted,
        ),
        case(
            "nbf a minute beyond the leeway",
            kit.with_claims(|c| drop(c.insert("nbf".into(), (now + LEEWAY_SECS + 60).into()))),
            rejected(TokenRejection::NotYetValid),
        ),
        case(
            "iat at the edge of the leeway",
            kit.with_claims(|c| drop(c.insert("iat".into(), (now + LEEWAY_SECS).into()))),
            Accepted,
        ),
        case(
            "iat a minute beyond the leeway",
            kit.with_claims(|c| drop(c.insert("iat".into(), (now + LEEWAY_SECS + 60).into()))),
            rejected(TokenRejection::NotYetValid),
        ),
        case(
            "iat a year ahead, exp after it",
            kit.with_claims(|c| {
                c.insert("iat".into(), (now + 365 * 86_400).into());
                c.insert("exp".into(), (now + 366 * 86_400).into());
            }),
            rejected(TokenRejection::NotYetValid),
        ),
        // Controls.
        case("control: the login token as issued", real.clone(), Accepted),
        case(
            "control: its claims re-signed by hand with the deployment's key",
            kit.sign(&kit.header, &kit.claims),
            Accepted,
        ),
    ];
    // alg: none, which jsonwebtoken's `Algorithm` does not even parse.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json_seg(&kit.header_with(|h| drop(h.insert("alg".into(), alg.into()))));
        cases.push(case(
            format!("alg {alg}, empty signature"),
            format!("{header}.{claims_seg}."),
            rejected(TokenRejection::Malformed),
        ));
        cases.push(case(
            format!("alg {alg}, no signature segment"),
            format!("{header}.{claims_seg}"),
            rejected(TokenRejection::Malformed),
        ));
        cases.push(case(
            format!("alg {alg} with the real token's signature"),
            format!("{header}.{real_c}.{real_s}"),
            rejected(TokenRejection::Malformed),
        ));
    }
    cases.extend([
        case("alg missing", kit.with_header(|h| drop(h.remove("alg"))), rejected(TokenRejection::Malformed)),
        case(
            "alg as a list",
            kit.with_header(|h| drop(h.insert("alg".into(), json!(["RS256"])))),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "alg in lower case (rs256)",
            kit.with_header(|h| drop(h.insert("alg".into(), "rs256".into()))),
            rejected(TokenRejection::Malformed),
        ),
    ]);
    // HMAC keyed with our public key, every way it can be written down.
    for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let header = json_seg(&kit.header_with(|h| drop(h.insert("alg".into(), json!(algorithm)))));
        for (encoding, key) in kit.public.hmac_keys() {
            let token = jws(&header, &claims_seg, algorithm, &EncodingKey::from_secret(&key));
            cases.push(case(
                format!("{algorithm:?} keyed with {encoding}"),
                token,
                rejected(TokenRejection::BadSignature),
            ));
        }
    }
    // Other algorithms under our kid.
    let header_for = |alg: &str| json_seg(&kit.header_with(|h| drop(h.insert("alg".into(), alg.into()))));
    cases.extend([
        case(
            "PS256 genuinely signed with our RSA key",
            jws(&header_for("PS256"), &claims_seg, Algorithm::PS256, &kit.signing),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "RS512 genuinely signed with our RSA key",
            jws(&header_for("RS512"), &claims_seg, Algorithm::RS512, &kit.signing),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "ES256 header over an RS256 signature of our key",
            jws(&header_for("ES256"), &claims_seg, Algorithm::RS256, &kit.signing),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "ES256 signed with an attacker's EC key",
            jws(&header_for("ES256"), &claims_seg, Algorithm::ES256, &attacker.ec),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "EdDSA signed with an attacker's Ed25519 key",
            jws(&header_for("EdDSA"), &claims_seg, Algorithm::EdDSA, &attacker.ed),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "RS256 signed with an attacker's RSA key under our kid",
            jws(&header_seg, &claims_seg, Algorithm::RS256, &attacker.rsa),
            rejected(TokenRejection::BadSignature),
        ),
    ]);
    // kid: the key is looked up by exact match only. These are signed with
    // the deployment's own key, so any normalisation would let them through.
    for (what, bad_kid) in [
        ("path traversal", "../../../dev/null".to_owned()),
        ("path traversal to our kid", format!("../{kid}")),
        ("SQL-ish", "' OR '1'='1".to_owned()),
        ("our kid, then SQL-ish", format!("{kid}' OR '1'='1")),
        ("our kid, then a NUL", format!("{kid}\u{0}")),
        ("a NUL", "\u{0}".to_owned()),
        ("our kid in upper case", kid.to_uppercase()),
        ("our kid with a trailing space", format!("{kid} ")),
        ("empty", String::new()),
        ("4000 characters", "k".repeat(4000)),
        ("a well-formed unknown one", "2026-01-01-abcdefghij".to_owned()),
    ] {
        cases.push(case(
            format!("kid {what}"),
            kit.with_header(|h| drop(h.insert("kid".into(), bad_kid.into()))),
            rejected(TokenRejection::UnknownKey),
        ));
    }
    cases.extend([
        case("kid missing", kit.with_header(|h| drop(h.remove("kid"))), rejected(TokenRejection::UnknownKey)),
        case(
            "kid null",
            kit.with_header(|h| drop(h.insert("kid".into(), Value::Null))),
            rejected(TokenRejection::UnknownKey),
        ),
        case(
            "kid a number",
            kit.with_header(|h| drop(h.insert("kid".into(), 1.into()))),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "kid a list of ours",
            kit.with_header(|h| drop(h.insert("kid".into(), json!([kid])))),
            rejected(TokenRejection::Malformed),
        ),
    ]);
    // Keys the token brings along: never used, never fetched.
    let attacker_header = |extra: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut header = kit.header_with(|h| drop(h.insert("kid".into(), attacker.kid.clone().into())));
        extra(header.as_object_mut().expect("object"));
        jws(&json_seg(&header), &claims_seg, Algorithm::RS256, &attacker.rsa)
    };
    let our_kid_attacker_key = |extra: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let header = kit.header_with(|h| extra(h));
        jws(&json_seg(&header), &claims_seg, Algorithm::RS256, &attacker.rsa)
    };
    let x5c = json!([STANDARD.encode(&attacker.spki_der)]);
    cases.extend([
        case(
            "an unknown kid signed by an attacker's RSA key",
            attacker_header(&|_| ()),
            rejected(TokenRejection::UnknownKey),
        ),
        case(
            "the attacker's key embedded as jwk, its kid",
            attacker_header(&|h| drop(h.insert("jwk".into(), attacker.jwk.clone()))),
            rejected(TokenRejection::UnknownKey),
        ),
        case(
            "the attacker's key embedded as jwk, our kid",
            our_kid_attacker_key(&|h| drop(h.insert("jwk".into(), attacker.jwk.clone()))),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "jku to the attacker's JWKS, the attacker's kid",
            attacker_header(&|h| drop(h.insert("jku".into(), elsewhere.into()))),
            rejected(TokenRejection::UnknownKey),
        ),
        case(
            "jku to the attacker's JWKS, our kid",
            our_kid_attacker_key(&|h| drop(h.insert("jku".into(), elsewhere.into()))),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "x5u to the attacker's certificate, the attacker's kid",
            attacker_header(&|h| drop(h.insert("x5u".into(), elsewhere.into()))),
            rejected(TokenRejection::UnknownKey),
        ),
        case(
            "x5c with the attacker's key, our kid",
            our_kid_attacker_key(&|h| drop(h.insert("x5c".into(), x5c.clone()))),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "x5c with the attacker's key, no kid",
            jws(
                &json_seg(&kit.header_with(|h| {
                    h.remove("kid");
                    h.insert("x5c".into(), x5c.clone());
                })),
                &claims_seg,
                Algorithm::RS256,
                &attacker.rsa,
            ),
            rejected(TokenRejection::UnknownKey),
        ),
        // A correctly signed token naming a key URL: the header is ignored
        // (keys come only from our table), so the token is accepted and the
        // URL is never fetched (the listener behind it sees no connection).
        case(
            "jku elsewhere on a token our key signed: ignored, not fetched",
            kit.with_header(|h| drop(h.insert("jku".into(), elsewhere.into()))),
            Accepted,
        ),
        case(
            "x5u elsewhere on a token our key signed: ignored, not fetched",
            kit.with_header(|h| drop(h.insert("x5u".into(), elsewhere.into()))),
            Accepted,
        ),
    ]);
    // Issuer, audience, environment, type and required claims, all signed
    // with the deployment's key.
    let set = |name: &'static str, value: Value| kit.with_claims(|c| drop(c.insert(name.into(), value)));
    let remove = |name: &'static str| kit.with_claims(|c| drop(c.remove(name)));
    cases.extend([
        case(
            "iss of another issuer",
            set("iss", "https://auth.elsewhere.test".into()),
            rejected(TokenRejection::WrongIssuerOrAudience),
        ),
        case(
            "iss with a trailing slash",
            set("iss", format!("{ISSUER}/").into()),
            rejected(TokenRejection::WrongIssuerOrAudience),
        ),
        case("iss a list holding ours", set("iss", json!([ISSUER])), rejected(TokenRejection::MissingClaims)),
        case(
            "aud of another API",
            set("aud", "https://api.elsewhere.test".into()),
            rejected(TokenRejection::WrongIssuerOrAudience),
        ),
        case("aud the issuer", set("aud", ISSUER.into()), rejected(TokenRejection::WrongIssuerOrAudience)),
        // `aud` is a string in every token we issue; a list is refused even
        // when it holds ours (the claims type pins the shape).
        case(
            "aud a list holding ours and another",
            set("aud", json!([AUDIENCE, "https://evil.test"])),
            rejected(TokenRejection::MissingClaims),
        ),
        case("aud a list of only ours", set("aud", json!([AUDIENCE])), rejected(TokenRejection::MissingClaims)),
        case("aud missing", remove("aud"), rejected(TokenRejection::MissingClaims)),
        case("iss missing", remove("iss"), rejected(TokenRejection::MissingClaims)),
        case("exp missing", remove("exp"), rejected(TokenRejection::MissingClaims)),
        case("exp a string", set("exp", (now + 600).to_string().into()), rejected(TokenRejection::MissingClaims)),
        case("exp a float", set("exp", json!(1.0e10)), rejected(TokenRejection::MissingClaims)),
        case("exp negative", set("exp", json!(-1)), rejected(TokenRejection::MissingClaims)),
        case("exp null", set("exp", Value::Null), rejected(TokenRejection::MissingClaims)),
        case("nbf a string", set("nbf", now.to_string().into()), rejected(TokenRejection::Malformed)),
        case("iat missing", remove("iat"), rejected(TokenRejection::MissingClaims)),
        case("sub missing", remove("sub"), rejected(TokenRejection::MissingClaims)),
        case("tid missing", remove("tid"), rejected(TokenRejection::MissingClaims)),
        case("env missing", remove("env"), rejected(TokenRejection::MissingClaims)),
        case("env live on the test deployment", set("env", "live".into()), rejected(TokenRejection::WrongEnvironment)),
        case("env empty", set("env", "".into()), rejected(TokenRejection::WrongEnvironment)),
        case(
            "typ JWT",
            kit.with_header(|h| drop(h.insert("typ".into(), "JWT".into()))),
            rejected(TokenRejection::WrongType),
        ),
        case("typ missing", kit.with_header(|h| drop(h.remove("typ"))), rejected(TokenRejection::WrongType)),
        case(
            "typ at+jwt with a trailing space",
            kit.with_header(|h| drop(h.insert("typ".into(), "at+jwt ".into()))),
            rejected(TokenRejection::WrongType),
        ),
        // Media type names are case-blind (RFC 7515 §4.1.9), and RFC 9068 §4
        // has resource servers accept the long form `application/at+jwt` too.
        case("typ AT+JWT", kit.with_header(|h| drop(h.insert("typ".into(), "AT+JWT".into()))), Accepted),
        case(
            "typ application/at+jwt",
            kit.with_header(|h| drop(h.insert("typ".into(), "Application/AT+JWT".into()))),
            Accepted,
        ),
        case(
            "typ application/jwt",
            kit.with_header(|h| drop(h.insert("typ".into(), "application/jwt".into()))),
            rejected(TokenRejection::WrongType),
        ),
        case("a refresh token", refresh_token.to_owned(), rejected(TokenRejection::Malformed)),
        case("a client assertion (HS256, typ JWT)", assertion.to_owned(), rejected(TokenRejection::WrongType)),
    ]);
    // Tampering with a real token.
    let mut raised = kit.claims.clone();
    raised["scope"] = "orders:read orders:write keys:write admin".into();
    let mut other_sub = kit.claims.clone();
    other_sub["sub"] = "usr_someoneelse".into();
    let mut other_tid = kit.claims.clone();
    other_tid["tid"] = "othertenant".into();
    let signature = real_s;
    let mut flipped = signature.to_owned();
    let last = flipped.pop().expect("a signature");
    flipped.push(if last == 'A' { 'Q' } else { 'A' });
    // The signature is checked over the segments' text before the claims
    // are decoded, so anything done to the claims text is a bad signature;
    // a signature that is not canonical base64url is malformed.
    cases.extend([
        case(
            "scope raised under the real signature",
            format!("{real_h}.{}.{signature}", json_seg(&raised)),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "sub changed under the real signature",
            format!("{real_h}.{}.{signature}", json_seg(&other_sub)),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "tid changed under the real signature",
            format!("{real_h}.{}.{signature}", json_seg(&other_tid)),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "header changed (typ AT+JWT) under the real signature",
            format!(
                "{}.{real_c}.{signature}",
                json_seg(&kit.header_with(|h| drop(h.insert("typ".into(), "AT+JWT".into()))))
            ),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "the signature's last character changed",
            format!("{real_h}.{real_c}.{flipped}"),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "the signature truncated by four characters",
            real[..real.len() - 4].to_owned(),
            rejected(TokenRejection::Malformed),
        ),
        case("an empty signature", format!("{real_h}.{real_c}."), rejected(TokenRejection::BadSignature)),
        case("trailing AAAA after the signature", format!("{real}AAAA"), rejected(TokenRejection::BadSignature)),
        case("one trailing character after the signature", format!("{real}x"), rejected(TokenRejection::Malformed)),
        case("a trailing dot (four segments)", format!("{real}."), rejected(TokenRejection::Malformed)),
        case("four segments", format!("{real}.{signature}"), rejected(TokenRejection::Malformed)),
        case("two segments", format!("{real_h}.{real_c}"), rejected(TokenRejection::Malformed)),
        case("a leading dot", format!(".{real}"), rejected(TokenRejection::Malformed)),
        case("only dots", "..".to_owned(), rejected(TokenRejection::Malformed)),
        case(
            "a space inside the claims",
            format!("{real_h}.{} {}.{signature}", &real_c[..10], &real_c[10..]),
            rejected(TokenRejection::BadSignature),
        ),
        case(
            "a tab inside the claims",
            format!("{real_h}.{}\t{}.{signature}", &real_c[..10], &real_c[10..]),
            rejected(TokenRejection::BadSignature),
        ),
        // The header transport trims the value (HTTP optional whitespace);
        // a JSON string is taken as it is.
        case("surrounding spaces", format!("  {real}  "), rejected(TokenRejection::Malformed)).in_header(Accepted),
    ]);
    // Base64 variants, each correctly signed over the text as sent.
    let padded_claims = padded_seg(&kit.claims);
    let standard_claims = standard_alphabet_seg(&kit.claims);
    let standard_signature = {
        // Re-sign with a growing nonce until the signature has a URL-only character.
        let mut nonce = 0_u32;
        loop {
            let token = kit.with_claims(|c| drop(c.insert("nonce".into(), nonce.into())));
            let (message, signature) = token.rsplit_once('.').expect("three segments");
            if signature.contains(['-', '_']) {
                break format!("{message}.{}", to_standard_alphabet(signature));
            }
            nonce += 1;
        }
    };
    cases.extend([
        case(
            "a padded header segment",
            jws(&padded_seg(&kit.header), &claims_seg, Algorithm::RS256, &kit.signing),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "a padded claims segment",
            jws(&header_seg, &padded_claims, Algorithm::RS256, &kit.signing),
            rejected(TokenRejection::Malformed),
        ),
        case("a padded signature", format!("{real}=="), rejected(TokenRejection::Malformed)),
        case(
            "the header in the standard base64 alphabet",
            jws(&standard_alphabet_seg(&kit.header), &claims_seg, Algorithm::RS256, &kit.signing),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "the claims in the standard base64 alphabet",
            jws(&header_seg, &standard_claims, Algorithm::RS256, &kit.signing),
            rejected(TokenRejection::Malformed),
        ),
        case("the signature in the standard base64 alphabet", standard_signature, rejected(TokenRejection::Malformed)),
    ]);
    // Duplicate members: serde refuses a duplicate of any field it reads,
    // whichever copy comes first, so there is no first-wins/last-wins
    // ambiguity. In the claims, a JSON error is reported as missing claims.
    let header_text = kit.header.clone();
    cases.extend([
        case(
            "two alg, RS256 then HS256",
            kit.sign_raw(&duplicate_last(&header_text, r#""alg":"HS256""#), kit.claims.to_string().as_bytes()),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "two alg, none then RS256",
            kit.sign_raw(&duplicate_first(&header_text, r#""alg":"none""#), kit.claims.to_string().as_bytes()),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "two kid, unknown then ours",
            kit.sign_raw(&duplicate_first(&header_text, r#""kid":"unknown""#), kit.claims.to_string().as_bytes()),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "two typ",
            kit.sign_raw(&duplicate_last(&header_text, r#""typ":"JWT""#), kit.claims.to_string().as_bytes()),
            rejected(TokenRejection::Malformed),
        ),
    ]);
    let header_bytes = kit.header.to_string().into_bytes();
    for (what, member, first) in [
        ("two aud, another first", r#""aud":"https://api.elsewhere.test""#.to_owned(), true),
        ("two aud, another last", r#""aud":"https://api.elsewhere.test""#.to_owned(), false),
        ("two aud, both ours", format!(r#""aud":"{AUDIENCE}""#), false),
        ("two exp, an expired one last", r#""exp":1"#.to_owned(), false),
        ("two exp, a far one first", r#""exp":99999999999"#.to_owned(), true),
        ("two iss", r#""iss":"https://auth.elsewhere.test""#.to_owned(), true),
        ("two sub", r#""sub":"usr_admin""#.to_owned(), false),
        ("two tid", r#""tid":"othertenant""#.to_owned(), false),
        ("two env", r#""env":"live""#.to_owned(), false),
    ] {
        let claims = if first { duplicate_first(&kit.claims, &member) } else { duplicate_last(&kit.claims, &member) };
        cases.push(case(what, kit.sign_raw(&header_bytes, &claims), rejected(TokenRejection::MissingClaims)));
    }
    // Bytes that are not UTF-8 inside the decoded segments, correctly signed.
    let mut header_marked = kit.header.clone();
    header_marked["kid"] = format!("{kid}{MARKER}").into();
    let mut claims_marked = kit.claims.clone();
    claims_marked["sub"] = format!("usr_{MARKER}").into();
    cases.extend([
        case(
            "non-UTF-8 bytes in the header's kid",
            kit.sign_raw(&splice(&header_marked, b"\xff\xfe"), kit.claims.to_string().as_bytes()),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "non-UTF-8 bytes in the claims' sub",
            kit.sign_raw(&header_bytes, &splice(&claims_marked, b"\xc3\x28")),
            rejected(TokenRejection::MissingClaims),
        ),
    ]);
    let mut header_extra = kit.header.clone();
    header_extra["note"] = MARKER.into();
    let mut claims_extra = kit.claims.clone();
    claims_extra["note"] = MARKER.into();
    // Anomalies in members Latchkey does not read, correctly signed with the
    // deployment's key: a header member that is not UTF-8 and any `crit`
    // (RFC 7515 §4.1.11: no extension is understood) are refused; unknown
    // claims are skipped unchecked after the signature is verified. Only the
    // deployment's key could sign those, and it never writes them, so they
    // are pinned as they are (RFC 7519 §7.2 would refuse them).
    cases.extend([
        case(
            "non-UTF-8 bytes in an unknown header member",
            kit.sign_raw(&splice(&header_extra, b"\xff"), kit.claims.to_string().as_bytes()),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "non-UTF-8 bytes in an unknown claim",
            kit.sign_raw(&header_bytes, &splice(&claims_extra, b"\xff")),
            Accepted,
        ),
        case(
            "crit naming an extension",
            kit.with_header(|h| {
                h.insert("crit".into(), json!(["x-latchkey-test"]));
                h.insert("x-latchkey-test".into(), true.into());
            }),
            rejected(TokenRejection::Malformed),
        ),
        case(
            "two copies of an unknown claim",
            kit.sign_raw(&header_bytes, &duplicate_last(&claims_extra, r#""note":"again""#)),
            Accepted,
        ),
    ]);
    // Non-ASCII characters in the token text. A header value must be
    // printable ASCII to be read as `Bearer …` at all.
    let (h, c, s) = (real_h, real_c, real_s);
    cases.extend([
        case("é in the header segment", format!("{}.{c}.{s}", with_non_ascii(h)), rejected(TokenRejection::Malformed))
            .in_header(Refused(NOT_BEARER)),
        case(
            "é in the claims segment",
            format!("{h}.{}.{s}", with_non_ascii(c)),
            rejected(TokenRejection::BadSignature),
        )
        .in_header(Refused(NOT_BEARER)),
        case(
            "é in the signature segment",
            format!("{h}.{c}.{}", with_non_ascii(s)),
            rejected(TokenRejection::Malformed),
        )
        .in_header(Refused(NOT_BEARER)),
    ]);
    // Size: refused unread above `MAX_TOKEN_BYTES`, and promptly.
    let mut huge = kit.claims.clone();
    huge["filler"] = "a".repeat(100 * 1024).into();
    let (fits, over) =
        (kit.sign(&kit.header, &sized_claims(kit, true)), kit.sign(&kit.header, &sized_claims(kit, false)));
    assert!(fits.len() <= MAX_TOKEN_BYTES && over.len() > MAX_TOKEN_BYTES, "{} and {}", fits.len(), over.len());
    assert!(over.len() - fits.len() <= 2, "the two edges are a filler byte apart");
    cases.extend([
        case("the longest correctly signed token within the size limit", fits, Accepted),
        case("the shortest correctly signed token over the size limit", over, rejected(TokenRejection::Malformed)),
        case("a 100 KB claim, correctly signed", kit.sign(&kit.header, &huge), rejected(TokenRejection::Malformed))
            .in_body(BodyTooLarge),
        case("100 KB of a", "a".repeat(100 * 1024), rejected(TokenRejection::Malformed)).in_body(BodyTooLarge),
        case("100 KB of dots", ".".repeat(100 * 1024), rejected(TokenRejection::Malformed)).in_body(BodyTooLarge),
    ]);
    cases
}

fn assert_refused_401(response: &TestResponse, description: &str, what: &str) {
    assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what}: {}", response.body);
    response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(response.json()["error_description"], description, "{what}");
    let challenge = format!(r#"Bearer error="invalid_token", error_description="{description}""#);
    assert_eq!(response.header("www-authenticate"), Some(challenge.as_str()), "{what}");
}

fn assert_verdict(response: &TestResponse, expect: Expect, sub: &str, what: &str) {
    match expect {
        Accepted => {
            assert_eq!(response.status, StatusCode::OK, "{what}: {}", response.body);
            let body = response.json();
            assert_eq!(
                (&body["valid"], &body["sub"], &body["tid"]),
                (&json!(true), &json!(sub), &json!(TENANT)),
                "{what}"
            );
            assert_eq!(body["ratelimit"], Value::Null, "{what}: access tokens are not metered by default");
        }
        Refused(description) => {
            assert_eq!(response.status, StatusCode::OK, "{what}: {}", response.body);
            let expected = json!({"valid": false, "error": "invalid_token", "error_description": description});
            assert_eq!(response.json(), expected, "{what}");
        }
        BodyTooLarge => {
            response.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
        }
    }
}

/// Runs `case` through every door, asserting each answer.
async fn through_every_door(app: &TestApp, guard: &Guard, case: &TokenCase, sub: &str) {
    let name = case.name.as_str();
    let auth = bearer(&case.token);
    let header = [("authorization", auth.as_str())];

    let what = format!("{name} @ GET /v1/me");
    let me = within(&what, app.keys_request(get("/v1/me", &header))).await;
    match case.header {
        Accepted => {
            assert_eq!(me.status, StatusCode::OK, "{what}: {}", me.body);
            assert_eq!((me.json()["sub"].as_str(), me.json()["tid"].as_str()), (Some(sub), Some(TENANT)), "{what}");
        }
        Refused(description) => assert_refused_401(&me, description, &what),
        BodyTooLarge => unreachable!("{what}: no body"),
    }

    let what = format!("{name} @ POST /v1/verify (header)");
    assert_verdict(&within(&what, app.post_verify(&header, "")).await, case.header, sub, &what);

    let what = format!("{name} @ POST /v1/verify (body)");
    let body = json!({ "token": case.token }).to_string();
    assert_verdict(&within(&what, app.post_verify(&[], &body)).await, case.body, sub, &what);

    let what = format!("{name} @ authorizer");
    let decision = Box::pin(within(&what, app.authorize(ROUTE, &header))).await;
    if case.header == Accepted {
        assert!(decision.is_authorized, "{what}: {decision:?}");
        assert_eq!(decision.context.sub.as_deref(), Some(sub), "{what}");
    } else {
        assert!(!decision.is_authorized, "{what}: {decision:?}");
        assert_eq!(decision.context, authorizer::AuthorizerContext::default(), "{what}: a deny carries no context");
    }

    let what = format!("{name} @ middleware");
    let orders = request("/orders", "GET", &[("content-type", ""), ("authorization", &auth)], "", CLIENT_IP);
    let orders = TestResponse::from(within(&what, protected_api::handle(guard, orders)).await);
    match case.header {
        Accepted => {
            assert_eq!(orders.status, StatusCode::OK, "{what}: {}", orders.body);
            assert_eq!(orders.json()["caller"]["sub"].as_str(), Some(sub), "{what}");
        }
        Refused(description) => assert_refused_401(&orders, description, &what),
        BodyTooLarge => unreachable!("{what}: no body"),
    }
}

/// Each case has its own name (a copy-paste slip would hide a case behind
/// another's failure messages).
fn assert_unique<'a>(names: impl Iterator<Item = &'a str>) {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        assert!(seen.insert(name), "two cases named {name:?}");
    }
}

/// A local port standing in for an attacker's JWKS/certificate URL: nothing
/// in Latchkey may ever connect to it.
fn decoy() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
    listener.set_nonblocking(true).expect("non-blocking");
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("address"));
    (listener, url)
}

fn assert_never_contacted(listener: &TcpListener) {
    match listener.accept() {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the URL in a token header was fetched: {other:?}"),
    }
}

#[tokio::test]
async fn every_door_answers_every_forged_access_token_exactly() {
    let app = TestApp::spawn().await;
    let kit = Kit::new(&app).await;
    let sub = kit.claims["sub"].as_str().expect("sub").to_owned();
    let refresh_token = app.login_ok().await["refresh_token"].as_str().expect("refresh token").to_owned();
    let (key_id, key) = app.add_held_key(TestKey::default()).await;
    let now = now_secs();
    let assertion = client_assertion(&key_id, &json!({"sub": key_id, "iat": now, "exp": now + 300}), key.as_bytes());
    let (listener, elsewhere) = decoy();
    let cases = access_token_cases(&kit, &elsewhere, &refresh_token, &assertion);
    let guard = app.latchkey.guard();
    for case in &cases {
        // A key set loaded just now: an unknown kid then costs no reload
        // either (see `made_up_kids_reload_the_keys_at_most_once_per_window`).
        app.latchkey.issuer.keys().reload().await.expect("keys load");
        app.calls.take();
        Box::pin(through_every_door(&app, &guard, case, &sub)).await;
        assert_eq!(app.calls.take(), Vec::<String>::new(), "{}: no DynamoDB call at any door", case.name);
    }
    assert_never_contacted(&listener);
    assert_unique(cases.iter().map(|c| c.name.as_str()));
}

/// The one DynamoDB cost a forger can cause: a kid the cached key set lacks
/// makes an instance reload it (a key may have been rotated in), but at most
/// once per `UNKNOWN_KID_RELOAD_AFTER`, however many arrive at once.
#[tokio::test]
async fn made_up_kids_reload_the_keys_at_most_once_per_window() {
    let app = TestApp::spawn().await;
    let kit = Kit::new(&app).await;
    let tokens: Vec<String> = (0..10)
        .map(|i| {
            let header = kit.header_with(|h| drop(h.insert("kid".into(), format!("made-up-{i}").into())));
            jws(&json_seg(&header), &json_seg(&kit.claims), Algorithm::RS256, &kit.attacker.rsa)
        })
        .collect();
    let app = &app;
    let burst = || {
        futures_join_all(tokens.iter().map(|token| async move {
            let auth = bearer(token);
            let response = within("unknown kid", app.post_verify(&[("authorization", auth.as_str())], "")).await;
            assert_verdict(&response, rejected(TokenRejection::UnknownKey), "", "unknown kid");
        }))
    };
    app.latchkey.issuer.keys().reload().await.expect("keys load");
    app.calls.take();
    burst().await;
    assert_eq!(app.calls.take(), Vec::<String>::new(), "a key set younger than the reload window is trusted");
    tokio::time::sleep(UNKNOWN_KID_RELOAD_AFTER + Duration::from_secs(1)).await;
    burst().await;
    assert_eq!(app.calls.take(), ["Query"], "ten made-up kids at once: one reload");
    burst().await;
    assert_eq!(app.calls.take(), Vec::<String>::new(), "and none again within the window");
}

// ---------------------------------------------------------------------------
// Client assertions at POST /v1/auth/token.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// 200 with an access token for the key and a refresh token.
    Issued,
    /// This status, error code and description.
    Refused(StatusCode, &'static str, &'static str),
}

fn invalid(rejection: AssertionRejection) -> Grant {
    Grant::Refused(StatusCode::UNAUTHORIZED, "invalid_token", rejection.description())
}

struct AssertionCase {
    name: String,
    token: String,
    /// `grant_type=…jwt-bearer&assertion=…` as a form body.
    form: Grant,
    /// A bare `Authorization: Bearer <assertion>` with no body.
    bearer: Grant,
}

fn grant_case(name: impl Into<String>, token: String, expect: Grant) -> AssertionCase {
    AssertionCase { name: name.into(), token, form: expect, bearer: expect }
}

/// The API key a client signs its assertions with.
struct Client {
    id: String,
    key: String,
    other_id: String,
    other_key: String,
}

fn hs(algorithm: Algorithm, header: &Value, claims: &Value, key: &[u8]) -> String {
    jws(&json_seg(header), &json_seg(claims), algorithm, &EncodingKey::from_secret(key))
}

fn hs_raw(header: &[u8], claims: &[u8], key: &[u8]) -> String {
    jws(&seg(header), &seg(claims), Algorithm::HS256, &EncodingKey::from_secret(key))
}

#[allow(clippy::too_many_lines)]
fn assertion_cases(client: &Client, kit: &Kit, elsewhere: &str) -> Vec<AssertionCase> {
    let now = now_secs();
    let (id, key) = (client.id.as_str(), client.key.as_bytes());
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": id});
    // A fresh jti per build: each build is a new assertion, usable once.
    let claims = json!({"sub": id, "iat": now, "exp": now + 300, "jti": random_id()});
    let sign = |header: &Value, claims: &Value| hs(Algorithm::HS256, header, claims, key);
    let fresh = || {
        let mut claims = claims.clone();
        claims["jti"] = random_id().into();
        claims
    };
    let with_claims = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = fresh();
        change(claims.as_object_mut().expect("object"));
        sign(&header, &claims)
    };
    let with_header = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut header = header.clone();
        change(header.as_object_mut().expect("object"));
        sign(&header, &fresh())
    };
    let times = |iat: u64, exp: u64| {
        with_claims(&|c| {
            c.insert("iat".into(), iat.into());
            c.insert("exp".into(), exp.into());
        })
    };
    let real = sign(&header, &claims);
    let (h, rest) = real.split_once('.').expect("segments");
    let (c, s) = rest.split_once('.').expect("segments");
    let claims_bytes = claims.to_string().into_bytes();
    let header_bytes = header.to_string().into_bytes();
    let mut cases = vec![
        // Time edges first, as for access tokens.
        grant_case("exp 10 s inside the leeway", times(now - 300, now - LEEWAY_SECS + 10), Grant::Issued),
        grant_case(
            "exp at the end of the leeway",
            times(now - 300, now - LEEWAY_SECS),
            invalid(AssertionRejection::Expired),
        ),
        grant_case("expired an hour ago", times(now - 3900, now - 3600), invalid(AssertionRejection::Expired)),
        grant_case(
            "nbf at the edge of the leeway",
            with_claims(&|c| drop(c.insert("nbf".into(), (now + LEEWAY_SECS).into()))),
            Grant::Issued,
        ),
        grant_case(
            "nbf a minute beyond the leeway",
            with_claims(&|c| drop(c.insert("nbf".into(), (now + LEEWAY_SECS + 60).into()))),
            invalid(AssertionRejection::NotYetValid),
        ),
        grant_case("iat at the edge of the leeway", times(now + LEEWAY_SECS, now + LEEWAY_SECS + 60), Grant::Issued),
        grant_case(
            "iat a minute beyond the leeway",
            times(now + LEEWAY_SECS + 60, now + LEEWAY_SECS + 120),
            invalid(AssertionRejection::IssuedInFuture),
        ),
        grant_case("control: a client's assertion", real.clone(), Grant::Issued),
        grant_case("lifetime exactly 10 minutes", times(now, now + 600), Grant::Issued),
        grant_case(
            "lifetime 10 minutes and a second",
            times(now, now + 601),
            invalid(AssertionRejection::LifetimeTooLong),
        ),
        grant_case("lifetime a day", times(now, now + 86_400), invalid(AssertionRejection::LifetimeTooLong)),
        grant_case("exp before iat", times(now, now - 1), invalid(AssertionRejection::LifetimeTooLong)),
        grant_case("aud the issuer", with_claims(&|c| drop(c.insert("aud".into(), ISSUER.into()))), Grant::Issued),
        grant_case(
            "aud the token endpoint",
            with_claims(&|c| drop(c.insert("aud".into(), format!("{ISSUER}/v1/auth/token").into()))),
            Grant::Issued,
        ),
        grant_case(
            "aud a list holding the issuer",
            with_claims(&|c| drop(c.insert("aud".into(), json!(["https://evil.test", ISSUER])))),
            Grant::Issued,
        ),
        grant_case(
            "aud another server",
            with_claims(&|c| drop(c.insert("aud".into(), "https://auth.elsewhere.test".into()))),
            invalid(AssertionRejection::WrongAudience),
        ),
        grant_case(
            "aud the API's audience, not the issuer",
            with_claims(&|c| drop(c.insert("aud".into(), AUDIENCE.into()))),
            invalid(AssertionRejection::WrongAudience),
        ),
        grant_case(
            "aud a list without the issuer",
            with_claims(&|c| drop(c.insert("aud".into(), json!(["https://evil.test"])))),
            invalid(AssertionRejection::WrongAudience),
        ),
        // A header naming a key URL is not read: the key is the API key's.
        grant_case(
            "jku elsewhere: ignored, not fetched",
            with_header(&|h| drop(h.insert("jku".into(), elsewhere.into()))),
            Grant::Issued,
        ),
        grant_case(
            "x5u elsewhere: ignored, not fetched",
            with_header(&|h| drop(h.insert("x5u".into(), elsewhere.into()))),
            Grant::Issued,
        ),
        grant_case("typ absent (not pinned for assertions)", with_header(&|h| drop(h.remove("typ"))), Grant::Issued),
    ];
    for alg in ["none", "None", "NONE"] {
        let none = json_seg(&json!({"alg": alg, "typ": "JWT", "kid": id}));
        cases.push(grant_case(
            format!("alg {alg}, empty signature"),
            format!("{none}.{c}."),
            invalid(AssertionRejection::WrongAlgorithm),
        ));
        cases.push(grant_case(
            format!("alg {alg} with a real signature"),
            format!("{none}.{c}.{s}"),
            invalid(AssertionRejection::WrongAlgorithm),
        ));
        cases.push(grant_case(
            format!("alg {alg}, no signature segment"),
            format!("{none}.{c}"),
            invalid(AssertionRejection::Malformed),
        ));
    }
    let alg = |alg: &str| json!({"alg": alg, "typ": "JWT", "kid": id});
    cases.extend([
        grant_case(
            "alg HS384 with the key",
            hs(Algorithm::HS384, &alg("HS384"), &claims, key),
            invalid(AssertionRejection::WrongAlgorithm),
        ),
        grant_case(
            "alg HS512 with the key",
            hs(Algorithm::HS512, &alg("HS512"), &claims, key),
            invalid(AssertionRejection::WrongAlgorithm),
        ),
        grant_case(
            "alg hs256 in lower case",
            sign(&alg("hs256"), &claims),
            invalid(AssertionRejection::WrongAlgorithm),
        ),
        grant_case(
            "alg RS256 signed with an attacker's RSA key",
            jws(&json_seg(&alg("RS256")), &json_seg(&claims), Algorithm::RS256, &kit.attacker.rsa),
            invalid(AssertionRejection::WrongAlgorithm),
        ),
        grant_case("alg missing", with_header(&|h| drop(h.remove("alg"))), invalid(AssertionRejection::Malformed)),
        grant_case(
            "an access token of this deployment",
            kit.token.clone(),
            invalid(AssertionRejection::WrongAlgorithm),
        ),
    ]);
    for (what, bad_kid) in [
        ("path traversal", "../../../dev/null".to_owned()),
        ("SQL-ish", "' OR '1'='1".to_owned()),
        ("the key id, then SQL-ish", format!("{id}' OR '1'='1")),
        ("the key id, then a NUL", format!("{id}\u{0}")),
        ("the key id in upper case", id.to_uppercase()),
        ("4000 characters", "k".repeat(4000)),
        ("empty", String::new()),
    ] {
        cases.push(grant_case(
            format!("kid {what}"),
            with_header(&|h| drop(h.insert("kid".into(), bad_kid.clone().into()))),
            invalid(AssertionRejection::NoKeyId),
        ));
    }
    let unknown = ApiKeyId::generate().to_string();
    let other = client.other_id.as_str();
    cases.extend([
        grant_case("kid missing", with_header(&|h| drop(h.remove("kid"))), invalid(AssertionRejection::NoKeyId)),
        grant_case(
            "kid a number",
            with_header(&|h| drop(h.insert("kid".into(), 7.into()))),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "an unknown (well-formed) key id, signed with our key",
            sign(&json!({"alg": "HS256", "kid": unknown}), &json!({"sub": unknown, "iat": now, "exp": now + 60})),
            invalid(AssertionRejection::BadSignature),
        ),
        grant_case(
            "signed with another key's secret",
            hs(Algorithm::HS256, &header, &claims, client.other_key.as_bytes()),
            invalid(AssertionRejection::BadSignature),
        ),
        grant_case(
            "another key's kid and sub, signed with our secret",
            sign(&json!({"alg": "HS256", "kid": other}), &json!({"sub": other, "iat": now, "exp": now + 60})),
            invalid(AssertionRejection::BadSignature),
        ),
        grant_case(
            "a guessed secret",
            hs(Algorithm::HS256, &header, &claims, b"secret"),
            invalid(AssertionRejection::BadSignature),
        ),
        grant_case(
            "exp extended under the original signature",
            {
                let mut longer = claims.clone();
                longer["exp"] = (now + 590).into();
                format!("{h}.{}.{s}", json_seg(&longer))
            },
            invalid(AssertionRejection::BadSignature),
        ),
        grant_case("an empty signature", format!("{h}.{c}."), invalid(AssertionRejection::BadSignature)),
        grant_case(
            "trailing AAAA after the signature",
            format!("{real}AAAA"),
            invalid(AssertionRejection::BadSignature),
        ),
        // 43 + 1 characters still decode (to 33 bytes): a bad signature.
        grant_case(
            "one trailing character after the signature",
            format!("{real}x"),
            invalid(AssertionRejection::BadSignature),
        ),
        grant_case("a trailing dot (four segments)", format!("{real}."), invalid(AssertionRejection::Malformed)),
        grant_case("four segments", format!("{real}.{s}"), invalid(AssertionRejection::Malformed)),
        grant_case(
            "sub another key's id",
            with_claims(&|c| drop(c.insert("sub".into(), other.into()))),
            invalid(AssertionRejection::SubjectMismatch),
        ),
        grant_case(
            "sub the key id in upper case",
            with_claims(&|c| drop(c.insert("sub".into(), id.to_uppercase().into()))),
            invalid(AssertionRejection::SubjectMismatch),
        ),
        grant_case("sub missing", with_claims(&|c| drop(c.remove("sub"))), invalid(AssertionRejection::MissingClaims)),
        grant_case("iat missing", with_claims(&|c| drop(c.remove("iat"))), invalid(AssertionRejection::MissingClaims)),
        grant_case("exp missing", with_claims(&|c| drop(c.remove("exp"))), invalid(AssertionRejection::MissingClaims)),
        grant_case(
            "exp a string",
            with_claims(&|c| drop(c.insert("exp".into(), (now + 60).to_string().into()))),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "nbf a string",
            with_claims(&|c| drop(c.insert("nbf".into(), now.to_string().into()))),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "jti empty",
            with_claims(&|c| drop(c.insert("jti".into(), "".into()))),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "jti of 257 characters",
            with_claims(&|c| drop(c.insert("jti".into(), "j".repeat(257).into()))),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "crit naming an extension",
            with_header(&|h| drop(h.insert("crit".into(), json!(["exp"])))),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "two alg, HS256 then none",
            hs_raw(&duplicate_last(&header, r#""alg":"none""#), &claims_bytes, key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "two kid, another key's first",
            hs_raw(&duplicate_first(&header, &format!(r#""kid":"{other}""#)), &claims_bytes, key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "two sub, another key's last",
            hs_raw(&header_bytes, &duplicate_last(&claims, &format!(r#""sub":"{other}""#)), key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "two exp, a far one last",
            hs_raw(&header_bytes, &duplicate_last(&claims, &format!(r#""exp":{}"#, now + 86_400)), key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "two aud, another server first",
            hs_raw(
                &header_bytes,
                &duplicate_first(&claims, &format!(r#""aud":"https://evil.test","aud":"{ISSUER}""#)),
                key,
            ),
            invalid(AssertionRejection::Malformed),
        ),
        // A duplicate of a member the verifier does not read is skipped like
        // the member itself.
        grant_case(
            "two iss (not read)",
            {
                let mut claims = fresh();
                claims["iss"] = "sdk".into();
                hs_raw(&header_bytes, &duplicate_last(&claims, r#""iss":"again""#), key)
            },
            Grant::Issued,
        ),
        grant_case(
            "a padded claims segment",
            jws(&json_seg(&header), &padded_seg(&claims), Algorithm::HS256, &EncodingKey::from_secret(key)),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "the claims in the standard base64 alphabet",
            jws(&json_seg(&header), &standard_alphabet_seg(&claims), Algorithm::HS256, &EncodingKey::from_secret(key)),
            invalid(AssertionRejection::Malformed),
        ),
    ]);
    let marked = |value: &Value, name: &str, prefix: &str| {
        let mut value = value.clone();
        value[name] = format!("{prefix}{MARKER}").into();
        value
    };
    let fresh_bytes = || fresh().to_string().into_bytes();
    let not_bearer = Grant::Refused(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required");
    let mut huge = claims.clone();
    huge["filler"] = "a".repeat(100 * 1024).into();
    cases.extend([
        // Read members and ignored ones alike (the ignored ones were let
        // through before the UTF-8 check in `assertion::decode_json`).
        grant_case(
            "non-UTF-8 bytes in the header's kid",
            hs_raw(&splice(&marked(&header, "kid", id), b"\xff"), &fresh_bytes(), key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "non-UTF-8 bytes in the header's typ (not read)",
            hs_raw(&splice(&marked(&header, "typ", "JWT"), b"\xff"), &fresh_bytes(), key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "non-UTF-8 bytes in the claims' sub",
            hs_raw(&header_bytes, &splice(&marked(&fresh(), "sub", id), b"\xc3\x28"), key),
            invalid(AssertionRejection::Malformed),
        ),
        grant_case(
            "non-UTF-8 bytes in the claims' iss (not read)",
            hs_raw(&header_bytes, &splice(&marked(&fresh(), "iss", "sdk"), b"\xc3\x28"), key),
            invalid(AssertionRejection::Malformed),
        ),
        // Raw non-ASCII text: the form body is UTF-8 and reaches the
        // verifier; a header that is not printable ASCII is no `Bearer`
        // header, so the request has no grant at all.
        AssertionCase {
            bearer: not_bearer,
            ..grant_case(
                "é in the header segment",
                format!("{}.{c}.{s}", with_non_ascii(h)),
                invalid(AssertionRejection::Malformed),
            )
        },
        AssertionCase {
            bearer: not_bearer,
            ..grant_case(
                "é in the signature segment",
                format!("{h}.{c}.{}", with_non_ascii(s)),
                invalid(AssertionRejection::Malformed),
            )
        },
        // The header transport trims (HTTP optional whitespace); a form
        // value is taken as it is.
        AssertionCase {
            bearer: Grant::Issued,
            ..grant_case(
                "surrounding spaces",
                format!(" {} ", with_claims(&|_| ())),
                invalid(AssertionRejection::Malformed),
            )
        },
        // 100 KB: over the body limit in a form (413 before parsing);
        // refused unread above `MAX_TOKEN_BYTES` in the header.
        AssertionCase {
            form: Grant::Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body is larger than 16384 bytes",
            ),
            ..grant_case(
                "a 100 KB claim, correctly signed",
                sign(&header, &huge),
                invalid(AssertionRejection::Malformed),
            )
        },
    ]);
    cases
}

#[derive(Debug, Clone, Copy)]
enum TokenDoor {
    Form,
    Bearer,
}

async fn send_assertion(app: &TestApp, door: TokenDoor, assertion: &str) -> TestResponse {
    let path = latchkey::service::exchange::TOKEN_PATH;
    let request = match door {
        TokenDoor::Form => {
            let body =
                serde_urlencoded::to_string([("grant_type", JWT_BEARER), ("assertion", assertion)]).expect("form");
            request(path, "POST", &[("content-type", FORM)], &body, CLIENT_IP)
        }
        TokenDoor::Bearer => {
            let auth = bearer(assertion);
            request(path, "POST", &[("content-type", ""), ("authorization", &auth)], "", CLIENT_IP)
        }
    };
    within(&format!("{door:?} assertion"), app.token_request(request)).await
}

async fn assert_grant(app: &TestApp, response: &TestResponse, expect: Grant, key_id: &str, what: &str) {
    match expect {
        Grant::Issued => {
            assert_eq!(response.status, StatusCode::OK, "{what}: {}", response.body);
            let body = response.json();
            assert_eq!(body["token_type"], "Bearer", "{what}");
            assert!(body["refresh_token"].as_str().is_some_and(|t| t.starts_with("rt_")), "{what}: {body}");
            let token = body["access_token"].as_str().expect("access_token");
            let claims = app.latchkey.issuer.verify(token).await.expect("the access token verifies");
            assert_eq!((claims.sub.as_str(), claims.client_id.as_deref()), (key_id, Some(key_id)), "{what}");
        }
        Grant::Refused(status, code, description) => {
            assert_eq!(response.status, status, "{what}: {}", response.body);
            response.assert_error(status, code);
            assert_eq!(response.json()["error_description"], description, "{what}");
            if status == StatusCode::UNAUTHORIZED {
                let challenge = format!(r#"Bearer error="invalid_token", error_description="{description}""#);
                assert_eq!(response.header("www-authenticate"), Some(challenge.as_str()), "{what}");
            }
        }
    }
}

async fn client(app: &TestApp) -> Client {
    let (id, key) = app.add_held_key(TestKey::default()).await;
    let (other_id, other_key) = app.add_held_key(TestKey::default()).await;
    Client { id, key, other_id, other_key }
}

#[tokio::test]
async fn the_token_endpoint_answers_every_forged_assertion_exactly() {
    let app = TestApp::spawn().await;
    let kit = Kit::new(&app).await;
    let client = client(&app).await;
    let (listener, elsewhere) = decoy();
    for door in [TokenDoor::Form, TokenDoor::Bearer] {
        // Built per door: an issued assertion is used up.
        let cases = assertion_cases(&client, &kit, &elsewhere);
        for case in &cases {
            let what = format!("{} @ {door:?}", case.name);
            let expect = match door {
                TokenDoor::Form => case.form,
                TokenDoor::Bearer => case.bearer,
            };
            app.calls.take();
            let response = send_assertion(&app, door, &case.token).await;
            let calls = app.calls.take();
            assert_grant(&app, &response, expect, &client.id, &what).await;
            if expect != Grant::Issued {
                assert_eq!(calls, Vec::<String>::new(), "{what}: a refused assertion costs no DynamoDB call");
            }
        }
    }
    assert_never_contacted(&listener);
    assert_unique(assertion_cases(&client, &kit, &elsewhere).iter().map(|c| c.name.as_str()));
}

/// Single use: named by key and `jti` (or, without one, by the exact
/// token), refused at either door once used, and exactly one of several
/// concurrent copies wins.
#[tokio::test]
async fn an_assertion_is_exchanged_once_whichever_door_it_comes_through() {
    let app = TestApp::spawn().await;
    app.latchkey.issuer.keys().signing_key().await.expect("signing key");
    let client = client(&app).await;
    let replayed = invalid(AssertionRejection::Replayed);
    let now = now_secs();
    let with_jti = json!({"sub": client.id, "iat": now, "exp": now + 300, "jti": "once"});
    let without_jti = json!({"sub": client.id, "iat": now, "exp": now + 300});
    for (what, claims) in [("with a jti", with_jti), ("without a jti", without_jti)] {
        let assertion = client_assertion(&client.id, &claims, client.key.as_bytes());
        let first = send_assertion(&app, TokenDoor::Form, &assertion).await;
        assert_grant(&app, &first, Grant::Issued, &client.id, what).await;
        for door in [TokenDoor::Form, TokenDoor::Bearer] {
            app.calls.take();
            let again = send_assertion(&app, door, &assertion).await;
            assert_grant(&app, &again, replayed, &client.id, &format!("{what}, again @ {door:?}")).await;
            let mut calls = app.calls.take();
            calls.sort();
            assert_eq!(calls, ["GetItem", "PutItem"], "{what}: the key read and the refused single-use marker");
        }
    }
    // The same jti under another signature (a later exp) is the same assertion.
    let later = json!({"sub": client.id, "iat": now, "exp": now + 400, "jti": "once"});
    let resigned = client_assertion(&client.id, &later, client.key.as_bytes());
    let response = send_assertion(&app, TokenDoor::Bearer, &resigned).await;
    assert_grant(&app, &response, replayed, &client.id, "the jti re-signed").await;

    // Five copies at once: exactly one is exchanged.
    let racing = json!({"sub": client.id, "iat": now, "exp": now + 300, "jti": "race"});
    let assertion = client_assertion(&client.id, &racing, client.key.as_bytes());
    let answers = futures_join_all((0..5).map(|i| {
        let door = if i % 2 == 0 { TokenDoor::Form } else { TokenDoor::Bearer };
        send_assertion(&app, door, &assertion)
    }))
    .await;
    let statuses: Vec<StatusCode> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    for answer in answers.iter().filter(|r| r.status != StatusCode::OK) {
        assert_grant(&app, answer, replayed, &client.id, "a racing copy").await;
    }
}
