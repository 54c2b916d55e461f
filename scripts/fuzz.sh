#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of outside bytes (issue 18): the
# cargo-fuzz targets in fuzz/, on the nightly toolchain with AddressSanitizer.
# A second full build, so it runs outside .ci/run. The corpora it grows are
# committed (fuzz/corpus/<target>/); an input that crashes a target goes to
# fuzz/regressions/<target>/ once fixed, and tests/replay.rs in fuzz-targets
# replays both on stable in CI. The replay fails on any panic, even one the
# code contains (parquet-rs asserting on a corrupt page inside
# `gyrus_ingest::read`); after each run such corpus inputs are moved to
# fuzz/contained/<target>/ (the replay test, with GYRUS_FUZZ_MOVE_CONTAINED=1).
#
#   scripts/fuzz.sh [seconds per target, default 300] [target ...]
#
# Prints, per target, the executions, coverage and features libFuzzer reports
# at the end, and the crash inputs (fuzz/artifacts/<target>/) if any.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sql params upload flight_stream flight_command cursor connector_answer settings)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# One build for all targets: AddressSanitizer (cargo-fuzz's default), debug
# assertions and overflow checks on, the dev profile of fuzz/Cargo.toml
# (opt-level 1; a one-codegen-unit release build takes far longer here).
cargo +nightly fuzz build --fuzz-dir fuzz --dev
mkdir -p fuzz/logs
for target in "${targets[@]}"; do
  log="fuzz/logs/$target.log"
  mkdir -p "fuzz/corpus/$target"
  # -rss_limit_mb: a query may use its pool (64 MiB) and the seed store; an
  # input that grows the process past 2 GiB is a bug to report.
  cargo +nightly fuzz run --fuzz-dir fuzz --dev "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 >"$log" 2>&1 || echo "$target: libFuzzer stopped with a finding, see $log"
  # Keep the corpus small: only inputs that add coverage.
  cargo +nightly fuzz cmin --fuzz-dir fuzz --dev "$target" "fuzz/corpus/$target" >/dev/null 2>&1 || true
  # Corpus inputs that reach a panic the code contains move to
  # fuzz/contained/<target>/ (the stable replay fails on any panic in the
  # corpus); a panic that escapes fails this step and is printed.
  GYRUS_FUZZ_MOVE_CONTAINED=1 cargo nextest run -p gyrus-fuzz-targets --no-capture \
    -E "test(=$target)" 2>&1 | grep -E '^moved |panicked|FAIL' || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || echo "cov: ?")
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 || echo "ft: ?")
  files=$(ls "fuzz/corpus/$target" | wc -l)
  crashes=$(ls "fuzz/artifacts/$target" 2>/dev/null | wc -l)
  echo "$target: ${seconds}s, executions $execs, $cov, $ft, corpus $files inputs, crash inputs $crashes"
done
