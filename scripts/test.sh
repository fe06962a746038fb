#!/usr/bin/env bash
# The README's test command: install what is missing, fetch the catalog's model files
# (from $MODELS_MIRROR when set, else upstream), build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
python3 models/fetch.py
# Fuzzing smoke first, so the Swift test summary is not buried under it: every libFuzzer target for 3 s
# (about 30 s, plus its own sanitizer build in .build-fuzz). FUZZ_SMOKE=0 skips it.
if [ "${FUZZ_SMOKE:-1}" != 0 ]; then bash Fuzz/smoke.sh; fi
swift build --build-tests
# The test venv (onnxruntime, pyarrow, DuckDB, polars, picklescan, …) for the interop tests,
# which find it through CLIPSAFETY_PYTHON.
source scripts/python-env.sh
swift test --skip-build --disable-swift-testing   # every test is XCTest; this keeps a "0 tests" line out of the log
# The Spark check after the Swift tests (Java and pyspark installed when missing; see
# examples/spark/check_local.sh), on the debug binary just built, which spares a release build
# of every dependency: it compares runs of one binary, so any build serves. SPARK_CHECK=0 skips it.
if [ "${SPARK_CHECK:-1}" != 0 ]; then
  spark_start=$SECONDS
  bin="$(swift build --show-bin-path)/clipsafety"
  [ -x "$bin" ] || swift build --product clipsafety
  status=0
  CLIPSAFETY_BIN="$bin" bash examples/spark/check_local.sh || status=$?
  echo "test.sh: Spark check (venv, Java and the check itself) took $((SECONDS - spark_start)) s"
  exit "$status"
fi
