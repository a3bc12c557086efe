//! POST /v1/webhooks/{source} against DynamoDB Local: what is accepted,
//! stored once and refused, and the administration of sources.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::http::StatusCode;
use latchkey::domain::WebhookSourceName;
use latchkey::service::webhooks::WebhookSourceError;
use latchkey::store::Item;
use latchkey::time::now_secs;
use latchkey::webhook::{OutboundWebhook, Scheme, WebhookSecret, body_id, sign_sha256};
use latchkey_tests::{CLIENT_IP, Options, TENANT, TestApp, TestResponse, event_json, futures_join_all};
use serde_json::Value;

const BODY: &str = r#"{"type":"invoice.paid","data":{"id":"in_1","amount":4200}}"#;

fn name(source: &str) -> WebhookSourceName {
    WebhookSourceName::parse(source).expect("valid name")
}

/// The Standard Webhooks headers for `body`, signed now with `secrets`.
fn standard(id: &str, timestamp: u64, body: &str, secrets: &[WebhookSecret]) -> Vec<(String, String)> {
    let webhook = OutboundWebhook { id, timestamp, body: body.as_bytes() };
    let mut headers: Vec<(String, String)> =
        webhook.standard_headers(secrets).expect("signs").into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

fn borrowed(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn deliver(app: &TestApp, source: &str, headers: &[(String, String)], body: &str) -> TestResponse {
    app.post_webhook(source, &borrowed(headers), body).await
}

fn string<'a>(item: &'a Item, attribute: &str) -> &'a str {
    match item.get(attribute) {
        Some(AttributeValue::S(value)) => value,
        other => panic!("{attribute} is not a string: {other:?}"),
    }
}

fn number(item: &Item, attribute: &str) -> u64 {
    match item.get(attribute) {
        Some(AttributeValue::N(value)) => value.parse().expect("number"),
        other => panic!("{attribute} is not a number: {other:?}"),
    }
}

