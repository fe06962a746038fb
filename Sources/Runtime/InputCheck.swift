import CBLAS
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

    /// Statistics of one batch: one BLAS dot product per row; only a row whose sum of
    /// squares is not finite is scanned element by element.
    public init(_ batch: EmbeddingBatch) {
        rows = batch.rows
        let d = batch.columns
        var scratch = [Float](repeating: 0, count: batch.elementType == .float16 ? d : 0)
        for r in 0..<batch.rows {
            let sum: Double
            switch batch.elementType {
            case .float32:
                sum = Double(Self.sumOfSquares(batch.base.assumingMemoryBound(to: Float.self) + r * d, count: d))
            case .float16:
                let p = batch.base.assumingMemoryBound(to: UInt16.self) + r * d
                scratch.withUnsafeMutableBufferPointer { EmbeddingBatch.widenHalves(p, into: $0.baseAddress!, count: d) }
                sum = Double(scratch.withUnsafeBufferPointer { Self.sumOfSquares($0.baseAddress!, count: d) })
            case .float64:
                let p = batch.base.assumingMemoryBound(to: Double.self) + r * d
                sum = cblas_ddot(Int32(d), p, 1, p, 1)
            }
            var norm = sum.squareRoot()
            if !sum.isFinite {
                if (0..<d).contains(where: { !batch.value(row: r, column: $0).isFinite }) {
                    nonFiniteRows += 1
                    continue
                }
                norm = .infinity  // finite values whose squares overflow float32
            }
            minNorm = Swift.min(minNorm ?? norm, norm)
            maxNorm = Swift.max(maxNorm ?? norm, norm)
            if Swift.abs(norm - 1) > Self.normTolerance { offNormRows += 1 }
        }
    }

    /// Σ x² of one row in 16-wide SIMD lanes: a BLAS call per 512-value row costs more in
    /// dispatch than in arithmetic.
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
