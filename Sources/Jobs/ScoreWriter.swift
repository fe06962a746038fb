import Foundation
import Runtime

/// Output file kinds of `score`, chosen by the output's extension.
public enum ScoreOutputFormat: String, CaseIterable, Sendable {
    case npy, csv, jsonl, parquet

    public init?(path: String) {
        self.init(rawValue: (path as NSString).pathExtension.lowercased())
    }
}

/// Writes scores as they are produced into an `AtomicFile`, committed only when every row is
/// written, so a failed or interrupted run leaves no partial output.
public final class ScoreWriter {
    public let format: ScoreOutputFormat
    public let card: ModelCard
    public let threshold: Double?
    private let file: AtomicFile
    private var buffer = Data()

    public init(path: String, format: ScoreOutputFormat, card: ModelCard, threshold: Double?, rows: Int, columns: Int) throws {
        self.format = format
        self.card = card
        self.threshold = threshold
        file = try AtomicFile(path: path)
        switch format {
        case .npy:
            buffer.append(NpyArray.headerBytes(dtype: .f4, shape: [rows, columns]))
        case .csv:
            buffer.append(Data((["row"] + card.outputColumns + decisionColumns).map(Self.csvField).joined(separator: ",").utf8))
            buffer.append(0x0a)
        case .jsonl:
            break
        case .parquet:
            throw ClipSafetyError.usage("Parquet scores are written by ParquetScoreFile")
        }
    }

    /// Names of the columns added after the scores: the winning label and/or the decision.
    var decisionColumns: [String] {
        var names: [String] = []
        if card.task == .promptClassifier { names.append("label") }
        if let p = card.positiveLabel, card.task == .promptClassifier || threshold != nil { names.append("is_" + p) }
        return names
    }

    public func write(_ result: ScoreResult, firstRow: Int) throws {
        switch format {
        case .npy:
            result.scores.withUnsafeBytes { buffer.append(contentsOf: $0) }
        case .csv, .jsonl, .parquet:
            for r in 0..<result.rows {
                buffer.append(Data(line(r, of: result, row: firstRow + r).utf8))
                buffer.append(0x0a)
            }
        }
        if buffer.count > 1 << 20 { try flush() }
    }

    /// One CSV or JSONL line. A row with a NaN score or no label (one that could not be
    /// scored) gets an empty/null decision, never `false`.
    func line(_ r: Int, of result: ScoreResult, row: Int) -> String {
        let scores = (0..<result.columns).map { result.score(row: r, column: $0) }
        let scored = !scores.contains { $0.isNaN } && (result.labels.map { $0[r] >= 0 } ?? true)
        let extra = scored ? decisions(r, of: result, scores: scores) : decisionColumns.map { ($0, format == .csv ? "" : "null") }
        if format == .csv {
            return ([String(row)] + scores.map { $0.isNaN ? "" : "\($0)" } + extra.map(\.1)).joined(separator: ",")
        }
        let pairs = [("row", String(row))] + zip(card.outputColumns, scores.map(Self.json)) + extra
        return "{" + pairs.map { Self.jsonString($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    /// The decision columns of a scored row: the winning label and/or `is_<positive>`.
    private func decisions(_ r: Int, of result: ScoreResult, scores: [Float]) -> [(String, String)] {
        var extra: [(String, String)] = []
        if card.task == .promptClassifier, let labels = result.labels {
            let l = Int(labels[r])
            let name = l < card.labels.count ? card.labels[l] : String(l)
            extra.append(("label", format == .csv ? Self.csvField(name) : Self.jsonString(name)))
            if let p = card.positiveLabel { extra.append(("is_" + p, String(name == p))) }
        } else if let t = threshold, let p = card.positiveLabel, let s = scores.first {
            extra.append(("is_" + p, String(Double(s) > t)))
        }
        return extra
    }

    /// A JSON string literal (labels and column names come from the card, which flags can set).
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for u in text.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    private static func json(_ v: Float) -> String {
        v.isFinite ? "\(v)" : "null"
    }

    private func flush() throws {
        try file.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered and commits the file into place.
    public func finish() throws {
        try flush()
        try file.commit()
    }

    /// Removes the temporary; the output path is left as it was.
    public func abandon() {
        file.discard()
    }
}
