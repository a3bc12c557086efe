//! A team's own "orders" API, protected in-process by Latchkey's middleware:
//! [`Guard::authorize`] makes the same decision as the authorizer function
//! and `POST /v1/verify` (credential, scope, IP allow list, rate limit), and
//! its refusals become Latchkey's own 401, 403, 429 and 503 answers.
//!
//! - `GET /orders` (scope `orders:read`): the orders and who asked.
//! - `POST /orders` (scope `orders:write`): echoes the JSON object sent, 201.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use latchkey::domain::Scopes;
use latchkey::error::{ApiError, NO_SUCH_ENDPOINT};
use latchkey::http::{json_response, path_is, read_json, respond};
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
    let scope = if reading { READ_SCOPE } else { WRITE_SCOPE };
    let required = Scopes::parse(scope).map_err(|err| ApiError::Internal(err.into()))?;
    // Decided before the body is read: a caller not admitted hears only the
    // guard's answer, and an admitted one's malformed body still counts.
    let admission = guard.authorize(req, &required).await?;
    let identity = admission.identity();
    let caller = Caller { sub: identity.sub, tid: identity.tid };
    let mut response = if reading {
        json_response(StatusCode::OK, &OrderList { orders: sample_orders(), caller })
    } else {
        let order = read_json(req, MAX_BODY_BYTES)?;
        json_response(StatusCode::CREATED, &CreatedOrder { order, caller })
    };
    admission.write_headers(response.headers_mut());
    Ok(response)
}

/// Stands in for the team's own storage.
fn sample_orders() -> Vec<Order> {
    vec![Order { id: "ord_1001", item: "widget", quantity: 2 }, Order { id: "ord_1002", item: "gadget", quantity: 1 }]
}
