#!/usr/bin/env bash
# `make test`: every test, against a real DynamoDB Local.
#   - installs cargo-lambda and DynamoDB Local into .tools/ when missing
#   - starts DynamoDB Local on a free port, stops it on exit
#   - builds once, then runs `cargo test --workspace` (the end-to-end test
#     drives the functions over HTTP through `cargo lambda watch`)
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/tools.sh
source scripts/tools.sh

port="${DYNAMODB_LOCAL_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
scripts/dynamodb-local.sh start "$port"
trap 'scripts/dynamodb-local.sh stop "$port"' EXIT

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
unset LATCHKEY_TABLE_NAME

# The function binaries exactly as `cargo lambda watch` builds them
# (`cargo run --bin NAME`), so the end-to-end test starts them at once.
cargo build -p login --bin login
cargo build -p refresh --bin refresh
cargo test --workspace --no-run
log="$(mktemp)"
trap 'rm -f "$log"; scripts/dynamodb-local.sh stop "$port" >/dev/null 2>&1' EXIT
cargo test --workspace "$@" 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "summary: %d passed, %d failed\n", passed, failed }' "$log"
