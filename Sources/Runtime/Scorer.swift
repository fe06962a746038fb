import CBLAS
import Foundation

/// A validated, ready-to-run native model: the public entry point for apps.
///
/// `init` checks the graph against the tensors (every tensor present and floating-point where
/// needed, shapes chaining from the card's embedding dimension, `argmax` last) and unpacks the
/// weights to Float32 once. Scoring is then allocation-light and thread-safe (the scorer is
/// immutable; every call uses its own buffers).
public final class Scorer: Sendable {
    public let model: NativeModel
    public var card: ModelCard { model.card }
    /// Width of the input rows.
    public let inputWidth: Int
    /// Width of the output rows.
    public let outputWidth: Int
    /// True when the graph ends with `argmax`, so results carry labels.
    public let producesLabels: Bool
    /// Floating-point operations of the matrix products per input row (2 × in × out per dense).
    public let flopsPerRow: Int
    private let steps: [Step]
    private let maxWidth: Int

    enum Step: Sendable {
        case impute(columns: [Int]?, value: Float)
        case lookup([Lookup])
        case normalize(mean: [Float], denominator: [Float])
        case dense(weight: [Float], bias: [Float]?, inputs: Int, outputs: Int)
        case relu
        case sigmoid
        case argmax
    }

    struct Lookup: Sendable {
        var column: Int
        var table: [String: Float]
        var oov: Float
        /// Round the input to float32 before formatting it (`key_dtype` F32).
        var roundToFloat32: Bool
    }

    /// Loads and validates a native file.
    public convenience init(contentsOf path: String) throws {
        try self.init(model: try NativeModel(contentsOf: path))
    }

    /// Parses and validates native bytes.
    public convenience init(bytes: Data) throws {
        try self.init(model: try NativeModel(bytes: bytes))
    }

