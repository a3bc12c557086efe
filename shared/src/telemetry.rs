//! Logging setup. On Lambda (or with `LATCHKEY_LOG_FORMAT=json`) every line is
//! one JSON object, which CloudWatch Logs Insights can query; elsewhere a
//! compact human format. The level comes from `RUST_LOG` (default `info`;
//! `level` and `target=level` directives, comma-separated).
//!
//! What is logged is decided at each call site, and no call site logs a
//! request header, a body, a password, a token or a key.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const DEFAULT_FILTER: &str = "info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn";

/// Installs the global subscriber once, in `main`. A second call is a no-op,
/// so tests may call it freely.
pub fn init() {
    // `Targets` takes the common RUST_LOG form (`info`, `warn,login=debug`)
    // without the regex engine that `EnvFilter` links in.
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| DEFAULT_FILTER.parse().expect("the default filter parses"));
    let json = std::env::var("LATCHKEY_LOG_FORMAT").map_or_else(
        |_| {
            std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
                && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        },
        |format| format.eq_ignore_ascii_case("json"),
    );
    let builder = tracing_subscriber::fmt().with_target(false);
    let _ = if json {
        // Lambda stamps each line itself and the request id is a field.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .without_time()
            .finish()
            .with(filter)
            .try_init()
    } else {
        builder.compact().finish().with(filter).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_and_common_rust_log_forms_parse() {
        for directives in [DEFAULT_FILTER, "warn", "debug,login=trace", "aws_smithy_runtime=warn"] {
            assert!(directives.parse::<Targets>().is_ok(), "{directives}");
        }
    }
}
