//! GET /.well-known/jwks.json and /.well-known/openid-configuration against
//! DynamoDB Local, and signing-key rotation as a verifier that reads the
//! served JWKS sees it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::Jwk};
use lambda_http::http::StatusCode;
use latchkey::jwt::SigningAlgorithm;
use latchkey::keys::RetireOutcome;
use latchkey::store::SigningKeyRecord;
use latchkey::time::now_secs;
use latchkey_tests::{AUDIENCE, ISSUER, Options, TENANT, TestApp, get, request};
use serde_json::{Value, json};

const JWKS: &str = "/.well-known/jwks.json";
const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";
/// The default access token lifetime plus the verification leeway: how long
/// a key stays published after it last signs.
/// How long a key stays published after it stops signing: the default key
/// cache (300 s), the access-token lifetime (900 s) and the leeway (30 s).
const TOKEN_LIFETIME_SECS: u64 = 300 + 900 + 30;

/// GETs the JWKS, asserting a 200.
async fn served_jwks(app: &TestApp) -> Value {
    let response = app.discovery_request(get(JWKS, &[])).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.json()
}

/// The kids a JWKS serves, sorted (keys that activate in the same second
/// have no defined order).
fn served_kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|key| key["kid"].as_str().expect("every key has a kid").to_owned())
        .collect();
    kids.sort_unstable();
    kids
}

fn sorted<const N: usize>(kids: [&str; N]) -> Vec<String> {
    let mut kids: Vec<String> = kids.iter().map(|&kid| kid.to_owned()).collect();
    kids.sort_unstable();
    kids
}

fn kid_of(token: &str) -> String {
    decode_header(token).expect("JWT header").kid.expect("kid")
}

/// Verifies `token` as a third-party resource server would: the JWK the
/// JWKS serves for its `kid`, RS256 pinned, issuer and audience checked.
fn verify_with_served_jwk(jwks: &Value, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let kid = kid_of(token);
    let served = jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("{kid} is not in the JWKS: {jwks}"));
    let jwk: Jwk = serde_json::from_value(served.clone()).expect("a JWK");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    decode::<Value>(token, &DecodingKey::from_jwk(&jwk).expect("key"), &validation).map(|data| data.claims)
}

async fn access_token(app: &TestApp) -> String {
    app.login_ok().await["access_token"].as_str().expect("access token").to_owned()
}

/// The unexpired record of `kid`, read from the table.
async fn record(app: &TestApp, kid: &str) -> SigningKeyRecord {
    let records = app.latchkey.stores.signing_keys.list(now_secs()).await.expect("keys");
    records.into_iter().find(|r| r.kid == kid).unwrap_or_else(|| panic!("no unexpired record for {kid}"))
}

/// Sets a key's `expires_at` straight in the table.
async fn set_expires_at(app: &TestApp, kid: &str, at: u64) {
    use aws_sdk_dynamodb::types::AttributeValue;
    app.table
        .client()
        .update_item()
        .table_name(app.table.name())
        .key("pk", AttributeValue::S("SIGNING_KEY".into()))
        .key("sk", AttributeValue::S(format!("KID#{kid}")))
        .update_expression("SET expires_at = :at")
        .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
        .condition_expression("attribute_exists(pk)")
        .send()
        .await
        .expect("expires_at set");
}

/// POST /v1/verify's verdict on `token` as a bearer token (a refusal is a
/// 200 with `valid: false`).
async fn verdict(app: &TestApp, token: &str) -> Value {
    let bearer = format!("Bearer {token}");
    let response = app.post_verify(&[("authorization", bearer.as_str())], "").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.json()
}

fn assert_refused_as_unknown_key(verdict: &Value) {
    assert_eq!(verdict["valid"], false, "{verdict}");
    assert_eq!(verdict["error"], "invalid_token", "{verdict}");
    assert_eq!(verdict["error_description"], "the access token was signed with an unknown key", "{verdict}");
}

