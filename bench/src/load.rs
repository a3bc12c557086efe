//! `latchkey-bench load` (`scripts/load.sh`): a bounded load test of the
//! functions over real HTTP on loopback.
//!
//! The stack: `cargo lambda watch --only-lambda-apis` (started by the script)
//! takes each request on its function URL, turns it into an API Gateway HTTP
//! API (payload 2.0) event and queues it for the function. This client starts
//! the function instances itself, from the release binaries: `--instances` of
//! each function (default: one per virtual user, as Lambda scales out to one
//! instance per concurrent request), each polling the queue and handling one
//! invocation at a time, as on Lambda. So it knows their PIDs and reads their
//! peak RSS (VmHWM) at the end. Before that it seeds, with the `latchkey`
//! CLI: the table, a signing key, a tenant on the free plan (100 requests an
//! hour), and per virtual user a user and an API key with its own limit of
//! 10^9 an hour, so that each verify with the key is counted (one UpdateItem
//! on the key's counter) and none is refused.
//!
//! Each virtual user is a thread with one keep-alive connection that loops
//! [`MIX`] for the warm-up (not recorded), then for the measured duration.
//! Any non-2xx answer, transport error (a 30 s timeout included) or
//! unexpected body is an error; any error, an instance that died or an
//! ERROR line in the functions' logs fails the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::cold_start::{KillOnDrop, lambda_command, peak_rss_kib};
use crate::report::{machine, ms_cell};
use crate::stats::{ms, percentile, process_cpu_of};
use crate::{progress, workspace_root};

/// The functions the mix calls, by their binary names.
const FUNCTIONS: [&str; 4] = ["login", "refresh", "token", "keys"];

/// Each API key's own hourly limit: counted like any limit, never reached.
const KEY_LIMIT: u64 = 1_000_000_000;

/// What one request waits at most: a stuck request becomes an error, not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    Refresh,
    ExchangeApiKey,
    ExchangeClientCredentials,
    VerifyBearer,
    VerifyApiKey,
}

impl Op {
    const ALL: [Op; 6] =
        [Op::Login, Op::Refresh, Op::ExchangeApiKey, Op::ExchangeClientCredentials, Op::VerifyBearer, Op::VerifyApiKey];

    /// The function that serves it.
    fn function(self) -> &'static str {
        match self {
            Op::Login => "login",
            Op::Refresh => "refresh",
            Op::ExchangeApiKey | Op::ExchangeClientCredentials => "token",
            Op::VerifyBearer | Op::VerifyApiKey => "keys",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Op::Login => "login (argon2id)",
            Op::Refresh => "refresh (rotation)",
            Op::ExchangeApiKey => "exchange, api_key grant",
            Op::ExchangeClientCredentials => "exchange, client_credentials (HTTP Basic)",
            Op::VerifyBearer => "POST /v1/verify, access token",
            Op::VerifyApiKey => "POST /v1/verify, API key (counted)",
        }
    }
}

/// One virtual user's cycle of 20 requests: 1 login (argon2id makes it the
/// costly one, and a session logs in once and then refreshes), 4 refreshes,
/// 2 `api_key` and 3 `client_credentials` exchanges, and 10 verifications,
/// half with the access token, half with the API key. Each user starts at a
/// different point of the cycle, so the logins do not come in waves.
const MIX: [Op; 20] = [
    Op::Login,
    Op::VerifyBearer,
    Op::Refresh,
    Op::VerifyApiKey,
    Op::ExchangeClientCredentials,
    Op::VerifyBearer,
    Op::ExchangeApiKey,
    Op::VerifyApiKey,
    Op::Refresh,
    Op::VerifyBearer,
    Op::ExchangeClientCredentials,
    Op::VerifyApiKey,
    Op::Refresh,
    Op::VerifyBearer,
    Op::ExchangeApiKey,
    Op::VerifyApiKey,
    Op::ExchangeClientCredentials,
    Op::VerifyBearer,
    Op::Refresh,
    Op::VerifyApiKey,
];

