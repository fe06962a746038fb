import Core
import CBLAS
import Foundation

/// A validated, ready-to-run native model: the public entry point for apps.
///
/// `init` checks the graph against the tensors (every tensor present and floating-point where
/// needed, shapes chaining from the card's embedding dimension, `argmax` last) and unpacks the
/// weights to Float32 once. Scoring is then allocation-light and thread-safe (the scorer is
/// immutable; every call uses its own buffers). Large batches are split across `parallelism`
/// cores by rows, each part run by single-threaded BLAS (see `Execution.swift` for why).
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
    /// How many threads one call may use: row parts of a large batch, or OpenBLAS threads for
    /// a small batch with enough work (H/14's one-row call). 1 runs everything on the calling
    /// thread with OpenBLAS at one thread.
    public let parallelism: Int
    let steps: [Step]
    let maxWidth: Int

    enum Step: Sendable {
        case impute(columns: [Int]?, value: Float)
        case lookup([Lookup])
        case normalize(mean: [Float], denominator: [Float])
        /// `relu`: a `relu` op that followed the product, applied in the same pass as the bias.
        case dense(weight: [Float], bias: [Float]?, inputs: Int, outputs: Int, relu: Bool)
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

    /// The number of active cores, or fewer when the environment sets `OPENBLAS_NUM_THREADS`
    /// (a job that runs a process per core already says so there).
    public static var defaultParallelism: Int {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        guard let text = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"], let n = Int(text), n > 0 else { return cores }
        return Swift.min(n, cores)
    }

    /// Loads and validates a native file.
    public convenience init(contentsOf path: String, parallelism: Int? = nil) throws {
        try self.init(model: try NativeModel(contentsOf: path), parallelism: parallelism)
    }

    /// Parses and validates native bytes.
    public convenience init(bytes: Data, parallelism: Int? = nil) throws {
        try self.init(model: try NativeModel(bytes: bytes), parallelism: parallelism)
    }

    /// `parallelism` defaults to `Scorer.defaultParallelism`.
    public init(model: NativeModel, parallelism: Int? = nil) throws {
        try model.validate(limits: nil)
        self.model = model
        self.parallelism = Swift.max(1, parallelism ?? Self.defaultParallelism)
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
                steps.append(.dense(weight: weight, bias: bias, inputs: width, outputs: w.shape[0], relu: false))
                width = w.shape[0]
                inInputSpace = false
            case .promptScores(let promptsName):
                let (p, prompts) = try floats(promptsName, for: name)
                guard p.shape.count == 2, p.shape[1] == width, p.shape[0] > 0 else {
                    throw ClipSafetyError.mismatch("graph: \(name) prompts '\(promptsName)' have shape \(p.shape); expected [K, \(width)]")
                }
                steps.append(.dense(weight: prompts, bias: nil, inputs: width, outputs: p.shape[0], relu: false))
                width = p.shape[0]
                inInputSpace = false
            case .relu:
                if case .dense(let weight, let bias, let inputs, let outputs, relu: false)? = steps.last {
                    steps[steps.count - 1] = .dense(weight: weight, bias: bias, inputs: inputs, outputs: outputs, relu: true)
                } else {
                    steps.append(.relu)
                }
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
            if case .dense(_, _, let i, let o, _) = step { return total + 2 * i * o }
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
}
