"""Sends a webhook signed the classic way, with Python's hmac exactly as
GitHub's docs compute X-Hub-Signature-256 ("Validating webhook deliveries"),
under Latchkey's header name X-Webhook-Signature.

Usage: python classic_hmac_send.py URL SECRET PAYLOAD [SENT_BODY]
  PAYLOAD    the body that is signed
  SENT_BODY  the body actually sent (default: PAYLOAD); a different one
             simulates a body changed after signing
Prints {"status": <HTTP status>, "body": <the JSON answer>} on stdout.
"""
import hashlib
import hmac
import json
import sys

import requests

url, secret_token = sys.argv[1], sys.argv[2]
payload_body = sys.argv[3].encode("utf-8")
sent_body = sys.argv[4].encode("utf-8") if len(sys.argv) > 4 else payload_body

hash_object = hmac.new(secret_token.encode("utf-8"), msg=payload_body, digestmod=hashlib.sha256)
signature = "sha256=" + hash_object.hexdigest()
headers = {"content-type": "application/json", "X-Webhook-Signature": signature}
response = requests.post(url, data=sent_body, headers=headers, timeout=300)
try:
    body = response.json()
except ValueError:
    body = response.text
print(json.dumps({"status": response.status_code, "body": body}))
