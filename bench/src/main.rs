//! `make bench`: Latchkey's performance, measured in one run against the
//! floor of the same run (one GetItem, one conditional UpdateItem, one
//! GetItem followed by one PutItem, one conditional PutItem of a webhook
//! event item, and one rate-limit counter's UpdateItem, from the same SDK
//! client against the same DynamoDB Local; and an access token's
//! verification alone).
//!
//! Measures, for login, refresh, the token exchange (`client_credentials`
//! and `api_key` grants), inbound webhooks (a new delivery accepted, and
//! the same one again) and the decisions in front of a team's own API (the
//! authorizer and `POST /v1/verify`, each on an access token and on an API
//! key): warm latency p50/p99 through the real handlers (event JSON in,
//! response out), DynamoDB calls per operation (counted by an SDK
//! interceptor); for login and refresh, CPU time per request;
//! per function: cold start under a Lambda Runtime API emulator and peak RSS;
//! and the arm64 zip size from `cargo lambda build`. Floor and endpoints are
//! measured in alternating rounds (A/B/A/B) so machine noise hits both.
//!
//! Usage: `latchkey-bench [--quick] [--skip-zip] [--profile release|debug]`.
//! Needs DynamoDB Local at `AWS_ENDPOINT_URL_DYNAMODB`; `scripts/bench.sh`
//! starts one.
//!
//! `latchkey-bench load ...` is the bounded load test instead (`make load`,
//! `scripts/load.sh`; see the `load` module).

// Figures become f64 milliseconds and megabytes for display; the precision
// lost past 2^52 is irrelevant at these magnitudes.
#![allow(clippy::cast_precision_loss)]

mod cold_start;
mod guard;
mod load;
mod report;
mod stats;
mod webhooks;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use latchkey::service::discovery::JWKS_PATH;
use latchkey_tests::{
    CLIENT_IP, EMAIL, Options, PASSWORD, TestApp, TestKey, dynamodb_endpoint, event_json, function_env, login_body,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use crate::cold_start::ColdStart;
use crate::guard::Decisions;
use crate::report::{CallCount, ColdStartResult, Report, Target, ZipResult};
use crate::stats::{Samples, ms, process_cpu};
use crate::webhooks::Webhooks;

#[derive(Debug)]
struct Args {
    quick: bool,
    skip_zip: bool,
    profile: String,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let mut args = Self { quick: false, skip_zip: false, profile: "release".into() };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => args.quick = true,
                "--skip-zip" => args.skip_zip = true,
                "--profile" => args.profile = it.next().ok_or("--profile needs release or debug")?,
                other => return Err(format!("unknown argument {other}; use --quick, --skip-zip, --profile P")),
            }
        }
        if args.quick {
            args.skip_zip = true;
        }
        Ok(args)
    }

    /// Rounds, floor/refresh/exchange operations per round, logins per round.
    fn sizes(&self) -> (usize, usize, usize) {
        if self.quick { (2, 10, 2) } else { (10, 60, 6) }
    }

    fn cold_runs(&self) -> usize {
        if self.quick { 3 } else { 21 }
    }
}

fn progress(text: &str) {
    eprintln!("bench: {text}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bench/ is inside the workspace").to_path_buf()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    // The load test is blocking (one thread per virtual user): no runtime.
    if args.peek().is_some_and(|first| first == "load") {
        return load::main(args.skip(1));
    }
    bench()
}

