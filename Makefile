# The two commands: `make dev` runs Latchkey locally, `make test` runs every test.
.PHONY: dev test bench lint fmt tools

dev:
	bash scripts/dev.sh

test:
	bash scripts/test.sh

bench:
	bash scripts/bench.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

tools:
	bash scripts/tools.sh >/dev/null
