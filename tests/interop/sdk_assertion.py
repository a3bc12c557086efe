"""Signs a client assertion with PyJWT exactly as a Latchkey SDK user writes it.

Usage: python sdk_assertion.py KEY_ID SECRET  -> prints the JWT on stdout.
"""
import sys
import time

import jwt

key, secret = sys.argv[1], sys.argv[2]
now = int(time.time())
token = jwt.encode(
    payload={"sub": key, "iat": now, "exp": now + 300, "iss": "sdk"},
    key=secret,
    algorithm="HS256",
    headers={"alg": "HS256", "typ": "JWT", "kid": key},
)
print(token)
