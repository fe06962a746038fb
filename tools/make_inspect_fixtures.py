#!/usr/bin/env python3
"""Writes the small model files `inspect`/`diff` are tested on, with the real libraries
(torch, Keras 3 on the TensorFlow backend, TensorFlow, h5py, safetensors), into
Tests/Fixtures/inspect/, and expected.json with what those libraries say about them
(parameter counts, tensor names and shapes). Run once by hand; the outputs are committed.

    python -m venv /tmp/fx && /tmp/fx/bin/pip install torch keras tensorflow-cpu h5py safetensors numpy
    /tmp/fx/bin/python tools/make_inspect_fixtures.py

Versions used for the committed files are recorded in expected.json ("versions").
torch and TensorFlow cannot share a process (their bundled LLVMs clash), so the script runs
itself in parts: `--part torch`, `--part keras`, then `--part savedmodel` (what TensorFlow
says about keras3_export.zip: signatures, variables, op histogram; it reads the committed
zip and only adds to its expected.json entry, so it can be run alone).
"""
import json, os, subprocess, sys, tempfile, zipfile

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "inspect")
os.makedirs(out, exist_ok=True)
expected_path = os.path.join(out, "expected.json")


def path(name):
    return os.path.join(out, name)


def update_expected(entries):
    expected = json.load(open(expected_path)) if os.path.exists(expected_path) else {}
    versions = expected.setdefault("versions", {})
    versions.update(entries.pop("versions", {}))
    expected.update(entries)
    with open(expected_path, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def torch_tensors(sd):
    return {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in sd.items()}


def torch_part():
    import torch
    import torch.nn as nn
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch
    torch.manual_seed(0)
    expected = {"versions": {"torch": torch.__version__, "numpy": np.__version__}}



    # A small CNN state dict: conv, batch norm (num_batches_tracked is int64), linear.
    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 2)


    cnn = CNN().state_dict()
    torch.save(cnn, path("torch_cnn.pth"))
    torch.save(cnn, path("torch_cnn_legacy.pth"), _use_new_zipfile_serialization=False)
    expected["torch_cnn"] = {"tensors": torch_tensors(cnn), "elements": sum(v.numel() for v in cnn.values())}

    # A training checkpoint: epoch, the model's state dict, Adam's state after one step.
    head = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    head(torch.randn(2, 8)).sum().backward()
    opt.step()
    torch.save({"epoch": 7, "state_dict": head.state_dict(), "optimizer": opt.state_dict(), "best_loss": 0.25},
               path("torch_checkpoint.pth"))
    expected["torch_checkpoint"] = {"state_dict": torch_tensors(head.state_dict())}
    x = torch.randn(3, 8, dtype=torch.float32)
    np.save(path("checkpoint_input.npy"), x.numpy())
    np.save(path("checkpoint_output.npy"), head(x).detach().numpy())

    # LAION's linear aesthetic head layout: root-level weight and bias.
    linear = nn.Linear(16, 1)
    torch.save(linear.state_dict(), path("linear_head.pth"))
    x16 = torch.randn(4, 16)
    np.save(path("linear_input.npy"), x16.numpy())
    np.save(path("linear_output.npy"), linear(x16).detach().numpy())

    # The improved-aesthetic-predictor MLP layout: Linear, Dropout, Linear, Dropout, …, Linear.
    mlp = nn.Sequential(nn.Linear(16, 12), nn.Dropout(0.2), nn.Linear(12, 8), nn.Dropout(0.2),
                        nn.Linear(8, 4), nn.Dropout(0.1), nn.Linear(4, 3), nn.Linear(3, 1)).eval()
    torch.save(mlp.state_dict(), path("mlp_head.pth"))
    np.save(path("mlp_output.npy"), mlp(x16).detach().numpy())

    # A Hugging Face style safetensors: BF16, F16 and I64.
    save_file({"embed.weight": np.zeros((4, 3), dtype=np.float16), "position_ids": np.arange(4, dtype=np.int64).reshape(1, 4)},
              path("hf_style.safetensors"), metadata={"format": "pt"})
    bf16 = torch.zeros(2, 2, dtype=torch.bfloat16)
    from safetensors.torch import save_file as save_torch
    save_torch({"bf.weight": bf16, "half": torch.ones(3, dtype=torch.float16), "ids": torch.arange(3)}, path("hf_bf16.safetensors"))

    update_expected(expected)


