#!/usr/bin/env bash
# Runs score_shards.py on Spark local[2] over generated shards and checks that the outputs
# equal a single-machine `clipsafety score --input-dir` run byte for byte; then runs it again
# (every shard must be skipped) and once more with --ship (binary and models sent through
# SparkContext.addFile). Needs Java 17, python3 with numpy, pyspark 3.5.9 (installed if missing),
# and the model files in models/files/ (python3 models/fetch.py). Not part of .ci/run (≈1–2 min).
#
#   bash examples/spark/check_local.sh            # SCRATCH=.build-x to pick the build folder
set -euo pipefail
cd "$(dirname "$0")/../.."
SCRATCH=${SCRATCH:-.build}
python3 -c 'import pyspark' 2>/dev/null || python3 -m pip install 'pyspark==3.5.9'
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install numpy
swift build -c release --scratch-path "$SCRATCH" >/dev/null
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/clipsafety"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 13 float16 shards of L2-normalised 768-wide rows (L/14), of 0 to 6000 rows.
python3 - "$WORK/shards" <<'PY'
import os, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out)
rng = np.random.default_rng(11)
for i, n in enumerate([3000, 1, 6000, 0, 2500, 4096, 4097, 17, 5000, 333, 1200, 2048, 999]):
    x = rng.standard_normal((n, 768)).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    np.save(os.path.join(out, "img_emb_%d.npy" % i), x.astype(np.float16))
PY

"$BIN" convert models/files/clip_ViT-L-14_openai_binary_nsfw_head.pth -o "$WORK/nsfw_l14.safetensors"
"$BIN" convert models/files/violence_detection_vit_l_14.npy -o "$WORK/violence_l14.safetensors"
MODELS=("$WORK/nsfw_l14.safetensors" "$WORK/violence_l14.safetensors")

echo "== single machine"
"$BIN" score "${MODELS[0]}" --model "${MODELS[1]}" --input-dir "$WORK/shards" --output-dir "$WORK/single" --batch 1024

job() {
    python3 examples/spark/score_shards.py --master 'local[2]' --binary "$BIN" \
        --model "${MODELS[0]}" --model "${MODELS[1]}" --input-dir "$WORK/shards" --batch 1024 "$@" 2>"$WORK/spark.log" \
        || { tail -20 "$WORK/spark.log"; exit 1; }
}
echo "== spark local[2]"
job --output-dir "$WORK/spark"
echo "== spark local[2], again (every shard already done)"
before=$(wc -l <"$WORK/spark/manifest.jsonl")
job --output-dir "$WORK/spark"
after=$(wc -l <"$WORK/spark/manifest.jsonl")
[ "$before" = "$after" ] || { echo "FAIL: the second run scored shards again ($before -> $after manifest lines)"; exit 1; }
echo "== spark local[2] --ship"
job --output-dir "$WORK/shipped" --ship

python3 - "$WORK/single" "$WORK/spark" "$WORK/shipped" <<'PY'
import json, os, sys
single, *others = sys.argv[1:]
def entries(d):
    out = {}
    for line in open(os.path.join(d, "manifest.jsonl")):
        e = json.loads(line)
        out[e["shard"]] = {k: e.get(k) for k in ("status", "bytes", "rows", "output", "sha256")}
    return out
files = sorted(f for f in os.listdir(single) if f.endswith(".npy") or f == "columns.json")
assert len(files) == 14, files
ok = True
for d in others:
    theirs = sorted(f for f in os.listdir(d) if f.endswith(".npy") or f == "columns.json")
    if theirs != files:
        print("FAIL: %s holds %s" % (d, theirs)); ok = False; continue
    for f in files:
        if open(os.path.join(single, f), "rb").read() != open(os.path.join(d, f), "rb").read():
            print("FAIL: %s/%s differs from the single-machine output" % (d, f)); ok = False
    if entries(d) != entries(single):
        print("FAIL: the manifests of %s and %s disagree" % (single, d)); ok = False
if not ok:
    sys.exit(1)
print("OK: %d shards + columns.json byte-identical in %d Spark runs; manifests agree" % (len(files) - 1, len(others)))
PY
