//! HTTP adapter helpers shared by every function: reading typed input out of
//! an API Gateway request, and writing JSON responses and errors.
//!
//! Nothing here logs a header or a body: they carry passwords and tokens.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::task::{Context, Poll};
use std::time::Instant;

use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{Adapter, Body, IntoResponse, Request, RequestExt as _, Response, Service};
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, error_chain};

pub type HttpResponse = Response<Body>;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// Serialises `body` as the JSON response. Every response is `no-store`:
/// they carry tokens (RFC 6749 §5.1) or say who holds them.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("response types always serialise");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: String,
}

/// The SPEC's error body, with the headers its status calls for.
pub fn error_response(err: &ApiError) -> HttpResponse {
    let description = err.public_description();
    let mut response = json_response(
        err.status_code(),
        &ErrorBody { error: err.error_code(), error_description: description.clone() },
    );
    let headers = response.headers_mut();
    if let Some(wait) = err.retry_after() {
        // Whole seconds, rounded up: a client that waits this long is clear.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    match err {
        ApiError::InvalidToken(_) => {
            // RFC 6750 §3: the description is ours and has no quotes.
            let challenge = format!(r#"Bearer error="invalid_token", error_description="{description}""#);
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        ApiError::CredentialsRequired(_) => {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="latchkey""#));
        }
        ApiError::InsufficientScope { scope, .. } => {
            let challenge =
                format!(r#"Bearer error="insufficient_scope", error_description="{description}", scope="{scope}""#);
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        ApiError::InvalidClient { basic: true, .. } => {
            // RFC 6749 §5.2: answer HTTP Basic with its own challenge.
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="latchkey""#));
        }
        ApiError::MethodNotAllowed { allow } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        ApiError::QuotaExceeded(status) => status.write_headers(headers),
        _ => {}
    }
    response
}

/// Runs a function's handler on the Lambda runtime: `lambda_http::run`, with
/// each event first put through [`normalise_event`].
pub async fn run<'a, R, S, E>(handler: S) -> Result<(), lambda_http::Error>
where
    S: Service<Request, Response = R, Error = E>,
    S::Future: Send + 'a,
    R: IntoResponse,
    E: std::fmt::Debug + Into<Diagnostic>,
{
    lambda_runtime::run(Normalised(Adapter::from(handler))).await
}

/// `lambda_http`'s Lambda service, fed normalised events.
struct Normalised<S>(S);

impl<S: Service<LambdaEvent<LambdaRequest>>> Service<LambdaEvent<LambdaRequest>> for Normalised<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut event: LambdaEvent<LambdaRequest>) -> Self::Future {
        normalise_event(&mut event.payload);
        self.0.call(event)
    }
}

/// The request a handler gets for an event, as [`run`] makes it.
pub fn request_from_event(mut event: LambdaRequest) -> Request {
    normalise_event(&mut event);
    event.into()
}

/// Takes out of an API Gateway event what would make `lambda_http` (1.3)
/// panic while it turns the event into a request, before any handler runs
/// (with `panic = "abort"`, ending the instance): it unwraps the URL parse
/// of `{X-Forwarded-Proto}://{Host or domainName}{rawPath}`, expects
/// `http::Uri` to take that plus `?{rawQueryString}`, and expects a body
/// flagged base64 to decode. API Gateway writes the scheme, host and base64
/// itself, but not every byte of a client's query string, and `cargo lambda
/// watch` passes everything through. Found by the `apigw_event` fuzz target.
/// Latchkey reads only the path, query, headers and body, so:
/// - an `X-Forwarded-Proto` other than http(s), and a `Host` or `domainName`
///   that is not a plain host, are dropped (the URI then has no host);
/// - a path gets its leading `/`;
/// - query bytes outside RFC 3986's query characters are percent-encoded,
///   which leaves the decoded parameters as they were;
/// - a body flagged base64 that is not base64 is dropped.
pub fn normalise_event(event: &mut LambdaRequest) {
    use base64::Engine as _;
    let LambdaRequest::ApiGatewayV2(event) = event else {
        return;
    };
    let headers = &mut event.headers;
    let text = |headers: &HeaderMap, name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if text(headers, "x-forwarded-proto")
        .is_some_and(|scheme| !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http"))
    {
        headers.remove("x-forwarded-proto");
    }
    if text(headers, "host").is_some_and(|host| !is_plain_host(&host)) {
        headers.remove(header::HOST);
    }
    if event.request_context.domain_name.as_deref().is_some_and(|host| !is_plain_host(host)) {
        event.request_context.domain_name = None;
    }
    if let Some(path) = event.raw_path.as_mut().filter(|path| !path.is_empty() && !path.starts_with('/')) {
        path.insert(0, '/');
    }
    if let Some(query) = event.raw_query_string.as_mut().filter(|query| !query.bytes().all(is_query_byte)) {
        *query = query.bytes().fold(String::with_capacity(query.len() * 3), |mut out, byte| {
            use std::fmt::Write as _;
            if is_query_byte(byte) {
                out.push(char::from(byte));
            } else {
                let _ = write!(out, "%{byte:02X}");
            }
            out
        });
    }
    if event.is_base64_encoded
        && event.body.as_deref().is_some_and(|body| base64::engine::general_purpose::STANDARD.decode(body).is_err())
    {
        event.body = None;
    }
}

/// RFC 3986 `query` characters, and `%` (escapes are left as they are).
fn is_query_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte)
}

/// A host that URL parsing takes as it is: an IPv4 address, an IPv6 one in
/// brackets, or ASCII labels none of which is punycode (it would have to
/// decode) and whose last is not a number (it would have to be IPv4), with
/// an optional port.
fn is_plain_host(text: &str) -> bool {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => text.split_at(end + 1),
            None => return false,
        }
    } else {
        text.find(':').map_or((text, ""), |at| text.split_at(at))
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|digits| {
            (1..=5).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u32>().is_ok_and(|port| port <= 65535)
        });
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        v6.parse::<Ipv6Addr>().is_ok()
    } else if host.parse::<Ipv4Addr>().is_ok() {
        true
    } else {
        let labels: Vec<&str> = host.split('.').collect();
        labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.get(..4).is_some_and(|start| start.eq_ignore_ascii_case("xn--"))
        }) && labels.last().is_some_and(|last| {
            !last.bytes().all(|b| b.is_ascii_digit()) && !last.get(..2).is_some_and(|s| s.eq_ignore_ascii_case("0x"))
        })
    };
    port_ok && host_ok
}

