//! Faults: DynamoDB failing under a running deployment, through the real
//! handlers and one set of SDK clients for the whole test (so "recovers"
//! means without a restart of the service).
//!
//! 1. [`dynamodb_local_killed_mid_run_and_restarted`]: a DynamoDB Local of its
//!    own, keeping its data on disk, is frozen (SIGSTOP), killed (SIGKILL: a
//!    crash, nothing flushed or answered) under a steady mixed workload of
//!    concurrent clients, and restarted on the same port and data. Proves:
//!    every request that ran wholly in the outage answers exactly 503
//!    `unavailable` with `Retry-After: 1` (the authorizer denies), none 500s,
//!    none takes longer than the operation timeout plus a margin; requests in
//!    flight when the server died answer 503 too and left nothing behind;
//!    the service answers again once DynamoDB is back; and the stored state
//!    is whole: no session lost or forked, the rate counter within the one
//!    bound a client can know, every API key with both items or neither,
//!    every webhook event stored once and accepted exactly once.
//! 2. [`writes_whose_answer_is_lost_are_recognised_when_the_sdk_sends_them_again`]:
//!    a proxy holds back DynamoDB's answer to one write past the SDK's attempt
//!    timeout, so the write is applied but the SDK sends it again. Proves that
//!    the re-sent conditional write recognises its own first attempt: a single
//!    refresh is not taken for reuse, a webhook not for a duplicate, a login
//!    not for an id collision, a client assertion not for a replay; and pins
//!    what a lost answer does to a rate counter (counted twice).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lambda_http::http::StatusCode;
use latchkey::domain::{ApiKeyId, RateLimitOverride, TenantId};
use latchkey::store::{Item, RateSubject};
use latchkey::webhook::{Scheme, WebhookSecret};
use latchkey_tests::{
    CLIENT_IP, EMAIL, Options, PASSWORD, TENANT, TestApp, TestKey, TestResponse, bearer, client_assertion, login_body,
    number_attribute, request, settled_window, standard_webhook_headers, string_attribute,
};
use serde_json::json;

// The SDK settings of the outage test, set explicitly to the shipped
// defaults (shared/src/config.rs): an operation, all attempts and backoff
// included, gives up after OPERATION_TIMEOUT_MS.
const OPERATION_TIMEOUT_MS: u64 = 3000;
const ATTEMPT_TIMEOUT_MS: u64 = 1000;
const CONNECT_TIMEOUT_MS: u64 = 500;
const MAX_ATTEMPTS: u32 = 3;
/// Time a request may spend around its failing DynamoDB call (argon2,
/// signing, scheduling) on a loaded two-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// How long after DynamoDB Local answers again every request must succeed:
/// its first answers, from a cold JVM on a busy machine, can take longer than
/// an attempt, and the outage has spent the SDK's retry quota, so a slow
/// first attempt is a 503 until a few successes have refilled it.
const RECOVERY_BOUND: Duration = Duration::from_secs(4);

/// A 201 this close to the freeze may come from a write DynamoDB Local had
/// not made durable when it was killed (see the API-key checks).
const ACK_AT_CRASH: Duration = Duration::from_millis(100);
const HEALTHY_PHASE: Duration = Duration::from_secs(2);
/// How long DynamoDB Local stays frozen, with the probes waiting on it, before
/// it is killed.
const FROZEN: Duration = Duration::from_millis(300);
const OUTAGE_PHASE: Duration = Duration::from_secs(2);
const RECOVERY_PHASE: Duration = Duration::from_secs(6);

const UNAVAILABLE: &str = "the service is temporarily unavailable; retry shortly";
const BODY: &str = r#"{"type":"invoice.paid","data":{"id":"in_1","amount":4200}}"#;

/// What the workload does; one client per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    Refresh,
    Exchange,
    Verify,
    Authorize,
    Webhook,
    CreateKey,
}

/// One request as a client saw it.
#[derive(Debug)]
struct Sample {
    op: Op,
    started: Instant,
    finished: Instant,
    /// The HTTP status; for the authorizer 200 (allowed) or 403 (denied).
    status: StatusCode,
    body: String,
    retry_after: Option<String>,
    /// The webhook id delivered, or the id of the API key created.
    subject: Option<String>,
    /// For webhooks: the answer said `duplicate`.
    duplicate: bool,
}

impl Sample {
    fn elapsed(&self) -> Duration {
        self.finished - self.started
    }

