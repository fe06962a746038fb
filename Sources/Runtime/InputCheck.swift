import Foundation

/// What the rows of an input look like against a model's precondition, gathered batch by
/// batch before scoring (README, "Input checks").
///
/// Every upstream head expects L2-normalised CLIP embeddings; un-normalised rows give silently
/// wrong numbers, so they are counted and reported, never scored without a word.
public struct InputStatistics: Sendable, Equatable {
    /// A row counts as L2-normalised when `|‖x‖ − 1| ≤ normTolerance`. Float16 storage of a
    /// unit vector moves its norm by about 1e-3, so 1e-2 passes every honest embedding and
    /// catches un-normalised ones (whose norms are typically 5–30 for CLIP).
    public static let normTolerance = 0.01

    public var rows = 0
    /// Rows holding NaN or ±infinity.
    public var nonFiniteRows = 0
    /// Finite rows whose norm is outside 1 ± `normTolerance`.
    public var offNormRows = 0
    /// Smallest and largest norm of the finite rows (nil before any).
    public var minNorm: Double?
    public var maxNorm: Double?

    public init() {}

    /// Statistics of one batch, in one pass over it. Scoring with `Scorer.scoreMeasuring`
    /// gathers the same figures without this extra pass.
    public init(_ batch: EmbeddingBatch) {
        let d = batch.columns
        var sums = [Float](repeating: 0, count: batch.rows)
        var row = [Float](repeating: 0, count: batch.elementType == .float32 ? 0 : d)
        for r in 0..<batch.rows {
            if batch.elementType == .float32 {
                sums[r] = Scorer.sumOfSquares(batch.base.assumingMemoryBound(to: Float.self) + r * d, count: d)
            } else {
                sums[r] = row.withUnsafeMutableBufferPointer { out in
                    batch.copyRowAsFloat32(r, into: out.baseAddress!)
                    return Scorer.sumOfSquares(out.baseAddress!, count: d)
                }
            }
        }
        self = sums.withUnsafeBufferPointer { InputStatistics(sumsOfSquares: $0, of: batch) }
    }

    /// Statistics from each row's Σ x² (computed on the row as Float32); only a row whose sum
    /// is not finite is looked at again, element by element, to tell NaN/∞ from overflow.
    /// Norms are compared as sums of squares against (1 ± tolerance)², so only the smallest
    /// and largest sum need a square root. Sums of squares are never negative, so their bit
    /// patterns order like their values, with ∞ and NaN above every finite sum: the common
    /// case is an integer loop the compiler vectorises (next to a 32 ns-per-row head, a scalar
    /// loop with a square root per row took a tenth of the time). A batch holding a non-finite
    /// sum is measured row by row.
    init(sumsOfSquares sums: UnsafeBufferPointer<Float>, of batch: EmbeddingBatch) {
        rows = batch.rows
        guard !sums.isEmpty else { return }
        let low = Float((1 - Self.normTolerance) * (1 - Self.normTolerance)).bitPattern
        let high = Float((1 + Self.normTolerance) * (1 + Self.normTolerance)).bitPattern
        let infinity = Float.infinity.bitPattern
        var smallest = UInt32.max, largest: UInt32 = 0, offNorm: UInt32 = 0
        let bits = UnsafeRawPointer(sums.baseAddress!).assumingMemoryBound(to: UInt32.self)
        for i in 0..<sums.count {
            let b = bits[i]
            smallest = Swift.min(smallest, b)
            largest = Swift.max(largest, b)
            offNorm &+= (b < low || b > high) ? 1 : 0
        }
        if largest < infinity {
            offNormRows = Int(offNorm)
            minNorm = Double(Float(bitPattern: smallest)).squareRoot()
            maxNorm = Double(Float(bitPattern: largest)).squareRoot()
            return
        }
        var finiteRows = 0
        var lowest = Float.infinity, highest = -Float.infinity
        for (r, sum) in sums.enumerated() {
            if !sum.isFinite,
               (0..<batch.columns).contains(where: { !batch.value(row: r, column: $0).isFinite }) {
                nonFiniteRows += 1
                continue
            }
            // A sum that is infinite here came from finite values whose squares overflow.
            finiteRows += 1
            lowest = Swift.min(lowest, sum)
            highest = Swift.max(highest, sum)
            if sum.bitPattern < low || sum.bitPattern > high { offNormRows += 1 }
        }
        if finiteRows > 0 {
            minNorm = Double(lowest).squareRoot()
            maxNorm = Double(highest).squareRoot()
        }
    }

    public mutating func merge(_ other: InputStatistics) {
        rows += other.rows
        nonFiniteRows += other.nonFiniteRows
        offNormRows += other.offNormRows
        if let m = other.minNorm { minNorm = Swift.min(minNorm ?? m, m) }
        if let m = other.maxNorm { maxNorm = Swift.max(maxNorm ?? m, m) }
    }

    /// One-line findings against `precondition` (`l2-normalized` checks norms; every
    /// precondition reports non-finite rows), or nil when there is nothing to say.
    public func warning(precondition: String) -> String? {
        var parts: [String] = []
        if precondition == "l2-normalized", offNormRows > 0 {
            parts.append(String(format: "%d of %d rows are not L2-normalised (norm min %.4g, max %.4g; tolerance 1 ± %g)",
                                offNormRows, rows, minNorm ?? .nan, maxNorm ?? .nan, Self.normTolerance))
        }
        if nonFiniteRows > 0 {
            parts.append("\(nonFiniteRows) of \(rows) rows hold NaN or infinity")
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }
}

/// A copy of `batch` with every row divided by its L2 norm, as float64 so that ops reading the
/// input itself (`categorical_lookup`) see the normalised values. Zero rows stay zero.
public final class NormalizedBatch {
    private let storage: UnsafeMutablePointer<Double>
    public let batch: EmbeddingBatch

    public init(_ source: EmbeddingBatch) {
        let n = source.rows * source.columns
        storage = .allocate(capacity: Swift.max(n, 1))
        for r in 0..<source.rows {
            var sum = 0.0
            for c in 0..<source.columns {
                let v = source.value(row: r, column: c)
                storage[r * source.columns + c] = v
                sum += v * v
            }
            let norm = sum.squareRoot()
            if norm > 0, norm.isFinite {
                for c in 0..<source.columns { storage[r * source.columns + c] /= norm }
            }
        }
        batch = EmbeddingBatch(base: UnsafeRawPointer(storage), rows: source.rows, columns: source.columns, elementType: .float64)
    }

    deinit { storage.deallocate() }
}