#[tokio::main(flavor = "current_thread")]
async fn bench() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("latchkey-bench: {err}");
            return ExitCode::from(2);
        }
    };
    match Box::pin(run(&args)).await {
        Ok(report) => {
            let dir = workspace_root().join("bench/results");
            match report.write(&dir) {
                Ok(()) => {
                    #[allow(clippy::print_stdout)]
                    {
                        println!("{}", report.markdown());
                    }
                    progress(&format!("results written to {}", dir.display()));
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("latchkey-bench: writing results: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("latchkey-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// A response's status and JSON body, or an error naming what failed.
fn expect_ok(what: &str, response: &lambda_http::Response<lambda_http::Body>) -> Result<Value, String> {
    let body: Value =
        serde_json::from_slice(response.body().as_ref()).map_err(|e| format!("{what}: non-JSON body: {e}"))?;
    if response.status() != 200 {
        return Err(format!("{what} answered {}: {body}", response.status()));
    }
    Ok(body)
}

fn refresh_body(token: &str) -> String {
    serde_json::json!({ "refresh_token": token }).to_string()
}

fn token_of(body: &Value) -> Result<String, String> {
    body["refresh_token"].as_str().map(str::to_owned).ok_or_else(|| format!("no refresh_token in {body}"))
}

fn access_token_of(body: &Value) -> Result<String, String> {
    body["access_token"].as_str().map(str::to_owned).ok_or_else(|| format!("no access_token in {body}"))
}

/// Whether a timed sample took its line's warm path: its DynamoDB calls are
/// `warm` (`Ok(true)`), or `reload` then `warm` because a per-instance cache
/// entry had expired (`Ok(false)`: that sample is the cold-cache path, not
/// its line's, and is discarded).
fn took_warm_path(what: &str, calls: &[String], warm: &[&str], reload: &[&str]) -> Result<bool, String> {
    let calls: Vec<&str> = calls.iter().map(String::as_str).collect();
    if calls == warm {
        return Ok(true);
    }
    if calls.len() == reload.len() + warm.len() && calls.starts_with(reload) && calls.ends_with(warm) {
        return Ok(false);
    }
    Err(format!("{what}: DynamoDB calls {calls:?}, expected {warm:?}"))
}

fn json_event(path: &str, body: &str) -> String {
    event_json(path, "POST", &[("content-type", "application/json")], body, "203.0.113.10")
}

/// The endpoint under test, driven exactly as Lambda drives it: from the
/// event JSON to the response.
struct Driver<'a> {
    app: &'a TestApp,
    email: &'static str,
    refresh_token: String,
}

/// A user whose scopes are too long to ride in the refresh token, so its
/// refreshes sign after the write instead of during it: the B side of the
/// speculative-signing A/B.
const WIDE_EMAIL: &str = "wide@example.com";

fn wide_scopes() -> String {
    (0..9).map(|i| format!("scope-{i}-{}", "x".repeat(52))).collect::<Vec<_>>().join(" ")
}

impl Driver<'_> {
    async fn login(&self) -> Result<(Duration, Value), String> {
        let event = json_event("/v1/auth/login", &login_body(self.email, PASSWORD));
        let started = Instant::now();
        let request = lambda_http::request::from_str(&event).map_err(|e| e.to_string())?;
        let response = login::handle(&self.app.login, self.app.max_body(), request).await;
        let elapsed = started.elapsed();
        Ok((elapsed, expect_ok("login", &response)?))
    }

    async fn refresh(&mut self) -> Result<Duration, String> {
        let event = json_event("/v1/auth/refresh", &refresh_body(&self.refresh_token));
        let started = Instant::now();
        let request = lambda_http::request::from_str(&event).map_err(|e| e.to_string())?;
        let response = refresh::handle(&self.app.refresh, self.app.max_body(), request).await;
        let elapsed = started.elapsed();
        self.refresh_token = token_of(&expect_ok("refresh", &response)?)?;
        Ok(elapsed)
    }

    /// One strongly consistent GetItem (`consistent_read(true)`, as in the
    /// store's `Table::get`, which reads the API key for the token exchange)
    /// of the seeded user's profile item, of the same order of size as a key's.
    async fn get_profile(&self) -> Result<(), String> {
        self.app
            .table
            .client()
            .get_item()
            .table_name(self.app.table.name())
            .key("pk", AttributeValue::S(format!("USER#{EMAIL}")))
            .key("sk", AttributeValue::S("PROFILE".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| format!("floor GetItem: {e}"))?;
        Ok(())
    }

    async fn floor_get(&self) -> Result<Duration, String> {
        let started = Instant::now();
        self.get_profile().await?;
        Ok(started.elapsed())
    }

    /// The calls of an `api_key` exchange, one after the other: the same
    /// consistent GetItem as [`Self::floor_get`], then a PutItem of an item
    /// shaped like a new refresh family (same attributes, same sizes) to a
    /// fresh key, conditional on its absence as the family's insert is.
    async fn floor_get_put(&self) -> Result<Duration, String> {
        let id = latchkey::crypto::random_id();
        let now = latchkey::time::now_secs();
        let n = |value: u64| AttributeValue::N(value.to_string());
        let started = Instant::now();
        self.get_profile().await?;
        self.app
            .table
            .client()
            .put_item()
            .table_name(self.app.table.name())
            .item("pk", AttributeValue::S(format!("BENCHPUT#{id}")))
            .item("sk", AttributeValue::S("FAMILY".into()))
            .item("sub", AttributeValue::S(id.clone()))
            .item("tenant_id", AttributeValue::S(latchkey_tests::TENANT.into()))
            .item("scope", AttributeValue::S(TestKey::default().scopes.into()))
            .item("env", AttributeValue::S("test".into()))
            .item("client_id", AttributeValue::S(id))
            .item("generation", n(0))
            .item("created_at", n(now))
            .item("expires_at", n(now + 30 * 86_400))
            .item("absolute_expires_at", n(now + 90 * 86_400))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| format!("floor PutItem: {e}"))?;
        Ok(started.elapsed())
    }

    /// The same shape of write as a refresh: conditional, returning the item.
    async fn floor_update(&self) -> Result<Duration, String> {
        let started = Instant::now();
        self.app
            .table
            .client()
            .update_item()
            .table_name(self.app.table.name())
            .key("pk", AttributeValue::S("BENCH#floor".into()))
            .key("sk", AttributeValue::S("COUNTER".into()))
            .update_expression("SET n = if_not_exists(n, :zero) + :one")
            .condition_expression("attribute_not_exists(pk) OR n >= :zero")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| format!("floor UpdateItem: {e}"))?;
        Ok(started.elapsed())
    }
}

/// The token endpoint, driven like [`Driver`]: one API key per grant, so each
/// grant's `last_used_at` stamp (at most once a minute per key, concurrent
/// with the critical call) is its own.
struct Exchanger<'a> {
    app: &'a TestApp,
    /// `client_credentials`: one consistent GetItem.
    client_credentials_body: String,
    /// `api_key`: GetItem, then the refresh family's PutItem (signing meanwhile).
    api_key_body: String,
}

/// A new API key's id and its secret part (what follows the last `_`).
async fn api_key_credentials(app: &TestApp) -> Result<(String, String), String> {
    let created = app.add_api_key(TestKey::default()).await;
    let secret = created.key.expose_secret().rsplit('_').next().ok_or("an API key without a secret part")?.to_owned();
    Ok((created.view.id, secret))
}

impl<'a> Exchanger<'a> {
    async fn new(app: &'a TestApp) -> Result<Self, String> {
        let (cc_id, cc_secret) = api_key_credentials(app).await?;
        let (key_id, key_secret) = api_key_credentials(app).await?;
        Ok(Self {
            app,
            client_credentials_body: client_credentials_body(&cc_id, &cc_secret),
            api_key_body: serde_json::json!({
                "grant_type": "api_key", "api_key_id": key_id, "api_key_secret": key_secret,
            })
            .to_string(),
        })
    }

    async fn exchange(&self, what: &str, body: &str) -> Result<(Duration, Value), String> {
        let event = json_event(token::PATH, body);
        let started = Instant::now();
        let request = lambda_http::request::from_str(&event).map_err(|e| e.to_string())?;
        let response = token::handle(&self.app.exchange, self.app.max_body(), request).await;
        let elapsed = started.elapsed();
        let body = expect_ok(what, &response)?;
        if body["access_token"].as_str().is_none() {
            return Err(format!("{what}: no access_token in {body}"));
        }
        Ok((elapsed, body))
    }

    async fn client_credentials(&self) -> Result<Duration, String> {
        let (elapsed, body) = self.exchange("exchange client_credentials", &self.client_credentials_body).await?;
        if body.get("refresh_token").is_some() {
            return Err(format!("exchange client_credentials: a refresh token in {body}"));
        }
        Ok(elapsed)
    }

    async fn api_key(&self) -> Result<Duration, String> {
        let (elapsed, body) = self.exchange("exchange api_key", &self.api_key_body).await?;
        token_of(&body)?;
        Ok(elapsed)
    }
}

fn client_credentials_body(id: &str, secret: &str) -> String {
    serde_json::json!({ "grant_type": "client_credentials", "client_id": id, "client_secret": secret }).to_string()
}

async fn argon2_alone(app: &TestApp) -> Result<Duration, String> {
    let email = latchkey::domain::Email::parse(EMAIL).map_err(|e| e.0)?;
    let user = app.latchkey.stores.users.get(&email).await.map_err(|e| e.to_string())?.ok_or("seeded user missing")?;
    let password = latchkey::domain::Password::parse(PASSWORD.to_owned()).map_err(|e| e.0)?;
    let started = Instant::now();
    let ok =
        latchkey::password::verify_password(password, Some(user.password_hash)).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if ok { Ok(elapsed) } else { Err("argon2 verify failed for the seeded password".into()) }
}

#[derive(Debug, Default)]
struct Latencies {
    floor_get: Samples,
    floor_update: Samples,
    floor_get_put: Samples,
    refresh: Samples,
    refresh_sequential: Samples,
    login: Samples,
    argon2: Samples,
    exchange_client_credentials: Samples,
    exchange_api_key: Samples,
    floor_put: Samples,
    floor_put_again: Samples,
    webhook_accept: Samples,
    webhook_duplicate: Samples,
    floor_verify: Samples,
    floor_count: Samples,
    authorizer_bearer: Samples,
    authorizer_api_key: Samples,
    verify_bearer: Samples,
    verify_api_key: Samples,
}

async fn measure_latencies(
    driver: &mut Driver<'_>,
    sequential: &mut Driver<'_>,
    exchanger: &Exchanger<'_>,
    webhooks: &Webhooks<'_>,
    decisions: &Decisions<'_>,
    args: &Args,
) -> Result<Latencies, String> {
    let (rounds, ops, logins) = args.sizes();
    let mut out = Latencies::default();
    for round in 0..rounds {
        progress(&format!("latency round {}/{rounds}", round + 1));
        let (mut get, mut update, mut refresh, mut login, mut argon) = (vec![], vec![], vec![], vec![], vec![]);
        let (mut refresh_sequential, mut get_put, mut client_credentials, mut api_key) =
            (vec![], vec![], vec![], vec![]);
        let (mut put, mut put_again, mut accept, mut duplicate) = (vec![], vec![], vec![], vec![]);
        let (mut verify_floor, mut count_floor) = (vec![], vec![]);
        let (mut authorizer_bearer, mut authorizer_api_key, mut verify_bearer, mut verify_api_key) =
            (vec![], vec![], vec![], vec![]);
        // Interleave A and B within the round too, op by op: each operation
        // next to its floor.
        for _ in 0..ops {
            update.push(driver.floor_update().await?);
            refresh.push(driver.refresh().await?);
            refresh_sequential.push(sequential.refresh().await?);
            get.push(driver.floor_get().await?);
            client_credentials.push(exchanger.client_credentials().await?);
            get_put.push(driver.floor_get_put().await?);
            api_key.push(exchanger.api_key().await?);
            let (elapsed, floor_item) = webhooks.floor_put().await?;
            put.push(elapsed);
            let (elapsed, delivery) = webhooks.accept().await?;
            accept.push(elapsed);
            put_again.push(webhooks.floor_put_again(floor_item).await?);
            duplicate.push(webhooks.duplicate(&delivery).await?);
            count_floor.push(decisions.floor_count().await?);
            authorizer_api_key.push(decisions.authorizer_api_key().await?);
            verify_api_key.push(decisions.verify_api_key().await?);
            verify_floor.push(decisions.floor_verify()?);
            authorizer_bearer.push(decisions.authorizer_bearer().await?);
            verify_bearer.push(decisions.verify_bearer().await?);
        }
        for _ in 0..logins {
            login.push(driver.login().await?.0);
            argon.push(argon2_alone(driver.app).await?);
        }
        out.floor_get.extend_round(get);
        out.floor_update.extend_round(update);
        out.floor_get_put.extend_round(get_put);
        out.exchange_client_credentials.extend_round(client_credentials);
        out.exchange_api_key.extend_round(api_key);
        out.refresh.extend_round(refresh);
        out.refresh_sequential.extend_round(refresh_sequential);
        out.login.extend_round(login);
        out.argon2.extend_round(argon);
        out.floor_put.extend_round(put);
        out.floor_put_again.extend_round(put_again);
        out.webhook_accept.extend_round(accept);
        out.webhook_duplicate.extend_round(duplicate);
        out.floor_verify.extend_round(verify_floor);
        out.floor_count.extend_round(count_floor);
        out.authorizer_bearer.extend_round(authorizer_bearer);
        out.authorizer_api_key.extend_round(authorizer_api_key);
        out.verify_bearer.extend_round(verify_bearer);
        out.verify_api_key.extend_round(verify_api_key);
    }
    Ok(out)
}

/// DynamoDB calls of one warm login, refresh and exchange of each grant.
async fn count_calls(driver: &mut Driver<'_>, exchanger: &Exchanger<'_>) -> Result<Vec<CallCount>, String> {
    let calls = &driver.app.calls;
    calls.take();
    driver.login().await?;
    let login = calls.take();
    driver.refresh().await?;
    let refresh = calls.take();
    // Warm: the key's `last_used_at` is stamped at most once a minute. Should
    // this exchange be the one that stamps (the minute just turned), the next
    // one cannot be; a stamp on every exchange would still show.
    let mut client_credentials = Vec::new();
    let mut api_key = Vec::new();
    for _ in 0..2 {
        exchanger.client_credentials().await?;
        client_credentials = calls.take();
        if !client_credentials.iter().any(|call| call == "UpdateItem") {
            break;
        }
    }
    for _ in 0..2 {
        exchanger.api_key().await?;
        api_key = calls.take();
        if !api_key.iter().any(|call| call == "UpdateItem") {
            break;
        }
    }
    Ok(vec![
        CallCount::new("login", login),
        CallCount::new("refresh", refresh),
        CallCount::new("exchange client_credentials", client_credentials),
        CallCount::new("exchange api_key", api_key),
    ])
}

fn calls_of<'c>(counts: &'c [CallCount], operation: &str) -> &'c [String] {
    counts.iter().find(|c| c.operation == operation).map_or(&[], |c| c.calls.as_slice())
}

