import Foundation
import Runtime

/// Converts a Keras/autokeras TensorFlow SavedModel shipped as a zip (LAION's
/// `clip_autokeras_*.zip`) to a native model that computes what its `serving_default`
/// signature computes.
///
/// The zip is read in memory (`ZipArchive`: no extraction, path checks, uncompressed-size cap).
/// `keras_metadata.pb` gives the layer chain, `variables/` the weights (every checksum
/// verified), and `saved_model.pb` the StringLookup vocabularies of the categorical columns,
/// matched to their columns by tracing the graph (`SavedModelVocabularies`).
///
/// Native graph: `impute_nan` (numeric columns, NaN → 0), `categorical_lookup` (vocabulary
/// index of the `%f` string of each categorical column), `normalize` (Keras denominator),
/// then `dense`/`relu`/`sigmoid` in layer order; Dropout is dropped. Tensor names follow
/// upstream's PyTorch port: `norm.mean`, `norm.variance`, `linear_K.weight` ([out, in]),
/// `linear_K.bias`, plus `encoding.<column>.keys` / `.values`.
public enum SavedModelConverter {
    /// `source_format` of the provenance (docs/FORMAT.md §5).
    public static let sourceFormat = "savedmodel-zip"
    /// Keras' `backend.epsilon()`, the floor of the Normalization denominator.
    static let kerasEpsilon = 1e-7

    /// The head of an autokeras SavedModel zip. (Interim: the SavedModel reader and the Keras
    /// chain recogniser replace this.)
    static func head(bytes: Data, limits: ReaderLimits) throws -> RecognisedHead {
        let files = try Files(zip: bytes, limits: limits)
        let config = try SavedModelKerasConfig(metadata: files.kerasMetadata, limits: limits)
        let bundle = try TensorBundleReader(index: files.index, shards: files.shards, limits: limits)
        let vocabularies = try SavedModelVocabularies(savedModel: files.savedModel, limits: limits)
        let (graph, tensors, width, layers) = try build(config: config, bundle: bundle, vocabularies: vocabularies)
        return RecognisedHead(graph: graph, tensors: tensors, inputWidth: vocabularies.inputWidth, outputWidth: width,
                              layers: layers, notes: ["Keras layers from keras_metadata.pb; weights from variables/ (checksums verified); vocabularies traced through saved_model.pb"])
    }

