import Foundation
import Runtime

/// The checkpoint of a SavedModel that has no Keras metadata, described from its index alone:
/// every entry's name, dtype and shape from `variables.index`, each checked to lie inside its
/// data shard. No tensor data is read until a tensor is asked for (`--stats`, `--arch`); then
/// that entry's checksum is verified before its bytes are used.
enum SavedModelVariables {
    static func describe(_ files: SavedModelReader.Files, format: FileKind, limits: ReaderLimits) throws -> FileDescription {
        let entries = try index(files.index, shardSizes: files.shards.map(\.count), limits: limits)
        let shards = files.shards
        let tensors = entries.map { e in
            DescribedTensor(name: e.name, dtype: e.dtype?.rawValue ?? e.typeName, shape: e.shape) {
                try read(e, from: shards[e.shard])
            }
        }
        return FileDescription(format: format, tensors: tensors, notes: [
            "no keras_metadata.pb (a SavedModel written by Keras 3's model.export or by TensorFlow): no Keras layer list; "
                + "variables listed from variables/variables.index (checksums verified when read)",
        ])
    }

    /// The entries of a tensor bundle index, in key order, each within its shard's bytes.
    static func index(_ index: Data, shardSizes: [Int], limits: ReaderLimits) throws -> [TensorBundleReader.Entry] {
        let table = try SSTableReader(bytes: index, limits: limits)
        guard let headerBytes = table.value(forKey: Data()) else {
            throw ClipSafetyError.malformed("variables.index: no bundle header (empty key)")
        }
        let header = try SavedModelProtobuf.decode(Tensorflow_BundleHeaderProto.self, from: headerBytes,
                                                   what: "variables.index header", limits: limits)
        guard header.endianness == .little else {
            throw ClipSafetyError.unsupported("variables.index: big-endian tensor bundles are not supported")
        }
        guard Int(header.numShards) == shardSizes.count else {
            throw ClipSafetyError.mismatch("variables.index: header declares \(header.numShards) data shards, \(shardSizes.count) given")
        }
        var entries: [TensorBundleReader.Entry] = []
        for e in table.entries where !e.key.isEmpty {
            guard let name = String(data: e.key, encoding: .utf8) else {
                throw ClipSafetyError.malformed("variables.index: a tensor name is not UTF-8")
            }
            let entry = try TensorBundleReader.entry(name: name, value: e.value, limits: limits)
            guard entry.shard < shardSizes.count else {
                throw ClipSafetyError.malformed("variables: tensor '\(name)' is in shard \(entry.shard) of \(shardSizes.count)")
            }
            let size = shardSizes[entry.shard]
            guard entry.offset <= size, entry.size <= size - entry.offset else {
                throw ClipSafetyError.truncated("variables: tensor '\(name)' (\(entry.size) bytes at \(entry.offset)) lies past the end of its \(size)-byte data file")
            }
            entries.append(entry)
        }
        return entries
    }

    /// One entry's values, after its checksum is verified.
    static func read(_ e: TensorBundleReader.Entry, from shard: Data) throws -> Tensor {
        guard let dtype = e.dtype else {
            throw ClipSafetyError.unsupported("variables: tensor '\(e.name)' is \(e.typeName), not numeric")
        }
        let bytes = TensorBundleReader.slice(shard, e)
        try TensorBundleReader.verify(e, bytes: bytes)
        return try Tensor(name: e.name, dtype: dtype, shape: e.shape, data: bytes)
    }
}
