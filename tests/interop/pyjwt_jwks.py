"""Verifies a Latchkey access token the way a resource server in Python does:
PyJWT's PyJWKClient fetches the served JWKS over HTTP and picks the key by
the token's kid; the algorithm, audience and issuer are pinned.

Usage: python pyjwt_jwks.py DISCOVERY_URL TOKEN AUDIENCE ISSUER
DISCOVERY_URL is where the jwks function serves /.well-known/*.
Prints {"header": ..., "claims": ...} of the verified token as JSON on stdout.
"""
import base64
import json
import sys
import urllib.request

import jwt

discovery_url, token, audience, issuer = sys.argv[1:5]
discovery_url = discovery_url.rstrip("/")

# The issuer metadata names the JWKS (on the issuer's public host, which this
# local run does not serve, so the key set is fetched from DISCOVERY_URL).
with urllib.request.urlopen(f"{discovery_url}/.well-known/openid-configuration") as response:
    metadata = json.load(response)
assert metadata["issuer"] == issuer, metadata
assert metadata["jwks_uri"] == f"{issuer}/.well-known/jwks.json", metadata
assert metadata["jwks_uri"].endswith("/.well-known/jwks.json"), metadata
assert "RS256" in metadata["id_token_signing_alg_values_supported"], metadata

jwks_client = jwt.PyJWKClient(f"{discovery_url}/.well-known/jwks.json")
signing_key = jwks_client.get_signing_key_from_jwt(token)
claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=audience, issuer=issuer)

# One byte of the signature changed on the way: refused.
header_b64, payload_b64, signature_b64 = token.split(".")
signature = bytearray(base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4)))
signature[len(signature) // 2] ^= 0x01
tampered_b64 = base64.urlsafe_b64encode(bytes(signature)).rstrip(b"=").decode()
tampered = f"{header_b64}.{payload_b64}.{tampered_b64}"
assert tampered != token
try:
    jwt.decode(tampered, signing_key.key, algorithms=["RS256"], audience=audience, issuer=issuer)
except jwt.InvalidSignatureError:
    pass
else:
    raise AssertionError("PyJWT accepted a token with a changed signature byte")

print(json.dumps({"header": jwt.get_unverified_header(token), "claims": claims}))
