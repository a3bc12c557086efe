//! End to end over real HTTP: the functions run under `cargo lambda watch`
//! (the Lambda runtime emulator), against DynamoDB Local, driven by Rust and
//! by third-party Python clients (PyJWT, authlib, the Standard Webhooks
//! reference library, Python's own hmac). `make test` installs cargo-lambda
//! and those clients, and pre-builds the function binaries.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latchkey::webhook::{Scheme, WebhookSecret};
use latchkey_tests::{AUDIENCE, EMAIL, ISSUER, PASSWORD, TENANT, TestApp, TestKey, function_env, login_body};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

/// `cargo lambda watch`, stopped with SIGTERM (which also stops the
/// function processes it started) when dropped.
struct Watch {
    child: Child,
    base: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn start_watch(table: &str) -> Watch {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let port = free_port();
    let mut command = Command::new("cargo");
    command
        .args(["lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .current_dir(workspace)
        .envs(function_env(table))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let child = command.spawn().unwrap_or_else(|err| {
        panic!("cannot run `cargo lambda watch` ({err}): run the tests with `make test`, which installs cargo-lambda")
    });
    let mut watch = Watch { child, base: format!("http://127.0.0.1:{port}/lambda-url") };
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = watch.child.try_wait() {
            panic!(
                "`cargo lambda watch` exited ({status}): run the tests with `make test`, which installs cargo-lambda"
            );
        }
        assert!(Instant::now() < deadline, "cargo lambda watch did not listen on {port} within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    watch
}

fn agent() -> ureq::Agent {
    // The first request to each function starts it (a pre-built binary).
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// The Python of `.tools/venv`, where `make test` installs the clients.
fn python() -> std::path::PathBuf {
    let tools = std::env::var_os("LATCHKEY_TOOLS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join(".tools"),
        std::path::PathBuf::from,
    );
    tools.join("venv/bin/python")
}

/// Runs `tests/interop/<script>` and returns its stdout.
fn run_python(script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop").join(script);
    let output = Command::new(python()).arg(&path).args(args).output().unwrap_or_else(|err| {
        panic!(
            "cannot run {} ({err}): run the tests with `make test`, which installs the Python clients",
            python().display()
        )
    });
    assert!(output.status.success(), "{script} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

struct Reply {
    status: u16,
    body: Value,
    www_authenticate: Option<String>,
}

fn post(agent: &ureq::Agent, url: &str, body: &str) -> Reply {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap_or_else(|err| panic!("POST {url}: {err}"));
    let status = response.status().as_u16();
    let www_authenticate = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.body_mut().read_to_string().expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url} answered non-JSON ({e}): {text}"));
    Reply { status, body, www_authenticate }
}

#[test]
fn login_refresh_and_reuse_over_http_through_cargo_lambda_watch() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // A fresh table, seeded, that the functions under watch will use.
    let app = runtime.block_on(TestApp::spawn());
    let watch = start_watch(app.table.name());
    let agent = agent();
    let login_url = format!("{}/login/v1/auth/login", watch.base);
    let refresh_url = format!("{}/refresh/v1/auth/refresh", watch.base);

    let login = post(&agent, &login_url, &login_body(EMAIL, PASSWORD));
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["token_type"], "Bearer");
    let access = login.body["access_token"].as_str().expect("access token");
    let set = runtime.block_on(app.latchkey.issuer.keys().reload()).expect("keys");
    let claims = app.latchkey.issuer.verifier().verify(access, &set.verifying).expect("access token verifies");
    assert_eq!(claims.tid, latchkey_tests::TENANT);

    let first = login.body["refresh_token"].as_str().expect("refresh token").to_owned();
    let rotated = post(&agent, &refresh_url, &serde_json::json!({ "refresh_token": first }).to_string());
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.body["refresh_token"].as_str().expect("refresh token").to_owned();
    assert_ne!(first, second);

    // Reuse of the rotated token: 401, and the family (with `second`) dies.
    let reuse = post(&agent, &refresh_url, &serde_json::json!({ "refresh_token": first }).to_string());
    assert_eq!(reuse.status, 401, "{}", reuse.body);
    assert_eq!(reuse.body["error"], "invalid_token");
    assert!(reuse.www_authenticate.is_some_and(|h| h.starts_with("Bearer error=\"invalid_token\"")));
    let after = post(&agent, &refresh_url, &serde_json::json!({ "refresh_token": second }).to_string());
    assert_eq!(after.status, 401, "{}", after.body);

    // Wrong password over HTTP: the SPEC's error body.
    let wrong = post(&agent, &login_url, &login_body(EMAIL, "wrong password"));
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body["error"], "invalid_credentials");
    drop(watch);
}

#[test]
fn a_login_token_verifies_against_the_served_jwks_with_pyjwt() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let watch = start_watch(app.table.name());
    let agent = agent();

    let login = post(&agent, &format!("{}/login/v1/auth/login", watch.base), &login_body(EMAIL, PASSWORD));
    assert_eq!(login.status, 200, "{}", login.body);
    let access = login.body["access_token"].as_str().expect("access token");

    // The JWKS over HTTP, as a cache in front of it sees it.
    let discovery = format!("{}/jwks", watch.base);
    let jwks_url = format!("{discovery}/.well-known/jwks.json");
    let mut response = agent.get(&jwks_url).call().unwrap_or_else(|err| panic!("GET {jwks_url}: {err}"));
    assert_eq!(response.status().as_u16(), 200);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("cache-control").as_deref(), Some("public, max-age=300"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    let jwks: Value = serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON");
    let kid = jsonwebtoken::decode_header(access).expect("JWT header").kid.expect("kid");
    assert!(jwks["keys"].as_array().expect("keys").iter().any(|key| key["kid"] == kid.as_str()), "{jwks}");

    // PyJWT's PyJWKClient against the real endpoint: the token verifies, and
    // with one signature byte changed it does not.
    let verified = run_python("pyjwt_jwks.py", &[&discovery, access, AUDIENCE, ISSUER]);
    let verified: Value = serde_json::from_str(&verified).expect("the script printed JSON");
    assert_eq!(verified["header"], json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}), "{verified}");
    let claims = &verified["claims"];
    assert!(claims["sub"].as_str().is_some_and(|sub| sub.starts_with("usr_")), "{claims}");
    assert_eq!(claims["tid"], TENANT, "{claims}");
    assert_eq!((&claims["iss"], &claims["aud"]), (&json!(ISSUER), &json!(AUDIENCE)), "{claims}");
    drop(watch);
}

#[test]
fn third_party_clients_exchange_api_keys_over_http() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let created = runtime.block_on(app.add_api_key(TestKey::default()));
    let (key_id, key) = (created.view.id.clone(), created.key.expose_secret().to_owned());
    let secret = key.rsplit('_').next().expect("secret part").to_owned();
    let watch = start_watch(app.table.name());
    let agent = agent();
    let token_url = format!("{}/token/v1/auth/token", watch.base);
    let verify = |token: &str| runtime.block_on(app.latchkey.issuer.verify(token)).expect("access token verifies");

