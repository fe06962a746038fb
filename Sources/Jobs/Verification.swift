import Converters
import Foundation
import Runtime

/// `verify`: a model's outputs on a reference's inputs, compared with the reference outputs of
/// the original framework (`.npz` with `inputs`, `outputs`, optionally `labels`).
public struct Verification: Sendable {
    public var model: String
    public var reference: String
    public var atol: Double
    public var rtol: Double
    public var checks: InputCheckSettings
    public var limits: ReaderLimits

    public init(model: String, reference: String, atol: Double, rtol: Double,
                checks: InputCheckSettings = .init(), limits: ReaderLimits = .init()) {
        self.model = model
        self.reference = reference
        self.atol = atol
        self.rtol = rtol
        self.checks = checks
        self.limits = limits
    }

    /// Scores the reference inputs and compares; returns the report and the input warning, if
    /// any. Throws (naming the file) when a file cannot be read or does not fit the model.
    public func run() throws -> (report: VerificationReport, warning: String?) {
        let scorer = try ScorerLoader.open(model, limits: limits)
        let arrays = try withFile(reference) { try NpzArchive.read(contentsOf: reference, limits: limits) }
        var checker = InputChecker(card: scorer.card, options: checks)
        let report = try withFile(reference) {
            try VerificationReport(scorer: scorer, reference: arrays, atol: atol, rtol: rtol, checker: &checker)
        }
        return (report, checker.warning)
    }
}

/// The comparison of a model's outputs with a reference, computed once, printed twice.
public struct VerificationReport: Sendable {
    /// The reference inputs scored batch by batch (as `score` does), so that a large reference
    /// needs one batch's workspace, not one the size of the whole input.
    static func score(_ inputs: NpyArray, rows n: Int, with scorer: Scorer, checker: inout InputChecker) throws -> ScoreResult {
        let step = scorer.rowsPerBatch(4096)
        let workspace = scorer.makeWorkspace(rows: Swift.min(step, n))
        var all = try inputs.withRows(0, Swift.min(step, n)) { try checker.score($0, with: scorer, workspace: workspace) }
        var start = all.rows
        while start < n {
            let count = Swift.min(step, n - start)
            let part = try inputs.withRows(start, count) { try checker.score($0, with: scorer, workspace: workspace) }
            all.rows += part.rows
            all.scores += part.scores
            if let l = part.labels { all.labels?.append(contentsOf: l) }
            start += count
        }
        return all
    }

    public var rows: Int
    public var columns: Int
    public var atol: Double
    public var rtol: Double
    public var maxAbsError: Double = 0
    public var maxRelError: Double = 0
    public var worstRow = 0
    public var worstColumn = 0
    public var worstOurs: Double = 0
    public var worstReference: Double = 0
    public var rowsOutsideTolerance = 0
    public var labelsCompared = 0
    public var labelMismatches = 0
    public var threshold: Double?
    public var decisionsCompared = 0
    public var decisionFlips = 0

    public var passed: Bool { rowsOutsideTolerance == 0 && labelMismatches == 0 && decisionFlips == 0 }

    public init(scorer: Scorer, reference: [String: NpyArray], atol: Double, rtol: Double, checker: inout InputChecker) throws {
        guard let inputs = reference["inputs"], let outputs = reference["outputs"] else {
            throw ClipSafetyError.malformed("reference lacks 'inputs' or 'outputs' (has: \(reference.keys.sorted().joined(separator: ", ")))")
        }
        try InputChecker.checkShape(inputs, scorer: scorer)
        let n = inputs.shape[0]
        guard outputs.shape.count == 2 || outputs.shape.count == 1, outputs.shape[0] == n else {
            throw ClipSafetyError.mismatch("reference outputs have shape \(outputs.shape); expected [\(n), \(scorer.outputWidth)]")
        }
        let k = outputs.shape.count == 2 ? outputs.shape[1] : 1
        guard k == scorer.outputWidth else {
            throw ClipSafetyError.mismatch("reference outputs have \(k) columns; the model produces \(scorer.outputWidth)")
        }
        self.rows = n
        self.columns = k
        self.atol = atol
        self.rtol = rtol
        let result = try Self.score(inputs, rows: n, with: scorer, checker: &checker)
        let expected = outputs.floatValues()
        compareValues(result, expected)
        if let ours = result.labels {
            try compareLabels(ours, reference: reference["labels"], expected: expected)
        } else if let t = scorer.card.threshold, k == 1 {
            compareDecisions(result, expected, threshold: t)
        }
    }

