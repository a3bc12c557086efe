//! Test harness: a fresh table on DynamoDB Local per test, the real services
//! and handlers, and requests built from a real API Gateway HTTP API event.
//!
//! DynamoDB Local must be running (`make test` starts it); its address comes
//! from `AWS_ENDPOINT_URL_DYNAMODB`, default `http://127.0.0.1:8000`.

use std::time::Duration;

use authorizer::{Authorizer, AuthorizerResponse};
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};
use lambda_http::Request;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_http::http::StatusCode;
use latchkey::config::Env;
use latchkey::domain::{Email, Password, Plan, Scopes, TenantId, UserId};
use latchkey::domain::{Label, Stage};
use latchkey::service::api_keys::{CreatedApiKey, NewApiKey};
use latchkey::service::webhooks::{NewWebhookSource, WebhookSourceView};
use latchkey::service::{
    ApiKeyService, DiscoveryService, ExchangeService, LoginService, RefreshService, WebhookService,
};
use latchkey::store::metrics::CallCounter;
use latchkey::store::{Table, TenantRecord, UserRecord, schema};
use latchkey::{Config, Latchkey};
use serde_json::Value;

pub const TENANT: &str = "acme";
pub const EMAIL: &str = "ada@example.com";
pub const PASSWORD: &str = "correct horse battery staple";
pub const SCOPES: &str = "keys:write profile";
pub const ISSUER: &str = "https://auth.latchkey.test";
pub const AUDIENCE: &str = "https://api.latchkey.test";
pub const SEALING_KEY: &str = "dGVzdC1vbmx5LXNlYWxpbmcta2V5LTMyLWJ5dGVzISE=";

const FIXTURE: &str = include_str!("../fixtures/apigw_v2_post.json");
/// A payload format 2.0 authorizer event, from aws-lambda-rust-runtime's
/// `aws_lambda_events` fixtures.
const AUTHORIZER_FIXTURE: &str = include_str!("../fixtures/apigw_v2_authorizer.json");

/// An authorizer event for `route_key` from `source_ip`, carrying `headers`
/// (lower-case names) and nothing else of the fixture's headers.
pub fn authorizer_event(
    route_key: &str,
    headers: &[(&str, &str)],
    source_ip: &str,
) -> ApiGatewayV2CustomAuthorizerV2Request {
    let mut event: Value = serde_json::from_str(AUTHORIZER_FIXTURE).expect("fixture is JSON");
    let (method, path) = route_key.split_once(' ').unwrap_or(("GET", route_key));
    event["routeKey"] = route_key.into();
    event["requestContext"]["routeKey"] = route_key.into();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["sourceIp"] = source_ip.into();
    event["headers"] =
        headers.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect::<serde_json::Map<_, _>>().into();
    event["identitySource"] = headers.iter().map(|(_, v)| Value::from(*v)).collect::<Vec<_>>().into();
    serde_json::from_value(event).expect("an authorizer event")
}

pub fn dynamodb_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned())
}