/// Runs one request through `handler`, turns an error into its JSON answer
/// and writes one log line (method, route, status, latency; never headers or
/// bodies).
pub async fn respond<F>(req: &Request, handler: F) -> HttpResponse
where
    F: Future<Output = Result<HttpResponse, ApiError>>,
{
    let started = Instant::now();
    let result = handler.await;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let request_id = request_id(req);
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            if err.status_code().is_server_error() {
                tracing::error!(
                    request_id = request_id.as_deref(),
                    error = %error_chain(&err),
                    "request failed"
                );
            }
            error_response(&err)
        }
    };
    tracing::info!(
        request_id = request_id.as_deref(),
        method = %req.method(),
        path = req.uri().path(),
        status = response.status().as_u16(),
        elapsed_ms,
        "request"
    );
    response
}

/// Fails with 405 unless the request uses `method`.
pub fn require_method(req: &Request, method: &Method, allow: &'static str) -> Result<(), ApiError> {
    if req.method() == method { Ok(()) } else { Err(ApiError::MethodNotAllowed { allow }) }
}

/// Whether the request path is `suffix`, ignoring a leading API Gateway stage
/// segment and a trailing slash.
pub fn path_is(req: &Request, suffix: &str) -> bool {
    let path = req.uri().path().trim_end_matches('/');
    path == suffix || path.strip_suffix(suffix).is_some_and(|stage| stage.starts_with('/') && !stage[1..].contains('/'))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    Json,
    Form,
}

fn media_type(req: &Request) -> Option<MediaType> {
    let raw = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = raw.split(';').map(str::trim);
    let essence = parts.next()?.to_ascii_lowercase();
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    });
    if !charset_ok {
        return None;
    }
    match essence.as_str() {
        JSON => Some(MediaType::Json),
        FORM => Some(MediaType::Form),
        _ => None,
    }
}

