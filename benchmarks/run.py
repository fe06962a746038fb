#!/usr/bin/env python3
"""Issue 9's figures in one run: throughput and latency per head, start-up time, and
streaming a large float16 shard in bounded memory.

    python3 benchmarks/run.py [--rows 1000000] [--keep]

Needs a release build (`swift build -c release`) and the fetched models (models/fetch.py).
Writes its scratch files under benchmarks/.scratch/ (git-ignored) and prints:
  1. `clipsafety bench` for the B/32 and L/14 ports and the H/14 head (batch 1, 64, 4096),
     with the machine's sgemm rate and the input-check cost; then batch 4096 on float16 rows;
  2. process start to first score for a native model (median of 20 runs, one-row input);
  3. `clipsafety score` of an N x 768 float16 shard (default 1 M rows, 1.5 GB): rows/s and peak
     RSS, next to the in-memory rate of the same head on float16 rows at batch 4096, measured
     just before;
  4. the input check's cost where `score` pays it: `clipsafety bench --input` on that shard and
     on a float32 copy of its first quarter, for the L/14 port and the L/14 violence prompts
     (the head with the least arithmetic per row, so the check's largest share).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRATCH = os.path.join(ROOT, "benchmarks", ".scratch")
HEADS = [("clip_ViT-B-32_openai_binary_nsfw_head.pth", "b32"),
         ("clip_ViT-L-14_openai_binary_nsfw_head.pth", "l14"),
         ("h14_nsfw.pth", "h14"),
         ("violence_detection_vit_l_14.npy", "violence_l14")]


def cli():
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True)
    path = os.path.join(out.stdout.strip(), "clipsafety")
    if not os.path.exists(path):
        sys.exit("benchmarks: build first: swift build -c release --product clipsafety")
    return path


def write_shard(path, rows, dim, seed=0):
    """Unit-norm float16 rows written in chunks (bounded memory), as clip-retrieval stores them."""
    rng = np.random.default_rng(seed)
    header = np.lib.format.header_data_from_array_1_0(np.zeros((0, dim), np.float16))
    header["shape"] = (rows, dim)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        done = 0
        while done < rows:
            n = min(65536, rows - done)
            x = rng.standard_normal((n, dim)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            f.write(x.astype(np.float16).tobytes())
            done += n


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--keep", action="store_true", help="keep the generated shard")
    a = p.parse_args()
    exe = cli()
    os.makedirs(SCRATCH, exist_ok=True)
    models = {}
    for file, short in HEADS:
        dst = os.path.join(SCRATCH, short + ".safetensors")
        subprocess.run([exe, "convert", os.path.join(ROOT, "models", "files", file), "-o", dst], check=True, capture_output=True)
        models[short] = dst

    print("== 1. clipsafety bench")
    sys.stdout.flush()
    subprocess.run([exe, "bench", models["b32"], models["l14"], models["h14"], "--batch-sizes", "1,64,4096", "--seconds", "2"], check=True)
    print("\n== 1b. the same at batch 4096 on float16 rows (how LAION stores embeddings)")
    sys.stdout.flush()
    out = subprocess.run([exe, "bench", models["b32"], models["l14"], models["h14"], "--batch-sizes", "4096", "--seconds", "2",
                          "--input-type", "float16"], check=True, capture_output=True, text=True).stdout
    print("\n".join(l for l in out.splitlines() if " 4096 " in l))

    print("\n== 2. process start to first score (one-row input, median of 20)")
    one = os.path.join(SCRATCH, "one.npy")
    np.save(one, (np.ones((1, 768)) / np.sqrt(768)).astype(np.float32))
    times = []
    for _ in range(20):
        t = time.perf_counter()
        subprocess.run([exe, "score", models["l14"], one, "-o", os.path.join(SCRATCH, "one_out.npy")], check=True)
        times.append(time.perf_counter() - t)
    print("L/14 port, native: median %.1f ms, min %.1f ms" % (statistics.median(times) * 1e3, min(times) * 1e3))

    print("\n== 3. score a %d x 768 float16 shard (memory-mapped input, streamed output)" % a.rows)
    shard = os.path.join(SCRATCH, "shard_f16.npy")
    if not os.path.exists(shard) or os.path.getsize(shard) < a.rows * 768 * 2:
        # In a child, so that this process stays small: a forked child's peak RSS starts at ours.
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import run; run.write_shard(%r, %d, 768)"
                        % (os.path.dirname(os.path.abspath(__file__)), shard, a.rows)], check=True)
    # Write the new shard back to disk first: otherwise the kernel flushes 1.5 GB of dirty pages
    # while the run is timed (that alone cost a third of the rate here).
    os.sync()
    # The in-memory rate of the same head on the same element type at the same batch size,
    # measured just before, since this machine's speed drifts from minute to minute.
    out = subprocess.run([exe, "bench", models["l14"], "--batch-sizes", "4096", "--seconds", "3", "--input-type", "float16"], check=True,
                         capture_output=True, text=True).stdout
    in_memory = float([l for l in out.splitlines() if " 4096 " in l][0].split()[2])
    t = time.perf_counter()
    child = subprocess.Popen([exe, "score", models["l14"], shard, "-o", os.path.join(SCRATCH, "shard_out.npy")])
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the largest child's
    elapsed = time.perf_counter() - t
    if status != 0:
        sys.exit("benchmarks: score failed")
    rate = a.rows / elapsed
    print("L/14 port: %.0f rows/s (%.0f%% of the in-memory float16 rate, %.0f emb/s, measured just before), %.1f s including start-up, peak RSS %.0f MiB"
          % (rate, 100 * rate / in_memory, in_memory, elapsed, usage.ru_maxrss / 1024))

    print("\n== 4. input-check cost on the rows `score` reads (bench --input: the file memory-mapped, batches of 4096)")
    shard32 = os.path.join(SCRATCH, "shard_f32.npy")
    subprocess.run([sys.executable, "-c", "import numpy as np; a = np.load(%r, mmap_mode='r'); np.save(%r, np.asarray(a[:len(a) // 4], np.float32))"
                    % (shard, shard32)], check=True)
    os.sync()
    print("model                                   batch   emb/s        µs/call    GFLOP/s  %sgemm  check")
    for path, label in ((shard, "float16"), (shard32, "float32")):
        for model in (models["l14"], models["violence_l14"]):
            out = subprocess.run([exe, "bench", model, "--input", path, "--batch-sizes", "4096", "--seconds", "3"], check=True,
                                 capture_output=True, text=True).stdout
            print("\n".join(l + "   (" + label + " file)" for l in out.splitlines() if " 4096 " in l))
    os.unlink(shard32)
    if not a.keep:
        os.unlink(shard)


if __name__ == "__main__":
    main()
