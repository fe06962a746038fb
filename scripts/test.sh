#!/usr/bin/env bash
# The README's test command: install what is missing, fetch the catalog's model files
# (from $MODELS_MIRROR when set, else upstream), build, and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
python3 models/fetch.py
# Fuzzing smoke first, so the log ends on the test summary: every libFuzzer target for 3 s
# (about 30 s, plus its own sanitizer build in .build-fuzz). FUZZ_SMOKE=0 skips it.
if [ "${FUZZ_SMOKE:-1}" != 0 ]; then bash Fuzz/smoke.sh; fi
swift build --build-tests
swift test --skip-build --disable-swift-testing   # every test is XCTest; this keeps a "0 tests" line out of the log
