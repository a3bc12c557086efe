//! The decisions in front of a team's own API under the bench, and their
//! floors: the `authorizer` function (its payload format 2.0 event JSON in,
//! its simple response JSON out, as the Lambda runtime drives it) and
//! `POST /v1/verify` through the `keys` handler (API Gateway event JSON in,
//! response out), each with an access token and with an API key.
//!
//! An access token is verified against the instance's cached public keys,
//! with no DynamoDB call. Its floor is that verification alone
//! ([`AccessTokenVerifier::verify`]: `jsonwebtoken::decode` with the same
//! key and validation) of the same token.
//!
//! An API key's record comes from the instance's cache, then the request is
//! counted: one conditional UpdateItem of the key's counter item. The bench's
//! keys carry their own limit of `u32::MAX` an hour, so no plan is read and
//! no limit is reached however many requests the bench makes. The floor is
//! that UpdateItem sent raw from the same SDK client (same expressions,
//! values and return values) to another key's counter item, of the same
//! shape (checked against a key's counter before measuring).
//!
//! Timed samples take the warm path: one that had to reload an expired cache
//! entry (the signing keys every `LATCHKEY_KEY_CACHE_SECONDS`, a key record
//! every `LATCHKEY_AUTH_CACHE_SECONDS`) is discarded and retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use latchkey::domain::{ApiKeyId, RateLimitOverride};
use latchkey::jwt::AccessTokenVerifier;
use latchkey::keys::KeySet;
use latchkey::rate_limit::window;
use latchkey::store::{Item, RateSubject};
use latchkey_tests::{CLIENT_IP, TENANT, TestApp, TestKey, authorizer_event};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::report::CallCount;
use crate::webhooks::shape;
use crate::{expect_ok, json_event, took_warm_path};

/// The route the authorizer decides on; it requires no scope.
const ROUTE: &str = "GET /orders";
/// The store's counter partition for one API key (`RATELIMIT#key#<id>`).
const KEY_COUNTER_PREFIX: &str = "RATELIMIT#key#";
/// The hourly limit of the bench's keys: never reached.
const LIMIT: u32 = u32::MAX;

pub const AUTHORIZER_BEARER: &str = "authorizer, access token";
pub const AUTHORIZER_API_KEY: &str = "authorizer, API key (key cached)";
pub const AUTHORIZER_API_KEY_NOT_CACHED: &str = "authorizer, API key not cached";
pub const VERIFY_BEARER: &str = "verify, access token";
pub const VERIFY_API_KEY: &str = "verify, API key (key cached)";

/// The credential a decision is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented {
    AccessToken,
    ApiKey,
}

impl Presented {
    /// The DynamoDB calls of a warm decision.
    fn warm_calls(self) -> &'static [&'static str] {
        match self {
            Self::AccessToken => &[],
            Self::ApiKey => &["UpdateItem"],
        }
    }

    /// What a decision reads first once its cache entry has expired: the
    /// signing keys, or the key record.
    fn reload_calls(self) -> &'static [&'static str] {
        match self {
            Self::AccessToken => &["Query"],
            Self::ApiKey => &["GetItem"],
        }
    }

    /// How the decision names it (`credential`).
    fn name(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::ApiKey => "api_key",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Authorizer,
    Verify,
}

/// One kind of decision, its event built once.
#[derive(Debug)]
struct Probe {
    what: &'static str,
    endpoint: Endpoint,
    presented: Presented,
    event: String,
}

impl Probe {
    fn authorizer(what: &'static str, presented: Presented, headers: &[(&str, &str)]) -> Result<Self, String> {
        Ok(Self { what, endpoint: Endpoint::Authorizer, presented, event: authorizer_event_json(headers)? })
    }

    fn verify(what: &'static str, presented: Presented, body: &Value) -> Self {
        Self { what, endpoint: Endpoint::Verify, presented, event: json_event(keys::VERIFY_PATH, &body.to_string()) }
    }
}

/// The authorizer's event JSON for [`ROUTE`] from [`CLIENT_IP`] with
/// `headers`: what the Lambda runtime hands the function.
pub fn authorizer_event_json(headers: &[(&str, &str)]) -> Result<String, String> {
    serde_json::to_string(&authorizer_event(ROUTE, headers, CLIENT_IP)).map_err(|e| format!("authorizer event: {e}"))
}

/// An API key of the seeded tenant, as its holder sends it.
#[derive(Debug)]
pub struct ApiKey {
    id: String,
    key: String,
}

impl ApiKey {
    pub async fn add(app: &TestApp, key: TestKey) -> Self {
        let created = app.add_api_key(key).await;
        Self { id: created.view.id, key: created.key.expose_secret().to_owned() }
    }

