//! POST /v1/webhooks/{source}: the HTTP adapter around [`WebhookService`].
//! It hands the service the exact body bytes (API Gateway's base64 body is
//! already decoded by `lambda_http`), the signature headers of both schemes
//! and the headers worth keeping with the event.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use latchkey::error::{ApiError, NO_SUCH_ENDPOINT};
use latchkey::http::{HttpResponse, header_str, json_response, path_param, require_method, respond};
use latchkey::service::webhooks::{Delivery, STORED_HEADERS, WEBHOOK_PATH_PREFIX, WebhookService};
use latchkey::webhook::{Sha256Headers, StandardHeaders, header};

/// Handles one request. Never fails: every error is a JSON response.
pub async fn handle(service: &WebhookService, req: Request) -> HttpResponse {
    respond(&req, Box::pin(receive(service, &req))).await
}

/// The first of `names` the request carries.
fn first_header<'a>(req: &'a Request, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|name| header_str(req, name))
}

async fn receive(service: &WebhookService, req: &Request) -> Result<HttpResponse, ApiError> {
    let delivery = read_delivery(req)?;
    let receipt = service.receive(delivery, latchkey::time::now_secs()).await?;
    Ok(json_response(StatusCode::OK, &receipt))
}

/// The delivery as the service reads it: source, signature headers of both
/// schemes, kept headers and the exact body. No I/O; public for the fuzz
/// targets.
#[doc(hidden)]
pub fn read_delivery(req: &Request) -> Result<Delivery<'_>, ApiError> {
    let source = path_param(req, WEBHOOK_PATH_PREFIX).ok_or(ApiError::NotFound(NO_SUCH_ENDPOINT))?;
    require_method(req, &Method::POST, "POST")?;
    Ok(Delivery {
        source,
        standard: StandardHeaders {
            id: first_header(req, &[header::WEBHOOK_ID, header::SVIX_ID]),
            timestamp: first_header(req, &[header::WEBHOOK_TIMESTAMP, header::SVIX_TIMESTAMP]),
            signature: first_header(req, &[header::WEBHOOK_SIGNATURE, header::SVIX_SIGNATURE]),
        },
        sha256: Sha256Headers {
            signature: first_header(req, &[header::SIGNATURE, header::HUB_SIGNATURE_256]),
            timestamp: header_str(req, header::TIMESTAMP),
        },
        headers: STORED_HEADERS.iter().filter_map(|name| Some((*name, header_str(req, name)?.to_owned()))).collect(),
        body: req.body().as_ref(),
    })
}
