//! POST /v1/auth/token: every grant, against DynamoDB Local, through the
//! token function's handler with requests shaped like API Gateway's.

use base64::Engine as _;
use lambda_http::http::StatusCode;
use latchkey::domain::Stage;
use latchkey::time::now_secs;
use latchkey_tests::{CLIENT_IP, Options, TENANT, TestApp, TestKey, client_assertion, futures_join_all, post, request};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// An API key as its holder sees it.
struct Held {
    id: String,
    /// The whole key string.
    key: String,
    /// The secret part alone.
    secret: String,
}

async fn key(app: &TestApp, spec: TestKey) -> Held {
    let created = app.add_api_key(spec).await;
    let key = created.key.expose_secret().to_owned();
    let secret = key.rsplit('_').next().expect("secret part").to_owned();
    Held { id: created.view.id, key, secret }
}

fn assertion_claims(id: &str, iat: u64, exp: u64) -> Value {
    json!({"sub": id, "iat": iat, "exp": exp, "iss": "sdk"})
}

fn fresh_assertion(key: &Held) -> String {
    let now = now_secs();
    client_assertion(&key.id, &assertion_claims(&key.id, now, now + 300), key.secret.as_bytes())
}

fn form(path: &str, body: &str, headers: &[(&str, &str)]) -> lambda_http::Request {
    let mut all = vec![("content-type", FORM)];
    all.extend_from_slice(headers);
    request(path, "POST", &all, body, CLIENT_IP)
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

/// Verifies the access token with the deployment's published keys and
/// returns its claims.
async fn claims(app: &TestApp, response: &Value) -> latchkey::jwt::AccessClaims {
    let token = response["access_token"].as_str().expect("access_token");
    app.latchkey.issuer.verify(token).await.expect("the access token verifies")
}

async fn warm(app: &TestApp) {
    app.latchkey.issuer.keys().signing_key().await.expect("signing key");
    app.calls.take();
}

#[tokio::test]
async fn api_key_grant_returns_both_tokens_for_the_key() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let response =
        app.post_token(&json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret})).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let body = response.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["expires_at"].as_str().is_some_and(|at| at.ends_with('Z')));
    assert!(body["refresh_token"].as_str().is_some_and(|t| t.starts_with("rt_")));
    assert!(body["refresh_expires_in"].as_u64().is_some());
    let claims = claims(&app, &body).await;
    assert_eq!(claims.sub, key.id);
    assert_eq!(claims.client_id.as_deref(), Some(key.id.as_str()));
    assert_eq!(claims.tid, TENANT);
    assert_eq!(claims.scope, "orders:read orders:write");
    assert_eq!(claims.env, "test");

    // The refresh token rides the same family machinery as a login's.
    let refreshed = app.post_refresh(body["refresh_token"].as_str().expect("refresh token")).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(claims_of(&app, &refreshed.json()).await.client_id.as_deref(), Some(key.id.as_str()));

    // The whole key string works as the secret too; a workspace must match.
    let whole = app
        .post_token(
            &json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.key, "workspace": TENANT}),
        )
        .await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.body);
    app.post_token(
        &json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.key, "workspace": "other"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn claims_of(app: &TestApp, body: &Value) -> latchkey::jwt::AccessClaims {
    claims(app, body).await
}

#[tokio::test]
async fn wrong_or_unknown_api_key_credentials_are_one_401_and_cost_no_dynamodb_call() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let other = self::key(&app, TestKey::default()).await;
    warm(&app).await;
    let cases = [
        json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": "x".repeat(52)}),
        json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": other.secret}),
        json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": other.key}),
        json!({"grant_type": "api_key", "api_key_id": "nosuchkeynosuchkeynosuchk2", "api_key_secret": key.secret}),
        json!({"grant_type": "api_key", "api_key_id": "../../etc", "api_key_secret": key.secret}),
    ];
    let mut bodies = Vec::new();
    for case in &cases {
        let response = app.post_token(case).await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        bodies.push(response.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "one indistinguishable answer: {bodies:?}");
    assert!(app.calls.take().is_empty(), "forged secrets are refused before DynamoDB");
}

#[tokio::test]
async fn client_credentials_works_with_basic_form_and_json_and_gives_no_refresh_token() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let requests = [
        form("/v1/auth/token", "grant_type=client_credentials", &[("authorization", &basic(&key.id, &key.key))]),
        form(
            "/v1/auth/token",
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}&scope=orders%3Aread",
                key.id, key.secret
            ),
            &[],
        ),
        post(
            "/v1/auth/token",
            &json!({"grant_type": "client_credentials", "client_id": key.id, "client_secret": key.key}).to_string(),
        ),
    ];
    for (i, request) in requests.into_iter().enumerate() {
        let response = app.token_request(request).await;
        assert_eq!(response.status, StatusCode::OK, "case {i}: {}", response.body);
        let body = response.json();
        assert!(body.get("refresh_token").is_none(), "RFC 6749 §4.4.3: no refresh token");
        assert!(body.get("refresh_expires_in").is_none());
        assert_eq!(body["token_type"], "Bearer");
        let claims = claims(&app, &body).await;
        assert_eq!(claims.client_id.as_deref(), Some(key.id.as_str()));
        assert_eq!(claims.scope, if i == 1 { "orders:read" } else { "orders:read orders:write" }, "case {i}");
    }
}

