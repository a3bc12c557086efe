#!/usr/bin/env bash
# `make dev`: run Latchkey locally.
#   - installs cargo-lambda and DynamoDB Local into .tools/ when missing
#   - starts DynamoDB Local on 127.0.0.1:8000 (in memory)
#   - creates the table, seeds tenant `demo`, user demo@example.com, an app, an API key
#     and the webhook source `demo-webhooks`
#   - runs `cargo lambda watch` on 127.0.0.1:9000 and prints curl lines (one of them a
#     signed webhook delivery)
# Ctrl-C stops the functions and DynamoDB Local.
set -euo pipefail
cd "$(dirname "$0")/.."

DDB_PORT=8000
WATCH_PORT=9000
DEMO_EMAIL=demo@example.com
DEMO_PASSWORD=correct-horse-battery-staple

# shellcheck source=scripts/tools.sh
source scripts/tools.sh
scripts/dynamodb-local.sh start "$DDB_PORT"
trap 'scripts/dynamodb-local.sh stop "$DDB_PORT"' EXIT

set -a
# shellcheck source=dev/local.env
. dev/local.env
set +a

echo "dev: building (the first build takes a few minutes)" >&2
cargo build -p latchkey-cli
for function in login refresh token keys webhook jwks authorizer; do
    cargo build -p "$function" --bin "$function"
done
latchkey=target/debug/latchkey
"$latchkey" table create
"$latchkey" tenant add demo --plan pro --exists-ok
printf '%s\n' "$DEMO_PASSWORD" |
    "$latchkey" user add --tenant demo --email "$DEMO_EMAIL" --password-stdin \
        --scopes "keys:write keys:read orders:read orders:write profile" --exists-ok
# A fresh app and API key on every start (their secrets are shown only once).
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
app_json="$("$latchkey" --json app add --tenant demo --name "Demo web app")"
app_id="$(json_field app_id <<<"$app_json")"
app_secret="$(json_field app_secret <<<"$app_json")"
key_json="$("$latchkey" --json api-key create --tenant demo --name "Demo worker" --scopes "orders:read orders:write")"
key_id="$(json_field id <<<"$key_json")"
api_key="$(json_field key <<<"$key_json")"

# A webhook source accepting both schemes, and a sample delivery signed for it.
# DynamoDB Local starts empty, but `add` exits 3 if the name is taken: keep that one.
webhook_source=demo-webhooks
webhook_status=0
webhook_json="$("$latchkey" --json webhook-source add "$webhook_source" --tenant demo \
    --scheme standard --scheme sha256)" || webhook_status=$?
case "$webhook_status" in
    0) webhook_secret="$(json_field secret <<<"$webhook_json")" ;;
    3) webhook_secret="(the existing one; rotate with: $latchkey webhook-source rotate-secret $webhook_source)" ;;
    *) exit "$webhook_status" ;;
esac
# The exact bytes to send: no trailing newline, no single quote (the curl line quotes it).
webhook_body='{"type":"invoice.paid","timestamp":"2026-01-15T09:30:00Z","data":{"invoice":"in_demo_1","amount":4200,"currency":"eur"}}'
webhook_file="$(mktemp)"
trap 'rm -f "$webhook_file"; scripts/dynamodb-local.sh stop "$DDB_PORT"' EXIT
printf '%s' "$webhook_body" >"$webhook_file"
signed_json="$("$latchkey" --json webhook sign --source "$webhook_source" --file "$webhook_file")"
standard_header() { python3 -c 'import json,sys; print(json.load(sys.stdin)["standard"][sys.argv[1]])' "$1"; }
webhook_id="$(standard_header webhook-id <<<"$signed_json")"
webhook_timestamp="$(standard_header webhook-timestamp <<<"$signed_json")"
webhook_signature="$(standard_header webhook-signature <<<"$signed_json")"
webhook_signed_at="$(date -u -d "@$webhook_timestamp" +%H:%M:%S 2>/dev/null || echo "$webhook_timestamp")"

base="http://127.0.0.1:$WATCH_PORT/lambda-url"
cat <<INFO

Latchkey is starting on $base (DynamoDB Local on 127.0.0.1:$DDB_PORT, table $LATCHKEY_TABLE_NAME).
Demo user: $DEMO_EMAIL / $DEMO_PASSWORD (tenant demo)

  # log in
  curl -s $base/login/v1/auth/login -H 'content-type: application/json' \\
       -d '{"email":"$DEMO_EMAIL","password":"$DEMO_PASSWORD"}'

  # refresh (use the refresh_token from the login answer; each one works once)
  curl -s $base/refresh/v1/auth/refresh -H 'content-type: application/json' \\
       -d '{"refresh_token":"rt_..."}'

  # revoke the session (RFC 7009)
  curl -s $base/refresh/v1/auth/revoke -H 'content-type: application/json' -d '{"token":"rt_..."}'

  # log in through an app: the access token's client_id is the app
  curl -s $base/login/v1/auth/login -H 'content-type: application/json' \\
       -H 'X-App-Id: $app_id' -H 'X-App-Secret: $app_secret' \\
       -d '{"email":"$DEMO_EMAIL","password":"$DEMO_PASSWORD"}'

  # exchange the demo API key ($key_id) for tokens
  curl -s $base/token/v1/auth/token -H 'content-type: application/json' \\
       -d '{"grant_type":"api_key","api_key_id":"$key_id","api_key_secret":"$api_key"}'

  # the same key as an OAuth2 client (client_credentials, HTTP Basic)
  curl -s $base/token/v1/auth/token -u '$key_id:$api_key' -d grant_type=client_credentials

  # what a resource server asks: is this credential valid, for whom, and how much of the
  # rate limit is left (or -H 'Authorization: Bearer <access_token>' instead of the key)
  curl -s -X POST $base/keys/v1/verify -H 'X-API-Key: $api_key' -H 'X-Tenant-ID: demo'

  # the public signing keys and the issuer metadata (its URLs name the issuer,
  # $LATCHKEY_ISSUER; locally the jwks function serves them under $base/jwks)
  curl -s $base/jwks/.well-known/jwks.json
  curl -s $base/jwks/.well-known/openid-configuration

  # who am I (with the API key, or with -H 'Authorization: Bearer <access_token>')
  curl -s $base/keys/v1/me -H 'X-API-Key: $api_key' -H 'X-Tenant-ID: demo'

  # create and list API keys with the demo user's access token (scope keys:write)
  curl -s $base/keys/v1/api-keys -H 'Authorization: Bearer <access_token>' \\
       -H 'content-type: application/json' -d '{"name":"ci","scopes":["orders:read"],"expires_in":86400}'
  curl -s $base/keys/v1/api-keys -H 'Authorization: Bearer <access_token>'

  # inspect an access token
  set -a; . dev/local.env; set +a; $latchkey token inspect <access_token>

  # a signed webhook delivery to source $webhook_source (tenant demo; secret $webhook_secret).
  # Signed at $webhook_signed_at UTC: valid for 5 minutes (the source's tolerance), then it
  # answers 401. Send it twice: the second answer says "duplicate": true.
  curl -s $base/webhook/v1/webhooks/$webhook_source -H 'content-type: application/json' \\
       -H 'webhook-id: $webhook_id' -H 'webhook-timestamp: $webhook_timestamp' \\
       -H 'webhook-signature: $webhook_signature' \\
       --data-binary '$webhook_body'

  # sign a fresh one later (prints the headers of both schemes; send the body byte for byte)
  printf '%s' '$webhook_body' |
      (set -a; . dev/local.env; set +a; $latchkey webhook sign --source $webhook_source --file -)

INFO
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" --env-file dev/local.env
