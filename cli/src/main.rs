//! `latchkey`: the admin command. It talks to the table directly with the
//! same configuration as the functions, so it works against DynamoDB Local
//! and AWS alike.

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use latchkey::config::{Env, StoreConfig};
use latchkey::credentials::AppSecrets;
use latchkey::domain::parse_allow_list;
use latchkey::domain::{
    AppId, Email, Label, Password, Plan, RateLimitOverride, Scopes, Stage, TenantId, UserId, WebhookSourceName,
};
use latchkey::jwt::{AccessTokenVerifier, SigningAlgorithm, dangerous};
use latchkey::keys::{DEFAULT_PREPUBLISH, KeyRing, RetireOutcome};
use latchkey::service::api_keys::NewApiKey;
use latchkey::service::webhooks::{NewWebhookSource, WebhookSourceError, WebhookSourceView};
use latchkey::store::users::AddUserOutcome;
use latchkey::store::{AddAppOutcome, AppRecord};
use latchkey::store::{Stores, Table, TenantRecord, UserRecord, schema};
use latchkey::time::{now_secs, rfc3339};
use latchkey::webhook::{OutboundWebhook, Scheme, WebhookSecret};
use latchkey::{ApiError, Latchkey};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

/// Latchkey admin: tables, tenants, users, apps, API keys, signing keys and
/// tokens.
///
/// Configuration comes from the same environment variables as the functions
/// (LATCHKEY_TABLE_NAME, LATCHKEY_SEALING_KEY, LATCHKEY_ISSUER, AWS_REGION,
/// AWS_ENDPOINT_URL_DYNAMODB, ...).
#[derive(Debug, Parser)]
#[command(name = "latchkey", version)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The DynamoDB table.
    #[command(subcommand)]
    Table(TableCommand),
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Signing keys for access tokens.
    #[command(subcommand, name = "signing-key")]
    SigningKey(SigningKeyCommand),
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Apps: first-party clients that log users in (X-App-Id / X-App-Secret).
    #[command(subcommand)]
    App(AppCommand),
    /// API keys for machine clients.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// The sealing key (LATCHKEY_SEALING_KEY).
    #[command(subcommand, name = "sealing-key")]
    SealingKey(SealingKeyCommand),
    /// Sources of inbound webhooks (POST /v1/webhooks/{name}).
    #[command(subcommand, name = "webhook-source")]
    WebhookSource(WebhookSourceCommand),
    /// Outbound webhooks: sign a body as a sender would.
    #[command(subcommand)]
    Webhook(WebhookCommand),
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// Create the table with TTL on `expires_at` (idempotent).
    Create,
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Add a tenant.
    Add {
        /// Tenant id: 1-64 of a-z, 0-9, '-', '_'.
        id: TenantId,
        #[arg(long, default_value = "free")]
        plan: Plan,
        /// Succeed if the tenant already exists.
        #[arg(long)]
        exists_ok: bool,
    },
    /// Change a tenant's plan (free 100 requests/h, pro 1000/h, enterprise
    /// unlimited). Decisions see it once their cached plan expires (≤ 60 s).
    SetPlan { id: TenantId, plan: Plan },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user. The password is read from a prompt, or from stdin with
    /// --password-stdin; never from the command line.
    Add(UserAdd),
}