    /// `X-API-Key` and `X-Tenant-ID`.
    pub fn headers(&self) -> [(&str, &str); 2] {
        [("x-api-key", self.key.as_str()), ("x-tenant-id", TENANT)]
    }
}

/// A key counted against its own limit, [`LIMIT`].
fn metered_key() -> TestKey {
    TestKey { rate_limit: Some(RateLimitOverride::PerHour(LIMIT)), ..TestKey::default() }
}

/// The authorizer and `/v1/verify`, driven like [`crate::Driver`]: one API
/// key each, so each counts on its own item.
pub struct Decisions<'a> {
    app: &'a TestApp,
    access_token: String,
    authorizer_bearer: Probe,
    authorizer_api_key: Probe,
    verify_bearer: Probe,
    verify_api_key: Probe,
    /// The key behind [`Self::authorizer_api_key`], whose counter the floor's
    /// is checked against.
    authorizer_key_id: String,
    /// The floor's counter: another key id, as long as a key's.
    floor_key_id: ApiKeyId,
    verifier: AccessTokenVerifier,
    public_keys: Arc<KeySet>,
}

impl<'a> Decisions<'a> {
    /// Decisions on `access_token` (the seeded user's) and on two new keys.
    pub async fn new(app: &'a TestApp, access_token: String) -> Result<Self, String> {
        let authorizer_key = ApiKey::add(app, metered_key()).await;
        let verify_key = ApiKey::add(app, metered_key()).await;
        let bearer = format!("Bearer {access_token}");
        let token_body = serde_json::json!({ "token": access_token });
        let key_body = serde_json::json!({ "api_key": verify_key.key, "tenant_id": TENANT });
        let public_keys = app.latchkey.issuer.keys().current().await.map_err(|e| format!("signing keys: {e}"))?;
        app.calls.take();
        let decisions = Self {
            app,
            authorizer_bearer: Probe::authorizer(
                AUTHORIZER_BEARER,
                Presented::AccessToken,
                &[("authorization", &bearer)],
            )?,
            authorizer_api_key: Probe::authorizer(AUTHORIZER_API_KEY, Presented::ApiKey, &authorizer_key.headers())?,
            verify_bearer: Probe::verify(VERIFY_BEARER, Presented::AccessToken, &token_body),
            verify_api_key: Probe::verify(VERIFY_API_KEY, Presented::ApiKey, &key_body),
            access_token,
            authorizer_key_id: authorizer_key.id,
            floor_key_id: ApiKeyId::generate(),
            verifier: app.latchkey.issuer.verifier(),
            public_keys,
        };
        decisions.floor_verify()?;
        Ok(decisions)
    }

    /// The authorizer's event for the access token: the same as its timed
    /// samples'.
    pub fn bearer_authorizer_event(&self) -> &str {
        &self.authorizer_bearer.event
    }

    /// One decision, from the event JSON to the answer, checked: allowed,
    /// on the right credential, counted if and only if it is an API key.
    async fn decide(&self, probe: &Probe) -> Result<(Duration, Value), String> {
        let what = probe.what;
        let (elapsed, body) = match probe.endpoint {
            Endpoint::Authorizer => {
                let started = Instant::now();
                let event: ApiGatewayV2CustomAuthorizerV2Request =
                    serde_json::from_str(&probe.event).map_err(|e| format!("{what}: event: {e}"))?;
                let response = self.app.authorizer.handle(&event).await;
                let payload = serde_json::to_vec(&response).map_err(|e| format!("{what}: response: {e}"))?;
                let elapsed = started.elapsed();
                (elapsed, serde_json::from_slice::<Value>(&payload).map_err(|e| format!("{what}: {e}"))?)
            }
            Endpoint::Verify => {
                let started = Instant::now();
                let request = lambda_http::request::from_str(&probe.event).map_err(|e| e.to_string())?;
                let response = keys::handle(&self.app.keys, self.app.max_body(), request).await;
                let elapsed = started.elapsed();
                (elapsed, expect_ok(what, &response)?)
            }
        };
        let context = &body["context"];
        let (allowed, credential, counted) = match probe.endpoint {
            Endpoint::Authorizer => {
                (&body["isAuthorized"], &context["credential"], context["ratelimit_remaining"].is_u64())
            }
            Endpoint::Verify => (&body["valid"], &body["credential"], body["ratelimit"]["remaining"].is_u64()),
        };
        let presented = probe.presented;
        if *allowed != true || *credential != presented.name() || counted != (presented == Presented::ApiKey) {
            return Err(format!("{what}: unexpected decision {body}"));
        }
        Ok((elapsed, body))
    }

    /// One decision on the warm path.
    async fn sample(&self, probe: &Probe) -> Result<Duration, String> {
        let presented = probe.presented;
        for _ in 0..3 {
            self.app.calls.take();
            let (elapsed, _) = self.decide(probe).await?;
            let calls = self.app.calls.take();
            if took_warm_path(probe.what, &calls, presented.warm_calls(), presented.reload_calls())? {
                return Ok(elapsed);
            }
        }
        Err(format!("{}: the instance's cache never stayed warm", probe.what))
    }

