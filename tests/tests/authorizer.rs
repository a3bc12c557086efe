//! The API Gateway Lambda authorizer (issue #6): allow and deny decisions,
//! the context it hands the route, what each decision costs in DynamoDB
//! calls, and rate limits, against DynamoDB Local.

use std::time::{Duration, Instant};

use authorizer::{AuthorizerContext, AuthorizerResponse};
use latchkey::domain::{ApiKeyId, Plan, RateLimitOverride, Stage, TenantId};
use latchkey::jwt::{AccessClaims, SigningAlgorithm, SigningKey, generate_key_pair};
use latchkey::store::RateSubject;
use latchkey::time::now_secs;
use latchkey_tests::{Options, SCOPES, TENANT, TestApp, TestKey, authorizer_event, bearer, settled_window};

const ROUTE: &str = "GET /orders";

/// A fresh login's access token, with the keys warmed and the calls so far
/// taken.
async fn access_token(app: &TestApp) -> String {
    let token = app.login_ok().await["access_token"].as_str().expect("access_token").to_owned();
    app.latchkey.warm_up().await;
    app.calls.take();
    token
}

async fn authorize_key(app: &TestApp, route: &str, key: &str, tenant: &str) -> AuthorizerResponse {
    app.authorize(route, &[("x-api-key", key), ("x-tenant-id", tenant)]).await
}

fn assert_denied(response: &AuthorizerResponse, why: &str) {
    assert!(!response.is_authorized, "{why}: expected a deny, got {response:?}");
    assert_eq!(response.context, AuthorizerContext::default(), "{why}: a deny carries no context");
}

fn rate_limit(context: &AuthorizerContext) -> (Option<u32>, Option<u32>, Option<u64>) {
    (context.ratelimit_limit, context.ratelimit_remaining, context.ratelimit_reset)
}

/// `claims` signed as the deployment signs: its current key and kid.
async fn sign_as_deployment(app: &TestApp, claims: &AccessClaims) -> String {
    let key = app.latchkey.issuer.keys().signing_key().await.expect("signing key");
    key.sign(claims).expect("signs")
}

/// `claims` signed with a freshly generated key under `kid`.
fn sign_with_foreign_key(kid: &str, claims: &AccessClaims) -> String {
    let pair = generate_key_pair(SigningAlgorithm::Rs256, kid).expect("key pair");
    let key = SigningKey::from_pkcs8(kid.to_owned(), pair.algorithm, &pair.private_der).expect("parses");
    key.sign(claims).expect("signs")
}

#[tokio::test]
async fn a_login_token_is_allowed_with_its_identity_and_no_dynamodb_call() {
    let app = TestApp::spawn().await;
    let token = access_token(&app).await;
    let claims = app.latchkey.issuer.verify(&token).await.expect("the token verifies");
    app.calls.take();
    let auth = bearer(&token);
    let response = app.authorize(ROUTE, &[("authorization", auth.as_str())]).await;
    assert!(response.is_authorized, "{response:?}");
    let context = &response.context;
    assert!(claims.sub.starts_with("usr_"));
    assert_eq!(context.sub.as_deref(), Some(claims.sub.as_str()));
    assert_eq!(context.tid.as_deref(), Some(TENANT));
    assert_eq!(context.scope.as_deref(), Some(SCOPES));
    assert_eq!(context.env.as_deref(), Some("test"));
    assert_eq!(context.credential, Some("access_token"));
    assert_eq!(context.client_id, None);
    assert_eq!(rate_limit(context), (None, None, None), "access tokens are not metered by default");
    // The simple response API Gateway reads; uncounted means no rate-limit keys.
    let json = serde_json::to_value(&response).expect("serialises");
    assert_eq!(json["isAuthorized"], true);
    let keys: Vec<&str> = json["context"].as_object().expect("context").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "sub, tid, scope, env, credential only: {json}");
    assert_eq!(json["context"]["credential"], "access_token");

    for _ in 0..20 {
        assert!(app.authorize(ROUTE, &[("authorization", auth.as_str())]).await.is_authorized);
    }
    let lower_case = format!("bearer {token}");
    assert!(app.authorize(ROUTE, &[("authorization", &lower_case)]).await.is_authorized, "the scheme is case-blind");
    assert!(app.calls.take().is_empty(), "bearer decisions on a warm instance touch no DynamoDB");
}

