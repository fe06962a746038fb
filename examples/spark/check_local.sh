#!/usr/bin/env bash
# Runs score_shards.py on Spark local[2] over generated shards and checks that the outputs
# equal a single-machine `clipsafety score --input-dir` run byte for byte; then runs it again
# (every shard must be skipped) and once more with --ship (binary and models sent through
# SparkContext.addFile). Exits 1, naming each differing shard, when any output or manifest
# differs. scripts/test.sh runs it after the Swift tests (SPARK_CHECK=0 skips it there).
#
# Needs the model files in models/files/ (python3 models/fetch.py). Installs what is missing:
# a Java runtime (Debian's openjdk-17-jre-headless, when there is no `java`) and pyspark with
# numpy in the project's test venv (scripts/python-env.sh; nothing goes into the system Python).
#
#   bash examples/spark/check_local.sh                  # builds and checks the release binary
#   SCRATCH=.build-x bash examples/spark/check_local.sh # ... from another build folder
#   CLIPSAFETY_BIN=.build/debug/clipsafety bash examples/spark/check_local.sh   # no build
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS

if ! command -v java >/dev/null 2>&1; then
    bash scripts/apt-install.sh openjdk-17-jre-headless
fi
PY=$(bash scripts/python-env.sh)

if [ -n "${CLIPSAFETY_BIN:-}" ]; then
    BIN=$(realpath "$CLIPSAFETY_BIN")
else
    SCRATCH=${SCRATCH:-.build}
    swift build -c release --product clipsafety --scratch-path "$SCRATCH" >/dev/null
    BIN="$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)/clipsafety"
fi
[ -x "$BIN" ] || { echo "check_local: no executable at $BIN" >&2; exit 1; }
echo "== binary $BIN; python $PY; $(java -version 2>&1 | head -1)"
# A short-lived local driver: C1-only JIT and the serial GC spend less CPU starting the JVM
# (on a busy 2-core machine about a third of each job's time); no web UI. Scores do not depend
# on the JVM. Set PYSPARK_SUBMIT_ARGS yourself to override.
if [ -z "${PYSPARK_SUBMIT_ARGS:-}" ]; then
    export PYSPARK_SUBMIT_ARGS='--driver-java-options "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" --conf spark.ui.enabled=false pyspark-shell'
