//! The one error type every handler answers with, and the store's errors.
//!
//! `ApiError::status_code` is the single place a failure becomes an HTTP
//! status; `error_code` and `public_description` are the only things a caller
//! ever sees. Causes stay in `#[source]` for the logs.

use std::borrow::Cow;
use std::time::Duration;

use lambda_http::http::StatusCode;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A DynamoDB failure the domain cannot answer for. Conditional-check
/// failures never get here: each store turns them into a domain answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// DynamoDB is unreachable, throttling, timing out or refusing the call.
    #[error("DynamoDB {operation} failed")]
    Unavailable {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// The table is missing (wrong `LATCHKEY_TABLE_NAME`, or not created).
    #[error("DynamoDB {operation} failed: the table does not exist")]
    Misconfigured {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// An item in the table does not have the shape `store` writes.
    #[error("item {key} is malformed: {reason}")]
    Corrupt { key: String, reason: String },
}

impl StoreError {
    pub fn corrupt(key: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt { key: key.into(), reason: reason.into() }
    }
}

/// Every failure a Latchkey endpoint can answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("Content-Type must be {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{0}")]
    NotFound(&'static str),
    /// Wrong email or password, unknown app or API key: the text is fixed
    /// per kind of credential, so it never tells which part was wrong.
    #[error("{0}")]
    InvalidCredentials(&'static str),
    #[error("{0}")]
    InvalidToken(&'static str),
    /// No credentials at all: 401 with a bare `Bearer` challenge (RFC 6750
    /// §3.1 leaves the error code out when the request had none).
    #[error("{0}")]
    CredentialsRequired(&'static str),
    /// RFC 6749 §5.2 `invalid_client`: the client_credentials grant's client
    /// failed to authenticate. `basic` when it used HTTP Basic, which calls
    /// for a `WWW-Authenticate: Basic` challenge.
    #[error("{message}")]
    InvalidClient { message: &'static str, basic: bool },
    #[error("grant_type must be api_key, client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer")]
    UnsupportedGrantType,
    /// A requested scope the credential does not hold (RFC 6749 §5.2).
    #[error("{0}")]
    InvalidScope(String),
    /// The token is fine but lacks the scope this operation needs (RFC 6750 §3.1).
    #[error("{message}")]
    InsufficientScope { message: &'static str, scope: Cow<'static, str> },
    #[error("requests from this IP address are not allowed for this API key")]
    IpNotAllowed,
    /// An inbound webhook that is unsigned, wrongly signed or not fresh.
    #[error(transparent)]
    WebhookRejected(#[from] crate::webhook::WebhookRejection),
    #[error("{message}")]
    RateLimited { retry_after: Duration, message: &'static str },
    /// The plan's (or key's) hourly limit is used up.
    #[error("the rate limit of {} requests per hour is used up; retry when the window resets", .0.limit)]
    QuotaExceeded(crate::rate_limit::RateLimitStatus),
    #[error("the service is temporarily unavailable; retry shortly")]
    Unavailable(#[source] BoxError),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

/// The 404 text for a path no function serves.
pub const NO_SUCH_ENDPOINT: &str = "no such endpoint";

/// How long clients are asked to wait after a 503.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(1);

impl ApiError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::UnsupportedGrantType | ApiError::InvalidScope(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidCredentials(_)
            | ApiError::InvalidToken(_)
            | ApiError::CredentialsRequired(_)
            | ApiError::InvalidClient { .. }
            | ApiError::WebhookRejected(_) => StatusCode::UNAUTHORIZED,
            ApiError::InsufficientScope { .. } | ApiError::IpNotAllowed => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `error` field of the JSON body.
    pub fn error_code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) | ApiError::PayloadTooLarge { .. } => "invalid_request",
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::NotFound(_) => "not_found",
            ApiError::InvalidCredentials(_) | ApiError::WebhookRejected(_) => "invalid_credentials",
            ApiError::InvalidToken(_) | ApiError::CredentialsRequired(_) => "invalid_token",
            ApiError::InvalidClient { .. } => "invalid_client",
            ApiError::UnsupportedGrantType => "unsupported_grant_type",
            ApiError::InvalidScope(_) => "invalid_scope",
            ApiError::InsufficientScope { .. } => "insufficient_scope",
            ApiError::IpNotAllowed => "ip_not_allowed",
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "server_error",
        }
    }

    /// The `error_description` field: the Display text, which never includes
    /// a cause (causes are `#[source]`, for logs only).
    pub fn public_description(&self) -> String {
        self.to_string()
    }

    /// `Retry-After` seconds, where the status calls for one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(*retry_after),
            ApiError::QuotaExceeded(status) => Some(Duration::from_secs(status.retry_after_secs())),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { .. } => ApiError::Unavailable(Box::new(err)),
            StoreError::Corrupt { .. } | StoreError::Misconfigured { .. } => ApiError::Internal(Box::new(err)),
        }
    }
}

/// Renders an error and its causes on one line, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_text_never_includes_the_cause() {
        let err: ApiError =
            StoreError::Unavailable { operation: "GetItem", source: "connection refused to secret-host".into() }.into();
        assert_eq!(err.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.error_code(), "unavailable");
        assert!(!err.public_description().contains("secret-host"));
        assert!(error_chain(&err).contains("connection refused"));
        assert_eq!(err.retry_after(), Some(UNAVAILABLE_RETRY_AFTER));
    }

    #[test]
    fn corrupt_items_are_internal_errors() {
        let err: ApiError = StoreError::corrupt("USER#x", "no hash").into();
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.public_description(), "internal error");
    }
}
