//! GET /v1/me, POST /v1/verify and the API-key self-service endpoints: the
//! HTTP adapter around [`ApiKeyService`].

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use latchkey::error::{ApiError, NO_SUCH_ENDPOINT};
use latchkey::http::{
    HttpResponse, body_is_blank, client_ip, json_response, path_is, path_param, query_param, read_json, require_method,
    respond,
};
use latchkey::service::api_keys::{Caller, CreateApiKeyRequest};
use latchkey::service::{ApiKeyService, Credential, VerifyRequest};
use secrecy::ExposeSecret as _;

pub const ME_PATH: &str = "/v1/me";
pub const KEYS_PATH: &str = "/v1/api-keys";
pub const VERIFY_PATH: &str = "/v1/verify";
const KEY_PREFIX: &str = "/v1/api-keys/";

/// Handles one request. Never fails: every error is a JSON response.
pub async fn handle(service: &ApiKeyService, max_body_bytes: usize, req: Request) -> HttpResponse {
    respond(&req, Box::pin(route(service, max_body_bytes, &req))).await
}

async fn route(service: &ApiKeyService, max_body_bytes: usize, req: &Request) -> Result<HttpResponse, ApiError> {
    if path_is(req, ME_PATH) {
        require_method(req, &Method::GET, "GET")?;
        let caller = authenticate(service, req).await?;
        Ok(json_response(StatusCode::OK, &caller.identity()))
    } else if path_is(req, KEYS_PATH) {
        if req.method() == Method::POST {
            let caller = authenticate(service, req).await?;
            let body: CreateApiKeyRequest = read_json(req, max_body_bytes)?;
            let created = service.create(&caller, body).await?;
            Ok(json_response(StatusCode::CREATED, &created))
        } else {
            require_method(req, &Method::GET, "GET, POST")?;
            let caller = authenticate(service, req).await?;
            let keys = service.list(&caller, read_list_limit(req)?, query_param(req, "cursor")).await?;
            Ok(json_response(StatusCode::OK, &keys))
        }
    } else if path_is(req, VERIFY_PATH) {
        let request = read_verify_request(req, max_body_bytes)?;
        let verdict = service.guard().verify(request, req.headers(), client_ip(req)).await?;
        let mut response = json_response(StatusCode::OK, &verdict);
        if let Some(status) = verdict.rate_limit() {
            status.write_headers(response.headers_mut());
        }
        Ok(response)
    } else if let Some(id) = path_param(req, KEY_PREFIX) {
        require_method(req, &Method::DELETE, "DELETE")?;
        let caller = authenticate(service, req).await?;
        let revoked = service.revoke(&caller, id).await?;
        Ok(json_response(StatusCode::OK, &revoked))
    } else {
        Err(ApiError::NotFound(NO_SUCH_ENDPOINT))
    }
}

/// `GET /v1/api-keys`' page size. No I/O; public for the fuzz targets.
#[doc(hidden)]
pub fn read_list_limit(req: &Request) -> Result<Option<i32>, ApiError> {
    query_param(req, "limit")
        .map(|raw| raw.parse().map_err(|_| ApiError::InvalidRequest("limit must be a number".into())))
        .transpose()
}

/// `POST /v1/verify`'s body (none: the credential is in the headers). No
/// I/O; public for the fuzz targets.
#[doc(hidden)]
pub fn read_verify_request(req: &Request, max_body_bytes: usize) -> Result<VerifyRequest, ApiError> {
    require_method(req, &Method::POST, "POST")?;
    if body_is_blank(req) { Ok(VerifyRequest::default()) } else { read_json(req, max_body_bytes) }
}

/// A bearer access token, or `X-API-Key` with `X-Tenant-ID`; never both.
async fn authenticate(service: &ApiKeyService, req: &Request) -> Result<Caller, ApiError> {
    match Credential::from_headers(req.headers())? {
        Credential::Bearer(token) => service.authenticate_bearer(token.expose_secret()).await,
        Credential::ApiKey { key, tenant } => {
            service.authenticate_api_key(key.expose_secret(), &tenant, client_ip(req)).await
        }
    }
}
