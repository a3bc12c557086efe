//! A team's own "orders" API, protected in-process by Latchkey's middleware:
//! [`Guard::authorize`] makes the same decision as the authorizer function
//! and `POST /v1/verify` (credential, scope, IP allow list, rate limit), and
//! its refusals become Latchkey's own 401, 403, 429 and 503 answers.
//!
//! - `GET /orders` (scope `orders:read`): the orders and who asked.
//! - `POST /orders` (scope `orders:write`): echoes the JSON object sent, 201.
//!
//! Behind an API Gateway authorizer (the built-in JWT authorizer, or
//! Latchkey's Lambda authorizer; the stack's `/jwt/orders` and
//! `/lambda/orders` routes) the request arrives already decided, with the
//! caller in the request context: the handler takes it from there instead
//! of deciding again, which would count one request twice against the rate
//! limit. The route's scopes are then the authorizer's to enforce.

use lambda_http::http::{Method, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use latchkey::domain::Scopes;
use latchkey::error::{ApiError, NO_SUCH_ENDPOINT};
use latchkey::http::{json_response, path_is, read_json, respond};
use latchkey::rate_limit::RateLimitStatus;
use latchkey::service::Guard;
use serde::Serialize;
use serde_json::{Map, Value};

pub const ORDERS_PATH: &str = "/orders";
pub const READ_SCOPE: &str = "orders:read";
pub const WRITE_SCOPE: &str = "orders:write";
/// The largest order body accepted.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Who the guard admitted, as this API tells them.
#[derive(Debug, Serialize)]
struct Caller {
    sub: String,
    tid: String,
}

#[derive(Debug, Serialize)]
struct Order {
    id: &'static str,
    item: &'static str,
    quantity: u32,
}

#[derive(Debug, Serialize)]
struct OrderList {
    orders: Vec<Order>,
    caller: Caller,
}

#[derive(Debug, Serialize)]
struct CreatedOrder {
    order: Map<String, Value>,
    caller: Caller,
}

/// Handles one request. Never fails: an error becomes its JSON answer
/// (through [`latchkey::http::error_response`], with `WWW-Authenticate`,
/// `Retry-After` and the rate-limit headers its status calls for).
pub async fn handle(guard: &Guard, req: Request) -> Response<Body> {
    respond(&req, Box::pin(route(guard, &req))).await
}

async fn route(guard: &Guard, req: &Request) -> Result<Response<Body>, ApiError> {
    if !path_is(req, ORDERS_PATH) {
        return Err(ApiError::NotFound(NO_SUCH_ENDPOINT));
    }
    let reading = req.method() == Method::GET;
    if !reading && req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "GET, POST" });
    }
    let (caller, rate_limit) = if let Some(admitted) = admitted_upstream(req) {
        admitted
    } else {
        let scope = if reading { READ_SCOPE } else { WRITE_SCOPE };
        let required = Scopes::parse(scope).map_err(|err| ApiError::Internal(err.into()))?;
        // Decided before the body is read: a caller not admitted hears only
        // the guard's answer, and an admitted one's malformed body still
        // counts.
        let admission = guard.authorize(req, &required).await?;
        let identity = admission.identity();
        (Caller { sub: identity.sub, tid: identity.tid }, admission.rate_limit)
    };
    let mut response = if reading {
        json_response(StatusCode::OK, &OrderList { orders: sample_orders(), caller })
    } else {
        let order = read_json(req, MAX_BODY_BYTES)?;
        json_response(StatusCode::CREATED, &CreatedOrder { order, caller })
    };
    if let Some(status) = rate_limit {
        status.write_headers(response.headers_mut());
    }
    Ok(response)
}

/// The caller an API Gateway authorizer admitted, from the request context
/// API Gateway wrote (a client cannot set it): the JWT authorizer's verified
/// claims, or the Lambda authorizer's context with its rate-limit numbers.
fn admitted_upstream(req: &Request) -> Option<(Caller, Option<RateLimitStatus>)> {
    let RequestContext::ApiGatewayV2(context) = req.request_context_ref()? else {
        return None;
    };
    let authorizer = context.authorizer.as_ref()?;
    if let Some(jwt) = &authorizer.jwt {
        let caller = Caller { sub: jwt.claims.get("sub")?.clone(), tid: jwt.claims.get("tid")?.clone() };
        return Some((caller, None));
    }
    let fields = &authorizer.fields;
    let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| fields.get(name).and_then(Value::as_u64);
    let caller = Caller { sub: text("sub")?, tid: text("tid")? };
    let rate_limit = match (number("ratelimit_limit"), number("ratelimit_remaining"), number("ratelimit_reset")) {
        (Some(limit), Some(remaining), Some(reset)) => Some(RateLimitStatus {
            limit: u32::try_from(limit).ok()?,
            remaining: u32::try_from(remaining).ok()?,
            reset,
        }),
        _ => None,
    };
    Some((caller, rate_limit))
}

/// Stands in for the team's own storage.
fn sample_orders() -> Vec<Order> {
    vec![Order { id: "ord_1001", item: "widget", quantity: 2 }, Order { id: "ord_1002", item: "gadget", quantity: 1 }]
}
