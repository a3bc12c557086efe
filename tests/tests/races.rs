//! Races, against DynamoDB Local through the real handlers: many requests
//! released together on one deployment, each test asserting exact counts of
//! every answer and then reading the stored items to show the state they
//! left behind.
//!
//! - 64 concurrent refreshes of one token: exactly one rotation; without a
//!   grace window the 63 losers are reuse and the family ends revoked, with one
//!   every caller gets the same successor.
//! - revoke racing refresh, in both orders: every family ends revoked and no
//!   successor a racing refresh issued still works.
//! - an API-key revocation racing 20 exchanges, with 10 more sent once it
//!   answered: each racing exchange is 200 or 401 "revoked", every later one
//!   401, and exactly the successful exchanges left sessions, whose access
//!   tokens stay valid until `exp` and whose refresh tokens are refused.
//! - 60 requests at a limit of 25, the authorizer and `/v1/verify` mixed:
//!   exactly 25 admitted, each with its own `remaining` (0..24), counter 25.
//! - parallel Standard Webhooks deliveries (40 of one id; 40 ids twice each):
//!   one stored event per id, exactly one "new" answer per id, every other a
//!   duplicate.
//!
//! The SDK timeouts are raised here so that no attempt times out and gets
//! re-sent; what a re-sent write does is faults.rs's subject.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use authorizer::{AuthorizerContext, AuthorizerResponse};
use lambda_http::http::StatusCode;
use latchkey::domain::{ApiKeyId, RateLimitOverride};
use latchkey::store::RateSubject;
use latchkey::webhook::{Scheme, WebhookSecret};
use latchkey_tests::{
    CLIENT_IP, Options, TENANT, TestApp, TestKey, TestResponse, bearer, futures_join_all, number_attribute, request,
    settled_window, standard_webhook_headers, string_attribute,
};
use serde_json::json;

const REUSED: &str = "the refresh token was already used; the session has been revoked";
const REVOKED: &str = "the refresh token has been revoked";
const KEY_REVOKED: &str = "the API key has been revoked";
const KEY_GONE: &str = "the API key this session came from has been revoked or has expired";

