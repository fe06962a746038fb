import Core
import Foundation

/// The one check of a native model (docs/FORMAT.md, section 3), run by every path that opens
/// or writes one: loading, `inspect`, `convert` and `Scorer`. It reads tensor shapes and dtypes
/// and the vocabularies' structure, never the weights' values.
extension NativeModel {
    /// Throws `.mismatch` naming the first op that breaks the graph rules, and
    /// `.limitExceeded` when the tensors are above `limits` (nil: the caller checked them).
    public func validate(limits: ReaderLimits?) throws {
        if let limits { try checkLimits(limits) }
        guard card.embeddingDim > 0 else { throw ClipSafetyError.mismatch("model card: embedding_dim must be positive") }
        guard !graph.isEmpty else { throw ClipSafetyError.mismatch("graph: no ops") }
        guard card.embeddingDim <= Self.maxActivationWidth else {
            throw ClipSafetyError.limitExceeded("model card: embedding_dim \(card.embeddingDim) is above \(Self.maxActivationWidth) columns")
        }
        var chain = ShapeChain(width: card.embeddingDim, tensors: Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a }))
        for (index, op) in graph.enumerated() {
            try chain.apply(op, name: "op \(index) (\(op.opName))")
        }
        guard card.outputColumns.count == chain.width else {
            throw ClipSafetyError.mismatch("model card names \(card.outputColumns.count) output columns; the graph produces \(chain.width)")
        }
    }

    /// Widest activation (input, hidden layer, prompt scores) a graph may have: a row of it
    /// takes 256 KiB as Float32, and `Scorer.rowsPerBatch` fits the batch to it.
    public static let maxActivationWidth = 1 << 16
    /// Most keys one categorical vocabulary may hold (autokeras' hold a few thousand);
    /// checking them for duplicates holds each in a set.
    public static let maxVocabularyKeys = 1 << 20

    /// Scoring widens every tensor to Float32 in memory, so a model's tensors are capped like
    /// an archive's uncompressed bytes.
    func checkLimits(_ limits: ReaderLimits) throws {
        var total = 0
        for t in tensors {
            let n = t.elementCount
            guard n <= limits.maxTensorElements else {
                throw ClipSafetyError.limitExceeded("tensor '\(t.name)' has \(n) elements, above the limit of \(limits.maxTensorElements) (raise with --max-tensor-elements)")
            }
            total += n * MemoryLayout<Float>.size
            guard total <= limits.maxUncompressedBytes else {
                throw ClipSafetyError.limitExceeded("tensors up to '\(t.name)' take more than \(limits.maxUncompressedBytes) bytes as Float32 (raise with --max-uncompressed-bytes)")
            }
        }
    }
}

/// The activation width as ops apply, and the rules each op must meet.
struct ShapeChain {
    var width: Int
    let tensors: [String: Tensor]
    /// True until an op leaves the input's columns (`categorical_lookup` must come before).
    var inInputSpace = true
    var ended = false

    mutating func apply(_ op: GraphOp, name: String) throws {
        if ended { throw ClipSafetyError.mismatch("graph: argmax must be the last op, but \(name) follows it") }
        switch op {
        case .imputeNaN(let columns, _):
            if let columns, let bad = columns.first(where: { $0 < 0 || $0 >= width }) {
                throw ClipSafetyError.mismatch("graph: \(name) column \(bad) is outside 0..<\(width)")
            }
        case .categoricalLookup(let columns):
            guard inInputSpace else {
                throw ClipSafetyError.mismatch("graph: \(name) reads input columns, so it must come before any dense or prompt_scores")
            }
            for c in columns { try checkVocabulary(c, name: name) }
        case .normalize(let mean, let variance, _, let epsilon):
            let m = try float(mean, name), v = try float(variance, name)
            guard m.elementCount == width, v.elementCount == width else {
                throw ClipSafetyError.mismatch("graph: \(name) mean has \(m.elementCount) and variance \(v.elementCount) values; the activation has \(width) columns")
            }
            guard epsilon.isFinite, epsilon >= 0 else {
                throw ClipSafetyError.mismatch("graph: \(name) epsilon must be finite and non-negative")
            }
        case .dense(let weight, let bias):
            let w = try float(weight, name)
            guard w.shape.count == 2, w.shape[1] == width, w.shape[0] > 0 else {
                throw ClipSafetyError.mismatch("graph: \(name) weight '\(weight)' has shape \(w.shape); expected [out, \(width)]")
            }
            if let bias {
                let b = try float(bias, name)
                guard b.elementCount == w.shape[0], b.shape.count <= 1 else {
                    throw ClipSafetyError.mismatch("graph: \(name) bias '\(bias)' has shape \(b.shape); expected [\(w.shape[0])]")
                }
            }
            width = w.shape[0]
            try checkWidth(name)
            inInputSpace = false
        case .promptScores(let prompts):
            let p = try float(prompts, name)
            guard p.shape.count == 2, p.shape[1] == width, p.shape[0] > 0 else {
                throw ClipSafetyError.mismatch("graph: \(name) prompts '\(prompts)' have shape \(p.shape); expected [K, \(width)]")
            }
            width = p.shape[0]
            try checkWidth(name)
            inInputSpace = false
        case .relu, .sigmoid:
            break
        case .argmax:
            ended = true
        }
    }

