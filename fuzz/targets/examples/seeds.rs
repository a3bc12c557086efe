//! Writes the fuzz seeds, `fuzz/corpus/<target>/`, from real artifacts:
//! tokens, keys and webhook signatures made by Latchkey's own code with the
//! fixed fuzz deployment (`latchkey_fuzz_targets::fixture`), client
//! assertions signed the way SDKs sign them, and Lambda events built from
//! the API Gateway fixtures in tests/fixtures by the test harness.
//!
//! ```text
//! cargo run -p latchkey-fuzz-targets --example seeds
//! ```
//!
//! `ok-*` seeds must be accepted and `bad-*` ones refused (the smoke test
//! checks both); other files (`regress-*`, inputs a fuzzer found) are kept.
//! Reruns rewrite the same files; only the ES256 token and the refresh
//! tokens change (random ECDSA nonces and family ids).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use latchkey::crypto::b64url;
use latchkey::domain::{Principal, Stage};
use latchkey::jwt::{AccessClaims, SigningKey};
use latchkey::refresh_token::FamilyId;
use latchkey::webhook::{OutboundWebhook, WebhookSecret, header, sign_sha256};
use latchkey_fuzz_targets::fixture::{
    AUDIENCE, CLASSIC_SECRET, FAR_FUTURE, ISSUER, KEY_ID, NOW, ROTATED_SECRET, STANDARD_SECRET, fixture,
};
use latchkey_fuzz_targets::{TARGETS, message};
use latchkey_tests::{CLIENT_IP, EMAIL, PASSWORD, TENANT, bearer, client_assertion, event_json, login_body};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

/// Another key id, whose key strings are genuine too.
const OTHER_KEY_ID: &str = "zzzzyyyyxxxxwwwwvvvvuuuu67";
const USER: &str = "usr_01hzxk5v2q8m4n6p7r9s3t5w7y";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const EVENT: &[u8] = br#"{"type":"invoice.paid","data":{"id":"in_1PqR","amount":4200}}"#;

struct Corpus {
    root: PathBuf,
    written: usize,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: impl AsRef<[u8]>) {
        let path = self.root.join(target).join(name);
        fs::File::create(&path)
            .and_then(|mut file| file.write_all(bytes.as_ref()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.written += 1;
    }
}

fn signer(kid: &str) -> &'static SigningKey {
    fixture().signers.iter().find(|key| key.kid == kid).expect("a fixed signing key")
}

fn claims(sub: &str) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: sub.into(),
        aud: AUDIENCE.into(),
        exp: FAR_FUTURE,
        iat: NOW,
        jti: "01JDQ7Z3W0B3X9K2M4N6P8R0T2".into(),
        tid: TENANT.into(),
        scope: "keys:write profile".into(),
        env: Stage::Test.as_str().into(),
        client_id: None,
    }
}

/// An access token of the fixed deployment, valid until 2100.
fn access_token() -> String {
    signer("fuzz-rs256").sign(&claims(USER)).expect("signs")
}

/// A compact HS256 JWS with any header (for the refused variants).
fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
    use hmac::Mac as _;
    let signed = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64url(&mac.finalize().into_bytes()))
}

fn access_tokens(corpus: &mut Corpus) {
    let t = "access_token";
    corpus.put(t, "ok-rs256", access_token());
    corpus.put(t, "ok-es256", signer("fuzz-es256").sign(&claims(USER)).expect("signs"));
    corpus.put(t, "ok-eddsa", signer("fuzz-eddsa").sign(&claims(USER)).expect("signs"));
    let api_key = AccessClaims { client_id: Some(KEY_ID.into()), ..claims(KEY_ID) };
    corpus.put(t, "ok-api-key-client", signer("fuzz-eddsa").sign(&api_key).expect("signs"));
    let expired = AccessClaims { iat: NOW - 1000, exp: NOW - 100, ..claims(USER) };
    corpus.put(t, "bad-expired", signer("fuzz-eddsa").sign(&expired).expect("signs"));
    let live = AccessClaims { env: Stage::Live.as_str().into(), ..claims(USER) };
    corpus.put(t, "bad-live-environment", signer("fuzz-rs256").sign(&live).expect("signs"));
    let elsewhere = AccessClaims { aud: "https://api.elsewhere.test".into(), ..claims(USER) };
    corpus.put(t, "bad-other-audience", signer("fuzz-es256").sign(&elsewhere).expect("signs"));
    let body = b64url(&serde_json::to_vec(&claims(USER)).expect("json"));
    let none = b64url(br#"{"alg":"none","typ":"at+jwt","kid":"fuzz-rs256"}"#);
    corpus.put(t, "bad-alg-none", format!("{none}.{body}."));
    // HS256 keyed with the public JWK's text: algorithm confusion.
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "fuzz-rs256"});
    let jwk = json!({"kty": "RSA", "kid": "fuzz-rs256"}).to_string();
    corpus.put(
        t,
        "bad-hs256-confusion",
        hs256(&header, &serde_json::to_value(claims(USER)).expect("json"), jwk.as_bytes()),
    );
    let unknown = SigningKey::from_pkcs8(
        "fuzz-unknown".into(),
        signer("fuzz-eddsa").algorithm,
        include_bytes!("../keys/eddsa.pk8"),
    )
    .expect("fixed key");
    corpus.put(t, "bad-unknown-kid", unknown.sign(&claims(USER)).expect("signs"));
    corpus.put(t, "bad-not-a-jwt", "not.a.jwt");
}

