#!/usr/bin/env bash
# `make test`: every test, against a real DynamoDB Local.
#   - installs cargo-lambda and DynamoDB Local into .tools/ when missing
#   - starts DynamoDB Local on a free port, stops it on exit
#   - builds once, then runs `cargo test --workspace` (the end-to-end test
#     drives the functions over HTTP through `cargo lambda watch`)
#   - fuzzes the API with schemathesis against openapi.yaml (tests/api)
#   - checks the SAM template: tests/infra (pytest), cfn-lint and
#     `sam validate --lint` (scripts/infra-check.sh), all offline
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/tools.sh
source scripts/tools.sh

# shellcheck source=scripts/lib/ephemeral-dynamodb.sh
source scripts/lib/ephemeral-dynamodb.sh

# The function binaries exactly as `cargo lambda watch` builds them
# (`cargo run --bin NAME`), so the end-to-end test starts them at once.
for function in login refresh token keys webhook jwks authorizer; do
    cargo build -p "$function" --bin "$function"
done
# The CLI seeds the schemathesis stack (tests/api).
cargo build -p latchkey-cli
cargo test --workspace --no-run
log="$(mktemp)"
ephemeral_cleanup='rm -f "$log"'
cargo test --workspace "$@" 2>&1 | tee "$log"
python -m pytest -q -p no:cacheprovider tests/infra 2>&1 | tee -a "$log"
# schemathesis against openapi.yaml and the functions under `cargo lambda watch`
# (LATCHKEY_SCHEMATHESIS_EXAMPLES per operation, default 100).
python -m pytest -q -p no:cacheprovider tests/api 2>&1 | tee -a "$log"
bash scripts/infra-check.sh
# One closing line for the whole run (cargo prints one per test binary,
# pytest one `N passed[, M failed]` line).
awk '/^test result:/ { passed += $4; failed += $6 }
     /^[0-9]+ (passed|failed)/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) passed += $i; if ($(i+1) ~ /^failed/) failed += $i } }
     END { printf "summary: %d passed, %d failed\n", passed, failed }' "$log"