#[tokio::test]
async fn client_credentials_errors_follow_rfc_6749() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let wrong = app
        .token_request(form(
            "/v1/auth/token",
            "grant_type=client_credentials",
            &[("authorization", &basic(&key.id, &"y".repeat(52)))],
        ))
        .await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(wrong.header("www-authenticate"), Some(r#"Basic realm="latchkey""#));

    let in_body = app
        .token_request(form(
            "/v1/auth/token",
            &format!("grant_type=client_credentials&client_id={}&client_secret=wrong", key.id),
            &[],
        ))
        .await;
    in_body.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(in_body.header("www-authenticate"), None);

    app.token_request(form("/v1/auth/token", "grant_type=client_credentials", &[]))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
    app.token_request(form(
        "/v1/auth/token",
        &format!("grant_type=client_credentials&client_secret={}", key.secret),
        &[("authorization", &basic(&key.id, &key.secret))],
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.token_request(form("/v1/auth/token", "grant_type=password&username=a&password=b", &[]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    app.token_request(form("/v1/auth/token", "scope=x", &[]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.token_request(form(
        "/v1/auth/token",
        &format!("grant_type=client_credentials&client_id={}&client_secret={}&scope=admin", key.id, key.secret),
        &[],
    ))
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
}

#[tokio::test]
async fn jwt_bearer_grant_accepts_an_sdk_assertion_once() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let assertion = fresh_assertion(&key);
    let body = format!("grant_type={}&assertion={assertion}&scope=orders:read", JWT_BEARER.replace(':', "%3A"));
    let response = app.token_request(form("/v1/auth/token", &body, &[])).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let tokens = response.json();
    assert!(tokens["refresh_token"].as_str().is_some());
    let claims = claims(&app, &tokens).await;
    assert_eq!((claims.sub.as_str(), claims.scope.as_str()), (key.id.as_str(), "orders:read"));

    let replay = app.token_request(form("/v1/auth/token", &body, &[])).await;
    replay.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(replay.json()["error_description"].as_str().is_some_and(|d| d.contains("already used")));

    // The same assertion as a bare bearer token, with no body at all: also spent.
    let bare = request(
        "/v1/auth/token",
        "POST",
        &[("content-type", ""), ("authorization", &format!("Bearer {assertion}"))],
        "",
        CLIENT_IP,
    );
    app.token_request(bare).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");

    // A fresh one works that way, and signed with the whole key string too.
    let now = now_secs();
    let whole = client_assertion(&key.id, &assertion_claims(&key.id, now, now + 60), key.key.as_bytes());
    let bare = request(
        "/v1/auth/token",
        "POST",
        &[("content-type", ""), ("authorization", &format!("Bearer {whole}"))],
        "",
        CLIENT_IP,
    );
    let response = app.token_request(bare).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
}

#[tokio::test]
async fn concurrent_replays_of_one_assertion_get_exactly_one_token() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let assertion = fresh_assertion(&key);
    let body = json!({"grant_type": JWT_BEARER, "assertion": assertion});
    let responses = futures_join_all((0..10).map(|_| app.post_token(&body))).await;
    let ok = responses.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(ok, 1, "{:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(responses.iter().all(|r| r.status == StatusCode::OK || r.status == StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn broken_assertions_are_refused_with_their_reason() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let now = now_secs();
    let secret = key.secret.as_bytes();
    let b64 = |value: &Value| latchkey::crypto::b64url(value.to_string().as_bytes());

    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": key.id})),
        b64(&assertion_claims(&key.id, now, now + 60))
    );
    // RS256 with a real RSA key (as if the client used the wrong algorithm).
    let pair = latchkey::jwt::generate_key_pair(latchkey::jwt::SigningAlgorithm::Rs256, "k").expect("key pair");
    let rsa = aws_lc_rs_sign(&pair, &key.id, &assertion_claims(&key.id, now, now + 60));
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", none, "HS256"),
        ("RS256-signed", rsa, "HS256"),
        ("expired", client_assertion(&key.id, &assertion_claims(&key.id, now - 900, now - 300), secret), "expired"),
        ("11-minute lifetime", client_assertion(&key.id, &assertion_claims(&key.id, now, now + 660), secret), "600"),
        ("future iat", client_assertion(&key.id, &assertion_claims(&key.id, now + 300, now + 400), secret), "future"),
        (
            "wrong kid",
            client_assertion(
                "aaaaaaaaaaaaaaaaaaaaaaaaaa",
                &assertion_claims("aaaaaaaaaaaaaaaaaaaaaaaaaa", now, now + 60),
                secret,
            ),
            "signature",
        ),
        (
            "sub is not the kid",
            client_assertion(&key.id, &assertion_claims("someone-else", now, now + 60), secret),
            "sub",
        ),
        ("wrong secret", client_assertion(&key.id, &assertion_claims(&key.id, now, now + 60), b"guessed"), "signature"),
        ("garbage", "not-a-jwt".to_owned(), "well-formed"),
    ];
    app.calls.take();
    for (name, assertion, reason) in cases {
        let response = app.post_token(&json!({"grant_type": JWT_BEARER, "assertion": assertion})).await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        let description = response.json()["error_description"].as_str().unwrap_or_default().to_owned();
        assert!(description.contains(reason), "{name}: {description}");
        assert!(response.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer error=\"invalid_token\"")));
    }
    assert!(app.calls.take().is_empty(), "refused before any DynamoDB call");
}

/// An RS256 JWS over the assertion claims, signed with a real RSA key.
fn aws_lc_rs_sign(pair: &latchkey::jwt::GeneratedKeyPair, kid: &str, claims: &Value) -> String {
    let key = latchkey::jwt::SigningKey::from_pkcs8(kid.to_owned(), pair.algorithm, &pair.private_der).expect("parses");
    let access = latchkey::jwt::AccessClaims {
        iss: "sdk".into(),
        sub: claims["sub"].as_str().unwrap_or_default().into(),
        aud: "x".into(),
        exp: claims["exp"].as_u64().unwrap_or_default(),
        iat: claims["iat"].as_u64().unwrap_or_default(),
        jti: "j".into(),
        tid: TENANT.into(),
        scope: String::new(),
        env: "test".into(),
        client_id: None,
    };
    key.sign(&access).expect("signs")
}

#[tokio::test]
async fn revoked_expired_and_other_environment_keys_cannot_exchange() {
    let app = TestApp::spawn().await;
    let revoked = key(&app, TestKey::default()).await;
    let tenant = latchkey::domain::TenantId::parse(TENANT).expect("valid");
    app.keys.revoke_in_tenant(&tenant, &revoked.id).await.expect("revoked");
    let expired = key(&app, TestKey { valid_until: Some(now_secs() - 1), ..TestKey::default() }).await;
    for (key, reason) in [(&revoked, "revoked"), (&expired, "expired")] {
        let by_secret =
            app.post_token(&json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret})).await;
        by_secret.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(by_secret.body.contains(reason), "{}", by_secret.body);
        app.post_token(&json!({"grant_type": "client_credentials", "client_id": key.id, "client_secret": key.secret}))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
        let by_assertion = app.post_token(&json!({"grant_type": JWT_BEARER, "assertion": fresh_assertion(key)})).await;
        by_assertion.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(by_assertion.body.contains(reason), "{}", by_assertion.body);
    }
}

