import Converters
import Foundation
import Inspect
import Runtime

/// `compare`: two models run on the same inputs (a file, or seeded random unit rows), their
/// outputs and decisions compared.
public struct ModelComparison: Sendable {
    public enum Inputs: Sendable {
        /// A 2-D `.npy`, or an `.npz` whose `inputs` member (else only member) is one.
        case file(String)
        /// Seeded random L2-normalised rows, the same on every machine.
        case random(rows: Int, seed: UInt64)
    }

    public static let defaultRandomRows = 1000
    static let batchRows = 4096

    public var a: String
    public var b: String
    public var inputs: Inputs
    public var threshold: Double?
    public var maxAbsDiff: Double?
    public var worst: Int
    public var limits: ReaderLimits

    public init(a: String, b: String, inputs: Inputs, threshold: Double? = nil, maxAbsDiff: Double? = nil,
                worst: Int = 5, limits: ReaderLimits = .init()) {
        self.a = a
        self.b = b
        self.inputs = inputs
        self.threshold = threshold
        self.maxAbsDiff = maxAbsDiff
        self.worst = worst
        self.limits = limits
    }

    /// Scores the inputs with both models; returns the report and A's input warning, if any.
    public func run() throws -> (report: CompareReport, warning: String?) {
        let scorerA = try ScorerLoader.open(a, limits: limits)
        let scorerB = try ScorerLoader.open(b, limits: limits)
        try Self.checkCompatible(a: (a, scorerA), b: (b, scorerB))
        let t = threshold ?? scorerA.card.threshold ?? scorerB.card.threshold
        let thresholdFrom = threshold != nil ? "--threshold" : scorerA.card.threshold != nil ? "A's card" : "B's card"
        var pair = ScoredPair(a: scorerA, b: scorerB,
                              comparison: Comparison(columns: scorerA.outputWidth, labels: scorerA.producesLabels && scorerB.producesLabels,
                                                     threshold: t, keepWorst: worst))
        let source: InputSource
        switch inputs {
        case .file(let path): source = try pair.scoreFile(path, limits: limits)
        case .random(let rows, let seed): source = try pair.scoreRandom(rows: rows, seed: seed)
        }
        let report = CompareReport(a: .init(path: a, scorer: scorerA), b: .init(path: b, scorer: scorerB), inputs: source,
                                   comparison: pair.comparison, thresholdFrom: pair.comparison.threshold == nil ? nil : thresholdFrom,
                                   limit: maxAbsDiff)
        return (report, pair.statistics.warning(precondition: scorerA.card.inputPrecondition))
    }

    static func checkCompatible(a: (String, Scorer), b: (String, Scorer)) throws {
        guard a.1.inputWidth == b.1.inputWidth else {
            throw ClipSafetyError.mismatch("A (\(a.0)) takes \(a.1.inputWidth)-d input and B (\(b.0)) takes \(b.1.inputWidth)-d; compare needs models of the same embeddings")
        }
        guard a.1.outputWidth == b.1.outputWidth else {
            throw ClipSafetyError.mismatch("A (\(a.0)) has \(a.1.outputWidth) output columns and B (\(b.0)) has \(b.1.outputWidth)")
        }
    }

    /// A 2-D array from an .npy file, or the 'inputs' member (else the only member) of an .npz.
    static func readInputs(_ path: String, limits: ReaderLimits) throws -> (NpyArray, String?) {
        let bytes = try MappedFile.map(path, limits: limits)
        switch try FormatRegistry.identify(bytes, limits: limits) {
        case .npy:
            return (try NpyArray(contentsOf: path), nil)  // memory-mapped; rows released as they are compared
        case .npz:
            let arrays = try NpzArchive.read(bytes: bytes, limits: limits)
            if let x = arrays["inputs"] { return (x, "inputs") }
            if arrays.count == 1, let (name, x) = arrays.first { return (x, name) }
            throw ClipSafetyError.mismatch("the .npz has no 'inputs' member (has: \(arrays.keys.sorted().joined(separator: ", ")))")
        case let kind:
            throw ClipSafetyError.unsupported("inputs must be .npy or .npz; this is \(kind.summary)")
        }
    }
}

/// Two scorers fed the same batches, their outputs accumulated in one comparison.
struct ScoredPair {
    let a: Scorer
    let b: Scorer
    var comparison: Comparison
    var statistics = InputStatistics()
    private let workspaceA: ScoreWorkspace
    private let workspaceB: ScoreWorkspace

    init(a: Scorer, b: Scorer, comparison: Comparison) {
        self.a = a
        self.b = b
        self.comparison = comparison
        workspaceA = a.makeWorkspace(rows: ModelComparison.batchRows)
        workspaceB = b.makeWorkspace(rows: ModelComparison.batchRows)
    }