fn assertion_claims(iat: u64, exp: u64) -> Value {
    json!({"sub": KEY_ID, "iss": KEY_ID, "iat": iat, "exp": exp})
}

/// A client assertion for the fixed key, signed with its bare secret.
fn assertion() -> String {
    let secret = fixture().secrets.secret(&fixture().key_id);
    client_assertion(KEY_ID, &assertion_claims(NOW, NOW + 300), secret.expose_secret().as_bytes())
}

fn assertions(corpus: &mut Corpus) {
    let t = "client_assertion";
    let f = fixture();
    let secret = f.secrets.secret(&f.key_id);
    let key = secret.expose_secret().as_bytes();
    corpus.put(t, "ok-bare-secret", assertion());
    let mut claims = assertion_claims(NOW - 10, NOW + 590);
    claims["jti"] = "8f14e45f-ceea-467f-a0e7-5c2b4a1f3b9d".into();
    claims["aud"] = format!("{ISSUER}/v1/auth/token").into();
    let whole = f.secrets.key_string(&f.key_id, Stage::Live);
    corpus.put(t, "ok-whole-key-jti-aud", client_assertion(KEY_ID, &claims, whole.expose_secret().as_bytes()));
    let mut listed = assertion_claims(NOW, NOW + 60);
    listed["aud"] = json!(["https://other.example", ISSUER]);
    listed["nbf"] = NOW.into();
    corpus.put(t, "ok-audience-list", client_assertion(KEY_ID, &listed, key));
    let none = json!({"alg": "none", "typ": "JWT", "kid": KEY_ID});
    let unsigned = format!(
        "{}.{}.",
        b64url(none.to_string().as_bytes()),
        b64url(assertion_claims(NOW, NOW + 60).to_string().as_bytes())
    );
    corpus.put(t, "bad-alg-none", unsigned);
    corpus.put(t, "bad-expired", client_assertion(KEY_ID, &assertion_claims(NOW - 700, NOW - 100), key));
    corpus.put(t, "bad-lifetime", client_assertion(KEY_ID, &assertion_claims(NOW, NOW + 660), key));
    corpus.put(t, "bad-guessed-secret", client_assertion(KEY_ID, &assertion_claims(NOW, NOW + 60), b"guess"));
    let mut other_sub = assertion_claims(NOW, NOW + 60);
    other_sub["sub"] = OTHER_KEY_ID.into();
    corpus.put(t, "bad-subject", client_assertion(KEY_ID, &other_sub, key));
    let crit = json!({"alg": "HS256", "typ": "JWT", "kid": KEY_ID, "crit": ["exp"]});
    corpus.put(t, "bad-crit", hs256(&crit, &assertion_claims(NOW, NOW + 60), key));
}

fn principal(client_id: Option<&str>) -> Principal {
    Principal {
        sub: client_id.unwrap_or(USER).into(),
        tenant_id: TENANT.into(),
        scope: "keys:write profile".into(),
        client_id: client_id.map(str::to_owned),
    }
}

/// A refresh token of the fixed deployment (test stage).
fn refresh_token() -> String {
    fixture().refresh_test.mint(FamilyId::generate(), 0, &principal(None)).expose_secret().to_owned()
}

