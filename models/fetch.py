#!/usr/bin/env python3
"""Fill models/files/ with the catalog's model files, checking every checksum.

Source of each file: the mirror folder (--mirror or $MODELS_MIRROR, laid out as the
catalog's mirror_path) when it has the file, otherwise the catalog's upstream url.
Each file is checked against sha256 (mirror_sha256 for a mirror stand-in), or against
git_blob where upstream publishes no sha256, written as a temporary file and renamed
into place only when it checks out. Files already present and correct are kept.

Exit status: 0 when every file that has a source is in place; 1 when a download or a
checksum failed (the bad file is not left behind). Standard library only.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_of(path):
    h = hashlib.sha1()
    h.update(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expected_checksum(entry, from_mirror):
    """(kind, value) the fetched file must match, or None when nothing is published."""
    if from_mirror and entry.get("mirror_sha256"):
        return ("sha256", entry["mirror_sha256"])
    if entry.get("sha256"):
        return ("sha256", entry["sha256"])
    if entry.get("git_blob"):
        return ("git_blob", entry["git_blob"])
    return None


def matches(path, checksum):
    kind, value = checksum
    return (sha256_of(path) if kind == "sha256" else git_blob_of(path)) == value


def fetch_one(entry, mirror, dest_dir):
    dest = os.path.join(dest_dir, entry["file"])
    mirrored = bool(mirror and entry.get("mirror_path") and os.path.isfile(os.path.join(mirror, entry["mirror_path"])))
    checksum = expected_checksum(entry, mirrored)
    if checksum is None:
        return "fail", "no checksum in the catalog"
    if os.path.isfile(dest) and matches(dest, checksum):
        return "ok", "present"
    if mirrored:
        source = os.path.join(mirror, entry["mirror_path"])
    elif entry.get("url"):
        source = entry["url"]
    else:
        return "skip", "mirror only, and no mirror given (set MODELS_MIRROR)"
    fd, tmp = tempfile.mkstemp(prefix="." + entry["file"] + ".", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            if mirrored:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out)
            else:
                with urllib.request.urlopen(source, timeout=60) as resp:
                    shutil.copyfileobj(resp, out)
        if not matches(tmp, checksum):
            return "fail", "%s mismatch for %s" % (checksum[0], source)
        os.replace(tmp, dest)
        tmp = None
        return "ok", "from mirror" if mirrored else "downloaded"
    except OSError as e:
        return "fail", "%s: %s" % (source, e)
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="catalog names to fetch (default: all)")
    parser.add_argument("--mirror", default=os.environ.get("MODELS_MIRROR"), help="mirror folder (default: $MODELS_MIRROR)")
    parser.add_argument("--dest", default=os.path.join(HERE, "files"), help="destination folder (default: models/files)")
    parser.add_argument("--catalog", default=os.path.join(HERE, "catalog.json"))
    args = parser.parse_args()

    with open(args.catalog) as f:
        models = json.load(f)["models"]
    unknown = set(args.names) - {m["name"] for m in models}
    if unknown:
        print("fetch: unknown catalog names: " + ", ".join(sorted(unknown)), file=sys.stderr)
        return 64
    os.makedirs(args.dest, exist_ok=True)
    failed = 0
    for entry in models:
        if args.names and entry["name"] not in args.names:
            continue
        status, note = fetch_one(entry, args.mirror, args.dest)
        print("fetch: %-4s %-42s %s" % (status, entry["file"], note))
        failed += status == "fail"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
