import Foundation
import Runtime

/// The element-wise difference of two tensors of equal element count, any dtypes the runtime
/// knows (floats and integers alike compared as float64), accumulated in one streaming pass:
/// both sides are widened a block at a time, so nothing larger than two blocks is allocated.
///
/// NaN against NaN at the same index counts as equal; NaN against a number counts as a
/// difference beyond any tolerance; equal infinities differ by 0.
public struct ValueDiff: Equatable, Sendable {
    public let atol: Double
    public private(set) var elements = 0
    /// Largest |a − b| over pairs where neither is NaN.
    public private(set) var maxAbs = 0.0
    /// Largest |a − b| / max(|a|, |b|) over the same pairs.
    public private(set) var maxRel = 0.0
    /// Elements with |a − b| > atol, plus the NaN mismatches.
    public private(set) var beyondAtol = 0
    public private(set) var nanMismatches = 0
    /// The first element of the largest |a − b| (when above 0).
    public private(set) var largest: (index: Int, a: Double, b: Double)?
    /// The first element where exactly one side is NaN.
    public private(set) var firstNaN: (index: Int, a: Double, b: Double)?

    public init(atol: Double) { self.atol = atol }

    /// The worst element: a NaN mismatch when there is one, else the largest difference.
    public var worst: (index: Int, a: Double, b: Double)? { firstNaN ?? largest }

    /// Elements read and widened per block.
    static let block = 4096

    /// Compares `a` and `b` element by element (row-major, as stored).
    public static func compare(_ a: Tensor, _ b: Tensor, atol: Double) -> ValueDiff {
        var diff = ValueDiff(atol: atol)
        let n = Swift.min(a.elementCount, b.elementCount)
        var xs = [Double](repeating: 0, count: Swift.min(block, n))
        var ys = xs
        var start = 0
        while start < n {
            let count = Swift.min(block, n - start)
            widen(a, from: start, count: count, into: &xs)
            widen(b, from: start, count: count, into: &ys)
            for i in 0..<count { diff.add(xs[i], ys[i], at: start + i) }
            start += count
        }
        return diff
    }

    @inline(__always)
    mutating func add(_ x: Double, _ y: Double, at index: Int) {
        elements += 1
        if x.isNaN || y.isNaN {
            guard !(x.isNaN && y.isNaN) else { return }
            nanMismatches += 1
            beyondAtol += 1
            if firstNaN == nil { firstNaN = (index, x, y) }
            return
        }
        let d = x == y ? 0 : Swift.abs(x - y)
        guard d > 0 else { return }
        if d > atol { beyondAtol += 1 }
        if d > maxAbs {
            maxAbs = d
            largest = (index, x, y)
        }
        let rel = d.isInfinite ? Double.infinity : d / Swift.max(Swift.abs(x), Swift.abs(y))
        if rel > maxRel { maxRel = rel }
    }

    /// Elements `start ..< start + count` of `t` as float64, written to the front of `out`.
    static func widen(_ t: Tensor, from start: Int, count: Int, into out: inout [Double]) {
        t.data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            out.withUnsafeMutableBufferPointer { o in
                let size = t.dtype.byteSize
                for i in 0..<count {
                    o[i] = element(raw, dtype: t.dtype, offset: (start + i) * size)
                }
            }
        }
    }

    /// One little-endian element at `offset` as float64.
    @inline(__always)
    static func element(_ raw: UnsafeRawBufferPointer, dtype: DType, offset: Int) -> Double {
        switch dtype {
        case .f32: return Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))))
        case .f64: return Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        case .f16: return Double(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        case .bf16: return Double(Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) << 16))
        case .i64: return Double(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int64.self)))
        case .i32: return Double(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
        case .i16: return Double(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: Int16.self)))
        case .i8: return Double(raw.loadUnaligned(fromByteOffset: offset, as: Int8.self))
        case .u8, .bool: return Double(raw.loadUnaligned(fromByteOffset: offset, as: UInt8.self))
        }
    }

    /// `flat` as a row-major multi-index into `shape` (`[]` for a scalar).
    public static func multiIndex(_ flat: Int, shape: [Int]) -> [Int] {
        var rest = flat
        var index = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }

    public static func == (l: ValueDiff, r: ValueDiff) -> Bool {
        l.atol == r.atol && l.elements == r.elements && l.maxAbs == r.maxAbs && l.maxRel == r.maxRel
            && l.beyondAtol == r.beyondAtol && l.nanMismatches == r.nanMismatches
            && l.worst?.index == r.worst?.index
    }
}
