import Foundation
import Runtime

/// A PyTorch checkpoint holding a state dict, read without PyTorch: the tensors by their
/// state-dict keys, in the pickle's order.
///
/// Two containers (../shared/docs/UPSTREAM.md, "PyTorch files"):
/// - **zip** (`torch.save` since 1.6): `<prefix>/data.pkl`, `<prefix>/data/<key>` raw storages,
///   `<prefix>/version`, and in newer files `<prefix>/byteorder`;
/// - **legacy**: pickles of the magic number, the protocol version (1001), system info, the
///   state dict, and the list of storage keys; then each storage in that order, as an 8-byte
///   element count followed by its bytes.
///
/// Every tensor is checked to lie inside its storage before any byte is copied; strided views
/// are materialised to C order; storages shared by several tensors are read once.
public struct TorchCheckpoint {
    public enum Container: String, Sendable {
        case zip = "torch-zip"
        case legacy = "torch-legacy"
    }

    public var container: Container
    /// Every tensor of the pickled structure in pickle order, named by its path (the keys of
    /// a state dict; `state_dict.0.weight` inside a checkpoint).
    public var tensors: [Tensor]
    /// The plain values beside the tensors (`epoch: 7`), by path, as text for people.
    public var values: [(key: String, value: String)]

    static let zipMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]
    /// 0x1950a86a20f9469cfc6c, torch's legacy magic number, as LONG1 bytes.
    static let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
    static let legacyProtocolVersion: Int64 = 1001
    /// The highest zip-format `version` record torch writes today.
    static let maxZipVersion = 3

    /// Reads either container, chosen from the leading bytes.
    public init(bytes: Data, limits: ReaderLimits = .init()) throws {
        try self.init(layout: try Self.layout(bytes: bytes, limits: limits), limits: limits)
    }

    /// Every tensor of `layout` materialised (each storage read once).
    init(layout: Layout, limits: ReaderLimits) throws {
        var storages: [String: Data] = [:]
        for ref in Self.storageRefs(layout.entries) where storages[ref.key] == nil {
            storages[ref.key] = try layout.storages.data(ref.key)
        }
        self.container = layout.container
        self.values = layout.values
        self.tensors = try Self.materialise(layout.entries, storages: storages, bigEndian: layout.bigEndian, limits: limits)
    }

    /// What a checkpoint holds, read from its pickle and storage headers before any storage's
    /// bytes: `inspect` describes a checkpoint of any size from it, and reads a tensor only
    /// when asked (`TorchReader`).
    struct Layout: Sendable {
        var container: Container
        /// The tensors' paths and views, in pickle order.
        var entries: [(String, TorchTensorRef)]
        var values: [(key: String, value: String)]
        var bigEndian: Bool
        /// Each storage's bytes, checked to exist with its declared size when the layout was read.
        var storages: TorchStorages
    }

    /// The layout of either container, chosen from the leading bytes.
    static func layout(bytes: Data, limits: ReaderLimits) throws -> Layout {
        bytes.prefix(4).elementsEqual(zipMagic) ? try zipLayout(bytes, limits: limits) : try legacyLayout(bytes, limits: limits)
    }

    // MARK: - Zip container

    init(zipBytes bytes: Data, limits: ReaderLimits) throws {
        try self.init(layout: try Self.zipLayout(bytes, limits: limits), limits: limits)
    }

    static func zipLayout(_ bytes: Data, limits: ReaderLimits) throws -> Layout {
        let zip = try ZipArchive(bytes: bytes, limits: limits)
        let pickles = zip.entries.filter { entry in
            let parts = entry.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.last == "data.pkl" && parts.count <= 2
        }
        guard let pickle = pickles.first else {
            throw ClipSafetyError.malformed("torch zip: no data.pkl record")
        }
        guard pickles.count == 1 else {
            throw ClipSafetyError.malformed("torch zip: \(pickles.count) data.pkl records (\(pickles.map(\.name).joined(separator: ", ")))")
        }
        let prefix = String(pickle.name.dropLast("data.pkl".count))
        try checkVersion(zip, prefix: prefix)
        let bigEndian = try byteOrderIsBig(zip, prefix: prefix)
        let root = try TorchPickleReader.read(bytes: try zip.read(pickle), limits: limits)
        let (entries, values) = flatten(root)
        var records: [String: ZipArchive.Entry] = [:]
        for ref in storageRefs(entries) where records[ref.key] == nil {
            let name = prefix + "data/" + ref.key
            guard let entry = zip.entry(named: name) else {
                throw ClipSafetyError.malformed("torch zip: persistent id names storage '\(ref.key)', but the archive has no record \(name)")
            }
            let expected = ref.numel * ref.dtype.byteSize  // numel ≤ 2⁴⁸ (TorchPickleReader): no overflow
            guard entry.uncompressedSize == expected else {
                throw ClipSafetyError.malformed("torch zip: storage '\(ref.key)' declares \(ref.numel) \(ref.dtype.rawValue) elements (\(expected) bytes); its record has \(entry.uncompressedSize)")
            }
            records[ref.key] = entry
        }
        return Layout(container: .zip, entries: entries, values: values, bigEndian: bigEndian,
                      storages: TorchStorages(zip: zip, records: records))
    }

    private static func checkVersion(_ zip: ZipArchive, prefix: String) throws {
        guard let data = try zip.read(named: prefix + "version") else {
            throw ClipSafetyError.malformed("torch zip: no \(prefix)version record")
        }
        let text = String(decoding: data.prefix(32), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let v = Int(text), v >= 1 else {
            throw ClipSafetyError.malformed("torch zip: version record is not a number")
        }
        guard v <= maxZipVersion else {
            throw ClipSafetyError.unsupported("torch zip: format version \(v) (supported: 1–\(maxZipVersion))")
        }
    }

    private static func byteOrderIsBig(_ zip: ZipArchive, prefix: String) throws -> Bool {
        guard let data = try zip.read(named: prefix + "byteorder") else { return false }  // older files: little
        switch String(decoding: data.prefix(16), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) {
        case "little": return false
        case "big": return true
        default: throw ClipSafetyError.malformed("torch zip: byteorder record is neither 'little' nor 'big'")
        }
    }

    // MARK: - Legacy container

    init(legacyBytes bytes: Data, limits: ReaderLimits) throws {
        try self.init(layout: try Self.legacyLayout(bytes, limits: limits), limits: limits)
    }

    /// The storages are views of `bytes`, found by walking their records (nothing copied).
    static func legacyLayout(_ bytes: Data, limits: ReaderLimits) throws -> Layout {
        var cursor = ByteCursor(bytes)
        guard case .bigInt(let magic) = try TorchPickleReader.read(&cursor, limits: limits), magic == legacyMagic else {
            throw ClipSafetyError.malformed("torch legacy: the first pickle is not torch's magic number")
        }
        guard case .int(let proto) = try TorchPickleReader.read(&cursor, limits: limits) else {
            throw ClipSafetyError.malformed("torch legacy: the second pickle is not a protocol version")
        }
        guard proto == legacyProtocolVersion else {
            throw ClipSafetyError.unsupported("torch legacy: protocol version \(proto) (supported: \(legacyProtocolVersion))")
        }
        let bigEndian = try legacySystemIsBigEndian(try TorchPickleReader.read(&cursor, limits: limits))
        let root = try TorchPickleReader.read(&cursor, limits: limits)
        let (entries, values) = flatten(root)
        let keys = try storageKeyList(try TorchPickleReader.read(&cursor, limits: limits))

        var declared: [String: TorchStorageRef] = [:]
        for ref in storageRefs(entries) { declared[ref.key] = ref }
        var storages: [String: Data] = [:]
        for key in keys {
            guard let ref = declared[key] else {
                throw ClipSafetyError.malformed("torch legacy: storage list names '\(key)', which no tensor uses")
            }
            guard storages[key] == nil else {
                throw ClipSafetyError.malformed("torch legacy: storage list names '\(key)' twice")
            }
            guard let count = cursor.readInteger(UInt64.self, endianness: bigEndian ? .big : .little) else {
                throw ClipSafetyError.truncated("torch legacy: file ends before the element count of storage '\(key)'")
            }
            guard count == UInt64(ref.numel) else {
                throw ClipSafetyError.malformed("torch legacy: storage '\(key)' holds \(count) elements; its persistent id declares \(ref.numel)")
            }
            let size = ref.numel * ref.dtype.byteSize
            guard let data = cursor.readBytes(size) else {
                throw ClipSafetyError.truncated("torch legacy: storage '\(key)' needs \(size) bytes, \(cursor.remaining) remain")
            }
            storages[key] = data
        }
        if let missing = declared.keys.sorted().first(where: { storages[$0] == nil }) {
            throw ClipSafetyError.malformed("torch legacy: persistent id names storage '\(missing)', which the file does not hold")
        }
        guard cursor.isAtEnd else {
            throw ClipSafetyError.malformed("torch legacy: \(cursor.remaining) bytes after the last storage")
        }
        return Layout(container: .legacy, entries: entries, values: values, bigEndian: bigEndian,
                      storages: TorchStorages(views: storages))
    }

    /// The system-info dict: `little_endian` decides the byte order of counts and storages.
    private static func legacySystemIsBigEndian(_ info: PickleValue) throws -> Bool {
        guard case .dict(let d) = info else {
            throw ClipSafetyError.malformed("torch legacy: the third pickle is not the system-info dict")
        }
        switch d.values[.string("little_endian")] {
        case .bool(let little)?: return !little
        case nil: return false
        default: throw ClipSafetyError.malformed("torch legacy: system info 'little_endian' is not a bool")
        }
    }

    private static func storageKeyList(_ v: PickleValue) throws -> [String] {
        guard case .list(let l) = v else {
            throw ClipSafetyError.malformed("torch legacy: the fifth pickle is not the list of storage keys")
        }
        return try l.items.map {
            guard case .string(let s) = $0 else {
                throw ClipSafetyError.malformed("torch legacy: the storage key list holds a \($0.typeName)")
            }
            return s
        }
    }

    // MARK: - The pickled structure

    /// Flattens the pickled root into tensors and plain values named by their path: a state
    /// dict gives its keys unchanged; a training checkpoint gives `state_dict.0.weight`,
    /// `epoch`, `optimizer.param_groups.0.lr`. Lists and tuples are indexed from 0.
    static func flatten(_ root: PickleValue) -> (tensors: [(String, TorchTensorRef)], values: [(key: String, value: String)]) {
        var tensors: [(String, TorchTensorRef)] = []
        var values: [(key: String, value: String)] = []
        func visit(_ value: PickleValue, _ path: String) {
            func child(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
            switch value {
            case .tensor(let t):
                tensors.append((path.isEmpty ? "tensor" : path, t))
            case .dict(let d) where !d.keys.isEmpty:
                for key in d.keys {
                    guard let v = d.values[key] else { continue }
                    switch key {
                    case .string(let s): visit(v, child(s))
                    case .int(let i): visit(v, child(String(i)))
                    }
                }
            case .list(let l) where !l.items.isEmpty && !isScalarList(l.items):
                for (i, v) in l.items.enumerated() { visit(v, child(String(i))) }
            case .tuple(let items, _) where !items.isEmpty && !isScalarList(items):
                for (i, v) in items.enumerated() { visit(v, child(String(i))) }
            default:
                values.append((path.isEmpty ? "(root)" : path, PickleValueText.describe(value)))
            }
        }
        visit(root, "")
        return (tensors, values)
    }

    /// Lists of plain numbers and strings are shown as one value (`[0, 1, 2]`), not one per item.
    static func isScalarList(_ items: [PickleValue]) -> Bool {
        items.allSatisfy {
            switch $0 {
            case .none, .bool, .int, .bigInt, .float, .string: return true
            default: return false
            }
        }
    }

    /// The tensors of a state dict: the root must be a dict from string keys to tensors.
    static func stateDict(_ root: PickleValue) throws -> [(String, TorchTensorRef)] {
        guard case .dict(let d) = root else {
            throw ClipSafetyError.unsupported("torch: the pickle holds a \(root.typeName), not a state dict")
        }
        return try d.keys.map { key in
            guard case .string(let name) = key else {
                throw ClipSafetyError.unsupported("torch: state dict key \(key) is not a string")
            }
            guard case .tensor(let t)? = d.values[key] else {
                throw ClipSafetyError.unsupported("torch: state dict entry '\(name)' is a \(d.values[key]?.typeName ?? "?"), not a tensor (only state dicts of tensors are converted)")
            }
            return (name, t)
        }
    }

    /// Storages the tensors use, first use first; two uses of one key must agree.
    static func storageRefs(_ entries: [(String, TorchTensorRef)]) -> [TorchStorageRef] {
        var seen = Set<String>()
        return entries.compactMap { seen.insert($0.1.storage.key).inserted ? $0.1.storage : nil }
    }

    // MARK: - Tensors

    static func materialise(_ entries: [(String, TorchTensorRef)], storages: [String: Data],
                            bigEndian: Bool, limits: ReaderLimits) throws -> [Tensor] {
        try checkStorageRefs(entries)
        var total = 0
        return try entries.map { name, ref in
            guard let storage = storages[ref.storage.key] else {
                throw ClipSafetyError.malformed("torch: tensor '\(name)' uses storage '\(ref.storage.key)', which the file does not hold")
            }
            // Views may repeat a storage (stride 0, shared keys): cap what they expand to.
            let bytes = (checkedByteCount(shape: ref.shape, dtype: ref.dtype.byteSize)?.bytes).map { total.addingReportingOverflow($0) }
            guard let (sum, overflow) = bytes, !overflow, sum <= limits.maxUncompressedBytes else {
                throw ClipSafetyError.limitExceeded("torch: tensors up to '\(name)' expand to more than \(limits.maxUncompressedBytes) bytes (raise with --max-uncompressed-bytes)")
            }
            total = sum
            return try tensor(name: name, ref: ref, storage: storage, bigEndian: bigEndian, limits: limits)
        }
    }

    /// The view's element and byte counts, after checking that its shape does not overflow
    /// and that every element it addresses lies inside its storage (`storageBytes`, by default
    /// what the storage declares: the readers check records against that before any read).
    static func checkView(name: String, ref: TorchTensorRef, storageBytes: Int? = nil) throws -> (count: Int, bytes: Int) {
        let width = ref.dtype.byteSize
        guard let (count, byteCount) = checkedByteCount(shape: ref.shape, dtype: width) else {
            throw ClipSafetyError.malformed("torch: tensor '\(name)' has shape \(ref.shape), which overflows")
        }
        let available = (storageBytes ?? ref.storage.numel * ref.storage.dtype.byteSize) / width  // elements of the tensor's dtype
        if count > 0 {
            // The last element addressed: offset + Σ (size_i − 1)·stride_i, with overflow checks.
            var last = ref.offset
            for (size, stride) in zip(ref.shape, ref.strides) {
                let (step, o1) = (size - 1).multipliedReportingOverflow(by: stride)
                let (sum, o2) = last.addingReportingOverflow(step)
                guard !o1, !o2 else {
                    throw ClipSafetyError.malformed("torch: tensor '\(name)' strides \(ref.strides) overflow")
                }
                last = sum
            }
            guard last < available else {
                throw ClipSafetyError.malformed("torch: tensor '\(name)' (shape \(ref.shape), stride \(ref.strides), offset \(ref.offset)) reaches element \(last) of storage '\(ref.storage.key)', which holds \(available)")
            }
        }
        return (count, byteCount)
    }

    /// Every tensor naming one storage key must declare it alike (type and size).
    static func checkStorageRefs(_ entries: [(String, TorchTensorRef)]) throws {
        var firstRef: [String: TorchStorageRef] = [:]
        for (_, ref) in entries {
            if let first = firstRef[ref.storage.key], first != ref.storage {
                throw ClipSafetyError.malformed("torch: storage '\(ref.storage.key)' is declared twice with different types or sizes")
            }
            firstRef[ref.storage.key] = ref.storage
        }
    }

    /// Copies the elements of a strided view into C order, after checking that every element
    /// it addresses lies inside the storage.
    static func tensor(name: String, ref: TorchTensorRef, storage: Data, bigEndian: Bool, limits: ReaderLimits) throws -> Tensor {
        let width = ref.dtype.byteSize
        let (count, byteCount) = try checkView(name: name, ref: ref, storageBytes: storage.count)
        guard count <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("torch: tensor '\(name)' has \(count) elements, above the limit of \(limits.maxTensorElements)")
        }
        var data: Data
        if count == 0 {
            data = Data()
        } else if ref.strides == contiguousStrides(ref.shape) || isContiguousIgnoringUnitDims(ref) {
            let start = storage.startIndex + ref.offset * width
            data = storage[start..<(start + byteCount)]  // a view: no copy of the storage
        } else {
            data = gather(ref, storage: storage, count: count)
        }
        if bigEndian && width > 1 { data = byteSwapped(data, width: width) }
        return try Tensor(name: name, dtype: ref.dtype.dtype, shape: ref.shape, data: data)
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = acc
            acc = acc &* Swift.max(shape[i], 1)
        }
        return strides
    }

    /// C order when dimensions of size 1 (whose stride is irrelevant) are ignored.
    static func isContiguousIgnoringUnitDims(_ ref: TorchTensorRef) -> Bool {
        let expected = contiguousStrides(ref.shape)
        return zip(zip(ref.shape, ref.strides), expected).allSatisfy { pair, e in pair.0 == 1 || pair.1 == e }
    }

    /// Element-by-element copy of a strided view (bounds already checked by the caller).
    static func gather(_ ref: TorchTensorRef, storage: Data, count: Int) -> Data {
        let width = ref.dtype.byteSize
        var out = Data(count: count * width)
        let rank = ref.shape.count
        var index = [Int](repeating: 0, count: rank)
        storage.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                var source = ref.offset
                for n in 0..<count {
                    d.advanced(by: n * width).copyMemory(from: s.advanced(by: source * width), byteCount: width)
                    var axis = rank - 1
                    while axis >= 0 {
                        index[axis] += 1
                        source += ref.strides[axis]
                        if index[axis] < ref.shape[axis] { break }
                        source -= ref.strides[axis] * ref.shape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return out
    }

    static func byteSwapped(_ data: Data, width: Int) -> Data {
        var out = data
        out.withUnsafeMutableBytes { p in
            var i = 0
            while i + width <= p.count {
                var lo = i, hi = i + width - 1
                while lo < hi { p.swapAt(lo, hi); lo += 1; hi -= 1 }
                i += width
            }
        }
        return out
    }
}

/// The storages of a checkpoint, read when asked: views of the file for the legacy container,
/// zip records (read through the archive's uncompressed budget) for the zip container. Reads
/// of a zip are serialised: the archive is not built for concurrent use.
final class TorchStorages: @unchecked Sendable {
    private let zip: ZipArchive?
    private let records: [String: ZipArchive.Entry]
    private let views: [String: Data]
    private let lock = NSLock()

    init(zip: ZipArchive, records: [String: ZipArchive.Entry]) {
        self.zip = zip
        self.records = records
        self.views = [:]
    }

    init(views: [String: Data]) {
        self.zip = nil
        self.records = [:]
        self.views = views
    }

    /// Storage `key`'s bytes.
    func data(_ key: String) throws -> Data {
        if let view = views[key] { return view }
        guard let zip, let entry = records[key] else {
            throw ClipSafetyError.malformed("torch: no storage '\(key)' in the file")
        }
        lock.lock()
        defer { lock.unlock() }
        return try zip.read(entry)
    }
}
