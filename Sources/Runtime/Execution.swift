import Core
import CBLAS
import CKernels
import Dispatch
import Foundation

// How a `Scorer` runs its graph.
//
// Threads: OpenBLAS's own threading is slow on the narrow products of these heads. Measured on
// 2 cores (OpenBLAS 0.3.21): 4096×512 · 512×32 takes 2.35 ms with 2 OpenBLAS threads and 1.65 ms
// with one, while two threads that each multiply half the rows single-threaded take 0.92 ms;
// L/14's products gain 1.7–1.9× the same way, and H/14's 1024-wide ones lose under 5 %. Two
// callers of threaded OpenBLAS also serialise on its lock. So the scorer splits a large batch
// by rows itself, with OpenBLAS at one thread: each part runs the whole graph on its own rows,
// in its own rows of the workspace, so the parts share nothing but the read-only weights.
// Small batches run as one part, with OpenBLAS threads only when the work is worth them
// (`plan(rows:)`).
//
// Input pass: the first pass over the input (widening f16/f64, or the first `normalize`, fused
// with the copy for f32) also sums each row's squares, so the input checks (`InputStatistics`)
// cost no extra pass over memory.

/// OpenBLAS's thread count, which is process-wide: set before each batch from
/// `Scorer.plan(rows:)`, one while row parts run (each part is one thread).
enum BLASThreads {
    static func use(_ threads: Int) {
        if openblas_get_num_threads() != Int32(threads) { openblas_set_num_threads(Int32(threads)) }
    }
}

extension Scorer {
    /// True when the CPU has AVX2, FMA and F16C, for `clipsafety_few_dots_avx2` and `_f16_avx2`.
    static let hasAVX2FMA = clipsafety_has_avx2_fma() != 0

    /// Work (floating-point operations) below which a part is not worth a thread: about 40 µs
    /// of one core, well above the few µs that waking a worker costs.
    static let minimumFlopsPerPart = 4_000_000

