//! POST /v1/auth/refresh and POST /v1/auth/revoke (RFC 7009): the HTTP
//! adapter around [`RefreshService`].

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use latchkey::error::ApiError;
use latchkey::http::{HttpResponse, json_response, path_is, read_json, read_json_or_form, require_method, respond};
use latchkey::service::{RefreshRequest, RefreshService, RevokeRequest};

pub const REFRESH_PATH: &str = "/v1/auth/refresh";
pub const REVOKE_PATH: &str = "/v1/auth/revoke";

/// Handles one request. Never fails: every error is a JSON response.
pub async fn handle(service: &RefreshService, max_body_bytes: usize, req: Request) -> HttpResponse {
    // Boxed: the rotation future holds several SDK calls (about 16 KB).
    respond(&req, Box::pin(route(service, max_body_bytes, &req))).await
}

async fn route(service: &RefreshService, max_body_bytes: usize, req: &Request) -> Result<HttpResponse, ApiError> {
    match read_request(req, max_body_bytes)? {
        SessionRequest::Refresh(body) => {
            let tokens = service.refresh(body).await?;
            Ok(json_response(StatusCode::OK, &tokens))
        }
        SessionRequest::Revoke(body) => {
            service.revoke(body).await?;
            Ok(json_response(StatusCode::OK, &serde_json::json!({})))
        }
    }
}

/// What a request to the refresh function asks for.
#[derive(Debug)]
pub enum SessionRequest {
    Refresh(RefreshRequest),
    Revoke(RevokeRequest),
}

/// The request as the function reads it: route, method and body. No I/O;
/// public for the fuzz targets.
#[doc(hidden)]
pub fn read_request(req: &Request, max_body_bytes: usize) -> Result<SessionRequest, ApiError> {
    if path_is(req, REFRESH_PATH) {
        require_method(req, &Method::POST, "POST")?;
        Ok(SessionRequest::Refresh(read_json(req, max_body_bytes)?))
    } else if path_is(req, REVOKE_PATH) {
        require_method(req, &Method::POST, "POST")?;
        // RFC 7009 clients send a form; JSON is accepted too.
        Ok(SessionRequest::Revoke(read_json_or_form(req, max_body_bytes)?))
    } else {
        Err(ApiError::NotFound(latchkey::error::NO_SUCH_ENDPOINT))
    }
}
