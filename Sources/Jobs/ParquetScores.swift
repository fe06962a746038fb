import Core
import Crypto
import Foundation
import Parquet
import Runtime

/// The columns of a Parquet score file (README, "Parquet output"): `row` (int64), each head's
/// float32 outputs as `<model>/<column>`, its winning label (`<model>/label`, prompt
/// classifiers) and decision (`<model>/is_<positive>`, nullable boolean), then the metadata
/// columns copied from `--metadata-dir`. A row a head could not score (NaN or infinity in
/// the input) gets nulls in all of that head's columns: never NaN, never `false`.
public struct ParquetScoreLayout {
    public struct Head {
        /// Column prefix: the model file's stem, as in columns.json.
        public var prefix: String
        public var file: String
        public var sha256: String
        public var card: ModelCard
        /// The threshold decisions use (nil: no decision unless a prompt classifier).
        public var threshold: Double?

        public init(prefix: String, file: String, sha256: String, card: ModelCard, threshold: Double?) {
            self.prefix = prefix
            self.file = file
            self.sha256 = sha256
            self.card = card
            self.threshold = threshold
        }

        var hasLabel: Bool { card.task == .promptClassifier }
        var decisionLabel: String? {
            guard let p = card.positiveLabel, card.task == .promptClassifier || threshold != nil else { return nil }
            return p
        }
    }

    public var heads: [Head]
    /// Columns copied from the metadata file, after the scores.
    public var metadata: [ParquetField]

    public init(heads: [Head], metadata: [ParquetField] = []) {
        self.heads = heads
        self.metadata = metadata
    }

    public var scoreFields: [ParquetField] {
        var out = [ParquetField(name: "row", type: .int64)]
        for h in heads {
            out += h.card.outputColumns.map { ParquetField(name: h.prefix + "/" + $0, type: .float, isOptional: true) }
            if h.hasLabel { out.append(ParquetField(name: h.prefix + "/label", type: .byteArray, isString: true, isOptional: true)) }
            if let p = h.decisionLabel { out.append(ParquetField(name: h.prefix + "/is_" + p, type: .boolean, isOptional: true)) }
        }
        return out
    }

    public var fields: [ParquetField] { scoreFields + metadata }

    /// Refuses metadata columns whose names collide with score columns.
    public func checkNames() throws {
        let scores = Set(scoreFields.map(\.name))
        for m in metadata where scores.contains(m.name) {
            throw ClipSafetyError.mismatch("metadata column '\(m.name)' has the name of a score column; leave it out of --keep")
        }
    }

