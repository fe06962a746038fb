import Runtime

/// Rows that hold NaN or ±infinity. They get no score and no decision: their scores become
/// NaN (null or empty in text outputs) and their labels -1, so a row that could not be
/// scored is never reported as safe.
public struct InvalidRows: Sendable, Equatable {
    public private(set) var count = 0
    /// The first row indices found, for the summary line.
    public private(set) var first: [Int] = []
    static let listed = 10

    public init() {}

    /// Finds the non-finite rows of `batch`, whose first row is `firstRow` of the input, and
    /// blanks them in every result. Returns their indices within the batch.
    @discardableResult
    public mutating func blank(_ results: inout [ScoreResult], batch: EmbeddingBatch, firstRow: Int) -> [Int] {
        let rows = Self.nonFiniteRows(of: batch)
        for r in rows {
            for i in results.indices { Self.blank(row: r, in: &results[i]) }
            count += 1
            if first.count < Self.listed { first.append(firstRow + r) }
        }
        return rows
    }

    /// The indices of rows holding a value that is not finite as float32 (float64 values
    /// beyond float32's range count, as the input check counts them).
    static func nonFiniteRows(of batch: EmbeddingBatch) -> [Int] {
        let d = batch.columns
        return (0..<batch.rows).filter { r in
            switch batch.elementType {
            case .float16:
                let p = batch.base.assumingMemoryBound(to: UInt16.self) + r * d
                return (0..<d).contains { p[$0] & 0x7C00 == 0x7C00 }
            case .float32:
                let p = batch.base.assumingMemoryBound(to: Float.self) + r * d
                return (0..<d).contains { !p[$0].isFinite }
            case .float64:
                let p = batch.base.assumingMemoryBound(to: Double.self) + r * d
                return (0..<d).contains { !Float(p[$0]).isFinite }
            }
        }
    }

    static func blank(row r: Int, in result: inout ScoreResult) {
        for c in 0..<result.columns { result.scores[r * result.columns + c] = .nan }
        if result.labels != nil { result.labels![r] = -1 }
    }

    /// `rows 17, 230, … (12 in all) hold NaN or infinity`, or nil when there are none.
    public var summary: String? {
        guard count > 0 else { return nil }
        let listed = first.map(String.init).joined(separator: ", ") + (count > first.count ? ", …" : "")
        return (count == 1 ? "row \(listed) holds" : "rows \(listed) (\(count) in all) hold")
            + " NaN or infinity: no score and no decision were given to \(count == 1 ? "it" : "them")"
    }
}