#[tokio::test]
async fn an_api_key_is_allowed_counted_and_its_record_cached() {
    let app = TestApp::spawn().await;
    let (id, key) = app.add_held_key(TestKey::default()).await;
    let (_, end) = settled_window(10).await;
    let first = authorize_key(&app, ROUTE, &key, TENANT).await;
    assert!(first.is_authorized, "{first:?}");
    assert_eq!(app.calls.take(), ["GetItem", "GetItem", "UpdateItem"], "key, tenant plan, then the count");
    let context = &first.context;
    assert_eq!(context.sub.as_deref(), Some(id.as_str()));
    assert_eq!(context.tid.as_deref(), Some(TENANT));
    assert_eq!(context.scope.as_deref(), Some("orders:read orders:write"));
    assert_eq!(context.env.as_deref(), Some("test"));
    assert_eq!(context.credential, Some("api_key"));
    assert_eq!(context.client_id.as_deref(), Some(id.as_str()));
    assert_eq!(rate_limit(context), (Some(1000), Some(999), Some(end)), "the pro plan");

    let second = authorize_key(&app, ROUTE, &key, TENANT).await;
    assert!(second.is_authorized, "{second:?}");
    assert_eq!(rate_limit(&second.context), (Some(1000), Some(998), Some(end)));
    assert_eq!(app.calls.take(), ["UpdateItem"], "key and plan come from the cache");
}

#[tokio::test]
async fn expired_foreign_audience_and_unknown_key_tokens_are_denied() {
    let app = TestApp::spawn().await;
    let token = access_token(&app).await;
    let claims = app.latchkey.issuer.verify(&token).await.expect("the token verifies");
    let now = now_secs();
    let expired = AccessClaims { iat: now - 1800, exp: now - 900, ..claims.clone() };
    let other_audience = AccessClaims { aud: "https://api.elsewhere.test".into(), ..claims.clone() };
    let other_issuer = AccessClaims { iss: "https://auth.elsewhere.test".into(), ..claims.clone() };
    let live = AccessClaims { env: "live".into(), ..claims.clone() };
    let kid = app.latchkey.issuer.keys().signing_key().await.expect("signing key").kid.clone();
    let cases = [
        ("control: re-signed as issued", sign_as_deployment(&app, &claims).await, true),
        ("expired", sign_as_deployment(&app, &expired).await, false),
        ("another audience", sign_as_deployment(&app, &other_audience).await, false),
        ("another issuer", sign_as_deployment(&app, &other_issuer).await, false),
        ("the other environment", sign_as_deployment(&app, &live).await, false),
        ("an unknown kid", sign_with_foreign_key("not-one-of-ours", &claims), false),
        ("a foreign key under our kid", sign_with_foreign_key(&kid, &claims), false),
    ];
    for (name, forged, allowed) in cases {
        let auth = bearer(&forged);
        let response = app.authorize(ROUTE, &[("authorization", auth.as_str())]).await;
        if allowed {
            assert!(response.is_authorized, "{name}: {response:?}");
        } else {
            assert_denied(&response, name);
        }
    }
}

#[tokio::test]
async fn malformed_missing_and_mixed_credentials_are_denied() {
    let app = TestApp::spawn().await;
    let token = access_token(&app).await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let auth = bearer(&token);
    let refresh = app.login_ok().await["refresh_token"].as_str().expect("refresh_token").to_owned();
    let refresh_auth = bearer(&refresh);
    let forged = format!("{}{}", &key[..key.len() - 4], "aaaa");
    let cases: [(&str, Vec<(&str, &str)>); 9] = [
        ("garbage bearer", vec![("authorization", "Bearer not-a-jwt")]),
        ("a refresh token as bearer", vec![("authorization", refresh_auth.as_str())]),
        ("an empty bearer", vec![("authorization", "Bearer ")]),
        ("basic scheme", vec![("authorization", "Basic dXNlcjpwYXNz")]),
        ("no credentials", vec![]),
        (
            "both credentials",
            vec![("authorization", auth.as_str()), ("x-api-key", key.as_str()), ("x-tenant-id", TENANT)],
        ),
        ("a key without its tenant", vec![("x-api-key", key.as_str())]),
        ("a key with another tenant", vec![("x-api-key", key.as_str()), ("x-tenant-id", "other")]),
        ("a key with a wrong secret", vec![("x-api-key", forged.as_str()), ("x-tenant-id", TENANT)]),
    ];
    app.add_tenant("other").await;
    for (name, headers) in &cases {
        assert_denied(&app.authorize(ROUTE, headers).await, name);
    }
    // The real credentials alone are fine.
    assert!(app.authorize(ROUTE, &[("authorization", auth.as_str())]).await.is_authorized);
    assert!(authorize_key(&app, ROUTE, &key, TENANT).await.is_authorized);
}

