"""API fuzzing: schemathesis drives every operation of openapi.yaml against the
real stack (the function binaries under `cargo lambda watch`, a fresh table on
DynamoDB Local; see latchkey_stack.py) and proves, for every request it sends:

- no server error: no 5xx, no connection reset, no timeout (a hang), and no
  panic in the functions' output;
- the status code, the `Content-Type`, the body and the response headers are
  the ones openapi.yaml documents for that operation and status;
- schemathesis' other default checks: invalid requests are refused,
  schema-valid ones are not refused with a status other than 400 or an auth
  or rate-limit answer, a missing required header is refused, an
  undocumented method gets 405, and credentials are enforced.

Each operation runs the examples of openapi.yaml, schemathesis' coverage
cases and `LATCHKEY_SCHEMATHESIS_EXAMPLES` generated cases (default 100),
valid and invalid, derandomized with a fixed seed so every run sends the
same requests; `LATCHKEY_SCHEMATHESIS_SEED` picks another. Two thirds of the
cases carry real credentials where schemathesis generated valid data (a
user's access token with `keys:write`, API keys with their tenant, the
registered webhook source and a valid signature, fresh refresh tokens,
client assertions), so they reach the code behind the authentication; the
rest go out as generated.

Where this deviates from schemathesis' defaults, the config below says why.
One class of request never reaches the functions: a body that is not UTF-8
with a text media type (or none), which the local emulator itself answers
with a 500 (`refused_by_the_emulator`); the summary counts those as "not
delivered".

Run: `source scripts/tools.sh; python -m pytest -q -p no:cacheprovider tests/api`
(the function binaries and the CLI must be built; see latchkey_stack.py).
"""

import os

import schemathesis
import yaml

from latchkey_stack import ROOT, ROUTES

OPENAPI = ROOT / "openapi.yaml"
EXAMPLES = int(os.environ.get("LATCHKEY_SCHEMATHESIS_EXAMPLES", "100"))
SEED = int(os.environ.get("LATCHKEY_SCHEMATHESIS_SEED", "8"))
# Generous for debug builds and a shared 2-core machine; a request that takes
# longer is a hang, and fails the case.
REQUEST_TIMEOUT_SECONDS = 30
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

config = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            # Valid and invalid data in every operation.
            "mode": "all",
            "max-examples": EXAMPLES,
            "deterministic": True,
            # No example database: the same cases every run, nothing written to the tree.
            "database": "none",
        },
        "checks": {
            # Schema-valid requests may also get a 400: openapi.yaml documents
            # 400s for rules a JSON Schema cannot state (a scope the caller does
            # not hold is RFC 6749's 400 invalid_scope; `environment` must be the
            # deployment's stage; X-App-Id needs X-App-Secret; one kind of
            # credential at a time). Schemathesis' default list, plus 400.
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"],
            },
            # Invalid requests may also be refused with a 413: the body size
            # is checked before the body is read, so an over-long field in a
            # body over the limit gets 413. Schemathesis' default list, plus 413.
            "negative_data_rejection": {
                "expected-statuses": [
                    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
                ],
            },
        },
        "operations": [
            {
                # /v1/me's API-key credential is two headers (X-API-Key with
                # X-Tenant-ID). ignored_auth probes each header alone and
                # expects 401/403; the documented answer to an X-API-Key
                # without its X-Tenant-ID is 400 invalid_request. The
                # access-token side is probed on the /v1/api-keys operations.
                "include-operation-id": "me",
                "checks": {"ignored_auth": {"enabled": False}},
            },
            {
                # Unknown query parameters are ignored, as documented. In the
                # coverage phase schemathesis 4.32.5 re-validates the other
                # query values in their wire form (`limit` as the string "100"
                # against `type: integer`), so an ignored extra parameter reads
                # as accepted invalid data.
                "include-operation-id": "listApiKeys",
                "generation": {"allow-extra-parameters": False},
            },
        ],
        # Everything here is local test data: show the credentials in the
        # reproduction lines, so they can be replayed as printed.
        "output": {"sanitization": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_path(OPENAPI, config=config)


@schema.parametrize()
def test_api(case, stack):
    base_url = stack.base_url_for(case.operation.path)
    stack.authorize(case)
    # A connection reset or a timeout raises here and fails the case.
    response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS)
    if refused_by_the_emulator(response):
        stack.record(case.operation.label, "not delivered")
        return
    stack.record(case.operation.label, response.status_code)
    panics = stack.new_panics()
    assert not panics, f"the functions panicked: {panics}"
    case.validate_response(response, transport_kwargs={"base_url": base_url, "timeout": REQUEST_TIMEOUT_SECONDS})


# What `cargo lambda watch` 1.9.2 answers, without invoking the function, when
# it cannot put a body into the event as text (trigger_router.rs:
# `String::from_utf8` -> `ServerError::StringBody`).
EMULATOR_500 = '{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}'


def refused_by_the_emulator(response) -> bool:
    """The local emulator's own 500 for a body that is not UTF-8 but has a text media type (or none).

    The emulator passes such a body as text and fails; API Gateway would
    deliver it to the function, whose JSON and form readers answer 400. Any
    other 500 fails the case.
    """
    if response.status_code != 500 or response.text != EMULATOR_500:
        return False
    body = response.request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    content_type = response.request.headers.get("content-type", "")
    text_type = content_type == "" or content_type.startswith(("text/", "application/json"))
    try:
        (body or b"").decode("utf-8")
    except UnicodeDecodeError:
        return text_type
    return False


def test_every_operation_of_openapi_yaml_is_fuzzed_and_routed():
    """`test_api` runs once per operation schemathesis found: all of openapi.yaml's, each routed to its function."""
    raw = yaml.safe_load(OPENAPI.read_text())
    documented = sorted(
        f"{method.upper()} {path}" for path, item in raw["paths"].items() for method in item if method in HTTP_METHODS
    )
    fuzzed = []
    for result in schema.get_all_operations():
        assert hasattr(result, "ok"), f"schemathesis cannot read an operation: {result.err()}"
        fuzzed.append(result.ok().label)
    assert sorted(fuzzed) == documented
    assert len(documented) == 12
    # Each path goes to the function its documented local server names.
    local = {
        path: server["url"].rsplit("/lambda-url/", 1)[1]
        for path, item in raw["paths"].items()
        for server in item["servers"]
        if "/lambda-url/" in server["url"]
    }
    assert local == ROUTES