/// CPU per refresh with each signing algorithm, and per login (RS256).
async fn measure_cpu(args: &Args) -> Result<Vec<(String, Duration)>, String> {
    let count = if args.quick { 20 } else { 300 };
    let mut out = Vec::new();
    for alg in ["RS256", "ES256", "EdDSA"] {
        progress(&format!("CPU per refresh, {alg}"));
        let app =
            TestApp::spawn_with(Options { env: vec![("LATCHKEY_SIGNING_ALG", alg.to_owned())], ..Options::default() })
                .await;
        let mut driver = Driver { app: &app, email: EMAIL, refresh_token: String::new() };
        driver.refresh_token = token_of(&driver.login().await?.1)?;
        for _ in 0..10 {
            driver.refresh().await?;
        }
        let before = process_cpu().ok_or("no /proc/self/task on this OS")?;
        for _ in 0..count {
            driver.refresh().await?;
        }
        let spent = process_cpu().ok_or("no /proc")?.saturating_sub(before);
        out.push((format!("refresh {alg}"), spent / u32::try_from(count).unwrap_or(1)));
        if alg == "RS256" {
            let logins = if args.quick { 2 } else { 20 };
            let before = process_cpu().ok_or("no /proc")?;
            for _ in 0..logins {
                driver.login().await?;
            }
            let spent = process_cpu().ok_or("no /proc")?.saturating_sub(before);
            out.push(("login RS256 (argon2id included)".into(), spent / u32::try_from(logins).unwrap_or(1)));
        }
    }
    Ok(out)
}

