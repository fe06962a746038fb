#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into OUT/<target>/ from models/files (the real
upstream files) plus a few small hand-made inputs. Standard library only."""
import io, json, os, struct, sys, zipfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
files = os.path.join(root, "models", "files")
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, ".build-fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(name):
    with open(os.path.join(files, name), "rb") as f:
        return f.read()


def member(zip_name, suffix):
    with zipfile.ZipFile(os.path.join(files, zip_name)) as z:
        for n in z.namelist():
            if n.endswith(suffix):
                return z.read(n)
    raise SystemExit(f"{zip_name} has no member ending in {suffix}")


def npy(shape, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack(f"<{len(values)}f", *values)


def native():
    graph = [{"op": "dense", "weight": "w", "bias": "b"}, {"op": "sigmoid"}]
    card = {"name": "seed", "task": "binary_nsfw", "backbone": "test", "embedding_dim": 2,
            "input_precondition": "l2-normalized", "output_kind": "probability", "output_columns": ["nsfw"],
            "output_range": [0, 1], "labels": ["safe", "nsfw"], "positive_label": "nsfw", "threshold": 0.5,
            "threshold_source": "user"}
    source = {"original_file": "seed", "sha256": "0" * 64, "source_format": "seed"}
    header = {"__metadata__": {"format": "clipsafety/1", "graph": json.dumps(graph), "model": json.dumps(card), "source": json.dumps(source)},
              "w": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + struct.pack("<3f", 0.5, -0.5, 0.1)


def small_zip(method):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        z.writestr("a.npy", npy([2, 2], [1, 2, 3, 4]))
        z.writestr("b.npy", npy([3], [1, 2, 3]))
    return b.getvalue()


def varint(v):
    b = bytearray()
    while v >= 0x80:
        b.append(v & 0x7F | 0x80)
        v >>= 7
    return bytes(b + bytes([v]))


def field(number, value):
    """A protobuf field: ints as varints, bytes and str length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def onnx_model():
    """An ONNX ModelProto: embedding [N, 2] -> Gemm(w, b, transB=1) -> Sigmoid, opset 17."""
    def tensor(name, dims, floats):
        return b"".join(field(1, d) for d in dims) + field(2, 1) + field(8, name) + field(9, struct.pack(f"<{len(floats)}f", *floats))
    def value_info(name, dims):
        shape = b"".join(field(1, field(2, d) if isinstance(d, str) else field(1, d)) for d in dims)
        return field(1, name) + field(2, field(1, field(1, 1) + field(2, shape)))
    trans_b = field(1, "transB") + field(3, 1) + field(20, 2)
    gemm = field(1, "embedding") + field(1, "w") + field(1, "b") + field(2, "z") + field(3, "gemm") + field(4, "Gemm") + field(5, trans_b)
    sigmoid = field(1, "z") + field(2, "y") + field(3, "sigmoid") + field(4, "Sigmoid")
    graph = (field(1, gemm) + field(1, sigmoid) + field(2, "seed") + field(5, tensor("w", [1, 2], [0.5, -0.5]))
             + field(5, tensor("b", [1], [0.1])) + field(11, value_info("embedding", ["N", 2])) + field(12, value_info("y", ["N", 1])))
    return field(1, 8) + field(2, "seed") + field(7, graph) + field(8, field(1, "") + field(2, 17))


put("fuzz-safetensors", "native", native())
for n in ["violence_detection_vit_b_32.npy", "violence_detection_vit_l_14.npy"]:
    put("fuzz-npy", n, read(n))
put("fuzz-npy", "small", npy([2, 3], [1, 2, 3, 4, 5, 6]))
put("fuzz-zip", "stored.npz", small_zip(zipfile.ZIP_STORED))
put("fuzz-zip", "deflated.npz", small_zip(zipfile.ZIP_DEFLATED))
put("fuzz-zip", "b32.pth", read("clip_ViT-B-32_openai_binary_nsfw_head.pth"))
put("fuzz-pickle", "b32-data.pkl", member("clip_ViT-B-32_openai_binary_nsfw_head.pth", "data.pkl"))
put("fuzz-pickle", "h14-data.pkl", member("h14_nsfw.pth", "data.pkl"))
put("fuzz-pickle", "h14-legacy-head", read("h14_nsfw_legacy.pth")[:4096])
for n in ["clip_autokeras_nsfw_b32.zip", "clip_autokeras_binary_nsfw.zip"]:
    put("fuzz-sstable", n + ".index", member(n, "variables.index"))
    put("fuzz-protobuf", n + ".keras_metadata", b"\x00" + member(n, "keras_metadata.pb"))
put("fuzz-protobuf", "entry", b"\x02" + bytes([0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x02, 0x28, 0x08, 0x35, 0, 0, 0, 0]))
put("fuzz-hdf5", "b32_dense.h5", read("clip_autokeras_nsfw_b32_dense.h5"))
for n in ["violence_detection_vit_b_32.npy", "clip_ViT-B-32_openai_binary_nsfw_head.pth",
          "clip_autokeras_nsfw_b32_dense.h5", "clip_autokeras_nsfw_b32_dense.keras"]:
    put("fuzz-any", n, read(n))
put("fuzz-any", "native", native())
put("fuzz-any", "seed.onnx", onnx_model())
put("fuzz-protobuf", "seed.onnx", b"\x03" + onnx_model())
print(out)
