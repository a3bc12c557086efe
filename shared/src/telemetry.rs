//! Logging setup. On Lambda (or with `LATCHKEY_LOG_FORMAT=json`) every line is
//! one JSON object, which CloudWatch Logs Insights can query; elsewhere a
//! compact human format. The level comes from `RUST_LOG` (default `info`).
//!
//! What is logged is decided at each call site, and no call site logs a
//! request header, a body, a password, a token or a key.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once, in `main`. A second call is a no-op,
/// so tests may call it freely.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn"));
    let json = std::env::var("LATCHKEY_LOG_FORMAT").map_or_else(
        |_| {
            std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
                && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        },
        |format| format.eq_ignore_ascii_case("json"),
    );
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if json {
        // Lambda stamps each line itself and the request id is a field.
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).without_time().try_init()
    } else {
        builder.compact().with_ansi(false).try_init()
    };
}