#[tokio::test]
async fn a_revoked_key_is_denied_once_its_cached_record_expires() {
    // LATCHKEY_AUTH_CACHE_SECONDS is the documented delay for a revocation
    // to reach the authorizer (SPEC: "within the documented cache time"). Two
    // seconds rather than one, so that a slow machine cannot let the cached
    // copy expire before the "still allowed" step.
    let app =
        TestApp::spawn_with(Options { env: vec![("LATCHKEY_AUTH_CACHE_SECONDS", "2".into())], ..Options::default() })
            .await;
    let (id, key) = app.add_held_key(TestKey::default()).await;
    assert!(authorize_key(&app, ROUTE, &key, TENANT).await.is_authorized);
    let tenant = TenantId::parse(TENANT).expect("valid");
    app.keys.revoke_in_tenant(&tenant, &id).await.expect("revoked");
    assert!(
        authorize_key(&app, ROUTE, &key, TENANT).await.is_authorized,
        "within the cache time this instance still holds the unrevoked record (documented)"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_denied(&authorize_key(&app, ROUTE, &key, TENANT).await, "revoked, after the cache time");

    let uncached =
        TestApp::spawn_with(Options { env: vec![("LATCHKEY_AUTH_CACHE_SECONDS", "0".into())], ..Options::default() })
            .await;
    let (id, key) = uncached.add_held_key(TestKey::default()).await;
    assert!(authorize_key(&uncached, ROUTE, &key, TENANT).await.is_authorized);
    uncached.keys.revoke_in_tenant(&tenant, &id).await.expect("revoked");
    assert_denied(&authorize_key(&uncached, ROUTE, &key, TENANT).await, "revoked, no cache");
}

#[tokio::test]
async fn expired_and_other_environment_keys_are_denied() {
    let app = TestApp::spawn().await;
    let (_, expired) = app.add_held_key(TestKey { valid_until: Some(now_secs() - 1), ..TestKey::default() }).await;
    assert_denied(&authorize_key(&app, ROUTE, &expired, TENANT).await, "an expired key");
    let (_, live) = app.add_held_key(TestKey { env: Stage::Live, ..TestKey::default() }).await;
    assert!(live.starts_with("sk_live_"));
    assert_denied(&authorize_key(&app, ROUTE, &live, TENANT).await, "a live key on a test deployment");
    let (_, valid) = app.add_held_key(TestKey { valid_until: Some(now_secs() + 60), ..TestKey::default() }).await;
    assert!(authorize_key(&app, ROUTE, &valid, TENANT).await.is_authorized, "a key not yet expired");
}

#[tokio::test]
async fn the_ip_allow_list_is_checked_against_the_source_address() {
    let app = TestApp::spawn().await;
    let (_, key) = app.add_held_key(TestKey { allowed_ips: vec!["198.51.100.0/24"], ..TestKey::default() }).await;
    let headers = [("x-api-key", key.as_str()), ("x-tenant-id", TENANT)];
    // `authorize` sends from CLIENT_IP, 203.0.113.10.
    assert_denied(&app.authorize(ROUTE, &headers).await, "outside the allow list");
    let inside = app.authorizer.handle(&authorizer_event(ROUTE, &headers, "198.51.100.7")).await;
    assert!(inside.is_authorized, "{inside:?}");
    let ipv6 = app.authorizer.handle(&authorizer_event(ROUTE, &headers, "2001:db8::1")).await;
    assert_denied(&ipv6, "an IPv6 address outside the list");
}

#[tokio::test]
async fn a_key_over_its_limit_is_denied_and_not_counted() {
    let app = TestApp::spawn().await;
    let (id, key) =
        app.add_held_key(TestKey { rate_limit: Some(RateLimitOverride::PerHour(3)), ..TestKey::default() }).await;
    let (start, end) = settled_window(15).await;
    for remaining in [2, 1, 0] {
        let response = authorize_key(&app, ROUTE, &key, TENANT).await;
        assert!(response.is_authorized, "{response:?}");
        assert_eq!(rate_limit(&response.context), (Some(3), Some(remaining), Some(end)));
    }
    assert_denied(&authorize_key(&app, ROUTE, &key, TENANT).await, "the fourth request in the hour");
    assert_denied(&authorize_key(&app, ROUTE, &key, TENANT).await, "the fifth request in the hour");
    let counters = &app.latchkey.stores.rate_limits;
    let key_id = ApiKeyId::parse(&id).expect("valid id");
    assert_eq!(counters.current(&RateSubject::ApiKey(key_id), start).await.expect("read"), 3, "refusals add nothing");
    let tenant = RateSubject::Tenant(TenantId::parse(TENANT).expect("valid"));
    assert_eq!(counters.current(&tenant, start).await.expect("read"), 0, "the key has its own counter");
}

#[tokio::test]
async fn a_free_tenant_over_its_plan_is_denied() {
    let app = TestApp::spawn().await;
    app.add_tenant("other").await;
    let (_, key) = app.add_held_key(TestKey { tenant: "other", ..TestKey::default() }).await;
    let (start, _) = settled_window(30).await;
    for _ in 0..100 {
        assert!(authorize_key(&app, ROUTE, &key, "other").await.is_authorized);
    }
    assert_denied(&authorize_key(&app, ROUTE, &key, "other").await, "the 101st request on the free plan");
    let tenant = RateSubject::Tenant(TenantId::parse("other").expect("valid"));
    assert_eq!(app.latchkey.stores.rate_limits.current(&tenant, start).await.expect("read"), 100);
}

#[tokio::test]
async fn route_scopes_are_required_only_where_configured() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_ROUTE_SCOPES", r#"{"POST /orders":"orders:write"}"#.into())],
        ..Options::default()
    })
    .await;
    let token = access_token(&app).await;
    let auth = bearer(&token);
    let (_, reader) = app.add_held_key(TestKey { scopes: "orders:read", ..TestKey::default() }).await;
    let (_, writer) = app.add_held_key(TestKey::default()).await;
    let (_, end) = settled_window(10).await;

    assert_denied(&authorize_key(&app, "POST /orders", &reader, TENANT).await, "a key without orders:write");
    assert_denied(&app.authorize("POST /orders", &[("authorization", auth.as_str())]).await, "a token without it");
    let written = authorize_key(&app, "POST /orders", &writer, TENANT).await;
    assert!(written.is_authorized, "{written:?}");
    assert_eq!(rate_limit(&written.context), (Some(1000), Some(999), Some(end)), "a refused request is not counted");

    let read = authorize_key(&app, "GET /orders", &reader, TENANT).await;
    assert!(read.is_authorized, "a route not listed needs no scope: {read:?}");
    assert!(app.authorize("GET /orders", &[("authorization", auth.as_str())]).await.is_authorized);
}

