//! POST /v1/verify: a resource server asks about its caller's credential.
//! Valid and refused credentials, request errors, and the per-plan and
//! per-key rate limits, against DynamoDB Local through the keys function.

use lambda_http::http::StatusCode;
use latchkey::domain::{ApiKeyId, Plan, RateLimitOverride, TenantId};
use latchkey::rate_limit::{WINDOW_SECS, window};
use latchkey::store::RateSubject;
use latchkey::time::now_secs;
use latchkey_tests::{
    CLIENT_IP, Options, SCOPES, TENANT, TestApp, TestKey, TestResponse, bearer, futures_join_all, request,
    settled_window,
};
use serde_json::{Value, json};

type Headers<'a> = &'a [(&'a str, &'a str)];

async fn access_token(app: &TestApp) -> (Value, String) {
    let login = app.login_ok().await;
    let token = login["access_token"].as_str().expect("access_token").to_owned();
    (login, token)
}

/// POST /v1/verify with the key in `X-API-Key` + `X-Tenant-ID`, no body.
async fn verify_key(app: &TestApp, key: &str, tenant: &str) -> TestResponse {
    app.post_verify(&[("x-api-key", key), ("x-tenant-id", tenant)], "").await
}

fn header_number(response: &TestResponse, name: &str) -> u64 {
    response
        .header(name)
        .unwrap_or_else(|| panic!("{name} is missing: {:?}", response.headers))
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not a number ({e})"))
}

/// `(limit, remaining, reset)` from the X-RateLimit-* headers.
fn rate_headers(response: &TestResponse) -> (u64, u64, u64) {
    (
        header_number(response, "x-ratelimit-limit"),
        header_number(response, "x-ratelimit-remaining"),
        header_number(response, "x-ratelimit-reset"),
    )
}

fn assert_no_rate_headers(response: &TestResponse) {
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"] {
        assert!(response.header(name).is_none(), "{name} on an uncounted answer: {:?}", response.headers);
    }
}

/// A 200 `valid: true`; returns the body, whose `ratelimit` matches the
/// headers when counted.
fn assert_valid(response: &TestResponse) -> Value {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = response.json();
    assert_eq!(body["valid"], true, "{}", response.body);
    match &body["ratelimit"] {
        Value::Null => assert_no_rate_headers(response),
        limit => {
            let (header_limit, header_remaining, header_reset) = rate_headers(response);
            assert_eq!(limit["limit"], header_limit, "{}", response.body);
            assert_eq!(limit["remaining"], header_remaining, "{}", response.body);
            assert_eq!(limit["reset"], header_reset, "{}", response.body);
        }
    }
    body
}

/// A 200 `valid: false` with `code`, and nothing about the caller.
fn assert_refused(response: &TestResponse, code: &str) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = response.json();
    assert_eq!(body["valid"], false, "{}", response.body);
    assert_eq!(body["error"], code, "{}", response.body);
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "{}", response.body);
    assert_eq!(body.as_object().map(serde_json::Map::len), Some(3), "valid, error, error_description only");
    assert_no_rate_headers(response);
}

fn uncached() -> Options {
    Options { env: vec![("LATCHKEY_AUTH_CACHE_SECONDS", "0".into())], ..Options::default() }
}

#[tokio::test]
async fn a_valid_token_is_described_and_not_counted() {
    let app = TestApp::spawn().await;
    let (login, token) = access_token(&app).await;
    let auth = bearer(&token);
    let body = assert_valid(&app.post_verify(&[("authorization", auth.as_str())], "").await);
    assert!(body["sub"].as_str().is_some_and(|s| s.starts_with("usr_")), "{body}");
    assert_eq!(body["tid"], TENANT);
    assert_eq!(body["scope"], SCOPES);
    assert_eq!(body["env"], "test");
    assert_eq!(body["expires_at"], login["expires_at"]);
    assert_eq!(body["credential"], "access_token");
    assert_eq!(body["ratelimit"], Value::Null, "access tokens are not metered by default");
    let mut fields: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["credential", "env", "expires_at", "ratelimit", "scope", "sub", "tid", "valid"]);

    let in_body = assert_valid(&app.post_verify(&[], &json!({"token": token}).to_string()).await);
    assert_eq!(in_body["sub"], body["sub"], "the token in the body is the same caller");
}

