import Dispatch
import Foundation
import XCTest
import Converters
@testable import Runtime
import TestSupport

/// The interval lookup of `categorical_lookup` gives, for every value, what formatting the value
/// with C `%f` and looking the string up gives.
///
/// By default the sweeps are sized for a debug build (about 10 s): every boundary ±4 float32
/// ulps, every 1024th boundary ±4096, 10⁶ random values. `CLIPSAFETY_EXHAUSTIVE_LOOKUP=1` runs the
/// full check: every boundary ±4096 ulps and 10⁷ random values.
final class CategoricalLookupTests: XCTestCase {
    static let exhaustive = ProcessInfo.processInfo.environment["CLIPSAFETY_EXHAUSTIVE_LOOKUP"] == "1"

    /// A vocabulary with the special keys, ties of `%f` (1/128 = 0.0078125 prints "0.007812"),
    /// integers where doubles get sparse, the largest double's key, and strings `%f` never
    /// prints (they must stay out of vocabulary).
    static let syntheticKeys: [String] = [
        "nan", "-nan", "inf", "-inf", "0.000000", "-0.000000", "0.000001", "-0.000001",
        "0.007812", "0.007813", "-0.023437", "-0.023438", "0.023438", "1.000000", "-1.000000", "0.562500",
        "9007199254740992.000000", "9007199254740993.000000", "123456789.000000",
        percentF(Double.greatestFiniteMagnitude), percentF(-Double.greatestFiniteMagnitude.nextDown),
        "0.5", "+1.000000", "01.000000", "1.0000000", "", "NaN", "1e-6", "-", ".000000", "2.00000a",
    ]

    /// Each vocabulary both ways: keys of the float64 value and of its float32 rounding.
    static func syntheticLookups() -> [CategoricalLookup] {
        [false, true].map { f32 in
            CategoricalLookup(column: 0, keys: syntheticKeys, indices: syntheticKeys.indices.map { Int64($0 + 1) },
                              oov: 0, roundToFloat32: f32)
        }
    }

