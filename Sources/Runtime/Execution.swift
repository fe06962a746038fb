import Core
import CKernels
import Dispatch
import Foundation

// How a `Scorer` runs its graph.
//
// Reproducibility: every product runs the fixed-order kernel (`PackedWeights`), and every other
// step works row by row, so a row's output bytes depend only on the model and the row: not on
// the batch size, the thread count, the part a row falls in or its position there.
//
// Threads: a large batch is split by rows into parts, one thread each; each part runs the whole
// graph on its own rows, in its own rows of the workspace, so the parts share nothing but the
// read-only weights. Small batches run as one part on the calling thread (`plan(rows:)`).
//
// Input pass: the first pass over the input (widening f16/f64, or the first `normalize`, fused
// with the copy for f32) also sums each row's squares, so the input checks (`InputStatistics`)
// cost no extra pass over memory. Leading steps that work within a row (the autokeras heads'
// `impute_nan`, `categorical_lookup`, `normalize`) run in that pass, row by row.

extension Scorer {
    /// True when the CPU has AVX2, FMA and F16C, for the AVX2 kernels of `CKernels`.
    static let hasAVX2FMA = clipsafety_has_avx2_fma() != 0

    /// Work (floating-point operations) below which a part is not worth a thread: about 40 µs
    /// of one core, well above the few µs that waking a worker costs.
    static let minimumFlopsPerPart = 4_000_000

    /// Rows below which a part is not worth a thread: one full tile of the product kernel.
    static let minimumRowsPerPart = 6

    /// Rows of float64 input narrowed per call of the few-dot-products kernel: a multiple of
    /// its row blocks (2, 3, 4), and 48 KB at H/14's width, within L2.
    static let narrowedRowsPerCall = 12

    /// Scores a batch. Throws `.mismatch` when its width is not the model's input width.
    public func score(_ batch: EmbeddingBatch) throws -> ScoreResult {
        try score(batch, workspace: makeWorkspace(rows: batch.rows))
    }

    /// Bytes a batch's workspace and scores may take together (`rowsPerBatch`).
    public static let batchMemoryBudget = 128 << 20

    /// `requested` rows, or fewer when a model's wide activations would make the workspace
    /// (two Float32 buffers of the widest activation) and the scores of that many rows take
    /// more than `batchMemoryBudget`: a hostile graph cannot size memory by its widths.
    public func rowsPerBatch(_ requested: Int) -> Int {
        let bytesPerRow = (2 * maxWidth + outputWidth + 1) * MemoryLayout<Float>.size
        return Swift.max(1, Swift.min(requested, Self.batchMemoryBudget / bytesPerRow))
    }

    /// Scratch memory for batches of up to `rows` rows, to reuse across calls (one per thread).
    public func makeWorkspace(rows: Int) -> ScoreWorkspace {
        ScoreWorkspace(rows: rows, width: maxWidth)
    }

    /// Scores a batch in `workspace`, allocating nothing but the result.
    public func score(_ batch: EmbeddingBatch, workspace: ScoreWorkspace) throws -> ScoreResult {
        try run(batch, workspace: workspace, measuring: false).result
    }

    /// Scores a batch and measures its rows for the input checks (norms, non-finite values) in
    /// the same pass over the input: the checks add no memory traffic to scoring.
    public func scoreMeasuring(_ batch: EmbeddingBatch, workspace: ScoreWorkspace) throws -> (result: ScoreResult, statistics: InputStatistics) {
        let (result, statistics) = try run(batch, workspace: workspace, measuring: true)
        return (result, statistics ?? InputStatistics())
    }

    /// In how many row parts (one thread each) a batch of `rows` runs: enough work and rows
    /// for each, at most `parallelism`. The scores do not depend on it.
    func plan(rows: Int) -> Int {
        guard parallelism > 1 else { return 1 }
        let work = rows * Swift.max(flopsPerRow, 8 * inputWidth)
        return Swift.max(1, Swift.min(parallelism, work / Self.minimumFlopsPerPart, rows / Self.minimumRowsPerPart))
    }