async fn measure_cold_starts(
    app: &TestApp,
    exchanger: &Exchanger<'_>,
    webhooks: &Webhooks<'_>,
    decisions: &Decisions<'_>,
    args: &Args,
) -> Result<Vec<ColdStartResult>, String> {
    let runs = args.cold_runs();
    let binaries = workspace_root().join("target").join(&args.profile);
    let env = function_env(app.table.name());
    let timeout = Duration::from_secs(30);
    let driver = Driver { app, email: EMAIL, refresh_token: String::new() };
    // A fresh refresh token per refresh cold start: each is single-use.
    let mut refresh_events = Vec::with_capacity(runs);
    for _ in 0..runs {
        refresh_events.push(json_event("/v1/auth/refresh", &refresh_body(&token_of(&driver.login().await?.1)?)));
    }
    let login_event = json_event("/v1/auth/login", &login_body(EMAIL, PASSWORD));
    // The token function: a client_credentials exchange, repeatable with the
    // same key (a fresh process stamps the key's last_used_at concurrently on
    // its first exchange, as a real cold start would).
    let token_event = json_event(token::PATH, &exchanger.client_credentials_body);
    // The authorizer on a key counted against its tenant's plan, as keys are
    // by default: a fresh instance reads the key and the plan, then counts.
    let plan_key = guard::ApiKey::add(app, TestKey::default()).await;
    let api_key_authorizer_event = guard::authorizer_event_json(&plan_key.headers())?;
    let jwks_event = event_json(JWKS_PATH, "GET", &[("content-type", "")], "", CLIENT_IP);

    let mut results = Vec::new();
    for (label, function) in COLD_STARTS {
        let binary = binaries.join(function);
        if !binary.exists() {
            let release = if args.profile == "release" { " --release" } else { "" };
            return Err(format!(
                "{} is missing: build it with `cargo build{release} -p {function} --bin {function}`",
                binary.display(),
            ));
        }
        progress(&format!("cold start, {label} ×{runs}"));
        let mut runs_out = Vec::with_capacity(runs);
        for refresh_event in &refresh_events {
            let event = match label {
                "login" => login_event.clone(),
                "refresh" => refresh_event.clone(),
                "token" => token_event.clone(),
                // A new delivery per run, signed now: the fresh instance reads
                // the source (GetItem), verifies, then stores the event (PutItem).
                "webhook" => webhooks.delivery()?.event,
                AUTHORIZER_BEARER_COLD => decisions.bearer_authorizer_event().to_owned(),
                AUTHORIZER_API_KEY_COLD => api_key_authorizer_event.clone(),
                "jwks" => jwks_event.clone(),
                other => return Err(format!("no first event for the {other} cold start")),
            };
            // The emulator is blocking std code: keep it off the async thread.
            let (binary, env) = (binary.clone(), env.clone());
            let run = tokio::task::spawn_blocking(move || {
                cold_start::measure_cold_start(&binary, &env, &event, timeout, false)
            })
            .await
            .map_err(|e| e.to_string())??;
            check_first_answer(label, function, &run)?;
            runs_out.push(run);
        }
        results.push(ColdStartResult::from_runs(label, &runs_out));
    }
    Ok(results)
}

