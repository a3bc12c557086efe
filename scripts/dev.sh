#!/usr/bin/env bash
# `make dev`: run Latchkey locally.
#   - installs cargo-lambda and DynamoDB Local into .tools/ when missing
#   - starts DynamoDB Local on 127.0.0.1:8000 (in memory)
#   - creates the table, seeds tenant `demo` and user demo@example.com
#   - runs `cargo lambda watch` on 127.0.0.1:9000 and prints curl lines
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
cargo build -p login --bin login
cargo build -p refresh --bin refresh
latchkey=target/debug/latchkey
"$latchkey" table create
"$latchkey" tenant add demo --plan pro --exists-ok
printf '%s\n' "$DEMO_PASSWORD" |
    "$latchkey" user add --tenant demo --email "$DEMO_EMAIL" --password-stdin --scopes "keys:write profile" --exists-ok

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

  # inspect an access token
  set -a; . dev/local.env; set +a; $latchkey token inspect <access_token>

INFO
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" --env-file dev/local.env
