import Foundation
import Runtime

/// Safetensors files: clipsafety's native models (whose `__metadata__` names the format) and
/// any other safetensors file, described as its tensors and metadata.
enum SafetensorsReader {
    static let native = FormatReader(kind: .native, matches: { formatTag($0.bytes)?.hasPrefix("clipsafety/") == true },
                                     describe: { try describe($0, $1, kind: .native) })
    static let plain = FormatReader(kind: .safetensors, matches: { formatTag($0.bytes) != nil },
                                    describe: { try describe($0, $1, kind: .safetensors) })

    static func describe(_ bytes: Data, _ limits: ReaderLimits, kind: FileKind) throws -> FileDescription {
        let file = try SafetensorsFile(bytes: bytes)
        return FileDescription(format: kind, tensors: file.tensors.map(DescribedTensor.init),
                               metadata: file.metadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// The `__metadata__.format` string of a safetensors header ("" when absent), or nil when
    /// the bytes do not start like a safetensors file. Parses only the header.
    static func formatTag(_ bytes: Data) -> String? {
        var cursor = ByteCursor(bytes)
        guard let n = cursor.readInteger(UInt64.self, endianness: .little), n >= 2, n <= UInt64(cursor.remaining),
              n <= 100_000_000, let header = cursor.peekBytes(Int(n)), header.first == UInt8(ascii: "{"),
              let object = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else { return nil }
        return ((object["__metadata__"] as? [String: Any])?["format"] as? String) ?? ""
    }
}