/// The environment a test deployment starts from; tests add overrides.
pub fn base_env(table: &str) -> Vec<(String, String)> {
    [
        ("LATCHKEY_TABLE_NAME", table),
        ("LATCHKEY_ISSUER", ISSUER),
        ("LATCHKEY_AUDIENCE", AUDIENCE),
        ("LATCHKEY_SEALING_KEY", SEALING_KEY),
        ("LATCHKEY_STAGE", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Everything a function binary's process needs to serve `table` on
/// DynamoDB Local: the deployment's settings plus the AWS variables.
pub fn function_env(table: &str) -> Vec<(String, String)> {
    let mut env = base_env(table);
    env.extend(
        [
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "local".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "local".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// A deployment on its own table, with a tenant and a user seeded.
#[derive(Debug)]
pub struct TestApp {
    pub latchkey: Latchkey,
    pub login: LoginService,
    pub refresh: RefreshService,
    pub exchange: ExchangeService,
    pub keys: ApiKeyService,
    pub webhooks: WebhookService,
    pub discovery: DiscoveryService,
    pub authorizer: Authorizer,
    pub calls: CallCounter,
    pub table: Table,
}

/// Options for [`TestApp::spawn_with`].
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Extra `LATCHKEY_*` variables.
    pub env: Vec<(&'static str, String)>,
    /// Point the client here instead of DynamoDB Local (for outage tests).
    pub endpoint: Option<String>,
    /// Shorten the refresh lifetime below the configurable minimum.
    pub refresh_ttl: Option<Duration>,
}

async fn client(
    endpoint: &str,
    store: &latchkey::config::StoreConfig,
    calls: &CallCounter,
) -> aws_sdk_dynamodb::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "latchkey-tests"))
        .load()
        .await;
    let config = latchkey::store::client_config(&sdk, store).interceptor(calls.clone()).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        let table_name = format!("lk-test-{}", latchkey::crypto::random_id());
        let mut vars = base_env(&table_name);
        vars.extend(options.env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut config = Config::from(&Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            .expect("test configuration is valid");
        if let Some(ttl) = options.refresh_ttl {
            config.refresh_token_ttl = ttl;
        }
        let calls = CallCounter::new();
        let seeded = options.endpoint.is_none();
        let endpoint = options.endpoint.unwrap_or_else(dynamodb_endpoint);
        let client = client(&endpoint, &config.store, &calls).await;
        let table = Table::new(client.clone(), table_name.as_str());
        if seeded {
            schema::create_table(&table).await.unwrap_or_else(|err| {
                panic!(
                    "cannot create a table on DynamoDB Local at {endpoint} ({}): start it with `make test` or \
                     `scripts/dynamodb-local.sh start`",
                    latchkey::error::error_chain(&err)
                )
            });
        }
        let latchkey = Latchkey::new(config, client);
        if seeded {
            seed(&latchkey).await;
        }
        calls.take();
        let login = latchkey.login_service();
        let refresh = latchkey.refresh_service();
        let exchange = latchkey.exchange_service();
        let keys = latchkey.api_key_service();
        let webhooks = latchkey.webhook_service();
        let discovery = latchkey.discovery_service();
        let authorizer = Authorizer::new(latchkey.guard(), latchkey.config.route_scopes.clone());
        Self { latchkey, login, refresh, exchange, keys, webhooks, discovery, authorizer, calls, table }
    }

    pub fn max_body(&self) -> usize {
        self.latchkey.config.max_body_bytes
    }

    pub async fn post_login(&self, body: &str) -> TestResponse {
        self.login_request(post("/v1/auth/login", body)).await
    }

    pub async fn login_request(&self, request: Request) -> TestResponse {
        TestResponse::from(login::handle(&self.login, self.max_body(), request).await)
    }

    pub async fn refresh_request(&self, request: Request) -> TestResponse {
        TestResponse::from(refresh::handle(&self.refresh, self.max_body(), request).await)
    }

    pub async fn post_refresh(&self, refresh_token: &str) -> TestResponse {
        let body = serde_json::json!({ "refresh_token": refresh_token }).to_string();
        self.refresh_request(post("/v1/auth/refresh", &body)).await
    }

    pub async fn post_revoke(&self, token: &str) -> TestResponse {
        let body = serde_json::json!({ "token": token }).to_string();
        self.refresh_request(post("/v1/auth/revoke", &body)).await
    }

    /// Logs the seeded user in; panics unless it works.
    pub async fn login_ok(&self) -> Value {
        let response = self.post_login(&login_body(EMAIL, PASSWORD)).await;
        assert_eq!(response.status, StatusCode::OK, "login failed: {}", response.body);
        response.json()
    }

    pub async fn token_request(&self, request: Request) -> TestResponse {
        TestResponse::from(token::handle(&self.exchange, self.max_body(), request).await)
    }

    /// POST /v1/auth/token with a JSON body.
    pub async fn post_token(&self, body: &Value) -> TestResponse {
        self.token_request(post("/v1/auth/token", &body.to_string())).await
    }

    pub async fn keys_request(&self, request: Request) -> TestResponse {
        TestResponse::from(keys::handle(&self.keys, self.max_body(), request).await)
    }

    /// GET on the jwks function.
    pub async fn discovery_request(&self, request: Request) -> TestResponse {
        TestResponse::from(jwks::handle(&self.discovery, request).await)
    }

    /// The authorizer's decision for `route_key` (`"GET /orders"`) with
    /// `headers`, from [`CLIENT_IP`].
    pub async fn authorize(&self, route_key: &str, headers: &[(&str, &str)]) -> AuthorizerResponse {
        self.authorizer.handle(&authorizer_event(route_key, headers, CLIENT_IP)).await
    }

    /// POST /v1/verify with `headers` and a JSON body (empty for none).
    pub async fn post_verify(&self, headers: &[(&str, &str)], body: &str) -> TestResponse {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.keys_request(request("/v1/verify", "POST", &all, body, CLIENT_IP)).await
    }

    /// Sets the seeded (or another) tenant's plan (as `latchkey tenant set-plan` does).
    pub async fn set_plan(&self, tenant: &str, plan: Plan) {
        let tenant = TenantId::parse(tenant).expect("valid tenant");
        assert!(self.latchkey.stores.tenants.set_plan(&tenant, plan).await.expect("plan set"), "no tenant {tenant}");
        self.calls.take();
    }

    /// Adds an API key straight through the service (as the CLI does).
    pub async fn add_api_key(&self, key: TestKey) -> CreatedApiKey {
        let new = NewApiKey {
            tenant_id: TenantId::parse(key.tenant).expect("valid tenant"),
            name: Label::parse("test key").expect("valid"),
            scopes: Scopes::parse(key.scopes).expect("valid scopes"),
            env: key.env,
            valid_until: key.valid_until,
            allowed_ips: latchkey::domain::parse_allow_list(key.allowed_ips.iter().copied()).expect("valid networks"),
            rate_limit: key.rate_limit,
        };
        let created = self.keys.add(new, latchkey::time::now_secs()).await.expect("key insert").expect("tenant exists");
        self.calls.take();
        created
    }

    /// Adds an API key and returns it as its holder sends it: its id and the
    /// whole key string.
    pub async fn add_held_key(&self, key: TestKey) -> (String, String) {
        let created = self.add_api_key(key).await;
        (created.view.id, secrecy::ExposeSecret::expose_secret(&created.key).to_owned())
    }

    pub async fn webhook_request(&self, request: Request) -> TestResponse {
        TestResponse::from(webhook::handle(&self.webhooks, request).await)
    }

    /// POST /v1/webhooks/{source} with `headers` and a raw body.
    pub async fn post_webhook(&self, source: &str, headers: &[(&str, &str)], body: &str) -> TestResponse {
        let path = format!("/v1/webhooks/{source}");
        self.webhook_request(request(&path, "POST", headers, body, CLIENT_IP)).await
    }

    /// Registers a webhook source of the seeded tenant through the service
    /// (as the CLI does), with the default tolerance and retention.
    pub async fn add_webhook_source(
        &self,
        name: &str,
        schemes: &[latchkey::webhook::Scheme],
        secret: &latchkey::webhook::WebhookSecret,
    ) -> WebhookSourceView {
        let new = NewWebhookSource {
            name: latchkey::domain::WebhookSourceName::parse(name).expect("valid source name"),
            tenant_id: TenantId::parse(TENANT).expect("valid tenant"),
            schemes: schemes.to_vec(),
            secret: secret.clone(),
            tolerance_secs: latchkey::webhook::DEFAULT_TOLERANCE_SECS,
            retention_secs: latchkey::service::webhooks::DEFAULT_RETENTION_SECS,
        };
        let view = self.webhooks.add_source(new, latchkey::time::now_secs()).await.expect("source added");
        self.calls.take();
        view
    }

    /// The stored webhook event of `source` with dedupe id `id`, read
    /// directly (a consistent GetItem).
    pub async fn stored_webhook_event(&self, source: &str, id: &str) -> Option<latchkey::store::Item> {
        let source = latchkey::domain::WebhookSourceName::parse(source).expect("valid source name");
        self.table
            .client()
            .get_item()
            .table_name(self.table.name())
            .set_key(Some(latchkey::store::webhooks::event_key(&source, id)))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// Every stored webhook event.
    pub async fn stored_webhook_events(&self) -> Vec<latchkey::store::Item> {
        self.stored_items("WEBHOOK#").await
    }

    /// Registers an app in `tenant`; returns its id and secret.
    pub async fn add_app(&self, tenant: &str) -> (String, String) {
        use secrecy::ExposeSecret as _;
        let (secret, secret_hash) =
            latchkey::credentials::AppSecrets::new(&self.latchkey.config.sealing_key).generate();
        let record = latchkey::store::AppRecord {
            app_id: latchkey::domain::AppId::generate(),
            tenant_id: TenantId::parse(tenant).expect("valid tenant"),
            name: Label::parse("test app").expect("valid"),
            secret_hash,
            created_at: latchkey::time::now_secs(),
            revoked_at: None,
        };
        let outcome = self.latchkey.stores.apps.insert(&record).await.expect("app insert");
        assert_eq!(outcome, latchkey::store::AddAppOutcome::Added);
        (record.app_id.to_string(), secret.expose_secret().to_owned())
    }

    /// Adds a tenant (the seeded one is `acme`).
    pub async fn add_tenant(&self, tenant: &str) {
        let record =
            TenantRecord { tenant_id: TenantId::parse(tenant).expect("valid"), plan: Plan::Free, created_at: 0 };
        assert!(self.latchkey.stores.tenants.insert(&record).await.expect("tenant insert"));
    }

    /// Adds another user to the seeded tenant.
    pub async fn add_user(&self, email: &str, password: &str, scopes: &str) {
        add_user(&self.latchkey, TENANT, email, password, scopes).await;
    }

    /// Adds a user to `tenant` and logs them in; returns the access token.
    pub async fn user_token(&self, tenant: &str, email: &str, scopes: &str) -> String {
        add_user(&self.latchkey, tenant, email, PASSWORD, scopes).await;
        let response = self.post_login(&login_body(email, PASSWORD)).await;
        assert_eq!(response.status, StatusCode::OK, "login failed: {}", response.body);
        response.json()["access_token"].as_str().expect("access token").to_owned()
    }
}

async fn add_user(latchkey: &Latchkey, tenant: &str, email: &str, password: &str, scopes: &str) {
    let hash = latchkey::password::hash_password(Password::parse_new(password.to_owned()).expect("valid password"))
        .await
        .expect("hashes");
    let user = UserRecord {
        user_id: UserId::generate(),
        tenant_id: TenantId::parse(tenant).expect("valid tenant"),
        email: Email::parse(email).expect("valid email"),
        password_hash: hash,
        scopes: Scopes::parse(scopes).expect("valid scopes"),
        created_at: latchkey::time::now_secs(),
    };
    let outcome = latchkey.stores.users.insert(&user).await.expect("user insert");
    assert_eq!(outcome, latchkey::store::users::AddUserOutcome::Added);
}

async fn seed(latchkey: &Latchkey) {
    let tenant = TenantRecord { tenant_id: TenantId::parse(TENANT).expect("valid"), plan: Plan::Pro, created_at: 0 };
    assert!(latchkey.stores.tenants.insert(&tenant).await.expect("tenant insert"));
    add_user(latchkey, TENANT, EMAIL, PASSWORD, SCOPES).await;
}

/// What [`TestApp::add_api_key`] creates.
#[derive(Debug, Clone)]
pub struct TestKey {
    pub tenant: &'static str,
    pub scopes: &'static str,
    pub env: Stage,
    pub valid_until: Option<u64>,
    pub allowed_ips: Vec<&'static str>,
    pub rate_limit: Option<latchkey::domain::RateLimitOverride>,
}

impl Default for TestKey {
    fn default() -> Self {
        Self {
            tenant: TENANT,
            scopes: "orders:read orders:write",
            env: Stage::Test,
            valid_until: None,
            allowed_ips: Vec::new(),
            rate_limit: None,
        }
    }
}

/// The source address of requests built by [`post`] and [`get`].
pub const CLIENT_IP: &str = "203.0.113.10";

/// A GET as API Gateway delivers it, with `headers`.
pub fn get(path: &str, headers: &[(&str, &str)]) -> Request {
    let mut all = vec![("content-type", "")];
    all.extend_from_slice(headers);
    request(path, "GET", &all, "", CLIENT_IP)
}

/// Signs an HS256 JWT the way a client SDK does: header `{alg, typ, kid}`,
/// key = the secret's bytes.
pub fn client_assertion(kid: &str, claims: &Value, key: &[u8]) -> String {
    use hmac::Mac as _;
    use latchkey::crypto::b64url;
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    let signed = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64url(&mac.finalize().into_bytes()))
}

pub fn login_body(email: &str, password: &str) -> String {
    serde_json::json!({ "email": email, "password": password }).to_string()
}

/// A POST as API Gateway (HTTP API, payload 2.0) delivers it.
pub fn post(path: &str, body: &str) -> Request {
    request(path, "POST", &[("content-type", "application/json")], body, CLIENT_IP)
}

/// Any request as API Gateway delivers it; `headers` replace the fixture's
/// `content-type` when they name one (an empty value removes it).
pub fn request(path: &str, method: &str, headers: &[(&str, &str)], body: &str, source_ip: &str) -> Request {
    lambda_http::request::from_str(&event_json(path, method, headers, body, source_ip))
        .expect("valid API Gateway event")
}

/// The API Gateway HTTP API (payload 2.0) event JSON for a request: what the
/// Lambda runtime hands a function.
pub fn event_json(path: &str, method: &str, headers: &[(&str, &str)], body: &str, source_ip: &str) -> String {
    let mut event: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event["requestContext"]["http"]["method"] = method.into();
    event["requestContext"]["http"]["sourceIp"] = source_ip.into();
    event["body"] = body.into();
    event["headers"]["content-length"] = body.len().to_string().into();
    for (name, value) in headers {
        if value.is_empty() {
            event["headers"].as_object_mut().expect("headers").remove(*name);
        } else {
            event["headers"][*name] = (*value).into();
        }
    }
    event.to_string()
}

/// An `Authorization` header value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// If the UTC hour turns within `margin` seconds, waits for it to turn, so
/// that a test's counted requests all land in one rate-limit window. Returns
/// that window.
pub async fn settled_window(margin: u64) -> (u64, u64) {
    let now = latchkey::time::now_secs();
    let (_, end) = latchkey::rate_limit::window(now);
    if end - now < margin {
        tokio::time::sleep(Duration::from_secs(end - now + 1)).await;
    }
    latchkey::rate_limit::window(latchkey::time::now_secs())
}

/// A response, with the body read once.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: lambda_http::http::HeaderMap,
    pub body: String,
}

impl From<lambda_http::Response<lambda_http::Body>> for TestResponse {
    fn from(response: lambda_http::Response<lambda_http::Body>) -> Self {
        let (parts, body) = response.into_parts();
        Self { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(body.as_ref()).into_owned() }
    }
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error response with the SPEC's body shape.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.body);
        let body = self.json();
        assert_eq!(body["error"], code, "body: {}", self.body);
        assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "body: {}", self.body);
        assert_eq!(
            body.as_object().map(serde_json::Map::len),
            Some(2),
            "only error and error_description: {}",
            self.body
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        self
    }
}

/// Polls every future together on the current task (as concurrent
/// requests to one function instance would be) and collects the outputs in
/// order.
pub async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, future) in set.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => outputs[i] = Some(out),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("completed")).collect()
}