#[tokio::test]
async fn an_enterprise_tenant_is_never_counted() {
    let app = TestApp::spawn().await;
    app.set_plan(TENANT, Plan::Enterprise).await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    for _ in 0..3 {
        let response = authorize_key(&app, ROUTE, &key, TENANT).await;
        assert!(response.is_authorized, "{response:?}");
        assert_eq!(rate_limit(&response.context), (None, None, None));
    }
    assert_eq!(app.calls.take(), ["GetItem", "GetItem"], "key and plan once, and no UpdateItem");
}

#[tokio::test]
async fn metered_access_tokens_count_on_the_tenant() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_RATE_LIMIT_ACCESS_TOKENS", "true".into())],
        ..Options::default()
    })
    .await;
    let token = access_token(&app).await;
    let auth = bearer(&token);
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let (start, end) = settled_window(10).await;
    let first = app.authorize(ROUTE, &[("authorization", auth.as_str())]).await;
    assert!(first.is_authorized, "{first:?}");
    assert_eq!(first.context.credential, Some("access_token"));
    assert_eq!(rate_limit(&first.context), (Some(1000), Some(999), Some(end)));
    assert_eq!(app.calls.take(), ["GetItem", "UpdateItem"], "the tenant's plan, then the count");
    let second = app.authorize(ROUTE, &[("authorization", auth.as_str())]).await;
    assert_eq!(rate_limit(&second.context), (Some(1000), Some(998), Some(end)));
    assert_eq!(app.calls.take(), ["UpdateItem"], "one UpdateItem per metered request");
    // A key without its own limit shares the tenant's counter.
    let by_key = authorize_key(&app, ROUTE, &key, TENANT).await;
    assert_eq!(rate_limit(&by_key.context), (Some(1000), Some(997), Some(end)));
    let tenant = RateSubject::Tenant(TenantId::parse(TENANT).expect("valid"));
    assert_eq!(app.latchkey.stores.rate_limits.current(&tenant, start).await.expect("read"), 3);
}

#[tokio::test]
async fn dynamodb_unreachable_denies_promptly() {
    let app = TestApp::spawn().await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let token = app.login_ok().await["access_token"].as_str().expect("access_token").to_owned();
    // Default retries and timeouts: the SDK's operation timeout (3 s) bounds
    // a decision, well inside API Gateway's 10 s wait for an authorizer.
    let down = TestApp::spawn_with(Options { endpoint: Some("http://127.0.0.1:9".into()), ..Options::default() }).await;
    let auth = bearer(&token);
    let cases = [
        // Same sealing key, so the secret checks out and the read is attempted.
        ("an API key", vec![("x-api-key", key.as_str()), ("x-tenant-id", TENANT)]),
        ("a bearer token (no signing keys loadable)", vec![("authorization", auth.as_str())]),
    ];
    for (name, headers) in &cases {
        let started = Instant::now();
        assert_denied(&down.authorize(ROUTE, headers).await, name);
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "{name}: the decision took {elapsed:?}");
    }
    assert!(!down.calls.take().is_empty(), "DynamoDB was tried");
}
