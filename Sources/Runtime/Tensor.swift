import Core
import Foundation

/// A named, typed, shaped block of little-endian bytes: what a native file stores.
///
/// `data` may be a slice of a memory-mapped file; nothing is copied until a value accessor
/// (`floatValues()`, `int64Values()`) is called.
public struct Tensor: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    public var data: Data

    /// Creates a tensor after checking that `data` holds exactly `shape` × `dtype` bytes.
    public init(name: String, dtype: DType, shape: [Int], data: Data) throws {
        guard let (_, bytes) = checkedByteCount(shape: shape, dtype: dtype) else {
            throw ClipSafetyError.malformed("tensor '\(name)': shape \(shape) overflows")
        }
        guard bytes == data.count else {
            throw ClipSafetyError.malformed(
                "tensor '\(name)': \(dtype.rawValue) \(shape) needs \(bytes) bytes, has \(data.count)")
        }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public init(name: String, shape: [Int], floats: [Float]) {
        self.name = name
        self.dtype = .f32
        self.shape = shape
        self.data = floats.withUnsafeBufferPointer { buf in
            var d = Data(capacity: buf.count * 4)
            for v in buf { withUnsafeBytes(of: v.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
            return d
        }
    }

    public init(name: String, shape: [Int], int64s: [Int64]) {
        self.name = name
        self.dtype = .i64
        self.shape = shape
        var d = Data(capacity: int64s.count * 8)
        for v in int64s { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        self.data = d
    }

    public init(name: String, shape: [Int], bytes: [UInt8]) {
        self.name = name
        self.dtype = .u8
        self.shape = shape
        self.data = Data(bytes)
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// Values widened or narrowed to Float32 (F16, BF16, F32, F64 only).
    public func floatValues() throws -> [Float] {
        let n = elementCount
        return try data.withUnsafeBytes { raw -> [Float] in
            switch dtype {
            case .f32:
                return (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            case .f16:
                return (0..<n).map { Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
            case .bf16:
                return (0..<n).map { Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16) }
            case .f64:
                return (0..<n).map { Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))) }
            default:
                throw ClipSafetyError.unsupported("tensor '\(name)': expected a floating-point dtype, found \(dtype.rawValue)")
            }
        }
    }

    /// Values of an integer tensor (I8…I64, U8) as Int64.
    public func int64Values() throws -> [Int64] {
        let n = elementCount
        return try data.withUnsafeBytes { raw -> [Int64] in
            switch dtype {
            case .i64: return (0..<n).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
            case .i32: return (0..<n).map { Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))) }
            case .i16: return (0..<n).map { Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self))) }
            case .i8: return (0..<n).map { Int64(raw.load(fromByteOffset: $0, as: Int8.self)) }
            case .u8, .bool: return (0..<n).map { Int64(raw.load(fromByteOffset: $0, as: UInt8.self)) }
            default:
                throw ClipSafetyError.unsupported("tensor '\(name)': expected an integer dtype, found \(dtype.rawValue)")
            }
        }
    }
}
