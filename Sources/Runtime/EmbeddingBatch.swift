/// Element type of an input embedding matrix.
public enum EmbeddingElementType: String, Sendable {
    case float16, float32, float64

    public var byteSize: Int {
        switch self {
        case .float16: return 2
        case .float32: return 4
        case .float64: return 8
        }
    }
}

/// A borrowed, row-major N×D matrix of native-endian f16/f32/f64 values: the input of a scorer.
///
/// It points at memory owned elsewhere (an array, a memory-mapped `.npy` file) and is valid
/// only while that memory is; build it inside `withUnsafe…` or keep the owner alive.
public struct EmbeddingBatch {
    public let rows: Int
    public let columns: Int
    public let elementType: EmbeddingElementType
    public let base: UnsafeRawPointer

    /// `base` must hold `rows × columns` elements of `elementType`, suitably aligned.
    public init(base: UnsafeRawPointer, rows: Int, columns: Int, elementType: EmbeddingElementType) {
        precondition(rows >= 0 && columns >= 0)
        self.base = base
        self.rows = rows
        self.columns = columns
        self.elementType = elementType
    }

    /// The exact float64 value of element (row, column); f16 and f32 widen without rounding.
    @inline(__always)
    public func value(row: Int, column: Int) -> Double {
        let i = row * columns + column
        switch elementType {
        case .float16: return Double(base.load(fromByteOffset: i * 2, as: Float16.self))
        case .float32: return Double(base.load(fromByteOffset: i * 4, as: Float.self))
        case .float64: return base.load(fromByteOffset: i * 8, as: Double.self)
        }
    }

    /// Copies rows into `out` (rows × columns Float32), rounding f64 to nearest.
    public func copyAsFloat32(into out: UnsafeMutablePointer<Float>) {
        let n = rows * columns
        switch elementType {
        case .float32:
            out.update(from: base.assumingMemoryBound(to: Float.self), count: n)
        case .float16:
            Self.widenHalves(base.assumingMemoryBound(to: UInt16.self), into: out, count: n)
        case .float64:
            let src = base.assumingMemoryBound(to: Double.self)
            for i in 0..<n { out[i] = Float(src[i]) }
        }
    }
}

extension EmbeddingBatch {
    /// Float16 bit patterns to Float32, exactly (every float16 is a float32), with integer and
    /// select operations the compiler vectorises. `Float(Float16)` compiles to one library
    /// call per element on x86-64 without F16C, which made widening a large share of scoring.
    static func widenHalves(_ src: UnsafePointer<UInt16>, into out: UnsafeMutablePointer<Float>, count: Int) {
        let bits = UnsafeMutableRawPointer(out).assumingMemoryBound(to: UInt32.self)
        for i in 0..<count {
            let h = UInt32(src[i])
            let sign = (h & 0x8000) << 16
            let magnitude = h & 0x7FFF
            // Normal: rebias the exponent (15 → 127). Inf/NaN: all-ones exponent, payload kept.
            let normal = (magnitude << 13) &+ (112 << 23)
            let special = (magnitude << 13) | 0x7F80_0000
            // Zero and subnormal: mantissa × 2⁻²⁴, exact in float32 (a normal number there).
            let small = (Float(magnitude) * 0x1p-24).bitPattern
            let exponent = magnitude >> 10
            let value = exponent == 0 ? small : (exponent == 31 ? special : normal)
            bits[i] = sign | value
        }
    }
}

/// Scores for a batch: `rows × columns` Float32, row-major, and for graphs ending in
/// `argmax` one label per row.
public struct ScoreResult: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    public var scores: [Float]
    public var labels: [Int64]?

    public func score(row: Int, column: Int = 0) -> Float { scores[row * columns + column] }
}
