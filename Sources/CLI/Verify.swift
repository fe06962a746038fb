import ArgumentParser
import Converters
import Foundation
import Runtime

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a model against reference outputs of the original framework (.npz).",
        discussion: """
            The reference holds `inputs` (N×D), `outputs` (N×K) and optionally `labels` (N). \
            A value passes when |ours − ref| ≤ atol + rtol·|ref|. Exit 0 when every value \
            passes and every label and decision at the model's threshold agrees, 1 otherwise.
            """)

    @Argument(help: "Model: a native .safetensors file or any upstream file clipsafety converts.")
    var model: String

    @Option(help: "Reference .npz with inputs, outputs and optionally labels.")
    var reference: String

    @Option(help: "Absolute tolerance.")
    var atol: Double = 1e-5

    @Option(help: "Relative tolerance.")
    var rtol: Double = 0

    @Flag(help: "Print the report as JSON.")
    var json = false

    @OptionGroup var checkOptions: InputCheckOptions

    @OptionGroup var limitOptions: LimitOptions

    func validate() throws {
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else {
            throw ValidationError("--atol and --rtol must be finite and non-negative")
        }
    }

    func run() throws {
        var passed = false
        try ExitStatus.run {
            let scorer = try openScorer(model, limits: limitOptions.limits)
            let arrays = try withFile(reference) { try NpzArchive.read(contentsOf: reference, limits: limitOptions.limits) }
            var checker = InputChecker(card: scorer.card, options: checkOptions)
            let report = try withFile(reference) {
                try VerificationReport(scorer: scorer, reference: arrays, atol: atol, rtol: rtol, checker: &checker)
            }
            if let warning = checker.warning { printError("clipsafety: warning: \(reference): \(warning)") }
            if json {
                print(report.json(model: model, reference: reference))
            } else {
                print(report.text(model: model, reference: reference))
            }
            passed = report.passed
        }
        if !passed { throw ExitCode(ExitStatus.verificationFailed.rawValue) }
    }
}

/// The comparison of a model's outputs with a reference, computed once, printed twice.
struct VerificationReport {
    var rows: Int
    var columns: Int
    var atol: Double
    var rtol: Double
    var maxAbsError: Double = 0
    var maxRelError: Double = 0
    var worstRow = 0
    var worstColumn = 0
    var worstOurs: Double = 0
    var worstReference: Double = 0
    var rowsOutsideTolerance = 0
    var labelsCompared = 0
    var labelMismatches = 0
    var threshold: Double?
    var decisionsCompared = 0
    var decisionFlips = 0

    var passed: Bool { rowsOutsideTolerance == 0 && labelMismatches == 0 && decisionFlips == 0 }

    init(scorer: Scorer, reference: [String: NpyArray], atol: Double, rtol: Double, checker: inout InputChecker) throws {
        guard let inputs = reference["inputs"], let outputs = reference["outputs"] else {
            throw ClipSafetyError.malformed("reference lacks 'inputs' or 'outputs' (has: \(reference.keys.sorted().joined(separator: ", ")))")
        }
        try checkShape(inputs, scorer: scorer)
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
        let result = try inputs.withRows(0, n) { try checker.score($0, with: scorer) }
        let expected = outputs.floatValues()
        for r in 0..<n {
            var rowBad = false
            for c in 0..<k {
                let ours = Double(result.score(row: r, column: c))
                let ref = Double(expected[r * k + c])
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
        if let ours = result.labels {
            let refLabels: [Int64]
            if let l = reference["labels"] {
                guard l.elementCount == n else {
                    throw ClipSafetyError.mismatch("reference labels have \(l.elementCount) entries; expected \(n)")
                }
                refLabels = l.int64Values()
            } else {
                refLabels = (0..<n).map { r in Int64((0..<k).max { expected[r * k + $0] < expected[r * k + $1] } ?? 0) }
            }
            labelsCompared = n
            labelMismatches = zip(ours, refLabels).filter { $0 != $1 }.count
        } else if let t = scorer.card.threshold, k == 1 {
            threshold = t
            decisionsCompared = n
            decisionFlips = (0..<n).filter { (Double(result.scores[$0]) > t) != (Double(expected[$0]) > t) }.count
        }
    }

    func text(model: String, reference: String) -> String {
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

    func json(model: String, reference: String) -> String {
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
