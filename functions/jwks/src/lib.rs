//! GET /.well-known/jwks.json and GET /.well-known/openid-configuration: the
//! HTTP adapter around [`DiscoveryService`]. Both are public and cacheable,
//! unlike every other Latchkey response.

use lambda_http::Request;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use latchkey::error::{ApiError, NO_SUCH_ENDPOINT};
use latchkey::http::{HttpResponse, json_response, path_is, require_method, respond};
use latchkey::service::DiscoveryService;
use latchkey::service::discovery::{JWKS_PATH, OPENID_CONFIGURATION_PATH};

/// Handles one request. Never fails: every error is a JSON response.
pub async fn handle(service: &DiscoveryService, req: Request) -> HttpResponse {
    respond(&req, Box::pin(route(service, &req))).await
}

async fn route(service: &DiscoveryService, req: &Request) -> Result<HttpResponse, ApiError> {
    let response = if path_is(req, JWKS_PATH) {
        require_method(req, &Method::GET, "GET")?;
        json_response(StatusCode::OK, &service.jwks().await?)
    } else if path_is(req, OPENID_CONFIGURATION_PATH) {
        require_method(req, &Method::GET, "GET")?;
        json_response(StatusCode::OK, &service.metadata().await?)
    } else {
        return Err(ApiError::NotFound(NO_SUCH_ENDPOINT));
    };
    Ok(cacheable(response, service.max_age().as_secs()))
}

/// Public documents: shared caches may keep them `max_age` seconds.
fn cacheable(mut response: HttpResponse, max_age: u64) -> HttpResponse {
    let headers = response.headers_mut();
    headers.remove(header::PRAGMA);
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}