    // PyJWT, exactly as the SDK docs write it, sent as a bare bearer token.
    let assertion = run_python("sdk_assertion.py", &[&key_id, &secret]);
    let mut response = agent
        .post(&token_url)
        .header("authorization", &format!("Bearer {assertion}"))
        .send_empty()
        .unwrap_or_else(|err| panic!("POST {token_url}: {err}"));
    let status = response.status().as_u16();
    let body: Value = serde_json::from_str(&response.body_mut().read_to_string().expect("body")).expect("JSON");
    assert_eq!(status, 200, "{body}");
    let claims = verify(body["access_token"].as_str().expect("access token"));
    assert_eq!((claims.sub.as_str(), claims.tid.as_str()), (key_id.as_str(), TENANT));
    assert_eq!(claims.client_id.as_deref(), Some(key_id.as_str()));
    assert!(body["refresh_token"].as_str().is_some());
    // The same assertion again, as RFC 7523 form parameters: spent.
    let form = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
    let mut replay = agent
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .send(&form)
        .expect("replay answered");
    assert_eq!(replay.status().as_u16(), 401, "{}", replay.body_mut().read_to_string().unwrap_or_default());

    // authlib's OAuth2Session, unmodified: client_credentials over HTTP Basic.
    let token = run_python("oauth_client_credentials.py", &[&token_url, &key_id, &key, "orders:read"]);
    let token: Value = serde_json::from_str(&token).expect("authlib printed JSON");
    assert!(token.get("refresh_token").is_none(), "{token}");
    let claims = verify(token["access_token"].as_str().expect("access token"));
    assert_eq!(claims.scope, "orders:read");
    assert_eq!(claims.client_id.as_deref(), Some(key_id.as_str()));
    drop(watch);
}

