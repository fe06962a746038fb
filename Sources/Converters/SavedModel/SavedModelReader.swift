import Foundation
import Runtime

/// Describes a TensorFlow SavedModel shipped as a zip (LAION's `clip_autokeras_*.zip`) or a
/// folder (`SavedModelFolder`).
///
/// A zip is read in memory (`ZipArchive`: no extraction, path checks, uncompressed-size cap).
/// `saved_model.pb` gives every signature and the op histogram (`SavedModelGraph`). When
/// `keras_metadata.pb` is present it gives the Keras layers, `variables/` the weights (every
/// checksum verified), and the graph the StringLookup vocabularies of the categorical columns,
/// matched to their columns by tracing it (`SavedModelVocabularies`). Without it the
/// checkpoint's variables are listed from `variables.index` (`SavedModelVariables`).
enum SavedModelReader {
    static func describe(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        try describe(try Files(zip: bytes, limits: limits), format: .savedModelZip, limits: limits)
    }

    /// Describes the members of a SavedModel read from a zip or a folder. Signatures and the op
    /// histogram come from `saved_model.pb` whatever wrote it; the Keras layer list only when
    /// `keras_metadata.pb` is present (Keras 2 and autokeras write it, Keras 3's `export` not).
    static func describe(_ files: Files, format: FileKind, limits: ReaderLimits) throws -> FileDescription {
        let graph = try SavedModelGraph(savedModel: files.savedModel, limits: limits)
        var description: FileDescription
        if let metadata = files.kerasMetadata {
            description = try describeKeras(files, metadata: metadata, format: format, limits: limits)
        } else {
            description = try SavedModelVariables.describe(files, format: format, limits: limits)
        }
        description.signatures = graph.signatures
        description.opHistogram = graph.opHistogram
        description.notes += graph.notes
        return description
    }

    /// A Keras SavedModel: layers from `keras_metadata.pb`, weights from `variables/` (every
    /// checksum verified), StringLookup vocabularies traced through the graph.
    static func describeKeras(_ files: Files, metadata: Data, format: FileKind, limits: ReaderLimits) throws -> FileDescription {
        let keras = try SavedModelKerasConfig(metadata: metadata, limits: limits)
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
        return architecture.description(format: format, tensors: tensors, lookups: lookups, notes: [
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

    /// The members of a SavedModel: from a zip (the folder inside it) or a folder on disk
    /// (`SavedModelFolder`).
    struct Files {
        var savedModel: Data
        /// Nil when the SavedModel has none (Keras 3's `model.export`, plain TensorFlow).
        var kerasMetadata: Data?
        var index: Data
        var shards: [Data]

        init(zip bytes: Data, limits: ReaderLimits) throws {
            let zip = try ZipArchive(bytes: bytes, limits: limits)
            let roots = zip.entries.map(\.name).filter { $0 == "saved_model.pb" || $0.hasSuffix("/saved_model.pb") }
            guard roots.count == 1, let root = roots.first else {
                throw ClipSafetyError.unsupported("SavedModel zip: expected one saved_model.pb, found \(roots.count)")
            }
            let prefix = String(root.dropLast("saved_model.pb".count))
            let names = zip.entries.map(\.name).filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
            try self.init(members: names, container: "SavedModel zip", shown: prefix) { try zip.read(named: prefix + $0) }
        }

        /// `members`: every path under the SavedModel's root (`saved_model.pb`,
        /// `variables/variables.index`, …); `read` gives a member's bytes, nil when absent;
        /// `shown` prefixes member names in messages.
        init(members: [String], container: String, shown: String = "", read: (String) throws -> Data?) throws {
            func member(_ path: String) throws -> Data {
                guard let data = try read(path) else {
                    throw ClipSafetyError.malformed("\(container): missing \(shown)\(path)")
                }
                return data
            }
            // Data shards: variables/variables.data-KKKKK-of-NNNNN, all K in 0..<N present.
            let shardPrefix = "variables/variables.data-"
            var shardNames: [Int: String] = [:]
            var declared: Set<Int> = []
            for name in members where name.hasPrefix(shardPrefix) {
                let parts = name.dropFirst(shardPrefix.count).split(separator: "-")
                guard parts.count == 3, parts[1] == "of", let k = Int(parts[0]), let n = Int(parts[2]), k >= 0, k < n else {
                    throw ClipSafetyError.malformed("\(container): unexpected data file name '\(shown)\(name)'")
                }
                declared.insert(n)
                shardNames[k] = name
            }
            guard declared.count == 1, let n = declared.first, shardNames.count == n else {
                throw ClipSafetyError.malformed("\(container): variables data shards are missing or inconsistent (\(shardNames.count) files)")
            }
            savedModel = try member("saved_model.pb")
            kerasMetadata = members.contains("keras_metadata.pb") ? try member("keras_metadata.pb") : nil
            index = try member("variables/variables.index")
            var shards: [Data] = []
            for k in 0..<n {
                guard let name = shardNames[k] else {
                    throw ClipSafetyError.malformed("\(container): variables data shard \(k) of \(n) is missing")
                }
                shards.append(try member(name))
            }
            self.shards = shards
        }
    }
}
