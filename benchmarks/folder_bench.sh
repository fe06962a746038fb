#!/usr/bin/env bash
# rows/s of `clipsafety score --input-dir` over 16 shards × 100 000 float16 L2-normalised
# 768-wide rows (ViT-L/14), with one head and with three heads in one read, against the
# single-file form on one shard. Release build; the shards (≈2.5 GB) go to $WORK (a fresh
# temporary folder by default, removed at the end unless KEEP=1).
#
#   bash benchmarks/folder_bench.sh     # SCRATCH=.build-x SHARDS=16 ROWS=100000 REPEAT=3 WORK=dir KEEP=1
#
# Heads: the L/14 NSFW port (.pth), the L/14 violence prompts (.npy) and the L/14 port again
# under another name, all converted to .safetensors first so that conversion is not timed.
# Timings are with the shards in the page cache (warm); when /proc/sys/vm/drop_caches is
# writable the cold-cache figures follow.
set -euo pipefail
cd "$(dirname "$0")/.."
SCRATCH=${SCRATCH:-.build}
SHARDS=${SHARDS:-16}
ROWS=${ROWS:-100000}
REPEAT=${REPEAT:-3}
WORK=${WORK:-$(mktemp -d)}
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
swift build -c release --scratch-path "$SCRATCH" >/dev/null
BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/clipsafety"

mkdir -p "$WORK/shards"
python3 - "$WORK/shards" "$SHARDS" "$ROWS" <<'PY'
import os, sys
import numpy as np
out, shards, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for i in range(shards):
    path = os.path.join(out, "img_emb_%d.npy" % i)
    if os.path.exists(path):
        continue
    x = rng.standard_normal((rows, 768), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    np.save(path, x.astype(np.float16))
PY
"$BIN" convert models/files/clip_ViT-L-14_openai_binary_nsfw_head.pth -o "$WORK/nsfw_l14.safetensors" >/dev/null
"$BIN" convert models/files/violence_detection_vit_l_14.npy -o "$WORK/violence_l14.safetensors" >/dev/null
cp "$WORK/nsfw_l14.safetensors" "$WORK/nsfw_l14_again.safetensors"
HEADS=("$WORK/nsfw_l14.safetensors" "$WORK/violence_l14.safetensors" "$WORK/nsfw_l14_again.safetensors")

now() { date +%s.%N; }
# Best of $REPEAT runs (the machine may be shared); $prepare runs before each.
seconds() {
    local best="" t0 t1
    for _ in $(seq "$REPEAT"); do
        $prepare; rm -rf "$WORK/out"
        t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
        best=$(python3 -c "import sys; t = float(sys.argv[2]) - float(sys.argv[1]); b = sys.argv[3]; print(min(t, float(b)) if b else t)" "$t0" "$t1" "$best")
    done
    echo "$best"
}
rate() { python3 -c "import sys; print('%10.0f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
warm() { cat "$WORK"/shards/*.npy >/dev/null; }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
total=$((SHARDS * ROWS))

measure() {
    local prepare=$1 s1 s3=0 s f1 f3
    s1=$(seconds "$BIN" score "${HEADS[0]}" "$WORK/shards/img_emb_0.npy" -o "$WORK/single.npy")
    for h in "${HEADS[@]}"; do
        s=$(seconds "$BIN" score "$h" "$WORK/shards/img_emb_0.npy" -o "$WORK/single.npy")
        s3=$(python3 -c "print($s3 + $s)")
    done
    f1=$(seconds "$BIN" score "${HEADS[0]}" --input-dir "$WORK/shards" --output-dir "$WORK/out")
    f3=$(seconds "$BIN" score "${HEADS[0]}" --model "${HEADS[1]}" --model "${HEADS[2]}" --input-dir "$WORK/shards" --output-dir "$WORK/out")
    [ -f "$WORK/out/img_emb_$((SHARDS - 1)).npy" ] || { echo "the folder run failed"; exit 1; }
    echo "$prepare cache ($(nproc) cores, $SHARDS shards × $ROWS rows, float16, 768 wide; best of $REPEAT)"
    echo "  single file, 1 head                       $(rate "$ROWS" "$s1") rows/s"
    echo "  single file, 3 heads (3 runs, 3 reads)    $(rate "$ROWS" "$s3") rows/s"
    echo "  folder, 1 head                            $(rate "$total" "$f1") rows/s"
    echo "  folder, 3 heads in one read               $(rate "$total" "$f3") rows/s"
}

measure warm
if [ -w /proc/sys/vm/drop_caches ] && (cold) 2>/dev/null; then
    measure cold
else
    echo "(cold-cache figures skipped: /proc/sys/vm/drop_caches is not writable here)"
fi
