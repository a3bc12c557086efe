//! POST /v1/auth/login against DynamoDB Local.

use std::time::Duration;

use jsonwebtoken::{DecodingKey, Validation, decode, decode_header, jwk::Jwk};
use lambda_http::http::StatusCode;
use latchkey_tests::{AUDIENCE, EMAIL, ISSUER, Options, PASSWORD, TENANT, TestApp, login_body, post, request};
use serde_json::Value;

/// Verifies `token` with the public JWK the table publishes for its `kid`,
/// using jsonwebtoken directly (not Latchkey's verifier).
async fn verify_with_published_key(app: &TestApp, token: &str, alg: jsonwebtoken::Algorithm) -> Value {
    let header = decode_header(token).expect("JWT header");
    assert_eq!(header.alg, alg);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("kid");
    let records = app.latchkey.stores.signing_keys.list(latchkey::time::now_secs()).await.expect("keys");
    let record = records.iter().find(|r| r.kid == kid).expect("the kid is published");
    let jwk: Jwk = serde_json::from_str(&record.public_jwk).expect("JWK");
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    decode::<Value>(token, &DecodingKey::from_jwk(&jwk).expect("key"), &validation).expect("verifies").claims
}

#[tokio::test]
async fn login_returns_the_spec_token_response_with_a_verifiable_rs256_token() {
    let app = TestApp::spawn().await;
    let body = app.login_ok().await;

    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["expires_at"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('T')), "{body}");
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    assert!(refresh.starts_with("rt_") && refresh.len() >= 3 + 22, "{refresh}");
    assert_eq!(body["refresh_expires_in"], 30 * 24 * 3600);

    let claims =
        verify_with_published_key(&app, body["access_token"].as_str().expect("token"), jsonwebtoken::Algorithm::RS256)
            .await;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["scope"], "keys:write profile");
    assert_eq!(claims["env"], "test");
    assert!(claims["sub"].as_str().is_some_and(|s| s.starts_with("usr_")));
    assert!(claims["jti"].as_str().is_some_and(|s| s.len() >= 22));
    let (iat, exp) = (claims["iat"].as_u64().expect("iat"), claims["exp"].as_u64().expect("exp"));
    assert_eq!(exp - iat, 900);
    assert!(claims.get("client_id").is_none());
}