fn assert_public_documents(response: &latchkey_tests::TestResponse, max_age: u64) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("cache-control"), Some(format!("public, max-age={max_age}").as_str()));
    assert_eq!(response.header("pragma"), None, "no Pragma on a cacheable document");
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn jwks_serves_the_rs256_public_key_and_nothing_private() {
    let app = TestApp::spawn().await;
    // An empty table: the first GET creates the first key rather than
    // letting a verifier cache an empty set.
    let response = app.discovery_request(get(JWKS, &[])).await;
    assert_public_documents(&response, 300);
    let jwks = response.json();
    assert_eq!(jwks.as_object().map(|o| o.keys().collect::<Vec<_>>()), Some(vec![&"keys".to_owned()]), "{jwks}");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    let mut members: Vec<&str> = key.as_object().expect("a JWK object").keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"], "public members only: {key}");
    assert_eq!(
        (&key["kty"], &key["alg"], &key["use"], &key["e"]),
        (&json!("RSA"), &json!("RS256"), &json!("sig"), &json!("AQAB"))
    );
    let modulus = URL_SAFE_NO_PAD.decode(key["n"].as_str().expect("n")).expect("n is base64url");
    assert_eq!(modulus.len(), 256, "a 2048-bit modulus");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth", "private_key", "sealed_private_key"] {
        assert!(!response.body.contains(&format!("\"{private}\"")), "{private} in the JWKS: {}", response.body);
    }
    let kid = key["kid"].as_str().expect("kid");
    let records = app.latchkey.stores.signing_keys.list(now_secs()).await.expect("keys");
    assert_eq!(records.iter().map(|r| r.kid.as_str()).collect::<Vec<_>>(), [kid], "the key it created is stored");

    // The same key on every later GET; a stage prefix and a trailing slash
    // (as API Gateway may deliver the path) serve it too.
    assert_eq!(served_kids(&served_jwks(&app).await), [kid]);
    for path in ["/prod/.well-known/jwks.json", "/.well-known/jwks.json/"] {
        let response = app.discovery_request(get(path, &[])).await;
        assert_eq!(response.status, StatusCode::OK, "{path}: {}", response.body);
        assert_eq!(served_kids(&response.json()), [kid], "{path}");
    }
}

#[tokio::test]
async fn the_cache_lifetime_is_configurable() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_JWKS_MAX_AGE_SECONDS", "60".into())],
        ..Options::default()
    })
    .await;
    assert_public_documents(&app.discovery_request(get(JWKS, &[])).await, 60);
    assert_public_documents(&app.discovery_request(get(OPENID_CONFIGURATION, &[])).await, 60);
}

