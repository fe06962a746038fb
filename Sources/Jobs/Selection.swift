import Core
import Foundation
import Parquet

/// A `--where` condition of `select` (README, "Selecting rows"):
///
///     expr       := term ("or" term)*
///     term       := factor ("and" factor)*
///     factor     := "(" expr ")" | comparison
///     comparison := column op number | column op true | column op false
///     op         := < | <= | > | >= | = | == | !=
///
/// A column is a run of letters, digits and `_ . / - :`, or any text in double quotes. A row
/// where any column the condition names is null satisfies nothing: it is never kept.
public indirect enum WhereExpression: Equatable, Sendable, CustomStringConvertible {
    public enum Comparison: String, Sendable { case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">=", equal = "==", notEqual = "!=" }

    case compare(column: String, Comparison, Double)
    case and(WhereExpression, WhereExpression)
    case or(WhereExpression, WhereExpression)

    /// The expression with every operator explicit and every `and` group in parentheses.
    public var description: String {
        switch self {
        case .compare(let c, let op, let x): return "\"\(c)\" \(op.rawValue) \(x)"
        case .and(let a, let b): return "(\(a) and \(b))"
        case .or(let a, let b): return "(\(a) or \(b))"
        }
    }

    /// Every column the expression reads, in order of first mention.
    public var columns: [String] {
        switch self {
        case .compare(let c, _, _): return [c]
        case .and(let a, let b), .or(let a, let b):
            let left = a.columns
            return left + b.columns.filter { !left.contains($0) }
        }
    }

    /// The condition on one row; `value` gives a column's number at that row (never null here).
    func holds(_ value: (String) -> Double) -> Bool {
        switch self {
        case .compare(let c, let op, let x):
            let v = value(c)
            switch op {
            case .less: return v < x
            case .lessOrEqual: return v <= x
            case .greater: return v > x
            case .greaterOrEqual: return v >= x
            case .equal: return v == x
            case .notEqual: return v != x
            }
        case .and(let a, let b): return a.holds(value) && b.holds(value)
        case .or(let a, let b): return a.holds(value) || b.holds(value)
        }
    }

    public static func parse(_ text: String) throws -> WhereExpression {
        var p = WhereParser(tokens: try WhereParser.tokens(text))
        let e = try p.expression(depth: 0)
        guard p.position == p.tokens.count else { throw ClipSafetyError.usage("--where: unexpected '\(p.tokens[p.position])'") }
        return e
    }
}

struct WhereParser {
    let tokens: [String]
    var position = 0
    static let maxDepth = 64

    static func tokens(_ text: String) throws -> [String] {
        var out: [String] = []
        var chars = Array(text)[...]
        let word: (Character) -> Bool = { $0.isLetter || $0.isNumber || "_./-:+".contains($0) }
        while let c = chars.first {
            if c.isWhitespace { chars.removeFirst(); continue }
            if c == "(" || c == ")" { out.append(String(c)); chars.removeFirst(); continue }
            if "<>=!".contains(c) {
                let op = String(chars.prefix { "<>=!".contains($0) })
                out.append(op)
                chars.removeFirst(op.count)
                continue
            }
            if c == "\"" {
                chars.removeFirst()
                guard let end = chars.firstIndex(of: "\"") else { throw ClipSafetyError.usage("--where: unclosed quote") }
                out.append("\"" + String(chars[..<end]))
                chars = chars[(end + 1)...]
                continue
            }
            guard word(c) else { throw ClipSafetyError.usage("--where: unexpected '\(c)'") }
            let w = String(chars.prefix(while: word))
            out.append(w)
            chars.removeFirst(w.count)
        }
        return out
    }

    mutating func expression(depth: Int) throws -> WhereExpression {
        guard depth < Self.maxDepth else { throw ClipSafetyError.usage("--where nests deeper than \(Self.maxDepth)") }
        var e = try term(depth: depth)
        while position < tokens.count, tokens[position].lowercased() == "or" {
            position += 1
            e = .or(e, try term(depth: depth))
        }
        return e
    }

    mutating func term(depth: Int) throws -> WhereExpression {
        var e = try factor(depth: depth)
        while position < tokens.count, tokens[position].lowercased() == "and" {
            position += 1
            e = .and(e, try factor(depth: depth))
        }
        return e
    }

