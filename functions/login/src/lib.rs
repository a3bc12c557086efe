//! POST /v1/auth/login: the HTTP adapter around [`LoginService::login`].

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use latchkey::error::ApiError;
use latchkey::http::{HttpResponse, client_ip, header_str, json_response, path_is, read_json, require_method, respond};
use latchkey::service::LoginService;
use latchkey::service::login::{AppCredentials, LoginRequest};

pub const PATH: &str = "/v1/auth/login";

/// Handles one request. Never fails: every error is a JSON response.
pub async fn handle(service: &LoginService, max_body_bytes: usize, req: Request) -> HttpResponse {
    // Boxed: the login future holds several SDK calls (about 30 KB).
    respond(&req, Box::pin(login(service, max_body_bytes, &req))).await
}

async fn login(service: &LoginService, max_body_bytes: usize, req: &Request) -> Result<HttpResponse, ApiError> {
    let (body, app) = read_request(req, max_body_bytes)?;
    let tokens = service.login(body, app, client_ip(req)).await?;
    Ok(json_response(StatusCode::OK, &tokens))
}

/// The request as the login reads it: route, method, body and app
/// credentials. No I/O; public for the fuzz targets.
#[doc(hidden)]
pub fn read_request(req: &Request, max_body_bytes: usize) -> Result<(LoginRequest, Option<AppCredentials>), ApiError> {
    if !path_is(req, PATH) {
        return Err(ApiError::NotFound(latchkey::error::NO_SUCH_ENDPOINT));
    }
    require_method(req, &Method::POST, "POST")?;
    let body: LoginRequest = read_json(req, max_body_bytes)?;
    Ok((body, app_credentials(req)?))
}

/// `X-App-Id` and `X-App-Secret` come together or not at all.
fn app_credentials(req: &Request) -> Result<Option<AppCredentials>, ApiError> {
    match (header_str(req, "x-app-id"), header_str(req, "x-app-secret")) {
        (None, None) => Ok(None),
        (Some(app_id), Some(secret)) => {
            Ok(Some(AppCredentials { app_id: app_id.to_owned(), secret: secret.to_owned().into() }))
        }
        _ => Err(ApiError::InvalidRequest("X-App-Id and X-App-Secret must be sent together".into())),
    }
}
