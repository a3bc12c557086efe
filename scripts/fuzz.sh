#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]   (default: 60 s, every target)
#
#   - installs the pinned cargo-fuzz into .tools/cargo when missing
#   - builds with nightly and AddressSanitizer (cargo-fuzz's default); without a nightly
#     toolchain it says so and builds with stable and `--sanitizer none` instead (libFuzzer's
#     coverage guidance still works; only ASan's memory checks are lost)
#   - each target starts from its seeds (fuzz/corpus/<target>/, committed) plus what earlier
#     runs found (fuzz/target/corpus/<target>/, kept between runs, gitignored); crashes go
#     to fuzz/artifacts/<target>/
#   - prints per target: executions, exec/s, corpus size, crashes; exits 1 on any crash
#
# A crash is a bug: fix it, then add the input as fuzz/corpus/<target>/regress-<what>, which
# the stable smoke run (fuzz/targets/tests/smoke.rs, part of `make test`) replays every time.
set -euo pipefail
cd "$(dirname "$0")/.."

LATCHKEY_CARGO_FUZZ_VERSION="0.13.2"
SECONDS_PER_TARGET="${1:-60}"
shift || true
[[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: seconds-per-target must be a positive integer" >&2; exit 2; }

log() { echo "fuzz: $*" >&2; }

CARGO_FUZZ=".tools/cargo/bin/cargo-fuzz"
if [[ ! -x "$CARGO_FUZZ" ]] || [[ "$("$CARGO_FUZZ" --version)" != "cargo-fuzz $LATCHKEY_CARGO_FUZZ_VERSION" ]]; then
    log "installing cargo-fuzz $LATCHKEY_CARGO_FUZZ_VERSION into .tools/cargo ..."
    cargo install --locked --quiet --root .tools/cargo "cargo-fuzz@$LATCHKEY_CARGO_FUZZ_VERSION"
fi
export PATH="$PWD/.tools/cargo/bin:$PATH"

if cargo +nightly --version >/dev/null 2>&1; then
    TOOLCHAIN=(+nightly)
    SANITIZER=address
else
    log "no nightly toolchain (rustup toolchain install nightly): building with stable and"
    log "--sanitizer none instead; libFuzzer still guides by coverage, but ASan is off"
    TOOLCHAIN=()
    SANITIZER=none
fi
# Every binary of fuzz/Cargo.toml, unless targets were named.
if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^latchkey-fuzz$')
fi

cd fuzz
log "building ${#TARGETS[@]} targets (${TOOLCHAIN[*]:-stable}, sanitizer $SANITIZER) ..."
cargo "${TOOLCHAIN[@]}" fuzz build --sanitizer "$SANITIZER"

mkdir -p target/fuzz-logs
crashed=0
rows=()
for target in "${TARGETS[@]}"; do
    corpus="target/corpus/$target"
    mkdir -p "$corpus" "artifacts/$target"
    crashes_before="$(find "artifacts/$target" -type f | wc -l)"
    run_log="target/fuzz-logs/$target.log"
    log "$target: ${SECONDS_PER_TARGET} s ..."
    status=0
    # New inputs go to the first corpus folder only: the committed seeds stay as they are.
    cargo "${TOOLCHAIN[@]}" fuzz run --sanitizer "$SANITIZER" "$target" "$corpus" "corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -print_final_stats=1 >"$run_log" 2>&1 || status=$?
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$run_log" | tail -1)"
    per_second="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run_log" | tail -1)"
    # libFuzzer's closing line: `#N DONE cov: C ft: F corp: UNITS/BYTES ...`.
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$run_log" | tail -1 || true)"
    coverage="$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$done_line")"
    corpus_size="$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$done_line")"
    found="$(find "$corpus" -type f | wc -l)"
    crashes="$(( $(find "artifacts/$target" -type f | wc -l) - crashes_before ))"
    if [[ "$status" -ne 0 || "$crashes" -gt 0 ]]; then
        crashed=1
        log "$target FAILED (exit $status); log: fuzz/$run_log"
        grep -E "panicked at|ERROR: |Test unit written" "$run_log" | head -5 >&2 || true
    fi
    rows+=("$(printf '%-18s %12s %8s %6s %8s %8s %8s' "$target" "${executions:-?}" "${per_second:-?}" \
        "${coverage:-?}" "${corpus_size:-?}" "$found" "$crashes")")
done

# corpus: inputs libFuzzer kept (seeds that add coverage, and finds); found: inputs
# written to fuzz/target/corpus/<target>/ by this and earlier runs.
printf '%-18s %12s %8s %6s %8s %8s %8s\n' target executions exec/s cov corpus found crashes
printf '%s\n' "${rows[@]}"
if [[ "$crashed" -ne 0 ]]; then
    log "crashes found: inputs under fuzz/artifacts/, logs under fuzz/target/fuzz-logs/"
    exit 1
fi
log "no crash in ${#TARGETS[@]} targets x ${SECONDS_PER_TARGET} s"
