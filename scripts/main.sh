#!/usr/bin/env bash
# The README's main job: install what is missing, fetch every catalog model, build the
# release CLI, convert each model to out/<name>.safetensors and verify it against its
# reference outputs, then print a table. Exit 0 only when every available model verifies.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
python3 models/fetch.py || true   # a file that cannot be fetched shows up as missing below
swift build -c release --product clipsafety
python3 scripts/main_job.py --cli "$(swift build -c release --show-bin-path)/clipsafety" --out out