    /// The lookups of the catalog's autokeras heads, converted in process from models/files.
    static func shippedLookups() throws -> [(name: String, lookup: CategoricalLookup, table: [String: Float])] {
        var found: [(String, CategoricalLookup, [String: Float])] = []
        for name in ["clip_autokeras_nsfw_b32", "clip_autokeras_binary_nsfw"] {
            let model = try ModelLoader.load(path: try Fixtures.modelFile(name + ".zip"))
            let tensors = Dictionary(model.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for case .categoricalLookup(let columns) in model.graph {
                for c in columns {
                    let lookup = try Scorer.vocabulary(c, keys: tensors[c.keys], values: tensors[c.values])
                    found.append(("\(name) column \(c.column)", lookup, try table(keys: tensors[c.keys]!, values: tensors[c.values]!)))
                }
            }
        }
        return found
    }

    static func table(keys: Tensor, values: Tensor) throws -> [String: Float] {
        let strings = keys.data.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        return Dictionary(uniqueKeysWithValues: zip(strings, try values.int64Values().map(Float.init)))
    }

    static func syntheticTable() -> [String: Float] {
        Dictionary(uniqueKeysWithValues: syntheticKeys.enumerated().map { ($1, Float($0 + 1)) })
    }

    /// The reference: `%f` of the value (after the float32 cast), looked up as a string.
    static func reference(_ x: Double, _ lookup: CategoricalLookup, _ table: [String: Float]) -> Float {
        table[percentF(lookup.roundToFloat32 ? Double(Float(x)) : x)] ?? lookup.oov
    }

    /// The double at `key` in `CategoricalLookup.orderedKey` order.
    static func double(ordered key: UInt64) -> Double {
        Double(bitPattern: key >> 63 == 1 ? key & ~(1 << 63) : ~key)
    }

    /// Float32 values as ordered integers (…, -0 → -1, +0 → 0, …), and back.
    static func ordered(_ f: Float) -> Int64 {
        f.sign == .minus ? -Int64(f.bitPattern & 0x7FFF_FFFF) - 1 : Int64(f.bitPattern)
    }

    static func float(ordered i: Int64) -> Float {
        i < 0 ? Float(bitPattern: UInt32(-(i + 1)) | 0x8000_0000) : Float(bitPattern: UInt32(i))
    }

    /// Every boundary of `lookup` (its interval starts, and each finite key ± 0.5e-6), as the
    /// nearest float32, with `window` float32 ulps either side (`wide` of them for every
    /// `stride`-th boundary); overlapping windows merged.
    static func windows(_ lookup: CategoricalLookup, table: [String: Float], window: Int64, wide: Int64, stride: Int) -> [ClosedRange<Int64>] {
        var centres = lookup.starts.dropFirst().map { double(ordered: $0) }
        for key in table.keys { if let v = Double(key), v.isFinite, key.contains(".") { centres += [v - 5e-7, v + 5e-7] } }
        var ranges: [ClosedRange<Int64>] = []
        for (i, c) in centres.enumerated() {
            let f = Float(c)
            guard f.isFinite else { continue }
            let w = i % stride == 0 ? wide : window
            let o = ordered(f)
            ranges.append(Swift.max(o - w, ordered(-.infinity))...Swift.min(o + w, ordered(.infinity)))
        }
        ranges.sort { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<Int64>] = []
        for r in ranges {
            if let last = merged.last, r.lowerBound <= last.upperBound + 1 {
                merged[merged.count - 1] = last.lowerBound...Swift.max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        return merged
    }

    /// Checks every float32 value in `ranges` on both cores; returns the number checked.
    @discardableResult
    func check(_ ranges: [ClosedRange<Int64>], _ lookup: CategoricalLookup, _ table: [String: Float], _ name: String) -> Int {
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: ranges.count) { i in
            for o in ranges[i] {
                let x = Double(Self.float(ordered: o))
                let expected = Self.reference(x, lookup, table), got = lookup.value(of: x)
                if expected != got { failures.add("\(name): \(x) (\(percentF(x))) → \(got), %f gives \(expected)") }
            }
        }
        XCTAssertEqual(failures.messages.prefix(5), [], "\(failures.messages.count) mismatches")
        return ranges.reduce(0) { $0 + $1.count }
    }

    func testSpecialValuesMapAsPercentFPrintsThem() {
        let table = Self.syntheticTable()
        let nanPayload = Double(bitPattern: 0x7FF0_0000_0000_0001)
        var specials: [Double] = [.nan, -.nan, nanPayload, -nanPayload, Double(bitPattern: UInt64.max), .infinity, -.infinity,
                                  0, -0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude,
                                  -.leastNormalMagnitude, Double.leastNormalMagnitude.nextDown, .greatestFiniteMagnitude,
                                  -.greatestFiniteMagnitude, Double(Float.leastNonzeroMagnitude), -Double(Float.leastNormalMagnitude),
                                  Double(Float.greatestFiniteMagnitude), 1.0 / 128, -3.0 / 128, 3.0 / 128, 5e-7, -5e-7, 1.5e-6,
                                  9007199254740992, 9007199254740994, 123456789]
        specials += specials.flatMap { [$0.nextUp, $0.nextDown] }
        for lookup in Self.syntheticLookups() {
            for x in specials {
                XCTAssertEqual(lookup.value(of: x), Self.reference(x, lookup, table), "\(x) (\(percentF(x))), f32 \(lookup.roundToFloat32)")
            }
        }
        let f64 = Self.syntheticLookups()[0]
        XCTAssertEqual(f64.value(of: -.nan), table["-nan"])
        XCTAssertEqual(f64.value(of: -0.0), table["-0.000000"])
        XCTAssertEqual(f64.value(of: 1.0 / 128), table["0.007812"], "a tie rounds to even")
        XCTAssertEqual(f64.value(of: 0.5), 0, "\"0.5\" is not what %f prints")
    }

    func testSyntheticVocabularyMatchesPercentFAroundEveryBoundary() {
        let table = Self.syntheticTable()
        for lookup in Self.syntheticLookups() {
            check(Self.windows(lookup, table: table, window: 4096, wide: 4096, stride: 1), lookup, table, "synthetic")
            guard !lookup.roundToFloat32 else { continue }
            // Keys of float64 values: float64 ulps around each boundary too.
            for start in lookup.starts.dropFirst() {
                var x = Self.double(ordered: start)
                for _ in 0..<64 { x = x.nextDown }
                for _ in 0..<129 {
                    XCTAssertEqual(lookup.value(of: x), Self.reference(x, lookup, table), "\(x)")
                    x = x.nextUp
                }
            }
        }
    }

    func testShippedVocabulariesMatchPercentFAroundEveryBoundary() throws {
        var checked = 0
        for (name, lookup, table) in try Self.shippedLookups() {
            let ranges = Self.exhaustive
                ? Self.windows(lookup, table: table, window: 4096, wide: 4096, stride: 1)
                : Self.windows(lookup, table: table, window: 4, wide: 4096, stride: 1024)
            checked += check(ranges, lookup, table, name)
        }
        print("checked \(checked) float32 values around the shipped vocabularies' boundaries")
    }

    func testRandomValuesOfEveryPrecisionMatchPercentF() throws {
        let shipped = (try? Self.shippedLookups()) ?? []
        let lookups = Self.syntheticLookups().map { ($0, Self.syntheticTable()) } + shipped.map { ($0.lookup, $0.table) }
        // Every vocabulary's index of each key, so that a value costs one %f and one hash.
        var merged: [String: [Float]] = [:]
        for (i, (_, table)) in lookups.enumerated() {
            for (key, value) in table { merged[key, default: lookups.map { $0.0.oov }][i] = value }
        }
        let indices = merged, oovs = lookups.map { $0.0.oov }
        let count = Self.exhaustive ? 10_000_000 : 1_000_000
        let chunks = 64
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var rng = SplitMix(seed: UInt64(chunk))
            for i in 0..<(count / chunks) {
                let x = Self.randomValue(i % 3, &rng)
                let narrowed = Double(Float(x))
                let wide = indices[percentF(x)] ?? oovs
                let rounded = narrowed.bitPattern == x.bitPattern ? wide : indices[percentF(narrowed)] ?? oovs
                for (l, (lookup, _)) in lookups.enumerated() {
                    let expected = lookup.roundToFloat32 ? rounded[l] : wide[l]
                    if lookup.value(of: x) != expected { failures.add("\(x) → \(lookup.value(of: x)), %f gives \(expected)") }
                }
            }
        }
        XCTAssertEqual(failures.messages.prefix(5), [], "\(failures.messages.count) mismatches")
    }

    /// A float16, float32 or float64 value (`kind` 0, 1, 2): mostly across the embedding range
    /// (-1…1, often within the vocabularies' -0.9…0.6), sometimes any bit pattern.
    static func randomValue(_ kind: Int, _ rng: inout SplitMix) -> Double {
        let bits = rng.next()
        let anyPattern = bits % 8 == 0
        let u = Double(bits >> 11) / Double(1 << 53)
        let wide = bits % 8 < 4 ? 2 * u - 1 : 1.5 * u - 0.9
        switch kind {
        case 0: return Double(anyPattern ? Float16(bitPattern: UInt16(truncatingIfNeeded: bits >> 20)) : Float16(wide))
        case 1: return Double(anyPattern ? Float(bitPattern: UInt32(truncatingIfNeeded: bits >> 20)) : Float(wide))
        default: return anyPattern ? Double(bitPattern: rng.next()) : wide
        }
    }
}

/// Failure messages gathered from concurrent workers.
final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var messages: [String] = []

    func add(_ message: String) {
        lock.lock()
        if messages.count < 100 { messages.append(message) }
        lock.unlock()
    }
}

/// A small seeded generator (SplitMix64), so that every run checks the same values.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