#[tokio::test]
async fn a_test_key_is_refused_by_a_live_deployment() {
    let app = TestApp::spawn_with(Options { env: vec![("LATCHKEY_STAGE", "live".into())], ..Options::default() }).await;
    let test_key = key(&app, TestKey { env: Stage::Test, ..TestKey::default() }).await;
    assert!(test_key.key.starts_with("sk_test_"));
    for body in [
        json!({"grant_type": "api_key", "api_key_id": test_key.id, "api_key_secret": test_key.key}),
        json!({"grant_type": JWT_BEARER, "assertion": fresh_assertion(&test_key)}),
    ] {
        let response = app.post_token(&body).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{}", response.body);
        assert!(response.body.contains("test API key"), "{}", response.body);
    }
    let live_key = key(&app, TestKey { env: Stage::Live, ..TestKey::default() }).await;
    assert!(live_key.key.starts_with("sk_live_"));
    let response = app
        .post_token(&json!({"grant_type": "api_key", "api_key_id": live_key.id, "api_key_secret": live_key.key}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(claims(&app, &response.json()).await.env, "live");
    // A live key string relabelled as test is not the same key.
    let relabelled = live_key.key.replacen("sk_live_", "sk_test_", 1);
    app.post_token(&json!({"grant_type": "api_key", "api_key_id": live_key.id, "api_key_secret": relabelled}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn allowed_ips_are_enforced_for_every_grant() {
    let app = TestApp::spawn().await;
    let inside = key(&app, TestKey { allowed_ips: vec!["203.0.113.0/24"], ..TestKey::default() }).await;
    let outside =
        key(&app, TestKey { allowed_ips: vec!["198.51.100.0/24", "2001:db8::/32"], ..TestKey::default() }).await;
    let response = app
        .post_token(&json!({"grant_type": "api_key", "api_key_id": inside.id, "api_key_secret": inside.secret}))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    for body in [
        json!({"grant_type": "api_key", "api_key_id": outside.id, "api_key_secret": outside.secret}),
        json!({"grant_type": "client_credentials", "client_id": outside.id, "client_secret": outside.secret}),
        json!({"grant_type": JWT_BEARER, "assertion": fresh_assertion(&outside)}),
    ] {
        app.post_token(&body).await.assert_error(StatusCode::FORBIDDEN, "ip_not_allowed");
    }
}

#[tokio::test]
async fn scope_narrows_but_never_widens() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let narrowed = app
        .post_token(&json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret, "scope": "orders:read"}))
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.body);
    assert_eq!(narrowed.json()["scope"], "orders:read");
    assert_eq!(claims(&app, &narrowed.json()).await.scope, "orders:read");
    let widened = app
        .post_token(&json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret, "scope": "orders:read admin"}))
        .await;
    widened.assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    assert!(widened.body.contains("admin"));
}

