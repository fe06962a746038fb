#!/usr/bin/env bash
# A short fuzzing smoke for CI: every target for 3 seconds (about 30 s in total after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash Fuzz/run.sh all "${FUZZ_SECONDS:-3}"