#[derive(Debug, Args)]
struct UserAdd {
    #[arg(long)]
    tenant: TenantId,
    #[arg(long)]
    email: Email,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    password_stdin: bool,
    /// Scopes, comma- or space-separated.
    #[arg(long, default_value = "")]
    scopes: String,
    /// Succeed if a user with this email already exists.
    #[arg(long)]
    exists_ok: bool,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Register an app. Prints its X-App-Id and X-App-Secret; the secret is
    /// shown this once (only a keyed hash is stored).
    Add {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        name: Label,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create an API key. Prints it (with --json, a JSON object with `key`);
    /// the key is shown this once.
    Create {
        #[arg(long)]
        tenant: TenantId,
        #[arg(long)]
        name: Label,
        /// Scopes, comma- or space-separated.
        #[arg(long, default_value = "")]
        scopes: String,
        /// test or live (default: LATCHKEY_STAGE).
        #[arg(long)]
        env: Option<Stage>,
        /// Lifetime, e.g. 30d, 12h (default: no expiry).
        #[arg(long, value_parser = humantime_duration)]
        expires_in: Option<Duration>,
        /// Allow requests only from this address or CIDR block (repeatable).
        #[arg(long = "allow-ip")]
        allow_ip: Vec<String>,
        /// The key's own hourly limit instead of the tenant's plan: a number
        /// (requests per hour) or `unlimited`. The key then counts on its own.
        #[arg(long)]
        rate_limit: Option<RateLimitOverride>,
    },
    /// Set a key's own hourly limit (a number or `unlimited`), or `plan` to
    /// count it against the tenant's plan again. Authorizer decisions see the
    /// change once their cached copy of the key expires (≤ 60 s).
    SetRateLimit {
        #[arg(long)]
        tenant: TenantId,
        id: String,
        limit: String,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: TenantId,
    },
    /// Revoke a key: new exchanges with it fail at once.
    Revoke {
        #[arg(long)]
        tenant: TenantId,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookSourceCommand {
    /// Register a source. Without --secret a `whsec_` secret (256 bits, valid
    /// for both schemes) is generated and printed: give it to the sender.
    Add {
        /// The source's name, the last segment of its URL: 1-64 of a-z, 0-9, '-', '_'.
        name: WebhookSourceName,
        #[arg(long)]
        tenant: TenantId,
        /// The sender's secret; `-` reads it from stdin (keeps it out of
        /// your shell history).
        #[arg(long)]
        secret: Option<String>,
        /// standard (Standard Webhooks / Svix) or sha256 (X-Webhook-Signature);
        /// repeat to accept both.
        #[arg(long = "scheme", default_value = "standard")]
        schemes: Vec<Scheme>,
        /// Accepted clock difference for signed timestamps, e.g. 5m.
        #[arg(long, value_parser = humantime_duration, default_value = "5m")]
        tolerance: Duration,
        /// How long accepted events stay in the table (and redeliveries of
        /// their ids count as duplicates), e.g. 7d.
        #[arg(long, value_parser = humantime_duration, default_value = "7d")]
        retention: Duration,
    },
    /// Add a new secret; older ones keep verifying until removed.
    RotateSecret {
        name: WebhookSourceName,
        /// The new secret (`-` reads stdin); generated when absent.
        #[arg(long)]
        secret: Option<String>,
    },
    /// Remove a secret (by the id `list` shows): deliveries signed with it
    /// fail once function instances reload the source (at most
    /// LATCHKEY_WEBHOOK_SOURCE_CACHE_SECONDS, default 30 s).
    RemoveSecret { name: WebhookSourceName, secret_id: String },
    /// List sources (never their secrets: ids and last four only).
    List {
        #[arg(long)]
        tenant: Option<TenantId>,
    },
    /// Delete a source; its stored events stay until their retention ends.
    Delete { name: WebhookSourceName },
}

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Print the headers that sign a body for a source, in both schemes,
    /// with every secret the source holds (newest first).
    Sign {
        #[arg(long)]
        source: WebhookSourceName,
        /// The body to sign, byte for byte; `-` reads stdin.
        #[arg(long)]
        file: std::path::PathBuf,
        /// webhook-id (default: a fresh msg_ id).
        #[arg(long)]
        id: Option<String>,
        /// Unix seconds (default: now).
        #[arg(long)]
        timestamp: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum SigningKeyCommand {
    /// Add a new signing key. It is published at once and starts signing
    /// after the pre-publish delay (default 2h, so every JWKS cache sees it
    /// first).
    Rotate {
        /// RS256, ES256 or EdDSA (default: LATCHKEY_SIGNING_ALG).
        #[arg(long)]
        alg: Option<SigningAlgorithm>,
        /// Sign with the new key at once. For emergencies: verifiers that
        /// cached the JWKS (API Gateway keeps it up to 2 h) reject new
        /// tokens until their cache expires.
        #[arg(long, conflicts_with = "prepublish")]
        immediate: bool,
        /// Delay before the key signs, e.g. 2h, 30m (default 2h).
        #[arg(long, value_parser = humantime_duration)]
        prepublish: Option<Duration>,
    },
    /// Retire a key: it stops signing now and stays published until every
    /// token it signed has expired (key cache time + access token lifetime +
    /// 30 s leeway).
    Retire {
        kid: String,
        /// Unpublish it at once (a leaked key): tokens it signed stop
        /// verifying as soon as each function instance's key cache expires
        /// (LATCHKEY_KEY_CACHE_SECONDS).
        #[arg(long)]
        immediately: bool,
        /// Retire the only key that can sign. The next token creates a new
        /// key at once, which verifiers with a cached JWKS (API Gateway: up
        /// to 2 h) reject until their cache expires. Rotate first instead.
        #[arg(long)]
        force: bool,
    },
    /// List the published keys.
    List,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Show a token's header and claims, and verify it against the table's
    /// keys, issuer, audience and stage. Pass `-` to read the token from
    /// stdin and keep it out of your shell history.
    Inspect { token: String },
}

#[derive(Debug, Subcommand)]
enum SealingKeyCommand {
    /// Print a new random sealing key (base64 of 32 bytes).
    Generate,
    /// Print the LATCHKEY_VERIFIER_KEY derived from LATCHKEY_SEALING_KEY: the
    /// one secret a team's own Lambda needs to run the Rust middleware. It
    /// checks API keys against their stored hashes; it cannot derive a key,
    /// issue a token or open a sealed record.
    VerifierKey,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// A failure to report, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Config(#[from] latchkey::config::ConfigError),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{}", latchkey::error::error_chain(.0))]
    Store(#[from] latchkey::StoreError),
    #[error("{}", latchkey::error::error_chain(.0))]
    Api(#[from] latchkey::ApiError),
}

impl From<WebhookSourceError> for CliError {
    fn from(err: WebhookSourceError) -> Self {
        match err {
            WebhookSourceError::Store(err) => CliError::Store(err),
            WebhookSourceError::NameTaken(_) => CliError::Conflict(err.to_string()),
            other => CliError::Input(match other {
                WebhookSourceError::NoSuchTenant(tenant) => {
                    format!("no tenant {tenant}: add it with `latchkey tenant add`")
                }
                other => other.to_string(),
            }),
        }
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Input(_) => 2,
            CliError::Conflict(_) => 3,
            CliError::Store(_) | CliError::Api(_) => 1,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli.command, cli.json)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("latchkey: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Prints `value` as JSON, or `text` for humans.
fn emit(json_output: bool, value: &Value, text: &str) {
    #[allow(clippy::print_stdout)]
    if json_output {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

async fn stores() -> Result<(Table, Stores), CliError> {
    let config = StoreConfig::from_env(&Env::from_process())?;
    let client = latchkey::store::connect(&config).await;
    let table = Table::new(client, config.table_name.as_str());
    let stores = Stores::new(&table);
    Ok((table, stores))
}

async fn run(command: Command, json_output: bool) -> Result<(), CliError> {
    match command {
        Command::Table(TableCommand::Create) => {
            let (table, _) = stores().await?;
            let outcome = schema::create_table(&table).await?;
            let created = outcome == schema::TableCreation::Created;
            let verb = if created { "created" } else { "already exists" };
            emit(
                json_output,
                &json!({"table": table.name(), "created": created, "ttl_attribute": schema::TTL_ATTRIBUTE}),
                &format!("table {} {verb} (TTL on {})", table.name(), schema::TTL_ATTRIBUTE),
            );
        }
        Command::Tenant(TenantCommand::Add { id, plan, exists_ok }) => {
            let (_, stores) = stores().await?;
            let record = TenantRecord { tenant_id: id.clone(), plan, created_at: now_secs() };
            let added = stores.tenants.insert(&record).await?;
            if !added && !exists_ok {
                return Err(CliError::Conflict(format!("tenant {id} already exists")));
            }
            emit(
                json_output,
                &json!({"tenant_id": id, "plan": plan, "created": added}),
                &format!("tenant {id} ({}) {}", plan.as_str(), if added { "added" } else { "already exists" }),
            );
        }
        Command::Tenant(TenantCommand::SetPlan { id, plan }) => {
            let (_, stores) = stores().await?;
            if !stores.tenants.set_plan(&id, plan).await? {
                return Err(CliError::Input(format!("no tenant {id}: add it with `latchkey tenant add`")));
            }
            emit(
                json_output,
                &json!({"tenant_id": id, "plan": plan}),
                &format!("tenant {id} is now on {}", plan.as_str()),
            );
        }
        Command::User(UserCommand::Add(args)) => add_user(args, json_output).await?,
        Command::SigningKey(command) => signing_key(command, json_output).await?,
        Command::Token(TokenCommand::Inspect { token }) => inspect(&token, json_output).await?,
        Command::App(AppCommand::Add { tenant, name }) => add_app(tenant, name, json_output).await?,
        Command::ApiKey(command) => api_key(command, json_output).await?,
        Command::WebhookSource(command) => webhook_source(command, json_output).await?,
        Command::Webhook(WebhookCommand::Sign { source, file, id, timestamp }) => {
            sign_webhook(&source, &file, id, timestamp, json_output).await?;
        }
        Command::SealingKey(SealingKeyCommand::Generate) => {
            let key = latchkey::config::generate_sealing_key_base64();
            emit(json_output, &json!({"sealing_key": key}), &key);
        }
        Command::SealingKey(SealingKeyCommand::VerifierKey) => {
            let raw = std::env::var("LATCHKEY_SEALING_KEY")
                .ok()
                .filter(|raw| !raw.trim().is_empty())
                .ok_or_else(|| CliError::Input("LATCHKEY_SEALING_KEY must be set".into()))?;
            let sealing = latchkey::crypto::SealingKey::from_base64(&raw)
                .map_err(|reason| CliError::Input(format!("LATCHKEY_SEALING_KEY is invalid: {reason}")))?;
            let key = latchkey::credentials::StoredSecretCheck::new(&sealing).to_base64();
            emit(json_output, &json!({"verifier_key": key}), &key);
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<Password, CliError> {
    let raw = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::Input(format!("reading stdin: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| CliError::Input(e.to_string()))?;
        let again = rpassword::prompt_password("Repeat password: ").map_err(|e| CliError::Input(e.to_string()))?;
        if first != again {
            return Err(CliError::Input("passwords do not match".into()));
        }
        first
    } else {
        return Err(CliError::Input("stdin is not a terminal: pass --password-stdin and pipe the password".into()));
    };
    Password::parse_new(raw).map_err(|e| CliError::Input(e.0))
}

async fn add_user(args: UserAdd, json_output: bool) -> Result<(), CliError> {
    let scopes = Scopes::parse(&args.scopes).map_err(|e| CliError::Input(e.0))?;
    let password = read_password(args.password_stdin)?;
    let (_, stores) = stores().await?;
    let password_hash = latchkey::password::hash_password(password).await?;
    let record = UserRecord {
        user_id: UserId::generate(),
        tenant_id: args.tenant.clone(),
        email: args.email.clone(),
        password_hash,
        scopes,
        created_at: now_secs(),
    };
    match stores.users.insert(&record).await? {
        AddUserOutcome::Added => emit(
            json_output,
            &json!({"user_id": record.user_id, "tenant_id": record.tenant_id, "email": record.email,
                    "scope": record.scopes.to_string(), "created": true}),
            &format!("user {} ({}) added to tenant {}", record.email, record.user_id, record.tenant_id),
        ),
        AddUserOutcome::EmailTaken if args.exists_ok => emit(
            json_output,
            &json!({"email": record.email, "created": false}),
            &format!("user {} already exists", record.email),
        ),
        AddUserOutcome::EmailTaken => {
            return Err(CliError::Conflict(format!("a user with email {} exists", args.email)));
        }
        AddUserOutcome::NoSuchTenant => {
            return Err(CliError::Input(format!("no tenant {}: add it with `latchkey tenant add`", args.tenant)));
        }
    }
    Ok(())
}

async fn add_app(tenant: TenantId, name: Label, json_output: bool) -> Result<(), CliError> {
    let latchkey = Latchkey::from_env().await?;
    let (secret, secret_hash) = AppSecrets::new(&latchkey.config.sealing_key).generate();
    let record = AppRecord {
        app_id: AppId::generate(),
        tenant_id: tenant.clone(),
        name,
        secret_hash,
        created_at: now_secs(),
        revoked_at: None,
    };
    match latchkey.stores.apps.insert(&record).await? {
        AddAppOutcome::Added => {}
        AddAppOutcome::NoSuchTenant => {
            return Err(CliError::Input(format!("no tenant {tenant}: add it with `latchkey tenant add`")));
        }
    }
    let secret = secret.expose_secret();
    emit(
        json_output,
        &json!({"app_id": record.app_id, "app_secret": secret, "tenant_id": tenant, "name": record.name}),
        &format!(
            "app {} added to tenant {tenant}\nX-App-Id: {}\nX-App-Secret: {secret}\n(the secret is shown this once)",
            record.name, record.app_id
        ),
    );
    Ok(())
}

async fn api_key(command: ApiKeyCommand, json_output: bool) -> Result<(), CliError> {
    let latchkey = Latchkey::from_env().await?;
    let service = latchkey.api_key_service();
    match command {
        ApiKeyCommand::Create { tenant, name, scopes, env, expires_in, allow_ip, rate_limit } => {
            let now = now_secs();
            let new = NewApiKey {
                tenant_id: tenant.clone(),
                name,
                scopes: Scopes::parse(&scopes).map_err(|e| CliError::Input(e.0))?,
                env: env.unwrap_or(latchkey.config.stage),
                valid_until: expires_in.map(|lifetime| now + lifetime.as_secs()),
                allowed_ips: parse_allow_list(allow_ip.iter().map(String::as_str)).map_err(|e| CliError::Input(e.0))?,
                rate_limit,
            };
            let Some(created) = service.add(new, now).await? else {
                return Err(CliError::Input(format!("no tenant {tenant}: add it with `latchkey tenant add`")));
            };
            let value = serde_json::to_value(&created).map_err(|e| CliError::Input(e.to_string()))?;
            let text = format!(
                "API key {} created for tenant {tenant}\n{}\n(the key is shown this once)",
                created.view.id,
                created.key.expose_secret()
            );
            emit(json_output, &value, &text);
        }
        ApiKeyCommand::List { tenant } => {
            let mut keys = Vec::new();
            let mut cursor = None;
            loop {
                let page = service.list_tenant(&tenant, None, cursor.as_deref()).await?;
                keys.extend(page.keys);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let text = keys
                .iter()
                .map(|k| {
                    let state = match (&k.revoked_at, &k.expires_at) {
                        (Some(at), _) => format!("revoked {at}"),
                        (None, Some(at)) => format!("expires {at}"),
                        (None, None) => "active".to_owned(),
                    };
                    let limit = k.rate_limit.as_deref().map(|limit| format!("  limit {limit}")).unwrap_or_default();
                    format!(
                        "{}  {}…{}  {}  [{}]  {state}{limit}",
                        k.id,
                        k.prefix,
                        k.last_four,
                        k.name,
                        k.scopes.join(" ")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let value = serde_json::to_value(&keys).map_err(|e| CliError::Input(e.to_string()))?;
            emit(json_output, &json!({"keys": value}), if text.is_empty() { "no API keys" } else { &text });
        }
        ApiKeyCommand::SetRateLimit { tenant, id, limit } => {
            let limit = if limit.trim() == "plan" { None } else { Some(limit.parse().map_err(CliError::Input)?) };
            service.set_rate_limit_in_tenant(&tenant, &id, limit).await.map_err(|err| match err {
                ApiError::NotFound(_) => CliError::Input(format!("tenant {tenant} has no API key {id}")),
                other => CliError::Api(other),
            })?;
            let shown = limit.map_or_else(|| "the tenant's plan".to_owned(), |limit| limit.to_string());
            emit(
                json_output,
                &json!({"id": id, "rate_limit": limit.map(|limit| limit.to_string())}),
                &format!("API key {id} now limited by {shown}"),
            );
        }
        ApiKeyCommand::Revoke { tenant, id } => {
            let revoked = service.revoke_in_tenant(&tenant, &id).await.map_err(|err| match err {
                ApiError::NotFound(_) => CliError::Input(format!("tenant {tenant} has no API key {id}")),
                other => CliError::Api(other),
            })?;
            emit(
                json_output,
                &json!({"id": revoked.id, "revoked_at": revoked.revoked_at}),
                &format!("API key {} revoked at {}", revoked.id, revoked.revoked_at),
            );
        }
    }
    Ok(())
}

async fn signing_key(command: SigningKeyCommand, json_output: bool) -> Result<(), CliError> {
    let latchkey = Latchkey::from_env().await?;
    let ring = key_ring(&latchkey);
    match command {
        SigningKeyCommand::Rotate { alg, immediate, prepublish } => {
            let algorithm = alg.unwrap_or(latchkey.config.signing_algorithm);
            let delay = if immediate { Duration::ZERO } else { prepublish.unwrap_or(DEFAULT_PREPUBLISH) };
            let record = ring.add_key(algorithm, delay).await?;
            let mut text = format!(
                "signing key {} ({algorithm}) published; signs from {}",
                record.kid,
                rfc3339(record.active_from)
            );
            if delay < DEFAULT_PREPUBLISH {
                text.push_str(
                    "\nwarning: verifiers that cached the JWKS less than the pre-publish delay ago (API Gateway caches \
                     it up to 2 h) will reject tokens signed with this key until their cache expires",
                );
            }
            emit(
                json_output,
                &json!({"kid": record.kid, "alg": algorithm.as_str(), "active_from": rfc3339(record.active_from)}),
                &text,
            );
        }
        SigningKeyCommand::Retire { kid, immediately, force } => match ring.retire(&kid, immediately, force).await? {
            RetireOutcome::Retired { expires_at } => emit(
                json_output,
                &json!({"kid": kid, "expires_at": rfc3339(expires_at)}),
                &format!("signing key {kid} retired: signs nothing more; published until {}", rfc3339(expires_at)),
            ),
            RetireOutcome::NotFound => return Err(CliError::Input(format!("no published signing key {kid}"))),
            RetireOutcome::OnlySigner => {
                return Err(CliError::Conflict(format!(
                    "signing key {kid} is the only key that can sign now: run `latchkey signing-key rotate` (the new \
                     key replaces it, and it stays published until its tokens have expired), or pass --force"
                )));
            }
        },
        SigningKeyCommand::List => {
            let set = ring.reload().await?;
            let signing = set.signing.as_ref().map(|k| k.kid.clone());
            let keys: Vec<Value> = set
                .records
                .iter()
                .map(|r| {
                    json!({"kid": r.kid, "alg": r.algorithm.as_str(), "created_at": rfc3339(r.created_at),
                           "active_from": rfc3339(r.active_from), "signing": signing.as_deref() == Some(r.kid.as_str()),
                           "retired_at": r.retired_at.map(rfc3339), "expires_at": r.expires_at.map(rfc3339)})
                })
                .collect();
            let text = set
                .records
                .iter()
                .map(|r| {
                    let marker = if signing.as_deref() == Some(r.kid.as_str()) { " (signing)" } else { "" };
                    let until = r.expires_at.map(|at| format!(", published until {}", rfc3339(at))).unwrap_or_default();
                    format!("{}  {}  active from {}{until}{marker}", r.kid, r.algorithm, rfc3339(r.active_from))
                })
                .collect::<Vec<_>>()
                .join("\n");
            emit(json_output, &json!({"keys": keys}), if text.is_empty() { "no signing keys yet" } else { &text });
        }
    }
    Ok(())
}

fn key_ring(latchkey: &Latchkey) -> KeyRing {
    KeyRing::new(
        latchkey.stores.signing_keys.clone(),
        latchkey.config.sealing_key.sealer(),
        latchkey.config.signing_algorithm,
        latchkey.config.access_token_ttl,
        latchkey.config.key_cache_ttl,
    )
    .uncached()
}

async fn inspect(token: &str, json_output: bool) -> Result<(), CliError> {
    let mut line = String::new();
    let token = if token == "-" {
        std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::Input(format!("reading stdin: {e}")))?;
        line.trim()
    } else {
        token.trim()
    };
    let (header, claims) = dangerous::decode_unverified(token)
        .ok_or_else(|| CliError::Input("not a JWT (header.claims.signature)".into()))?;
    let latchkey = Latchkey::from_env().await?;
    let set = key_ring(&latchkey).reload().await?;
    let config = &latchkey.config;
    let verifier = AccessTokenVerifier::new(&config.issuer, &config.audience, config.stage.as_str());
    let verdict = verifier.verify(token, &set.verifying);
    let (valid, reason) = match &verdict {
        Ok(_) => (true, None),
        Err(rejection) => (false, Some(rejection.description())),
    };
    let text = format!(
        "header: {header}\nclaims: {claims}\nvalid: {valid}{}",
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    emit(json_output, &json!({"header": header, "claims": claims, "valid": valid, "reason": reason}), &text);
    if valid { Ok(()) } else { Err(CliError::Input(reason.unwrap_or("invalid").to_owned())) }
}

/// The secret from `--secret` (`-` reads the first line of stdin), or a
/// generated one; `true` when generated (so it must be shown).
fn webhook_secret(given: Option<&str>) -> Result<(WebhookSecret, bool), CliError> {
    let text = match given {
        None => return Ok((WebhookSecret::generate(), true)),
        Some("-") => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| CliError::Input(format!("reading stdin: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
        Some(text) => text.to_owned(),
    };
    Ok((WebhookSecret::new(text).map_err(|e| CliError::Input(e.0.into()))?, false))
}

fn describe_source(view: &WebhookSourceView) -> String {
    let schemes = view.schemes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    let secrets =
        view.secrets.iter().map(|s| format!("{} (…{}, {})", s.id, s.last_four, s.created_at)).collect::<Vec<_>>();
    format!(
        "{}  tenant {}  [{schemes}]  POST {}  tolerance {}s  retention {}s\n  secrets: {}",
        view.name,
        view.tenant_id,
        view.url_path,
        view.tolerance_seconds,
        view.retention_seconds,
        secrets.join(", ")
    )
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, CliError> {
    serde_json::to_value(value).map_err(|e| CliError::Input(e.to_string()))
}

async fn webhook_source(command: WebhookSourceCommand, json_output: bool) -> Result<(), CliError> {
    let latchkey = Latchkey::from_env().await?;
    let service = latchkey.webhook_service();
    let now = now_secs();
    match command {
        WebhookSourceCommand::Add { name, tenant, secret, schemes, tolerance, retention } => {
            let (secret, generated) = webhook_secret(secret.as_deref())?;
            let new = NewWebhookSource {
                name,
                tenant_id: tenant,
                schemes,
                secret: secret.clone(),
                tolerance_secs: tolerance.as_secs(),
                retention_secs: retention.as_secs(),
            };
            let view = service.add_source(new, now).await?;
            let mut value = json!({"source": to_json(&view)?});
            let mut text = format!("webhook source added\n{}", describe_source(&view));
            if generated {
                value["secret"] = json!(secret.expose());
                text = format!("{text}\nsecret: {}\n(give it to the sender; it is stored sealed)", secret.expose());
            }
            emit(json_output, &value, &text);
        }
        WebhookSourceCommand::RotateSecret { name, secret } => {
            let (secret, generated) = webhook_secret(secret.as_deref())?;
            let (id, view) = service.rotate_secret(&name, &secret, now).await?;
            let mut value = json!({"source": to_json(&view)?, "secret_id": id});
            let mut text =
                format!("secret {id} added; every listed secret verifies until removed\n{}", describe_source(&view));
            if generated {
                value["secret"] = json!(secret.expose());
                text = format!("{text}\nsecret: {}", secret.expose());
            }
            emit(json_output, &value, &text);
        }
        WebhookSourceCommand::RemoveSecret { name, secret_id } => {
            let view = service.remove_secret(&name, &secret_id, now).await?;
            emit(
                json_output,
                &json!({"source": to_json(&view)?, "removed": secret_id}),
                &format!("secret {secret_id} removed\n{}", describe_source(&view)),
            );
        }
        WebhookSourceCommand::List { tenant } => {
            let views = service.list_sources(tenant.as_ref()).await?;
            let text = views.iter().map(describe_source).collect::<Vec<_>>().join("\n");
            emit(
                json_output,
                &json!({"sources": to_json(&views)?}),
                if text.is_empty() { "no webhook sources" } else { &text },
            );
        }
        WebhookSourceCommand::Delete { name } => {
            service.delete_source(&name).await?;
            emit(json_output, &json!({"deleted": name}), &format!("webhook source {name} deleted"));
        }
    }
    Ok(())
}

async fn sign_webhook(
    source: &WebhookSourceName,
    file: &std::path::Path,
    id: Option<String>,
    timestamp: Option<u64>,
    json_output: bool,
) -> Result<(), CliError> {
    let body = if file.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut body)
            .map_err(|e| CliError::Input(format!("reading stdin: {e}")))?;
        body
    } else {
        std::fs::read(file).map_err(|e| CliError::Input(format!("reading {}: {e}", file.display())))?
    };
    let latchkey = Latchkey::from_env().await?;
    let (view, secrets) = latchkey.webhook_service().signing_secrets(source).await?;
    let id = id.unwrap_or_else(|| format!("msg_{}", latchkey::crypto::random_id()));
    let webhook = OutboundWebhook { id: &id, timestamp: timestamp.unwrap_or_else(now_secs), body: &body };
    let standard = webhook.standard_headers(&secrets).ok();
    let newest = secrets.first().ok_or_else(|| CliError::Input(format!("webhook source {source} holds no secret")))?;
    let sha256 = webhook.sha256_headers(newest);
    let mut value = json!({"source": view.name, "url_path": view.url_path});
    let mut lines = Vec::new();
    if let Some(headers) = &standard {
        value["standard"] = headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        lines.push("# Standard Webhooks".to_owned());
        lines.extend(headers.iter().map(|(k, v)| format!("{k}: {v}")));
    } else {
        lines.push("# Standard Webhooks: not possible, a secret is not base64 (whsec_…)".to_owned());
    }
    value["sha256"] = sha256.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    lines.push("# sha256 (newest secret; without X-Webhook-Timestamp, sign the body alone)".to_owned());
    lines.extend(sha256.iter().map(|(k, v)| format!("{k}: {v}")));
    let text = lines.join("\n");
    emit(json_output, &value, &text);
    Ok(())
}
