#!/usr/bin/env python3
"""Convert and verify every catalog model with the clipsafety CLI; print one table.

For each entry of models/catalog.json whose file is in models/files/: `clipsafety convert`
it to OUT/<name>.safetensors, then `clipsafety verify` that against the entry's reference
with the entry's tolerance. Exit 1 when any conversion or verification fails.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", required=True, help="path of the clipsafety binary")
    parser.add_argument("--out", default="out", help="folder for converted models")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(ROOT, "models", "catalog.json")) as f:
        models = json.load(f)["models"]

    rows = []
    failed = 0
    for m in models:
        src = os.path.join(ROOT, "models", "files", m["file"])
        if not os.path.isfile(src):
            rows.append((m["name"], m["format"], "missing", "-", "-", "-", "-"))
            continue
        dst = os.path.join(args.out, m["name"] + ".safetensors")
        start = time.monotonic()
        conv = subprocess.run([args.cli, "convert", src, "-o", dst], capture_output=True, text=True)
        seconds = time.monotonic() - start
        if conv.returncode != 0:
            failed += 1
            rows.append((m["name"], m["format"], "FAIL", "%.3f" % seconds, "-", "-", conv.stderr.strip()[:60]))
            continue
        ref = os.path.join(ROOT, "models", m["reference"])
        ver = subprocess.run([args.cli, "verify", dst, "--reference", ref, "--atol", str(m["atol"]), "--json"],
                             capture_output=True, text=True)
        try:
            report = json.loads(ver.stdout)
        except ValueError:
            report = {}
        agree = "-"
        if "decisions" in report:
            d = report["decisions"]
            agree = "%d/%d" % (d["compared"] - d["flips"], d["compared"])
        elif "labels" in report:
            l = report["labels"]
            agree = "%d/%d" % (l["compared"] - l["mismatches"], l["compared"])
        ok = ver.returncode == 0
        failed += not ok
        err = report.get("max_abs_error")
        rows.append((m["name"], m["format"], "ok", "%.3f" % seconds,
                     "%.2e" % err if isinstance(err, float) else "-", agree,
                     "PASS (atol %g)" % m["atol"] if ok else "FAIL " + ver.stderr.strip()[:50]))

    header = ("model", "format", "convert", "seconds", "max |err|", "agree", "verify")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print("%d of %d models failed" % (failed, len(rows)) if failed else "all %d available models converted and verified" % sum(r[2] == "ok" for r in rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
