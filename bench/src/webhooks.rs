//! The webhook endpoint under the bench, and its floor.
//!
//! Each delivery is a fresh Standard Webhooks delivery (its own `webhook-id`,
//! the current time, a ~1 KB JSON body) to one source, signed as a sender
//! signs it (outside the timing) and sent through the real handler from the
//! API Gateway event JSON. Timed samples take the warm path, the source
//! already in the instance's cache: one conditional PutItem of the event.
//!
//! The floor is that PutItem alone, sent raw from the same SDK client: an
//! item of the same shape (same attributes, same sizes, checked against a
//! stored event) under the same condition.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use latchkey::domain::{TenantId, WebhookSourceName};
use latchkey::service::WebhookService;
use latchkey::service::webhooks::{DEFAULT_RETENTION_SECS, WEBHOOK_PATH_PREFIX};
use latchkey::store::webhooks::event_item;
use latchkey::store::{WRITE_ID, WebhookEvent};
use latchkey::webhook::{OutboundWebhook, Scheme, WebhookSecret};
use latchkey_tests::{TENANT, TestApp, event_json};
use serde_json::Value;

use crate::report::CallCount;
use crate::{expect_ok, took_warm_path};

/// The source the deliveries go to.
pub const SOURCE: &str = "bench-billing";
/// The floor's items go under this name: as long as [`SOURCE`], so their
/// keys are as long as the events'.
const FLOOR_SOURCE: &str = "bench-floor00";
const USER_AGENT: &str = "Svix-Webhooks/1.42";
/// The store's condition on an event's PutItem: absent, or expired.
const CONDITION: &str = "attribute_not_exists(pk) OR expires_at <= :now";

type Item = HashMap<String, AttributeValue>;

/// A signed delivery: what Lambda hands the function.
#[derive(Debug)]
pub struct Delivery {
    pub id: String,
    pub event: String,
}

/// A floor item already written, to write again (its condition then fails).
#[derive(Debug)]
pub struct FloorItem {
    item: Item,
    now: u64,
}

/// The webhook endpoint, driven like [`crate::Driver`].
pub struct Webhooks<'a> {
    app: &'a TestApp,
    secret: WebhookSecret,
    body: String,
}

/// A realistic delivery body: an `invoice.paid` event, ~1 KB of JSON.
fn sample_body() -> String {
    serde_json::json!({
        "type": "invoice.paid",
        "timestamp": "2026-11-23T12:00:00.000Z",
        "data": {
            "id": "in_1QJ8ZkLatchkeyBench0001",
            "object": "invoice",
            "account": "acct_1Nv0FGQ9RKHgCVdK",
            "customer": "cus_R2x8kLmN4pQ7sT",
            "customer_email": "billing@acme.example.com",
            "customer_name": "Acme Corporation",
            "currency": "eur",
            "amount_due": 4900, "amount_paid": 4900, "amount_remaining": 0,
            "subtotal": 4118, "tax": 782, "total": 4900,
            "status": "paid",
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "period_start": 1_795_435_200_u64, "period_end": 1_798_113_600_u64,
            "hosted_invoice_url": "https://pay.example.com/i/acct_1Nv0FGQ9RKHgCVdK/in_1QJ8ZkLatchkeyBench0001",
            "lines": [
                {
                    "id": "il_1QJ8ZkLatchkeyBench0001", "description": "Team plan, 7 seats (Nov 23 to Dec 23)",
                    "amount": 3500, "quantity": 7,
                    "price": { "id": "price_team_monthly_eur", "unit_amount": 500, "interval": "month" },
                },
                {
                    "id": "il_1QJ8ZkLatchkeyBench0002", "description": "Extra API keys, 3 (Nov 23 to Dec 23)",
                    "amount": 618, "quantity": 3,
                    "price": { "id": "price_api_keys_monthly_eur", "unit_amount": 206, "interval": "month" },
                },
            ],
            "metadata": { "tenant": "acme", "plan": "team", "region": "eu-west-1" },
        },
    })
    .to_string()
}

/// A delivery id as Standard Webhooks senders make them.
fn message_id() -> String {
    format!("msg_{}", latchkey::crypto::random_id())
}

fn source_name(name: &str) -> Result<WebhookSourceName, String> {
    WebhookSourceName::parse(name).map_err(|e| e.0)
}

/// An item's attributes with their types and sizes, values left out.
pub fn shape(item: &Item) -> Vec<String> {
    let mut out: Vec<String> = item.iter().map(|(name, value)| format!("{name}: {}", value_shape(value))).collect();
    out.sort();
    out
}