/// Runs one of the webhook senders in `tests/interop`; returns the status
/// and JSON body it printed.
fn send_webhook(script: &str, args: &[&str]) -> (u16, Value) {
    let printed: Value = serde_json::from_str(&run_python(script, args)).expect("the sender printed JSON");
    let status = printed["status"].as_u64().and_then(|s| u16::try_from(s).ok()).expect("an HTTP status");
    (status, printed["body"].clone())
}

#[test]
fn third_party_senders_deliver_signed_webhooks_over_http() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let standard_secret = WebhookSecret::generate();
    runtime.block_on(app.add_webhook_source("provider", &[Scheme::Standard], &standard_secret));
    // A GitHub-style secret: plain text, its bytes are the HMAC key.
    let classic_secret = WebhookSecret::new("It's a Secret to Everybody 42").expect("valid secret");
    runtime.block_on(app.add_webhook_source("classic", &[Scheme::Sha256], &classic_secret));
    let watch = start_watch(app.table.name());
    let url = |source: &str| format!("{}/webhook/v1/webhooks/{source}", watch.base);

    // The Standard Webhooks reference library, as its README signs. The
    // payload's spacing and non-ASCII text must reach the store untouched.
    let msg_id = format!("msg_{}", latchkey::crypto::random_id());
    let payload =
        r#"{"type": "invoice.paid",  "data": {"invoice": "in_1QzX2b", "customer": "Zoë Müller", "amount": 4200}}"#;
    let standard_args = [url("provider"), standard_secret.expose().to_owned(), msg_id.clone(), payload.to_owned()];
    let standard_args: Vec<&str> = standard_args.iter().map(String::as_str).collect();
    let (status, body) = send_webhook("standard_webhooks_send.py", &standard_args);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"received": true, "id": msg_id}));
    // The sender retries the same message (re-signed, same id): a duplicate.
    let (status, body) = send_webhook("standard_webhooks_send.py", &standard_args);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"received": true, "id": msg_id, "duplicate": true}));

    // The classic scheme, signed with Python's hmac as GitHub documents it.
    let classic_payload = r#"{"action":"opened","number":42,"repository":{"full_name":"octo-org/hello-world"}}"#;
    let (status, body) =
        send_webhook("classic_hmac_send.py", &[&url("classic"), classic_secret.expose(), classic_payload]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"received": true, "id": latchkey::webhook::body_id(classic_payload.as_bytes())}));
    // Signed, then one byte of the body changed on the way: refused.
    let tampered = classic_payload.replace(":42,", ":43,");
    let differing = classic_payload.bytes().zip(tampered.bytes()).filter(|(a, b)| a != b).count();
    assert_eq!((tampered.len(), differing), (classic_payload.len(), 1));
    let (status, body) =
        send_webhook("classic_hmac_send.py", &[&url("classic"), classic_secret.expose(), classic_payload, &tampered]);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_credentials", "{body}");
    drop(watch);

    // The table, read directly: the Standard delivery stored once, byte for
    // byte; the classic one once; the tampered one not at all.
    let stored =
        runtime.block_on(app.stored_webhook_event("provider", &msg_id)).expect("the Standard delivery is stored");
    let text = |name: &str| stored.get(name).and_then(|v| v.as_s().ok()).map(String::as_str);
    assert_eq!(text("body"), Some(payload), "the body as sent, byte for byte");
    assert_eq!(text("event_id"), Some(msg_id.as_str()));
    assert_eq!(text("scheme"), Some("standard"));
    assert_eq!(text("tenant_id"), Some(TENANT));
    let scan = runtime.block_on(app.stored_webhook_events());
    let mut events: Vec<&str> =
        scan.iter().filter_map(|item| item.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str)).collect();
    events.sort_unstable();
    let classic_pk = format!("WEBHOOK#classic#{}", latchkey::webhook::body_id(classic_payload.as_bytes()));
    assert_eq!(events, [classic_pk.as_str(), &format!("WEBHOOK#provider#{msg_id}")]);
}
