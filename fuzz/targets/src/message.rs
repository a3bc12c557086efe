//! The byte format of the HTTP targets' inputs: an HTTP/1-style message,
//! readable in a seed file and easy for a fuzzer to mutate.
//!
//! ```text
//! POST /v1/auth/token
//! content-type: application/x-www-form-urlencoded
//! authorization: Basic ...
//!
//! grant_type=client_credentials
//! ```
//!
//! Lines end in `\n` or `\r\n`; the first empty line ends the head and the
//! rest is the body, byte for byte. A header line that HTTP cannot carry is
//! dropped: API Gateway would never deliver it, so it tests nothing.

use lambda_http::http::{HeaderName, HeaderValue};
use lambda_http::{Body, Request};

/// The head's lines and the body.
fn split(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut lines = Vec::new();
    let mut rest = data;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[end + 1..];
        if line.is_empty() {
            return (lines, rest);
        }
        lines.push(line);
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    (lines, &[])
}

fn build<'a>(method: &[u8], target: &str, headers: impl IntoIterator<Item = &'a [u8]>, body: &[u8]) -> Option<Request> {
    let mut builder = lambda_http::http::Request::builder().method(method).uri(target);
    for line in headers {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value)) {
            builder = builder.header(name, value);
        }
    }
    let body = if body.is_empty() { Body::Empty } else { Body::Binary(body.to_vec()) };
    builder.body(body).ok()
}

/// A whole message (`METHOD PATH` line, headers, body); `None` when the
/// request line makes no HTTP request.
pub fn request(data: &[u8]) -> Option<Request> {
    let (head, body) = split(data);
    let (request_line, headers) = head.split_first()?;
    let mut parts = request_line.split(|&b| b == b' ').filter(|part| !part.is_empty());
    let method = parts.next()?;
    let target = std::str::from_utf8(parts.next()?).ok()?;
    build(method, target, headers.iter().copied(), body)
}

/// Headers and body only, sent as `method` to `target`.
pub fn request_to(method: &str, target: &str, data: &[u8]) -> Option<Request> {
    let (headers, body) = split(data);
    build(method.as_bytes(), target, headers, body)
}

/// Writes a message in this format (for the seed generator).
pub fn render(request_line: Option<(&str, &str)>, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some((method, target)) = request_line {
        out.extend_from_slice(format!("{method} {target}\n").as_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_render() {
        let bytes = render(Some(("POST", "/v1/x")), &[("content-type", "application/json")], b"{\n\n}");
        let req = request(&bytes).expect("a request");
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().path(), "/v1/x");
        assert_eq!(req.headers()["content-type"], "application/json");
        assert_eq!(req.body().as_ref(), b"{\n\n}");
        let crlf = request(b"GET /v1/me\r\nx-a: b\r\n\r\n").expect("a request");
        assert_eq!((crlf.headers()["x-a"].as_bytes(), crlf.body().as_ref()), (&b"b"[..], &b""[..]));
        assert!(request(b"").is_none());
        assert!(request(b"GET\n\n").is_none(), "no target");
        let dropped = request_to("POST", "/v1/webhooks/a", b"bad header\nx-ok: 1\n\nbody").expect("a request");
        assert_eq!((dropped.headers().len(), dropped.body().as_ref()), (1, &b"body"[..]));
    }
}