fn refresh_tokens(corpus: &mut Corpus) {
    let t = "refresh_token";
    let f = fixture();
    corpus.put(t, "ok-login-generation-0", refresh_token());
    let key = f.refresh_test.mint(FamilyId::generate(), 7, &principal(Some(KEY_ID)));
    corpus.put(t, "ok-api-key-generation-7", key.expose_secret());
    let big = Principal { scope: "s".repeat(600), ..principal(None) };
    corpus.put(t, "ok-claims-left-out", f.refresh_test.mint(FamilyId::generate(), 1, &big).expose_secret());
    corpus.put(t, "bad-live-stage", f.refresh_live.mint(FamilyId::generate(), 0, &principal(None)).expose_secret());
    let mut tampered = refresh_token().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    corpus.put(t, "bad-tampered", tampered);
    corpus.put(t, "bad-prefix-only", "rt_");
}

/// A genuine key string of the fixed deployment.
fn key_string(id: &str, env: Stage) -> String {
    let id = latchkey::domain::ApiKeyId::parse(id).expect("fixed id");
    fixture().secrets.key_string(&id, env).expose_secret().to_owned()
}

fn api_keys(corpus: &mut Corpus) {
    let t = "api_key";
    corpus.put(t, "ok-live-key", key_string(KEY_ID, Stage::Live));
    corpus.put(t, "ok-test-key", key_string(KEY_ID, Stage::Test));
    corpus.put(t, "ok-other-key", key_string(OTHER_KEY_ID, Stage::Test));
    corpus.put(t, "ok-bare-secret", fixture().secrets.secret(&fixture().key_id).expose_secret());
    corpus.put(t, "bad-forged-secret", format!("sk_live_{KEY_ID}_{}", "a".repeat(52)));
    let genuine = key_string(KEY_ID, Stage::Live);
    corpus.put(t, "bad-unknown-prefix", genuine.replacen("sk_live_", "sk_prod_", 1));
    corpus.put(t, "bad-truncated", &genuine[..genuine.len() - 1]);
}

fn secret(text: &str) -> WebhookSecret {
    WebhookSecret::new(text).expect("fixed secret")
}

/// Standard Webhooks headers for `EVENT` at `timestamp`, signed by `secrets`.
fn standard(secrets: &[WebhookSecret], timestamp: u64) -> Vec<(String, String)> {
    let webhook = OutboundWebhook { id: MSG_ID, timestamp, body: EVENT };
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(webhook.standard_headers(secrets).expect("signs").map(|(name, value)| (name.to_owned(), value)));
    headers
}

fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect()
}

