import Foundation
import Runtime

/// Zip archives: torch checkpoints, `.keras` archives, SavedModel zips, `.npz` files and any
/// other zip. Every member name is checked (absolute, `..`, drive letters, backslashes, NUL,
/// symbolic links), and every member a loader could unpickle or deserialise is scanned, in
/// memory; raw tensor data (torch storages, SavedModel variable shards) is not.
enum ZipScan {
    enum Kind: String {
        case torch = "torch-zip", savedModel = "savedmodel-zip", keras = "keras-v3", npz, zip
    }

    /// What the member names say the archive is (the same tests as `FormatRegistry`).
    static func kind(of names: [String]) -> Kind {
        if names.contains(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }) { return .torch }
        if names.contains(where: { $0.hasSuffix("saved_model.pb") || $0.hasSuffix("keras_metadata.pb") }) { return .savedModel }
        if names.contains("config.json") || names.contains("model.weights.h5") { return .keras }
        if !names.isEmpty, names.allSatisfy({ $0.hasSuffix(".npy") }) { return .npz }
        return .zip
    }

    static func scan(_ bytes: Data, part: String?, depth: Int, topLevel: Bool, into c: inout ScanCollector, limits: ReaderLimits) {
        let zip: ZipArchive
        do {
            zip = try ZipArchive(bytes: bytes, limits: limits, refusingUnsafeNames: false)
        } catch {
            if topLevel && depth == 0 { c.format = "zip" }
            return c.fail(error, in: part)
        }
        let kind = kind(of: zip.entries.map(\.name))
        if topLevel && depth == 0 { c.format = kind.rawValue }
        var skipped = 0
        for entry in zip.entries {
            let location = part.map { "\($0)/\(entry.name)" } ?? entry.name
            checkName(entry, zip: zip, location: location, into: &c)
            do {
                if try !scanMember(entry, zip: zip, kind: kind, location: location, depth: depth, into: &c, limits: limits) { skipped += 1 }
            } catch {
                c.fail(error, in: location)
            }
        }
        if skipped > 0 { c.notes.append("\(part.map { $0 + ": " } ?? "")\(skipped) members read by their framework as raw data (tensor storages, variable shards, metadata), not scanned") }
    }

    /// Names a loader extracting or resolving members could follow out of its folder.
    static func checkName(_ entry: ZipArchive.Entry, zip: ZipArchive, location: String, into c: inout ScanCollector) {
        let at = ScanLocation(part: location)
        if let reason = ZipArchive.unsafeNameReason(entry.name) {
            c.add(.memberName, entry.name, allowed: false, at: at, detail: reason)
        } else if entry.name.contains("\\") {
            c.add(.memberName, entry.name, allowed: false, at: at, detail: "has a backslash, a folder separator on Windows")
        }
        if let mode = zip.unixMode(of: entry), mode & 0o170000 == 0o120000 {
            let target = (try? zip.readPrefix(entry, count: 1024)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
            c.add(.symlink, entry.name, allowed: false, at: at, detail: "symbolic link to '\(target)'")
        }
    }

    /// Scans one member as its role in the archive says; false when it is skipped as raw data.
    static func scanMember(_ entry: ZipArchive.Entry, zip: ZipArchive, kind: Kind, location: String, depth: Int,
                           into c: inout ScanCollector, limits: ReaderLimits) throws -> Bool {
        let parts = entry.name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let base = parts.last ?? entry.name
        if entry.name.hasSuffix("/") && entry.uncompressedSize == 0 { return true }  // a folder
        switch kind {
        case .torch:
            if base == "data.pkl" || base == "constants.pkl" {
                c.add(PickleWalker.scan(try zip.read(entry), limits: limits), in: location)
                return true
            }
            if parts.count >= 2, parts[parts.count - 2] == "data" || ["version", "byteorder", ".format_version", ".storage_alignment"].contains(base)
                || parts.contains(".data") { return false }
            if parts.contains("code") {
                c.add(.code, entry.name, allowed: false, at: ScanLocation(part: location),
                      detail: "TorchScript code: torch.jit.load compiles and runs it")
                return true
            }
        case .savedModel:
            if base == "saved_model.pb" {
                SavedModelScan.scanGraph(try zip.read(entry), part: location, into: &c, limits: limits)
                return true
            }
            if base == "keras_metadata.pb" {
                SavedModelScan.scanKerasMetadata(try zip.read(entry), part: location, into: &c, limits: limits)
                return true
            }
            if parts.contains("variables") || base == "fingerprint.pb" { return false }
        case .keras:
            if entry.name == "config.json" {
                KerasConfigScan.scan(data: try zip.read(entry), part: location, revivedFromGraph: false, into: &c, limits: limits)
                return true
            }
            if entry.name == "metadata.json" {
                _ = try JSONValue(parsing: try zip.read(entry), what: "metadata.json", limits: limits)
                return true
            }
            if entry.name == "model.weights.h5" {
                HDF5Scan.scan(try zip.read(entry), part: location, readsKerasConfig: false, into: &c, limits: limits)
                return true
            }
        case .npz, .zip:
            break
        }
        return try scanOther(entry, zip: zip, location: location, depth: depth, into: &c, limits: limits)
    }

    /// Any other member: a nested archive, HDF5 file, array, pickle or `.onnx` model is scanned; a member
    /// whose first byte could start a protocol 0/1 pickle is walked as one.
    static func scanOther(_ entry: ZipArchive.Entry, zip: ZipArchive, location: String, depth: Int,
                          into c: inout ScanCollector, limits: ReaderLimits) throws -> Bool {
        let head = try zip.readPrefix(entry, count: 8)
        let name = (entry.name as NSString).lastPathComponent
        let known = ModelScanner.isZip(head) || head.starts(with: ModelScanner.hdf5Magic) || head.starts(with: ModelScanner.npyMagic)
            || ModelScanner.looksLikePickle(head, name: name)
            || (name as NSString).pathExtension.lowercased() == "onnx"
        guard known || head.first.flatMap(PickleOp.init(rawValue:)) != nil else { return false }
        ModelScanner.scanContent(try zip.read(entry), name: name, part: location, depth: depth + 1, topLevel: false, into: &c, limits: limits)
        return true
    }
}