fn mix_text() -> String {
    Op::ALL
        .iter()
        .map(|op| format!("{} × {}", MIX.iter().filter(|m| *m == op).count(), op.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug)]
struct Args {
    /// `host:port` of `cargo lambda watch`.
    watch: String,
    duration: Duration,
    warmup: Duration,
    concurrency: usize,
    instances: usize,
    bin_dir: PathBuf,
    cli: PathBuf,
    tenant: String,
    logs: PathBuf,
    results: PathBuf,
}

const USAGE: &str = "latchkey-bench load --watch HOST:PORT [--duration S] [--warmup S] [--concurrency N] \
                     [--instances N] [--bin-dir DIR] [--cli PATH] [--tenant ID] [--logs DIR] [--results DIR]";

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let root = workspace_root();
        let (mut watch, mut duration, mut warmup, mut concurrency) = (None, 60, 5, 16);
        let (mut instances, mut bin_dir, mut cli) = (None, root.join("target/release"), None);
        let mut tenant = "load".to_owned();
        let (mut logs, mut results) = (root.join("target/load"), root.join("bench/results"));
        let mut it = args;
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value; usage: {USAGE}"));
            let number = |text: String| text.parse::<usize>().map_err(|_| format!("{arg}: not a number: {text}"));
            match arg.as_str() {
                "--watch" => watch = Some(value()?),
                "--duration" => duration = number(value()?)?,
                "--warmup" => warmup = number(value()?)?,
                "--concurrency" => concurrency = number(value()?)?,
                "--instances" => instances = Some(number(value()?)?),
                "--bin-dir" => bin_dir = PathBuf::from(value()?),
                "--cli" => cli = Some(PathBuf::from(value()?)),
                "--tenant" => tenant = value()?,
                "--logs" => logs = PathBuf::from(value()?),
                "--results" => results = PathBuf::from(value()?),
                other => return Err(format!("unknown argument {other}; usage: {USAGE}")),
            }
        }
        let watch = watch.ok_or_else(|| format!("--watch is required; usage: {USAGE}"))?;
        if concurrency == 0 || duration == 0 || instances == Some(0) {
            return Err("--concurrency, --duration and --instances must be at least 1".into());
        }
        Ok(Self {
            watch,
            duration: Duration::from_secs(u64::try_from(duration).unwrap_or(u64::MAX)),
            warmup: Duration::from_secs(u64::try_from(warmup).unwrap_or(u64::MAX)),
            concurrency,
            instances: instances.unwrap_or(concurrency),
            cli: cli.unwrap_or_else(|| bin_dir.join("latchkey")),
            bin_dir,
            tenant,
            logs,
            results,
        })
    }
}