    fn succeeded(&self) -> bool {
        self.status.is_success()
    }

    /// Exactly the SPEC's 503 (or, for the authorizer, a deny, the only
    /// refusal it has).
    fn assert_unavailable(&self) {
        if self.op == Op::Authorize {
            assert_eq!(self.status, StatusCode::FORBIDDEN, "{self:?}");
            return;
        }
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{self:?}");
        let body: serde_json::Value = serde_json::from_str(&self.body).expect("JSON");
        assert_eq!(body, json!({"error": "unavailable", "error_description": UNAVAILABLE}), "{self:?}");
        assert_eq!(self.retry_after.as_deref(), Some("1"), "{self:?}");
    }
}

/// Runs `request` and records it.
async fn sample(op: Op, request: impl Future<Output = TestResponse>) -> (Sample, TestResponse) {
    let started = Instant::now();
    let response = request.await;
    let sample = Sample {
        op,
        started,
        finished: Instant::now(),
        status: response.status,
        body: response.body.clone(),
        retry_after: response.header("retry-after").map(str::to_owned),
        subject: None,
        duplicate: false,
    };
    (sample, response)
}

/// The seeded credentials the workload uses.
#[derive(Debug, Clone)]
struct Seed {
    /// Exchanged with the `api_key` grant.
    exchange_key: (String, String),
    /// Sent as `X-API-Key` to `/v1/verify` and the authorizer; has its own
    /// limit, so its own counter.
    metered_key: (String, String),
    /// A user's access token with `keys:write`.
    user_token: String,
    webhook_secret: WebhookSecret,
}

/// What a refresh chain ends with.
#[derive(Debug)]
struct Chain {
    first: String,
    held: String,
    /// Distinct successors received.
    rotations: u64,
}

