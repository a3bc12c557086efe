"""A JSON body must be an object, over HTTP through the same stack as the
fuzzing: an array holding the fields in order (which serde's derived structs
accept) is a 400 `invalid_request`, with real credentials, on every endpoint
that reads JSON. Schemathesis found this on `POST /v1/verify` (`[]` answered
200); before the fix `["<email>", "<password>"]` logged in.
"""

import json

import pytest

from latchkey_stack import EMAIL, PASSWORD, TENANT

ARRAY_ERROR = {
    "error": "invalid_request",
    "error_description": "invalid request body: expected a JSON object, found an array",
}


def _cases(stack):
    refresh_token = stack.fresh_refresh_token()
    key = stack.unlimited_key
    user = {"Authorization": f"Bearer {stack.user_token}"}
    return [
        ("login", "/v1/auth/login", [EMAIL, PASSWORD], {}),
        ("refresh", "/v1/auth/refresh", [refresh_token], {}),
        ("refresh", "/v1/auth/revoke", [refresh_token], {}),
        ("token", "/v1/auth/token", ["api_key", key.id, key.secret], {}),
        ("keys", "/v1/api-keys", ["ci"], user),
        ("keys", "/v1/verify", [], {}),
        ("keys", "/v1/verify", [stack.user_token], {}),
        ("keys", "/v1/verify", [None, key.key, TENANT], {}),
    ]


@pytest.mark.parametrize("spaces", ["", " \n"])
def test_a_json_array_is_not_a_request_object(stack, spaces):
    for function, path, fields, headers in _cases(stack):
        response = stack.http.post(
            stack.url(function, path),
            data=spaces + json.dumps(fields),
            headers={"Content-Type": "application/json", **headers},
            timeout=30,
        )
        assert (path, response.status_code, response.json()) == (path, 400, ARRAY_ERROR)
