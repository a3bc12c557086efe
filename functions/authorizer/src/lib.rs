//! The API Gateway HTTP API Lambda authorizer for a team's own routes
//! (payload format 2.0, simple responses): the adapter around [`Guard`].
//!
//! A Lambda authorizer can only allow or deny; API Gateway answers a deny
//! with 403 whatever the reason, so a rate-limited caller sees 403, not 429.
//! Exact 401/403/429 answers come from `POST /v1/verify` or the Rust
//! middleware ([`Guard::authorize`]). DynamoDB trouble denies too (fail
//! closed), logged as an error.

use std::collections::HashMap;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use latchkey::domain::Scopes;
use latchkey::error::error_chain;
use latchkey::service::{Credential, Guard};
use serde::Serialize;

/// The simple response: allow or deny, and on allow the context API Gateway
/// hands the route's integration (`$context.authorizer.<name>`, or
/// `requestContext.authorizer.lambda` in a Lambda integration's event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub is_authorized: bool,
    pub context: AuthorizerContext,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuthorizerContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// `access_token` or `api_key`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Absent when the request was not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_remaining: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit_reset: Option<u64>,
}

impl AuthorizerResponse {
    fn deny() -> Self {
        Self { is_authorized: false, context: AuthorizerContext::default() }
    }
}

/// The authorizer: the guard plus the scopes each route requires.
#[derive(Debug)]
pub struct Authorizer {
    guard: Guard,
    route_scopes: HashMap<String, Scopes>,
}

impl Authorizer {
    pub fn new(guard: Guard, route_scopes: HashMap<String, Scopes>) -> Self {
        Self { guard, route_scopes }
    }

    /// Decides one request. Never fails: anything wrong is a deny.
    pub async fn handle(&self, event: &ApiGatewayV2CustomAuthorizerV2Request) -> AuthorizerResponse {
        let route = event.route_key.as_deref().unwrap_or("$default");
        let none = Scopes::default();
        let required = self.route_scopes.get(route).unwrap_or(&none);
        let client_ip = event.request_context.http.source_ip.as_deref().and_then(|ip| ip.parse().ok());
        let request_id = event.request_context.request_id.as_deref();
        let decision = match Credential::from_headers(&event.headers) {
            Ok(credential) => self.guard.check(&credential, client_ip, required).await,
            Err(err) => Err(err),
        };
        match decision {
            Ok(admission) => {
                let identity = admission.identity();
                let status = admission.rate_limit;
                tracing::info!(request_id, route, tid = %identity.tid, credential = identity.credential, "allowed");
                AuthorizerResponse {
                    is_authorized: true,
                    context: AuthorizerContext {
                        sub: Some(identity.sub),
                        tid: Some(identity.tid),
                        scope: Some(identity.scope),
                        env: Some(identity.env.as_str().to_owned()),
                        credential: Some(identity.credential),
                        client_id: identity.client_id,
                        ratelimit_limit: status.map(|s| s.limit),
                        ratelimit_remaining: status.map(|s| s.remaining),
                        ratelimit_reset: status.map(|s| s.reset),
                    },
                }
            }
            Err(err) if err.status_code().is_server_error() => {
                tracing::error!(request_id, route, error = %error_chain(&err), "denied: the decision failed");
                AuthorizerResponse::deny()
            }
            Err(err) => {
                tracing::info!(request_id, route, reason = err.error_code(), "denied");
                AuthorizerResponse::deny()
            }
        }
    }
}
