import Converters
import Foundation
import Runtime

/// One row of `inspect`'s layer table: a native graph op, or a source layer that became no op
/// (a Dropout, a Keras InputLayer). Built from the native graph (the one source of truth for
/// what runs) and, where the converter supplies them, the source format's layer names.
public struct LayerRow: Codable, Equatable, Sendable {
    /// Index of the op in the native graph; nil for a source layer with no op.
    public var index: Int?
    /// The op's tensor prefix (`linear_1`, `norm`, `layers.0`, `encoding`, `prompts`); for a
    /// row with no tensors, the source layer's name when known, else empty.
    public var name: String
    /// Native op (`dense`, `normalize`, …); nil for a source layer with no op.
    public var op: String?
    /// The source layer this row comes from, when the converter reports it.
    public var source: Source?
    /// `[null, D]`: the batch dimension is null. Nil when the shape chain is broken.
    public var inputShape: [Int?]?
    public var outputShape: [Int?]?
    /// Elements of the op's floating-point tensors.
    public var parameters: Int
    /// Dtypes of the op's tensors, `/`-separated (`F32`, `U8/I64`); nil when it has none.
    public var dtype: String?
    public var tensors: [String]
    public var notes: [String]

    public struct Source: Codable, Equatable, Sendable {
        public var name: String
        public var className: String

        public init(name: String, className: String) {
            self.name = name
            self.className = className
        }

        enum CodingKeys: String, CodingKey {
            case name
            case className = "class"
        }
    }

    enum CodingKeys: String, CodingKey {
        case index, name, op, source, parameters, dtype, tensors, notes
        case inputShape = "input_shape"
        case outputShape = "output_shape"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(name, forKey: .name)
        try c.encode(op, forKey: .op)
        try c.encode(source, forKey: .source)
        try c.encode(inputShape, forKey: .inputShape)
        try c.encode(outputShape, forKey: .outputShape)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(dtype, forKey: .dtype)
        try c.encode(tensors, forKey: .tensors)
        try c.encode(notes, forKey: .notes)
    }
}

public enum LayerTable {
    /// The rows for `model`, with `details`' source layers merged in when their op counts
    /// add up to the graph (otherwise they are ignored: the graph is what runs).
    /// Reads tensor shapes and dtypes only, never tensor data.
    public static func rows(model: NativeModel, details: SourceDetails?) -> [LayerRow] {
        var byName: [String: Tensor] = [:]
        for t in model.tensors { byName[t.name] = t }
        var width: Int? = model.card.embeddingDim
        var opRows: [LayerRow] = []
        for (i, op) in model.graph.enumerated() {
            let tensors = op.tensorNames.compactMap { byName[$0] }
            let input = width
            switch op {
            case .dense(let w, _):
                width = byName[w].flatMap { $0.shape.count == 2 && $0.shape[1] == input ? $0.shape[0] : nil }
            case .promptScores(let p):
                width = byName[p].flatMap { $0.shape.count == 2 && $0.shape[1] == input ? $0.shape[0] : nil }
            default:
                break
            }
            let dtypes = tensors.map(\.dtype.rawValue).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            opRows.append(LayerRow(
                index: i, name: prefix(of: op.tensorNames), op: op.opName, source: nil,
                inputShape: input.map { [nil, $0] }, outputShape: width.map { [nil, $0] },
                parameters: tensors.filter(\.dtype.isFloatingPoint).reduce(0) { $0 + $1.elementCount },
                dtype: dtypes.isEmpty ? nil : dtypes.joined(separator: "/"),
                tensors: op.tensorNames,
                notes: notes(for: op, tensors: byName, card: model.card, width: input)))
        }
        guard let layers = details?.layers, !layers.isEmpty,
              layers.reduce(0, { $0 + $1.opCount }) == model.graph.count, layers.allSatisfy({ $0.opCount >= 0 }) else {
            return opRows
        }
        var rows: [LayerRow] = []
        var next = 0
        for layer in layers {
            let source = LayerRow.Source(name: layer.name, className: layer.className)
            if layer.opCount == 0 {
                let shape = next < opRows.count ? opRows[next].inputShape : opRows.last?.outputShape
                rows.append(LayerRow(index: nil, name: layer.name, op: nil, source: source, inputShape: shape, outputShape: shape,
                                     parameters: 0, dtype: nil, tensors: [], notes: droppedNotes(layer)))
                continue
            }
            // Ops without tensors take the name of a tensor op of the same layer (impute_nan
            // beside categorical_lookup is `encoding`), else the source layer's name.
            let group = opRows[next..<(next + layer.opCount)]
            let groupName = group.first { !$0.name.isEmpty }?.name ?? layer.name
            for k in 0..<layer.opCount {
                var row = opRows[next + k]
                row.source = source
                if row.name.isEmpty { row.name = groupName }
                if k == 0 { row.notes += layer.notes }
                rows.append(row)
            }
            next += layer.opCount
        }
        return rows
    }