/// A cold start's first answer must be a success: a 200 from a function
/// behind the HTTP API, an allow from the authorizer (which answers with a
/// decision, not a status).
fn check_first_answer(label: &str, function: &str, run: &ColdStart) -> Result<(), String> {
    let succeeded = if function == "authorizer" {
        serde_json::from_slice::<Value>(&run.response).is_ok_and(|decision| decision["isAuthorized"] == true)
    } else {
        run.response_status == Some(200)
    };
    if succeeded && !run.errored {
        return Ok(());
    }
    Err(format!(
        "{label} cold start answered {:?} (errored: {}): {}",
        run.response_status,
        run.errored,
        String::from_utf8_lossy(&run.response)
    ))
}

/// The functions whose arm64 zip is measured.
const FUNCTIONS: [&str; 6] = ["login", "refresh", "token", "webhook", "authorizer", "jwks"];

const AUTHORIZER_BEARER_COLD: &str = "authorizer, access token";
const AUTHORIZER_API_KEY_COLD: &str = "authorizer, API key";

/// The cold starts measured, each a label and the function it runs: every
/// function once, the authorizer once per credential (an access token costs
/// no DynamoDB call once init has loaded the keys; an API key, two reads and
/// the count).
const COLD_STARTS: [(&str, &str); 7] = [
    ("login", "login"),
    ("refresh", "refresh"),
    ("token", "token"),
    ("webhook", "webhook"),
    (AUTHORIZER_BEARER_COLD, "authorizer"),
    (AUTHORIZER_API_KEY_COLD, "authorizer"),
    ("jwks", "jwks"),
];

