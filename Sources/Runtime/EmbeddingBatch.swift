import CKernels

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
    /// Float16 bit patterns to Float32, exactly (every float16 is a float32), eight at a time
    /// with integer and select operations. `Float(Float16)` compiles to one library call per
    /// element on x86-64 without F16C, which made widening a large share of scoring.
    ///
    /// The exponent/mantissa bits move to their float32 place and the exponent is rebiased
    /// (+112); infinities and NaNs (exponent 31) get 112 more so that the exponent is all ones
    /// and the payload stays; zeros and subnormals are built as 2⁻¹⁴ × (1 + m/1024) and then
    /// 2⁻¹⁴ is subtracted, which leaves m × 2⁻²⁴ exactly.
    static func widenHalves(_ src: UnsafePointer<UInt16>, into out: UnsafeMutablePointer<Float>, count: Int) {
        if hasF16C {
            clipsafety_widen_halves_f16c(src, out, count)
            return
        }
        widenHalvesPortably(src, into: out, count: count)
    }

    /// True when the CPU converts half precision itself (x86-64 F16C): one instruction per
    /// eight values instead of about twenty (B/32 on float16 input ran 2.5 → 3.2 M rows/s).
    static let hasF16C = clipsafety_has_f16c() != 0

    /// `widenHalves` without CPU-specific instructions (and the reference the tests hold the
    /// F16C path to).
    static func widenHalvesPortably(_ src: UnsafePointer<UInt16>, into out: UnsafeMutablePointer<Float>, count: Int) {
        let raw = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 8 <= count {
            let h = SIMD8<UInt32>(truncatingIfNeeded: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<UInt16>.self))
            raw.storeBytes(of: widen(h), toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        if i < count {
            var h = SIMD8<UInt32>()
            for k in 0..<(count - i) { h[k] = UInt32(src[i + k]) }
            let f = widen(h)
            for k in 0..<(count - i) { out[i + k] = f[k] }
        }
    }

    @inline(__always)
    private static func widen(_ h: SIMD8<UInt32>) -> SIMD8<Float> {
        let exponentMask = SIMD8<UInt32>(repeating: 0x7C00 << 13)
        let magnitude = (h & 0x7FFF) &<< 13
        let exponent = magnitude & exponentMask
        var bits = magnitude &+ SIMD8<UInt32>(repeating: 112 << 23)
        bits = bits.replacing(with: bits &+ SIMD8<UInt32>(repeating: 112 << 23), where: exponent .== exponentMask)
        let tiny = unsafeBitCast(bits &+ SIMD8<UInt32>(repeating: 1 << 23), to: SIMD8<Float>.self) - SIMD8<Float>(repeating: 0x1p-14)
        bits = bits.replacing(with: unsafeBitCast(tiny, to: SIMD8<UInt32>.self), where: exponent .== SIMD8<UInt32>())
        return unsafeBitCast(bits | ((h & 0x8000) &<< 16), to: SIMD8<Float>.self)
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
