import Foundation
import Runtime

/// Whether loading a file in its own framework asks for anything beyond the allowlist
/// (docs/SCAN.md).
public enum ScanVerdict: String, Sendable, CaseIterable {
    /// Read completely; everything it would make its framework import, call, read or write is
    /// on the allowlist. Says nothing about whether the weights are benign.
    case safe
    /// Names at least one thing outside the allowlist (listed), whether or not it was read to the end.
    case unsafe
    /// Could not be read completely, and nothing outside the allowlist was found in what was read.
    case unreadable
}

/// Where in a file a finding appears.
public struct ScanLocation: Sendable, Hashable {
    /// The part of the file: an archive member (`archive/data.pkl`), an HDF5 object path, a
    /// config path (`config.json: config.layers[2]`), a graph function; nil for the file itself.
    public var part: String?
    /// Byte offset within `part` (or the file), when the finding is at one opcode or record.
    public var offset: Int?

    public init(part: String? = nil, offset: Int? = nil) {
        self.part = part
        self.offset = offset
    }

    /// `part@offset`, `part`, `@offset` or `file`.
    public var text: String {
        switch (part, offset) {
        case let (p?, o?): return "\(p)@\(o)"
        case let (p?, nil): return p
        case let (nil, o?): return "@\(o)"
        case (nil, nil): return "file"
        }
    }
}

/// One capability a file asks of its framework, with every place it is asked for (the first
/// `ScanFinding.maxLocations` of them are kept) and how often.
public struct ScanFinding: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        // Pickles (PickleEvent.Kind).
        case importGlobal = "import", call, build
        case extensionCode = "extension", persistentId = "persistent-id", outOfBandBuffer = "out-of-band-buffer"
        /// A NumPy array of Python objects: loading it unpickles.
        case objectArray = "object-array"
        // Keras configs.
        case lambda, customObject = "custom-object", moduleReference = "module-reference", layer
        // TensorFlow graphs and ONNX operators outside the standard domains.
        case op
        /// An ONNX tensor whose data the runtime reads from another file.
        case externalData = "external-data"
        // HDF5.
        case softLink = "soft-link", externalLink = "external-link", userLink = "user-defined-link"
        case externalStorage = "external-storage", virtualDataset = "virtual-dataset"
        // Archives and folders.
        case memberName = "member-name", symlink, code
    }

    /// Locations kept per finding; `count` says how many there were.
    public static let maxLocations = 8

    public var kind: Kind
    /// What is imported, called, run, linked or named.
    public var target: String
    public var allowed: Bool
    /// How many times the file asks for it.
    public var count: Int
    public var locations: [ScanLocation]
    /// More about it, when there is more (a Lambda's code size, why an op is outside).
    public var detail: String?
}

/// The scan of one file (or one SavedModel folder).
public struct FileScan: Sendable {
    public var path: String
    /// What the bytes are (`pickle`, `torch-zip`, `keras-h5`, … docs/SCAN.md); `unknown` when
    /// no format was recognised.
    public var format: String
    public var bytes: Int
    public var findings: [ScanFinding]
    /// Why the file was not read to its end; nil when it was.
    public var problem: String?
    /// Facts worth knowing that are not findings (members skipped as raw data, …).
    public var notes: [String]

    public var verdict: ScanVerdict {
        if findings.contains(where: { !$0.allowed }) { return .unsafe }
        return problem == nil ? .safe : .unreadable
    }
}

/// Gathers findings while a file is scanned, one entry per (kind, target, allowed).
struct ScanCollector {
    var format = "unknown"
    private(set) var findings: [ScanFinding] = []
    private var index: [String: Int] = [:]
    private(set) var problem: String?
    var notes: [String] = []

    mutating func add(_ kind: ScanFinding.Kind, _ target: String, allowed: Bool, at location: ScanLocation, detail: String? = nil) {
        let key = "\(kind.rawValue)\u{0}\(target)\u{0}\(allowed)\u{0}\(detail ?? "")"
        if let i = index[key] {
            findings[i].count += 1
            if findings[i].locations.count < ScanFinding.maxLocations { findings[i].locations.append(location) }
        } else {
            index[key] = findings.count
            findings.append(ScanFinding(kind: kind, target: target, allowed: allowed, count: 1, locations: [location], detail: detail))
        }
    }

    /// Records why reading stopped early; the first reason is kept.
    mutating func fail(_ message: String, in part: String? = nil) {
        guard problem == nil else { return }
        problem = part.map { "\($0): \(message)" } ?? message
    }

    mutating func fail(_ error: Error, in part: String? = nil) {
        fail((error as? ClipSafetyError)?.message ?? "\(error)", in: part)
    }

    /// Adds a pickle walk's events and failure, located in `part`.
    mutating func add(_ scan: PickleScan, in part: String?) {
        for e in scan.events {
            add(ScanFinding.Kind(rawValue: e.kind.rawValue) ?? .call, e.target, allowed: e.allowed,
                at: ScanLocation(part: part, offset: e.offset), detail: nil)
        }
        if let failure = scan.failure { fail(failure, in: part) }
    }

    func result(path: String, bytes: Int) -> FileScan {
        FileScan(path: path, format: format, bytes: bytes, findings: findings, problem: problem, notes: notes)
    }
}