    /// Every value against |ours − ref| ≤ atol + rtol·|ref|; the worst one is kept.
    private mutating func compareValues(_ result: ScoreResult, _ expected: [Float]) {
        for r in 0..<rows {
            var rowBad = false
            for c in 0..<columns {
                let ours = Double(result.score(row: r, column: c))
                let ref = Double(expected[r * columns + c])
                let abs = Swift.abs(ours - ref)
                let rel = ref == 0 ? (abs == 0 ? 0 : Double.infinity) : abs / Swift.abs(ref)
                if !(abs <= atol + rtol * Swift.abs(ref)) { rowBad = true }
                if abs > maxAbsError || abs.isNaN {
                    maxAbsError = abs.isNaN ? .nan : abs
                    worstRow = r; worstColumn = c; worstOurs = ours; worstReference = ref
                }
                if rel > maxRelError { maxRelError = rel }
            }
            if rowBad { rowsOutsideTolerance += 1 }
        }
    }

    /// Our argmax labels against the reference's (or the argmax of its outputs).
    private mutating func compareLabels(_ ours: [Int64], reference: NpyArray?, expected: [Float]) throws {
        let (n, k) = (rows, columns)
        let refLabels: [Int64]
        if let l = reference {
            guard l.elementCount == n else {
                throw ClipSafetyError.mismatch("reference labels have \(l.elementCount) entries; expected \(n)")
            }
            refLabels = l.int64Values()
        } else {
            refLabels = (0..<n).map { r in Int64((0..<k).max { expected[r * k + $0] < expected[r * k + $1] } ?? 0) }
        }
        labelsCompared = n
        labelMismatches = zip(ours, refLabels).filter { $0 != $1 }.count
    }

    /// Decisions `output > threshold`, ours against the reference's.
    private mutating func compareDecisions(_ result: ScoreResult, _ expected: [Float], threshold t: Double) {
        threshold = t
        decisionsCompared = rows
        decisionFlips = (0..<rows).filter { (Double(result.scores[$0]) > t) != (Double(expected[$0]) > t) }.count
    }

    public func text(model: String, reference: String) -> String {
        var lines: [String] = []
        lines.append("model      \(model)")
        lines.append("reference  \(reference) (\(rows) rows × \(columns) columns)")
        lines.append(String(format: "max |err|  %.3g  (tolerance: %.3g + %.3g·|ref|)", maxAbsError, atol, rtol))
        lines.append(String(format: "max rel    %.3g", maxRelError))
        lines.append(String(format: "worst      row %d, column %d: ours %.9g, reference %.9g", worstRow, worstColumn, worstOurs, worstReference))
        lines.append("outside    \(rowsOutsideTolerance) of \(rows) rows")
        if labelsCompared > 0 {
            lines.append("labels     \(labelsCompared - labelMismatches) of \(labelsCompared) identical")
        }
        if let threshold {
            lines.append("decisions  \(decisionsCompared - decisionFlips) of \(decisionsCompared) identical at threshold \(threshold)")
        }
        lines.append(passed ? "PASS" : "FAIL")
        return lines.joined(separator: "\n")
    }

    public func json(model: String, reference: String) -> String {
        var object: [String: Any] = [
            "model": model, "reference": reference, "rows": rows, "columns": columns,
            "atol": atol, "rtol": rtol,
            "max_abs_error": maxAbsError.isFinite ? maxAbsError : NSNull(),
            "max_rel_error": maxRelError.isFinite ? maxRelError : NSNull(),
            "worst": ["row": worstRow, "column": worstColumn,
                      "ours": worstOurs.isFinite ? worstOurs : NSNull(),
                      "reference": worstReference.isFinite ? worstReference : NSNull()] as [String: Any],
            "rows_outside_tolerance": rowsOutsideTolerance,
            "passed": passed,
        ]
        if labelsCompared > 0 {
            object["labels"] = ["compared": labelsCompared, "mismatches": labelMismatches]
        }
        if let threshold {
            object["decisions"] = ["threshold": threshold, "compared": decisionsCompared, "flips": decisionFlips] as [String: Any]
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