// Helpers of the hardening suite (tests/tests/races.rs and faults.rs).

/// The Standard Webhooks headers a sender puts on `body` with dedupe id `id`,
/// signed now with `secret`, plus `content-type`.
pub fn standard_webhook_headers(
    id: &str,
    body: &str,
    secret: &latchkey::webhook::WebhookSecret,
) -> Vec<(String, String)> {
    let webhook =
        latchkey::webhook::OutboundWebhook { id, timestamp: latchkey::time::now_secs(), body: body.as_bytes() };
    let mut headers: Vec<(String, String)> = webhook
        .standard_headers(std::slice::from_ref(secret))
        .expect("signs")
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

/// A string attribute of a stored item; panics if it is missing or not a string.
pub fn string_attribute<'a>(item: &'a latchkey::store::Item, name: &str) -> &'a str {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(value)) => value,
        other => panic!("`{name}` is not a string: {other:?}"),
    }
}

/// A number attribute of a stored item, `None` when absent; panics if it is
/// not an unsigned integer.
pub fn number_attribute(item: &latchkey::store::Item, name: &str) -> Option<u64> {
    match item.get(name) {
        None => None,
        Some(aws_sdk_dynamodb::types::AttributeValue::N(value)) => Some(value.parse().expect("an unsigned integer")),
        other => panic!("`{name}` is not a number: {other:?}"),
    }
}