    mutating func factor(depth: Int) throws -> WhereExpression {
        guard position < tokens.count else { throw ClipSafetyError.usage("--where ends early") }
        if tokens[position] == "(" {
            position += 1
            let e = try expression(depth: depth + 1)
            guard position < tokens.count, tokens[position] == ")" else { throw ClipSafetyError.usage("--where: missing ')'") }
            position += 1
            return e
        }
        guard position + 2 < tokens.count else { throw ClipSafetyError.usage("--where: a comparison is COLUMN OP NUMBER") }
        var column = tokens[position]
        if column.hasPrefix("\"") { column.removeFirst() }
        let opText = tokens[position + 1] == "=" ? "==" : tokens[position + 1]
        guard let op = WhereExpression.Comparison(rawValue: opText) else {
            throw ClipSafetyError.usage("--where: '\(tokens[position + 1])' is not a comparison (< <= > >= = == !=)")
        }
        let valueText = tokens[position + 2].lowercased()
        let value: Double
        switch valueText {
        case "true": value = 1
        case "false": value = 0
        default:
            guard let v = Double(valueText), v.isFinite else { throw ClipSafetyError.usage("--where: '\(tokens[position + 2])' is not a number") }
            value = v
        }
        position += 3
        return .compare(column: column, op, value)
    }
}

/// `clipsafety select SCORES… --where EXPR [--keep-fraction F --by COLUMN] -o KEPT.parquet
/// [--dropped DROPPED.parquet]`: the rows of Parquet score files that pass, as `shard`, `row`
/// and key columns; the others, with a `reason`, in the drop list.
public struct Selection {
    public var inputs: [String]
    public var condition: WhereExpression?
    /// Keep at most this fraction of all rows, those with the lowest `by` values.
    public var keepFraction: Double?
    public var by: String?
    /// Columns copied to the outputs beside shard and row; nil: whichever of key, uid, url exist.
    public var keys: [String]?
    public var output: String
    public var dropped: String?
    public var limits: ReaderLimits

    public init(inputs: [String], condition: WhereExpression?, keepFraction: Double? = nil, by: String? = nil, keys: [String]? = nil,
                output: String, dropped: String? = nil, limits: ReaderLimits = .init()) {
        self.inputs = inputs
        self.condition = condition
        self.keepFraction = keepFraction
        self.by = by
        self.keys = keys
        self.output = output
        self.dropped = dropped
        self.limits = limits
    }

    public struct Summary: Equatable, Sendable {
        public var rows = 0
        public var kept = 0
        public var droppedNull = 0
        public var droppedWhere = 0
        public var droppedFraction = 0
    }

