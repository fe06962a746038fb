#!/usr/bin/env bash
# Folder scoring with Parquet outputs against .npy outputs: rows/s of
# `clipsafety score … --input-dir` over $SHARDS shards × $ROWS float16 L2-normalised 768-wide
# rows with three L/14 heads in one read, writing OUT/<shard>.npy, OUT/<shard>.parquet, and
# OUT/<shard>.parquet with key/url/caption copied from clip-retrieval-style metadata Parquet
# (pyarrow-written, snappy). Runs alternate between the forms (best of $REPEAT each) so that
# the drift of a shared machine hits them alike; prints each rate and Parquet's as a % of .npy.
# Needs the test venv (numpy, pyarrow) and models/files/.
#
#   bash benchmarks/parquet_bench.sh     # SCRATCH=.build-x SHARDS=8 ROWS=100000 REPEAT=3 WORK=dir KEEP=1
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build}
SHARDS=${SHARDS:-8}
ROWS=${ROWS:-100000}
REPEAT=${REPEAT:-3}
WORK=${WORK:-$(mktemp -d)}
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
PY=$(bash scripts/python-env.sh)
swift build -c release --scratch-path "$SCRATCH" >/dev/null
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/clipsafety"

mkdir -p "$WORK/shards" "$WORK/metadata"
"$PY" - "$WORK" "$SHARDS" "$ROWS" <<'PY'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
work, shards, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for i in range(shards):
    path = os.path.join(work, "shards", "img_emb_%d.npy" % i)
    if not os.path.exists(path):
        x = rng.standard_normal((rows, 768), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(path, x.astype(np.float16))
    meta = os.path.join(work, "metadata", "metadata_%d.parquet" % i)
    if not os.path.exists(meta):
        pq.write_table(pa.table({"key": ["%04d%05d" % (i, r) for r in range(rows)],
                                 "url": ["https://example.org/images/%d/%d.jpg" % (i, r) for r in range(rows)],
                                 "caption": ["a photo of item %d in shard %d, with some words" % (r, i) for r in range(rows)]}),
                       meta, compression="snappy")
PY
"$BIN" convert models/files/clip_ViT-L-14_openai_binary_nsfw_head.pth -o "$WORK/nsfw_l14.safetensors" >/dev/null
"$BIN" convert models/files/violence_detection_vit_l_14.npy -o "$WORK/violence_l14.safetensors" >/dev/null
cp "$WORK/nsfw_l14.safetensors" "$WORK/nsfw_l14_again.safetensors"
run() {
    rm -rf "$WORK/out"
    "$BIN" score "$WORK/nsfw_l14.safetensors" --model "$WORK/violence_l14.safetensors" --model "$WORK/nsfw_l14_again.safetensors" \
        --input-dir "$WORK/shards" --output-dir "$WORK/out" "$@" >/dev/null 2>&1
}
cat "$WORK"/shards/*.npy "$WORK"/metadata/* >/dev/null
best_npy="" best_pq="" best_meta=""
timed() { local t0 t1; t0=$(date +%s.%N); run "$@"; t1=$(date +%s.%N); python3 -c "print(float('$t1') - float('$t0'))"; }
minimum() { python3 -c "import sys; a = [float(x) for x in sys.argv[1:] if x]; print(min(a))" "$@"; }
for _ in $(seq "$REPEAT"); do
    best_npy=$(minimum "$best_npy" "$(timed)")
    best_pq=$(minimum "$best_pq" "$(timed --format parquet)")
    best_meta=$(minimum "$best_meta" "$(timed --format parquet --metadata-dir "$WORK/metadata")")
done
[ -f "$WORK/out/img_emb_$((SHARDS - 1)).parquet" ] || { echo "the Parquet run failed"; exit 1; }
python3 - "$((SHARDS * ROWS))" "$best_npy" "$best_pq" "$best_meta" "$(nproc)" "$SHARDS" "$ROWS" "$REPEAT" <<'PY'
import sys
rows, npy, pq, meta = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print("folder, 3 heads in one read (%s cores, %s shards x %s rows, float16, 768 wide; best of %s, warm cache)" % tuple(sys.argv[5:9]))
print("  .npy outputs                         %10.0f rows/s" % (rows / npy))
print("  .parquet outputs                     %10.0f rows/s  (%.1f %% of .npy)" % (rows / pq, 100 * npy / pq))
print("  .parquet + key/url/caption copied    %10.0f rows/s  (%.1f %% of .npy)" % (rows / meta, 100 * npy / meta))
PY