impl TestApp {
    /// A deployment like [`TestApp::spawn_with`] (own table, seeded tenant and
    /// user) on the DynamoDB Local at `endpoint`, for tests that run their
    /// own instance.
    pub async fn spawn_at(endpoint: &str, options: Options) -> Self {
        let app = Self::spawn_with(Options { endpoint: Some(endpoint.to_owned()), ..options }).await;
        schema::create_table(&app.table).await.unwrap_or_else(|err| {
            panic!("cannot create a table at {endpoint}: {}", latchkey::error::error_chain(&err))
        });
        seed(&app.latchkey).await;
        app.calls.take();
        app
    }

    /// POST /v1/webhooks/{source} with owned header pairs (as
    /// [`standard_webhook_headers`] makes them).
    pub async fn deliver_webhook(&self, source: &str, headers: &[(String, String)], body: &str) -> TestResponse {
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post_webhook(source, &borrowed, body).await
    }

    /// The stored item of the refresh family `refresh_token` belongs to, read
    /// directly (a consistent GetItem), attributes as stored.
    pub async fn stored_family(&self, refresh_token: &str) -> Option<latchkey::store::Item> {
        let claim = self.latchkey.refresh_codec.open(&refresh_token.to_owned().into()).expect("one of our tokens");
        self.table
            .client()
            .get_item()
            .table_name(self.table.name())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("REFRESH#{}", claim.family.to_key_string())))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("FAMILY".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item
    }

    /// Every stored item whose `pk` starts with `prefix`: a consistent Scan,
    /// all pages.
    pub async fn stored_items(&self, prefix: &str) -> Vec<latchkey::store::Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .table
                .client()
                .scan()
                .table_name(self.table.name())
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", aws_sdk_dynamodb::types::AttributeValue::S(prefix.into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Scan");
            items.extend(output.items.unwrap_or_default());
            match output.last_evaluated_key.filter(|key| !key.is_empty()) {
                Some(key) => start = Some(key),
                None => return items,
            }
        }
    }
}