    /// The common leading components of the tensors' parents: `linear_1.weight` → `linear_1`,
    /// `encoding.92.keys` + `encoding.133.keys` → `encoding`, `prompts` → `prompts`.
    static func prefix(of names: [String]) -> String {
        let parents = names.map { name -> [Substring] in
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count > 1 ? Array(parts.dropLast()) : parts
        }
        guard var common = parents.first else { return "" }
        for p in parents.dropFirst() {
            var n = 0
            while n < common.count, n < p.count, common[n] == p[n] { n += 1 }
            common = Array(common.prefix(n))
        }
        return common.joined(separator: ".")
    }

    static func notes(for op: GraphOp, tensors: [String: Tensor], card: ModelCard, width: Int?) -> [String] {
        switch op {
        case .imputeNaN(let columns, let value):
            let v = CardText.number(Double(value))
            guard let columns else { return ["NaN → \(v) in every column"] }
            return ["NaN → \(v) in \(columns.count)\(width.map { " of \($0)" } ?? "") columns"]
        case .categoricalLookup(let columns):
            let sizes = columns.map { c in tensors[c.values].map { String($0.elementCount) } ?? "?" }
            var notes = ["categorical columns \(columns.map { String($0.column) }.joined(separator: ", ")) (vocabularies \(sizes.joined(separator: "/")))"]
            let keyTypes = Set(columns.map { ($0.keyDType ?? .f64).rawValue }).sorted()
            let oov = Set(columns.map(\.oovIndex)).sorted().map(String.init)
            notes.append("key: C printf %f of the input as \(keyTypes.joined(separator: "/")) (key_dtype); unknown keys → index \(oov.joined(separator: "/"))")
            return notes
        case .normalize(_, _, let rule, let epsilon):
            let e = "\(epsilon)"
            switch rule {
            case .maxSqrtVarianceEpsilon: return ["(x − mean) / max(√variance, ε), ε = \(e) (Keras rule)"]
            case .sqrtVariancePlusEpsilon: return ["(x − mean) / (√variance + ε), ε = \(e) (PyTorch port rule)"]
            }
        case .dense(_, let bias):
            return bias == nil ? ["no bias"] : []
        case .promptScores(let p):
            let k = tensors[p]?.shape.first
            if let k, card.outputColumns.count == k {
                return ["\(k) prompts: \(card.outputColumns.joined(separator: ", ")); x · promptsᵀ"]
            }
            return ["x · promptsᵀ"]
        case .argmax:
            return ["label = index of the largest column (first on ties)"]
        case .relu, .sigmoid:
            return []
        }
    }

    static func droppedNotes(_ layer: SourceLayer) -> [String] {
        let detail = layer.notes.isEmpty ? "" : " (\(layer.notes.joined(separator: "; ")))"
        switch layer.className {
        case "Dropout": return ["dropout: inactive at inference\(detail)"]
        case "InputLayer": return ["model input\(detail)"]
        default: return ["no op at inference\(detail)"]
        }
    }

    /// Sum of the rows' parameters.
    public static func totalParameters(_ rows: [LayerRow]) -> Int {
        rows.reduce(0) { $0 + $1.parameters }
    }
}