    /// `clipsafety.models`: each head's card, file, SHA-256 and the threshold its decisions
    /// use, as JSON (sorted keys), so a reader of the file knows what the numbers mean.
    public var keyValues: [(String, String)] {
        let models: [[String: Any]] = heads.map { h in
            var m: [String: Any] = ["prefix": h.prefix, "file": h.file, "sha256": h.sha256, "name": h.card.name,
                                    "task": h.card.task.rawValue, "output_kind": h.card.outputKind.rawValue,
                                    "output_columns": h.card.outputColumns, "backbone": h.card.backbone]
            if let t = h.threshold { m["threshold"] = t }
            if let p = h.card.positiveLabel { m["positive_label"] = p }
            if let s = h.card.thresholdSource { m["threshold_source"] = s }
            if let d = h.card.description { m["description"] = d }
            if h.decisionLabel != nil {
                m["decision"] = h.card.task == .promptClassifier
                    ? "is_\(h.card.positiveLabel ?? "") is true when the winning label is \(h.card.positiveLabel ?? "")"
                    : "is_\(h.card.positiveLabel ?? "") is true when \(h.card.outputColumns.first ?? "score") > threshold"
            }
            return m
        }
        let json = (try? JSONSerialization.data(withJSONObject: models, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return [("clipsafety.models", String(decoding: json, as: UTF8.self)), ("clipsafety.version", clipsafetyVersion)]
    }

    /// The score columns of `count` rows starting at `firstRow`: `results[i]` is head i's.
    public func scoreColumns(_ results: [ScoreResult], firstRow: Int, count: Int) -> [ParquetColumn] {
        var out = [ParquetColumn(.int64((0..<count).map { Int64(firstRow + $0) }))]
        for (h, r) in zip(heads, results) {
            let scored = (0..<count).map { i in
                !(0..<r.columns).contains { r.score(row: i, column: $0).isNaN } && (r.labels.map { $0[i] >= 0 } ?? true)
            }
            let valid: [Bool]? = scored.allSatisfy { $0 } ? nil : scored
            for c in 0..<r.columns {
                out.append(ParquetColumn(.float((0..<count).map { scored[$0] ? r.score(row: $0, column: c) : 0 }), valid: valid))
            }
            let names = (0..<count).map { i -> String in
                guard scored[i], let l = r.labels?[i] else { return "" }
                return l < h.card.labels.count ? h.card.labels[Int(l)] : String(l)
            }
            if h.hasLabel { out.append(ParquetColumn(.byteArray(names.map { Data($0.utf8) }), valid: valid)) }
            if let p = h.decisionLabel {
                let decisions = (0..<count).map { i -> Bool in
                    guard scored[i] else { return false }
                    if h.hasLabel { return names[i] == p }
                    return Double(r.score(row: i, column: 0)) > (h.threshold ?? .infinity)
                }
                out.append(ParquetColumn(.boolean(decisions), valid: valid))
            }
        }
        return out
    }
}

/// An `AtomicFile` that also hashes what goes into it (the manifest records the SHA-256).
final class HashingFileSink: ParquetSink {
    let file: AtomicFile
    private var hasher = SHA256()
    private var buffer = Data()

    init(path: String) throws {
        file = try AtomicFile(path: path)
    }

    func write(_ data: Data) throws {
        hasher.update(data: data)
        buffer.append(data)
        if buffer.count >= 1 << 20 { try drain() }
    }

    private func drain() throws {
        try file.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Commits the file; returns its SHA-256.
    func commit() throws -> String {
        try drain()
        try file.commit()
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// One score file in Parquet: score columns (and copied metadata columns) streamed into an
/// atomic file row group by row group; `finish` commits it and returns its SHA-256.
public final class ParquetScoreFile {
    public let path: String
    let layout: ParquetScoreLayout
    private let sink: HashingFileSink
    private let writer: ParquetWriter
    private let expectedRows: Int

    /// Row groups hold `rowGroupRows` rows or more (one batch at most beyond).
    public init(path: String, layout: ParquetScoreLayout, rows: Int, rowGroupRows: Int) throws {
        try layout.checkNames()
        self.path = path
        self.layout = layout
        expectedRows = rows
        sink = try HashingFileSink(path: path)
        writer = try ParquetWriter(fields: layout.fields, keyValues: layout.keyValues, sink: sink, rowGroupRows: rowGroupRows)
    }

    /// Appends `count` rows: the heads' results and the metadata columns' rows.
    public func append(_ results: [ScoreResult], firstRow: Int, count: Int, metadata: [ParquetColumn] = []) throws {
        try writer.append(layout.scoreColumns(results, firstRow: firstRow, count: count) + metadata)
    }

    public func finish() throws -> String {
        guard writer.rows == expectedRows else {
            sink.file.discard()
            throw ClipSafetyError.mismatch("output has \(writer.rows) of \(expectedRows) rows")
        }
        try writer.finish()
        return try sink.commit()
    }

    public func abandon() {
        sink.file.discard()
    }

    /// Row groups of at least 64 Ki rows (few footer entries), and of whole batches.
    public static func rowGroupRows(batch: Int) -> Int { max(batch, 65536) }
}

/// What `score -o FILE` writes into: the text/npy writer or a Parquet score file.
protocol ScoreSink: AnyObject {
    func write(_ result: ScoreResult, firstRow: Int) throws
    func finishFile() throws
    func abandon()
}

extension ScoreWriter: ScoreSink {
    func finishFile() throws { try finish() }
}

extension ParquetScoreFile: ScoreSink {
    func write(_ result: ScoreResult, firstRow: Int) throws {
        try append([result], firstRow: firstRow, count: result.rows)
    }

    func finishFile() throws { _ = try finish() }
}
