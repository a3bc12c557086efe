//! Requests as the functions read them: each route's request → typed input
//! step (body decoders, `Authorization` incl. Basic, `X-API-Key`), then the
//! credential checks that need no DynamoDB. Also the two Lambda event
//! decoders in front of them: API Gateway's HTTP event and the authorizer's.

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::http::{HeaderMap, Method};
use lambda_http::request::LambdaRequest;
use lambda_http::{Request, RequestExt as _};
use latchkey::domain::{Email, Label, Password, parse_allow_list};
use latchkey::error::{ApiError, NO_SUCH_ENDPOINT};
use latchkey::http::{path_is, path_param, read_json, require_method};
use latchkey::service::api_keys::CreateApiKeyRequest;
use latchkey::service::webhooks::WEBHOOK_PATH_PREFIX;
use latchkey::service::{Credential, Grant};
use secrecy::ExposeSecret as _;

use crate::fixture::MAX_BODY_BYTES;
use crate::tokens::{
    check_key_string, check_presented_secret, open_refresh_token, verify_access_token, verify_assertion,
};
use crate::{Outcome, assert_refused, message, webhooks};

/// `keys`' path of one key (`DELETE /v1/api-keys/{id}`).
const KEY_PREFIX: &str = "/v1/api-keys/";

/// A credential from headers, checked as far as the service goes without
/// DynamoDB: an access token fully, an API key's shape and secret.
fn check_credential(headers: &HeaderMap) -> Result<(), ApiError> {
    match Credential::from_headers(headers)? {
        Credential::Bearer(token) => verify_access_token(token.expose_secret()).map(drop).map_err(ApiError::from),
        Credential::ApiKey { key, .. } => check_key_string(key.expose_secret()),
    }
}

fn login(req: &Request) -> Result<(), ApiError> {
    let (body, _app) = login::read_request(req, MAX_BODY_BYTES)?;
    // Decoding normalised the email once and for all.
    assert_eq!(Email::parse(body.email.as_str()).as_ref(), Ok(&body.email), "email not normalised");
    assert!(Password::parse(body.password.expose().to_owned()).is_ok(), "an invalid password decoded");
    Ok(())
}

/// The refresh function's own reading (refresh and revoke), then the
/// token's MAC check.
fn refresh(req: &Request) -> Result<(), ApiError> {
    let token = match refresh::read_request(req, MAX_BODY_BYTES)? {
        refresh::SessionRequest::Refresh(body) => body.refresh_token,
        refresh::SessionRequest::Revoke(body) => body.token,
    };
    open_refresh_token(token.expose_secret());
    Ok(())
}