    private func run(_ batch: EmbeddingBatch, workspace: ScoreWorkspace, measuring: Bool) throws -> (result: ScoreResult, statistics: InputStatistics?) {
        try check(batch, workspace: workspace)
        if batch.rows == 0 {
            return (ScoreResult(rows: 0, columns: outputWidth, scores: [], labels: producesLabels ? [] : nil), measuring ? InputStatistics() : nil)
        }
        let parts = plan(rows: batch.rows)
        guard measuring else { return (runParts(batch, parts: parts, workspace: workspace, statistics: nil), nil) }
        // Each part measures its own rows, on its own thread, while their sums are in cache,
        // into its own slot (on the stack: a heap array for them added 5-8 % to a one-row call of
        // the B/32 port).
        return withUnsafeTemporaryAllocation(of: InputStatistics.self, capacity: parts) { slots in
            let first = slots.baseAddress!
            first.initialize(repeating: InputStatistics(), count: parts)
            let result = runParts(batch, parts: parts, workspace: workspace, statistics: first)
            var statistics = InputStatistics()
            for part in slots { statistics.merge(part) }
            first.deinitialize(count: parts)
            return (result, statistics)
        }
    }

    /// Throws unless `batch` has the model's width and fits `workspace` and 32-bit indices.
    private func check(_ batch: EmbeddingBatch, workspace: ScoreWorkspace) throws {
        guard batch.columns == inputWidth else {
            throw ClipSafetyError.mismatch("input has \(batch.columns) columns; the model expects \(inputWidth) (\(card.backbone))")
        }
        guard batch.rows <= Int(Int32.max) / Swift.max(maxWidth, inputWidth) else {
            throw ClipSafetyError.limitExceeded("a batch of \(batch.rows) rows is too large for one matrix product; score it in smaller batches")
        }
        guard batch.rows <= workspace.rows, workspace.width >= maxWidth else {
            throw ClipSafetyError.mismatch("a batch of \(batch.rows) rows does not fit a workspace made for \(workspace.rows)")
        }
    }

    /// Runs `batch` in `parts` row parts; each part measures its rows into `statistics[part]`
    /// when `statistics` is given.
    private func runParts(_ batch: EmbeddingBatch, parts: Int, workspace: ScoreWorkspace,
                          statistics: UnsafeMutablePointer<InputStatistics>?) -> ScoreResult {
        let n = batch.rows
        var scores = [Float](repeating: 0, count: n * outputWidth)
        var labels = [Int64](repeating: 0, count: producesLabels ? n : 0)
        scores.withUnsafeMutableBufferPointer { scoreBuffer in
            labels.withUnsafeMutableBufferPointer { labelBuffer in
                let output = Output(scores: scoreBuffer.baseAddress!, labels: labelBuffer.baseAddress)
                parallelFor(parts) { part in
                    let rows = (n * part / parts)..<(n * (part + 1) / parts)
                    self.runPart(batch, rows: rows, workspace: workspace, output: output,
                                 statistics: statistics.map { $0 + part })
                }
            }
        }
        return ScoreResult(rows: n, columns: outputWidth, scores: scores, labels: producesLabels ? labels : nil)
    }

    /// Where the parts write their results.
    private struct Output {
        let scores: UnsafeMutablePointer<Float>
        let labels: UnsafeMutablePointer<Int64>?
    }

    /// One part's rows as the graph runs: the activation in `a` (`rows` × `width`), `b` free.
    struct Activation {
        var a: UnsafeMutablePointer<Float>
        var b: UnsafeMutablePointer<Float>
        var width: Int
        let rows: Int

        mutating func swapBuffers(width: Int) {
            swap(&a, &b)
            self.width = width
        }
    }

