import Core

/// One `categorical_lookup` column as intervals of float64 values.
///
/// The key of an input value is C `printf("%f")` of its float64 value (after the graph's cast
/// to float32, `roundToFloat32`). `%f` rounds to 6 decimals, ties to even, and is monotone in
/// the value, so each vocabulary key covers an interval of doubles, and so do "inf", "-inf",
/// "nan" and "-nan" once doubles are ordered by `orderedKey` (-NaN < -inf < … < -0 < +0 < … <
/// +inf < +NaN). The intervals are computed once, exactly, at load; mapping a value is then a
/// binary search over their starts, with no formatting and no strings.
struct CategoricalLookup: Sendable {
    let column: Int
    /// Round the input to float32 before the key (`key_dtype` F32).
    let roundToFloat32: Bool
    /// Sorted starts in `orderedKey` space; `values[i]` covers `starts[i]..<starts[i + 1]`.
    /// `starts[0]` is 0, so every double falls in one interval (the gaps hold the OOV index).
    let starts: [UInt64]
    let values: [Float]
    /// Every `blockSize`-th start: a first search over these (a few KB, in L1) picks the block
    /// of `starts` that holds the answer, so the search over the large array touches one block.
    let coarse: [UInt64]
    static let blockSize = 64
    /// The index of a key not in the vocabulary.
    let oov: Float

    init(column: Int, keys: [String], indices: [Int64], oov: Int64, roundToFloat32: Bool) {
        self.column = column
        self.roundToFloat32 = roundToFloat32
        self.oov = Float(oov)
        var intervals: [(first: UInt64, last: UInt64, value: Float)] = []
        for (key, index) in zip(keys, indices) {
            if let range = Self.orderedRange(of: key) { intervals.append((range.lowerBound, range.upperBound, Float(index))) }
        }
        intervals.sort { $0.first < $1.first }
        var starts: [UInt64] = [0], values: [Float] = [Float(oov)]
        for interval in intervals {
            if interval.first == starts[starts.count - 1] { values[values.count - 1] = interval.value } else {
                starts.append(interval.first)
                values.append(interval.value)
            }
            if interval.last < UInt64.max {
                starts.append(interval.last + 1)
                values.append(Float(oov))
            }
        }
        self.starts = starts
        self.values = values
        self.coarse = stride(from: 0, to: starts.count, by: Self.blockSize).map { starts[$0] }
    }

    /// The vocabulary index (as Float) of `x`, or the OOV index.
    func value(of x: Double) -> Float {
        values[starts.withUnsafeBufferPointer { interval(of: x, starts: $0.baseAddress!, count: $0.count) }]
    }

    /// Which interval holds `x`: the largest i with starts[i] ≤ its key. First the largest
    /// block whose first start is ≤ the key (over `coarse`), then within that block; both are
    /// searches whose steps depend only on the counts (a conditional move per step, no
    /// unpredictable branch). The same i as one search over all of `starts`.
    @inline(__always)
    func interval(of x: Double, starts: UnsafePointer<UInt64>, count: Int) -> Int {
        let key = Self.orderedKey(roundToFloat32 ? Double(Float(x)) : x)
        let block = coarse.withUnsafeBufferPointer { Self.lastAtMost(key, in: $0.baseAddress!, from: 0, count: $0.count) }
        let first = block * Self.blockSize
        return Self.lastAtMost(key, in: starts, from: first, count: Swift.min(Self.blockSize, count - first))
    }

    /// The largest i in `from..<from + count` with sorted[i] ≤ key, given sorted[from] ≤ key.
    @inline(__always)
    static func lastAtMost(_ key: UInt64, in sorted: UnsafePointer<UInt64>, from: Int, count: Int) -> Int {
        var base = from, n = count
        while n > 1 {
            let half = n >> 1
            base = sorted[base + half] <= key ? base + half : base
            n -= half
        }
        return base
    }

    /// Doubles as unsigned integers in value order, with the sign bit of NaNs and zeros kept
    /// apart: -NaN, -inf, negatives, -0, +0, positives, +inf, +NaN.
    @inline(__always)
    static func orderedKey(_ x: Double) -> UInt64 {
        let bits = x.bitPattern
        return bits ^ (UInt64(bitPattern: Int64(bitPattern: bits) >> 63) | (1 << 63))
    }

    /// The closed range of `orderedKey`s whose `%f` is `key`; nil for a string `%f` never prints.
    static func orderedRange(of key: String) -> ClosedRange<UInt64>? {
        let sign: UInt64 = 1 << 63
        switch key {
        case "nan": return (orderedKey(.infinity) + 1)...UInt64.max
        case "-nan": return 0...(orderedKey(-.infinity) - 1)
        case "inf": return orderedKey(.infinity)...orderedKey(.infinity)
        case "-inf": return orderedKey(-.infinity)...orderedKey(-.infinity)
        default: break
        }
        guard let (negative, scaled) = parseFixed(key) else { return nil }
        let first = firstMagnitude(roundingTo: scaled)
        let next = firstMagnitude(roundingTo: scaled.plusOne())
        guard first < next else { return nil }
        let last = next - 1
        return negative ? (~(last | sign))...(~(first | sign)) : (first | sign)...(last | sign)
    }

