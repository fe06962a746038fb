import Foundation
import Runtime

/// Describes a TensorFlow SavedModel shipped as a zip (LAION's `clip_autokeras_*.zip`).
///
/// The zip is read in memory (`ZipArchive`: no extraction, path checks, uncompressed-size cap).
/// `keras_metadata.pb` gives the Keras layers, `variables/` the weights (every checksum
/// verified), and `saved_model.pb` the serving signature and the StringLookup vocabularies of
/// the categorical columns, matched to their columns by tracing the graph
/// (`SavedModelVocabularies`).
enum SavedModelReader {
    static func describe(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        let files = try Files(zip: bytes, limits: limits)
        let keras = try SavedModelKerasConfig(metadata: files.kerasMetadata, limits: limits)
        let bundle = try TensorBundleReader(index: files.index, shards: files.shards, limits: limits)
        let vocabularies = try SavedModelVocabularies(savedModel: files.savedModel, limits: limits)
        var architecture = keras.architecture
        for i in architecture.layers.indices {
            guard let prefix = keras.checkpointPrefixes[architecture.layers[i].name] else { continue }
            architecture.layers[i].weights = variables(under: prefix, in: bundle)
        }
        let tensors = bundle.entries.map { e in
            DescribedTensor(name: e.name, dtype: e.dtype?.rawValue ?? e.typeName, shape: e.shape) { try bundle.tensor(e.name, as: e.name) }
        }
        let lookups = vocabularies.vocabularies.map {
            DescribedLookup(column: $0.column, keys: $0.keys.map { [UInt8]($0) }, values: $0.values,
                            oovIndex: $0.oovIndex, keyDType: $0.keyDType.rawValue)
        }
        return architecture.description(format: .savedModelZip, tensors: tensors, signatures: vocabularies.signature.map { [$0] } ?? [],
                                        lookups: lookups, notes: [
            "Keras layers from keras_metadata.pb; weights from variables/ (checksums verified); vocabularies traced through saved_model.pb",
        ])
    }

    /// Keras' order of a layer's variables: the order it creates them in.
    static let creationOrder = ["kernel", "bias", "mean", "variance", "count"]

    /// The checkpoint keys of the variables a layer owns directly (`<prefix>/<variable>/.ATTRIBUTES/VARIABLE_VALUE`),
    /// in Keras' creation order, then any others by name.
    static func variables(under prefix: String, in bundle: TensorBundleReader) -> [String] {
        let suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
        let owned = bundle.entries.map(\.name).filter { name in
            name.hasPrefix(prefix + "/") && name.hasSuffix(suffix)
                && !name.dropFirst(prefix.count + 1).dropLast(suffix.count).contains("/")
        }
        func rank(_ key: String) -> Int {
            creationOrder.firstIndex(of: String(key.dropFirst(prefix.count + 1).dropLast(suffix.count))) ?? creationOrder.count
        }
        return owned.sorted { (rank($0), $0) < (rank($1), $1) }
    }

    /// The members of the SavedModel folder inside the zip.
    struct Files {
        var savedModel: Data
        var kerasMetadata: Data
        var index: Data
        var shards: [Data]

        init(zip bytes: Data, limits: ReaderLimits) throws {
            let zip = try ZipArchive(bytes: bytes, limits: limits)
            let roots = zip.entries.map(\.name).filter { $0 == "saved_model.pb" || $0.hasSuffix("/saved_model.pb") }
            guard roots.count == 1, let root = roots.first else {
                throw ClipSafetyError.unsupported("SavedModel zip: expected one saved_model.pb, found \(roots.count)")
            }
            let prefix = String(root.dropLast("saved_model.pb".count))
            func member(_ path: String) throws -> Data {
                guard let data = try zip.read(named: prefix + path) else {
                    throw ClipSafetyError.malformed("SavedModel zip: missing \(prefix)\(path)")
                }
                return data
            }
            // Data shards: variables/variables.data-KKKKK-of-NNNNN, all K in 0..<N present.
            let shardPrefix = prefix + "variables/variables.data-"
            var shardNames: [Int: String] = [:]
            var declared: Set<Int> = []
            for entry in zip.entries where entry.name.hasPrefix(shardPrefix) {
                let parts = entry.name.dropFirst(shardPrefix.count).split(separator: "-")
                guard parts.count == 3, parts[1] == "of", let k = Int(parts[0]), let n = Int(parts[2]), k >= 0, k < n else {
                    throw ClipSafetyError.malformed("SavedModel zip: unexpected data file name '\(entry.name)'")
                }
                declared.insert(n)
                shardNames[k] = String(entry.name.dropFirst(prefix.count))
            }
            guard declared.count == 1, let n = declared.first, shardNames.count == n else {
                throw ClipSafetyError.malformed("SavedModel zip: variables data shards are missing or inconsistent (\(shardNames.count) files)")
            }
            savedModel = try member("saved_model.pb")
            kerasMetadata = try member("keras_metadata.pb")
            index = try member("variables/variables.index")
            var shards: [Data] = []
            for k in 0..<n {
                guard let name = shardNames[k] else {
                    throw ClipSafetyError.malformed("SavedModel zip: variables data shard \(k) of \(n) is missing")
                }
                shards.append(try member(name))
            }
            self.shards = shards
        }
    }
}