    /// Runs the whole graph on `rows` of `batch`, in the same rows of the workspace.
    private func runPart(_ whole: EmbeddingBatch, rows: Range<Int>, workspace: ScoreWorkspace, output: Output,
                         statistics: UnsafeMutablePointer<InputStatistics>?) {
        let batch = whole.rows(rows)
        var activation = Activation(a: workspace.first + rows.lowerBound * workspace.width,
                                    b: workspace.second + rows.lowerBound * workspace.width,
                                    width: inputWidth, rows: rows.count)
        let sums = statistics == nil ? nil : workspace.sumsOfSquares + rows.lowerBound
        let consumed = readInput(batch, into: &activation, sums: sums)
        if let sums, let statistics {
            statistics.pointee = InputStatistics(sumsOfSquares: UnsafeBufferPointer(start: sums, count: rows.count), of: batch)
        }
        for step in steps.dropFirst(consumed) {
            apply(step, to: &activation, input: batch, labels: output.labels.map { $0 + rows.lowerBound })
        }
        (output.scores + rows.lowerBound * activation.width).update(from: activation.a, count: rows.count * activation.width)
    }

    /// The first pass over the input: the activation as Float32, and each row's Σ x² into `sums`.
    /// Fuses the first step when it can (a product, or `normalize`); returns how many steps
    /// (0 or 1) it ran.
    private func readInput(_ batch: EmbeddingBatch, into activation: inout Activation, sums: UnsafeMutablePointer<Float>?) -> Int {
        switch (batch.elementType, steps.first) {
        case (_, .dense(let weight, let bias, let relu)?) where weight.rowMajor != nil && Self.hasAVX2FMA:
            fewDots(batch, weight: weight, into: activation, sums: sums)
            Self.addBiasAndRelu(bias, relu: relu, rows: batch.rows, outputs: weight.outputs, to: activation.a)
            activation.width = weight.outputs
        case (.float32, .dense(let weight, let bias, let relu)?):
            // Nothing changes the input before the first product: multiply it where it lies.
            let input = batch.base.assumingMemoryBound(to: Float.self)
            if let sums {
                for r in 0..<batch.rows { sums[r] = Self.sumOfSquares(input + r * batch.columns, count: batch.columns) }
            }
            weight.multiply(input, rows: batch.rows, into: activation.a)
            Self.addBiasAndRelu(bias, relu: relu, rows: batch.rows, outputs: weight.outputs, to: activation.a)
            activation.width = weight.outputs
        case (_, .normalize(let mean, let denominator)?):
            normalizeInput(batch, mean: mean, denominator: denominator, into: activation.a, sums: sums)
        default:
            return readRows(batch, into: activation, sums: sums)
        }
        return 1
    }

    /// The input copied as Float32 row by row, running the leading steps that work within a
    /// row (`impute_nan`, `categorical_lookup`, `normalize`: the autokeras heads' preprocessing)
    /// on each row while it is in cache, instead of one pass over the whole activation per
    /// step. Each step does to a row exactly what its whole-activation form does, so the bytes
    /// are the same. Returns how many steps it ran.
    private func readRows(_ batch: EmbeddingBatch, into activation: Activation, sums: UnsafeMutablePointer<Float>?) -> Int {
        let rowSteps = Array(steps.prefix { $0.worksWithinARow })
        let d = batch.columns
        for r in 0..<batch.rows {
            let row = activation.a + r * d
            batch.copyRowAsFloat32(r, into: row)
            sums?[r] = Self.sumOfSquares(row, count: d)
            for step in rowSteps { Self.apply(step, toRow: r, at: row, width: d, input: batch) }
        }
        return rowSteps.count
    }

