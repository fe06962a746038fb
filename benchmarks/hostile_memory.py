#!/usr/bin/env python3
"""Peak memory of `clipsafety convert` on hostile inputs that declare, or inflate to, huge sizes.

Builds each input in a temporary folder (standard library only), runs the CLI on it with the
default limits, and reads the child's own peak RSS with wait4. Fails (exit 1) when a run
needs 512 MiB or more, exits with an unexpected status, or leaves a file in the output folder.

    python3 benchmarks/hostile_memory.py [--cli PATH]   # default: the debug build in .build
"""
import argparse, os, struct, subprocess, sys, tempfile, time, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_MIB = 512
GiB = 1 << 30


def deflate_zeros(n):
    """Raw deflate stream of n zero bytes, compressed in 16 MiB chunks."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(16 << 20)
    out, left, crc = [], n, 0
    while left:
        piece = chunk[:min(left, len(chunk))]
        out.append(c.compress(piece))
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    out.append(c.flush())
    return b"".join(out), crc


def zip_archive(members):
    """members: (name, method, payload, declared_size, crc). Headers written by hand, so that
    they can lie about sizes."""
    out, central = bytearray(), bytearray()
    for name, method, payload, size, crc in members:
        n = name.encode()
        offset = len(out)
        common = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, len(payload), size, len(n), 0)
        out += b"PK\x03\x04" + common + n + payload
        central += b"PK\x01\x02" + struct.pack("<H", 20) + common + struct.pack("<HHHII", 0, 0, 0, 0, offset) + n
    cd = len(out)
    out += central + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), cd, 0)
    return bytes(out)


def stored(name, data):
    return (name, 0, data, len(data), zlib.crc32(data))


def pickle_flood(n):
    return b"\x80\x02N" + b"2" * n + b"."  # PROTO 2, NONE, n × DUP, STOP


def stride0_checkpoint(elements):
    """A torch zip whose one tensor is a stride-0 view of a one-element storage."""
    def s(text):
        b = text.encode()
        return b"X" + struct.pack("<I", len(b)) + b
    def i(v):
        return b"J" + struct.pack("<i", v)
    p = b"\x80\x02ccollections\nOrderedDict\n)R("
    p += s("fc.weight") + b"ctorch._utils\n_rebuild_tensor_v2\n("
    p += b"(" + s("storage") + b"ctorch\nFloatStorage\n" + s("0") + s("cpu") + i(1) + b"tQ"
    p += i(0) + b"(" + i(elements) + b"t(" + i(0) + b"t\x89ccollections\nOrderedDict\n)RtR"
    p += b"u."
    return zip_archive([stored("m/data.pkl", p), stored("m/version", b"3\n"), stored("m/data/0", struct.pack("<f", 1.0))])


def inputs(folder):
    bomb, crc = deflate_zeros(GiB)
    limit_bomb, limit_crc = deflate_zeros(255 << 20)
    flood = pickle_flood(200 << 20)
    flood_deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    flood_z = flood_deflated.compress(flood) + flood_deflated.flush()
    cases = {
        "zip member declaring 1 GiB": zip_archive([stored("m/version", b"3\n"), ("m/data.pkl", 8, bomb, GiB, crc)]),
        "zip member declaring 4 kB, inflating to 1 GiB": zip_archive([stored("m/version", b"3\n"), ("m/data.pkl", 8, bomb, 4096, crc)]),
        "zip member inflating to 255 MiB (under the limit)": zip_archive([stored("m/version", b"3\n"), ("m/data.pkl", 8, limit_bomb, 255 << 20, limit_crc)]),
        "data.pkl of 200 Mi DUP opcodes (deflated)": zip_archive([stored("m/version", b"3\n"), ("m/data.pkl", 8, flood_z, len(flood), zlib.crc32(flood))]),
        "legacy pickle of 64 Mi DUP opcodes": b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19." + pickle_flood(64 << 20),
        "stride-0 view of 1 float as 64 Mi floats": stride0_checkpoint(64 << 20),
        "stride-0 view expanding past the limit": stride0_checkpoint((1 << 31) - 1),
        "npy declaring 2^40 x 2^40 floats": b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + b"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }".ljust(117) + b"\n",
        "safetensors header of 2^63 bytes": struct.pack("<Q", (1 << 63) - 1) + b"{}",
        "HDF5 root object header declaring 4 GiB": open(os.path.join(ROOT, "Tests", "Fixtures", "hostile", "hdf5-header-declaring-4gib.h5"), "rb").read(),
        "safetensors tensor of 2^50 elements": (lambda h: struct.pack("<Q", len(h)) + h)(b'{"w":{"dtype":"F32","shape":[1125899906842624],"data_offsets":[0,4503599627370496]}}'),
    }
    for k, (label, data) in enumerate(cases.items()):
        with open(os.path.join(folder, f"hostile-{k}.bin"), "wb") as f:
            f.write(data)
        with open(os.path.join(folder, f"hostile-{k}.txt"), "w") as f:
            f.write(label)


def run(cli, path, out_dir):
    start = time.time()
    child = subprocess.Popen([cli, "convert", path, "-o", os.path.join(out_dir, "out.safetensors")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS (KiB on Linux)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, time.time() - start, stderr.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, ".build", "debug", "clipsafety"))
    ap.add_argument("--make", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make:
        return inputs(args.make)
    if not os.access(args.cli, os.X_OK):
        sys.exit(f"hostile_memory: no CLI at {args.cli}; build first (swift build) or pass --cli")
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        out_dir = os.path.join(folder, "out")
        os.mkdir(out_dir)
        print(f"{'input':52} {'exit':>4} {'peak MiB':>9} {'seconds':>8}")
        # Built in another process: a child's ru_maxrss starts from its parent's RSS at fork,
        # so this process must stay small.
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make", folder], check=True)
        for k in range(len([n for n in os.listdir(folder) if n.endswith(".bin")])):
            path = os.path.join(folder, f"hostile-{k}.bin")
            with open(os.path.join(folder, f"hostile-{k}.txt")) as f:
                label = f.read()
            code, peak, seconds, stderr = run(args.cli, path, out_dir)
            ok = code == 65 and peak < LIMIT_MIB and not os.listdir(out_dir) and stderr.count("\n") == 0
            failed |= not ok
            print(f"{label:52} {code:>4} {peak:>9.1f} {seconds:>8.2f}{'' if ok else '  FAIL: ' + stderr[:200]}")
    print(f"peak RSS limit {LIMIT_MIB} MiB: {'FAILED' if failed else 'all under'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