fn body_within_limit(req: &Request, max_bytes: usize) -> Result<&[u8], ApiError> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge { limit: max_bytes });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest("request body is empty; expected a JSON object".into()));
    }
    Ok(body)
}

fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // A derived struct also deserializes from a JSON array of its fields in
    // order (`["ada@example.com", "pw"]` would be a login); every body is an object.
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::InvalidRequest("invalid request body: expected a JSON object, found an array".into()));
    }
    serde_json::from_slice(body).map_err(|err| {
        use serde_json::error::Category;
        ApiError::InvalidRequest(match err.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                format!("request body is not valid JSON: {err}")
            }
            Category::Data => format!("invalid request body: {err}"),
        })
    })
}

/// Reads a JSON body into `T`: 415 for another media type, 413 over the
/// limit, 400 for malformed JSON, a missing field or a wrong type.
pub fn read_json<T: DeserializeOwned>(req: &Request, max_bytes: usize) -> Result<T, ApiError> {
    if media_type(req) != Some(MediaType::Json) {
        return Err(ApiError::UnsupportedMediaType { expected: JSON });
    }
    decode_json(body_within_limit(req, max_bytes)?)
}

/// Like [`read_json`], but also takes `application/x-www-form-urlencoded`,
/// which OAuth clients send to RFC 6749/7009 endpoints.
pub fn read_json_or_form<T: DeserializeOwned>(req: &Request, max_bytes: usize) -> Result<T, ApiError> {
    match media_type(req) {
        Some(MediaType::Json) => decode_json(body_within_limit(req, max_bytes)?),
        Some(MediaType::Form) => serde_urlencoded::from_bytes(body_within_limit(req, max_bytes)?)
            .map_err(|err| ApiError::InvalidRequest(format!("invalid form body: {err}"))),
        None => {
            Err(ApiError::UnsupportedMediaType { expected: "application/json or application/x-www-form-urlencoded" })
        }
    }
}

/// The caller's address as API Gateway saw it (never a client-set header).
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

pub fn request_id(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        _ => None,
    }
}

/// A request header as text, if present and printable.
pub fn header_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Authorization` header, by scheme.
#[derive(Debug)]
pub enum Authorization {
    /// RFC 7617, with both parts form-decoded (RFC 6749 §2.3.1).
    Basic { user: String, password: SecretString },
    /// RFC 6750 §2.1.
    Bearer(SecretString),
    /// Any other scheme, or a header that is not text.
    Other,
}

/// Reads the `Authorization` header, if any.
pub fn authorization(req: &Request) -> Result<Option<Authorization>, ApiError> {
    authorization_header(req.headers())
}

/// Reads the `Authorization` header of any event's headers.
pub fn authorization_header(headers: &HeaderMap) -> Result<Option<Authorization>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(text) = value.to_str() else {
        return Ok(Some(Authorization::Other));
    };
    let (scheme, rest) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(Authorization::Bearer(rest.to_owned().into())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let malformed = || ApiError::InvalidRequest("the Basic credentials are not base64 of `id:secret`".into());
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).map_err(|_| malformed())?;
        let decoded = zeroize::Zeroizing::new(String::from_utf8(decoded).map_err(|_| malformed())?);
        let (user, password) = decoded.split_once(':').ok_or_else(malformed)?;
        let user = form_decode(user).ok_or_else(malformed)?;
        let password = form_decode(password).ok_or_else(malformed)?;
        return Ok(Some(Authorization::Basic { user, password: password.into() }));
    }
    Ok(Some(Authorization::Other))
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX`
/// a byte. `None` for a broken escape or bytes that are not UTF-8.
fn form_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// Whether the body is empty or only whitespace.
pub fn body_is_blank(req: &Request) -> bool {
    req.body().as_ref().iter().all(u8::is_ascii_whitespace)
}

