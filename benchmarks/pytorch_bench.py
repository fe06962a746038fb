#!/usr/bin/env python3
"""Time a clipsafety native model's graph in PyTorch (CPU), for `clipsafety bench`.

    python3 benchmarks/pytorch_bench.py MODEL.safetensors --batch-sizes 1,4096 --seconds 1

Reads the safetensors header and tensors with json + numpy (no safetensors package), builds
the graph's dense/relu/sigmoid/normalize/prompt_scores ops as torch calls, and prints one line
per batch size: `pytorch <batch> <embeddings/s> <µs/call>`. categorical_lookup has no torch
equivalent and is skipped (it costs a string formatting per categorical column and row).
"""
import argparse
import json
import struct
import time

import numpy as np
import torch

DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__")
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        tensors[name] = np.frombuffer(data[base + b:base + e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return json.loads(meta["graph"]), json.loads(meta["model"]), tensors


def build(graph, tensors):
    t = {k: torch.tensor(v.astype(np.float32)) for k, v in tensors.items() if v.dtype.kind == "f"}
    steps = []
    for op in graph:
        kind = op["op"]
        if kind == "normalize":
            eps = float(np.float32(op["epsilon"]))
            sd = torch.sqrt(t[op["variance"]].reshape(-1))
            den = torch.clamp(sd, min=eps) if op["denominator"].startswith("max") else sd + eps
            mean = t[op["mean"]].reshape(-1)
            steps.append(lambda x, m=mean, d=den: (x - m) / d)
        elif kind == "dense":
            w, b = t[op["weight"]], t.get(op.get("bias"))
            steps.append(lambda x, w=w, b=b: torch.nn.functional.linear(x, w, b))
        elif kind == "prompt_scores":
            p = t[op["prompts"]]
            steps.append(lambda x, p=p: x @ p.T)
        elif kind == "relu":
            steps.append(torch.relu)
        elif kind == "sigmoid":
            steps.append(torch.sigmoid)
        elif kind == "argmax":
            steps.append(lambda x: (x, torch.argmax(x, dim=1))[0])
    def run(x):
        for s in steps:
            x = s(x)
        return x
    return run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--batch-sizes", default="1,64,4096")
    p.add_argument("--seconds", type=float, default=1.0)
    a = p.parse_args()
    graph, card, tensors = load(a.model)
    run = build(graph, tensors)
    dim = card["embedding_dim"]
    torch.set_grad_enabled(False)
    for batch in [int(b) for b in a.batch_sizes.split(",")]:
        x = torch.nn.functional.normalize(torch.randn(batch, dim), dim=1)
        run(x)
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < a.seconds or calls < 3:
            run(x)
            calls += 1
        elapsed = time.perf_counter() - start
        print("pytorch %d %.0f %.1f" % (batch, calls * batch / elapsed, elapsed / calls * 1e6))


if __name__ == "__main__":
    main()
