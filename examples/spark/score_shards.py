#!/usr/bin/env python3
"""Score a folder of .npy embedding shards with clipsafety on Spark: one task per shard.

The driver lists the shards (natural order, like the CLI); each task runs the clipsafety
binary on one shard (`score … --input-dir DIR --output-dir OUT --glob <that shard>`). The CLI
does the work and the bookkeeping: each output is written atomically and recorded in
OUT/manifest.jsonl, so a task that Spark retries, or a job run again, skips what is done and
gives the same bytes. Spark only distributes the shard list.

Tested with pyspark 3.5.9 (pip install 'pyspark==3.5.9') on OpenJDK 17, master local[2].

Local:    python3 score_shards.py --master 'local[2]' --binary .build/release/clipsafety \
              --model nsfw.safetensors --input-dir shards --output-dir scores
Cluster:  spark-submit --master yarn score_shards.py --ship --binary ./clipsafety \
              --model nsfw.safetensors --input-dir /shared/img_emb --output-dir /shared/scores
          (--ship sends the binary and models to every executor with SparkContext.addFile;
          without it they must sit at the same path on every node. DIR and OUT must be shared
          storage mounted at the same path on every node.)
"""
import argparse
import json
import os
import re
import stat
import subprocess
import sys
from glob import glob


def natural_key(name):
    """Digit runs by value, other text as is: img_emb_2 before img_emb_10 (as the CLI sorts)."""
    parts = re.split(r"([0-9]+)", name)
    return [(0, int(p), "") if i % 2 else (1, 0, p) for i, p in enumerate(parts)], name


def escape_glob(name):
    """A pattern for fnmatch that matches exactly `name`."""
    return re.sub(r"([*?\[\\])", r"\\\1", name)


def list_shards(input_dir, pattern):
    paths = glob(os.path.join(glob_escape_dir(input_dir), pattern))
    return sorted((os.path.basename(p) for p in paths if os.path.isfile(p)), key=natural_key)


def glob_escape_dir(path):
    return re.sub(r"([*?\[])", r"[\1]", path)


def score_one(name, cfg):
    """Runs on an executor: scores one shard with the CLI; returns (name, exit code, last stderr lines)."""
    def local(path):
        if not cfg["ship"]:
            return path
        from pyspark import SparkFiles
        return SparkFiles.get(os.path.basename(path))

    binary = local(cfg["binary"])
    if cfg["ship"]:
        os.chmod(binary, os.stat(binary).st_mode | stat.S_IXUSR)
    models = [local(m) for m in cfg["models"]]
    cmd = [binary, "score", models[0]]
    for m in models[1:]:
        cmd += ["--model", m]
    cmd += ["--input-dir", cfg["input_dir"], "--output-dir", cfg["output_dir"],
            "--glob", escape_glob(name), "--batch", str(cfg["batch"]), "--threads", str(cfg["threads"])] + cfg["extra"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    return name, p.returncode, p.stderr.strip().splitlines()[-3:]


def latest_entries(output_dir):
    """The manifest's latest line per shard (torn or foreign lines skipped), as the CLI reads it."""
    entries = {}
    try:
        with open(os.path.join(output_dir, "manifest.jsonl"), encoding="utf-8") as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if isinstance(e, dict) and e.get("shard"):
                    entries[e["shard"]] = e
    except FileNotFoundError:
        pass
    return entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--master", help="Spark master (omit under spark-submit)")
    ap.add_argument("--binary", required=True, help="the clipsafety executable")
    ap.add_argument("--model", action="append", required=True, help="a model file (repeat for several heads, scored in one read)")
    ap.add_argument("--input-dir", required=True)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--glob", default="*.npy")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--normalize", action="store_true")
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="clipsafety threads per task (Spark already runs one task per core)")
    ap.add_argument("--ship", action="store_true", help="send the binary and models to the executors (SparkContext.addFile)")
    ap.add_argument("--format", choices=["npy", "parquet"], default="npy", help="output files: OUT/<shard>.npy or OUT/<shard>.parquet")
    ap.add_argument("--metadata-dir", help="clip-retrieval metadata folder (metadata_{N}.parquet) whose columns go into Parquet outputs")
    ap.add_argument("--keep", help="metadata columns to copy (comma-separated; default: whichever of key, uid, url, caption exist)")
    args = ap.parse_args()

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("clipsafety-score-shards")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")

    input_dir = os.path.abspath(args.input_dir)
    output_dir = os.path.abspath(args.output_dir)
    binary = os.path.abspath(args.binary)
    models = [os.path.abspath(m) for m in args.model]
    if args.ship:
        for path in [binary] + models:
            sc.addFile(path)
    names = list_shards(input_dir, args.glob)
    cfg = {
        "ship": args.ship, "binary": binary, "models": models, "input_dir": input_dir, "output_dir": output_dir,
        "batch": args.batch, "threads": args.threads,
        "extra": (["--normalize"] if args.normalize else []) + (["--strict"] if args.strict else [])
                 + ["--format", args.format]
                 + (["--metadata-dir", os.path.abspath(args.metadata_dir)] if args.metadata_dir else [])
                 + (["--keep", args.keep] if args.keep else []),
    }
    results = sc.parallelize(names, max(1, len(names))).map(lambda n: score_one(n, cfg)).collect() if names else []

    entries = latest_entries(output_dir)
    if args.format == "parquet":
        # Spark reads the score files as any Parquet: one table over every finished shard.
        done = [os.path.join(output_dir, e["output"]) for n, e in sorted(entries.items()) if e.get("status") == "done" and e.get("output")]
        if done:
            scores = spark.read.parquet(*done)
            scores.createOrReplaceTempView("scores")
            n = spark.sql("SELECT count(*) AS n FROM scores").collect()[0]["n"]
            print("spark read %d rows of %d Parquet score files; columns %s" % (n, len(done), ", ".join(scores.columns)))
    spark.stop()

    failed = []
    for name, code, tail in results:
        e = entries.get(name)
        if code != 0 or e is None or e.get("status") != "done":
            reason = (e or {}).get("reason") or " / ".join(tail) or "exit %d" % code
            failed.append((name, code, reason))
    for name, code, reason in failed:
        print("failed: %s (exit %d): %s" % (name, code, reason), file=sys.stderr)
    rows = sum(entries[n].get("rows") or 0 for n in names if n in entries and entries[n].get("status") == "done")
    print("%d shards, %d done (%d rows), %d failed; manifest %s" % (
        len(names), len(names) - len(failed), rows, len(failed), os.path.join(output_dir, "manifest.jsonl")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
