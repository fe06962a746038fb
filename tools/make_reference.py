#!/usr/bin/env python3
"""Make a reference .npz for a model file with its own framework, for `clipsafety verify`.

    python3 tools/make_reference.py MODEL -o REF.npz [--inputs X.npy | --rows N --seed S]

The reference holds `inputs` (N x D), `outputs` (N x K, float32, what the original framework
returned) and, for prompt matrices, `labels` (argmax class per row). Without --inputs, rows
are random unit vectors (L2-normalised, as CLIP embeddings are).

Frameworks, imported only for the kind of file given (none is needed by clipsafety itself):
  SavedModel zip (autokeras)   tensorflow (plus autokeras for Keras-level loading is NOT used:
                               the `serving_default` signature is called directly; input float64)
  Keras .h5 / .keras           keras (Keras 3), loaded with safe_mode=True; input float32
  PyTorch .pth                 torch, loaded with weights_only=True; upstream's port
                               (norm + linear_N + sigmoid) or H14_NSFW_Detector, by key names
  .npy prompt matrix           numpy only: outputs = x @ P.T, labels = argmax

Not run by CI: the frameworks are gigabytes. Run it where they are installed.
"""
import argparse
import os
import sys
import tempfile
import zipfile

import numpy as np


def kind_of(path):
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x80\x02\x8a\x0a"):
        return "torch"
    if head.startswith(b"PK"):
        names = zipfile.ZipFile(path).namelist()
        if any(n.endswith("saved_model.pb") for n in names):
            return "savedmodel"
        if "config.json" in names and "model.weights.h5" in names:
            return "keras"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
    sys.exit("make_reference: %s: unrecognised file" % path)


def unit_rows(rows, dim, seed):
    x = np.random.default_rng(seed).standard_normal((rows, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run_savedmodel(path, x):
    import tensorflow as tf
    with tempfile.TemporaryDirectory() as tmp:
        zipfile.ZipFile(path).extractall(tmp)
        folder = next(os.path.dirname(os.path.join(tmp, n)) for n in zipfile.ZipFile(path).namelist() if n.endswith("saved_model.pb"))
        fn = tf.saved_model.load(folder).signatures["serving_default"]
        name = list(fn.structured_input_signature[1].keys())[0]
        out = fn(**{name: tf.constant(x.astype(np.float64))})
        return x.astype(np.float64), np.asarray(list(out.values())[0], dtype=np.float32)


def run_keras(path, x):
    import keras
    model = keras.models.load_model(path, compile=False, safe_mode=True)
    x = x.astype(np.float32)
    return x, np.asarray(model.predict(x, verbose=0), dtype=np.float32)


def run_torch(path, x):
    import torch
    sd = torch.load(path, map_location="cpu", weights_only=True)
    x = torch.tensor(x, dtype=torch.float32)
    with torch.no_grad():
        if "norm.mean" in sd:
            h = (x - sd["norm.mean"]) / (torch.sqrt(sd["norm.variance"]) + 1e-10)
            n = 1
            while "linear_%d.weight" % n in sd:
                h = torch.nn.functional.linear(h, sd["linear_%d.weight" % n], sd["linear_%d.bias" % n])
                if "linear_%d.weight" % (n + 1) in sd:
                    h = torch.relu(h)
                n += 1
            y = torch.sigmoid(h)
        elif "layers.16.weight" in sd:
            h = x
            for i in (0, 3, 6, 9, 12):
                h = torch.relu(torch.nn.functional.linear(h, sd["layers.%d.weight" % i], sd["layers.%d.bias" % i]))
            h = torch.nn.functional.linear(h, sd["layers.15.weight"], sd["layers.15.bias"])
            y = torch.nn.functional.linear(h, sd["layers.16.weight"], sd["layers.16.bias"])
        else:
            sys.exit("make_reference: %s: not one of upstream's heads (keys: %s)" % (path, ", ".join(sd)))
    return x.numpy(), y.numpy().astype(np.float32)


def run_npy(path, x):
    prompts = np.load(path, allow_pickle=False).astype(np.float32)
    x = x.astype(np.float32)
    scores = np.einsum("ij,kj->ik", x, prompts)
    return x, scores, np.argmax(scores, axis=1).astype(np.int64)


def input_dim(kind, path):
    if kind == "npy":
        return np.load(path, allow_pickle=False).shape[1]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--inputs", help=".npy matrix of embeddings (default: random unit vectors)")
    p.add_argument("--rows", type=int, default=64)
    p.add_argument("--dim", type=int, help="embedding width for random inputs (default: from the model where it says)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    kind = kind_of(a.model)
    if a.inputs:
        x = np.load(a.inputs, allow_pickle=False)
    else:
        dim = a.dim or input_dim(kind, a.model)
        if dim is None:
            sys.exit("make_reference: give --dim (512 for ViT-B/32, 768 for ViT-L/14, 1024 for ViT-H/14) or --inputs")
        x = unit_rows(a.rows, dim, a.seed)
    runner = {"savedmodel": run_savedmodel, "keras": run_keras, "torch": run_torch, "npy": run_npy}[kind]
    result = runner(a.model, x)
    arrays = {"inputs": result[0], "outputs": result[1].reshape(len(result[0]), -1)}
    if len(result) == 3:
        arrays["labels"] = result[2]
    np.savez(a.output, **arrays)
    print("%s: %d rows, outputs %s" % (a.output, len(arrays["inputs"]), arrays["outputs"].shape))


if __name__ == "__main__":
    main()
