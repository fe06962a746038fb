import CSnappy
import CZstd
import Core
import Foundation

/// Page compression through the system's libzstd and libsnappy. Decompression is told the
/// size the page header declares (already checked against the limits) and fails unless the
/// data inflates to exactly that size.
enum PageCompression {
    /// ZSTD at `level` (1 is what keeps scoring's output path cheap; scores barely compress).
    static func zstd(_ input: Data, level: Int32 = 1) throws -> Data {
        let bound = ZSTD_compressBound(input.count)
        var out = Data(count: bound)
        let n = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in
                ZSTD_compress(dst.baseAddress, bound, src.baseAddress, src.count, level)
            }
        }
        guard ZSTD_isError(n) == 0 else {
            throw ClipSafetyError.io("zstd compression failed: \(String(cString: ZSTD_getErrorName(n)))")
        }
        out.count = n
        return out
    }

    /// Inflates `input` (compressed with `codec`) into exactly `size` bytes.
    static func decompress(_ input: Data, codec: Int32, size: Int) throws -> Data {
        switch Codec(rawValue: codec) {
        case .uncompressed:
            guard input.count == size else { throw ClipSafetyError.malformed("uncompressed page of \(input.count) bytes declares \(size)") }
            return input
        case .zstd: return try unzstd(input, size: size)
        case .snappy: return try unsnappy(input, size: size)
        default:
            let name = Codec(rawValue: codec).map { "\($0)" } ?? "codec \(codec)"
            throw ClipSafetyError.unsupported("pages compressed with \(name); clipsafety reads uncompressed, snappy and zstd pages")
        }
    }

    private static func unzstd(_ input: Data, size: Int) throws -> Data {
        var out = Data(count: size)
        // A page may hold several frames; ZSTD_decompress handles them and never writes past `size`.
        let n = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in ZSTD_decompress(dst.baseAddress, size, src.baseAddress, src.count) }
        }
        guard ZSTD_isError(n) == 0 else {
            throw ClipSafetyError.malformed("zstd page does not decompress: \(String(cString: ZSTD_getErrorName(n)))")
        }
        guard n == size else { throw ClipSafetyError.malformed("zstd page inflates to \(n) bytes, not the declared \(size)") }
        return out
    }

    private static func unsnappy(_ input: Data, size: Int) throws -> Data {
        var declared = 0
        let ok = input.withUnsafeBytes { src in
            src.withMemoryRebound(to: CChar.self) { snappy_uncompressed_length($0.baseAddress, $0.count, &declared) }
        }
        guard ok == SNAPPY_OK, declared == size else {
            throw ClipSafetyError.malformed("snappy page does not declare the \(size) bytes its header says")
        }
        var out = Data(count: size)
        var length = size
        let status = out.withUnsafeMutableBytes { dst in
            input.withUnsafeBytes { src in
                src.withMemoryRebound(to: CChar.self) { s in
                    dst.withMemoryRebound(to: CChar.self) { d in snappy_uncompress(s.baseAddress, s.count, d.baseAddress, &length) }
                }
            }
        }
        guard status == SNAPPY_OK, length == size else { throw ClipSafetyError.malformed("snappy page does not decompress") }
        return out
    }
}
