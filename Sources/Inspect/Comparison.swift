import Foundation
import Runtime

/// The difference between two models' outputs on the same inputs, accumulated batch by batch:
/// max and mean absolute difference, the rows that differ most, and the decisions that flip
/// (the label for prompt classifiers; `> threshold` for single-column heads).
public struct Comparison: Sendable {
    /// How decisions are compared.
    public enum Rule: String, Codable, Sendable {
        /// Single-column outputs: positive when `output > threshold`.
        case threshold
        /// Both models produce labels (argmax).
        case argmax
    }

    public struct RowDiff: Codable, Equatable, Sendable {
        public var row: Int
        /// Column where this row differs most.
        public var column: Int
        public var a: Double
        public var b: Double
        public var absDiff: Double

        enum CodingKeys: String, CodingKey {
            case row, column, a, b
            case absDiff = "abs_diff"
        }
    }

    public let columns: Int
    public let rule: Rule?
    public let threshold: Double?
    /// How many of the worst rows are kept, and of the flipped rows listed.
    public let keepWorst: Int
    public let keepFlips: Int

    public private(set) var rows = 0
    public private(set) var maxAbsDiff = 0.0
    public private(set) var sumAbsDiff = 0.0
    /// Differences that are NaN (one side NaN, or both infinite the same way is 0).
    public private(set) var nanDiffs = 0
    public private(set) var worstRows: [RowDiff] = []
    public private(set) var flips = 0
    public private(set) var flippedRows: [Int] = []

    /// Mean over the differences that are numbers.
    public var meanAbsDiff: Double {
        let n = rows * columns - nanDiffs
        return n > 0 ? sumAbsDiff / Double(n) : 0
    }
    /// The single largest difference.
    public var worst: RowDiff? { worstRows.first }

    /// `labels`: both sides produce labels (argmax rule); else `threshold` applies to one column.
    public init(columns: Int, labels: Bool, threshold: Double?, keepWorst: Int = 5, keepFlips: Int = 20) {
        self.columns = columns
        if labels {
            rule = .argmax
            self.threshold = nil
        } else if let threshold, columns == 1 {
            rule = .threshold
            self.threshold = threshold
        } else {
            rule = nil
            self.threshold = nil
        }
        self.keepWorst = keepWorst
        self.keepFlips = keepFlips
    }

    /// Adds one batch scored by both models; `firstRow` numbers its rows.
    public mutating func add(_ a: ScoreResult, _ b: ScoreResult, firstRow: Int) throws {
        guard a.rows == b.rows, a.columns == columns, b.columns == columns else {
            throw ClipSafetyError.mismatch("the models' outputs have \(a.columns) and \(b.columns) columns")
        }
        for r in 0..<a.rows {
            var rowWorst = RowDiff(row: firstRow + r, column: 0, a: 0, b: 0, absDiff: -1)
            for c in 0..<columns {
                let x = Double(a.score(row: r, column: c)), y = Double(b.score(row: r, column: c))
                let d = x == y ? 0 : Swift.abs(x - y)  // equal infinities differ by 0
                if d.isNaN {
                    nanDiffs += 1
                    rowWorst = RowDiff(row: firstRow + r, column: c, a: x, b: y, absDiff: .infinity)
                    continue
                }
                sumAbsDiff += d
                if d > rowWorst.absDiff { rowWorst = RowDiff(row: firstRow + r, column: c, a: x, b: y, absDiff: d) }
            }
            if rowWorst.absDiff.isFinite { maxAbsDiff = Swift.max(maxAbsDiff, rowWorst.absDiff) } else { maxAbsDiff = .infinity }
            keep(rowWorst)
            var flipped = false
            switch rule {
            case .argmax:
                if let la = a.labels, let lb = b.labels, r < la.count, r < lb.count { flipped = la[r] != lb[r] }
            case .threshold:
                if let t = threshold {
                    flipped = (Double(a.score(row: r)) > t) != (Double(b.score(row: r)) > t)
                }
            case nil:
                break
            }
            if flipped {
                flips += 1
                if flippedRows.count < keepFlips { flippedRows.append(firstRow + r) }
            }
        }
        rows += a.rows
    }

    private mutating func keep(_ d: RowDiff) {
        guard columns > 0 else { return }
        if worstRows.count == keepWorst, let last = worstRows.last, !(d.absDiff > last.absDiff) { return }
        let at = worstRows.firstIndex { d.absDiff > $0.absDiff } ?? worstRows.count
        worstRows.insert(d, at: at)
        if worstRows.count > keepWorst { worstRows.removeLast() }
    }
}