#[tokio::test]
async fn openid_configuration_lists_exactly_the_issuer_metadata() {
    let app = TestApp::spawn().await;
    let response = app.discovery_request(get(OPENID_CONFIGURATION, &[])).await;
    assert_public_documents(&response, 300);
    assert_eq!(
        response.json(),
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{ISSUER}/.well-known/jwks.json"),
            "token_endpoint": format!("{ISSUER}/v1/auth/token"),
            "revocation_endpoint": format!("{ISSUER}/v1/auth/revoke"),
            "grant_types_supported": ["client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer", "api_key"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    );
}

#[tokio::test]
async fn only_get_on_the_two_documents_is_served() {
    let app = TestApp::spawn().await;
    for path in [JWKS, OPENID_CONFIGURATION] {
        for method in ["POST", "PUT", "DELETE"] {
            let response = app
                .discovery_request(request(path, method, &[("content-type", "application/json")], "{}", "203.0.113.10"))
                .await;
            response.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            assert_eq!(response.header("allow"), Some("GET"), "{method} {path}");
            assert_eq!(response.header("cache-control"), Some("no-store"), "errors are not cacheable");
        }
    }
    for path in ["/.well-known/other", "/.well-known/jwks", "/v1/jwks.json", "/a/b/.well-known/jwks.json"] {
        app.discovery_request(get(path, &[])).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn a_login_token_verifies_with_the_served_jwk() {
    let app = TestApp::spawn().await;
    let token = access_token(&app).await;
    let jwks = served_jwks(&app).await;
    assert_eq!(served_kids(&jwks), [kid_of(&token)]);
    let claims = verify_with_served_jwk(&jwks, &token).expect("verifies with the served JWK");
    assert_eq!((&claims["iss"], &claims["aud"], &claims["tid"]), (&json!(ISSUER), &json!(AUDIENCE), &json!(TENANT)));
    assert!(claims["sub"].as_str().is_some_and(|s| s.starts_with("usr_")), "{claims}");

    // The served key does not verify a token whose payload was changed.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("JSON");
    payload["tid"] = "globex".into();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    let forged = parts.join(".");
    let err = verify_with_served_jwk(&jwks, &forged).expect_err("a changed payload is refused");
    assert_eq!(err.kind(), &jsonwebtoken::errors::ErrorKind::InvalidSignature);
}

#[tokio::test]
async fn a_prepublished_key_is_served_before_it_signs() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let before = access_token(&app).await;
    let old = kid_of(&before);

    let new = ring.add_key(SigningAlgorithm::Rs256, Duration::from_secs(2 * 3600)).await.expect("key added");
    assert_eq!(new.active_from, new.created_at + 2 * 3600);
    // A function instance sees the table once its key cache expires.
    ring.reload().await.expect("keys");
    let jwks = served_jwks(&app).await;
    assert_eq!(served_kids(&jwks), sorted([&old, &new.kid]), "both published");

    let after = access_token(&app).await;
    assert_eq!(kid_of(&after), old, "the pre-published key does not sign yet");
    verify_with_served_jwk(&jwks, &before).expect("old tokens verify");
    verify_with_served_jwk(&jwks, &after).expect("new tokens verify");
    // The old key signs until the new one activates, so it stays published
    // until its last token expires.
    assert_eq!(record(&app, &old).await.expires_at, Some(new.active_from + TOKEN_LIFETIME_SECS));
    assert_eq!(record(&app, &new.kid).await.expires_at, None);
}

#[tokio::test]
async fn a_prepublished_key_starts_signing_at_its_activation_time_without_a_reload() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let old = kid_of(&access_token(&app).await);
    let new = ring.add_key(SigningAlgorithm::Rs256, Duration::from_secs(2)).await.expect("key added");
    ring.reload().await.expect("keys");
    assert_eq!(kid_of(&access_token(&app).await), old);

    while now_secs() < new.active_from {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cached set knows when the next key activates: no reload needed.
    let token = access_token(&app).await;
    assert_eq!(kid_of(&token), new.kid);
    let jwks = served_jwks(&app).await;
    assert_eq!(served_kids(&jwks), sorted([&old, &new.kid]));
    verify_with_served_jwk(&jwks, &token).expect("verifies");
}

#[tokio::test]
async fn an_immediate_rotation_signs_with_the_new_key_and_old_tokens_keep_verifying() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let before = access_token(&app).await;
    let old = kid_of(&before);

    let new = ring.add_key(SigningAlgorithm::Rs256, Duration::ZERO).await.expect("key added");
    assert_eq!(new.active_from, new.created_at);
    ring.reload().await.expect("keys");
    let after = access_token(&app).await;
    assert_eq!(kid_of(&after), new.kid, "the new key signs at once");

    let jwks = served_jwks(&app).await;
    assert_eq!(served_kids(&jwks), sorted([&old, &new.kid]));
    verify_with_served_jwk(&jwks, &before).expect("tokens of the old key verify with the JWKS");
    verify_with_served_jwk(&jwks, &after).expect("tokens of the new key verify with the JWKS");
    app.latchkey.issuer.verify(&before).await.expect("and with Latchkey's own verifier");
    assert_eq!(verdict(&app, &before).await["valid"], true);

    let retiring = record(&app, &old).await;
    assert_eq!(retiring.expires_at, Some(new.active_from + TOKEN_LIFETIME_SECS));
    assert_eq!(retiring.retired_at, None, "superseded, not retired");
}

#[tokio::test]
async fn a_retired_key_stays_published_until_its_tokens_expire_then_disappears() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let old_token = access_token(&app).await;
    let old = kid_of(&old_token);
    let new = ring.add_key(SigningAlgorithm::Rs256, Duration::ZERO).await.expect("key added");

    let retired_at = now_secs();
    let outcome = ring.retire(&old, false, false).await.expect("retires");
    let RetireOutcome::Retired { expires_at } = outcome else { panic!("not retired: {outcome:?}") };
    assert!(
        (retired_at + TOKEN_LIFETIME_SECS - 5..=retired_at + TOKEN_LIFETIME_SECS + 1).contains(&expires_at),
        "published for the token lifetime: {expires_at} vs retired at {retired_at}"
    );
    let stored = record(&app, &old).await;
    assert_eq!(stored.expires_at, Some(expires_at));
    assert!(stored.retired_at.is_some_and(|at| at >= retired_at), "{stored:?}");

    // Still published, and its tokens still verify, until then.
    ring.reload().await.expect("keys");
    let jwks = served_jwks(&app).await;
    assert_eq!(served_kids(&jwks), sorted([&old, &new.kid]));
    verify_with_served_jwk(&jwks, &old_token).expect("verifies until the key expires");
    assert_eq!(verdict(&app, &old_token).await["valid"], true);
    assert_eq!(kid_of(&access_token(&app).await), new.kid);

    // Once its expiry passes it is gone, and so are its tokens.
    set_expires_at(&app, &old, now_secs() - 1).await;
    ring.reload().await.expect("keys");
    assert_eq!(served_kids(&served_jwks(&app).await), sorted([&new.kid]), "gone from the JWKS");
    assert_refused_as_unknown_key(&verdict(&app, &old_token).await);
    let err = app.latchkey.issuer.verify(&old_token).await.expect_err("refused");
    assert_eq!(err.error_code(), "invalid_token");
    assert_eq!(ring.retire(&old, false, false).await.expect("answers"), RetireOutcome::NotFound);
    assert_eq!(kid_of(&access_token(&app).await), new.kid, "the successor keeps signing");
}