fn webhooks(corpus: &mut Corpus) {
    let t = "webhook_headers";
    let put = |corpus: &mut Corpus, name: &str, headers: &[(String, String)], body: &[u8]| {
        corpus.put(t, name, message::render(None, &borrowed(headers), body));
    };
    put(corpus, "ok-standard", &standard(&[secret(STANDARD_SECRET)], NOW), EVENT);
    put(
        corpus,
        "ok-standard-rotation",
        &standard(&[secret(ROTATED_SECRET), secret(STANDARD_SECRET)], NOW - 299),
        EVENT,
    );
    let svix: Vec<(String, String)> = standard(&[secret(ROTATED_SECRET)], NOW + 60)
        .into_iter()
        .map(|(name, value)| (name.replacen("webhook-", "svix-", 1), value))
        .collect();
    put(corpus, "ok-svix-names", &svix, EVENT);
    let webhook = OutboundWebhook { id: MSG_ID, timestamp: NOW, body: EVENT };
    let classic: Vec<(String, String)> =
        webhook.sha256_headers(&secret(CLASSIC_SECRET)).into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
    put(corpus, "ok-sha256-timestamp", &classic, EVENT);
    let github =
        vec![(header::HUB_SIGNATURE_256.to_owned(), sign_sha256(&secret(CLASSIC_SECRET), None, b"Hello, World!"))];
    put(corpus, "ok-github", &github, b"Hello, World!");
    put(corpus, "bad-stale", &standard(&[secret(STANDARD_SECRET)], NOW - 301), EVENT);
    let stranger = secret("whsec_c3RyYW5nZXItc3RyYW5nZXItc3RyYW5nZXI=");
    put(corpus, "bad-other-secret", &standard(&[stranger], NOW), EVENT);
    let mut changed = EVENT.to_vec();
    changed.extend_from_slice(b" ");
    put(corpus, "bad-body-changed", &standard(&[secret(STANDARD_SECRET)], NOW), &changed);
    put(corpus, "bad-unsigned", &[("content-type".to_owned(), "application/json".to_owned())], EVENT);
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// One HTTP request seed.
struct Route {
    name: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// `line` is `METHOD TARGET`.
fn route(name: &'static str, line: &str, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Route {
    let (method, target) = line.split_once(' ').expect("METHOD TARGET");
    let method = ["GET", "POST", "DELETE"].into_iter().find(|known| *known == method).expect("a method");
    let headers = headers.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    Route { name, method, target: target.to_owned(), headers, body: body.into() }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Requests every route's decoder accepts.
fn accepted_routes() -> Vec<Route> {
    let f = fixture();
    let bare = f.secrets.secret(&f.key_id).expose_secret().to_owned();
    let key = key_string(KEY_ID, Stage::Test);
    let user = bearer(&access_token());
    let auth = ("authorization", user.as_str());
    let api_key = [("x-api-key", key.as_str()), ("x-tenant-id", TENANT)];
    let app_secret = format!("lks_{}", "q".repeat(52));
    let exchange = json!({"grant_type": "api_key", "api_key_id": KEY_ID, "api_key_secret": key, "scope": "profile"});
    let jwt_bearer = serde_urlencoded::to_string([
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion().as_str()),
    ])
    .expect("form");
    let client_secret = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        ("client_id", KEY_ID),
        ("client_secret", &bare),
    ])
    .expect("form");
    let create = json!({
        "name": "ci deploys", "scopes": ["profile"], "expires_in": 3600,
        "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
    });
    let verify = json!({"token": access_token(), "scope": ["profile"], "ip": CLIENT_IP});
    let webhook = standard(&[secret(STANDARD_SECRET)], NOW);
    vec![
        route("ok-login", "POST /v1/auth/login", &[JSON], login_body(EMAIL, PASSWORD)),
        route(
            "ok-login-app",
            "POST /live/v1/auth/login",
            &[JSON, ("x-app-id", "app_aaaabbbbccccddddeeeeffff23"), ("x-app-secret", &app_secret)],
            login_body(" Ada@Example.COM ", PASSWORD),
        ),
        route("ok-refresh", "POST /v1/auth/refresh", &[JSON], json!({"refresh_token": refresh_token()}).to_string()),
        route(
            "ok-revoke-form",
            "POST /v1/auth/revoke",
            &[FORM],
            format!("token={}&token_type_hint=refresh_token", refresh_token()),
        ),
        route("ok-token-api-key", "POST /v1/auth/token", &[JSON], exchange.to_string()),
        route(
            "ok-token-basic",
            "POST /v1/auth/token",
            &[FORM, ("authorization", &basic(KEY_ID, &bare))],
            "grant_type=client_credentials&scope=profile",
        ),
        route("ok-token-client-secret", "POST /v1/auth/token", &[FORM], client_secret),
        route("ok-token-jwt-bearer", "POST /v1/auth/token", &[FORM], jwt_bearer),
        route("ok-token-bare-bearer", "POST /v1/auth/token", &[("authorization", &bearer(&assertion()))], ""),
        route("ok-me-bearer", "GET /v1/me", &[auth], ""),
        route("ok-me-api-key", "GET /v1/me", &api_key, ""),
        route("ok-create-key", "POST /v1/api-keys", &[JSON, auth], create.to_string()),
        route("ok-list-keys", "GET /v1/api-keys?limit=10", &[auth], ""),
        route("ok-verify-body", "POST /v1/verify", &[JSON], verify.to_string()),
        route("ok-verify-headers", "POST /v1/verify", &api_key, ""),
        route("ok-revoke-key", &format!("DELETE /v1/api-keys/{OTHER_KEY_ID}"), &[auth], ""),
        Route { body: EVENT.to_vec(), headers: webhook, ..route("ok-webhook", "POST /v1/webhooks/billing", &[], "") },
    ]
}