    /// The Parquet files of `inputs`: files as given, folders' `*.parquet` in natural order.
    public static func files(_ inputs: [String]) throws -> [String] {
        var out: [String] = []
        for path in inputs {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
                throw FileError(path: path, underlying: ClipSafetyError(.missingFile, "no such file or folder"))
            }
            if isDir.boolValue {
                let names = try withFile(path) { try ShardPlan.list(directory: path, glob: "*.parquet") }
                out += NaturalOrder.sorted(names).map { path + "/" + $0 }
            } else {
                out.append(path)
            }
        }
        guard !out.isEmpty else { throw ClipSafetyError.usage("no Parquet score file among the inputs") }
        return out
    }

    public func run() throws -> Summary {
        let files = try Self.files(inputs)
        for o in [output] + (dropped.map { [$0] } ?? []) {
            try OutputSafety.refuseClobbering(o, inputs: files.map { ("input", $0) })
        }
        let opened = try files.map { f in try withFile(f) { try ParquetFile(path: f, limits: limits) } }
        let keyNames = keys ?? ["key", "uid", "url"].filter { k in opened.allSatisfy { $0.leafIndex(k) != nil } }
        let needed = (condition?.columns ?? []) + (by.map { [$0] } ?? [])
        for (f, file) in zip(files, opened) {
            for c in needed + keyNames where file.leafIndex(c) == nil {
                throw FileError(path: f, underlying: .mismatch("no column '\(c)' (it has \(file.leaves.map(\.name).joined(separator: ", ")))"))
            }
        }
        let cut = try keepFraction.flatMap { try fractionCut($0, files: files, opened: opened) }
        return try write(files: files, opened: opened, keyNames: keyNames, needed: needed, cut: cut)
    }

    /// Where `--keep-fraction` cuts: rows with `by` below `value` are in, and the first
    /// `ties` rows (in file order) equal to it.
    struct Cut {
        var value: Double
        var ties: Int
    }

    private func fractionCut(_ fraction: Double, files: [String], opened: [ParquetFile]) throws -> Cut? {
        guard let by else { throw ClipSafetyError.usage("--keep-fraction needs --by COLUMN") }
        let total = opened.reduce(0) { $0 + $1.rowCount }
        guard total <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("\(total) rows are above the \(limits.maxTensorElements)-element limit for --keep-fraction")
        }
        var values: [Double] = []
        for (f, file) in zip(files, opened) {
            let column = try withFile(f) { try file.readColumn(by) }
            for r in 0..<column.count where !column.isNull(r) {
                if let v = column.values.number(at: r), !v.isNaN { values.append(v) }
            }
        }
        let quota = min(values.count, Int((fraction * Double(total)).rounded(.down)))
        guard quota > 0 else { return nil }
        values.sort()
        let value = values[quota - 1]
        let below = values.prefix(quota).lazy.filter { $0 < value }.count
        return Cut(value: value, ties: quota - below)
    }

    private func write(files: [String], opened: [ParquetFile], keyNames: [String], needed: [String], cut: Cut?) throws -> Summary {
        let keyFields = opened.first.map { f in keyNames.compactMap { k in f.leafIndex(k).map { f.leaves[$0].field } } } ?? []
        let base = [ParquetField(name: "shard", type: .byteArray, isString: true), ParquetField(name: "row", type: .int64)]
            + keyFields.map { var k = $0; k.isOptional = true; return k }
        let keptSink = try HashingFileSink(path: output)
        let kept = try withFile(output) { try ParquetWriter(fields: base, keyValues: [("clipsafety.selection", describe())], sink: keptSink) }
        let dropSink = try dropped.map { try HashingFileSink(path: $0) }
        let drop = try dropSink.map { s in
            try ParquetWriter(fields: base + [ParquetField(name: "reason", type: .byteArray, isString: true)],
                              keyValues: [("clipsafety.selection", describe())], sink: s)
        }
        var summary = Summary()
        var ties = cut?.ties ?? 0
        for (f, file) in zip(files, opened) {
            try withFile(f) {
                let columns = try Dictionary(uniqueKeysWithValues: Set(needed).map { ($0, try file.readColumn($0)) })
                let keyColumns = try keyNames.map { try file.readColumn($0) }
                var keep: [Int] = [], reasons: [(Int, String)] = []
                for r in 0..<file.rowCount {
                    summary.rows += 1
                    if needed.contains(where: { columns[$0]?.isNull(r) ?? true || (columns[$0]?.values.number(at: r)?.isNaN ?? true) }) {
                        summary.droppedNull += 1; reasons.append((r, "null")); continue
                    }
                    let number: (String) -> Double = { columns[$0]?.values.number(at: r) ?? .nan }
                    if let condition, !condition.holds(number) { summary.droppedWhere += 1; reasons.append((r, "where")); continue }
                    if keepFraction != nil {
                        let v = by.map(number) ?? .nan
                        let inside = cut.map { v < $0.value || (v == $0.value && ties > 0) } ?? false
                        if !inside { summary.droppedFraction += 1; reasons.append((r, "keep-fraction")); continue }
                        if let c = cut, v == c.value { ties -= 1 }
                    }
                    keep.append(r)
                }
                summary.kept += keep.count
                let shard = Data(((f as NSString).lastPathComponent as NSString).deletingPathExtension.utf8)
                try kept.append(Self.rows(keep, shard: shard, keys: keyColumns))
                try drop?.append(Self.rows(reasons.map(\.0), shard: shard, keys: keyColumns)
                                 + [ParquetColumn(.byteArray(reasons.map { Data($0.1.utf8) }))])
            }
        }
        try withFile(output) { try kept.finish(); _ = try keptSink.commit() }
        if let drop, let dropSink, let dropped { try withFile(dropped) { try drop.finish(); _ = try dropSink.commit() } }
        return summary
    }

    /// `shard`, `row` and the key columns of `rows`.
    static func rows(_ rows: [Int], shard: Data, keys: [ParquetColumn]) -> [ParquetColumn] {
        [ParquetColumn(.byteArray(Array(repeating: shard, count: rows.count))), ParquetColumn(.int64(rows.map(Int64.init)))]
            + keys.map { $0.picking(rows) }
    }

    /// What was asked, for the outputs' metadata.
    func describe() -> String {
        var parts: [String] = []
        if let condition { parts.append("where \(condition)") }
        if let keepFraction, let by { parts.append("keep-fraction \(keepFraction) by \(by)") }
        return parts.joined(separator: "; ")
    }
}