fi
phase() { echo "== [$((SECONDS - start)) s] $*"; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 13 float16 shards of L2-normalised 768-wide rows (L/14), of 0 to 6000 rows.
"$PY" - "$WORK/shards" <<'PY'
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

"$BIN" convert models/files/clip_ViT-L-14_openai_binary_nsfw_head.pth -o "$WORK/nsfw_l14.safetensors" >/dev/null
"$BIN" convert models/files/violence_detection_vit_l_14.npy -o "$WORK/violence_l14.safetensors" >/dev/null
MODELS=("$WORK/nsfw_l14.safetensors" "$WORK/violence_l14.safetensors")

phase "single machine"
"$BIN" score "${MODELS[0]}" --model "${MODELS[1]}" --input-dir "$WORK/shards" --output-dir "$WORK/single" --batch 1024

job() {
    "$PY" examples/spark/score_shards.py --master 'local[2]' --binary "$BIN" \
        --model "${MODELS[0]}" --model "${MODELS[1]}" --input-dir "$WORK/shards" --batch 1024 "$@" 2>"$WORK/spark.log" >"$WORK/spark.out" \
        || { tail -20 "$WORK/spark.log"; echo "FAIL: the Spark job exited non-zero" >&2; exit 1; }
}
phase "spark local[2]"
job --output-dir "$WORK/spark"
phase "spark local[2], again (every shard already done)"
before=$(wc -l <"$WORK/spark/manifest.jsonl")
job --output-dir "$WORK/spark"
after=$(wc -l <"$WORK/spark/manifest.jsonl")
[ "$before" = "$after" ] || { echo "FAIL: the second run scored shards again ($before -> $after manifest lines)"; exit 1; }
phase "spark local[2] --ship"
job --output-dir "$WORK/shipped" --ship

# Parquet outputs with clip-retrieval metadata beside the shards (metadata_{N}.parquet).
"$PY" - "$WORK/shards" "$WORK/metadata" <<'PY'
import os, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
shards, out = sys.argv[1:]
os.makedirs(out)
for name in os.listdir(shards):
    n = name[len("img_emb_"):-len(".npy")]
    rows = np.load(os.path.join(shards, name), mmap_mode="r").shape[0]
    pq.write_table(pa.table({"key": ["%s%05d" % (n, i) for i in range(rows)],
                             "url": ["https://example.org/%s/%d.jpg" % (n, i) for i in range(rows)],
                             "caption": ["caption %d" % i for i in range(rows)]}),
                   os.path.join(out, "metadata_%s.parquet" % n))
PY
phase "single machine, --format parquet --metadata-dir"
"$BIN" score "${MODELS[0]}" --model "${MODELS[1]}" --input-dir "$WORK/shards" --output-dir "$WORK/single_pq" --batch 1024 \
    --format parquet --metadata-dir "$WORK/metadata"
phase "spark local[2], --format parquet --metadata-dir"
job --output-dir "$WORK/spark_pq" --format parquet --metadata-dir "$WORK/metadata"
grep -q "spark read 29291 rows of 13 Parquet score files" "$WORK/spark.out" \
    || { cat "$WORK/spark.out"; echo "FAIL: Spark did not read the 13 Parquet score files back" >&2; exit 1; }

phase "comparing with the single-machine run"
status=0
compare() {
"$PY" - "$@" <<'PY'
import json, os, sys
import numpy as np
single, *others = sys.argv[1:]

def entries(d):
    out = {}
    for line in open(os.path.join(d, "manifest.jsonl")):
        e = json.loads(line)
        out[e["shard"]] = {k: e.get(k) for k in ("status", "bytes", "rows", "output", "sha256")}
    return out

def outputs(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".npy") or f.endswith(".parquet") or f == "columns.json")

def how_far(a_path, b_path):
    """For two differing .npy outputs: how many rows differ and by how much."""
    try:
        a, b = (np.load(a_path), np.load(b_path)) if a_path.endswith(".npy") else (None, None)
    except Exception as e:
        return "unreadable (%s)" % e
    if a_path.endswith(".parquet"):
        import pyarrow.parquet as pq
        x, y = pq.read_table(a_path), pq.read_table(b_path)
        return "tables %s" % ("equal (bytes differ)" if x.equals(y) else "differ")
    if a.shape != b.shape or a.dtype != b.dtype:
        return "shape/dtype %s %s vs %s %s" % (a.shape, a.dtype, b.shape, b.dtype)
    rows = (a != b).reshape(len(a), -1).any(axis=1) if a.size else np.zeros(0, bool)
    d = np.abs(a.astype(np.float64) - b.astype(np.float64)).max() if a.size else 0.0
    return "%d of %d rows differ, max |diff| %.3g" % (rows.sum(), len(a), d)

files = outputs(single)
shards = [f for f in files if f != "columns.json"]
if len(shards) != 13:
    print("FAIL: the single-machine run wrote %d outputs, not 13: %s" % (len(shards), files))
    sys.exit(1)
bad = 0
for d in others:
    run = os.path.basename(d)
    theirs = outputs(d)
    if theirs != files:
        print("FAIL: %s wrote %s, the single-machine run %s" % (run, theirs, files)); bad += 1; continue
    differing = []
    for f in files:
        a, b = os.path.join(single, f), os.path.join(d, f)
        if open(a, "rb").read() != open(b, "rb").read():
            differing.append(f)
            print("FAIL: %s/%s differs from the single-machine output: %s"
                  % (run, f, how_far(a, b) if f != "columns.json" else "columns.json"))
    mine, theirs_m = entries(single), entries(d)
    if mine != theirs_m:
        keys = sorted(set(mine) | set(theirs_m))
        off = [k for k in keys if mine.get(k) != theirs_m.get(k)]
        print("FAIL: the manifests of the single-machine run and %s disagree on %d shards: %s"
              % (run, len(off), ", ".join(off)))
    if differing or mine != theirs_m:
        bad += 1
        print("FAIL: %s: %d of %d files differ" % (run, len(differing), len(files)))
if bad:
    sys.exit(1)
print("OK: %d shards + columns.json byte-identical in %d Spark runs; manifests agree" % (len(shards), len(others)))
PY
}
compare "$WORK/single" "$WORK/spark" "$WORK/shipped" || status=$?
compare "$WORK/single_pq" "$WORK/spark_pq" || status=$?

# The README's Spark SQL join, as written there, against counting the rows directly.
phase "the README's Spark SQL join"
ln -sfn single_pq "$WORK/scores"
sql=$(awk '/^\*\*Spark SQL\*\*/{f=1} f&&/^```sql/{g=1;next} g&&/^```/{exit} g' README.md)
[ -n "$sql" ] || { echo "FAIL: no Spark SQL block found in README.md" >&2; exit 1; }
(cd "$WORK" && "$PY" - "$sql" 2>"$WORK/sql.log" <<'PY'
import glob, sys
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
statements = [s.strip() for s in sys.argv[1].split(";") if s.strip()]
spark = SparkSession.builder.master("local[1]").appName("readme-join").getOrCreate()
for s in statements[:-1]:
    spark.sql(s)
rows = spark.sql(statements[-1]).collect()
direct = sum(1 for f in glob.glob("scores/*.parquet") for v in pq.read_table(f).column("nsfw_l14/nsfw").to_pylist()
             if v is not None and v < 0.5)
if len(rows) != direct or direct == 0:
    print("FAIL: the README's Spark SQL join returned %d rows; the scores hold %d below 0.5" % (len(rows), direct))
    sys.exit(1)
print("OK: the README's Spark SQL join returned the %d rows below 0.5, with url and caption" % direct)
PY
) || { tail -20 "$WORK/sql.log"; status=1; }
echo "== check_local: $((SECONDS - start)) s"
if [ "$status" != 0 ]; then
    echo "FAIL: Spark outputs differ from the single-machine run, or the README join failed (see above)" >&2
    exit 1
fi
