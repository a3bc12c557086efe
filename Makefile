# The two commands: `make dev` runs Latchkey locally, `make test` runs every test.
.PHONY: dev test bench load fuzz lint fmt tools infra-check sam-build deploy deploy-guided package

dev:
	bash scripts/dev.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

# 60 s of mixed login/refresh/exchange/verify at 16 virtual users against the
# release functions on loopback (LOAD_ARGS="--duration 10 --concurrency 4").
load:
	bash scripts/load.sh $(LOAD_ARGS)

# cargo fuzz (libFuzzer + ASan on nightly; stable without ASan if no nightly) on
# every target in fuzz/ for FUZZ_SECONDS each. `make test` runs the stable
# proptest smoke run of the same targets (fuzz/targets/tests/smoke.rs).
FUZZ_SECONDS ?= 60
fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

tools:
	bash scripts/tools.sh >/dev/null

# --- Deploying (infra/template.yaml; settings per stage in infra/samconfig.toml) --------
# ENV picks the samconfig environment: test (default) or live.
ENV ?= test
# Absolute: `sam build --template infra/...` reads a relative --config-file from the
# template's directory, `sam deploy` (which takes .aws-sam/build/) from the current one.
SAM_CONFIG = --config-file $(CURDIR)/infra/samconfig.toml --config-env $(ENV)
# The SAM CLI and cargo-lambda (with zig, for the arm64 cross-build) come from .tools/venv.
WITH_TOOLS = source scripts/tools.sh && export SAM_CLI_TELEMETRY=0 &&
# Every Lambda of the template: the functions, and the example protected API.
LAMBDAS = login refresh token keys webhook jwks authorizer protected-api

# cfn-lint and `sam validate --lint` on the template (offline).
infra-check:
	bash scripts/infra-check.sh

# Cross-compiles every function for arm64 into .aws-sam/build.
sam-build:
	bash -c '$(WITH_TOOLS) sam build --template infra/template.yaml $(SAM_CONFIG) --beta-features'

# `make deploy-guided ENV=...` the first time for a stage (asks for the region and the
# parameters and saves them in infra/samconfig.toml), `make deploy ENV=...` after that.
deploy: sam-build
	bash -c '$(WITH_TOOLS) sam deploy $(SAM_CONFIG)'

deploy-guided: sam-build
	bash -c '$(WITH_TOOLS) sam deploy --guided $(SAM_CONFIG)'

# One zip per Lambda, target/lambda/<name>/bootstrap.zip, without SAM (for
# `cargo lambda deploy` or your own pipeline).
package:
	bash -c '$(WITH_TOOLS) cargo lambda build --release --arm64 --output-format zip $(addprefix -p ,$(LAMBDAS))'