fn measure_zips() -> Result<Vec<ZipResult>, String> {
    progress("cargo lambda build --release --arm64 --output-format zip (slow: a full cross build)");
    let started = Instant::now();
    let status = std::process::Command::new("cargo")
        .args(["lambda", "build", "--release", "--arm64", "--output-format", "zip"])
        .args(FUNCTIONS.iter().flat_map(|function| ["-p", function]))
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo lambda (use `make bench`, which installs it): {e}"))?;
    if !status.success() {
        return Err(format!("cargo lambda build failed: {status}"));
    }
    let build_time = started.elapsed();
    FUNCTIONS
        .iter()
        .map(|function| {
            let zip = workspace_root().join("target/lambda").join(function).join("bootstrap.zip");
            let bytes = std::fs::metadata(&zip).map_err(|e| format!("{}: {e}", zip.display()))?.len();
            Ok(ZipResult { function: (*function).to_owned(), bytes, build_time })
        })
        .collect()
}

async fn run(args: &Args) -> Result<Report, String> {
    progress(&format!("DynamoDB Local at {}; profile {}; quick: {}", dynamodb_endpoint(), args.profile, args.quick));
    let app = TestApp::spawn().await;
    let mut driver = Driver { app: &app, email: EMAIL, refresh_token: String::new() };
    let exchanger = Exchanger::new(&app).await?;
    let webhooks = Webhooks::new(&app).await?;
    webhooks.check_floor_shape().await?;
    let (_, first_login) = driver.login().await?;
    let decisions = Decisions::new(&app, access_token_of(&first_login)?).await?;
    decisions.check_floor_shape().await?;
    progress("warming up");
    driver.refresh_token = token_of(&first_login)?;
    for _ in 0..20 {
        driver.floor_get().await?;
        driver.floor_update().await?;
        driver.floor_get_put().await?;
        driver.refresh().await?;
        exchanger.client_credentials().await?;
        exchanger.api_key().await?;
        webhooks.exercise().await?;
        decisions.exercise().await?;
    }
    let mut calls = count_calls(&mut driver, &exchanger).await?;
    calls.extend(webhooks.count_calls().await?);
    calls.extend(decisions.count_calls().await?);
    let (login_calls, refresh_calls) = (calls_of(&calls, "login"), calls_of(&calls, "refresh"));
    let client_credentials_calls = calls_of(&calls, "exchange client_credentials");
    app.add_user(WIDE_EMAIL, PASSWORD, &wide_scopes()).await;
    let mut sequential = Driver { app: &app, email: WIDE_EMAIL, refresh_token: String::new() };
    sequential.refresh_token = token_of(&sequential.login().await?.1)?;
    let carries = app.latchkey.refresh_codec.open(&sequential.refresh_token.clone().into()).and_then(|c| c.claims);
    if carries.is_some() {
        return Err("the B-side user's claims fit in the token; widen its scopes".into());
    }
    for _ in 0..20 {
        sequential.refresh().await?;
    }
    let latencies = measure_latencies(&mut driver, &mut sequential, &exchanger, &webhooks, &decisions, args).await?;
    let cpu = measure_cpu(args).await?;
    let cold = measure_cold_starts(&app, &exchanger, &webhooks, &decisions, args).await?;
    let zips = if args.skip_zip { Vec::new() } else { measure_zips()? };

    let l = &latencies;
    let refresh_cpu = cpu.iter().find(|(name, _)| name == "refresh RS256").map(|(_, d)| *d).unwrap_or_default();
    let login_budget = l.floor_get.p50() + l.floor_update.p50() + l.argon2.p50() + Duration::from_millis(2);
    let mut targets = vec![
        ratio_target("refresh p50 ≤ 1.3× UpdateItem floor p50", &l.refresh, &l.floor_update, 1.3),
        Target::new("refresh makes exactly 1 DynamoDB call", refresh_calls.join(", "), refresh_calls.len() == 1),
        Target::new("login makes 2 DynamoDB calls", login_calls.join(", "), login_calls.len() == 2),
        Target::new(
            "login p50 ≤ Get + Update floors + argon2id alone + 2 ms",
            format!("{:.2} ms vs {:.2} ms", ms(l.login.p50()), ms(login_budget)),
            l.login.p50() <= login_budget,
        ),
        Target::new(
            "server CPU per refresh ≤ 1.5 ms (RS256)",
            format!("{:.3} ms", ms(refresh_cpu)),
            refresh_cpu <= Duration::from_micros(1500),
        ),
        ratio_target(
            "exchange (client_credentials) p50 ≤ 1.3× GetItem floor p50",
            &l.exchange_client_credentials,
            &l.floor_get,
            1.3,
        ),
        Target::new(
            "exchange (client_credentials) makes exactly 1 DynamoDB call",
            client_credentials_calls.join(", "),
            client_credentials_calls.len() == 1,
        ),
    ];
    targets.extend(webhook_targets(&latencies, &calls));
    targets.extend(guard_targets(&latencies, &calls));
    for c in &cold {
        targets.push(Target::new(
            &format!("{} cold start to first response ≤ 20 ms (median)", c.function),
            format!("{:.1} ms", ms(c.to_response_median)),
            c.to_response_median <= Duration::from_millis(20),
        ));
        targets.push(Target::new(
            &format!("{} peak RSS ≤ 16 MiB", c.function),
            format!("{:.1} MiB", c.peak_rss_kib as f64 / 1024.0),
            c.peak_rss_kib <= 16 * 1024,
        ));
    }
    for z in &zips {
        targets.push(Target::new(
            &format!("{} arm64 zip ≤ 4 MB", z.function),
            format!("{:.2} MB", z.bytes as f64 / 1_000_000.0),
            z.bytes <= 4_000_000,
        ));
    }
    Ok(Report::new(args.profile.clone(), args.quick, latencies_rows(&latencies), cpu, cold, zips, targets)
        .with_dynamodb_calls(calls))
}