    /// Rows of float64 input narrowed per call of the few-dot-products kernel: a multiple of
    /// its row blocks (2, 3, 4), and 48 KB at H/14's width, within L2.
    static let narrowedRowsPerCall = 12

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
        try run(batch, workspace: workspace, measuring: false).result
    }

    /// Scores a batch and measures its rows for the input checks (norms, non-finite values) in
    /// the same pass over the input: the checks add no memory traffic to scoring.
    public func scoreMeasuring(_ batch: EmbeddingBatch, workspace: ScoreWorkspace) throws -> (result: ScoreResult, statistics: InputStatistics) {
        let (result, statistics) = try run(batch, workspace: workspace, measuring: true)
        return (result, statistics ?? InputStatistics())
    }

    /// How a batch of `rows` runs: in how many row parts (each one thread, OpenBLAS single-
    /// threaded), or as one part with how many OpenBLAS threads.
    ///
    /// Each part reads every weight once for its own products, so a part needs enough rows to
    /// amortise that: at least weights/4096 rows (H/14's 22 MB of weights then split only from
    /// about 2700 rows; below that OpenBLAS's own threads, which share one packed copy, were
    /// faster). A batch too small for parts uses OpenBLAS threads only when it holds enough work
    /// (a 64 KB matrix-vector product took 21 µs threaded and 1.3 µs on one thread).
    func plan(rows: Int) -> (parts: Int, blasThreads: Int) {
        guard parallelism > 1 else { return (1, 1) }
        let work = rows * Swift.max(flopsPerRow, 8 * inputWidth)
        let byWork = Swift.min(parallelism, work / Self.minimumFlopsPerPart)
        let weights = flopsPerRow / 2
        let parts = Swift.min(byWork, rows / Swift.max(16, weights / 4096))
        return parts > 1 ? (parts, 1) : (1, Swift.max(1, byWork))
    }

    private func run(_ batch: EmbeddingBatch, workspace: ScoreWorkspace, measuring: Bool) throws -> (result: ScoreResult, statistics: InputStatistics?) {
        guard batch.columns == inputWidth else {
            throw ClipSafetyError.mismatch("input has \(batch.columns) columns; the model expects \(inputWidth) (\(card.backbone))")
        }
        let n = batch.rows
        if n == 0 {
            return (ScoreResult(rows: 0, columns: outputWidth, scores: [], labels: producesLabels ? [] : nil), measuring ? InputStatistics() : nil)
        }
        guard n <= Int(Int32.max) / Swift.max(maxWidth, inputWidth) else {
            throw ClipSafetyError.limitExceeded("a batch of \(n) rows is too large for one matrix product; score it in smaller batches")
        }
        guard n <= workspace.rows, workspace.width >= maxWidth else {
            throw ClipSafetyError.mismatch("a batch of \(n) rows does not fit a workspace made for \(workspace.rows)")
        }
        let (parts, blasThreads) = plan(rows: n)
        BLASThreads.use(blasThreads)
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

    /// Runs `batch` in `parts` row parts; each part measures its rows into `statistics[part]`
    /// when `statistics` is given.
    private func runParts(_ batch: EmbeddingBatch, parts: Int, workspace: ScoreWorkspace,
                          statistics: UnsafeMutablePointer<InputStatistics>?) -> ScoreResult {
        let n = batch.rows
        var scores = [Float](repeating: 0, count: n * outputWidth)
        var labels = [Int64](repeating: 0, count: producesLabels ? n : 0)
        let sums = statistics == nil ? nil : workspace.sumsOfSquares
        scores.withUnsafeMutableBufferPointer { scoreBuffer in
            labels.withUnsafeMutableBufferPointer { labelBuffer in
                let output = Output(scores: scoreBuffer.baseAddress!, labels: labelBuffer.baseAddress)
                parallelFor(parts) { part in
                    let rows = (n * part / parts)..<(n * (part + 1) / parts)
                    self.runPart(batch, rows: rows, workspace: workspace, sumsOfSquares: sums, output: output,
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

    /// Runs the whole graph on `rows` of `batch`, in the same rows of the workspace.
    private func runPart(_ whole: EmbeddingBatch, rows: Range<Int>, workspace: ScoreWorkspace,
                         sumsOfSquares: UnsafeMutablePointer<Float>?, output: Output,
                         statistics: UnsafeMutablePointer<InputStatistics>?) {
        let n = rows.count
        let d = inputWidth
        let batch = EmbeddingBatch(base: whole.base + rows.lowerBound * d * whole.elementType.byteSize,
                                   rows: n, columns: d, elementType: whole.elementType)
        var a = workspace.first + rows.lowerBound * workspace.width
        var b = workspace.second + rows.lowerBound * workspace.width
        let sums = sumsOfSquares.map { $0 + rows.lowerBound }
        var width = d
        var remaining = steps[...]
        switch (batch.elementType, steps.first) {
        case (_, .dense(let weight, let bias, _, let outputs, let relu)?) where outputs <= 4 && Self.hasAVX2FMA:
            // A product this narrow (the violence prompts: 2 outputs) is a few dot products per
            // row; one pass computes them and the row's sum of squares, so the input check
            // reads nothing twice (BLAS and a separate check made the check cost 20–35 %).
            weight.withUnsafeBufferPointer { w in
                switch batch.elementType {
                case .float32:
                    clipsafety_few_dots_avx2(batch.base.assumingMemoryBound(to: Float.self), n, d, w.baseAddress!, outputs, a, sums)
                case .float16:
                    // Widened in registers: the same bits as float32 rows, one pass over memory.
                    clipsafety_few_dots_f16_avx2(batch.base.assumingMemoryBound(to: UInt16.self), n, d, w.baseAddress!, outputs, a, sums)
                case .float64:
                    // Narrowed a few rows at a time, so that they are still in cache when the
                    // kernel reads them in its blocks of rows (12 is a multiple of each block).
                    var first = 0
                    while first < n {
                        let count = Swift.min(Self.narrowedRowsPerCall, n - first)
                        for r in 0..<count { batch.copyRowAsFloat32(first + r, into: b + r * d) }
                        clipsafety_few_dots_avx2(b, count, d, w.baseAddress!, outputs, a + first * outputs, sums.map { $0 + first })
                        first += count
                    }
                }
            }
            Self.addBiasAndRelu(bias, relu: relu, rows: n, outputs: outputs, to: a)
            width = outputs
            remaining = steps.dropFirst()
        case (.float32, .dense(let weight, let bias, let inputs, let outputs, let relu)?):
            // Nothing changes the input before the first product: multiply it where it lies.
            let input = batch.base.assumingMemoryBound(to: Float.self)
            if let sums {
                for r in 0..<n { sums[r] = Self.sumOfSquares(input + r * d, count: d) }
            }
            Self.dense(input: input, rows: n, inputs: inputs, weight: weight, bias: bias, outputs: outputs, relu: relu, into: a)
            width = outputs
            remaining = steps.dropFirst()
        case (_, .normalize(let mean, let denominator)?):
            mean.withUnsafeBufferPointer { m in
                denominator.withUnsafeBufferPointer { q in
                    for r in 0..<n {
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
            remaining = steps.dropFirst()
        default:
            for r in 0..<n {
                let row = a + r * d
                batch.copyRowAsFloat32(r, into: row)
                sums?[r] = Self.sumOfSquares(row, count: d)
            }
        }
        if let sums, let statistics {
            statistics.pointee = InputStatistics(sumsOfSquares: UnsafeBufferPointer(start: sums, count: n), of: batch)
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
                    denominator.withUnsafeBufferPointer { q in
                        for r in 0..<n {
                            let row = a + r * width
                            _ = Self.normalizeRow(row, into: row, mean: m.baseAddress!, denominator: q.baseAddress!, count: width)
                        }
                    }
                }
            case .dense(let weight, let bias, let inputs, let outputs, let relu):
                Self.dense(input: a, rows: n, inputs: inputs, weight: weight, bias: bias, outputs: outputs, relu: relu, into: b)
                swap(&a, &b)
                width = outputs
            case .relu:
                for i in 0..<(n * width) { a[i] = Swift.max(a[i], 0) }
            case .sigmoid:
                for i in 0..<(n * width) { a[i] = 1 / (1 + exp(-a[i])) }
            case .argmax:
                if let labels = output.labels {
                    for r in 0..<n {
                        var best = 0
                        for c in 1..<Swift.max(width, 1) where a[r * width + c] > a[r * width + best] { best = c }
                        labels[rows.lowerBound + r] = Int64(best)
                    }
                }
            }
        }
        (output.scores + rows.lowerBound * width).update(from: a, count: n * width)
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

    /// C = A · Wᵀ + bias, then max(·, 0) when `relu` (A: rows×inputs, W: outputs×inputs,
    /// C: rows×outputs). The product goes through CBLAS; bias and relu follow in one pass over C.
    /// (Filling C with the bias for beta = 1 costs a pass of its own: B/32 at batch 4096 ran 3.55
    /// against 3.33 M rows/s that way, alternating runs.)
    static func dense(input a: UnsafePointer<Float>, rows: Int, inputs: Int, weight: [Float], bias: [Float]?,
                      outputs: Int, relu: Bool, into c: UnsafeMutablePointer<Float>) {
        precondition(weight.count == outputs * inputs && (bias?.count ?? outputs) == outputs)
        weight.withUnsafeBufferPointer { w in
            if rows == 1 {
                // sgemm with M = 1 is slower than sgemv in older OpenBLAS.
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(outputs), Int32(inputs), 1, w.baseAddress,
                            Int32(inputs), a, 1, 0, c, 1)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                            Int32(rows), Int32(outputs), Int32(inputs),
                            1, a, Int32(inputs),
                            w.baseAddress, Int32(inputs),
                            0, c, Int32(outputs))
            }
        }
        addBiasAndRelu(bias, relu: relu, rows: rows, outputs: outputs, to: c)
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
