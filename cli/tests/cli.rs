//! The `latchkey` binary against DynamoDB Local, configured through the
//! environment exactly as an operator would.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const SEALING_KEY: &str = "Y2xpLXRlc3RzLW9ubHktc2VhbGluZy1rZXktMzJieXQ=";

struct Cli {
    table: String,
}

impl Cli {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        Self { table: format!("lk-cli-{}-{nanos}", std::process::id()) }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        command
            .args(args)
            .env("LATCHKEY_TABLE_NAME", &self.table)
            .env("LATCHKEY_ISSUER", "https://auth.cli.test")
            .env("LATCHKEY_SEALING_KEY", SEALING_KEY)
            .env(
                "AWS_ENDPOINT_URL_DYNAMODB",
                std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:8000".into()),
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runs")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("writes");
        child.wait_with_output().expect("runs")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("JSON output")
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn table_tenant_and_user_setup_is_idempotent_where_asked() {
    let cli = Cli::new();
    assert_eq!(cli.json(&["--json", "table", "create"])["created"], true);
    assert_eq!(cli.json(&["--json", "table", "create"])["created"], false, "second create is a no-op");

    assert_eq!(cli.json(&["--json", "tenant", "add", "acme", "--plan", "pro"])["created"], true);
    let duplicate = cli.run(&["tenant", "add", "acme"]);
    assert_eq!(duplicate.status.code(), Some(3), "{}", stderr(&duplicate));
    assert_eq!(cli.json(&["--json", "tenant", "add", "acme", "--exists-ok"])["created"], false);

    let added = cli.run_with_stdin(
        &[
            "--json",
            "user",
            "add",
            "--tenant",
            "acme",
            "--email",
            "Ada@Example.com",
            "--password-stdin",
            "--scopes",
            "b,a",
        ],
        "a long enough password\n",
    );
    assert!(added.status.success(), "{}", stderr(&added));
    let user: serde_json::Value = serde_json::from_slice(&added.stdout).expect("JSON");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["scope"], "a b");
    assert!(user["user_id"].as_str().is_some_and(|id| id.starts_with("usr_")));
    // The password never appears in the output.
    assert!(!String::from_utf8_lossy(&added.stdout).contains("long enough"));

    let taken = cli.run_with_stdin(
        &["user", "add", "--tenant", "acme", "--email", "ada@example.com", "--password-stdin"],
        "another password\n",
    );
    assert_eq!(taken.status.code(), Some(3), "{}", stderr(&taken));
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let cli = Cli::new();
    cli.json(&["table", "create", "--json"]);
    let no_tenant = cli.run_with_stdin(
        &["user", "add", "--tenant", "ghost", "--email", "a@b.co", "--password-stdin"],
        "long enough pw\n",
    );
    assert_eq!(no_tenant.status.code(), Some(2));
    assert!(stderr(&no_tenant).contains("no tenant ghost"), "{}", stderr(&no_tenant));

    cli.json(&["tenant", "add", "acme", "--json"]);
    let short =
        cli.run_with_stdin(&["user", "add", "--tenant", "acme", "--email", "a@b.co", "--password-stdin"], "short\n");
    assert_eq!(short.status.code(), Some(2));
    assert!(stderr(&short).contains("at least 12"), "{}", stderr(&short));

    // No prompt possible and no --password-stdin: refused, never read from argv.
    let no_stdin = cli.run(&["user", "add", "--tenant", "acme", "--email", "a@b.co"]);
    assert_eq!(no_stdin.status.code(), Some(2));
    assert!(stderr(&no_stdin).contains("--password-stdin"), "{}", stderr(&no_stdin));

    let bad_plan = cli.run(&["tenant", "add", "x", "--plan", "gold"]);
    assert_eq!(bad_plan.status.code(), Some(2), "clap usage error");

    let no_config = cli.command(&["table", "create"]).env_remove("LATCHKEY_TABLE_NAME").output().expect("runs");
    assert_eq!(no_config.status.code(), Some(2));
    assert!(stderr(&no_config).contains("LATCHKEY_TABLE_NAME must be set"));
}

#[test]
fn signing_key_rotation_prepublishes_and_inspect_verifies() {
    let cli = Cli::new();
    cli.json(&["--json", "table", "create"]);
    let first = cli.json(&["--json", "signing-key", "rotate", "--immediate"]);
    let second = cli.json(&["--json", "signing-key", "rotate", "--alg", "ES256"]);
    assert_eq!(second["alg"], "ES256");
    let listed = cli.json(&["--json", "signing-key", "list"]);
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    // The immediate key signs; the pre-published one waits its two hours.
    let signing: Vec<_> = keys.iter().filter(|k| k["signing"] == true).map(|k| k["kid"].clone()).collect();
    assert_eq!(signing, vec![first["kid"].clone()]);

    let junk = cli.run(&["token", "inspect", "not-a-jwt"]);
    assert_eq!(junk.status.code(), Some(2));
    let generated = cli.json(&["--json", "sealing-key", "generate"]);
    assert_eq!(generated["sealing_key"].as_str().map(str::len), Some(44));
}

#[test]
fn token_inspect_verifies_a_token_the_functions_issued() {
    let cli = Cli::new();
    cli.json(&["--json", "table", "create"]);
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let env = latchkey::config::Env::from_pairs([
        ("LATCHKEY_TABLE_NAME", cli.table.as_str()),
        ("LATCHKEY_ISSUER", "https://auth.cli.test"),
        ("LATCHKEY_SEALING_KEY", SEALING_KEY),
    ]);
    let config = latchkey::Config::from(&env).expect("config");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let token = runtime.block_on(async {
        let sdk = aws_config_for(&endpoint).await;
        let client = aws_sdk_dynamodb::Client::from_conf(latchkey::store::client_config(&sdk, &config.store).build());
        let latchkey = latchkey::Latchkey::new(config, client);
        let principal = latchkey::service::Principal {
            sub: "usr_test".into(),
            tenant_id: "acme".into(),
            scope: "profile".into(),
            client_id: None,
        };
        let issued = latchkey.issuer.issue(&principal, latchkey::time::now_secs()).await.expect("issues");
        secrecy::ExposeSecret::expose_secret(&issued.token).to_owned()
    });
    let from_stdin = cli.run_with_stdin(&["--json", "token", "inspect", "-"], &format!("{token}\n"));
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    let inspected = cli.json(&["--json", "token", "inspect", &token]);
    assert_eq!(inspected["valid"], true, "{inspected}");
    assert_eq!(inspected["claims"]["sub"], "usr_test");
    assert_eq!(inspected["header"]["typ"], "at+jwt");

    // Another issuer's configuration refuses it.
    let output = cli
        .command(&["--json", "token", "inspect", &token])
        .env("LATCHKEY_ISSUER", "https://other.test")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let refused: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(refused["valid"], false);
}

async fn aws_config_for(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("local", "local", None, None, "cli-tests"))
        .load()
        .await
}