/// Requests each refused for one reason.
fn refused_routes() -> Vec<Route> {
    let user = bearer(&access_token());
    let auth = ("authorization", user.as_str());
    vec![
        route("bad-login-malformed", "POST /v1/auth/login", &[JSON], r#"{"email": "ada@example.com", "password": }"#),
        route("bad-login-wrong-type", "POST /v1/auth/login", &[JSON], r#"{"email": 1, "password": "x"}"#),
        route(
            "bad-login-text-plain",
            "POST /v1/auth/login",
            &[("content-type", "text/plain")],
            login_body(EMAIL, PASSWORD),
        ),
        route("bad-login-get", "GET /v1/auth/login", &[JSON], ""),
        route("bad-token-grant", "POST /v1/auth/token", &[FORM], "grant_type=password&username=ada&password=x"),
        route(
            "bad-token-basic",
            "POST /v1/auth/token",
            &[FORM, ("authorization", "Basic !!!")],
            "grant_type=client_credentials",
        ),
        route("bad-create-key-field", "POST /v1/api-keys", &[JSON, auth], r#"{"name":"x","admin":true}"#),
        route("bad-verify-both", "POST /v1/verify", &[JSON, auth], r#"{"token":"a","api_key":"b"}"#),
        route("bad-no-such-route", "POST /v1/auth/logout", &[JSON], "{}"),
    ]
}

/// The routes also sent as Lambda events: one per decoder, few bytes.
const AS_EVENTS: [&str; 9] = [
    "ok-login",
    "ok-refresh",
    "ok-token-basic",
    "ok-token-jwt-bearer",
    "ok-list-keys",
    "ok-verify-headers",
    "ok-webhook",
    "bad-login-malformed",
    "bad-no-such-route",
];

fn requests(corpus: &mut Corpus) {
    for Route { name, method, target, headers, body } in accepted_routes().into_iter().chain(refused_routes()) {
        corpus.put("request_body", name, message::render(Some((method, &target)), &borrowed(&headers), &body));
        if !AS_EVENTS.contains(&name) {
            continue;
        }
        // The same request as the Lambda runtime hands it to a function.
        let (path, query) = target.split_once('?').map_or((target.as_str(), None), |(p, q)| (p, Some(q)));
        let mut headers = borrowed(&headers);
        if !headers.iter().any(|(name, _)| *name == "content-type") {
            headers.push(("content-type", ""));
        }
        let text = String::from_utf8(body).expect("text bodies");
        let mut event: Value =
            serde_json::from_str(&event_json(path, method, &headers, &text, CLIENT_IP)).expect("event");
        if let Some(query) = query {
            event["rawQueryString"] = query.into();
            event["queryStringParameters"] = serde_urlencoded::from_str::<Value>(query).expect("query");
        }
        corpus.put("apigw_event", name, event.to_string());
    }
    // A binary body, base64-encoded as API Gateway delivers it.
    let mut event: Value = serde_json::from_str(&event_json(
        "/v1/auth/login",
        "POST",
        &[("content-type", "application/json")],
        "",
        CLIENT_IP,
    ))
    .expect("event");
    event["body"] = base64::engine::general_purpose::STANDARD.encode(login_body(EMAIL, PASSWORD)).into();
    event["isBase64Encoded"] = true.into();
    corpus.put("apigw_event", "ok-login-base64", event.to_string());
}

fn authorizer(corpus: &mut Corpus) {
    let t = "authorizer_event";
    let event = |headers: &[(&str, &str)]| {
        // Through `Value`, whose maps are sorted: the event's are hash maps.
        serde_json::to_value(latchkey_tests::authorizer_event("GET /orders", headers, CLIENT_IP))
            .expect("json")
            .to_string()
    };
    let key = key_string(KEY_ID, Stage::Live);
    let token = bearer(&access_token());
    corpus.put(t, "ok-bearer", event(&[("authorization", &token)]));
    corpus.put(t, "ok-api-key", event(&[("x-api-key", &key), ("x-tenant-id", TENANT)]));
    corpus.put(t, "bad-no-credential", event(&[]));
    corpus.put(t, "bad-basic", event(&[("authorization", &basic(KEY_ID, "x"))]));
    corpus.put(t, "bad-both", event(&[("authorization", &token), ("x-api-key", &key), ("x-tenant-id", TENANT)]));
    corpus.put(t, "bad-no-tenant", event(&[("x-api-key", &key)]));
    let forged = format!("sk_live_{KEY_ID}_{}", "b".repeat(52));
    corpus.put(t, "bad-forged-key", event(&[("x-api-key", &forged), ("x-tenant-id", TENANT)]));
}

/// Removes the generated seeds (`ok-*`, `bad-*`) of every target, keeping
/// anything else.
fn clear(root: &Path) {
    for (target, _) in TARGETS {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in fs::read_dir(&dir).expect("corpus dir").flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("ok-") || name.starts_with("bad-") {
                fs::remove_file(entry.path()).expect("remove a generated seed");
            }
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    clear(&root);
    let mut corpus = Corpus { root, written: 0 };
    access_tokens(&mut corpus);
    assertions(&mut corpus);
    refresh_tokens(&mut corpus);
    api_keys(&mut corpus);
    webhooks(&mut corpus);
    requests(&mut corpus);
    authorizer(&mut corpus);
    eprintln!("wrote {} seeds under {}", corpus.written, corpus.root.display());
}