    mutating func score(_ batch: EmbeddingBatch, firstRow: Int) throws {
        let (resultA, batchStatistics) = try a.scoreMeasuring(batch, workspace: workspaceA)
        statistics.merge(batchStatistics)
        try comparison.add(resultA, try b.score(batch, workspace: workspaceB), firstRow: firstRow)
    }

    mutating func scoreFile(_ path: String, limits: ReaderLimits) throws -> InputSource {
        let (array, member) = try withFile(path) { try ModelComparison.readInputs(path, limits: limits) }
        guard array.shape.count == 2, let type = array.dtype.embeddingElementType else {
            throw FileError(path: path, underlying: .mismatch("expected a 2-D float16/float32/float64 matrix, found \(array.dtype.descr) with shape \(array.shape)"))
        }
        guard array.shape[1] == a.inputWidth else {
            throw FileError(path: path, underlying: .mismatch("rows have \(array.shape[1]) values; both models take \(a.inputWidth)"))
        }
        var start = 0
        while start < array.shape[0] {
            let count = min(ModelComparison.batchRows, array.shape[0] - start)
            try withFile(path) { try array.withRows(start, count) { try score($0, firstRow: start) } }
            start += count
            array.releaseRows(before: start)
        }
        return InputSource(kind: "file", path: path, member: member, seed: nil, rows: array.shape[0],
                           columns: array.shape[1], dtype: type.rawValue)
    }

    mutating func scoreRandom(rows: Int, seed: UInt64) throws -> InputSource {
        var generator = SeededInputs(seed: seed, columns: a.inputWidth)
        var start = 0
        while start < rows {
            let count = min(ModelComparison.batchRows, rows - start)
            let values = generator.next(rows: count)
            try values.withUnsafeBytes { raw in
                try score(EmbeddingBatch(base: raw.baseAddress!, rows: count, columns: a.inputWidth, elementType: .float64), firstRow: start)
            }
            start += count
        }
        return InputSource(kind: "random", path: nil, member: nil, seed: seed, rows: rows,
                           columns: a.inputWidth, dtype: EmbeddingElementType.float64.rawValue)
    }
}

/// Where the compared inputs came from.
public struct InputSource: Encodable, Sendable {
    var kind: String
    var path: String?
    var member: String?
    var seed: UInt64?
    var rows: Int
    var columns: Int
    var dtype: String

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind, forKey: .kind)
        try c.encode(path, forKey: .path)
        try c.encode(member, forKey: .member)
        try c.encode(seed, forKey: .seed)
        try c.encode(rows, forKey: .rows)
        try c.encode(columns, forKey: .columns)
        try c.encode(dtype, forKey: .dtype)
    }

    enum CodingKeys: String, CodingKey { case kind, path, member, seed, rows, columns, dtype }

    public var text: String {
        let what = "\(rows) rows × \(columns), \(dtype)"
        if let path { return "\(path)\(member.map { " (\($0))" } ?? ""): \(what)" }
        return "random unit rows, seed \(seed ?? 0): \(what)"
    }
}

/// `compare`'s result, printed as text or JSON (schema clipsafety-compare/1).
public struct CompareReport: Encodable {
    public static let schemaID = "clipsafety-compare/1"

    struct Side: Encodable {
        var path: String
        var name: String
        var sourceFormat: String
        var backbone: String
        var embeddingDim: Int
        var outputColumns: [String]

        init(path: String, scorer: Scorer) {
            self.path = path
            name = scorer.card.name
            sourceFormat = scorer.model.source.sourceFormat
            backbone = scorer.card.backbone
            embeddingDim = scorer.inputWidth
            outputColumns = scorer.card.outputColumns
        }

        enum CodingKeys: String, CodingKey {
            case path, name, backbone
            case sourceFormat = "source_format"
            case embeddingDim = "embedding_dim"
            case outputColumns = "output_columns"
        }
    }

    var a: Side
    var b: Side
    var inputs: InputSource
    public var comparison: Comparison
    var thresholdFrom: String?
    var limit: Double?

    public var withinLimit: Bool? { limit.map { comparison.maxAbsDiff <= $0 } }

    enum CodingKeys: String, CodingKey {
        case schema, a, b, inputs, rows, columns, worst, decisions
        case maxAbsDiff = "max_abs_diff"
        case meanAbsDiff = "mean_abs_diff"
        case nanDiffs = "nan_diffs"
        case worstRows = "worst_rows"
        case maxAbsDiffLimit = "max_abs_diff_limit"
        case withinLimit = "within_limit"
    }

    struct Decisions: Encodable {
        var rule: Comparison.Rule
        var threshold: Double?
        var thresholdFrom: String?
        var compared: Int
        var flips: Int
        var flippedRows: [Int]

