#!/bin/sh
# Regenerates the committed Swift code for the converters' protobuf messages from the minimal
# .proto files next to them: the SavedModel reader's (Sources/Converters/SavedModel/Proto) and
# the ONNX reader and exporter's (Sources/Converters/ONNX/Proto).
#
# Versions used for the committed files:
#   protoc            libprotoc 3.21.12 (Debian/Ubuntu package protobuf-compiler)
#   protoc-gen-swift  1.39.0, built from apple/swift-protobuf at tag 1.39.0:
#     git clone https://github.com/apple/swift-protobuf.git && cd swift-protobuf
#     git checkout 1.39.0 && swift build -c release --product protoc-gen-swift
# The plugin version must match the SwiftProtobuf runtime the package depends on.
#
# Usage: tools/gen-proto.sh [path/to/protoc-gen-swift]
#   (default: $PROTOC_GEN_SWIFT, else protoc-gen-swift on PATH)
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
plugin=${1:-${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}}
if [ -z "$plugin" ] || [ ! -x "$plugin" ]; then
    echo "gen-proto: protoc-gen-swift not found; pass its path or set PROTOC_GEN_SWIFT" >&2
    exit 1
fi
command -v protoc >/dev/null || { echo "gen-proto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }

generate() {
    rel=$1
    dir="$root/$rel"
    shift
    (cd "$dir" && protoc --plugin=protoc-gen-swift="$plugin" \
        --swift_opt=Visibility=Internal \
        --swift_out=. \
        -I . \
        "$@")
    echo "gen-proto: regenerated $(ls "$dir"/*.pb.swift | wc -l) files in $rel"
}

generate Sources/Converters/SavedModel/Proto tensorflow_savedmodel.proto keras_saved_metadata.proto
generate Sources/Converters/ONNX/Proto onnx.proto