fn value_shape(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(text) => format!("S({})", text.len()),
        AttributeValue::N(number) => format!("N({})", number.len()),
        AttributeValue::B(blob) => format!("B({})", blob.as_ref().len()),
        AttributeValue::M(map) => format!("M{{{}}}", shape(map).join(", ")),
        other => format!("{other:?}"),
    }
}

impl<'a> Webhooks<'a> {
    /// Registers [`SOURCE`] (Standard Webhooks, a generated secret).
    pub async fn new(app: &'a TestApp) -> Result<Self, String> {
        let secret = WebhookSecret::generate();
        app.add_webhook_source(SOURCE, &[Scheme::Standard], &secret).await;
        let body = sample_body();
        if !(900..=1200).contains(&body.len()) {
            return Err(format!("the sample webhook body is {} bytes; keep it about 1 KB", body.len()));
        }
        Ok(Self { app, secret, body })
    }

    /// A new delivery, signed now with `secret`.
    fn signed_with(&self, secret: &WebhookSecret) -> Result<Delivery, String> {
        let id = message_id();
        let signed = OutboundWebhook { id: &id, timestamp: latchkey::time::now_secs(), body: self.body.as_bytes() }
            .standard_headers(std::slice::from_ref(secret))
            .map_err(|e| e.to_string())?;
        let mut headers = vec![("content-type", "application/json"), ("user-agent", USER_AGENT)];
        headers.extend(signed.iter().map(|(name, value)| (*name, value.as_str())));
        let event = event_json(&format!("{WEBHOOK_PATH_PREFIX}{SOURCE}"), "POST", &headers, &self.body, "203.0.113.10");
        Ok(Delivery { id, event })
    }

    /// A new delivery, signed now with the source's secret.
    pub fn delivery(&self) -> Result<Delivery, String> {
        self.signed_with(&self.secret)
    }

    async fn send(
        service: &WebhookService,
        event: &str,
    ) -> Result<(Duration, lambda_http::Response<lambda_http::Body>), String> {
        let started = Instant::now();
        let request = lambda_http::request::from_str(event).map_err(|e| e.to_string())?;
        let response = webhook::handle(service, request).await;
        Ok((started.elapsed(), response))
    }

    /// Sends `event` and checks that it took the warm path (one PutItem).
    /// `None` when the source's cache entry had expired (every
    /// `LATCHKEY_WEBHOOK_SOURCE_CACHE_SECONDS`, 30 s by default) and was read
    /// again: that sample is the cold-cache path, not this line's.
    async fn warm(&self, what: &str, event: &str) -> Result<Option<(Duration, Value)>, String> {
        self.app.calls.take();
        let (elapsed, response) = Self::send(&self.app.webhooks, event).await?;
        let calls = self.app.calls.take();
        let body = expect_ok(what, &response)?;
        Ok(took_warm_path(what, &calls, &["PutItem"], &["GetItem"])?.then_some((elapsed, body)))
    }

    /// One new delivery accepted on the warm path.
    pub async fn accept(&self) -> Result<(Duration, Delivery), String> {
        for _ in 0..3 {
            // A fresh delivery per try: a try that reloaded the source stored its event.
            let delivery = self.delivery()?;
            if let Some((elapsed, body)) = self.warm("webhook accept", &delivery.event).await? {
                if body["received"] != true || body["id"] != delivery.id.as_str() || body.get("duplicate").is_some() {
                    return Err(format!("webhook accept: unexpected receipt {body}"));
                }
                return Ok((elapsed, delivery));
            }
        }
        Err("webhook accept: the source never stayed cached".into())
    }

    /// `delivery` again: a duplicate, the conditional PutItem fails.
    pub async fn duplicate(&self, delivery: &Delivery) -> Result<Duration, String> {
        for _ in 0..3 {
            if let Some((elapsed, body)) = self.warm("webhook duplicate", &delivery.event).await? {
                if body["duplicate"] != true || body["id"] != delivery.id.as_str() {
                    return Err(format!("webhook duplicate: unexpected receipt {body}"));
                }
                return Ok(elapsed);
            }
        }
        Err("webhook duplicate: the source never stayed cached".into())
    }