    /// One row-local step on row `r` (at `row`, `width` values); `input` is what
    /// `categorical_lookup` reads.
    @inline(__always)
    private static func apply(_ step: Step, toRow r: Int, at row: UnsafeMutablePointer<Float>, width: Int, input: EmbeddingBatch) {
        switch step {
        case .impute(let columns, let kept, let value):
            imputeRow(row, width: width, columns: columns, kept: kept, value: value)
        case .lookup(let lookups):
            for lookup in lookups {
                lookup.starts.withUnsafeBufferPointer { starts in
                    let i = lookup.interval(of: input.value(row: r, column: lookup.column), starts: starts.baseAddress!, count: starts.count)
                    row[lookup.column] = lookup.values[i]
                }
            }
        case .normalize(let mean, let denominator):
            mean.withUnsafeBufferPointer { m in
                denominator.withUnsafeBufferPointer { q in
                    _ = normalizeRow(row, into: row, mean: m.baseAddress!, denominator: q.baseAddress!, count: width)
                }
            }
        case .dense, .relu, .sigmoid, .argmax:
            break  // never passed here: `readRows` takes only steps that work within a row
        }
    }

    /// A product this narrow (the violence prompts: 2 outputs) is a few dot products per row;
    /// one pass computes them and the row's sum of squares, so the input check reads nothing
    /// twice (a general product and a separate check made the check cost 20–35 %).
    private func fewDots(_ batch: EmbeddingBatch, weight: PackedWeights, into activation: Activation, sums: UnsafeMutablePointer<Float>?) {
        let n = batch.rows, d = batch.columns, k = weight.outputs
        weight.rowMajor!.withUnsafeBufferPointer { w in
            switch batch.elementType {
            case .float32:
                clipsafety_few_dots_avx2(batch.base.assumingMemoryBound(to: Float.self), n, d, w.baseAddress!, k, activation.a, sums)
            case .float16:
                // Widened in registers: the same bits as float32 rows, one pass over memory.
                clipsafety_few_dots_f16_avx2(batch.base.assumingMemoryBound(to: UInt16.self), n, d, w.baseAddress!, k, activation.a, sums)
            case .float64:
                // Narrowed a few rows at a time, so that they are still in cache when the
                // kernel reads them in its blocks of rows (12 is a multiple of each block).
                var first = 0
                while first < n {
                    let count = Swift.min(Self.narrowedRowsPerCall, n - first)
                    for r in 0..<count { batch.copyRowAsFloat32(first + r, into: activation.b + r * d) }
                    clipsafety_few_dots_avx2(activation.b, count, d, w.baseAddress!, k, activation.a + first * k, sums.map { $0 + first })
                    first += count
                }
            }
        }
    }

    /// The first `normalize`, fused with reading (and widening) the input.
    private func normalizeInput(_ batch: EmbeddingBatch, mean: [Float], denominator: [Float],
                                into a: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>?) {
        let d = batch.columns
        mean.withUnsafeBufferPointer { m in
            denominator.withUnsafeBufferPointer { q in
                for r in 0..<batch.rows {
                    let row = a + r * d
                    let source: UnsafePointer<Float>
                    if batch.elementType == .float32 {
                        source = batch.base.assumingMemoryBound(to: Float.self) + r * d
                    } else {
                        batch.copyRowAsFloat32(r, into: row)
                        source = UnsafePointer(row)
                    }
                    let sum = Self.normalizeRow(source, into: row, mean: m.baseAddress!, denominator: q.baseAddress!, count: d)
                    sums?[r] = sum
                }
            }
        }
    }

    /// Runs one step on a part's activation. `input` is the part's rows of the graph input
    /// (what `categorical_lookup` reads); `labels` its rows of the label output.
    private func apply(_ step: Step, to activation: inout Activation, input: EmbeddingBatch, labels: UnsafeMutablePointer<Int64>?) {
        let a = activation.a, count = activation.rows * activation.width
        switch step {
        case .impute(let columns, let kept, let value):
            for r in 0..<activation.rows {
                Self.imputeRow(a + r * activation.width, width: activation.width, columns: columns, kept: kept, value: value)
            }
        case .lookup(let lookups):
            for lookup in lookups { Self.look(up: lookup, from: input, into: activation) }
        case .normalize(let mean, let denominator):
            Self.normalize(activation, mean: mean, denominator: denominator)
        case .dense(let weight, let bias, let relu):
            weight.multiply(a, rows: activation.rows, into: activation.b)
            Self.addBiasAndRelu(bias, relu: relu, rows: activation.rows, outputs: weight.outputs, to: activation.b)
            activation.swapBuffers(width: weight.outputs)
        case .relu:
            for i in 0..<count { a[i] = Swift.max(a[i], 0) }
        case .sigmoid:
            for i in 0..<count { a[i] = 1 / (1 + exp(-a[i])) }
        case .argmax:
            if let labels { Self.argmax(activation, into: labels) }
        }
    }