def keras_part():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf
    import h5py
    expected = {"versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "h5py": h5py.__version__}}
    # Keras: a conv model (.keras and .h5) and an Embedding + LSTM model (.keras).
    keras.utils.set_random_seed(0)
    conv = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                             keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    conv.save(path("keras_conv.keras"))
    conv.save(path("keras_conv.h5"))
    expected["keras_conv"] = {"count_params": int(conv.count_params()),
                              "layers": [[l.name, type(l).__name__, int(l.count_params())] for l in conv.layers]}
    inp = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(20, 6)(inp)
    h = keras.layers.LSTM(4)(h)
    lstm = keras.Model(inp, keras.layers.Dense(1)(h))
    lstm.save(path("keras_lstm.keras"))
    expected["keras_lstm"] = {"count_params": int(lstm.count_params()),
                              "layers": [[l.name, type(l).__name__, int(l.count_params())] for l in lstm.layers]}

    expected.update(keras_nested(keras))

    # A SavedModel written by Keras 3's model.export (no keras_metadata.pb), zipped.
    dense = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "export")
        dense.export(folder, verbose=False)
        with zipfile.ZipFile(path("keras3_export.zip"), "w", zipfile.ZIP_DEFLATED) as z:
            for root, _, files in os.walk(folder):
                for f in sorted(files):
                    full = os.path.join(root, f)
                    z.write(full, os.path.relpath(full, tmp))
    expected["keras3_export"] = {"count_params": int(dense.count_params())}

    # A plain HDF5 data file: groups, a chunked deflate dataset, attributes.
    with h5py.File(path("plain_data.h5"), "w") as f:
        f.attrs["title"] = "embeddings"
        g = f.create_group("data")
        d = g.create_dataset("emb", data=np.arange(24, dtype=np.float32).reshape(6, 4), chunks=(3, 4), compression="gzip")
        d.attrs["scale"] = np.float64(0.5)
        g.create_dataset("ids", data=np.arange(6, dtype=np.int64))
        f.create_group("empty")

    update_expected(expected)


def keras_nested(keras):
    """A Functional model holding a Sequential and a Functional (.keras and .h5)."""
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(4)], name="inner_seq")
    sub_in = keras.Input((4,))
    sub = keras.Model(sub_in, keras.layers.Dense(2, name="sub_dense")(sub_in), name="inner_func")
    inp = keras.Input((16,), name="x")
    nested = keras.Model(inp, sub(inner(keras.layers.Dense(16, name="pre")(inp))), name="outer")
    nested.save(path("keras_nested.keras"))
    nested.save(path("keras_nested.h5"))
    return {"keras_nested": {"count_params": int(nested.count_params()),
                             "layers": [[l.name, type(l).__name__, int(l.count_params())] for l in nested.layers]}}


def keras_nested_part():
    """Only the nested-model fixtures (added later; the other files stay as committed)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    update_expected(keras_nested(keras))


def savedmodel_part():
    """What TensorFlow says about the committed keras3_export.zip (read, not rewritten): every
    signature, the checkpoint's variables and the op histogram of the graph and its function
    library. Merged into expected.json's keras3_export entry; nothing else changes."""
    import collections
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(path("keras3_export.zip")) as z:
            z.extractall(tmp)
        folder = os.path.join(tmp, "export")
        model = saved_model_pb2.SavedModel()
        with open(os.path.join(folder, "saved_model.pb"), "rb") as f:
            model.ParseFromString(f.read())
        meta = next(m for m in model.meta_graphs if "serve" in m.meta_info_def.tags)

        def port(name, info):
            dims = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
            return {"name": name, "tensor": info.name, "dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": dims}

        signatures = {key: {"method": sig.method_name,
                            "inputs": [port(n, sig.inputs[n]) for n in sorted(sig.inputs)],
                            "outputs": [port(n, sig.outputs[n]) for n in sorted(sig.outputs)]}
                      for key, sig in meta.signature_def.items() if not key.startswith("__saved_model")}
        ops = collections.Counter(n.op for n in meta.graph_def.node)
        nodes = len(meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(n.op for n in function.node_def)
            nodes += len(function.node_def)
        prefix = os.path.join(folder, "variables", "variables")
        dtypes = tf.train.load_checkpoint(prefix).get_variable_to_dtype_map()
        variables = {name: {"dtype": dtypes[name].name, "shape": shape} for name, shape in tf.train.list_variables(prefix)}
    expected = json.load(open(expected_path)).get("keras3_export", {})
    expected.update({"signatures": signatures, "variables": variables, "ops": dict(ops), "graph_nodes": nodes})
    update_expected({"keras3_export": expected, "versions": {"tensorflow": tf.__version__}})


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--part":
        {"torch": torch_part, "keras": keras_part, "keras-nested": keras_nested_part, "savedmodel": savedmodel_part}[sys.argv[2]]()
    else:
        if os.path.exists(expected_path):
            os.remove(expected_path)
        for part in ("torch", "keras", "savedmodel"):
            subprocess.run([sys.executable, __file__, "--part", part], check=True)
        print("wrote", sorted(os.listdir(out)))
