import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Runtime

/// `scan`: what loading a file in its own framework (`torch.load`, `pickle.load`, `np.load`,
/// `keras.models.load_model`, `tf.saved_model.load`) would make that framework import, call,
/// read or write, listed with where each appears, and a verdict against the allowlist of
/// docs/SCAN.md. Files are identified from their bytes and read, never run.
public enum ModelScanner {
    /// Archives inside archives are followed this deep.
    static let maxNesting = 4

    /// Scans one file's bytes. `name` (the file's name) only tells a `saved_model.pb`, which
    /// has no magic bytes, from other protobufs.
    public static func scan(bytes: Data, path: String, limits: ReaderLimits = .init()) -> FileScan {
        var c = ScanCollector()
        scanContent(bytes, name: (path as NSString).lastPathComponent, part: nil, depth: 0, topLevel: true, into: &c, limits: limits)
        return c.result(path: path, bytes: bytes.count)
    }

    /// Scans the file at `path` (read memory-mapped, within `limits.maxFileBytes`).
    public static func scan(file path: String, limits: ReaderLimits = .init()) -> FileScan {
        let bytes: Data
        do {
            try requireRegularFile(path)
            bytes = try MappedFile.map(path, limits: limits)
        } catch {
            var c = ScanCollector()
            c.fail(error)
            return c.result(path: path, bytes: 0)
        }
        return scan(bytes: bytes, path: path, limits: limits)
    }

    /// Opening a FIFO would wait for a writer, a device read without end: only regular files
    /// (or links to them) are opened.
    static func requireRegularFile(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
            throw ClipSafetyError.unsupported("not a regular file (a device, FIFO or socket), not opened")
        }
    }

    // MARK: - Identification and dispatch

    static let zipMagics: [[UInt8]] = [[0x50, 0x4B, 0x03, 0x04], [0x50, 0x4B, 0x05, 0x06]]
    static let hdf5Magic: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]
    static let npyMagic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    static func isZip(_ b: Data) -> Bool { zipMagics.contains { b.starts(with: $0) } }

    /// Identifies `bytes` and scans them with their format's scanner. A top-level file that is
    /// no known format and no pickle is unreadable; an archive member that is neither is data
    /// no loader runs, and only noted.
    static func scanContent(_ bytes: Data, name: String, part: String?, depth: Int, topLevel: Bool,
                            into c: inout ScanCollector, limits: ReaderLimits) {
        func setFormat(_ f: String) { if topLevel && depth == 0 { c.format = f } }
        if isZip(bytes) {
            guard depth < maxNesting else { return c.fail("archives nest deeper than \(maxNesting) levels", in: part) }
            ZipScan.scan(bytes, part: part, depth: depth, topLevel: topLevel, into: &c, limits: limits)
        } else if bytes.starts(with: hdf5Magic) {
            setFormat("keras-h5")
            HDF5Scan.scan(bytes, part: part, readsKerasConfig: true, into: &c, limits: limits)
        } else if bytes.starts(with: npyMagic) {
            setFormat("npy")
            NpyScan.scan(bytes, part: part, into: &c, limits: limits)
        } else if bytes.starts(with: TorchReader.legacyPrefix) {
            setFormat("torch-legacy")
            scanTorchLegacy(bytes, part: part, into: &c, limits: limits)
        } else if let tag = SafetensorsReader.formatTag(bytes) {
            setFormat(tag.hasPrefix("clipsafety/") ? "clipsafety-native" : "safetensors")
            do { _ = try SafetensorsReader.plain.describe(bytes, limits) } catch { c.fail(error, in: part) }
        } else if name == "saved_model.pb" {
            setFormat("savedmodel-pb")
            SavedModelScan.scanGraph(bytes, part: part ?? name, into: &c, limits: limits)
        } else if ONNXReader.looksLikeModel(bytes), topLevel || (name as NSString).pathExtension.lowercased() == "onnx" {
            setFormat("onnx")
            ONNXScan.scan(bytes, part: part, into: &c, limits: limits)
        } else if looksLikePickle(bytes, name: name) {
            setFormat("pickle")
            c.add(PickleWalker.scan(bytes, limits: limits), in: part)
        } else {
            scanUnknown(bytes, part: part, topLevel: topLevel, into: &c, limits: limits)
        }
    }

    /// Extensions pickles are saved under (picklescan's list and torch's).
    static let pickleExtensions: Set<String> = ["pkl", "pickle", "joblib", "dat", "data", "pt", "pth", "bin", "ckpt"]

    /// A PROTO opcode of protocol 2–5 first, or a pickle extension.
    static func looksLikePickle(_ bytes: Data, name: String) -> Bool {
        if bytes.count >= 2, bytes[bytes.startIndex] == 0x80, bytes[bytes.startIndex + 1] <= 5 { return true }
        let ext = (name as NSString).pathExtension.lowercased()
        return pickleExtensions.contains(ext) && !bytes.isEmpty
    }

    /// Bytes no format claims: walked as a protocol 0/1 pickle (which has no magic). When the
    /// walk reads the whole stream or finds anything a pickle asks for, it is reported as a
    /// pickle; otherwise it is not one.
    static func scanUnknown(_ bytes: Data, part: String?, topLevel: Bool, into c: inout ScanCollector, limits: ReaderLimits) {
        let walk = bytes.first.flatMap(PickleOp.init(rawValue:)) == nil ? nil : PickleWalker.scan(bytes, limits: limits)
        if let walk, walk.isComplete || !walk.events.isEmpty {
            if topLevel { c.format = "pickle" }
            c.add(walk, in: part)
            return
        }
        if topLevel {
            let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            c.fail("not a format clipsafety reads, nor a pickle (first bytes: \(head.isEmpty ? "none, the file is empty" : head))", in: part)
        } else {
            c.notes.append("\(part ?? "member"): \(bytes.count) bytes of data, not a model format or a pickle")
        }
    }

    /// torch's legacy format: `torch.load` unpickles exactly five pickles (magic number,
    /// protocol version, system info, the object, the storage keys), then reads raw storages.
    /// When the pickles ask for nothing outside the allowlist, the storages are checked by
    /// reading the file as a state dict (`TorchCheckpoint`).
    static func scanTorchLegacy(_ bytes: Data, part: String?, into c: inout ScanCollector, limits: ReaderLimits) {
        let walk = PickleWalker.scan(bytes, limits: limits, maxPickles: 5)
        c.add(walk, in: part)
        guard walk.isComplete else { return }
        guard !walk.hasUnsafeEvent else {
            c.notes.append("storage records after the five pickles not checked: the pickles already ask for more than a state dict")
            return
        }
        do {
            _ = try TorchCheckpoint(legacyBytes: bytes, limits: limits)
        } catch {
            c.fail(error, in: part)
        }
    }
}