        enum CodingKeys: String, CodingKey {
            case rule, threshold, compared, flips
            case thresholdFrom = "threshold_from"
            case flippedRows = "flipped_rows"
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(rule, forKey: .rule)
            try c.encode(threshold, forKey: .threshold)
            try c.encode(thresholdFrom, forKey: .thresholdFrom)
            try c.encode(compared, forKey: .compared)
            try c.encode(flips, forKey: .flips)
            try c.encode(flippedRows, forKey: .flippedRows)
        }
    }

    var decisions: Decisions? {
        comparison.rule.map {
            Decisions(rule: $0, threshold: comparison.threshold, thresholdFrom: thresholdFrom, compared: comparison.rows,
                      flips: comparison.flips, flippedRows: comparison.flippedRows)
        }
    }

    /// JSON numbers must be finite: an infinite difference (a NaN output) is written as null.
    static func finite(_ v: Double) -> Double? { v.isFinite ? v : nil }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaID, forKey: .schema)
        try c.encode(a, forKey: .a)
        try c.encode(b, forKey: .b)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(comparison.rows, forKey: .rows)
        try c.encode(comparison.columns, forKey: .columns)
        try c.encode(Self.finite(comparison.maxAbsDiff), forKey: .maxAbsDiff)
        try c.encode(comparison.meanAbsDiff, forKey: .meanAbsDiff)
        try c.encode(comparison.nanDiffs, forKey: .nanDiffs)
        let rows = comparison.worstRows.filter { $0.absDiff.isFinite && $0.a.isFinite && $0.b.isFinite }
        try c.encode(rows.first, forKey: .worst)
        try c.encode(rows, forKey: .worstRows)
        try c.encode(decisions, forKey: .decisions)
        try c.encode(limit, forKey: .maxAbsDiffLimit)
        try c.encode(withinLimit, forKey: .withinLimit)
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public func text(style: Styler) -> String {
        var out: [String] = []
        func field(_ label: String, _ value: String) { out += TextLayout.field(label, value, labelWidth: 12) }
        for (label, side) in [("A", a), ("B", b)] {
            field(label, side.path)
            field("", "\(side.name) (\(side.sourceFormat), \(side.embeddingDim)-d → \(side.outputColumns.joined(separator: ", ")))")
        }
        field("inputs", inputs.text)
        let c = comparison
        let columnName = { (i: Int) in i < a.outputColumns.count ? a.outputColumns[i] : String(i) }
        if let w = c.worst {
            field("max |A−B|", String(format: "%.3g", c.maxAbsDiff) + " at row \(w.row), column \(columnName(w.column)) " + String(format: "(A %.6g, B %.6g)", w.a, w.b))
        } else {
            field("max |A−B|", "0 (no rows)")
        }
        field("mean |A−B|", String(format: "%.3g", c.meanAbsDiff) + (c.nanDiffs > 0 ? ", \(c.nanDiffs) differences are NaN" : ""))
        if let d = decisions {
            let rule = d.rule == .argmax ? "labels differ (argmax)" : "flip at threshold \(CardText.number(d.threshold ?? 0)) (\(d.thresholdFrom ?? ""))"
            let line = "\(d.flips) of \(d.compared) \(rule)"
            out += TextLayout.field("decisions", line, labelWidth: 12).map { d.flips > 0 ? style.red($0) : $0 }
            if !d.flippedRows.isEmpty {
                field("", "rows " + d.flippedRows.map(String.init).joined(separator: ", ") + (d.flips > d.flippedRows.count ? ", …" : ""))
            }
        } else {
            field("decisions", "not compared (no threshold, and not both prompt classifiers)")
        }
        if let limit {
            let ok = withinLimit == true
            let line = (ok ? "within" : "EXCEEDS") + " --max-abs-diff \(limit)"
            out += TextLayout.field("limit", line, labelWidth: 12).map { ok ? style.green($0) : style.red($0) }
        }
        if !c.worstRows.isEmpty {
            out.append("")
            out.append(style.bold("Worst rows"))
            var table = TextTable([.init("row", .right), .init("column"), .init("A", .right), .init("B", .right), .init("|A−B|", .right)],
                                  flexible: 1, indent: 2)
            for r in c.worstRows {
                table.add([String(r.row), columnName(r.column), String(format: "%.6g", r.a), String(format: "%.6g", r.b), String(format: "%.3g", r.absDiff)])
            }
            let rendered = table.render()
            out.append(style.dim(rendered[0]))
            out += rendered.dropFirst()
        }
        return out.map { $0.hasSuffix(" ") ? String($0.reversed().drop { $0 == " " }.reversed()) : $0 }.joined(separator: "\n")
    }
}