    /// Replaces one column by the vocabulary index of the input's value (`CategoricalLookup`).
    private static func look(up lookup: CategoricalLookup, from input: EmbeddingBatch, into activation: Activation) {
        lookup.starts.withUnsafeBufferPointer { starts in
            lookup.values.withUnsafeBufferPointer { values in
                for r in 0..<activation.rows {
                    let x = input.value(row: r, column: lookup.column)
                    let i = lookup.interval(of: x, starts: starts.baseAddress!, count: starts.count)
                    activation.a[r * activation.width + lookup.column] = values[i]
                }
            }
        }
    }

    /// `(x − mean) / denominator` in place, per column.
    private static func normalize(_ activation: Activation, mean: [Float], denominator: [Float]) {
        mean.withUnsafeBufferPointer { m in
            denominator.withUnsafeBufferPointer { q in
                for r in 0..<activation.rows {
                    let row = activation.a + r * activation.width
                    _ = normalizeRow(row, into: row, mean: m.baseAddress!, denominator: q.baseAddress!, count: activation.width)
                }
            }
        }
    }

    /// NaN → `value` in one row: in `columns`, or (nil) in every column but `kept`.
    @inline(__always)
    static func imputeRow(_ row: UnsafeMutablePointer<Float>, width: Int, columns: [Int]?, kept: [Int], value: Float) {
        if let columns {
            for c in columns where row[c].isNaN { row[c] = value }
            return
        }
        guard !kept.isEmpty else { return imputeRow(row, width: width, value: value) }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: kept.count) { saved in
            for (i, c) in kept.enumerated() { saved[i] = row[c] }
            imputeRow(row, width: width, value: value)
            for (i, c) in kept.enumerated() { row[c] = saved[i] }
        }
    }

    /// NaN → `value` across one row, 16 lanes at a time (a NaN is the one value unequal to itself).
    @inline(__always)
    static func imputeRow(_ row: UnsafeMutablePointer<Float>, width: Int, value: Float) {
        let raw = UnsafeMutableRawPointer(row)
        let fill = SIMD16<Float>(repeating: value)
        var i = 0
        while i + 16 <= width {
            var v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            v.replace(with: fill, where: v .!= v)
            raw.storeBytes(of: v, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < width {
            if row[i].isNaN { row[i] = value }
            i += 1
        }
    }

    /// Each row's first column of the largest value.
    private static func argmax(_ activation: Activation, into labels: UnsafeMutablePointer<Int64>) {
        let a = activation.a, width = activation.width
        for r in 0..<activation.rows {
            var best = 0
            for c in 1..<Swift.max(width, 1) where a[r * width + c] > a[r * width + best] { best = c }
            labels[r] = Int64(best)
        }
    }

    /// Σ x² of one row in 16-wide lanes (the norm check's sum; the same lane order everywhere,
    /// so a fused pass and a separate check agree to the bit).
    @inline(__always)
    static func sumOfSquares(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 16 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc += v * v
            i += 16
        }
        var total = acc.sum()
        while i < count { total += p[i] * p[i]; i += 1 }
        return total
    }

    /// `(x − mean) / denominator` of one row from `source` into `row` (which may be `source`),
    /// returning Σ x² of the source row as `sumOfSquares` computes it.
    @inline(__always)
    static func normalizeRow(_ source: UnsafePointer<Float>, into row: UnsafeMutablePointer<Float>,
                             mean: UnsafePointer<Float>, denominator: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        let src = UnsafeRawPointer(source), dst = UnsafeMutableRawPointer(row)
        let m = UnsafeRawPointer(mean), q = UnsafeRawPointer(denominator)
        while i + 16 <= count {
            let v = src.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc += v * v
            let shifted = v - m.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            dst.storeBytes(of: shifted / q.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self), toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var total = acc.sum()
        while i < count {
            let v = source[i]
            total += v * v
            row[i] = (v - mean[i]) / denominator[i]
            i += 1
        }
        return total
    }

    /// C += bias per row, then max(·, 0) when `relu`.
    static func addBiasAndRelu(_ bias: [Float]?, relu: Bool, rows: Int, outputs: Int, to c: UnsafeMutablePointer<Float>) {
        if let bias {
            bias.withUnsafeBufferPointer { b in
                for r in 0..<rows { addBias(b.baseAddress!, to: c + r * outputs, count: outputs, relu: relu) }
            }
        } else if relu {
            for i in 0..<(rows * outputs) { c[i] = Swift.max(c[i], 0) }
        }
    }

    /// row += bias, then max(·, 0) when `relu`, in 16-wide lanes.
    @inline(__always)
    static func addBias(_ bias: UnsafePointer<Float>, to row: UnsafeMutablePointer<Float>, count: Int, relu: Bool) {
        var i = 0
        let b = UnsafeRawPointer(bias), r = UnsafeMutableRawPointer(row)
        let zero = SIMD16<Float>()
        while i + 16 <= count {
            var v = r.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) + b.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            if relu { v.replace(with: zero, where: v .< zero) }
            r.storeBytes(of: v, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            let v = row[i] + bias[i]
            row[i] = relu ? Swift.max(v, 0) : v
            i += 1
        }
    }
}

/// Runs `body(i)` for i in 0..<count, concurrently when count > 1, and returns when all are
/// done. Every index must touch memory no other index touches (disjoint rows or slices).
func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 {
        if count == 1 { body(0) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let disjoint = DisjointWork(body: body)
        DispatchQueue.concurrentPerform(iterations: count) { disjoint.body($0) }
    }
}

/// A closure whose calls for different indices share no mutable memory (see `parallelFor`).
private struct DisjointWork: @unchecked Sendable {
    let body: (Int) -> Void
}

extension EmbeddingBatch {
    /// The batch's rows `range` (no copy).
    func rows(_ range: Range<Int>) -> EmbeddingBatch {
        EmbeddingBatch(base: base + range.lowerBound * columns * elementType.byteSize,
                       rows: range.count, columns: columns, elementType: elementType)
    }

    /// Row `row` as Float32 into `out` (`columns` values), rounding f64 to nearest.
    @inline(__always)
    func copyRowAsFloat32(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        let first = row * columns
        switch elementType {
        case .float32:
            out.update(from: base.assumingMemoryBound(to: Float.self) + first, count: columns)
        case .float16:
            Self.widenHalves(base.assumingMemoryBound(to: UInt16.self) + first, into: out, count: columns)
        case .float64:
            let src = base.assumingMemoryBound(to: Double.self) + first
            for i in 0..<columns { out[i] = Float(src[i]) }
        }
    }
}

/// Two activation buffers for `rows` × `width` floats and a sum of squares per row, reused by
/// `Scorer.score(_:workspace:)` so that scoring a stream of batches allocates nothing per batch.
/// Not thread-safe: one per concurrent caller (a call's own threads use disjoint rows of it).
public final class ScoreWorkspace: @unchecked Sendable {
    public let rows: Int
    public let width: Int
    let first: UnsafeMutablePointer<Float>
    let second: UnsafeMutablePointer<Float>
    let sumsOfSquares: UnsafeMutablePointer<Float>

    init(rows: Int, width: Int) {
        self.rows = rows
        self.width = width
        let count = Swift.max(rows * width, 1)
        first = .allocate(capacity: count)
        second = .allocate(capacity: count)
        sumsOfSquares = .allocate(capacity: Swift.max(rows, 1))
    }

    deinit {
        first.deallocate()
        second.deallocate()
        sumsOfSquares.deallocate()
    }
}