/// One client: the same operation again and again until `stop`, a little
/// apart, keeping what the next request needs (the refresh token held, the
/// webhook id not yet accepted).
async fn client(
    app: Arc<TestApp>,
    seed: Seed,
    op: Op,
    stop: Arc<AtomicBool>,
    mut refresh: Option<String>,
) -> (Vec<Sample>, Option<Chain>) {
    let first = refresh.clone();
    let (mut rotations, mut webhook_n) = (0, 0);
    let mut samples = Vec::new();
    let metered = [("x-api-key", seed.metered_key.1.as_str()), ("x-tenant-id", TENANT)];
    let grant =
        json!({"grant_type": "api_key", "api_key_id": seed.exchange_key.0, "api_key_secret": seed.exchange_key.1});
    while !stop.load(Ordering::Relaxed) {
        let mut record = match op {
            Op::Login => sample(op, app.post_login(&login_body(EMAIL, PASSWORD))).await.0,
            Op::Refresh => {
                let held = refresh.clone().expect("a chain holds a token");
                let (record, response) = sample(op, app.post_refresh(&held)).await;
                if response.status == StatusCode::OK {
                    let next = response.json()["refresh_token"].as_str().expect("refresh_token").to_owned();
                    assert_ne!(next, held, "a refresh answers with the successor");
                    rotations += 1;
                    refresh = Some(next);
                }
                record
            }
            Op::Exchange => sample(op, app.post_token(&grant)).await.0,
            Op::Verify => sample(op, app.post_verify(&metered, "")).await.0,
            Op::Authorize => {
                let started = Instant::now();
                let decision = app.authorize("GET /orders", &metered).await;
                let status = if decision.is_authorized { StatusCode::OK } else { StatusCode::FORBIDDEN };
                Sample {
                    op,
                    started,
                    finished: Instant::now(),
                    status,
                    body: String::new(),
                    retry_after: None,
                    subject: None,
                    duplicate: false,
                }
            }
            Op::Webhook => {
                // A sender retries an id until it gets a 200, re-signing each time.
                let id = format!("msg_{webhook_n:04}");
                let headers = standard_webhook_headers(&id, BODY, &seed.webhook_secret);
                let (mut record, response) = sample(op, app.deliver_webhook("billing", &headers, BODY)).await;
                if response.status == StatusCode::OK {
                    record.duplicate = response.json().get("duplicate").is_some();
                    webhook_n += 1;
                }
                record.subject = Some(id);
                record
            }
            Op::CreateKey => {
                let (mut record, response) = sample(op, create_key(&app, &seed.user_token)).await;
                if response.status == StatusCode::CREATED {
                    record.subject = Some(response.json()["id"].as_str().expect("id").to_owned());
                }
                record
            }
        };
        record.body.truncate(300);
        samples.push(record);
        let pause = if op == Op::Login { 60 } else { 15 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let chain = first.map(|first| Chain { first, held: refresh.expect("held"), rotations });
    (samples, chain)
}

async fn create_key(app: &TestApp, user_token: &str) -> TestResponse {
    let authorization = bearer(user_token);
    let headers = [("content-type", "application/json"), ("authorization", authorization.as_str())];
    app.keys_request(request("/v1/api-keys", "POST", &headers, r#"{"name":"fault test"}"#, CLIENT_IP)).await
}

/// A DynamoDB Local of this test's own, on a free port, keeping its data in
/// a directory of its own, driven through `scripts/dynamodb-local.sh`. Killed
/// and its data removed when dropped, also when the test fails.
struct LocalDynamo {
    port: u16,
    data_dir: PathBuf,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dynamodb-local.sh");

impl LocalDynamo {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("address").port();
        let data_dir = std::env::temp_dir().join(format!("latchkey-faults-{}", latchkey::crypto::random_id()));
        let dynamo = Self { port, data_dir };
        dynamo.run("start").await;
        dynamo
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn command(&self, command: &str) -> std::process::Command {
        let mut script = std::process::Command::new("bash");
        script.arg(SCRIPT).arg(command).arg(self.port.to_string()).env("DYNAMODB_LOCAL_DB_PATH", &self.data_dir);
        script
    }

    /// Runs `scripts/dynamodb-local.sh <command> <port>`; panics unless it
    /// succeeds.
    async fn run(&self, command: &'static str) {
        let mut script = self.command(command);
        let output =
            tokio::task::spawn_blocking(move || script.output()).await.expect("joined").expect("the script runs");
        assert!(
            output.status.success(),
            "dynamodb-local.sh {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for LocalDynamo {
    fn drop(&mut self) {
        // Best effort: a failed test must not leave a JVM behind.
        let _ = self.command("kill").output();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// When DynamoDB Local could apply a write: until it was frozen, and again
/// once the restarted one listened.
#[derive(Debug, Clone, Copy)]
struct Outage {
    paused: Instant,
    listening: Instant,
}

impl Outage {
    /// Whether a failed request may still have been applied, its answer lost
    /// (the client cannot know): it overlapped a time the server was up. One
    /// that ran wholly between the freeze and then cannot have been.
    fn may_have_applied(self, sample: &Sample) -> bool {
        !sample.succeeded() && (sample.started < self.paused || sample.finished > self.listening)
    }

    fn unknown(self, samples: &[&Sample], op: Op) -> usize {
        samples.iter().filter(|s| s.op == op && self.may_have_applied(s)).count()
    }
}

/// Polls `port` until something accepts a connection there; returns the end
/// of the last refused attempt, no later than when the listener appeared.
fn listening_since(port: u16) -> Instant {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut refused = Instant::now();
    while TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_err() {
        refused = Instant::now();
        std::thread::sleep(Duration::from_millis(10));
    }
    refused
}

fn successes(samples: &[&Sample], op: Op) -> usize {
    samples.iter().filter(|s| s.op == op && s.succeeded()).count()
}

/// The ids of stored API keys: `(main items, listing items)`.
async fn stored_key_ids(app: &TestApp) -> (BTreeSet<String>, BTreeSet<String>) {
    let main =
        app.stored_items("APIKEY#").await.iter().map(|item| string_attribute(item, "key_id").to_owned()).collect();
    let listing = app
        .stored_items(&format!("TENANT#{TENANT}"))
        .await
        .iter()
        .filter(|item| string_attribute(item, "sk").starts_with("APIKEY#"))
        .map(|item| string_attribute(item, "key_id").to_owned())
        .collect();
    (main, listing)
}

fn families_of(items: &[Item], sub: &str) -> usize {
    items.iter().filter(|item| string_attribute(item, "sub") == sub).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::too_many_lines)] // one scenario, told in order
async fn dynamodb_local_killed_mid_run_and_restarted() {
    let test_started = Instant::now();
    let dynamo = LocalDynamo::start().await;
    let options = Options {
        env: vec![
            ("LATCHKEY_DYNAMODB_TIMEOUT_MS", OPERATION_TIMEOUT_MS.to_string()),
            ("LATCHKEY_DYNAMODB_ATTEMPT_TIMEOUT_MS", ATTEMPT_TIMEOUT_MS.to_string()),
            ("LATCHKEY_DYNAMODB_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS.to_string()),
            ("LATCHKEY_DYNAMODB_MAX_ATTEMPTS", MAX_ATTEMPTS.to_string()),
            // A refresh whose answer the outage swallowed is retried after it
            // with the same token: within the grace window that gets the
            // successor (with none it would be reuse; see races.rs).
            ("LATCHKEY_REFRESH_GRACE_SECONDS", "60".into()),
            // Every X-API-Key decision reads the key, so the limit set at the
            // end applies at once.
            ("LATCHKEY_AUTH_CACHE_SECONDS", "0".into()),
        ],
        ..Options::default()
    };
    let app = Arc::new(TestApp::spawn_at(&dynamo.endpoint(), options).await);

    // Seed: two keys, a user token, a webhook source (cached after one
    // delivery), three sessions: two refresh chains and one for a probe.
    let exchange_key = app.add_held_key(TestKey::default()).await;
    let metered_key =
        app.add_held_key(TestKey { rate_limit: Some(RateLimitOverride::PerHour(5000)), ..TestKey::default() }).await;
    let login = app.login_ok().await;
    let user_token = login["access_token"].as_str().expect("access_token").to_owned();
    let user_sub = app.latchkey.issuer.verify(&user_token).await.expect("valid").sub;
    let webhook_secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &webhook_secret).await;
    let warm = standard_webhook_headers("msg_warm", BODY, &webhook_secret);
    assert_eq!(app.deliver_webhook("billing", &warm, BODY).await.status, StatusCode::OK);
    let mut chains = Vec::new();
    for _ in 0..3 {
        chains.push(app.login_ok().await["refresh_token"].as_str().expect("refresh_token").to_owned());
    }
    let probe_chain = chains.pop().expect("three");
    let seed = Seed { exchange_key, metered_key, user_token, webhook_secret };
    let families_before = app.stored_items("REFRESH#").await;
    let first_window = latchkey::rate_limit::window(latchkey::time::now_secs()).0;

    // The steady workload.
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for (op, chain) in [
        (Op::Login, None),
        (Op::Refresh, Some(chains[0].clone())),
        (Op::Refresh, Some(chains[1].clone())),
        (Op::Exchange, None),
        (Op::Verify, None),
        (Op::Authorize, None),
        (Op::Webhook, None),
        (Op::CreateKey, None),
    ] {
        clients.push(tokio::spawn(client(Arc::clone(&app), seed.clone(), op, Arc::clone(&stop), chain)));
    }
    tokio::time::sleep(HEALTHY_PHASE).await;

    // Freeze DynamoDB Local, send one request of each kind into it, and kill
    // it while they wait for their answers: requests in flight when the
    // server dies, which it certainly never applied.
    dynamo.run("pause").await;
    let paused = Instant::now();
    let probe_id = "msg_probe";
    let probe_headers = standard_webhook_headers(probe_id, BODY, &seed.webhook_secret);
    let grant =
        json!({"grant_type": "api_key", "api_key_id": seed.exchange_key.0, "api_key_secret": seed.exchange_key.1});
    let metered = [("x-api-key", seed.metered_key.1.as_str()), ("x-tenant-id", TENANT)];
    let login_json = login_body(EMAIL, PASSWORD);
    let probes = async {
        let (login, refresh, exchange, verify, webhook, created) = tokio::join!(
            sample(Op::Login, app.post_login(&login_json)),
            sample(Op::Refresh, app.post_refresh(&probe_chain)),
            sample(Op::Exchange, app.post_token(&grant)),
            sample(Op::Verify, app.post_verify(&metered, "")),
            sample(Op::Webhook, app.deliver_webhook("billing", &probe_headers, BODY)),
            sample(Op::CreateKey, create_key(&app, &seed.user_token)),
        );
        [login.0, refresh.0, exchange.0, verify.0, webhook.0, created.0]
    };
    let kill = async {
        tokio::time::sleep(FROZEN).await;
        dynamo.run("kill").await;
        Instant::now()
    };
    let (probes, killed) = tokio::join!(probes, kill);

    // The outage. A bearer token needs no DynamoDB: the stateless path stays up.
    let me = app.keys_request(latchkey_tests::get("/v1/me", &[("authorization", &bearer(&seed.user_token))])).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    tokio::time::sleep(OUTAGE_PHASE).await;

    // Back, on the same port and data, under the same SDK clients. Until the
    // new JVM listens, nothing can reach it.
    let restarting = Instant::now();
    let listening = tokio::task::spawn_blocking({
        let port = dynamo.port;
        move || listening_since(port)
    });
    dynamo.run("start").await;
    let ready = Instant::now();
    let listening = listening.await.expect("joined");
    tokio::time::sleep(RECOVERY_PHASE).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    let mut held_chains = Vec::new();
    for client in clients {
        let (client_samples, chain) = client.await.expect("a client panicked");
        samples.extend(client_samples);
        held_chains.extend(chain);
    }
    let all: Vec<&Sample> = samples.iter().collect();
    let outage = Outage { paused, listening };

    // --- Answers ---
    for probe in &probes {
        probe.assert_unavailable();
        assert!(probe.finished > killed, "the probe was in flight when the server died: {probe:?}");
        assert!(probe.elapsed() <= Duration::from_millis(OPERATION_TIMEOUT_MS) + MARGIN, "{probe:?}");
    }
    let mut outage_answers = 0;
    for sample in &all {
        assert!(
            [StatusCode::OK, StatusCode::CREATED, StatusCode::SERVICE_UNAVAILABLE].contains(&sample.status)
                || (sample.op == Op::Authorize && sample.status == StatusCode::FORBIDDEN),
            "only success or 503: {sample:?}"
        );
        assert!(sample.elapsed() <= Duration::from_millis(OPERATION_TIMEOUT_MS) + MARGIN, "no hang: {sample:?}");
        if !sample.succeeded() {
            sample.assert_unavailable();
        }
        if sample.finished < paused {
            assert!(sample.succeeded(), "before the outage everything works: {sample:?}");
        }
        if sample.started >= paused && sample.finished < listening {
            sample.assert_unavailable();
            outage_answers += 1;
        }
        if sample.started >= ready + RECOVERY_BOUND {
            assert!(sample.succeeded(), "recovered: {sample:?}");
        }
    }
    let mut first_success_after_ready = BTreeMap::new();
    for sample in all.iter().filter(|s| s.started >= ready && s.succeeded()) {
        let since = sample.finished - ready;
        first_success_after_ready.entry(sample.op).and_modify(|d: &mut Duration| *d = (*d).min(since)).or_insert(since);
    }
    assert_eq!(first_success_after_ready.len(), 7, "every operation works again: {first_success_after_ready:?}");
    let pause_started = all.iter().filter(|s| s.started < paused && s.finished >= paused).count();
    let unknown = all.iter().filter(|s| outage.may_have_applied(s)).count();
    eprintln!(
        "faults: {} requests ({outage_answers} wholly in the outage, all 503; {pause_started} in flight at the \
         pause; {} probes in flight at the kill; {unknown} failures that may have been applied); outage {:.1} s; restart took {:.1} s (listening after {:.1} s); first success after \
         restart per operation: {first_success_after_ready:?}; slowest answer {:?}",
        all.len(),
        probes.len(),
        (ready - paused).as_secs_f64(),
        (ready - restarting).as_secs_f64(),
        (listening - restarting).as_secs_f64(),
        all.iter().chain(probes.iter().collect::<Vec<_>>().iter()).map(|s| s.elapsed()).max(),
    );
    assert!(outage_answers >= 7, "the outage was exercised: {outage_answers}");

    // --- Stored state ---
    // A failed request may have been applied with its answer lost if it ran
    // while DynamoDB was up: under way at the freeze, or timed out against
    // the restarted, still cold server after the outage had used up the
    // SDK's retry quota. Those bound what the client cannot know; the probes,
    // sent into the frozen server, wrote nothing.
    //
    // Sessions: one per successful login or exchange, plus at most one per
    // such failure.
    let families = app.stored_items("REFRESH#").await;
    let exchange_sub = seed.exchange_key.0.as_str();
    let new_user = families_of(&families, &user_sub) - families_of(&families_before, &user_sub);
    let logins = successes(&all, Op::Login);
    assert!(
        (logins..=logins + outage.unknown(&all, Op::Login)).contains(&new_user),
        "{new_user} new sessions for {logins} logins"
    );
    let new_key_sessions = families_of(&families, exchange_sub) - families_of(&families_before, exchange_sub);
    let exchanges = successes(&all, Op::Exchange);
    assert!(
        (exchanges..=exchanges + outage.unknown(&all, Op::Exchange)).contains(&new_key_sessions),
        "{new_key_sessions} new sessions for {exchanges} exchanges"
    );
    // Nothing in this workload revokes: a session lost to the outage would
    // show as revoked (reuse) here.
    for family in &families {
        assert_eq!(family.get("revoked_at"), None, "{family:?}");
    }
    // Each chain's family stands at exactly the rotations its client saw (a
    // rotation whose answer was lost was delivered by the grace window), and
    // the token the client holds works.
    for chain in &held_chains {
        let family = app.stored_family(&chain.first).await.expect("stored");
        assert_eq!(number_attribute(&family, "generation"), Some(chain.rotations), "{family:?}");
        let next = app.post_refresh(&chain.held).await;
        assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    }
    let probe_family = app.stored_family(&probe_chain).await.expect("stored");
    assert_eq!(number_attribute(&probe_family, "generation"), Some(0), "the in-flight refresh was not applied");
    assert_eq!(app.post_refresh(&probe_chain).await.status, StatusCode::OK);

    // The rate counter: every admitted request counted once, a failed one
    // at most once and only if it may have been applied. Counting is one
    // UpdateItem, applied or not; a client cannot tell which for an answer it
    // never got.
    let metered_id = ApiKeyId::parse(&seed.metered_key.0).expect("valid id");
    let subject = RateSubject::ApiKey(metered_id.clone());
    let last_window = latchkey::rate_limit::window(latchkey::time::now_secs()).0;
    let mut counted = 0;
    for window in (first_window..=last_window).step_by(3600) {
        counted += app.latchkey.stores.rate_limits.current(&subject, window).await.expect("read");
    }
    let admitted = successes(&all, Op::Verify) + successes(&all, Op::Authorize);
    let unknown = outage.unknown(&all, Op::Verify) + outage.unknown(&all, Op::Authorize);
    let counted = usize::try_from(counted).expect("small");
    assert!((admitted..=admitted + unknown).contains(&counted), "counted {counted}, admitted {admitted} (+{unknown})");
    // And it still limits: two more, then 429.
    let (window, _) = settled_window(5).await;
    let now_count = app.latchkey.stores.rate_limits.current(&subject, window).await.expect("read");
    let limit = u32::try_from(now_count + 2).expect("small");
    let tenant = TenantId::parse(TENANT).expect("valid");
    let set =
        app.latchkey.stores.api_keys.set_rate_limit(&tenant, &metered_id, Some(RateLimitOverride::PerHour(limit)));
    assert!(set.await.expect("limit set"));
    for remaining in [1, 0] {
        let response = app.post_verify(&metered, "").await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(response.json()["ratelimit"]["remaining"], remaining);
    }
    app.post_verify(&metered, "").await.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(app.latchkey.stores.rate_limits.current(&subject, window).await.expect("read"), u64::from(limit));

    // API keys: both items or neither, never one (the two are one
    // transaction); every 201 stored; at most the uncertain failures extra.
    // Exempt from "stored": a 201 that reached the client after the freeze
    // or within ACK_AT_CRASH before it. DynamoDB Local acknowledged such a
    // transaction and lost it to the SIGKILL once in about 30 runs (its
    // durability, not Latchkey's: DynamoDB acknowledges only durable writes);
    // both-or-neither still holds for it.
    let (main, listing) = stored_key_ids(&app).await;
    assert_eq!(main, listing, "every key has both items");
    let created: BTreeSet<String> =
        all.iter().filter_map(|s| s.subject.clone().filter(|_| s.op == Op::CreateKey)).collect();
    let lost: Vec<String> = all
        .iter()
        .filter(|s| s.op == Op::CreateKey && s.subject.as_ref().is_some_and(|id| !main.contains(id)))
        .filter(|s| s.finished + ACK_AT_CRASH < paused)
        .map(|s| {
            format!(
                "{:?} started {:.3} finished {:.3} (paused {:.3}, listening {:.3})",
                s.subject,
                (s.started - test_started).as_secs_f64(),
                (s.finished - test_started).as_secs_f64(),
                (paused - test_started).as_secs_f64(),
                (listening - test_started).as_secs_f64()
            )
        })
        .collect();
    assert!(lost.is_empty(), "answered 201 but not stored: {lost:?}");
    let extra = main.difference(&created).count().saturating_sub(2);
    assert!(extra <= outage.unknown(&all, Op::CreateKey), "{extra} keys nobody was told about");

    // Webhooks: every id the sender kept retrying is stored exactly once and
    // was accepted as new exactly once, unless a failed attempt that may have
    // been applied stored it unanswered (then the retry was its duplicate).
    let mut per_id: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for sample in all.iter().filter(|s| s.op == Op::Webhook) {
        let entry = per_id.entry(sample.subject.clone().expect("id")).or_default();
        match (sample.succeeded(), sample.duplicate) {
            (true, false) => entry.0 += 1,
            (true, true) => entry.1 += 1,
            (false, _) if outage.may_have_applied(sample) => entry.2 += 1,
            (false, _) => {}
        }
    }
    let stored: BTreeSet<String> =
        app.stored_webhook_events().await.iter().map(|item| string_attribute(item, "event_id").to_owned()).collect();
    let delivered: BTreeSet<String> = per_id.keys().cloned().chain(["msg_warm".to_owned()]).collect();
    assert_eq!(stored, delivered, "stored exactly the ids delivered, each once");
    for (id, (new, duplicate, unknown)) in &per_id {
        assert!(new + duplicate >= 1, "{id} was accepted");
        assert!(*new == 1 || (*new == 0 && *unknown >= 1), "{id}: {new} new, {duplicate} duplicate");
    }
    // The in-flight delivery was not stored; its retry now is, once.
    assert!(app.stored_webhook_event("billing", probe_id).await.is_none());
    let retry = standard_webhook_headers(probe_id, BODY, &seed.webhook_secret);
    assert_eq!(app.deliver_webhook("billing", &retry, BODY).await.json(), json!({"received": true, "id": probe_id}));
    assert_eq!(
        app.deliver_webhook("billing", &retry, BODY).await.json(),
        json!({"received": true, "id": probe_id, "duplicate": true})
    );

    dynamo.run("stop").await;
    eprintln!("faults: the whole test took {:.1} s", test_started.elapsed().as_secs_f64());
}

/// A TCP proxy in front of the shared DynamoDB Local that passes every byte
/// on at once, except that it can hold back DynamoDB's answer to the next
/// request of one operation for longer than the SDK's attempt timeout: the
/// write is applied, its answer is lost to the client, and the SDK sends it
/// again, as after a slow network or a dropped connection.
struct AnswerHoldingProxy {
    endpoint: String,
    armed: Arc<Mutex<Option<&'static str>>>,
    held: Arc<AtomicUsize>,
}

impl AnswerHoldingProxy {
    fn start(upstream: &str, delay: Duration) -> Self {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let armed: Arc<Mutex<Option<&'static str>>> = Arc::default();
        let held = Arc::new(AtomicUsize::new(0));
        let (proxy_armed, proxy_held) = (Arc::clone(&armed), Arc::clone(&held));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let hold_answer = Arc::new(AtomicBool::new(false));
                let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let (armed, hold_next) = (Arc::clone(&proxy_armed), Arc::clone(&hold_answer));
                std::thread::spawn(move || {
                    let mut buffer = vec![0; 64 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buffer) {
                        let mut armed = armed.lock().expect("lock");
                        // The SDK sends an operation's headers in one write;
                        // `X-Amz-Target: DynamoDB_20120810.<Operation>` names it.
                        if let Some(operation) = *armed {
                            let target = format!("DynamoDB_20120810.{operation}\r\n");
                            if buffer[..n].windows(target.len()).any(|w| w == target.as_bytes()) {
                                *armed = None;
                                hold_next.store(true, Ordering::SeqCst);
                            }
                        }
                        drop(armed);
                        if to_server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(Shutdown::Write);
                });
                let (mut from_server, mut to_client, held) = (server, client, Arc::clone(&proxy_held));
                std::thread::spawn(move || {
                    let mut buffer = vec![0; 64 * 1024];
                    while let Ok(n @ 1..) = from_server.read(&mut buffer) {
                        if hold_answer.swap(false, Ordering::SeqCst) {
                            held.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(delay);
                        }
                        if to_client.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_client.shutdown(Shutdown::Both);
                });
            }
        });
        Self { endpoint, armed, held }
    }

    /// Holds back the answer to the next request of `operation` (`PutItem`,
    /// `UpdateItem`, ...).
    fn hold_next_answer_to(&self, operation: &'static str) {
        *self.armed.lock().expect("lock") = Some(operation);
    }

    fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn writes_whose_answer_is_lost_are_recognised_when_the_sdk_sends_them_again() {
    // The shipped SDK settings: 1 s attempt timeout, 3 s per operation, 3
    // attempts. The held answer arrives after the attempt gave up.
    let proxy = AnswerHoldingProxy::start(&latchkey_tests::dynamodb_endpoint(), Duration::from_millis(1500));
    let app = TestApp::spawn_at(&proxy.endpoint, Options::default()).await;

    // A refresh: its one UpdateItem rotated the family, the SDK sent it again,
    // and the condition (generation 0) failed on the rotation itself. That is
    // not reuse: 200 with the successor, the family live at generation 1.
    let token = app.login_ok().await["refresh_token"].as_str().expect("refresh_token").to_owned();
    proxy.hold_next_answer_to("UpdateItem");
    let refreshed = app.post_refresh(&token).await;
    assert_eq!(proxy.held(), 1, "the answer was held back");
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let family = app.stored_family(&token).await.expect("stored");
    assert_eq!((number_attribute(&family, "generation"), family.get("revoked_at")), (Some(1), None));
    let successor = refreshed.json()["refresh_token"].as_str().expect("refresh_token").to_owned();
    assert_eq!(app.post_refresh(&successor).await.status, StatusCode::OK);

    // A webhook: the event was stored by the first attempt; the second is not
    // its duplicate.
    let secret = WebhookSecret::generate();
    app.add_webhook_source("billing", &[Scheme::Standard], &secret).await;
    let warm = standard_webhook_headers("msg_warm", BODY, &secret);
    assert_eq!(app.deliver_webhook("billing", &warm, BODY).await.status, StatusCode::OK, "source cached");
    proxy.hold_next_answer_to("PutItem");
    let headers = standard_webhook_headers("msg_slow", BODY, &secret);
    let delivered = app.deliver_webhook("billing", &headers, BODY).await;
    assert_eq!(proxy.held(), 2);
    assert_eq!(delivered.json(), json!({"received": true, "id": "msg_slow"}), "{}", delivered.body);
    assert_eq!(app.stored_webhook_events().await.len(), 2);
    let again = app.deliver_webhook("billing", &headers, BODY).await;
    assert_eq!(again.json(), json!({"received": true, "id": "msg_slow", "duplicate": true}));

    // A login: its family's PutItem (attribute_not_exists) applied; the
    // second attempt is not an id collision (503).
    let families = app.stored_items("REFRESH#").await.len();
    proxy.hold_next_answer_to("PutItem");
    let login = app.post_login(&login_body(EMAIL, PASSWORD)).await;
    assert_eq!(proxy.held(), 3);
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(app.stored_items("REFRESH#").await.len(), families + 1, "one session");

    // A client assertion (jwt-bearer): its single-use marker was written by
    // the first attempt; the second is not a replay.
    let (key_id, key) = app.add_held_key(TestKey::default()).await;
    let now = latchkey::time::now_secs();
    let claims = json!({"sub": key_id, "iat": now, "exp": now + 300, "iss": "sdk"});
    let assertion = client_assertion(&key_id, &claims, key.as_bytes());
    let grant = json!({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion});
    proxy.hold_next_answer_to("PutItem");
    let exchanged = app.post_token(&grant).await;
    assert_eq!(proxy.held(), 4);
    assert_eq!(exchanged.status, StatusCode::OK, "{}", exchanged.body);
    app.post_token(&grant).await.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");

    // A rate-limit count, pinned as it is: `ADD count 1` cannot recognise its
    // own first attempt without a read, so the SDK's second attempt counts the
    // request again. The limit still holds (the condition is on the count);
    // the window over-counts by the answers lost.
    let (metered_id, metered) =
        app.add_held_key(TestKey { rate_limit: Some(RateLimitOverride::PerHour(10)), ..TestKey::default() }).await;
    let (window, _) = settled_window(10).await;
    let headers = [("x-api-key", metered.as_str()), ("x-tenant-id", TENANT)];
    assert_eq!(app.post_verify(&headers, "").await.json()["ratelimit"]["remaining"], 9, "the key is cached now");
    proxy.hold_next_answer_to("UpdateItem");
    let counted = app.post_verify(&headers, "").await;
    assert_eq!(proxy.held(), 5);
    assert_eq!(counted.status, StatusCode::OK, "{}", counted.body);
    assert_eq!(counted.json()["ratelimit"]["remaining"], 7, "one request, counted twice");
    let subject = RateSubject::ApiKey(ApiKeyId::parse(&metered_id).expect("valid id"));
    assert_eq!(app.latchkey.stores.rate_limits.current(&subject, window).await.expect("read"), 3);
}