fn assert_accepted(response: &TestResponse, id: &str, duplicate: bool) {
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let mut expected = serde_json::json!({"received": true, "id": id});
    if duplicate {
        expected["duplicate"] = Value::Bool(true);
    }
    assert_eq!(response.json(), expected);
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

fn assert_rejected(response: &TestResponse, description_part: &str) {
    response.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let description = response.json()["error_description"].as_str().expect("description").to_owned();
    assert!(description.contains(description_part), "{description:?} lacks {description_part:?}");
}

#[tokio::test]
async fn a_standard_delivery_is_stored_once_and_a_redelivery_is_a_duplicate() {
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let now = now_secs();
    let headers = standard("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, BODY, std::slice::from_ref(&secret));

    let first = deliver(&app, "billing", &headers, BODY).await;
    assert_accepted(&first, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", false);
    assert_eq!(app.calls.take(), ["GetItem", "PutItem"], "cold cache: the source, then the event");

    let item = app.stored_webhook_event("billing", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").await.expect("stored");
    assert_eq!(string(&item, "body"), BODY, "the exact bytes received");
    assert_eq!(string(&item, "source"), "billing");
    assert_eq!(string(&item, "tenant_id"), TENANT);
    assert_eq!(string(&item, "scheme"), "standard");
    assert_eq!(string(&item, "event_id"), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    assert_eq!(number(&item, "signed_at"), now);
    let received = number(&item, "received_at");
    assert!(received >= now);
    assert_eq!(number(&item, "expires_at"), received + 7 * 24 * 3600, "default retention: 7 days");
    let Some(AttributeValue::M(kept)) = item.get("headers") else { panic!("headers kept: {item:?}") };
    assert_eq!(kept.get("content-type"), Some(&AttributeValue::S("application/json".into())));
    assert_eq!(kept.get("webhook-id"), Some(&AttributeValue::S("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".into())));
    assert!(!kept.contains_key("webhook-signature"), "signatures are not kept");
    app.calls.take();

    // The sender retries (its copy of our 200 was lost): same id, same bytes.
    let again = deliver(&app, "billing", &headers, BODY).await;
    assert_accepted(&again, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", true);
    assert_eq!(app.calls.take(), ["PutItem"], "warm cache: one conditional write, which fails");
    // A retry signed later (new timestamp, same id) is the same event too.
    let later = standard("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now + 5, BODY, std::slice::from_ref(&secret));
    assert_accepted(&deliver(&app, "billing", &later, BODY).await, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", true);
    assert_eq!(app.stored_webhook_events().await.len(), 1, "stored once");
    let unchanged = app.stored_webhook_event("billing", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").await.expect("stored");
    assert_eq!(unchanged, item, "a duplicate writes nothing");

    let next = standard("msg_next", now, BODY, std::slice::from_ref(&secret));
    app.calls.take();
    assert_accepted(&deliver(&app, "billing", &next, BODY).await, "msg_next", false);
    assert_eq!(app.calls.take(), ["PutItem"], "the accept path is one write with the source cached");
    assert_eq!(app.stored_webhook_events().await.len(), 2);
}

#[tokio::test]
async fn parallel_redeliveries_store_exactly_one_event() {
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let headers = standard("msg_parallel", now_secs(), BODY, std::slice::from_ref(&secret));
    let responses = futures_join_all((0..10).map(|_| deliver(&app, "billing", &headers, BODY))).await;
    let mut fresh = 0;
    for response in &responses {
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        if response.json().get("duplicate").is_none() {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one delivery is new: {responses:?}");
    assert_eq!(app.stored_webhook_events().await.len(), 1);
}

#[tokio::test]
async fn forged_stale_and_malformed_deliveries_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let now = now_secs();
    let signed = standard("msg_1", now, BODY, std::slice::from_ref(&secret));

    // Tampered body: one byte changed after signing.
    let tampered = BODY.replace("4200", "4201");
    assert_rejected(&deliver(&app, "billing", &signed, &tampered).await, "no signature matches");
    // Another secret.
    let stranger = standard("msg_1", now, BODY, &[WebhookSecret::generate()]);
    assert_rejected(&deliver(&app, "billing", &stranger, BODY).await, "no signature matches");
    // Stale and future timestamps, each signed correctly.
    let stale = standard("msg_1", now - 301, BODY, std::slice::from_ref(&secret));
    assert_rejected(&deliver(&app, "billing", &stale, BODY).await, "s in the past");
    let future = standard("msg_1", now + 400, BODY, std::slice::from_ref(&secret));
    assert_rejected(&deliver(&app, "billing", &future, BODY).await, "s in the future");
    // A missing header is named.
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let partial: Vec<_> = signed.iter().filter(|(k, _)| k != missing).cloned().collect();
        assert_rejected(&deliver(&app, "billing", &partial, BODY).await, &format!("missing {missing} header"));
    }
    // No signature headers at all, or only the other scheme's.
    assert_rejected(&app.post_webhook("billing", &[], BODY).await, "missing signature");
    let classic = sign_sha256(&secret, None, BODY.as_bytes());
    assert_rejected(
        &app.post_webhook("billing", &[("x-webhook-signature", &classic)], BODY).await,
        "this source expects Standard Webhooks headers",
    );
    // Partial signature, garbage signature, garbage timestamp.
    let mut partial = signed.clone();
    partial.iter_mut().find(|(k, _)| k == "webhook-signature").expect("present").1 = "v1,".into();
    assert_rejected(&deliver(&app, "billing", &partial, BODY).await, "no v1 signature");
    let mut garbage = signed.clone();
    garbage.iter_mut().find(|(k, _)| k == "webhook-timestamp").expect("present").1 = "yesterday".into();
    assert_rejected(&deliver(&app, "billing", &garbage, BODY).await, "webhook-timestamp header is malformed");

    let writes: Vec<_> = app.calls.take().into_iter().filter(|op| op != "GetItem").collect();
    assert!(writes.is_empty(), "a refused delivery writes nothing: {writes:?}");
    assert_eq!(app.stored_webhook_events().await.len(), 0);
}

#[tokio::test]
async fn unknown_sources_methods_and_oversized_bodies_get_clear_errors() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_WEBHOOK_MAX_BODY_BYTES", "2048".into())],
        ..Options::default()
    })
    .await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let headers = standard("msg_1", now_secs(), BODY, std::slice::from_ref(&secret));

    for unknown in ["nope", "Billing", "a%2Fb", &"x".repeat(65)] {
        deliver(&app, unknown, &headers, BODY).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
    // An unknown name is remembered: asking again reads nothing.
    app.calls.take();
    deliver(&app, "nope", &headers, BODY).await.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(app.calls.take().is_empty(), "unknown sources are cached too");

    let get = latchkey_tests::request("/v1/webhooks/billing", "GET", &[], "", CLIENT_IP);
    let response = app.webhook_request(get).await;
    response.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(response.header("allow"), Some("POST"));
    let bare = latchkey_tests::request("/v1/webhooks/", "POST", &[], BODY, CLIENT_IP);
    app.webhook_request(bare).await.assert_error(StatusCode::NOT_FOUND, "not_found");

    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2048));
    let signed_big = standard("msg_big", now_secs(), &big, std::slice::from_ref(&secret));
    deliver(&app, "billing", &signed_big, &big).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");
    assert_eq!(app.stored_webhook_events().await.len(), 0);
}

#[tokio::test]
async fn a_base64_encoded_binary_body_is_verified_over_its_decoded_bytes() {
    use base64::Engine as _;
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("files", &[Scheme::Standard], &secret).await;
    let bytes: Vec<u8> = vec![0x00, 0xff, 0xfe, b'{', 0x80, b'}', 0x0a];
    let now = now_secs();
    let webhook = OutboundWebhook { id: "msg_binary", timestamp: now, body: &bytes };
    let mut headers: Vec<(&str, String)> =
        webhook.standard_headers(std::slice::from_ref(&secret)).expect("signs").into();
    headers.push(("content-type", "application/octet-stream".into()));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // API Gateway hands a binary body to the function base64-encoded.
    let mut event: Value =
        serde_json::from_str(&event_json("/v1/webhooks/files", "POST", &headers, "", CLIENT_IP)).expect("JSON");
    event["body"] = base64::engine::general_purpose::STANDARD.encode(&bytes).into();
    event["isBase64Encoded"] = true.into();
    let request = lambda_http::request::from_str(&event.to_string()).expect("valid event");
    assert_accepted(&app.webhook_request(request).await, "msg_binary", false);
    let item = app.stored_webhook_event("files", "msg_binary").await.expect("stored");
    assert_eq!(item.get("body"), Some(&AttributeValue::B(bytes.into())), "non-UTF-8 bodies are stored as binary");
}

#[tokio::test]
async fn the_classic_scheme_with_and_without_a_timestamp() {
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::new("It's a Secret to Everybody").expect("valid");
    app.add_webhook_source("github", &[Scheme::Sha256], &secret).await;
    let body = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;

    // Body only, under GitHub's header name: deduplicated by the body's hash.
    let signature = sign_sha256(&secret, None, body.as_bytes());
    let github = [("x-hub-signature-256", signature.as_str()), ("x-github-event", "ping")];
    let id = body_id(body.as_bytes());
    assert_accepted(&app.post_webhook("github", &github, body).await, &id, false);
    let item = app.stored_webhook_event("github", &id).await.expect("stored");
    assert_eq!(string(&item, "scheme"), "sha256");
    assert!(!item.contains_key("signed_at"));
    let Some(AttributeValue::M(kept)) = item.get("headers") else { panic!("headers kept") };
    assert_eq!(kept.get("x-github-event"), Some(&AttributeValue::S("ping".into())));
    let replay = [("x-webhook-signature", signature.as_str())];
    assert_accepted(&app.post_webhook("github", &replay, body).await, &id, true);

    // With X-Webhook-Timestamp the timestamp is signed and checked.
    let now = now_secs();
    let other = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let signed = sign_sha256(&secret, Some(now), other.as_bytes());
    let now_text = now.to_string();
    let timed = [("x-webhook-signature", signed.as_str()), ("x-webhook-timestamp", now_text.as_str())];
    assert_accepted(&app.post_webhook("github", &timed, other).await, &body_id(other.as_bytes()), false);
    let moved = (now - 1000).to_string();
    let stale = [("x-webhook-signature", signed.as_str()), ("x-webhook-timestamp", moved.as_str())];
    assert_rejected(&app.post_webhook("github", &stale, other).await, "x-webhook-timestamp is 1000 s in the past");
    let unsigned_time = [("x-webhook-signature", signature.as_str()), ("x-webhook-timestamp", now_text.as_str())];
    assert_rejected(&app.post_webhook("github", &unsigned_time, body).await, "no signature matches");
    assert_rejected(&app.post_webhook("github", &[("x-webhook-signature", "sha256=00")], body).await, "malformed");
    // Standard headers at a sha256-only source: told what it expects.
    let headers = standard("msg_1", now, body, &[WebhookSecret::generate()]);
    assert_rejected(&deliver(&app, "github", &headers, body).await, "X-Webhook-Signature");
    assert_eq!(app.stored_webhook_events().await.len(), 2);
}

#[tokio::test]
async fn svix_header_names_are_accepted() {
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("clerk", &[Scheme::Standard], &secret).await;
    let headers: Vec<(String, String)> = standard("msg_svix", now_secs(), BODY, std::slice::from_ref(&secret))
        .into_iter()
        .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
        .collect();
    assert_accepted(&deliver(&app, "clerk", &headers, BODY).await, "msg_svix", false);
}

#[tokio::test]
async fn a_source_accepting_both_schemes_takes_either() {
    let app = TestApp::spawn().await;
    let secret = WebhookSecret::generate();
    app.add_webhook_source("both", &[Scheme::Standard, Scheme::Sha256], &secret).await;
    let headers = standard("msg_both", now_secs(), BODY, std::slice::from_ref(&secret));
    assert_accepted(&deliver(&app, "both", &headers, BODY).await, "msg_both", false);
    let classic = sign_sha256(&secret, None, b"{}");
    assert_accepted(
        &app.post_webhook("both", &[("x-webhook-signature", &classic)], "{}").await,
        &body_id(b"{}"),
        false,
    );
}

/// A delivery signed with `secret`, handled by one function instance.
async fn deliver_to(service: &latchkey::service::WebhookService, id: &str, secret: &WebhookSecret) -> TestResponse {
    let headers = standard(id, now_secs(), BODY, std::slice::from_ref(secret));
    let request = latchkey_tests::request("/v1/webhooks/billing", "POST", &borrowed(&headers), BODY, CLIENT_IP);
    TestResponse::from(webhook::handle(service, request).await)
}

#[tokio::test]
async fn secret_rotation_overlaps_and_removal_takes_effect() {
    let app = TestApp::spawn_with(Options {
        env: vec![("LATCHKEY_WEBHOOK_SOURCE_CACHE_SECONDS", "0".into())],
        ..Options::default()
    })
    .await;
    let source = name("billing");
    let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
    let view = app.add_webhook_source("billing", &[Scheme::Standard], &old).await;
    let old_id = view.secrets[0].id.clone();
    // Another function instance, with its own cache.
    let other_instance = app.latchkey.webhook_service();
    let (new_id, rotated) = app.webhooks.rotate_secret(&source, &new, now_secs()).await.expect("rotated");
    assert_eq!(rotated.secrets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [new_id.as_str(), &old_id]);
    assert!(rotated.rotated_at.is_some());
    // During the overlap both secrets verify, in every instance.
    assert_accepted(&deliver_to(&app.webhooks, "msg_old", &old).await, "msg_old", false);
    assert_accepted(&deliver_to(&app.webhooks, "msg_new", &new).await, "msg_new", false);
    assert_accepted(&deliver_to(&other_instance, "msg_old_2", &old).await, "msg_old_2", false);
    // A sender signing with both (the Standard Webhooks rotation pattern).
    let both = standard("msg_both", now_secs(), BODY, &[new.clone(), old.clone()]);
    assert_accepted(&deliver(&app, "billing", &both, BODY).await, "msg_both", false);

    app.webhooks.remove_secret(&source, &old_id, now_secs()).await.expect("removed");
    for (service, id) in [(&app.webhooks, "msg_new_2"), (&other_instance, "msg_new_3")] {
        assert_rejected(&deliver_to(service, "msg_old_3", &old).await, "no signature matches");
        assert_accepted(&deliver_to(service, id, &new).await, id, false);
    }
}

#[tokio::test]
async fn source_administration_refuses_what_would_break_it() {
    let app = TestApp::spawn().await;
    let source = name("billing");
    let secret = WebhookSecret::generate();
    let view = app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let now = now_secs();
    let new = |schemes: &[Scheme], secret: WebhookSecret, tenant: &str| latchkey::service::webhooks::NewWebhookSource {
        name: name("billing-2"),
        tenant_id: latchkey::domain::TenantId::parse(tenant).expect("valid"),
        schemes: schemes.to_vec(),
        secret,
        tolerance_secs: 300,
        retention_secs: 7 * 24 * 3600,
    };

    let taken = latchkey::service::webhooks::NewWebhookSource {
        name: source.clone(),
        ..new(&[Scheme::Standard], WebhookSecret::generate(), TENANT)
    };
    assert!(matches!(app.webhooks.add_source(taken, now).await, Err(WebhookSourceError::NameTaken(_))));
    let no_tenant = new(&[Scheme::Standard], WebhookSecret::generate(), "ghost");
    assert!(matches!(app.webhooks.add_source(no_tenant, now).await, Err(WebhookSourceError::NoSuchTenant(_))));
    let weak = new(&[Scheme::Standard], WebhookSecret::new("whsec_c2hvcnQ=").expect("text"), TENANT);
    assert!(matches!(app.webhooks.add_source(weak, now).await, Err(WebhookSourceError::Invalid(_))));
    let short = new(&[Scheme::Sha256], WebhookSecret::new("hunter2").expect("text"), TENANT);
    assert!(matches!(app.webhooks.add_source(short, now).await, Err(WebhookSourceError::Invalid(_))));
    let no_scheme = new(&[], WebhookSecret::generate(), TENANT);
    assert!(matches!(app.webhooks.add_source(no_scheme, now).await, Err(WebhookSourceError::Invalid(_))));
    let brief = latchkey::service::webhooks::NewWebhookSource {
        tolerance_secs: 3600,
        retention_secs: 3600,
        ..new(&[Scheme::Standard], WebhookSecret::generate(), TENANT)
    };
    assert!(matches!(app.webhooks.add_source(brief, now).await, Err(WebhookSourceError::Invalid(_))));

    // The only secret cannot go; unknown ids are named; at most four secrets.
    let only = &view.secrets[0].id;
    assert!(matches!(app.webhooks.remove_secret(&source, only, now).await, Err(WebhookSourceError::LastSecret(_))));
    assert!(matches!(
        app.webhooks.remove_secret(&source, "whs_nope", now).await,
        Err(WebhookSourceError::NoSuchSecret { .. })
    ));
    for _ in 0..3 {
        app.webhooks.rotate_secret(&source, &WebhookSecret::generate(), now).await.expect("rotates");
    }
    assert!(matches!(
        app.webhooks.rotate_secret(&source, &WebhookSecret::generate(), now).await,
        Err(WebhookSourceError::TooManySecrets(_))
    ));
    assert!(matches!(
        app.webhooks.rotate_secret(&name("ghost"), &WebhookSecret::generate(), now).await,
        Err(WebhookSourceError::NoSuchSource(_))
    ));

    // Listings and the stored item never show a secret.
    let listed = app.webhooks.list_sources(None).await.expect("lists");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secrets.len(), 4);
    let shown = serde_json::to_string(&listed).expect("JSON");
    assert!(!shown.contains(secret.expose()) && !shown.contains(&secret.expose()[6..]), "{shown}");
    let raw = app
        .table
        .client()
        .get_item()
        .table_name(app.table.name())
        .key("pk", AttributeValue::S("WEBHOOK_SOURCE".into()))
        .key("sk", AttributeValue::S("SOURCE#billing".into()))
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("stored");
    let dump = format!("{raw:?}");
    assert!(!dump.contains(&secret.expose()[6..]), "the secret is sealed at rest");
    assert!(
        app.webhooks
            .list_sources(Some(&latchkey::domain::TenantId::parse("other").expect("valid")))
            .await
            .expect("lists")
            .is_empty()
    );

    app.webhooks.delete_source(&source).await.expect("deleted");
    assert!(matches!(app.webhooks.delete_source(&source).await, Err(WebhookSourceError::NoSuchSource(_))));
    let headers = standard("msg_gone", now_secs(), BODY, std::slice::from_ref(&secret));
    deliver(&app, "billing", &headers, BODY).await.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn dynamodb_unreachable_is_a_503_with_retry_after() {
    let app = TestApp::spawn_with(Options { endpoint: Some("http://127.0.0.1:9".into()), ..Options::default() }).await;
    let headers = standard("msg_1", now_secs(), BODY, &[WebhookSecret::generate()]);
    let response = deliver(&app, "billing", &headers, BODY).await;
    response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(response.header("retry-after").is_some());
}