#[tokio::test]
async fn retiring_immediately_unpublishes_the_key_at_once() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let leaked_token = access_token(&app).await;
    let leaked = kid_of(&leaked_token);
    let new = ring.add_key(SigningAlgorithm::Rs256, Duration::ZERO).await.expect("key added");

    let outcome = ring.retire(&leaked, true, false).await.expect("retires");
    let RetireOutcome::Retired { expires_at } = outcome else { panic!("not retired: {outcome:?}") };
    assert!(expires_at <= now_secs(), "expires now: {expires_at}");
    ring.reload().await.expect("keys");
    assert_eq!(served_kids(&served_jwks(&app).await), sorted([&new.kid]), "gone from the JWKS");
    assert_refused_as_unknown_key(&verdict(&app, &leaked_token).await);
    let fresh = access_token(&app).await;
    assert_eq!(kid_of(&fresh), new.kid);
    assert_eq!(verdict(&app, &fresh).await["valid"], true);
}

#[tokio::test]
async fn retire_refuses_the_only_signer_and_unknown_kids_unless_forced() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let token = access_token(&app).await;
    let only = kid_of(&token);

    assert_eq!(ring.retire("2020-01-01-nosuchkey0", false, false).await.expect("answers"), RetireOutcome::NotFound);
    assert_eq!(ring.retire(&only, false, false).await.expect("answers"), RetireOutcome::OnlySigner);
    // A pre-published key cannot sign yet, so it does not count.
    let waiting = ring.add_key(SigningAlgorithm::Rs256, Duration::from_secs(2 * 3600)).await.expect("key added");
    assert_eq!(ring.retire(&only, false, false).await.expect("answers"), RetireOutcome::OnlySigner);
    assert_eq!(ring.retire(&only, true, false).await.expect("answers"), RetireOutcome::OnlySigner);
    assert_eq!(record(&app, &only).await.retired_at, None, "a refusal changes nothing");
    ring.reload().await.expect("keys");
    assert_eq!(kid_of(&access_token(&app).await), only);

    // Forced: the next login creates a key that signs at once.
    let outcome = ring.retire(&only, false, true).await.expect("retires");
    assert!(matches!(outcome, RetireOutcome::Retired { .. }), "{outcome:?}");
    let after = access_token(&app).await;
    let created = kid_of(&after);
    assert!(created != only && created != waiting.kid, "a new key: {created}");
    let jwks = served_jwks(&app).await;
    assert!(served_kids(&jwks).contains(&created), "{jwks}");
    assert!(served_kids(&jwks).contains(&only), "the retired key stays published: {jwks}");
    verify_with_served_jwk(&jwks, &token).expect("tokens of the retired key still verify");
    verify_with_served_jwk(&jwks, &after).expect("tokens of the new key verify");
}