    public init(model: NativeModel) throws {
        self.model = model
        var tensors: [String: Tensor] = [:]
        for t in model.tensors { tensors[t.name] = t }
        func tensor(_ name: String, for op: String) throws -> Tensor {
            guard let t = tensors[name] else {
                throw ClipSafetyError.mismatch("graph: \(op) names tensor '\(name)', which the file does not hold")
            }
            return t
        }
        func floats(_ name: String, for op: String) throws -> (Tensor, [Float]) {
            let t = try tensor(name, for: op)
            guard t.dtype.isFloatingPoint else {
                throw ClipSafetyError.mismatch("graph: \(op) tensor '\(name)' is \(t.dtype.rawValue), not floating point")
            }
            return (t, try t.floatValues())
        }

        let inputWidth = model.card.embeddingDim
        guard inputWidth > 0 else { throw ClipSafetyError.mismatch("model card: embedding_dim must be positive") }
        guard !model.graph.isEmpty else { throw ClipSafetyError.mismatch("graph: no ops") }
        var width = inputWidth
        var maxWidth = width
        var inInputSpace = true
        var steps: [Step] = []
        var producesLabels = false
        for (index, op) in model.graph.enumerated() {
            let name = "op \(index) (\(op.opName))"
            if producesLabels {
                throw ClipSafetyError.mismatch("graph: argmax must be the last op, but \(name) follows it")
            }
            switch op {
            case .imputeNaN(let columns, let value):
                if let columns, let bad = columns.first(where: { $0 < 0 || $0 >= width }) {
                    throw ClipSafetyError.mismatch("graph: \(name) column \(bad) is outside 0..<\(width)")
                }
                steps.append(.impute(columns: columns, value: value))
            case .categoricalLookup(let columns):
                guard inInputSpace else {
                    throw ClipSafetyError.mismatch("graph: \(name) reads input columns, so it must come before any dense or prompt_scores")
                }
                var lookups: [Lookup] = []
                for c in columns {
                    guard c.column >= 0, c.column < width else {
                        throw ClipSafetyError.mismatch("graph: \(name) column \(c.column) is outside 0..<\(width)")
                    }
                    lookups.append(try Self.vocabulary(c, keys: try tensor(c.keys, for: name), values: try tensor(c.values, for: name), op: name))
                }
                steps.append(.lookup(lookups))
            case .normalize(let meanName, let varianceName, let rule, let epsilon):
                let (_, mean) = try floats(meanName, for: name)
                let (_, variance) = try floats(varianceName, for: name)
                guard mean.count == width, variance.count == width else {
                    throw ClipSafetyError.mismatch("graph: \(name) mean has \(mean.count) and variance \(variance.count) values; the activation has \(width) columns")
                }
                guard epsilon.isFinite, epsilon >= 0 else {
                    throw ClipSafetyError.mismatch("graph: \(name) epsilon must be finite and non-negative")
                }
                let eps = Float(epsilon)
                let denominator = variance.map { v -> Float in
                    switch rule {
                    case .maxSqrtVarianceEpsilon: return Swift.max(v.squareRoot(), eps)
                    case .sqrtVariancePlusEpsilon: return v.squareRoot() + eps
                    }
                }
                steps.append(.normalize(mean: mean, denominator: denominator))
            case .dense(let weightName, let biasName):
                let (w, weight) = try floats(weightName, for: name)
                guard w.shape.count == 2, w.shape[1] == width, w.shape[0] > 0 else {
                    throw ClipSafetyError.mismatch("graph: \(name) weight '\(weightName)' has shape \(w.shape); expected [out, \(width)]")
                }
                var bias: [Float]?
                if let biasName {
                    let (b, values) = try floats(biasName, for: name)
                    guard b.elementCount == w.shape[0], b.shape.count <= 1 else {
                        throw ClipSafetyError.mismatch("graph: \(name) bias '\(biasName)' has shape \(b.shape); expected [\(w.shape[0])]")
                    }
                    bias = values
                }
                steps.append(.dense(weight: weight, bias: bias, inputs: width, outputs: w.shape[0]))
                width = w.shape[0]
                inInputSpace = false
            case .promptScores(let promptsName):
                let (p, prompts) = try floats(promptsName, for: name)
                guard p.shape.count == 2, p.shape[1] == width, p.shape[0] > 0 else {
                    throw ClipSafetyError.mismatch("graph: \(name) prompts '\(promptsName)' have shape \(p.shape); expected [K, \(width)]")
                }
                steps.append(.dense(weight: prompts, bias: nil, inputs: width, outputs: p.shape[0]))
                width = p.shape[0]
                inInputSpace = false
            case .relu:
                steps.append(.relu)
            case .sigmoid:
                steps.append(.sigmoid)
            case .argmax:
                steps.append(.argmax)
                producesLabels = true
            }
            maxWidth = Swift.max(maxWidth, width)
        }
        guard model.card.outputColumns.count == width else {
            throw ClipSafetyError.mismatch("model card names \(model.card.outputColumns.count) output columns; the graph produces \(width)")
        }
        self.inputWidth = inputWidth
        self.outputWidth = width
        self.steps = steps
        self.maxWidth = maxWidth
        self.flopsPerRow = steps.reduce(0) { total, step in
            if case .dense(_, _, let i, let o) = step { return total + 2 * i * o }
            return total
        }
        self.producesLabels = producesLabels
    }