#[test]
fn apps_and_api_keys_are_created_listed_and_revoked() {
    let cli = Cli::new();
    cli.json(&["--json", "table", "create"]);
    let missing = cli.run(&["app", "add", "--tenant", "acme", "--name", "Web"]);
    assert_eq!(missing.status.code(), Some(2), "no such tenant: {}", stderr(&missing));
    cli.json(&["--json", "tenant", "add", "acme"]);
    cli.json(&["--json", "tenant", "add", "globex"]);

    let app = cli.json(&["--json", "app", "add", "--tenant", "acme", "--name", "Web"]);
    assert!(app["app_id"].as_str().is_some_and(|id| id.starts_with("app_")), "{app}");
    assert!(app["app_secret"].as_str().is_some_and(|s| s.starts_with("lks_") && s.len() > 40), "{app}");

    let created = cli.json(&[
        "--json",
        "api-key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "CI deploys",
        "--scopes",
        "orders:read,orders:write",
        "--expires-in",
        "30d",
        "--allow-ip",
        "10.0.0.0/8",
        "--allow-ip",
        "203.0.113.7",
    ]);
    let id = created["id"].as_str().expect("id").to_owned();
    let key = created["key"].as_str().expect("key shown once");
    assert!(key.starts_with(&format!("sk_test_{id}_")), "{key}");
    assert_eq!(created["scopes"], serde_json::json!(["orders:read", "orders:write"]));
    assert_eq!(created["allowed_ips"], serde_json::json!(["10.0.0.0/8", "203.0.113.7/32"]));
    assert!(created["expires_at"].as_str().is_some());

    let listed = cli.json(&["--json", "api-key", "list", "--tenant", "acme"]);
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], id.as_str());
    assert!(keys[0].get("key").is_none(), "a listing never shows the key");
    let secret = key.rsplit('_').next().expect("secret");
    assert!(!listed.to_string().contains(secret), "nor the secret");
    assert_eq!(keys[0]["last_four"], &secret[secret.len() - 4..]);
    assert_eq!(cli.json(&["--json", "api-key", "list", "--tenant", "globex"])["keys"], serde_json::json!([]));

    let other_tenant = cli.run(&["api-key", "revoke", "--tenant", "globex", &id]);
    assert_eq!(other_tenant.status.code(), Some(2), "another tenant's key: {}", stderr(&other_tenant));
    let revoked = cli.json(&["--json", "api-key", "revoke", "--tenant", "acme", &id]);
    assert_eq!(revoked["id"], id.as_str());
    let again = cli.json(&["--json", "api-key", "revoke", "--tenant", "acme", &id]);
    assert_eq!(again["revoked_at"], revoked["revoked_at"], "revoking twice keeps the first time");
    let listed = cli.json(&["--json", "api-key", "list", "--tenant", "acme"]);
    assert_eq!(listed["keys"][0]["revoked_at"], revoked["revoked_at"]);

    let bad = cli.run(&["api-key", "create", "--tenant", "acme", "--name", "x", "--allow-ip", "10.0.0.0/99"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn webhook_sources_are_added_rotated_listed_and_sign_verifiable_deliveries() {
    use latchkey::webhook::{Freshness, Sha256Headers, StandardHeaders, VerifyingKey, WebhookSecret};
    let cli = Cli::new();
    cli.json(&["--json", "table", "create"]);
    let missing = cli.run(&["webhook-source", "add", "stripe-like", "--tenant", "acme"]);
    assert_eq!(missing.status.code(), Some(2), "no such tenant: {}", stderr(&missing));
    cli.json(&["--json", "tenant", "add", "acme"]);

    // Generated secret: shown, valid for both schemes.
    let added = cli.json(&[
        "--json",
        "webhook-source",
        "add",
        "billing",
        "--tenant",
        "acme",
        "--scheme",
        "standard",
        "--scheme",
        "sha256",
    ]);
    let generated = added["secret"].as_str().expect("generated secret shown").to_owned();
    assert!(generated.starts_with("whsec_"), "{added}");
    assert_eq!(added["source"]["url_path"], "/v1/webhooks/billing");
    assert_eq!(added["source"]["schemes"], serde_json::json!(["sha256", "standard"]));
    assert_eq!(added["source"]["tolerance_seconds"], 300);
    let taken = cli.run(&["webhook-source", "add", "billing", "--tenant", "acme"]);
    assert_eq!(taken.status.code(), Some(3), "{}", stderr(&taken));
    let weak = cli.run_with_stdin(
        &["webhook-source", "add", "gh", "--tenant", "acme", "--scheme", "sha256", "--secret", "-"],
        "short\n",
    );
    assert_eq!(weak.status.code(), Some(2), "{}", stderr(&weak));

    // A provider's secret from stdin is not echoed back.
    let provider_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rotated = cli.run_with_stdin(
        &["--json", "webhook-source", "rotate-secret", "billing", "--secret", "-"],
        &format!("{provider_secret}\n"),
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let rotated: serde_json::Value = serde_json::from_slice(&rotated.stdout).expect("JSON");
    assert!(rotated.get("secret").is_none(), "a given secret is not printed: {rotated}");
    let new_id = rotated["secret_id"].as_str().expect("id").to_owned();
    assert_eq!(rotated["source"]["secrets"][0]["id"], new_id.as_str(), "newest first");
    assert_eq!(rotated["source"]["secrets"][0]["last_four"], "LaSw");

    let listed = cli.json(&["--json", "webhook-source", "list", "--tenant", "acme"]);
    assert_eq!(listed["sources"].as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains(&generated[6..]) && !listed.to_string().contains("MfKQ9r8G"), "{listed}");

    // `webhook sign` signs with every secret; the library verifies each.
    let body_path = std::env::temp_dir().join(format!("{}-body.json", cli.table));
    std::fs::write(&body_path, br#"{"type":"ping"}"#).expect("write body");
    let signed = cli.json(&[
        "--json",
        "webhook",
        "sign",
        "--source",
        "billing",
        "--file",
        body_path.to_str().expect("utf-8"),
        "--id",
        "msg_cli",
        "--timestamp",
        "1700000000",
    ]);
    let standard = &signed["standard"];
    assert_eq!(standard["webhook-id"], "msg_cli");
    let signature = standard["webhook-signature"].as_str().expect("signature");
    assert_eq!(signature.split(' ').count(), 2, "one signature per secret: {signature}");
    let freshness = Freshness { now: 1_700_000_000, tolerance: 300 };
    let headers = StandardHeaders { id: Some("msg_cli"), timestamp: Some("1700000000"), signature: Some(signature) };
    for secret in [generated.as_str(), provider_secret] {
        let key = VerifyingKey::new(&WebhookSecret::new(secret).expect("valid"));
        latchkey::webhook::verify_standard([&key], &headers, br#"{"type":"ping"}"#, freshness).expect("verifies");
    }
    let classic = Sha256Headers {
        signature: signed["sha256"]["X-Webhook-Signature"].as_str(),
        timestamp: signed["sha256"]["X-Webhook-Timestamp"].as_str(),
    };
    let newest = VerifyingKey::new(&WebhookSecret::new(provider_secret).expect("valid"));
    latchkey::webhook::verify_sha256([&newest], &classic, br#"{"type":"ping"}"#, freshness).expect("classic verifies");
    let text = cli.run(&["webhook", "sign", "--source", "billing", "--file", body_path.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("webhook-signature: v1,") && text.contains("X-Webhook-Signature: sha256="), "{text}");
    std::fs::remove_file(&body_path).ok();

    // Removing: an unknown id, then the old one, then never the last.
    let old_id = added["source"]["secrets"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(cli.run(&["webhook-source", "remove-secret", "billing", "whs_nope"]).status.code(), Some(2));
    let removed = cli.json(&["--json", "webhook-source", "remove-secret", "billing", &old_id]);
    assert_eq!(removed["source"]["secrets"].as_array().map(Vec::len), Some(1));
    let last = cli.run(&["webhook-source", "remove-secret", "billing", &new_id]);
    assert_eq!(last.status.code(), Some(2), "{}", stderr(&last));
    assert!(stderr(&last).contains("only secret"), "{}", stderr(&last));

    cli.json(&["--json", "webhook-source", "delete", "billing"]);
    assert_eq!(cli.json(&["--json", "webhook-source", "list"])["sources"], serde_json::json!([]));
    assert_eq!(cli.run(&["webhook-source", "delete", "billing"]).status.code(), Some(2));
}

fn unix_secs(rfc3339: &serde_json::Value) -> u64 {
    let text = rfc3339.as_str().unwrap_or_else(|| panic!("an RFC 3339 time: {rfc3339}"));
    let at = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    at.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs()
}

#[test]
fn signing_key_retire_keeps_the_old_key_published_and_refuses_the_only_signer() {
    let cli = Cli::new();
    cli.json(&["--json", "table", "create"]);
    let first = cli.json(&["--json", "signing-key", "rotate", "--immediate"]);
    let old = first["kid"].as_str().expect("kid").to_owned();

    let only = cli.run(&["signing-key", "retire", &old]);
    assert_eq!(only.status.code(), Some(3), "the only signer: {}", stderr(&only));
    assert!(stderr(&only).contains("--force"), "{}", stderr(&only));
    let unknown = cli.run(&["signing-key", "retire", "2020-01-01-nosuchkey0"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no published signing key"), "{}", stderr(&unknown));

    // Rotate at once, then retire the old key: it stays published until the
    // last token it signed has expired (access token lifetime + 30 s).
    let second = cli.json(&["--json", "signing-key", "rotate", "--immediate"]);
    let new = second["kid"].as_str().expect("kid").to_owned();
    let retired = cli.json(&["--json", "signing-key", "retire", &old]);
    assert_eq!(retired["kid"], old.as_str());
    assert_eq!(unix_secs(&retired["expires_at"]), unix_secs(&second["active_from"]) + 300 + 900 + 30, "{retired}");
    let listed = cli.json(&["--json", "signing-key", "list"]);
    let keys = listed["keys"].as_array().expect("keys");
    let find = |kid: &str| keys.iter().find(|k| k["kid"] == kid).unwrap_or_else(|| panic!("{kid} listed: {listed}"));
    assert_eq!(find(&old)["expires_at"], retired["expires_at"]);
    assert!(find(&old)["retired_at"].is_string(), "{listed}");
    assert_eq!(find(&old)["signing"], false);
    assert_eq!((&find(&new)["signing"], &find(&new)["retired_at"]), (&true.into(), &serde_json::Value::Null));
    assert_eq!(find(&new)["expires_at"], serde_json::Value::Null);

    // The new key is now the only signer: refused, unless forced.
    let refused = cli.run(&["signing-key", "retire", &new]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    let forced = cli.json(&["--json", "signing-key", "retire", &new, "--force"]);
    assert!(forced["expires_at"].is_string(), "{forced}");
    let listed = cli.json(&["--json", "signing-key", "list"]);
    assert!(listed["keys"].as_array().expect("keys").iter().all(|k| k["signing"] == false), "{listed}");

    // --immediately unpublishes at once.
    cli.json(&["--json", "signing-key", "retire", &old, "--immediately"]);
    let listed = cli.json(&["--json", "signing-key", "list"]);
    let kids: Vec<&str> = listed["keys"].as_array().expect("keys").iter().filter_map(|k| k["kid"].as_str()).collect();
    assert_eq!(kids, [new.as_str()], "{listed}");
}

#[test]
fn api_key_rate_limits_are_set_at_creation_and_changed_later() {
    let cli = Cli::new();
    cli.json(&["--json", "table", "create"]);
    cli.json(&["--json", "tenant", "add", "acme"]);
    cli.json(&["--json", "tenant", "add", "globex"]);
    let created =
        cli.json(&["--json", "api-key", "create", "--tenant", "acme", "--name", "Batch", "--rate-limit", "5"]);
    assert_eq!(created["rate_limit"], "5/h", "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let default = cli.json(&["--json", "api-key", "create", "--tenant", "acme", "--name", "Plain"]);
    assert_eq!(default["rate_limit"], serde_json::Value::Null, "the plan applies by default: {default}");
    let limit_of = |id: &str| {
        let listed = cli.json(&["--json", "api-key", "list", "--tenant", "acme"]);
        let keys = listed["keys"].as_array().expect("keys");
        keys.iter().find(|k| k["id"] == id).unwrap_or_else(|| panic!("{id} listed: {listed}"))["rate_limit"].clone()
    };
    assert_eq!(limit_of(&id), "5/h");

    let unlimited = cli.json(&["--json", "api-key", "set-rate-limit", "--tenant", "acme", &id, "unlimited"]);
    assert_eq!(unlimited, serde_json::json!({"id": id, "rate_limit": "unlimited"}));
    assert_eq!(limit_of(&id), "unlimited");
    cli.json(&["--json", "api-key", "set-rate-limit", "--tenant", "acme", &id, "500/h"]);
    assert_eq!(limit_of(&id), "500/h");
    let plan = cli.json(&["--json", "api-key", "set-rate-limit", "--tenant", "acme", &id, "plan"]);
    assert_eq!(plan, serde_json::json!({"id": id, "rate_limit": null}));
    assert_eq!(limit_of(&id), serde_json::Value::Null, "the tenant's plan again");

    for bad in ["0", "-5", "lots", "5/day", ""] {
        let refused = cli.run(&["api-key", "set-rate-limit", "--tenant", "acme", &id, bad]);
        assert_eq!(refused.status.code(), Some(2), "{bad:?}: {}", stderr(&refused));
    }
    assert_eq!(limit_of(&id), serde_json::Value::Null, "refusals change nothing");
    let bad_create = cli.run(&["api-key", "create", "--tenant", "acme", "--name", "x", "--rate-limit", "lots"]);
    assert_eq!(bad_create.status.code(), Some(2), "{}", stderr(&bad_create));
    let other_tenant = cli.run(&["api-key", "set-rate-limit", "--tenant", "globex", &id, "10"]);
    assert_eq!(other_tenant.status.code(), Some(2), "another tenant's key: {}", stderr(&other_tenant));
    let unknown = cli.run(&["api-key", "set-rate-limit", "--tenant", "acme", "nosuchkey", "10"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
}