/// The token function's own reading, then the exchange's first steps.
fn exchange(req: &Request) -> Result<(), ApiError> {
    let request = token::read_request(req, MAX_BODY_BYTES)?;
    let scheme = req.headers().get("authorization").and_then(|value| value.to_str().ok()).map(str::trim);
    let basic = scheme.is_some_and(|value| value.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")));
    if let Some(scope) = &request.scope {
        latchkey::domain::Scopes::parse(scope).map_err(|e| ApiError::InvalidScope(e.0))?;
    }
    match request.grant {
        Grant::ApiKey { key_id, secret, .. } => check_presented_secret(&key_id, secret.expose_secret()),
        Grant::ClientCredentials { client_id, client_secret, basic: from_header } => {
            assert_eq!(from_header, basic, "HTTP Basic credentials read from elsewhere, or the reverse");
            check_presented_secret(&client_id, client_secret.expose_secret())
        }
        Grant::JwtBearer { assertion } => verify_assertion(assertion.expose_secret()).map(drop).map_err(ApiError::from),
    }
}

fn me(req: &Request) -> Result<(), ApiError> {
    require_method(req, &Method::GET, "GET")?;
    check_credential(req.headers())
}

fn api_keys(req: &Request) -> Result<(), ApiError> {
    if req.method() == Method::POST {
        check_credential(req.headers())?;
        let body: CreateApiKeyRequest = read_json(req, MAX_BODY_BYTES)?;
        // `ApiKeyService::create`'s checks of the body.
        if let Some(scopes) = &body.scopes {
            scopes.parse()?;
        }
        parse_allow_list(body.allowed_ips.iter().flatten().map(String::as_str))
            .map_err(|e| ApiError::InvalidRequest(e.0))?;
        Label::parse(&body.name).map_err(|e| ApiError::InvalidRequest(e.0))?;
        Ok(())
    } else {
        require_method(req, &Method::GET, "GET, POST")?;
        check_credential(req.headers())?;
        keys::read_list_limit(req).map(drop)
    }
}

/// `POST /v1/verify`: the body's fields, and the credential they or the
/// headers carry.
fn verify(req: &Request) -> Result<(), ApiError> {
    let body = keys::read_verify_request(req, MAX_BODY_BYTES)?;
    if let Some(scope) = &body.scope {
        scope.parse()?;
    }
    match (&body.token, &body.api_key) {
        (Some(token), _) => verify_access_token(token.expose_secret()).map(drop).map_err(ApiError::from),
        (None, Some(key)) => check_key_string(key.expose_secret()),
        (None, None) => check_credential(req.headers()),
    }
}

fn revoke_key(req: &Request) -> Result<(), ApiError> {
    require_method(req, &Method::DELETE, "DELETE")?;
    check_credential(req.headers())
}

/// Routes a request as API Gateway and the functions do, and reads it as
/// that route's function does. Accepted: typed input came out (and the
/// credential, if the route takes one, passed the checks that need no
/// DynamoDB).
pub(crate) fn decode(req: &Request) -> Outcome {
    if path_param(req, WEBHOOK_PATH_PREFIX).is_some() {
        return webhooks::check_delivery(req);
    }
    let result = if path_is(req, login::PATH) {
        login(req)
    } else if path_is(req, refresh::REFRESH_PATH) || path_is(req, refresh::REVOKE_PATH) {
        refresh(req)
    } else if path_is(req, token::PATH) {
        exchange(req)
    } else if path_is(req, keys::ME_PATH) {
        me(req)
    } else if path_is(req, keys::KEYS_PATH) {
        api_keys(req)
    } else if path_is(req, keys::VERIFY_PATH) {
        verify(req)
    } else if path_param(req, KEY_PREFIX).is_some() {
        revoke_key(req)
    } else {
        Err(ApiError::NotFound(NO_SUCH_ENDPOINT))
    };
    match result {
        Ok(()) => Outcome::Accepted,
        Err(err) => assert_refused(&err),
    }
}

/// The request decoders of every route; the input is a message (see
/// [`message`]).
pub fn request_body(data: &[u8]) -> Outcome {
    message::request(data).map_or(Outcome::Refused, |req| decode(&req))
}

/// An API Gateway HTTP API (payload 2.0) event as the Lambda runtime
/// deserialises it and `latchkey::http::run` turns it into a request, then
/// the same decoders.
pub fn apigw_event(data: &[u8]) -> Outcome {
    let Ok(event) = serde_json::from_slice::<LambdaRequest>(data) else {
        return Outcome::Refused;
    };
    let req = latchkey::http::request_from_event(event);
    // What the functions read of the event's context.
    let _ = (latchkey::http::client_ip(&req), latchkey::http::request_id(&req), req.query_string_parameters());
    decode(&req)
}

/// The authorizer's event (payload 2.0 authorizer request), then its
/// credential, checked as far as the authorizer goes without DynamoDB.
pub fn authorizer_event(data: &[u8]) -> Outcome {
    let Ok(event) = serde_json::from_slice::<ApiGatewayV2CustomAuthorizerV2Request>(data) else {
        return Outcome::Refused;
    };
    let _ = event.request_context.http.source_ip.as_deref().map(str::parse::<std::net::IpAddr>);
    match check_credential(&event.headers) {
        Ok(()) => Outcome::Accepted,
        Err(err) => assert_refused(&err),
    }
}
