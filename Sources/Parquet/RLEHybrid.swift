import Core
import Foundation

/// The RLE / bit-packing hybrid (parquet-format, Encodings.md, "RLE = 3"): runs of a varint
/// header whose low bit says bit-packed (count of 8-value groups in the other bits, values
/// packed from the least significant bit) or repeated (run length in the other bits, then the
/// value in ceil(width / 8) little-endian bytes). Used for definition levels, dictionary
/// indices and RLE booleans.
enum RLEHybrid {
    /// Encodes `values` (each below 2^width, width 1...32): uniform 8-value blocks become
    /// repeated runs, the rest bit-packed runs; a short tail is one run or a zero-padded group.
    static func encode(_ values: [UInt32], width: Int) -> Data {
        var out = Data()
        var packed: [UInt32] = []
        var runValue: UInt32 = 0
        var runLength = 0
        func flushRun() {
            guard runLength > 0 else { return }
            appendVarint(UInt64(runLength) << 1, to: &out)
            for i in 0..<((width + 7) / 8) { out.append(UInt8(truncatingIfNeeded: runValue >> (8 * i))) }
            runLength = 0
        }
        func flushPacked() {
            guard !packed.isEmpty else { return }
            appendVarint(UInt64(packed.count / 8) << 1 | 1, to: &out)
            pack(packed, width: width, into: &out)
            packed.removeAll(keepingCapacity: true)
        }
        var i = 0
        while i < values.count {
            let end = min(i + 8, values.count)
            let block = values[i..<end]
            let first = values[i]
            if block.allSatisfy({ $0 == first }) {
                flushPacked()
                if runLength > 0 && runValue != first { flushRun() }
                runValue = first
                runLength += block.count
            } else {
                flushRun()
                packed.append(contentsOf: block)
                while packed.count % 8 != 0 { packed.append(0) }
            }
            i = end
        }
        flushRun()
        flushPacked()
        return out
    }

    private static func pack(_ values: [UInt32], width: Int, into out: inout Data) {
        var acc: UInt64 = 0
        var bits = 0
        for v in values {
            acc |= UInt64(v) << bits
            bits += width
            while bits >= 8 {
                out.append(UInt8(truncatingIfNeeded: acc))
                acc >>= 8
                bits -= 8
            }
        }
        if bits > 0 { out.append(UInt8(truncatingIfNeeded: acc)) }
    }

    static func appendVarint(_ value: UInt64, to out: inout Data) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Decodes exactly `count` values of `width` bits from `cursor` (which it consumes up to
    /// the end of the last run it needed). Runs that claim more bytes than are left fail.
    static func decode(_ cursor: inout ByteCursor, width: Int, count: Int) throws -> [UInt32] {
        guard (0...32).contains(width) else { throw ClipSafetyError.malformed("RLE bit width \(width) is not 0...32") }
        var out: [UInt32] = []
        out.reserveCapacity(count)
        let valueBytes = (width + 7) / 8
        while out.count < count {
            guard let header = cursor.readVarint() else { throw ClipSafetyError.truncated("RLE data ends before its \(count) values") }
            if header & 1 == 1 {
                let groups = header >> 1
                guard groups > 0, groups <= UInt64(cursor.remaining) else { throw ClipSafetyError.truncated("bit-packed run longer than its page") }
                let bytes = Int(groups) * width
                guard let slice = cursor.readBytes(bytes) else { throw ClipSafetyError.truncated("bit-packed run longer than its page") }
                unpack(slice, width: width, values: min(Int(groups) * 8, count - out.count), into: &out)
            } else {
                let length = header >> 1
                guard length > 0, length <= UInt64(Int32.max) else { throw ClipSafetyError.malformed("RLE run of length \(length)") }
                guard let raw = cursor.readBytes(valueBytes) else { throw ClipSafetyError.truncated("RLE run without its value") }
                var value: UInt32 = 0
                for (i, b) in raw.enumerated() { value |= UInt32(b) << (8 * i) }
                guard width == 32 || value >> width == 0 else { throw ClipSafetyError.malformed("RLE value wider than \(width) bits") }
                out.append(contentsOf: repeatElement(value, count: min(Int(length), count - out.count)))
            }
        }
        return out
    }

    private static func unpack(_ bytes: Data, width: Int, values: Int, into out: inout [UInt32]) {
        guard width > 0 else {
            out.append(contentsOf: repeatElement(0, count: values))
            return
        }
        let mask: UInt64 = width == 32 ? 0xffff_ffff : (1 << UInt64(width)) - 1
        var acc: UInt64 = 0
        var bits = 0
        var produced = 0
        var index = bytes.startIndex
        while produced < values {
            while bits < width && index < bytes.endIndex {
                acc |= UInt64(bytes[index]) << bits
                index += 1
                bits += 8
            }
            out.append(UInt32(acc & mask))
            acc >>= UInt64(width)
            bits -= width
            produced += 1
        }
    }

    /// Bits needed for values up to `maxValue`.
    static func bitWidth(_ maxValue: Int) -> Int {
        maxValue <= 0 ? 0 : Int.bitWidth - maxValue.leadingZeroBitCount
    }
}