    private static func vocabulary(_ c: CategoricalColumn, keys: Tensor, values: Tensor, op: String) throws -> Lookup {
        guard c.keyDType == nil || c.keyDType == .f64 || c.keyDType == .f32 else {
            throw ClipSafetyError.mismatch("graph: \(op) column \(c.column) has key_dtype \(c.keyDType?.rawValue ?? "?"); only F32 and F64 are defined")
        }
        guard keys.dtype == .u8, keys.shape.count == 1 else {
            throw ClipSafetyError.mismatch("graph: \(op) keys '\(c.keys)' must be a 1-D U8 tensor")
        }
        let indices = try values.int64Values()
        guard values.shape.count == 1 else {
            throw ClipSafetyError.mismatch("graph: \(op) values '\(c.values)' must be 1-D")
        }
        var strings: [String] = []
        var current: [UInt8] = []
        for byte in keys.data {
            if byte == 0 {
                strings.append(String(decoding: current, as: UTF8.self))
                current.removeAll(keepingCapacity: true)
            } else {
                current.append(byte)
            }
        }
        guard current.isEmpty else {
            throw ClipSafetyError.mismatch("graph: \(op) keys '\(c.keys)' do not end with a 0 byte")
        }
        guard strings.count == indices.count else {
            throw ClipSafetyError.mismatch("graph: \(op) column \(c.column) has \(strings.count) keys but \(indices.count) values")
        }
        var table: [String: Float] = [:]
        table.reserveCapacity(strings.count)
        for (k, v) in zip(strings, indices) {
            guard table.updateValue(Float(v), forKey: k) == nil else {
                throw ClipSafetyError.mismatch("graph: \(op) column \(c.column) has the key '\(k)' twice")
            }
        }
        return Lookup(column: c.column, table: table, oov: Float(c.oovIndex), roundToFloat32: c.keyDType == .f32)
    }

    /// Scores a batch. Throws `.mismatch` when its width is not the model's input width.
    public func score(_ batch: EmbeddingBatch) throws -> ScoreResult {
        try score(batch, workspace: makeWorkspace(rows: batch.rows))
    }

    /// Scratch memory for batches of up to `rows` rows, to reuse across calls (one per thread).
    public func makeWorkspace(rows: Int) -> ScoreWorkspace {
        ScoreWorkspace(rows: rows, width: maxWidth)
    }

    /// Scores a batch in `workspace`, allocating nothing but the result.
    public func score(_ batch: EmbeddingBatch, workspace: ScoreWorkspace) throws -> ScoreResult {
        guard batch.columns == inputWidth else {
            throw ClipSafetyError.mismatch("input has \(batch.columns) columns; the model expects \(inputWidth) (\(card.backbone))")
        }
        let n = batch.rows
        if n == 0 { return ScoreResult(rows: 0, columns: outputWidth, scores: [], labels: producesLabels ? [] : nil) }
        guard n <= Int(Int32.max) / Swift.max(maxWidth, inputWidth) else {
            throw ClipSafetyError.limitExceeded("a batch of \(n) rows is too large for one matrix product; score it in smaller batches")
        }
        guard n <= workspace.rows, workspace.width >= maxWidth else {
            throw ClipSafetyError.mismatch("a batch of \(n) rows does not fit a workspace made for \(workspace.rows)")
        }
        var a = workspace.first
        var b = workspace.second
        var width = inputWidth
        var labels: [Int64]?
        var remaining = steps[...]
        if batch.elementType == .float32, case .dense(let weight, let bias, let inputs, let outputs)? = steps.first {
            // Nothing changes the input before the first product: multiply it where it lies.
            Self.dense(input: batch.base.assumingMemoryBound(to: Float.self), rows: n, inputs: inputs,
                       weight: weight, bias: bias, outputs: outputs, into: a)
            width = outputs
            remaining = steps.dropFirst()
        } else {
            batch.copyAsFloat32(into: a)
        }
        for step in remaining {
            switch step {
            case .impute(let columns, let value):
                if let columns {
                    for r in 0..<n { for c in columns where a[r * width + c].isNaN { a[r * width + c] = value } }
                } else {
                    for i in 0..<(n * width) where a[i].isNaN { a[i] = value }
                }
            case .lookup(let lookups):
                for r in 0..<n {
                    for l in lookups {
                        let x = batch.value(row: r, column: l.column)
                        a[r * width + l.column] = l.table[Self.percentF(l.roundToFloat32 ? Double(Float(x)) : x)] ?? l.oov
                    }
                }
            case .normalize(let mean, let denominator):
                mean.withUnsafeBufferPointer { m in
                    denominator.withUnsafeBufferPointer { d in
                        for r in 0..<n {
                            let row = a + r * width
                            for c in 0..<width { row[c] = (row[c] - m[c]) / d[c] }
                        }
                    }
                }
            case .dense(let weight, let bias, let inputs, let outputs):
                Self.dense(input: a, rows: n, inputs: inputs, weight: weight, bias: bias, outputs: outputs, into: b)
                swap(&a, &b)
                width = outputs
            case .relu:
                for i in 0..<(n * width) { a[i] = Swift.max(a[i], 0) }
            case .sigmoid:
                for i in 0..<(n * width) { a[i] = 1 / (1 + exp(-a[i])) }
            case .argmax:
                labels = (0..<n).map { r in
                    var best = 0
                    for c in 1..<Swift.max(width, 1) where a[r * width + c] > a[r * width + best] { best = c }
                    return Int64(best)
                }
            }
        }
        let scores = Array(UnsafeBufferPointer(start: a, count: n * width))
        return ScoreResult(rows: n, columns: width, scores: scores, labels: labels)
    }