/// `latchkey-bench load ...`: runs, prints the report and writes it to
/// `bench/results/load-<date>.md`. Fails on any error.
pub fn main(args: impl Iterator<Item = String>) -> ExitCode {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("latchkey-bench load: {err}");
            return ExitCode::from(2);
        }
    };
    let report = match run(&args) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("latchkey-bench load: {err}");
            return ExitCode::FAILURE;
        }
    };
    let markdown = report.markdown();
    #[allow(clippy::print_stdout)]
    {
        println!("{markdown}");
    }
    let path = args.results.join(format!("load-{}.md", &report.started_at[..10]));
    if let Err(err) = std::fs::create_dir_all(&args.results).and_then(|()| std::fs::write(&path, &markdown)) {
        eprintln!("latchkey-bench load: writing {}: {err}", path.display());
        return ExitCode::FAILURE;
    }
    progress(&format!("results written to {}", path.display()));
    if report.failed() {
        eprintln!("latchkey-bench load: FAILED: errors above (function logs in {})", args.logs.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// A virtual user's credentials, seeded with the CLI.
#[derive(Debug)]
struct Credentials {
    email: String,
    password: String,
    key_id: String,
    key: String,
}

/// Runs `latchkey --json <args>` (the password, if any, on stdin) and
/// returns its stdout.
fn latchkey_cli(cli: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let what = format!("latchkey {}", args.join(" "));
    let mut child = Command::new(cli)
        .arg("--json")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cli.display()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(format!("{text}\n").as_bytes()).map_err(|e| format!("{what}: writing stdin: {e}"))?;
    }
    let output = child.wait_with_output().map_err(|e| format!("{what}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{what}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("{what}: {e}"))
}

/// The table, a signing key (so that every instance loads it at cold start,
/// as after a deployment's first login), the tenant, and one user and one
/// API key per virtual user.
fn seed(args: &Args) -> Result<Vec<Credentials>, String> {
    let cli = |argv: &[&str], stdin: Option<&str>| latchkey_cli(&args.cli, argv, stdin);
    cli(&["table", "create"], None)?;
    cli(&["signing-key", "rotate", "--immediate"], None)?;
    cli(&["tenant", "add", &args.tenant, "--plan", "free"], None)?;
    let limit = KEY_LIMIT.to_string();
    (0..args.concurrency)
        .map(|user| {
            let email = format!("load-{user}@example.com");
            let password = format!("load-{}", latchkey::crypto::random_id());
            let user_add = ["user", "add", "--tenant", &args.tenant, "--email", &email, "--password-stdin"];
            cli(&user_add, Some(&password))?;
            let name = format!("load-{user}");
            let created: Value = serde_json::from_str(&cli(
                &["api-key", "create", "--tenant", &args.tenant, "--name", &name, "--rate-limit", &limit],
                None,
            )?)
            .map_err(|e| format!("latchkey api-key create: {e}"))?;
            let field = |name: &str| {
                created[name].as_str().map(str::to_owned).ok_or_else(|| format!("api-key create printed no {name}"))
            };
            Ok(Credentials { email, password, key_id: field("id")?, key: field("key")? })
        })
        .collect()
}

/// The function instances, killed when dropped.
#[derive(Debug)]
struct Instances {
    by_function: Vec<(&'static str, Vec<KillOnDrop>)>,
}

impl Instances {
    /// `count` instances of each function, their stdout and stderr appended
    /// to `<logs>/<function>.log`.
    fn start(args: &Args) -> Result<Self, String> {
        std::fs::create_dir_all(&args.logs).map_err(|e| format!("{}: {e}", args.logs.display()))?;
        let mut by_function = Vec::new();
        for function in FUNCTIONS {
            let binary = args.bin_dir.join(function);
            if !binary.exists() {
                return Err(format!(
                    "{} is missing: build it with `cargo build --release -p {function} --bin {function}`",
                    binary.display()
                ));
            }
            let log = log_path(args, function);
            File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let runtime_api = format!("http://{}/.rt/{function}", args.watch);
            let mut instances = Vec::with_capacity(args.instances);
            for instance in 0..args.instances {
                // Appending: every instance's lines land whole in the one file.
                let out = OpenOptions::new().append(true).open(&log).map_err(|e| format!("{}: {e}", log.display()))?;
                let err = out.try_clone().map_err(|e| e.to_string())?;
                let child =
                    lambda_command(&binary, &format!("{function}{instance}"), &deployed_env(function), &runtime_api)
                        .stdout(out)
                        .stderr(err)
                        .spawn()
                        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
                instances.push(KillOnDrop(child));
            }
            by_function.push((function, instances));
        }
        Ok(Self { by_function })
    }

    /// CPU time each function's instances have used so far, in [`FUNCTIONS`] order.
    fn cpu(&self) -> Vec<Duration> {
        let of = |processes: &[KillOnDrop]| processes.iter().filter_map(|p| process_cpu_of(p.0.id())).sum();
        self.by_function.iter().map(|(_, processes)| of(processes)).collect()
    }

    /// An instance that exited, if any: none should, ever.
    fn exited(&mut self) -> Option<String> {
        self.by_function.iter_mut().find_map(|(function, instances)| {
            instances.iter_mut().find_map(|instance| match instance.0.try_wait() {
                Ok(Some(status)) => Some(format!("a {function} instance exited: {status}")),
                Ok(None) => None,
                Err(err) => Some(format!("a {function} instance: {err}")),
            })
        })
    }
}

fn log_path(args: &Args, function: &str) -> PathBuf {
    args.logs.join(format!("{function}.log"))
}

/// The URLs of the function URLs under `cargo lambda watch`.
#[derive(Debug)]
struct Urls {
    login: String,
    refresh: String,
    token: String,
    verify: String,
}

impl Urls {
    fn new(watch: &str) -> Self {
        let url = |function: &str, path: &str| format!("http://{watch}/lambda-url/{function}{path}");
        Self {
            login: url("login", login::PATH),
            refresh: url("refresh", refresh::REFRESH_PATH),
            token: url("token", token::PATH),
            verify: url("keys", keys::VERIFY_PATH),
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(REQUEST_TIMEOUT)).build().into()
}

/// Waits until each function answers (a GET on its POST-only path: 405 from
/// the function itself), or one of its instances dies.
fn wait_until_ready(args: &Args, instances: &mut Instances, urls: &Urls) -> Result<(), String> {
    let agent = agent();
    for url in [&urls.login, &urls.refresh, &urls.token, &urls.verify] {
        if let Some(exited) = instances.exited() {
            return Err(exited);
        }
        let mut response = agent.get(url).call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        let answered = serde_json::from_str::<Value>(&body).is_ok_and(|body| body["error"].is_string());
        if status != 405 || !answered {
            return Err(format!(
                "GET {url} answered {status} {body}: is `cargo lambda watch --only-lambda-apis` on {}?",
                args.watch
            ));
        }
    }
    Ok(())
}

/// Why a request counts as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    Status(u16),
    Transport,
    UnexpectedBody,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "HTTP {status}"),
            Failure::Transport => f.write_str("transport error"),
            Failure::UnexpectedBody => f.write_str("unexpected body"),
        }
    }
}

#[derive(Debug)]
struct Failed {
    failure: Failure,
    /// The error or the response body (no credential is ever in either).
    detail: String,
}

fn unexpected(detail: String) -> Failed {
    Failed { failure: Failure::UnexpectedBody, detail }
}

/// One POST; `Ok` with the JSON body of a 2xx answer.
fn post(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)], body: Option<(&str, &str)>) -> Result<Value, Failed> {
    let transport = |e: ureq::Error| Failed { failure: Failure::Transport, detail: format!("POST {url}: {e}") };
    let mut request = agent.post(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = match body {
        Some((content_type, body)) => request.header("content-type", content_type).send(body),
        None => request.send_empty(),
    }
    .map_err(transport)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(transport)?;
    if !(200..300).contains(&status) {
        return Err(Failed { failure: Failure::Status(status), detail: text });
    }
    serde_json::from_str(&text).map_err(|e| unexpected(format!("{e}: {text}")))
}

/// A string field of a token response. The error names the fields present,
/// not their values: they are tokens, and the report is a file.
fn string_field(body: &Value, name: &str) -> Result<String, Failed> {
    body[name].as_str().map(str::to_owned).ok_or_else(|| {
        let fields = body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default();
        unexpected(format!("no {name} in a body with the fields [{fields}]"))
    })
}

/// A user's session: the latest access token, and the refresh token that
/// continues its chain.
#[derive(Debug)]
struct Session {
    access: String,
    refresh: String,
}

impl Session {
    fn from_tokens(body: &Value) -> Result<Self, Failed> {
        Ok(Self { access: string_field(body, "access_token")?, refresh: string_field(body, "refresh_token")? })
    }
}

#[derive(Debug)]
struct VirtualUser<'a> {
    agent: ureq::Agent,
    urls: &'a Urls,
    tenant: &'a str,
    credentials: &'a Credentials,
    login_body: String,
    api_key_body: String,
    basic: String,
    session: Option<Session>,
    position: usize,
}

