"""Gets a token with an off-the-shelf OAuth2 client (authlib), unmodified:
client_credentials with HTTP Basic client authentication (its default).

Usage: python oauth_client_credentials.py TOKEN_URL CLIENT_ID CLIENT_SECRET SCOPE
Prints the token authlib parsed, as JSON, on stdout.
"""
import json
import sys

from authlib.integrations.requests_client import OAuth2Session

token_url, client_id, client_secret, scope = sys.argv[1:5]
session = OAuth2Session(client_id, client_secret, scope=scope)
token = session.fetch_token(token_url, grant_type="client_credentials")
assert token.is_expired() is False, f"authlib could not tell when the token expires: {token}"
assert token["token_type"] == "Bearer", token
print(json.dumps(dict(token)))