/// The last path segment after `prefix` (e.g. the id in
/// `/v1/api-keys/{id}`), tolerating a stage segment before it.
pub fn path_param<'a>(req: &'a Request, prefix: &str) -> Option<&'a str> {
    let path = req.uri().path().trim_end_matches('/');
    let start = path.find(prefix)?;
    let stage = &path[..start];
    if !(stage.is_empty() || (stage.starts_with('/') && !stage[1..].contains('/'))) {
        return None;
    }
    let param = &path[start + prefix.len()..];
    (!param.is_empty() && !param.contains('/')).then_some(param)
}

/// A query string parameter.
pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref().and_then(|params| params.first(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, content_type: Option<&str>, body: &str) -> Request {
        let mut builder = lambda_http::http::Request::builder().method("POST").uri(path);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(Body::from(body.to_owned())).expect("valid request")
    }

    #[derive(serde::Deserialize, Debug)]
    struct Sample {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn media_types_are_matched_on_their_essence() {
        let ok = request("/x", Some("Application/JSON; charset=UTF-8"), r#"{"name":"a"}"#);
        assert!(read_json::<Sample>(&ok, 100).is_ok());
        for ct in [None, Some("text/plain"), Some("application/json; charset=latin1")] {
            let err = read_json::<Sample>(&request("/x", ct, "{}"), 100).expect_err("refused");
            assert_eq!(err.status_code(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        }
    }

    #[test]
    fn bodies_are_bounded_and_decoded_into_400s() {
        let big = request("/x", Some(JSON), &format!(r#"{{"name":"{}"}}"#, "a".repeat(200)));
        assert_eq!(read_json::<Sample>(&big, 100).expect_err("too big").status_code(), StatusCode::PAYLOAD_TOO_LARGE);
        // An array of the fields in order is not an object either.
        for body in ["", "{", "[]", r#"{"name":1}"#, "{}", r#"["ada"]"#, r#" ["ada"]"#] {
            let err = read_json::<Sample>(&request("/x", Some(JSON), body), 100).expect_err("bad body");
            assert_eq!(err.status_code(), StatusCode::BAD_REQUEST, "{body:?}");
            assert_eq!(err.error_code(), "invalid_request");
        }
    }

    #[test]
    fn forms_are_accepted_where_oauth_expects_them() {
        let form = request("/x", Some(FORM), "name=a%20b");
        assert!(read_json_or_form::<Sample>(&form, 100).is_ok());
        assert!(read_json::<Sample>(&form, 100).is_err());
    }

    #[test]
    fn paths_match_with_or_without_a_stage_prefix() {
        assert!(path_is(&request("/v1/auth/refresh", None, ""), "/v1/auth/refresh"));
        assert!(path_is(&request("/live/v1/auth/refresh/", None, ""), "/v1/auth/refresh"));
        assert!(!path_is(&request("/a/b/v1/auth/refresh", None, ""), "/v1/auth/refresh"));
        assert!(!path_is(&request("/v1/auth/refreshx", None, ""), "/v1/auth/refresh"));
        assert!(!path_is(&request("/xv1/auth/refresh", None, ""), "/v1/auth/refresh"));
    }

    fn with_authorization(value: &str) -> Request {
        lambda_http::http::Request::builder()
            .uri("/x")
            .header(header::AUTHORIZATION, value)
            .body(Body::Empty)
            .expect("valid request")
    }

    #[test]
    fn authorization_schemes_are_told_apart() {
        use secrecy::ExposeSecret as _;
        // "a b:c%3Ad" form-encoded is "a+b:c%253Ad"; base64 of that.
        let basic = with_authorization("Basic YStiOmMlM0Fk");
        match authorization(&basic).expect("parses") {
            Some(Authorization::Basic { user, password }) => {
                assert_eq!(user, "a b");
                assert_eq!(password.expose_secret(), "c:d");
            }
            other => panic!("{other:?}"),
        }
        match authorization(&with_authorization("bearer abc.def.ghi")).expect("parses") {
            Some(Authorization::Bearer(token)) => assert_eq!(token.expose_secret(), "abc.def.ghi"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(authorization(&with_authorization("Digest x")), Ok(Some(Authorization::Other))));
        assert!(authorization(&with_authorization("Basic !!!")).is_err());
        assert!(authorization(&with_authorization("Basic bm9jb2xvbg==")).is_err(), "no colon");
    }

    #[test]
    fn path_params_follow_their_prefix() {
        assert_eq!(path_param(&request("/v1/api-keys/abc", None, ""), "/v1/api-keys/"), Some("abc"));
        assert_eq!(path_param(&request("/live/v1/api-keys/abc/", None, ""), "/v1/api-keys/"), Some("abc"));
        assert_eq!(path_param(&request("/v1/api-keys/", None, ""), "/v1/api-keys/"), None);
        assert_eq!(path_param(&request("/v1/api-keys/a/b", None, ""), "/v1/api-keys/"), None);
        assert_eq!(path_param(&request("/x/y/v1/api-keys/a", None, ""), "/v1/api-keys/"), None);
    }

    /// An API Gateway event (the fixture every test request starts from)
    /// with `edit` applied.
    fn event(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/apigw_v2_post.json")).expect("fixture");
        edit(&mut event);
        event.to_string()
    }

    #[test]
    fn events_that_lambda_http_cannot_build_are_normalised_not_fatal() {
        type Edit = fn(&mut serde_json::Value);
        let cases: [(&str, Edit); 6] = [
            ("host", |e| e["headers"]["host"] = "%bc.example.com".into()),
            ("scheme", |e| e["headers"]["x-forwarded-proto"] = "ht tp".into()),
            ("domain", |e| {
                e["headers"].as_object_mut().expect("headers").remove("host");
                e["requestContext"]["domainName"] = "%x".into();
            }),
            ("path", |e| e["rawPath"] = ":99999/v1/auth/login".into()),
            ("query", |e| e["rawQueryString"] = "a=\"x y\"&b=%7B".into()),
            ("base64", |e| {
                e["body"] = "!!".into();
                e["isBase64Encoded"] = true.into();
            }),
        ];
        for (what, edit) in cases {
            let json = event(edit);
            // lambda_http alone panics on each of these…
            let raw = std::panic::catch_unwind(|| lambda_http::request::from_str(&json).map(drop));
            assert!(raw.is_err(), "{what}: lambda_http 1.3 no longer panics; normalise_event may go");
            // …and the normalised event makes the request Latchkey reads.
            let req = request_from_event(serde_json::from_str(&json).expect("an event"));
            assert!(req.uri().path().ends_with("/v1/auth/login"), "{what}: {}", req.uri());
            assert_eq!(req.method(), Method::POST, "{what}");
        }
        let quoted = request_from_event(
            serde_json::from_str(&event(|e| e["rawQueryString"] = "a=\"x y\"&b=%7B".into())).expect("an event"),
        );
        assert_eq!((query_param(&quoted, "a"), query_param(&quoted, "b")), (Some("\"x y\""), Some("{")));
        let plain = request_from_event(serde_json::from_str(&event(|_| ())).expect("an event"));
        assert_eq!(plain.uri().to_string(), "https://abc123.execute-api.eu-west-1.amazonaws.com/v1/auth/login");
        for (host, plain) in [
            ("api.example.com", true),
            ("127.0.0.1:9000", true),
            ("[::1]:3000", true),
            ("localhost", true),
            ("1.2.3.4.5", false),
            ("a.0x1", false),
            ("a..b", false),
            ("a.com:99999", false),
            ("[::1", false),
            ("", false),
        ] {
            assert_eq!(is_plain_host(host), plain, "{host}");
        }
    }

    #[test]
    fn error_responses_carry_the_headers_their_status_needs() {
        let response = error_response(&ApiError::InvalidToken("refresh token is invalid"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().expect("ascii");
        assert!(challenge.starts_with(r#"Bearer error="invalid_token""#), "{challenge}");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).expect("json");
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "refresh token is invalid");

        let limited = error_response(&ApiError::RateLimited {
            retry_after: std::time::Duration::from_millis(1500),
            message: "slow down",
        });
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
        let not_allowed = error_response(&ApiError::MethodNotAllowed { allow: "POST" });
        assert_eq!(not_allowed.headers()[header::ALLOW], "POST");
    }
}
