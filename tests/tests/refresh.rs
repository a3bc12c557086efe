//! POST /v1/auth/refresh and /v1/auth/revoke against DynamoDB Local.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::StatusCode;
use latchkey_tests::{Options, TestApp, futures_join_all, post, request};

fn refresh_token(body: &serde_json::Value) -> String {
    body["refresh_token"].as_str().expect("refresh_token").to_owned()
}

fn with_grace(seconds: u32) -> Options {
    Options { env: vec![("LATCHKEY_REFRESH_GRACE_SECONDS", seconds.to_string())], ..Options::default() }
}

#[tokio::test]
async fn refresh_rotates_and_the_new_access_token_keeps_the_identity() {
    let app = TestApp::spawn().await;
    let login = app.login_ok().await;
    let first = refresh_token(&login);

    let response = app.post_refresh(&first).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = response.json();
    let second = refresh_token(&body);
    assert_ne!(first, second);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_expires_in"].as_u64().is_some_and(|s| s > 29 * 24 * 3600));

    let set = app.latchkey.issuer.keys().current().await.expect("keys");
    let verifier = app.latchkey.issuer.verifier();
    let before = verifier.verify(login["access_token"].as_str().expect("token"), &set.verifying).expect("valid");
    let after = verifier.verify(body["access_token"].as_str().expect("token"), &set.verifying).expect("valid");
    assert_eq!((before.sub, before.tid, before.scope, before.env), (after.sub, after.tid, after.scope, after.env));
    assert_ne!(before.jti, after.jti);

    // The successor works in turn.
    assert_eq!(app.post_refresh(&second).await.status, StatusCode::OK);
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let first = refresh_token(&app.login_ok().await);
    let second = refresh_token(&app.post_refresh(&first).await.json());

    let reuse = app.post_refresh(&first).await;
    reuse.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(reuse.header("www-authenticate").is_some_and(|h| h.starts_with(r#"Bearer error="invalid_token""#)));
    assert!(reuse.json()["error_description"].as_str().expect("text").contains("already used"));

    // The legitimate successor died with the family.
    let successor = app.post_refresh(&second).await;
    successor.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(successor.json()["error_description"].as_str().expect("text").contains("revoked"));

    // Another session of the same user is untouched.
    let other = refresh_token(&app.login_ok().await);
    assert_eq!(app.post_refresh(&other).await.status, StatusCode::OK);
}

#[tokio::test]
async fn within_the_grace_window_a_retry_gets_the_same_successor() {
    let app = TestApp::spawn_with(with_grace(10)).await;
    let first = refresh_token(&app.login_ok().await);
    let second = refresh_token(&app.post_refresh(&first).await.json());

    let retry = app.post_refresh(&first).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(refresh_token(&retry.json()), second, "the same successor, not a new lineage");

    // The lineage goes on from the successor...
    let third = refresh_token(&app.post_refresh(&second).await.json());
    // ...and a token two generations back is reuse, grace or not.
    app.post_refresh(&first).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.post_refresh(&third).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn after_the_grace_window_a_retry_is_reuse() {
    let app = TestApp::spawn_with(with_grace(1)).await;
    let first = refresh_token(&app.login_ok().await);
    let second = refresh_token(&app.post_refresh(&first).await.json());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    app.post_refresh(&first).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.post_refresh(&second).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn twenty_concurrent_refreshes_of_one_token_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let token = refresh_token(&app.login_ok().await);
    let responses = futures_join_all((0..20).map(|_| app.post_refresh(&token))).await;
    let ok: Vec<_> = responses.iter().filter(|r| r.status == StatusCode::OK).collect();
    assert_eq!(ok.len(), 1, "statuses: {:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    for loser in responses.iter().filter(|r| r.status != StatusCode::OK) {
        loser.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    // The losers presented a rotated token: that is reuse, so no lineage
    // survives. Two lineages never do.
    let winner = refresh_token(&ok[0].json());
    app.post_refresh(&winner).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn with_a_grace_window_concurrent_refreshes_share_one_lineage() {
    let app = TestApp::spawn_with(with_grace(30)).await;
    let token = refresh_token(&app.login_ok().await);
    let responses = futures_join_all((0..20).map(|_| app.post_refresh(&token))).await;
    let successors: HashSet<String> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            refresh_token(&r.json())
        })
        .collect();
    assert_eq!(successors.len(), 1, "exactly one lineage");
    let successor = successors.into_iter().next().expect("one");
    assert_eq!(app.post_refresh(&successor).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoke_kills_the_family_and_unknown_tokens_still_get_200() {
    let app = TestApp::spawn().await;
    let first = refresh_token(&app.login_ok().await);
    let second = refresh_token(&app.post_refresh(&first).await.json());

    let revoked = app.post_revoke(&first).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    app.post_refresh(&second).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");

    // Unknown, garbage and already-revoked tokens: 200, nothing learned.
    for token in [second.as_str(), "rt_unknown", "not-a-token", ""] {
        let response = app.post_revoke(token).await;
        assert_eq!(response.status, StatusCode::OK, "{token:?}: {}", response.body);
    }
    let forged = format!("rt_{}", "A".repeat(75));
    assert_eq!(app.post_revoke(&forged).await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoke_accepts_the_rfc_7009_form_encoding() {
    let app = TestApp::spawn().await;
    let token = refresh_token(&app.login_ok().await);
    let form = format!("token={token}&token_type_hint=refresh_token");
    let response = app
        .refresh_request(request(
            "/v1/auth/revoke",
            "POST",
            &[("content-type", "application/x-www-form-urlencoded")],
            &form,
            "203.0.113.10",
        ))
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    app.post_refresh(&token).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn malformed_refresh_and_revoke_requests_are_400s() {
    let app = TestApp::spawn().await;
    for (path, body) in [
        ("/v1/auth/refresh", "{}"),
        ("/v1/auth/refresh", r#"{"refresh_token": 5}"#),
        ("/v1/auth/refresh", "{"),
        ("/v1/auth/revoke", "{}"),
        ("/v1/auth/revoke", "nope"),
    ] {
        app.refresh_request(post(path, body)).await.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    app.refresh_request(request("/v1/auth/refresh", "POST", &[("content-type", "text/plain")], "{}", "203.0.113.10"))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    app.refresh_request(request("/v1/auth/refresh", "PUT", &[], "{}", "203.0.113.10"))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    app.refresh_request(post("/v1/auth/other", "{}")).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    let huge = format!(r#"{{"refresh_token":"{}"}}"#, "a".repeat(64 * 1024));
    app.refresh_request(post("/v1/auth/refresh", &huge))
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
}

#[tokio::test]
async fn forged_tokens_are_refused_without_touching_dynamodb() {
    let app = TestApp::spawn().await;
    let real = refresh_token(&app.login_ok().await);
    let mut forged = real.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    app.calls.take();
    for token in [String::from_utf8(forged).expect("ascii"), "rt_short".into(), "x".into()] {
        app.post_refresh(&token).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    assert!(app.calls.take().is_empty());
    // The real token was not harmed by the forgeries.
    assert_eq!(app.post_refresh(&real).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_refresh_is_exactly_one_dynamodb_call() {
    let app = TestApp::spawn().await;
    let token = refresh_token(&app.login_ok().await);
    app.calls.take();
    assert_eq!(app.post_refresh(&token).await.status, StatusCode::OK);
    assert_eq!(app.calls.take(), ["UpdateItem"]);
}

#[tokio::test]
async fn expired_families_are_refused_and_carry_their_ttl() {
    let app = TestApp::spawn_with(Options { refresh_ttl: Some(Duration::from_secs(1)), ..Options::default() }).await;
    let login = app.login_ok().await;
    assert_eq!(login["refresh_expires_in"], 1);
    let token = refresh_token(&login);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let response = app.post_refresh(&token).await;
    response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(response.json()["error_description"].as_str().expect("text").contains("expired"));

    let claim = app.latchkey.refresh_codec.open(&token.into()).expect("our token");
    let family = app.latchkey.stores.refresh_families.get(claim.family).await.expect("read").expect("still stored");
    assert!(family.expires_at <= latchkey::time::now_secs(), "expires_at is set for TTL cleanup");
}

#[tokio::test]
async fn a_token_of_the_other_environment_is_refused() {
    let test_app = TestApp::spawn().await;
    let token = refresh_token(&test_app.login_ok().await);
    let live_app =
        TestApp::spawn_with(Options { env: vec![("LATCHKEY_STAGE", "live".into())], ..Options::default() }).await;
    live_app.calls.take();
    live_app.post_refresh(&token).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(live_app.calls.take().is_empty());
}

#[tokio::test]
async fn dynamodb_unreachable_is_503_for_refresh_too() {
    let app = TestApp::spawn().await;
    let token = refresh_token(&app.login_ok().await);
    let down = TestApp::spawn_with(Options {
        endpoint: Some("http://127.0.0.1:9".into()),
        env: vec![("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", "1".into())],
        ..Options::default()
    })
    .await;
    let response = down.post_refresh(&token).await;
    response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(response.header("retry-after"), Some("1"));
    // Nothing was half-written: the token still works where DynamoDB is up.
    assert_eq!(app.post_refresh(&token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn with_no_grace_window_a_loser_whose_clock_read_came_first_is_still_reuse() {
    let app = TestApp::spawn().await;
    let first = refresh_token(&app.login_ok().await);
    assert_eq!(app.post_refresh(&first).await.status, StatusCode::OK);
    // Make the winner's rotation time later than the loser's clock read, as
    // happens when two requests race.
    let later = AttributeValue::N((latchkey::time::now_millis() + 10_000).to_string());
    set_family_attribute(&app, &first, "rotated_at_ms", later).await;
    let reuse = app.post_refresh(&first).await;
    reuse.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(reuse.json()["error_description"].as_str().expect("text").contains("already used"));
}

#[tokio::test]
async fn the_access_token_follows_the_stored_family_not_the_claims_the_token_carries() {
    let app = TestApp::spawn().await;
    let first = refresh_token(&app.login_ok().await);
    let claim = app.latchkey.refresh_codec.open(&first.clone().into()).expect("our token");
    assert_eq!(
        claim.claims.as_ref().map(|c| c.scope.as_str()),
        Some("keys:write profile"),
        "the token carries its claims"
    );
    // The stored family now says something else (as an admin narrowing the
    // session would): the speculatively signed token must not be used.
    set_family_attribute(&app, &first, "scope", AttributeValue::S("profile".into())).await;
    let body = app.post_refresh(&first).await.json();
    let set = app.latchkey.issuer.keys().current().await.expect("keys");
    let access = app.latchkey.issuer.verifier().verify(body["access_token"].as_str().expect("token"), &set.verifying);
    assert_eq!(access.expect("valid").scope, "profile");
    assert_eq!(body["scope"], "profile");
    let next = app.latchkey.refresh_codec.open(&refresh_token(&body).into()).expect("our token");
    assert_eq!(next.claims.map(|c| c.scope), Some("profile".to_owned()));
}

/// Overwrites one attribute of the family `token` belongs to, to set up
/// states no API call produces.
async fn set_family_attribute(app: &TestApp, token: &str, name: &str, value: AttributeValue) {
    let claim = app.latchkey.refresh_codec.open(&token.to_owned().into()).expect("our token");
    app.table
        .client()
        .update_item()
        .table_name(app.table.name())
        .key("pk", AttributeValue::S(format!("REFRESH#{}", claim.family.to_key_string())))
        .key("sk", AttributeValue::S("FAMILY".into()))
        .update_expression("SET #name = :value")
        .expression_attribute_names("#name", name)
        .expression_attribute_values(":value", value)
        .send()
        .await
        .expect("update");
}
