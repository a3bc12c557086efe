#!/usr/bin/env bash
# `make bench`: Latchkey's benchmark (see docs/performance.md).
#   - installs cargo-lambda and DynamoDB Local into .tools/ when missing
#   - starts DynamoDB Local on a free port, stops it on exit
#   - builds the functions and the bench (release, or debug with --quick)
#   - runs it: results in bench/results/latest.{md,json,svg}
# Options: --quick (a few samples, debug build, no zip: the CI smoke run),
#          --skip-zip (no arm64 cross build).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
for arg in "$@"; do
    [[ "$arg" == "--quick" ]] && profile=debug
done

# shellcheck source=scripts/tools.sh
source scripts/tools.sh

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
scripts/dynamodb-local.sh start "$port"
trap 'scripts/dynamodb-local.sh stop "$port" >/dev/null 2>&1' EXIT
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local

cargo_profile=()
[[ "$profile" == "release" ]] && cargo_profile=(--release)
# Each function exactly as it ships (its own feature set), then the bench.
cargo build "${cargo_profile[@]}" -p login --bin login
cargo build "${cargo_profile[@]}" -p refresh --bin refresh
cargo build "${cargo_profile[@]}" -p latchkey-bench
"target/$profile/latchkey-bench" --profile "$profile" "$@"
