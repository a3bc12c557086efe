//! The keys function: API-key self-service and GET /v1/me, against DynamoDB
//! Local, with tokens from the real login.

use lambda_http::http::StatusCode;
use latchkey_tests::{CLIENT_IP, TENANT, TestApp, TestKey, bearer, get, request};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

async fn create(app: &TestApp, token: &str, body: &Value) -> latchkey_tests::TestResponse {
    let auth = bearer(token);
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
    app.keys_request(request("/v1/api-keys", "POST", &headers, &body.to_string(), CLIENT_IP)).await
}

async fn list(app: &TestApp, token: &str, query: &str) -> latchkey_tests::TestResponse {
    let auth = bearer(token);
    let mut req = get(&format!("/v1/api-keys{query}"), &[("authorization", auth.as_str())]);
    if let Some(query) = query.strip_prefix('?') {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).expect("query");
        let map: std::collections::HashMap<String, Vec<String>> =
            pairs.into_iter().fold(std::collections::HashMap::new(), |mut map, (k, v)| {
                map.entry(k).or_default().push(v);
                map
            });
        req = lambda_http::RequestExt::with_query_string_parameters(req, map);
    }
    app.keys_request(req).await
}

async fn delete(app: &TestApp, token: &str, id: &str) -> latchkey_tests::TestResponse {
    let auth = bearer(token);
    app.keys_request(request(
        &format!("/v1/api-keys/{id}"),
        "DELETE",
        &[("authorization", auth.as_str())],
        "",
        CLIENT_IP,
    ))
    .await
}

async fn me(app: &TestApp, headers: &[(&str, &str)]) -> latchkey_tests::TestResponse {
    app.keys_request(get("/v1/me", headers)).await
}

