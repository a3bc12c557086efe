#!/usr/bin/env bash
# `make load`: the bounded load test (issue #8). A fixed number of virtual users
# loop login / refresh / token exchange / POST /v1/verify over HTTP on loopback
# for a fixed time; prints throughput, p50/p90/p99/max per operation, errors
# (any is a failure: exit 1) and each function's peak RSS.
#   - installs cargo-lambda and DynamoDB Local into .tools/ when missing
#   - starts DynamoDB Local on a free port, stops it on exit
#   - builds the functions (release, each as it ships), the CLI and the client
#   - starts `cargo lambda watch --only-lambda-apis` on a free port: the function
#     URLs and the Runtime API; the client (latchkey-bench load) seeds the table
#     with the CLI, starts the function instances itself (one process per
#     instance, one invocation at a time each, as on Lambda), runs, reads their
#     peak RSS and stops them
#   - results: stdout and bench/results/load-<date>.md; logs in target/load/
# Options: --duration S (default 60), --concurrency N (virtual users, default 16),
#          --instances N (per function, default: the concurrency), --warmup S (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."

client_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration | --concurrency | --instances | --warmup)
            [[ $# -ge 2 ]] || { echo "load.sh: $1 needs a value" >&2; exit 2; }
            client_args+=("$1" "$2")
            shift 2
            ;;
        *)
            echo "load.sh: unknown argument $1 (use --duration S, --concurrency N, --instances N, --warmup S)" >&2
            exit 2
            ;;
    esac
done

# shellcheck source=scripts/tools.sh
source scripts/tools.sh

# Built before DynamoDB Local starts: the build is the slow part.
for function in login refresh token keys; do
    cargo build --release -p "$function" --bin "$function"
done
cargo build --release -p latchkey-cli --bin latchkey
cargo build --release -p latchkey-bench

# shellcheck source=scripts/lib/ephemeral-dynamodb.sh
source scripts/lib/ephemeral-dynamodb.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
watch_port="$(free_port)"
logs=target/load
mkdir -p "$logs"

# The deployment's configuration, for the CLI and the functions alike (they
# inherit it from the client). A fresh sealing key per run; the deployed
# default log level (RUST_LOG unset), logs going to target/load/<function>.log.
export LATCHKEY_TABLE_NAME=latchkey-load
export LATCHKEY_STAGE=test
export LATCHKEY_ISSUER="http://127.0.0.1:$watch_port"
export LATCHKEY_AUDIENCE=latchkey-load
LATCHKEY_SEALING_KEY="$(target/release/latchkey sealing-key generate)"
export LATCHKEY_SEALING_KEY
unset RUST_LOG

cargo lambda watch --only-lambda-apis --invoke-address 127.0.0.1 --invoke-port "$watch_port" \
    </dev/null >"$logs/watch.log" 2>&1 &
watch_pid=$!
# Stopping the emulator also ends any instance the client left behind: its
# next poll of the Runtime API fails and the runtime exits.
# shellcheck disable=SC2016 # expanded when the EXIT trap evaluates it
ephemeral_cleanup='kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null || true'

deadline=$((SECONDS + 60))
until (exec 3<>"/dev/tcp/127.0.0.1/$watch_port") 2>/dev/null; do
    if ! kill -0 "$watch_pid" 2>/dev/null; then
        echo "load.sh: cargo lambda watch exited; see $logs/watch.log" >&2
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        echo "load.sh: cargo lambda watch did not listen on $watch_port within 60 s" >&2
        exit 1
    fi
    sleep 0.2
done

target/release/latchkey-bench load --watch "127.0.0.1:$watch_port" --logs "$logs" "${client_args[@]}"