#[tokio::test]
async fn es256_and_eddsa_are_selectable() {
    for (name, alg) in [("ES256", jsonwebtoken::Algorithm::ES256), ("EdDSA", jsonwebtoken::Algorithm::EdDSA)] {
        let app =
            TestApp::spawn_with(Options { env: vec![("LATCHKEY_SIGNING_ALG", name.into())], ..Options::default() })
                .await;
        let body = app.login_ok().await;
        let claims = verify_with_published_key(&app, body["access_token"].as_str().expect("token"), alg).await;
        assert_eq!(claims["tid"], TENANT, "{name}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_indistinguishable() {
    let app = TestApp::spawn().await;
    let wrong_password = app.post_login(&login_body(EMAIL, "not the password")).await;
    let unknown_email = app.post_login(&login_body("nobody@example.com", PASSWORD)).await;
    wrong_password.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong_password.status, unknown_email.status);
    assert_eq!(wrong_password.body, unknown_email.body);
    assert_eq!(wrong_password.headers, unknown_email.headers);
}

#[tokio::test]
async fn emails_are_matched_case_insensitively() {
    let app = TestApp::spawn().await;
    let response = app.post_login(&login_body("  ADA@Example.com ", PASSWORD)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one table of cases
async fn malformed_requests_get_json_errors_with_the_right_status() {
    let app = TestApp::spawn().await;
    let json = [("content-type", "application/json")];
    let cases: Vec<(&str, lambda_http::Request, StatusCode, &str)> = vec![
        ("malformed JSON", post("/v1/auth/login", "{\"email\": "), StatusCode::BAD_REQUEST, "invalid_request"),
        ("not an object", post("/v1/auth/login", "[1,2]"), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "missing password",
            post("/v1/auth/login", r#"{"email":"ada@example.com"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        ("missing email", post("/v1/auth/login", r#"{"password":"x"}"#), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "wrong type",
            post("/v1/auth/login", r#"{"email":"ada@example.com","password":12}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "bad email",
            post("/v1/auth/login", r#"{"email":"ada","password":"x"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "empty password",
            post("/v1/auth/login", r#"{"email":"ada@example.com","password":""}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        ("empty body", post("/v1/auth/login", ""), StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "text/plain",
            request(
                "/v1/auth/login",
                "POST",
                &[("content-type", "text/plain")],
                &login_body(EMAIL, PASSWORD),
                "198.51.100.1",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            request("/v1/auth/login", "POST", &[("content-type", "")], &login_body(EMAIL, PASSWORD), "198.51.100.1"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "form body",
            request(
                "/v1/auth/login",
                "POST",
                &[("content-type", "application/x-www-form-urlencoded")],
                "email=a",
                "198.51.100.1",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "over the size limit",
            post("/v1/auth/login", &login_body(EMAIL, &"p".repeat(20 * 1024))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
        ),
        (
            "GET",
            request("/v1/auth/login", "GET", &json, "", "198.51.100.1"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        ("unknown path", post("/v1/auth/nope", &login_body(EMAIL, PASSWORD)), StatusCode::NOT_FOUND, "not_found"),
        (
            "one app header",
            request(
                "/v1/auth/login",
                "POST",
                &[("content-type", "application/json"), ("x-app-id", "app_1")],
                &login_body(EMAIL, PASSWORD),
                "198.51.100.1",
            ),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (name, req, status, code) in cases {
        let response = app.login_request(req).await;
        assert_eq!(response.status, status, "{name}: {}", response.body);
        response.assert_error(status, code);
    }
    let not_allowed = app.login_request(request("/v1/auth/login", "GET", &json, "", "198.51.100.1")).await;
    assert_eq!(not_allowed.header("allow"), Some("POST"));
    // None of these touched the failure counters: the real login still works.
    app.login_ok().await;
}

fn with_app(app_id: &str, secret: &str, email: &str) -> lambda_http::Request {
    request(
        "/v1/auth/login",
        "POST",
        &[("content-type", "application/json"), ("x-app-id", app_id), ("x-app-secret", secret)],
        &login_body(email, PASSWORD),
        "198.51.100.1",
    )
}

#[tokio::test]
async fn app_credentials_set_client_id_and_wrong_ones_are_refused() {
    let app = TestApp::spawn().await;
    let (app_id, secret) = app.add_app(TENANT).await;
    app.latchkey.issuer.keys().signing_key().await.expect("signing key");
    app.calls.take();
    let response = app.login_request(with_app(&app_id, &secret, EMAIL)).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(app.calls.take(), ["BatchGetItem", "PutItem"], "the app is read with the user");
    let body = response.json();
    let claims = app.latchkey.issuer.verify(body["access_token"].as_str().expect("token")).await.expect("verifies");
    assert_eq!(claims.client_id.as_deref(), Some(app_id.as_str()));
    // The refresh family keeps the app as the client.
    let refreshed = app.post_refresh(body["refresh_token"].as_str().expect("refresh token")).await.json();
    let claims = app.latchkey.issuer.verify(refreshed["access_token"].as_str().expect("token")).await.expect("ok");
    assert_eq!(claims.client_id.as_deref(), Some(app_id.as_str()));

    let (_, other_secret) = app.add_app(TENANT).await;
    for (name, id, secret) in [
        ("wrong secret", app_id.as_str(), other_secret.as_str()),
        ("unknown app", "app_aaaaaaaaaaaaaaaaaaaaaaaaaa", secret.as_str()),
        ("malformed id", "app_unknown", "nope"),
    ] {
        let response = app.login_request(with_app(id, secret, EMAIL)).await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(response.body.contains("app id or app secret"), "{name}: {}", response.body);
    }

    // An app of another tenant: the same answer as a wrong password.
    app.add_tenant("globex").await;
    let (globex_app, globex_secret) = app.add_app("globex").await;
    let cross = app.login_request(with_app(&globex_app, &globex_secret, EMAIL)).await;
    let wrong_password = app.post_login(&login_body(EMAIL, "not the password")).await;
    cross.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(cross.body, wrong_password.body);
}

fn throttled(max_failures: u32, lockout_seconds: u32) -> Options {
    Options {
        env: vec![
            ("LATCHKEY_LOGIN_MAX_FAILURES", max_failures.to_string()),
            ("LATCHKEY_LOGIN_LOCKOUT_SECONDS", lockout_seconds.to_string()),
            ("LATCHKEY_LOGIN_LOCKOUT_MAX_SECONDS", "60".into()),
        ],
        ..Options::default()
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_account_with_backoff_and_success_resets() {
    let app = TestApp::spawn_with(throttled(3, 2)).await;
    app.login_ok().await; // creates the first signing key, so call counts below are the login's own
    for _ in 0..3 {
        app.post_login(&login_body(EMAIL, "wrong")).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // Locked: even the right password is refused, before it is checked.
    let locked = app.post_login(&login_body(EMAIL, PASSWORD)).await;
    locked.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = locked.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "first lockout is the 2 s base: {wait}");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    // The fourth failure doubles the lockout.
    app.post_login(&login_body(EMAIL, "wrong")).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let doubled = app.post_login(&login_body(EMAIL, PASSWORD)).await;
    doubled.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = doubled.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((3..=4).contains(&wait), "second lockout doubles to 4 s: {wait}");

    tokio::time::sleep(Duration::from_millis(5100)).await;
    app.calls.take();
    app.login_ok().await;
    assert_eq!(
        app.calls.take(),
        ["BatchGetItem", "TransactWriteItems"],
        "success clears the counter in the same write"
    );
    // The counter restarted: two more failures do not lock.
    for _ in 0..2 {
        app.post_login(&login_body(EMAIL, "wrong")).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    app.login_ok().await;
}

#[tokio::test]
async fn unknown_emails_lock_out_exactly_like_known_ones() {
    let app = TestApp::spawn_with(throttled(2, 30)).await;
    let mut answers = Vec::new();
    for email in [EMAIL, "ghost@example.com"] {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let response = app.post_login(&login_body(email, "wrong")).await;
            // Retry-After counts down: it may read 30 or 29 across a second boundary.
            let retry_after =
                response.header("retry-after").map(|v| v.parse::<u64>().is_ok_and(|s| (29..=30).contains(&s)));
            seen.push((response.status, response.body.clone(), retry_after));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][2].0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answers[0][2].2, Some(true), "a 30 s lockout");
}

#[tokio::test]
async fn many_failures_from_one_ip_lock_that_ip() {
    let mut options = throttled(100, 30);
    options.env.push(("LATCHKEY_LOGIN_IP_MAX_FAILURES", "3".into()));
    let app = TestApp::spawn_with(options).await;
    for i in 0..3 {
        let response = app.post_login(&login_body(&format!("user{i}@example.com"), "wrong")).await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    app.post_login(&login_body(EMAIL, PASSWORD)).await.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // Another address is not affected.
    let elsewhere = app
        .login_request(request(
            "/v1/auth/login",
            "POST",
            &[("content-type", "application/json")],
            &login_body(EMAIL, PASSWORD),
            "198.51.100.7",
        ))
        .await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
}

#[tokio::test]
async fn a_successful_login_makes_exactly_two_dynamodb_calls() {
    let app = TestApp::spawn().await;
    app.login_ok().await; // creates the first signing key and warms the key cache
    app.calls.take();
    app.login_ok().await;
    assert_eq!(app.calls.take(), ["BatchGetItem", "PutItem"]);
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_with_retry_after() {
    let app = TestApp::spawn_with(Options {
        endpoint: Some("http://127.0.0.1:9".into()),
        env: vec![("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", "2".into()), ("LATCHKEY_DYNAMODB_TIMEOUT_MS", "1000".into())],
        ..Options::default()
    })
    .await;
    let started = std::time::Instant::now();
    let response = app.post_login(&login_body(EMAIL, PASSWORD)).await;
    response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
    assert!(started.elapsed() < Duration::from_secs(5), "answered within the configured timeout");
}

#[tokio::test]
async fn a_missing_table_is_a_500_server_error_not_an_outage() {
    let app = TestApp::spawn().await;
    latchkey::store::schema::delete_table(&app.table).await.expect("deleted");
    let response = app.post_login(&login_body(EMAIL, PASSWORD)).await;
    response.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    assert_eq!(response.json()["error_description"], "internal error", "no detail leaks");
    assert!(response.header("retry-after").is_none());
}
