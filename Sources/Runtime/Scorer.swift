import Core
import Foundation

/// A validated, ready-to-run native model: the public entry point for apps.
///
/// `init` validates the model (`NativeModel.validate`), unpacks the weights to Float32 and packs
/// them for the product kernel, and turns each vocabulary into intervals, once. Scoring is then
/// allocation-light and thread-safe (the scorer is immutable; every call uses its own buffers),
/// and a row's output bytes do not depend on the rows scored with it. Large batches are split
/// across `parallelism` cores by rows (see `Execution.swift`).
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
    /// How many threads one call may use for the row parts of a large batch; 1 runs everything
    /// on the calling thread.
    public let parallelism: Int
    let steps: [Step]
    let maxWidth: Int

    enum Step: Sendable {
        /// NaN → `value` in `columns`; nil: in every column but `kept` (the fast form, 16 lanes
        /// at a time, chosen when most columns are imputed).
        case impute(columns: [Int]?, kept: [Int], value: Float)
        case lookup([CategoricalLookup])
        case normalize(mean: [Float], denominator: [Float])
        /// `relu`: a `relu` op that followed the product, applied in the same pass as the bias.
        case dense(PackedWeights, bias: [Float]?, relu: Bool)
        case relu
        case sigmoid
        case argmax

        /// True for steps that change each value from its own row only, keeping the width:
        /// they can run row by row in the input pass (`Scorer.readRows`).
        var worksWithinARow: Bool {
            switch self {
            case .impute, .lookup, .normalize: return true
            case .dense, .relu, .sigmoid, .argmax: return false
            }
        }
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
        let tensors = Dictionary(model.tensors.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var steps: [Step] = []
        var width = model.card.embeddingDim
        var maxWidth = width
        for op in model.graph {
            width = try Self.append(op, to: &steps, width: width, tensors: tensors)
            maxWidth = Swift.max(maxWidth, width)
        }
        self.inputWidth = model.card.embeddingDim
        self.outputWidth = width
        self.steps = steps
        self.maxWidth = maxWidth
        self.flopsPerRow = steps.reduce(0) { total, step in
            if case .dense(let w, _, _) = step { return total + 2 * w.inputs * w.outputs }
            return total
        }
        self.producesLabels = model.graph.last == .argmax
    }

    /// Autokeras heads impute every column but their few categorical ones: listed as the
    /// columns left alone, the row is imputed 16 lanes at a time and those few restored,
    /// instead of column by column. Same values either way.
    static func imputation(_ columns: [Int]?, value: Float, width: Int) -> Step {
        guard let columns else { return .impute(columns: nil, kept: [], value: value) }
        let chosen = Set(columns)
        guard chosen.count * 2 >= width, chosen.allSatisfy({ (0..<width).contains($0) }) else {
            return .impute(columns: columns, kept: [], value: value)
        }
        return .impute(columns: nil, kept: (0..<width).filter { !chosen.contains($0) }, value: value)
    }

    /// Appends the step of `op` (or folds a `relu` into the product before it) and returns the
    /// activation width after it. The graph has passed `validate`: shapes chain, tensors exist.
    private static func append(_ op: GraphOp, to steps: inout [Step], width: Int, tensors: [String: Tensor]) throws -> Int {
        func floats(_ name: String) throws -> [Float] {
            guard let t = tensors[name] else { throw ClipSafetyError.mismatch("graph: no tensor '\(name)'") }
            return try t.floatValues()
        }
        switch op {
        case .imputeNaN(let columns, let value):
            steps.append(imputation(columns, value: value, width: width))
        case .categoricalLookup(let columns):
            steps.append(.lookup(try columns.map { c in
                try vocabulary(c, keys: tensors[c.keys], values: tensors[c.values])
            }))
        case .normalize(let mean, let variance, let rule, let epsilon):
            let denominator = try floats(variance).map { Self.denominator(variance: $0, rule: rule, epsilon: Float(epsilon)) }
            steps.append(.normalize(mean: try floats(mean), denominator: denominator))
        case .dense(let weight, let bias):
            return try appendProduct(try floats(weight), width: width, bias: try bias.map(floats), to: &steps)
        case .promptScores(let prompts):
            return try appendProduct(try floats(prompts), width: width, bias: nil, to: &steps)
        case .relu:
            if case .dense(let weight, let bias, relu: false)? = steps.last {
                steps[steps.count - 1] = .dense(weight, bias: bias, relu: true)
            } else {
                steps.append(.relu)
            }
        case .sigmoid:
            steps.append(.sigmoid)
        case .argmax:
            steps.append(.argmax)
        }
        return width
    }

    /// A product with `weight` [out, width], packed for the fixed-order kernel; returns out.
    private static func appendProduct(_ weight: [Float], width: Int, bias: [Float]?, to steps: inout [Step]) throws -> Int {
        let outputs = weight.count / width
        steps.append(.dense(PackedWeights(weight, outputs: outputs, inputs: width), bias: bias, relu: false))
        return outputs
    }

    private static func denominator(variance: Float, rule: NormalizeDenominator, epsilon: Float) -> Float {
        switch rule {
        case .maxSqrtVarianceEpsilon: return Swift.max(variance.squareRoot(), epsilon)
        case .sqrtVariancePlusEpsilon: return variance.squareRoot() + epsilon
        }
    }

    /// The intervals of one categorical column (its keys and values passed `validate`).
    static func vocabulary(_ c: CategoricalColumn, keys: Tensor?, values: Tensor?) throws -> CategoricalLookup {
        guard let keys, let values else { throw ClipSafetyError.mismatch("graph: column \(c.column) names a missing vocabulary") }
        let strings = keys.data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
        return CategoricalLookup(column: c.column, keys: strings, indices: try values.int64Values(),
                                 oov: c.oovIndex, roundToFloat32: c.keyDType == .f32)
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
}