#[tokio::test]
async fn a_user_with_keys_write_creates_a_key_that_works_once_shown() {
    let app = TestApp::spawn().await;
    let token = app.user_token(TENANT, "ops@example.com", "keys:write orders:read").await;
    let created = create(
        &app,
        &token,
        &json!({"name": "billing worker", "scopes": ["orders:read"], "expires_in": 86400, "allowed_ips": ["203.0.113.0/24"]}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let body = created.json();
    let id = body["id"].as_str().expect("id");
    let key = body["key"].as_str().expect("key");
    assert!(key.starts_with(&format!("sk_test_{id}_")));
    assert_eq!(body["scopes"], json!(["orders:read"]));
    assert_eq!(body["environment"], "test");
    assert_eq!(body["allowed_ips"], json!(["203.0.113.0/24"]));
    assert!(body["expires_at"].as_str().is_some());
    assert_eq!(body["last_used_at"], Value::Null);

    let exchanged = app.post_token(&json!({"grant_type": "api_key", "api_key_id": id, "api_key_secret": key})).await;
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.body);

    let listed = list(&app, &token, "").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let keys = listed.json()["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id);
    assert!(keys[0].get("key").is_none());
    let secret = key.rsplit('_').next().expect("secret");
    assert!(!listed.body.contains(secret), "a listing never shows the secret");
    assert_eq!(keys[0]["prefix"], format!("sk_test_{id}_"));
    assert_eq!(keys[0]["last_four"], &secret[secret.len() - 4..]);
    assert!(keys[0]["last_used_at"].as_str().is_some(), "the exchange stamped it");
}

#[tokio::test]
async fn key_management_needs_a_user_token_with_the_right_scope() {
    let app = TestApp::spawn().await;
    let reader = app.user_token(TENANT, "reader@example.com", "keys:read").await;
    let nobody = app.user_token(TENANT, "nobody@example.com", "profile").await;
    let denied = create(&app, &reader, &json!({"name": "x"})).await;
    denied.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let challenge = denied.header("www-authenticate").expect("challenge");
    assert!(challenge.contains(r#"error="insufficient_scope""#) && challenge.contains(r#"scope="keys:write""#));
    assert_eq!(list(&app, &reader, "").await.status, StatusCode::OK, "keys:read may list");
    list(&app, &nobody, "").await.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");
    delete(&app, &reader, "aaaaaaaaaaaaaaaaaaaaaaaaaa").await.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");

    // A token an API key got, even one holding keys:write, manages nothing.
    let machine = app.add_api_key(TestKey { scopes: "keys:write", ..TestKey::default() }).await;
    let exchanged = app
        .post_token(&json!({"grant_type": "api_key", "api_key_id": machine.view.id, "api_key_secret": machine.key.expose_secret()}))
        .await;
    let machine_token = exchanged.json()["access_token"].as_str().expect("token").to_owned();
    create(&app, &machine_token, &json!({"name": "x"})).await.assert_error(StatusCode::FORBIDDEN, "insufficient_scope");

    // No credentials, a broken token, a non-Bearer scheme: 401 invalid_token.
    let anonymous = app.keys_request(get("/v1/api-keys", &[])).await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert_eq!(anonymous.header("www-authenticate"), Some(r#"Bearer realm="latchkey""#), "RFC 6750 §3.1");
    list(&app, "not.a.token", "").await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.keys_request(get("/v1/api-keys", &[("authorization", "Basic YTpi")]))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_key_never_gets_more_than_its_creator_holds_and_bad_input_is_a_400() {
    let app = TestApp::spawn().await;
    let token = app.user_token(TENANT, "ops@example.com", "keys:write orders:read").await;
    create(&app, &token, &json!({"name": "x", "scopes": "orders:read admin"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
    for body in [
        json!({"name": "x", "scope": "orders:read"}),
        json!({"name": ""}),
        json!({"name": "x", "environment": "live"}),
        json!({"name": "x", "environment": "prod"}),
        json!({"name": "x", "expires_in": 10}),
        json!({"name": "x", "allowed_ips": ["10.0.0.0/33"]}),
        json!({"name": "x", "allowed_ips": vec!["10.0.0.1"; 33]}),
        json!({"name": "x", "scopes": ["bad\"scope"]}),
        json!({"scopes": ["orders:read"]}),
    ] {
        create(&app, &token, &body).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let auth = bearer(&token);
    app.keys_request(request(
        "/v1/api-keys",
        "POST",
        &[("content-type", ""), ("authorization", auth.as_str())],
        "{}",
        CLIENT_IP,
    ))
    .await
    .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    app.keys_request(request("/v1/api-keys", "PUT", &[("authorization", auth.as_str())], "", CLIENT_IP))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn tenants_never_see_or_revoke_each_others_keys() {
    let app = TestApp::spawn().await;
    app.add_tenant("globex").await;
    let acme = app.user_token(TENANT, "ops@acme.test", "keys:write").await;
    let globex = app.user_token("globex", "ops@globex.test", "keys:write").await;
    let acme_key = create(&app, &acme, &json!({"name": "acme key"})).await.json();
    let globex_key = create(&app, &globex, &json!({"name": "globex key"})).await.json();

    let seen = list(&app, &globex, "").await.json();
    let ids: Vec<&str> = seen["keys"].as_array().expect("keys").iter().filter_map(|k| k["id"].as_str()).collect();
    assert_eq!(ids, [globex_key["id"].as_str().expect("id")]);

    let acme_id = acme_key["id"].as_str().expect("id");
    delete(&app, &globex, acme_id).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    delete(&app, &acme, "nosuchkeynosuchkeynosuchk2").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    delete(&app, &acme, "../../etc").await.assert_error(StatusCode::NOT_FOUND, "not_found");
    // Still alive after the other tenant's attempt.
    let exchange = json!({"grant_type": "api_key", "api_key_id": acme_id, "api_key_secret": acme_key["key"]});
    assert_eq!(app.post_token(&exchange).await.status, StatusCode::OK);

    // The owner revokes: effective for the very next exchange; twice is fine.
    let revoked = delete(&app, &acme, acme_id).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.json()["revoked_at"].as_str().is_some());
    app.post_token(&exchange).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(delete(&app, &acme, acme_id).await.json()["revoked_at"], revoked.json()["revoked_at"]);
    let listed = list(&app, &acme, "").await.json();
    assert_eq!(listed["keys"][0]["revoked_at"], revoked.json()["revoked_at"]);
}

#[tokio::test]
async fn listing_pages_with_a_cursor() {
    let app = TestApp::spawn().await;
    let token = app.user_token(TENANT, "ops@example.com", "keys:write").await;
    for i in 0..3 {
        assert_eq!(create(&app, &token, &json!({"name": format!("key {i}")})).await.status, StatusCode::CREATED);
    }
    let first = list(&app, &token, "?limit=2").await.json();
    assert_eq!(first["keys"].as_array().map(Vec::len), Some(2));
    let cursor = first["next_cursor"].as_str().expect("more pages");
    let second = list(&app, &token, &format!("?limit=2&cursor={cursor}")).await.json();
    assert_eq!(second["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next_cursor"], Value::Null);
    let mut all: Vec<&str> = first["keys"]
        .as_array()
        .into_iter()
        .chain(second["keys"].as_array())
        .flatten()
        .filter_map(|k| k["id"].as_str())
        .collect();
    all.dedup();
    assert_eq!(all.len(), 3);
    list(&app, &token, "?limit=0").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    list(&app, &token, "?limit=abc").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    list(&app, &token, "?cursor=..%2F").await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn me_describes_a_bearer_token_or_an_api_key() {
    let app = TestApp::spawn().await;
    let login = app.login_ok().await;
    let token = login["access_token"].as_str().expect("token");
    let auth = bearer(token);
    let response = me(&app, &[("authorization", auth.as_str())]).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let who = response.json();
    assert!(who["sub"].as_str().is_some_and(|s| s.starts_with("usr_")));
    assert_eq!(who["tid"], TENANT);
    assert_eq!(who["scope"], latchkey_tests::SCOPES);
    assert_eq!(who["env"], "test");
    assert_eq!(who["expires_at"], login["expires_at"]);
    assert_eq!(who["credential"], "access_token");

    let key = app.add_api_key(TestKey::default()).await;
    let key_text = key.key.expose_secret();
    let by_key = me(&app, &[("x-api-key", key_text), ("x-tenant-id", TENANT)]).await;
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.body);
    let who = by_key.json();
    assert_eq!(who["sub"], key.view.id.as_str());
    assert_eq!(who["client_id"], key.view.id.as_str());
    assert_eq!(who["scope"], "orders:read orders:write");
    assert_eq!(who["expires_at"], Value::Null);
    assert_eq!(who["credential"], "api_key");

    me(&app, &[("x-api-key", key_text), ("x-tenant-id", "globex")])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    me(&app, &[("x-api-key", key_text)]).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let forged = format!("{}{}", &key_text[..key_text.len() - 4], "aaaa");
    me(&app, &[("x-api-key", &forged), ("x-tenant-id", TENANT)])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    me(&app, &[("x-api-key", key_text), ("x-tenant-id", TENANT), ("authorization", auth.as_str())])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    me(&app, &[]).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let refresh = login["refresh_token"].as_str().expect("refresh token");
    me(&app, &[("authorization", &bearer(refresh))]).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.keys_request(request("/v1/me", "POST", &[], "", CLIENT_IP))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn verifying_a_bearer_token_makes_no_dynamodb_call() {
    let app = TestApp::spawn().await;
    let token = app.login_ok().await["access_token"].as_str().expect("token").to_owned();
    app.latchkey.issuer.keys().current().await.expect("keys loaded");
    app.calls.take();
    let auth = bearer(&token);
    assert_eq!(me(&app, &[("authorization", auth.as_str())]).await.status, StatusCode::OK);
    assert!(app.calls.take().is_empty());
    // A made-up kid reloads the key set at most once per 10 s, not per request.
    for _ in 0..5 {
        let header = latchkey::crypto::b64url(br#"{"alg":"RS256","typ":"at+jwt","kid":"made-up"}"#);
        let forged = format!("{header}.e30.c2ln");
        me(&app, &[("authorization", &bearer(&forged))]).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    assert!(app.calls.take().len() <= 1, "at most one reload");
}