#[tokio::test]
async fn an_exchange_reads_dynamodb_once_and_stamps_last_used_off_the_critical_path() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    warm(&app).await;
    let credentials = json!({"grant_type": "client_credentials", "client_id": key.id, "client_secret": key.secret});
    assert_eq!(app.post_token(&credentials).await.status, StatusCode::OK);
    // The first use stamps last_used_at (an UpdateItem run alongside signing).
    assert_eq!(app.calls.take(), ["GetItem", "UpdateItem"]);
    assert_eq!(app.post_token(&credentials).await.status, StatusCode::OK);
    assert_eq!(app.calls.take(), ["GetItem"], "within the minute: one read and nothing else");

    let api_key = json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret});
    assert_eq!(app.post_token(&api_key).await.status, StatusCode::OK);
    assert_eq!(app.calls.take(), ["GetItem", "PutItem"], "one read, then the refresh family");

    let assertion = json!({"grant_type": JWT_BEARER, "assertion": fresh_assertion(&key)});
    assert_eq!(app.post_token(&assertion).await.status, StatusCode::OK);
    let mut calls = app.calls.take();
    calls.sort();
    assert_eq!(calls, ["GetItem", "PutItem", "PutItem"], "read + replay marker together, then the family");

    let page = app.keys.list_tenant(&latchkey::domain::TenantId::parse(TENANT).expect("valid"), None, None).await;
    let listed = page.expect("list").keys.into_iter().find(|k| k.id == key.id).expect("listed");
    assert!(listed.last_used_at.is_some(), "last_used_at was stamped");
}

#[tokio::test]
async fn malformed_requests_are_clear_400s() {
    let app = TestApp::spawn().await;
    app.post_token(&json!({"grant_type": "api_key", "api_key_id": "x"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.post_token(&json!({"grant_type": JWT_BEARER})).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.post_token(&json!({"grant_type": 7})).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    app.token_request(request("/v1/auth/token", "POST", &[("content-type", "text/plain")], "x", CLIENT_IP))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    app.token_request(request("/v1/auth/token", "GET", &[], "", CLIENT_IP))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.token_request(post("/v1/auth/tokens", "{}")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_for_an_exchange() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let down = TestApp::spawn_with(Options {
        endpoint: Some("http://127.0.0.1:9".into()),
        env: vec![("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", "1".into()), ("LATCHKEY_DYNAMODB_TIMEOUT_MS", "500".into())],
        ..Options::default()
    })
    .await;
    // Same sealing key, so the secret checks out and the read is attempted.
    let response =
        down.post_token(&json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret})).await;
    response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn revoking_a_key_ends_the_sessions_it_started() {
    let app = TestApp::spawn().await;
    let key = key(&app, TestKey::default()).await;
    let tokens = app
        .post_token(&json!({"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret}))
        .await
        .json();
    let first = tokens["refresh_token"].as_str().expect("refresh token");
    app.calls.take();
    let rotated = app.post_refresh(first).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let mut calls = app.calls.take();
    calls.sort();
    assert_eq!(calls, ["GetItem", "UpdateItem"], "the key is read alongside the rotation");

    let tenant = latchkey::domain::TenantId::parse(TENANT).expect("valid");
    app.keys.revoke_in_tenant(&tenant, &key.id).await.expect("revoked");
    let second = rotated.json()["refresh_token"].as_str().expect("refresh token").to_owned();
    let refused = app.post_refresh(&second).await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(refused.body.contains("API key"), "{}", refused.body);
}