    /// The serving signature, for the description.
    static func signature(bytes: Data, limits: ReaderLimits) throws -> ServingSignature? {
        let files = try Files(zip: bytes, limits: limits)
        return try SavedModelVocabularies(savedModel: files.savedModel, limits: limits).signature
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

    /// The native graph and tensors for the layer chain; returns the output width and the
    /// Keras layers (with the number of ops each became) too.
    static func build(config: SavedModelKerasConfig, bundle: TensorBundleReader,
                      vocabularies: SavedModelVocabularies) throws -> ([GraphOp], [Tensor], Int, [SourceLayer]) {
        var graph: [GraphOp] = []
        var tensors: [Tensor] = []
        var layers: [SourceLayer] = []
        var width = vocabularies.inputWidth
        var denseCount = 0
        var normCount = 0
        var sawEncoding = false
        for (index, named) in config.layers.enumerated() {
            let opsBefore = graph.count
            defer { layers.append(SourceLayer(name: named.name, className: named.className, opCount: graph.count - opsBefore, notes: named.notes)) }
            switch named.layer {
            case .input(let w):
                guard index == 0, w == width else {
                    throw ClipSafetyError.mismatch("keras model: input '\(named.name)' has width \(w); the serving signature takes \(width)")
                }
            case .multiCategoryEncoding(let categorical):
                guard index == 1, !sawEncoding else {
                    throw ClipSafetyError.unsupported("keras model: MultiCategoryEncoding '\(named.name)' must directly follow the input")
                }
                sawEncoding = true
                let (ops, vocabTensors) = try encoding(categorical: categorical, width: width, vocabularies: vocabularies)
                graph += ops
                tensors += vocabTensors
            case .normalization(let checkpoint):
                normCount += 1
                let prefix = normCount == 1 ? "norm" : "norm_\(normCount)"
                let mean = try bundle.tensor(variable(checkpoint, "mean"), as: prefix + ".mean")
                let variance = try bundle.tensor(variable(checkpoint, "variance"), as: prefix + ".variance")
                for t in [mean, variance] {
                    guard t.dtype.isFloatingPoint, t.elementCount == width else {
                        throw ClipSafetyError.mismatch("keras model: Normalization '\(named.name)' \(t.name) is \(t.dtype.rawValue) \(t.shape); expected \(width) floats")
                    }
                }
                tensors += [mean, variance]
                graph.append(.normalize(mean: mean.name, variance: variance.name,
                                        denominator: .maxSqrtVarianceEpsilon, epsilon: kerasEpsilon))
            case .dense(let units, let activation, let useBias, let checkpoint):
                denseCount += 1
                let kernel = try bundle.tensor(variable(checkpoint, "kernel"), as: "linear_\(denseCount).weight")
                guard kernel.dtype == .f32, kernel.shape == [width, units] else {
                    throw ClipSafetyError.mismatch("keras model: Dense '\(named.name)' kernel is \(kernel.dtype.rawValue) \(kernel.shape); expected F32 [\(width), \(units)]")
                }
                let weight = Tensor(name: kernel.name, shape: [units, width],
                                    floats: transpose(try kernel.floatValues(), rows: width, columns: units))
                tensors.append(weight)
                var biasName: String?
                if useBias {
                    let bias = try bundle.tensor(variable(checkpoint, "bias"), as: "linear_\(denseCount).bias")
                    guard bias.dtype == .f32, bias.shape == [units] else {
                        throw ClipSafetyError.mismatch("keras model: Dense '\(named.name)' bias is \(bias.dtype.rawValue) \(bias.shape); expected F32 [\(units)]")
                    }
                    tensors.append(bias)
                    biasName = bias.name
                }
                graph.append(.dense(weight: weight.name, bias: biasName))
                width = units
                graph += ops(for: activation)
            case .activation(let activation):
                graph += ops(for: activation)
            case .dropout:
                break
            }
        }
        let categoricalColumns = vocabularies.vocabularies.map(\.column)
        guard sawEncoding || categoricalColumns.isEmpty else {
            throw ClipSafetyError.mismatch("saved_model.pb looks up columns \(categoricalColumns), but the Keras config has no MultiCategoryEncoding")
        }
        guard denseCount > 0 else {
            throw ClipSafetyError.unsupported("keras model: no Dense layer; nothing to convert")
        }
        return (graph, tensors, width, layers)
    }

    /// impute_nan for the numeric columns and categorical_lookup for the others.
    static func encoding(categorical: [Bool], width: Int,
                         vocabularies: SavedModelVocabularies) throws -> ([GraphOp], [Tensor]) {
        guard categorical.count == width else {
            throw ClipSafetyError.mismatch("keras model: MultiCategoryEncoding has \(categorical.count) encodings for \(width) input columns")
        }
        let wanted = categorical.indices.filter { categorical[$0] }
        let traced = vocabularies.vocabularies.map(\.column)
        guard traced == wanted else {
            throw ClipSafetyError.mismatch("keras model: MultiCategoryEncoding marks columns \(wanted) as 'int', but saved_model.pb looks up columns \(traced)")
        }
        var ops: [GraphOp] = []
        var tensors: [Tensor] = []
        let numeric = categorical.indices.filter { !categorical[$0] }
        if !numeric.isEmpty { ops.append(.imputeNaN(columns: numeric, value: 0)) }
        var columns: [CategoricalColumn] = []
        for v in vocabularies.vocabularies {
            var keyBytes: [UInt8] = []
            for key in v.keys {
                guard !key.contains(0) else {
                    throw ClipSafetyError.unsupported("saved_model.pb: a vocabulary key of column \(v.column) contains a 0 byte")
                }
                keyBytes.append(contentsOf: key)
                keyBytes.append(0)
            }
            let keys = Tensor(name: "encoding.\(v.column).keys", shape: [keyBytes.count], bytes: keyBytes)
            let values = Tensor(name: "encoding.\(v.column).values", shape: [v.values.count], int64s: v.values)
            tensors += [keys, values]
            columns.append(CategoricalColumn(column: v.column, keys: keys.name, values: values.name,
                                             oovIndex: v.oovIndex, keyDType: v.keyDType))
        }
        if !columns.isEmpty { ops.append(.categoricalLookup(columns)) }
        return (ops, tensors)
    }

    static func variable(_ checkpoint: String, _ name: String) -> String {
        "\(checkpoint)/\(name)/.ATTRIBUTES/VARIABLE_VALUE"
    }

    static func ops(for activation: SavedModelKerasConfig.Activation) -> [GraphOp] {
        switch activation {
        case .linear: return []
        case .relu: return [.relu]
        case .sigmoid: return [.sigmoid]
        }
    }

    /// Row-major [rows, columns] → [columns, rows].
    static func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: m.count)
        for r in 0..<rows { for c in 0..<columns { out[c * rows + r] = m[r * columns + c] } }
        return out
    }
}