impl<'a> VirtualUser<'a> {
    fn new(urls: &'a Urls, tenant: &'a str, credentials: &'a Credentials, position: usize) -> Self {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", credentials.key_id, credentials.key));
        Self {
            agent: agent(),
            urls,
            tenant,
            credentials,
            login_body: json!({ "email": credentials.email, "password": credentials.password }).to_string(),
            api_key_body: json!({
                "grant_type": "api_key", "api_key_id": credentials.key_id, "api_key_secret": credentials.key,
            })
            .to_string(),
            basic: format!("Basic {basic}"),
            session: None,
            position,
        }
    }

    /// The next operation of the cycle; a login instead while there is no
    /// session (at the start, or after a failed refresh ended the chain).
    fn next_op(&mut self) -> Op {
        let op = MIX[self.position % MIX.len()];
        self.position += 1;
        match (op, &self.session) {
            (Op::Refresh | Op::VerifyBearer, None) => Op::Login,
            _ => op,
        }
    }

    fn call(&mut self, op: Op) -> Result<(), Failed> {
        const JSON: &str = "application/json";
        match op {
            Op::Login => {
                let body = post(&self.agent, &self.urls.login, &[], Some((JSON, &self.login_body)))?;
                self.session = Some(Session::from_tokens(&body)?);
            }
            Op::Refresh => {
                let session = self.session.take().ok_or_else(|| unexpected("no session to refresh".into()))?;
                let request = json!({ "refresh_token": session.refresh }).to_string();
                let body = post(&self.agent, &self.urls.refresh, &[], Some((JSON, &request)))?;
                self.session = Some(Session::from_tokens(&body)?);
            }
            Op::ExchangeApiKey => {
                let body = post(&self.agent, &self.urls.token, &[], Some((JSON, &self.api_key_body)))?;
                Session::from_tokens(&body)?;
            }
            Op::ExchangeClientCredentials => {
                let form = Some(("application/x-www-form-urlencoded", "grant_type=client_credentials"));
                let body = post(&self.agent, &self.urls.token, &[("authorization", &self.basic)], form)?;
                string_field(&body, "access_token")?;
                if body.get("refresh_token").is_some() {
                    return Err(unexpected("a refresh token in a client_credentials answer".into()));
                }
            }
            Op::VerifyBearer => {
                let access = &self.session.as_ref().ok_or_else(|| unexpected("no session".into()))?.access;
                let bearer = format!("Bearer {access}");
                let body = post(&self.agent, &self.urls.verify, &[("authorization", &bearer)], None)?;
                if body["valid"] != true || body["tid"] != self.tenant {
                    return Err(unexpected(body.to_string()));
                }
            }
            Op::VerifyApiKey => {
                let headers = [("x-api-key", self.credentials.key.as_str()), ("x-tenant-id", self.tenant)];
                let body = post(&self.agent, &self.urls.verify, &headers, None)?;
                // Counted against the key's own limit: the counting write happened.
                if body["valid"] != true || body["ratelimit"]["limit"] != KEY_LIMIT {
                    return Err(unexpected(body.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Loops until `end`; records the requests that started at or after
    /// `measured_from`, and every failure.
    fn run(mut self, measured_from: Instant, end: Instant) -> Record {
        let mut record = Record::default();
        loop {
            let started = Instant::now();
            if started >= end {
                break;
            }
            let op = self.next_op();
            let outcome = self.call(op);
            let elapsed = started.elapsed();
            let measured = started >= measured_from;
            match outcome {
                Ok(()) if measured => record.latencies.push((op, elapsed)),
                Ok(()) => {}
                Err(failed) => {
                    let tally = record.failures.entry((op, failed.failure)).or_insert_with(|| Tally {
                        measured: 0,
                        warmup: 0,
                        example: failed.detail.chars().take(300).collect(),
                    });
                    if measured { tally.measured += 1 } else { tally.warmup += 1 }
                }
            }
        }
        record.finished = Some(Instant::now());
        record
    }
}

#[derive(Debug)]
struct Tally {
    measured: u64,
    warmup: u64,
    example: String,
}

#[derive(Debug, Default)]
struct Record {
    latencies: Vec<(Op, Duration)>,
    failures: BTreeMap<(Op, Failure), Tally>,
    finished: Option<Instant>,
}

impl Record {
    /// Requests of the measured window whose operation matches, failed ones included.
    fn measured_requests(&self, matches: impl Fn(Op) -> bool) -> u64 {
        let succeeded = self.latencies.iter().filter(|(op, _)| matches(*op)).count() as u64;
        let failed: u64 = self.failures.iter().filter(|((op, _), _)| matches(*op)).map(|(_, t)| t.measured).sum();
        succeeded + failed
    }

    fn merge(&mut self, other: Record) {
        self.latencies.extend(other.latencies);
        for (key, tally) in other.failures {
            let mine = self.failures.entry(key).or_insert(Tally { measured: 0, warmup: 0, example: tally.example });
            mine.measured += tally.measured;
            mine.warmup += tally.warmup;
        }
        self.finished = self.finished.max(other.finished);
    }
}

fn run(args: &Args) -> Result<Report, String> {
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    progress(&format!("seeding tenant {} with {}", args.tenant, args.cli.display()));
    let users = seed(args)?;
    let total = args.instances * FUNCTIONS.len();
    progress(&format!("starting {} instances of {} ({total} processes)", args.instances, FUNCTIONS.join(", ")));
    let mut instances = Instances::start(args)?;
    let urls = Urls::new(&args.watch);
    wait_until_ready(args, &mut instances, &urls)?;
    progress(&format!(
        "{} virtual users: {} s warm-up, then {} s measured",
        args.concurrency,
        args.warmup.as_secs(),
        args.duration.as_secs()
    ));
    let load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let measured_from = Instant::now() + args.warmup;
    let end = measured_from + args.duration;
    let (record, cpu_at_start) = std::thread::scope(|scope| {
        let threads: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(index, credentials)| {
                let position = index * MIX.len() / users.len();
                let user = VirtualUser::new(&urls, &args.tenant, credentials, position);
                scope.spawn(move || user.run(measured_from, end))
            })
            .collect();
        std::thread::sleep(measured_from.saturating_duration_since(Instant::now()));
        let cpu_at_start = instances.cpu();
        let mut all = Record::default();
        for thread in threads {
            all.merge(thread.join().unwrap_or_else(|_| {
                let mut lost = Record::default();
                let detail = "the virtual user's thread panicked".to_owned();
                lost.failures
                    .insert((Op::Login, Failure::Transport), Tally { measured: 1, warmup: 0, example: detail });
                lost
            }));
        }
        (all, cpu_at_start)
    });
    let cpu_used = instances.cpu().into_iter().zip(cpu_at_start).map(|(end, start)| end.saturating_sub(start));
    let elapsed = record.finished.map_or(args.duration, |finished| finished.saturating_duration_since(measured_from));
    progress("reading peak RSS");
    let exited = instances.exited();
    let functions = instances
        .by_function
        .iter()
        .zip(cpu_used)
        .map(|((function, processes), cpu)| FunctionRow::measure(args, function, processes, cpu, &record))
        .collect::<Result<Vec<_>, _>>()?;
    drop(instances);
    let context = Context { started_at, load_average, elapsed };
    Ok(Report::new(args, context, &record, functions, exited))
}

/// When and how the run went, for the report's header.
#[derive(Debug)]
struct Context {
    started_at: String,
    /// The 1-minute load average just before the virtual users started:
    /// anything else busy on the machine shows there.
    load_average: String,
    /// From the start of the measured window until the last request ended.
    elapsed: Duration,
}

#[derive(Debug)]
struct OpRow {
    name: String,
    requests: u64,
    per_second: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    errors: u64,
}

impl OpRow {
    fn new(name: &str, latencies: &[Duration], errors: u64, elapsed: Duration) -> Self {
        let requests = latencies.len() as u64 + errors;
        Self {
            name: name.to_owned(),
            requests,
            per_second: requests as f64 / elapsed.as_secs_f64(),
            p50: percentile(latencies, 50.0),
            p90: percentile(latencies, 90.0),
            p99: percentile(latencies, 99.0),
            max: percentile(latencies, 100.0),
            errors,
        }
    }
}

#[derive(Debug)]
struct FunctionRow {
    function: &'static str,
    instances: usize,
    peak_rss_max_kib: u64,
    peak_rss_mean_kib: u64,
    /// CPU time of all its instances during the measured window, and the
    /// requests it served in that window.
    cpu: Duration,
    requests: u64,
    warn_lines: usize,
    error_lines: usize,
}

impl FunctionRow {
    fn measure(
        args: &Args,
        function: &'static str,
        processes: &[KillOnDrop],
        cpu: Duration,
        record: &Record,
    ) -> Result<Self, String> {
        let peaks = processes.iter().map(|p| peak_rss_kib(p.0.id())).collect::<Result<Vec<_>, _>>()?;
        let log = log_path(args, function);
        let text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let lines_at =
            |level: &str| text.lines().filter(|line| line.contains(&format!(r#""level":"{level}""#))).count();
        Ok(Self {
            function,
            instances: peaks.len(),
            peak_rss_max_kib: peaks.iter().copied().max().unwrap_or(0),
            peak_rss_mean_kib: peaks.iter().sum::<u64>() / (peaks.len().max(1) as u64),
            cpu,
            requests: record.measured_requests(|op| op.function() == function),
            warn_lines: lines_at("WARN"),
            error_lines: lines_at("ERROR"),
        })
    }
}

#[derive(Debug)]
struct Report {
    started_at: String,
    setup: String,
    rows: Vec<OpRow>,
    functions: Vec<FunctionRow>,
    /// One line per kind of failure, and per dead instance.
    failures: Vec<String>,
}

impl Report {
    fn new(
        args: &Args,
        context: Context,
        record: &Record,
        functions: Vec<FunctionRow>,
        exited: Option<String>,
    ) -> Self {
        let Context { started_at, load_average, elapsed } = context;
        let errors_of = |op: Op| record.failures.iter().filter(|((o, _), _)| *o == op).map(|(_, t)| t.measured).sum();
        let mut rows: Vec<OpRow> = Op::ALL
            .iter()
            .map(|&op| {
                let latencies: Vec<Duration> =
                    record.latencies.iter().filter(|(o, _)| *o == op).map(|(_, d)| *d).collect();
                OpRow::new(op.label(), &latencies, errors_of(op), elapsed)
            })
            .collect();
        let all: Vec<Duration> = record.latencies.iter().map(|(_, d)| *d).collect();
        rows.push(OpRow::new("all", &all, Op::ALL.iter().map(|&op| errors_of(op)).sum(), elapsed));
        let mut failures: Vec<String> = record
            .failures
            .iter()
            .map(|((op, failure), tally)| {
                format!(
                    "{}: {failure} × {} measured, × {} in the warm-up; e.g. {}",
                    op.label(),
                    tally.measured,
                    tally.warmup,
                    tally.example
                )
            })
            .collect();
        failures.extend(exited);
        failures.extend(
            functions
                .iter()
                .filter(|f| f.error_lines > 0)
                .map(|f| format!("{}: {} ERROR lines in its log", f.function, f.error_lines)),
        );
        let setup = format!(
            "{} virtual users (one keep-alive connection each), {} s measured after a {} s warm-up ({:.1} s \
             elapsed until the last request in flight ended). Each user loops 20 requests: {}. Functions: release \
             binaries, {} instances of each, behind `cargo lambda watch --only-lambda-apis` (function URL → API \
             Gateway v2 event → Runtime API; each instance takes one invocation at a time, as on Lambda). \
             DynamoDB Local. Client, emulator, functions and DynamoDB Local share this machine (1-minute load \
             average just before the start: {load_average}).",
            args.concurrency,
            args.duration.as_secs(),
            args.warmup.as_secs(),
            elapsed.as_secs_f64(),
            mix_text(),
            args.instances,
        );
        Self { started_at, setup, rows, functions, failures }
    }

    fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Latchkey load test ({}; {})\n", self.started_at, machine());
        let _ = writeln!(md, "{}\n", self.setup);
        md.push_str("| operation | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | errors |\n");
        md.push_str("|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} |",
                r.name,
                r.requests,
                r.per_second,
                ms_cell(ms(r.p50)),
                ms_cell(ms(r.p90)),
                ms_cell(ms(r.p99)),
                ms_cell(ms(r.max)),
                r.errors
            );
        }
        md.push_str(
            "\n| function | instances | peak RSS MiB (largest instance) | peak RSS MiB (mean) | CPU s (measured window) \
             | CPU ms per request | WARN / ERROR log lines |\n",
        );
        md.push_str("|---|---|---|---|---|---|---|\n");
        for f in &self.functions {
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {} / {} |",
                f.function,
                f.instances,
                f.peak_rss_max_kib as f64 / 1024.0,
                f.peak_rss_mean_kib as f64 / 1024.0,
                f.cpu.as_secs_f64(),
                ms(f.cpu) / f.requests.max(1) as f64,
                f.warn_lines,
                f.error_lines
            );
        }
        if self.failures.is_empty() {
            md.push_str(
                "\nErrors: none (an error is any non-2xx answer, transport error or timeout, or unexpected body, \
                 warm-up included; or an instance that died, or an ERROR line in a function's log).\n",
            );
        } else {
            md.push_str("\n**Errors:**\n\n");
            for line in &self.failures {
                let _ = writeln!(md, "- {line}");
            }
        }
        md
    }
}

/// What infra/template.yaml sets for `function` beyond Latchkey's settings:
/// login's glibc mmap threshold, without which every freed 19 MiB argon2
/// buffer raises the threshold and later ones stay on the heap (measured:
/// peak RSS 28 MiB after one login, 124 MiB after seven).
fn deployed_env(function: &str) -> Vec<(String, String)> {
    if function == "login" { vec![("MALLOC_MMAP_THRESHOLD_".to_owned(), "131072".to_owned())] } else { Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_one_login_in_twenty_and_every_operation() {
        let count = |op: Op| MIX.iter().filter(|m| **m == op).count();
        assert_eq!(count(Op::Login), 1);
        assert_eq!(
            Op::ALL.map(count),
            [1, 4, 2, 3, 5, 5],
            "login, refresh, api_key, client_credentials, verify bearer, verify key"
        );
    }

    #[test]
    fn without_a_session_a_user_logs_in_first() {
        let credentials =
            Credentials { email: "a@b.c".into(), password: "p".into(), key_id: "k".into(), key: "sk_test_x".into() };
        let urls = Urls::new("127.0.0.1:1");
        // Position 1 is a bearer verification, 2 a refresh: both need a session.
        let mut user = VirtualUser::new(&urls, "t", &credentials, 1);
        assert_eq!(user.next_op(), Op::Login);
        assert_eq!(user.next_op(), Op::Login);
        assert_eq!(user.next_op(), Op::VerifyApiKey);
        user.session = Some(Session { access: "a".into(), refresh: "r".into() });
        assert_eq!(user.next_op(), Op::ExchangeClientCredentials);
        assert_eq!(user.next_op(), Op::VerifyBearer);
    }

    #[test]
    fn arguments_default_and_require_the_watch_address() {
        let parse = |args: &[&str]| Args::parse(args.iter().map(|a| (*a).to_owned()));
        let args = parse(&["--watch", "127.0.0.1:9000"]).expect("parses");
        assert_eq!((args.concurrency, args.instances, args.duration.as_secs(), args.warmup.as_secs()), (16, 16, 60, 5));
        assert!(args.cli.ends_with("target/release/latchkey"));
        let args = parse(&["--watch", "h:1", "--concurrency", "4", "--duration", "10"]).expect("parses");
        assert_eq!((args.concurrency, args.instances, args.duration.as_secs()), (4, 4, 10));
        assert!(parse(&[]).is_err());
        assert!(parse(&["--watch", "h:1", "--concurrency", "0"]).is_err());
        assert!(parse(&["--watch", "h:1", "--duration"]).is_err());
        assert!(parse(&["--watch", "h:1", "--bogus"]).is_err());
    }

    #[test]
    fn rows_count_failures_as_requests_and_percentiles_over_successes() {
        let latencies: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let row = OpRow::new("x", &latencies, 2, Duration::from_secs(2));
        assert_eq!((row.requests, row.errors), (102, 2));
        assert!((row.per_second - 51.0).abs() < f64::EPSILON);
        let ms = Duration::from_millis;
        assert_eq!((row.p50, row.p90, row.p99, row.max), (ms(50), ms(90), ms(99), ms(100)));
    }
}