#[tokio::test]
async fn a_valid_key_reports_its_rate_limit_in_the_body_and_the_headers() {
    let app = TestApp::spawn().await;
    let (id, key) = app.add_held_key(TestKey::default()).await;
    let (_, end) = settled_window(10).await;
    let by_headers = assert_valid(&verify_key(&app, &key, TENANT).await);
    assert_eq!(by_headers["sub"], id.as_str());
    assert_eq!(by_headers["client_id"], id.as_str());
    assert_eq!(by_headers["tid"], TENANT);
    assert_eq!(by_headers["scope"], "orders:read orders:write");
    assert_eq!(by_headers["env"], "test");
    assert_eq!(by_headers["expires_at"], Value::Null);
    assert_eq!(by_headers["credential"], "api_key");
    assert_eq!(by_headers["ratelimit"], json!({"limit": 1000, "remaining": 999, "reset": end}), "the pro plan");

    let by_body = assert_valid(&app.post_verify(&[], &json!({"api_key": key, "tenant_id": TENANT}).to_string()).await);
    assert_eq!(by_body["sub"], id.as_str());
    assert_eq!(by_body["ratelimit"], json!({"limit": 1000, "remaining": 998, "reset": end}));
}

#[tokio::test]
async fn a_required_scope_is_checked_and_a_refusal_is_not_counted() {
    let app = TestApp::spawn().await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let (_, token) = access_token(&app).await;
    let (_, end) = settled_window(10).await;
    let with_key = |scope: Value| json!({"api_key": key, "tenant_id": TENANT, "scope": scope}).to_string();

    let held = assert_valid(&app.post_verify(&[], &with_key(json!("orders:read"))).await);
    assert_eq!(held["ratelimit"]["remaining"], 999);
    assert_valid(&app.post_verify(&[], &with_key(json!(["orders:read", "orders:write"]))).await);
    assert_refused(&app.post_verify(&[], &with_key(json!("orders:read admin"))).await, "insufficient_scope");
    assert_refused(&app.post_verify(&[], &with_key(json!(["admin"]))).await, "insufficient_scope");
    let after = assert_valid(&verify_key(&app, &key, TENANT).await);
    assert_eq!(after["ratelimit"], json!({"limit": 1000, "remaining": 997, "reset": end}), "refusals cost nothing");

    let auth = bearer(&token);
    let needs = |scope: &str| json!({"scope": scope}).to_string();
    assert_valid(&app.post_verify(&[("authorization", auth.as_str())], &needs("profile")).await);
    assert_refused(
        &app.post_verify(&[("authorization", auth.as_str())], &needs("orders:read")).await,
        "insufficient_scope",
    );
    app.post_verify(&[("authorization", auth.as_str())], &json!({"scope": 7}).to_string())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn the_ip_field_is_what_the_allow_list_checks() {
    let app = TestApp::spawn().await;
    let (_, key) = app.add_held_key(TestKey { allowed_ips: vec!["198.51.100.0/24"], ..TestKey::default() }).await;
    let with_ip = |ip: &str| json!({"api_key": key, "tenant_id": TENANT, "ip": ip}).to_string();
    // Without `ip`, the address of the verify request itself (CLIENT_IP).
    assert_refused(&verify_key(&app, &key, TENANT).await, "ip_not_allowed");
    assert_valid(&app.post_verify(&[], &with_ip("198.51.100.7")).await);
    assert_valid(&app.post_verify(&[], &with_ip(" 198.51.100.200 ")).await);
    assert_refused(&app.post_verify(&[], &with_ip(CLIENT_IP)).await, "ip_not_allowed");
    assert_refused(&app.post_verify(&[], &with_ip("2001:db8::1")).await, "ip_not_allowed");
    // `ip` applies to a key in the headers too.
    let headers = [("x-api-key", key.as_str()), ("x-tenant-id", TENANT)];
    assert_valid(&app.post_verify(&headers, &json!({"ip": "198.51.100.7"}).to_string()).await);
    for malformed in ["not-an-ip", "198.51.100.0/24", "", "198.51.100.256"] {
        app.post_verify(&[], &with_ip(malformed)).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn refused_credentials_are_valid_false_with_their_error_code() {
    let app = TestApp::spawn_with(uncached()).await;
    app.add_tenant("other").await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let (revoked_id, revoked) = app.add_held_key(TestKey::default()).await;
    let tenant = TenantId::parse(TENANT).expect("valid");
    app.keys.revoke_in_tenant(&tenant, &revoked_id).await.expect("revoked");
    let (_, expired) = app.add_held_key(TestKey { valid_until: Some(now_secs() - 1), ..TestKey::default() }).await;
    let (login, _) = access_token(&app).await;
    let refresh = login["refresh_token"].as_str().expect("refresh_token");
    let forged = format!("{}{}", &key[..key.len() - 4], "aaaa");

    let cases: [(&str, Headers<'_>, String, &str); 11] = [
        ("garbage bearer", &[("authorization", "Bearer not-a-jwt")], String::new(), "invalid_token"),
        ("garbage token in the body", &[], json!({"token": "not-a-jwt"}).to_string(), "invalid_token"),
        ("a refresh token", &[], json!({"token": refresh}).to_string(), "invalid_token"),
        ("basic scheme", &[("authorization", "Basic dXNlcjpwYXNz")], String::new(), "invalid_token"),
        ("no credentials at all", &[], String::new(), "invalid_token"),
        ("no credentials, empty object", &[], "{}".into(), "invalid_token"),
        ("another tenant's id", &[], json!({"api_key": key, "tenant_id": "other"}).to_string(), "invalid_credentials"),
        ("an unknown tenant", &[], json!({"api_key": key, "tenant_id": "nobody"}).to_string(), "invalid_credentials"),
        ("a wrong secret", &[], json!({"api_key": forged, "tenant_id": TENANT}).to_string(), "invalid_credentials"),
        ("a revoked key", &[], json!({"api_key": revoked, "tenant_id": TENANT}).to_string(), "invalid_credentials"),
        ("an expired key", &[], json!({"api_key": expired, "tenant_id": TENANT}).to_string(), "invalid_credentials"),
    ];
    for (name, headers, body, code) in &cases {
        let response = app.post_verify(headers, body).await;
        assert_eq!(response.status, StatusCode::OK, "{name}: {}", response.body);
        assert_refused(&response, code);
    }
    assert_valid(&verify_key(&app, &key, TENANT).await);
}

#[tokio::test]
async fn ambiguous_or_malformed_requests_are_400s() {
    let app = TestApp::spawn().await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let (_, token) = access_token(&app).await;
    let auth = bearer(&token);
    let key_headers = [("x-api-key", key.as_str()), ("x-tenant-id", TENANT)];
    let bad_request = [
        (
            "body and header credentials",
            vec![("authorization", auth.as_str())],
            json!({"api_key": key, "tenant_id": TENANT}).to_string(),
        ),
        ("body token and header key", key_headers.to_vec(), json!({"token": token}).to_string()),
        (
            "token and api_key in the body",
            vec![],
            json!({"token": token, "api_key": key, "tenant_id": TENANT}).to_string(),
        ),
        ("api_key without tenant_id", vec![], json!({"api_key": key}).to_string()),
        ("tenant_id with a token", vec![], json!({"token": token, "tenant_id": TENANT}).to_string()),
        ("tenant_id with header credentials", key_headers.to_vec(), json!({"tenant_id": TENANT}).to_string()),
        (
            "bearer and key headers",
            vec![("authorization", auth.as_str()), ("x-api-key", key.as_str()), ("x-tenant-id", TENANT)],
            String::new(),
        ),
        ("X-API-Key without X-Tenant-ID", vec![("x-api-key", key.as_str())], String::new()),
        ("malformed JSON", vec![], r#"{"token": "#.into()),
        ("not an object", vec![], "[1, 2]".into()),
        ("an unknown field", vec![], json!({"token": token, "audience": "x"}).to_string()),
        ("a wrong type", vec![], json!({"token": 42}).to_string()),
    ];
    for (name, headers, body) in &bad_request {
        let response = app.post_verify(headers, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{name}: {}", response.body);
        response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    app.keys_request(request("/v1/verify", "GET", &[("authorization", auth.as_str())], "", CLIENT_IP))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let plain = [("content-type", "text/plain"), ("authorization", auth.as_str())];
    app.keys_request(request("/v1/verify", "POST", &plain, "token", CLIENT_IP))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

/// What one run of [`exhaust_the_free_plan`] saw.
struct Exhausted {
    window: (u64, u64),
    allowed: Vec<TestResponse>,
    refused: TestResponse,
    /// `now_secs()` just before and after the refused request.
    refused_between: (u64, u64),
}

/// 101 requests of a new key of a new free tenant; `None` if the UTC hour
/// turned during the run, splitting the requests over two windows.
async fn exhaust_the_free_plan(app: &TestApp, tenant: &'static str) -> Option<Exhausted> {
    app.add_tenant(tenant).await;
    let (_, key) = app.add_held_key(TestKey { tenant, ..TestKey::default() }).await;
    let opened = window(now_secs());
    let mut allowed = Vec::with_capacity(100);
    for _ in 0..100 {
        allowed.push(verify_key(app, &key, tenant).await);
    }
    let before = now_secs();
    let refused = verify_key(app, &key, tenant).await;
    let after = now_secs();
    (window(after) == opened).then_some(Exhausted {
        window: opened,
        allowed,
        refused,
        refused_between: (before, after),
    })
}

#[tokio::test]
async fn a_free_tenant_gets_100_requests_an_hour_then_429_until_the_hour_turns() {
    let app = TestApp::spawn().await;
    let run = match exhaust_the_free_plan(&app, "free-tenant").await {
        Some(run) => run,
        // The hour turned mid-run; a fresh tenant in the new hour has over
        // 59 minutes for its 101 requests.
        None => exhaust_the_free_plan(&app, "free-tenant-retry").await.expect("one hour holds the second run"),
    };
    let (start, end) = run.window;
    assert_eq!(end, start + WINDOW_SECS);
    assert_eq!(end % 3600, 0, "windows end on the UTC hour");
    for (i, response) in run.allowed.iter().enumerate() {
        let body = assert_valid(response);
        let remaining = 99 - u64::try_from(i).expect("small");
        assert_eq!(body["ratelimit"], json!({"limit": 100, "remaining": remaining, "reset": end}), "request {i}");
        assert_eq!(rate_headers(response), (100, remaining, end));
    }

    let refused = &run.refused;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(rate_headers(refused), (100, 0, end));
    let retry_after = header_number(refused, "retry-after");
    let (before, after) = run.refused_between;
    assert!((1..=WINDOW_SECS).contains(&retry_after), "Retry-After {retry_after}");
    assert!(
        end.saturating_sub(after).max(1) <= retry_after && retry_after <= end.saturating_sub(before).max(1),
        "Retry-After {retry_after} is the wait until X-RateLimit-Reset {end} (asked between {before} and {after})"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_at_the_edge_let_exactly_the_limit_through() {
    let app = TestApp::spawn().await;
    let (id, key) =
        app.add_held_key(TestKey { rate_limit: Some(RateLimitOverride::PerHour(20)), ..TestKey::default() }).await;
    let (start, end) = settled_window(60).await;
    let headers = [("x-api-key", key.as_str()), ("x-tenant-id", TENANT)];
    let responses = futures_join_all((0..50).map(|_| app.post_verify(&headers, ""))).await;

    let mut remaining = Vec::new();
    let mut limited = 0;
    for response in &responses {
        if response.status == StatusCode::OK {
            let body = assert_valid(response);
            assert_eq!(body["ratelimit"]["limit"], 20);
            remaining.push(body["ratelimit"]["remaining"].as_u64().expect("remaining"));
        } else {
            response.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            assert_eq!(rate_headers(response), (20, 0, end));
            limited += 1;
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<u64>>(), "exactly 20 admitted, each with its own count");
    assert_eq!(limited, 30);
    let subject = RateSubject::ApiKey(ApiKeyId::parse(&id).expect("valid id"));
    assert_eq!(app.latchkey.stores.rate_limits.current(&subject, start).await.expect("read"), 20);
}

#[tokio::test]
async fn a_key_override_has_its_own_counter_and_can_be_removed() {
    let app = TestApp::spawn_with(uncached()).await;
    let (own_id, own) =
        app.add_held_key(TestKey { rate_limit: Some(RateLimitOverride::PerHour(5)), ..TestKey::default() }).await;
    let (plain_id, plain) = app.add_held_key(TestKey::default()).await;
    let (start, end) = settled_window(15).await;
    let limit = |limit: u32, remaining: u32| json!({"limit": limit, "remaining": remaining, "reset": end});

    assert_eq!(assert_valid(&verify_key(&app, &own, TENANT).await)["ratelimit"], limit(5, 4));
    assert_eq!(assert_valid(&verify_key(&app, &own, TENANT).await)["ratelimit"], limit(5, 3));
    assert_eq!(assert_valid(&verify_key(&app, &plain, TENANT).await)["ratelimit"], limit(1000, 999));
    let counters = &app.latchkey.stores.rate_limits;
    let tenant_id = TenantId::parse(TENANT).expect("valid");
    let tenant = RateSubject::Tenant(tenant_id.clone());
    let own_counter = RateSubject::ApiKey(ApiKeyId::parse(&own_id).expect("valid id"));
    assert_eq!(counters.current(&own_counter, start).await.expect("read"), 2);
    assert_eq!(counters.current(&tenant, start).await.expect("read"), 1, "the override is not on the tenant's counter");

    // Back to the plan: the tenant's counter from now on.
    app.keys.set_rate_limit_in_tenant(&tenant_id, &own_id, None).await.expect("set");
    assert_eq!(assert_valid(&verify_key(&app, &own, TENANT).await)["ratelimit"], limit(1000, 998));
    assert_eq!(counters.current(&own_counter, start).await.expect("read"), 2);

    // An override set later applies to the next decision, and a tight one bites.
    app.keys.set_rate_limit_in_tenant(&tenant_id, &plain_id, Some(RateLimitOverride::PerHour(1))).await.expect("set");
    assert_eq!(assert_valid(&verify_key(&app, &plain, TENANT).await)["ratelimit"], limit(1, 0));
    verify_key(&app, &plain, TENANT).await.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(counters.current(&tenant, start).await.expect("read"), 2);

    // An unlimited key is never counted.
    app.keys.set_rate_limit_in_tenant(&tenant_id, &plain_id, Some(RateLimitOverride::Unlimited)).await.expect("set");
    assert_eq!(assert_valid(&verify_key(&app, &plain, TENANT).await)["ratelimit"], Value::Null);
}

#[tokio::test]
async fn enterprise_and_metered_tokens() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_RATE_LIMIT_ACCESS_TOKENS", "true".into())],
        ..Options::default()
    })
    .await;
    let (_, token) = access_token(&app).await;
    let auth = bearer(&token);
    let (_, end) = settled_window(10).await;
    let metered = assert_valid(&app.post_verify(&[("authorization", auth.as_str())], "").await);
    assert_eq!(metered["ratelimit"], json!({"limit": 1000, "remaining": 999, "reset": end}));

    app.add_tenant("big").await;
    app.set_plan("big", Plan::Enterprise).await;
    let (_, key) = app.add_held_key(TestKey { tenant: "big", ..TestKey::default() }).await;
    let unlimited = assert_valid(&verify_key(&app, &key, "big").await);
    assert_eq!(unlimited["ratelimit"], Value::Null, "enterprise is unlimited");
    assert!(!app.calls.take().contains(&"UpdateItem".to_owned()), "nothing counted");
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_with_retry_after() {
    let app = TestApp::spawn().await;
    let (_, key) = app.add_held_key(TestKey::default()).await;
    let (_, token) = access_token(&app).await;
    let down = TestApp::spawn_with(Options {
        endpoint: Some("http://127.0.0.1:9".into()),
        env: vec![("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", "1".into())],
        ..Options::default()
    })
    .await;
    // Same sealing key, so the secret checks out and the read is attempted.
    for response in [
        verify_key(&down, &key, TENANT).await,
        down.post_verify(&[], &json!({"api_key": key, "tenant_id": TENANT}).to_string()).await,
        down.post_verify(&[("authorization", &bearer(&token))], "").await,
    ] {
        response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(response.header("retry-after"), Some("1"));
    }
}
