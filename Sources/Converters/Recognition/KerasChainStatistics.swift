import Foundation
import Runtime

/// The layers of a Keras chain that prepare the input: Normalization and autokeras'
/// MultiCategoryEncoding.
extension KerasChainBuilder {
    /// `(x − mean) / max(√variance, ε)`, with mean and variance from the config when it gives
    /// them, else from weights 0 and 1 (weight 2, `count`, is only used while adapting).
    mutating func addNormalization(_ layer: DescribedLayer) throws {
        let label = KerasChainHead.label(layer), config = layer.config
        if config["invert"]?.bool == true {
            throw ClipSafetyError.unsupported("Keras config: \(label) is an inverse normalization (invert = true)")
        }
        let axes = KerasArchitecture.list(config["axis"]) ?? config["axis"].map { [$0] } ?? [.number(-1)]
        guard axes.count == 1, let a = axes[0].int, a == -1 || a == 1 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) normalizes over axis \(KerasChainHead.text(config["axis"])); only the feature axis (-1) is supported")
        }
        let mean = try Self.statistics(config["mean"], key: "mean", label: label)
        let variance = try Self.statistics(config["variance"], key: "variance", label: label)
        guard (mean == nil) == (variance == nil) else {
            throw ClipSafetyError.malformed("Keras config: \(label) gives only one of mean and variance")
        }
        normCount += 1
        let prefix = normCount == 1 ? "norm" : "norm_\(normCount)"
        var (m, v): (Tensor, Tensor)
        if let mean, let variance {
            (m, v) = try configStatistics(layer, mean, variance)
        } else {
            (m, v) = try storedStatistics(layer)
        }
        m.name = prefix + ".mean"
        v.name = prefix + ".variance"
        tensors += [m, v]
        graph.append(.normalize(mean: m.name, variance: v.name, denominator: .maxSqrtVarianceEpsilon, epsilon: Self.normalizationEpsilon))
    }

    /// Statistics written in the config: one number per feature, or one for all.
    mutating func configStatistics(_ layer: DescribedLayer, _ mean: [Double], _ variance: [Double]) throws -> (Tensor, Tensor) {
        let label = KerasChainHead.label(layer)
        try expectWeights(layer, count: 0, naming: "none")
        guard let w = width ?? (mean.count > 1 ? mean.count : nil) else {
            throw ClipSafetyError.mismatch("\(label) gives scalar statistics, and the input width is not known")
        }
        func expand(_ values: [Double], _ key: String) throws -> Tensor {
            if values.count == 1 { return Tensor(name: key, shape: [w], floats: Array(repeating: Float(values[0]), count: w)) }
            guard values.count == w else {
                throw ClipSafetyError.mismatch("\(label) config \(key) has \(values.count) values; the input is \(w) wide")
            }
            return Tensor(name: key, shape: [w], floats: values.map { Float($0) })
        }
        width = w
        return (try expand(mean, "mean"), try expand(variance, "variance"))
    }

    /// Statistics stored as the layer's weights.
    mutating func storedStatistics(_ layer: DescribedLayer) throws -> (Tensor, Tensor) {
        if layer.weights.count != 3 { try expectWeights(layer, count: 2, naming: "mean, variance and optionally count") }
        let mean = try weight(layer, 0, role: "mean")
        let variance = try weight(layer, 1, role: "variance")
        let w = width ?? mean.elementCount
        guard mean.elementCount == w, variance.elementCount == w, w > 0 else {
            throw ClipSafetyError.mismatch("\(KerasChainHead.label(layer)) mean has shape \(mean.shape) and variance \(variance.shape); the input is \(w) wide")
        }
        width = w
        return (mean, variance)
    }

    /// A number or (nested) list of numbers, flattened; nil for null or absent.
    static func statistics(_ value: JSONValue?, key: String, label: String) throws -> [Double]? {
        guard let value, value != .null else { return nil }
        var out: [Double] = []
        func flatten(_ v: JSONValue, depth: Int) throws {
            if let n = v.number {
                out.append(n)
            } else if let list = v.array, depth < 4 {
                for item in list { try flatten(item, depth: depth + 1) }
            } else {
                throw ClipSafetyError.malformed("Keras config: \(label) \(key) is not a number or a list of numbers")
            }
        }
        try flatten(value, depth: 0)
        return out
    }

    /// autokeras' per-column encoding: NaN → 0 for the `none` columns, and for the `int` ones
    /// the vocabulary index of the `%f` string, from the lookups traced through the file's graph.
    mutating func addEncoding(_ layer: DescribedLayer) throws {
        guard layers.count == 1, !sawEncoding else {
            throw ClipSafetyError.unsupported("Keras model: MultiCategoryEncoding '\(layer.name)' must directly follow the input")
        }
        sawEncoding = true
        let categorical = try Self.categoricalColumns(layer)
        guard let w = width, categorical.count == w else {
            throw ClipSafetyError.mismatch("Keras model: MultiCategoryEncoding has \(categorical.count) encodings for \(width.map(String.init) ?? "an unknown number of") input columns")
        }
        let wanted = categorical.indices.filter { categorical[$0] }
        let traced = description.lookups.map(\.column)
        guard traced == wanted else {
            throw ClipSafetyError.mismatch("Keras model: MultiCategoryEncoding marks columns \(wanted) as 'int', but saved_model.pb looks up columns \(traced)")
        }
        let numeric = categorical.indices.filter { !categorical[$0] }
        if !numeric.isEmpty { graph.append(.imputeNaN(columns: numeric, value: 0)) }
        let columns = try description.lookups.map { try lookupColumn($0) }
        if !columns.isEmpty { graph.append(.categoricalLookup(columns)) }
    }

    /// One entry per input column: false for `none` (a number), true for `int` (a category).
    static func categoricalColumns(_ layer: DescribedLayer) throws -> [Bool] {
        guard let encoding = layer.config["encoding"]?.array else {
            throw ClipSafetyError.malformed("Keras model: MultiCategoryEncoding '\(layer.name)' has no encoding list")
        }
        return try encoding.enumerated().map { c, e in
            switch e.string {
            case "none": return false
            case "int": return true
            default:
                throw ClipSafetyError.unsupported("Keras model: MultiCategoryEncoding '\(layer.name)' column \(c) uses encoding '\(KerasChainHead.text(e))'; only 'none' and 'int' are supported")
            }
        }
    }

    /// The keys (0-terminated, concatenated) and values tensors of one lookup.
    mutating func lookupColumn(_ lookup: DescribedLookup) throws -> CategoricalColumn {
        var keyBytes: [UInt8] = []
        for key in lookup.keys {
            guard !key.contains(0) else {
                throw ClipSafetyError.unsupported("saved_model.pb: a vocabulary key of column \(lookup.column) contains a 0 byte")
            }
            keyBytes += key + [0]
        }
        guard let keyDType = DType(rawValue: lookup.keyDType) else {
            throw ClipSafetyError.unsupported("a lookup of column \(lookup.column) formats \(lookup.keyDType) values")
        }
        let keys = Tensor(name: "encoding.\(lookup.column).keys", shape: [keyBytes.count], bytes: keyBytes)
        let values = Tensor(name: "encoding.\(lookup.column).values", shape: [lookup.values.count], int64s: lookup.values)
        tensors += [keys, values]
        return CategoricalColumn(column: lookup.column, keys: keys.name, values: values.name,
                                 oovIndex: lookup.oovIndex, keyDType: keyDType)
    }
}