    func checkWidth(_ name: String) throws {
        guard width <= NativeModel.maxActivationWidth else {
            throw ClipSafetyError.limitExceeded("graph: \(name) makes \(width) columns, above \(NativeModel.maxActivationWidth); scoring would need \(width / 256) KiB per row")
        }
    }

    func tensor(_ tensorName: String, _ name: String) throws -> Tensor {
        guard let t = tensors[tensorName] else {
            throw ClipSafetyError.mismatch("graph: \(name) names tensor '\(tensorName)', which the file does not hold")
        }
        return t
    }

    func float(_ tensorName: String, _ name: String) throws -> Tensor {
        let t = try tensor(tensorName, name)
        guard t.dtype.isFloatingPoint else {
            throw ClipSafetyError.mismatch("graph: \(name) tensor '\(tensorName)' is \(t.dtype.rawValue), not floating point")
        }
        return t
    }

    /// Keys: 1-D U8, each ending with a 0 byte, unique, as many as the 1-D integer values.
    func checkVocabulary(_ c: CategoricalColumn, name: String) throws {
        guard c.column >= 0, c.column < width else {
            throw ClipSafetyError.mismatch("graph: \(name) column \(c.column) is outside 0..<\(width)")
        }
        guard c.keyDType == nil || c.keyDType == .f64 || c.keyDType == .f32 else {
            throw ClipSafetyError.mismatch("graph: \(name) column \(c.column) has key_dtype \(c.keyDType?.rawValue ?? "?"); only F32 and F64 are defined")
        }
        let keys = try tensor(c.keys, name), values = try tensor(c.values, name)
        guard keys.dtype == .u8, keys.shape.count == 1 else {
            throw ClipSafetyError.mismatch("graph: \(name) keys '\(c.keys)' must be a 1-D U8 tensor")
        }
        guard values.shape.count == 1, !values.dtype.isFloatingPoint, values.dtype != .bool else {
            throw ClipSafetyError.mismatch("graph: \(name) values '\(c.values)' must be a 1-D integer tensor")
        }
        guard keys.data.isEmpty || keys.data.last == 0 else {
            throw ClipSafetyError.mismatch("graph: \(name) keys '\(c.keys)' do not end with a 0 byte")
        }
        let keyCount = keys.data.reduce(0) { $1 == 0 ? $0 + 1 : $0 }
        guard keyCount <= NativeModel.maxVocabularyKeys else {
            throw ClipSafetyError.limitExceeded("graph: \(name) column \(c.column) has \(keyCount) keys, above \(NativeModel.maxVocabularyKeys)")
        }
        let split = keys.data.split(separator: 0, omittingEmptySubsequences: false).dropLast()
        guard split.count == values.elementCount else {
            throw ClipSafetyError.mismatch("graph: \(name) column \(c.column) has \(split.count) keys but \(values.elementCount) values")
        }
        var seen = Set<Data>()
        for key in split where !seen.insert(Data(key)).inserted {
            throw ClipSafetyError.mismatch("graph: \(name) column \(c.column) has the key '\(String(decoding: key, as: UTF8.self))' twice")
        }
    }
}
