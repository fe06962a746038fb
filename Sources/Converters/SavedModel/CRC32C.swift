import Foundation

/// CRC-32C (Castagnoli), as LevelDB tables and TensorFlow tensor bundles use it, with their
/// "masked" form (a rotation plus a constant, so a CRC stored next to the data it covers does
/// not checksum to a fixed value).
public enum CRC32C {
    /// Reflected Castagnoli polynomial.
    static let polynomial: UInt32 = 0x82F6_3B78
    static let maskDelta: UInt32 = 0xA282_EAD8

    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1 }
        return c
    }

    /// The CRC of `bytes`, continuing from `crc` (the CRC of the bytes before them; 0 to start).
    public static func checksum<Bytes: Sequence>(_ bytes: Bytes, extending crc: UInt32 = 0) -> UInt32 where Bytes.Element == UInt8 {
        var c = ~crc
        table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        }
        return ~c
    }

    /// The CRC of `data` (fast path over contiguous bytes).
    public static func checksum(_ data: Data, extending crc: UInt32 = 0) -> UInt32 {
        data.withUnsafeBytes { raw in checksum(raw.bindMemory(to: UInt8.self), extending: crc) }
    }

    public static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ maskDelta
    }

    public static func unmask(_ masked: UInt32) -> UInt32 {
        let rot = masked &- maskDelta
        return (rot >> 17) | (rot << 15)
    }
}