/// The SPEC: old public keys stay published "until every token signed with
/// them has expired". A function instance keeps signing with the key it has
/// cached for up to `LATCHKEY_KEY_CACHE_SECONDS` (default 300 s) after an
/// operator's `signing-key rotate --immediate` (run elsewhere: the CLI), so
/// the tokens it signs meanwhile must stay verifiable too.
#[tokio::test]
async fn tokens_signed_from_a_cached_key_after_an_immediate_rotation_stay_verifiable() {
    let app = TestApp::spawn().await;
    let old = kid_of(&access_token(&app).await);
    // The operator's ring, as the CLI builds it: no cache of its own.
    let config = &app.latchkey.config;
    let admin = latchkey::keys::KeyRing::new(
        app.latchkey.stores.signing_keys.clone(),
        config.sealing_key.sealer(),
        config.signing_algorithm,
        config.access_token_ttl,
        config.key_cache_ttl,
    )
    .uncached();
    let new = admin.add_key(SigningAlgorithm::Rs256, Duration::ZERO).await.expect("key added");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // This instance's key cache is still fresh: it signs with the old key.
    let token = access_token(&app).await;
    assert_eq!(kid_of(&token), old, "signs with the cached key until LATCHKEY_KEY_CACHE_SECONDS pass");
    let claims = verify_with_served_jwk(&served_jwks(&app).await, &token).expect("verifies now");
    let last_valid = claims["exp"].as_u64().expect("exp") + latchkey::jwt::LEEWAY_SECS;
    let expires_at = record(&app, &old).await.expires_at.expect("the old key has an expiry");
    assert!(
        expires_at >= last_valid,
        "the old key is unpublished at {expires_at} (new key active from {} + {TOKEN_LIFETIME_SECS} s), before a \
         token it signed stops being valid at {last_valid}",
        new.active_from
    );
}

/// Force-retiring the newest key must not bring back the key it replaced:
/// that key's publication ends too soon for tokens signed now.
#[tokio::test]
async fn force_retiring_the_newest_key_does_not_revive_its_predecessor() {
    let app = TestApp::spawn().await;
    let ring = app.latchkey.issuer.keys();
    let first = kid_of(&access_token(&app).await);
    let second = ring.add_key(SigningAlgorithm::Rs256, Duration::ZERO).await.expect("key added");
    ring.reload().await.expect("keys");
    assert_eq!(kid_of(&access_token(&app).await), second.kid);
    // Shorten the first key's remaining publication, as time passing would.
    set_expires_at(&app, &first, now_secs() + 60).await;
    let outcome = ring.retire(&second.kid, false, true).await.expect("retires");
    assert!(matches!(outcome, RetireOutcome::Retired { .. }), "{outcome:?}");
    let token = access_token(&app).await;
    let signer = kid_of(&token);
    assert!(signer != first && signer != second.kid, "a new key signs, not the expiring one: {signer}");
    let claims = verify_with_served_jwk(&served_jwks(&app).await, &token).expect("verifies");
    assert!(record(&app, &signer).await.expires_at.is_none(), "{claims}");
}
