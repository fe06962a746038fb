import Foundation

/// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit generator whose whole state is one
/// integer, so a seed gives the same stream on every machine.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A double in (0, 1]: the top 53 bits, plus one, times 2⁻⁵³.
    public mutating func unitOpenClosed() -> Double {
        Double((next() >> 11) + 1) * 0x1p-53
    }

    /// A double in [0, 1).
    public mutating func unitClosedOpen() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}

/// Random L2-normalised rows that are bit-identical on every machine: SplitMix64 uniforms,
/// Box–Muller normals, each row divided by its norm. The logarithm, sine and cosine are
/// computed here from IEEE basic operations (no libm), since platform libms may differ in the
/// last bit.
public struct SeededInputs: Sendable {
    public let columns: Int
    private var rng: SplitMix64
    private var spare: Double?

    public init(seed: UInt64, columns: Int) {
        self.columns = columns
        self.rng = SplitMix64(seed: seed)
    }

    /// The next `rows` rows, row-major float64; a stream, so batches continue where the last ended.
    public mutating func next(rows: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            var sum = 0.0
            for c in 0..<columns {
                let v = normal()
                out[r * columns + c] = v
                sum += v * v
            }
            let norm = sum.squareRoot()
            if norm > 0 { for c in 0..<columns { out[r * columns + c] /= norm } }
        }
        return out
    }

    /// One standard normal deviate (Box–Muller, both values of each pair used).
    mutating func normal() -> Double {
        if let s = spare {
            spare = nil
            return s
        }
        let u1 = rng.unitOpenClosed()
        let u2 = rng.unitClosedOpen()
        let radius = (-2 * PortableMath.log(u1)).squareRoot()
        let (s, c) = PortableMath.sinCos(twoPi: u2)
        spare = radius * s
        return radius * c
    }
}

/// Elementary functions from +, −, ×, ÷ and √ only, evaluated in a fixed order, so that every
/// IEEE 754 machine gets the same bits. Accurate to a few ulp, which is all random inputs need.
enum PortableMath {
    static let ln2 = 0.693_147_180_559_945_309_417_232_121_458
    static let pi = 3.141_592_653_589_793_238_462_643_383_279

    /// Natural logarithm of x > 0: x = m·2ᵉ with m in [1, 2), ln m = 2·atanh((m−1)/(m+1)).
    static func log(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return x == 0 ? -.infinity : .nan }
        let e = Double(x.exponent)
        let m = x.significand
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var term = s
        var sum = 0.0
        var k = 1.0
        for _ in 0..<24 {  // s ≤ 1/3: (1/3)^47 / 47 is far below one ulp
            sum += term / k
            term *= s2
            k += 2
        }
        return e * ln2 + 2 * sum
    }

    /// sin and cos of 2π·u for u in [0, 1): reduced to φ = 2π·u − π in [−π, π), then Taylor series.
    static func sinCos(twoPi u: Double) -> (sin: Double, cos: Double) {
        let phi = 2 * pi * u - pi
        let p2 = phi * phi
        var sinTerm = phi, cosTerm = 1.0
        var sinSum = 0.0, cosSum = 0.0
        var n = 1.0
        for _ in 0..<30 {  // π^60 / 60! is far below one ulp
            sinSum += sinTerm
            cosSum += cosTerm
            sinTerm *= -p2 / ((n + 1) * (n + 2))
            cosTerm *= -p2 / (n * (n + 1))
            n += 2
        }
        // sin(φ + π) = −sin φ, cos(φ + π) = −cos φ.
        return (-sinSum, -cosSum)
    }
}
