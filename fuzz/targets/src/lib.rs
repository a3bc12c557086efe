//! Latchkey's fuzz targets: one function per parser that a caller's bytes
//! reach, each driving the real code of `latchkey` (shared/) and of the
//! functions' HTTP adapters against a fixed in-memory deployment (keys,
//! secrets, clock: [`fixture`]), and asserting what must hold whatever the
//! input. A panic is a finding.
//!
//! Two runners share these definitions: cargo-fuzz (`fuzz/fuzz_targets/`,
//! libFuzzer on nightly, `scripts/fuzz.sh`) and the stable proptest smoke
//! run (`tests/smoke.rs`, part of `cargo test --workspace`). Both start from
//! the seeds in `fuzz/corpus/<target>/`, which `examples/seeds.rs` makes
//! from real artifacts.
//!
//! Invariants every target checks:
//! - a refusal is a 4xx with the SPEC's JSON error body, never a 5xx;
//! - nothing is accepted that the fixed keys did not sign or derive (each
//!   accepted signature is re-checked by a second implementation, and
//!   another deployment or environment refuses it);
//! - what a parser accepts round-trips (API keys, refresh tokens, emails).
//!
//! No target touches DynamoDB: a fuzzer runs each millions of times.

pub mod fixture;
pub mod message;
mod requests;
mod tokens;
mod webhooks;

use latchkey::error::ApiError;
use latchkey::http::error_response;

pub use requests::{apigw_event, authorizer_event, request_body};
pub use tokens::{access_token, api_key, client_assertion, refresh_token};
pub use webhooks::{WEBHOOK_TARGET, webhook_headers};

/// What a target made of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Parsed, and genuine where the target checks that.
    Accepted,
    /// Refused as a client error.
    Refused,
}

/// A fuzz target.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target, by the name of its cargo-fuzz binary and corpus folder.
pub const TARGETS: [(&str, Target); 8] = [
    ("access_token", access_token),
    ("client_assertion", client_assertion),
    ("refresh_token", refresh_token),
    ("api_key", api_key),
    ("webhook_headers", webhook_headers),
    ("request_body", request_body),
    ("apigw_event", apigw_event),
    ("authorizer_event", authorizer_event),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(known, _)| *known == name).map(|(_, target)| *target)
}

/// The input as text, as a header or JSON string would carry it.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A refusal must be a client error whose response is the SPEC's JSON body.
fn assert_refused(err: &ApiError) -> Outcome {
    let status = err.status_code();
    assert!(status.is_client_error(), "an input was answered {status}: {err}");
    let response = error_response(err);
    assert_eq!(response.status(), status);
    let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).expect("error bodies are JSON");
    assert_eq!(body["error"], err.error_code());
    assert!(body["error_description"].is_string(), "no error_description");
    Outcome::Refused
}
