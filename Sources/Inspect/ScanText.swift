import Converters
import Core
import Foundation

/// `scan`'s text report: one line per file (verdict, format, path), then its findings outside
/// the allowlist one per line, the allowed ones summed up, and why a file was not read to its
/// end. Every line fits in `ScanText.width` columns; text from files is escaped.
public enum ScanText {
    public static let width = 100

    public static func render(_ summary: ScanSummary) -> String {
        var lines: [String] = []
        for file in summary.files { lines += render(file) }
        let counts = ScanVerdict.allCases.map { "\(summary.count($0)) \($0.rawValue)" }.joined(separator: ", ")
        lines.append("\(summary.files.count) file\(summary.files.count == 1 ? "" : "s"): \(counts)")
        return lines.joined(separator: "\n")
    }

    static func render(_ file: FileScan) -> [String] {
        let head = pad(file.verdict.rawValue, 11) + pad(file.format, 18) + PrintableText.escaped(file.path)
        var lines = [TextLayout.truncate(head, width)]
        for f in file.findings where !f.allowed { lines.append(row(f)) }
        let allowed = file.findings.filter(\.allowed)
        if !allowed.isEmpty {
            let items = allowed.map { "\($0.kind.rawValue) \(PrintableText.escaped($0.target))" + ($0.count > 1 ? " ×\($0.count)" : "") }
            lines += TextLayout.wrap("allowed: " + items.joined(separator: ", "), width: width, indent: 13, firstIndent: 4)
        }
        if let problem = file.problem {
            lines += TextLayout.wrap("not read to the end: " + problem, width: width, indent: 13, firstIndent: 4)
        }
        return lines
    }

    /// `  ✗ kind  target  where (×count): detail`, cut to the width.
    static func row(_ f: ScanFinding) -> String {
        let place = f.locations.first.map { PrintableText.escaped($0.text) } ?? ""
        let count = f.count > 1 ? " (×\(f.count))" : ""
        let detail = f.detail.map { ": " + PrintableText.escaped($0) } ?? ""
        let line = "  ✗ " + pad(f.kind.rawValue, 18) + pad(PrintableText.escaped(f.target), 32) + " " + place + count + detail
        return TextLayout.truncate(line, width)
    }

    static func pad(_ s: String, _ n: Int) -> String {
        let cut = TextLayout.truncate(s, n - 1)
        return cut + String(repeating: " ", count: n - cut.count)
    }
}
