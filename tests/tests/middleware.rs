//! The Rust middleware (`Guard::authorize`) inside a team's own Lambda: the
//! `protected-api` example's handler, against DynamoDB Local.

use lambda_http::http::StatusCode;
use latchkey::domain::{Principal, RateLimitOverride, TenantId};
use latchkey::time::now_secs;
use latchkey_tests::{CLIENT_IP, Options, TENANT, TestApp, TestKey, TestResponse, get, request};
use secrecy::ExposeSecret as _;
use serde_json::json;

async fn orders(app: &TestApp, method: &str, headers: &[(&str, &str)], body: &str) -> TestResponse {
    send(&app.latchkey.guard(), method, "/orders", headers, body).await
}

async fn send(
    guard: &latchkey::service::Guard,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> TestResponse {
    let mut all = vec![("content-type", if body.is_empty() { "" } else { "application/json" })];
    all.extend_from_slice(headers);
    TestResponse::from(protected_api::handle(guard, request(path, method, &all, body, CLIENT_IP)).await)
}

/// An API key as its holder sends it.
#[derive(Debug, Clone)]
struct HeldKey {
    id: String,
    key: String,
    tenant: &'static str,
}

impl HeldKey {
    async fn add(app: &TestApp, spec: TestKey) -> Self {
        let tenant = spec.tenant;
        let created = app.add_api_key(spec).await;
        Self { id: created.view.id, key: created.key.expose_secret().to_owned(), tenant }
    }

    fn headers(&self) -> [(&str, &str); 2] {
        [("x-api-key", self.key.as_str()), ("x-tenant-id", self.tenant)]
    }
}

fn rate_limit(response: &TestResponse) -> [Option<&str>; 3] {
    ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"].map(|name| response.header(name))
}

#[tokio::test]
async fn an_access_token_with_the_scope_reads_orders() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_RATE_LIMIT_ACCESS_TOKENS", "true".into())],
        ..Options::default()
    })
    .await;
    let token = app.user_token(TENANT, "reader@example.com", "orders:read").await;
    let auth = format!("Bearer {token}");
    let response = orders(&app, "GET", &[("authorization", &auth)], "").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = response.json();
    assert!(body["orders"].as_array().is_some_and(|orders| !orders.is_empty()), "{body}");
    assert_eq!(body["caller"]["tid"], TENANT);
    assert!(body["caller"]["sub"].as_str().is_some_and(|sub| sub.starts_with("usr_")), "{body}");
    assert_eq!(rate_limit(&response)[..2], [Some("1000"), Some("999")], "the pro plan, counted");

    let write = orders(&app, "POST", &[("authorization", &auth)], r#"{"item":"widget"}"#).await;
    write.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(write.header("www-authenticate").is_some_and(|h| h.contains(r#"scope="orders:write""#)));
}

#[tokio::test]
async fn the_seeded_user_lacks_orders_read_and_gets_a_scope_challenge() {
    let app = TestApp::spawn().await;
    let token = app.login_ok().await["access_token"].as_str().expect("access token").to_owned();
    let response = orders(&app, "GET", &[("authorization", &format!("Bearer {token}"))], "").await;
    response.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let challenge = response.header("www-authenticate").expect("a challenge");
    assert!(challenge.starts_with(r#"Bearer error="insufficient_scope""#), "{challenge}");
    assert!(challenge.contains(r#"scope="orders:read""#), "{challenge}");
}

#[tokio::test]
async fn an_api_key_reads_and_writes_with_rate_limit_headers() {
    let app = TestApp::spawn().await;
    let key = HeldKey::add(&app, TestKey::default()).await;
    let read = orders(&app, "GET", &key.headers(), "").await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.json()["caller"]["tid"], TENANT);
    let [limit, remaining, reset] = rate_limit(&read);
    assert_eq!((limit, remaining), (Some("1000"), Some("999")));
    assert!(reset.and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r > now_secs()), "{reset:?}");

    let order = json!({"item": "widget", "quantity": 3});
    let created = orders(&app, "POST", &key.headers(), &order.to_string()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.json()["order"], order);
    assert_eq!(created.json()["caller"], read.json()["caller"]);
    assert_eq!(rate_limit(&created)[1], Some("998"));

    orders(&app, "POST", &key.headers(), "[1, 2]").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn a_free_tenants_key_gets_its_plans_limit_and_only_in_its_tenant() {
    let app = TestApp::spawn().await;
    app.add_tenant("other").await;
    let key = HeldKey::add(&app, TestKey { tenant: "other", ..TestKey::default() }).await;
    let response = orders(&app, "GET", &key.headers(), "").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.json()["caller"]["tid"], "other");
    assert_eq!(rate_limit(&response)[..2], [Some("100"), Some("99")]);
    let elsewhere = HeldKey { tenant: TENANT, ..key };
    orders(&app, "GET", &elsewhere.headers(), "").await.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn no_expired_or_garbage_credentials_are_401s() {
    let app = TestApp::spawn().await;
    let none = orders(&app, "GET", &[], "").await;
    none.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(none.header("www-authenticate"), Some(r#"Bearer realm="latchkey""#));

    let principal =
        Principal { sub: "usr_expired".into(), tenant_id: TENANT.into(), scope: "orders:read".into(), client_id: None };
    let expired = app.latchkey.issuer.issue(&principal, now_secs() - 3600).await.expect("signs");
    let expired = format!("Bearer {}", expired.token.expose_secret());
    for (auth, reason) in
        [(expired.as_str(), "expired"), ("Bearer not-a-jwt", ""), ("Basic b3JkZXJzOnJlYWQ=", "Bearer scheme")]
    {
        let response = orders(&app, "GET", &[("authorization", auth)], "").await;
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        assert!(response.body.contains(reason), "{auth}: {}", response.body);
        assert!(
            response.header("www-authenticate").is_some_and(|h| h.starts_with(r#"Bearer error="invalid_token""#)),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn a_key_over_its_hourly_limit_gets_429_with_retry_after() {
    let app = TestApp::spawn().await;
    let key =
        HeldKey::add(&app, TestKey { rate_limit: Some(RateLimitOverride::PerHour(2)), ..TestKey::default() }).await;
    for remaining in ["1", "0"] {
        let response = orders(&app, "GET", &key.headers(), "").await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(rate_limit(&response)[..2], [Some("2"), Some(remaining)]);
    }
    let refused = orders(&app, "GET", &key.headers(), "").await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(rate_limit(&refused)[..2], [Some("2"), Some("0")]);
    let retry_after: u64 = refused.header("retry-after").and_then(|r| r.parse().ok()).expect("Retry-After");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_without_the_cache() {
    let app =
        TestApp::spawn_with(Options { env: vec![("LATCHKEY_AUTH_CACHE_SECONDS", "0".into())], ..Options::default() })
            .await;
    let key = HeldKey::add(&app, TestKey::default()).await;
    assert_eq!(orders(&app, "GET", &key.headers(), "").await.status, StatusCode::OK);
    let tenant = TenantId::parse(TENANT).expect("valid");
    app.keys.revoke_in_tenant(&tenant, &key.id).await.expect("revoked");
    let refused = orders(&app, "GET", &key.headers(), "").await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert!(refused.body.contains("revoked"), "{}", refused.body);
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_with_retry_after() {
    let app = TestApp::spawn().await;
    let key = HeldKey::add(&app, TestKey::default()).await;
    let down = TestApp::spawn_with(Options {
        endpoint: Some("http://127.0.0.1:9".into()),
        env: vec![("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", "1".into()), ("LATCHKEY_DYNAMODB_TIMEOUT_MS", "500".into())],
        ..Options::default()
    })
    .await;
    // Same sealing key, so the secret checks out and the key's read is tried.
    let response = orders(&down, "GET", &key.headers(), "").await;
    response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn other_paths_and_methods_are_json_404_and_405() {
    let app = TestApp::spawn().await;
    let guard = app.latchkey.guard();
    send(&guard, "GET", "/invoices", &[], "").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    let delete = send(&guard, "DELETE", "/orders", &[], "").await;
    delete.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(delete.header("allow"), Some("GET, POST"));
    let staged = TestResponse::from(protected_api::handle(&guard, get("/live/orders", &[])).await);
    staged.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

/// The guard a team's Lambda builds from `LATCHKEY_VERIFIER_KEY`, without
/// the sealing key, on the same table.
fn verify_only_guard(app: &TestApp, verifier_key: &str) -> latchkey::service::Guard {
    let mut vars = latchkey_tests::base_env(app.table.name());
    vars.retain(|(name, _)| name != "LATCHKEY_SEALING_KEY");
    vars.push(("LATCHKEY_VERIFIER_KEY".into(), verifier_key.into()));
    let env = latchkey::config::Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let config = latchkey::config::GuardConfig::from(&env).expect("a verifier configuration");
    latchkey::service::Guard::verify_only(&config, app.table.client().clone())
}

#[tokio::test]
async fn the_verifier_key_alone_decides_like_the_deployment() {
    let app = TestApp::spawn().await;
    let verifier_key = latchkey::credentials::StoredSecretCheck::new(&app.latchkey.config.sealing_key).to_base64();
    assert_ne!(verifier_key, latchkey_tests::SEALING_KEY, "the verifier key is not the sealing key");
    // A login first: the deployment's first signing key exists before the
    // team's Lambda loads the public keys, as in any running deployment.
    let token = app.user_token(TENANT, "reader@example.com", "orders:read").await;
    let guard = verify_only_guard(&app, &verifier_key);
    guard.warm_up().await;

    let key = HeldKey::add(&app, TestKey::default()).await;
    let allowed = send(&guard, "GET", "/orders", &key.headers(), "").await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(rate_limit(&allowed)[..2], [Some("1000"), Some("999")]);

    let by_token = send(&guard, "GET", "/orders", &[("authorization", &format!("Bearer {token}"))], "").await;
    assert_eq!(by_token.status, StatusCode::OK, "{}", by_token.body);

    // Without the derivation key, a forged secret is refused by the stored hash.
    let forged = format!("{}{}", &key.key[..key.key.len() - 4], "aaaa");
    let refused = send(&guard, "GET", "/orders", &[("x-api-key", &forged), ("x-tenant-id", TENANT)], "").await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Another deployment's verifier key checks nothing of this one.
    let stranger = latchkey::credentials::StoredSecretCheck::new(&latchkey::crypto::SealingKey::from_bytes([9; 32]));
    let other = verify_only_guard(&app, &stranger.to_base64());
    send(&other, "GET", "/orders", &key.headers(), "")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_verify_only_key_ring_never_signs() {
    let app = TestApp::spawn().await;
    let ring =
        latchkey::keys::KeyRing::verify_only(app.latchkey.stores.signing_keys.clone(), std::time::Duration::ZERO);
    let err = ring.signing_key().await.expect_err("no sealing key, no signing");
    assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(ring.add_key(latchkey::jwt::SigningAlgorithm::Rs256, std::time::Duration::ZERO).await.is_err());
    app.login_ok().await;
    let set = ring.current().await.expect("public keys load");
    assert!(set.signing.is_none(), "no private key is opened");
    assert_eq!(set.verifying.len(), 1);

    let missing =
        latchkey::config::Env::from_pairs([("LATCHKEY_TABLE_NAME", "t-1"), ("LATCHKEY_ISSUER", "https://a.example")]);
    let err = latchkey::config::GuardConfig::from(&missing).expect_err("no key at all");
    assert_eq!(err.to_string(), "LATCHKEY_VERIFIER_KEY must be set");
}

/// A request API Gateway hands over after an authorizer admitted it: the
/// caller is in `requestContext.authorizer`.
fn admitted_request(authorizer: serde_json::Value) -> lambda_http::Request {
    let mut event: serde_json::Value =
        serde_json::from_str(&latchkey_tests::event_json("/lambda/orders", "GET", &[], "", CLIENT_IP))
            .expect("event JSON");
    event["requestContext"]["authorizer"] = authorizer;
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway event")
}

#[tokio::test]
async fn a_request_an_authorizer_admitted_is_not_decided_or_counted_again() {
    let app = TestApp::spawn().await;
    let guard = app.latchkey.guard();
    let lambda = json!({"lambda": {
        "sub": "key_1", "tid": TENANT, "scope": "orders:read", "env": "test", "credential": "api_key",
        "ratelimit_limit": 100, "ratelimit_remaining": 41, "ratelimit_reset": 1_795_003_200_u64,
    }});
    let response = TestResponse::from(protected_api::handle(&guard, admitted_request(lambda)).await);
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.json()["caller"], json!({"sub": "key_1", "tid": TENANT}));
    assert_eq!(rate_limit(&response), [Some("100"), Some("41"), Some("1795003200")], "the authorizer's numbers");
    let jwt = json!({"jwt": {"claims": {"sub": "usr_1", "tid": TENANT, "scope": "orders:read"}, "scopes": null}});
    let response = TestResponse::from(protected_api::handle(&guard, admitted_request(jwt)).await);
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.json()["caller"], json!({"sub": "usr_1", "tid": TENANT}));
    assert_eq!(rate_limit(&response), [None, None, None]);
    assert!(app.calls.take().is_empty(), "no second decision, no count");

    // Without an authorizer's context the middleware decides: no credentials, 401.
    let bare = admitted_request(json!(null));
    TestResponse::from(protected_api::handle(&guard, bare).await)
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}