/// A deployment for a race: `extra` settings, and SDK timeouts long enough
/// that no DynamoDB call times out under the load of 64 requests at once on
/// a busy machine. A timed-out attempt is re-sent by the SDK, which is a
/// fault of its own (faults.rs); here only the requests' own order decides.
async fn race_app(extra: &[(&'static str, &str)]) -> TestApp {
    let mut env = vec![
        ("LATCHKEY_DYNAMODB_TIMEOUT_MS", "60000".to_owned()),
        ("LATCHKEY_DYNAMODB_ATTEMPT_TIMEOUT_MS", "30000".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    TestApp::spawn_with(Options { env, ..Options::default() }).await
}

fn refresh_token(response: &TestResponse) -> String {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.json()["refresh_token"].as_str().expect("refresh_token").to_owned()
}

fn description(response: &TestResponse) -> String {
    response.json()["error_description"].as_str().expect("error_description").to_owned()
}

/// A 401 `invalid_token` with the RFC 6750 challenge and `text`.
fn assert_refused_token(response: &TestResponse, text: &str) {
    response.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(
        response.header("www-authenticate").is_some_and(|h| h.starts_with(r#"Bearer error="invalid_token""#)),
        "{:?}",
        response.headers
    );
    assert_eq!(description(response), text);
}

/// Logs the seeded user in `count` times, a few logins at a time (each is
/// an argon2 hash), and returns the refresh tokens.
async fn sessions(app: &TestApp, count: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    while tokens.len() < count {
        let batch = (count - tokens.len()).min(4);
        let logins = futures_join_all((0..batch).map(|_| app.login_ok())).await;
        tokens.extend(logins.iter().map(|body| body["refresh_token"].as_str().expect("refresh_token").to_owned()));
    }
    tokens
}

#[tokio::test]
async fn sixty_four_concurrent_refreshes_without_grace_one_rotates_and_the_losers_revoke_the_family() {
    let app = race_app(&[]).await;
    let token = sessions(&app, 1).await.remove(0);

    let responses = futures_join_all((0..64).map(|_| app.post_refresh(&token))).await;

    let winners: Vec<&TestResponse> = responses.iter().filter(|r| r.status == StatusCode::OK).collect();
    assert_eq!(winners.len(), 1, "statuses: {:?}", responses.iter().map(|r| r.status).collect::<Vec<_>>());
    // The conditional UpdateItem lets exactly one caller move generation 0 to
    // 1. Every loser then holds a rotated token, which with no grace window is
    // what reuse looks like: the first loser to see the family unrevoked
    // revokes it ("already used"), the ones whose write came after that see
    // "revoked". Nothing tells a concurrent twin from a thief, so the code
    // (and the README's "Refresh rotation") chose the safe answer: no lineage
    // survives, and two never do. Clients that refresh concurrently set
    // LATCHKEY_REFRESH_GRACE_SECONDS (next test).
    let mut by_text: BTreeMap<String, usize> = BTreeMap::new();
    for loser in responses.iter().filter(|r| r.status != StatusCode::OK) {
        loser.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        *by_text.entry(description(loser)).or_default() += 1;
    }
    let reused = by_text.get(REUSED).copied().unwrap_or_default();
    let revoked = by_text.get(REVOKED).copied().unwrap_or_default();
    assert_eq!(reused + revoked, 63, "only these two answers: {by_text:?}");
    assert!(reused >= 1, "some loser saw the rotated, unrevoked family: {by_text:?}");

    let family = app.stored_family(&token).await.expect("the family is stored");
    assert_eq!(number_attribute(&family, "generation"), Some(1), "exactly one rotation");
    assert!(number_attribute(&family, "revoked_at").is_some(), "{family:?}");
    assert_eq!(string_attribute(&family, "revoke_reason"), "reuse_detected");

    // Zero live lineages: the winner's successor died with the family.
    let successor = refresh_token(winners[0]);
    assert_refused_token(&app.post_refresh(&successor).await, REVOKED);
    assert_refused_token(&app.post_refresh(&token).await, REVOKED);
    let after = app.stored_family(&token).await.expect("stored");
    assert_eq!(number_attribute(&after, "generation"), Some(1), "no refused refresh rotated");
}

#[tokio::test]
async fn sixty_four_concurrent_refreshes_within_a_grace_window_all_get_the_one_successor() {
    let app = race_app(&[("LATCHKEY_REFRESH_GRACE_SECONDS", "30")]).await;
    let token = sessions(&app, 1).await.remove(0);

    let responses = futures_join_all((0..64).map(|_| app.post_refresh(&token))).await;

    // One rotation; the 63 others fail its condition, find the presented
    // token one generation back within the grace window, and get the same
    // successor with an access token of their own.
    let successors: HashSet<String> = responses.iter().map(refresh_token).collect();
    assert_eq!(successors.len(), 1, "exactly one lineage");
    let access_tokens: HashSet<String> =
        responses.iter().map(|r| r.json()["access_token"].as_str().expect("access_token").to_owned()).collect();
    assert_eq!(access_tokens.len(), 64, "each caller got its own access token");
    let family = app.stored_family(&token).await.expect("stored");
    assert_eq!(number_attribute(&family, "generation"), Some(1), "exactly one rotation");
    assert_eq!(family.get("revoked_at"), None);

    // The successor works once more and the lineage goes on from it...
    let successor = successors.into_iter().next().expect("one");
    let next = refresh_token(&app.post_refresh(&successor).await);
    assert_eq!(number_attribute(&app.stored_family(&token).await.expect("stored"), "generation"), Some(2));
    // ...while the first token, now two generations back, is reuse whatever
    // the grace window: the family is revoked and `next` dies with it.
    assert_refused_token(&app.post_refresh(&token).await, REUSED);
    assert_refused_token(&app.post_refresh(&next).await, REVOKED);
    let family = app.stored_family(&token).await.expect("stored");
    assert_eq!(string_attribute(&family, "revoke_reason"), "reuse_detected");
}

#[tokio::test]
async fn revoke_racing_refresh_always_ends_revoked_with_no_live_successor() {
    const FAMILIES: usize = 40;
    let app = race_app(&[]).await;
    let tokens = sessions(&app, FAMILIES).await;

    // Per family, a revoke and a refresh of the same token, released together
    // with all the other families' pairs; even families send the revoke first,
    // odd ones the refresh.
    let pairs = futures_join_all(tokens.iter().enumerate().map(|(i, token)| {
        let app = &app;
        async move {
            if i % 2 == 0 {
                let (revoke, refresh) = tokio::join!(app.post_revoke(token), app.post_refresh(token));
                (revoke, refresh)
            } else {
                let (refresh, revoke) = tokio::join!(app.post_refresh(token), app.post_revoke(token));
                (revoke, refresh)
            }
        }
    }))
    .await;

    let mut refreshed_first = 0;
    for (token, (revoke, refresh)) in tokens.iter().zip(&pairs) {
        assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.body);
        assert_eq!(revoke.json(), json!({}));
        let family = app.stored_family(token).await.expect("stored");
        // Whatever the order, the revocation applied: nothing else revokes here.
        assert!(number_attribute(&family, "revoked_at").is_some(), "{family:?}");
        assert_eq!(string_attribute(&family, "revoke_reason"), "revoked_by_client");
        if refresh.status == StatusCode::OK {
            // The rotation committed before the revocation: its successor
            // exists, and is dead.
            refreshed_first += 1;
            assert_eq!(number_attribute(&family, "generation"), Some(1));
            assert_refused_token(&app.post_refresh(&refresh_token(refresh)).await, REVOKED);
        } else {
            assert_refused_token(refresh, REVOKED);
            assert_eq!(number_attribute(&family, "generation"), Some(0), "a refused refresh wrote nothing");
        }
        assert_refused_token(&app.post_refresh(token).await, REVOKED);
    }
    eprintln!("revoke vs refresh: {refreshed_first} of {FAMILIES} refreshes committed before the revocation");
}

/// The gap between the starts of two consecutive racing exchanges in
/// [`api_key_revocation_racing_thirty_exchanges`].
const EXCHANGE_SPACING: Duration = Duration::from_millis(3);

#[tokio::test]
async fn api_key_revocation_racing_thirty_exchanges() {
    // 20 exchanges start 3 ms apart with the revocation in their midst; 10
    // more wait for its answer and then go at once.
    const RACING: u32 = 20;
    const AFTER: usize = 10;
    let app = race_app(&[]).await;
    let (id, key) = app.add_held_key(TestKey::default()).await;
    let user_token = app.login_ok().await["access_token"].as_str().expect("access_token").to_owned();
    let grant = json!({"grant_type": "api_key", "api_key_id": id, "api_key_secret": key});
    let delete_path = format!("/v1/api-keys/{id}");
    let authorization = bearer(&user_token);

    let (answered, revocation_answered) = tokio::sync::watch::channel(None);
    let revoke = async {
        tokio::time::sleep(EXCHANGE_SPACING * (RACING / 2)).await;
        let response = app
            .keys_request(request(&delete_path, "DELETE", &[("authorization", &authorization)], "", CLIENT_IP))
            .await;
        answered.send_replace(Some(Instant::now()));
        response
    };
    let racing = futures_join_all((0..RACING).map(|i| {
        let (app, grant) = (&app, &grant);
        async move {
            tokio::time::sleep(EXCHANGE_SPACING * i).await;
            (Instant::now(), app.post_token(grant).await)
        }
    }));
    let after = futures_join_all((0..AFTER).map(|_| {
        let (app, grant, mut answered) = (&app, &grant, revocation_answered.clone());
        async move {
            answered.wait_for(Option::is_some).await.expect("the revocation answers");
            app.post_token(grant).await
        }
    }));
    let (revoked, racing, after) = tokio::join!(revoke, racing, after);
    let revoked_at = revocation_answered.borrow().expect("answered");

    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.json()["id"], id);
    // Racing: each either read the key before the revocation committed (200)
    // or after (401 "revoked"); nothing else, and none that started after
    // the revocation answered got through.
    let mut issued = Vec::new();
    for (started, response) in &racing {
        if response.status == StatusCode::OK {
            assert!(*started < revoked_at, "an exchange that started after the revocation answered succeeded");
            issued.push(response.json());
        } else {
            response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
            assert_eq!(description(response), KEY_REVOKED);
        }
    }
    // After its answer: every one refused, with that reason.
    for response in &after {
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(description(response), KEY_REVOKED);
    }
    eprintln!(
        "API-key revocation vs exchange: {} of {RACING} racing exchanges succeeded, {AFTER} of {AFTER} after it \
         refused",
        issued.len()
    );

    // From now on, not one more succeeds.
    for response in futures_join_all((0..5).map(|_| app.post_token(&grant))).await {
        response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert_eq!(description(&response), KEY_REVOKED);
    }

    // Each success left exactly one session, and nothing else did.
    let families: Vec<_> = app
        .stored_items("REFRESH#")
        .await
        .into_iter()
        .filter(|item| string_attribute(item, "sub") == id.as_str())
        .collect();
    assert_eq!(families.len(), issued.len(), "one family per successful exchange");

    // What the README promises: access tokens already issued stay valid until
    // `exp` (stateless), while the sessions end at their next refresh.
    for body in &issued {
        let access = body["access_token"].as_str().expect("access_token");
        let me = app.keys_request(latchkey_tests::get("/v1/me", &[("authorization", &bearer(access))])).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        assert_eq!(me.json()["sub"], id.as_str());
        let verdict = app.post_verify(&[("authorization", &bearer(access))], "").await;
        assert_eq!(verdict.status, StatusCode::OK, "{}", verdict.body);
        assert_eq!(verdict.json()["valid"], true, "{}", verdict.body);
        let refresh = body["refresh_token"].as_str().expect("refresh_token");
        assert_refused_token(&app.post_refresh(refresh).await, KEY_GONE);
    }
    let ended = app
        .stored_items("REFRESH#")
        .await
        .into_iter()
        .filter(|item| string_attribute(item, "sub") == id.as_str() && item.contains_key("revoked_at"))
        .map(|item| string_attribute(&item, "revoke_reason").to_owned())
        .collect::<Vec<_>>();
    assert_eq!(ended, vec!["api_key_revoked".to_owned(); issued.len()], "every session ended at its refresh");

    // Both of the key's items carry the one revocation.
    let main = app.stored_items(&format!("APIKEY#{id}")).await;
    let listing: Vec<_> = app
        .stored_items(&format!("TENANT#{TENANT}"))
        .await
        .into_iter()
        .filter(|item| string_attribute(item, "sk") == format!("APIKEY#{id}"))
        .collect();
    assert_eq!((main.len(), listing.len()), (1, 1));
    let revoked_at = number_attribute(&main[0], "revoked_at").expect("revoked");
    assert_eq!(number_attribute(&listing[0], "revoked_at"), Some(revoked_at));
}

/// One answer of the mixed rate-limit race.
enum Answer {
    Authorizer(AuthorizerResponse),
    Verify(TestResponse),
}

#[tokio::test]
async fn sixty_concurrent_authorizer_and_verify_requests_at_a_limit_of_25_admit_exactly_25() {
    const LIMIT: u32 = 25;
    let app = race_app(&[]).await;
    let (id, key) =
        app.add_held_key(TestKey { rate_limit: Some(RateLimitOverride::PerHour(LIMIT)), ..TestKey::default() }).await;
    let (start, end) = settled_window(60).await;
    let headers = [("x-api-key", key.as_str()), ("x-tenant-id", TENANT)];

    // Alternating: the Lambda authorizer and POST /v1/verify count on the
    // same counter (the key's own), released together.
    let answers = futures_join_all((0..60).map(|i| {
        let (app, headers) = (&app, &headers);
        async move {
            if i % 2 == 0 {
                Answer::Authorizer(app.authorize("GET /orders", headers).await)
            } else {
                Answer::Verify(app.post_verify(headers, "").await)
            }
        }
    }))
    .await;

    let mut remaining = Vec::new();
    let (mut denied, mut limited) = (0, 0);
    for answer in &answers {
        match answer {
            Answer::Authorizer(response) if response.is_authorized => {
                let context = &response.context;
                assert_eq!((context.ratelimit_limit, context.ratelimit_reset), (Some(LIMIT), Some(end)));
                assert_eq!((context.sub.as_deref(), context.credential), (Some(id.as_str()), Some("api_key")));
                remaining.push(u64::from(context.ratelimit_remaining.expect("remaining")));
            }
            Answer::Authorizer(response) => {
                // A Lambda authorizer can only deny; it says nothing more.
                assert_eq!(
                    response,
                    &AuthorizerResponse { is_authorized: false, context: AuthorizerContext::default() }
                );
                denied += 1;
            }
            Answer::Verify(response) if response.status == StatusCode::OK => {
                let body = response.json();
                assert_eq!(body["valid"], true, "{}", response.body);
                let remaining_now = body["ratelimit"]["remaining"].as_u64().expect("remaining");
                assert_eq!(body["ratelimit"], json!({"limit": LIMIT, "remaining": remaining_now, "reset": end}));
                assert_eq!(rate_headers(response), (u64::from(LIMIT), remaining_now, end));
                remaining.push(remaining_now);
            }
            Answer::Verify(response) => {
                response.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
                assert_eq!(rate_headers(response), (u64::from(LIMIT), 0, end));
                let retry_after: u64 = response.header("retry-after").expect("Retry-After").parse().expect("seconds");
                assert!((1..=end - start).contains(&retry_after), "Retry-After {retry_after}");
                limited += 1;
            }
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..u64::from(LIMIT)).collect::<Vec<_>>(), "exactly 25 admitted, each its own count");
    assert_eq!(denied + limited, 35);
    let subject = RateSubject::ApiKey(ApiKeyId::parse(&id).expect("valid id"));
    assert_eq!(app.latchkey.stores.rate_limits.current(&subject, start).await.expect("read"), u64::from(LIMIT));
    // Nothing counted on the tenant's own counter: the key has its own.
    let tenant = RateSubject::Tenant(latchkey::domain::TenantId::parse(TENANT).expect("valid"));
    assert_eq!(app.latchkey.stores.rate_limits.current(&tenant, start).await.expect("read"), 0);
}

/// `(limit, remaining, reset)` from the X-RateLimit-* headers.
fn rate_headers(response: &TestResponse) -> (u64, u64, u64) {
    let number = |name: &str| -> u64 {
        response.header(name).unwrap_or_else(|| panic!("{name} missing")).parse().expect("a number")
    };
    (number("x-ratelimit-limit"), number("x-ratelimit-remaining"), number("x-ratelimit-reset"))
}

const BODY: &str = r#"{"type":"invoice.paid","data":{"id":"in_1","amount":4200}}"#;

/// Whether `response` is the 200 acceptance of `id`, and if so whether it
/// says duplicate; panics on any other answer.
fn accepted_as_duplicate(response: &TestResponse, id: &str) -> bool {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = response.json();
    if body.get("duplicate").is_some() {
        assert_eq!(body, json!({"received": true, "id": id, "duplicate": true}));
        true
    } else {
        assert_eq!(body, json!({"received": true, "id": id}));
        false
    }
}

#[tokio::test]
async fn forty_parallel_deliveries_of_one_webhook_id_store_one_event() {
    let app = race_app(&[]).await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let headers = standard_webhook_headers("msg_race", BODY, &secret);

    let responses = futures_join_all((0..40).map(|_| app.deliver_webhook("billing", &headers, BODY))).await;

    let duplicates = responses.iter().filter(|r| accepted_as_duplicate(r, "msg_race")).count();
    assert_eq!(duplicates, 39, "exactly one delivery is new");
    let stored = app.stored_webhook_events().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(string_attribute(&stored[0], "event_id"), "msg_race");
    assert_eq!(string_attribute(&stored[0], "body"), BODY);
}

#[tokio::test]
async fn forty_webhook_ids_each_delivered_twice_in_parallel_store_forty_events() {
    let app = race_app(&[]).await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let deliveries: Vec<(String, Vec<(String, String)>)> = (0..40)
        .map(|i| {
            let id = format!("msg_{i:02}");
            let headers = standard_webhook_headers(&id, BODY, &secret);
            (id, headers)
        })
        .collect();

    // Every id twice (a sender's retry racing the first delivery), all 80
    // released together.
    let responses = futures_join_all(deliveries.iter().chain(&deliveries).map(|(id, headers)| {
        let app = &app;
        async move { (id, app.deliver_webhook("billing", headers, BODY).await) }
    }))
    .await;

    let mut new_per_id: BTreeMap<&str, u32> = BTreeMap::new();
    for (id, response) in &responses {
        let new = u32::from(!accepted_as_duplicate(response, id));
        *new_per_id.entry(id.as_str()).or_default() += new;
    }
    assert_eq!(new_per_id.len(), 40);
    assert!(new_per_id.values().all(|&n| n == 1), "exactly one new answer per id: {new_per_id:?}");
    let stored: HashSet<String> =
        app.stored_webhook_events().await.iter().map(|item| string_attribute(item, "event_id").to_owned()).collect();
    assert_eq!(stored, deliveries.iter().map(|(id, _)| id.clone()).collect::<HashSet<_>>());
}
