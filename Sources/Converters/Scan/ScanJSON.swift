import Foundation
import Runtime

/// The result of scanning several paths, as `scan --json` prints it (schema
/// `clipsafety-scan/1`, docs/SCAN.md) and with the command's exit status.
public struct ScanSummary: Encodable, Sendable {
    public var files: [FileScan]

    public init(files: [FileScan]) { self.files = files }

    public func count(_ v: ScanVerdict) -> Int { files.filter { $0.verdict == v }.count }

    /// 65 when any file is unreadable (its safety is unknown), else 1 when any is unsafe, else 0.
    public var exitStatus: ExitStatus {
        if count(.unreadable) > 0 { return .dataError }
        if count(.unsafe) > 0 { return .verificationFailed }
        return .ok
    }

    enum Keys: String, CodingKey { case schema, summary, files }
    enum SummaryKeys: String, CodingKey { case files, safe, unsafe, unreadable, exit_code }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode("clipsafety-scan/1", forKey: .schema)
        var s = c.nestedContainer(keyedBy: SummaryKeys.self, forKey: .summary)
        try s.encode(files.count, forKey: .files)
        try s.encode(count(.safe), forKey: .safe)
        try s.encode(count(.unsafe), forKey: .unsafe)
        try s.encode(count(.unreadable), forKey: .unreadable)
        try s.encode(Int(exitStatus.rawValue), forKey: .exit_code)
        try c.encode(files, forKey: .files)
    }

    /// Sorted keys, two-space indentation, `/` not escaped.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

extension FileScan: Encodable {
    enum Keys: String, CodingKey { case path, format, bytes, verdict, problem, notes, findings }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(path, forKey: .path)
        try c.encode(format, forKey: .format)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(verdict.rawValue, forKey: .verdict)
        try c.encode(problem, forKey: .problem)
        try c.encode(notes, forKey: .notes)
        try c.encode(findings, forKey: .findings)
    }
}

extension ScanFinding: Encodable {
    enum Keys: String, CodingKey { case kind, target, allowed, count, detail, locations }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(kind.rawValue, forKey: .kind)
        try c.encode(target, forKey: .target)
        try c.encode(allowed, forKey: .allowed)
        try c.encode(count, forKey: .count)
        try c.encode(detail, forKey: .detail)
        try c.encode(locations, forKey: .locations)
    }
}

extension ScanLocation: Encodable {
    enum Keys: String, CodingKey { case part, offset }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(part, forKey: .part)
        try c.encode(offset, forKey: .offset)
    }
}
