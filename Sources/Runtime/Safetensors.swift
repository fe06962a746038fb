import Core
import Foundation

/// Limits applied while reading a safetensors container.
public struct SafetensorsLimits: Sendable {
    /// The largest JSON header accepted (safetensors' own reference limit is 100 MB).
    public var maxHeaderBytes: Int = 100_000_000
    public init() {}
}

/// A parsed safetensors container: tensors (views into the file's bytes) and `__metadata__`.
///
/// The reader checks every rule of the safetensors format, in a fixed order, one error each:
/// header length present and inside the file, UTF-8 JSON object, known dtypes, non-negative
/// shapes, `end - begin == elements × dtype size` (with overflow checks), tensors tiling the
/// data area from 0 without holes or overlap, and nothing after the last tensor.
public struct SafetensorsFile: Sendable {
    public var metadata: [String: String]
    /// Tensors in file order (ascending offset).
    public var tensors: [Tensor]

    public init(metadata: [String: String], tensors: [Tensor]) {
        self.metadata = metadata
        self.tensors = tensors
    }

    public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name } }

    public init(bytes: Data, limits: SafetensorsLimits = .init()) throws {
        var cursor = ByteCursor(bytes)
        let object = try Self.header(&cursor, fileSize: bytes.count, limits: limits)
        let dataStart = cursor.position
        var metadata: [String: String] = [:]
        var entries: [Entry] = []
        for (key, value) in object {
            if key == "__metadata__" {
                metadata = try Self.metadata(value)
            } else {
                entries.append(try Entry(key: key, value: value))
            }
        }
        self.metadata = metadata
        self.tensors = try Self.tensors(entries, in: bytes, dataStart: dataStart, dataLength: cursor.remaining)
    }

    /// One tensor's header entry, checked on its own: dtype known, shape and offsets agree.
    struct Entry {
        var name: String
        var dtype: DType
        var shape: [Int]
        var begin: Int
        var end: Int

        init(key: String, value: Any) throws {
            guard let info = value as? [String: Any] else {
                throw ClipSafetyError.malformed("safetensors: entry '\(key)' is not an object")
            }
            guard let dtypeName = info["dtype"] as? String else {
                throw ClipSafetyError.malformed("safetensors: tensor '\(key)' has no dtype")
            }
            guard let dtype = DType(rawValue: dtypeName) else {
                throw ClipSafetyError.unsupported("safetensors: tensor '\(key)' has unknown dtype '\(dtypeName)'")
            }
            guard let shape = SafetensorsFile.intArray(info["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
                throw ClipSafetyError.malformed("safetensors: tensor '\(key)' has no valid shape")
            }
            guard let offsets = SafetensorsFile.intArray(info["data_offsets"]), offsets.count == 2,
                  offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw ClipSafetyError.malformed("safetensors: tensor '\(key)' has invalid data_offsets")
            }
            guard let (_, bytes) = checkedByteCount(shape: shape, dtype: dtype) else {
                throw ClipSafetyError.malformed("safetensors: tensor '\(key)': shape \(shape) overflows")
            }
            guard bytes == offsets[1] - offsets[0] else {
                throw ClipSafetyError.malformed("safetensors: tensor '\(key)': \(dtypeName) \(shape) needs \(bytes) bytes but data_offsets span \(offsets[1] - offsets[0])")
            }
            (name, self.dtype, self.shape, begin, end) = (key, dtype, shape, offsets[0], offsets[1])
        }
    }

    /// The JSON header object, within the header-size limit.
    static func header(_ cursor: inout ByteCursor, fileSize: Int, limits: SafetensorsLimits) throws -> [String: Any] {
        guard let headerLength64 = cursor.readInteger(UInt64.self, endianness: .little) else {
            throw ClipSafetyError.truncated("safetensors: file is shorter than the 8-byte header length")
        }
        guard headerLength64 <= UInt64(limits.maxHeaderBytes) else {
            throw ClipSafetyError.limitExceeded("safetensors: header length \(headerLength64) exceeds the limit of \(limits.maxHeaderBytes) bytes")
        }
        let headerLength = Int(headerLength64)
        guard let headerBytes = cursor.readBytes(headerLength) else {
            throw ClipSafetyError.truncated("safetensors: header length \(headerLength) runs past the end of the file (\(fileSize) bytes)")
        }
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw ClipSafetyError.malformed("safetensors: header does not start with '{'")
        }
        guard String(data: headerBytes, encoding: .utf8) != nil else {
            throw ClipSafetyError.malformed("safetensors: header is not UTF-8")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerBytes, options: [])
        } catch {
            throw ClipSafetyError.malformed("safetensors: header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw ClipSafetyError.malformed("safetensors: header is not a JSON object")
        }
        return object
    }

    /// `__metadata__`: a flat object of strings.
    static func metadata(_ value: Any) throws -> [String: String] {
        guard let m = value as? [String: Any] else {
            throw ClipSafetyError.malformed("safetensors: __metadata__ is not an object")
        }
        var metadata: [String: String] = [:]
        for (mk, mv) in m {
            guard let s = mv as? String else {
                throw ClipSafetyError.malformed("safetensors: __metadata__ value '\(mk)' is not a string")
            }
            metadata[mk] = s
        }
        return metadata
    }

    /// The tensors over the data section, which they must tile exactly: no overlap, no hole,
    /// nothing after the last one.
    static func tensors(_ entries: [Entry], in bytes: Data, dataStart: Int, dataLength: Int) throws -> [Tensor] {
        var expected = 0
        var tensors: [Tensor] = []
        tensors.reserveCapacity(entries.count)
        for e in entries.sorted(by: { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }) {
            guard e.begin == expected else {
                let what = e.begin < expected ? "overlaps the previous tensor" : "leaves a hole before it"
                throw ClipSafetyError.malformed("safetensors: tensor '\(e.name)' at offset \(e.begin) \(what)")
            }
            guard e.end <= dataLength else {
                throw ClipSafetyError.truncated("safetensors: tensor '\(e.name)' ends at \(e.end), past the data (\(dataLength) bytes)")
            }
            let slice = bytes[(dataStart + e.begin)..<(dataStart + e.end)]
            tensors.append(try Tensor(name: e.name, dtype: e.dtype, shape: e.shape, data: slice))
            expected = e.end
        }
        guard expected == dataLength else {
            throw ClipSafetyError.malformed("safetensors: \(dataLength - expected) bytes after the last tensor")
        }
        return tensors
    }

    static func intArray(_ value: Any?) -> [Int]? {
        guard let array = value as? [Any] else { return nil }
        var out: [Int] = []
        out.reserveCapacity(array.count)
        for v in array {
            guard let n = v as? NSNumber else { return nil }
            // Reject fractions, booleans and values outside Int.
            let d = n.doubleValue
            guard isNotBoolean(n), d.rounded() == d, abs(d) < 9.0e18 else { return nil }
            out.append(n.intValue)
        }
        return out
    }

    /// Serialises deterministically: tensors ordered by dtype alignment (largest first) then
    /// name, header JSON with sorted keys and no escaped slashes, padded with spaces to a
    /// multiple of 8 bytes. Reading a file this wrote and writing it again gives the same bytes.
    public func serialized() throws -> Data {
        let (header, ordered) = try layout()
        var out = Data(capacity: header.count + ordered.reduce(0) { $0 + $1.data.count })
        out.append(header)
        for t in ordered { out.append(t.data) }
        return out
    }

    /// Writes the same bytes as `serialized()` to `handle`, tensor by tensor, so that writing
    /// a model never holds a second copy of its tensors in memory.
    public func write(to handle: FileHandle) throws {
        let (header, ordered) = try layout()
        try handle.write(contentsOf: header)
        for t in ordered where !t.data.isEmpty { try handle.write(contentsOf: t.data) }
    }

    /// The 8-byte length and padded JSON header, and the tensors in the order their data follows.
    private func layout() throws -> (header: Data, ordered: [Tensor]) {
        let ordered = tensors.sorted {
            ($0.dtype.byteSize, $1.name) > ($1.dtype.byteSize, $0.name)
        }
        var header: [String: Any] = [:]
        var offset = 0
        for t in ordered {
            guard header[t.name] == nil, t.name != "__metadata__" else {
                throw ClipSafetyError.malformed("safetensors: duplicate or reserved tensor name '\(t.name)'")
            }
            header[t.name] = [
                "dtype": t.dtype.rawValue,
                "shape": t.shape,
                "data_offsets": [offset, offset + t.data.count],
            ] as [String: Any]
            offset += t.data.count
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        let padding = (8 - json.count % 8) % 8
        json.append(contentsOf: [UInt8](repeating: 0x20, count: padding))
        var out = Data(capacity: 8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        return (out, ordered)
    }
}

/// Booleans arrive from JSONSerialization as NSNumber too; this keeps them out of integer fields.
@inline(__always)
private func isNotBoolean(_ n: NSNumber) -> Bool {
    // On Linux Foundation, a JSON `true`/`false` has objCType "c"; integers and doubles do not.
    String(cString: n.objCType) != "c"
}
