import Foundation
import Runtime

/// Summary statistics of one tensor's values, gathered in a single streaming pass over its
/// bytes (no copy, no array of values): min, max, mean and standard deviation of the finite
/// values (Welford's update in float64), and counts of NaN and ±infinity.
public struct TensorStats: Codable, Equatable, Sendable {
    public var count: Int
    public var min: Double?
    public var max: Double?
    public var mean: Double?
    /// Population standard deviation (divides by the number of finite values).
    public var std: Double?
    public var nan: Int
    public var inf: Int

    /// Statistics of `data` holding little-endian elements of `dtype` (as safetensors and
    /// normalised `.npy` arrays store them). `data.count` must be a multiple of the element size.
    public init(data: Data, dtype: DType) {
        var acc = Accumulator()
        let size = dtype.byteSize
        let n = data.count / size
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            switch dtype {
            case .f32:
                for i in 0..<n { acc.add(Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))))) }
            case .f64:
                for i in 0..<n { acc.add(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
            case .f16:
                for i in 0..<n { acc.add(Double(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))))) }
            case .bf16:
                for i in 0..<n { acc.add(Double(Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16))) }
            case .i64:
                for i in 0..<n { acc.add(Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))) }
            case .i32:
                for i in 0..<n { acc.add(Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))) }
            case .i16:
                for i in 0..<n { acc.add(Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))) }
            case .i8:
                for i in 0..<n { acc.add(Double(raw.loadUnaligned(fromByteOffset: i, as: Int8.self))) }
            case .u8, .bool:
                for i in 0..<n { acc.add(Double(raw.loadUnaligned(fromByteOffset: i, as: UInt8.self))) }
            }
        }
        self = acc.stats
    }

    public init(_ tensor: Tensor) {
        self.init(data: tensor.data, dtype: tensor.dtype)
    }

    init(count: Int, min: Double?, max: Double?, mean: Double?, std: Double?, nan: Int, inf: Int) {
        self.count = count
        self.min = min
        self.max = max
        self.mean = mean
        self.std = std
        self.nan = nan
        self.inf = inf
    }

    /// Welford's running mean and sum of squared deviations.
    struct Accumulator {
        var count = 0
        var finite = 0
        var nan = 0
        var inf = 0
        var low = Double.infinity
        var high = -Double.infinity
        var mean = 0.0
        var m2 = 0.0

        @inline(__always)
        mutating func add(_ x: Double) {
            count += 1
            if x.isNaN { nan += 1; return }
            if x.isInfinite { inf += 1; return }
            finite += 1
            if x < low { low = x }
            if x > high { high = x }
            let delta = x - mean
            mean += delta / Double(finite)
            m2 += delta * (x - mean)
        }

        var stats: TensorStats {
            guard finite > 0 else { return TensorStats(count: count, min: nil, max: nil, mean: nil, std: nil, nan: nan, inf: inf) }
            // Finite values near the float64 limit can overflow the running sums; say so with null.
            let std = (m2 / Double(finite)).squareRoot()
            return TensorStats(count: count, min: low, max: high, mean: mean.isFinite ? mean : nil,
                               std: std.isFinite ? std : nil, nan: nan, inf: inf)
        }
    }

    enum CodingKeys: String, CodingKey { case count, min, max, mean, std, nan, inf }

    /// Every key is written; absent values are `null` (docs/INSPECT-JSON.md).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(min, forKey: .min)
        try c.encode(max, forKey: .max)
        try c.encode(mean, forKey: .mean)
        try c.encode(std, forKey: .std)
        try c.encode(nan, forKey: .nan)
        try c.encode(inf, forKey: .inf)
    }
}