    /// The item `WebhookEventStore::insert` writes for a delivery to `source`
    /// with a new id, received and signed at `now`, with the headers the
    /// handler keeps from [`Self::delivery`]'s request.
    fn event_item(&self, source: &str, id: &str, now: u64) -> Result<Item, String> {
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("user-agent", USER_AGENT.to_owned()),
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", now.to_string()),
        ];
        let tenant_id = TenantId::parse(TENANT).map_err(|e| e.0)?;
        let mut item = event_item(&WebhookEvent {
            source: &source_name(source)?,
            tenant_id: &tenant_id,
            scheme: Scheme::Standard,
            id,
            received_at: now,
            signed_at: Some(now),
            headers: &headers,
            body: self.body.as_bytes(),
            expires_at: now + DEFAULT_RETENTION_SECS,
        });
        // The store's conditional put adds the id that lets a re-sent write
        // recognise itself.
        item.insert(WRITE_ID.to_owned(), AttributeValue::S(latchkey::crypto::random_id()));
        Ok(item)
    }

    async fn put(&self, item: Item, now: u64) -> Result<(), aws_sdk_dynamodb::error::SdkError<PutItemError>> {
        self.app
            .table
            .client()
            .put_item()
            .table_name(self.app.table.name())
            .set_item(Some(item))
            .condition_expression(CONDITION)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await
            .map(|_| ())
    }

    /// Floor: the event's conditional PutItem alone, of a new item.
    pub async fn floor_put(&self) -> Result<(Duration, FloorItem), String> {
        let now = latchkey::time::now_secs();
        let item = self.event_item(FLOOR_SOURCE, &message_id(), now)?;
        let again = item.clone();
        let started = Instant::now();
        self.put(item, now).await.map_err(|e| format!("floor PutItem: {e}"))?;
        Ok((started.elapsed(), FloorItem { item: again, now }))
    }

    /// Floor of a duplicate: the same PutItem again, refused by its condition.
    pub async fn floor_put_again(&self, written: FloorItem) -> Result<Duration, String> {
        let now = latchkey::time::now_secs().max(written.now);
        let started = Instant::now();
        let result = self.put(written.item, now).await;
        let elapsed = started.elapsed();
        match result {
            Err(err) if err.as_service_error().is_some_and(PutItemError::is_conditional_check_failed_exception) => {
                Ok(elapsed)
            }
            Ok(()) => Err("floor PutItem again: the condition held; expected it to fail".into()),
            Err(err) => Err(format!("floor PutItem again: {err}")),
        }
    }

    /// One of each timed operation, untimed: for warming up.
    pub async fn exercise(&self) -> Result<(), String> {
        let (_, floor) = self.floor_put().await?;
        let (_, delivery) = self.accept().await?;
        self.floor_put_again(floor).await?;
        self.duplicate(&delivery).await?;
        Ok(())
    }

    /// Checks that the floor's item has the shape of a stored event: the same
    /// attributes, of the same types and sizes.
    pub async fn check_floor_shape(&self) -> Result<(), String> {
        let (_, delivery) = self.accept().await?;
        let stored = self
            .app
            .stored_webhook_event(SOURCE, &delivery.id)
            .await
            .ok_or("an accepted webhook event is not in the table")?;
        let received_at = stored
            .get("received_at")
            .and_then(|value| value.as_n().ok())
            .and_then(|text| text.parse().ok())
            .ok_or("a stored webhook event without received_at")?;
        let floor = self.event_item(FLOOR_SOURCE, &message_id(), received_at)?;
        let (stored, floor) = (shape(&stored), shape(&floor));
        if stored != floor {
            return Err(format!(
                "the webhook floor's item is not shaped like a stored event:\n  event: {}\n  floor: {}",
                stored.join("; "),
                floor.join("; ")
            ));
        }
        Ok(())
    }

    /// DynamoDB calls of a delivery to an instance whose cache does not hold
    /// the source yet, then (warm) of a new delivery, the same one again and
    /// one with a forged signature.
    pub async fn count_calls(&self) -> Result<Vec<CallCount>, String> {
        let calls = &self.app.calls;
        let fresh = self.app.latchkey.webhook_service();
        let mut counted = Vec::new();
        let first = self.delivery()?;
        let warm = self.delivery()?;
        let forged = self.signed_with(&WebhookSecret::generate())?;
        for (operation, event, status) in [
            ("webhook accept, source not cached", &first.event, 200),
            ("webhook accept", &warm.event, 200),
            ("webhook duplicate", &warm.event, 200),
            ("webhook forged signature (source cached)", &forged.event, 401),
        ] {
            calls.take();
            let (_, response) = Self::send(&fresh, event).await?;
            let made = calls.take();
            if response.status() != status {
                return Err(format!(
                    "{operation}: answered {}, expected {status}: {}",
                    response.status(),
                    String::from_utf8_lossy(response.body().as_ref())
                ));
            }
            counted.push(CallCount::new(operation, made));
        }
        Ok(counted)
    }
}
