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

# shellcheck source=scripts/lib/ephemeral-dynamodb.sh
source scripts/lib/ephemeral-dynamodb.sh

cargo_profile=()
[[ "$profile" == "release" ]] && cargo_profile=(--release)
# Each function exactly as it ships (its own feature set), then the bench.
for function in login refresh token webhook authorizer jwks; do
    cargo build "${cargo_profile[@]}" -p "$function" --bin "$function"
done
cargo build "${cargo_profile[@]}" -p latchkey-bench
"target/$profile/latchkey-bench" --profile "$profile" "$@"