/// The webhook endpoint's targets: the warm accept against its PutItem
/// floor, and its DynamoDB calls.
fn webhook_targets(l: &Latencies, calls: &[CallCount]) -> Vec<Target> {
    vec![
        ratio_target("webhook accept p50 ≤ 1.3× conditional PutItem floor p50", &l.webhook_accept, &l.floor_put, 1.3),
        calls_target(
            "webhook accept (source cached) makes exactly 1 DynamoDB call, a PutItem",
            calls,
            "webhook accept",
            &["PutItem"],
        ),
        calls_target(
            "webhook with a forged signature (source cached) makes no DynamoDB call",
            calls,
            "webhook forged signature (source cached)",
            &[],
        ),
    ]
}

/// The targets of the decisions in front of a team's own API: the warm
/// decisions against their floors, and their DynamoDB calls.
fn guard_targets(l: &Latencies, calls: &[CallCount]) -> Vec<Target> {
    vec![
        ratio_target(
            "authorizer (access token) p50 ≤ 1.5× token verification alone p50",
            &l.authorizer_bearer,
            &l.floor_verify,
            1.5,
        ),
        calls_target("authorizer (access token) makes no DynamoDB call", calls, guard::AUTHORIZER_BEARER, &[]),
        ratio_target(
            "authorizer (API key, key cached) p50 ≤ 1.3× counter UpdateItem floor p50",
            &l.authorizer_api_key,
            &l.floor_count,
            1.3,
        ),
        calls_target(
            "authorizer (API key, key cached) makes exactly 1 DynamoDB call, an UpdateItem",
            calls,
            guard::AUTHORIZER_API_KEY,
            &["UpdateItem"],
        ),
        ratio_target(
            "verify (API key, key cached) p50 ≤ 1.3× counter UpdateItem floor p50",
            &l.verify_api_key,
            &l.floor_count,
            1.3,
        ),
        calls_target(
            "verify (API key, key cached) makes exactly 1 DynamoDB call, an UpdateItem",
            calls,
            guard::VERIFY_API_KEY,
            &["UpdateItem"],
        ),
        calls_target("verify (access token) makes no DynamoDB call", calls, guard::VERIFY_BEARER, &[]),
    ]
}

