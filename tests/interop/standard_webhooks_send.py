"""Sends a webhook signed with the Standard Webhooks reference library
(standardwebhooks on PyPI), exactly as its README shows a sender using it.

Usage: python standard_webhooks_send.py URL SECRET MSG_ID [PAYLOAD]
  SECRET   the source's secret (whsec_<base64>)
  PAYLOAD  the JSON text to send (default: an invoice.paid event)
Prints {"status": <HTTP status>, "body": <the JSON answer>} on stdout.
"""
import json
import sys
from datetime import datetime, timezone
from math import floor

import requests
from standardwebhooks.webhooks import Webhook

DEFAULT_PAYLOAD = json.dumps(
    {
        "type": "invoice.paid",
        "timestamp": "2026-01-15T09:30:00Z",
        "data": {"invoice": "in_1QzX2b", "customer": "cus_Zoë", "amount": 4200, "currency": "eur"},
    }
)

url, secret, msg_id = sys.argv[1:4]
payload = sys.argv[4] if len(sys.argv) > 4 else DEFAULT_PAYLOAD

wh = Webhook(secret)
timestamp = datetime.now(tz=timezone.utc)
signature = wh.sign(msg_id, timestamp, payload)
headers = {
    "content-type": "application/json",
    "webhook-id": msg_id,
    # What the library signed: whole seconds, rounded down.
    "webhook-timestamp": str(floor(timestamp.timestamp())),
    "webhook-signature": signature,
}
# `sign` signs the payload's UTF-8 encoding, so send exactly those bytes
# (a str body would go out Latin-1 encoded).
response = requests.post(url, data=payload.encode("utf-8"), headers=headers, timeout=300)
try:
    body = response.json()
except ValueError:
    body = response.text
print(json.dumps({"status": response.status_code, "body": body}))