    /// `-?(0|[1-9][0-9]*)\.[0-9]{6}`, the shape of a finite `%f`: the sign and the value × 10⁶.
    /// Nil for anything else, and for integer parts too long for any double (over 309 digits).
    static func parseFixed(_ key: String) -> (negative: Bool, scaled: BigUInt)? {
        var bytes = Array(key.utf8)[...]
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes = bytes.dropFirst() }
        guard let dot = bytes.firstIndex(of: UInt8(ascii: ".")) else { return nil }
        let integer = bytes[..<dot], fraction = bytes[(dot + 1)...]
        let isDigit = { (b: UInt8) in b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
        guard fraction.count == 6, !integer.isEmpty, integer.count <= 309,
              integer.allSatisfy(isDigit), fraction.allSatisfy(isDigit),
              integer.count == 1 || integer.first != UInt8(ascii: "0") else { return nil }
        var scaled = BigUInt(0)
        for digit in integer + fraction { scaled.multiply(by: 10, adding: UInt32(digit - UInt8(ascii: "0"))) }
        return (negative, scaled)
    }

    /// The smallest bit pattern of a non-negative double whose `%f` magnitude, times 10⁶, is at
    /// least `scaled` (`+inf`'s pattern when no finite double is). `%f` rounds a·10⁶ to the
    /// nearest integer, ties to even: it reaches D when 2·a·10⁶ > 2D − 1, or equals it and D is
    /// even. The predicate is monotone in the pattern, so a bisection finds the first.
    static func firstMagnitude(roundingTo scaled: BigUInt) -> UInt64 {
        let infinity = Double.infinity.bitPattern
        guard !scaled.isZero else { return 0 }
        let threshold = scaled.twiceMinusOne()
        let even = scaled.isEven
        var low: UInt64 = 0, high = infinity
        while low < high {
            let middle = low + (high - low) / 2
            let order = compareTwoMillionTimes(Double(bitPattern: middle), with: threshold)
            if order > 0 || (order == 0 && even) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    /// The sign of 2·10⁶·a − t, exactly, for a finite non-negative double a.
    static func compareTwoMillionTimes(_ a: Double, with t: BigUInt) -> Int {
        guard a != 0 else { return t.isZero ? 0 : -1 }
        var left = BigUInt(a.significandBitPattern | (a.isNormal ? 1 << 52 : 0))
        left.multiply(by: 2_000_000, adding: 0)
        var right = t
        let exponent = (a.isNormal ? Int(a.exponentBitPattern) : 1) - 1075
        if exponent >= 0 { left.shiftLeft(exponent) } else { right.shiftLeft(-exponent) }
        return left.compare(right)
    }
}

/// The few operations on unsigned integers of any size that `CategoricalLookup` needs to place
/// decimal keys among doubles exactly: little-endian 32-bit limbs, no leading zero limbs.
struct BigUInt: Sendable {
    private(set) var limbs: [UInt32]

    init(_ value: UInt64) {
        limbs = [UInt32(truncatingIfNeeded: value), UInt32(truncatingIfNeeded: value >> 32)]
        trim()
    }

    var isZero: Bool { limbs.isEmpty }
    var isEven: Bool { (limbs.first ?? 0) & 1 == 0 }

    mutating func multiply(by factor: UInt32, adding addend: UInt32) {
        var carry = UInt64(addend)
        for i in limbs.indices {
            let product = UInt64(limbs[i]) * UInt64(factor) + carry
            limbs[i] = UInt32(truncatingIfNeeded: product)
            carry = product >> 32
        }
        if carry != 0 { limbs.append(UInt32(carry)) }
        trim()
    }

    mutating func shiftLeft(_ bits: Int) {
        guard !isZero, bits > 0 else { return }
        let words = bits / 32, shift = UInt32(bits % 32)
        var result = [UInt32](repeating: 0, count: words + limbs.count + 1)
        for (i, limb) in limbs.enumerated() {
            result[words + i] |= limb << shift
            if shift > 0 { result[words + i + 1] |= limb >> (32 - shift) }
        }
        limbs = result
        trim()
    }

    func plusOne() -> BigUInt {
        var copy = self
        copy.multiply(by: 1, adding: 1)
        return copy
    }

    /// 2·self − 1, for self ≥ 1.
    func twiceMinusOne() -> BigUInt {
        var result = self
        result.multiply(by: 2, adding: 0)
        var i = 0
        while result.limbs[i] == 0 { result.limbs[i] = UInt32.max; i += 1 }
        result.limbs[i] -= 1
        result.trim()
        return result
    }

    /// -1, 0 or 1 as self is below, equal to or above `other`.
    func compare(_ other: BigUInt) -> Int {
        if limbs.count != other.limbs.count { return limbs.count < other.limbs.count ? -1 : 1 }
        for i in limbs.indices.reversed() where limbs[i] != other.limbs[i] {
            return limbs[i] < other.limbs[i] ? -1 : 1
        }
        return 0
    }

    private mutating func trim() {
        while limbs.last == 0 { limbs.removeLast() }
    }
}