    /// Scores `rows` row-major Float32 rows.
    public func score(_ values: [Float], rows: Int) throws -> ScoreResult {
        guard rows >= 0, values.count == rows * inputWidth else {
            throw ClipSafetyError.mismatch("\(values.count) values are not \(rows) rows of \(inputWidth)")
        }
        return try values.withUnsafeBytes { raw in
            try score(EmbeddingBatch(base: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, rows: rows, columns: inputWidth, elementType: .float32))
        }
    }

    /// Scores `rows` row-major Float64 rows (categorical columns see the exact values).
    public func score(_ values: [Double], rows: Int) throws -> ScoreResult {
        guard rows >= 0, values.count == rows * inputWidth else {
            throw ClipSafetyError.mismatch("\(values.count) values are not \(rows) rows of \(inputWidth)")
        }
        return try values.withUnsafeBytes { raw in
            try score(EmbeddingBatch(base: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 8)!, rows: rows, columns: inputWidth, elementType: .float64))
        }
    }

    /// C `printf("%f", value)`: the key rule of `categorical_lookup`.
    static func percentF(_ value: Double) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 400) { buf in
            let n = withVaList([value]) { vsnprintf(buf.baseAddress!, 400, "%f", $0) }
            return String(decoding: UnsafeRawBufferPointer(start: buf.baseAddress!, count: Int(Swift.min(Swift.max(n, 0), 399))), as: UTF8.self)
        }
    }

    /// C = A · Wᵀ + bias through CBLAS sgemm (A: rows×inputs, W: outputs×inputs, C: rows×outputs).
    static func dense(input a: UnsafePointer<Float>, rows: Int, inputs: Int, weight: [Float], bias: [Float]?,
                      outputs: Int, into c: UnsafeMutablePointer<Float>) {
        precondition(weight.count == outputs * inputs && (bias?.count ?? outputs) == outputs)
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for r in 0..<rows { (c + r * outputs).update(from: b.baseAddress!, count: outputs) }
            }
        }
        weight.withUnsafeBufferPointer { w in
            if rows == 1 {
                // One row: a matrix-vector product; sgemm with M = 1 is slower in older OpenBLAS.
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outputs), Int32(inputs), 1, w.baseAddress, Int32(inputs),
                            a, 1, bias == nil ? 0 : 1, c, 1)
                return
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                        Int32(rows), Int32(outputs), Int32(inputs),
                        1, a, Int32(inputs),
                        w.baseAddress, Int32(inputs),
                        bias == nil ? 0 : 1, c, Int32(outputs))
        }
    }
}

/// Two activation buffers for `rows` × `width` floats, reused by `Scorer.score(_:workspace:)`
/// so that scoring a stream of batches allocates nothing per batch. Not thread-safe: one per thread.
public final class ScoreWorkspace: @unchecked Sendable {
    public let rows: Int
    public let width: Int
    let first: UnsafeMutablePointer<Float>
    let second: UnsafeMutablePointer<Float>

    init(rows: Int, width: Int) {
        self.rows = rows
        self.width = width
        let count = Swift.max(rows * width, 1)
        first = .allocate(capacity: count)
        second = .allocate(capacity: count)
    }

    deinit {
        first.deallocate()
        second.deallocate()
    }
}
