"""The real stack the API fuzzing runs against, and the credentials it hands out.

`Stack.start()` creates a fresh table on the DynamoDB Local that
`AWS_ENDPOINT_URL_DYNAMODB` names, seeds it with the `latchkey` CLI (as
scripts/dev.sh does), and runs the pre-built function binaries under
`cargo lambda watch --ignore-changes` on a free port, each function under
`/lambda-url/<function>` (as tests/tests/e2e_watch.rs does). `ROUTES` maps
every OpenAPI path to the function API Gateway sends it to (SPEC.md,
"Endpoints"; infra/template.yaml).

`Stack.authorize(case)` gives a case real credentials, or leaves it as
schemathesis generated it: the choice is a hash of the generated case, so
the same case gets the same choice in every run and when Hypothesis replays
a failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import jwt
import requests
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"

# OpenAPI path -> the function that serves it (SPEC.md "Endpoints").
ROUTES = {
    "/v1/auth/login": "login",
    "/v1/auth/refresh": "refresh",
    "/v1/auth/revoke": "refresh",
    "/v1/auth/token": "token",
    "/v1/me": "keys",
    "/v1/api-keys": "keys",
    "/v1/api-keys/{id}": "keys",
    "/v1/verify": "keys",
    "/v1/webhooks/{source}": "webhook",
    "/.well-known/jwks.json": "jwks",
    "/.well-known/openid-configuration": "jwks",
}

TENANT = "fuzz"
EMAIL = "fuzz@example.com"
PASSWORD = "correct horse battery staple"
USER_SCOPES = "keys:write keys:read orders:read orders:write profile"
KEY_SCOPES = "orders:read orders:write profile"
WEBHOOK_SOURCE = "fuzz-hooks"
# A key's own hourly limit, low enough that the fuzzing reaches it: the 200s
# carry X-RateLimit-* and the 429s Retry-After, and both are checked.
METERED_LIMIT = 2
# Spare keys that only DELETE /v1/api-keys/{id} revokes.
REVOCABLE_KEYS = 4
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def deployment_env(table: str) -> dict[str, str]:
    """What the functions and the CLI read: tests/src/lib.rs `function_env`, plus the fuzzing's overrides."""
    return {
        "LATCHKEY_TABLE_NAME": table,
        "LATCHKEY_ISSUER": "https://auth.latchkey.test",
        "LATCHKEY_AUDIENCE": "https://api.latchkey.test",
        "LATCHKEY_SEALING_KEY": "dGVzdC1vbmx5LXNlYWxpbmcta2V5LTMyLWJ5dGVzISE=",
        "LATCHKEY_STAGE": "test",
        "AWS_ENDPOINT_URL_DYNAMODB": os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        # Every request comes from 127.0.0.1: with the default 50 failures per
        # IP, the fuzzing's random logins would lock the address within a
        # second and every later login would be the same 429. The per-account
        # lockout keeps its defaults.
        "LATCHKEY_LOGIN_IP_MAX_FAILURES": "1000000",
        # The seeded user's token must outlive a long local run.
        "LATCHKEY_ACCESS_TOKEN_TTL": "86400",
        "RUST_LOG": "warn",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ApiKey:
    id: str
    key: str

    @property
    def secret(self) -> str:
        return self.key.rsplit("_", 1)[1]


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    log_path: pathlib.Path
    process: subprocess.Popen
    http: requests.Session = field(default_factory=requests.Session)
    # Filled by seed().
    app_id: str = ""
    app_secret: str = ""
    unlimited_key: ApiKey | None = None
    metered_key: ApiKey | None = None
    revocable_keys: list[ApiKey] = field(default_factory=list)
    webhook_secret: str = ""
    user_token: str = ""
    key_token: str = ""
    # What the fuzzing did, for the closing summary: operation -> status -> count.
    statuses: dict[str, Counter] = field(default_factory=dict)
    _log_offset: int = 0

    # --- lifecycle ---------------------------------------------------------------------
    @classmethod
    def start(cls) -> Stack:
        functions = sorted(set(ROUTES.values()))
        missing = [name for name in (*functions, "latchkey") if not (TARGET / name).is_file()]
        if missing:
            raise RuntimeError(
                f"not built: {', '.join(missing)} in {TARGET}; run `for f in {' '.join(functions)}; do "
                "cargo build -p $f --bin $f; done; cargo build -p latchkey-cli`"
            )
        env = {**os.environ, **deployment_env(f"lk-api-{uuid.uuid4().hex[:16]}")}
        cli(env, "table", "create")
        port = free_port()
        with tempfile.NamedTemporaryFile(prefix="latchkey-schemathesis-", suffix=".log", delete=False) as log:
            log_path = pathlib.Path(log.name)
            process = subprocess.Popen(
                ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1"]
                + ["--invoke-port", str(port)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stack = cls(base=f"http://127.0.0.1:{port}/lambda-url", env=env, log_path=log_path, process=process)
        try:
            stack._wait_listening(port)
            stack.seed()
        except BaseException:
            stack.stop()
            raise
        return stack

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"`cargo lambda watch` exited: {self.log_path.read_text()[-2000:]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"`cargo lambda watch` did not listen on {port} within 60 s") from None
                time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM to `cargo lambda watch`'s process group: it and the functions it started."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def seed(self) -> None:
        env = self.env
        cli(env, "tenant", "add", TENANT, "--plan", "enterprise")
        cli(env, "user", "add", "--tenant", TENANT, "--email", EMAIL, "--password-stdin", "--scopes", USER_SCOPES,
            stdin=PASSWORD + "\n")
        app = cli_json(env, "app", "add", "--tenant", TENANT, "--name", "fuzz app")
        self.app_id, self.app_secret = app["app_id"], app["app_secret"]

        def key(name: str, *extra: str) -> ApiKey:
            created = cli_json(env, "api-key", "create", "--tenant", TENANT, "--name", name, "--scopes", KEY_SCOPES,
                               *extra)
            return ApiKey(created["id"], created["key"])

        # The tenant is on the enterprise plan, so its keys are not metered:
        # volume never turns into a wall of 429s. One key has its own low limit.
        self.unlimited_key = key("fuzz unlimited")
        self.metered_key = key("fuzz metered", "--rate-limit", str(METERED_LIMIT))
        self.revocable_keys = [key(f"fuzz revocable {i}") for i in range(REVOCABLE_KEYS)]
        source = cli_json(env, "webhook-source", "add", WEBHOOK_SOURCE, "--tenant", TENANT,
                          "--scheme", "standard", "--scheme", "sha256")
        self.webhook_secret = source["secret"]

        # The first request to each function starts its binary; do that now,
        # with time to spare, so no fuzzed request pays for it.
        for function, path in (("jwks", "/.well-known/jwks.json"), ("keys", "/v1/me"), ("refresh", "/v1/auth/revoke"),
                               ("webhook", f"/v1/webhooks/{WEBHOOK_SOURCE}")):
            self.http.request("GET" if function in ("jwks", "keys") else "POST", self.url(function, path), timeout=300)
        login = self.post_json("login", "/v1/auth/login", {"email": EMAIL, "password": PASSWORD}, timeout=300)
        self.user_token = login["access_token"]
        self.key_token = self.api_key_grant(timeout=300)["access_token"]

    # --- HTTP ----------------------------------------------------------------------------
    def url(self, function: str, path: str) -> str:
        return f"{self.base}/{function}{path}"

    def base_url_for(self, path: str) -> str:
        """Where a case of this OpenAPI path goes: its function's prefix (KeyError for an unrouted path)."""
        return f"{self.base}/{ROUTES[path]}"

    def post_json(self, function: str, path: str, body: dict, timeout: float = 30) -> dict:
        response = self.http.post(self.url(function, path), json=body, timeout=timeout)
        if response.status_code != 200:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def api_key_grant(self, timeout: float = 30) -> dict:
        key = self.unlimited_key
        body = {"grant_type": "api_key", "api_key_id": key.id, "api_key_secret": key.secret}
        return self.post_json("token", "/v1/auth/token", body, timeout=timeout)

    def fresh_refresh_token(self) -> str:
        """A refresh token nobody used yet (from the token endpoint: no password hashing)."""
        return self.api_key_grant()["refresh_token"]

    def assertion(self, key: ApiKey) -> str:
        """A jwt-bearer assertion as the SDK docs sign it (tests/interop/sdk_assertion.py)."""
        now = int(time.time())
        claims = {"sub": key.id, "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, key.secret, algorithm="HS256", headers={"kid": key.id})

    # --- panics ---------------------------------------------------------------------------
    def new_panics(self) -> list[str]:
        """`panicked at` lines the functions wrote since the last call."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            text = log.read()
            self._log_offset = log.tell()
        return [line for line in text.decode("utf-8", "replace").splitlines() if "panicked" in line]

    def record(self, label: str, status: int) -> None:
        self.statuses.setdefault(label, Counter())[status] += 1

    # --- credentials ----------------------------------------------------------------------
    def authorize(self, case) -> None:
        """Real credentials for two thirds of the cases, chosen by a hash of the case.

        Only where schemathesis generated valid data: a location it made
        invalid on purpose (a negative case) goes out as generated, so the
        case stays what its metadata says it is. Values are replaced by values
        of the same type, so a valid location stays valid.
        """
        choice = case_hash(case)
        operation = case.operation.definition.raw.get("operationId")
        free = Free(case)
        if operation == "token" and free.no_body and free.headers and not has_header(case, "Authorization"):
            # The token endpoint's body is optional only when an Authorization
            # header carries the credentials; without both the documented
            # answer is 415. OpenAPI cannot say "required unless", so a
            # bodiless case always gets the bare-assertion form.
            set_header(case, "Authorization", f"Bearer {self.assertion(self.unlimited_key)}")
            return
        if choice % 3 == 0:
            return  # as generated: garbage credentials, or none
        authorizer = CREDENTIALS.get(operation)
        if authorizer is not None:
            authorizer(self, case, free, choice // 3)


class Free:
    """Which parts of a case may carry credentials: those schemathesis did not make invalid on purpose."""

    def __init__(self, case) -> None:
        negative = negated_locations(case)
        self.headers = ParameterLocation.HEADER not in negative
        self.path = ParameterLocation.PATH not in negative
        self.body = ParameterLocation.BODY not in negative and isinstance(case.body, dict)
        self.no_body = ParameterLocation.BODY not in negative and isinstance(case.body, NotSet | None)


def negated_locations(case) -> set:
    """Where a negative case is invalid: every location, unless its metadata names them."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_positive:
        return set()
    data = meta.phase.data
    named = {location for location, info in meta.components.items() if info.mode.is_negative}
    named |= {mutation.parameter_location for mutation in getattr(data, "mutations", ())}
    named.add(data.parameter_location)
    named -= {None}
    if not named or ParameterLocation.UNKNOWN in named:
        return set(ParameterLocation)
    return named


def case_hash(case) -> int:
    """A stable number from what schemathesis generated for this case."""
    generated = (case.method, case.path_parameters, case.headers, case.query, case.body, case.media_type)
    return int.from_bytes(hashlib.sha256(json.dumps(generated, default=repr, sort_keys=True).encode()).digest()[:8])


def has_header(case, name: str) -> bool:
    return any(key.lower() == name.lower() for key in case.headers or {})


def set_header(case, name: str, value: str | None) -> None:
    """Set (or with None, remove) a header, whatever case schemathesis generated its name in."""
    headers = case.headers if case.headers is not None else {}
    for existing in [key for key in headers if key.lower() == name.lower()]:
        del headers[existing]
    if value is not None:
        headers[name] = value
    case.headers = headers


def _login(stack: Stack, case, free: Free, pick: int) -> None:
    if free.body:
        case.body["email"], case.body["password"] = EMAIL, PASSWORD
    if free.headers and pick % 3:
        # The registered app, or its id with a wrong secret (401 before the password is checked).
        secret = stack.app_secret if pick % 3 == 1 else "lks_" + "a" * 52
        set_header(case, "X-App-Id", stack.app_id)
        set_header(case, "X-App-Secret", secret)


def _refresh(stack: Stack, case, free: Free, _pick: int) -> None:
    if free.body:
        case.body["refresh_token"] = stack.fresh_refresh_token()


def _revoke(stack: Stack, case, free: Free, _pick: int) -> None:
    if free.body:
        case.body["token"] = stack.fresh_refresh_token()


def _token(stack: Stack, case, free: Free, pick: int) -> None:
    key = stack.unlimited_key
    grant = case.body.get("grant_type") if free.body else None
    if grant == "api_key":
        case.body["api_key_id"], case.body["api_key_secret"] = key.id, key.key if pick % 2 else key.secret
    elif grant == "client_credentials" and free.headers and pick % 2:
        case.body.pop("client_id", None)
        case.body.pop("client_secret", None)
        basic = base64.b64encode(f"{key.id}:{key.secret}".encode()).decode()
        set_header(case, "Authorization", f"Basic {basic}")
    elif grant == "client_credentials":
        case.body["client_id"], case.body["client_secret"] = key.id, key.secret
    elif grant == JWT_BEARER:
        case.body["assertion"] = stack.assertion(key)
    elif free.headers and free.no_body:
        # No body at all: the bare `Authorization: Bearer <assertion>` form.
        set_header(case, "Authorization", f"Bearer {stack.assertion(key)}")


def _me(stack: Stack, case, free: Free, pick: int) -> None:
    """A user's token, an API key's token, or an API key with its tenant."""
    if not free.headers:
        return
    kind = pick % 3
    if kind == 2:
        set_header(case, "Authorization", None)
        set_header(case, "X-API-Key", (stack.metered_key if pick % 2 else stack.unlimited_key).key)
        set_header(case, "X-Tenant-ID", TENANT)
    else:
        set_header(case, "X-API-Key", None)
        set_header(case, "X-Tenant-ID", None)
        set_header(case, "Authorization", f"Bearer {stack.user_token if kind == 0 else stack.key_token}")


def _user_token(stack: Stack, case, free: Free, _pick: int) -> None:
    if free.headers:
        set_header(case, "Authorization", f"Bearer {stack.user_token}")


def _revoke_key(stack: Stack, case, free: Free, pick: int) -> None:
    _user_token(stack, case, free, pick)
    if free.path and pick % 2:
        case.path_parameters["id"] = stack.revocable_keys[(pick // 2) % len(stack.revocable_keys)].id


def _verify(stack: Stack, case, free: Free, pick: int) -> None:
    """The credential where the generated request put one (body or headers), else in the headers."""
    key = stack.metered_key if pick % 2 else stack.unlimited_key
    token = stack.user_token if (pick // 2) % 2 else stack.key_token
    if free.body and "token" in case.body:
        case.body["token"] = token
    elif free.body and "api_key" in case.body:
        case.body["api_key"], case.body["tenant_id"] = key.key, TENANT
    elif free.headers and (pick // 4) % 2:
        set_header(case, "X-API-Key", None)
        set_header(case, "X-Tenant-ID", None)
        set_header(case, "Authorization", f"Bearer {token}")
    elif free.headers:
        set_header(case, "Authorization", None)
        set_header(case, "X-API-Key", key.key)
        set_header(case, "X-Tenant-ID", TENANT)


def _webhook(stack: Stack, case, free: Free, pick: int) -> None:
    """The registered source; for half of those, a valid signature of the body that will be sent."""
    if free.path:
        case.path_parameters["source"] = WEBHOOK_SOURCE
    if pick % 2 == 0 or not free.headers:
        return
    body = wire_body(case, stack.base_url_for(case.operation.path))
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "X-Webhook-Signature",
                 "X-Webhook-Timestamp"):
        set_header(case, name, None)
    timestamp = str(int(time.time()))
    if (pick // 2) % 2:
        message_id = f"msg_{hashlib.sha256(body).hexdigest()[:24]}"
        key = base64.b64decode(stack.webhook_secret.removeprefix("whsec_"))
        signed = f"{message_id}.{timestamp}.".encode() + body
        signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        set_header(case, "webhook-id", message_id)
        set_header(case, "webhook-timestamp", timestamp)
        set_header(case, "webhook-signature", f"v1,{signature}")
    else:
        digest = hmac.new(stack.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        set_header(case, "X-Webhook-Timestamp", timestamp)
        set_header(case, "X-Webhook-Signature", f"sha256={digest}")


def wire_body(case, base_url: str) -> bytes:
    """The body bytes schemathesis will send for `case` (signing must cover exactly those)."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    fields = ("method", "url", "headers", "params", "data", "json", "files")
    body = requests.Request(**{name: kwargs[name] for name in fields if name in kwargs}).prepare().body
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else body


# operationId -> how to give its cases real credentials.
CREDENTIALS = {
    "login": _login,
    "refresh": _refresh,
    "revoke": _revoke,
    "token": _token,
    "me": _me,
    "createApiKey": _user_token,
    "listApiKeys": _user_token,
    "revokeApiKey": _revoke_key,
    "verify": _verify,
    "receiveWebhook": _webhook,
}


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run([str(TARGET / "latchkey"), *args], env=env, input=stdin, capture_output=True, text=True,
                            timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"latchkey {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def cli_json(env: dict[str, str], *args: str) -> dict:
    return json.loads(cli(env, "--json", *args))
