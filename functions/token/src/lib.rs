//! POST /v1/auth/token: the HTTP adapter around [`ExchangeService`]. It reads
//! the grant from a JSON or form body, HTTP Basic client authentication, or
//! a bare `Authorization: Bearer <client assertion>`.

use lambda_http::Request;
use lambda_http::http::{Method, StatusCode};
use latchkey::error::ApiError;
use latchkey::http::{
    Authorization, HttpResponse, authorization, body_is_blank, client_ip, json_response, path_is, read_json_or_form,
    require_method, respond,
};
use latchkey::service::{ExchangeRequest, ExchangeService, Grant};
use secrecy::SecretString;
use serde::Deserialize;

pub use latchkey::service::exchange::TOKEN_PATH as PATH;

/// Handles one request. Never fails: every error is a JSON response.
pub async fn handle(service: &ExchangeService, max_body_bytes: usize, req: Request) -> HttpResponse {
    // Boxed: the exchange future holds several SDK calls.
    respond(&req, Box::pin(token(service, max_body_bytes, &req))).await
}

/// The grant types this endpoint knows; anything else is
/// `unsupported_grant_type` (RFC 6749 §5.2), not a parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum GrantType {
    #[serde(rename = "api_key")]
    ApiKey,
    #[serde(rename = "client_credentials")]
    ClientCredentials,
    #[serde(rename = "urn:ietf:params:oauth:grant-type:jwt-bearer")]
    JwtBearer,
    #[serde(other)]
    Unsupported,
}

/// Every parameter any grant takes; unknown ones are ignored, as OAuth
/// clients send extras (RFC 6749 §3.2).
#[derive(Debug, Default, Deserialize)]
struct TokenParams {
    grant_type: Option<GrantType>,
    api_key_id: Option<String>,
    api_key_secret: Option<SecretString>,
    workspace: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    assertion: Option<SecretString>,
    scope: Option<String>,
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::InvalidRequest(format!("{name} is required for this grant_type")))
}

async fn token(service: &ExchangeService, max_body_bytes: usize, req: &Request) -> Result<HttpResponse, ApiError> {
    let request = read_request(req, max_body_bytes)?;
    let tokens = service.exchange(request).await?;
    Ok(json_response(StatusCode::OK, &tokens))
}

/// The request as the exchange reads it: route, method, body and
/// `Authorization` header into a grant. No I/O; public for the fuzz targets.
#[doc(hidden)]
pub fn read_request(req: &Request, max_body_bytes: usize) -> Result<ExchangeRequest, ApiError> {
    if !path_is(req, PATH) {
        return Err(ApiError::NotFound(latchkey::error::NO_SUCH_ENDPOINT));
    }
    require_method(req, &Method::POST, "POST")?;
    let header = authorization(req)?;
    // A bare `Authorization: Bearer <assertion>` may come with no body.
    let params: TokenParams = if body_is_blank(req) && header.is_some() {
        TokenParams::default()
    } else {
        read_json_or_form(req, max_body_bytes)?
    };
    let scope = params.scope.clone();
    let grant = read_grant(params, header)?;
    Ok(ExchangeRequest { grant, scope, client_ip: client_ip(req) })
}

fn read_grant(params: TokenParams, header: Option<Authorization>) -> Result<Grant, ApiError> {
    let Some(grant_type) = params.grant_type else {
        return match header {
            Some(Authorization::Bearer(assertion)) => Ok(Grant::JwtBearer { assertion }),
            _ => Err(ApiError::InvalidRequest("grant_type is required".into())),
        };
    };
    match grant_type {
        GrantType::Unsupported => Err(ApiError::UnsupportedGrantType),
        GrantType::ApiKey => Ok(Grant::ApiKey {
            key_id: required(params.api_key_id, "api_key_id")?,
            secret: required(params.api_key_secret, "api_key_secret")?,
            workspace: params.workspace,
        }),
        GrantType::ClientCredentials => client_credentials(params, header),
        GrantType::JwtBearer => {
            let ((Some(assertion), _) | (None, Some(Authorization::Bearer(assertion)))) = (params.assertion, header)
            else {
                return Err(ApiError::InvalidRequest("assertion is required for this grant_type".into()));
            };
            Ok(Grant::JwtBearer { assertion })
        }
    }
}

/// RFC 6749 §2.3.1: HTTP Basic or `client_id` + `client_secret` in the body,
/// never both.
fn client_credentials(params: TokenParams, header: Option<Authorization>) -> Result<Grant, ApiError> {
    match header {
        Some(Authorization::Basic { user, password }) => {
            if params.client_secret.is_some() || params.client_id.as_ref().is_some_and(|id| *id != user) {
                return Err(ApiError::InvalidRequest(
                    "send the client credentials either in the Authorization header or in the body".into(),
                ));
            }
            Ok(Grant::ClientCredentials { client_id: user, client_secret: password, basic: true })
        }
        _ => match (params.client_id, params.client_secret) {
            (Some(client_id), Some(client_secret)) => {
                Ok(Grant::ClientCredentials { client_id, client_secret, basic: false })
            }
            _ => Err(ApiError::InvalidClient {
                message: "client authentication is required: HTTP Basic, or client_id and client_secret",
                basic: false,
            }),
        },
    }
}