    pub async fn authorizer_bearer(&self) -> Result<Duration, String> {
        self.sample(&self.authorizer_bearer).await
    }

    pub async fn authorizer_api_key(&self) -> Result<Duration, String> {
        self.sample(&self.authorizer_api_key).await
    }

    pub async fn verify_bearer(&self) -> Result<Duration, String> {
        self.sample(&self.verify_bearer).await
    }

    pub async fn verify_api_key(&self) -> Result<Duration, String> {
        self.sample(&self.verify_api_key).await
    }

    /// Floor of a bearer decision: the access token's verification alone,
    /// against the public keys already loaded.
    pub fn floor_verify(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let claims = self.verifier.verify(&self.access_token, &self.public_keys.verifying);
        let elapsed = started.elapsed();
        claims.map_err(|e| format!("floor token verification: {e}"))?;
        Ok(elapsed)
    }

    /// Floor of an API-key decision: the store's counting UpdateItem alone
    /// (the very request `RateLimitStore::count` sends), on the floor's own
    /// counter item.
    pub async fn floor_count(&self) -> Result<Duration, String> {
        let (start, end) = window(latchkey::time::now_secs());
        let subject = RateSubject::ApiKey(self.floor_key_id.clone());
        let started = Instant::now();
        let request = self.app.latchkey.stores.rate_limits.count_request(&subject, start, end, LIMIT);
        request.send().await.map_err(|e| format!("floor UpdateItem: {e}"))?;
        Ok(started.elapsed())
    }

    /// One of each timed operation, untimed: for warming up.
    pub async fn exercise(&self) -> Result<(), String> {
        self.floor_verify()?;
        self.floor_count().await?;
        for probe in [&self.authorizer_bearer, &self.authorizer_api_key, &self.verify_bearer, &self.verify_api_key] {
            self.sample(probe).await?;
        }
        Ok(())
    }

    /// A key's counter item in the window starting at `start`.
    async fn counter(&self, key_id: &str, start: u64) -> Result<Option<Item>, String> {
        let output = self
            .app
            .table
            .client()
            .get_item()
            .table_name(self.app.table.name())
            .key("pk", AttributeValue::S(format!("{KEY_COUNTER_PREFIX}{key_id}")))
            .key("sk", AttributeValue::S(format!("WINDOW#{start}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| format!("counter GetItem: {e}"))?;
        Ok(output.item)
    }

    /// Checks that the floor writes the item an API-key decision writes:
    /// after one of each, the two counters have the same attributes, of the
    /// same types and sizes. Run it before anything else counts.
    pub async fn check_floor_shape(&self) -> Result<(), String> {
        // Twice at most: the hour may turn between the two writes.
        for _ in 0..2 {
            let (before, _) = window(latchkey::time::now_secs());
            self.decide(&self.authorizer_api_key).await?;
            self.floor_count().await?;
            let (start, _) = window(latchkey::time::now_secs());
            if start != before {
                continue;
            }
            let key = self
                .counter(&self.authorizer_key_id, start)
                .await?
                .ok_or(format!("an API-key decision left no counter item under {KEY_COUNTER_PREFIX}<key id>"))?;
            let floor =
                self.counter(self.floor_key_id.as_str(), start).await?.ok_or("the floor left no counter item")?;
            let (key, floor) = (shape(&key), shape(&floor));
            if key != floor {
                return Err(format!(
                    "the counter floor's item is not shaped like a key's counter:\n  key:   {}\n  floor: {}",
                    key.join("; "),
                    floor.join("; ")
                ));
            }
            return Ok(());
        }
        Err("the hour turned twice while checking the counter floor".into())
    }

    /// DynamoDB calls of an authorizer decision on a key this instance has
    /// not cached yet, then of each warm decision (made once untimed first,
    /// so that its cache entries are fresh).
    pub async fn count_calls(&self) -> Result<Vec<CallCount>, String> {
        let new_key = ApiKey::add(self.app, metered_key()).await;
        let not_cached = Probe::authorizer(AUTHORIZER_API_KEY_NOT_CACHED, Presented::ApiKey, &new_key.headers())?;
        let mut counted = Vec::new();
        for (probe, warm) in [
            (&not_cached, false),
            (&self.authorizer_api_key, true),
            (&self.authorizer_bearer, true),
            (&self.verify_api_key, true),
            (&self.verify_bearer, true),
        ] {
            if warm {
                self.decide(probe).await?;
            }
            self.app.calls.take();
            self.decide(probe).await?;
            counted.push(CallCount::new(probe.what, self.app.calls.take()));
        }
        Ok(counted)
    }
}