/// `line`'s p50 at most `bound` times `floor`'s.
fn ratio_target(goal: &str, line: &Samples, floor: &Samples, bound: f64) -> Target {
    let ratio = ms(line.p50()) / ms(floor.p50());
    Target::new(goal, format!("{ratio:.2}×"), ratio <= bound)
}

/// `operation` made exactly the `expected` DynamoDB calls (and was counted).
fn calls_target(goal: &str, counts: &[CallCount], operation: &str, expected: &[&str]) -> Target {
    match counts.iter().find(|c| c.operation == operation) {
        Some(counted) => Target::new(goal, report::calls_text(&counted.calls), counted.calls == expected),
        None => Target::new(goal, format!("{operation} not counted"), false),
    }
}

fn latencies_rows(l: &Latencies) -> Vec<report::LatencyRow> {
    let update = l.floor_update.p50();
    let get = l.floor_get.p50();
    let get_put = l.floor_get_put.p50();
    let (verify, count) = (l.floor_verify.p50(), l.floor_count.p50());
    vec![
        report::LatencyRow::new("floor: GetItem (consistent)", &l.floor_get, None),
        report::LatencyRow::new("floor: conditional UpdateItem", &l.floor_update, None),
        report::LatencyRow::new("floor: GetItem, then PutItem", &l.floor_get_put, None),
        report::LatencyRow::new("floor: conditional PutItem (webhook event item)", &l.floor_put, None),
        report::LatencyRow::new("floor: the same PutItem again (condition fails)", &l.floor_put_again, None),
        report::LatencyRow::new("floor: access-token verification alone (keys loaded)", &l.floor_verify, None),
        report::LatencyRow::new("floor: rate-limit counter UpdateItem (conditional ADD)", &l.floor_count, None),
        report::LatencyRow::new("refresh (handler, event → response)", &l.refresh, Some(("UpdateItem", update))),
        report::LatencyRow::new(
            "refresh, signing after the write (A/B)",
            &l.refresh_sequential,
            Some(("UpdateItem", update)),
        ),
        report::LatencyRow::new(
            "login (handler, event → response)",
            &l.login,
            Some(("Get+Update+argon2id", get + update + l.argon2.p50())),
        ),
        report::LatencyRow::new("argon2id verify alone", &l.argon2, None),
        report::LatencyRow::new(
            "exchange client_credentials (handler, event → response)",
            &l.exchange_client_credentials,
            Some(("GetItem", get)),
        ),
        report::LatencyRow::new(
            "exchange api_key (handler, event → response)",
            &l.exchange_api_key,
            Some(("GetItem+PutItem", get_put)),
        ),
        report::LatencyRow::new(
            "webhook accept (handler, event → response)",
            &l.webhook_accept,
            Some(("PutItem", l.floor_put.p50())),
        ),
        report::LatencyRow::new(
            "webhook duplicate (handler, event → response)",
            &l.webhook_duplicate,
            Some(("failed PutItem", l.floor_put_again.p50())),
        ),
        report::LatencyRow::new(
            "authorizer, access token (event → decision)",
            &l.authorizer_bearer,
            Some(("token verification", verify)),
        ),
        report::LatencyRow::new(
            "authorizer, API key cached (event → decision)",
            &l.authorizer_api_key,
            Some(("counter UpdateItem", count)),
        ),
        report::LatencyRow::new(
            "verify, access token (handler, event → response)",
            &l.verify_bearer,
            Some(("token verification", verify)),
        ),
        report::LatencyRow::new(
            "verify, API key cached (handler, event → response)",
            &l.verify_api_key,
            Some(("counter UpdateItem", count)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::took_warm_path;

    fn calls(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_sample_is_warm_reloaded_or_wrong() {
        let (update, get) = (["UpdateItem"], ["GetItem"]);
        assert_eq!(took_warm_path("key", &calls(&update), &update, &get), Ok(true));
        assert_eq!(took_warm_path("key", &calls(&["GetItem", "UpdateItem"]), &update, &get), Ok(false));
        assert_eq!(took_warm_path("token", &[], &[], &["Query"]), Ok(true));
        assert_eq!(took_warm_path("token", &calls(&["Query"]), &[], &["Query"]), Ok(false));
        for wrong in [&["GetItem"][..], &["UpdateItem", "UpdateItem"], &["UpdateItem", "GetItem"], &[]] {
            assert!(took_warm_path("key", &calls(wrong), &update, &get).is_err(), "{wrong:?}");
        }
        assert!(took_warm_path("token", &calls(&["GetItem"]), &[], &["Query"]).is_err());
    }
}
